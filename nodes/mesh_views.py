"""`mesh.from_views`: a view set to one textured mesh (fusion, UV atlas, texture baked from the
views), the last step from generated views to an object a user can turn around and export."""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from fathom.engine.context import NodeContext
from fathom.engine.errors import LibraryError
from fathom.engine.geometry import from_views as fv
from fathom.engine.imaging import depthmath
from fathom.engine.models import ModelError
from fathom.engine.models.depth import is_metric_model, load_transformers_depth
from fathom.engine.node import Input, Node, Output, Param
from fathom.engine.types import Enum, Float, Image, Int, Mesh, PointCloud, String, Views

DEFAULT_DEPTH_MODEL = "depth-anything/Depth-Anything-V2-Small-hf"


def _estimate(ctx: NodeContext, image: Image, model: str) -> np.ndarray:
    """Relative depth (0 near, 1 far) of one view with a transformers depth model, loaded
    through the shared manager under the same key `depth.estimate` uses (so it is shared)."""
    import torch

    dev, dtype = ctx.device.torch_device, ctx.device.dtype
    processor, net = ctx.load_model(
        "transformers-depth", model, lambda p: load_transformers_depth(p, dev, dtype)
    )
    rgb8 = (np.clip(image.rgb(), 0, 1) * 255).astype(np.uint8)
    inputs = processor(images=rgb8, return_tensors="pt")
    inputs = {
        k: v.to(dev, dtype=net.dtype if v.is_floating_point() else None) for k, v in inputs.items()
    }
    with torch.inference_mode():
        pred = net(**inputs).predicted_depth
        pred = torch.nn.functional.interpolate(
            pred[:, None].float(), size=(image.height, image.width), mode="bicubic"
        )[0, 0]
    arr = pred.cpu().numpy().astype(np.float32)
    if is_metric_model(net):
        return depthmath.normalize(arr, positive_only=False)
    return 1.0 - depthmath.normalize(arr, positive_only=False)  # disparity-like: large = near


def _check_depth_family(ctx: NodeContext, model: str) -> None:
    """A found model of another family (a Stable Diffusion folder, say) is refused by name
    before transformers fails on it; a missing one is left to the loader's own message."""
    from fathom.engine.models import locate_model
    from fathom.engine.models.families import identify

    try:
        info = identify(locate_model(model, ctx.options.base_dir))
    except ModelError:
        return
    if info.family != "depth":
        raise ctx.error(
            f"{model} is {info.title} model; Mesh from Views estimates depth with depth "
            "estimation models.",
            port="depth_model",
            fix="choose a depth estimation model (depth.estimate's), or give views with depths",
        )


def _foreground(image: Image, relative: np.ndarray, cut: float) -> np.ndarray:
    """The object's pixels: the alpha when the view has one, else those nearer than ``cut``;
    a depth with nothing nearer (one flat plane facing the camera) is all object."""
    alpha = image.alpha()
    if alpha is not None:
        return alpha > 0.5
    finite = np.isfinite(relative)
    near = finite & (relative < cut)
    return near if near.any() else finite


class MeshFromViews(Node):
    """One textured mesh from a view set: the views' depths are fused (TSDF, or Poisson over
    their oriented points), the surface is decimated to a face budget, unwrapped into a UV
    atlas (xatlas) and textured from the views (each texel from the views that see it
    unoccluded, weighted by viewing angle). Save it with mesh.save as .glb. Views without
    metric depth get object-centred depth: estimated with a depth model when they carry none
    (their background is what the alpha, or the farthest depth, says)."""

    type_id = "mesh.from_views"
    title = "Mesh from Views"
    category = "mesh"
    main_params = ("method", "resolution", "texture_size")
    families: ClassVar[tuple[str, ...]] = ("depth",)
    inputs = (Input("views", Views, "images with cameras (and depths)"),)
    outputs = (
        Output("mesh", Mesh, "textured mesh (UV atlas + base-colour texture)"),
        Output("points", PointCloud, "the fused surface's vertices with colours"),
    )
    params = (
        Param("method", Enum, "tsdf", "fusion", choices=fv.METHODS),
        Param(
            "resolution", Int, 128, "voxels across the object (when voxel is 0)", min=8, max=1024
        ),
        Param("voxel", Float, 0.0, "voxel size in the views' units (0: from resolution)", min=0.0),
        Param("texture_size", Int, 1024, "texture width and height in texels", min=32, max=8192),
        Param("faces", Int, 20000, "face budget before texturing (0: keep all)", min=0),
        Param(
            "depth_model",
            String,
            DEFAULT_DEPTH_MODEL,
            "depth model for views that carry no depth (depth.estimate's transformers models)",
            suggest="models",  # the studio's model picker, listing the depth family
        ),
        Param(
            "background",
            Float,
            0.95,
            "estimated relative depth beyond which a pixel is background (no alpha)",
            min=0.0,
            max=1.0,
        ),
    )

    def run(
        self,
        ctx: NodeContext,
        views: Views,
        method: str,
        resolution: int,
        voxel: float,
        texture_size: int,
        faces: int,
        depth_model: str,
        background: float,
    ) -> dict[str, Any]:
        views = self.with_metric_depth(ctx, views, depth_model, background)
        # The fusion and rasteriser use scatter-min, which CUDA and the CPU both have.
        dev = ctx.device.torch_device if ctx.device.kind == "cuda" else "cpu"
        try:
            res = fv.from_views(
                views,
                voxel,
                resolution,
                method,
                texture_size,
                faces,
                device=dev,
                progress=ctx.progress,
            )
        except LibraryError as exc:
            raise ctx.refuse(exc) from None
        except ImportError as exc:
            raise ctx.error(str(exc), port="method", fix="use method 'tsdf'") from None
        ctx.report(voxel=res.voxel, faces=len(res.mesh.faces), texels_seen=round(res.seen, 4))
        return {"mesh": Mesh(res.mesh), "points": res.points}

    @staticmethod
    def with_metric_depth(
        ctx: NodeContext, views: Views, depth_model: str, background: float
    ) -> Views:
        """The views with metric depth: kept when they have it, else object-centred depth from
        their relative depth or, without any, from the depth model."""
        if views.depths is not None and all(d.kind == "metric" for d in views.depths):
            return views
        if views.depths is None:
            _check_depth_family(ctx, depth_model)
        depths = []
        for i, (im, cam) in enumerate(zip(views.images, views.cameras, strict=True)):
            ctx.progress(0.05 * i / len(views), f"depth of view {i + 1}/{len(views)}")
            if views.depths is not None:
                rel = depthmath.normalize(views.depths[i].data)  # NaN where invalid
            else:
                try:
                    rel = _estimate(ctx, im, depth_model)
                except ModelError as exc:
                    raise ctx.error(
                        f"the views carry no depth and the depth model failed: {exc}",
                        port="depth_model",
                        fix="give views with depths, or a depth model folder (depth.estimate's)",
                    ) from None
            try:
                depths.append(fv.object_depth(rel, cam, _foreground(im, rel, background)))
            except LibraryError as exc:
                raise ctx.refuse(exc) from None
        return Views(views.images, views.cameras, depths)
