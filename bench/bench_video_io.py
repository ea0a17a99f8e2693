"""Video I/O (issue 8): trim + scale + encode 1080p → 720p against the ffmpeg command line, and
peak memory of load → trim → resize → save on a long 1080p clip.

Run: python bench/bench_video_io.py [--frames 120] [--repeat 2] [--minutes 10] [--skip-memory]

Part 1 encodes the same frames with the same libx264 (CRF 20, preset medium) both ways, in the same
run; each configuration runs ``--repeat`` times and the fastest counts (the machine is shared, the
slow runs are other people's load). The node rows:
  * decoder scaling: video.load(width, height) → video.trim → video.save: the frames never leave
    FFmpeg's pixel formats (what the ffmpeg command does);
  * video.resize: video.load → video.trim → video.resize (area) → video.save, B's node;
  * Video.map: video.load → video.trim → Video.map(OpenCV INTER_AREA on float frames) → save,
    the generic path every image node takes.
Part 2 runs the pipeline in a child process and reads its peak RSS (``resource.getrusage``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fathom.engine.context import RunOptions
from fathom.engine.executor import Executor
from fathom.engine.registry import Registry
from fathom.engine.types import Image, Video

SRC_W, SRC_H, OUT_W, OUT_H, FPS = 1920, 1080, 1280, 720, 24
START_S = 2.0
TARGET_RATIO = 0.8
TARGET_RSS_GB = 1.5


def make_source(
    path: Path, seconds: float, preset: str = "veryfast", pattern: str = "testsrc2"
) -> Path:
    """A 1080p24 test pattern with motion, encoded once and reused between runs."""
    if path.exists():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".part.mp4")
    subprocess.run(
        [
            "ffmpeg",
            "-v",
            "error",
            "-y",
            "-f",
            "lavfi",
            "-i",
            f"{pattern}=size={SRC_W}x{SRC_H}:rate={FPS}",
            "-t",
            f"{seconds:g}",
            "-c:v",
            "libx264",
            "-preset",
            preset,
            "-pix_fmt",
            "yuv420p",
            str(tmp),
        ],
        check=True,
    )
    tmp.rename(path)
    return path


def frames_in(path: Path) -> int:
    import av

    with av.open(str(path)) as c:
        return sum(1 for p in c.demux(video=0) if p.size)


def run_ffmpeg(src: Path, out: Path, n: int) -> float:
    t = time.perf_counter()
    subprocess.run(
        [
            "ffmpeg",
            "-v",
            "error",
            "-y",
            "-ss",
            f"{START_S:g}",
            "-i",
            str(src),
            "-frames:v",
            str(n),
            "-vf",
            f"scale={OUT_W}:{OUT_H}",
            "-c:v",
            "libx264",
            "-crf",
            "20",
            "-an",
            str(out),
        ],
        check=True,
    )
    return time.perf_counter() - t


def _call(
    ex: Executor, opts: RunOptions, type_id: str, inputs: dict[str, Any], params: dict[str, Any]
) -> dict[str, Any]:
    return ex.call(type_id, inputs, params, opts)


def run_nodes(
    ex: Executor, src: Path, out: Path, n: int, how: str, preset: str = "medium"
) -> float:
    """load → trim → (scale) → save through the nodes; returns seconds."""
    import cv2

    opts = RunOptions(device="cpu", output_dir=out.parent, base_dir=src.parent)
    t = time.perf_counter()
    size = {"width": OUT_W, "height": OUT_H} if how == "decoder scaling" else {}
    video = _call(ex, opts, "video.load", {}, {"path": str(src), **size})["video"]
    first = round(START_S * video.fps)
    video = _call(ex, opts, "video.trim", {"video": video}, {"start": first, "end": first + n})[
        "video"
    ]
    if how == "video.resize":
        video = _call(
            ex,
            opts,
            "video.resize",
            {"video": video},
            {"width": OUT_W, "height": OUT_H, "mode": "area"},
        )["video"]
    elif how == "Video.map":

        def area(img: Image) -> Image:
            return Image(cv2.resize(img.data, (OUT_W, OUT_H), interpolation=cv2.INTER_AREA))

        video = video.map(area, (OUT_W, OUT_H))
    _call(
        ex,
        opts,
        "video.save",
        {"video": video},
        {"path": out.name, "quality": 20, "preset": preset, "sound": "none"},
    )
    return time.perf_counter() - t


def speed(work: Path, n: int, repeat: int) -> list[dict[str, Any]]:
    reg = Registry()
    reg.load_builtin()
    ex = Executor(reg)
    src = make_source(work / "src_1080p.mp4", START_S + n / FPS + 2)
    configs: list[tuple[str, Any]] = [("ffmpeg", None)]
    has_resize = reg.get("video.resize") is not None and reg.get("video.trim") is not None
    if not has_resize:
        raise SystemExit("video.trim / video.resize are missing (nodes/video_edit.py)")
    configs += [("decoder scaling", None), ("video.resize", None), ("Video.map", None)]
    best: dict[str, float] = {}
    for _ in range(repeat):
        for how, _x in configs:
            out = work / f"out_{how.replace(' ', '_').replace('.', '_')}.mp4"
            sec = run_ffmpeg(src, out, n) if how == "ffmpeg" else run_nodes(ex, src, out, n, how)
            got = frames_in(out)
            if got != n:
                raise SystemExit(f"{how}: wrote {got} frames, expected {n}")
            best[how] = min(best.get(how, float("inf")), sec)
    base = n / best["ffmpeg"]
    rows = []
    for how, _x in configs:
        fps = n / best[how]
        rows.append(
            {
                "pipeline": how,
                "frames": n,
                "seconds": round(best[how], 2),
                "fps": round(fps, 1),
                "ratio": round(fps / base, 2),
            }
        )
    return rows


def child_memory(src: str, out: str, how: str, preset: str) -> None:
    """Runs in a fresh process: the pipeline, then its peak RSS as JSON on stdout."""
    reg = Registry()
    reg.load_builtin()
    ex = Executor(reg)
    opts = RunOptions(device="cpu", output_dir=Path(out).parent, base_dir=Path(src).parent)
    t = time.perf_counter()
    video: Video = ex.call("video.load", {}, {"path": src}, opts)["video"]
    n = len(video) - 2 * FPS
    video = ex.call("video.trim", {"video": video}, {"start": FPS, "end": FPS + n}, opts)["video"]
    if how == "Video.map":  # the generic path: float frames through OpenCV
        import cv2

        def area(img: Image) -> Image:
            return Image(cv2.resize(img.data, (OUT_W, OUT_H), interpolation=cv2.INTER_AREA))

        video = video.map(area, (OUT_W, OUT_H))
    else:
        video = ex.call(
            "video.resize",
            {"video": video},
            {"width": OUT_W, "height": OUT_H, "mode": "area"},
            opts,
        )["video"]
    ex.call("video.save", {"video": video}, {"path": Path(out).name, "preset": preset}, opts)
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(
        json.dumps(
            {
                "frames": n,
                "seconds": time.perf_counter() - t,
                "peak_rss_gb": peak_kb / 1024**2,
                "how": how,
            }
        )
    )


def memory(work: Path, minutes: float, preset: str, how: str) -> dict[str, Any]:
    src = make_source(work / f"long_{minutes:g}min.mp4", minutes * 60, "ultrafast", "testsrc")
    out = work / "long_out.mp4"
    proc = subprocess.run(
        [sys.executable, __file__, "--child", str(src), str(out), how, preset],
        check=True,
        capture_output=True,
        text=True,
    )
    res = json.loads(proc.stdout.strip().splitlines()[-1])
    res["output_frames"] = frames_in(out)
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=120, help="frames trimmed and encoded")
    ap.add_argument("--repeat", type=int, default=2, help="runs per pipeline; fastest counts")
    ap.add_argument("--minutes", type=float, default=10.0, help="long clip for the memory run")
    ap.add_argument("--memory-preset", default="ultrafast", help="x264 preset of that run")
    ap.add_argument(
        "--memory-resize",
        default="video.resize",
        choices=("video.resize", "Video.map"),
        help="how the memory run scales",
    )
    ap.add_argument("--skip-memory", action="store_true")
    ap.add_argument("--skip-speed", action="store_true")
    ap.add_argument("--work", default="out/bench_video_io", help="scratch folder")
    ap.add_argument("--json", help="write the rows here too")
    ap.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child_memory(*args.child)
        return
    if shutil.which("ffmpeg") is None:
        raise SystemExit("the ffmpeg command line is needed (apt install ffmpeg)")
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    print(
        f"# video I/O bench — {platform.processor() or platform.machine()}, "
        f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}\n"
    )
    result: dict[str, Any] = {}
    if not args.skip_speed:
        rows = speed(work, args.frames, args.repeat)
        result["speed"] = rows
        print(
            f"trim + scale + encode {SRC_W}×{SRC_H} → {OUT_W}×{OUT_H}, libx264 CRF 20 "
            f"(medium), {args.frames} frames from {START_S:g} s, best of {args.repeat}\n"
        )
        print("| pipeline | seconds | frames/s | × ffmpeg | target |")
        print("|---|---|---|---|---|")
        for r in rows:
            target = (
                "baseline"
                if r["pipeline"] == "ffmpeg"
                else f"≥ {TARGET_RATIO} ({'met' if r['ratio'] >= TARGET_RATIO else 'missed'})"
            )
            print(f"| {r['pipeline']} | {r['seconds']} | {r['fps']} | {r['ratio']} | {target} |")
        print()
    if not args.skip_memory:
        m = memory(work, args.minutes, args.memory_preset, args.memory_resize)
        result["memory"] = m
        ok = "met" if m["peak_rss_gb"] < TARGET_RSS_GB else "missed"
        print(
            f"load → trim → {args.memory_resize} → save (x264 {args.memory_preset}), "
            f"{args.minutes:g}-minute 1080p24 clip\n"
        )
        print("| frames in | frames out | seconds | peak RSS (GB) | target |")
        print("|---|---|---|---|---|")
        print(
            f"| {m['frames']} | {m['output_frames']} | {m['seconds']:.1f} | "
            f"{m['peak_rss_gb']:.2f} | < {TARGET_RSS_GB} ({ok}) |"
        )
    print(f"\nload average after: {os.getloadavg()[0]:.2f}")
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
