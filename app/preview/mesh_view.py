"""Mesh and point-cloud viewer: pyqtgraph's OpenGL view where Qt can make a GL context, and a
software fallback (the engine's torch rasterizer from an orbit camera) everywhere else.

The fallback exists because the offscreen Qt platform (CI, remote sessions) cannot draw
``QOpenGLWidget`` at all; it renders on a worker thread, small while the mouse moves and sharp
when it stops, so the GUI never waits on a render. The render helpers here (view-frustum culling,
the worker, hidden-line wireframe) are shared with the 360° viewer.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, replace
from functools import lru_cache
from typing import Any

import numpy as np
from PySide6.QtCore import QPointF, Qt, QTimer, Signal
from PySide6.QtGui import (
    QColor,
    QGuiApplication,
    QImage,
    QMouseEvent,
    QOpenGLContext,
    QPainter,
    QPaintEvent,
    QResizeEvent,
    QWheelEvent,
)
from PySide6.QtWidgets import QHBoxLayout, QLabel, QSpinBox, QVBoxLayout, QWidget

from app.preview.image_view import to_qimage, tool_button
from app.preview.worker import BackgroundRenderer
from engine import geometry
from engine.scene import RenderScene, render_torch, scene_from_mesh, scene_from_pointcloud
from engine.types import RGBD, Camera, Mesh, PointCloud

BACKGROUND = (0.125, 0.125, 0.125)
MAX_POINTS = 400_000
MAX_EDGES = 400_000


# --------------------------------------------------------------------------------------------
# Backend choice


def gl_available() -> bool:
    """Whether Qt can make an OpenGL context here. False on the offscreen platform (where
    ``QOpenGLWidget`` draws nothing) or with ``FATHOM_PREVIEW_GL=0``."""
    if os.environ.get("FATHOM_PREVIEW_GL", "") == "0":
        return False
    if QGuiApplication.instance() is None or \
            QGuiApplication.platformName() in ("offscreen", "minimal"):
        return False
    if not QOpenGLContext().create():
        return False
    try:
        import pyqtgraph.opengl  # noqa: F401 - probing that PyOpenGL loads
    except Exception:  # noqa: BLE001 - any import/driver failure means "use the fallback"
        return False
    return True


@lru_cache(maxsize=1)
def render_device() -> str:
    """The torch device previews render on: a GPU when there is one, else the CPU."""
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


# --------------------------------------------------------------------------------------------
# What is shown: port values → one renderable form


@dataclass
class PreviewGeometry:
    """A value made renderable: the engine scene (texture kept) for the software path, one colour
    per vertex for OpenGL, normals for shading when colours are off, and its bounds."""

    scene: RenderScene
    vertex_colors: np.ndarray  # V×3 in [0, 1]
    normals: np.ndarray | None
    has_colors: bool
    center: np.ndarray
    radius: float
    summary: str
    _edges: np.ndarray | None = None

    @property
    def is_points(self) -> bool:
        return self.scene.faces is None

    def edges(self) -> np.ndarray:
        """Unique undirected edges (E×2), subsampled past MAX_EDGES to keep wireframes fast."""
        if self._edges is None:
            f = np.asarray(self.scene.faces)
            pairs = np.sort(f[:, [0, 1, 1, 2, 2, 0]].reshape(-1, 2), axis=1).astype(np.int64)
            n = int(pairs.max()) + 1 if len(pairs) else 1
            keys = np.unique(pairs[:, 0] * n + pairs[:, 1])
            if len(keys) > MAX_EDGES:
                keys = np.random.default_rng(0).choice(keys, MAX_EDGES, replace=False)
            self._edges = np.stack([keys // n, keys % n], axis=1)
        return self._edges


def _bounds(points: np.ndarray) -> tuple[np.ndarray, float]:
    lo, hi = np.nanmin(points, 0), np.nanmax(points, 0)
    center = (lo + hi) / 2
    return center.astype(np.float64), max(float(np.linalg.norm(hi - lo)) / 2, 1e-6)


def _texture_at_vertices(scene: RenderScene) -> np.ndarray:
    """Nearest texel per vertex: OpenGL items here take vertex colours, not textures."""
    assert scene.texture is not None and scene.uv is not None
    th, tw = scene.texture.shape[:2]
    u = np.clip((scene.uv[:, 0] * tw).astype(np.int64), 0, tw - 1)
    v = np.clip(((1.0 - scene.uv[:, 1]) * th).astype(np.int64), 0, th - 1)
    return scene.texture[v, u, :3].astype(np.float32)


def geometry_from_value(value: Any, max_points: int = MAX_POINTS) -> PreviewGeometry:
    """Mesh, PointCloud or RGBD (shown as its point cloud) → PreviewGeometry."""
    if isinstance(value, Mesh):
        tm = value.mesh
        if len(tm.faces) == 0:
            raise ValueError("the mesh has no faces")
        sc = scene_from_mesh(value)
        has_colors = getattr(tm.visual, "kind", None) is not None
        cols = _texture_at_vertices(sc) if sc.texture is not None else np.asarray(sc.colors)
        normals = np.asarray(tm.vertex_normals, np.float32)
        center, radius = _bounds(np.asarray(sc.vertices))
        summary = f"mesh: {len(tm.vertices):,} vertices, {len(tm.faces):,} faces"
        return PreviewGeometry(sc, cols, normals, has_colors, center, radius, summary)
    if isinstance(value, RGBD):
        d = value.depth
        cam = value.camera or Camera.from_fov(d.width, d.height, 60.0)
        pts = geometry.backproject(d.data, cam.fx, cam.fy, cam.cx, cam.cy, cam.pose)
        pts = pts.reshape(-1, 3)
        ok = np.all(np.isfinite(pts), axis=1) & d.valid().reshape(-1)
        note = "" if d.kind == "metric" else " (relative depth shown as distance)"
        pc = PointCloud(pts[ok], value.image.rgb().reshape(-1, 3)[ok])
        geom = geometry_from_value(pc, max_points)
        geom.summary = f"RGBD {d.width}×{d.height} as points: {len(pc):,}{note}"
        return geom
    if isinstance(value, PointCloud):
        if len(value) == 0:
            raise ValueError("the point cloud is empty")
        stride = max(1, math.ceil(len(value) / max_points))
        pts = value.points[::stride]
        cols = value.colors[::stride] if value.colors is not None else None
        sc = scene_from_pointcloud(PointCloud(pts, cols), radius=1)
        center, radius = _bounds(pts)
        shown = f" (every {stride}th shown)" if stride > 1 else ""
        summary = f"point cloud: {len(value):,} points{shown}"
        return PreviewGeometry(sc, np.asarray(sc.colors), None, cols is not None, center,
                               radius, summary)
    raise TypeError(f"cannot show a {type(value).__name__} as 3D")


# --------------------------------------------------------------------------------------------
# Software rendering (shared with the 360° viewer)


def cull_faces(scene: RenderScene, camera: Camera, near: float = 1e-3) -> RenderScene:
    """Keep only triangles in front of the camera whose screen bounds touch the image: the
    rasterizer's cost grows with the triangles it is given, and a 360° scene is mostly outside
    any one view."""
    if scene.faces is None or len(scene.faces) == 0:
        return scene
    w2c = geometry.invert_pose(camera.pose).astype(np.float32)
    v = np.asarray(scene.vertices, np.float32) @ w2c[:3, :3].T + w2c[:3, 3]
    z = v[:, 2]
    front = z > near
    zs = np.where(front, z, 1.0)
    sx = camera.fx * v[:, 0] / zs + camera.cx
    sy = camera.fy * v[:, 1] / zs + camera.cy
    f = np.asarray(scene.faces)
    fx, fy = sx[f], sy[f]
    keep = front[f].all(1)
    keep &= (fx.max(1) >= 0) & (fx.min(1) <= camera.width)
    keep &= (fy.max(1) >= 0) & (fy.min(1) <= camera.height)
    return replace(scene, faces=f[keep])


def headlight(normals: np.ndarray, camera: Camera) -> np.ndarray:
    """Gray shading lit from the camera (two-sided), so uncoloured shapes read as 3D."""
    fwd = camera.pose[:3, 2].astype(np.float32)
    lam = np.abs(normals @ fwd)
    g = 0.2 + 0.7 * np.nan_to_num(lam)
    return np.repeat(g[:, None], 3, axis=1).astype(np.float32)


def draw_wireframe(image: np.ndarray, zbuf: np.ndarray, vertices: np.ndarray,
                   edges: np.ndarray, camera: Camera,
                   color: tuple[float, float, float] = (0.95, 0.95, 0.95)) -> None:
    """Draw edges into ``image`` in place, hidden where the rendered surface is in front
    (samples are depth-tested against ``zbuf`` with perspective-correct depth)."""
    if not len(edges):
        return
    w2c = geometry.invert_pose(camera.pose).astype(np.float32)
    v = np.asarray(vertices, np.float32) @ w2c[:3, :3].T + w2c[:3, 3]
    z = v[:, 2]
    e = edges[(z[edges] > 1e-3).all(1)]
    if not len(e):
        return
    uv = np.stack([camera.fx * v[:, 0] / np.maximum(z, 1e-3) + camera.cx,
                   camera.fy * v[:, 1] / np.maximum(z, 1e-3) + camera.cy], 1)
    a, b = uv[e[:, 0]], uv[e[:, 1]]
    h, w = zbuf.shape
    on_screen = (np.maximum(a[:, 0], b[:, 0]) >= 0) & (np.minimum(a[:, 0], b[:, 0]) < w) & \
        (np.maximum(a[:, 1], b[:, 1]) >= 0) & (np.minimum(a[:, 1], b[:, 1]) < h)
    e, a, b = e[on_screen], a[on_screen], b[on_screen]
    n = np.clip(np.ceil(np.abs(b - a).max(1)), 1, 512).astype(np.int64) + 1
    start = np.concatenate([[0], np.cumsum(n)[:-1]])
    idx = np.repeat(np.arange(len(e)), n)
    t = ((np.arange(int(n.sum())) - start[idx]) / (n[idx] - 1)).astype(np.float32)
    p = a[idx] + (b - a)[idx] * t[:, None]
    iz = (1 - t) / z[e[idx, 0]] + t / z[e[idx, 1]]
    xi, yi = np.floor(p[:, 0]).astype(np.int64), np.floor(p[:, 1]).astype(np.int64)
    inside = (xi >= 0) & (xi < w) & (yi >= 0) & (yi < h)
    xi, yi, depth = xi[inside], yi[inside], 1.0 / iz[inside]
    visible = depth <= zbuf[yi, xi] * 1.01 + 1e-4
    image[yi[visible], xi[visible]] = color


def render_geometry(geom: PreviewGeometry, camera: Camera, colors_on: bool = True,
                    wireframe: bool = False, point_radius: int = 1) -> np.ndarray:
    """H×W×3 software render of ``geom``, as the mesh viewer's fallback shows it."""
    sc = replace(geom.scene, point_radius=point_radius)
    if not (colors_on and geom.has_colors):
        n = len(sc.vertices)
        cols = headlight(geom.normals, camera) if geom.normals is not None else \
            np.full((n, 3), 0.8, np.float32)
        sc = replace(sc, colors=cols, texture=None, uv=None)
    out = render_torch(cull_faces(sc, camera), camera, render_device(), BACKGROUND)
    image = out.image
    if wireframe and not geom.is_points:
        image = image.copy()
        draw_wireframe(image, out.depth, sc.vertices, geom.edges(), camera)
    return image


# --------------------------------------------------------------------------------------------
# Orbit camera + software view


@dataclass
class OrbitCamera:
    """Turntable camera around a target: azimuth about world up (-y), elevation above it."""

    target: np.ndarray
    distance: float
    azimuth: float = 0.0
    elevation: float = 0.0
    fov: float = 50.0

    def pose(self) -> np.ndarray:
        az, el = math.radians(self.azimuth), math.radians(self.elevation)
        fwd = np.array([math.cos(el) * math.sin(az), math.sin(el), math.cos(el) * math.cos(az)])
        return geometry.look_at(self.target - self.distance * fwd, self.target)

    def camera(self, width: int, height: int) -> Camera:
        return Camera.from_fov(width, height, self.fov, self.pose())

    def orbit(self, d_azimuth: float, d_elevation: float) -> None:
        self.azimuth = (self.azimuth + d_azimuth) % 360.0
        self.elevation = float(np.clip(self.elevation + d_elevation, -89.0, 89.0))

    def pan(self, dx: float, dy: float, view_height: int) -> None:
        """Move the target so the scene follows a drag of (dx, dy) screen pixels."""
        pose = self.pose()
        per_px = 2 * self.distance * math.tan(math.radians(self.fov) / 2) / max(1, view_height)
        self.target = self.target - (pose[:3, 0] * dx + pose[:3, 1] * dy) * per_px

    def zoom(self, factor: float) -> None:
        self.distance = max(1e-6, self.distance * factor)


class SoftwareMeshView(QWidget):
    """Orbit (left drag), pan (right/middle or Shift+left drag), zoom (wheel) over torch renders."""

    rendered = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setMinimumSize(64, 64)
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self.orbit = OrbitCamera(np.zeros(3), 3.0)
        self.wireframe = False
        self.colors_on = True
        self.point_size = 3
        self.max_side = 720
        self.preview_factor = 0.4
        self.frames_shown = 0
        self.error = ""
        self._geom: PreviewGeometry | None = None
        self._frame: QImage | None = None
        self._seq = 0
        self._shown_seq = -1
        self._drag: tuple[QPointF, bool] | None = None
        self._renderer = BackgroundRenderer(self._show_result, self)
        self._idle = QTimer(self)
        self._idle.setSingleShot(True)
        self._idle.setInterval(150)
        self._idle.timeout.connect(lambda: self.request_render(preview=False))

    def set_geometry(self, geom: PreviewGeometry | None) -> None:
        self._geom = geom
        self._frame = None
        if geom is not None:
            self.reset_view()
        self.update()

    def reset_view(self) -> None:
        if self._geom is None:
            return
        g = self._geom
        d = g.radius / math.sin(math.radians(self.orbit.fov) / 2) * 1.05
        self.orbit = OrbitCamera(g.center.copy(), d, 0.0, 0.0, self.orbit.fov)
        self.request_render(preview=False)

    def render_size(self, preview: bool) -> tuple[int, int]:
        w, h = max(16, self.width()), max(16, self.height())
        s = min(1.0, self.max_side / max(w, h)) * (self.preview_factor if preview else 1.0)
        return max(16, round(w * s)), max(16, round(h * s))

    def render_image(self, width: int, height: int) -> np.ndarray:
        """Synchronous render of the current view at ``width``×``height``."""
        if self._geom is None:
            return np.zeros((height, width, 3), np.float32)
        return render_geometry(self._geom, self.orbit.camera(width, height), self.colors_on,
                               self.wireframe, max(0, (self.point_size - 1) // 2))

    def render_now(self) -> np.ndarray:
        """Render at full preview size on this thread and show it (tests, screenshots)."""
        img = self.render_image(*self.render_size(preview=False))
        self._seq += 1
        self._show_result(self._seq, img)
        return img

    def request_render(self, preview: bool = True) -> None:
        """Render on the worker thread; a preview-size render is followed by a full one once
        the view has been still for a moment."""
        if self._geom is None:
            return
        geom, cam = self._geom, self.orbit.camera(*self.render_size(preview))
        opts = (self.colors_on, self.wireframe, max(0, (self.point_size - 1) // 2))
        self._seq += 1
        self._renderer.submit(lambda: render_geometry(geom, cam, *opts), self._seq)
        if preview:
            self._idle.start()

    @property
    def idle(self) -> bool:
        return self._renderer.idle and not self._idle.isActive()

    def _show_result(self, seq: int, result: Any) -> None:
        if seq < self._shown_seq:
            return
        self._shown_seq = seq
        if isinstance(result, Exception):
            self.error = f"{type(result).__name__}: {result}"
            self._frame = None
        else:
            self.error = ""
            self._frame = to_qimage(result)
        self.frames_shown += 1
        self.update()
        self.rendered.emit()

    def paintEvent(self, event: QPaintEvent) -> None:  # noqa: N802 - Qt override
        p = QPainter(self)
        p.fillRect(self.rect(), QColor(*(round(c * 255) for c in BACKGROUND)))
        if self._frame is not None:
            p.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, True)
            p.drawImage(self.rect(), self._frame)
        elif self.error:
            p.setPen(QColor(255, 120, 120))
            p.drawText(self.rect(), Qt.AlignmentFlag.AlignCenter, self.error)

    def resizeEvent(self, event: QResizeEvent) -> None:  # noqa: N802 - Qt override
        super().resizeEvent(event)
        if self._geom is not None:
            self._idle.start()

    def mousePressEvent(self, event: QMouseEvent) -> None:  # noqa: N802 - Qt override
        pan = event.button() in (Qt.MouseButton.RightButton, Qt.MouseButton.MiddleButton) or \
            bool(event.modifiers() & Qt.KeyboardModifier.ShiftModifier)
        self._drag = (event.position(), pan)

    def mouseMoveEvent(self, event: QMouseEvent) -> None:  # noqa: N802 - Qt override
        if self._drag is None:
            return
        start, pan = self._drag
        d = event.position() - start
        self._drag = (event.position(), pan)
        if pan:
            self.orbit.pan(d.x(), d.y(), self.height())
        else:
            self.orbit.orbit(-0.4 * d.x(), 0.4 * d.y())
        self.request_render(preview=True)

    def mouseReleaseEvent(self, event: QMouseEvent) -> None:  # noqa: N802 - Qt override
        self._drag = None

    def wheelEvent(self, event: QWheelEvent) -> None:  # noqa: N802 - Qt override
        steps = event.angleDelta().y() / 120.0
        if steps:
            self.orbit.zoom(0.85 ** steps)
            self.request_render(preview=True)
        event.accept()


# --------------------------------------------------------------------------------------------
# OpenGL view


class GLMeshView(QWidget):
    """pyqtgraph's GLViewWidget (its own orbit/pan/zoom), fed from PreviewGeometry.

    Geometry is shown with -y as up (the engine uses OpenCV axes; GLViewWidget is z-up)."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        import pyqtgraph.opengl as gl

        self._gl = gl
        self.view = gl.GLViewWidget()
        self.view.setBackgroundColor(tuple(round(c * 255) for c in BACKGROUND))
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addWidget(self.view)
        self.wireframe = False
        self.colors_on = True
        self.point_size = 3
        self._geom: PreviewGeometry | None = None
        self._item: Any = None

    @staticmethod
    def _to_gl(points: np.ndarray) -> np.ndarray:
        p = np.asarray(points, np.float32)
        return np.stack([p[:, 0], p[:, 2], -p[:, 1]], axis=1)

    def set_geometry(self, geom: PreviewGeometry | None) -> None:
        self._geom = geom
        self.rebuild()
        self.reset_view()

    def rebuild(self) -> None:
        """Recreate the item: wireframe, colours and point size are construction options."""
        gl = self._gl
        if self._item is not None:
            self.view.removeItem(self._item)
            self._item = None
        g = self._geom
        if g is None:
            return
        pos = self._to_gl(g.scene.vertices)
        colored = self.colors_on and g.has_colors
        rgba = np.concatenate([g.vertex_colors, np.ones((len(pos), 1), np.float32)], 1)
        if g.is_points:
            col = rgba if colored else (0.8, 0.8, 0.8, 1.0)
            self._item = gl.GLScatterPlotItem(pos=pos, color=col, size=self.point_size,
                                              pxMode=True)
            self._item.setGLOptions("opaque")  # the default is additive: dense clouds go white
        else:
            faces = np.asarray(g.scene.faces, np.int32)
            # Coloured: indexed vertices, colours interpolated, no lighting (as the software
            # path). Gray: flat face normals for the 'shaded' shader, so the shape reads.
            kw: dict[str, Any] = {"smooth": True, "computeNormals": False}
            if colored:
                md = gl.MeshData(vertexes=pos, faces=faces, vertexColors=rgba)
            else:
                md = gl.MeshData(vertexes=pos, faces=faces)
                kw = {"smooth": False, "color": (0.8, 0.8, 0.8, 1.0), "shader": "shaded"}
            self._item = gl.GLMeshItem(meshdata=md, drawFaces=not self.wireframe,
                                       drawEdges=self.wireframe, edgeColor=(0.95, 0.95, 0.95, 1),
                                       **kw)
        self.view.addItem(self._item)

    def reset_view(self) -> None:
        if self._geom is None:
            return
        from pyqtgraph import Vector

        c = self._to_gl(self._geom.center[None])[0]
        self.view.setCameraPosition(pos=Vector(*c), distance=2.6 * self._geom.radius,
                                    elevation=15, azimuth=-90)

    def grab_image(self) -> QImage:
        return self.view.grabFramebuffer()


# --------------------------------------------------------------------------------------------
# Panel


class MeshPanel(QWidget):
    """3D preview with wireframe / colour / point-size controls over either backend."""

    def __init__(self, parent: QWidget | None = None, backend: str = "auto") -> None:
        super().__init__(parent)
        use_gl = backend == "gl" or (backend == "auto" and gl_available())
        self.backend = "opengl" if use_gl else "software"
        self.view: GLMeshView | SoftwareMeshView = GLMeshView() if use_gl \
            else SoftwareMeshView()
        self.wire_button = tool_button("Wire", "Wireframe", checkable=True)
        self.color_button = tool_button("Colour", "Vertex colours (off: gray, shaded)",
                                        checkable=True)
        self.color_button.setChecked(True)
        self.point_size = QSpinBox()
        self.point_size.setRange(1, 15)
        self.point_size.setValue(3)
        self.point_size.setPrefix("pt ")
        self.point_size.setToolTip("Point size in pixels")
        self.reset_button = tool_button("Reset", "Frame the whole object")
        self.open360_button = tool_button("360°", "Open in the 360° viewer (walk inside)")
        self.open360_button.setEnabled(False)
        self.info = QLabel("")

        bar = QHBoxLayout()
        bar.setContentsMargins(2, 2, 2, 2)
        for w in (self.reset_button, self.wire_button, self.color_button, self.point_size,
                  self.open360_button):
            bar.addWidget(w)
        bar.addStretch(1)
        bar.addWidget(self.info)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.setSpacing(0)
        lay.addLayout(bar)
        lay.addWidget(self.view, 1)

        self._value: Any = None
        self.wire_button.toggled.connect(self._options_changed)
        self.color_button.toggled.connect(self._options_changed)
        self.point_size.valueChanged.connect(self._options_changed)
        self.reset_button.clicked.connect(self.view.reset_view)
        self.open360_button.clicked.connect(self.open_in_360)

    def set_value(self, value: Mesh | PointCloud | RGBD) -> None:
        geom = geometry_from_value(value)
        self._value = value
        self._apply_options()
        self.view.set_geometry(geom)
        self.info.setText(geom.summary + ("" if self.backend == "opengl" else " · software"))
        self.info.setToolTip("" if self.backend == "opengl" else
                             "No OpenGL here: drawn by the engine's torch rasterizer")
        self.open360_button.setEnabled(isinstance(value, Mesh))

    def clear(self) -> None:
        self._value = None
        self.view.set_geometry(None)
        self.info.setText("")
        self.open360_button.setEnabled(False)

    def _apply_options(self) -> None:
        self.view.wireframe = self.wire_button.isChecked()
        self.view.colors_on = self.color_button.isChecked()
        self.view.point_size = self.point_size.value()

    def _options_changed(self, *_: Any) -> None:
        self._apply_options()
        if isinstance(self.view, GLMeshView):
            self.view.rebuild()
        else:
            self.view.request_render(preview=False)

    def open_in_360(self) -> None:
        from app.viewer360 import Viewer360

        if isinstance(self._value, Mesh):
            Viewer360.open_window(mesh=self._value, parent=self.window())
