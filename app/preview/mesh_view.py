"""Mesh and point-cloud viewer: pyqtgraph's OpenGL view where Qt can make a GL context, and a
software fallback (the engine's torch rasterizer from an orbit camera) everywhere else.

The fallback exists because the offscreen Qt platform (CI, remote sessions) cannot draw
``QOpenGLWidget`` at all; it renders on a worker thread, small while the mouse moves and sharp
when it stops, so the GUI never waits on a render. The pure render helpers live in
``engine.geometry.viewing``, shared with the 360° viewer; this module never imports that viewer:
its "360°" button emits ``open_360`` and the main window decides where the mesh opens.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from PySide6.QtCore import QPointF, Qt, QTimer, Signal
from PySide6.QtGui import (
    QColor,
    QImage,
    QMouseEvent,
    QPainter,
    QPaintEvent,
    QResizeEvent,
    QWheelEvent,
)
from PySide6.QtWidgets import QHBoxLayout, QLabel, QSpinBox, QVBoxLayout, QWidget

from fathom.app.preview.gl_probe import gl_on_gpu
from fathom.app.preview.image_view import to_qimage, tool_button
from fathom.app.preview.worker import BackgroundRenderer
from fathom.engine.geometry.viewing import (
    BACKGROUND,
    OrbitCamera,
    PreviewGeometry,
    geometry_from_value,
    render_geometry,
)
from fathom.engine.types import RGBD, Mesh, PointCloud

# --------------------------------------------------------------------------------------------
# Backend choice: the OpenGL probe lives in gl_probe.py, shared with the 360° viewer


# --------------------------------------------------------------------------------------------
# What is shown: port values → one renderable form


# --------------------------------------------------------------------------------------------
# Software rendering (shared with the 360° viewer)


# --------------------------------------------------------------------------------------------
# Orbit camera + software view


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

    def update_geometry(self, geom: PreviewGeometry) -> None:
        """The next frame of a live value: the camera stays (framed the first time only) and
        the last picture stays up until the new one is rendered."""
        if self._geom is None:
            self.set_geometry(geom)
            return
        self._geom = geom
        self.request_render(preview=False)

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
        return render_geometry(
            self._geom,
            self.orbit.camera(width, height),
            self.colors_on,
            self.wireframe,
            max(0, (self.point_size - 1) // 2),
        )

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
        pan = event.button() in (Qt.MouseButton.RightButton, Qt.MouseButton.MiddleButton) or bool(
            event.modifiers() & Qt.KeyboardModifier.ShiftModifier
        )
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
            self.orbit.zoom(0.85**steps)
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
        colored = self.colors_on and g.has_colors
        # A textured mesh comes as its own per-vertex copy (sampled from the texture); with
        # colours off it is drawn gray and shaded from the scene's own vertices.
        verts, faces, colors = (
            g.vertex_mesh
            if colored and g.vertex_mesh is not None
            else (g.scene.vertices, g.scene.faces, g.vertex_colors)
        )
        pos = self._to_gl(verts)
        rgba = np.concatenate([colors, np.ones((len(pos), 1), np.float32)], 1)
        if g.is_points:
            col = rgba if colored else (0.8, 0.8, 0.8, 1.0)
            self._item = gl.GLScatterPlotItem(pos=pos, color=col, size=self.point_size, pxMode=True)
            self._item.setGLOptions("opaque")  # the default is additive: dense clouds go white
        else:
            faces = np.asarray(faces, np.int32)
            # Coloured: indexed vertices, colours interpolated, no lighting (as the software
            # path). Gray: flat face normals for the 'shaded' shader, so the shape reads.
            kw: dict[str, Any] = {"smooth": True, "computeNormals": False}
            if colored:
                md = gl.MeshData(vertexes=pos, faces=faces, vertexColors=rgba)
            else:
                md = gl.MeshData(vertexes=pos, faces=faces)
                kw = {"smooth": False, "color": (0.8, 0.8, 0.8, 1.0), "shader": "shaded"}
            self._item = gl.GLMeshItem(
                meshdata=md,
                drawFaces=not self.wireframe,
                drawEdges=self.wireframe,
                edgeColor=(0.95, 0.95, 0.95, 1),
                **kw,
            )
        self.view.addItem(self._item)

    def update_geometry(self, geom: PreviewGeometry) -> None:
        """The next frame of a live value: a point cloud gets new vertex data in the item it
        has (no new GL item, the camera stays); anything else is rebuilt, framed the first
        time only."""
        first = self._geom is None
        self._geom = geom
        item = self._item
        if isinstance(item, self._gl.GLScatterPlotItem) and geom.is_points:
            pos = self._to_gl(geom.scene.vertices)
            colored = self.colors_on and geom.has_colors
            col: Any = (
                np.concatenate([geom.vertex_colors, np.ones((len(pos), 1), np.float32)], 1)
                if colored
                else (0.8, 0.8, 0.8, 1.0)
            )
            item.setData(pos=pos, color=col, size=self.point_size)
            return
        self.rebuild()
        if first:
            self.reset_view()

    def reset_view(self) -> None:
        if self._geom is None:
            return
        from pyqtgraph import Vector

        c = self._to_gl(self._geom.center[None])[0]
        self.view.setCameraPosition(
            pos=Vector(*c), distance=2.6 * self._geom.radius, elevation=15, azimuth=-90
        )

    def grab_image(self) -> QImage:
        return self.view.grabFramebuffer()


# --------------------------------------------------------------------------------------------
# Panel

#: Values up to this many faces, points or depth pixels are prepared at once (a few ms); larger
#: ones (normals, colours and bounds of a 500k-face mesh take 200+ ms) on a worker thread.
PREPARE_HERE = 20_000
#: ``MeshPanel._live_from`` while no live value is shown.
LIVE_OFF = 2**62


def preview_size(value: Any) -> int:
    """What preparing a value's 3D preview grows with."""
    if isinstance(value, Mesh):
        return len(value.mesh.faces)
    if isinstance(value, RGBD):
        return value.depth.width * value.depth.height
    if isinstance(value, PointCloud):
        return len(value)
    return 0


def _textured(value: Any) -> bool:
    """A mesh with a UV texture: its per-vertex form for OpenGL is made on a worker (the
    texture is sampled, coarse meshes are subdivided)."""
    return isinstance(value, Mesh) and getattr(value.mesh.visual, "kind", None) == "texture"


class MeshPanel(QWidget):
    """3D preview with wireframe / colour / point-size controls over either backend."""

    #: The "360°" button: show this Mesh in the 360° viewer (whoever owns one connects it).
    open_360 = Signal(object)

    def __init__(self, parent: QWidget | None = None, backend: str = "auto") -> None:
        super().__init__(parent)
        use_gl = backend == "gl" or (backend == "auto" and gl_on_gpu())
        self.backend = "opengl" if use_gl else "software"
        self.view: GLMeshView | SoftwareMeshView = GLMeshView() if use_gl else SoftwareMeshView()
        self.wire_button = tool_button("Wire", "Wireframe", checkable=True)
        self.color_button = tool_button(
            "Colour", "Textures and vertex colours (off: gray, shaded)", checkable=True
        )
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
        for w in (
            self.reset_button,
            self.wire_button,
            self.color_button,
            self.point_size,
            self.open360_button,
        ):
            bar.addWidget(w)
        bar.addStretch(1)
        bar.addWidget(self.info)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.setSpacing(0)
        lay.addLayout(bar)
        lay.addWidget(self.view, 1)

        self._value: Any = None
        self._prepare_seq = 0
        #: Preparations from this number on are live frames (set_live_value); the newest
        #: live frame shown so far, and how many were shown.
        self._live_from = LIVE_OFF
        self._live_shown = 0
        self.live_frames = 0
        self._preparer = BackgroundRenderer(self._prepared, self)
        self.wire_button.toggled.connect(self._options_changed)
        self.color_button.toggled.connect(self._options_changed)
        self.point_size.valueChanged.connect(self._options_changed)
        self.reset_button.clicked.connect(self.view.reset_view)
        self.open360_button.clicked.connect(self.open_in_360)

    def set_value(self, value: Mesh | PointCloud | RGBD) -> None:
        """Show a value: a small one at once (a bad one raises, for the dock to show), a large
        one prepared on a worker behind a "Preparing…" note, so selecting never stalls."""
        self._value = value
        self._prepare_seq += 1
        self._live_from = LIVE_OFF
        per_vertex = self.backend == "opengl"  # OpenGL here takes colours, not textures
        if preview_size(value) <= PREPARE_HERE and not (per_vertex and _textured(value)):
            self._show_geometry(geometry_from_value(value, per_vertex=per_vertex))
            return
        self.view.set_geometry(None)
        self.info.setText("Preparing the 3D preview…")
        self.info.setToolTip("")
        self.open360_button.setEnabled(False)
        self._preparer.submit(
            lambda: geometry_from_value(value, per_vertex=per_vertex), self._prepare_seq
        )

    def set_live_value(self, value: Mesh | PointCloud | RGBD) -> None:
        """The newest frame of a live session's value, always prepared on the worker: a frame
        that arrives while one is being prepared replaces the waiting one, and the view keeps
        its camera and its GL item (a point cloud gets new vertex data, see update_geometry)."""
        self._value = value
        self._prepare_seq += 1
        self._live_from = min(self._live_from, self._prepare_seq)
        per_vertex = self.backend == "opengl"
        self._preparer.submit(
            lambda: geometry_from_value(value, per_vertex=per_vertex), self._prepare_seq
        )

    def _prepared_live(self, seq: int, result: Any) -> None:
        """Live frames show whichever prepared frame is newer than the shown one: waiting for
        the newest would show nothing while frames keep coming faster than they prepare."""
        if seq <= self._live_shown:
            return
        self._live_shown = seq
        if isinstance(result, Exception):
            self.info.setText(f"Cannot preview this frame: {type(result).__name__}: {result}")
            return
        self._apply_options()
        self.view.update_geometry(result)
        self.live_frames += 1
        self.info.setText(f"live · {result.summary}")
        self.open360_button.setEnabled(False)

    def _prepared(self, seq: int, result: Any) -> None:
        if seq >= self._live_from:
            self._prepared_live(seq, result)
            return
        if seq != self._prepare_seq:
            return  # replaced or cleared meanwhile
        if isinstance(result, Exception):
            name = type(self._value).__name__
            self.info.setText(f"Cannot preview this {name}: {type(result).__name__}: {result}")
            return
        self._show_geometry(result)

    def _show_geometry(self, geom: PreviewGeometry) -> None:
        self._apply_options()
        self.view.set_geometry(geom)
        self.info.setText(geom.summary + ("" if self.backend == "opengl" else " · software"))
        self.info.setToolTip(
            ""
            if self.backend == "opengl"
            else "No GPU OpenGL here: drawn by the engine's torch rasterizer on a worker thread"
        )
        self.open360_button.setEnabled(isinstance(self._value, Mesh))

    @property
    def idle(self) -> bool:
        """Nothing being prepared or rendered: what is shown is final."""
        return self._preparer.idle and getattr(self.view, "idle", True)

    def clear(self) -> None:
        self._value = None
        self._prepare_seq += 1
        self._live_from = LIVE_OFF
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
        if isinstance(self._value, Mesh):
            self.open_360.emit(self._value)
