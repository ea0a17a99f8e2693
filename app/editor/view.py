"""The editor's view: wheel zoom about the cursor, middle-drag pan, box select, fit, file drops.

Tab or a double-click on empty canvas asks for the node palette at that spot.
"""

from __future__ import annotations

import math
from pathlib import Path

from PySide6.QtCore import QEvent, QLineF, QPointF, QRectF, Qt, QTimer, Signal
from PySide6.QtGui import (
    QColor,
    QDragEnterEvent,
    QDragMoveEvent,
    QDropEvent,
    QKeyEvent,
    QMouseEvent,
    QPainter,
    QPen,
    QPixmapCache,
    QResizeEvent,
    QTransform,
    QWheelEvent,
)
from PySide6.QtWidgets import QGraphicsView, QWidget

from fathom.app.editor.minimap import Minimap
from fathom.app.editor.node_body import wants_wheel
from fathom.app.editor.scene import GraphScene

MIN_ZOOM, MAX_ZOOM = 0.08, 3.0
#: A graph opens no further out than this: titles read whole and on-node parameters show
#: there (``text_detail``, ``node_body``); the minimap shows the rest of a bigger graph.
OPEN_MIN_ZOOM = 0.5
GRID = 25.0
SETTLE_MS = 150


class GraphView(QGraphicsView):
    #: Open the palette here (scene position).
    palette_requested = Signal(QPointF)
    #: Local files dropped on the canvas, and where.
    files_dropped = Signal(list, QPointF)

    def __init__(self, scene: GraphScene, parent: QWidget | None = None) -> None:
        super().__init__(scene, parent)
        self.setRenderHints(QPainter.RenderHint.Antialiasing | QPainter.RenderHint.TextAntialiasing)
        self.setDragMode(QGraphicsView.DragMode.RubberBandDrag)
        self.setRubberBandSelectionMode(Qt.ItemSelectionMode.IntersectsItemShape)
        self.setTransformationAnchor(QGraphicsView.ViewportAnchor.AnchorViewCenter)
        self.setViewportUpdateMode(QGraphicsView.ViewportUpdateMode.SmartViewportUpdate)
        self.setOptimizationFlags(QGraphicsView.OptimizationFlag.DontAdjustForAntialiasing)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.setVerticalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.setSceneRect(QRectF(-100_000, -100_000, 200_000, 200_000))
        self.setAcceptDrops(True)
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self._pan_from: QPointF | None = None
        self._fitted: tuple[float, tuple[QTransform, int, int]] | None = None
        scene.relaid_out.connect(self._refit)
        # While the view moves, wires draw without antialiasing (10x cheaper here); a moment
        # after it stops they are redrawn smooth.
        self._settle = QTimer(self)
        self._settle.setSingleShot(True)
        self._settle.setInterval(SETTLE_MS)
        self._settle.timeout.connect(self._settled)
        # Node items cache their look as pixmaps (smooth panning); a 500-node canvas needs more
        # than Qt's default 10 MB for that.
        QPixmapCache.setCacheLimit(max(QPixmapCache.cacheLimit(), 96 * 1024))
        #: The overview in the bottom-right corner (it follows the scene and this view).
        self.minimap = Minimap(self)

    # ---- zoom and pan --------------------------------------------------------------------------

    def zoom(self) -> float:
        return self.transform().m11()

    def moving(self) -> None:
        """Mark the view as in motion (fast wires) until it has been still for a moment."""
        scene = self.scene()
        if isinstance(scene, GraphScene):
            scene.fast_wires = True
        self._settle.start()

    def _settled(self) -> None:
        scene = self.scene()
        if isinstance(scene, GraphScene):
            scene.fast_wires = False
        self.viewport().update()

    def zoom_by(self, factor: float) -> None:
        target = max(MIN_ZOOM, min(MAX_ZOOM, self.zoom() * factor))
        factor = target / self.zoom()
        if abs(factor - 1.0) > 1e-6:
            self.moving()
            self.scale(factor, factor)

    def pan_by(self, dx: float, dy: float) -> None:
        """Scroll by view pixels (what a middle-drag does)."""
        self.moving()
        self.horizontalScrollBar().setValue(self.horizontalScrollBar().value() + round(dx))
        self.verticalScrollBar().setValue(self.verticalScrollBar().value() + round(dy))

    def fit_all(self) -> None:
        """Fit every item, never zooming in past 100% (a lone node should not fill the view)."""
        self._fit(MIN_ZOOM)

    def fit_to_open(self) -> None:
        """The fit a graph opens with: like ``fit_all`` but never further out than
        OPEN_MIN_ZOOM, where titles are still painted; a graph too big for that opens at its
        top-left corner, where its flow starts."""
        self._fit(OPEN_MIN_ZOOM)

    def _fit(self, min_zoom: float) -> None:
        scene: GraphScene = self.scene()  # type: ignore[assignment]
        rect = QRectF()
        for group in (scene.nodes, scene.groups, scene.comments):
            for item in group.values():
                rect = rect.united(item.sceneBoundingRect())
        if rect.isEmpty():
            self.resetTransform()
            self.centerOn(0, 0)
        else:
            rect.adjust(-60, -60, 60, 60)
            self.fitInView(rect, Qt.AspectRatioMode.KeepAspectRatio)
            if self.zoom() > 1.0:
                self.resetTransform()
                self.centerOn(rect.center())
            elif self.zoom() < min_zoom:
                self.setTransform(QTransform.fromScale(min_zoom, min_zoom))
                shown = self.visible_rect()
                self.centerOn(rect.topLeft() + QPointF(shown.width() / 2, shown.height() / 2))
        # Until the user pans or zooms, a change of the view's size (docks settling, the
        # window resized) fits again, so the fit never leaves a node clipped at an edge.
        self._fitted = (min_zoom, self._view_state())

    def _view_state(self) -> tuple[QTransform, int, int]:
        return (
            self.transform(),
            self.horizontalScrollBar().value(),
            self.verticalScrollBar().value(),
        )

    def resizeEvent(self, event: QResizeEvent) -> None:  # noqa: N802 - Qt's name
        refit = self._fitted is not None and self._fitted[1] == self._view_state()
        super().resizeEvent(event)
        if refit and self._fitted is not None:
            self._fit(self._fitted[0])

    def _refit(self) -> None:
        """Fit again after the layout changed, unless the user has moved the view since."""
        if self._fitted is not None and self._fitted[1] == self._view_state():
            self._fit(self._fitted[0])

    def visible_rect(self) -> QRectF:
        """The part of the scene the viewport shows."""
        return self.mapToScene(self.viewport().rect()).boundingRect()

    def show_rect(self, rect: QRectF) -> None:
        """Scroll as little as needed to bring ``rect`` into view (a new node, a copy)."""
        if not rect.isEmpty() and not self.visible_rect().contains(rect):
            self.ensureVisible(rect, 40, 40)

    def wheelEvent(self, event: QWheelEvent) -> None:  # noqa: N802 - Qt's name
        """Zoom about the wheel event's position: what is under the cursor stays there."""
        if wants_wheel(self.itemAt(event.position().toPoint())):
            super().wheelEvent(event)  # a focused on-node field takes it
            return
        steps = event.angleDelta().y() / 120.0
        if steps:
            at = event.position().toPoint()
            fixed = self.mapToScene(at)
            self.zoom_by(math.pow(1.15, steps))
            moved = self.mapFromScene(fixed) - at
            self.pan_by(moved.x(), moved.y())
        event.accept()

    def mousePressEvent(self, event: QMouseEvent) -> None:  # noqa: N802
        if event.button() == Qt.MouseButton.MiddleButton:
            self._pan_from = event.position()
            self.viewport().setCursor(Qt.CursorShape.ClosedHandCursor)
            event.accept()
            return
        super().mousePressEvent(event)

    def mouseMoveEvent(self, event: QMouseEvent) -> None:  # noqa: N802
        if self._pan_from is not None:
            delta = event.position() - self._pan_from
            self._pan_from = event.position()
            self.pan_by(-delta.x(), -delta.y())
            event.accept()
            return
        super().mouseMoveEvent(event)

    def mouseReleaseEvent(self, event: QMouseEvent) -> None:  # noqa: N802
        if event.button() == Qt.MouseButton.MiddleButton and self._pan_from is not None:
            self._pan_from = None
            self.viewport().unsetCursor()
            event.accept()
            return
        super().mouseReleaseEvent(event)

    def mouseDoubleClickEvent(self, event: QMouseEvent) -> None:  # noqa: N802
        if self.itemAt(event.position().toPoint()) is None:
            self.palette_requested.emit(self.mapToScene(event.position().toPoint()))
            event.accept()
            return
        super().mouseDoubleClickEvent(event)

    def event(self, event: QEvent) -> bool:
        # Tab normally moves keyboard focus; in the editor it opens the palette.
        if (
            event.type() == QEvent.Type.KeyPress
            and isinstance(event, QKeyEvent)
            and event.key() == Qt.Key.Key_Tab
        ):
            focus = self.scene().focusItem() if self.scene() else None
            if focus is None:
                self.palette_requested.emit(self.cursor_scene_pos())
                return True
        return super().event(event)

    def cursor_scene_pos(self) -> QPointF:
        local = self.viewport().mapFromGlobal(self.cursor().pos())
        if not self.viewport().rect().contains(local):
            local = self.viewport().rect().center()
        return self.mapToScene(local)

    # ---- background grid --------------------------------------------------------------------

    def drawBackground(self, painter: QPainter, rect: QRectF) -> None:  # noqa: N802
        painter.fillRect(rect, QColor("#1e1f22"))
        if self.zoom() < 0.15:
            return
        step = GRID if self.zoom() >= 0.5 else GRID * 4
        left = math.floor(rect.left() / step) * step
        top = math.floor(rect.top() / step) * step
        xs = [left + i * step for i in range(int((rect.right() - left) / step) + 1)]
        ys = [top + i * step for i in range(int((rect.bottom() - top) / step) + 1)]
        lines = [QLineF(x, rect.top(), x, rect.bottom()) for x in xs]
        lines += [QLineF(rect.left(), y, rect.right(), y) for y in ys]
        # One call, no antialiasing: a grid of hairlines costs almost nothing this way.
        painter.setRenderHint(QPainter.RenderHint.Antialiasing, False)
        painter.setPen(QPen(QColor("#2a2c30"), 0))
        painter.drawLines(lines)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing, True)

    # ---- drops -------------------------------------------------------------------------------

    def dragEnterEvent(self, event: QDragEnterEvent) -> None:  # noqa: N802
        if event.mimeData().hasUrls():
            event.acceptProposedAction()
        else:
            super().dragEnterEvent(event)

    def dragMoveEvent(self, event: QDragMoveEvent) -> None:  # noqa: N802
        if event.mimeData().hasUrls():
            event.acceptProposedAction()
        else:
            super().dragMoveEvent(event)

    def dropEvent(self, event: QDropEvent) -> None:  # noqa: N802
        paths = [Path(u.toLocalFile()) for u in event.mimeData().urls() if u.isLocalFile()]
        if paths:
            self.files_dropped.emit(paths, self.mapToScene(event.position().toPoint()))
            event.acceptProposedAction()
            return
        super().dropEvent(event)
