"""Model families and kinds, told from what a folder or file holds, never from its name.

A diffusers folder says what it is in ``model_index.json`` (the pipeline class) and in its
components' configs (an SDXL UNet takes pooled text and size ids; SD 2.x attends to
1024-wide OpenCLIP features, SD 1.x to 768-wide CLIP ones). A single ``.safetensors`` file
says it through its tensor names, read from the header without loading a tensor. Nodes declare
the families they run, and a model of another family is refused before the run, naming both.
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fathom.engine.models.locate import ModelError

#: Family ids and how the studio names them to users.
TITLES = {
    "sd1": "Stable Diffusion 1.x",
    "sd2": "Stable Diffusion 2.x",
    "sdxl": "SDXL",
    "sdxl-refiner": "SDXL refiner",
    "sd3": "Stable Diffusion 3",
    "flux": "FLUX",
    "svd": "Stable Video Diffusion",
    "shap-e": "Shap-E (text to 3D)",
    "shap-e-image": "Shap-E (image to 3D)",
    "zero123": "Zero123 (novel views)",
    "zero123pp": "Zero123++",
    "ldm3d": "LDM3D (RGB + depth)",
    "depth": "depth estimation",
    "segmentation": "segmentation",
    "unknown": "an unrecognised model",
}
#: The UNet families Fathom's own loop runs (the rest go through diffusers' pipelines).
UNET_FAMILIES = ("sd1", "sd2", "sdxl", "sdxl-refiner", "ldm3d")
#: The largest safetensors header Fathom reads (real checkpoints use well under 2 MB).
MAX_HEADER = 64 * 2**20


@dataclass(frozen=True)
class ModelInfo:
    """What a model is: its family (``TITLES``), kind ("pipeline", "single file", "lora",
    "controlnet", "ip-adapter", "embedding"; "depth" and "segmentation" for transformers
    folders), and traits that change how it runs: an inpainting UNet, a one-step
    (trailing-spaced, distilled) schedule."""

    family: str
    kind: str
    inpainting: bool = False
    one_step: bool = False

    @property
    def title(self) -> str:
        return TITLES.get(self.family, self.family)


def names(families: tuple[str, ...] | list[str]) -> str:
    """'SDXL, Stable Diffusion 1.x or Stable Diffusion 2.x': families as users read them."""
    titles = [TITLES.get(f, f) for f in families]
    return titles[0] if len(titles) == 1 else ", ".join(titles[:-1]) + " or " + titles[-1]


def safetensors_header(path: Path) -> dict[str, Any]:
    """Tensor names, dtypes and shapes from a .safetensors header (8-byte length, then JSON):
    no tensor is read, so a 7 GB checkpoint is classified in microseconds."""
    with open(path, "rb") as fh:
        raw = fh.read(8)
        if len(raw) != 8:
            raise ModelError(f"{path.name} is not a safetensors file (it is too short).")
        (size,) = struct.unpack("<Q", raw)
        if size > MAX_HEADER:
            raise ModelError(f"{path.name}: its safetensors header claims {size} bytes.")
        try:
            header = json.loads(fh.read(size))
        except ValueError:
            raise ModelError(f"{path.name} is not a safetensors file (bad header).") from None
    if not isinstance(header, dict):
        raise ModelError(f"{path.name} is not a safetensors file (bad header).")
    header.pop("__metadata__", None)
    return header


def _file_family(header: dict[str, Any]) -> ModelInfo:
    keys = list(header)

    def has(prefix: str) -> bool:
        return any(k.startswith(prefix) for k in keys)

    def contains(part: str) -> bool:
        return any(part in k for k in keys)

    if any(m in k for k in keys for m in (".lora_A.", ".lora_down.", ".lora.down.", "lora_unet")):
        return ModelInfo(_lora_family(header), "lora")
    if has("control_model.") or (has("controlnet_cond_embedding.") and has("down_blocks.")):
        return ModelInfo("sdxl" if contains("add_embedding") else "sd1", "controlnet")
    if has("image_proj.") and has("ip_adapter."):
        return ModelInfo(_ip_adapter_family(header), "ip-adapter")
    if has("emb_params") or has("string_to_param") or set(keys) <= {"clip_l", "clip_g"}:
        return ModelInfo("sdxl" if "clip_g" in keys else "sd1", "embedding")
    first_conv = header.get("model.diffusion_model.input_blocks.0.0.weight", {})
    inpainting = list(first_conv.get("shape", [0, 4]))[1:2] == [9]
    if has("conditioner.embedders.1.") or has("conditioner.embedders.0.transformer."):
        family = "sdxl"
    elif has("conditioner.embedders.0.model."):
        family = "sdxl-refiner"
    elif has("cond_stage_model.model."):
        family = "sd2"
    elif has("cond_stage_model.transformer."):
        family = "sd1"
    elif has("model.diffusion_model.joint_blocks.") or has("joint_blocks."):
        family = "sd3"
    elif has("double_blocks.") or has("model.diffusion_model.double_blocks."):
        family = "flux"
    else:
        family = "unknown"
    return ModelInfo(family, "single file", inpainting)


#: Cross-attention width (what the UNet's text features are) per family.
CROSS_DIMS = {768: "sd1", 1024: "sd2", 2048: "sdxl"}


def lora_cross_dim(header: dict[str, Any]) -> int | None:
    """The width of the text features a LoRA's cross-attention keys take, in any of the
    common key layouts (diffusers, peft, kohya); None when it adapts no cross-attention."""
    for key, entry in header.items():
        down = ("lora_A" in key) or ("lora_down" in key) or ("lora.down" in key)
        if down and "attn2" in key and "to_k" in key:
            shape = list(entry.get("shape", []))
            if len(shape) == 2:
                return int(shape[1])
    return None


def _lora_family(header: dict[str, Any]) -> str:
    """The family a LoRA was made for: the width of its cross-attention's text features
    (768 SD 1.x, 1024 SD 2.x, 2048 SDXL); the second text encoder's keys also mark SDXL."""
    keys = list(header)
    if any("single_transformer_blocks" in k for k in keys):
        return "flux"
    dim = lora_cross_dim(header)
    if dim in CROSS_DIMS:
        return CROSS_DIMS[dim]
    xl = ("lora_te2_", "text_encoder_2.", "te2.")
    if any(marker in k for k in keys for marker in xl):
        return "sdxl"
    return "unknown"


def model_cross_dim(path: Path) -> int | None:
    """The width of the text features a model's UNet attends to: from unet/config.json, or
    from a single file's first cross-attention key weight (read from the header)."""
    if path.is_dir():
        dim = _read_json(path / "unet" / "config.json").get("cross_attention_dim")
        return int(dim) if isinstance(dim, int) else None
    if path.suffix.lower() != ".safetensors":
        return None
    for key, entry in safetensors_header(path).items():
        if key.endswith("attn2.to_k.weight"):
            shape = list(entry.get("shape", []))
            if len(shape) == 2:
                return int(shape[1])
    return None


def _ip_adapter_family(header: dict[str, Any]) -> str:
    """An IP-Adapter's family: the text-feature width of its four image tokens."""
    shape = list(header.get("image_proj.proj.weight", {}).get("shape", []))
    return CROSS_DIMS.get(shape[0] // 4, "unknown") if len(shape) == 2 else "unknown"


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text("utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


#: transformers ``model_type`` values of depth estimators and of segmentation models, for
#: configs that name no architecture (DPT also makes segmentation heads: its architecture says).
DEPTH_MODEL_TYPES = (
    "depth_anything",
    "dpt",
    "glpn",
    "zoedepth",
    "depth_pro",
    "prompt_depth_anything",
)
SEGMENTATION_MODEL_TYPES = ("segformer", "mask2former", "maskformer", "oneformer", "upernet")


def transformers_task(config: dict[str, Any]) -> str | None:
    """What a transformers model folder's config.json says it does, "depth" or
    "segmentation", from its ``architectures`` (else its ``model_type``): the depth and
    segmentation nodes take any model of their task. None for anything else."""
    archs = [str(a) for a in config.get("architectures") or []]
    if any(a.endswith("ForDepthEstimation") for a in archs):
        return "depth"
    if any("Segmentation" in a for a in archs):
        return "segmentation"
    if archs:
        return None
    model_type = str(config.get("model_type", ""))
    if model_type in DEPTH_MODEL_TYPES:
        return "depth"
    if model_type in SEGMENTATION_MODEL_TYPES:
        return "segmentation"
    return None


def transformers_model_type(path: Path) -> str | None:
    """The ``model_type`` a transformers model folder's config.json names (None: not one)."""
    if not path.is_dir() or (path / "model_index.json").is_file():
        return None
    value = _read_json(path / "config.json").get("model_type")
    return str(value) if value else None


def _folder_family(path: Path) -> ModelInfo:
    index = _read_json(path / "model_index.json")
    if not index:
        config = _read_json(path / "config.json")
        cls = str(config.get("_class_name", ""))
        if cls == "ControlNetModel":
            xl = config.get("addition_embed_type") == "text_time"
            return ModelInfo("sdxl" if xl else "sd1", "controlnet")
        task = None if cls else transformers_task(config)
        if task is not None:
            return ModelInfo(task, task)
        return ModelInfo("unknown", "folder")
    cls = str(index.get("_class_name", ""))
    unet = _read_json(path / "unet" / "config.json")
    sched = _read_json(path / "scheduler" / "scheduler_config.json")
    one_step = sched.get("timestep_spacing") == "trailing"
    inpainting = int(unet.get("in_channels", 4)) == 9
    if "Zero1to3" in cls or cls == "Zero123Pipeline" or "cc_projection" in index:
        family = "zero123"  # its UNet has SD's shape, but it is conditioned on an image
    elif cls.startswith("ShapE"):
        family = "shap-e-image" if "Img2Img" in cls else "shap-e"
    elif "StableVideoDiffusion" in cls:
        family = "svd"
    elif "Zero123Plus" in cls:
        # A custom pipeline class; its UNet looks like SD 2, so the index must decide.
        family = "zero123pp"
    elif "StableDiffusion3" in cls:
        family = "sd3"
    elif "Flux" in cls:
        family = "flux"
    elif "LDM3D" in cls:
        family = "ldm3d"
    elif cls.startswith("Marigold"):
        # Its UNet has SD 2's shape, but it makes depth (or normals), not pictures.
        family = "depth" if "Depth" in cls else "unknown"
    elif "XL" in cls or unet.get("addition_embed_type") == "text_time":
        refiner = index.get("text_encoder") in (None, [None, None])
        family = "sdxl-refiner" if refiner and "text_encoder_2" in index else "sdxl"
    elif unet:
        family = "sd2" if int(unet.get("cross_attention_dim", 768)) == 1024 else "sd1"
    else:
        family = "unknown"
    return ModelInfo(family, "pipeline", inpainting, one_step)


def identify(path: Path) -> ModelInfo:
    """What the model at ``path`` is (a diffusers folder or a .safetensors file)."""
    if path.is_dir():
        return _folder_family(path)
    if path.suffix.lower() == ".safetensors":
        info = _file_family(safetensors_header(path))
        hint = hint_for(path)
        if hint and "turbo" in hint.lower():
            # A Turbo checkpoint's weights look like its base model's: only the hint tells.
            return ModelInfo(info.family, info.kind, info.inpainting, one_step=True)
        return info
    return ModelInfo("unknown", "file")


def hint_for(path: Path) -> str | None:
    """The shipped configuration a text file ``NAME.config`` beside the checkpoint names (its
    first word that is not a ``#`` comment), for models the weights cannot tell apart."""
    hint_file = path.with_suffix(".config")
    if not hint_file.is_file():
        return None
    for line in hint_file.read_text("utf-8", errors="replace").splitlines():
        word = line.split("#", 1)[0].strip()
        if word:
            return word.split()[0]
    return None
