"""Find Node: Ctrl+F, type a title, a type or a parameter value, Enter jumps to the node
(centred and selected); F3 / Shift+F3 step through the matches."""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import QPointF, Qt
from PySide6.QtTest import QTest

from fathom.app.commands import SetTitle
from fathom.app.editor.find_node import find_nodes


def view_centre(window: Any) -> QPointF:
    view = window.view
    return view.mapToScene(view.viewport().rect().center())


def centred_on(window: Any, nid: str) -> bool:
    centre = view_centre(window)
    box = window.scene.nodes[nid].sceneBoundingRect()
    return abs(centre.x() - box.center().x()) < 2 and abs(centre.y() - box.center().y()) < 2


def graph(window: Any, add: Any) -> dict[str, str]:
    ids = {
        "fox": add("image.load", 0, 0, path="photos/red_fox.png"),
        "save_a": add("image.save", 2000, 0, path="out/final.png"),
        "save_b": add("image.save", 4000, 1500, path="out/other.png"),
        "inv": add("image.invert", 6000, 3000),
    }
    window.doc.undo_stack.push(SetTitle(window.doc, ids["inv"], "Flip for the fox"))
    window.view.resetTransform()
    window.view.centerOn(0, 0)
    return ids


def find(qtbot: Any, window: Any, text: str) -> Any:
    window.view.setFocus()
    QTest.keyClick(window.view, Qt.Key.Key_F, Qt.KeyboardModifier.ControlModifier)
    bar = window.find_node
    assert bar.isVisible() and bar.field.hasFocus()
    qtbot.keyClicks(bar.field, text)
    return bar


def test_ctrl_f_finds_by_parameter_value_and_enter_jumps(qtbot: Any, window: Any, add: Any) -> None:
    ids = graph(window, add)
    bar = find(qtbot, window, "final")
    assert [m.node_id for m in bar.matches] == [ids["save_a"]]
    assert "path: out/final.png" in bar.list.item(0).text()
    qtbot.keyClick(bar.field, Qt.Key.Key_Return)
    assert not bar.isVisible()
    assert window.scene.selected_node_ids() == [ids["save_a"]]
    assert centred_on(window, ids["save_a"])
    assert window.view.hasFocus()  # canvas shortcuts act on the node found


def test_title_matches_come_before_values_and_f3_steps(qtbot: Any, window: Any, add: Any) -> None:
    ids = graph(window, add)
    bar = find(qtbot, window, "fox")
    # the title "Flip for the fox" first, then the file name red_fox.png
    assert [m.node_id for m in bar.matches] == [ids["inv"], ids["fox"]]
    qtbot.keyClick(bar.field, Qt.Key.Key_Down)
    qtbot.keyClick(bar.field, Qt.Key.Key_Return)
    assert window.scene.selected_node_ids() == [ids["fox"]] and centred_on(window, ids["fox"])
    QTest.keyClick(window.view, Qt.Key.Key_F3)
    assert window.scene.selected_node_ids() == [ids["inv"]] and centred_on(window, ids["inv"])
    QTest.keyClick(window.view, Qt.Key.Key_F3)  # wraps around
    assert window.scene.selected_node_ids() == [ids["fox"]]
    QTest.keyClick(window.view, Qt.Key.Key_F3, Qt.KeyboardModifier.ShiftModifier)
    assert window.scene.selected_node_ids() == [ids["inv"]] and centred_on(window, ids["inv"])


def test_find_by_type_and_a_click_on_a_match(qtbot: Any, window: Any, add: Any) -> None:
    ids = graph(window, add)
    bar = find(qtbot, window, "save image")
    assert [m.node_id for m in bar.matches] == [ids["save_a"], ids["save_b"]]
    assert bar.count.text() == "2 found"
    rect = bar.list.visualItemRect(bar.list.item(1))
    QTest.mouseClick(
        bar.list.viewport(),
        Qt.MouseButton.LeftButton,
        Qt.KeyboardModifier.NoModifier,
        rect.center(),
    )
    assert window.scene.selected_node_ids() == [ids["save_b"]] and centred_on(window, ids["save_b"])
    assert bar.isVisible() and bar.count.text() == "2 of 2"
    qtbot.keyClick(bar.field, Qt.Key.Key_Escape)
    assert not bar.isVisible()


def test_typing_in_the_bar_never_reaches_canvas_shortcuts(
    qtbot: Any, window: Any, add: Any
) -> None:
    ids = graph(window, add)
    window.scene.select_nodes([ids["fox"]])
    bar = find(qtbot, window, "zzz")
    assert bar.count.text() == "no match" and bar.matches == []
    qtbot.keyClick(bar.field, Qt.Key.Key_Backspace)
    qtbot.keyClick(bar.field, Qt.Key.Key_Delete)
    qtbot.keyClick(bar.field, Qt.Key.Key_D, Qt.KeyboardModifier.ControlModifier)
    assert set(window.doc.graph.nodes) == set(ids.values())  # nothing deleted or duplicated


def test_find_nodes_needs_every_word(window: Any, add: Any) -> None:
    ids = graph(window, add)
    assert [m.node_id for m in find_nodes(window.doc, "save other")] == [ids["save_b"]]
    assert find_nodes(window.doc, "") == [] and find_nodes(window.doc, "save nowhere") == []
