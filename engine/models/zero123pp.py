"""Loading Zero123++ (one image to six views) folders and placing them on a device.

A Zero123++ download (``sudo-ai/zero123plus-v1.1`` or ``-v1.2``) is a diffusers folder whose
``model_index.json`` names a custom ``Zero123PlusPipeline``: ``unet/`` (an SD 2-shaped UNet,
v-prediction), ``vae/``, ``text_encoder/`` + ``tokenizer/`` (only the empty prompt is encoded),
``vision_encoder/`` (CLIP with projection: the global image condition),
``feature_extractor_clip/`` and ``feature_extractor_vae/`` (how the condition image is sized
and normalised for each), ``scheduler/``, and the per-token ``ramping_coefficients`` in the
index itself. Fathom never runs the pipeline's own code: each component loads through
diffusers or transformers from safetensors, and the sampling is Fathom's
(:mod:`fathom.engine.diffusion.views_sampler`).

The scheduler is rebuilt with trailing timestep spacing, as the model card's usage does.
Placement: everything on the device when it fits, else accelerate's model CPU offload (one
component on the GPU at a time) or sequential offload, as the Stable Diffusion loader does.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fathom.engine.models.diffusion import ALLOWED_LIBRARIES, _load_part, read_pipeline_index
from fathom.engine.models.families import identify
from fathom.engine.models.locate import ModelError
from fathom.engine.models.memory import is_oom, offload_mode

log = logging.getLogger("fathom.models")

KIND = "diffusers-zero123pp"
EXAMPLE = "sudo-ai/zero123plus-v1.2"
#: The components Fathom loads, by folder (the pipeline class lives in no library we load).
MODULES = ("unet", "vae", "text_encoder", "vision_encoder")
CONFIGS = ("tokenizer", "scheduler", "feature_extractor_clip", "feature_extractor_vae")


@dataclass(eq=False)
class Zero123PlusModel:
    """The loaded parts, the ramping coefficients (one weight per text token for the global
    image embedding) and how they were placed."""

    unet: Any
    vae: Any
    text_encoder: Any
    tokenizer: Any
    vision_encoder: Any
    feature_extractor_clip: Any
    feature_extractor_vae: Any
    scheduler: Any
    ramping: list[float]
    device: str
    dtype: Any
    source: str
    offload: str = "none"
    bank: Any = None
    hooks: list[Any] = field(default_factory=list)

    def modules(self) -> list[Any]:
        return [self.text_encoder, self.vision_encoder, self.vae, self.unet]


def read_index(path: Path) -> dict[str, Any]:
    """The folder's model index, or a ModelError saying why it is no Zero123++ model (found
    before any weights are read)."""
    if path.is_file():
        raise ModelError(
            f"{path.name} is a single file; Zero123++ loads from its diffusers folder. Fix: "
            f"point the node at the model's folder (e.g. `fathom models pull {EXAMPLE}`)."
        )
    # The single-file wording above is Zero123++'s own; the rest is every folder loader's.
    index = read_pipeline_index(path, "Zero123++", EXAMPLE)
    info = identify(path)
    if info.family != "zero123pp":
        raise ModelError(
            f"{path} is {info.title} model ({index.get('_class_name')}), not Zero123++. "
            f"Fix: choose a Zero123++ folder such as {EXAMPLE}."
        )
    for name in (*MODULES, *CONFIGS):
        spec = index.get(name)
        if not isinstance(spec, list) or len(spec) != 2 or spec[0] is None:
            raise ModelError(
                f"{path}: model_index.json names no {name}; a Zero123++ model needs it."
            )
        if spec[0] not in ALLOWED_LIBRARIES:
            raise ModelError(
                f"{path}: component '{name}' comes from {spec[0]!r}; Fathom loads components "
                "from diffusers and transformers only (no remote code)."
            )
    return index


def ramping_coefficients(index: dict[str, Any], path: Path) -> list[float]:
    """The per-token weights of the global image embedding (one per text position)."""
    ramp = index.get("ramping_coefficients")
    if not isinstance(ramp, list) or not ramp or not all(isinstance(v, int | float) for v in ramp):
        raise ModelError(
            f"{path}: model_index.json has no ramping_coefficients (a list of numbers, one per "
            "text token); the download is incomplete or not Zero123++."
        )
    return [float(v) for v in ramp]


def load_zero123pp(path: Path, device: str, dtype: str, offload: str = "auto") -> Zero123PlusModel:
    """Load a Zero123++ folder (safetensors only) and place it on ``device``."""
    import torch

    from fathom.engine.diffusion.reference_attention import install

    index = read_index(path)
    ramp = ramping_coefficients(index, path)
    tdtype = getattr(torch, dtype) if isinstance(dtype, str) else dtype
    parts: dict[str, Any] = {}
    for name in (*MODULES, *CONFIGS):
        lib, cls_name = index[name]
        try:
            parts[name] = _load_part(lib, cls_name, path / name, tdtype)
        except ModelError:
            raise
        except Exception as exc:
            if is_oom(exc):
                raise
            raise ModelError(
                f"{path / name} could not be loaded as {cls_name} (safetensors only): "
                f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
            ) from exc
    for name in MODULES:
        parts[name].requires_grad_(False)
    sched = parts["scheduler"]
    parts["scheduler"] = type(sched).from_config(sched.config, timestep_spacing="trailing")
    _check_shapes(parts, ramp, path)
    model = Zero123PlusModel(**parts, ramping=ramp, device=device, dtype=tdtype, source=str(path))
    model.bank = install(model.unet)
    place(model, offload)
    return model


def _check_shapes(parts: dict[str, Any], ramp: list[float], path: Path) -> None:
    width = int(parts["unet"].config.cross_attention_dim)
    proj = int(parts["vision_encoder"].config.projection_dim)
    text = int(parts["text_encoder"].config.hidden_size)
    if not proj == text == width:
        raise ModelError(
            f"{path}: the image embedding ({proj} wide), the text features ({text}) and the "
            f"UNet's cross-attention ({width}) must match; the folder mixes models."
        )
    if len(ramp) != int(parts["tokenizer"].model_max_length):
        raise ModelError(
            f"{path}: {len(ramp)} ramping coefficients for {parts['tokenizer'].model_max_length} "
            "text tokens; the download is incomplete."
        )


def loader(device: str, dtype: str, offload: str = "auto") -> Any:
    """A ``ctx.load_model`` loader for ``generate.image_to_views``."""
    return lambda path: load_zero123pp(path, device, dtype, offload)


def place(model: Zero123PlusModel, offload: str = "auto") -> str:
    """'none': everything on the device; 'model' / 'sequential': accelerate CPU offload."""
    mode = offload_mode(model.modules(), model.device, offload)
    if mode == "none" or not model.device.startswith("cuda"):
        for m in model.modules():
            m.to(model.device)
        model.offload = "none"
        return "none"
    if mode == "model":
        from accelerate import cpu_offload_with_hook

        hook = None
        for m in model.modules():
            m.to("cpu")
            _, hook = cpu_offload_with_hook(m, model.device, prev_module_hook=hook)
            model.hooks.append(hook)
    else:
        from accelerate import cpu_offload

        for m in model.modules():
            m.to("cpu")
            cpu_offload(m, execution_device=model.device)
    model.offload = mode
    log.info("%s: CPU offload (%s) on %s", model.source, mode, model.device)
    return mode


def settle(model: Zero123PlusModel) -> None:
    """After a run with model offload, move the last used component back to the CPU."""
    for hook in model.hooks:
        hook.offload()
