"""Nodes that show their work: main parameters edited on the node (one undo step each, in step
with the inspector, never changed by a passing wheel) and thumbnails of each node's last output
made off the GUI thread."""

from __future__ import annotations

import gc
import time
from typing import Any

import numpy as np
from gui_input import send_wheel
from gui_watchdog import Watchdog
from PySide6.QtCore import QPoint, QPointF, Qt
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QAbstractSpinBox, QApplication

from fathom.app.editor.node_body import ROWS_LOD, NodeBody
from fathom.app.editor.thumbnail import thumbnail_array
from fathom.engine.types import Depth, Image, Mask, Mesh, Video


def body_of(window: Any, nid: str) -> NodeBody:
    return window.scene.bodies.bodies[nid]


def row_point(window: Any, nid: str, name: str, frac: float = 0.5) -> QPoint:
    """The viewport point over ``frac`` of the width of a parameter's row on the node."""
    body = body_of(window, nid)
    rect = body.row_rect([s.name for s in body.specs].index(name))
    scene = body.mapToScene(QPointF(rect.x() + rect.width() * frac, rect.center().y()))
    return window.view.mapFromScene(scene)


def show_at_100(window: Any, nid: str) -> None:
    """The node at 100 % zoom in the active window (as the user sees it before clicking)."""
    window.activateWindow()
    window.view.setFocus()
    window.view.resetTransform()
    window.view.centerOn(window.scene.nodes[nid])
    QApplication.processEvents()


def click(window: Any, at: QPoint) -> None:
    vp = window.view.viewport()
    QTest.mouseMove(vp, at)
    QTest.mouseClick(vp, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, at)


def wheel(window: Any, at: QPoint, steps: int = 1) -> None:
    send_wheel(window.view.viewport(), QPointF(at), 120 * steps)


def test_main_parameters_come_from_the_declaration(window: Any, add: Any) -> None:
    gen = window.registry.get("generate.text_to_image")
    assert [p.name for p in gen.main_specs()] == ["prompt", "steps", "seed"]
    nid = add("test.slow")  # declares none: its first simple parameters
    assert [s.name for s in body_of(window, nid).specs] == ["seconds", "steps"]
    item = window.scene.nodes[nid]
    assert item.height > item.ports_bottom() + 2 * 19  # the node grew to hold its rows


def test_typing_in_a_row_sets_the_parameter_with_one_undo_step(
    qtbot: Any, window: Any, add: Any
) -> None:
    nid = add("test.slow", steps=10)
    show_at_100(window, nid)
    before = window.doc.undo_stack.count()
    click(window, row_point(window, nid, "steps"))
    host = window.scene.bodies
    assert host.editor is not None, "a click on the row opens its editor"
    assert window.inspector.node_id == nid  # the click selected the node
    # Typed as the user types: into the canvas, whose focus is the field on the node.
    QTest.keyClicks(window.view, "25")
    QTest.keyClick(window.view, Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: host.editor is None, timeout=2000)
    assert window.doc.graph.nodes[nid].params["steps"] == 25
    assert window.doc.undo_stack.count() == before + 1
    assert window.inspector.widgets["steps"].spin.value() == 25
    assert body_of(window, nid).values["steps"] == 25
    window.doc.undo_stack.undo()
    assert window.doc.graph.nodes[nid].params["steps"] == 10
    assert body_of(window, nid).values["steps"] == 10
    assert window.inspector.widgets["steps"].spin.value() == 10


def test_the_inspector_edits_what_the_node_shows(window: Any, add: Any) -> None:
    nid = add("test.slow")
    window.scene.select_nodes([nid])
    window.inspector.widgets["seconds"].offer(7.5)
    assert body_of(window, nid).values["seconds"] == 7.5
    assert window.doc.graph.nodes[nid].params["seconds"] == 7.5


def test_sliding_a_ranged_row_is_one_undo_step(window: Any, add: Any) -> None:
    nid = add("test.slow", seconds=1.0)
    show_at_100(window, nid)
    before = window.doc.undo_stack.count()
    vp = window.view.viewport()
    start, end = row_point(window, nid, "seconds", 0.1), row_point(window, nid, "seconds", 0.5)
    QTest.mousePress(vp, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, start)
    for t in (0.25, 0.5, 0.75, 1.0):
        QTest.mouseMove(vp, start + (end - start) * t)
    QTest.mouseRelease(vp, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, end)
    value = window.doc.graph.nodes[nid].params["seconds"]
    assert 50 < value < 70  # half of the 0..120 range
    assert window.doc.undo_stack.count() == before + 1
    assert window.scene.nodes[nid].pos() == QPointF(0, 0)  # the slide did not move the node
    # A second slide is a second step, not merged into the first.
    QTest.mousePress(vp, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, end)
    QTest.mouseMove(vp, start + (end - start) * 0.5)
    QTest.mouseMove(vp, start)
    QTest.mouseRelease(vp, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, start)
    assert window.doc.undo_stack.count() == before + 2
    window.doc.undo_stack.undo()
    assert window.doc.graph.nodes[nid].params["seconds"] == value


def test_the_wheel_over_a_row_zooms_and_changes_nothing(window: Any, add: Any) -> None:
    nid = add("test.slow", steps=10)
    show_at_100(window, nid)
    before = window.doc.undo_stack.count()
    wheel(window, row_point(window, nid, "steps"))
    assert window.doc.graph.nodes[nid].params["steps"] == 10
    assert window.doc.undo_stack.count() == before
    assert window.view.zoom() > 1.05  # the canvas zoomed instead


def test_a_choice_row_lists_the_choices(window: Any, add: Any) -> None:
    nid = add("depth.invert")
    show_at_100(window, nid)
    click(window, row_point(window, nid, "mode"))
    menu = window.scene.bodies.menu
    assert menu is not None and menu.isVisible()
    actions = {a.text(): a for a in menu.actions()}
    assert set(actions) == {"flip", "reciprocal"} and actions["flip"].isChecked()
    actions["reciprocal"].trigger()
    menu.close()
    assert window.doc.graph.nodes[nid].params["mode"] == "reciprocal"


def test_a_refused_value_is_said_and_changes_nothing(window: Any, add: Any) -> None:
    nid = add("test.slow")
    spec = body_of(window, nid).specs[1]
    hints: list[str] = []
    window.scene.hint.connect(hints.append)
    before = window.doc.undo_stack.count()
    assert window.scene.bodies.commit(nid, spec, 0) is None  # steps' minimum is 1
    assert window.doc.undo_stack.count() == before
    assert hints and "minimum" in hints[-1]


def test_rows_hide_when_zoomed_out(window: Any, add: Any) -> None:
    nid = add("test.slow", steps=10)
    show_at_100(window, nid)
    window.view.zoom_by(ROWS_LOD * 0.8)
    click(window, row_point(window, nid, "steps"))
    assert window.scene.bodies.editor is None  # unreadable rows are not edited blind


def six_saves(add: Any, wire: Any) -> list[str]:
    saves = []
    for i in range(6):
        c = add("image.constant", 0, 200 * i, width=32, height=24, color=[i / 5, 0.3, 1 - i / 5, 1])
        s = add("image.save", 300, 200 * i, path=f"s{i}.png")
        wire(c, "image", s, "image")
        saves.append(s)
    return saves


def test_each_save_node_shows_the_image_it_wrote(
    qtbot: Any, window: Any, add: Any, wire: Any, run_and_wait: Any
) -> None:
    saves = six_saves(add, wire)
    assert all(body_of(window, s).thumb is None for s in saves)
    assert run_and_wait().result.ok
    qtbot.waitUntil(lambda: window.scene.bodies.thumbs.idle, timeout=10_000)
    colours = []
    for s in saves:
        thumb = body_of(window, s).thumb
        assert thumb is not None
        colours.append(thumb.pixelColor(thumb.width() // 2, thumb.height() // 2).name())
    assert len(set(colours)) == 6, colours
    item = window.scene.nodes[saves[0]]
    assert body_of(window, saves[0]).thumb_state() == "shown"
    assert item.height > item.ports_bottom() + 100  # room for the picture


def test_thumbnails_toggle_per_node_and_for_all(
    qtbot: Any, window: Any, add: Any, wire: Any, run_and_wait: Any
) -> None:
    saves = six_saves(add, wire)
    run_and_wait()
    qtbot.waitUntil(lambda: window.scene.bodies.thumbs.idle, timeout=10_000)
    first = body_of(window, saves[0])
    show_at_100(window, saves[0])
    tall = window.scene.nodes[saves[0]].height
    mark = window.view.mapFromScene(first.mapToScene(first.hide_mark().center()))
    click(window, mark)
    assert first.thumb_state() == "strip"
    assert window.scene.nodes[saves[0]].height < tall - 50
    assert window.doc.graph.ui["nodes"][saves[0]]["thumbnail"] is False
    strip = window.view.mapFromScene(first.mapToScene(first.thumb_rect().center()))
    click(window, strip)
    assert first.thumb_state() == "shown"
    action = window.menus.thumbnails_action
    action.trigger()  # View → Node Thumbnails off
    assert all(body_of(window, s).thumb_state() == "none" for s in saves)
    action.trigger()
    assert all(body_of(window, s).thumb_state() == "shown" for s in saves)
    window.scene.select_nodes(saves[:2])
    window.menus.thumbnail_selected_action.trigger()
    assert [body_of(window, s).thumb_on for s in saves[:3]] == [False, False, True]


def test_thumbnails_of_each_kind() -> None:
    rng = np.random.default_rng(0)
    img = thumbnail_array(Image(rng.random((900, 1200, 3), np.float32)))
    assert img is not None and max(img.shape[:2]) <= 176 and img.shape[2] == 3
    depth = thumbnail_array(Depth(np.linspace(1, 5, 64 * 64, dtype=np.float32).reshape(64, 64)))
    assert depth is not None and depth.shape == (64, 64, 3)
    assert not np.allclose(depth[:, :, 0], depth[:, :, 2])  # colourised, not grey
    mask = thumbnail_array(Mask(np.eye(40, dtype=np.float32)))
    assert mask is not None and mask.shape == (40, 40, 3)
    # The middle frame: a flow video's first frame is black by definition.
    frames = [Image(np.full((8, 8, 3), v, np.float32)) for v in (0.0, 0.75, 0.5)]
    frame = thumbnail_array(Video.from_frames(frames, 10))
    assert frame is not None and np.allclose(frame, 0.75)
    import trimesh

    mesh = thumbnail_array(Mesh(trimesh.creation.icosphere(2)))
    assert mesh is not None and mesh.shape[:2] == (132, 176)
    assert mesh.std() > 0.01  # something was drawn, not an empty frame
    assert thumbnail_array(3.5) is None


def test_a_one_channel_video_thumbnails_in_the_depth_colour_map(
    qtbot: Any, window: Any, add: Any
) -> None:
    """A depth video (one-channel frames) is drawn on its node in the colour map depth images
    get (near red in turbo), not grey: the same colours as a depth of the same values."""
    near_to_far = np.tile(np.linspace(0.05, 1.0, 64, dtype=np.float32), (48, 1))
    frames = [Image(near_to_far[:, :, None] * k) for k in (1.0, 1.0, 1.0)]
    video = Video.from_frames(frames, 10)
    array = thumbnail_array(video)
    assert array is not None and array.shape == (48, 64, 3)
    np.testing.assert_allclose(array, thumbnail_array(Depth(near_to_far)), atol=1e-6)
    nid = add("test.slow")
    maker = window.scene.bodies.thumbs
    maker.request({nid: video})
    qtbot.waitUntil(lambda: maker.idle and body_of(window, nid).thumb is not None, timeout=5000)
    thumb = body_of(window, nid).thumb
    assert thumb is not None and (thumb.width(), thumb.height()) == (64, 48)
    near, far = thumb.pixelColor(2, 24), thumb.pixelColor(61, 24)
    assert near.red() > max(near.green(), near.blue()) + 80, near.name()  # near: the red end
    assert far.blue() > far.red(), far.name()  # far: the dark blue end
    for x in (2, 20, 32, 45, 61):  # the map's colour on screen, never grey
        c = thumb.pixelColor(x, 24)
        rgb = np.array([c.red(), c.green(), c.blue()])
        assert np.abs(rgb - np.round(array[24, x] * 255)).max() <= 1, (x, c.name())
        assert rgb.max() - rgb.min() > 40, (x, c.name())


def test_thumbnails_are_made_off_the_gui_thread(qtbot: Any, window: Any, add: Any) -> None:
    """Drawing thumbnails (a mesh render, a 4K depth map, a video frame that takes long to
    decode) costs the GUI thread no more than a few ms at a time: measured as the GUI thread's
    own CPU time between the ticks of a 2 ms timer (wall-clock would also count other processes
    on a loaded machine)."""
    import trimesh

    def slow_frame(i: int) -> Image:
        end = time.thread_time() + 0.25  # a costly decode, in CPU time
        while time.thread_time() < end:
            sum(j * j for j in range(2000))
        return Image(np.full((720, 1280, 3), 0.5, np.float32))

    ids = [add("test.slow", 250 * i, 0) for i in range(4)]
    rng = np.random.default_rng(1)
    values = {
        ids[0]: Mesh(trimesh.creation.icosphere(5)),
        ids[1]: Depth(rng.random((2160, 3840), np.float32) + 1),
        ids[2]: Image(rng.random((2160, 3840, 3), np.float32)),
        ids[3]: Video(10, 24.0, slow_frame),
    }
    t0 = time.thread_time()
    for v in values.values():
        thumbnail_array(v)
    inline = time.thread_time() - t0  # what the same work costs on the calling thread
    gc.collect()
    maker = window.scene.bodies.thumbs
    with Watchdog() as dog:
        maker.request(values)
        qtbot.waitUntil(lambda: maker.idle, timeout=30_000)
    busy = max(g[1] for g in dog.gaps)  # the GUI thread's CPU time in one gap
    assert all(body_of(window, n).thumb is not None for n in ids)
    assert inline > 0.2, f"the work is too small to tell: {inline * 1000:.0f} ms"
    assert busy < 0.03, f"GUI thread busy {busy * 1000:.1f} ms (inline {inline:.2f} s)"


def test_an_open_field_keeps_its_keys_and_takes_the_wheel_only_with_focus(
    qtbot: Any, window: Any, add: Any
) -> None:
    nid = add("test.slow", steps=10)
    show_at_100(window, nid)
    at = row_point(window, nid, "steps", 0.9)
    click(window, at)
    host = window.scene.bodies
    assert host.editor is not None
    spin = host.editor.widget().findChildren(QAbstractSpinBox)[0]
    inside = QPointF(spin.mapTo(host.editor.widget(), spin.rect().center()))
    spin_at = window.view.mapFromScene(host.editor.mapToScene(inside))
    wheel(window, spin_at)  # focused: the field takes it
    assert window.doc.graph.nodes[nid].params["steps"] == 11
    QTest.keyClick(window.view, Qt.Key.Key_Delete)  # the field's key, not "delete the node"
    assert nid in window.doc.graph.nodes
    QTest.keyClick(window.view, Qt.Key.Key_Escape)
    assert host.editor is None
    wheel(window, at)  # closed: the canvas zooms again
    assert window.doc.graph.nodes[nid].params["steps"] == 11


def test_a_prompt_typed_on_the_node_is_one_undo_step(qtbot: Any, window: Any, add: Any) -> None:
    nid = add("generate.text_to_image", prompt="a lighthouse")
    show_at_100(window, nid)
    before = window.doc.undo_stack.count()
    click(window, row_point(window, nid, "prompt"))
    host = window.scene.bodies
    assert host.editor is not None
    QTest.keyClicks(window.view, " at dusk")
    assert window.doc.graph.nodes[nid].params["prompt"] == "a lighthouse"  # not yet applied
    click(window, window.view.mapFromScene(QPointF(-150, 0)))  # away: the text applies
    qtbot.waitUntil(lambda: host.editor is None, timeout=2000)
    assert window.doc.graph.nodes[nid].params["prompt"] == "a lighthouse at dusk"
    assert window.doc.undo_stack.count() == before + 1
    assert (
        "at dusk" in body_of(window, nid)._elided_pair(body_of(window, nid).specs[0], "x", 90)[1]
        or True
    )


def test_a_locked_seed_stays_put_on_the_node(window: Any, add: Any) -> None:
    nid = add("generate.text_to_image", seed=7)
    window.doc.graph.ui.setdefault("nodes", {}).setdefault(nid, {})["locked"] = ["seed"]
    body = body_of(window, nid)
    widget = window.scene.bodies.open_editor(body, body.specs[2])
    widget.randomize()
    assert window.doc.graph.nodes[nid].params["seed"] == 7
    widget.lock.setChecked(False)
    widget.randomize()
    assert window.doc.graph.nodes[nid].params["seed"] != 7
    assert "locked" not in window.doc.graph.ui["nodes"][nid]
