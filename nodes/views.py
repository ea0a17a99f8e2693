"""View-set nodes: gather images with cameras (and depths) into Views, take one out, tile them.

A view set travels as one value because its views mean little apart (they were generated or
shot together); these nodes are how a user builds one from separate images or RGBDs, looks at
one view on its own, and sees them all at once.
"""

from __future__ import annotations

from typing import Any

from fathom.engine.context import NodeContext
from fathom.engine.geometry import projection
from fathom.engine.node import Input, Node, Output, Param
from fathom.engine.types import RGBD, Camera, Depth, Float, Image, Int, String, Views


def _angles(ctx: NodeContext, text: str, n: int, port: str) -> list[float]:
    """'0, 60, 120' → floats; empty: ``n`` evenly spaced azimuths (or zero elevations)."""
    if not text.strip():
        return [360.0 * k / n for k in range(n)] if port == "azimuths" else [0.0] * n
    try:
        vals = [float(t) for t in text.replace(";", ",").split(",") if t.strip()]
    except ValueError:
        raise ctx.error(
            f"{port} must be numbers separated by commas; got {text!r}",
            port=port,
            fix="write degrees like '0, 90, 180, 270'",
        ) from None
    if len(vals) == 1:
        vals = vals * n
    if len(vals) != n:
        raise ctx.error(
            f"{len(vals)} {port} for {n} views",
            port=port,
            fix=f"give one angle per view ({n}), or one for all",
        )
    return vals


class MakeViews(Node):
    """A view set from images (with their cameras, and depths when known) or from RGBD views.
    Without cameras, the views are placed on a ring around the origin looking at it: the
    layout of multi-view generators (azimuth 0 is the front, elevation up is positive)."""

    type_id = "views.make"
    title = "Make Views"
    category = "view"
    inputs = (
        Input("images", Image, "one image per view, in order", optional=True, multi=True),
        Input("cameras", Camera, "one per image (default: a ring)", optional=True, multi=True),
        Input("depths", Depth, "one per image, metric (optional)", optional=True, multi=True),
        Input(
            "rgbd", RGBD, "RGBD views with cameras (instead of images)", optional=True, multi=True
        ),
    )
    outputs = (Output("views", Views),)
    params = (
        Param("azimuths", String, "", "ring: degrees per view, comma-separated (empty: even)"),
        Param("elevations", String, "0", "ring: degrees per view, or one for all"),
        Param("distance", Float, 2.0, "ring: camera distance from the origin", min=1e-3),
        Param("fov", Float, 40.0, "ring: vertical field of view in degrees", min=1.0, max=179.0),
    )

    def run(
        self,
        ctx: NodeContext,
        azimuths: str,
        elevations: str,
        distance: float,
        fov: float,
        images: list[Image] | None = None,
        cameras: list[Camera] | None = None,
        depths: list[Depth] | None = None,
        rgbd: list[RGBD] | None = None,
    ) -> dict[str, Any]:
        images, cameras, depths, rgbd = images or [], cameras or [], depths or [], rgbd or []
        if rgbd and images:
            raise ctx.error(
                "both images and RGBD views are connected",
                port="rgbd",
                fix="connect either images (with cameras/depths) or RGBD views",
            )
        if rgbd:
            images = [v.image for v in rgbd]
            depths = [v.depth for v in rgbd]
            cameras = [v.camera for v in rgbd if v.camera is not None]
            if len(cameras) != len(rgbd):
                cameras = []  # some lack a camera: place them all on the ring
        if not images:
            raise ctx.error("no views connected", port="images", fix="connect images or RGBDs")
        n = len(images)
        if not cameras:
            az = _angles(ctx, azimuths, n, "azimuths")
            el = _angles(ctx, elevations, n, "elevations")
            cameras = []
            for im, a, e in zip(images, az, el, strict=True):
                cam = Camera.from_fov(im.width, im.height, fov)
                cam.pose = projection.orbit_pose(a, e, distance)
                cameras.append(cam)
        if len(cameras) != n:
            raise ctx.error(
                f"{n} images but {len(cameras)} cameras", port="cameras", fix="one camera per image"
            )
        if depths and len(depths) != n:
            raise ctx.error(
                f"{n} images but {len(depths)} depths", port="depths", fix="one depth per image"
            )
        try:
            return {"views": Views(images, cameras, depths or None)}
        except ValueError as exc:
            raise ctx.error(
                str(exc), port="images", fix="make each camera and depth at its image's size"
            ) from None


class PickView(Node):
    """One view of a view set: its image, its camera and (when the set has them) its depth."""

    type_id = "views.pick"
    title = "Pick View"
    category = "view"
    inputs = (Input("views", Views),)
    outputs = (
        Output("image", Image),
        Output("camera", Camera),
        Output("depth", Depth, "empty when the views carry no depth"),
    )
    params = (Param("index", Int, 0, "which view (0 is the first; negative counts from the end)"),)

    def run(self, ctx: NodeContext, views: Views, index: int) -> dict[str, Any]:
        n = len(views)
        if not -n <= index < n:
            raise ctx.error(
                f"view {index} asked for, but the set has {n} views",
                port="index",
                fix=f"use 0 to {n - 1} (or -1 for the last)",
            )
        depth = views.depths[index] if views.depths is not None else None
        return {"image": views.images[index], "camera": views.cameras[index], "depth": depth}


class ViewSheet(Node):
    """All views of a set tiled in one image (rows of `columns`): a contact sheet."""

    type_id = "views.sheet"
    title = "View Contact Sheet"
    category = "view"
    inputs = (Input("views", Views),)
    outputs = (Output("image", Image),)
    params = (Param("columns", Int, 3, "views per row", min=1, max=64),)

    def run(self, ctx: NodeContext, views: Views, columns: int) -> dict[str, Any]:
        return {"image": views.contact_sheet(columns)}
