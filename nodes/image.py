"""Image nodes: resize, crop, pad, adjust, blend, threshold, constants; the math is plain numpy."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from fathom.engine.context import NodeContext
from fathom.engine.errors import BadInput
from fathom.engine.imaging.ops import (
    BLEND_MODES,
    CHANNELS,
    MAX_OFFSET,
    MAX_SIDE,
    RESIZE_MODES,
    adjust,
    blend,
    channel_values,
    constant,
    crop,
    edges,
    invert,
    pad,
    resize,
    threshold_mask,
)
from fathom.engine.node import Input, Node, Ordered, Output, Param
from fathom.engine.types import Bool, Color, Enum, Float, Image, Int, Mask, String


def _guard(ctx: NodeContext, fn: Callable[..., np.ndarray], *args: Any) -> np.ndarray:
    try:
        return fn(*args)
    except BadInput as exc:
        raise ctx.refuse(exc) from None


# --------------------------------------------------------------------------------------------
# Pure functions on float32 H×W×C arrays


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
    params = (
        Param("width", Int, 512, "target width in pixels", **_SIDE),
        Param("height", Int, 512, "target height in pixels", **_SIDE),
        Param("mode", Enum, "bilinear", "resampling filter", choices=RESIZE_MODES),
        Param(
            "keep_aspect",
            Enum,
            "stretch",
            "how the aspect ratio is treated",
            choices=("stretch", "fit", "fill"),
        ),
    )

    def run(
        self, ctx: NodeContext, image: Image, width: int, height: int, mode: str, keep_aspect: str
    ) -> dict[str, Any]:
        return {"image": Image(resize(image.data, width, height, mode, keep_aspect))}


class Crop(Node):
    """Cut out a rectangle. (x, y) is its top-left pixel; it must lie inside the image."""

    type_id = "image.crop"
    title = "Crop"
    category = "image"
    inputs = (Input("image", Image, "image to crop"),)
    outputs = (Output("image", Image, "the rectangle"),)
    params = (
        Param("x", Int, 0, "left column", min=0, max=MAX_OFFSET),
        Param("y", Int, 0, "top row", min=0, max=MAX_OFFSET),
        Param("width", Int, 256, "width in pixels", min=1, max=MAX_OFFSET),
        Param("height", Int, 256, "height in pixels", min=1, max=MAX_OFFSET),
    )

    def run(
        self, ctx: NodeContext, image: Image, x: int, y: int, width: int, height: int
    ) -> dict[str, Any]:
        return {"image": Image(_guard(ctx, crop, image.data, x, y, width, height))}


class Pad(Node):
    """Add borders: a solid colour, the repeated edge pixels, or a mirror of the image."""

    type_id = "image.pad"
    title = "Pad"
    category = "image"
    inputs = (Input("image", Image, "image to pad"),)
    outputs = (Output("image", Image, "padded image"),)
    params = (
        *(
            Param(side, Int, 0, f"pixels added at the {side}", min=0, max=MAX_OFFSET)
            for side in ("top", "bottom", "left", "right")
        ),
        Param(
            "mode",
            Enum,
            "constant",
            "what fills the border",
            choices=("constant", "edge", "reflect"),
        ),
        Param("color", Color, (0.0, 0.0, 0.0, 1.0), "border colour for constant mode"),
    )

    def run(
        self,
        ctx: NodeContext,
        image: Image,
        top: int,
        bottom: int,
        left: int,
        right: int,
        mode: str,
        color: tuple[float, ...],
    ) -> dict[str, Any]:
        return {"image": Image(pad(image.data, top, bottom, left, right, mode, color))}


class Adjust(Node):
    """Brightness, contrast, saturation, hue and gamma in one node; the defaults change
    nothing. Gamma above 1 brightens mid-tones. Alpha passes through."""

    type_id = "image.adjust"
    title = "Adjust Colors"
    category = "image"
    inputs = (Input("image", Image, "image to adjust"),)
    outputs = (Output("image", Image, "adjusted image"),)
    params = (
        Param("brightness", Float, 0.0, "added to every channel", min=-1, max=1, step=0.01),
        Param("contrast", Float, 1.0, "scale around mid-gray", min=0, max=4, step=0.01),
        Param("saturation", Float, 1.0, "0 = gray, 1 = unchanged", min=0, max=4, step=0.01),
        Param("gamma", Float, 1.0, "out = in^(1/gamma)", min=0.1, max=10, step=0.01),
        Param("hue", Float, 0.0, "hue rotation in degrees", min=-180, max=180, step=1),
    )

    def run(
        self,
        ctx: NodeContext,
        image: Image,
        brightness: float,
        contrast: float,
        saturation: float,
        gamma: float,
        hue: float,
    ) -> dict[str, Any]:
        return {"image": Image(adjust(image.data, brightness, contrast, saturation, gamma, hue))}


class Blend(Node):
    """Layer an overlay on a base with a blend mode, an opacity and an optional mask (white
    shows the overlay). Both images must be the same size; the base's alpha is kept."""

    type_id = "image.blend"
    title = "Blend"
    category = "image"
    inputs = (
        Input("base", Image, "bottom layer"),
        Input("overlay", Image, "top layer, same size as base"),
        Input("mask", Mask, "where the overlay shows (optional)", optional=True),
    )
    outputs = (Output("image", Image, "blended image"),)
    params = (
        Param("mode", Enum, "normal", "blend mode", choices=tuple(BLEND_MODES)),
        Param("opacity", Float, 1.0, "overlay strength", min=0, max=1, step=0.01),
    )

    def run(
        self,
        ctx: NodeContext,
        base: Image,
        overlay: Image,
        mode: str,
        opacity: float,
        mask: Mask | None = None,
    ) -> dict[str, Any]:
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
    params = (
        Param("threshold", Float, 0.5, "cut-off level", min=0, max=1, step=0.01),
        Param("channel", Enum, "luminance", "which value is compared", choices=CHANNELS),
        Param("invert", Bool, False, "white below the threshold instead"),
        Param("softness", Float, 0.0, "width of the soft ramp", min=0, max=1, step=0.01),
    )

    def run(
        self,
        ctx: NodeContext,
        image: Image,
        threshold: float,
        channel: str,
        invert: bool,
        softness: float,
    ) -> dict[str, Any]:
        return {
            "mask": Mask(
                _guard(ctx, threshold_mask, image.data, threshold, channel, invert, softness)
            )
        }


class ConstantImage(Node):
    """A solid-colour image: a background, a canvas to pad onto, a test input."""

    type_id = "image.constant"
    title = "Solid Color"
    category = "image"
    outputs = (Output("image", Image, "the solid image"),)
    params = (
        Param("width", Int, 512, "width in pixels", **_SIDE),
        Param("height", Int, 512, "height in pixels", **_SIDE),
        Param("color", Color, (0.0, 0.0, 0.0, 1.0), "fill colour"),
        Param(
            "channels",
            Enum,
            "rgb",
            "gray uses the colour's luminance",
            choices=("gray", "rgb", "rgba"),
        ),
    )

    def run(
        self, ctx: NodeContext, width: int, height: int, color: tuple[float, ...], channels: str
    ) -> dict[str, Any]:
        return {"image": Image(constant(width, height, color, channels))}


class Edges(Node):
    """Canny edges as white lines on black: the control image edge (canny) ControlNets take.
    Thresholds are fractions of the 8-bit gradient range; a blur first ignores fine texture."""

    type_id = "image.edges"
    title = "Edges (Canny)"
    category = "image"
    inputs = (Input("image", Image, "the picture to trace"),)
    outputs = (Output("image", Image, "white edges on black"),)
    params = (
        Param("low", Float, 0.4, "lower hysteresis threshold", min=0, max=1, step=0.01),
        Param("high", Float, 0.8, "upper hysteresis threshold", min=0, max=1, step=0.01),
        Param("blur", Float, 0.0, "Gaussian blur sigma before (pixels)", min=0, max=20, step=0.5),
    )
    constraints = (Ordered("low", "high", strict=False),)

    def run(
        self, ctx: NodeContext, image: Image, low: float, high: float, blur: float
    ) -> dict[str, Any]:
        return {"image": Image(_guard(ctx, edges, image.data, low, high, blur))}


class Invert(Node):
    """Negative: 1 − colour for every channel but alpha."""

    type_id = "image.invert"
    title = "Invert"
    category = "image"
    inputs = (Input("image", Image, "image to invert"),)
    outputs = (Output("image", Image, "inverted image"),)

    def run(self, ctx: NodeContext, image: Image) -> dict[str, Any]:
        return {"image": Image(invert(image.data))}


class MaskToImage(Node):
    """Show or save a mask: a gray RGB image, white where the mask is 1."""

    type_id = "mask.to_image"
    title = "Mask to Image"
    category = "mask"
    inputs = (Input("mask", Mask, "mask to show"),)
    outputs = (Output("image", Image, "gray RGB image"),)

    def run(self, ctx: NodeContext, mask: Mask) -> dict[str, Any]:
        return {"image": Image(np.repeat(mask.data[:, :, None], 3, axis=2))}


class ImageToMask(Node):
    """Use one channel of an image (luminance, r, g, b or alpha) as a mask, unthresholded."""

    type_id = "image.to_mask"
    title = "Image to Mask"
    category = "mask"
    inputs = (Input("image", Image, "image to read"),)
    outputs = (Output("mask", Mask, "the channel as a mask"),)
    params = (Param("channel", Enum, "luminance", "which channel", choices=CHANNELS),)

    def run(self, ctx: NodeContext, image: Image, channel: str) -> dict[str, Any]:
        return {"mask": Mask(_guard(ctx, channel_values, image.data, channel))}


class IntValue(Node):
    """A whole number to wire into several nodes at once (sizes, counts, steps)."""

    type_id = "value.int"
    title = "Integer"
    category = "value"
    outputs = (Output("value", Int, "the number"),)
    params = (Param("value", Int, 0, "the number"),)

    def run(self, ctx: NodeContext, value: int) -> dict[str, Any]:
        return {"value": value}


class FloatValue(Node):
    """A number to wire into several nodes at once (strengths, scales)."""

    type_id = "value.float"
    title = "Number"
    category = "value"
    outputs = (Output("value", Float, "the number"),)
    params = (Param("value", Float, 0.0, "the number"),)

    def run(self, ctx: NodeContext, value: float) -> dict[str, Any]:
        return {"value": value}


class StringValue(Node):
    """A piece of text to wire into several nodes at once (prompts, file names)."""

    type_id = "value.string"
    title = "Text"
    category = "value"
    main_params = ("value",)
    outputs = (Output("value", String, "the text"),)
    params = (Param("value", String, "", "the text", multiline=True),)

    def run(self, ctx: NodeContext, value: str) -> dict[str, Any]:
        return {"value": value}
