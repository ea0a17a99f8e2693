"""Loading Shap-E (text or image to 3D) models and placing them on a device.

A source is a diffusers folder whose ``model_index.json`` names a ``ShapEPipeline`` (CLIP text
encoder with projection, tokenizer) or a ``ShapEImg2ImgPipeline`` (CLIP vision encoder, image
processor), both with the prior transformer, the Heun scheduler and the Shap-E renderer (the
latent-to-implicit-function projection, its MLP and the marching-cubes mesh decoder). Weights
load from safetensors only. Placement is the other loaders': the whole model on the device
when it fits, else diffusers' model or sequential CPU offload (the renderer always stays on
the device: diffusers keeps it out of offload).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fathom.engine.models.diffusion import check_libraries, load_pipeline, read_pipeline_index
from fathom.engine.models.locate import ModelError
from fathom.engine.models.memory import place_pipeline

KIND = "diffusers-shap-e"
TEXT_PIPELINE = "ShapEPipeline"
IMAGE_PIPELINE = "ShapEImg2ImgPipeline"
TEXT_EXAMPLE = "openai/shap-e"
IMAGE_EXAMPLE = "openai/shap-e-img2img"
#: The renderer is a class of diffusers' own Shap-E pipeline module, which the index names by
#: that module: the one component library besides diffusers and transformers allowed here.
RENDERER = ["shap_e", "ShapERenderer"]


@dataclass(eq=False)
class ShapEModel:
    """A loaded pipeline, whether it takes images (else text), and how it was placed."""

    pipe: Any
    image: bool
    device: str
    dtype: Any
    offload: str
    source: str


def check_folder(path: Path) -> dict[str, Any]:
    """The folder's model index, or a ModelError saying why this is no Shap-E model: found
    early, before any weights are read."""
    index = read_pipeline_index(path, "Shap-E", TEXT_EXAMPLE)
    name = index.get("_class_name")
    if name not in (TEXT_PIPELINE, IMAGE_PIPELINE):
        raise ModelError(
            f"{path} is a {name} model, not Shap-E ({TEXT_PIPELINE} or {IMAGE_PIPELINE}). "
            f"Fix: choose a Shap-E model such as {TEXT_EXAMPLE} or {IMAGE_EXAMPLE}."
        )
    check_libraries(path, index, exempt={"shap_e_renderer": RENDERER})
    return index


def load_shap_e(path: Path, device: str, dtype: Any, offload: str = "auto") -> ShapEModel:
    """Load a Shap-E folder (safetensors only) and place it on ``device``."""
    import torch
    from diffusers import ShapEImg2ImgPipeline, ShapEPipeline

    image = check_folder(path).get("_class_name") == IMAGE_PIPELINE
    tdtype = getattr(torch, dtype) if isinstance(dtype, str) else dtype
    cls = ShapEImg2ImgPipeline if image else ShapEPipeline
    # openai/shap-e ships its safetensors as the fp16 variant only (beside pickled .bin files).
    pipe = load_pipeline(cls, path, tdtype, "Shap-E", "prior")
    for m in (encoder(pipe, image), pipe.prior, pipe.shap_e_renderer):
        m.eval().requires_grad_(False)
    mode = place(pipe, image, device, offload)
    return ShapEModel(pipe, image, device, tdtype, mode, str(path))


def encoder(pipe: Any, image: bool) -> Any:
    """The conditioning encoder: CLIP vision for image-to-3D, CLIP text for text-to-3D."""
    return pipe.image_encoder if image else pipe.text_encoder


def place(pipe: Any, image: bool, device: str, offload: str = "auto") -> str:
    """Everything on the device when it fits; else diffusers' model or sequential CPU offload
    (the pipeline's own hooks: encoder, then prior; the renderer stays on the device)."""
    modules = [encoder(pipe, image), pipe.prior, pipe.shap_e_renderer]
    return place_pipeline(pipe, modules, device, offload)


def loader(device: str, dtype: Any, offload: str = "auto") -> Any:
    """A ``ctx.load_model`` loader for ``generate.text_to_3d`` and ``generate.image_to_3d``."""
    return lambda path: load_shap_e(path, device, dtype, offload)
