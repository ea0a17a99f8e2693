"""Keyboard input as a user types it into the studio's widgets, for the GUI tests."""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtTest import QTest


def type_into(qtbot: Any, spin: Any, text: str) -> None:
    """Click into a spin box, replace its text by typing and press Enter."""
    spin.setFocus()
    qtbot.waitUntil(spin.hasFocus)
    spin.lineEdit().selectAll()
    QTest.keyClicks(spin.lineEdit(), text)
    QTest.keyClick(spin.lineEdit(), Qt.Key.Key_Return)
