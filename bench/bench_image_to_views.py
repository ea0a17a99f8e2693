"""Image-to-views benchmark (issue 15): six Zero123++ views in one tiled pass against six
separate single-view passes of the same UNet, beside the plain sampler without the reference.

Run: python bench/bench_image_to_views.py [--tile 128] [--steps 10] [--reps 2] [--json FILE]

The model is a random-weight Zero123++-shaped folder built on the SD-1.5-shaped mini model
(engine/diffusion/minimodels.py BENCH: its UNet, VAE and text encoder, plus a CLIP vision
encoder with projection, the two image processors and Zero123++'s v-prediction Euler-ancestral
scheduler), saved like a user's download and loaded through engine/models/zero123pp.py. Rows:

- one pass: the node's sampler, six views tiled 3×2, reference attention on, guidance 4;
- six passes: the same sampler on one view at a time (grid 1×1), six times, reference on;
- plain one pass: the sheet with the reference off (the plain guided sampler);
- diffusers plain: diffusers' StableDiffusionPipeline on the same UNet and conditioning (the
  plain peer; the official Zero123++ pipeline is remote code and is not run).

Timings are the best of ``--reps`` interleaved repetitions (each row once per repetition), of
the sampling only (encoding the condition is shared by every row, decoding costs the same
pixels either way).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from zero123pp_models import plain_sd_pipeline, save_zero123pp_rest  # noqa: E402

from fathom.engine.diffusion import views_sampler as vs  # noqa: E402
from fathom.engine.diffusion.minimodels import BENCH, build_components  # noqa: E402
from fathom.engine.models.zero123pp import load_zero123pp  # noqa: E402

GUIDANCE = 4.0


def build_model(folder: Path, tile: int, seed: int = 0) -> Path:
    """A Zero123++-shaped folder on the SD-1.5-shaped mini model's parts."""
    from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

    parts = build_components(BENCH, seed)
    for name in ("unet", "vae", "text_encoder", "tokenizer"):
        parts[name].save_pretrained(folder / name)
    torch.manual_seed(seed + 7)
    CLIPVisionModelWithProjection(
        CLIPVisionConfig(
            hidden_size=BENCH.cross_dim,
            projection_dim=BENCH.cross_dim,
            num_hidden_layers=4,
            num_attention_heads=8,
            intermediate_size=4 * BENCH.cross_dim,
            image_size=tile,
            patch_size=16,
        )
    ).save_pretrained(folder / "vision_encoder")
    save_zero123pp_rest(folder, tile)
    return folder


def rows(model: Any, tile: int, steps: int) -> dict[str, Callable[[], Any]]:
    import numpy as np

    rgb = np.random.default_rng(0).random((tile, tile, 3)).astype(np.float32)
    on = vs.condition(model, rgb, GUIDANCE, True, torch.Generator().manual_seed(1))
    off = vs.ViewsCondition(on.embeds, None, on.guided)

    def sample(cond: Any, grid: tuple[int, int], seed: int) -> Any:
        gen, ref = torch.Generator().manual_seed(seed), torch.Generator().manual_seed(seed + 1)
        return vs.sample_views(model, cond, tile, steps, GUIDANCE, gen, ref, grid=grid)

    def diffusers_plain() -> Any:
        if "pipe" not in cache:
            cache["pipe"] = plain_sd_pipeline(model)
        with torch.inference_mode():
            return cache["pipe"](
                prompt_embeds=off.embeds[1:],
                negative_prompt_embeds=off.embeds[:1],
                guidance_scale=GUIDANCE,
                height=3 * tile,
                width=2 * tile,
                num_inference_steps=steps,
                generator=torch.Generator().manual_seed(5),
                output_type="latent",
            ).images

    cache: dict[str, Any] = {}
    return {
        "one pass (6 views tiled, reference)": lambda: sample(on, (3, 2), 5),
        "six single-view passes (reference)": lambda: [sample(on, (1, 1), 5 + k) for k in range(6)],
        "plain one pass (no reference)": lambda: sample(off, (3, 2), 5),
        "diffusers plain (StableDiffusionPipeline)": diffusers_plain,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tile", type=int, default=128, help="pixels per view")
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--reps", type=int, default=2)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    torch.set_num_threads(max(1, os.cpu_count() or 1))
    with tempfile.TemporaryDirectory() as tmp:
        model = load_zero123pp(build_model(Path(tmp) / "zero123pp", args.tile), "cpu", "float32")
        todo = rows(model, args.tile, args.steps)
        results = {}
        for name, fn in todo.items():
            results[name] = fn()  # warm-up, and the outputs for the equality check
        best = {name: float("inf") for name in todo}
        for _ in range(args.reps):
            for name, fn in todo.items():
                t0 = time.perf_counter()
                fn()
                best[name] = min(best[name], time.perf_counter() - t0)
    plain, peer = (
        results["plain one pass (no reference)"],
        results["diffusers plain (StableDiffusionPipeline)"],
    )
    same = bool(torch.equal(plain, peer))
    base = best["one pass (6 views tiled, reference)"]
    print(
        f"\n{args.tile}² per view (sheet {2 * args.tile}×{3 * args.tile}), {args.steps} steps, "
        f"guidance {GUIDANCE}, CPU {platform.processor() or platform.machine()}, "
        f"torch threads {torch.get_num_threads()}"
    )
    print("| row | seconds | × one pass |\n|---|---|---|")
    for name, sec in best.items():
        print(f"| {name} | {sec:.2f} | {sec / base:.2f} |")
    print(f"\nplain one pass equals diffusers' pipeline: {same}")
    print(f"load: {os.getloadavg()}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(
            json.dumps(
                {
                    "tile": args.tile,
                    "steps": args.steps,
                    "seconds": best,
                    "plain_equals_diffusers": same,
                },
                indent=1,
            )
        )


if __name__ == "__main__":
    main()
