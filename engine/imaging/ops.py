"""Pure image operations on float32 H×W×C arrays in [0, 1]: resize, crop, pad, adjust, blend,
masks, and the PSNR that measures them."""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from fathom.engine.errors import BadInput

#: Rec. 709 luma weights: what "luminance" means for every node here.
LUMA = np.array([0.2126, 0.7152, 0.0722], np.float32)


RESIZE_MODES = ("nearest", "bilinear", "bicubic", "lanczos", "area")


_CV2_INTERP = {
    "nearest": "INTER_NEAREST_EXACT",
    "bilinear": "INTER_LINEAR",
    "bicubic": "INTER_CUBIC",
    "lanczos": "INTER_LANCZOS4",
    "area": "INTER_AREA",
}


CHANNELS = ("luminance", "r", "g", "b", "alpha")


MAX_SIDE = 16384


#: Offsets and borders may address images larger than what resize makes.
MAX_OFFSET = 65535


def split_alpha(data: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    """(colour H×W×{1,3}, alpha H×W×1 or None): colour math must never touch alpha."""
    if data.shape[2] == 4:
        return data[:, :, :3], data[:, :, 3:]
    return data, None


def join_alpha(color: np.ndarray, alpha: np.ndarray | None) -> np.ndarray:
    out = color if alpha is None else np.concatenate([color, alpha], axis=2)
    return np.ascontiguousarray(out, np.float32)


def luminance(color: np.ndarray) -> np.ndarray:
    """H×W luminance of H×W×{1,3} colour (a gray image is its own luminance)."""
    return color[:, :, 0] if color.shape[2] == 1 else color[:, :, :3] @ LUMA


def color_for(color: tuple[float, ...], channels: int) -> np.ndarray:
    """An RGBA parameter colour as the pixel value of an image with ``channels`` channels."""
    rgba = np.asarray(color, np.float32)
    if channels == 1:
        return np.array([rgba[:3] @ LUMA], np.float32)
    return rgba[:channels]


def resize(
    data: np.ndarray, width: int, height: int, mode: str = "bilinear", keep_aspect: str = "stretch"
) -> np.ndarray:
    """stretch: exactly width×height. fit: as large as fits inside, aspect kept (one side may
    be smaller). fill: covers width×height, aspect kept, centre-cropped to exactly that size."""
    h, w = data.shape[:2]
    if keep_aspect == "stretch":
        tw, th = width, height
    else:
        pick = min if keep_aspect == "fit" else max
        s = pick(width / w, height / h)
        tw, th = max(1, round(w * s)), max(1, round(h * s))
    out = _resample(data, tw, th, mode)
    if keep_aspect == "fill":
        x0, y0 = (tw - width) // 2, (th - height) // 2
        out = np.ascontiguousarray(out[y0 : y0 + height, x0 : x0 + width])
    return out


def _resample(data: np.ndarray, tw: int, th: int, mode: str) -> np.ndarray:
    import cv2

    if (th, tw) == data.shape[:2]:
        return data.copy()
    out = cv2.resize(data, (tw, th), interpolation=getattr(cv2, _CV2_INTERP[mode]))
    if out.ndim == 2:
        out = out[:, :, None]
    if mode in ("bicubic", "lanczos"):  # their kernels overshoot past 0 and 1 at edges
        np.clip(out, 0.0, 1.0, out=out)
    return out.astype(np.float32, copy=False)


def crop(data: np.ndarray, x: int, y: int, width: int, height: int) -> np.ndarray:
    """The width×height rectangle whose top-left pixel is (x, y); it must lie inside."""
    h, w = data.shape[:2]
    if x >= w:
        raise BadInput(
            f"x = {x} is outside the image, which is {w} pixels wide.", "x", f"set x below {w}"
        )
    if y >= h:
        raise BadInput(
            f"y = {y} is outside the image, which is {h} pixels tall.", "y", f"set y below {h}"
        )
    if x + width > w:
        raise BadInput(
            f"x + width = {x + width} runs past the right edge ({w}).",
            "width",
            f"set width to at most {w - x}, or pad the image first",
        )
    if y + height > h:
        raise BadInput(
            f"y + height = {y + height} runs past the bottom edge ({h}).",
            "height",
            f"set height to at most {h - y}, or pad the image first",
        )
    return data[y : y + height, x : x + width].copy()


def pad(
    data: np.ndarray,
    top: int,
    bottom: int,
    left: int,
    right: int,
    mode: str = "constant",
    color: tuple[float, ...] = (0.0, 0.0, 0.0, 1.0),
) -> np.ndarray:
    """Grow the canvas: constant fills with ``color``, edge repeats the border pixels, reflect
    mirrors the image (without repeating the edge pixel)."""
    widths = ((top, bottom), (left, right), (0, 0))
    if mode != "constant":
        padded = np.pad(data, widths, mode=mode)  # type: ignore[call-overload]  # mode: str
        return padded.astype(np.float32, copy=False)
    h, w, c = data.shape
    out = np.empty((h + top + bottom, w + left + right, c), np.float32)
    out[:] = color_for(color, c)
    out[top : top + h, left : left + w] = data
    return out


def adjust(
    data: np.ndarray,
    brightness: float = 0.0,
    contrast: float = 1.0,
    saturation: float = 1.0,
    gamma: float = 1.0,
    hue: float = 0.0,
) -> np.ndarray:
    """In order: add brightness; scale contrast around mid-gray; mix saturation against
    luminance; rotate hue (degrees); out = in^(1/gamma). Each step at its default is skipped,
    so the defaults return the image bit for bit. Alpha is untouched."""
    color, alpha = split_alpha(data)
    out = color
    if brightness != 0.0:
        out = out + np.float32(brightness)
    if contrast != 1.0:
        out = (out - np.float32(0.5)) * np.float32(contrast) + np.float32(0.5)
    if saturation != 1.0 and out.shape[2] == 3:
        gray = luminance(out)[:, :, None]
        out = gray + (out - gray) * np.float32(saturation)
    if hue != 0.0 and out.shape[2] == 3:
        out = hue_rotate(np.clip(out, 0.0, 1.0), hue)
    if gamma != 1.0:
        out = np.clip(out, 0.0, 1.0) ** np.float32(1.0 / gamma)
    return join_alpha(np.clip(out, 0.0, 1.0), alpha)


def hue_rotate(rgb: np.ndarray, degrees: float) -> np.ndarray:
    import cv2

    hsv = cv2.cvtColor(np.ascontiguousarray(rgb, np.float32), cv2.COLOR_RGB2HSV)
    hsv[:, :, 0] = np.mod(hsv[:, :, 0] + np.float32(degrees), 360.0)
    return cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)


def _overlay(b: np.ndarray, o: np.ndarray) -> np.ndarray:
    return np.where(b < 0.5, 2 * b * o, 1 - 2 * (1 - b) * (1 - o))


BLEND_MODES: dict[str, Callable[[np.ndarray, np.ndarray], np.ndarray]] = {
    "normal": lambda b, o: o,
    "multiply": lambda b, o: b * o,
    "screen": lambda b, o: 1 - (1 - b) * (1 - o),
    "add": lambda b, o: np.minimum(b + o, 1.0),
    "overlay": _overlay,
    "difference": lambda b, o: np.abs(b - o),
}


def blend(
    base: np.ndarray,
    overlay: np.ndarray,
    mode: str = "normal",
    opacity: float = 1.0,
    mask: np.ndarray | None = None,
) -> np.ndarray:
    """base + (mode(base, overlay) − base) × opacity × overlay alpha × mask. Keeps base alpha."""
    bh, bw = base.shape[:2]
    if overlay.shape[:2] != (bh, bw):
        raise BadInput(
            f"overlay is {overlay.shape[1]}×{overlay.shape[0]} but base is {bw}×{bh}.",
            "overlay",
            f"resize the overlay to {bw}×{bh} with image.resize first",
        )
    if mask is not None and mask.shape != (bh, bw):
        raise BadInput(
            f"mask is {mask.shape[1]}×{mask.shape[0]} but base is {bw}×{bh}.",
            "mask",
            f"resize the mask to {bw}×{bh} first",
        )
    b, b_alpha = split_alpha(base)
    o, o_alpha = split_alpha(overlay)
    if b.shape[2] != o.shape[2]:  # one is gray: compose in colour
        b, o = np.broadcast_to(b, (bh, bw, 3)), np.broadcast_to(o, (bh, bw, 3))
    amount = np.full((bh, bw, 1), opacity, np.float32)
    if o_alpha is not None:
        amount = amount * o_alpha
    if mask is not None:
        amount = amount * mask[:, :, None]
    mixed = BLEND_MODES[mode](b, o)
    return join_alpha(np.clip(b + (mixed - b) * amount, 0.0, 1.0), b_alpha)


def channel_values(data: np.ndarray, channel: str) -> np.ndarray:
    """H×W values of one channel; r, g and b of a gray image are its single channel."""
    if channel == "alpha":
        if data.shape[2] != 4:
            raise BadInput(
                "the image has no alpha channel.", "channel", "choose luminance, r, g or b"
            )
        return data[:, :, 3].copy()
    color, _ = split_alpha(data)
    if channel == "luminance":
        return luminance(color).astype(np.float32)
    return color[:, :, 0 if color.shape[2] == 1 else "rgb".index(channel)].copy()


def threshold_mask(
    data: np.ndarray,
    level: float = 0.5,
    channel: str = "luminance",
    invert: bool = False,
    softness: float = 0.0,
) -> np.ndarray:
    """1 where the channel is >= level, else 0; softness > 0 makes a linear ramp of that
    width centred on the level (soft edges for compositing)."""
    v = channel_values(data, channel)
    if softness > 0:
        m = np.clip((v - level) / softness + 0.5, 0.0, 1.0)
    else:
        m = (v >= level).astype(np.float32)
    return (1.0 - m if invert else m).astype(np.float32)


def invert(data: np.ndarray) -> np.ndarray:
    color, alpha = split_alpha(data)
    return join_alpha(1.0 - color, alpha)


def constant(width: int, height: int, color: tuple[float, ...], channels: str) -> np.ndarray:
    n = {"gray": 1, "rgb": 3, "rgba": 4}[channels]
    out = np.empty((height, width, n), np.float32)
    out[:] = color_for(color, n)
    return out


def psnr(a: np.ndarray, b: np.ndarray, mask: np.ndarray | None = None) -> float:
    """Peak signal-to-noise ratio for images in [0,1], over ``mask`` if given."""
    diff = (np.asarray(a, np.float64) - np.asarray(b, np.float64)) ** 2
    if mask is not None:
        diff = diff[mask.astype(bool)]
    mse = float(diff.mean()) if diff.size else 0.0
    return float("inf") if mse == 0 else 10 * math.log10(1.0 / mse)


def edges(data: np.ndarray, low: float, high: float, blur: float = 0.0) -> np.ndarray:
    """Canny edges of an image as white lines on black (H×W×3 in {0, 1}): the control image
    edge ControlNets take. ``low``/``high`` are the hysteresis thresholds in [0, 1] of the
    8-bit gradient range; ``blur`` (a Gaussian sigma in pixels) quiets texture first."""
    import cv2

    if not 0 <= low <= high <= 1:
        raise BadInput(
            f"thresholds {low:g} and {high:g} must satisfy 0 <= low <= high <= 1",
            "low",
            "lower `low` below `high`",
        )
    grey = (np.clip(luminance(split_alpha(data)[0]), 0, 1) * 255).astype(np.uint8)
    if blur > 0:
        grey = cv2.GaussianBlur(grey, (0, 0), blur)
    found = cv2.Canny(grey, low * 255, high * 255) > 0
    return np.repeat(found[:, :, None], 3, axis=2).astype(np.float32)
