"""A node added where the minimap sits (a wire dropped on it, or Tab with the mouse over it)
lands clear of the minimap: it used to land underneath it, selected but hidden, so the user
saw nothing happen."""

from __future__ import annotations

from typing import Any

from gui_input import drag_on_canvas
from PySide6.QtCore import QRect, Qt


def test_a_node_dropped_on_the_minimap_lands_beside_it(qtbot: Any, window: Any, add: Any) -> None:
    src = add("depth.load", 0, 0)
    add("image.invert", 6000, 4000)  # far away: part of the graph is out of view
    window.view.resetTransform()
    window.view.centerOn(window.scene.nodes[src])
    minimap = window.view.minimap
    qtbot.waitUntil(minimap.isVisible)
    corner: QRect = minimap.geometry()
    drop = window.view.mapToScene(corner.center())
    port = window.scene.nodes[src].outputs["depth"]
    drag_on_canvas(window, port.scene_center(), drop)
    pal = window.palette
    assert pal.isVisible()
    qtbot.keyClicks(pal.search, "colorize")
    qtbot.keyClick(pal.search, Qt.Key.Key_Return)
    (new,) = [n for n in window.doc.graph.nodes if n not in (src,) and "invert" not in n]
    item = window.scene.nodes[new]
    on_view = window.view.mapFromScene(item.sceneBoundingRect()).boundingRect()
    assert window.view.viewport().rect().contains(on_view), on_view
    assert not on_view.intersects(minimap.geometry()), (on_view, minimap.geometry())
    window.doc.undo_stack.undo()  # still one step
    assert new not in window.doc.graph.nodes
