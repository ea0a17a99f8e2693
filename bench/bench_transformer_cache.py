"""Transformer family (SD3): diffusers' first-block cache against the plain pipeline.

Run: python bench/bench_transformer_cache.py [--reps 3] [--runs 256x20 512x12]
     [--thresholds 0.5 0.6 0.8] [--json out/bench/transformer_cache.json]

The model is SD 3.5 Medium's block layout at a fraction of its width (``BENCH_SD3`` in
engine/diffusion/minimodels.py: 12 joint blocks, 384 wide, head dim 64, dual attention in the
first 6, QK RMS norm; two small CLIP encoders, no T5, a calibrated 16-channel VAE; random
weights, built into out/bench/sd3_mini on first use) and runs through Fathom's loader and
``engine.diffusion.transformer.generate``, i.e. through diffusers' StableDiffusion3Pipeline.
Every configuration runs once per repetition, interleaved, so load from other processes hits
all alike; the table gives the median seconds per image (and the spread of the repetitions),
the speed-up against the plain run of the same size and steps, and PSNR against the plain run's
image. The thresholds are for this model: its
first block's residual changes by 0.42–0.57 (relative) from step to step, so nothing below
~0.45 is ever cached here; a trained model changes far less and caches at lower thresholds.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fathom.engine.diffusion.minimodels import BENCH_SD3, save_sd3_model
from fathom.engine.diffusion.transformer import generate
from fathom.engine.models.transformer import load_transformer_model

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "out" / "bench"
PROMPT = "a lighthouse on a cliff at dusk"
NEGATIVE = "blurry"


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return float("inf") if mse == 0 else 10 * np.log10(1.0 / mse)


def load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def model(folder: Path) -> Any:
    if not (folder / "model_index.json").is_file():
        save_sd3_model(folder, BENCH_SD3)
    return load_transformer_model(folder, "cpu", "float32")


def measure(m: Any, size: int, steps: int, thresholds: list[float], reps: int) -> list[dict]:
    """Interleaved repetitions of plain and each threshold at one size."""
    configs = [0.0, *thresholds]
    runs: dict[float, dict[str, Any]] = {t: {"times": [], "out": None} for t in configs}
    generate(m, PROMPT, NEGATIVE, steps=2, width=size, height=size)  # warm-up
    for _ in range(reps):
        for t in configs:
            t0 = time.perf_counter()
            out = generate(
                m,
                PROMPT,
                NEGATIVE,
                steps=steps,
                guidance=5.0,
                seed=1,
                width=size,
                height=size,
                cache_threshold=t,
            )
            runs[t]["times"].append(time.perf_counter() - t0)
            if runs[t]["out"] is None:
                runs[t]["out"] = out
    plain = statistics.median(runs[0.0]["times"])
    rows = []
    for t in configs:
        med = statistics.median(runs[t]["times"])
        out = runs[t]["out"]
        rows.append(
            {
                "size": size,
                "steps": steps,
                "threshold": t,
                "cached_steps": out.cached_steps,
                "seconds": med,
                "times": runs[t]["times"],
                "speedup": plain / med,
                "psnr": psnr(out.images, runs[0.0]["out"].images),
            }
        )
    return rows


def table(rows: list[dict]) -> str:
    lines = [
        "| size | steps | config | cached steps | s / image: median (range) | speed-up "
        "| PSNR vs plain |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        config = "plain" if r["threshold"] == 0 else f"first-block cache {r['threshold']:g}"
        quality = "–" if r["threshold"] == 0 else f"{r['psnr']:.1f} dB"
        lines.append(
            f"| {r['size']}² | {r['steps']} | {config} | {r['cached_steps']}/{r['steps']} | "
            f"{r['seconds']:.2f} ({min(r['times']):.2f}–{max(r['times']):.2f}) | "
            f"{r['speedup']:.2f}× | {quality} |"
        )
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--runs", nargs="+", default=["256x20", "512x12"], help="SIZExSTEPS")
    ap.add_argument("--thresholds", type=float, nargs="+", default=[0.5, 0.6, 0.8])
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()

    start, load_before = time.perf_counter(), load()
    m = model(OUT / "sd3_mini")
    width = (
        m.pipe.transformer.config.num_attention_heads * m.pipe.transformer.config.attention_head_dim
    )
    rows = []
    for run in args.runs:
        size, steps = (int(v) for v in run.split("x"))
        rows += measure(m, size, steps, args.thresholds, args.reps)
    print(
        f"machine: {platform.platform()}, {os.cpu_count()} cores, torch "
        f"{torch.__version__} ({torch.get_num_threads()} threads); model: "
        f"{len(m.pipe.transformer.transformer_blocks)} blocks × {width} wide, "
        f"{sum(p.numel() for p in m.pipe.transformer.parameters()) / 1e6:.1f} M parameters"
    )
    print(
        f"load average (1, 5, 15 min): {load_before} before, {load()} after; "
        f"{time.perf_counter() - start:.0f} s in all, {args.reps} repetitions\n"
    )
    print(table(rows))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
