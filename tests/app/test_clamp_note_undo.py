"""A clamp note speaks only for the value it explains: "150 is above the maximum 100: set to
100" goes away when Ctrl+Z puts the old value back (it stayed under a field showing 90)."""

from __future__ import annotations

from typing import Any

from gui_input import type_into
from PySide6.QtCore import Qt
from PySide6.QtTest import QTest


def test_undoing_a_clamped_value_takes_its_note_away(qtbot: Any, window: Any, add: Any) -> None:
    nid = add("image.save", 0, 0, quality=90)
    window.scene.select_nodes([nid])
    quality = window.inspector.widgets["quality"]
    type_into(qtbot, quality.spin, "150")
    assert window.doc.graph.nodes[nid].params["quality"] == 100
    assert not quality.error.isHidden()
    window.view.setFocus()
    qtbot.waitUntil(window.view.hasFocus)
    QTest.keyClick(window.view, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    assert window.doc.graph.nodes[nid].params["quality"] == 90
    quality = window.inspector.widgets["quality"]
    assert quality.spin.value() == 90
    assert quality.error.isHidden(), quality.error.text()
