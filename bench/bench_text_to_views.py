"""Text to six views (issue 15): joint against independent generation, time and consistency.

Run: python bench/bench_text_to_views.py [--size 128] [--steps 20] [--prompts 2] [--reps 1]
     [--model out/bench/model] [--json out/bench/text_to_views.json]

The model is ``BENCH`` from engine/diffusion/minimodels.py (SD 1.5's layout at a fraction of its
width, random weights), built into out/bench/model on first use. Each row makes the six views
of ``generate.text_to_views`` for every prompt, as the node does: "independent" is six plain
generations (view k with its view prompt and seed + k; checked equal to diffusers'
StableDiffusionPipeline for the first view before any timing), "joint" one batch with the
couplings of ``engine.diffusion.joint_views`` at a given share, and three ablations turn on one
coupling each. Consistency is the photometric error of each view reprojected into the others
through the proxy sphere the cameras frame (``engine.geometry.consistency``): lower is more
consistent. Timings are the best of ``--reps``, rows interleaved.

The published peer, HexaGen3D, reports about 7 s per object (six views and the mesh) on a
datacentre GPU with its fine-tuned SDXL; its weights are not public, so it is quoted, not run.
With random weights the views show no object: the numbers say how much the couplings tie the
views together and what they cost, not how good the views look.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_generate import interleaved  # type: ignore[import-not-found]

from fathom.engine.diffusion import joint_views as jv
from fathom.engine.diffusion.loop import generate
from fathom.engine.diffusion.minimodels import BENCH, load_pipeline, save_model
from fathom.engine.geometry.consistency import reprojection_error, sphere_proxy
from fathom.engine.models.diffusion import load_components

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "out" / "bench"
PROMPTS = ["a red ceramic teapot", "a wooden chair", "a toy robot"]
GUIDANCE = 7.5
SEED = 1
FOV = 30.0
HEXAGEN3D_SECONDS = 7.0  # per object, published (Mercier et al., 2024)


def independent(comps: Any, prompt: str, size: int, steps: int) -> list[np.ndarray]:
    """Six plain generations, as the node makes them with ``joint`` off."""
    texts, seeds = jv.view_prompts(prompt), jv.view_seeds(SEED, len(jv.VIEWS))
    return [
        generate(comps, t, steps=steps, guidance=GUIDANCE, seed=s, width=size, height=size).images[
            0
        ]
        for t, s in zip(texts, seeds, strict=True)
    ]


def joint(
    comps: Any,
    prompt: str,
    size: int,
    steps: int,
    share: float,
    parts: tuple[str, ...] = ("attention", "noise", "sync"),
) -> list[np.ndarray]:
    """One batch of six with the chosen couplings at ``share`` (the node uses all three)."""
    cams = jv.view_cameras(size, size, FOV)
    f = comps.vae_scale_factor
    shape = (1, comps.latent_channels, size // f, size // f)
    noise_share = share if "noise" in parts else 0.0
    accel: list[Any] = []
    if "attention" in parts:
        accel.append(jv.JointAttention(len(cams), share))
    if "sync" in parts:
        accel.append(jv.ProxySync(cams, share))
    res = generate(
        comps,
        jv.view_prompts(prompt),
        steps=steps,
        guidance=GUIDANCE,
        seed=SEED,
        width=size,
        height=size,
        latents=jv.shared_noise(shape, SEED, cams, noise_share, comps.unet.dtype),
        accel=accel,
    )
    return [im[:, :, :3] for im in res.images]


def consistency(images: list[np.ndarray], size: int) -> tuple[float, float]:
    cams = jv.view_cameras(size, size, FOV)
    res = reprojection_error(images, [d.data for d in sphere_proxy(cams)], cams)
    return res.mae, res.psnr


def check_baseline(model: Path, comps: Any, size: int, steps: int) -> float:
    """The independent run's first view against diffusers' pipeline (max abs difference)."""
    pipe = load_pipeline(model)
    prompt = jv.view_prompts(PROMPTS[0])[0]
    ref = pipe(
        prompt,
        num_inference_steps=steps,
        guidance_scale=GUIDANCE,
        width=size,
        height=size,
        output_type="np",
        generator=torch.Generator().manual_seed(SEED),
    ).images[0]
    ours = generate(
        comps, prompt, steps=steps, guidance=GUIDANCE, seed=SEED, width=size, height=size
    ).images[0]
    return float(np.abs(ours - ref).max())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--prompts", type=int, default=2)
    ap.add_argument("--reps", type=int, default=1)
    ap.add_argument("--model", type=Path, default=OUT / "model")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    torch.manual_seed(0)
    if not (args.model / "model_index.json").exists():
        save_model(args.model, BENCH)
    comps = load_components(args.model, "cpu", "float32")
    diff = check_baseline(args.model, comps, args.size, args.steps)
    print(f"independent view 0 vs diffusers StableDiffusionPipeline: max |diff| {diff:.2e}")
    prompts = PROMPTS[: args.prompts]
    s, n = args.size, args.steps
    configs: dict[str, Callable[[], Any]] = {
        "independent (6 plain generations)": lambda: [independent(comps, p, s, n) for p in prompts],
        "joint, share 0.5": lambda: [joint(comps, p, s, n, 0.5) for p in prompts],
        "joint, share 1.0": lambda: [joint(comps, p, s, n, 1.0) for p in prompts],
        "attention only, 0.5": lambda: [
            joint(comps, p, s, n, 0.5, ("attention",)) for p in prompts
        ],
        "noise only, 0.5": lambda: [joint(comps, p, s, n, 0.5, ("noise",)) for p in prompts],
        "sync only, 0.5": lambda: [joint(comps, p, s, n, 0.5, ("sync",)) for p in prompts],
    }
    res = interleaved(configs, args.reps)
    base = res["independent (6 plain generations)"]
    base_err = float(np.mean([consistency(v, s)[0] for v in base["out"]]))
    table = [
        "| row | s / object | × independent time | consistency MAE | PSNR dB | "
        "× independent error |",
        "|---|---|---|---|---|---|",
    ]
    report: dict[str, Any] = {}
    for name, r in res.items():
        errs = [consistency(v, s) for v in r["out"]]
        mae = float(np.mean([e[0] for e in errs]))
        psnr = float(np.mean([e[1] for e in errs]))
        per_object = r["best"] / len(prompts)
        ratio_t = r["best"] / base["best"]
        table.append(
            f"| {name} | {per_object:.2f} | {ratio_t:.2f} | {mae:.4f} | {psnr:.2f} | "
            f"{mae / base_err:.2f} |"
        )
        report[name] = dict(seconds_per_object=per_object, mae=mae, psnr=psnr)
    table.append(
        f"| HexaGen3D (published, fine-tuned SDXL, GPU; not run) | {HEXAGEN3D_SECONDS:.1f} | "
        "– | – | – | – |"
    )
    print(
        f"\n{len(prompts)} prompts, {s}×{s}, {n} steps, guidance {GUIDANCE}, "
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"load {os.getloadavg()[0]:.2f}\n"
    )
    print("\n".join(table))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
