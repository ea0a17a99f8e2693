"""Hole filling for rendered views: classic inpainting, feathered weights and compositing."""

from __future__ import annotations

import numpy as np


def inpaint(image: np.ndarray, mask: np.ndarray, radius: int, method: str) -> np.ndarray:
    """OpenCV inpainting of ``mask`` > 0.5 in a float [0,1] image (8-bit precision inside the
    holes only; pixels outside the mask are returned exactly)."""
    import cv2

    holes = mask > 0.5
    if not holes.any():
        return image.copy()
    rgb = image[..., :3]
    u8 = (np.clip(rgb, 0, 1) * 255).round().astype(np.uint8)
    flag = cv2.INPAINT_TELEA if method == "telea" else cv2.INPAINT_NS
    filled = cv2.inpaint(u8, holes.astype(np.uint8), radius, flag).astype(np.float32) / 255.0
    if filled.ndim == 2:  # a one-channel image comes back without its channel axis
        filled = filled[..., None]
    out = image.copy()
    out[..., :3] = np.where(holes[..., None], filled, rgb)
    return out


def feather_weights(holes: np.ndarray, feather: int) -> np.ndarray:
    """How much of a generated fill each pixel takes: 1 from ``feather`` pixels inside a hole
    on, ramping down towards the hole's border, 0 outside. A soft edge inside the hole, so
    pixels outside it stay exactly as they were."""
    if feather <= 0:
        return holes.astype(np.float32)
    import cv2

    dist = cv2.distanceTransform(holes.astype(np.uint8), cv2.DIST_L2, 5)
    return np.clip(dist / float(feather + 1), 0.0, 1.0).astype(np.float32)


def composite_fill(
    image: np.ndarray,
    fill: np.ndarray,
    holes: np.ndarray,
    weights: np.ndarray,
    base: np.ndarray | None = None,
) -> np.ndarray:
    """``image`` with its hole pixels replaced by ``fill``, blended over ``base`` (a classical
    fill of the same holes) by ``weights``; every pixel outside the holes is returned exactly."""
    out = image.copy()
    rgb = image[..., :3]
    w = weights[..., None]
    under = base[..., :3] if base is not None else rgb
    fill = fill[..., :3]
    if rgb.shape[-1] == 1 and fill.shape[-1] == 3:  # a grey image takes the fill's grey
        fill = fill.mean(axis=-1, keepdims=True)
    inside = under * (1.0 - w) + fill * w
    out[..., :3] = np.where(holes[..., None], inside, rgb).astype(image.dtype)
    return out
