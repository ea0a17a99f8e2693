"""Batch benchmark: the same sweep of the demo graph on local worker processes and on Ray.

Run: python bench/bench_batch.py [--rows 24] [--frames 0-11] [--json results.json]
Measures rows/s and per-row overhead of both, checks the outputs are byte-identical, measures
Ray's per-row scheduling cost on trivial rows, and projects 8 and 64 GPU workers on paper.
Ray stays on 127.0.0.1 (a local instance of 2 CPUs, no dashboard).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")  # before Ray starts: loopback
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fathom.engine.batch import read_rows, run_batch
from fathom.engine.distributed.cluster import PoolPlan
from fathom.engine.distributed.scheduler import run_batch_ray
from fathom.engine.render import RenderJob
from fathom.engine.resources import example_graph

WORKERS = 2


def demo_rows(folder: Path, n: int, frames: str) -> Path:
    """A sweep a lookdev artist would run: mesh cut, orbit radius, walk radius and seed."""
    lines = [
        json.dumps(
            {
                "_seed": i,
                "_frames": frames,
                "mesh.cut": 0.03 + 0.002 * (i % 6),
                "orbit.radius": 0.1 + 0.02 * (i % 5),
                "pano.walk_radius": 0.2 + 0.02 * (i % 4),
            }
        )
        for i in range(n)
    ]
    path = folder / "demo_rows.jsonl"
    path.write_text("\n".join(lines) + "\n")
    return path


def trivial_rows(folder: Path, n: int) -> tuple[Path, Path]:
    graph = {
        "format": "fathom.graph",
        "version": 1,
        "nodes": [
            {"id": "c", "type": "image.constant", "params": {"width": 8, "height": 8}},
            {"id": "save", "type": "image.save", "params": {"path": "img.png"}},
        ],
        "edges": [{"from": ["c", "image"], "to": ["save", "image"]}],
    }
    g = folder / "trivial.json"
    g.write_text(json.dumps(graph))
    rows = folder / "trivial_rows.jsonl"
    rows.write_text("\n".join(json.dumps({"c.color": [i / n, 0, 0, 1]}) for i in range(n)) + "\n")
    return g, rows


def digest_tree(out: Path) -> dict[str, str]:
    """sha256 of every output except the reports (they hold times and dates)."""
    return {
        p.relative_to(out).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(out.rglob("*"))
        if p.is_file() and p.name not in ("run.json", "manifest.json")
    }


def summarize(manifest: dict[str, Any], wall: float, workers: int) -> dict[str, Any]:
    secs = [e["seconds"] for e in manifest["rows"]]
    n = len(secs)
    return {
        "rows": n,
        "ok": manifest["counts"]["ok"],
        "wall_s": round(wall, 2),
        "rows_per_s": round(n / wall, 3),
        "row_s_mean": round(statistics.mean(secs), 3),
        "row_s_median": round(statistics.median(secs), 3),
        # worker time not spent rendering a row: start-up, scheduling, transfer, commit
        "overhead_per_row_s": round((wall * workers - sum(secs)) / n, 4),
    }


def timed(fn: Any) -> tuple[Any, float]:
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=24, help="demo rows (0: overhead probe only)")
    ap.add_argument("--frames", default="0-11", help="video frames each row encodes")
    ap.add_argument("--trivial", type=int, default=200, help="rows of the overhead probe")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    import ray

    work = Path(tempfile.mkdtemp(prefix="fathom-bench-batch-"))
    graph = example_graph("depthfusion_demo")
    rows = read_rows(demo_rows(work, args.rows, args.frames)) if args.rows else []
    res: dict[str, Any] = {
        "machine": f"{platform.machine()} {os.cpu_count()} CPUs",
        "python": platform.python_version(),
        "ray": ray.__version__,
        "workers": WORKERS,
        "demo_rows": args.rows,
        "frames": args.frames,
    }

    _, res["ray_init_s"] = timed(
        lambda: ray.init(num_cpus=WORKERS, include_dashboard=False, log_to_driver=False)
    )
    plan = PoolPlan(WORKERS, 1.0, 0.0)

    def threads() -> tuple[str | None, int]:
        import torch

        return os.environ.get("OMP_NUM_THREADS"), torch.get_num_threads()

    # Ray gives a 1-CPU worker one OpenMP thread; a local worker process uses every core.
    res["threads"] = {
        "ray_worker": ray.get(ray.remote(num_cpus=1)(threads).remote()),
        "local_process": threads(),
    }
    if args.rows:
        # Local: what `fathom render --batch` does without --cluster (spawned worker processes).
        base = RenderJob(graph, work / "local", [], True, "cpu")
        m_local, wall = timed(lambda: run_batch(base, rows, WORKERS))
        res["local"] = summarize(m_local, wall, WORKERS)
        print("local", res["local"], flush=True)
        base_r = RenderJob(graph, work / "ray", [], True, "cpu")
        m_ray, wall = timed(lambda: run_batch_ray(ray, base_r, rows, plan=plan))
        res["ray"] = summarize(m_ray, wall, WORKERS)
        print("ray", res["ray"], flush=True)
        a, b = digest_tree(work / "local"), digest_tree(work / "ray")
        res["identical_outputs"] = a == b
        res["outputs_compared"] = len(a)
        res["differing"] = sorted(k for k in a if a.get(k) != b.get(k))[:10]

    # Scheduling cost alone: rows that take milliseconds, so the rest is overhead.
    g, t_rows_path = trivial_rows(work, args.trivial)
    t_rows = read_rows(t_rows_path)
    m_tl, wall_tl = timed(
        lambda: run_batch(RenderJob(g, work / "tl", [], True, "cpu"), t_rows, WORKERS)
    )
    cpu0 = time.process_time()  # the driver's own work per row: its serial share
    m_tr, wall_tr = timed(
        lambda: run_batch_ray(ray, RenderJob(g, work / "tr", [], True, "cpu"), t_rows, plan=plan)
    )
    res["driver_cpu_per_row_s"] = round((time.process_time() - cpu0) / len(t_rows), 5)
    res["trivial_local"] = summarize(m_tl, wall_tl, WORKERS)
    res["trivial_ray"] = summarize(m_tr, wall_tr, WORKERS)
    print("trivial local", res["trivial_local"], "\ntrivial ray", res["trivial_ray"], flush=True)
    ray.shutdown()

    # On paper: N workers each take (row time + per-row Ray overhead); the driver hands out and
    # commits rows one at a time, so it caps throughput at 1 / (its CPU time per row).
    o_row = max(res["trivial_ray"]["overhead_per_row_s"], 0.0)
    driver_cap = 1.0 / max(res["driver_cpu_per_row_s"], 1e-6)
    row_times = {"measured CPU row": res["ray"]["row_s_median"]} if args.rows else {}
    row_times.update({"GPU row 2 s": 2.0, "GPU row 0.5 s": 0.5})
    res["projection"] = {
        label: {
            str(n): {
                "rows_per_s": round(min(n / (t + o_row), driver_cap), 2),
                "ideal_rows_per_s": round(n / t, 2),
            }
            for n in (8, 64)
        }
        for label, t in row_times.items()
    }
    res["projection_inputs"] = {
        "overhead_per_row_s": o_row,
        "driver_cap_rows_per_s": round(driver_cap, 1),
    }
    print(json.dumps(res["projection"], indent=1), res["projection_inputs"])
    if args.json:
        args.json.write_text(json.dumps(res, indent=2) + "\n")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
