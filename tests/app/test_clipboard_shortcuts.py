"""Copy and paste as a user does it: Ctrl+C on the canvas, then Edit → Paste and Ctrl+V."""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QApplication


def _edit_action(window: Any, text: str) -> Any:
    menu = next(a.menu() for a in window.menuBar().actions() if a.text() == "&Edit")
    return next(a for a in menu.actions() if a.text() == text)


def test_copy_then_paste_by_menu_and_by_shortcut_adds_nodes(
    qtbot: Any, window: Any, add: Any
) -> None:
    nid = add("image.invert", 0, 0)
    window.scene.select_nodes([nid])
    window.view.setFocus()
    qtbot.waitUntil(window.view.hasFocus)
    QTest.keyClick(window.view, Qt.Key.Key_C, Qt.KeyboardModifier.ControlModifier)
    assert "image.invert" in QApplication.clipboard().text()

    before = set(window.doc.graph.nodes)
    _edit_action(window, "&Paste").trigger()  # triggered(checked=False): no clipboard text
    by_menu = set(window.doc.graph.nodes) - before
    assert len(by_menu) == 1
    assert window.doc.graph.nodes[by_menu.pop()].type == "image.invert"

    window.view.setFocus()
    qtbot.waitUntil(window.view.hasFocus)
    before = set(window.doc.graph.nodes)
    QTest.keyClick(window.view, Qt.Key.Key_V, Qt.KeyboardModifier.ControlModifier)
    by_key = set(window.doc.graph.nodes) - before
    assert len(by_key) == 1
    assert window.doc.graph.nodes[by_key.pop()].type == "image.invert"
    assert window.doc.undo_stack.undoText().startswith("Paste")
