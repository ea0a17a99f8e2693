"""Novel views: camera paths, rendering scenes from any camera, hole filling, multi-view fusion,
and 360° RGBD panoramas (the DepthFusion-style scene)."""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Callable
from functools import partial
from typing import Any

import numpy as np

from fathom.engine.context import NodeContext
from fathom.engine.errors import Problem
from fathom.engine.generation import LORA_PARAM
from fathom.engine.geometry import projection, scene
from fathom.engine.geometry.meshing import fuse_points, panorama_trimesh, points_mesh
from fathom.engine.geometry.projection import parse_points
from fathom.engine.imaging.fill import composite_fill, feather_weights, inpaint
from fathom.engine.node import Input, Node, Output, Param
from fathom.engine.types import (
    RGBD,
    Camera,
    CameraPath,
    Color,
    Depth,
    Enum,
    Float,
    Image,
    Int,
    Mask,
    Mesh,
    PointCloud,
    Seed,
    String,
    Video,
)

PATH_KINDS = ("orbit", "circle", "dolly", "pan", "walk")
FILL_METHODS = ("telea", "navier_stokes", "diffusion")
NO_MODEL = "method 'diffusion' needs an inpainting model, and none is set"
NO_MODEL_FIX = (
    "set model to an inpainting model, e.g. stable-diffusion-v1-5/stable-diffusion-"
    "inpainting, or choose method telea"
)
BACKENDS = ("auto", "torch", "opengl")


class CameraPathNode(Node):
    """A camera move as a sequence of cameras. orbit: around `target` at `radius`; circle: a
    small circle in the image plane while looking at `target` (the 3D-photo move); dolly:
    forward along the view by `distance`; pan: sideways by `distance`; walk: through
    `waypoints`. The start is the connected camera, or the origin looking at `target`."""

    type_id = "view.camera_path"
    title = "Camera Path"
    category = "view"
    inputs = (Input("camera", Camera, "start camera and intrinsics", optional=True),)
    outputs = (Output("path", CameraPath),)
    params = (
        Param("kind", Enum, "circle", "move", choices=PATH_KINDS),
        Param("frames", Int, 48, "number of cameras", min=1, max=100000),
        Param("fps", Float, 24.0, "frames per second", min=0.1, max=1000),
        Param("width", Int, 512, "pixels (when no camera is connected)", min=1, max=16384),
        Param("height", Int, 512, "pixels (when no camera is connected)", min=1, max=16384),
        Param("fov", Float, 60.0, "vertical field of view (when no camera)", min=1, max=179),
        Param("target_x", Float, 0.0, "point looked at / orbited"),
        Param("target_y", Float, 0.0, "point looked at / orbited"),
        Param("target_z", Float, 3.0, "point looked at / orbited"),
        Param("radius", Float, 0.25, "orbit or circle radius", min=0.0),
        Param("elevation", Float, 0.0, "orbit height above the target (up is -y)"),
        Param("degrees", Float, 360.0, "orbit sweep", min=-3600, max=3600),
        Param("start_deg", Float, 0.0, "orbit start angle (0 = in front of the target)"),
        Param("distance", Float, 1.0, "dolly/pan travel"),
        Param("waypoints", String, "0,0,0; 0,0,1", "walk: 'x,y,z; x,y,z; ...'"),
    )

    def run(
        self,
        ctx: NodeContext,
        kind: str,
        frames: int,
        fps: float,
        width: int,
        height: int,
        fov: float,
        target_x: float,
        target_y: float,
        target_z: float,
        radius: float,
        elevation: float,
        degrees: float,
        start_deg: float,
        distance: float,
        waypoints: str,
        camera: Camera | None = None,
    ) -> dict[str, Any]:
        target = np.array([target_x, target_y, target_z])
        # An orbit places its own cameras: only the others start from the origin looking at
        # the target (so an orbit around the origin is fine).
        pose = None if kind == "orbit" else _safe_look_at(ctx, np.zeros(3), target)
        base = camera or Camera.from_fov(width, height, fov, pose)
        start = base.pose[:3, 3]
        right, down, fwd = base.pose[:3, 0], base.pose[:3, 1], base.pose[:3, 2]
        if kind == "orbit":
            poses = projection.orbit_path(target, radius, frames, elevation, degrees, start_deg)
        elif kind == "circle":
            poses = []
            for k in range(frames):
                a = 2 * math.pi * k / frames
                eye = start + radius * (math.cos(a) * right - math.sin(a) * down)
                poses.append(_safe_look_at(ctx, eye, target))
        elif kind == "dolly":
            poses = projection.line_path(start, start + fwd * distance, frames, direction=fwd)
        elif kind == "pan":
            poses = projection.line_path(start, start + right * distance, frames, direction=fwd)
        else:
            try:
                poses = projection.walk_path(parse_points(waypoints), frames)
            except ValueError as exc:
                raise ctx.error(
                    str(exc), port="waypoints", fix="give two or more distinct points"
                ) from None
        cams = [
            Camera(base.fx, base.fy, base.cx, base.cy, base.width, base.height, p) for p in poses
        ]
        return {"path": CameraPath(cams, fps)}


def _safe_look_at(ctx: NodeContext, eye: np.ndarray, target: np.ndarray) -> np.ndarray:
    try:
        return projection.look_at(eye, target)
    except ValueError:
        raise ctx.error(
            "the camera sits on its target",
            port="target_z",
            fix="move the target away from the camera",
        ) from None


class _FrameMemo:
    """Keeps the last few rendered frames so the image, depth and mask outputs of one frame
    cost one render, however many of them are used."""

    def __init__(self, fn: Callable[[int], scene.RenderOutput], size: int = 4) -> None:
        self.fn = fn
        self.size = size
        self.items: OrderedDict[int, scene.RenderOutput] = OrderedDict()

    def __call__(self, i: int) -> scene.RenderOutput:
        if i in self.items:
            self.items.move_to_end(i)
            return self.items[i]
        out = self.fn(i)
        self.items[i] = out
        while len(self.items) > self.size:
            self.items.popitem(last=False)
        return out


class RenderView(Node):
    """Render a mesh, point cloud or RGBD from a camera or a camera path: colour, depth and a
    disocclusion mask (1 where nothing was seen). The video output renders frames on demand.
    Backend auto: torch (GPU or CPU), or OpenGL (EGL) where it runs on graphics hardware."""

    type_id = "view.render"
    title = "Render View"
    category = "view"
    inputs = (
        Input("camera", CameraPath, "a Camera or a CameraPath"),
        Input("mesh", Mesh, optional=True),
        Input("points", PointCloud, optional=True),
        Input("rgbd", RGBD, optional=True),
    )
    outputs = (
        Output("image", Image, "first frame"),
        Output("depth", Depth, "first frame"),
        Output("mask", Mask, "first frame's holes"),
        Output("video", Video),
        Output("mask_video", Video, "holes per frame"),
    )
    params = (
        Param("backend", Enum, "auto", "renderer", choices=BACKENDS),
        Param("background", Color, "#000000", "colour where nothing is seen"),
        Param("point_size", Int, 1, "point splat radius in pixels", min=0, max=16),
        Param(
            "cut", Float, 0.05, "RGBD: relative depth jump that splits surfaces", min=0.0, max=100.0
        ),
        Param("fov", Float, 60.0, "RGBD without camera: its field of view", min=1, max=179),
    )

    def run(
        self,
        ctx: NodeContext,
        camera: CameraPath,
        backend: str,
        background: tuple,
        point_size: int,
        cut: float,
        fov: float,
        mesh: Mesh | None = None,
        points: PointCloud | None = None,
        rgbd: RGBD | None = None,
    ) -> dict[str, Any]:
        given = [
            n for n, v in (("mesh", mesh), ("points", points), ("rgbd", rgbd)) if v is not None
        ]
        if len(given) != 1:
            raise ctx.error(
                f"connect exactly one scene input; got {given or 'none'}",
                port="mesh",
                fix="connect one of mesh, points or rgbd",
            )
        sc = self.make_scene(ctx, mesh, points, rgbd, point_size, cut, fov)
        bg = tuple(float(c) for c in background[:3])
        device = ctx.device.torch_device if ctx.device.kind == "cuda" else "cpu"
        if backend == "opengl" and not scene.opengl_available():
            raise ctx.error(
                f"OpenGL is not available here ({scene.opengl_error()})",
                port="backend",
                fix="use backend 'torch' or 'auto'",
            )
        cams = camera.cameras

        def render_frame(i: int) -> scene.RenderOutput:
            ctx.check_cancelled()
            out, _ = scene.render(sc, cams[i], backend, device, bg)  # type: ignore[arg-type]
            return out

        memo = _FrameMemo(render_frame)
        first = memo(0)
        ctx.progress(1.0 / len(cams), "rendered frame 1")
        size = (cams[0].width, cams[0].height)
        video = Video(len(cams), camera.fps, lambda i: Image(memo(i).image), size, "view.render")
        masks = Video(
            len(cams), camera.fps, lambda i: Image((~memo(i).covered).astype(np.float32)), size
        )
        depth = np.where(first.covered, first.depth, np.nan)
        return {
            "image": Image(first.image),
            "depth": Depth(depth, "metric"),
            "mask": Mask((~first.covered).astype(np.float32)),
            "video": video,
            "mask_video": masks,
        }

    @staticmethod
    def make_scene(
        ctx: NodeContext,
        mesh: Mesh | None,
        points: PointCloud | None,
        rgbd: RGBD | None,
        point_size: int,
        cut: float,
        fov: float,
    ) -> scene.RenderScene:
        if mesh is not None:
            if len(mesh.mesh.faces) == 0:
                raise ctx.error("the mesh has no faces", port="mesh", fix="check upstream")
            return scene.scene_from_mesh(mesh)
        if points is not None:
            if len(points) == 0:
                raise ctx.error(
                    "the point cloud is empty",
                    port="points",
                    fix="check the upstream depth or mask",
                )
            return scene.scene_from_pointcloud(points, point_size)
        assert rgbd is not None
        cam = rgbd.camera or Camera.from_fov(rgbd.image.width, rgbd.image.height, fov)
        try:
            return scene.scene_from_rgbd(rgbd, cam, cut)
        except ValueError as exc:
            raise ctx.error(str(exc), port="rgbd", fix="insert depth.to_metric") from None


class _DiffusionFill:
    """Fills one image's holes with an inpainting model through generate.inpaint's own loading
    and loop, then composites; video frames call it as they are read."""

    def __init__(
        self,
        ctx: NodeContext,
        model: str,
        prompt: str,
        steps: int,
        guidance: float,
        seed: int,
        strength: float,
        feather: int,
        radius: int,
        loras: str = "",
    ) -> None:
        from fathom.engine.generation import load_diffusion

        self.ctx = ctx
        self.comps = load_diffusion(ctx, model)
        self.kw = dict(
            prompt=prompt,
            negative_prompt="",
            steps=steps,
            guidance=guidance,
            seed=seed,
            scheduler="default",
            batch_size=1,
            strength=strength,
            loras=loras,
        )
        self.feather = feather
        self.radius = radius

    def __call__(self, image: np.ndarray, mask: np.ndarray) -> np.ndarray:
        from fathom.engine.generation import image_tensor, mask_tensor, run_generation

        holes = mask > 0.5
        if not holes.any():
            return image.copy()
        h, w = holes.shape
        # The model works on multiples of 8: other sizes go in resized and come back resized.
        w8, h8 = -(-w // 8) * 8, -(-h // 8) * 8
        x = image_tensor(self.ctx, Image(image), w8, h8)
        m = mask_tensor(Mask(holes.astype(np.float32)), w8, h8)
        dev = self.comps.device
        res = run_generation(
            self.ctx, self.comps, width=w8, height=h8, image=x.to(dev), mask=m.to(dev), **self.kw
        )
        fill = res.images[0][..., :3]
        if (w8, h8) != (w, h):
            import cv2

            fill = cv2.resize(fill, (w, h), interpolation=cv2.INTER_AREA)
        base = inpaint(image, mask, self.radius, "telea") if self.feather > 0 else None
        return composite_fill(image, fill, holes, feather_weights(holes, self.feather), base)


class FillHoles(Node):
    """Fill disocclusions (the mask from view.render): classically by OpenCV inpainting, or
    with a diffusion inpainting model that invents what the camera never saw (generate.inpaint's
    loop; only the hole pixels change, with a feathered edge inside the holes over a classical
    fill). With a video and a mask video connected, every frame is filled as it is read."""

    type_id = "view.fill_holes"
    title = "Fill Holes"
    category = "view"
    #: The diffusion method runs generate.inpaint's loop: an SD 1.x/2.x inpainting model.
    families = ("sd1", "sd2")
    inpainting = True
    thread_safe = False  # the diffusion method shares its model
    inputs = (
        Input("image", Image, "a rendered view with holes", optional=True),
        Input("mask", Mask, "1 where the view has holes", optional=True),
        Input("video", Video, "rendered frames with holes", optional=True),
        Input("mask_video", Video, "the frames' holes (view.render's mask_video)", optional=True),
    )
    outputs = (
        Output("image", Image, "the filled image (or the video's first frame)"),
        Output("video", Video, "the filled frames, filled as they are read"),
    )
    params = (
        Param(
            "method",
            Enum,
            "telea",
            "inpainting algorithm (diffusion: an inpainting model)",
            choices=FILL_METHODS,
        ),
        Param("radius", Int, 5, "neighbourhood radius in pixels (classical fills)", min=1, max=64),
        Param(
            "model",
            String,
            "",
            "diffusion: an inpainting model folder, .safetensors "
            "file or Hugging Face id, e.g. stable-diffusion-v1-5/stable-diffusion-"
            "inpainting",
        ),
        Param("prompt", String, "", "diffusion: what the holes should show", multiline=True),
        LORA_PARAM,
        Param("steps", Int, 20, "diffusion: denoising steps", min=1, max=500),
        Param(
            "guidance", Float, 7.5, "diffusion: guidance scale (<= 1: off)", min=0, max=50, step=0.5
        ),
        Param("seed", Seed, 0, "diffusion: noise seed (the same for every frame)"),
        Param(
            "strength",
            Float,
            1.0,
            "diffusion: how much of the hole to change",
            min=0,
            max=1,
            step=0.05,
        ),
        Param(
            "feather",
            Int,
            4,
            "diffusion: pixels over which the generated fill fades "
            "into a classical fill at the hole's edge (0: hard edge)",
            min=0,
            max=64,
        ),
    )

    @classmethod
    def check(cls, params: dict[str, Any], ctx: NodeContext) -> list[Problem]:
        if params.get("method") != "diffusion":
            return []
        if not str(params.get("model") or "").strip():
            return [Problem(NO_MODEL, ctx.node_id, "model", NO_MODEL_FIX)]
        from fathom.engine.generation import model_problems

        return [p for p in model_problems(cls, params, ctx) if p.port in ("model", "loras")]

    @classmethod
    def cache_extra(cls, params: dict[str, Any], ctx: NodeContext) -> str:
        if params.get("method") != "diffusion":
            return ""
        from fathom.engine.generation import model_fingerprint

        return model_fingerprint(params, ctx)

    def run(
        self,
        ctx: NodeContext,
        method: str,
        radius: int,
        model: str,
        prompt: str,
        loras: str,
        steps: int,
        guidance: float,
        seed: int,
        strength: float,
        feather: int,
        image: Image | None = None,
        mask: Mask | None = None,
        video: Video | None = None,
        mask_video: Video | None = None,
    ) -> dict[str, Any]:
        if (image is None) != (mask is None) or (video is None) != (mask_video is None):
            raise ctx.error(
                "connect image with mask, and/or video with mask_video",
                port="mask",
                fix="wire both of a pair",
            )
        if image is None and video is None:
            raise ctx.error("nothing to fill", port="image", fix="connect image and mask")
        if video is not None and len(video) == 0:
            raise ctx.error(
                "the video has no frames",
                port="video",
                fix="connect rendered frames (view.render's video)",
            )
        if method == "diffusion":
            if not model.strip():
                raise ctx.error(NO_MODEL, port="model", fix=NO_MODEL_FIX)
            fill: Callable[[np.ndarray, np.ndarray], np.ndarray] = _DiffusionFill(
                ctx, model, prompt, steps, guidance, seed, strength, feather, radius, loras
            )
        else:
            fill = partial(inpaint, radius=radius, method=method)
        out_img = None
        if image is not None and mask is not None:
            if (mask.height, mask.width) != (image.height, image.width):
                raise ctx.error(
                    "mask and image differ in size",
                    port="mask",
                    fix="use the mask rendered with this image",
                )
            out_img = Image(fill(image.data, mask.data))
        out_vid = None
        if video is not None and mask_video is not None:
            if len(video) != len(mask_video):
                raise ctx.error(
                    f"video has {len(video)} frames, mask_video {len(mask_video)}",
                    port="mask_video",
                    fix="use the masks rendered with the video",
                )
            if tuple(video.size) != tuple(mask_video.size):
                raise ctx.error(
                    f"video is {video.size[0]}×{video.size[1]} but mask_video is "
                    f"{mask_video.size[0]}×{mask_video.size[1]}",
                    port="mask_video",
                    fix="use the masks rendered with the video",
                )

            def filled(i: int) -> np.ndarray:
                return fill(video.frame(i).data, mask_video.frame(i).gray())

            if method == "diffusion":
                out_vid = self._fill_now(ctx, video, mask_video, filled)
            else:  # cheap and thread-safe: frames are filled as they are read
                out_vid = Video(
                    len(video),
                    video.fps,
                    lambda i: Image(filled(i)),
                    video._size,
                    video.source,
                    video.audio,
                )
        if out_img is None:
            assert out_vid is not None
            out_img = out_vid.frame(0)
        if out_vid is None:
            out_vid = Video.from_frames([out_img], 1.0)
        return {"image": out_img, "video": out_vid}

    @staticmethod
    def _fill_now(
        ctx: NodeContext, video: Video, mask_video: Video, filled: Callable[[int], np.ndarray]
    ) -> Video:
        """Diffusion fills run inside this node's run, frame by frame with progress and
        cancel, while the shared model is this node's: a lazy video would run the model
        later, in whichever node reads it, outside its lock, and again on every re-read.
        The filled frames wait on disk (8 bits, as classical fills are inside holes); reading
        one puts its hole pixels over the input frame, so every other pixel stays exact."""
        from fathom.engine.media.framestore import FrameStore

        n = len(video)
        store: FrameStore | None = None
        for i in range(n):
            out = filled(i)
            if store is None:
                store = FrameStore(out.shape[1], out.shape[0], out.shape[2])
            store.append(out)
            ctx.progress((i + 1) / n, f"frame {i + 1}/{n}")
            ctx.preview(Image(out), f"frame {i + 1}/{n}")
        assert store is not None

        def frame(i: int) -> Image:
            data = video.frame(i).data
            holes = (mask_video.frame(i).gray() > 0.5)[..., None]
            return Image(np.where(holes, store.array(i).astype(np.float32) / 255.0, data))

        return Video(n, video.fps, frame, video._size, video.source, video.audio)


class Fuse(Node):
    """Fuse any number of posed RGBD views into one scene: TSDF integration (a clean mesh) or
    point fusion (one point per voxel). The result's size depends on the scene and the voxel
    size, not on how many views went in, so rendering it costs the same for 2 or 200 views."""

    type_id = "view.fuse"
    title = "Fuse Views"
    category = "view"
    inputs = (Input("views", RGBD, "RGBD views with cameras", multi=True),)
    outputs = (
        Output("mesh", Mesh, "TSDF surface (tsdf) or per-voxel splat mesh (points)"),
        Output("points", PointCloud),
    )
    params = (
        Param("method", Enum, "tsdf", "fusion", choices=("tsdf", "points")),
        Param("voxel", Float, 0.0, "voxel size in metres (0: from the views)", min=0.0),
        Param("truncation", Float, 4.0, "TSDF truncation in voxels", min=1.0, max=50.0),
    )

    def run(
        self, ctx: NodeContext, views: list[RGBD], method: str, voxel: float, truncation: float
    ) -> dict[str, Any]:
        if not views:
            raise ctx.error("no views connected", port="views", fix="connect RGBD views")
        for i, v in enumerate(views):
            if v.camera is None:
                raise ctx.error(
                    f"view {i} has no camera pose",
                    port="views",
                    fix="make each RGBD with a camera (rgbd.make camera input)",
                )
            if v.depth.kind != "metric":
                raise ctx.error(
                    f"view {i} has relative depth", port="views", fix="convert with depth.to_metric"
                )
        vox = voxel or self.auto_voxel(views)
        if method == "tsdf":
            dev = ctx.device.torch_device if ctx.device.kind == "cuda" else "cpu"
            from fathom.engine.geometry.tsdf import fuse_tsdf  # torch: only when fusing

            tm = fuse_tsdf(views, vox, truncation, dev, ctx.progress)
            if len(tm.faces) == 0:
                raise ctx.error(
                    "fusion produced an empty surface",
                    port="views",
                    fix="check that the views overlap and the poses are right",
                )
            vc = np.asarray(tm.visual.vertex_colors)[:, :3] / 255.0
            return {"mesh": Mesh(tm), "points": PointCloud(tm.vertices, vc)}
        pc = fuse_points(views, vox)
        return {"mesh": Mesh(points_mesh(pc, vox)), "points": pc}

    @staticmethod
    def auto_voxel(views: list[RGBD]) -> float:
        """About 1.5 pixels' footprint at the median depth of the first view."""
        v = views[0]
        d = v.depth.data
        med = float(np.median(d[np.isfinite(d) & (d > 0)]))
        assert v.camera is not None
        return 1.5 * med / v.camera.fy


class Panorama360(Node):
    """An equirectangular RGB + distance panorama becomes a depth-displaced sphere you can look
    around and move inside (parallax). Outputs the mesh (save it as .glb for other viewers),
    a 360° video (turn in place, or walk a circle while turning) and a cube map."""

    type_id = "view.panorama360"
    title = "360° Panorama"
    category = "view"
    inputs = (
        Input("image", Image, "equirectangular colour (2:1)"),
        Input("depth", Depth, "equirectangular distance from the centre, metric"),
    )
    outputs = (
        Output("mesh", Mesh),
        Output("video", Video),
        Output("mask_video", Video, "disocclusions per frame (for view.fill_holes)"),
        Output("cube", Image, "cube map, 3×2 faces"),
        Output("path", CameraPath, "the video's cameras"),
    )
    params = (
        Param("step", Int, 2, "mesh grid spacing in panorama pixels", min=1, max=64),
        Param("cut", Float, 0.08, "relative depth jump that splits surfaces", min=0.0, max=100.0),
        Param(
            "color",
            Enum,
            "texture",
            "full-resolution texture or vertex colours",
            choices=("texture", "vertex"),
        ),
        Param("mode", Enum, "walk", "video move", choices=("turn", "walk")),
        Param("walk_radius", Float, 0.3, "walk: circle radius in metres", min=0.0),
        Param("frames", Int, 48, "video frames", min=1, max=100000),
        Param("fps", Float, 24.0, "video fps", min=0.1, max=1000),
        Param("width", Int, 512, "video width", min=8, max=8192),
        Param("height", Int, 288, "video height", min=8, max=8192),
        Param("fov", Float, 75.0, "video vertical field of view", min=1, max=170),
        Param("cube_size", Int, 256, "cube face size", min=8, max=4096),
        Param("backend", Enum, "auto", "renderer", choices=BACKENDS),
    )

    def run(
        self,
        ctx: NodeContext,
        image: Image,
        depth: Depth,
        step: int,
        cut: float,
        color: str,
        mode: str,
        walk_radius: float,
        frames: int,
        fps: float,
        width: int,
        height: int,
        fov: float,
        cube_size: int,
        backend: str,
    ) -> dict[str, Any]:
        if (image.height, image.width) != (depth.height, depth.width):
            raise ctx.error(
                f"depth is {depth.width}×{depth.height} but the image is "
                f"{image.width}×{image.height}",
                port="depth",
                fix="resize one so both match",
            )
        if depth.kind != "metric":
            raise ctx.error(
                "panorama depth is relative", port="depth", fix="convert with depth.to_metric"
            )
        if abs(image.width - 2 * image.height) > 1:
            raise ctx.error(
                f"an equirectangular image is 2:1; got {image.width}×{image.height}",
                port="image",
                fix="use a full 360×180° panorama",
            )
        tm = panorama_trimesh(image.data, depth.data, step, cut, color)
        if len(tm.faces) == 0:
            raise ctx.error(
                "no surface survived the depth cut",
                port="depth",
                fix="raise `cut` or check the depth",
            )
        sc = scene.scene_from_mesh(Mesh(tm))
        dev = ctx.device.torch_device if ctx.device.kind == "cuda" else "cpu"
        poses = []
        for k in range(frames):
            yaw = 360.0 * k / frames
            a = 2 * math.pi * k / frames
            pos = (
                np.zeros(3)
                if mode == "turn"
                else walk_radius * np.array([math.sin(a), 0.0, -math.cos(a)])
            )
            poses.append(projection.yaw_pitch_pose(pos, yaw))
        cams = [Camera.from_fov(width, height, fov, p) for p in poses]
        memo = _FrameMemo(lambda i: scene.render(sc, cams[i], backend, dev)[0])  # type: ignore[arg-type]
        video = Video(frames, fps, lambda i: Image(memo(i).image), (width, height), "pano")
        holes = Video(
            frames, fps, lambda i: Image((~memo(i).covered).astype(np.float32)), (width, height)
        )
        cube = self.cube_map(ctx, sc, cube_size, backend, dev)
        return {
            "mesh": Mesh(tm),
            "video": video,
            "mask_video": holes,
            "cube": Image(cube),
            "path": CameraPath(cams, fps),
        }

    @staticmethod
    def cube_map(
        ctx: NodeContext, sc: scene.RenderScene, size: int, backend: str, dev: str
    ) -> np.ndarray:
        """Faces in a 3×2 grid: front, right, back / left, up, down. Seen from the capture
        point only the thin cracks left by discontinuity cuts are empty; they are inpainted."""
        faces = []
        for i, pose in enumerate(projection.cube_poses(np.zeros(3))):
            ctx.check_cancelled()
            cam = Camera.from_fov(size, size, 90.0, pose)
            out = scene.render(sc, cam, backend, dev)[0]  # type: ignore[arg-type]
            faces.append(inpaint(out.image, (~out.covered).astype(np.float32), 3, "telea"))
            ctx.progress((i + 1) / 6, "cube map")
        top = np.concatenate(faces[:3], axis=1)
        bottom = np.concatenate(faces[3:], axis=1)
        return np.concatenate([top, bottom], axis=0)
