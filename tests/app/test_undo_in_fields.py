"""Ctrl+Z and Ctrl+Shift+Z undo and redo graph edits while an inspector field has focus."""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QApplication

CTRL = Qt.KeyboardModifier.ControlModifier
CTRL_SHIFT = CTRL | Qt.KeyboardModifier.ShiftModifier


def focus(qtbot: Any, widget: Any) -> Any:
    """Focus ``widget`` as a click would and return the widget that now has the keyboard."""
    widget.activateWindow()
    widget.setFocus()
    qtbot.waitUntil(widget.hasFocus)
    return QApplication.focusWidget()


def test_ctrl_z_in_a_number_field_undoes_the_value_just_set(
    qtbot: Any, window: Any, add: Any
) -> None:
    nid = add("image.save", 0, 0)
    window.scene.select_nodes([nid])
    spin = window.inspector.widgets["quality"].spin
    before = window.doc.graph.nodes[nid].params["quality"]
    keys = focus(qtbot, spin)
    spin.lineEdit().selectAll()
    QTest.keyClicks(keys, "80")
    QTest.keyClick(keys, Qt.Key.Key_Return)
    assert window.doc.graph.nodes[nid].params["quality"] == 80
    assert spin.hasFocus()
    QTest.keyClick(keys, Qt.Key.Key_Z, CTRL)
    assert window.doc.graph.nodes[nid].params["quality"] == before
    assert spin.value() == before and spin.text() == str(before)
    QTest.keyClick(keys, Qt.Key.Key_Z, CTRL_SHIFT)
    assert window.doc.graph.nodes[nid].params["quality"] == 80
    assert spin.value() == 80


def test_ctrl_z_in_a_text_field_undoes_the_graph_edit(qtbot: Any, window: Any, add: Any) -> None:
    nid = add("image.save", 0, 0)
    window.scene.select_nodes([nid])
    path = window.inspector.widgets["path"].text
    before = window.doc.graph.nodes[nid].params["path"]
    keys = focus(qtbot, path)
    path.selectAll()
    QTest.keyClicks(keys, "renders/a.png")
    QTest.keyClick(keys, Qt.Key.Key_Return)
    assert window.doc.graph.nodes[nid].params["path"] == "renders/a.png"
    QTest.keyClick(keys, Qt.Key.Key_Z, CTRL)
    assert window.doc.graph.nodes[nid].params["path"] == before
    assert path.text() == before


def test_ctrl_z_in_the_title_field_undoes_the_last_graph_edit(
    qtbot: Any, window: Any, add: Any
) -> None:
    nid = add("image.invert", 0, 0)
    last = add("image.save", 0, 300)
    window.scene.select_nodes([nid])
    keys = focus(qtbot, window.inspector.title)
    count = window.doc.undo_stack.count()
    QTest.keyClick(keys, Qt.Key.Key_Z, CTRL)  # nothing typed: the graph's last edit goes
    assert window.doc.undo_stack.index() == count - 1
    assert last not in window.doc.graph.nodes


def test_ctrl_shift_z_and_ctrl_y_redo_on_the_canvas(qtbot: Any, window: Any, add: Any) -> None:
    """The README's Ctrl+Shift+Z redoes on every platform, not only where the platform's first
    Redo binding happens to be it (offscreen Qt's is Ctrl+Y)."""
    nid = add("image.invert", 0, 0)
    keys = focus(qtbot, window.view)
    for redo in (CTRL_SHIFT, CTRL):
        QTest.keyClick(keys, Qt.Key.Key_Z, CTRL)
        assert nid not in window.doc.graph.nodes
        QTest.keyClick(keys, Qt.Key.Key_Z if redo == CTRL_SHIFT else Qt.Key.Key_Y, redo)
        assert nid in window.doc.graph.nodes


def test_ctrl_z_first_takes_back_typing_not_yet_applied(qtbot: Any, window: Any, add: Any) -> None:
    nid = add("image.save", 0, 0)
    window.scene.select_nodes([nid])
    path = window.inspector.widgets["path"].text
    before = path.text()
    index = window.doc.undo_stack.index()
    keys = focus(qtbot, path)
    QTest.keyClicks(keys, "xyz")  # typed, no Enter yet
    QTest.keyClick(keys, Qt.Key.Key_Z, CTRL)
    assert path.text() == before  # the field's own undo took the typing back
    assert window.doc.undo_stack.index() == index and nid in window.doc.graph.nodes
    QTest.keyClick(keys, Qt.Key.Key_Z, CTRL)  # nothing pending: the graph's undo
    assert nid not in window.doc.graph.nodes
