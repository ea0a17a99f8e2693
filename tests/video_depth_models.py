"""Tiny random-weight Depth Anything models for the video depth tests, saved like checkpoints
(safetensors + configs) so they load through the same code as a user's, and smooth synthetic
clips (a textured disc moving over a textured background) to run them on."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from fathom.engine.models.mini_depth import save_depth_anything


def build_depth_anything(folder: Path, height: int = 112, width: int = 112) -> Path:
    """A four-layer Depth Anything at toy width whose processor resizes to ``height``×``width``
    (a grid of (height/14)×(width/14) patches, so tiles and token subsets are exercised)."""
    return save_depth_anything(folder, height, width)


def build_tiny_dpt(folder: Path) -> Path:
    """A DPT (ViT backbone, not DINOv2) at toy width: a depth model that the layer-by-layer
    temporal modes and Delta-Distillation students cannot run."""
    import torch
    from transformers import DPTConfig, DPTForDepthEstimation, DPTImageProcessor

    cfg = DPTConfig(hidden_size=32, num_hidden_layers=4, num_attention_heads=2,
                    intermediate_size=64, image_size=64, patch_size=16,
                    neck_hidden_sizes=[8, 16, 32, 32], fusion_hidden_size=16)  # fmt: skip
    torch.manual_seed(0)
    DPTForDepthEstimation(cfg).save_pretrained(folder)
    DPTImageProcessor(size={"height": 64, "width": 64}).save_pretrained(folder)
    return folder


def disc_clip(frames: int, size: int = 64, step: float = 1.5, seed: int = 0) -> list[np.ndarray]:
    """H×W×3 float frames: a bright textured disc moving ``step`` px per frame to the right
    over a fixed textured background (only the disc's neighbourhood changes)."""
    import cv2

    rng = np.random.default_rng(seed)
    bg = cv2.GaussianBlur(rng.random((size, size, 3)).astype(np.float32), (0, 0), 2.0) * 0.6
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    out = []
    for t in range(frames):
        cx, cy, r = size * 0.3 + step * t, size * 0.5, size * 0.15
        disc = np.clip(r + 0.5 - np.hypot(xx - cx, yy - cy), 0, 1)[..., None]
        fg = 0.7 + 0.3 * np.sin(xx[..., None] * 0.5 + np.arange(3))
        out.append((bg * (1 - disc) + fg * disc).astype(np.float32))
    return out
