"""video.segment benchmark: per-frame segmentation against keyframes + flow propagation.

Run: python bench/bench_video_segment.py [--frames 48] [--size 256] [--json results.json]

A textured disc moves along a curve over a textured background (sub-pixel positions, so the
true mask of every frame is known). Two kinds of rows:

* model rows time `video.segment` through the node, with a SegFormer-B0-shaped model
  (random weights, 256×256 input) saved and loaded like a user's folder: interval 1 (the model
  on every frame, the baseline) against intervals 4 and 8. Their IoU column compares with the
  per-frame run; a random-weight model's masks are texture-driven noise, so that column says
  how far flow carries *such* masks, not how well a trained model's would survive.
* oracle rows give the keyframes the true mask instead of a model, so the IoU column (against
  the true mask of every frame) measures propagation accuracy alone; "propagate" is the
  classical backend (the first frame's true mask carried through the whole clip).
Every number is measured in this run on this machine.
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

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fathom.engine.context import RunOptions
from fathom.engine.executor import Executor
from fathom.engine.imaging import flow as fl
from fathom.engine.registry import Registry
from fathom.engine.types import Image, Mask, Video


class Clip:
    """Frame t: the disc's centre on a Lissajous curve, ~2–4 px per frame."""

    def __init__(self, size: int, frames: int, seed: int = 0) -> None:
        import cv2

        rng = np.random.default_rng(seed)

        def texture(n: int) -> np.ndarray:
            t = cv2.GaussianBlur(rng.random((n, n)).astype(np.float32), (0, 0), 2.0)
            t = (t - t.min()) / (t.max() - t.min())
            return np.stack([t, 1 - t, 0.5 * t + 0.25], -1).astype(np.float32)

        self.size, self.frames = size, frames
        self.bg = texture(size) * 0.6
        self.r = size // 6
        d = 2 * self.r + 1
        self.fg = texture(d) * 0.6 + 0.4
        yy, xx = np.mgrid[0:d, 0:d] - self.r
        self.disc = (np.hypot(xx, yy) <= self.r).astype(np.float32)

    def centre(self, t: float) -> tuple[float, float]:
        s, c = self.size, self.size / 2
        return (
            c + 0.3 * s * math.sin(2 * math.pi * t / 60),
            c + 0.2 * s * math.sin(2 * math.pi * t / 45 + 0.5),
        )

    def draw(self, t: float) -> tuple[np.ndarray, np.ndarray]:
        import cv2

        x, y = self.centre(t)
        m = np.float32([[1, 0, x - self.r], [0, 1, y - self.r]])
        n = self.size
        alpha = cv2.warpAffine(self.disc, m, (n, n), flags=cv2.INTER_LINEAR)
        fg = cv2.warpAffine(self.fg * self.disc[..., None], m, (n, n), flags=cv2.INTER_LINEAR)
        return np.clip(self.bg * (1 - alpha[..., None]) + fg, 0, 1), alpha

    def video(self) -> Video:
        frames = [Image(self.draw(i)[0]) for i in range(self.frames)]  # decoding is not timed
        return Video.from_frames(frames, 24.0)


def build_model(folder: Path, size: int) -> Path:
    """SegFormer-B0's shape (3.7 M parameters) with random weights and two labels."""
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
    SegformerForSemanticSegmentation(cfg).save_pretrained(folder, safe_serialization=True)
    SegformerImageProcessor(size={"height": size, "width": size}).save_pretrained(folder)
    return folder


def read_all(video: Video) -> tuple[float, list[np.ndarray]]:
    t0 = time.perf_counter()
    masks = [video.frame(i).data[..., 0] for i in range(len(video))]
    return time.perf_counter() - t0, masks


def _print_table(
    args: argparse.Namespace, rows: list[dict], torch_version: str, threads: int
) -> None:
    """The rows as the Markdown table BENCHMARKS.md quotes (and as JSON with --json)."""
    print(
        f"# video.segment, {args.frames} frames {args.size}×{args.size}, "
        f"{platform.processor() or platform.machine()}, torch {torch_version} "
        f"({threads} threads)"
    )
    print("| row | keyframes | ms/frame | speedup | IoU against | mean IoU | min IoU |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        sp = "–" if r["speedup"] is None else f"{r['speedup']:.2f}×"
        print(
            f"| {r['row']} | {r['keyframes']} | {r['ms_per_frame']:.1f} | {sp} | "
            f"{r['iou_vs']} | {r['mean_iou']:.3f} | {r['min_iou']:.3f} |"
        )
    if args.json:
        args.json.write_text(
            json.dumps({"frames": args.frames, "size": args.size, "rows": rows}, indent=2)
        )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=48)
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()

    import torch

    reg = Registry()
    reg.load_builtin()
    ex = Executor(reg)
    opts = RunOptions(device="cpu")
    clip = Clip(args.size, args.frames)
    truth = [clip.draw(i)[1] for i in range(args.frames)]
    rows: list[dict] = []
    with tempfile.TemporaryDirectory() as tmp:
        model = str(build_model(Path(tmp) / "segformer", args.size))

        def seg(interval: int) -> tuple[float, list[np.ndarray]]:
            out = ex.call(
                "video.segment",
                {"video": clip.video()},
                {"model": model, "labels": "object", "interval": interval},
                opts,
            )
            return read_all(out["mask"])

        seg(args.frames)  # load the model and warm up outside the timings
        base_s, base = seg(1)
        for k in (1, 4, 8):
            s, masks = (base_s, base) if k == 1 else seg(k)
            ious = [fl.iou(a, b) for a, b in zip(masks, base, strict=True)]
            rows.append(
                {
                    "row": f"model, interval {k}",
                    "keyframes": math.ceil(args.frames / k),
                    "ms_per_frame": 1000 * s / args.frames,
                    "speedup": base_s / s,
                    "iou_vs": "per-frame model",
                    "mean_iou": float(np.mean(ious)),
                    "min_iou": float(min(ious)),
                }
            )

    for k, preset in ((4, "sharp"), (8, "sharp"), (8, "medium")):
        frames = clip.video()
        masks = fl.PropagatedMasks(
            args.frames, lambda i, v=frames: v.frame(i).data, lambda i: truth[i], k, preset
        )
        t0 = time.perf_counter()
        got = [masks(i) for i in range(args.frames)]
        s = time.perf_counter() - t0
        ious = [fl.iou(a, b) for a, b in zip(got, truth, strict=True)]
        rows.append(
            {
                "row": f"oracle keyframes, interval {k} ({preset})",
                "keyframes": masks.keyframe_count(),
                "ms_per_frame": 1000 * s / args.frames,
                "speedup": None,
                "iou_vs": "true mask",
                "mean_iou": float(np.mean(ious)),
                "min_iou": float(min(ious)),
            }
        )
    out = ex.call(
        "video.segment",
        {"video": clip.video(), "mask": Mask(truth[0])},
        {"backend": "propagate"},
        opts,
    )
    s, got = read_all(out["mask"])
    ious = [fl.iou(a, b) for a, b in zip(got, truth, strict=True)]
    rows.append(
        {
            "row": "propagate (first-frame mask only)",
            "keyframes": 1,
            "ms_per_frame": 1000 * s / args.frames,
            "speedup": None,
            "iou_vs": "true mask",
            "mean_iou": float(np.mean(ious)),
            "min_iou": float(min(ious)),
        }
    )

    _print_table(args, rows, torch.__version__, torch.get_num_threads())


if __name__ == "__main__":
    main()
