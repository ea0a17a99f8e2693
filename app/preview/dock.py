"""The preview dock: shows any node output in the viewer its type (or its output) declares.

The panel is chosen from ``PortType.viewers`` (or an output's own ``Output.viewers``), so a
plugin's type that names a viewer gets it without changes here. One panel per kind (image,
depth, video, 3D, text), each made the first time it is needed and then reused, so a stream of
step previews costs one image upload each and keeps the user's zoom.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QDockWidget,
    QLabel,
    QPlainTextEdit,
    QStackedWidget,
    QVBoxLayout,
    QWidget,
)

from fathom.app.preview.depth_view import DepthPanel
from fathom.app.preview.image_view import ImagePanel, to_qimage
from fathom.app.preview.mesh_view import MeshPanel
from fathom.app.preview.video_player import VideoPlayer
from fathom.app.preview.view_sheet import sheet_array
from fathom.app.preview.worker import BackgroundRenderer
from fathom.app.preview.written_bar import WrittenBar
from fathom.app.theme import text_style
from fathom.engine.types import (
    Camera,
    CameraPath,
    Conditioning,
    Latent,
    ModelRef,
    PortType,
    Views,
)

MAX_TEXT = 20_000
#: View sets up to this many pixels become their contact sheet at once (a few ms); larger ones
#: (six 1024² views) on a worker thread, so selecting one never stalls the GUI.
SHEET_HERE = 600_000
EMPTY_TEXT = "Select a node to preview its output"
#: The viewers that are panels of this dock; others ("360") open windows of their own.
PANELS = ("image", "depth", "video", "mesh")


def panel_kind(value: Any, viewers: tuple[str, ...] = ()) -> str:
    """The panel for a value: the first of ``viewers`` (an output's own) or else of its type's
    viewers that is a panel here; "text" when none is, "empty" for nothing."""
    if value is None:
        return "empty"
    declared = viewers or (type(value).viewers if isinstance(value, PortType) else ())
    return next((k for k in declared if k in PANELS), "text")


def _camera_text(c: Camera) -> str:
    fov_y = math.degrees(2 * math.atan(c.height / (2 * c.fy)))
    pos = c.pose[:3, 3]
    rows = "\n".join("  " + "  ".join(f"{v: .4f}" for v in row) for row in c.pose)
    return (
        f"Camera {c.width}×{c.height}\n"
        f"fx {c.fx:.2f}  fy {c.fy:.2f}  cx {c.cx:.2f}  cy {c.cy:.2f}\n"
        f"vertical field of view {fov_y:.1f}°\n"
        f"position {pos[0]:.3f}, {pos[1]:.3f}, {pos[2]:.3f}\n"
        f"pose (camera to world, OpenCV axes):\n{rows}"
    )


def summarize(value: Any) -> str:
    """Plain-text description of a value no viewer draws (cameras, scalars, tensors...)."""
    if isinstance(value, Camera):
        return _camera_text(value)
    if isinstance(value, CameraPath):
        first, last = value.cameras[0], value.cameras[-1]
        p0, p1 = first.pose[:3, 3], last.pose[:3, 3]
        return (
            f"Camera path: {len(value)} cameras at {value.fps:g} fps "
            f"({len(value) / value.fps:.2f} s)\n"
            f"from {p0[0]:.3f}, {p0[1]:.3f}, {p0[2]:.3f} "
            f"to {p1[0]:.3f}, {p1[1]:.3f}, {p1[2]:.3f}\n\nfirst camera:\n" + _camera_text(first)
        )
    if isinstance(value, Latent):
        t = value.tensor
        return (
            f"Latent {tuple(getattr(t, 'shape', ()))} {getattr(t, 'dtype', '')}\n"
            f"scaling factor {value.scaling_factor}"
        )
    if isinstance(value, Conditioning):
        shapes = [
            tuple(getattr(t, "shape", ())) for t in (value.embeds, value.pooled) if t is not None
        ]
        return f"Conditioning: embeddings {shapes}\n{value.meta or ''}".rstrip()
    if isinstance(value, ModelRef):
        return f"Model: {value.source}\nkind {value.kind}" + (
            f"\nvariant {value.variant}" if value.variant else ""
        )
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, bool | int | str):
        return str(value)
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, np.ndarray):
        return f"array {value.shape} {value.dtype}\n{np.array2string(value, threshold=200)}"
    if isinstance(value, list | tuple):
        items = [f"[{i}] " + summarize(v).replace("\n", "\n    ") for i, v in enumerate(value[:50])]
        more = f"\n… {len(value) - 50} more" if len(value) > 50 else ""
        return f"{len(value)} items\n" + "\n".join(items) + more
    return repr(value)


class PreviewDock(QDockWidget):
    """Dock that previews one value at a time; ``show_value`` picks the viewer by type."""

    #: The 3D panel's "360°" button: open this value (a Mesh) in the 360° viewer.
    open_360 = Signal(object)

    def __init__(self, parent: QWidget | None = None, mesh_backend: str = "auto") -> None:
        super().__init__("Preview", parent)
        self.setObjectName("PreviewDock")
        self._mesh_backend = mesh_backend
        self._stack = QStackedWidget()
        self._empty = QLabel(EMPTY_TEXT)
        self._empty.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self._empty.setWordWrap(True)
        self._stack.addWidget(self._empty)
        self._panels: dict[str, QWidget] = {}
        self._kind = "empty"
        #: Contact sheets of large view sets are made here; a result for an older value
        #: (anything shown since) is dropped.
        self._sheets = BackgroundRenderer(self._sheet_ready, self)
        self._sheet_seq = 0
        #: Above a save node's preview: the files it wrote, Open and Show in folder.
        self.written = WrittenBar()
        #: Above a value that is not the node's latest (its latest run failed): why.
        self.note = QLabel()
        self.note.setObjectName("preview-note")
        self.note.setWordWrap(True)
        self.note.setStyleSheet(f"{text_style('warning')} padding: 4px;")
        self.note.hide()
        body = QWidget()
        lay = QVBoxLayout(body)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.setSpacing(0)
        lay.addWidget(self.written)
        lay.addWidget(self.note)
        lay.addWidget(self._stack, 1)
        self.setWidget(body)

    # ---- panels

    def panel(self, kind: str) -> QWidget:
        """The panel for ``kind`` (image, depth, video, mesh, text), made on first use."""
        if kind not in self._panels:
            made: QWidget
            if kind == "image":
                made = ImagePanel()
            elif kind == "depth":
                made = DepthPanel()
            elif kind == "video":
                made = VideoPlayer()
            elif kind == "mesh":
                made = MeshPanel(backend=self._mesh_backend)
                made.open_360.connect(self.open_360)
            elif kind == "text":
                text = QPlainTextEdit()
                text.setReadOnly(True)
                text.setLineWrapMode(QPlainTextEdit.LineWrapMode.NoWrap)
                made = text
            else:
                raise KeyError(f"no preview panel {kind!r}")
            self._panels[kind] = made
            self._stack.addWidget(made)
        return self._panels[kind]

    @property
    def kind(self) -> str:
        """Which panel is showing: empty, image, depth, video, mesh or text."""
        return self._kind

    def current_panel(self) -> QWidget:
        return self._stack.currentWidget()

    def _switch(self, kind: str) -> QWidget:
        if self._kind == "video" and kind != "video":
            self.panel("video").pause()  # type: ignore[attr-defined]
        widget = self._empty if kind == "empty" else self.panel(kind)
        self._stack.setCurrentWidget(widget)
        self._kind = kind
        return widget

    # ---- the interface the main window uses

    def show_value(
        self,
        value: Any,
        title: str = "",
        viewers: tuple[str, ...] = (),
        written: list[str] | None = None,
        note: str = "",
    ) -> None:
        """Show ``value`` (in the first panel of ``viewers`` when given); errors while
        preparing a preview are shown, never raised. ``written``: the files a save node wrote
        (the value is what they hold), listed above it. ``note``: shown above it, e.g. that
        the value is from an earlier run, so an old picture never passes for a current one."""
        self.setWindowTitle(f"Preview — {title}" if title else "Preview")
        self.written.set_paths(written or [])
        self._set_note(note)
        self._sheet_seq += 1
        try:
            self._show(value, panel_kind(value, viewers))
        except Exception as exc:  # noqa: BLE001 - a bad value must not take the app down
            text = self._switch("text")
            assert isinstance(text, QPlainTextEdit)
            text.setPlainText(
                f"Cannot preview this {type(value).__name__}:\n{type(exc).__name__}: {exc}"
            )

    def show_live_value(self, value: Any, title: str = "") -> None:
        """A live session's newest 3D value (mesh, point cloud, RGBD): the 3D view keeps its
        camera and its GL item, and prepares each frame off the GUI thread (newest wins)."""
        self.setWindowTitle(f"Preview — {title}" if title else "Preview")
        self.written.set_paths([])
        self._set_note("")
        self._sheet_seq += 1
        self._switch("mesh").set_live_value(value)  # type: ignore[attr-defined]

    def _set_note(self, text: str) -> None:
        self.note.setText(text)
        self.note.setVisible(bool(text))

    def _show(self, value: Any, kind: str) -> None:
        if kind == "empty":
            self.clear()
        elif kind == "image" and isinstance(value, Views):
            self._show_views(value)
        elif kind == "image":
            self._switch("image").set_image(value.data)  # type: ignore[attr-defined]
        elif kind == "depth":
            self._switch("depth").set_depth(value)  # type: ignore[attr-defined]
        elif kind == "video":
            player = self._switch("video")
            assert isinstance(player, VideoPlayer)
            if player.video is not value:  # reselecting the same clip keeps the frame
                player.set_video(value)
        elif kind == "mesh":
            self._switch("mesh").set_value(value)  # type: ignore[attr-defined]
        else:
            text = self._switch("text")
            assert isinstance(text, QPlainTextEdit)
            s = summarize(value)
            text.setPlainText(s if len(s) <= MAX_TEXT else s[:MAX_TEXT] + "\n…")

    def _show_views(self, views: Views) -> None:
        """A view set as its labelled contact sheet in the image panel: made here when small,
        else on the worker (with its QImage) behind a note, the panel cleared meanwhile so no
        stale picture passes for this one."""
        panel = self._switch("image")
        assert isinstance(panel, ImagePanel)
        if sum(im.width * im.height for im in views.images) <= SHEET_HERE:
            panel.set_image(sheet_array(views))
            self._views_info(panel, views)
            return
        panel.clear()
        panel.info.setText(f"{len(views)} views: making the contact sheet…")

        def make() -> tuple[np.ndarray, Any]:
            sheet = sheet_array(views)
            return sheet, to_qimage(sheet)

        self._sheets.submit(make, (self._sheet_seq, views))

    def _sheet_ready(self, tag: tuple[int, Views], result: Any) -> None:
        seq, views = tag
        if seq != self._sheet_seq or self._kind != "image":
            return  # something else was shown meanwhile
        panel = self.panel("image")
        assert isinstance(panel, ImagePanel)
        if isinstance(result, Exception):
            panel.info.setText(f"Cannot preview these views: {type(result).__name__}: {result}")
            return
        panel.set_image(*result)
        self._views_info(panel, views)

    @staticmethod
    def _views_info(panel: ImagePanel, views: Views) -> None:
        im = views.images[0]
        depth = " with depth" if views.depths is not None else ""
        panel.info.setText(f"{len(views)} views{depth}, {im.width}×{im.height} each")

    @property
    def idle(self) -> bool:
        """No contact sheet being made: what the dock shows is final."""
        return self._sheets.idle

    def clear(self) -> None:
        """Show nothing (and release the previewed value)."""
        self.show_message(EMPTY_TEXT)

    def show_message(self, text: str, title: str = "", written: list[str] | None = None) -> None:
        """Show ``text`` instead of a value (a node with no output yet says why), releasing
        the value shown before: a stale picture must not pass for this node's."""
        self.setWindowTitle(f"Preview — {title}" if title else "Preview")
        self.written.set_paths(written or [])
        self._set_note("")
        self._sheet_seq += 1
        for kind, panel in self._panels.items():
            if kind == "text":
                panel.setPlainText("")  # type: ignore[attr-defined]
            else:
                panel.clear()  # type: ignore[attr-defined]
        self._empty.setText(text)
        self._switch("empty")

    def message(self) -> str:
        """The text shown while there is no value (see ``show_message``)."""
        return self._empty.text()
