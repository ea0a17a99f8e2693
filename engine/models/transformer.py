"""Loading transformer-denoiser models (Stable Diffusion 3 / 3.5) as diffusers pipelines.

These families run through diffusers' own pipeline classes and model code (see
:mod:`fathom.engine.diffusion.transformer`), not through Fathom's UNet loop, so the loaded model
is the pipeline itself plus how it was placed. A source is a diffusers folder whose
``model_index.json`` names a family's pipeline; every component comes from diffusers or
transformers (no remote code) and loads from safetensors only. Stable Diffusion 3 runs without
its T5 text encoder (diffusers pads the text features with zeros), so a folder whose
``text_encoder_3`` is null, missing or holds no weights loads without it.

Placement follows the Stable Diffusion loader: CPU and MPS load everything on the device; on
CUDA the whole model goes to the GPU when it fits, else diffusers' model CPU offload (one
component on the GPU at a time), else sequential offload (layer by layer).
"""

from __future__ import annotations

import json
import logging
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fathom.engine.models.diffusion import check_libraries, load_pipeline
from fathom.engine.models.families import TITLES, identify, names
from fathom.engine.models.locate import ModelError
from fathom.engine.models.memory import place_pipeline

log = logging.getLogger("fathom.models")

KIND = "diffusers-transformer"
#: Per family: diffusers' text-to-image and image-to-image pipeline classes.
PIPELINES = {"sd3": ("StableDiffusion3Pipeline", "StableDiffusion3Img2ImgPipeline")}
#: The families this loader builds (``engine.models.families.TITLES`` ids).
TRANSFORMER_FAMILIES = tuple(PIPELINES)
#: Components a family cannot run without.
REQUIRED = {
    "sd3": (
        "transformer",
        "vae",
        "text_encoder",
        "text_encoder_2",
        "tokenizer",
        "tokenizer_2",
        "scheduler",
    )
}
#: Optional text encoders, each with its tokenizer: loaded together or not at all.
OPTIONAL_TEXT = {"sd3": (("text_encoder_3", "tokenizer_3"),)}
#: Modules placed on the device (and offloaded), in the order a run uses them.
MODULES = ("text_encoder", "text_encoder_2", "text_encoder_3", "transformer", "vae")
EXAMPLE = "stabilityai/stable-diffusion-3.5-medium"


@dataclass(eq=False)
class TransformerModel:
    """A loaded pipeline and how it was placed (for the run report). The pipeline is shared by
    every node that uses the model and is not re-entrant (it keeps per-call state), so runs
    take ``lock``."""

    pipe: Any
    family: str
    device: str
    dtype: Any
    offload: str
    source: str
    vae_tiling: bool = False
    without: tuple[str, ...] = ()
    lock: Any = field(default_factory=threading.RLock, repr=False)


def _index(path: Path) -> dict[str, Any]:
    index_file = path / "model_index.json"
    if not index_file.is_file():
        raise ModelError(
            f"{path} is not a diffusers pipeline folder (no model_index.json). "
            "Fix: point the node at the model's top folder."
        )
    try:
        index = json.loads(index_file.read_text("utf-8"))
    except (OSError, ValueError) as exc:
        raise ModelError(f"{index_file} cannot be read: {exc}") from exc
    if not isinstance(index, dict):
        raise ModelError(f"{index_file} is not a diffusers model index.")
    return index


def check_folder(path: Path) -> tuple[dict[str, Any], str]:
    """The folder's model index and family, or a ModelError saying why this loader cannot
    build it: found before any weights are read."""
    if path.is_file():
        raise ModelError(
            f"{path.name} is a single file ({identify(path).title}); transformer models load "
            f"from a diffusers folder. Fix: point the node at the model's folder (as on Hugging "
            f"Face, e.g. `fathom models pull {EXAMPLE}`)."
        )
    index = _index(path)
    family = identify(path).family
    if family not in PIPELINES:
        raise ModelError(
            f"{path} is {TITLES.get(family, family)} model ({index.get('_class_name')}); this "
            f"loader builds {names(TRANSFORMER_FAMILIES)} models. Fix: choose such a model, or "
            "a node made for this one."
        )
    check_libraries(path, index)
    missing = [p for p in REQUIRED[family] if not _present(path, index, p)]
    if missing:
        raise ModelError(
            f"{path} ({index.get('_class_name')}) has no {', '.join(missing)}: a "
            f"{TITLES[family]} model needs {', '.join(REQUIRED[family])}."
        )
    return index, family


def _present(path: Path, index: dict[str, Any], part: str) -> bool:
    """Whether the index names the component and its folder is there (with weights, for
    modules: a download that skipped a text encoder's weights must not fail mid-load)."""
    spec = index.get(part)
    if not isinstance(spec, list) or None in spec or not (path / part).is_dir():
        return False
    if part.startswith(("tokenizer", "scheduler")):
        return True
    return any((path / part).glob("*.safetensors"))


def absent_parts(path: Path, index: dict[str, Any], family: str) -> tuple[str, ...]:
    """The optional text encoders (with their tokenizers) this folder lacks: they load as
    None, which diffusers supports (SD3 without T5 pads the text features with zeros)."""
    out: list[str] = []
    for group in OPTIONAL_TEXT.get(family, ()):
        if not all(_present(path, index, p) for p in group):
            out += group
    return tuple(out)


def load_transformer_model(
    path: Path, device: str, dtype: str, offload: str = "auto"
) -> TransformerModel:
    """Load a transformer-family folder (safetensors only) and place it on ``device``."""
    import diffusers
    import torch

    index, family = check_folder(path)
    without = absent_parts(path, index, family)
    if without:
        log.info("%s: loading without %s (not in the folder)", path, ", ".join(without))
    tdtype = getattr(torch, dtype) if isinstance(dtype, str) else dtype
    cls = getattr(diffusers, PIPELINES[family][0])
    pipe = load_pipeline(cls, path, tdtype, TITLES[family], "transformer", **dict.fromkeys(without))
    for m in _modules(pipe):
        m.eval().requires_grad_(False)
    mode = place(pipe, device, offload)
    return TransformerModel(pipe, family, device, tdtype, mode, str(path), without=without)


def loader(device: str, dtype: str, offload: str = "auto") -> Any:
    """A ``ctx.load_model`` loader (kind :data:`KIND`) for the generation nodes."""
    return lambda path: load_transformer_model(path, device, dtype, offload)


# ---- placement --------------------------------------------------------------------------------


def _modules(pipe: Any) -> list[Any]:
    return [m for name in MODULES if (m := getattr(pipe, name, None)) is not None]


def place(pipe: Any, device: str, offload: str = "auto") -> str:
    """Everything on the device when it fits; else diffusers' model or sequential CPU offload
    (the pipeline's own hooks, in its text encoders -> transformer -> vae order)."""
    mode = place_pipeline(pipe, _modules(pipe), device, offload)
    if mode != "none":
        log.info("%s: CPU offload (%s) on %s", getattr(pipe, "name_or_path", ""), mode, device)
    return mode


def settle(model: TransformerModel) -> None:
    """After a run with model offload (also a cancelled or failed one), every component back
    on the CPU with its hooks re-armed, as the pipeline does at the end of a finished call."""
    if model.offload == "model":
        model.pipe.maybe_free_model_hooks()


def fall_back(model: TransformerModel) -> str:
    """One step down for an out-of-memory retry: VAE tiling, and on a GPU more offload.
    Returns what changed, for the report."""
    changed = []
    vae = model.pipe.vae
    if not model.vae_tiling and hasattr(vae, "enable_tiling"):
        vae.enable_tiling()
        model.vae_tiling = True
        changed.append("VAE tiling")
    if model.device.startswith("cuda"):
        nxt = {"none": "model", "model": "sequential"}.get(model.offload)
        if nxt == "model":
            model.pipe.enable_model_cpu_offload(device=model.device)
        elif nxt == "sequential":
            model.pipe.enable_sequential_cpu_offload(device=model.device)
        if nxt is not None:
            model.offload = nxt
            changed.append(f"CPU offload ({nxt})")
    return ", ".join(changed)
