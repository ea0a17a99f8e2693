"""Wires: an edge between two ports (through its reroute points) and the wire being dragged."""

from __future__ import annotations

from PySide6.QtCore import QPointF, Qt
from PySide6.QtGui import QColor, QPainter, QPainterPath, QPainterPathStroker, QPen
from PySide6.QtWidgets import (
    QGraphicsItem,
    QGraphicsPathItem,
    QStyleOptionGraphicsItem,
    QWidget,
)

from fathom.app.editor.node_item import PortItem, port_color
from fathom.engine.graph import Edge


def wire_path(start: QPointF, end: QPointF, points: list[QPointF] = ()) -> QPainterPath:
    """Horizontal-tangent cubic curves through the points, the look every node editor shares."""
    path = QPainterPath(start)
    stops = [start, *points, end]
    for a, b in zip(stops, stops[1:], strict=False):
        dx = max(abs(b.x() - a.x()) * 0.5, 30.0)
        path.cubicTo(QPointF(a.x() + dx, a.y()), QPointF(b.x() - dx, b.y()), b)
    return path


class EdgeItem(QGraphicsPathItem):
    """One graph edge; coloured by the source port's type."""

    def __init__(self, edge: Edge, src: PortItem, dst: PortItem) -> None:
        super().__init__()
        self.edge = edge
        self.src = src
        self.dst = dst
        self.points: list[QPointF] = []
        self.color = port_color(src.type_id)
        self._shape: QPainterPath | None = None
        self.setFlag(QGraphicsItem.GraphicsItemFlag.ItemIsSelectable)
        self.setZValue(0)
        self.setToolTip(
            f"{edge.src}.{edge.src_port} → {edge.dst}.{edge.dst_port} "
            f"({src.type_id})\ndouble-click to add a reroute point"
        )
        self.update_path()

    def set_points(self, points: list[QPointF]) -> None:
        self.points = list(points)
        self.update_path()

    def update_path(self) -> None:
        self._shape = None
        self.setPath(wire_path(self.src.scene_center(), self.dst.scene_center(), self.points))

    def shape(self) -> QPainterPath:
        """A wide stroke, so a 2-pixel wire is easy to click."""
        if self._shape is None:
            stroker = QPainterPathStroker()
            stroker.setWidth(12)
            self._shape = stroker.createStroke(self.path())
        return self._shape

    def paint(
        self, painter: QPainter, option: QStyleOptionGraphicsItem, widget: QWidget | None = None
    ) -> None:
        width = 4.0 if self.isSelected() else 2.4
        color = QColor("#fff59d") if self.isSelected() else self.color
        pen = QPen(color, width)
        if option.levelOfDetailFromTransform(painter.worldTransform()) < 0.35:
            # Zoomed far out: one-pixel hairlines, Qt's fast path (a wide pen costs 4x here).
            pen.setCosmetic(True)
            pen.setWidthF(1.0)
        if getattr(self.scene(), "fast_wires", False):
            painter.setRenderHint(QPainter.RenderHint.Antialiasing, False)
        painter.setPen(pen)
        painter.setBrush(Qt.BrushStyle.NoBrush)
        painter.drawPath(self.path())


class DragWire(QGraphicsPathItem):
    """The wire following the mouse while the user connects ports."""

    def __init__(self, port: PortItem) -> None:
        super().__init__()
        self.port = port
        pen = QPen(port_color(port.type_id), 2.4, Qt.PenStyle.DashLine)
        self.setPen(pen)
        self.setZValue(10)
        self.update_end(port.scene_center())

    def update_end(self, pos: QPointF) -> None:
        a = self.port.scene_center()
        start, end = (a, pos) if self.port.is_output else (pos, a)
        self.setPath(wire_path(start, end))
