"""Random-weight Stable-Video-Diffusion-shaped models for benchmarks and tests.

Savings that act on blocks (bypassing temporal blocks, pruning channels per level) must be
measured on a UNet with SVD's layout: four resolution levels (three with spatio-temporal
cross-attention, then one without), two layers per block, a temporal residual block beside
every spatial one. ``BENCH_SVD`` keeps that layout at a fifth of SVD-xt's width (64-128-256-256
channels instead of 320-640-1280-1280, head width 64 as in SVD) and SVD's temporal-decoder VAE
at a quarter of its width; ``TINY_SVD`` keeps the layout at toy width for tests. No weights are
downloaded; every module is initialised from a fixed seed, and the folder is saved in the
diffusers layout (safetensors) so it loads through the same code as a real checkpoint.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

# SVD-xt's scheduler_config.json (Euler, v-prediction, Karras sigmas, continuous timesteps).
SVD_SCHEDULER = {
    "beta_start": 0.00085,
    "beta_end": 0.012,
    "beta_schedule": "scaled_linear",
    "interpolation_type": "linear",
    "prediction_type": "v_prediction",
    "sigma_max": 700.0,
    "sigma_min": 0.002,
    "steps_offset": 1,
    "timestep_spacing": "leading",
    "timestep_type": "continuous",
    "use_karras_sigmas": True,
}


@dataclass(frozen=True)
class SVDSpec:
    """Widths and depths of a mini SVD (SVD-xt: 320-640-1280-1280, heads 5-10-20-20, VAE
    128-256-512-512, 25 frames, image embedding 1024)."""

    widths: tuple[int, ...] = (64, 128, 256, 256)
    heads: tuple[int, ...] = (1, 2, 4, 4)
    layers: int = 2
    embed: int = 64
    frames: int = 14
    vae_widths: tuple[int, ...] = (32, 64, 128, 128)
    vae_layers: int = 2


BENCH_SVD = SVDSpec()
TINY_SVD = SVDSpec(
    widths=(32, 32, 64, 64),
    heads=(1, 1, 2, 2),
    layers=1,
    embed=32,
    frames=4,
    vae_widths=(32, 32, 32, 32),
    vae_layers=1,
)


def build_unet(spec: SVDSpec) -> Any:
    """A random ``UNetSpatioTemporalConditionModel`` in SVD's block layout."""
    from diffusers import UNetSpatioTemporalConditionModel

    levels = len(spec.widths)
    return UNetSpatioTemporalConditionModel(
        sample_size=16,
        in_channels=8,
        out_channels=4,
        block_out_channels=spec.widths,
        down_block_types=("CrossAttnDownBlockSpatioTemporal",) * (levels - 1)
        + ("DownBlockSpatioTemporal",),
        up_block_types=("UpBlockSpatioTemporal",)
        + ("CrossAttnUpBlockSpatioTemporal",) * (levels - 1),
        layers_per_block=spec.layers,
        cross_attention_dim=spec.embed,
        num_attention_heads=spec.heads,
        addition_time_embed_dim=8,
        projection_class_embeddings_input_dim=24,
        num_frames=spec.frames,
    )


def build_pipeline(spec: SVDSpec = BENCH_SVD, seed: int = 0) -> Any:
    """A random ``StableVideoDiffusionPipeline`` of ``spec``'s shape."""
    from diffusers import (
        AutoencoderKLTemporalDecoder,
        EulerDiscreteScheduler,
        StableVideoDiffusionPipeline,
    )
    from transformers import CLIPImageProcessor, CLIPVisionConfig, CLIPVisionModelWithProjection

    torch.manual_seed(seed)
    unet = build_unet(spec)
    vae = AutoencoderKLTemporalDecoder(
        block_out_channels=spec.vae_widths,
        down_block_types=("DownEncoderBlock2D",) * len(spec.vae_widths),
        layers_per_block=spec.vae_layers,
        latent_channels=4,
    )
    encoder = CLIPVisionModelWithProjection(
        CLIPVisionConfig(
            hidden_size=32,
            projection_dim=spec.embed,
            num_hidden_layers=2,
            num_attention_heads=4,
            intermediate_size=37,
            image_size=224,
            patch_size=32,
        )
    )
    return StableVideoDiffusionPipeline(
        vae=vae,
        image_encoder=encoder,
        unet=unet,
        scheduler=EulerDiscreteScheduler(**SVD_SCHEDULER),
        feature_extractor=CLIPImageProcessor(crop_size=224, size=224),
    )


def save_svd_model(folder: str | Path, spec: SVDSpec = BENCH_SVD, seed: int = 0) -> Path:
    """Save a random mini SVD as a diffusers folder (safetensors); returns the folder."""
    out = Path(folder)
    build_pipeline(spec, seed).save_pretrained(out, safe_serialization=True)
    return out
