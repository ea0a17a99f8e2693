"""A frame (group): a titled rectangle behind nodes; dragging it carries the nodes inside.

Stored as editor data (``editor.groups``: id, title, rect, color). The body lies behind the
nodes, but its title bar is a separate item above them, so a neighbouring node never hides
which frame this is.
"""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import QPointF, QRectF, Qt
from PySide6.QtGui import QColor, QFont, QPainter, QPen
from PySide6.QtWidgets import (
    QGraphicsItem,
    QGraphicsSceneMouseEvent,
    QStyleOptionGraphicsItem,
    QWidget,
)

from fathom.app.editor.node_item import READABLE_PX

TITLE_H = 28.0
HANDLE = 14.0
DEFAULT_COLOR = "#3d5a80"
#: Above nodes (1), wires (0) and reroutes (2); below a wire being dragged (10).
TITLE_Z = 5.0
CANVAS = QColor("#1e1f22")


class FrameTitle(QGraphicsItem):
    """A frame's title bar, kept at the frame's position but stacked above the nodes. It takes
    no clicks: they reach what lies below it (the frame, so a drag moves it and a double-click
    renames it, or a node that sits there)."""

    def __init__(self, frame: FrameItem) -> None:
        super().__init__()
        self.frame = frame
        self.setZValue(TITLE_Z)
        self.setAcceptedMouseButtons(Qt.MouseButton.NoButton)
        self.setData(0, ("frame title", frame.entry_id))

    def boundingRect(self) -> QRectF:  # noqa: N802 - Qt's name
        return QRectF(-2, -2, self.frame.w + 4, TITLE_H + 2)

    def paint(
        self, painter: QPainter, option: QStyleOptionGraphicsItem, widget: QWidget | None = None
    ) -> None:
        # Opaque: the frame's colour as it looks on the canvas, so a node below cannot show
        # through and muddy the title.
        c = QColor(self.frame.color)
        a = 170 / 255
        head = QColor(
            round(c.red() * a + CANVAS.red() * (1 - a)),
            round(c.green() * a + CANVAS.green() * (1 - a)),
            round(c.blue() * a + CANVAS.blue() * (1 - a)),
        )
        painter.setPen(QPen(QColor("#fff59d"), 2) if self.frame.isSelected() else Qt.PenStyle.NoPen)
        painter.setBrush(head)
        painter.drawRoundedRect(QRectF(0, 0, self.frame.w, TITLE_H), 8, 8)
        painter.setPen(QColor("#f1f3f4"))
        # Like node titles, the frame's grows when zoomed out so it stays readable.
        lod = option.levelOfDetailFromTransform(painter.worldTransform())
        font = QFont()
        font.setPixelSize(round(min(max(15.0, READABLE_PX / max(lod, 1e-3)), TITLE_H - 3)))
        font.setBold(True)
        painter.setFont(font)
        painter.drawText(
            QRectF(10, 0, self.frame.w - 20, TITLE_H),
            Qt.AlignmentFlag.AlignVCenter | Qt.AlignmentFlag.AlignLeft,
            self.frame.title,
        )


class FrameItem(QGraphicsItem):
    """The item's position is the frame's top-left; ``size`` its width and height."""

    def __init__(self, entry: dict[str, Any]) -> None:
        super().__init__()
        self.entry_id = entry["id"]
        self.title = ""
        self.color = QColor(DEFAULT_COLOR)
        self.w = self.h = 100.0
        self.resizing = False
        self.on_resized: Any = None  # set by the scene: (item, old_size) -> None
        self._press_size = (0.0, 0.0)
        self.title_item = FrameTitle(self)
        self.setFlags(
            QGraphicsItem.GraphicsItemFlag.ItemIsMovable
            | QGraphicsItem.GraphicsItemFlag.ItemIsSelectable
            | QGraphicsItem.GraphicsItemFlag.ItemSendsGeometryChanges
        )
        self.setZValue(-10)
        self.apply(entry)

    def apply(self, entry: dict[str, Any]) -> None:
        x, y, w, h = entry.get("rect", [0, 0, 300, 200])
        self.prepareGeometryChange()
        self.title = entry.get("title", "")
        self.color = QColor(entry.get("color", DEFAULT_COLOR))
        self.title_item.prepareGeometryChange()
        self.w, self.h = float(w), float(h)
        self.setPos(float(x), float(y))
        self.title_item.update()
        self.setToolTip(f"frame: {self.title}\ndrag the corner to resize; double-click to rename")
        self.update()

    def rect_list(self) -> list[float]:
        return [
            round(self.pos().x(), 2),
            round(self.pos().y(), 2),
            round(self.w, 2),
            round(self.h, 2),
        ]

    def boundingRect(self) -> QRectF:  # noqa: N802 - Qt's name
        return QRectF(-2, -2, self.w + 4, self.h + 4)

    def itemChange(self, change: QGraphicsItem.GraphicsItemChange, value: Any) -> Any:  # noqa: N802
        """The title item follows the frame into and out of scenes, moves and selection."""
        kind = QGraphicsItem.GraphicsItemChange
        if change == kind.ItemSceneChange and self.title_item.scene() is not None:
            self.title_item.scene().removeItem(self.title_item)
        elif change == kind.ItemSceneHasChanged and value is not None:
            value.addItem(self.title_item)
            self.title_item.setPos(self.pos())
        elif change == kind.ItemPositionHasChanged:
            self.title_item.setPos(self.pos())
        elif change == kind.ItemSelectedHasChanged:
            self.title_item.update()
        return super().itemChange(change, value)

    def scene_rect(self) -> QRectF:
        return QRectF(self.pos(), QPointF(self.pos().x() + self.w, self.pos().y() + self.h))

    def _in_handle(self, pos: QPointF) -> bool:
        return pos.x() > self.w - HANDLE and pos.y() > self.h - HANDLE

    def mousePressEvent(self, event: QGraphicsSceneMouseEvent) -> None:  # noqa: N802
        if event.button() == Qt.MouseButton.LeftButton and self._in_handle(event.pos()):
            self.resizing = True
            self._press_size = (self.w, self.h)
            event.accept()
            return
        super().mousePressEvent(event)

    def mouseMoveEvent(self, event: QGraphicsSceneMouseEvent) -> None:  # noqa: N802
        if self.resizing:
            self.prepareGeometryChange()
            self.title_item.prepareGeometryChange()
            self.w = max(120.0, event.pos().x())
            self.h = max(80.0, event.pos().y())
            self.update()
            self.title_item.update()
            return
        super().mouseMoveEvent(event)

    def mouseReleaseEvent(self, event: QGraphicsSceneMouseEvent) -> None:  # noqa: N802
        if self.resizing:
            self.resizing = False
            if self.on_resized is not None:
                self.on_resized(self, self._press_size)
            return
        super().mouseReleaseEvent(event)

    def paint(
        self, painter: QPainter, option: QStyleOptionGraphicsItem, widget: QWidget | None = None
    ) -> None:
        fill = QColor(self.color)
        fill.setAlpha(60)
        painter.setPen(
            QPen(QColor("#fff59d"), 2)
            if self.isSelected()
            else QPen(QColor(self.color).lighter(130), 1.2)
        )
        painter.setBrush(fill)
        painter.drawRoundedRect(QRectF(0, 0, self.w, self.h), 8, 8)
        # The title bar is painted by ``title_item``, above the nodes.
        painter.setPen(QPen(QColor(self.color).lighter(150), 1.5))
        for i in (4, 8, 12):
            painter.drawLine(QPointF(self.w - i, self.h - 2), QPointF(self.w - 2, self.h - i))
