"""The preview dock never speaks for a node that is gone: deleting the node whose preview is
open (or undoing its addition) empties the dock, instead of leaving "<node> has no output yet:
press F5 to run it" on view, which F5 then never changes."""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtTest import QTest


def test_deleting_the_previewed_node_empties_the_preview(
    qtbot: Any, window: Any, add: Any, run_and_wait: Any
) -> None:
    keep = add("image.constant", 0, 0, width=4, height=4)
    gone = add("image.constant", 0, 200, width=4, height=4)
    window.scene.select_nodes([gone])
    assert gone in window.preview.windowTitle()
    window.view.setFocus()
    QTest.keyClick(window.view, Qt.Key.Key_Delete)  # what the user presses
    assert gone not in window.doc.graph.nodes
    assert gone not in window.preview.windowTitle()
    assert "F5" not in window.preview.message()
    run_and_wait([keep])  # a run afterwards brings nothing of the deleted node back
    assert gone not in window.preview.windowTitle()


def test_undoing_the_previewed_nodes_addition_empties_the_preview(
    qtbot: Any, window: Any, add: Any
) -> None:
    nid = add("image.constant", 0, 0)
    window.scene.select_nodes([nid])
    assert nid in window.preview.windowTitle()
    window.view.setFocus()
    while nid in window.doc.graph.nodes and window.doc.undo_stack.canUndo():
        QTest.keyClick(window.view, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    assert nid not in window.doc.graph.nodes
    assert nid not in window.preview.windowTitle()
    assert "F5" not in window.preview.message()
