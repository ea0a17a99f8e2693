"""A reroute point: a draggable dot a wire passes through, to tidy long or crossing wires.

Stored as editor data (``editor.reroutes``: id, pos, edge), so it never changes a result.
"""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import QPointF, QRectF
from PySide6.QtGui import QColor, QPainter, QPen
from PySide6.QtWidgets import QGraphicsItem, QStyleOptionGraphicsItem, QWidget

RADIUS = 6.0


class RerouteItem(QGraphicsItem):
    def __init__(self, entry_id: str, color: QColor) -> None:
        super().__init__()
        self.entry_id = entry_id
        self.color = color
        self.on_moved: Any = None  # set by the scene: redraws the wire while dragging
        self.setFlags(
            QGraphicsItem.GraphicsItemFlag.ItemIsMovable
            | QGraphicsItem.GraphicsItemFlag.ItemIsSelectable
            | QGraphicsItem.GraphicsItemFlag.ItemSendsGeometryChanges
        )
        self.setZValue(2)
        self.setToolTip("reroute point: drag to move, Delete to remove")

    def boundingRect(self) -> QRectF:  # noqa: N802 - Qt's name
        r = RADIUS + 3
        return QRectF(-r, -r, 2 * r, 2 * r)

    def itemChange(self, change: QGraphicsItem.GraphicsItemChange, value: Any) -> Any:  # noqa: N802
        if (
            change == QGraphicsItem.GraphicsItemChange.ItemPositionHasChanged
            and self.on_moved is not None
        ):
            self.on_moved()
        return super().itemChange(change, value)

    def paint(
        self, painter: QPainter, option: QStyleOptionGraphicsItem, widget: QWidget | None = None
    ) -> None:
        painter.setPen(QPen(QColor("#fff59d") if self.isSelected() else QColor("#111111"), 1.5))
        painter.setBrush(self.color)
        painter.drawEllipse(QPointF(0, 0), RADIUS, RADIUS)
