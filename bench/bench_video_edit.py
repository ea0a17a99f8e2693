"""Video edit benchmark (issue 8): object-centric acceleration against the plain video edit.

Run: python bench/bench_video_edit.py [--frames 16] [--size 256] [--only NAME ...]
     [--json out/bench/video_edit.json]

Every configuration runs `generate.video_edit` through the executor, in one process, on the
SD-1.5-shaped mini model (engine/accel/benchmodel.py, random weights, built into
out/bench/model on first use) editing a clip the script draws: a textured 120×120 square (22 %
of a 256×256 frame) sliding 4 px a frame over a smooth background, with the square as the
foreground mask. The baseline is the node with every acceleration off (anchor attention on, as
the node always runs); PSNR is measured against it inside the foreground mask (and outside,
for information). A report, not a test: the shared CPU is noisy, so every configuration runs
once per repetition, interleaved, and the best time of each counts.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fathom.engine.context import RunOptions
from fathom.engine.executor import Executor
from fathom.engine.registry import Registry
from fathom.engine.types import Image, Video

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "out" / "bench"
BASE = {
    "prompt": "a plate of pasta with basil",
    "negative_prompt": "blurry",
    "steps": 20,
    "strength": 0.8,
    "guidance": 7.5,
    "seed": 3,
    "frames_per_batch": 4,
}
AGGRESSIVE_MERGE = {"merge_bg": 0.9, "temporal_merge": True, "merge_levels": 2}
DEEP_MERGE = {"merge_bg": 0.95, "temporal_merge": True, "merge_levels": 3}
FEW_BG_STEPS = {"bg_steps": 2, "feather": 1, "crop_margin": 2}
CONFIGS: dict[str, dict[str, Any]] = {
    "baseline (acceleration off)": {},
    "merging: bg 0.9 + temporal, 2 levels": AGGRESSIVE_MERGE,
    "sampling: 2 bg steps": FEW_BG_STEPS,
    "merging + sampling": {**AGGRESSIVE_MERGE, **FEW_BG_STEPS},
    "merging + sampling + clockwork across frames": {
        **AGGRESSIVE_MERGE,
        **FEW_BG_STEPS,
        "clock_frames": True,
    },
    "merging + sampling: 8 bg steps": {**AGGRESSIVE_MERGE, **FEW_BG_STEPS, "bg_steps": 8},
    "merging 0.95, 3 levels + clockwork across steps p5 w3": {
        **DEEP_MERGE,
        "clock_period": 5,
        "clock_warmup": 3,
    },
    "merging 0.95, 3 levels + clockwork across steps p8 w2": {
        **DEEP_MERGE,
        "clock_period": 8,
        "clock_warmup": 2,
    },
}


def make_clip(
    n: int, size: int, square: int = 120, step: int = 4
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    import cv2

    rng = np.random.default_rng(0)
    bg = cv2.resize(
        rng.random((size // 16, size // 16, 3)).astype(np.float32),
        (size, size),
        interpolation=cv2.INTER_CUBIC,
    ).clip(0, 1)
    tex = cv2.resize(
        rng.random((square // 4, square // 4, 3)).astype(np.float32),
        (square, square),
        interpolation=cv2.INTER_NEAREST,
    )
    frames, masks = [], []
    y = (size - square) // 2
    for i in range(n):
        f, m = bg.copy(), np.zeros((size, size), np.float32)
        x = size // 8 + step * i
        f[y : y + square, x : x + square] = tex
        m[y : y + square, x : x + square] = 1.0
        frames.append(f)
        masks.append(m)
    return frames, masks


def psnr_in(a: np.ndarray, b: np.ndarray, mask: np.ndarray) -> float:
    w = np.broadcast_to(mask[..., None], a.shape).astype(bool)
    mse = float(np.mean((a[w].astype(np.float64) - b[w]) ** 2))
    return float("inf") if mse == 0 else 10 * np.log10(1.0 / mse)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=16)
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--reps", type=int, default=2, help="interleaved repetitions (best kept)")
    ap.add_argument("--only", nargs="*", help="configuration names (substrings) to run")
    ap.add_argument(
        "--scheduler",
        default="default",
        help="sampler of every configuration (default: the node's, DDIM)",
    )
    ap.add_argument("--json", default=str(OUT / "video_edit.json"))
    args = ap.parse_args()

    import torch

    from fathom.engine.diffusion.minimodels import BENCH, save_model

    model = OUT / "model"
    if not (model / "model_index.json").is_file():
        save_model(model, BENCH)
    frames, masks = make_clip(args.frames, args.size)
    video = Video.from_frames([Image(f) for f in frames], fps=12)
    mask = Video.from_frames([Image(m) for m in masks], fps=12)
    reg = Registry()
    reg.load_builtin()
    ex = Executor(reg)
    opts = RunOptions(device="cpu", output_dir=OUT, base_dir=ROOT)
    configs = {
        k: v
        for k, v in CONFIGS.items()
        if k.startswith("baseline") or not args.only or any(o in k for o in args.only)
    }
    load0 = os.getloadavg()[0]
    base = {**BASE, "scheduler": args.scheduler}
    ex.call(
        "generate.video_edit",
        {"video": video.slice(0, 2)},
        {**base, "model": str(model), "steps": 2},
        opts,
    )  # load the model, warm up
    rows: list[dict[str, Any]] = []
    fg = np.stack(masks) > 0.5
    times: dict[str, list[float]] = {k: [] for k in configs}
    outputs: dict[str, np.ndarray] = {}
    for rep in range(args.reps):  # interleaved: load from other processes hits every config
        for name, extra in configs.items():
            t0 = time.perf_counter()
            out = ex.call(
                "generate.video_edit",
                {"video": video, "mask": mask},
                {**base, "model": str(model), **extra},
                opts,
            )["video"]
            got = np.stack([f.data for f in out])
            times[name].append(time.perf_counter() - t0)
            outputs.setdefault(name, got)
            print(f"rep {rep + 1}: {name:48s} {times[name][-1]:7.1f} s", flush=True)
    base_frames = outputs[next(iter(configs))]
    base_t = min(times[next(iter(configs))])
    for name, extra in configs.items():
        got = outputs[name]
        rows.append(
            {
                "config": name,
                "params": extra,
                "seconds": min(times[name]),
                "times": times[name],
                "speedup": base_t / min(times[name]),
                "psnr_fg": psnr_in(got, base_frames, fg),
                "psnr_bg": psnr_in(got, base_frames, ~fg),
            }
        )
    info = {
        "machine": platform.platform(),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "load_start": load0,
        "load_end": os.getloadavg()[0],
        "frames": args.frames,
        "size": args.size,
        "settings": base,
        "command": "python bench/bench_video_edit.py " + " ".join(sys.argv[1:]),
    }
    print(
        f"\nbest of {args.reps} interleaved; "
        f"{args.frames} frames {args.size}², steps {BASE['steps']} × strength "
        f"{BASE['strength']}, guidance {BASE['guidance']}; load {load0:.1f} → "
        f"{info['load_end']:.1f}\n"
    )
    print("| config | s | speed-up | PSNR in mask | PSNR outside |\n|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['config']} | {r['seconds']:.1f} | {r['speedup']:.2f}× | "
            f"{r['psnr_fg']:.1f} dB | {r['psnr_bg']:.1f} dB |"
        )
    path = Path(args.json)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"info": info, "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
