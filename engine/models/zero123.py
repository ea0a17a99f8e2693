"""Loading Zero123-family (Zero-1-to-3) novel-view models from their diffusers-layout folders.

Why a loader of its own: diffusers itself has no Zero123 pipeline, and the published folders
name their pose projection as a class from a pipeline file of their own: ``cc_projection/``
(``["pipeline_zero1to3", "CCProjection"]``, key ``projection.weight``; ``kxic/zero123-xl``,
whose safetensors copy is on its ``refs/pr/1`` branch) or ``clip_camera_projection/``
(``CLIPCameraProjection``, key ``proj.weight``; ``bennyguo/zero123-xl-diffusers`` and
``ashawkey/zero123-xl-diffusers``, class ``Zero123Pipeline``). Fathom never imports those
files: the projection is one linear layer (CLIP image embedding + 4 pose numbers -> embedding
width), so it is built here from the shapes of its safetensors weights. The other parts are
standard classes loaded with safetensors only: ``unet/`` (UNet2DConditionModel, 8 input
channels: noise latents + the input view's latents), ``vae/`` (AutoencoderKL),
``image_encoder/`` (CLIPVisionModelWithProjection) and ``scheduler/`` (DDIM).

An optional ``aggregator/aggregator.safetensors`` holds trained weights for the multi-view
token aggregator (the VaLID idea; layout in ``AGGREGATOR_KEYS``); without it the
training-free, pose-derived aggregation of ``engine.diffusion.novel_view`` is used.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fathom.engine.models.diffusion import diffusers_dtype
from fathom.engine.models.locate import ModelError, weights_variant

KIND = "zero123"
EXAMPLE = "bennyguo/zero123-xl-diffusers"
#: Components every Zero123 folder has, and the libraries their classes may come from.
REQUIRED = ("unet", "vae", "image_encoder", "scheduler")
#: The pose projection's folder, as each published layout names it.
PROJECTION_FOLDERS = ("cc_projection", "clip_camera_projection")
#: Weight files preferred in a projection folder (full precision, not an EMA or fp16 copy).
PROJECTION_FILES = ("diffusion_pytorch_model.safetensors", "model.safetensors")
ALLOWED = {
    "unet": ("diffusers",),
    "vae": ("diffusers",),
    "scheduler": ("diffusers",),
    "image_encoder": ("transformers",),
}
#: The safetensors layout of a trained aggregator (D: the embedding width, K: its tokens):
#: ``queries`` K×D learned query tokens; ``pose_proj.weight`` D×4 (+ ``pose_proj.bias`` D),
#: pose features into the embedding width, added to queries (the target's pose) and keys (each
#: view's pose); ``to_q``/``to_k``/``to_v``/``to_out`` ``.weight`` D×D (+ optional ``.bias``).
AGGREGATOR_KEYS = ("queries", "pose_proj.weight", "to_q.weight", "to_k.weight", "to_v.weight")
AGGREGATOR_FILE = Path("aggregator") / "aggregator.safetensors"


@dataclass(eq=False)
class Zero123Model:
    """The loaded parts, on one device, in one dtype."""

    unet: Any
    vae: Any
    image_encoder: Any
    scheduler: Any
    cc_projection: Any  # torch.nn.Linear, (D + 4) -> D
    aggregator: dict[str, Any] | None
    device: str
    dtype: Any
    source: str


def is_zero123_index(index: dict[str, Any]) -> bool:
    """A model index describes a Zero123-family pipeline: its class says so, or it has the
    pose projection no other pipeline has."""
    name = str(index.get("_class_name", ""))
    return (
        "Zero1to3" in name
        or name == "Zero123Pipeline"
        or any(p in index for p in PROJECTION_FOLDERS)
    )


def check_folder(path: Path) -> dict[str, Any]:
    """The folder's model index, or a ModelError saying why it is no Zero123 model (before
    any weights are read)."""
    if path.is_file():
        raise ModelError(
            f"{path.name} is a single file; Zero123 models load from a diffusers folder "
            f"(unet/, vae/, image_encoder/, cc_projection/, scheduler/). Fix: point the node "
            f"at the model's folder, e.g. `fathom models pull {EXAMPLE}`."
        )
    try:
        index = json.loads((path / "model_index.json").read_text("utf-8"))
    except (OSError, ValueError):
        raise ModelError(
            f"{path} is not a diffusers pipeline folder (no readable model_index.json). "
            "Fix: point the node at the Zero123 model's top folder."
        ) from None
    if not isinstance(index, dict) or not is_zero123_index(index):
        name = index.get("_class_name") if isinstance(index, dict) else None
        raise ModelError(
            f"{path} is a {name} model, not a Zero123-family one (no pose projection). "
            f"Fix: choose a novel-view model such as {EXAMPLE}."
        )
    for part in REQUIRED:
        if not (path / part).is_dir():
            raise ModelError(f"{path} has no {part}/ folder: a Zero123 model needs {REQUIRED}.")
    projection_folder(path)
    for part, libs in ALLOWED.items():
        spec = index.get(part)
        if isinstance(spec, list) and spec and spec[0] not in libs:
            raise ModelError(
                f"{path}: component '{part}' comes from {spec[0]!r}; Fathom loads it from "
                f"{' or '.join(libs)} only (no remote code)."
            )
    return index


def projection_folder(path: Path) -> Path:
    """The folder holding the pose projection, in either published layout."""
    for name in PROJECTION_FOLDERS:
        if (path / name).is_dir():
            return path / name
    raise ModelError(
        f"{path} has no pose projection ({' or '.join(PROJECTION_FOLDERS)}/): a Zero123 model "
        "projects the CLIP embedding and the pose to one token."
    )


def read_tensors(file: Path, device: str, dtype: Any) -> dict[str, Any]:
    """A safetensors file's tensors, moved to ``device`` and cast to ``dtype``."""
    from safetensors.torch import load_file

    return {k: v.to(device=device, dtype=dtype) for k, v in load_file(str(file)).items()}


def load_projection(folder: Path, device: str, dtype: Any) -> Any:
    """The pose projection as a Linear layer, from its folder's safetensors weights (its one
    2-D ``…weight`` and 1-D ``…bias``: ``projection.*``, ``proj.*`` or bare); its shape comes
    from the weights, not from the publisher's class."""
    import torch

    files = [folder / f for f in PROJECTION_FILES if (folder / f).is_file()]
    files += sorted(folder.glob("*.safetensors"))
    if not files:
        raise ModelError(
            f"{folder} holds no .safetensors weights (Fathom loads no pickle files). Fix: "
            "convert the projection's weights to safetensors."
        )
    tensors = read_tensors(files[0], device, dtype)
    weight = next((v for k, v in tensors.items() if k.endswith("weight") and v.ndim == 2), None)
    if weight is None:
        raise ModelError(f"{files[0]} holds no 2-D projection weight: {sorted(tensors)}")
    out_dim, in_dim = weight.shape
    bias = next((v for k, v in tensors.items() if k.endswith("bias") and v.ndim == 1), None)
    layer = torch.nn.Linear(in_dim, out_dim, bias=bias is not None, device=device, dtype=dtype)
    with torch.no_grad():
        layer.weight.copy_(weight)
        if bias is not None:
            layer.bias.copy_(bias)
    return layer.eval().requires_grad_(False)


def load_aggregator(path: Path, width: int, device: str, dtype: Any) -> dict[str, Any] | None:
    """A trained aggregator's tensors (``AGGREGATOR_KEYS``), or None when the folder has none."""
    file = path / AGGREGATOR_FILE
    if not file.is_file():
        return None
    tensors = read_tensors(file, device, dtype)
    missing = [k for k in AGGREGATOR_KEYS if k not in tensors]
    if missing:
        raise ModelError(f"{file} lacks {', '.join(missing)} (layout: {AGGREGATOR_KEYS}).")
    if tensors["queries"].ndim != 2 or tensors["queries"].shape[1] != width:
        raise ModelError(
            f"{file}: queries must be K×{width}, not {tuple(tensors['queries'].shape)}"
        )
    return tensors


def load_zero123(path: Path, device: str, dtype: Any) -> Zero123Model:
    """Load a Zero123 folder (safetensors only) onto ``device``."""
    import torch
    from diffusers import AutoencoderKL, DDIMScheduler, UNet2DConditionModel
    from transformers import CLIPVisionModelWithProjection

    index = check_folder(path)
    tdtype = getattr(torch, dtype) if isinstance(dtype, str) else dtype

    def variant(part: str) -> dict[str, Any]:
        return {"variant": v} if (v := weights_variant(path / part)) else {}

    try:
        kw = {"use_safetensors": True, **diffusers_dtype(tdtype)}
        unet = UNet2DConditionModel.from_pretrained(path / "unet", **kw, **variant("unet"))
        vae = AutoencoderKL.from_pretrained(path / "vae", **kw, **variant("vae"))
        encoder = CLIPVisionModelWithProjection.from_pretrained(
            path / "image_encoder", dtype=tdtype, use_safetensors=True, **variant("image_encoder")
        )
    except (OSError, ValueError, RuntimeError, KeyError) as exc:
        raise ModelError(
            f"{path} could not be loaded as a Zero123 model: {type(exc).__name__}: "
            f"{str(exc).splitlines()[0] if str(exc) else ''}"
        ) from exc
    import diffusers

    sched_name = (index.get("scheduler") or [None, "DDIMScheduler"])[1]
    sched_cls = getattr(diffusers, str(sched_name), None) or DDIMScheduler
    scheduler = sched_cls.from_pretrained(path / "scheduler")
    if int(unet.config.in_channels) != 2 * int(vae.config.latent_channels):
        raise ModelError(
            f"{path}: the UNet takes {unet.config.in_channels} channels; a Zero123 UNet takes "
            f"the noise and the input view's latents ({2 * vae.config.latent_channels})."
        )
    projection = load_projection(projection_folder(path), device, tdtype)
    width = int(projection.out_features)
    for m in (unet, vae, encoder):
        m.eval().requires_grad_(False)
    parts: list[Any] = [unet, vae, encoder]
    for part in parts:
        part.to(device)
    aggregator = load_aggregator(path, width, device, tdtype)
    return Zero123Model(
        unet, vae, encoder, scheduler, projection, aggregator, device, tdtype, str(path)
    )


def loader(device: str, dtype: str) -> Any:
    """A ``ctx.load_model`` loader for ``generate.novel_view``."""
    return lambda path: load_zero123(path, device, dtype)
