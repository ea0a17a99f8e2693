"""Renderable scenes and the two renderers behind `view.render`: pure torch and OpenGL (EGL).

Both take the same ``RenderScene`` and ``Camera`` and return unlit colour, depth along the camera
axis and coverage, so they can be compared pixel for pixel. The torch path needs nothing but
torch and runs on CPU or GPU; the OpenGL path uses pyrender on an EGL context when one can be
made (Mesa software rendering on a headless CPU machine, the driver on a GPU machine).
"""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np

from fathom.engine.geometry import meshing, projection
from fathom.engine.types import RGBD, Camera, Mesh, PointCloud


@dataclass
class RenderScene:
    """Triangles (or points when ``faces`` is None) with per-vertex colour or a UV texture."""

    vertices: np.ndarray  # V×3 float32, world frame
    faces: np.ndarray | None = None  # F×3 int64
    colors: np.ndarray | None = None  # V×3 float32 in [0,1]
    uv: np.ndarray | None = None  # V×2, origin bottom-left
    texture: np.ndarray | None = None  # H×W×3 float32
    point_radius: int = 1

    @property
    def is_points(self) -> bool:
        return self.faces is None


@dataclass
class RenderOutput:
    image: np.ndarray  # H×W×3 float32
    depth: np.ndarray  # H×W float32, inf where empty
    covered: np.ndarray  # H×W bool


# --------------------------------------------------------------------------------------------
# Scenes from port values


def scene_from_mesh(mesh: Mesh) -> RenderScene:
    m = mesh.mesh
    verts = np.asarray(m.vertices, np.float32)
    faces = np.asarray(m.faces, np.int64)
    visual = m.visual
    if getattr(visual, "kind", None) == "texture" and getattr(visual, "uv", None) is not None:
        material = visual.material
        img = getattr(material, "image", None) or getattr(material, "baseColorTexture", None)
        # glTF's base colour factor multiplies the texture (white unless the file says so).
        factor = getattr(material, "baseColorFactor", None)
        factor = np.asarray([255] * 3 if factor is None else factor, np.float32)
        if img is not None:
            tex = np.asarray(img.convert("RGB"), np.float32) / 255.0 * (factor[:3] / 255.0)
            return RenderScene(verts, faces, uv=np.asarray(visual.uv, np.float32), texture=tex)
        main = np.asarray(getattr(material, "main_color", [204] * 3), np.float32)[:3] / 255.0
        return RenderScene(verts, faces, np.tile(main, (len(verts), 1)))  # a material colour
    colors = None
    if getattr(visual, "kind", None) == "vertex" or hasattr(visual, "vertex_colors"):
        try:
            vc = np.asarray(visual.vertex_colors)
            if len(vc) == len(verts):
                colors = vc[:, :3].astype(np.float32) / 255.0
        except (AttributeError, ValueError):
            colors = None
    if colors is None:
        colors = np.full((len(verts), 3), 0.8, np.float32)
    return RenderScene(verts, faces, colors)


def coarse_scene(scene: RenderScene, faces: int) -> RenderScene:
    """``scene`` with about ``faces`` triangles or fewer, for drawing while the view moves.

    Vertex clustering in the viewer's terms, seen from the origin: cells of equal angle
    (azimuth, elevation) and equal relative depth (log distance), so near surfaces keep as
    much detail on screen as far ones and a depth edge never merges foreground with
    background. A cell's vertices become one, at their mean position, colour and UV (cells are
    split at UV seams). Plain numpy in short steps, so a worker running it leaves the GUI
    thread its turns (a quadric decimation library held the interpreter ~0.4 s for 400k
    triangles). Points, or a scene already that small, come back unchanged."""
    if scene.faces is None or faces <= 0 or len(scene.faces) <= faces:
        return scene
    verts = np.asarray(scene.vertices, np.float64)
    tris = np.asarray(scene.faces, np.int64)
    r = np.maximum(np.linalg.norm(verts, axis=1), 1e-9)
    coords = np.stack(
        [
            np.arctan2(verts[:, 0], verts[:, 2]),
            np.arcsin(np.clip(verts[:, 1] / r, -1, 1)),
            np.log(r),
        ],
        axis=1,
    )
    uv = None if scene.uv is None else np.asarray(scene.uv, np.float64)
    cell = 2.0 * np.pi / max(8.0, np.sqrt(2.0 * faces))  # a first guess: the whole sphere
    best: tuple[np.ndarray, np.ndarray] | None = None
    for _ in range(6):
        labels, count = _cluster(coords, uv, cell)
        out = _collapsed(tris, labels)
        if len(out) <= faces:
            best = (labels, out)
            if len(out) >= 0.6 * faces:
                break
            cell /= 1.25 * np.sqrt(faces / max(len(out), 1))  # too coarse: finer cells
        else:
            cell *= 1.1 * np.sqrt(len(out) / faces)
    if best is None:
        best = (labels, out)
    labels, out = best
    count = int(labels.max()) + 1
    weight = np.bincount(labels, minlength=count).astype(np.float64)[:, None]

    def mean(a: np.ndarray | None) -> np.ndarray | None:
        if a is None:
            return None
        a = np.asarray(a, np.float64)
        sums = np.stack([np.bincount(labels, a[:, k], count) for k in range(a.shape[1])], 1)
        return (sums / weight).astype(np.float32)

    return RenderScene(
        mean(verts),  # type: ignore[arg-type]
        out,
        mean(scene.colors),
        mean(scene.uv),
        scene.texture,
        scene.point_radius,
    )


def _cluster(coords: np.ndarray, uv: np.ndarray | None, cell: float) -> tuple[np.ndarray, int]:
    """Each vertex's cell label (0..n-1) on a grid of ``cell`` radians / log-units (UV split
    on the same grid, over 2π)."""
    keys = [np.floor(coords / cell).astype(np.int64)]
    if uv is not None:
        keys.append(np.floor(uv * (2.0 * np.pi / cell)).astype(np.int64))
    key = np.concatenate(keys, axis=1)
    key -= key.min(axis=0)
    flat = np.ravel_multi_index(tuple(key.T), tuple(key.max(axis=0) + 1))  # one int per cell
    _, labels = np.unique(flat, return_inverse=True)
    labels = labels.reshape(-1)
    return labels, int(labels.max()) + 1


def _collapsed(tris: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """The triangles between distinct cells, each once."""
    t = labels[tris]
    keep = (t[:, 0] != t[:, 1]) & (t[:, 1] != t[:, 2]) & (t[:, 0] != t[:, 2])
    t = t[keep]
    if not len(t):
        return t
    s = np.sort(t, axis=1)
    n = int(labels.max()) + 1
    if n < 2_000_000:  # n³ fits an int64: one sortable key per triangle
        _, first = np.unique((s[:, 0] * n + s[:, 1]) * n + s[:, 2], return_index=True)
    else:
        _, first = np.unique(s, axis=0, return_index=True)
    return t[np.sort(first)]


def scene_from_pointcloud(pc: PointCloud, radius: int = 1) -> RenderScene:
    colors = pc.colors if pc.colors is not None else np.full((len(pc), 3), 0.8, np.float32)
    return RenderScene(pc.points, None, colors, point_radius=radius)


def scene_from_rgbd(rgbd: RGBD, camera: Camera, max_ratio: float = 0.05) -> RenderScene:
    """Grid mesh of the RGBD view, cut at depth discontinuities; one vertex per pixel."""
    if rgbd.depth.kind != "metric":
        raise ValueError(
            "relative depth has no scale to render from another viewpoint; "
            "convert it with depth.to_metric first"
        )
    d = rgbd.depth.data
    verts, faces, _ = meshing.depth_grid_mesh(
        d, camera.fx, camera.fy, camera.cx, camera.cy, camera.pose, max_ratio
    )
    colors = rgbd.image.rgb().reshape(-1, 3)
    verts = np.nan_to_num(verts.astype(np.float32), nan=0.0)
    return RenderScene(verts, faces, colors.astype(np.float32))


# --------------------------------------------------------------------------------------------
# Torch renderer


def render_torch(
    scene: RenderScene,
    camera: Camera,
    device: str = "cpu",
    background: tuple[float, float, float] = (0.0, 0.0, 0.0),
) -> RenderOutput:
    import torch

    from fathom.engine.geometry import raster

    dev = torch.device(device)
    verts = torch.as_tensor(np.asarray(scene.vertices, np.float32), device=dev)
    cam_v = raster.to_camera(verts, camera.pose)
    w, h = camera.width, camera.height
    with torch.inference_mode():
        if scene.is_points:
            colors = torch.as_tensor(np.asarray(scene.colors, np.float32), device=dev)
            img, depth = raster.splat_points(
                cam_v,
                colors,
                camera.fx,
                camera.fy,
                camera.cx,
                camera.cy,
                w,
                h,
                scene.point_radius,
                background=background,
            )
        else:
            faces = torch.as_tensor(np.asarray(scene.faces, np.int64), device=dev)
            frags = raster.rasterize(cam_v, faces, camera.fx, camera.fy, camera.cx, camera.cy, w, h)
            if scene.texture is not None and scene.uv is not None:
                img = raster.shade_texture(
                    frags,
                    faces,
                    torch.as_tensor(scene.uv, device=dev),
                    torch.as_tensor(scene.texture, device=dev),
                    background,
                )
            else:
                colors = torch.as_tensor(np.asarray(scene.colors, np.float32), device=dev)
                img = raster.shade_vertex_colors(frags, faces, colors, background)
            depth = frags.depth
        img_np = img.clamp(0, 1).cpu().numpy().astype(np.float32)
        depth_np = depth.cpu().numpy().astype(np.float32)
    return RenderOutput(img_np, depth_np, np.isfinite(depth_np))


# --------------------------------------------------------------------------------------------
# OpenGL renderer (pyrender over EGL)

_GL_LOCK = threading.Lock()
_GL_RENDERERS: dict[tuple[int, int], Any] = {}
_GL_STATUS: dict[str, Any] = {}

# OpenCV camera axes → OpenGL camera axes (y up, looking down -z).
_CV_TO_GL = np.diag([1.0, -1.0, -1.0, 1.0])


@contextmanager
def _egl_env() -> Iterator[None]:
    """``PYOPENGL_PLATFORM=egl`` only while pyrender is imported or a renderer is made.

    PyOpenGL binds one platform at its first import and pyrender reads the variable when it
    creates a context. Left set, it would leak into child processes and into a later Qt/GLX
    view (the GUI's 3D preview), which then draws nothing."""
    before = os.environ.get("PYOPENGL_PLATFORM")
    os.environ["PYOPENGL_PLATFORM"] = before or "egl"
    try:
        yield
    finally:
        if before is None:
            os.environ.pop("PYOPENGL_PLATFORM", None)


def _import_pyrender() -> Any:
    """pyrender bound to EGL. If PyOpenGL is already bound to a windowed platform (a GUI view
    imported it first), EGL cannot work in this process: say so, and callers use torch."""
    if "OpenGL.platform" in sys.modules and "pyrender" not in sys.modules:
        import OpenGL.platform as glp

        bound = type(glp.PLATFORM).__name__
        if "EGL" not in bound:
            raise RuntimeError(
                f"PyOpenGL is already bound to {bound} in this process (a GUI "
                "view loaded it first), so offscreen EGL rendering is off here; "
                "the torch renderer works everywhere"
            )
    with _egl_env():
        import pyrender
    return pyrender


def opengl_available() -> bool:
    """Whether an offscreen OpenGL context can be made here; probed once per process."""
    if "ok" not in _GL_STATUS:
        try:
            with _GL_LOCK:
                pr = _import_pyrender()
                with _egl_env():
                    r = pr.OffscreenRenderer(8, 8)
                from OpenGL.GL import GL_RENDERER, glGetString

                name = glGetString(GL_RENDERER)
                _GL_STATUS["renderer"] = name.decode() if isinstance(name, bytes) else str(name)
                r.delete()
            _GL_STATUS["ok"] = True
        except Exception as exc:  # noqa: BLE001 - any GL/EGL failure means 'not available'
            _GL_STATUS["ok"] = False
            _GL_STATUS["error"] = f"{type(exc).__name__}: {exc}"
    return bool(_GL_STATUS["ok"])


def opengl_error() -> str:
    return str(_GL_STATUS.get("error", ""))


def opengl_is_hardware() -> bool:
    """False for Mesa's software rasterizers, which bench/bench_depth3d.py measured slower
    than the torch path on the same CPU."""
    if not opengl_available():
        return False
    name = str(_GL_STATUS.get("renderer", "")).lower()
    return not any(s in name for s in ("llvmpipe", "softpipe", "swrast", "software"))


def render_opengl(
    scene: RenderScene, camera: Camera, background: tuple[float, float, float] = (0.0, 0.0, 0.0)
) -> RenderOutput:
    """Unlit (flat) rendering, double-sided, so colours match the torch path."""
    pr = _import_pyrender()
    near, far = _near_far(scene, camera)
    with _GL_LOCK:
        sc = pr.Scene(bg_color=[*background, 0.0], ambient_light=[1.0, 1.0, 1.0])
        if scene.is_points:
            colors = np.asarray(scene.colors, np.float32)
            sc.add(pr.Mesh.from_points(np.asarray(scene.vertices, np.float32), colors=colors))
        else:
            # Floats, not ints: pyrender reads integer colour factors as 0..255.
            mat = pr.MetallicRoughnessMaterial(
                baseColorFactor=[1.0, 1.0, 1.0, 1.0], doubleSided=True
            )
            attrs: dict[str, Any] = {}
            if scene.texture is not None and scene.uv is not None:
                tex = (np.clip(scene.texture, 0, 1) * 255).astype(np.uint8)
                mat.baseColorTexture = pr.Texture(source=tex, source_channels="RGB")
                attrs["texcoord_0"] = np.asarray(scene.uv, np.float32)
            else:
                rgb = np.clip(np.asarray(scene.colors, np.float32), 0, 1)
                attrs["color_0"] = np.concatenate([rgb, np.ones((len(rgb), 1), np.float32)], 1)
            prim = pr.Primitive(
                positions=np.asarray(scene.vertices, np.float32),
                indices=np.asarray(scene.faces, np.uint32),
                material=mat,
                **attrs,
            )
            sc.add(pr.Mesh([prim]))
        cam = pr.IntrinsicsCamera(camera.fx, camera.fy, camera.cx, camera.cy, znear=near, zfar=far)
        sc.add(cam, pose=camera.pose @ _CV_TO_GL)
        key = (camera.width, camera.height)
        if key not in _GL_RENDERERS:
            with _egl_env():
                _GL_RENDERERS[key] = pr.OffscreenRenderer(
                    camera.width, camera.height, point_size=2 * scene.point_radius + 1
                )
        r = _GL_RENDERERS[key]
        r.point_size = 2 * scene.point_radius + 1
        color, depth = r.render(sc, flags=pr.RenderFlags.FLAT)
    img = color[..., :3].astype(np.float32) / 255.0
    d = depth.astype(np.float32)
    covered = d > 0
    d = np.where(covered, d, np.inf).astype(np.float32)
    return RenderOutput(img, d, covered)


def _near_far(scene: RenderScene, camera: Camera) -> tuple[float, float]:
    """Depth range from the geometry, so the depth buffer's precision is spent on the scene."""
    _, z = projection.project(scene.vertices, 1, 1, 0, 0, camera.pose)
    z = z[np.isfinite(z) & (z > 1e-3)]
    if not len(z):
        return 0.01, 100.0
    far = float(z.max()) * 1.05 + 1e-3
    return max(far * 1e-3, 0.9 * float(z.min())), far


def render(
    scene: RenderScene,
    camera: Camera,
    backend: str = "auto",
    device: str = "cpu",
    background: tuple[float, float, float] = (0.0, 0.0, 0.0),
) -> tuple[RenderOutput, str]:
    """Pick a backend: torch on a GPU device; on CPU, OpenGL only when it runs on real graphics
    hardware (software OpenGL is slower than the torch path); otherwise torch."""
    if backend == "auto":
        backend = "opengl" if device == "cpu" and opengl_is_hardware() else "torch"
    if backend == "opengl":
        if not opengl_available():
            raise RuntimeError(
                f"OpenGL rendering is not available here ({opengl_error()}); use backend 'torch'"
            )
        return render_opengl(scene, camera, background), "opengl"
    return render_torch(scene, camera, device, background), "torch"
