"""Cameras and RGBD: pairing colour with depth, and lifting it to point clouds and meshes."""

from __future__ import annotations

from typing import Any

import numpy as np

from fathom.engine.context import NodeContext
from fathom.engine.errors import BadInput, MediaError
from fathom.engine.geometry import projection
from fathom.engine.geometry.meshing import rgbd_mesh
from fathom.engine.imaging import depthmath
from fathom.engine.node import Input, Node, Ordered, Output, Param
from fathom.engine.types import (
    RGBD,
    Camera,
    Depth,
    Enum,
    Float,
    Image,
    Int,
    Mesh,
    PointCloud,
    Video,
)

FOV = Param(
    "fov",
    Float,
    60.0,
    "vertical field of view in degrees (when no camera is given)",
    min=1.0,
    max=179.0,
)


class CreateCamera(Node):
    """A pinhole camera from a field of view, placed at a position and aimed at a target.
    Axes: x right, y down, z forward (OpenCV); y = -1 is up."""

    type_id = "camera.create"
    title = "Camera"
    category = "camera"
    inputs = (Input("image", Image, "take width and height from this image", optional=True),)
    outputs = (Output("camera", Camera),)
    params = (
        Param("width", Int, 512, "pixels", min=1, max=16384),
        Param("height", Int, 512, "pixels", min=1, max=16384),
        FOV,
        Param("x", Float, 0.0, "position x"),
        Param("y", Float, 0.0, "position y"),
        Param("z", Float, 0.0, "position z"),
        Param("target_x", Float, 0.0, "look-at x"),
        Param("target_y", Float, 0.0, "look-at y"),
        Param("target_z", Float, 1.0, "look-at z"),
    )

    def run(
        self,
        ctx: NodeContext,
        width: int,
        height: int,
        fov: float,
        x: float,
        y: float,
        z: float,
        target_x: float,
        target_y: float,
        target_z: float,
        image: Image | None = None,
    ) -> dict[str, Any]:
        if image is not None:
            width, height = image.width, image.height
        try:
            pose = projection.look_at(np.array([x, y, z]), np.array([target_x, target_y, target_z]))
        except ValueError:
            raise ctx.error(
                "position and target are the same point",
                port="target_z",
                fix="move the target away from the position",
            ) from None
        return {"camera": Camera.from_fov(width, height, fov, pose)}


class MakeRGBD(Node):
    """Pair an image with its depth (same size) and the camera that saw them."""

    type_id = "rgbd.make"
    title = "Make RGBD"
    category = "rgbd"
    inputs = (
        Input("image", Image),
        Input("depth", Depth),
        Input("camera", Camera, "default: from the fov parameter", optional=True),
    )
    outputs = (Output("rgbd", RGBD),)
    params = (FOV,)

    def run(
        self, ctx: NodeContext, image: Image, depth: Depth, fov: float, camera: Camera | None = None
    ) -> dict[str, Any]:
        if (image.height, image.width) != (depth.height, depth.width):
            raise ctx.error(
                f"depth is {depth.width}×{depth.height} but the image is "
                f"{image.width}×{image.height}",
                port="depth",
                fix="resize the depth (or the image) so both match",
            )
        cam = _camera(ctx, camera, image.width, image.height, fov)
        return {"rgbd": RGBD(image, depth, cam)}


class SplitRGBD(Node):
    """The image, depth and camera inside an RGBD."""

    type_id = "rgbd.split"
    title = "Split RGBD"
    category = "rgbd"
    inputs = (Input("rgbd", RGBD),)
    outputs = (Output("image", Image), Output("depth", Depth), Output("camera", Camera))
    params = (FOV,)

    def run(self, ctx: NodeContext, rgbd: RGBD, fov: float) -> dict[str, Any]:
        cam = rgbd.camera or Camera.from_fov(rgbd.image.width, rgbd.image.height, fov)
        return {"image": rgbd.image, "depth": rgbd.depth, "camera": cam}


def _metric_checked(ctx: NodeContext, rgbd: RGBD) -> np.ndarray:
    if rgbd.depth.kind != "metric":
        raise ctx.error(
            "depth is relative, so it has no scale to back-project",
            port="rgbd",
            fix="insert depth.to_metric (near/far) before making the RGBD",
        )
    d = rgbd.depth.data
    if not np.any(np.isfinite(d) & (d > 0)):
        raise ctx.error(
            "depth has no valid sample (all NaN, zero or negative)",
            port="rgbd",
            fix="check the depth source",
        )
    return d


class RGBDToPointCloud(Node):
    """Back-project every valid depth sample to a coloured 3D point (world frame when the
    camera has a pose). NaN, infinite, zero and negative depths are skipped."""

    type_id = "rgbd.to_pointcloud"
    title = "RGBD → Point Cloud"
    category = "rgbd"
    inputs = (Input("rgbd", RGBD),)
    outputs = (Output("points", PointCloud),)
    params = (FOV, Param("step", Int, 1, "use every n-th pixel", min=1, max=64))

    def run(self, ctx: NodeContext, rgbd: RGBD, fov: float, step: int) -> dict[str, Any]:
        d = _metric_checked(ctx, rgbd)
        cam = rgbd.camera or Camera.from_fov(rgbd.image.width, rgbd.image.height, fov)
        pts = projection.backproject(d, cam.fx, cam.fy, cam.cx, cam.cy, cam.pose)
        pts, cols = pts[::step, ::step].reshape(-1, 3), rgbd.image.rgb()[::step, ::step]
        cols = cols.reshape(-1, 3)
        ok = np.all(np.isfinite(pts), axis=1)
        return {"points": PointCloud(pts[ok], cols[ok])}


class RGBDToMesh(Node):
    """Triangulate the depth grid into a mesh. Triangles whose depths differ by more than
    `cut` (relative) are removed, so foreground and background are not joined by a rubber
    sheet; colour comes per vertex or as a texture."""

    type_id = "rgbd.to_mesh"
    title = "RGBD → Mesh"
    category = "rgbd"
    inputs = (Input("rgbd", RGBD),)
    outputs = (Output("mesh", Mesh),)
    params = (
        FOV,
        Param(
            "cut", Float, 0.05, "max relative depth spread inside one triangle", min=0.0, max=100.0
        ),
        Param("step", Int, 1, "grid spacing in pixels", min=1, max=64),
        Param(
            "color", Enum, "vertex", "vertex colours or a texture", choices=("vertex", "texture")
        ),
    )

    def run(
        self, ctx: NodeContext, rgbd: RGBD, fov: float, cut: float, step: int, color: str
    ) -> dict[str, Any]:
        _metric_checked(ctx, rgbd)
        cam = rgbd.camera or Camera.from_fov(rgbd.image.width, rgbd.image.height, fov)
        mesh = rgbd_mesh(rgbd, cam, cut, step, color)
        if len(mesh.faces) == 0:
            raise ctx.error(
                "no triangle survived: the depth is too sparse or `cut` too small",
                port="cut",
                fix="raise `cut` or fill depth holes first",
            )
        return {"mesh": Mesh(mesh)}


def _camera(ctx: NodeContext, camera: Camera | None, width: int, height: int, fov: float) -> Camera:
    try:
        return projection.camera_for(camera, width, height, fov)
    except BadInput as exc:
        raise ctx.refuse(exc) from None


class RGBDFromVideo(Node):
    """One frame of a clip and of its depth video as an RGBD: by default the newest, which in a
    live session is the frame just captured, so a camera or file feeds a point cloud or mesh
    that follows it frame by frame. Relative depth (0 = near, 1 = far, as video.depth gives it)
    is given metres between `near` and `far`; metric depth is taken as it is."""

    type_id = "rgbd.from_video"
    title = "Video Frame → RGBD"
    category = "rgbd"
    inputs = (
        Input("video", Video, "colour frames"),
        Input("depth", Video, "one-channel depth frames of the same clip (e.g. video.depth)"),
        Input("camera", Camera, "default: from the fov parameter", optional=True),
    )
    outputs = (Output("rgbd", RGBD),)
    params = (
        Param("index", Int, -1, "frame number (negative: from the end; -1 the newest)"),
        Param(
            "depth_kind",
            Enum,
            "relative",
            "relative: 0 = near, 1 = far; metric: metres",
            choices=("relative", "metric"),
        ),
        Param("near", Float, 1.0, "relative depth: metres at 0", min=1e-4, max=1e6),
        Param("far", Float, 4.0, "relative depth: metres at 1", min=1e-4, max=1e6),
        FOV,
    )
    constraints = (Ordered("near", "far", why="near things must be closer than far ones"),)

    def run(
        self,
        ctx: NodeContext,
        video: Video,
        depth: Video,
        index: int,
        depth_kind: str,
        near: float,
        far: float,
        fov: float,
        camera: Camera | None = None,
    ) -> dict[str, Any]:
        image = _frame_of(ctx, video, index, "video")
        raw = _frame_of(ctx, depth, index, "depth").data[:, :, 0]
        if raw.shape != (image.height, image.width):
            raise ctx.error(
                f"depth frames are {raw.shape[1]}×{raw.shape[0]} but the colour frames are "
                f"{image.width}×{image.height}",
                port="depth",
                fix="estimate depth from this clip, or resize one video to match",
            )
        if depth_kind == "metric":
            metres = Depth(np.where(raw > 0, raw, np.nan), kind="metric")
        else:
            metres = Depth(depthmath.relative_to_metric(raw, near, far), kind="metric")
        cam = _camera(ctx, camera, image.width, image.height, fov)
        return {"rgbd": RGBD(Image(image.rgb()), metres, cam)}


def _frame_of(ctx: NodeContext, video: Video, index: int, port: str) -> Image:
    """Frame ``index`` of ``video`` (negative counts from the end), or an error naming the
    port."""
    n = len(video)
    i = index if index >= 0 else n + index
    if not 0 <= i < n:
        raise ctx.error(
            f"frame {index} is outside a {n}-frame video",
            port="index" if n else port,
            fix=f"use 0..{n - 1} or -1 for the newest" if n else "check what feeds it",
        )
    try:
        return video.frame(i)
    except MediaError as exc:
        raise ctx.refuse(exc, port=port) from None
