"""Loading Stable Diffusion 1.x/2.x and SDXL models as loop Components, and placing them on a
device.

Sources: a diffusers folder (``model_index.json``; each component loads from its subfolder,
safetensors only; safety checker and feature extractor are not loaded) or a single
``.safetensors`` checkpoint through diffusers' single-file loader. A single file is built with
its family's diffusers configuration: a ``NAME.config/`` folder beside it, else the one Fathom
ships for SD 1.x, SD 2.x and SDXL (with the CLIP vocabulary found on disk), see
:mod:`fathom.engine.models.singlefile`. A tiny autoencoder for previews is picked up from a
``vae_tiny/`` (or ``taesd/``) subfolder.

Placement: CPU and MPS load everything on the device; on CUDA the whole model goes to the GPU
when it fits, else model CPU offload (one component on the GPU at a time), else sequential
offload (layer by layer), using accelerate's hooks. ``Components.offload`` says which.
"""

from __future__ import annotations

import importlib
import json
import logging
import os
from pathlib import Path
from typing import Any

from fathom.engine.models.families import UNET_FAMILIES, identify, names
from fathom.engine.models.locate import TINY_VAE_FOLDERS, ModelError, weights_variant
from fathom.engine.models.memory import OFFLOAD_MODES, is_oom, offload_mode

log = logging.getLogger("fathom.models")

KIND = "diffusers-sd"
ALLOWED_LIBRARIES = ("diffusers", "transformers")
NOT_LOADED = ("safety_checker", "feature_extractor", "image_encoder")
REQUIRED = ("unet", "vae", "text_encoder", "tokenizer", "scheduler")
REQUIRED_XL = ("unet", "vae", "text_encoder_2", "tokenizer_2", "scheduler")
#: What a Components is built from; SDXL adds the second text encoder and tokenizer.
PARTS = (*REQUIRED, "text_encoder_2", "tokenizer_2", "tiny_vae")
TEXT_MODULES = ("text_encoder", "text_encoder_2")
OFFLOAD_FIX = "set FATHOM_OFFLOAD to one of " + ", ".join(OFFLOAD_MODES) + ", or unset it"


def offload_setting() -> str:
    """The CPU-offload mode from FATHOM_OFFLOAD (default auto). A typo there is the user's
    environment, not the model: it is refused before any model loads, naming the variable."""
    value = os.environ.get("FATHOM_OFFLOAD", "").strip().lower() or "auto"
    if value not in OFFLOAD_MODES:
        raise ValueError(f"FATHOM_OFFLOAD is {value!r}, which is no offload mode")
    return value


def _torch_dtype(dtype: Any) -> Any:
    import torch

    return getattr(torch, dtype) if isinstance(dtype, str) else dtype


def diffusers_dtype(dtype: Any) -> dict[str, Any]:
    """The dtype keyword diffusers' loaders take: ``dtype`` from 0.36, ``torch_dtype`` before."""
    from diffusers.utils import deprecation_utils

    return (
        {"dtype": dtype} if hasattr(deprecation_utils, "_resolve_dtype") else {"torch_dtype": dtype}
    )


def read_pipeline_index(path: Path, title: str, example: str) -> dict[str, Any]:
    """A diffusers folder's ``model_index.json``, or a ModelError saying why ``path`` is none:
    a single file, no index, or an unreadable one. Shared by the folder-only loaders (Shap-E,
    SVD) so they refuse a wrong path alike, before any weights are read."""
    if path.is_file():
        raise ModelError(
            f"{path.name} is a single file; {title} loads from a diffusers folder. Fix: point "
            f"the node at the model's folder (e.g. `fathom models pull {example}`)."
        )
    index_file = path / "model_index.json"
    if not index_file.is_file():
        raise ModelError(
            f"{path} is not a diffusers pipeline folder (no model_index.json). "
            f"Fix: point the node at the {title} model's top folder."
        )
    try:
        return json.loads(index_file.read_text("utf-8"))
    except (OSError, ValueError) as exc:
        raise ModelError(f"{index_file} cannot be read: {exc}") from exc


def check_libraries(
    path: Path, index: dict[str, Any], exempt: dict[str, Any] | None = None
) -> None:
    """Refuse a pipeline whose components come from a library other than diffusers or
    transformers (remote code), unless the component's spec is the one ``exempt`` allows for
    it (Shap-E's renderer). One check, so every folder loader draws the same line."""
    for part, spec in index.items():
        if part.startswith("_") or not isinstance(spec, list) or spec[0] is None:
            continue
        if exempt and part in exempt and spec == exempt[part]:
            continue
        if spec[0] not in ALLOWED_LIBRARIES:
            raise ModelError(
                f"{path}: component '{part}' comes from {spec[0]!r}; Fathom loads "
                "components from diffusers and transformers only (no remote code)."
            )


def load_pipeline(cls: Any, path: Path, dtype: Any, title: str, weights: str, **extra: Any) -> Any:
    """``cls.from_pretrained`` on a local folder: safetensors only, in ``dtype``, asking for the
    precision variant the ``weights`` component's files carry (a download may keep only the
    fp16 copy), progress bar off. A failure other than running out of memory (which the
    caller's fallback handles) becomes a ModelError naming ``title``."""
    variant = {"variant": v} if (v := weights_variant(path / weights)) else {}
    try:
        pipe = cls.from_pretrained(
            path,
            use_safetensors=True,
            local_files_only=True,
            **diffusers_dtype(dtype),
            **variant,
            **extra,
        )
    except Exception as exc:
        if is_oom(exc):
            raise
        first = str(exc).splitlines()[0] if str(exc) else ""
        raise ModelError(
            f"{path} could not be loaded as {title}: {type(exc).__name__}: {first}"
        ) from exc
    pipe.set_progress_bar_config(disable=True)
    return pipe


def _load_part(lib: str, cls_name: str, folder: Path, dtype: Any) -> Any:
    module = importlib.import_module(lib)
    cls = getattr(module, cls_name, None)
    if cls is None:
        raise ModelError(
            f"{folder}: {lib} has no class {cls_name}; update {lib} or check the "
            "model's model_index.json."
        )
    import torch

    variant = {"variant": v} if (v := weights_variant(folder)) else {}
    if lib == "diffusers" and issubclass(cls, torch.nn.Module):
        return cls.from_pretrained(
            folder, **diffusers_dtype(dtype), use_safetensors=True, **variant
        ).eval()
    if lib == "transformers" and issubclass(cls, torch.nn.Module):
        return cls.from_pretrained(folder, dtype=dtype, use_safetensors=True, **variant).eval()
    return cls.from_pretrained(folder)  # tokenizers, schedulers: configs only


def _from_folder(path: Path, dtype: Any) -> dict[str, Any]:
    index_file = path / "model_index.json"
    if not index_file.is_file():
        raise ModelError(
            f"{path} is not a diffusers pipeline folder (no model_index.json). "
            "Fix: point the node at the model's top folder, or at a single "
            ".safetensors checkpoint."
        )
    index = json.loads(index_file.read_text("utf-8"))
    info = identify(path)
    if info.family not in UNET_FAMILIES:
        raise ModelError(
            f"{path} is {info.title} model ({index.get('_class_name')}); this loader builds "
            f"{names(UNET_FAMILIES)} models. Fix: choose a model of those families, or a node "
            "made for this one."
        )
    parts: dict[str, Any] = {}
    for name, spec in index.items():
        if name.startswith("_") or name in NOT_LOADED or not isinstance(spec, list):
            continue
        lib, cls_name = spec
        if lib is None or cls_name is None:
            continue
        if lib not in ALLOWED_LIBRARIES:
            raise ModelError(
                f"{path}: component '{name}' comes from {lib!r}; Fathom loads "
                "components from diffusers and transformers only (no remote code)."
            )
        parts[name] = _load_part(lib, cls_name, path / name, dtype)
    required = REQUIRED_XL if info.family in ("sdxl", "sdxl-refiner") else REQUIRED
    missing = [r for r in required if parts.get(r) is None]
    if missing:
        raise ModelError(
            f"{path} ({index.get('_class_name')}) has no {', '.join(missing)}: a "
            f"{info.title} model needs {', '.join(required)}."
        )
    parts["tiny_vae"] = _tiny_beside(path, dtype)
    out = {k: parts.get(k) for k in PARTS}
    out["family"] = info.family
    out["force_zeros"] = bool(index.get("force_zeros_for_empty_prompt", False))
    out["aesthetics"] = bool(index.get("requires_aesthetics_score", False))
    return out


def _tiny_beside(folder: Path, dtype: Any) -> Any:
    """The tiny autoencoder in a model's vae_tiny/ (or tiny_vae/, taesd/) subfolder, if any."""
    for sub in TINY_VAE_FOLDERS:
        if (folder / sub / "config.json").is_file() and any((folder / sub).glob("*.safetensors")):
            return _load_part("diffusers", "AutoencoderTiny", folder / sub, dtype)
    return None


def _single_file_config(path: Path) -> Path:
    """The diffusers configuration folder a single-file checkpoint is built with: one beside
    it, else Fathom's shipped one for its family (see :mod:`fathom.engine.models.singlefile`)."""
    from fathom.engine.models.singlefile import single_file_config

    return single_file_config(path)


def _from_single_file(path: Path, dtype: Any) -> dict[str, Any]:
    import diffusers

    info = identify(path)
    if info.family not in UNET_FAMILIES:
        raise ModelError(
            f"{path.name} is {info.title} {info.kind}; this loader builds "
            f"{names(UNET_FAMILIES)} checkpoints."
        )
    config = _single_file_config(path)
    # The refiner has no first text encoder: only the image-to-image SDXL pipeline takes that.
    xl = {"sdxl": "StableDiffusionXLPipeline", "sdxl-refiner": "StableDiffusionXLImg2ImgPipeline"}
    cls = getattr(diffusers, xl.get(info.family, "StableDiffusionPipeline"))
    extra = {} if info.family in xl else {"safety_checker": None, "requires_safety_checker": False}
    try:
        pipe = cls.from_single_file(
            str(path),
            config=str(config),
            **diffusers_dtype(dtype),
            local_files_only=True,
            **extra,
        )
    except Exception as exc:
        raise ModelError(
            f"{path.name} could not be loaded as a Stable Diffusion checkpoint "
            f"with the configuration in {config}: {type(exc).__name__}: "
            f"{str(exc).splitlines()[0] if str(exc) else ''}"
        ) from exc
    parts: dict[str, Any] = {k: getattr(pipe, k, None) for k in PARTS}
    for m in ("unet", "vae", *TEXT_MODULES):
        module = parts[m]
        if module is not None:
            module.eval()
    parts["tiny_vae"] = _tiny_beside(config, dtype)
    parts["family"] = info.family
    parts["force_zeros"] = bool(pipe.config.get("force_zeros_for_empty_prompt", False))
    return parts


def load_components(path: Path, device: str, dtype: str, offload: str = "auto") -> Any:
    """Load a model folder or single file as :class:`engine.diffusion.components.Components`."""
    from fathom.engine.diffusion.components import Components

    tdtype = _torch_dtype(dtype)
    parts = _from_single_file(path, tdtype) if path.is_file() else _from_folder(path, tdtype)
    for m in ("unet", "vae", *TEXT_MODULES, "tiny_vae"):
        if parts.get(m) is not None:
            parts[m].requires_grad_(False)
    comps = Components(**parts, device=device, dtype=tdtype, source=str(path))
    place(comps, offload)
    return comps


def loader(device: str, dtype: str, offload: str = "auto") -> Any:
    """A ``ctx.load_model`` loader for the generation nodes."""
    return lambda path: load_components(path, device, dtype, offload)


# ---- placement --------------------------------------------------------------------------------


def _modules(comps: Any) -> list[Any]:
    text = [getattr(comps, m, None) for m in TEXT_MODULES]
    return [m for m in (*text, comps.unet, comps.vae) if m is not None]


def place(comps: Any, offload: str = "auto") -> str:
    """Move the components to ``comps.device``, offloading to the CPU when the GPU runs short."""
    mode = offload_mode(_modules(comps), comps.device, offload)
    apply_offload(comps, mode)
    return mode


def apply_offload(comps: Any, mode: str) -> None:
    """'none': everything on the device; 'model' / 'sequential': accelerate CPU offload."""
    from accelerate.hooks import remove_hook_from_module

    for m in _modules(comps):
        remove_hook_from_module(m, recurse=True)
    comps.__dict__.pop("_offload_hooks", None)
    if mode == "none" or not comps.device.startswith("cuda"):
        for m in (*_modules(comps), comps.tiny_vae):
            if m is not None:
                m.to(comps.device)
        comps.offload = "none"
        return
    if comps.tiny_vae is not None:
        comps.tiny_vae.to(comps.device)
    if mode == "model":
        from accelerate import cpu_offload_with_hook

        hook = None
        hooks = []
        for m in _modules(comps):
            m.to("cpu")
            _, hook = cpu_offload_with_hook(m, comps.device, prev_module_hook=hook)
            hooks.append(hook)
        comps.__dict__["_offload_hooks"] = hooks
    elif mode == "sequential":
        from accelerate import cpu_offload

        for m in _modules(comps):
            m.to("cpu")
            cpu_offload(m, execution_device=comps.device)
    else:
        raise ModelError(f"unknown offload mode {mode!r}")
    comps.offload = mode
    log.info("%s: CPU offload (%s) on %s", comps.source, mode, comps.device)


def settle(comps: Any) -> None:
    """After a run with model offload, move the last used component back to the CPU."""
    for hook in comps.__dict__.get("_offload_hooks", []):
        hook.offload()


def fall_back(comps: Any) -> str:
    """One step down for an out-of-memory retry: VAE tiling, and on a GPU more offload.
    Returns what changed, for the report."""
    changed = []
    if not comps.vae_tiling and hasattr(comps.vae, "enable_tiling"):
        comps.vae.enable_tiling()
        comps.vae_tiling = True
        changed.append("VAE tiling")
    if comps.device.startswith("cuda"):
        nxt = {"none": "model", "model": "sequential"}.get(comps.offload)
        if nxt is not None:
            apply_offload(comps, nxt)
            changed.append(f"CPU offload ({nxt})")
    return ", ".join(changed)
