"""A live session's output windows: the newest frame of each window node, full screen on request.

Frames arrive on the session's worker threads. ``LatestFrames`` keeps only the newest frame per
node and tells the GUI thread once per fresh frame through a queued Qt signal: a model that
outpaces the screen replaces frames that were never shown (counted), so nothing queues up and
the GUI thread only ever paints the newest. The picture is converted to a QImage on the worker
that delivered it, so the GUI thread does no pixel work beyond drawing it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import numpy as np
from PySide6.QtCore import QObject, QRect, Qt, Signal
from PySide6.QtGui import (
    QAction,
    QCloseEvent,
    QColor,
    QContextMenuEvent,
    QGuiApplication,
    QImage,
    QKeyEvent,
    QMouseEvent,
    QPainter,
    QPaintEvent,
    QScreen,
)
from PySide6.QtWidgets import QMenu, QWidget

from fathom.app.preview.image_view import to_qimage


def frame_image(image: Any) -> QImage:
    """An Image (or an H×W×C array in [0, 1]) as a QImage that owns its pixels."""
    return to_qimage(np.asarray(getattr(image, "data", image)))


class LatestFrames(QObject):
    """A mailbox of one frame per node: ``put`` from any thread, ``take`` on the GUI thread.

    ``arrived(node)`` is emitted only when the node had no unread frame, so at most one signal
    per node is ever on its way; a frame put before the last one was taken replaces it.
    ``convert`` runs on the putting thread (by default: Image → QImage)."""

    arrived = Signal(str)

    def __init__(
        self, parent: QObject | None = None, convert: Callable[[Any], Any] | None = None
    ) -> None:
        super().__init__(parent)
        self._convert = convert or frame_image
        self._lock = threading.Lock()
        self._latest: dict[str, Any] = {}
        self._closed = False
        #: Frames delivered, and frames replaced by a newer one before the GUI took them.
        self.received = 0
        self.replaced = 0

    def put(self, node_id: str, image: Any) -> None:
        """Called by the session's threads with an Image (or an H×W×C array in [0, 1])."""
        frame = self._convert(image)
        with self._lock:
            if self._closed:
                return
            self.received += 1
            fresh = node_id not in self._latest
            if not fresh:
                self.replaced += 1
            self._latest[node_id] = frame
        if fresh:
            self.arrived.emit(node_id)

    def take(self, node_id: str) -> Any:
        with self._lock:
            return self._latest.pop(node_id, None)

    def pending(self) -> int:
        """Frames waiting to be taken (at most one per node)."""
        with self._lock:
            return len(self._latest)

    def close(self) -> None:
        """Frames put from now on are dropped (the window is going away)."""
        with self._lock:
            self._closed = True
            self._latest.clear()

    def reopen(self) -> None:
        with self._lock:
            self._closed = False
            self.received = self.replaced = 0


def fitted(frame_w: int, frame_h: int, area: QRect) -> QRect:
    """The largest rectangle of the frame's aspect ratio centred in ``area``."""
    if frame_w <= 0 or frame_h <= 0 or area.width() <= 0 or area.height() <= 0:
        return QRect(area)
    scale = min(area.width() / frame_w, area.height() / frame_h)
    w, h = max(1, round(frame_w * scale)), max(1, round(frame_h * scale))
    return QRect(area.x() + (area.width() - w) // 2, area.y() + (area.height() - h) // 2, w, h)


def other_screen(current: QScreen | None) -> QScreen | None:
    """A screen other than ``current`` (a second monitor) when there is one, else ``current``
    (or the primary screen)."""
    screens = QGuiApplication.screens()
    others = [s for s in screens if s is not current]
    if others and current is not None:
        return others[0]
    return current or QGuiApplication.primaryScreen()


class LiveWindow(QWidget):
    """The frames one output node shows: a plain black window, the frame fitted in it.

    F11 or a double-click toggles full screen (on a second monitor when there is one), Esc
    leaves it; the context menu picks the screen."""

    #: The window was closed by the user (its node id).
    closed = Signal(str)

    def __init__(self, node_id: str, title: str, parent: QWidget | None = None) -> None:
        super().__init__(parent, Qt.WindowType.Window)
        self.node_id = node_id
        self.setWindowTitle(f"{title} — Live")
        self.setObjectName(f"live-window-{node_id}")
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self.resize(640, 400)
        self.frame: QImage | None = None
        #: Frames painted so far (tests, the panel).
        self.frames_shown = 0

    def show_frame(self, frame: QImage) -> None:
        """The newest frame replaces the last; painted on the next paint event."""
        self.frame = frame
        self.frames_shown += 1
        self.update()

    def paintEvent(self, event: QPaintEvent) -> None:  # noqa: N802 - Qt override
        p = QPainter(self)
        p.fillRect(self.rect(), QColor(0, 0, 0))
        if self.frame is None:
            p.setPen(QColor(150, 150, 150))
            p.drawText(self.rect(), Qt.AlignmentFlag.AlignCenter, "Waiting for the first frame…")
            return
        target = fitted(self.frame.width(), self.frame.height(), self.rect())
        # Smooth scaling only when the frame is enlarged a little; a large frame shrunk to the
        # window or blown up to a full screen is drawn with the cheap filter.
        smooth = target.width() <= 2 * self.frame.width() and target.width() < 1600
        p.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, smooth)
        p.drawImage(target, self.frame)

    # ---- full screen --------------------------------------------------------------------

    def full_screen(self, screen: QScreen | None = None) -> None:
        """Full screen on ``screen``; by default on a second monitor when there is one."""
        target = screen or other_screen(self._main_screen())
        if self.isFullScreen():
            self.showNormal()
        if target is not None:
            self.setScreen(target)
            self.setGeometry(target.geometry())
        self.showFullScreen()
        self.raise_()
        self.activateWindow()

    def leave_full_screen(self) -> None:
        if self.isFullScreen():
            self.showNormal()

    def toggle_full_screen(self) -> None:
        if self.isFullScreen():
            self.leave_full_screen()
        else:
            self.full_screen()

    def _main_screen(self) -> QScreen | None:
        """The screen of the studio's main window (the one to keep free)."""
        parent = self.parentWidget()
        return parent.screen() if parent is not None else self.screen()

    def keyPressEvent(self, event: QKeyEvent) -> None:  # noqa: N802 - Qt override
        key = event.key()
        if key == Qt.Key.Key_Escape and self.isFullScreen():
            self.leave_full_screen()
        elif key == Qt.Key.Key_F11:
            self.toggle_full_screen()
        else:
            super().keyPressEvent(event)

    def mouseDoubleClickEvent(self, event: QMouseEvent) -> None:  # noqa: N802 - Qt override
        self.toggle_full_screen()

    def contextMenuEvent(self, event: QContextMenuEvent) -> None:  # noqa: N802 - Qt override
        menu = QMenu(self)
        for action in self.screen_actions(menu):
            menu.addAction(action)
        menu.exec(event.globalPos())

    def screen_actions(self, parent: QObject) -> list[QAction]:
        """ "Full Screen on <screen>" for each screen, then "Leave Full Screen"."""
        actions = []
        for screen in QGuiApplication.screens():
            size = screen.geometry()
            action = QAction(
                f"Full Screen on {screen.name()} ({size.width()}×{size.height()})", parent
            )
            action.triggered.connect(lambda _=False, s=screen: self.full_screen(s))
            actions.append(action)
        leave = QAction("Leave Full Screen (Esc)", parent)
        leave.setEnabled(self.isFullScreen())
        leave.triggered.connect(self.leave_full_screen)
        actions.append(leave)
        return actions

    def closeEvent(self, event: QCloseEvent) -> None:  # noqa: N802 - Qt override
        self.closed.emit(self.node_id)
        event.accept()
