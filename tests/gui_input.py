"""Keyboard and wheel input as a user gives it to the studio's widgets, for the GUI tests."""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import QPoint, Qt
from PySide6.QtGui import QWheelEvent
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QApplication


def type_into(qtbot: Any, spin: Any, text: str) -> None:
    """Click into a spin box, replace its text by typing and press Enter."""
    spin.setFocus()
    qtbot.waitUntil(spin.hasFocus)
    spin.lineEdit().selectAll()
    QTest.keyClicks(spin.lineEdit(), text)
    QTest.keyClick(spin.lineEdit(), Qt.Key.Key_Return)


def send_wheel(
    widget: Any,
    pos: Any,
    delta: int,
    mods: Qt.KeyboardModifier = Qt.KeyboardModifier.NoModifier,
) -> None:
    """A mouse-wheel turn of ``delta`` eighths of a degree (120 a notch; down: negative) over
    ``pos`` (a QPointF in ``widget``), as the mouse sends it."""
    event = QWheelEvent(
        pos,
        widget.mapToGlobal(pos),
        QPoint(0, 0),
        QPoint(0, delta),
        Qt.MouseButton.NoButton,
        mods,
        Qt.ScrollPhase.NoScrollPhase,
        False,
    )
    QApplication.sendEvent(widget, event)
