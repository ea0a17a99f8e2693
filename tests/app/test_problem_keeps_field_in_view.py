"""The message about parameters that constrain each other appears above the inspector's
scrolling part; the field the user is typing in stays in sight (it was pushed half out of the
short panel, under the new message)."""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import QPoint, QRect, Qt
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QScrollArea


def test_the_field_being_edited_stays_visible_when_a_problem_shows(
    qtbot: Any, window: Any, add: Any
) -> None:
    nid = add("depth.colorize", 0, 0)
    window.scene.select_nodes([nid])
    window.inspector.setFixedHeight(230)
    scroll = window.inspector.findChild(QScrollArea)
    spin = window.inspector.widgets["low_percentile"].spin
    spin.setFocus()
    qtbot.waitUntil(spin.hasFocus)
    scroll.ensureWidgetVisible(spin)
    spin.lineEdit().selectAll()
    QTest.keyClicks(spin.lineEdit(), "99")
    QTest.keyClick(spin.lineEdit(), Qt.Key.Key_Return)
    assert window.inspector.param_problems.isVisible()

    def shown() -> bool:
        top_left = spin.mapTo(scroll.viewport(), QPoint(0, 0))
        return scroll.viewport().rect().contains(QRect(top_left, spin.size()))

    qtbot.waitUntil(shown, timeout=2000)
