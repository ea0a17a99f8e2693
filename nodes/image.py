"""Image nodes: resize, crop, pad, adjust, blend, threshold, constants; the math is plain numpy."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from engine.node import Input, Node, Output, Param
from engine.types import Bool, Color, Enum, Float, Image, Int, Mask, String

#: Rec. 709 luma weights: what "luminance" means for every node here.
LUMA = np.array([0.2126, 0.7152, 0.0722], np.float32)
RESIZE_MODES = ("nearest", "bilinear", "bicubic", "lanczos", "area")
_CV2_INTERP = {"nearest": "INTER_NEAREST_EXACT", "bilinear": "INTER_LINEAR",
               "bicubic": "INTER_CUBIC", "lanczos": "INTER_LANCZOS4", "area": "INTER_AREA"}
CHANNELS = ("luminance", "r", "g", "b", "alpha")
MAX_SIDE = 16384
#: Offsets and borders may address images larger than what resize makes.
MAX_OFFSET = 65535


class BadInput(ValueError):
    """Raised by the functions below; a node turns it into a NodeError naming ``port``."""

    def __init__(self, message: str, port: str, fix: str) -> None:
        super().__init__(message)
        self.port = port
        self.fix = fix


def _guard(ctx: Any, fn: Callable[..., np.ndarray], *args: Any) -> np.ndarray:
    try:
        return fn(*args)
    except BadInput as exc:
        raise ctx.error(str(exc), port=exc.port, fix=exc.fix) from None


# --------------------------------------------------------------------------------------------
# Pure functions on float32 H×W×C arrays


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


def resize(data: np.ndarray, width: int, height: int, mode: str = "bilinear",
           keep_aspect: str = "stretch") -> np.ndarray:
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
        out = np.ascontiguousarray(out[y0:y0 + height, x0:x0 + width])
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
        raise BadInput(f"x = {x} is outside the image, which is {w} pixels wide.", "x",
                       f"set x below {w}")
    if y >= h:
        raise BadInput(f"y = {y} is outside the image, which is {h} pixels tall.", "y",
                       f"set y below {h}")
    if x + width > w:
        raise BadInput(f"x + width = {x + width} runs past the right edge ({w}).", "width",
                       f"set width to at most {w - x}, or pad the image first")
    if y + height > h:
        raise BadInput(f"y + height = {y + height} runs past the bottom edge ({h}).", "height",
                       f"set height to at most {h - y}, or pad the image first")
    return data[y:y + height, x:x + width].copy()


def pad(data: np.ndarray, top: int, bottom: int, left: int, right: int,
        mode: str = "constant", color: tuple[float, ...] = (0.0, 0.0, 0.0, 1.0)) -> np.ndarray:
    """Grow the canvas: constant fills with ``color``, edge repeats the border pixels, reflect
    mirrors the image (without repeating the edge pixel)."""
    widths = ((top, bottom), (left, right), (0, 0))
    if mode != "constant":
        return np.pad(data, widths, mode=mode).astype(np.float32, copy=False)
    h, w, c = data.shape
    out = np.empty((h + top + bottom, w + left + right, c), np.float32)
    out[:] = color_for(color, c)
    out[top:top + h, left:left + w] = data
    return out


def adjust(data: np.ndarray, brightness: float = 0.0, contrast: float = 1.0,
           saturation: float = 1.0, gamma: float = 1.0, hue: float = 0.0) -> np.ndarray:
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


def blend(base: np.ndarray, overlay: np.ndarray, mode: str = "normal", opacity: float = 1.0,
          mask: np.ndarray | None = None) -> np.ndarray:
    """base + (mode(base, overlay) − base) × opacity × overlay alpha × mask. Keeps base alpha."""
    bh, bw = base.shape[:2]
    if overlay.shape[:2] != (bh, bw):
        raise BadInput(f"overlay is {overlay.shape[1]}×{overlay.shape[0]} but base is "
                       f"{bw}×{bh}.", "overlay",
                       f"resize the overlay to {bw}×{bh} with image.resize first")
    if mask is not None and mask.shape != (bh, bw):
        raise BadInput(f"mask is {mask.shape[1]}×{mask.shape[0]} but base is {bw}×{bh}.",
                       "mask", f"resize the mask to {bw}×{bh} first")
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
            raise BadInput("the image has no alpha channel.", "channel",
                           "choose luminance, r, g or b")
        return data[:, :, 3].copy()
    color, _ = split_alpha(data)
    if channel == "luminance":
        return luminance(color).astype(np.float32)
    return color[:, :, 0 if color.shape[2] == 1 else "rgb".index(channel)].copy()


def threshold_mask(data: np.ndarray, level: float = 0.5, channel: str = "luminance",
              invert: bool = False, softness: float = 0.0) -> np.ndarray:
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


# --------------------------------------------------------------------------------------------
# Nodes

_SIDE = {"min": 1, "max": MAX_SIDE}


class Resize(Node):
    """Scale an image to a size. stretch ignores the aspect ratio; fit keeps it and fits inside
    width×height; fill keeps it, covers width×height and crops the overflow from the centre.
    area is best for shrinking, lanczos for enlarging."""

    type_id = "image.resize"
    title = "Resize"
    category = "image"
    inputs = (Input("image", Image, "image to scale"),)
    outputs = (Output("image", Image, "scaled image"),)
    params = (Param("width", Int, 512, "target width in pixels", **_SIDE),
              Param("height", Int, 512, "target height in pixels", **_SIDE),
              Param("mode", Enum, "bilinear", "resampling filter", choices=RESIZE_MODES),
              Param("keep_aspect", Enum, "stretch", "how the aspect ratio is treated",
                    choices=("stretch", "fit", "fill")))

    def run(self, ctx: Any, image: Image, width: int, height: int, mode: str,
            keep_aspect: str) -> dict[str, Any]:
        return {"image": Image(resize(image.data, width, height, mode, keep_aspect))}


class Crop(Node):
    """Cut out a rectangle. (x, y) is its top-left pixel; it must lie inside the image."""

    type_id = "image.crop"
    title = "Crop"
    category = "image"
    inputs = (Input("image", Image, "image to crop"),)
    outputs = (Output("image", Image, "the rectangle"),)
    params = (Param("x", Int, 0, "left column", min=0, max=MAX_OFFSET),
              Param("y", Int, 0, "top row", min=0, max=MAX_OFFSET),
              Param("width", Int, 256, "width in pixels", min=1, max=MAX_OFFSET),
              Param("height", Int, 256, "height in pixels", min=1, max=MAX_OFFSET))

    def run(self, ctx: Any, image: Image, x: int, y: int, width: int,
            height: int) -> dict[str, Any]:
        return {"image": Image(_guard(ctx, crop, image.data, x, y, width, height))}


class Pad(Node):
    """Add borders: a solid colour, the repeated edge pixels, or a mirror of the image."""

    type_id = "image.pad"
    title = "Pad"
    category = "image"
    inputs = (Input("image", Image, "image to pad"),)
    outputs = (Output("image", Image, "padded image"),)
    params = (*(Param(side, Int, 0, f"pixels added at the {side}", min=0, max=MAX_OFFSET)
                for side in ("top", "bottom", "left", "right")),
              Param("mode", Enum, "constant", "what fills the border",
                    choices=("constant", "edge", "reflect")),
              Param("color", Color, (0.0, 0.0, 0.0, 1.0), "border colour for constant mode"))

    def run(self, ctx: Any, image: Image, top: int, bottom: int, left: int, right: int,
            mode: str, color: tuple[float, ...]) -> dict[str, Any]:
        return {"image": Image(pad(image.data, top, bottom, left, right, mode, color))}


class Adjust(Node):
    """Brightness, contrast, saturation, hue and gamma in one node; the defaults change
    nothing. Gamma above 1 brightens mid-tones. Alpha passes through."""

    type_id = "image.adjust"
    title = "Adjust Colors"
    category = "image"
    inputs = (Input("image", Image, "image to adjust"),)
    outputs = (Output("image", Image, "adjusted image"),)
    params = (Param("brightness", Float, 0.0, "added to every channel", min=-1, max=1,
                    step=0.01),
              Param("contrast", Float, 1.0, "scale around mid-gray", min=0, max=4, step=0.01),
              Param("saturation", Float, 1.0, "0 = gray, 1 = unchanged", min=0, max=4,
                    step=0.01),
              Param("gamma", Float, 1.0, "out = in^(1/gamma)", min=0.1, max=10, step=0.01),
              Param("hue", Float, 0.0, "hue rotation in degrees", min=-180, max=180, step=1))

    def run(self, ctx: Any, image: Image, brightness: float, contrast: float, saturation: float,
            gamma: float, hue: float) -> dict[str, Any]:
        return {"image": Image(adjust(image.data, brightness, contrast, saturation, gamma, hue))}


class Blend(Node):
    """Layer an overlay on a base with a blend mode, an opacity and an optional mask (white
    shows the overlay). Both images must be the same size; the base's alpha is kept."""

    type_id = "image.blend"
    title = "Blend"
    category = "image"
    inputs = (Input("base", Image, "bottom layer"),
              Input("overlay", Image, "top layer, same size as base"),
              Input("mask", Mask, "where the overlay shows (optional)", optional=True))
    outputs = (Output("image", Image, "blended image"),)
    params = (Param("mode", Enum, "normal", "blend mode", choices=tuple(BLEND_MODES)),
              Param("opacity", Float, 1.0, "overlay strength", min=0, max=1, step=0.01))

    def run(self, ctx: Any, base: Image, overlay: Image, mode: str, opacity: float,
            mask: Mask | None = None) -> dict[str, Any]:
        m = None if mask is None else mask.data
        return {"image": Image(_guard(ctx, blend, base.data, overlay.data, mode, opacity, m))}


class Threshold(Node):
    """Make a mask from one channel: white where it is at least `threshold`. Softness widens
    the hard step into a ramp for soft edges."""

    type_id = "mask.threshold"
    title = "Threshold"
    category = "mask"
    inputs = (Input("image", Image, "image to read"),)
    outputs = (Output("mask", Mask, "the mask"),)
    params = (Param("threshold", Float, 0.5, "cut-off level", min=0, max=1, step=0.01),
              Param("channel", Enum, "luminance", "which value is compared", choices=CHANNELS),
              Param("invert", Bool, False, "white below the threshold instead"),
              Param("softness", Float, 0.0, "width of the soft ramp", min=0, max=1, step=0.01))

    def run(self, ctx: Any, image: Image, threshold: float, channel: str, invert: bool,
            softness: float) -> dict[str, Any]:
        return {"mask": Mask(_guard(ctx, threshold_mask, image.data, threshold, channel,
                                    invert, softness))}


class ConstantImage(Node):
    """A solid-colour image: a background, a canvas to pad onto, a test input."""

    type_id = "image.constant"
    title = "Solid Color"
    category = "image"
    outputs = (Output("image", Image, "the solid image"),)
    params = (Param("width", Int, 512, "width in pixels", **_SIDE),
              Param("height", Int, 512, "height in pixels", **_SIDE),
              Param("color", Color, (0.0, 0.0, 0.0, 1.0), "fill colour"),
              Param("channels", Enum, "rgb", "gray uses the colour's luminance",
                    choices=("gray", "rgb", "rgba")))

    def run(self, ctx: Any, width: int, height: int, color: tuple[float, ...],
            channels: str) -> dict[str, Any]:
        return {"image": Image(constant(width, height, color, channels))}


class Invert(Node):
    """Negative: 1 − colour for every channel but alpha."""

    type_id = "image.invert"
    title = "Invert"
    category = "image"
    inputs = (Input("image", Image, "image to invert"),)
    outputs = (Output("image", Image, "inverted image"),)

    def run(self, ctx: Any, image: Image) -> dict[str, Any]:
        return {"image": Image(invert(image.data))}


class MaskToImage(Node):
    """Show or save a mask: a gray RGB image, white where the mask is 1."""

    type_id = "mask.to_image"
    title = "Mask to Image"
    category = "mask"
    inputs = (Input("mask", Mask, "mask to show"),)
    outputs = (Output("image", Image, "gray RGB image"),)

    def run(self, ctx: Any, mask: Mask) -> dict[str, Any]:
        return {"image": Image(np.repeat(mask.data[:, :, None], 3, axis=2))}


class ImageToMask(Node):
    """Use one channel of an image (luminance, r, g, b or alpha) as a mask, unthresholded."""

    type_id = "image.to_mask"
    title = "Image to Mask"
    category = "mask"
    inputs = (Input("image", Image, "image to read"),)
    outputs = (Output("mask", Mask, "the channel as a mask"),)
    params = (Param("channel", Enum, "luminance", "which channel", choices=CHANNELS),)

    def run(self, ctx: Any, image: Image, channel: str) -> dict[str, Any]:
        return {"mask": Mask(_guard(ctx, channel_values, image.data, channel))}


class IntValue(Node):
    """A whole number to wire into several nodes at once (sizes, counts, steps)."""

    type_id = "value.int"
    title = "Integer"
    category = "value"
    outputs = (Output("value", Int, "the number"),)
    params = (Param("value", Int, 0, "the number"),)

    def run(self, ctx: Any, value: int) -> dict[str, Any]:
        return {"value": value}


class FloatValue(Node):
    """A number to wire into several nodes at once (strengths, scales)."""

    type_id = "value.float"
    title = "Number"
    category = "value"
    outputs = (Output("value", Float, "the number"),)
    params = (Param("value", Float, 0.0, "the number"),)

    def run(self, ctx: Any, value: float) -> dict[str, Any]:
        return {"value": value}


class StringValue(Node):
    """A piece of text to wire into several nodes at once (prompts, file names)."""

    type_id = "value.string"
    title = "Text"
    category = "value"
    outputs = (Output("value", String, "the text"),)
    params = (Param("value", String, "", "the text", multiline=True),)

    def run(self, ctx: Any, value: str) -> dict[str, Any]:
        return {"value": value}
