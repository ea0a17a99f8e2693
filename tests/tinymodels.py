"""Tiny random-weight building blocks shared by the test model builders.

The letter-level CLIP tokenizer, the 32/64-channel conditional UNet, the 4-level VAE and the
2-layer CLIP text config that conftest's Stable Diffusion, the Zero123++ and the Shap-E
builders (and a few tests) all construct the same way.
"""

from __future__ import annotations

import json
import string
from pathlib import Path
from typing import Any


def write_clip_vocab(folder: Path) -> Path:
    """A letter-level CLIP vocabulary (no merges): every prompt tokenizes, different prompts
    give different tokens."""
    chars = list(string.ascii_lowercase + string.digits + ".,!?'-")
    vocab = {c: i for i, c in enumerate(chars)}
    vocab.update({c + "</w>": len(chars) + i for i, c in enumerate(chars)})
    vocab["<|startoftext|>"] = len(vocab)
    vocab["<|endoftext|>"] = len(vocab)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "vocab.json").write_text(json.dumps(vocab))
    (folder / "merges.txt").write_text("#version: 0.2\n")
    return folder


def clip_tokenizer(folder: Path) -> Any:
    """A ``CLIPTokenizer`` on the letter-level vocabulary written into ``folder``."""
    from transformers import CLIPTokenizer

    vocab = write_clip_vocab(folder)
    return CLIPTokenizer(str(vocab / "vocab.json"), str(vocab / "merges.txt"), model_max_length=77)


def tiny_unet(in_channels: int = 4) -> Any:
    """A random ``UNet2DConditionModel``: 32/64 channels, one cross-attention level (width 32)."""
    from diffusers import UNet2DConditionModel

    return UNet2DConditionModel(
        sample_size=8,
        in_channels=in_channels,
        out_channels=4,
        block_out_channels=(32, 64),
        layers_per_block=1,
        norm_num_groups=16,
        down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
        cross_attention_dim=32,
        attention_head_dim=8,
    )


def tiny_vae(channels: int = 3, sample_size: int = 64) -> Any:
    """A random 4-level ``AutoencoderKL`` (scale 8, 4 latent channels)."""
    from diffusers import AutoencoderKL

    return AutoencoderKL(
        in_channels=channels,
        out_channels=channels,
        block_out_channels=(8, 16, 16, 16),
        layers_per_block=1,
        norm_num_groups=8,
        latent_channels=4,
        sample_size=sample_size,
        down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4,
    )


def clip_text_config(tok: Any, **sizes: int) -> Any:
    """A 2-layer ``CLIPTextConfig`` for ``tok``'s vocabulary (width 32, 4 heads unless
    ``sizes`` overrides them)."""
    from transformers import CLIPTextConfig

    dims = dict(hidden_size=32, intermediate_size=37, num_attention_heads=4, num_hidden_layers=2)
    dims.update(sizes)
    return CLIPTextConfig(
        **dims,
        vocab_size=len(tok),
        max_position_embeddings=77,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
    )


def tiny_clip_vision(image_size: int, patch_size: int) -> Any:
    """A random 2-layer ``CLIPVisionModelWithProjection`` (width 32, 4 heads, projection 32)
    on ``image_size``² inputs in ``patch_size``² patches."""
    from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

    return CLIPVisionModelWithProjection(
        CLIPVisionConfig(
            hidden_size=32,
            projection_dim=32,
            num_hidden_layers=2,
            num_attention_heads=4,
            intermediate_size=37,
            image_size=image_size,
            patch_size=patch_size,
        )
    )
