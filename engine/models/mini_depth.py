"""Random-weight Depth Anything folders for tests and benchmarks: no weights can be downloaded
here, so a model in the real family's layout is built and saved the way a checkpoint is
(safetensors + configs + its image processor), then loaded through the same code a user's folder
takes. One builder, so the tests' toy model and the benchmarks' V2 Small shape stay alike."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def save_depth_anything(
    folder: Path, height: int = 56, width: int = 56, *, v2_small: bool = False, seed: int = 0
) -> Path:
    """Save a Depth Anything to ``folder``. Default: a four-layer model 32 wide whose processor
    resizes to ``height``×``width`` exactly (multiples of 14: a grid of patches small enough for a
    test). ``v2_small``: Depth Anything V2 Small's architecture (ViT-S/14, 12 layers, 384 wide,
    its neck widths) and processor (518 on the short side, bicubic, ImageNet mean and std), the
    shape benchmarks time."""
    import torch
    from transformers import (
        DepthAnythingConfig,
        DepthAnythingForDepthEstimation,
        Dinov2Config,
        DPTImageProcessor,
    )

    vit: dict[str, Any]
    neck: dict[str, Any]
    if v2_small:
        vit = {"hidden_size": 384, "num_hidden_layers": 12, "num_attention_heads": 6}
        vit |= {"intermediate_size": 1536, "image_size": 518}
        vit["out_features"] = ["stage3", "stage6", "stage9", "stage12"]
        neck = {"reassemble_hidden_size": 384, "neck_hidden_sizes": [48, 96, 192, 384]}
        neck |= {"fusion_hidden_size": 64, "head_hidden_size": 32}
        processor = DPTImageProcessor(
            size={"height": 518, "width": 518},
            keep_aspect_ratio=True,
            ensure_multiple_of=14,
            resample=3,
            image_mean=[0.485, 0.456, 0.406],
            image_std=[0.229, 0.224, 0.225],
        )
    else:
        vit = {"hidden_size": 32, "num_hidden_layers": 4, "num_attention_heads": 2}
        vit |= {"intermediate_size": 64, "image_size": height}
        vit["out_features"] = ["stage1", "stage2", "stage3", "stage4"]
        neck = {"reassemble_hidden_size": 32, "neck_hidden_sizes": [8, 16, 32, 32]}
        neck |= {"fusion_hidden_size": 16, "head_hidden_size": 8}
        processor = DPTImageProcessor(
            size={"height": height, "width": width}, keep_aspect_ratio=False, ensure_multiple_of=14
        )
    backbone = Dinov2Config(**vit, patch_size=14, reshape_hidden_states=False)
    cfg = DepthAnythingConfig(backbone_config=backbone, patch_size=14, **neck)
    torch.manual_seed(seed)
    DepthAnythingForDepthEstimation(cfg).eval().save_pretrained(folder)
    processor.save_pretrained(folder)
    return Path(folder)
