"""Tiny random-weight models for the text/photo-to-3D examples and the depth node tests, saved
like real checkpoints (safetensors + configs) so they load through the same code as a user's
models."""

from __future__ import annotations

from pathlib import Path


def build_tiny_depth(folder: Path) -> Path:
    """A Depth Anything (the family of the examples' default, V2 Small) at toy width, 56²."""
    from transformers import (
        DepthAnythingConfig,
        DepthAnythingForDepthEstimation,
        Dinov2Config,
        DPTImageProcessor,
    )

    backbone = Dinov2Config(
        hidden_size=32,
        num_hidden_layers=4,
        num_attention_heads=2,
        intermediate_size=64,
        image_size=56,
        patch_size=14,
        out_features=["stage1", "stage2", "stage3", "stage4"],
        reshape_hidden_states=False,
    )
    cfg = DepthAnythingConfig(
        backbone_config=backbone,
        reassemble_hidden_size=32,
        neck_hidden_sizes=[8, 16, 32, 32],
        fusion_hidden_size=16,
        head_hidden_size=8,
        patch_size=14,
    )
    import torch

    torch.manual_seed(0)
    DepthAnythingForDepthEstimation(cfg).eval().save_pretrained(folder)
    DPTImageProcessor(
        size={"height": 56, "width": 56}, keep_aspect_ratio=False, ensure_multiple_of=14
    ).save_pretrained(folder)
    return folder
