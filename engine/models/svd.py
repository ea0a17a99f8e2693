"""Loading Stable Video Diffusion (image-to-video) models and placing them on a device.

A source is a diffusers folder whose ``model_index.json`` names a
``StableVideoDiffusionPipeline`` (image encoder, spatio-temporal UNet, temporal-decoder VAE,
scheduler, feature extractor); weights load from safetensors only. Placement follows the
Stable Diffusion loader: on CUDA the whole model goes to the GPU when it fits, else model CPU
offload, else sequential offload; CPU and MPS load everything on the device.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fathom.engine.models.diffusion import check_libraries, load_pipeline, read_pipeline_index
from fathom.engine.models.locate import ModelError
from fathom.engine.models.memory import place_pipeline

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
    #: The sampler "default" means: the folder's own, or the consistency sampler when the
    #: folder is a few-step distilled checkpoint (engine.diffusion.fewstep_svd).
    default_scheduler: Any = None
    #: Temporal-block rankings from calibration runs, by what they were measured on.
    rankings: dict[Any, list[tuple[str, float]]] = field(default_factory=dict)


def check_folder(path: Path) -> dict[str, Any]:
    """The folder's model index, or a ModelError saying why this is no SVD model: found early,
    before any weights are read."""
    index = read_pipeline_index(path, "Stable Video Diffusion", EXAMPLE)
    name = index.get("_class_name")
    if name != PIPELINE:
        raise ModelError(
            f"{path} is a {name} model, not Stable Video Diffusion "
            f"({PIPELINE}). Fix: choose an image-to-video model such as {EXAMPLE}."
        )
    check_libraries(path, index)
    return index


def load_svd(path: Path, device: str, dtype: str, offload: str = "auto") -> SVDModel:
    """Load an SVD folder (safetensors only) and place it on ``device``."""
    import torch
    from diffusers import StableVideoDiffusionPipeline

    from fathom.engine.diffusion.fewstep_svd import (
        CONSISTENCY_NAMES,
        consistency_from_folder,
        folder_scheduler_name,
        known_to_diffusers,
        needs_consistency,
    )

    check_folder(path)
    tdtype = getattr(torch, dtype) if isinstance(dtype, str) else dtype
    # A consistency sampler named in the folder is one diffusers lacks (or has with the wrong
    # timestep scale for SVD): build ours in its place.
    extra = (
        {"scheduler": consistency_from_folder(path)}
        if folder_scheduler_name(path) in CONSISTENCY_NAMES
        else {}
    )
    with known_to_diffusers(path):
        pipe = load_pipeline(
            StableVideoDiffusionPipeline, path, tdtype, "Stable Video Diffusion", "unet", **extra
        )
    for m in (pipe.image_encoder, pipe.unet, pipe.vae):
        m.eval().requires_grad_(False)
    mode = place(pipe, device, offload)
    default = consistency_from_folder(path) if needs_consistency(path) else pipe.scheduler
    return SVDModel(pipe, device, tdtype, mode, str(path), default_scheduler=default)


def loader(device: str, dtype: str, offload: str = "auto") -> Any:
    """A ``ctx.load_model`` loader for ``generate.image_to_video``."""
    return lambda path: load_svd(path, device, dtype, offload)


def place(pipe: Any, device: str, offload: str = "auto") -> str:
    """Everything on the device when it fits; else diffusers' model or sequential CPU offload
    (the pipeline's own hooks, in its image_encoder -> unet -> vae order)."""
    return place_pipeline(pipe, [pipe.image_encoder, pipe.unet, pipe.vae], device, offload)
