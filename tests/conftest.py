"""Shared fixtures: the built-in node registry, a graph runner, a node context for direct calls."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from fathom.engine.context import NodeContext, RunOptions
from fathom.engine.device import DeviceInfo
from fathom.engine.executor import Executor, RunResult
from fathom.engine.graph import Graph
from fathom.engine.registry import Registry


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--run-slow",
        action="store_true",
        default=False,
        help="run tests marked slow (or set FATHOM_RUN_SLOW=1)",
    )
    parser.addoption(
        "--run-realweights",
        action="store_true",
        default=False,
        help="run tests needing real model weights (or FATHOM_RUN_REALWEIGHTS=1)",
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Opt-in markers: slow and realweights when asked for, gpu when CUDA is there."""
    run_slow = config.getoption("--run-slow") or os.environ.get("FATHOM_RUN_SLOW") == "1"
    run_real = (
        config.getoption("--run-realweights") or os.environ.get("FATHOM_RUN_REALWEIGHTS") == "1"
    )
    has_cuda: bool | None = None
    for item in items:
        if "slow" in item.keywords and not run_slow:
            item.add_marker(pytest.mark.skip(reason="slow: use --run-slow or FATHOM_RUN_SLOW=1"))
        if "realweights" in item.keywords and not run_real:
            item.add_marker(
                pytest.mark.skip(
                    reason="needs real weights: use --run-realweights or FATHOM_RUN_REALWEIGHTS=1"
                )
            )
        if "gpu" in item.keywords:
            if has_cuda is None:  # torch only imported when a gpu test is collected
                import torch

                has_cuda = torch.cuda.is_available()
            if not has_cuda:
                item.add_marker(pytest.mark.skip(reason="needs a CUDA device"))


@pytest.fixture(scope="session")
def registry() -> Registry:
    reg = Registry()
    reg.load_builtin()
    return reg


@pytest.fixture
def options(tmp_path: Path) -> RunOptions:
    """Inputs resolve against tmp_path; outputs land in tmp_path/out."""
    return RunOptions(output_dir=tmp_path / "out", base_dir=tmp_path, device="cpu")


@pytest.fixture
def run_graph(registry: Registry, options: RunOptions) -> Callable[..., RunResult]:
    """run_graph(graph, **executor_run_kwargs) with a fresh executor (so a fresh cache)."""

    def run(graph: Graph, **kwargs: Any) -> RunResult:
        kwargs.setdefault("options", options)
        return Executor(registry).run(graph, **kwargs)

    return run


@pytest.fixture
def ctx(options: RunOptions) -> NodeContext:
    return NodeContext("node", options, DeviceInfo("cpu"))


@pytest.fixture
def rgba8() -> np.ndarray:
    """A tiny 5×4 RGBA uint8 image with every value different enough to catch channel swaps."""
    return np.random.default_rng(7).integers(0, 256, (4, 5, 4), dtype=np.uint8)


# ---- tiny Stable Diffusion models (tests/engine/test_models.py, test_loop.py,
# tests/nodes/test_generate.py): random weights saved like a user's checkpoint ----------------


def build_tiny_sd(
    folder: Path,
    unet_in_channels: int = 4,
    vae_channels: int = 3,
    ldm3d: bool = False,
    seed: int = 0,
) -> Path:
    """A 64×64-capable Stable Diffusion folder (model_index.json, safetensors) with random
    weights: UNet 32/64 channels, a 4-level VAE (scale 8), a 2-layer CLIP text encoder, SD 1.5's
    scheduler settings (PNDM), and a tiny autoencoder in vae_tiny/. ``unet_in_channels=9`` makes
    an inpainting model; ``vae_channels=4`` with ``ldm3d`` an LDM3D (RGB + depth) model."""
    import torch
    from diffusers import AutoencoderTiny, PNDMScheduler, StableDiffusionPipeline
    from tinymodels import clip_text_config, clip_tokenizer, tiny_unet, tiny_vae
    from transformers import CLIPTextModel

    tok = clip_tokenizer(folder / "vocab")
    torch.manual_seed(seed)
    unet = tiny_unet(unet_in_channels)
    vae = tiny_vae(vae_channels)
    text = CLIPTextModel(clip_text_config(tok))
    sched = PNDMScheduler(
        beta_start=0.00085,
        beta_end=0.012,
        beta_schedule="scaled_linear",
        skip_prk_steps=True,
        set_alpha_to_one=False,
        steps_offset=1,
    )
    parts = dict(
        unet=unet,
        vae=vae,
        text_encoder=text,
        tokenizer=tok,
        scheduler=sched,
        safety_checker=None,
        feature_extractor=None,
    )
    if ldm3d:
        from diffusers import StableDiffusionLDM3DPipeline

        pipe = StableDiffusionLDM3DPipeline(
            **parts, image_encoder=None, requires_safety_checker=False
        )
    else:
        pipe = StableDiffusionPipeline(**parts, requires_safety_checker=False)
    out = folder / "model"
    pipe.save_pretrained(out, safe_serialization=True)
    AutoencoderTiny(
        encoder_block_out_channels=(8,) * 4, decoder_block_out_channels=(8,) * 4, latent_channels=4
    ).save_pretrained(out / "vae_tiny")
    return out


@pytest.fixture(scope="session")
def tiny_sd_factory(tmp_path_factory: pytest.TempPathFactory) -> Callable[..., Path]:
    """build(**kwargs) -> model folder; each variant is built once per session."""
    built: dict[tuple, Path] = {}

    def build(**kwargs: Any) -> Path:
        key = tuple(sorted(kwargs.items()))
        if key not in built:
            built[key] = build_tiny_sd(tmp_path_factory.mktemp("tiny_sd"), **kwargs)
        return built[key]

    return build


@pytest.fixture(scope="session")
def tiny_sd(tiny_sd_factory: Callable[..., Path]) -> Path:
    """The tiny text-to-image model folder."""
    return tiny_sd_factory()


@pytest.fixture(scope="session")
def tiny_sdxl(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny SDXL-shaped model folder (two text encoders, size conditioning, Euler), saved the
    way a downloaded SDXL model is, so it loads through the same code a real one takes."""
    from fathom.engine.diffusion.minimodels import TINY_XL, save_model

    return save_model(tmp_path_factory.mktemp("tiny_sdxl") / "model", TINY_XL)


@pytest.fixture(scope="session")
def tiny_sdxl_turbo(tiny_sdxl: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny SDXL with SDXL-Turbo's scheduler (Euler ancestral, trailing timestep spacing):
    the one-step models differ from their base in weights and this schedule only."""
    import json
    import shutil

    folder = tmp_path_factory.mktemp("tiny_sdxl_turbo") / "model"
    shutil.copytree(tiny_sdxl, folder)
    sched = folder / "scheduler" / "scheduler_config.json"
    config = json.loads(sched.read_text())
    config.update(_class_name="EulerAncestralDiscreteScheduler", timestep_spacing="trailing")
    sched.write_text(json.dumps(config))
    return folder


@pytest.fixture(scope="session")
def tiny_sd3(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny Stable Diffusion 3 folder (three transformer blocks, the two CLIP encoders, no
    T5), saved as diffusers saves SD3, so it loads through the same code a real one takes."""
    from fathom.engine.diffusion.minimodels import TINY_SD3, save_sd3_model

    return save_sd3_model(tmp_path_factory.mktemp("tiny_sd3") / "model", TINY_SD3)


def make_lora(model: Path, out: Path, seed: int = 0, text: bool = False) -> Path:
    """A random LoRA (rank 4, on the UNet's attention projections; with ``text`` also on the
    text encoders' attention) for the model folder ``model``, saved the way training scripts
    save one (diffusers layout, safetensors); the model itself is not changed."""
    import torch
    from diffusers import DiffusionPipeline
    from diffusers.utils import convert_state_dict_to_diffusers
    from peft import LoraConfig
    from peft.utils import get_peft_model_state_dict

    pipe = DiffusionPipeline.from_pretrained(model)
    torch.manual_seed(seed)
    pipe.unet.add_adapter(
        LoraConfig(
            r=4, init_lora_weights=False, target_modules=["to_q", "to_k", "to_v", "to_out.0"]
        )
    )
    layers = {
        "unet_lora_layers": convert_state_dict_to_diffusers(get_peft_model_state_dict(pipe.unet))
    }
    if text:
        for name in ("text_encoder", "text_encoder_2"):
            encoder = getattr(pipe, name, None)
            if encoder is None:
                continue
            encoder.add_adapter(
                LoraConfig(
                    r=4,
                    init_lora_weights=False,
                    target_modules=["q_proj", "k_proj", "v_proj", "out_proj"],
                )
            )
            key = (
                "text_encoder_lora_layers"
                if name == "text_encoder"
                else "text_encoder_2_lora_layers"
            )
            layers[key] = convert_state_dict_to_diffusers(get_peft_model_state_dict(encoder))
    out.mkdir(parents=True, exist_ok=True)
    type(pipe).save_lora_weights(out, **layers, safe_serialization=True)
    return out / "pytorch_lora_weights.safetensors"


@pytest.fixture(scope="session")
def lora_factory(tmp_path_factory: pytest.TempPathFactory) -> Callable[..., Path]:
    """build(model, seed=0, text=False) -> a LoRA file for that model, built once per session."""
    built: dict[tuple, Path] = {}

    def build(model: Path, seed: int = 0, text: bool = False) -> Path:
        key = (str(model), seed, text)
        if key not in built:
            built[key] = make_lora(model, tmp_path_factory.mktemp("lora"), seed, text)
        return built[key]

    return build


def make_ip_adapter(model: Path, out: Path, seed: int = 0) -> Path:
    """A random IP-Adapter for the model folder ``model``, laid out as the h94/IP-Adapter repo
    lays one out: ``ip-adapter.safetensors`` (image_proj.* and ip_adapter.N.to_k_ip/to_v_ip
    for every cross-attention, numbered as diffusers' loader expects) beside an
    ``image_encoder/`` folder holding a tiny CLIP vision model with projection."""
    import torch
    from diffusers import UNet2DConditionModel
    from safetensors.torch import save_file
    from tinymodels import tiny_clip_vision

    unet = UNet2DConditionModel.from_pretrained(model / "unet")
    cross = int(unet.config.cross_attention_dim)
    channels = list(unet.config.block_out_channels)
    torch.manual_seed(seed)
    encoder = tiny_clip_vision(32, 8).eval()
    out.mkdir(parents=True, exist_ok=True)
    encoder.save_pretrained(out / "image_encoder", safe_serialization=True)
    g = torch.Generator().manual_seed(seed + 1)
    weights = {
        "image_proj.proj.weight": torch.randn(cross * 4, 32, generator=g) * 0.2,
        "image_proj.proj.bias": torch.randn(cross * 4, generator=g) * 0.1,
        "image_proj.norm.weight": torch.ones(cross),
        "image_proj.norm.bias": torch.zeros(cross),
    }
    key = 1
    for name in unet.attn_processors:
        if name.endswith("attn1.processor"):
            continue
        if name.startswith("mid_block"):
            hidden = channels[-1]
        elif name.startswith("up_blocks"):
            hidden = list(reversed(channels))[int(name[len("up_blocks.")])]
        else:
            hidden = channels[int(name[len("down_blocks.")])]
        for part in ("to_k_ip", "to_v_ip"):
            weights[f"ip_adapter.{key}.{part}.weight"] = (
                torch.randn(hidden, cross, generator=g) * 0.3
            )
        key += 2
    save_file({k: v.contiguous() for k, v in weights.items()}, str(out / "ip-adapter.safetensors"))
    return out / "ip-adapter.safetensors"


@pytest.fixture(scope="session")
def ip_adapter_factory(tmp_path_factory: pytest.TempPathFactory) -> Callable[..., Path]:
    """build(model, seed=0) -> an IP-Adapter file (image_encoder/ beside it), built once."""
    built: dict[tuple, Path] = {}

    def build(model: Path, seed: int = 0) -> Path:
        key = (str(model), seed)
        if key not in built:
            built[key] = make_ip_adapter(model, tmp_path_factory.mktemp("ipadapter"), seed)
        return built[key]

    return build


@pytest.fixture(scope="session")
def tiny_sdxl_refiner(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny SDXL-refiner-shaped model folder: the second text encoder only, an aesthetic
    score among the size ids, saved as diffusers saves the refiner."""
    from fathom.engine.diffusion.minimodels import TINY_XL_REFINER, save_model

    return save_model(tmp_path_factory.mktemp("tiny_sdxl_refiner") / "model", TINY_XL_REFINER)
