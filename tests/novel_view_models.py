"""Tiny random-weight Zero123-family folders, saved in the published diffusers layout.

Why: the novel-view tests and bench must load a model through the same code path a user's
``kxic/zero123-xl`` folder takes (model_index.json naming a community ``CCProjection``,
safetensors weights in unet/, vae/, image_encoder/, cc_projection/, scheduler/), without any
download. Random weights make no real views, but conditioning, pooling and sampling are real.
"""

from __future__ import annotations

import json
from pathlib import Path

#: Embedding width of the tiny model (768 in the real one).
WIDTH = 32


def build_tiny_zero123(
    folder: Path,
    seed: int = 0,
    blocks: tuple[int, ...] = (32, 64),
    aggregator_tokens: int = 0,
) -> Path:
    """A Zero123-shaped folder: UNet with 8 input channels attending to WIDTH-wide tokens, a
    4-level VAE (scale 8), a 2-layer CLIP vision encoder (32² input), a (WIDTH+4)→WIDTH pose
    projection and Zero123's DDIM scheduler settings. ``aggregator_tokens`` > 0 adds a trained
    aggregator's weights (random) in the layout ``engine.models.zero123`` reads."""
    import torch
    from diffusers import AutoencoderKL, DDIMScheduler, UNet2DConditionModel
    from safetensors.torch import save_file
    from transformers import CLIPImageProcessor, CLIPVisionConfig, CLIPVisionModelWithProjection

    torch.manual_seed(seed)
    out = folder / "zero123"
    down = ("CrossAttnDownBlock2D",) + ("DownBlock2D",) * (len(blocks) - 1)
    up = ("UpBlock2D",) * (len(blocks) - 1) + ("CrossAttnUpBlock2D",)
    UNet2DConditionModel(
        sample_size=8,
        in_channels=8,
        out_channels=4,
        block_out_channels=blocks,
        layers_per_block=1,
        norm_num_groups=16,
        down_block_types=down,
        up_block_types=up,
        cross_attention_dim=WIDTH,
        attention_head_dim=8,
    ).save_pretrained(out / "unet", safe_serialization=True)
    AutoencoderKL(
        block_out_channels=(8, 16, 16, 16),
        layers_per_block=1,
        norm_num_groups=8,
        latent_channels=4,
        sample_size=64,
        down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4,
    ).save_pretrained(out / "vae", safe_serialization=True)
    CLIPVisionModelWithProjection(
        CLIPVisionConfig(
            hidden_size=32,
            intermediate_size=37,
            projection_dim=WIDTH,
            num_hidden_layers=2,
            num_attention_heads=4,
            image_size=32,
            patch_size=8,
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
    proj = torch.nn.Linear(WIDTH + 4, WIDTH)
    (out / "cc_projection").mkdir(parents=True)
    (out / "cc_projection" / "config.json").write_text('{"_class_name": "CCProjection"}')
    save_file(
        {"projection.weight": proj.weight.detach(), "projection.bias": proj.bias.detach()},
        str(out / "cc_projection" / "diffusion_pytorch_model.safetensors"),
    )
    if aggregator_tokens:
        (out / "aggregator").mkdir()
        g = torch.Generator().manual_seed(seed + 7)
        agg = {"queries": torch.randn(aggregator_tokens, WIDTH, generator=g)}
        agg["pose_proj.weight"] = torch.randn(WIDTH, 4, generator=g) * 0.1
        for name in ("to_q", "to_k", "to_v", "to_out"):
            agg[f"{name}.weight"] = torch.randn(WIDTH, WIDTH, generator=g) / WIDTH**0.5
        save_file(agg, str(out / "aggregator" / "aggregator.safetensors"))
    index = {
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
    (out / "model_index.json").write_text(json.dumps(index, indent=2))
    return out
