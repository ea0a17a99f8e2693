"""A comment: free text on the canvas, edited in place by double-clicking.

Stored as editor data (``editor.comments``: id, text, pos).
"""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import QRectF, Qt
from PySide6.QtGui import QColor, QFocusEvent, QPainter, QPen
from PySide6.QtWidgets import (
    QGraphicsItem,
    QGraphicsSceneMouseEvent,
    QGraphicsTextItem,
    QStyleOptionGraphicsItem,
    QWidget,
)


class CommentItem(QGraphicsTextItem):
    def __init__(self, entry: dict[str, Any]) -> None:
        super().__init__()
        self.entry_id = entry["id"]
        self.on_edited: Any = None  # set by the scene: (item, new_text) -> None
        self.setDefaultTextColor(QColor("#fce8b2"))
        self.setTextWidth(260)
        self.setFlags(
            QGraphicsItem.GraphicsItemFlag.ItemIsMovable
            | QGraphicsItem.GraphicsItemFlag.ItemIsSelectable
            | QGraphicsItem.GraphicsItemFlag.ItemIsFocusable
        )
        self.setZValue(-5)
        self.setToolTip("comment: double-click to edit")
        self.apply(entry)

    def apply(self, entry: dict[str, Any]) -> None:
        if self.toPlainText() != entry.get("text", ""):
            self.setPlainText(entry.get("text", ""))
        x, y = entry.get("pos", [0, 0])
        self.setPos(float(x), float(y))

    def mouseDoubleClickEvent(self, event: QGraphicsSceneMouseEvent) -> None:  # noqa: N802
        self.setTextInteractionFlags(Qt.TextInteractionFlag.TextEditorInteraction)
        self.setFocus()
        super().mouseDoubleClickEvent(event)

    def focusOutEvent(self, event: QFocusEvent) -> None:  # noqa: N802
        self.setTextInteractionFlags(Qt.TextInteractionFlag.NoTextInteraction)
        super().focusOutEvent(event)
        if self.on_edited is not None:
            self.on_edited(self, self.toPlainText())

    def paint(
        self, painter: QPainter, option: QStyleOptionGraphicsItem, widget: QWidget | None = None
    ) -> None:
        rect = QRectF(self.boundingRect())
        painter.setPen(
            QPen(QColor("#fff59d"), 1.5) if self.isSelected() else QPen(QColor("#5f5430"), 1)
        )
        painter.setBrush(QColor(60, 54, 30, 200))
        painter.drawRoundedRect(rect, 4, 4)
        super().paint(painter, option, widget)
