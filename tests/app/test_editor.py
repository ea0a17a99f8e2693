"""The node editor: wiring rules and hints, the palette, clipboard, frames, reroutes, view."""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import QPoint, QPointF, Qt
from PySide6.QtGui import QColor
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QApplication

from fathom.app.editor.node_item import port_color
from fathom.app.editor.palette import search_nodes
from fathom.engine.types import Depth, Image


def vp_point(window: Any, scene_pos: QPointF) -> QPoint:
    return window.view.mapFromScene(scene_pos)


def mouse_drag(
    window: Any,
    a: QPointF,
    b: QPointF,
    button: Any = Qt.MouseButton.LeftButton,
    mods: Any = Qt.KeyboardModifier.NoModifier,
) -> None:
    vp = window.view.viewport()
    pa, pb = vp_point(window, a), vp_point(window, b)
    QTest.mousePress(vp, button, mods, pa)
    for t in (0.25, 0.5, 0.75, 1.0):
        QTest.mouseMove(vp, pa + (pb - pa) * t)
    QTest.mouseRelease(vp, button, mods, pb)


def test_incompatible_wire_is_refused_with_a_hint(qtbot: Any, window: Any, add: Any) -> None:
    dl = add("depth.load", 0, 0)
    inv = add("image.invert", 300, 0)
    window.view.fit_all()
    s = window.scene
    src, dst = s.nodes[dl].outputs["depth"], s.nodes[inv].inputs["image"]
    hints: list[str] = []
    s.hint.connect(hints.append)
    mouse_drag(window, src.scene_center(), dst.scene_center())
    assert window.doc.graph.edges == []
    assert window.doc.undo_stack.count() == 2  # only the two adds
    assert hints and "depth" in hints[-1] and "image" in hints[-1]
    assert "Colorize" in hints[-1] or "depth.colorize" in hints[-1]  # a node that converts
    assert s.hint_item.isVisible() and s.hint_item.text() == hints[-1]
    assert "incompatible" in window.statusBar().currentMessage()


def test_wire_rules(window: Any, add: Any, wire: Any) -> None:
    a = add("image.constant", 0, 0, width=4, height=4)
    inv = add("image.invert", 250, 0)
    inv2 = add("image.invert", 500, 0)
    s = window.scene
    assert wire(a, "image", inv, "image") is None
    assert wire(inv, "image", inv2, "image") is None
    why = s.connect_ports(s.nodes[inv2].outputs["image"], s.nodes[inv].inputs["image"])
    assert why and "cycle" in why
    why = s.connect_ports(s.nodes[inv].outputs["image"], s.nodes[inv].inputs["image"])
    assert why and "own input" in why
    why = s.connect_ports(s.nodes[a].outputs["image"], s.nodes[inv].outputs["image"])
    assert why == "connect an output to an input"
    # Lossless conversions are allowed (mask → image), as the engine allows them.
    m = add("image.to_mask", 250, 200)
    assert wire(a, "image", m, "image") is None
    assert wire(m, "mask", inv2, "image") is None
    assert len([e for e in window.doc.graph.edges if e.dst == inv2]) == 1  # replaced


def test_dropping_a_wire_on_empty_canvas_offers_compatible_nodes(
    qtbot: Any, window: Any, add: Any
) -> None:
    dl = add("depth.load", 0, 0)
    window.view.fit_all()
    port = window.scene.nodes[dl].outputs["depth"]
    empty = port.scene_center() + QPointF(260, 60)
    mouse_drag(window, port.scene_center(), empty)
    pal = window.palette
    assert pal.isVisible() and pal.accepts == "depth"
    offered = pal.results()
    assert "depth.colorize" in offered and "image.invert" not in offered
    qtbot.keyClicks(pal.search, "colorize")
    qtbot.keyClick(pal.search, Qt.Key.Key_Return)
    new = [n for n in window.doc.graph.nodes if n != dl]
    assert len(new) == 1 and window.doc.graph.nodes[new[0]].type == "depth.colorize"
    assert [(e.src, e.dst, e.dst_port) for e in window.doc.graph.edges] == [(dl, new[0], "depth")]
    window.doc.undo_stack.undo()  # one step: the node and its wire
    assert list(window.doc.graph.nodes) == [dl]


def test_palette_search_by_name_category_and_port_type(test_registry: Any) -> None:
    classes = test_registry.types()
    assert search_nodes(classes, "adjust")[0].type_id == "image.adjust"
    assert {c.category for c in search_nodes(classes, "depth")} >= {"depth"}
    meshes = search_nodes(classes, "out:mesh")
    assert meshes and all(any(o.type.type_id == "mesh" for o in c.outputs) for c in meshes)
    takes_video = search_nodes(classes, "", accepts="video")
    assert takes_video and all(
        any(i.type.type_id in ("video", "any") for i in c.inputs) for c in takes_video
    )
    assert search_nodes(classes, "nothing-matches-this") == []


def test_tab_and_double_click_open_the_palette(qtbot: Any, window: Any) -> None:
    window.view.setFocus()
    QTest.keyClick(window.view, Qt.Key.Key_Tab)
    assert window.palette.isVisible() and window.palette.accepts is None
    window.palette.hide()
    QTest.mouseDClick(
        window.view.viewport(),
        Qt.MouseButton.LeftButton,
        Qt.KeyboardModifier.NoModifier,
        QPoint(300, 200),
    )
    assert window.palette.isVisible()
    assert len(window.palette.results()) == len(window.editing.node_classes())
    window.palette.hide()


def test_copy_paste_between_windows_as_graph_json(
    qtbot: Any, window: Any, add: Any, wire: Any, test_registry: Any, settings: Any
) -> None:
    from fathom.app.main_window import MainWindow

    a = add("image.constant", 0, 0, width=5, height=6)
    inv = add("image.invert", 250, 0)
    wire(a, "image", inv, "image")
    window.scene.select_nodes([a, inv])
    window.editing.copy()
    text = QApplication.clipboard().text()
    assert '"format": "fathom.graph"' in text
    other = MainWindow(registry=test_registry, settings=settings)
    qtbot.addWidget(other)
    other.editing.add_node("image.constant", (0, 0))  # an id clash: the pasted one is renamed
    ids = other.editing.paste()
    assert len(ids) == 2 and len(other.doc.graph.nodes) == 3
    pasted = [other.doc.graph.nodes[i] for i in ids]
    assert sorted(p.type for p in pasted) == ["image.constant", "image.invert"]
    const = next(p for p in pasted if p.type == "image.constant")
    assert const.params["width"] == 5 and const.id != "constant1"
    assert len(other.doc.graph.edges) == 1
    assert set(other.scene.selected_node_ids()) == set(ids)
    other.doc.mark_saved()
    other.close()
    assert window.editing.paste("not a graph") == []


def test_dragging_a_frame_carries_its_nodes(qtbot: Any, window: Any, add: Any) -> None:
    a = add("image.constant", 0, 0)
    b = add("image.invert", 0, 160)
    outside = add("image.invert", 600, 0)
    gid = window.scene.add_frame("Group", around=[a, b])
    window.view.fit_all()
    frame = window.scene.groups[gid]
    title = frame.scenePos() + QPointF(60, 12)
    window.doc.undo_stack.clear()
    mouse_drag(window, title, title + QPointF(100, 50))
    dx = window.doc.node_pos(a)[0] - 0
    assert dx > 20
    assert window.doc.node_pos(b)[0] == window.doc.node_pos(a)[0]
    assert window.doc.node_pos(outside) == (600.0, 0.0)
    assert window.doc.entry("groups", gid)["rect"][0] > frame_rect_x0(window, gid) - 1
    assert window.doc.undo_stack.count() == 1
    window.doc.undo_stack.undo()
    assert window.doc.node_pos(a) == (0.0, 0.0)


def frame_rect_x0(window: Any, gid: str) -> float:
    return window.scene.groups[gid].pos().x()


def test_double_click_on_a_wire_adds_a_reroute(
    qtbot: Any, window: Any, add: Any, wire: Any
) -> None:
    a = add("image.constant", 0, 0)
    inv = add("image.invert", 400, 200)
    wire(a, "image", inv, "image")
    window.view.fit_all()
    edge_item = next(iter(window.scene.edges.values()))
    mid = edge_item.path().pointAtPercent(0.5)
    QTest.mouseDClick(
        window.view.viewport(),
        Qt.MouseButton.LeftButton,
        Qt.KeyboardModifier.NoModifier,
        vp_point(window, mid),
    )
    (entry,) = window.doc.entries("reroutes")
    assert entry["edge"] == [a, "image", inv, "image"]
    before = edge_item.path().pointAtPercent(0.5)
    window.doc.undo_stack.push(_move_reroute(window, entry, (200.0, 400.0)))
    after = edge_item.path().pointAtPercent(0.5)
    assert (after - before).manhattanLength() > 50  # the wire follows its reroute
    window.scene.clearSelection()
    window.scene.reroutes[entry["id"]].setSelected(True)
    window.scene.delete_selection()
    assert window.doc.entries("reroutes") == [] and len(window.doc.graph.edges) == 1


def _move_reroute(window: Any, entry: dict, pos: tuple[float, float]) -> Any:
    from fathom.app.commands import Move

    moved = dict(entry, pos=list(pos))
    return Move(window.doc, {}, [("reroutes", entry, moved)])


def test_box_select_zoom_pan_and_fit(qtbot: Any, window: Any, add: Any) -> None:
    ids = [add("image.invert", x, 0) for x in (0, 250, 500)]
    window.view.fit_all()
    z0 = window.view.zoom()
    first, last = window.scene.nodes[ids[0]], window.scene.nodes[ids[-1]]
    a = first.sceneBoundingRect().topLeft() - QPointF(30, 30)
    b = last.sceneBoundingRect().bottomRight() + QPointF(30, 30)
    mouse_drag(window, a, b)
    assert set(window.scene.selected_node_ids()) == set(ids)
    window.view.zoom_by(2.0)
    assert abs(window.view.zoom() - min(z0 * 2, 3.0)) < 1e-6
    window.view.zoom_by(1e-6)
    assert abs(window.view.zoom() - 0.08) < 1e-6
    center = window.view.mapToScene(window.view.viewport().rect().center())
    window.view.pan_by(200, 0)
    assert window.view.mapToScene(window.view.viewport().rect().center()).x() > center.x()
    window.view.fit_all()
    visible = window.view.mapToScene(window.view.viewport().rect()).boundingRect()
    assert all(visible.contains(window.scene.nodes[i].sceneBoundingRect()) for i in ids)


def test_middle_drag_pans(qtbot: Any, window: Any, add: Any) -> None:
    add("image.invert", 0, 0)
    view = window.view
    c0 = view.mapToScene(view.viewport().rect().center())
    vp = view.viewport()
    QTest.mousePress(
        vp, Qt.MouseButton.MiddleButton, Qt.KeyboardModifier.NoModifier, QPoint(400, 300)
    )
    QTest.mouseMove(vp, QPoint(300, 250))
    QTest.mouseRelease(
        vp, Qt.MouseButton.MiddleButton, Qt.KeyboardModifier.NoModifier, QPoint(300, 250)
    )
    c1 = view.mapToScene(view.viewport().rect().center())
    assert c1.x() > c0.x() and c1.y() > c0.y()


def test_ports_are_coloured_by_type_and_badges_follow_status(window: Any, add: Any) -> None:
    nid = add("rgbd.make", 0, 0)
    item = window.scene.nodes[nid]
    assert item.inputs["image"].color == QColor(Image.color)
    assert item.inputs["depth"].color == QColor(Depth.color)
    assert port_color("rgbd") == item.outputs["rgbd"].color
    assert item.inputs["camera"].optional
    window.scene.set_status(nid, "running", 0.4, "halfway")
    assert item.status == "running" and item.progress == 0.4
    window.scene.set_status(nid, "failed", message="bad depth")
    assert "bad depth" in item.toolTip()
    image = window.view.grab().toImage()
    assert not image.isNull()


def test_unknown_node_types_are_kept_and_marked(window: Any, tmp_path: Any) -> None:
    text = (
        '{"format": "fathom.graph", "version": 1, "nodes": ['
        '{"id": "x", "type": "plugin.missing", "params": {"k": 1}},'
        '{"id": "inv", "type": "image.invert"}],'
        '"edges": [{"from": ["x", "out"], "to": ["inv", "image"]}]}'
    )
    path = tmp_path / "u.json"
    path.write_text(text)
    assert window.files.open(path)
    item = window.scene.nodes["x"]
    assert not item.known and "unknown" in item.toolTip()
    assert len(window.scene.edges) == 1
    assert window.files.save()
    assert '"plugin.missing"' in path.read_text() and '"k": 1' in path.read_text()


def test_double_click_on_a_frame_title_renames_it(
    qtbot: Any, window: Any, add: Any, monkeypatch: Any
) -> None:
    from PySide6.QtWidgets import QInputDialog

    a = add("image.constant", 0, 0)
    gid = window.scene.add_frame("Frame", around=[a])
    window.view.fit_all()
    monkeypatch.setattr(QInputDialog, "getText", lambda *args, **kw: ("Sources", True))
    title = window.scene.groups[gid].scenePos() + QPointF(40, 12)
    QTest.mouseDClick(
        window.view.viewport(),
        Qt.MouseButton.LeftButton,
        Qt.KeyboardModifier.NoModifier,
        vp_point(window, title),
    )
    assert window.doc.entry("groups", gid)["title"] == "Sources"
    assert window.scene.groups[gid].title == "Sources"
    window.doc.undo_stack.undo()
    assert window.scene.groups[gid].title == "Frame"


def test_dragging_nodes_moves_the_selection_in_one_undo_step(
    qtbot: Any, window: Any, add: Any
) -> None:
    a = add("image.constant", 0, 0)
    b = add("image.invert", 300, 0)
    window.view.fit_all()
    window.scene.select_nodes([a, b])
    window.doc.undo_stack.clear()
    grab = window.scene.nodes[a].scenePos() + QPointF(60, 12)  # the title bar
    mouse_drag(window, grab, grab + QPointF(80, 120))
    (ax, ay), (bx, by) = window.doc.node_pos(a), window.doc.node_pos(b)
    assert ax > 20 and ay > 40 and (bx - 300, by) == (ax, ay)
    assert window.doc.undo_stack.count() == 1
    window.doc.undo_stack.undo()
    assert window.scene.nodes[b].pos() == QPointF(300, 0)


def test_wheel_zooms_about_the_cursor(window: Any, add: Any) -> None:
    from PySide6.QtCore import QPoint as P
    from PySide6.QtGui import QWheelEvent

    add("image.invert", 0, 0)
    view = window.view
    z0 = view.zoom()
    at = QPointF(200, 150)
    under = view.mapToScene(at.toPoint())
    event = QWheelEvent(
        at,
        view.viewport().mapToGlobal(at),
        P(0, 0),
        P(0, 240),
        Qt.MouseButton.NoButton,
        Qt.KeyboardModifier.NoModifier,
        Qt.ScrollPhase.NoScrollPhase,
        False,
    )
    view.wheelEvent(event)
    assert abs(view.zoom() - min(3.0, z0 * 1.15**2)) < 1e-6
    after = view.mapToScene(at.toPoint())
    assert (after - under).manhattanLength() < 3  # the point under the cursor stays put
