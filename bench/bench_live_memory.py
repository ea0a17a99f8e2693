"""Bounded memory of a long live session: runs `fathom live` and samples its resident memory.

Run: python bench/bench_live_memory.py --model MODEL_FOLDER [--seconds 600] [--size 64]
     [--json out/bench/live_memory.json]

The session is assets/graphs/live_stream.json (live.file looping the bundled clip at 24 frames/s
→ generate.stream → live.record) with its model swapped for ``--model`` (the tiny test model or
the SD-1.5-shaped mini model). RSS is read from /proc every 2 s; the report gives the RSS at the
first live frame (after the warm-up), its peak, the end, and the growth over the run.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", type=Path, required=True)
    ap.add_argument("--seconds", type=float, default=600)
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--json", type=Path, default=ROOT / "out" / "bench" / "live_memory.json")
    args = ap.parse_args()
    out = args.json.parent / "live_memory_out"
    report = out / "run.json"
    size = str(args.size)
    cmd = [
        sys.executable, "-m", "fathom.engine.cli", "live",
        str(ROOT / "assets" / "graphs" / "live_stream.json"),
        "--seconds", str(args.seconds), "--out", str(out), "--report", str(report),
        "--set", f"gen.model={args.model}", "--set", f"gen.width={size}",
        "--set", f"gen.height={size}", "--set", "gen.num_inference_steps=50",
        "--set", "gen.t_index_list=35", "--device", "cpu", "--quiet",
    ]  # fmt: skip
    load_start = os.getloadavg()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    samples: list[tuple[float, float]] = []
    t0 = time.perf_counter()
    while proc.poll() is None:
        try:
            samples.append((time.perf_counter() - t0, rss_mb(proc.pid)))
        except OSError:
            break
        time.sleep(2.0)
    err = proc.stderr.read() if proc.stderr else ""
    if proc.returncode != 0:
        raise SystemExit(f"fathom live failed ({proc.returncode}): {err[-2000:]}")
    run = json.loads(report.read_text())
    live = [r for t, r in samples if t >= run["warmup_s"] + 5]  # after warm-up and first frames
    result = {
        "seconds": run["seconds"],
        "warmup_s": run["warmup_s"],
        "frames_in": run["frames_in"],
        "frames_out": run["frames_out"],
        "frames_dropped": run["frames_dropped"],
        "fps": run["fps"],
        "latency_ms": run["latency_ms"],
        "rss_mb_start": round(live[0], 1),
        "rss_mb_peak": round(max(live), 1),
        "rss_mb_end": round(live[-1], 1),
        "rss_mb_growth_last_half": round(live[-1] - live[len(live) // 2], 1),
        "samples": [(round(t, 1), round(r, 1)) for t, r in samples],
        "load_avg_start": load_start,
        "load_avg_end": os.getloadavg(),
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=1))
    summary = {k: v for k, v in result.items() if k != "samples"}
    sys.stdout.write(json.dumps(summary, indent=1) + "\n")


if __name__ == "__main__":
    main()
