"""Subgraphs from the editor, as a user makes them: select nodes, Ctrl+Shift+G, double-click to
edit the inside, Esc to go back, expose a parameter, save to the library; runs compared with the
graph before the subgraph existed."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PySide6.QtCore import QPointF, Qt
from PySide6.QtTest import QTest

from fathom.app.commands import SetParam
from fathom.engine.executor import Executor
from fathom.engine.graph import Graph
from fathom.engine.graphfile import SubgraphLibrary

CTRL_SHIFT = Qt.KeyboardModifier.ControlModifier | Qt.KeyboardModifier.ShiftModifier


@pytest.fixture(autouse=True)
def library(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """The user's library folder, set before the window (and its Document) is made."""
    folder = tmp_path / "library"
    monkeypatch.setenv("FATHOM_SUBGRAPH_PATH", str(folder))
    return folder


@pytest.fixture
def chain(window: Any, add: Any, wire: Any) -> dict[str, str]:
    """constant → adjust (gamma) → invert → adjust (outside) → save."""
    ids = {
        "c": add("image.constant", 0, 0, width=8, height=6, color=[0.8, 0.4, 0.2, 1.0]),
        "adj": add("image.adjust", 250, 0, gamma=2.2),
        "inv": add("image.invert", 500, 0),
        "out": add("image.adjust", 750, 0, saturation=0.5),
        "save": add("image.save", 1000, 0, path="x.png"),
    }
    wire(ids["c"], "image", ids["adj"], "image")
    wire(ids["adj"], "image", ids["inv"], "image")
    wire(ids["inv"], "image", ids["out"], "image")
    wire(ids["out"], "image", ids["save"], "image")
    window.doc.undo_stack.clear()
    return ids


def doc_text(window: Any) -> str:
    return json.dumps(window.doc.document(), sort_keys=True)


def result(window: Any, run_and_wait: Any, node: str) -> np.ndarray:
    """A fresh run's output of ``node`` (the cache cleared: the run must compute it)."""
    window.executor.cache.clear()
    run_and_wait()
    return np.array(window.session.outputs[node]["image"].data)


def focus_canvas(qtbot: Any, window: Any) -> None:
    window.view.setFocus()
    qtbot.waitUntil(window.view.hasFocus)


def make_tone(qtbot: Any, window: Any, ids: dict[str, str], answers: list[str]) -> str:
    """Select adjust and invert, press Ctrl+Shift+G, answer the name dialog."""
    asked: list[tuple[str, str]] = []

    def ask(suggestion: str, error: str) -> str | None:
        asked.append((suggestion, error))
        return answers.pop(0) if answers else None

    window.subgraphs.ask_name = ask
    window.scene.select_nodes([ids["adj"], ids["inv"]])
    focus_canvas(qtbot, window)
    QTest.keyClick(window.view, Qt.Key.Key_G, CTRL_SHIFT)
    inst = [n for n, i in window.doc.graph.nodes.items() if i.type.startswith("subgraph.")]
    return inst[0] if inst else ""


def double_click_node(window: Any, node_id: str) -> None:
    item = window.scene.nodes[node_id]
    at = item.mapToScene(QPointF(item.boundingRect().center().x(), 10))
    window.view.centerOn(at)
    QTest.mouseDClick(
        window.view.viewport(),
        Qt.MouseButton.LeftButton,
        Qt.KeyboardModifier.NoModifier,
        window.view.mapFromScene(at),
    )


def test_make_subgraph_runs_the_same_and_undo_restores_the_nodes(
    qtbot: Any, window: Any, chain: dict[str, str], run_and_wait: Any
) -> None:
    before_run = result(window, run_and_wait, chain["out"])
    before = doc_text(window)

    inst = make_tone(qtbot, window, chain, ["tone"])
    g = window.doc.graph
    assert inst and g.nodes[inst].type == "subgraph.tone"
    assert chain["adj"] not in g.nodes and chain["inv"] not in g.nodes
    assert {(e.src, e.dst) for e in g.edges} == {
        (chain["c"], inst),
        (inst, chain["out"]),
        (chain["out"], chain["save"]),
    }
    assert set(g.subgraphs["tone"].graph.nodes) == {chain["adj"], chain["inv"]}
    assert window.doc.undo_stack.count() == 1  # one undo step

    np.testing.assert_array_equal(result(window, run_and_wait, chain["out"]), before_run)

    focus_canvas(qtbot, window)
    QTest.keyClick(window.view, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    assert doc_text(window) == before
    assert set(window.scene.nodes) == set(chain.values())
    window.doc.undo_stack.redo()
    assert window.doc.graph.nodes[inst].type == "subgraph.tone"
    assert inst in window.scene.nodes


def test_a_bad_name_is_refused_with_the_rule(
    qtbot: Any, window: Any, chain: dict[str, str]
) -> None:
    notices: list[str] = []
    window.subgraphs.notice.connect(lambda text, ms: notices.append(text))
    before = doc_text(window)
    assert make_tone(qtbot, window, chain, ["My Blur"]) == ""
    assert doc_text(window) == before
    assert window.doc.undo_stack.count() == 0
    assert any("lowercase letters" in n for n in notices)
    # The second answer after the refusal is taken.
    assert make_tone(qtbot, window, chain, ["Bad!", "my_blur"])
    assert "my_blur" in window.doc.graph.subgraphs


def test_edit_inside_changes_the_run_and_undo_goes_back_inside(
    qtbot: Any, window: Any, chain: dict[str, str], run_and_wait: Any
) -> None:
    inst = make_tone(qtbot, window, chain, ["tone"])
    before_edit = result(window, run_and_wait, chain["out"])

    double_click_node(window, inst)
    assert window.doc.trail == [(inst, "tone")]
    assert window.breadcrumb.isVisible() and window.breadcrumb.text() == "Main › tone"
    assert set(window.scene.nodes) == {chain["adj"], chain["inv"]}
    window.doc.undo_stack.push(SetParam(window.doc, chain["adj"], "gamma", 1.0))
    assert window.doc.root.subgraphs["tone"].graph.nodes[chain["adj"]].params["gamma"] == 1.0

    focus_canvas(qtbot, window)
    QTest.keyClick(window.view, Qt.Key.Key_Escape)
    assert window.doc.trail == [] and not window.breadcrumb.isVisible()
    assert window.scene.selected_node_ids() == [inst]

    after_edit = result(window, run_and_wait, chain["out"])
    assert not np.allclose(after_edit, before_edit)
    # The same as the original graph run with gamma 1.0.
    window.doc.undo_stack.undo()  # undo goes inside, where the edit was made
    assert window.doc.trail == [(inst, "tone")]
    assert window.doc.graph.nodes[chain["adj"]].params["gamma"] == 2.2
    window.breadcrumb.links[0].click()  # "Main"
    assert window.doc.trail == []
    window.doc.undo_stack.undo()  # the subgraph itself, undone at the top level
    window.doc.undo_stack.push(SetParam(window.doc, chain["adj"], "gamma", 1.0))
    np.testing.assert_allclose(result(window, run_and_wait, chain["out"]), after_edit)


def test_an_exposed_parameter_is_set_on_the_subgraph_node(
    qtbot: Any, window: Any, chain: dict[str, str], run_and_wait: Any
) -> None:
    inst = make_tone(qtbot, window, chain, ["tone"])
    assert window.subgraphs.open_node(inst)
    window.scene.select_nodes([chain["adj"]])
    rows_seen: list[Any] = []

    def ask(title: str, rows: list[Any]) -> dict[str, str | None]:
        rows_seen.extend(rows)
        return {"gamma": "tone_gamma"}

    window.subgraphs.ask_exposed = ask
    expose = next(
        a for a in window.subgraphs.inside_actions if "Expose" in a.text().replace("&", "")
    )
    assert expose.isEnabled()
    expose.trigger()
    assert {r.param for r in rows_seen} >= {"gamma", "brightness"}
    window.subgraphs.up()
    assert not expose.isEnabled()

    cls = window.doc.node_class(inst)
    assert cls.param("tone_gamma").default == 2.2
    window.scene.select_nodes([inst])
    assert "tone_gamma" in window.inspector.widgets
    window.doc.undo_stack.push(SetParam(window.doc, inst, "tone_gamma", 1.0))
    exposed_run = result(window, run_and_wait, chain["out"])

    # Un-expose: the node loses the parameter, and the value it set; undo brings both back.
    assert window.subgraphs.open_node(inst)
    window.scene.select_nodes([chain["adj"]])
    window.subgraphs.ask_exposed = lambda title, rows: {"gamma": None}
    expose.trigger()
    window.subgraphs.up()
    assert window.doc.node_class(inst).param("tone_gamma") is None
    assert "tone_gamma" not in window.doc.graph.nodes[inst].params
    window.doc.undo_stack.undo()
    assert window.doc.trail == [(inst, "tone")]
    window.subgraphs.up()
    assert window.doc.graph.nodes[inst].params["tone_gamma"] == 1.0

    # The original graph with gamma 1.0 computes what the exposed parameter gave.
    for _ in range(4):
        window.doc.undo_stack.undo()
    assert window.doc.trail == [] and chain["adj"] in window.doc.graph.nodes
    window.doc.undo_stack.push(SetParam(window.doc, chain["adj"], "gamma", 1.0))
    np.testing.assert_allclose(result(window, run_and_wait, chain["out"]), exposed_run)


def test_save_to_library_then_run_it_from_the_library(
    qtbot: Any, window: Any, chain: dict[str, str], run_and_wait: Any, library: Path, tmp_path: Path
) -> None:
    inst = make_tone(qtbot, window, chain, ["tone"])
    expected = result(window, run_and_wait, chain["out"])
    window.scene.select_nodes([inst])
    menu = next(a.menu() for a in window.menuBar().actions() if a.text() == "&Edit")
    next(a for a in menu.actions() if "Library" in a.text()).trigger()
    assert (library / "tone.json").exists()

    lib = SubgraphLibrary([library], registry=window.registry)
    d = lib("tone")
    assert d is not None and set(d.graph.nodes) == {chain["adj"], chain["inv"]}
    assert "tone" in window.doc.subgraph_names()

    # A graph that holds no definition of its own runs the library's.
    g = Graph()
    g.add_node("image.constant", "c", {"width": 8, "height": 6, "color": [0.8, 0.4, 0.2, 1.0]})
    g.add_node("subgraph.tone", "t")
    g.add_node("image.adjust", "out", {"saturation": 0.5})
    g.connect("c", "image", "t", d.inputs[0].name)
    g.connect("t", d.outputs[0].name, "out", "image")
    ex = Executor(window.registry, library=lib)
    values = ex.run(g, ["out"]).values["out"]["image"].data
    np.testing.assert_allclose(values, expected)


def test_badges_show_inside_the_subgraph_and_survive_going_back(
    qtbot: Any, window: Any, chain: dict[str, str], run_and_wait: Any
) -> None:
    inst = make_tone(qtbot, window, chain, ["tone"])
    result(window, run_and_wait, chain["out"])
    done = window.scene.nodes[chain["out"]].status
    assert done not in ("idle", "skipped") and window.scene.nodes[inst].status == done

    assert window.subgraphs.open_node(inst)
    assert window.scene.nodes[chain["adj"]].status == done  # the run's "tone1/adj"
    assert window.scene.nodes[chain["inv"]].status == done
    window.subgraphs.up()
    assert window.scene.nodes[inst].status == done
    assert window.scene.nodes[chain["out"]].status == done


def test_save_inside_a_subgraph_writes_the_whole_graph(
    qtbot: Any, window: Any, chain: dict[str, str], tmp_path: Path
) -> None:
    from fathom.engine.graphfile import load

    inst = make_tone(qtbot, window, chain, ["tone"])
    assert window.subgraphs.open_node(inst)
    window.doc.undo_stack.push(SetParam(window.doc, chain["adj"], "gamma", 1.5))
    path = tmp_path / "g.json"
    window.files.ask_save_path = lambda *args: path
    focus_canvas(qtbot, window)
    QTest.keyClick(window.view, Qt.Key.Key_S, Qt.KeyboardModifier.ControlModifier)
    g = load(path, window.registry)
    assert set(g.nodes) == {chain["c"], inst, chain["out"], chain["save"]}
    assert g.subgraphs["tone"].graph.nodes[chain["adj"]].params["gamma"] == 1.5


def test_right_click_inside_offers_expose_and_up(
    qtbot: Any, window: Any, chain: dict[str, str]
) -> None:
    from PySide6.QtGui import QContextMenuEvent
    from PySide6.QtWidgets import QApplication

    inst = make_tone(qtbot, window, chain, ["tone"])
    assert window.subgraphs.open_node(inst)
    shown: list[list[str]] = []
    chosen = "Expose Parameters…"

    def show(menu: Any, at: Any) -> None:
        shown.append([a.text() for a in menu.actions()])
        next(a for a in menu.actions() if a.text() == chosen).trigger()

    window.subgraphs.show_menu = show
    window.subgraphs.ask_exposed = lambda title, rows: {"gamma": "gamma"}
    item = window.scene.nodes[chain["adj"]]
    window.scene.clearSelection()
    vp = window.view.mapFromScene(item.mapToScene(item.boundingRect().center()))
    viewport = window.view.viewport()
    event = QContextMenuEvent(QContextMenuEvent.Reason.Mouse, vp, viewport.mapToGlobal(vp))
    QApplication.sendEvent(viewport, event)

    assert shown and "Up to Enclosing Graph" in shown[0]
    assert window.scene.selected_node_ids() == [chain["adj"]]  # the clicked node
    assert [x.name for x in window.doc.definition().params] == ["gamma"]
    chosen = "Up to Enclosing Graph"
    QApplication.sendEvent(
        viewport,
        QContextMenuEvent(QContextMenuEvent.Reason.Mouse, vp, viewport.mapToGlobal(vp)),
    )
    assert window.doc.trail == []
    assert window.doc.node_class(inst).param("gamma").default == 2.2


def test_the_subgraph_node_previews_its_exposed_output(
    qtbot: Any, window: Any, chain: dict[str, str], run_and_wait: Any
) -> None:
    result(window, run_and_wait, chain["out"])
    inverted = np.array(window.session.outputs[chain["inv"]]["image"].data)
    inst = make_tone(qtbot, window, chain, ["tone"])
    result(window, run_and_wait, chain["out"])
    (name,) = window.session.outputs[inst]
    # What the subgraph node hands on is what the invert node inside it made.
    np.testing.assert_array_equal(window.session.outputs[inst][name].data, inverted)
    window.scene.select_nodes([inst])
    assert window.previews.show_output(inst)


def test_keys_open_and_leave_nested_subgraphs(
    qtbot: Any, window: Any, chain: dict[str, str], run_and_wait: Any
) -> None:
    expected = result(window, run_and_wait, chain["out"])
    inst = make_tone(qtbot, window, chain, ["tone"])
    window.scene.select_nodes([inst])
    focus_canvas(qtbot, window)
    QTest.keyClick(window.view, Qt.Key.Key_Return)  # Edit → Open Subgraph
    assert window.doc.trail == [(inst, "tone")]

    # A subgraph inside the subgraph, made and opened the same way.
    window.subgraphs.ask_name = lambda suggestion, error: "flip"
    window.scene.select_nodes([chain["inv"]])
    focus_canvas(qtbot, window)
    QTest.keyClick(window.view, Qt.Key.Key_G, CTRL_SHIFT)
    (inner,) = [n for n, i in window.doc.graph.nodes.items() if i.type == "subgraph.flip"]
    QTest.keyClick(window.view, Qt.Key.Key_Return)
    assert window.doc.trail == [(inst, "tone"), (inner, "flip")]
    assert window.breadcrumb.text() == "Main › tone › flip"
    assert set(window.scene.nodes) == {chain["inv"]}

    focus_canvas(qtbot, window)
    QTest.keyClick(window.view, Qt.Key.Key_Up, Qt.KeyboardModifier.AltModifier)
    assert window.doc.trail == [(inst, "tone")]
    QTest.keyClick(window.view, Qt.Key.Key_Escape)
    assert window.doc.trail == []
    np.testing.assert_array_equal(result(window, run_and_wait, chain["out"]), expected)


def test_live_mode_reruns_after_an_edit_inside(
    qtbot: Any, window: Any, chain: dict[str, str], run_and_wait: Any
) -> None:
    inst = make_tone(qtbot, window, chain, ["tone"])
    before = result(window, run_and_wait, chain["out"])
    assert window.subgraphs.open_node(inst)
    with qtbot.waitSignal(window.runner.finished, timeout=20_000):
        window.runs.set_live(True)
    with qtbot.waitSignal(window.runner.finished, timeout=20_000):
        window.doc.undo_stack.push(SetParam(window.doc, chain["adj"], "gamma", 1.0))
    window.runs.set_live(False)
    assert not np.allclose(window.session.outputs[chain["out"]]["image"].data, before)


def test_right_click_a_parameter_in_the_inspector_exposes_and_hides_it(
    qtbot: Any, window: Any, chain: dict[str, str]
) -> None:
    from PySide6.QtCore import QPoint
    from PySide6.QtGui import QContextMenuEvent
    from PySide6.QtWidgets import QApplication, QLabel

    inst = make_tone(qtbot, window, chain, ["tone"])
    assert window.subgraphs.open_node(inst)
    window.scene.select_nodes([chain["adj"]])
    offered: list[str] = []

    def show(menu: Any, at: Any) -> None:
        offered.append(menu.actions()[0].text())
        menu.actions()[0].trigger()

    window.subgraphs.show_menu = show

    def right_click_label(text: str) -> None:
        label = next(w for w in window.inspector.findChildren(QLabel) if w.text() == text)
        at = QPoint(2, 2)
        event = QContextMenuEvent(QContextMenuEvent.Reason.Mouse, at, label.mapToGlobal(at))
        QApplication.sendEvent(label, event)

    right_click_label("gamma")
    assert offered == ["Expose 'gamma' on the Subgraph Node"]
    assert [(x.name, x.node, x.port) for x in window.doc.definition().params] == [
        ("gamma", chain["adj"], "gamma")
    ]
    right_click_label("gamma")
    assert offered[-1] == "Hide 'gamma' from the Subgraph Node"
    assert window.doc.definition().params == []
    window.doc.undo_stack.undo()  # the hide, undone
    assert [x.name for x in window.doc.definition().params] == ["gamma"]


def test_the_inside_keeps_its_layout_through_save_and_open(
    qtbot: Any, window: Any, chain: dict[str, str], tmp_path: Path
) -> None:
    inst = make_tone(qtbot, window, chain, ["tone"])
    assert window.subgraphs.open_node(inst)
    inside = {n: window.doc.node_pos(n) for n in (chain["adj"], chain["inv"])}
    assert all(inside.values())
    window.subgraphs.up()
    path = tmp_path / "g.json"
    assert window.files.save_as(path)
    window.doc.set_graph(Graph())
    assert window.files.open(path)
    assert window.subgraphs.open_node(inst)
    assert {n: window.doc.node_pos(n) for n in inside} == inside
