"""Where things land on the canvas: laid-out graphs without overlaps, Ctrl+D copies clear of
every node, wire-drop nodes inside the view, frame titles above their neighbours, and docks
that keep their width (and the fit that shows every node) whatever is selected."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import numpy as np
from gui_input import drag_on_canvas
from PySide6.QtCore import QPointF, QRectF, Qt
from PySide6.QtGui import QTransform
from PySide6.QtTest import QTest

from fathom.app.editor.frame_item import TITLE_H
from fathom.engine.resources import example_graphs


def _visible(window: Any) -> QRectF:
    view = window.view
    return view.mapToScene(view.viewport().rect()).boundingRect()


def test_laid_out_examples_have_no_overlapping_nodes(qtbot: Any, window: Any) -> None:
    """The bundled examples carry no positions: the layout must give every node (with its
    on-node parameters) room of its own."""
    for name in example_graphs():
        assert window.files.open(example_graphs()[name], ask=False)
        rects = {n: i.sceneBoundingRect() for n, i in window.scene.nodes.items()}
        for (a, ra), (b, rb) in itertools.combinations(rects.items(), 2):
            assert not ra.intersects(rb), (name, a, b)


def _fan(tmp_path: Path, registry: Any) -> Path:
    """A graph without positions: one source feeding three nodes, laid out in one column."""
    from fathom.engine.graph import Edge, Graph, NodeInstance
    from fathom.engine.graphfile import dumps, to_document

    graph = Graph()
    graph.nodes = {
        "a": NodeInstance("a", "image.constant", {"width": 8, "height": 8}),
        "b": NodeInstance("b", "image.invert", {}),
        "c": NodeInstance("c", "image.invert", {}),
        "d": NodeInstance("d", "image.invert", {}),
    }
    graph.edges = [Edge("a", "image", n, "image") for n in "bcd"]
    path = tmp_path / "fan.json"
    path.write_text(dumps(to_document(graph, registry)))
    return path


def test_laid_out_nodes_stay_apart_once_a_run_adds_thumbnails(
    qtbot: Any, window: Any, run_and_wait: Any, tmp_path: Path
) -> None:
    """An automatic layout follows the nodes' sizes: the thumbnails a run adds push the nodes
    apart, and the view fits again so every node stays in sight."""
    assert window.files.open(_fan(tmp_path, window.registry), ask=False)
    before = window.doc.node_pos("d")
    assert run_and_wait(["b", "c", "d"]).error is None
    qtbot.waitUntil(lambda: window.scene.nodes["d"].height > 150, timeout=5000)
    qtbot.waitUntil(lambda: window.doc.node_pos("d") != before, timeout=5000)
    rects = {n: i.sceneBoundingRect() for n, i in window.scene.nodes.items()}
    for (a, ra), (b, rb) in itertools.combinations(rects.items(), 2):
        assert not ra.intersects(rb), (a, b)
    shown = _visible(window)
    assert all(shown.contains(r) for r in rects.values())
    assert not window.doc.modified  # the layout was never the user's


def _overlaps(window: Any) -> list[tuple[str, str]]:
    rects = {n: i.sceneBoundingRect() for n, i in window.scene.nodes.items()}
    return [
        (a, b) for (a, ra), (b, rb) in itertools.combinations(rects.items(), 2) if ra.intersects(rb)
    ]


def _give_thumbnails(qtbot: Any, window: Any) -> None:
    """What a run gives the canvas: a thumbnail on every node with a picture port (the rule of
    ``app.editor.thumbnail``), through the same maker, then a moment for the layout to follow."""
    from fathom.app.editor.thumbnail import DRAWN
    from fathom.engine.types import ALL_TYPES, Image

    nodes = [
        n
        for n, item in window.scene.nodes.items()
        if any(issubclass(ALL_TYPES.get(p.type_id, type(None)), DRAWN) for p in item.ports())
    ]
    assert nodes
    frame = Image(np.full((90, 160, 3), 0.5, np.float32))
    maker, bodies = window.scene.bodies.thumbs, window.scene.bodies.bodies
    maker.request({n: frame for n in nodes})
    qtbot.waitUntil(lambda: all(bodies[n].thumb is not None for n in nodes), timeout=5000)
    qtbot.wait(50)


def test_an_example_saved_and_reopened_still_makes_room_for_thumbnails(
    qtbot: Any, window: Any, tmp_path: Path
) -> None:
    """The bundled video example, opened, saved under a new name (its positions now in the
    file) and reopened: nobody placed those nodes, so once a run's thumbnails appear the layout
    follows them and no two nodes overlap, as when the example itself is open. Saved again
    after the run and reopened, it is still the automatic layout."""
    assert window.files.open(example_graphs()["video_depth"], ask=False)
    _give_thumbnails(qtbot, window)
    assert _overlaps(window) == []
    assert window.files.open(example_graphs()["video_depth"], ask=False)
    laid_out = {n: window.doc.node_pos(n) for n in window.doc.graph.nodes}
    assert window.files.save_as(tmp_path / "mine.json")
    assert window.files.open(tmp_path / "mine.json", ask=False)
    assert {n: window.doc.node_pos(n) for n in window.doc.graph.nodes} == laid_out
    _give_thumbnails(qtbot, window)
    assert _overlaps(window) == []
    assert not window.doc.modified  # the layout was never the user's
    after_run = {n: window.doc.node_pos(n) for n in window.doc.graph.nodes}
    assert after_run != laid_out
    assert window.files.save(), "saved with the thumbnails' room"
    assert window.files.open(tmp_path / "mine.json", ask=False)
    assert {n: window.doc.node_pos(n) for n in window.doc.graph.nodes} == laid_out
    _give_thumbnails(qtbot, window)
    assert {n: window.doc.node_pos(n) for n in window.doc.graph.nodes} == after_run


def test_nodes_the_user_placed_stay_where_the_file_has_them(
    qtbot: Any, window: Any, tmp_path: Path
) -> None:
    """One node moved before saving: the file holds the user's layout, which thumbnails never
    rearrange."""
    from fathom.app.commands import Move

    assert window.files.open(example_graphs()["video_depth"], ask=False)
    nid = next(iter(window.doc.graph.nodes))
    old = window.doc.node_pos(nid)
    assert old is not None
    window.doc.undo_stack.push(Move(window.doc, {nid: (old, (old[0] - 300, old[1]))}))
    assert window.files.save_as(tmp_path / "placed.json")
    assert window.files.open(tmp_path / "placed.json", ask=False)
    placed = {n: window.doc.node_pos(n) for n in window.doc.graph.nodes}
    _give_thumbnails(qtbot, window)
    assert {n: window.doc.node_pos(n) for n in window.doc.graph.nodes} == placed


def test_a_layout_the_user_changed_is_left_alone(
    qtbot: Any, window: Any, run_and_wait: Any, tmp_path: Path
) -> None:
    from fathom.app.commands import Move

    assert window.files.open(_fan(tmp_path, window.registry), ask=False)
    old = window.doc.node_pos("a")
    assert old is not None
    window.doc.undo_stack.push(Move(window.doc, {"a": (old, (old[0] - 100, old[1]))}))
    placed = {n: window.doc.node_pos(n) for n in window.doc.graph.nodes}
    assert run_and_wait(["b", "c", "d"]).error is None
    qtbot.waitUntil(lambda: window.scene.nodes["d"].height > 150, timeout=5000)
    qtbot.wait(50)
    assert {n: window.doc.node_pos(n) for n in window.doc.graph.nodes} == placed


def test_ctrl_d_puts_the_copy_clear_of_every_node(qtbot: Any, window: Any, add: Any) -> None:
    a = add("image.invert", 0, 0)
    item = window.scene.nodes[a]
    # A node just where a small offset (or one node height) would put the copy.
    add("image.invert", 40, 40 + item.sceneBoundingRect().height())
    window.view.fit_all()
    window.scene.select_nodes([a])
    window.view.setFocus()
    QTest.keyClick(window.view, Qt.Key.Key_D, Qt.KeyboardModifier.ControlModifier)
    (copy,) = window.scene.selected_node_ids()
    assert copy != a and window.doc.graph.nodes[copy].type == "image.invert"
    new = window.scene.nodes[copy].sceneBoundingRect()
    for nid, other in window.scene.nodes.items():
        if nid != copy:
            assert not new.intersects(other.sceneBoundingRect()), nid
    # Clearly offset, and shown.
    moved = window.scene.nodes[copy].pos() - item.pos()
    assert abs(moved.y()) >= item.height or abs(moved.x()) >= item.boundingRect().width()
    assert _visible(window).contains(new)
    window.doc.undo_stack.undo()
    assert copy not in window.doc.graph.nodes


def test_a_node_added_from_a_wire_drop_lands_inside_the_view(
    qtbot: Any, window: Any, add: Any
) -> None:
    src = add("depth.load", 0, 0)
    window.view.resetTransform()
    window.view.centerOn(window.scene.nodes[src])
    view_rect = _visible(window)
    port = window.scene.nodes[src].outputs["depth"]
    # Drop near the bottom-right corner of the view: a node placed there would hang off it.
    drop = QPointF(view_rect.right() - 30, view_rect.bottom() - 20)
    drag_on_canvas(window, port.scene_center(), drop)
    pal = window.palette
    assert pal.isVisible()
    qtbot.keyClicks(pal.search, "colorize")
    qtbot.keyClick(pal.search, Qt.Key.Key_Return)
    (new,) = [n for n in window.doc.graph.nodes if n != src]
    rect = window.scene.nodes[new].sceneBoundingRect()
    assert _visible(window).contains(rect), (rect, _visible(window))
    assert [(e.src, e.dst) for e in window.doc.graph.edges] == [(src, new)]
    window.doc.undo_stack.undo()  # one step: the node, its wire and its placement
    assert list(window.doc.graph.nodes) == [src]


def test_a_frame_title_stays_above_a_neighbouring_node(
    qtbot: Any, window: Any, add: Any, monkeypatch: Any
) -> None:
    inside = add("image.invert", 0, 0)
    add("image.invert", 0, -90)  # a neighbour just above, where the title bar goes
    window.view.fit_all()
    window.scene.select_nodes([inside])
    window.view.setFocus()
    QTest.keyClick(window.view, Qt.Key.Key_G, Qt.KeyboardModifier.ControlModifier)
    (frame,) = window.scene.groups.values()
    title = frame.scene_rect()
    title.setHeight(TITLE_H)
    for x in (title.left() + 20, title.center().x()):
        top = window.scene.itemAt(QPointF(x, title.center().y()), QTransform())
        assert top is not None and top.data(0) == ("frame title", frame.entry_id), top
    # Clicks still reach the frame: a double-click on its title renames it.
    from fathom.app import editing

    monkeypatch.setattr(editing.QInputDialog, "getText", lambda *a, **k: ("Inputs", True))
    point = window.view.mapFromScene(QPointF(title.left() + 20, title.center().y()))
    QTest.mouseDClick(window.view.viewport(), Qt.MouseButton.LeftButton, pos=point)
    assert window.doc.entry("groups", frame.entry_id)["title"] == "Inputs"
    assert frame.title_item.scene() is window.scene
    window.doc.undo_stack.undo()
    window.doc.undo_stack.undo()  # the frame is gone, and its title with it
    assert not window.scene.groups and frame.title_item.scene() is None


def _write_inputs(folder: Path) -> tuple[Path, Path]:
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    rgb = folder / "rgb.png"
    Image.fromarray((np.random.default_rng(0).random((48, 64, 3)) * 255).astype("uint8")).save(rgb)
    depth = folder / "depth.npy"
    np.save(depth, np.linspace(1.0, 3.0, 48 * 64, dtype=np.float32).reshape(48, 64))
    return rgb, depth


def test_docks_keep_their_width_and_the_fit_shows_every_node(
    qtbot: Any, window: Any, add: Any, wire: Any, run_and_wait: Any, tmp_path: Path
) -> None:
    """Selecting nodes whose previews differ (image, depth, RGBD) must not resize the docks,
    which would squeeze the canvas and clip the right-most node."""
    rgb, depth = _write_inputs(tmp_path / "in")
    img = add("image.load", 0, 0, path=str(rgb))
    dep = add("depth.load", 0, 200, path=str(depth))
    rgbd = add("rgbd.make", 300, 0)
    split = add("rgbd.split", 600, 0)
    colour = add("depth.colorize", 900, 100)
    assert wire(img, "image", rgbd, "image") is None
    assert wire(dep, "depth", rgbd, "depth") is None
    assert wire(rgbd, "rgbd", split, "rgbd") is None
    assert wire(split, "depth", colour, "depth") is None
    qtbot.wait(50)
    window.view.fit_all()
    widths = (window.inspector_dock.width(), window.preview.width())
    outcome = run_and_wait()
    assert outcome.error is None and not outcome.problems and outcome.result is not None
    for nid in (img, dep, rgbd, split, colour, rgbd, img):
        window.scene.select_nodes([nid])
        qtbot.wait(150)
        assert (window.inspector_dock.width(), window.preview.width()) == widths, nid
        shown = _visible(window)
        for item in window.scene.nodes.values():
            assert shown.contains(item.sceneBoundingRect()), (nid, item.node_id)
