"""Tiny random-weight Zero123-family folders, saved in the published diffusers layout.

Why: the novel-view tests and bench must load a model through the same code path a user's
``kxic/zero123-xl`` folder takes (model_index.json naming a community ``CCProjection``,
safetensors weights in unet/, vae/, image_encoder/, cc_projection/, scheduler/), without any
download. Random weights make no real views, but conditioning, pooling and sampling are real.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from typing import Any

import numpy as np

from fathom.engine.diffusion import novel_view as nv
from fathom.engine.geometry.projection import look_at
from fathom.engine.types import Camera, Depth, Image

ROOT = Path(__file__).resolve().parents[1]

#: Embedding width of the tiny model (768 in the real one).
WIDTH = 32
WEIGHTS = "diffusion_pytorch_model.safetensors"


#: The benchmark's model: the SD-1.5 mini UNet layout (engine.diffusion.minimodels.BENCH:
#: four levels, attention on the upper three, two layers per block) taking 8 channels, its VAE,
#: and a 4-layer CLIP vision encoder at CLIP's real 224² input (patch 14).
MINI = {
    "blocks": (64, 128, 256, 256),
    "layers": 2,
    "attention_levels": 3,
    "groups": 32,
    "width": 152,
    "vae": (32, 32, 96, 96),
    "clip": (64, 4, 224, 14),
}
TINY = {
    "blocks": (32, 64),
    "layers": 1,
    "attention_levels": 1,
    "groups": 16,
    "width": WIDTH,
    "vae": (8, 16, 16, 16),
    "clip": (32, 2, 32, 8),
}


def build_tiny_zero123(
    folder: Path,
    seed: int = 0,
    aggregator_tokens: int = 0,
    spec: dict[str, Any] | None = None,
    layout: str = "kxic",
) -> Path:
    """A Zero123-shaped folder (``spec``: TINY, the default, or MINI): a UNet with 8 input
    channels attending to width-wide tokens, a 4-level VAE (scale 8), a CLIP vision encoder, a
    (width+4)→width pose projection and Zero123's DDIM scheduler settings.
    ``aggregator_tokens`` > 0 adds a trained aggregator's weights (random) in the layout
    ``engine.models.zero123`` reads. ``layout``:
    "kxic" (``cc_projection/``, ``Zero1to3StableDiffusionPipeline``) or "bennyguo"
    (``clip_camera_projection/`` with ``proj.*`` keys and an fp16 copy beside the full
    weights, ``Zero123Pipeline``)."""
    import torch
    from diffusers import AutoencoderKL, DDIMScheduler, UNet2DConditionModel
    from safetensors.torch import save_file
    from transformers import CLIPImageProcessor, CLIPVisionConfig, CLIPVisionModelWithProjection

    sp = spec or TINY
    width, blocks, n_attn = int(sp["width"]), tuple(sp["blocks"]), int(sp["attention_levels"])
    torch.manual_seed(seed)
    out = folder / "zero123"
    down = ("CrossAttnDownBlock2D",) * n_attn + ("DownBlock2D",) * (len(blocks) - n_attn)
    up = ("UpBlock2D",) * (len(blocks) - n_attn) + ("CrossAttnUpBlock2D",) * n_attn
    UNet2DConditionModel(
        sample_size=8,
        in_channels=8,
        out_channels=4,
        block_out_channels=blocks,
        layers_per_block=sp["layers"],
        norm_num_groups=sp["groups"],
        down_block_types=down,
        up_block_types=up,
        cross_attention_dim=width,
        attention_head_dim=8,
    ).save_pretrained(out / "unet", safe_serialization=True)
    AutoencoderKL(
        block_out_channels=sp["vae"],
        layers_per_block=sp["layers"],
        norm_num_groups=8,
        latent_channels=4,
        sample_size=64,
        down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4,
    ).save_pretrained(out / "vae", safe_serialization=True)
    hidden, n_layers, image_size, patch = sp["clip"]
    CLIPVisionModelWithProjection(
        CLIPVisionConfig(
            hidden_size=hidden,
            intermediate_size=4 * hidden,
            projection_dim=width,
            num_hidden_layers=n_layers,
            num_attention_heads=4,
            image_size=image_size,
            patch_size=patch,
        )
    ).save_pretrained(out / "image_encoder", safe_serialization=True)
    CLIPImageProcessor(crop_size=32, size=32).save_pretrained(out / "feature_extractor")
    DDIMScheduler(
        beta_start=0.00085,
        beta_end=0.012,
        beta_schedule="scaled_linear",
        clip_sample=False,
        set_alpha_to_one=False,
        steps_offset=1,
    ).save_pretrained(out / "scheduler")
    _save_projection(out, width, layout)
    if aggregator_tokens:
        (out / "aggregator").mkdir()
        g = torch.Generator().manual_seed(seed + 7)
        agg = {"queries": torch.randn(aggregator_tokens, width, generator=g)}
        agg["pose_proj.weight"] = torch.randn(width, 4, generator=g) * 0.1
        for name in ("to_q", "to_k", "to_v", "to_out"):
            agg[f"{name}.weight"] = torch.randn(width, width, generator=g) / width**0.5
        save_file(agg, str(out / "aggregator" / "aggregator.safetensors"))
    _write_index(out, layout)
    return out


def _save_projection(out: Path, width: int, layout: str) -> None:
    """The pose projection's random weights, in the folder and keys ``layout`` uses."""
    import torch
    from safetensors.torch import save_file

    proj = torch.nn.Linear(width + 4, width)
    weight, bias = proj.weight.detach(), proj.bias.detach()
    if layout == "kxic":
        pdir, key, cls = out / "cc_projection", "projection", "CCProjection"
    else:
        pdir, key, cls = out / "clip_camera_projection", "proj", "CLIPCameraProjection"
    pdir.mkdir(parents=True)
    (pdir / "config.json").write_text(json.dumps({"_class_name": cls}))
    save_file({f"{key}.weight": weight, f"{key}.bias": bias}, str(pdir / WEIGHTS))
    if layout != "kxic":  # a half-precision copy that must not be the one loaded
        half = {f"{key}.weight": -weight.half(), f"{key}.bias": -bias.half()}
        save_file(half, str(pdir / "diffusion_pytorch_model.fp16.safetensors"))


def _write_index(out: Path, layout: str) -> None:
    """model_index.json as the published folder of ``layout`` has it."""
    index: dict[str, Any] = {
        "_class_name": "Zero1to3StableDiffusionPipeline",
        "_diffusers_version": "0.18.2",
        "cc_projection": ["pipeline_zero1to3", "CCProjection"],
        "feature_extractor": ["transformers", "CLIPImageProcessor"],
        "image_encoder": ["transformers", "CLIPVisionModelWithProjection"],
        "requires_safety_checker": False,
        "safety_checker": [None, None],
        "scheduler": ["diffusers", "DDIMScheduler"],
        "unet": ["diffusers", "UNet2DConditionModel"],
        "vae": ["diffusers", "AutoencoderKL"],
    }
    if layout != "kxic":
        del index["cc_projection"], index["safety_checker"], index["requires_safety_checker"]
        index["_class_name"] = "Zero123Pipeline"
        index["clip_camera_projection"] = ["zero123", "CLIPCameraProjection"]
    (out / "model_index.json").write_text(json.dumps(index, indent=2))


def load_demo() -> Any:
    """The demo assets' script as a module: its ray caster draws the demo room from anywhere."""
    spec = importlib.util.spec_from_file_location(
        "demo_assets", ROOT / "assets" / "make_demo_assets.py"
    )
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def raycast_view(demo: Any, camera: Camera) -> nv.InputView:
    """An exact RGBD of the demo room from any camera (the demo's own ray caster)."""
    u, v = np.meshgrid(np.arange(camera.width) + 0.5, np.arange(camera.height) + 0.5)
    d = np.stack([(u - camera.cx) / camera.fx, (v - camera.cy) / camera.fy, np.ones_like(u)], -1)
    d = d.reshape(-1, 3) / np.linalg.norm(d.reshape(-1, 3), axis=1, keepdims=True)
    col, dist = demo.raycast(d @ camera.pose[:3, :3].T, camera.pose[:3, 3])
    z = (dist * d[:, 2]).reshape(camera.height, camera.width).astype(np.float32)
    rgb = col.reshape(camera.height, camera.width, 3).astype(np.float32)
    return nv.InputView(Image(rgb), camera, Depth(z, "metric"))


def demo_cameras(width: int = 128, height: int = 96) -> tuple[Camera, list[Camera]]:
    """The target: the demo camera moved 0.5 m right, looking at the red sphere; the inputs:
    the demo camera, then cameras to its left, right and above, all looking into the room."""
    look = np.array([-0.2, 0.6, 3.2])

    def at(x: float, y: float, z: float) -> Camera:
        return Camera.from_fov(width, height, 60.0, look_at(np.array([x, y, z]), look))

    target = at(0.5, 0.0, 0.3)
    demo = Camera.from_fov(width, height, 60.0)
    return target, [demo, at(1.0, 0.0, 0.5), at(-0.6, -0.3, 0.2), at(0.4, -0.6, 0.6)]
