"""video.segment's temporal choices, and video.depth's delta row, on a real clip.

Run: python bench/bench_segment_temporal.py --clip CLIP.webp [--train 24] [--frames 32]
         [--size 512] [--interval 32] [--threshold 0.05 [0.1 ...]] [--depth | --only-depth]
         [--edge-slack 16 [...] --slack-threshold 0.01 [...]]
         [--no-delta] [--threads 1] [--json out.json]

CLIP is a real clip nobody here made: the PyPI wheel `comfyui-workflow-templates-media-video`
holds animated WebP clips (``pip download --no-deps comfyui-workflow-templates-media-video``,
unzip, ``templates/ltxv_image_to_video-1.webp``, 768×512, 97 frames), decoded with Pillow. Its
first ``--train`` frames are what `fathom distill` learns from; the rows run on the ``--frames``
frames after them (held out from the student).

Segmentation: a model in SegFormer-B0's shape (hidden 32/64/160/256, depths 2/2/2/2, decoder
256) with random weights and two labels, saved and loaded like a user's folder, at ``--size``².
Random weights give one class nearly everywhere, so the classifier's bias is centred on the
first training frame's logits (the argmax then follows the picture) and the label covering
closer to half of the first evaluated frame is the foreground: the masks are arbitrary but
non-trivial. Rows, all through the `video.segment` node on the same frames, read in order and
interleaved frame by frame (so the machine's load hits them alike), loading excluded:

* off: the model on every frame (the baseline, 1.00×);
* flow: today's keyframes + optical flow, at interval 4 (the node's default) and 8;
* reuse / resq: keyframe every ``--interval`` frames, gated recompute at ``--threshold`` (reuse:
  a row per threshold given; resq: the first);
* reuse with ``edge_slack`` (a row per ``--edge-slack`` × ``--slack-threshold``): tokens away
  from the mask's edges may change up to that many times the threshold;
* reuse at threshold 0: the same code where only what provably did not change is reused (equal
  to off up to float rounding): how much of reuse's speed is its exact rewrite of the decoder
  (stage projections folded into the fuse layer and batch norm, summed at low resolution)
  rather than what it skips;
* delta: the student `fathom distill` trained on the training frames.

IoU is of the masks against off's, mean and minimum over the frames; reuse / resq also give
the mean share of tokens recomputed on their non-keyframes. ``--no-delta`` skips the student.
Seconds are wall time; the CPU column is the process's CPU time over the same reads, which a
loaded machine disturbs less. ``--threads`` (default 1) sets torch's threads: on this shared
2-core machine two threads per process oversubscribe the cores and every row's time then
depends on what else runs (off took 3.4× longer at two threads than at one at load 4).

Depth (``--depth``): a model in Depth Anything V2 Small's shape (bench_video_depth's builder),
a student distilled on the training frames, then `video.depth` off and delta (keyframe every
``--interval``) on the evaluated frames: time, speed-up and PSNR of the normalised depth
against off's, beside bench_video_depth's rows.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from fathom.engine.context import RunOptions
from fathom.engine.executor import Executor
from fathom.engine.imaging import flow as fl
from fathom.engine.registry import Registry
from fathom.engine.types import Image, Video


def read_clip(path: Path, start: int, count: int) -> list[np.ndarray]:
    from PIL import Image as PILImage

    im = PILImage.open(path)
    out = []
    for i in range(start, min(start + count, getattr(im, "n_frames", 1))):
        im.seek(i)
        out.append(np.asarray(im.convert("RGB"), np.float32) / 255.0)
    return out


def write_clip(path: Path, frames: list[np.ndarray]) -> Path:
    from PIL import Image as PILImage

    ims = [PILImage.fromarray((f * 255).round().astype(np.uint8)) for f in frames]
    ims[0].save(path, save_all=True, append_images=ims[1:], duration=42, lossless=True)
    return path


def build_b0(folder: Path, size: int, first: np.ndarray) -> Path:
    """SegFormer-B0's shape, random weights, two labels; classifier bias centred on ``first``."""
    import torch
    from transformers import (
        SegformerConfig,
        SegformerForSemanticSegmentation,
        SegformerImageProcessor,
    )

    torch.manual_seed(0)
    labels = {0: "background", 1: "object"}
    cfg = SegformerConfig(
        hidden_sizes=[32, 64, 160, 256],
        depths=[2, 2, 2, 2],
        decoder_hidden_size=256,
        num_labels=2,
        id2label=labels,
        label2id={v: k for k, v in labels.items()},
    )
    model = SegformerForSemanticSegmentation(cfg).eval()
    processor = SegformerImageProcessor(size={"height": size, "width": size})
    px = processor(images=(first * 255).round().astype(np.uint8), return_tensors="pt")
    with torch.no_grad():
        logits = model(pixel_values=px["pixel_values"]).logits
        model.decode_head.classifier.bias -= logits.mean(dim=(0, 2, 3))
    model.save_pretrained(folder, safe_serialization=True)
    processor.save_pretrained(folder)
    return folder


def interleaved(videos: list[Video]) -> list[tuple[float, list[np.ndarray], float]]:
    """Read frame i of every row in turn: (seconds, masks, CPU seconds) per row."""
    times = [0.0] * len(videos)
    cpu = [0.0] * len(videos)
    outs: list[list[np.ndarray]] = [[] for _ in videos]
    for i in range(len(videos[0])):
        for k, v in enumerate(videos):
            t0, c0 = time.perf_counter(), time.process_time()
            outs[k].append(v.frame(i).data[..., 0].copy())
            times[k] += time.perf_counter() - t0
            cpu[k] += time.process_time() - c0
    return list(zip(times, outs, cpu, strict=True))


Gate = tuple[str, float, float]  # (mode, threshold, edge slack)


def recomputed_shares() -> dict[Gate, float]:
    """Instrument SegformerTemporal so the rows' mean share of recomputed tokens over their
    non-keyframes (reuse / resq) can be read after the run: {(mode, threshold, edge slack):
    share}, filled in place."""
    from fathom.engine.accel.temporal_segment import SegformerTemporal

    seen: dict[Gate, list[float]] = {}
    shares: dict[Gate, float] = {}
    call = SegformerTemporal.__call__

    def counted(self: SegformerTemporal, pixels: object, keyframe: bool) -> object:
        out = call(self, pixels, keyframe)  # type: ignore[arg-type]
        if not keyframe:
            key = (self.mode, self.threshold, self.edge_slack)
            seen.setdefault(key, []).append(self.recomputed)
            shares[key] = round(float(np.mean(seen[key])), 3)
        return out

    SegformerTemporal.__call__ = counted  # type: ignore[method-assign]
    return shares


def segmentation_rows(args: argparse.Namespace, work: Path, train: list, frames: list) -> list:
    from fathom.engine.accel.delta import distill

    model = build_b0(work / "segformer_b0_shape", args.size, train[0])
    if not args.no_delta:
        clip = write_clip(work / "train.webp", train)
        t0 = time.perf_counter()
        rep = distill(model, [clip], work / "seg_student", steps=args.steps, held_out=0.2)
        print(
            f"seg student: {time.perf_counter() - t0:.0f} s, held-out error "
            f"{rep.relative:.3f} of copying",
            flush=True,
        )
    ex = Executor(_registry())
    opts = RunOptions(device="cpu")
    video = Video.from_frames([Image(f) for f in frames], 24.0)
    first = {"model": str(model), "labels": "background", "temporal": "off"}
    m0 = ex.call("video.segment", {"video": video.slice(0, 1)}, first, opts)["mask"]
    share = float(m0.frame(0).data.mean())  # two labels: "object" covers the rest
    label = "object"
    print(f"'object' covers {1 - share:.2f} of the first evaluated frame", flush=True)
    reuse = [
        (f"reuse, threshold {t:g}", {"temporal": "reuse", "threshold": t}) for t in args.threshold
    ]
    for t in args.slack_threshold:
        for k in args.edge_slack:
            name = f"reuse, threshold {t:g}, edge slack {k:g}"
            reuse.append((name, {"temporal": "reuse", "threshold": t, "edge_slack": k}))
    rows: list[tuple[str, dict]] = [
        ("off", {"temporal": "off"}),
        ("flow, interval 4", {"temporal": "flow", "interval": 4}),
        ("flow, interval 8", {"temporal": "flow", "interval": 8}),
        *reuse,
        ("reuse, threshold 0", {"temporal": "reuse", "threshold": 0.0}),
        ("resq (bits 4)", {"temporal": "resq", "bits": 4}),
    ]
    if not args.no_delta:
        rows.append(("delta", {"temporal": "delta", "student": str(work / "seg_student")}))
    base = {"model": str(model), "labels": label, "interval": args.interval}
    base["threshold"] = args.threshold[0]
    ex.call("video.segment", {"video": video.slice(0, 2)}, {**base, **rows[3][1]}, opts)
    videos = [
        ex.call("video.segment", {"video": video}, {**base, **p}, opts)["mask"] for _, p in rows
    ]
    shares = recomputed_shares()
    measured = interleaved(videos)
    base_t, ref, base_cpu = measured[0]
    out = []
    for (name, p), (t, masks, cpu) in zip(rows, measured, strict=True):
        ious = [fl.iou(a, b) for a, b in zip(masks, ref, strict=True)]
        params = {**base, **p}
        out.append(
            {
                "row": name,
                "keyframes": len(frames)
                if name == "off"
                else math.ceil(len(frames) / p.get("interval", args.interval)),
                "seconds": round(t, 2),
                "speedup": round(base_t / t, 2),
                "cpu_seconds": round(cpu, 2),
                "cpu_speedup": round(base_cpu / cpu, 2),
                "mean_iou": round(float(np.mean(ious)), 4),
                "min_iou": round(float(min(ious)), 4),
                "fg_share": round(float(np.mean(ref)), 3),
                "recomputed": shares.get(
                    (p["temporal"], float(params["threshold"]), float(p.get("edge_slack", 1.0)))
                ),
            }
        )
        print(json.dumps(out[-1]), flush=True)
    return out


def _registry() -> Registry:
    reg = Registry()
    reg.load_builtin()
    return reg


def depth_rows(args: argparse.Namespace, work: Path, train: list, frames: list) -> list:
    import torch
    from bench_video_depth import build_v2_small, psnr

    from fathom.engine.accel.delta import distill

    torch.set_grad_enabled(False)
    model = build_v2_small(work / "da_v2_small_shape")
    clip = write_clip(work / "train_depth.webp", train)
    t0 = time.perf_counter()
    with torch.enable_grad():
        rep = distill(model, [clip], work / "depth_student", steps=args.steps, held_out=0.2)
    print(
        f"depth student: {time.perf_counter() - t0:.0f} s, held-out error "
        f"{rep.relative:.3f} of copying",
        flush=True,
    )
    ex = Executor(_registry())
    opts = RunOptions(device="cpu")
    video = Video.from_frames([Image(f) for f in frames], 24.0)
    base = {"model": str(model), "keyframe_interval": args.interval}
    ex.call("video.depth", {"video": video.slice(0, 1)}, {**base, "temporal": "off"}, opts)[
        "depth"
    ].frame(0)
    rows = [("off", {"temporal": "off"}), ("delta", {"temporal": "delta"})]
    rows[1][1]["student"] = str(work / "depth_student")
    videos = [
        ex.call("video.depth", {"video": video}, {**base, **p}, opts)["depth"] for _, p in rows
    ]
    measured = interleaved(videos)
    base_t, ref, _ = measured[0]
    out = []
    for (name, _), (t, d, _) in zip(rows, measured, strict=True):
        out.append(
            {
                "row": f"depth {name}",
                "seconds": round(t, 2),
                "speedup": round(base_t / t, 2),
                "psnr_db": round(psnr(d, ref), 2),
                "student_held_out_vs_copy": round(rep.relative, 3),
            }
        )
        print(json.dumps(out[-1]), flush=True)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clip", type=Path, required=True)
    ap.add_argument("--train", type=int, default=24, help="frames the students learn from")
    ap.add_argument("--frames", type=int, default=32, help="frames the rows run on")
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--interval", type=int, default=32)
    ap.add_argument("--threshold", type=float, nargs="+", default=[0.05])
    ap.add_argument(
        "--edge-slack", type=float, nargs="*", default=[], help="reuse rows with edge_slack"
    )
    ap.add_argument(
        "--slack-threshold", type=float, nargs="*", default=[], help="thresholds for those rows"
    )
    ap.add_argument("--steps", type=int, default=150, help="distillation steps")
    ap.add_argument("--depth", action="store_true", help="also the video.depth delta rows")
    ap.add_argument("--only-depth", action="store_true", help="skip the segmentation rows")
    ap.add_argument("--no-delta", action="store_true", help="skip the student and its row")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (0: torch's default)")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    import torch

    if args.threads > 0:
        torch.set_num_threads(args.threads)
    from fathom.engine.allocator import keep_freed_memory

    keep_freed_memory()  # as `fathom render` runs (FATHOM_MALLOC_KEEP_MB=0: glibc's own)

    train = read_clip(args.clip, 0, args.train)
    frames = read_clip(args.clip, args.train, args.frames)
    work = Path(tempfile.mkdtemp(prefix="bench_segment_temporal"))
    print(f"load before: {os.getloadavg()}", flush=True)
    seg = [] if args.only_depth else segmentation_rows(args, work, train, frames)
    dep = depth_rows(args, work, train, frames) if args.depth or args.only_depth else []
    h, w = frames[0].shape[:2]
    print(
        f"\n# {args.clip.name}: {len(frames)} frames {w}×{h} after {len(train)} training frames; "
        f"SegFormer-B0 shape at {args.size}², keyframe interval {args.interval}, thresholds "
        f"{args.threshold}; {platform.machine()}, torch {torch.__version__} "
        f"({torch.get_num_threads()} threads); load after {os.getloadavg()}"
    )
    print(
        "| row | keyframes | seconds | × off | × off (CPU time) | mean IoU vs off | min IoU "
        "| tokens recomputed |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for r in seg:
        share = "" if r["recomputed"] is None else f"{r['recomputed']:.1%}"
        print(
            f"| {r['row']} | {r['keyframes']} | {r['seconds']} | {r['speedup']:.2f}× | "
            f"{r['cpu_speedup']:.2f}× | {r['mean_iou']:.3f} | {r['min_iou']:.3f} | {share} |"
        )
    if dep:
        print("\n| depth row | seconds | speed-up vs off | PSNR vs off (dB) | student vs copy |")
        print("|---|---|---|---|---|")
        for r in dep:
            print(
                f"| {r['row']} | {r['seconds']} | {r['speedup']:.2f}× | {r['psnr_db']} | "
                f"{r['student_held_out_vs_copy']} |"
            )
    if args.json:
        args.json.write_text(json.dumps({"segment": seg, "depth": dep}, indent=1))


if __name__ == "__main__":
    main()
