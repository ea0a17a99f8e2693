"""360° viewer (DepthFusion-style): look around and walk inside an RGB + depth panorama or mesh.

The panorama becomes the depth-displaced sphere the 360° panorama node renders
(``engine.geometry.meshing.panorama_trimesh``), seen from a camera at the current position, yaw
and pitch. Wherever Qt can make an OpenGL context it is drawn by the GPU
(``fathom.app.viewer360_gl``: the scene uploaded once, each frame one draw call of the view of
that moment, so walking never shows a stale frame); only where none exists (the offscreen
platform, or ``FATHOM_PREVIEW_GL=0``) does the engine's torch rasterizer draw it, a coarse mesh
at a small size on a worker while you move and the full mesh at full size once you stop.

Held keys move at a constant speed from a frame timer, stop the moment they are released (key
auto-repeat is ignored), and the walk stays inside the volume the panorama captured, a margin
from every surface (``engine.geometry.viewing.CaptureVolume``). The finer mesh is shown once the
view has been still for 150 ms. Meshing a panorama (hundreds of ms) runs on a worker behind a
"Loading…" note, so opening the viewer never freezes the studio.

Run ``python -m fathom.app.viewer360`` for the bundled demo panorama, in the studio's theme
(``--settings`` names another settings file), or
``python -m fathom.app.viewer360 --screenshot docs/screenshots/viewer360.png`` to write a
screenshot, or ``python -m fathom.app.viewer360 --benchmark --size 1280x720`` to time a scripted
walk (frames per second, frame-time median and 95th percentile, and the renderer that ran).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
from PySide6.QtCore import QPointF, Qt, QTimer, Signal
from PySide6.QtGui import (
    QColor,
    QImage,
    QKeyEvent,
    QKeySequence,
    QMouseEvent,
    QPainter,
    QPaintEvent,
    QPalette,
    QResizeEvent,
    QShortcut,
    QWheelEvent,
)
from PySide6.QtWidgets import (
    QApplication,
    QHBoxLayout,
    QLabel,
    QSizePolicy,
    QSlider,
    QVBoxLayout,
    QWidget,
)

from fathom.app.preview.image_view import to_qimage, tool_button
from fathom.app.preview.worker import BackgroundRenderer
from fathom.app.settings import Settings
from fathom.app.theme import apply_theme
from fathom.app.warmup import import_libraries
from fathom.engine.geometry import projection
from fathom.engine.geometry.scene import RenderScene, coarse_scene, scene_from_mesh
from fathom.engine.geometry.viewing import (
    CUT,
    CaptureVolume,
    background_texture,
    mesh_distance_panorama,
    render_bands,
    render_view,
    walk_step,
    with_backdrop,
)
from fathom.engine.types import Camera, Depth, Image, Mesh

DEFAULT_FOV = 75.0
FULL_GRID = 512  # panorama columns of the mesh shown when still (the node's default for 1K)
PREVIEW_GRID = 192  # ...and while moving: about 7× fewer triangles
PREVIEW_FACES = PREVIEW_GRID * PREVIEW_GRID  # a mesh's triangles while moving (panorama's)
PREVIEW_FACTOR = 0.4  # preview render size relative to the full one
MAX_PIXELS = 1280 * 720
FULL_BANDS = 4  # a full-size render can be abandoned after each quarter
SPEED = 0.5  # walking speed: the scene's typical distance every two seconds (Shift: ×FAST)
FAST = 3.0
MARGIN = 0.08  # closest approach to a surface, as a fraction of the scene's typical distance
STILL_MS = 150  # the finer mesh once the view has been still this long
FRAME_MS = 8  # the walking timer's interval; each tick moves by the time actually elapsed
MAX_DT = 0.1  # a longer gap between ticks (a stall) moves only this far, never a jump
LABEL_S = 0.1  # the status line's refresh interval while walking
#: Keys that walk while held: (forward, right, up).
MOVE_KEYS = {
    Qt.Key.Key_W: (1, 0, 0),
    Qt.Key.Key_Up: (1, 0, 0),
    Qt.Key.Key_S: (-1, 0, 0),
    Qt.Key.Key_Down: (-1, 0, 0),
    Qt.Key.Key_A: (0, -1, 0),
    Qt.Key.Key_Left: (0, -1, 0),
    Qt.Key.Key_D: (0, 1, 0),
    Qt.Key.Key_Right: (0, 1, 0),
    Qt.Key.Key_E: (0, 0, 1),
    Qt.Key.Key_PageUp: (0, 0, 1),
    Qt.Key.Key_Q: (0, 0, -1),
    Qt.Key.Key_PageDown: (0, 0, -1),
}

# Windows opened without a parent are kept here until closed: Qt does not own them and Python
# would otherwise collect them (and close the window) as soon as the caller drops its reference.
_OPEN_WINDOWS: set[Viewer360] = set()


@dataclass
class Content:
    """What the viewer shows, ready to render: scenes by detail ("full", "preview"), the typical
    distance to them, a note for the status line, whether cracks are closed per frame, the
    captured volume walking stays in (None: anywhere) and the scenes packed for OpenGL."""

    base: dict[str, RenderScene]
    radius: float
    message: str = ""
    fill_cracks: bool = True
    volume: CaptureVolume | None = None
    packed: dict[str, Any] | None = None


def check_panorama(image: Image, depth: Depth) -> None:
    """Refuse what is not a 2:1 colour + distance pair of one size (cheap: before any work)."""
    if (image.height, image.width) != (depth.height, depth.width):
        raise ValueError(
            f"depth is {depth.width}×{depth.height} but the image is "
            f"{image.width}×{image.height}; resize one to match"
        )
    if abs(image.width - 2 * image.height) > 1:
        raise ValueError(f"an equirectangular panorama is 2:1; got {image.width}×{image.height}")


def panorama_content(
    image: Image, depth: Depth, cut: float = CUT, fill_holes: bool = True
) -> Content:
    """The panorama as a fine and a coarse depth-displaced sphere, with a far backdrop showing
    its background when ``fill_holes`` (no Qt: runs on any thread)."""
    from fathom.engine.geometry.meshing import panorama_trimesh

    dist = depth.data
    base = {}
    for kind, grid in (("full", FULL_GRID), ("preview", PREVIEW_GRID)):
        step = max(1, round(image.width / grid))
        tm = panorama_trimesh(image.data, dist, step, cut, "texture")
        base[kind] = scene_from_mesh(Mesh(tm))
    ok = depth.valid()
    if fill_holes and ok.any():
        far = 2.0 * float(dist[ok].max())
        # The rim covers the widest crack: one cell of the coarse (preview) mesh.
        rim = max(1, round(image.width / PREVIEW_GRID))
        bg = background_texture(image.rgb(), dist, rim=rim, cut=cut)
        base = {k: with_backdrop(v, far, bg) for k, v in base.items()}
    return Content(
        base,
        float(np.median(dist[ok])) if ok.any() else 1.0,
        "" if depth.kind == "metric" else "relative depth shown as metres",
        fill_cracks=not fill_holes,
        volume=CaptureVolume(dist) if ok.any() else None,
    )


def packed_content(content: Content) -> Content:
    """``content`` with its scenes packed for the OpenGL canvas (runs on the loader's worker)."""
    from fathom.app.viewer360_gl import pack_scene

    packed = {k: pack_scene(v) for k, v in content.base.items()}
    first = next(iter(packed.values()), None)
    for p in packed.values():  # the detail levels share one texture: uploaded once
        if first is not None and p.texture is not None and first.texture is not None:
            if p.texture[0].shape == first.texture[0].shape and np.array_equal(
                p.texture[0], first.texture[0]
            ):
                p.texture = first.texture
    content.packed = packed
    return content


def mesh_content(mesh: Mesh) -> Content:
    """A mesh seen from inside; it has no backdrop, so cracks are closed per frame. While
    moving, a decimated copy of about as many triangles as a panorama's coarse mesh. Its walls
    are where a panorama's are: the nearest surface in each direction from the origin."""
    sc = scene_from_mesh(mesh)
    r = np.linalg.norm(np.asarray(sc.vertices, np.float64), axis=1)
    preview = coarse_scene(sc, PREVIEW_FACES)
    volume = None
    if sc.faces is not None and len(sc.faces):
        dist = mesh_distance_panorama(sc.vertices, sc.faces)
        volume = CaptureVolume(dist) if np.isfinite(dist).any() else None
    radius = float(np.median(r)) if len(r) else 1.0
    return Content({"full": sc, "preview": preview}, radius, volume=volume)


class _ViewInput:
    """Mouse input on either canvas: drag to look, scroll to step, Ctrl+scroll to zoom."""

    def __init__(self, viewer: Viewer360) -> None:
        self._viewer = viewer
        self._drag: QPointF | None = None

    def press(self, widget: QWidget, event: QMouseEvent) -> None:
        self._drag = event.position()
        widget.setCursor(Qt.CursorShape.ClosedHandCursor)

    def move(self, event: QMouseEvent) -> None:
        if self._drag is not None:
            d = event.position() - self._drag
            self._drag = event.position()
            self._viewer.look_drag(d.x(), d.y())

    def release(self, widget: QWidget) -> None:
        self._drag = None
        widget.setCursor(Qt.CursorShape.OpenHandCursor)

    def wheel(self, event: QWheelEvent) -> None:
        steps = event.angleDelta().y() / 120.0
        if event.modifiers() & Qt.KeyboardModifier.ControlModifier:
            self._viewer.set_view(fov=self._viewer.fov - 5.0 * steps)
        elif steps:
            self._viewer.move(forward=steps)
        event.accept()


class _Canvas(QWidget):
    """Paints the latest frame stretched to the widget; mouse input goes to the viewer."""

    def __init__(self, viewer: Viewer360) -> None:
        super().__init__(viewer)
        self._viewer = viewer
        self.frame: QImage | None = None
        self._input = _ViewInput(viewer)
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self.setMinimumSize(160, 90)
        self.setCursor(Qt.CursorShape.OpenHandCursor)

    def paintEvent(self, event: QPaintEvent) -> None:  # noqa: N802 - Qt override
        p = QPainter(self)
        p.fillRect(self.rect(), QColor(0, 0, 0))
        if self.frame is not None:
            p.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, True)
            p.drawImage(self.rect(), self.frame)
        else:
            p.setPen(QColor(160, 160, 160))
            p.drawText(
                self.rect(),
                Qt.AlignmentFlag.AlignCenter,
                self._viewer.message or "No panorama loaded",
            )

    def mousePressEvent(self, event: QMouseEvent) -> None:  # noqa: N802 - Qt override
        self._input.press(self, event)

    def mouseMoveEvent(self, event: QMouseEvent) -> None:  # noqa: N802 - Qt override
        self._input.move(event)

    def mouseReleaseEvent(self, event: QMouseEvent) -> None:  # noqa: N802 - Qt override
        self._input.release(self)

    def wheelEvent(self, event: QWheelEvent) -> None:  # noqa: N802 - Qt override
        self._input.wheel(event)

    def focusOutEvent(self, event: Any) -> None:  # noqa: N802 - Qt override
        super().focusOutEvent(event)
        self._viewer.release_keys()

    def resizeEvent(self, event: QResizeEvent) -> None:  # noqa: N802 - Qt override
        super().resizeEvent(event)
        self._viewer.request_render(preview=True)


def use_opengl(renderer: str = "auto") -> bool:
    """Whether a viewer draws with OpenGL: "gl" always, "software" never, "auto" wherever Qt can
    make a context (GPU or Mesa's llvmpipe, which reaches the frame rate too; not on the
    offscreen platform, nor with ``FATHOM_PREVIEW_GL=0``)."""
    if renderer not in ("auto", "gl", "software"):
        raise ValueError(f"renderer is 'auto', 'gl' or 'software'; got {renderer!r}")
    if renderer != "auto":
        return renderer == "gl"
    from fathom.app.preview.gl_probe import gl_available

    return gl_available()


class Viewer360(QWidget):
    """Look around (drag), walk (hold W/A/S/D or the arrows; Q/E down/up, Shift faster; scroll
    steps), field of view and depth scale sliders, full screen on F11.

    ``renderer``: "auto" (OpenGL where a context exists, else the torch rasterizer), "gl" or
    "software"."""

    view_changed = Signal()
    #: A scene finished loading (``show_panorama``, ``show_mesh``, ``load``) and is shown.
    loaded = Signal()

    def __init__(self, parent: QWidget | None = None, renderer: str = "auto") -> None:
        super().__init__(parent)
        self.setWindowTitle("360° viewer")
        self.yaw = 0.0
        self.pitch = 0.0
        self.position = np.zeros(3)
        self.fov = DEFAULT_FOV
        self.depth_scale = 1.0
        self.message = ""
        self.frames_shown = 0
        self.last_render_s = 0.0
        self._base: dict[str, RenderScene] = {}
        self._scaled: dict[str, tuple[float, RenderScene]] = {}
        self._radius = 1.0  # typical distance to the scene: sets the walking step
        self._fill_cracks = False  # meshes have no backdrop: close their cracks per frame
        self._seq = 0
        self._shown_seq = -1
        self._load_seq = 0
        self._volume: CaptureVolume | None = None
        self._held: set[int] = set()  # walking keys held down
        self._fast = False
        self._last_tick = 0.0
        self._labels_at = 0.0

        self.canvas: Any
        if use_opengl(renderer):
            from fathom.app.viewer360_gl import GLCanvas

            self.canvas = GLCanvas(self, _ViewInput(self))
            self.canvas.failed.connect(self._opengl_failed, Qt.ConnectionType.QueuedConnection)
        else:
            self.canvas = _Canvas(self)
        # Sliders never take keyboard focus: W/A/S/D and the arrows always move the camera.
        self.fov_slider = QSlider(Qt.Orientation.Horizontal)
        self.fov_slider.setRange(20, 120)
        self.fov_slider.setValue(round(DEFAULT_FOV))
        self.fov_slider.setToolTip("Vertical field of view (Ctrl+scroll)")
        self.scale_slider = QSlider(Qt.Orientation.Horizontal)
        self.scale_slider.setRange(-200, 200)  # log2 of the scale ×100: 0.25× .. 4×
        self.scale_slider.setValue(0)
        self.scale_slider.setToolTip("Depth scale: multiplies every distance in the scene")
        for s in (self.fov_slider, self.scale_slider):
            s.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        self.fov_label = QLabel()
        self.scale_label = QLabel()
        self.reset_button = tool_button("Reset", "Back to the centre, looking ahead (R)")
        self.fullscreen_button = tool_button("Full screen", "Toggle full screen (F11)")
        for b in (self.reset_button, self.fullscreen_button):
            b.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        self.status = QLabel()
        # Muted, in whichever theme the application has (not a fixed grey: unreadable on light).
        self.status.setForegroundRole(QPalette.ColorRole.PlaceholderText)
        # A long status line must not set the window's minimum width.
        self.status.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)

        bar = QHBoxLayout()
        bar.setContentsMargins(6, 2, 6, 2)
        bar.addWidget(QLabel("FOV"))
        bar.addWidget(self.fov_slider, 1)
        bar.addWidget(self.fov_label)
        bar.addSpacing(12)
        bar.addWidget(QLabel("Depth"))
        bar.addWidget(self.scale_slider, 1)
        bar.addWidget(self.scale_label)
        bar.addSpacing(12)
        bar.addWidget(self.reset_button)
        bar.addWidget(self.fullscreen_button)
        self._layout = QVBoxLayout(self)
        self._layout.setContentsMargins(0, 0, 0, 0)
        self._layout.setSpacing(2)
        self._layout.addWidget(self.canvas, 1)
        self._layout.addLayout(bar)
        self._layout.addWidget(self.status)

        self._renderer = BackgroundRenderer(self._show_result, self)
        self._loader = BackgroundRenderer(self._loaded, self)
        self._idle = QTimer(self)  # still this long: the finer mesh
        self._idle.setSingleShot(True)
        self._idle.setInterval(STILL_MS)
        self._idle.timeout.connect(self._settled)
        self._walk = QTimer(self)  # ticks while a walking key is held
        self._walk.setTimerType(Qt.TimerType.PreciseTimer)
        self._walk.setInterval(FRAME_MS)
        self._walk.timeout.connect(self.walk_tick)
        self.fov_slider.valueChanged.connect(lambda v: self.set_view(fov=float(v)))
        self.scale_slider.valueChanged.connect(
            lambda v: self.set_view(depth_scale=2.0 ** (v / 100.0))
        )
        self.reset_button.clicked.connect(self.reset_view)
        self.fullscreen_button.clicked.connect(self.toggle_fullscreen)
        QShortcut(QKeySequence(Qt.Key.Key_F11), self, self.toggle_fullscreen)
        self._update_labels()

    # ---- content
    #
    # Meshing a panorama takes a few hundred ms: ``show_panorama``/``show_mesh`` (what the studio
    # and the standalone window use) do it on a worker and show "Loading…" until it is ready;
    # ``set_panorama``/``set_mesh`` do it here and now (tests, scripts, screenshots).

    def set_panorama(
        self, image: Image, depth: Depth, cut: float = CUT, fill_holes: bool = True
    ) -> None:
        """Show an equirectangular colour + distance panorama (distance from the centre).

        ``fill_holes`` adds a far backdrop sphere showing the panorama's background (objects
        painted out), so the cracks where the mesh is cut at depth jumps, and what moving
        disoccludes, show a plausible background instead of black."""
        check_panorama(image, depth)
        self._install(panorama_content(image, depth, cut, fill_holes))

    def set_mesh(self, mesh: Mesh) -> None:
        """Show a mesh from inside (e.g. the panorama node's mesh or any scene around 0,0,0)."""
        self._install(mesh_content(mesh))

    def show_panorama(
        self, image: Image, depth: Depth, cut: float = CUT, fill_holes: bool = True
    ) -> None:
        """``set_panorama`` on a worker thread; a panorama of the wrong shape raises here."""
        check_panorama(image, depth)
        self.load(lambda: panorama_content(image, depth, cut, fill_holes), "panorama")

    def show_mesh(self, mesh: Mesh) -> None:
        """``set_mesh`` on a worker thread."""
        self.load(lambda: mesh_content(mesh), "mesh")

    def load(self, make: Callable[[], Content], what: str = "scene") -> None:
        """Show "Loading…" and build the scene with ``make`` on a worker thread (a newer load
        replaces a pending one); a failure is shown on the canvas."""
        self._base, self._scaled, self._volume = {}, {}, None
        self.message = f"Loading the {what}…"
        self._clear_canvas()
        self._seq += 1
        self._shown_seq = self._seq  # a render of the old scene still running is dropped
        self._load_seq += 1
        job = (lambda: packed_content(make())) if self.uses_opengl else make
        self._loader.submit(job, self._load_seq)
        self._update_labels()
        self.canvas.update()

    def _loaded(self, seq: int, result: Any) -> None:
        if seq != self._load_seq:
            return
        if isinstance(result, Exception):
            self.message = f"could not load: {type(result).__name__}: {result}"
            self._update_labels()
            self.canvas.update()
            return
        self._install(result)
        self.loaded.emit()

    def _install(self, content: Content) -> None:
        self._base = content.base
        self._radius = content.radius
        self.message = content.message
        self._fill_cracks = content.fill_cracks
        self._volume = content.volume
        self._scaled = {}
        self.position = np.zeros(3)
        self.yaw = self.pitch = 0.0
        if self.uses_opengl:
            if content.packed is None:
                content = packed_content(content)
            self.canvas.set_scenes(content.packed)
        self._changed()

    @property
    def uses_opengl(self) -> bool:
        """Whether the canvas draws with OpenGL (else the torch rasterizer)."""
        return not isinstance(self.canvas, _Canvas)

    @property
    def renderer_name(self) -> str:
        """What draws: the OpenGL vendor / renderer, or the torch rasterizer's device."""
        if self.uses_opengl:
            return f"OpenGL: {self.canvas.renderer_name or '(not initialised yet)'}"
        from fathom.engine.geometry.viewing import render_device

        return f"torch rasterizer ({render_device()})"

    def _clear_canvas(self) -> None:
        if self.uses_opengl:
            self.canvas.clear()
        else:
            self.canvas.frame = None

    def _opengl_failed(self, message: str) -> None:
        """The OpenGL canvas could not set up: carry on with the software one."""
        old = self.canvas
        self.canvas = _Canvas(self)
        self._layout.replaceWidget(old, self.canvas)
        old.hide()
        old.deleteLater()
        self.message = f"OpenGL unavailable ({message}); drawing in software"
        self._changed()

    def scene(self, kind: str = "full") -> RenderScene | None:
        """The cached scene at the current depth scale (rebuilt only when the scale changes)."""
        base = self._base.get(kind)
        if base is None:
            return None
        cached = self._scaled.get(kind)
        if cached is None or cached[0] != self.depth_scale:
            verts = np.asarray(base.vertices, np.float32) * np.float32(self.depth_scale)
            cached = (self.depth_scale, replace(base, vertices=verts))
            self._scaled[kind] = cached
        return cached[1]

    # ---- view state

    def camera(self, width: int, height: int) -> Camera:
        pose = projection.yaw_pitch_pose(self.position, self.yaw, self.pitch)
        return Camera.from_fov(width, height, self.fov, pose)

    def set_view(
        self,
        yaw: float | None = None,
        pitch: float | None = None,
        position: Any = None,
        fov: float | None = None,
        depth_scale: float | None = None,
    ) -> None:
        """Change any part of the view; the sliders follow."""
        if yaw is not None:
            self.yaw = float(yaw) % 360.0
        if pitch is not None:
            self.pitch = float(np.clip(pitch, -89.0, 89.0))
        if position is not None:
            self.position = np.asarray(position, np.float64).reshape(3).copy()
        if fov is not None:
            self.fov = float(np.clip(fov, 20.0, 120.0))
        if depth_scale is not None:
            self.depth_scale = float(np.clip(depth_scale, 0.25, 4.0))
        self._changed()

    def reset_view(self) -> None:
        self.set_view(yaw=0.0, pitch=0.0, position=np.zeros(3))

    def look_drag(self, dx: float, dy: float) -> None:
        """Grab-and-drag: the scene follows the cursor (about one pixel per pixel)."""
        per_px = self.fov / max(1, self.canvas.height())
        self.set_view(yaw=self.yaw - dx * per_px, pitch=self.pitch + dy * per_px)

    @property
    def step(self) -> float:
        """Scroll step: 4 % of the scene's typical distance, so any scene feels the same."""
        return 0.04 * self._radius * self.depth_scale

    @property
    def speed(self) -> float:
        """Walking speed in scene units per second (Shift: ×FAST)."""
        return SPEED * self._radius * self.depth_scale * (FAST if self._fast else 1.0)

    @property
    def margin(self) -> float:
        """Closest approach to a surface while walking."""
        return MARGIN * self._radius * self.depth_scale

    def move(self, forward: float = 0.0, right: float = 0.0, up: float = 0.0) -> None:
        """Move by whole steps in the horizontal plane of the view (up is world up), staying
        inside the captured volume."""
        y = math.radians(self.yaw)
        fwd = np.array([math.sin(y), 0.0, math.cos(y)])
        rgt = np.array([math.cos(y), 0.0, -math.sin(y)])
        upv = np.array([0.0, -1.0, 0.0])
        target = self.position + self.step * (forward * fwd + right * rgt + up * upv)
        self.set_view(position=self.inside(target))

    def inside(self, target: np.ndarray) -> np.ndarray:
        """``target`` kept a margin inside the captured volume, coming from where the viewer
        is (the volume is in panorama units: the depth scale divides out)."""
        if self._volume is None:
            return np.asarray(target, np.float64)
        s = self.depth_scale
        return s * self._volume.clamp(target / s, self.position / s, self.margin / s)

    # ---- walking: held keys move at a constant speed from a frame timer

    def walk_direction(self) -> tuple[float, float, float]:
        """(forward, right, up) from the walking keys held now, each in [-1, 1]."""
        total = np.zeros(3)
        for key in self._held:
            total += MOVE_KEYS[key]  # type: ignore[index]
        f, r, u = (float(v) for v in np.clip(total, -1, 1))
        return f, r, u

    @property
    def walking(self) -> bool:
        return bool(self._held)

    def hold_key(self, key: int) -> None:
        """A walking key went down: walking starts with the next frame tick."""
        if not self._held:
            self._last_tick = time.perf_counter()
            self._walk.start()
            if not self.uses_opengl and not self._renderer.idle:
                self.request_render(preview=True)  # abandons a full render under way
        self._held.add(key)

    def release_key(self, key: int) -> None:
        """A walking key came up: with none left held, the viewer stops right here."""
        self._held.discard(key)
        if not self._held:
            self._walk.stop()
            self._update_labels()

    def release_keys(self) -> None:
        """Stop walking (focus lost: the key releases will not arrive here)."""
        self._held.clear()
        self._walk.stop()
        self._update_labels()

    def advance(self, dt: float) -> None:
        """Walk for ``dt`` seconds with the keys held now (what each frame tick does)."""
        direction = self.walk_direction()
        if direction == (0.0, 0.0, 0.0) or dt <= 0:
            return
        target = walk_step(self.position, self.yaw, direction, self.speed, dt)
        self.set_view(position=self.inside(target))

    def walk_tick(self) -> None:
        """One frame tick of walking (the walk timer's; benchmarks call it between frames)."""
        cap = MAX_DT
        if not self.uses_opengl:
            # The torch renderer takes longer than a tick: move only once the frame of the
            # current position is on screen, so what is shown is never behind the walker.
            if not self._renderer.idle:
                return
            cap = max(MAX_DT, 2.0 * self.last_render_s)
        now = time.perf_counter()
        dt, self._last_tick = min(now - self._last_tick, cap), now
        self.advance(dt)

    def _changed(self) -> None:
        # While the view moves (walking, turning), the status line follows at most every
        # LABEL_S, and exactly once still: each change of it makes the window composite its
        # widgets again, a cost on software OpenGL.
        now = time.perf_counter()
        moving = self.walking or self._idle.isActive()
        status = not moving or now - self._labels_at >= LABEL_S
        if status:
            self._labels_at = now
        self._update_labels(status)
        self.view_changed.emit()
        self.request_render(preview=True)

    def _settled(self) -> None:
        """Still for STILL_MS: the status line catches up and the fine mesh is drawn (not while
        a walking key is held: the walker has not arrived)."""
        self._update_labels()
        if not self.walking:
            self.request_render(preview=False)

    def _update_labels(self, status: bool = True) -> None:
        self.fov_label.setText(f"{self.fov:.0f}°")
        self.scale_label.setText(f"×{self.depth_scale:.2f}")
        for slider, value in (
            (self.fov_slider, round(self.fov)),
            (self.scale_slider, round(100 * math.log2(self.depth_scale))),
        ):
            if slider.value() != value:
                slider.blockSignals(True)
                slider.setValue(value)
                slider.blockSignals(False)
        if not status:
            return
        p = self.position
        ms = f" · {self.last_render_s * 1000:.0f} ms" if self.last_render_s else ""
        note = f" · {self.message}" if self.message else ""
        x, up, z = (float(v) + 0.0 for v in (p[0], -p[1], p[2]))  # + 0.0: no "-0.00"
        self.status.setText(
            f"  position {x:+.2f} {up:+.2f} {z:+.2f} m · yaw {self.yaw:.0f}° · "
            f"pitch {self.pitch:.0f}°{ms}{note} — drag: look · W/A/S/D, arrows, scroll: move · "
            "Q/E: down/up · F11: full screen"
        )

    # ---- rendering

    def render_size(self, preview: bool) -> tuple[int, int]:
        w, h = max(16, self.canvas.width()), max(16, self.canvas.height())
        s = min(1.0, math.sqrt(MAX_PIXELS / (w * h))) * (PREVIEW_FACTOR if preview else 1.0)
        return max(16, round(w * s)), max(16, round(h * s))

    def render_image(self, width: int, height: int, preview: bool = False) -> np.ndarray:
        """Synchronous render of the current view (tests, screenshots, exports)."""
        sc = self.scene("preview" if preview else "full")
        if sc is None:
            return np.zeros((height, width, 3), np.float32)
        return render_view(sc, self.camera(width, height), self._fill_cracks)

    def refresh(self, sync: bool = False) -> None:
        """Render at full size: now on this thread (``sync``) or on the worker."""
        if self.uses_opengl:
            self._idle.stop()
            if sync:
                self._paint_gl()
            else:
                self.canvas.update()
            return
        if not sync:
            self.request_render(preview=False)
            return
        t0 = time.perf_counter()
        img = self.render_image(*self.render_size(preview=False))
        self._seq += 1
        self._show_result(self._seq, (img, time.perf_counter() - t0))

    def detail(self) -> str:
        """The mesh shown now: "preview" while walking or just after a change, else "full"."""
        return "preview" if self.walking or self._idle.isActive() else "full"

    def frame_drawn(self, seconds: float) -> None:
        """The OpenGL canvas drew a frame (issuing it took ``seconds``)."""
        self.frames_shown += 1
        self.last_render_s = seconds

    def request_render(self, preview: bool = True) -> None:
        """Queue a render on the worker (the newest request replaces a pending one); a preview
        is followed by a full render once the view has been still for a moment. With OpenGL:
        a repaint of the view of this moment (coarse until still)."""
        if self.uses_opengl:
            if preview:
                self._idle.start()
            self.canvas.update()
            return
        self._submit(preview)
        if preview:
            self._idle.start()

    def _submit(self, preview: bool) -> None:
        """Queue a torch render of the current view on the worker."""
        sc = self.scene("preview" if preview else "full")
        if sc is None:
            return
        cam = self.camera(*self.render_size(preview))
        renderer = self._renderer
        bands = 1 if preview else FULL_BANDS
        fill = self._fill_cracks

        def job() -> tuple[np.ndarray, float] | None:
            t0 = time.perf_counter()
            img = render_bands(sc, cam, bands, renderer.superseded, fill)
            return None if img is None else (img, time.perf_counter() - t0)

        self._seq += 1
        self._renderer.submit(job, self._seq)

    @property
    def idle(self) -> bool:
        """Nothing loading, and no render queued, running or waiting to be shown."""
        if self.uses_opengl:
            # Still, and the frame on screen is the full mesh's (drawn after the view settled).
            drawn = not self.canvas.has_scene or self.canvas.shown_detail == "full"
            still = not self._idle.isActive() and not self.walking
            return self._loader.idle and still and drawn
        return self._loader.idle and self._renderer.idle and not self._idle.isActive()

    def _show_result(self, seq: int, result: Any) -> None:
        if seq < self._shown_seq:
            return
        if result is None:  # a full render abandoned for a newer request
            return
        self._shown_seq = seq
        if isinstance(result, Exception):
            self.message = f"render failed: {type(result).__name__}: {result}"
            self.canvas.frame = None
        else:
            img, seconds = result
            self.canvas.frame = to_qimage(img)
            self.last_render_s = seconds
        self.frames_shown += 1
        self._update_labels()
        self.canvas.update()

    def draw_now(self) -> None:
        """Draw the view of this moment and wait until it is on screen, as walking shows it
        (the coarse mesh while moving; in software at the preview size, from the worker):
        benchmarks."""
        if self.uses_opengl:
            self._paint_gl()
            return
        if self._shown_seq >= self._seq:  # nothing under way: this moment again
            self._submit(preview=self.detail() == "preview")
        target = self._seq
        app = QApplication.instance()
        assert app is not None
        while self._shown_seq < target and not self._renderer.idle:
            app.processEvents()
            time.sleep(0.001)
        self.canvas.repaint()

    def _paint_gl(self, timeout: float = 10.0) -> None:
        """Have the OpenGL canvas draw a frame now and wait until it has: through the event
        loop (``repaint()`` of an OpenGL widget does not always reach ``paintGL``)."""
        want = self.frames_shown + 1
        self.canvas.update()
        app = QApplication.instance()
        assert app is not None
        deadline = time.perf_counter() + timeout
        while self.frames_shown < want and time.perf_counter() < deadline:
            app.processEvents()
            if self.frames_shown < want:
                time.sleep(0.0005)

    def frame(self) -> QImage | None:
        """The frame on screen (at render size, before it is stretched to the canvas)."""
        if self.uses_opengl:
            return self.canvas.grabFramebuffer() if self.frames_shown else None
        return self.canvas.frame

    # ---- input

    def keyPressEvent(self, event: QKeyEvent) -> None:  # noqa: N802 - Qt override
        k = Qt.Key
        self._fast = bool(event.modifiers() & Qt.KeyboardModifier.ShiftModifier)
        key = event.key()
        if key in MOVE_KEYS:
            if not event.isAutoRepeat():  # held: the frame timer moves; repeats add nothing
                self.hold_key(key)
        elif key == k.Key_R or key == k.Key_Home:
            self.reset_view()
        elif key == k.Key_Escape and self.window().isFullScreen():
            self.toggle_fullscreen()
        else:
            super().keyPressEvent(event)

    def keyReleaseEvent(self, event: QKeyEvent) -> None:  # noqa: N802 - Qt override
        self._fast = bool(event.modifiers() & Qt.KeyboardModifier.ShiftModifier)
        if event.key() in MOVE_KEYS:
            if not event.isAutoRepeat():  # an auto-repeat "release" is not the key coming up
                self.release_key(event.key())
        else:
            super().keyReleaseEvent(event)

    def toggle_fullscreen(self) -> None:
        w = self.window()
        if w.isFullScreen():
            w.showNormal()
        else:
            w.showFullScreen()

    # ---- windows

    @classmethod
    def open_window(
        cls,
        image: Image | None = None,
        depth: Depth | None = None,
        mesh: Mesh | None = None,
        parent: QWidget | None = None,
    ) -> Viewer360:
        """Open a 360° viewer in its own window showing a panorama or a mesh."""
        viewer = cls(parent)
        viewer.setWindowFlag(Qt.WindowType.Window, True)
        viewer.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose, True)
        if parent is None:
            _OPEN_WINDOWS.add(viewer)
            viewer.destroyed.connect(lambda *_: _OPEN_WINDOWS.discard(viewer))
        if mesh is not None:
            viewer.show_mesh(mesh)
        elif image is not None and depth is not None:
            viewer.show_panorama(image, depth)
        viewer.resize(1024, 640)
        viewer.show()
        viewer.canvas.setFocus()
        return viewer


# --------------------------------------------------------------------------------------------
# Stand-alone use: the demo panorama, and screenshots


def demo_panorama() -> tuple[Path, Path]:
    """The bundled demo panorama's colour and distance files (checkout, wheel or bundle)."""
    try:
        from fathom.engine.resources import assets_dir

        base = assets_dir()
    except (ImportError, LookupError):
        base = Path(__file__).resolve().parent.parent / "assets"
    return base / "pano" / "rgb.png", base / "pano" / "distance.png"


def load_panorama(
    rgb: Path | None = None, distance: Path | None = None, scale: float = 1000.0
) -> tuple[Image, Depth]:
    """Colour + distance files (a 16-bit PNG in millimetres by default) → Image, metric Depth;
    the demo panorama when no paths are given."""
    from fathom.engine.imaging.codecs import read_depth, read_image

    demo_rgb, demo_distance = demo_panorama()
    rgb, distance = rgb or demo_rgb, distance or demo_distance
    d = read_depth(Path(distance), scale)
    d = np.where(d > 0, d, np.nan).astype(np.float32)
    return Image(read_image(Path(rgb))), Depth(d, kind="metric")


def screenshot(out: Path, viewer: Viewer360, size: tuple[int, int] = (1200, 720)) -> Path:
    """Render the viewer's current view at full size and save the whole widget as a PNG."""
    viewer.resize(*size)
    viewer.show()
    QApplication.processEvents()
    viewer.render_image(32, 18)  # warm torch up, so the status shows a typical render time
    viewer.refresh(sync=True)
    QApplication.processEvents()
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    if not viewer.grab().save(str(out)):
        raise OSError(f"could not write {out}")
    return out


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m fathom.app.viewer360", description=__doc__)
    ap.add_argument("--rgb", type=Path, help="equirectangular colour image (default: demo)")
    ap.add_argument(
        "--distance",
        type=Path,
        help="equirectangular distance (16-bit PNG, EXR or .npy; default: demo)",
    )
    ap.add_argument(
        "--scale", type=float, default=1000.0, help="PNG units per metre (1000: millimetres)"
    )
    ap.add_argument("--mesh", type=Path, help="show a mesh file (.glb/.ply/.obj) instead")
    ap.add_argument("--screenshot", type=Path, metavar="OUT", help="save a PNG and exit")
    ap.add_argument(
        "--size",
        default=None,
        help="window size for --screenshot (default 1200x720); the 3D view's size for "
        "--benchmark (default 1280x720)",
    )
    ap.add_argument(
        "--benchmark",
        action="store_true",
        help="time a scripted walk (forward, turn, strafe, stop) and print frames/s, the frame "
        "time's median and 95th percentile and the renderer that drew",
    )
    ap.add_argument("--seconds", type=float, default=4.0, help="length of the benchmark walk")
    ap.add_argument(
        "--renderer",
        choices=("auto", "gl", "software"),
        default="auto",
        help="OpenGL where a context exists (auto), always (gl), or the torch rasterizer",
    )
    ap.add_argument("--json", action="store_true", help="--benchmark: print one JSON line")
    ap.add_argument("--yaw", type=float, default=0.0)
    ap.add_argument("--pitch", type=float, default=0.0)
    ap.add_argument("--forward", type=float, default=0.0, help="start this many metres ahead")
    ap.add_argument(
        "--settings", type=Path, help="the studio's settings file (its theme is used here too)"
    )
    return ap


def _qt_app(args: argparse.Namespace) -> QApplication:
    """The application, in the studio's theme (the same setting ``fathom-studio`` reads)."""
    if (
        (args.screenshot or args.benchmark)
        and "QT_QPA_PLATFORM" not in os.environ
        and not os.environ.get("DISPLAY")
        and not os.environ.get("WAYLAND_DISPLAY")
    ):
        os.environ["QT_QPA_PLATFORM"] = "offscreen"
    if args.benchmark and QApplication.instance() is None:
        from PySide6.QtGui import QSurfaceFormat

        fmt = QSurfaceFormat.defaultFormat()
        fmt.setSwapInterval(0)  # frames as fast as they are drawn, not at the display's rate
        QSurfaceFormat.setDefaultFormat(fmt)
    app = QApplication.instance() or QApplication(sys.argv[:1])
    assert isinstance(app, QApplication)
    apply_theme(app, Settings(args.settings).theme)
    return app


def _size(args: argparse.Namespace, default: str) -> tuple[int, int]:
    text = (args.size or default).lower()
    try:
        w, h = (int(v) for v in text.split("x"))
    except ValueError:
        raise SystemExit(f"--size is WIDTHxHEIGHT, e.g. 1280x720; got {text!r}") from None
    return w, h


def benchmark(args: argparse.Namespace) -> dict[str, Any]:
    """Load the scene, size the 3D view, run the scripted walk; the walk's statistics."""
    from fathom.app import viewer360_benchmark

    app = _qt_app(args)
    viewer = Viewer360(renderer=args.renderer)
    viewer._install(_content(args))  # a batch job: nothing to keep responsive
    _start_view(viewer, args)
    w, h = _size(args, "1280x720")
    viewer.resize(w, h + 80)
    viewer.show()
    deadline = time.perf_counter() + 10.0
    while time.perf_counter() < deadline:  # fit the view, then a first frame (set-up costs)
        app.processEvents()
        c = viewer.canvas
        if (c.width(), c.height()) != (w, h):
            viewer.resize(viewer.width() + w - c.width(), viewer.height() + h - c.height())
        elif viewer.frames_shown > 0 or not viewer.uses_opengl:
            break
        time.sleep(0.01)
    viewer.draw_now()
    stats = viewer360_benchmark.walk(viewer, args.seconds)
    viewer.close()
    viewer.deleteLater()
    return stats


def _content(args: argparse.Namespace) -> Content:
    """Read and mesh what the command line names (files read on the calling thread)."""
    if args.mesh:
        import trimesh

        return mesh_content(Mesh(trimesh.load(args.mesh, force="mesh")))
    image, depth = load_panorama(args.rgb, args.distance, args.scale)
    check_panorama(image, depth)
    return panorama_content(image, depth)


def _start_view(viewer: Viewer360, args: argparse.Namespace) -> None:
    yaw = math.radians(args.yaw)
    viewer.set_view(
        yaw=args.yaw,
        pitch=args.pitch,
        position=args.forward * np.array([math.sin(yaw), 0.0, math.cos(yaw)]),
    )


def prepare(args: argparse.Namespace) -> None:
    """What the standalone viewer does before its window shows, rather than freezing it at the
    first frame: load torch's libraries (they hold the interpreter lock ~200 ms wherever they
    load) and probe OpenGL (a context and PyOpenGL's import, hundreds of ms the first time)."""
    import_libraries()
    _qt_app(args)
    if use_opengl(args.renderer):
        from fathom.app.viewer360_gl import import_array_handlers

        # Only a head start: without PyOpenGL the canvas says so itself when it draws.
        with contextlib.suppress(ImportError):
            import_array_handlers()


def open_standalone(argv: list[str] | None = None) -> Viewer360:
    """The standalone window, shown at once: the files are read and meshed on a worker behind
    a "Loading…" note, then the view starts where the command line says."""
    args = build_parser().parse_args(argv)
    _qt_app(args)
    viewer = Viewer360(renderer=args.renderer)
    viewer.loaded.connect(lambda: _start_view(viewer, args))
    viewer.load(lambda: _content(args), "mesh" if args.mesh else "panorama")
    viewer.resize(1200, 720)

    def show() -> None:
        viewer.show()
        viewer.canvas.setFocus()

    # Shown on the next turn of the event loop: making the window and its OpenGL context is
    # then one step of its own (~60 ms on llvmpipe) rather than added to the construction's.
    QTimer.singleShot(0, show)
    return viewer


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.benchmark:
        from fathom.app.viewer360_benchmark import report

        stats = benchmark(args)
        sys.stdout.write((json.dumps(stats) if args.json else report(stats)) + "\n")
        return 0
    if not args.screenshot:
        prepare(args)
        viewer = open_standalone(argv)
        app = QApplication.instance()
        assert app is not None
        code = app.exec()
        viewer.deleteLater()
        return int(code)
    _qt_app(args)
    viewer = Viewer360()
    viewer._install(_content(args))  # a batch job: nothing to keep responsive
    _start_view(viewer, args)
    screenshot(args.screenshot, viewer, _size(args, "1200x720"))
    viewer.close()
    viewer.deleteLater()
    return 0


if __name__ == "__main__":
    sys.exit(main())
