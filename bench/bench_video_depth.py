"""video.depth benchmark: temporal reuse and ResQ against every frame through the model.

Run: python bench/bench_video_depth.py --clip CLIP.webp [--frames 32] [--json results.json]
     python bench/bench_video_depth.py --memory 10      # peak memory on a 10-minute 1080p clip

CLIP is a real clip nobody here made: the PyPI wheel `comfyui-workflow-templates-media-video`
holds animated WebP clips (``pip download --no-deps comfyui-workflow-templates-media-video``,
unzip, ``templates/ltxv_image_to_video-1.webp``, 768×512), decoded with Pillow. The model has
Depth Anything V2 Small's shape (ViT-S/14: 384 wide, 12 layers, 6 heads; DPT neck 48/96/192/384,
fusion 64) with random weights, saved as safetensors and loaded like a user's folder; its
processor is V2's (shorter side 518, aspect kept, multiple of 14).

Rows, all through video.depth's own stream (`DepthStream`: the processor in, the bicubic resize
and per-frame normalisation out) on the same frames in the same run:

* off: every frame through the model's forward (the baseline, 1.00×);
* reuse: `temporal=reuse` at the node's defaults (threshold 0.02, keyframe interval 30), one
  row per ``--threshold``; "% fine" is the share of the neck's fine end's blocks recomputed;
* resq 4-bit: `temporal=resq` with the bit-width held at 4 (no per-frame adaptation), the
  first frame the only full-precision keyframe;
* resq adaptive: `temporal=resq` as the node runs it (bits 4, more for larger changes);
* per-frame 4-bit: the same quantiser on the activations themselves, every frame (the
  baseline of the ResQ paper's claim);
* delta: `temporal=delta` with a distilled student (added with `fathom distill`).

Fidelity is the PSNR of the normalised depth against off's (peak 1), over all frames, and the
RMS error over the frames after the first (where the quantised modes differ from off).
The memory run streams a 10-minute 1080p24 clip (ffmpeg's testsrc, made once) through
video.load → video.depth (reuse) → video.save (colourised MP4) in a fresh process, with a toy
Depth Anything (the clip's length and size are what is measured), and reports the peak RSS.

Loading is excluded; each row's time is the whole clip, frames read in order; the rows run
interleaved frame by frame, so the machine's changing load hits them alike.
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fathom.engine.accel.resq import PerFrameQuant, ResQ
from fathom.engine.models.depth import load_transformers_depth
from fathom.engine.models.mini_depth import save_depth_anything
from fathom.engine.types import Image, Video
from fathom.nodes.video_depth import (
    TEMPORAL_MODES,
    DepthFrames,
    DepthStream,
    Settings,
    _Periodic,
)


def build_v2_small(folder: Path) -> Path:
    """Depth Anything V2 Small's architecture with random weights, saved like a checkpoint."""
    return save_depth_anything(folder, v2_small=True)


def load_clip(path: Path, frames: int) -> Video:
    from PIL import Image as PILImage

    im = PILImage.open(path)
    n = min(frames, getattr(im, "n_frames", 1))
    out = []
    for i in range(n):
        im.seek(i)
        out.append(Image(np.asarray(im.convert("RGB"), np.float32) / 255.0))
    return Video.from_frames(out, 24.0)


class _Plain:
    """PerFrameQuant as a stepper (no caches to reset)."""

    def __init__(self, net: Any, bits: int) -> None:
        self.q = PerFrameQuant(net, bits)

    def step(self, pixel_values: Any) -> Any:
        return self.q.step(pixel_values)

    def reset(self, index: int = 0) -> None:
        pass


def run_rows(frames: DepthFrames, rows: list[tuple[str, Any, int]], video: Video) -> list:
    """Every row over the clip, interleaved frame by frame (row 1 on frame i, row 2 on frame i,
    ...), so a change in the machine's load hits all rows alike: (seconds, depth frames)."""
    streams = [DepthStream(frames, stepper, interval) for _, stepper, interval in rows]
    times = [0.0] * len(rows)
    outs: list[list[np.ndarray]] = [[] for _ in rows]
    for i in range(len(video)):
        for k, stream in enumerate(streams):
            t0 = time.perf_counter()
            outs[k].append(stream.frame(video, i, lambda: None))
            times[k] += time.perf_counter() - t0
    return list(zip(times, outs, strict=True))


def psnr(a: list, b: list) -> float:
    mse = float(np.mean([np.mean((x - y) ** 2) for x, y in zip(a, b, strict=True)]))
    return math.inf if mse == 0 else 10 * math.log10(1.0 / mse)


def rmse_after_first(a: list, b: list) -> float:
    return float(
        np.sqrt(np.mean([np.mean((x - y) ** 2) for x, y in zip(a[1:], b[1:], strict=True)]))
    )


def build_tiny(folder: Path) -> Path:
    """A toy Depth Anything (4 layers, 32 wide, 126×224 input) for the memory run, where the
    clip's size, not the model, is what is measured."""
    return save_depth_anything(folder, 126, 224)


def child_memory(src: str, out: str, model: str) -> None:
    """In a fresh process: video.load → video.depth (reuse) → video.save (colourised MP4,
    x264 ultrafast) through the executor; then frames, seconds and peak RSS as JSON. With the
    allocator set as `fathom render` sets it (FATHOM_MALLOC_KEEP_MB=0 for glibc's own)."""
    import resource

    from fathom.engine.allocator import keep_freed_memory
    from fathom.engine.context import RunOptions

    keep_freed_memory()
    from fathom.engine.executor import Executor
    from fathom.engine.registry import Registry

    reg = Registry()
    reg.load_builtin()
    ex = Executor(reg)
    opts = RunOptions(device="cpu", output_dir=Path(out).parent, base_dir=Path(src).parent)
    t = time.perf_counter()
    video = ex.call("video.load", {}, {"path": src}, opts)["video"]
    params = {"model": model, "temporal": "reuse", "keyframe_interval": 30}
    depth = ex.call("video.depth", {"video": video}, params, opts)["depth"]
    save = {"path": Path(out).name, "preset": "ultrafast", "colormap": "turbo"}
    ex.call("video.save", {"video": depth}, save, opts)
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(
        json.dumps(
            {
                "frames": len(video),
                "size": list(video.size),
                "seconds": round(time.perf_counter() - t, 1),
                "peak_rss_gb": round(peak_kb / 1024**2, 3),
            }
        )
    )


def memory(minutes: float, work: Path) -> None:
    import subprocess

    src = work / f"long_{minutes:g}min_1080p24.mp4"
    if not src.exists():
        cmd = ["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", "testsrc=size=1920x1080:rate=24"]
        cmd += ["-t", f"{minutes * 60:g}", "-c:v", "libx264", "-preset", "ultrafast"]
        subprocess.run([*cmd, "-pix_fmt", "yuv420p", str(src)], check=True)
    model = build_tiny(work / "tiny_depth")
    out = work / "long_depth.mp4"
    proc = subprocess.run(
        [sys.executable, __file__, "--child", str(src), str(out), str(model)],
        check=True,
        capture_output=True,
        text=True,
    )
    res = json.loads(proc.stdout.strip().splitlines()[-1])
    print(json.dumps(res))
    print("| clip | frames | seconds | peak RSS | target |")
    print("|---|---|---|---|---|")
    verdict = "met" if res["peak_rss_gb"] < 2.0 else "NOT met"
    print(
        f"| {minutes:g} min {res['size'][0]}×{res['size'][1]} testsrc | {res['frames']} | "
        f"{res['seconds']} | {res['peak_rss_gb']:.2f} GB | < 2 GB: {verdict} |"
    )


def main() -> None:
    if len(sys.argv) == 5 and sys.argv[1] == "--child":
        child_memory(*sys.argv[2:5])
        return
    from fathom.engine.allocator import keep_freed_memory

    keep_freed_memory()  # as `fathom render` runs (FATHOM_MALLOC_KEEP_MB=0: glibc's own)
    ap = argparse.ArgumentParser()
    ap.add_argument("--clip", type=Path)
    ap.add_argument("--memory", type=float, metavar="MINUTES", help="the long-clip memory run")
    ap.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "bench_video_depth")
    ap.add_argument("--frames", type=int, default=32)
    ap.add_argument(
        "--threshold", type=float, nargs="+", default=[0.02], help="one reuse row per threshold"
    )
    ap.add_argument("--interval", type=int, default=30)
    ap.add_argument("--no-resq", action="store_true", help="only off and the reuse rows")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    if args.memory:
        args.work.mkdir(parents=True, exist_ok=True)
        memory(args.memory, args.work)
        return
    if args.clip is None:
        ap.error("--clip is needed (or --memory MINUTES)")
    import torch

    torch.set_grad_enabled(False)
    video = load_clip(args.clip, args.frames)
    folder = build_v2_small(Path(tempfile.mkdtemp()) / "da_v2_small_shape")
    processor, net = load_transformers_depth(folder, "cpu", "float32")
    frames = DepthFrames(processor, net)
    n = len(video)
    s = Settings("reuse", args.interval, args.threshold[0], 4, "")
    rows: list[tuple[str, Any, int]] = [("off", TEMPORAL_MODES["off"](net, s), 1)]
    for th in args.threshold:
        reuse = Settings("reuse", args.interval, th, 4, "")
        rows.append(
            (f"reuse (threshold {th:g})", TEMPORAL_MODES["reuse"](net, reuse), args.interval)
        )
    rows += (
        []
        if args.no_resq
        else [
            ("resq 4-bit", _Periodic(ResQ(net, 4, 1 << 30, adaptive=False), n), n),
            ("resq adaptive (bits 4)", _Periodic(ResQ(net, 4, 1 << 30, args.threshold[0]), n), n),
            ("per-frame 4-bit", _Plain(net, 4), 1),
        ]
    )
    # Warm-up (allocator, first-call overheads) on one frame, excluded.
    run_rows(frames, [("off", TEMPORAL_MODES["off"](net, s), 1)], video.slice(0, 1))
    results = []
    measured = run_rows(frames, rows, video)
    base_t, base = measured[0]
    for (name, stepper, _), (t, out) in zip(rows, measured, strict=True):
        row = {
            "mode": name,
            "seconds": round(t, 2),
            "speedup": round(base_t / t, 2),
            "psnr_db": round(psnr(out, base), 2),
            "rmse_after_first": round(rmse_after_first(out, base), 5),
        }
        engine = getattr(stepper, "engine", None)
        if engine is not None and hasattr(engine, "stats"):
            row["tokens_recomputed"] = round(engine.stats.token_fraction, 3)
            row["head_cost"] = round(
                engine.stats.tiles_computed / max(1, engine.stats.tiles_total), 3
            )
            row["keyframes"] = engine.stats.keyframes
        if engine is not None and hasattr(engine, "frame_bits"):
            row["mean_bits"] = round(float(np.mean([b for b in engine.frame_bits if b])), 2)
            row["active_rows"] = round(float(np.mean(engine.active_rows or [1.0])), 3)
        results.append(row)
        print(json.dumps(row), flush=True)
    w, h = video.size
    pv = frames.pixels(video.frame(0))
    print(f"\nclip {args.clip.name}: {n} frames {w}×{h}, model input {pv.shape[-1]}×{pv.shape[-2]}")
    print("| mode | seconds | speed-up vs off | PSNR vs off (dB) | RMS error, frames 2.. |")
    print("|---|---|---|---|---|")
    for r in results:
        share = ""
        if "tokens_recomputed" in r:
            share = (
                f" ({100 * r['tokens_recomputed']:.1f} % tokens, {100 * r['head_cost']:.0f} % fine)"
            )
        print(
            f"| {r['mode']}{share} | {r['seconds']} | {r['speedup']:.2f}× | {r['psnr_db']} | "
            f"{r['rmse_after_first']} |"
        )
    print("| delta (B: `fathom distill` student) | | | | |")
    print(f"machine: {platform.machine()} {platform.processor()} torch {torch.__version__}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
