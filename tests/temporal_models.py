"""Tiny random-weight SegFormer and moving-disc clips for the temporal segmentation, Delta
Distillation and `fathom distill` tests: models saved like a user's checkpoint folder
(safetensors + configs), clips written as real files (lossless animated WebP)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

LABELS = {0: "background", 1: "object", 2: "other"}


def build_tiny_segformer(folder: Path, size: int = 64, seed: int = 0) -> Path:
    """All four SegFormer stages (overlapping patch embeddings, spatial-reduction attention,
    Mix-FFN, the all-MLP decoder) at toy width, with its image processor at size²."""
    import torch
    from transformers import (
        SegformerConfig,
        SegformerForSemanticSegmentation,
        SegformerImageProcessor,
    )

    torch.manual_seed(seed)
    cfg = SegformerConfig(
        hidden_sizes=[8, 16, 24, 32],
        depths=[1, 1, 1, 1],
        num_attention_heads=[1, 1, 2, 2],
        decoder_hidden_size=16,
        num_labels=len(LABELS),
        id2label=LABELS,
        label2id={v: k for k, v in LABELS.items()},
    )
    model = SegformerForSemanticSegmentation(cfg).eval()
    with torch.no_grad():
        bn = model.decode_head.batch_norm  # a trained-looking BatchNorm
        bn.running_mean.uniform_(-0.2, 0.2)
        bn.running_var.uniform_(0.5, 1.5)
        # Random weights give every class nearly the same logit everywhere, offset by a
        # constant: centre each class's logits on a test frame so that the argmax follows the
        # picture and masks are neither empty nor full.
        mean = [0.485, 0.456, 0.406]
        std = [0.229, 0.224, 0.225]
        frame = torch.from_numpy(disc_frames(1, size)[0]).permute(2, 0, 1)[None]
        pixels = (frame - torch.tensor(mean)[:, None, None]) / torch.tensor(std)[:, None, None]
        logits = model(pixel_values=pixels).logits
        model.decode_head.classifier.bias -= logits.mean(dim=(0, 2, 3))
    model.save_pretrained(folder, safe_serialization=True)
    SegformerImageProcessor(size={"height": size, "width": size}).save_pretrained(folder)
    return folder


def disc_frames(n: int, size: int = 64, step: float = 2.0, seed: int = 0) -> list[np.ndarray]:
    """float32 RGB frames: a textured disc sliding right by ``step`` px a frame over a fixed
    textured background (so most of every frame is exactly unchanged)."""
    import cv2

    rng = np.random.default_rng(seed)
    bg = cv2.GaussianBlur(rng.random((size, size, 3)).astype(np.float32), (0, 0), 1.5)
    fg = cv2.GaussianBlur(rng.random((size, size, 3)).astype(np.float32), (0, 0), 1.5)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    frames = []
    for t in range(n):
        cx, cy = size * 0.25 + step * t, size * 0.5
        a = np.clip(size * 0.18 - np.hypot(xx - cx, yy - cy), 0, 1)[..., None]
        frames.append((bg * (1 - a) + (0.3 + 0.7 * fg) * a).astype(np.float32))
    return frames


def write_clip(path: Path, frames: list[np.ndarray], fps: float = 12.0) -> Path:
    """A lossless animated WebP of float frames (what Pillow and the studio's reader decode)."""
    from PIL import Image

    images = [Image.fromarray((np.clip(f, 0, 1) * 255).round().astype(np.uint8)) for f in frames]
    images[0].save(
        path,
        save_all=True,
        append_images=images[1:],
        duration=round(1000 / fps),
        lossless=True,
        loop=0,
    )
    return path


def pan_frames(n: int, size: int = 64, step: int = 4, seed: int = 0) -> list[np.ndarray]:
    """float32 RGB frames of a camera panning right by ``step`` px a frame over a smooth random
    texture: every feature moves the same way, which a delta student can learn."""
    import cv2

    rng = np.random.default_rng(seed)
    big = rng.random((size, size + step * n + 8, 3)).astype(np.float32)
    big = cv2.GaussianBlur(big, (0, 0), 2.0)
    big = (big - big.min()) / (big.max() - big.min())
    return [np.ascontiguousarray(big[:, step * t : step * t + size]) for t in range(n)]
