"""For the GUI tests: a widget shown on screen, and input as a user gives it (typing into a
field, a wheel turn, a drag on the canvas)."""

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


def drag_on_canvas(window: Any, a: Any, b: Any) -> None:
    """A left-button drag on the node editor's canvas from scene point ``a`` to ``b``, in four
    moves, through the view's viewport as the mouse sends it."""
    vp = window.view.viewport()
    pa, pb = window.view.mapFromScene(a), window.view.mapFromScene(b)
    QTest.mousePress(vp, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, pa)
    for t in (0.25, 0.5, 0.75, 1.0):
        QTest.mouseMove(vp, pa + (pb - pa) * t)
    QTest.mouseRelease(vp, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, pb)


def shown(qtbot: Any, widget: Any, w: int, h: int) -> Any:
    """``widget`` resized to ``w``×``h``, shown and exposed (qtbot closes it after the test)."""
    qtbot.addWidget(widget)
    widget.resize(w, h)
    widget.show()
    qtbot.waitExposed(widget)
    return widget
