"""The minimap: an overview of the whole graph in the editor's bottom-right corner.

It shows each node as a block in its header (category) colour, frames as faint boxes, and the
part of the graph the view shows as a rectangle; a click or drag in it moves the view there.
By default it appears only while part of the graph is out of view; View → Minimap forces it on
or off. It redraws from a list of boxes refreshed at most every REFRESH_MS, so a run that
repaints nodes many times a second costs it almost nothing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from PySide6.QtCore import QEvent, QObject, QPointF, QRectF, Qt, QTimer, Signal
from PySide6.QtGui import (
    QColor,
    QMouseEvent,
    QPainter,
    QPaintEvent,
    QPen,
    QPixmap,
    QTransform,
    QWheelEvent,
)
from PySide6.QtWidgets import QWidget

if TYPE_CHECKING:
    from fathom.app.editor.view import GraphView

SIZE = (220, 150)
#: Gap to the view's edges, and inside the map around the graph (pixels).
MARGIN, INSET = 12, 6
REFRESH_MS = 120
BACKGROUND, BORDER = QColor(23, 24, 27), QColor("#44474d")
FRAME_FILL = QColor(255, 255, 255, 22)
VIEW_PEN, VIEW_FILL = QColor("#e8eaed"), QColor(255, 255, 255, 28)


class Minimap(QWidget):
    """A child of the view (above its viewport); it keeps itself in the view's corner."""

    #: Shown or hidden (the View menu's check mark follows it).
    shown_changed = Signal(bool)

    def __init__(self, view: GraphView) -> None:
        super().__init__(view)
        self.view = view
        self.setFixedSize(*SIZE)
        # Opaque: repainting the map never makes the canvas under it repaint.
        self.setAttribute(Qt.WidgetAttribute.WA_OpaquePaintEvent)
        self.setCursor(Qt.CursorShape.PointingHandCursor)
        self.setToolTip("Minimap: click or drag to move the view (View → Minimap, Ctrl+Shift+M)")
        #: None: shown while part of the graph is out of view; True/False: the user's choice.
        self.forced: bool | None = None
        self._nodes: list[tuple[QRectF, QColor]] = []
        self._frames: list[QRectF] = []
        self._graph = QRectF()
        #: The nodes and frames drawn once per change; a view move only redraws the rectangle.
        self._layer: QPixmap | None = None
        self._refresh = QTimer(self)
        self._refresh.setSingleShot(True)
        self._refresh.setInterval(REFRESH_MS)
        self._refresh.timeout.connect(self.rescan)
        view.horizontalScrollBar().valueChanged.connect(self._view_moved)
        view.verticalScrollBar().valueChanged.connect(self._view_moved)
        view.scene().changed.connect(self._scene_changed)
        view.installEventFilter(self)
        self.hide()
        self._place()

    # ---- what it shows -------------------------------------------------------------------------

    def rescan(self) -> None:
        """Read the boxes and colours of the scene's nodes and frames."""
        scene = self.view.scene()
        nodes = [
            (item.sceneBoundingRect(), QColor(item.header_color))
            for item in getattr(scene, "nodes", {}).values()
        ]
        others = [*getattr(scene, "groups", {}).values(), *getattr(scene, "comments", {}).values()]
        frames = [item.sceneBoundingRect() for item in others]
        if nodes != self._nodes or frames != self._frames:  # a run's repaints change nothing
            self._nodes, self._frames, self._layer = nodes, frames, None
        bounds = QRectF()
        for rect in [r for r, _ in self._nodes] + self._frames:
            bounds = bounds.united(rect)
        self._graph = bounds
        self._update_shown()
        self.update()

    def _scene_changed(self) -> None:
        if not self._refresh.isActive():
            self._refresh.start()

    def _view_moved(self) -> None:
        self._update_shown()
        if self.isVisible():
            self.update()

    def visible_scene_rect(self) -> QRectF:
        return self.view.mapToScene(self.view.viewport().rect()).boundingRect()

    def wanted(self) -> bool:
        if self.forced is not None:
            return self.forced
        return not self._graph.isEmpty() and not self.visible_scene_rect().contains(self._graph)

    def set_forced(self, on: bool | None) -> None:
        """The user's choice (None: back to automatic)."""
        self.forced = on
        self.rescan()

    def _update_shown(self) -> None:
        want = self.wanted()
        if want != self.isVisible():
            self.setVisible(want)
            if want:
                self.raise_()
            self.shown_changed.emit(want)

    # ---- map <-> scene -------------------------------------------------------------------------

    def world(self) -> QRectF:
        """The scene area the map shows: the graph, padded (a square around the view's centre
        when the graph is empty)."""
        if self._graph.isEmpty():
            centre = self.visible_scene_rect().center()
            return QRectF(centre.x() - 500, centre.y() - 500, 1000, 1000)
        pad = max(self._graph.width(), self._graph.height()) * 0.04 + 20
        return self._graph.adjusted(-pad, -pad, pad, pad)

    def _scale_and_origin(self) -> tuple[float, QPointF]:
        world = self.world()
        inner = QRectF(self.rect()).adjusted(INSET, INSET, -INSET, -INSET)
        scale = min(inner.width() / world.width(), inner.height() / world.height())
        origin = QPointF(
            inner.center().x() - world.center().x() * scale,
            inner.center().y() - world.center().y() * scale,
        )
        return scale, origin

    def to_map(self, scene_point: QPointF) -> QPointF:
        scale, origin = self._scale_and_origin()
        return QPointF(origin.x() + scene_point.x() * scale, origin.y() + scene_point.y() * scale)

    def to_scene(self, map_point: QPointF) -> QPointF:
        scale, origin = self._scale_and_origin()
        return QPointF((map_point.x() - origin.x()) / scale, (map_point.y() - origin.y()) / scale)

    def _map_rect(self, rect: QRectF) -> QRectF:
        return QRectF(self.to_map(rect.topLeft()), self.to_map(rect.bottomRight()))

    # ---- painting and the mouse ----------------------------------------------------------------

    def _draw_layer(self) -> QPixmap:
        """Background, frames and nodes, drawn in scene units through one transform, each
        colour's nodes in one call (a node stays at least 2 map pixels big)."""
        layer = QPixmap(self.size())
        layer.fill(BACKGROUND)
        scale, origin = self._scale_and_origin()
        least = 2.0 / scale
        by_color: dict[int, tuple[QColor, list[QRectF]]] = {}
        for rect, color in self._nodes:
            box = QRectF(rect)
            box.setWidth(max(box.width(), least))
            box.setHeight(max(box.height(), least))
            by_color.setdefault(color.rgba(), (color, []))[1].append(box)
        p = QPainter(layer)
        p.setTransform(QTransform(scale, 0, 0, scale, origin.x(), origin.y()))
        p.setPen(Qt.PenStyle.NoPen)
        p.setBrush(FRAME_FILL)
        p.drawRects(self._frames)
        for color, boxes in by_color.values():
            p.setBrush(color)
            p.drawRects(boxes)
        p.end()
        return layer

    def paintEvent(self, event: QPaintEvent) -> None:  # noqa: N802 - Qt's name
        if self._layer is None:
            self._layer = self._draw_layer()
        p = QPainter(self)
        p.drawPixmap(0, 0, self._layer)
        p.setRenderHint(QPainter.RenderHint.Antialiasing)
        shown = self._map_rect(self.visible_scene_rect()).intersected(QRectF(self.rect()))
        p.setPen(QPen(VIEW_PEN, 1.5))
        p.setBrush(VIEW_FILL)
        p.drawRect(shown)
        p.setRenderHint(QPainter.RenderHint.Antialiasing, False)
        p.setPen(QPen(BORDER, 1))
        p.setBrush(Qt.BrushStyle.NoBrush)
        p.drawRect(self.rect().adjusted(0, 0, -1, -1))
        p.end()

    def _move_view(self, event: QMouseEvent) -> None:
        self.view.moving()
        self.view.centerOn(self.to_scene(event.position()))
        event.accept()

    def mousePressEvent(self, event: QMouseEvent) -> None:  # noqa: N802
        if event.button() == Qt.MouseButton.LeftButton:
            self._move_view(event)

    def mouseMoveEvent(self, event: QMouseEvent) -> None:  # noqa: N802
        if event.buttons() & Qt.MouseButton.LeftButton:
            self._move_view(event)

    def wheelEvent(self, event: QWheelEvent) -> None:  # noqa: N802
        """The wheel zooms the view about its centre, as it would over the canvas."""
        steps = event.angleDelta().y() / 120.0
        if steps:
            self.view.zoom_by(1.15**steps)
        event.accept()

    def eventFilter(self, obj: QObject, event: QEvent) -> bool:  # noqa: N802
        if obj is self.view and event.type() == QEvent.Type.Resize:
            self._place()
            self._scene_changed()  # what is in view is known once the view has resized
        return super().eventFilter(obj, event)

    def _place(self) -> None:
        area = self.view.contentsRect()
        self.move(
            area.right() - self.width() - MARGIN + 1, area.bottom() - self.height() - MARGIN + 1
        )
