"""Loading ControlNets for the model manager: a diffusers ControlNet folder (config.json and
safetensors weights), or a single .safetensors file in diffusers' layout with its config.json
beside it (NAME.json, or a NAME/ folder's config.json). Original-layout single files need
diffusers' converter and their base model's configuration: they are refused with the fix."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fathom.engine.models.families import identify
from fathom.engine.models.locate import ModelError, safetensors_files

KIND = "controlnet"


def _config_for(path: Path) -> Path | None:
    for cand in (path.with_suffix(".json"), path.parent / path.stem / "config.json"):
        if cand.is_file():
            return cand
    return None


def load_controlnet(path: Path, device: str, dtype: str) -> Any:
    """The ControlNet at ``path`` on ``device`` in ``dtype``, ready for inference."""
    import torch
    from diffusers import ControlNetModel

    from fathom.engine.models.diffusion import diffusers_dtype

    tdtype = getattr(torch, dtype) if isinstance(dtype, str) else dtype
    info = identify(path)
    if info.kind != "controlnet":
        raise ModelError(
            f"{path.name} is {info.title} {info.kind}, not a ControlNet. Fix: point the "
            "ControlNet node at a ControlNet folder or .safetensors file."
        )
    safetensors_files(path)  # refuses pickles, with the conversion hint
    if path.is_dir():
        net = ControlNetModel.from_pretrained(path, **diffusers_dtype(tdtype), use_safetensors=True)
    else:
        config = _config_for(path)
        if config is None:
            raise ModelError(
                f"{path.name} is a single-file ControlNet without its configuration. Fix: put "
                f"its config.json beside it as {path.with_suffix('.json').name}, or use the "
                "model's diffusers folder."
            )
        from safetensors.torch import load_file

        net = ControlNetModel.from_config(ControlNetModel.load_config(config))
        state = load_file(str(path))
        if any(k.startswith("control_model.") for k in state):
            raise ModelError(
                f"{path.name} is in the original (non-diffusers) layout. Fix: use the "
                "ControlNet's diffusers folder (e.g. from the lllyasviel or diffusers repos)."
            )
        net.load_state_dict(state)
        net = net.to(dtype=tdtype)
    return net.to(device).eval().requires_grad_(False)


def loader(device: str, dtype: str) -> Any:
    """A ``ctx.load_model`` loader for the generation nodes' ControlNets."""
    return lambda path: load_controlnet(Path(path), device, dtype)
