"""MobileVD benchmark (issue 16): generate.image_to_video's switches against plain SVD.

Run: python bench/bench_mobilevd.py [--frames 14] [--width 192] [--height 128] [--steps 10]
     [--image PHOTO] [--json out/bench/mobilevd.json]

Every row runs `generate.image_to_video` through the executor, in one process, on the
SVD-shaped mini model (engine/diffusion/svd_minimodels.py BENCH_SVD: SVD-xt's block layout at a
fifth of its width, random weights, built into out/bench/svd_mini on first use), animating a
real photo (scikit-image's rocket.jpg when found, else --image). The baseline is the node with
every switch off (equal to diffusers' StableVideoDiffusionPipeline); each row reports its time,
the speed-up, PSNR of its frames against the baseline's, and the UNet FLOPs of one denoising
step (torch's FLOP counter on the row's first UNet call: the row's size, frames, model and
bypassed blocks). "plain, other seed" is the scale for PSNR: the same model's clip from other
noise, i.e. what an unrelated clip scores on this random model. The pruned row uses a folder
`fathom prune-svd` writes (keep 0.5, calibrated on the same photo), whose UNet is not fine-tuned.
The skip rows bypass temporal blocks by a ranking measured once on the photo (one unguided step,
each block bypassed alone) and saved with the model, as `fathom prune-svd` saves one.
A report, not a test: one run per row, the machine load is printed.

What PSNR can say here: with random weights the clip is a chaotic function of the initial noise
(a trained SVD's is dominated by the conditioning image), so every switch that changes the
sampling grid (size, frames, steps, widths) lands at the other-seed scale (~18 dB), also when
its noise is derived from the plain run's (pooled or keyframe-sampled: tried, +0.3 dB). Their
correctness is what the identity tests check; their fidelity needs a trained SVD. Bypassing
temporal blocks keeps the grid and the noise, so its PSNR is meaningful on this model.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fathom.engine.executor import Executor
from fathom.engine.registry import Registry
from fathom.engine.types import Image

OUT = Path("out/bench")
from fathom.engine.diffusion.mobilevd import read_ranking  # noqa: E402
from fathom.engine.diffusion.mobilevd import skipping as SKIPPED_REAL  # noqa: E402


def photo(path: str | None, width: int, height: int) -> tuple[Image, str]:
    """The input photo, resized to the run's size."""
    from PIL import Image as PILImage

    candidates = [path] if path else []
    try:
        import skimage

        candidates.append(str(Path(skimage.__file__).parent / "data" / "rocket.jpg"))
    except ImportError:
        pass
    candidates.append(
        "/root/.pyenv/versions/3.11.7/lib/python3.11/site-packages/skimage/data/rocket.jpg"
    )
    for c in candidates:
        if c and Path(c).is_file():
            im = PILImage.open(c).convert("RGB").resize((width, height), PILImage.BICUBIC)
            return Image(np.asarray(im, np.float32) / 255.0), c
    raise SystemExit("no photo found: pass --image PHOTO")


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return float("inf") if mse == 0 else 10 * np.log10(1.0 / mse)


def frames_of(video: Any) -> np.ndarray:
    return np.stack([f.data for f in video])


class FirstCall:
    """Keeps the first UNet call of a run (for its FLOPs)."""

    def __init__(self) -> None:
        self.call: Any = None

    def hook(self, _m: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        if self.call is None:
            self.call = (args, kwargs)


SKIPPED: list[list[str]] = []


def record_skips() -> None:
    """Note the temporal blocks each run bypasses (the node's own choice)."""
    from fathom.engine.diffusion import mobilevd

    real = mobilevd.skipping

    def noting(unet: Any, names: list[str]) -> Any:
        SKIPPED.append(list(names))
        return real(unet, names)

    mobilevd.skipping = noting  # type: ignore[assignment]


def unet_step_flops(ex: Executor, model: str, call: Any, names: list[str]) -> float:
    """GFLOPs of the recorded UNet call, with the row's bypassed temporal blocks."""
    from fathom.engine.diffusion.mobilevd import unet_flops

    m = next(e.model for e in ex.models.entries() if e.model.source == model)
    with SKIPPED_REAL(m.pipe.unet, names):
        return unet_flops(m.pipe.unet, *call) / 1e9


def run_row(ex: Executor, image: Image, model: str, params: dict[str, Any]) -> dict[str, Any]:
    """One timed node call; the first UNet call is kept for the FLOP count."""
    m = [e.model for e in ex.models.entries() if e.model.source == model]
    first = FirstCall()
    handle = m[0].pipe.unet.register_forward_pre_hook(first.hook, with_kwargs=True) if m else None
    t0 = time.perf_counter()
    video = ex.call("generate.image_to_video", {"image": image}, {"model": model, **params})[
        "video"
    ]
    seconds = time.perf_counter() - t0
    if handle is not None:
        handle.remove()
    return {"frames": frames_of(video), "seconds": seconds, "call": first.call}


def rank_base(base: Path, image_path: str, args: argparse.Namespace) -> None:
    """Rank the base model's temporal blocks once (one unguided step on the photo) and save
    the ranking with it, as `fathom prune-svd` does for the models it writes: the skip rows
    then use the saved ranking instead of calibrating per run."""
    import torch
    from PIL import Image as PILImage

    from fathom.engine.diffusion.mobilevd import CapturedCalls, rank_temporal_blocks, write_ranking
    from fathom.engine.models.svd import load_svd

    pipe = load_svd(base, "cpu", "float32", "none").pipe
    capture = CapturedCalls(pipe.unet)
    with torch.no_grad(), capture.attached():
        pipe(
            PILImage.open(image_path).convert("RGB"),
            height=args.height,
            width=args.width,
            num_frames=args.frames,
            num_inference_steps=1,
            max_guidance_scale=1.0,
            output_type="latent",
        )
    with torch.no_grad():
        ranking = rank_temporal_blocks(pipe.unet, capture.calls)
    write_ranking(base, ranking, calibration="bench_mobilevd.py: 1 unguided step on the photo")


def ensure_models(args: argparse.Namespace, image_path: str) -> tuple[Path, Path]:
    """The mini SVD and its pruned copy (built once, kept under out/bench)."""
    from fathom.engine.diffusion.svd_minimodels import BENCH_SVD, save_svd_model

    base = (OUT / "svd_mini").resolve()
    if not (base / "model_index.json").is_file():
        save_svd_model(base, BENCH_SVD, seed=0)
    if not read_ranking(base):
        t0 = time.perf_counter()
        rank_base(base, image_path, args)
        print(f"temporal ranking of the base model: {time.perf_counter() - t0:.0f} s")
    pruned = (OUT / "svd_mini_pruned50").resolve()
    if not (pruned / "model_index.json").is_file():
        from PIL import Image as PILImage

        from fathom.engine.models.svd_prune import prune_svd

        t0 = time.perf_counter()
        image = PILImage.open(image_path).convert("RGB")
        report = prune_svd(
            base, pruned, 0.5, image, width=args.width, height=args.height, frames=args.frames
        )
        print("\n".join(report.lines()), f"(pruning took {time.perf_counter() - t0:.0f} s)")
    return base, pruned


def rows(args: argparse.Namespace, base: str, pruned: str) -> list[tuple[str, str, dict[str, Any]]]:
    few = {"scheduler": "consistency", "steps": 2, "max_guidance": 1.0}
    return [
        ("plain (all off)", base, {}),
        ("plain, other seed (PSNR scale)", base, {"seed": 1}),
        ("sample_scale 0.5, upsample latents", base, {"sample_scale": 0.5}),
        ("sample_scale 0.5, upsample frames", base, {"sample_scale": 0.5, "upsample": "frames"}),
        ("frame_stride 2", base, {"frame_stride": 2}),
        ("skip_temporal 0.25 (saved ranking)", base, {"skip_temporal": 0.25}),
        ("skip_temporal 0.5 (saved ranking)", base, {"skip_temporal": 0.5}),
        ("skip_temporal 0.75 (saved ranking)", base, {"skip_temporal": 0.75}),
        ("pruned model, keep 0.5", pruned, {}),
        ("consistency sampler, 2 steps, no CFG", base, few),
        (
            "combined: scale 0.5 + stride 2 + skip 0.25",
            base,
            {"sample_scale": 0.5, "frame_stride": 2, "skip_temporal": 0.25},
        ),
        (
            "combined, frames upsampled",
            base,
            {"sample_scale": 0.5, "upsample": "frames", "frame_stride": 2, "skip_temporal": 0.25},
        ),
    ]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--frames", type=int, default=14)
    ap.add_argument("--width", type=int, default=192)
    ap.add_argument("--height", type=int, default=128)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--image")
    ap.add_argument("--json", default=str(OUT / "mobilevd.json"))
    args = ap.parse_args()
    import torch

    record_skips()
    load0 = os.getloadavg()[0]
    image, image_path = photo(args.image, args.width, args.height)
    base, pruned = ensure_models(args, image_path)
    reg = Registry()
    reg.load_builtin()
    ex = Executor(reg)
    common = {
        "frames": args.frames,
        "width": args.width,
        "height": args.height,
        "steps": args.steps,
        "seed": 0,
        "decode_chunk_size": 0,
    }
    # Load both models before timing.
    for model in (str(base), str(pruned)):
        ex.call("generate.image_to_video", {"image": image}, {"model": model, **common, "steps": 1})
    results = []
    ref = None
    for name, model, params in rows(args, str(base), str(pruned)):
        p = {**common, **params}
        r = run_row(ex, image, model, p)
        with torch.no_grad():
            gflops = unet_step_flops(ex, model, r["call"], SKIPPED[-1])
        if ref is None:
            ref = r
        results.append(
            {
                "row": name,
                "seconds": round(r["seconds"], 2),
                "speedup": round(ref["seconds"] / r["seconds"], 2),
                "psnr_db": round(psnr(r["frames"], ref["frames"]), 2),
                "unet_gflops_per_step": round(gflops, 2),
                "flops_ratio": None,
            }
        )
        results[-1]["flops_ratio"] = round(results[0]["unet_gflops_per_step"] / gflops, 2)
        print(results[-1], flush=True)
    load1 = os.getloadavg()[0]
    print(
        f"\n{args.frames} frames at {args.width}x{args.height}, {args.steps} steps (Euler, "
        f"guidance 1->3), photo {image_path}; load "
        f"{load0:.1f} -> {load1:.1f}\n"
    )
    print("| row | time (s) | speed-up | PSNR vs plain (dB) | UNet GFLOPs/step | FLOPs ratio |")
    print("|---|---|---|---|---|---|")
    for r in results:
        print(
            f"| {r['row']} | {r['seconds']:.1f} | {r['speedup']:.2f}× | {r['psnr_db']:.1f} | "
            f"{r['unet_gflops_per_step']:.2f} | {r['flops_ratio']:.2f}× |"
        )
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(
        json.dumps({"args": vars(args), "load": [load0, load1], "rows": results}, indent=1)
    )


if __name__ == "__main__":
    main()
