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

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fathom.engine.models.diffusion import ALLOWED_LIBRARIES, diffusers_dtype
from fathom.engine.models.locate import ModelError, weights_variant
from fathom.engine.models.memory import is_oom, place_pipeline

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
    if path.is_file():
        raise ModelError(
            f"{path.name} is a single file; Shap-E loads from a diffusers folder. Fix: point "
            f"the node at the model's folder (e.g. `fathom models pull {TEXT_EXAMPLE}`)."
        )
    index_file = path / "model_index.json"
    if not index_file.is_file():
        raise ModelError(
            f"{path} is not a diffusers pipeline folder (no model_index.json). "
            "Fix: point the node at the Shap-E model's top folder."
        )
    try:
        index = json.loads(index_file.read_text("utf-8"))
    except (OSError, ValueError) as exc:
        raise ModelError(f"{index_file} cannot be read: {exc}") from exc
    name = index.get("_class_name")
    if name not in (TEXT_PIPELINE, IMAGE_PIPELINE):
        raise ModelError(
            f"{path} is a {name} model, not Shap-E ({TEXT_PIPELINE} or {IMAGE_PIPELINE}). "
            f"Fix: choose a Shap-E model such as {TEXT_EXAMPLE} or {IMAGE_EXAMPLE}."
        )
    for part, spec in index.items():
        if part.startswith("_") or not isinstance(spec, list) or spec[0] is None:
            continue
        if part == "shap_e_renderer" and spec == RENDERER:
            continue
        if spec[0] not in ALLOWED_LIBRARIES:
            raise ModelError(
                f"{path}: component '{part}' comes from {spec[0]!r}; Fathom loads "
                "components from diffusers and transformers only (no remote code)."
            )
    return index


def load_shap_e(path: Path, device: str, dtype: Any, offload: str = "auto") -> ShapEModel:
    """Load a Shap-E folder (safetensors only) and place it on ``device``."""
    import torch
    from diffusers import ShapEImg2ImgPipeline, ShapEPipeline

    image = check_folder(path).get("_class_name") == IMAGE_PIPELINE
    tdtype = getattr(torch, dtype) if isinstance(dtype, str) else dtype
    cls = ShapEImg2ImgPipeline if image else ShapEPipeline
    # openai/shap-e ships its safetensors as the fp16 variant only (beside pickled .bin files).
    variant = {"variant": v} if (v := weights_variant(path / "prior")) else {}
    try:
        pipe = cls.from_pretrained(
            path,
            use_safetensors=True,
            local_files_only=True,
            **diffusers_dtype(tdtype),
            **variant,
        )
    except Exception as exc:
        if is_oom(exc):
            raise
        first = str(exc).splitlines()[0] if str(exc) else ""
        raise ModelError(
            f"{path} could not be loaded as Shap-E: {type(exc).__name__}: {first}"
        ) from exc
    pipe.set_progress_bar_config(disable=True)
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
