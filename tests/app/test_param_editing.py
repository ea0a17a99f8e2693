"""Editing parameters in the inspector as a user does: the wheel, typing, undo while typing."""

from __future__ import annotations

from typing import Any

from gui_input import send_wheel, type_into
from PySide6.QtCore import QPointF, Qt
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QScrollArea, QWidget


def wheel(widget: QWidget, notches: int = -1) -> None:
    """One wheel turn over the middle of ``widget``, as the mouse sends it (down: negative)."""
    send_wheel(widget, QPointF(widget.rect().center()), 120 * notches)


def small_inspector(qtbot: Any, window: Any, add: Any) -> tuple[str, QScrollArea]:
    """A Save Image node selected, with the inspector short enough to scroll."""
    nid = add("image.save", 0, 0)
    window.scene.select_nodes([nid])
    window.inspector.setFixedHeight(160)
    scroll = window.inspector.findChild(QScrollArea)
    qtbot.waitUntil(lambda: scroll.verticalScrollBar().maximum() > 0)
    window.view.setFocus()
    qtbot.waitUntil(window.view.hasFocus)
    return nid, scroll


def test_wheel_over_unfocused_fields_scrolls_the_panel_and_changes_nothing(
    qtbot: Any, window: Any, add: Any
) -> None:
    nid, scroll = small_inspector(qtbot, window, add)
    w = window.inspector.widgets
    params = dict(window.doc.graph.nodes[nid].params)
    steps = window.doc.undo_stack.count()
    window.doc.mark_saved()
    bar = scroll.verticalScrollBar()
    for field in (w["format"].combo, w["quality"].spin, w["quality"].slider):
        bar.setValue(0)
        wheel(field, -1)
        assert bar.value() > 0, f"the panel did not scroll over {type(field).__name__}"
        assert not field.hasFocus()
    assert window.doc.graph.nodes[nid].params == params
    assert window.doc.undo_stack.count() == steps
    assert not window.doc.modified
    assert w["format"].combo.currentText() == params["format"]
    assert w["quality"].spin.value() == params["quality"]


def test_a_focused_field_takes_the_wheel_as_one_undo_step(
    qtbot: Any, window: Any, add: Any
) -> None:
    nid, _ = small_inspector(qtbot, window, add)
    combo = window.inspector.widgets["format"].combo
    before = window.doc.graph.nodes[nid].params["format"]
    combo.setFocus()
    qtbot.waitUntil(combo.hasFocus)
    steps = window.doc.undo_stack.count()
    wheel(combo, -1)
    after = window.doc.graph.nodes[nid].params["format"]
    assert after != before and combo.currentText() == after
    assert window.doc.undo_stack.count() == steps + 1
    window.doc.undo_stack.undo()
    assert window.doc.graph.nodes[nid].params["format"] == before
    assert combo.currentText() == before


def test_each_number_change_is_one_undo_step(qtbot: Any, window: Any, add: Any) -> None:
    nid, _ = small_inspector(qtbot, window, add)
    spin = window.inspector.widgets["quality"].spin
    before = window.doc.graph.nodes[nid].params["quality"]
    spin.setFocus()
    qtbot.waitUntil(spin.hasFocus)
    steps = window.doc.undo_stack.count()
    QTest.keyClick(spin, Qt.Key.Key_Up)
    assert window.doc.graph.nodes[nid].params["quality"] == before + 1
    assert window.doc.undo_stack.count() == steps + 1
    window.doc.undo_stack.undo()
    assert window.doc.graph.nodes[nid].params["quality"] == before
    assert spin.value() == before


def test_a_typed_value_above_the_maximum_is_clamped_visibly(
    qtbot: Any, window: Any, add: Any
) -> None:
    nid = add("image.save", 0, 0)
    window.scene.select_nodes([nid])
    quality = window.inspector.widgets["quality"]
    steps = window.doc.undo_stack.count()
    type_into(qtbot, quality.spin, "150")
    assert window.doc.graph.nodes[nid].params["quality"] == 100  # not 15
    assert quality.spin.value() == 100
    message = "150 is above the maximum 100: set to 100"
    assert quality.error.text() == message and not quality.error.isHidden()
    assert message in window.statusBar().currentMessage()
    assert window.doc.undo_stack.count() == steps + 1
    # Already at the maximum: nothing changes, and the user still learns why.
    type_into(qtbot, quality.spin, "300")
    assert window.doc.undo_stack.count() == steps + 1
    assert quality.error.text() == "300 is above the maximum 100: set to 100"
    # A value in range clears the note.
    type_into(qtbot, quality.spin, "80")
    assert window.doc.graph.nodes[nid].params["quality"] == 80
    assert quality.error.isHidden()


def test_typed_floats_are_clamped_at_both_ends(qtbot: Any, window: Any, add: Any) -> None:
    nid = add("image.edges", 0, 0)
    window.scene.select_nodes([nid])
    blur = window.inspector.widgets["blur"]
    type_into(qtbot, blur.spin, "50")
    assert window.doc.graph.nodes[nid].params["blur"] == 20.0  # not 5
    assert blur.error.text() == "50 is above the maximum 20: set to 20"
    type_into(qtbot, blur.spin, "-3")
    assert window.doc.graph.nodes[nid].params["blur"] == 0.0
    assert blur.error.text() == "-3 is below the minimum 0: set to 0"
