"""Loading Stable Video Diffusion (image-to-video) models and placing them on a device.

A source is a diffusers folder whose ``model_index.json`` names a
``StableVideoDiffusionPipeline`` (image encoder, spatio-temporal UNet, temporal-decoder VAE,
scheduler, feature extractor); weights load from safetensors only. Placement follows the
Stable Diffusion loader: on CUDA the whole model goes to the GPU when it fits, else model CPU
offload, else sequential offload; CPU and MPS load everything on the device.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fathom.engine.models.diffusion import ALLOWED_LIBRARIES, diffusers_dtype
from fathom.engine.models.locate import ModelError, weights_variant
from fathom.engine.models.memory import is_oom, place_pipeline

KIND = "diffusers-svd"
PIPELINE = "StableVideoDiffusionPipeline"
EXAMPLE = "stabilityai/stable-video-diffusion-img2vid-xt"


@dataclass(eq=False)
class SVDModel:
    """A loaded pipeline and how it was placed (for the run report)."""

    pipe: Any
    device: str
    dtype: Any
    offload: str
    source: str


def check_folder(path: Path) -> dict[str, Any]:
    """The folder's model index, or a ModelError saying why this is no SVD model: found early,
    before any weights are read."""
    if path.is_file():
        raise ModelError(
            f"{path.name} is a single file; Stable Video Diffusion loads from a "
            f"diffusers folder. Fix: point the node at the model's folder (e.g. "
            f"`fathom models pull {EXAMPLE}`)."
        )
    index_file = path / "model_index.json"
    if not index_file.is_file():
        raise ModelError(
            f"{path} is not a diffusers pipeline folder (no model_index.json). "
            "Fix: point the node at the Stable Video Diffusion model's top folder."
        )
    try:
        index = json.loads(index_file.read_text("utf-8"))
    except (OSError, ValueError) as exc:
        raise ModelError(f"{index_file} cannot be read: {exc}") from exc
    name = index.get("_class_name")
    if name != PIPELINE:
        raise ModelError(
            f"{path} is a {name} model, not Stable Video Diffusion "
            f"({PIPELINE}). Fix: choose an image-to-video model such as {EXAMPLE}."
        )
    for part, spec in index.items():
        if part.startswith("_") or not isinstance(spec, list) or spec[0] is None:
            continue
        if spec[0] not in ALLOWED_LIBRARIES:
            raise ModelError(
                f"{path}: component '{part}' comes from {spec[0]!r}; Fathom loads "
                "components from diffusers and transformers only (no remote code)."
            )
    return index


def load_svd(path: Path, device: str, dtype: str, offload: str = "auto") -> SVDModel:
    """Load an SVD folder (safetensors only) and place it on ``device``."""
    import torch
    from diffusers import StableVideoDiffusionPipeline

    check_folder(path)
    tdtype = getattr(torch, dtype) if isinstance(dtype, str) else dtype
    try:
        variant = {"variant": v} if (v := weights_variant(path / "unet")) else {}
        pipe = StableVideoDiffusionPipeline.from_pretrained(
            path, use_safetensors=True, local_files_only=True, **diffusers_dtype(tdtype), **variant
        )
    except Exception as exc:
        if is_oom(exc):
            raise
        raise ModelError(
            f"{path} could not be loaded as Stable Video Diffusion: "
            f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
        ) from exc
    pipe.set_progress_bar_config(disable=True)
    for m in (pipe.image_encoder, pipe.unet, pipe.vae):
        m.eval().requires_grad_(False)
    mode = place(pipe, device, offload)
    return SVDModel(pipe, device, tdtype, mode, str(path))


def loader(device: str, dtype: str, offload: str = "auto") -> Any:
    """A ``ctx.load_model`` loader for ``generate.image_to_video``."""
    return lambda path: load_svd(path, device, dtype, offload)


def place(pipe: Any, device: str, offload: str = "auto") -> str:
    """Everything on the device when it fits; else diffusers' model or sequential CPU offload
    (the pipeline's own hooks, in its image_encoder -> unet -> vae order)."""
    return place_pipeline(pipe, [pipe.image_encoder, pipe.unet, pipe.vae], device, offload)
