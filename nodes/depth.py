"""Depth nodes: monocular estimation through the model manager, and the tools depth maps need."""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from fathom.engine.context import NodeContext
from fathom.engine.errors import BadInput, Problem
from fathom.engine.geometry import projection
from fathom.engine.imaging import depthmath
from fathom.engine.models.depth import is_metric_model, load_marigold, load_transformers_depth
from fathom.engine.node import Input, Node, Ordered, Output, Param
from fathom.engine.types import Bool, Camera, Depth, Enum, Float, Image, Int, Mask, Seed, String

DEFAULT_DEPTH_MODEL = "depth-anything/Depth-Anything-V2-Small-hf"


# ---- estimation ------------------------------------------------------------------------------


class EstimateDepth(Node):
    """Monocular depth from one image with a transformers depth model (Depth Anything V2, DPT,
    ZoeDepth) or Marigold through diffusers. Relative models give depth with 0 = nearest and
    1 = farthest (ordered like disparity: convert with depth.to_metric, mapping 'inverse');
    metric models give metres."""

    type_id = "depth.estimate"
    title = "Estimate Depth"
    category = "depth"
    main_params = ("model", "steps")
    #: The model families it runs (``engine.models.families``): what the studio's model
    #: picker offers for ``model``.
    families: ClassVar[tuple[str, ...]] = ("depth",)
    inputs = (Input("image", Image, "colour image"),)
    outputs = (Output("depth", Depth, "depth at the image's size"),)
    params = (
        Param("model", String, DEFAULT_DEPTH_MODEL, "model folder or Hugging Face id (cached)"),
        Param(
            "backend", Enum, "transformers", "model family", choices=("transformers", "marigold")
        ),
        Param("steps", Int, 4, "denoising steps (Marigold only)", min=1, max=50),
        Param("ensemble", Int, 1, "predictions averaged (Marigold only)", min=1, max=10),
        Param("seed", Seed, 0, "noise seed (Marigold only)"),
    )

    @classmethod
    def check(cls, params: dict[str, Any], ctx: NodeContext) -> list[Problem]:
        from fathom.engine.generation import family_problems
        from fathom.engine.models import ModelError, locate_model

        try:
            path = locate_model(params["model"], ctx.options.base_dir)
        except ModelError as exc:
            return [Problem(str(exc), ctx.node_id, "model")]
        return family_problems(cls, path, ctx)

    def run(
        self,
        ctx: NodeContext,
        image: Image,
        model: str,
        backend: str,
        steps: int,
        ensemble: int,
        seed: int,
    ) -> dict[str, Any]:
        import torch

        dev, dtype = ctx.device.torch_device, ctx.device.dtype
        rgb8 = (np.clip(image.rgb(), 0, 1) * 255).astype(np.uint8)
        if backend == "marigold":
            pipe = ctx.load_model("marigold-depth", model, lambda p: load_marigold(p, dev, dtype))
            from PIL import Image as PILImage

            gen = torch.Generator(device="cpu").manual_seed(seed)
            out = pipe(
                PILImage.fromarray(rgb8),
                num_inference_steps=steps,
                ensemble_size=ensemble,
                generator=gen,
                processing_resolution=max(image.width, image.height),
            )
            pred = np.asarray(out.prediction, np.float32).reshape(out.prediction.shape[-3:-1])
            return {"depth": Depth(_fit(pred, image), kind="relative")}
        processor, net = ctx.load_model(
            "transformers-depth", model, lambda p: load_transformers_depth(p, dev, dtype)
        )
        ctx.progress(0.2, "predicting depth")
        inputs = processor(images=rgb8, return_tensors="pt")
        inputs = {
            k: v.to(dev, dtype=net.dtype if v.is_floating_point() else None)
            for k, v in inputs.items()
        }
        with torch.inference_mode():
            pred = net(**inputs).predicted_depth
            pred = torch.nn.functional.interpolate(
                pred[:, None].float(),
                size=(image.height, image.width),
                mode="bicubic",
                align_corners=False,
            )[0, 0]
        arr = pred.cpu().numpy().astype(np.float32)
        if is_metric_model(net):
            return {"depth": Depth(np.where(arr > 0, arr, np.nan), kind="metric")}
        # Relative models predict disparity-like values (large = near): flip to 0 = near.
        rel = 1.0 - depthmath.normalize(arr, positive_only=False)
        return {"depth": Depth(rel, kind="relative")}


def _fit(pred: np.ndarray, image: Image) -> np.ndarray:
    if pred.shape == (image.height, image.width):
        return pred
    import cv2

    return cv2.resize(pred, (image.width, image.height), interpolation=cv2.INTER_CUBIC)


# ---- tools -----------------------------------------------------------------------------------


class NormalizeDepth(Node):
    """Rescale depth to [0, 1] between two percentiles: a relative depth, robust to outliers."""

    type_id = "depth.normalize"
    title = "Normalize Depth"
    category = "depth"
    inputs = (Input("depth", Depth),)
    outputs = (Output("depth", Depth),)
    params = (
        Param("low_percentile", Float, 0.0, "maps to 0", min=0, max=100),
        Param("high_percentile", Float, 100.0, "maps to 1", min=0, max=100),
    )
    constraints = (
        Ordered("low_percentile", "high_percentile", why="the range between them is empty"),
    )

    def run(
        self, ctx: NodeContext, depth: Depth, low_percentile: float, high_percentile: float
    ) -> dict[str, Any]:
        if low_percentile >= high_percentile:
            raise ctx.error(
                "low_percentile must be below high_percentile",
                port="low_percentile",
                fix="e.g. 2 and 98",
            )
        return {
            "depth": Depth(
                depthmath.normalize(depth.data, low_percentile, high_percentile), kind="relative"
            )
        }


class InvertDepth(Node):
    """Flip near and far: 'flip' maps relative d to 1 − d; 'reciprocal' maps z to 1/z (depth ↔
    disparity)."""

    type_id = "depth.invert"
    title = "Invert Depth"
    category = "depth"
    inputs = (Input("depth", Depth),)
    outputs = (Output("depth", Depth),)
    params = (Param("mode", Enum, "flip", "how to invert", choices=("flip", "reciprocal")),)

    def run(self, ctx: NodeContext, depth: Depth, mode: str) -> dict[str, Any]:
        d = depth.data
        if mode == "flip":
            if depth.kind != "relative":
                raise ctx.error(
                    "'flip' needs relative depth in [0, 1]",
                    port="depth",
                    fix="use mode 'reciprocal', or depth.normalize first",
                )
            return {"depth": Depth(np.where(np.isfinite(d), 1.0 - d, np.nan), "relative")}
        with np.errstate(divide="ignore", invalid="ignore"):
            out = np.where(depthmath.valid_mask(d), 1.0 / d, np.nan)
        return {"depth": Depth(out, "relative")}


class DepthToMetric(Node):
    """Give relative depth a scale: 0 becomes `near` metres and 1 becomes `far`."""

    type_id = "depth.to_metric"
    title = "Relative → Metric"
    category = "depth"
    inputs = (Input("depth", Depth, "relative depth in [0, 1]"),)
    outputs = (Output("depth", Depth, "metric depth"),)
    params = (
        Param("near", Float, 1.0, "metres at relative 0", min=1e-4, max=1e6),
        Param("far", Float, 10.0, "metres at relative 1", min=1e-4, max=1e6),
        Param(
            "mapping",
            Enum,
            "inverse",
            "interpolate in 1/z (disparity) or z",
            choices=("inverse", "linear"),
        ),
    )
    constraints = (Ordered("near", "far", why="near things must be closer than far ones"),)

    def run(
        self, ctx: NodeContext, depth: Depth, near: float, far: float, mapping: str
    ) -> dict[str, Any]:
        if depth.kind == "metric":
            raise ctx.error(
                "depth is already metric",
                port="depth",
                fix="remove this node, or depth.normalize first to re-scale",
            )
        if near >= far:
            raise ctx.error(
                f"near ({near}) must be less than far ({far})",
                port="near",
                fix="swap them or widen the range",
            )
        return {
            "depth": Depth(
                depthmath.relative_to_metric(depth.data, near, far, mapping),
                kind="metric",
                units="m",
            )
        }


class SmoothDepth(Node):
    """Edge-aware smoothing: bilateral (depth edges kept) or guided by the colour image (colour
    edges kept). Holes stay holes; fill them with depth.fill_holes."""

    type_id = "depth.smooth"
    title = "Smooth Depth"
    category = "depth"
    inputs = (
        Input("depth", Depth),
        Input("guide", Image, "colour guide (guided only)", optional=True),
    )
    outputs = (Output("depth", Depth),)
    params = (
        Param("method", Enum, "bilateral", "filter", choices=("bilateral", "guided")),
        Param("radius", Int, 4, "window radius in pixels", min=1, max=64),
        Param(
            "sigma", Float, 0.05, "edge threshold relative to the median depth", min=1e-4, max=10
        ),
    )

    def run(
        self,
        ctx: NodeContext,
        depth: Depth,
        method: str,
        radius: int,
        sigma: float,
        guide: Image | None = None,
    ) -> dict[str, Any]:
        g = None
        if guide is not None:
            if (guide.height, guide.width) != (depth.height, depth.width):
                raise ctx.error(
                    f"guide is {guide.width}×{guide.height} but depth is "
                    f"{depth.width}×{depth.height}",
                    port="guide",
                    fix="resize the guide to the depth's size",
                )
            g = guide.rgb().mean(axis=2)
        out = depthmath.smooth(
            depth.data, method, radius, sigma, g, relative=depth.kind == "relative"
        )
        return {"depth": Depth(out, depth.kind, depth.units)}


class FillDepthHoles(Node):
    """Fill missing depth (NaN; zero or negative metric depth; negative relative depth, whose 0
    is the nearest point) smoothly from the surrounding valid depth."""

    type_id = "depth.fill_holes"
    title = "Fill Depth Holes"
    category = "depth"
    inputs = (Input("depth", Depth),)
    outputs = (Output("depth", Depth), Output("mask", Mask, "1 where depth was filled"))

    def run(self, ctx: NodeContext, depth: Depth) -> dict[str, Any]:
        relative = depth.kind == "relative"
        ok = depthmath.valid_mask(depth.data, relative)
        if not ok.any():
            raise ctx.error(
                "the depth map has no valid sample to fill from",
                port="depth",
                fix="check the depth source",
            )
        return {
            "depth": Depth(
                depthmath.push_pull_fill(depth.data, relative=relative), depth.kind, depth.units
            ),
            "mask": Mask((~ok).astype(np.float32)),
        }


class DepthNormals(Node):
    """Surface normals from metric depth, shown as colours (n·0.5 + 0.5, camera space)."""

    type_id = "depth.normals"
    title = "Depth → Normals"
    category = "depth"
    inputs = (Input("depth", Depth), Input("camera", Camera, optional=True))
    outputs = (Output("normals", Image),)
    params = (
        Param("fov", Float, 60.0, "vertical field of view if no camera", min=1, max=179),
        Param(
            "baseline",
            Int,
            2,
            "pixels between difference samples (wider = smoother, hides depth quantisation)",
            min=1,
            max=32,
        ),
    )

    def run(
        self,
        ctx: NodeContext,
        depth: Depth,
        fov: float,
        baseline: int,
        camera: Camera | None = None,
    ) -> dict[str, Any]:
        cam = _camera(ctx, camera, depth.width, depth.height, fov)
        n = projection.depth_normals(depth.data, cam.fx, cam.fy, cam.cx, cam.cy, baseline)
        img = np.nan_to_num(n * 0.5 + 0.5, nan=0.0).astype(np.float32)
        return {"normals": Image(np.clip(img, 0, 1))}


class DepthControlImage(Node):
    """Depth as the control image depth ControlNets take (MiDaS-style: near bright, far dark):
    metric depth becomes disparity first, relative depth is flipped. Invalid depth is black."""

    type_id = "depth.control_image"
    title = "Depth → Control Image"
    category = "depth"
    inputs = (Input("depth", Depth, "metric or relative depth"),)
    outputs = (Output("image", Image, "grey, near = bright"),)

    def run(self, ctx: NodeContext, depth: Depth) -> dict[str, Any]:
        return {"image": Image(depthmath.control_image(depth.data, depth.kind == "metric"))}


class ColorizeDepth(Node):
    """A colour-mapped preview of depth; invalid depth shows black."""

    type_id = "depth.colorize"
    title = "Colorize Depth"
    category = "depth"
    inputs = (Input("depth", Depth),)
    outputs = (Output("image", Image),)
    params = (
        Param("colormap", Enum, "turbo", "colour map", choices=depthmath.COLORMAPS),
        Param("low_percentile", Float, 2.0, "clip below", min=0, max=100),
        Param("high_percentile", Float, 98.0, "clip above", min=0, max=100),
        Param("near_is_bright", Bool, True, "near = bright/warm"),
    )
    constraints = (
        Ordered("low_percentile", "high_percentile", why="almost every pixel clips to one colour"),
    )

    def run(
        self,
        ctx: NodeContext,
        depth: Depth,
        colormap: str,
        low_percentile: float,
        high_percentile: float,
        near_is_bright: bool,
    ) -> dict[str, Any]:
        rgb = depthmath.colorize(
            depth.data,
            colormap,
            low_percentile,
            high_percentile,
            near_is_bright,
            relative=depth.kind == "relative",
        )
        return {"image": Image(rgb)}


def _camera(ctx: NodeContext, camera: Camera | None, width: int, height: int, fov: float) -> Camera:
    try:
        return projection.camera_for(camera, width, height, fov)
    except BadInput as exc:
        raise ctx.refuse(exc) from None
