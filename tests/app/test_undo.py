"""Undo and redo of every kind of edit restore the exact document (what Save would write)."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from PySide6.QtCore import QPointF

from fathom.app.commands import Move, SetEntry, SetFlags, SetParam, SetTitle


def doc_text(window: Any) -> str:
    return json.dumps(window.doc.document(), sort_keys=True)


@pytest.fixture
def base(window: Any, add: Any, wire: Any) -> dict[str, str]:
    """constant → invert → save, plus a blend (two inputs) for rewiring; a clean undo stack."""
    ids = {
        "a": add("image.constant", 0, 0, width=8, height=8),
        "b": add("image.constant", 0, 200, width=8, height=8),
        "inv": add("image.invert", 250, 0),
        "blend": add("image.blend", 500, 100),
        "save": add("image.save", 750, 100, path="x.png"),
    }
    wire(ids["a"], "image", ids["inv"], "image")
    wire(ids["inv"], "image", ids["blend"], "base")
    wire(ids["b"], "image", ids["blend"], "overlay")
    wire(ids["blend"], "image", ids["save"], "image")
    window.doc.undo_stack.clear()
    return ids


def edits() -> dict[str, Callable[[Any, dict[str, str]], Any]]:
    """Each edit as the user makes it (scene/window actions), by kind."""

    def add_node(w: Any, ids: dict[str, str]) -> None:
        w.editing.add_node("image.resize", (100, 400))

    def add_from_wire(w: Any, ids: dict[str, str]) -> None:
        port = w.scene.nodes[ids["inv"]].outputs["image"]
        w.editing.add_node("image.adjust", (300, 300), port)

    def delete_nodes(w: Any, ids: dict[str, str]) -> None:
        w.scene.select_nodes([ids["inv"], ids["b"]])
        assert w.scene.delete_selection()

    def delete_wire(w: Any, ids: dict[str, str]) -> None:
        edge = next(e for e in w.doc.graph.edges if e.dst == ids["save"])
        w.scene.clearSelection()
        w.scene.edges[edge].setSelected(True)
        assert w.scene.delete_selection()

    def replace_wire(w: Any, ids: dict[str, str]) -> None:
        s = w.scene  # a single-valued input keeps only the newest wire
        assert (
            s.connect_ports(
                s.nodes[ids["b"]].outputs["image"], s.nodes[ids["blend"]].inputs["base"]
            )
            is None
        )

    def set_param(w: Any, ids: dict[str, str]) -> None:
        w.doc.undo_stack.push(SetParam(w.doc, ids["blend"], "opacity", 0.25))

    def move(w: Any, ids: dict[str, str]) -> None:
        w.doc.undo_stack.push(Move(w.doc, {ids["a"]: ((0, 0), (-80, 40))}))

    def bypass(w: Any, ids: dict[str, str]) -> None:
        w.doc.undo_stack.push(SetFlags(w.doc, ids["inv"], bypass=True))

    def mute(w: Any, ids: dict[str, str]) -> None:
        w.scene.select_nodes([ids["inv"], ids["b"]])
        w.editing.toggle_flag("mute")

    def rename(w: Any, ids: dict[str, str]) -> None:
        w.doc.undo_stack.push(SetTitle(w.doc, ids["inv"], "Negative"))

    def frame(w: Any, ids: dict[str, str]) -> None:
        w.scene.add_frame("Inputs", around=[ids["a"], ids["b"]])

    def comment(w: Any, ids: dict[str, str]) -> None:
        w.scene.add_comment("try gamma 2.2 here", QPointF(10, -120))

    def reroute(w: Any, ids: dict[str, str]) -> None:
        edge = next(e for e in w.doc.graph.edges if e.dst == ids["save"])
        w.scene.add_reroute(edge, QPointF(640, 300))

    def paste(w: Any, ids: dict[str, str]) -> None:
        w.scene.select_nodes([ids["a"], ids["inv"]])
        assert len(w.editing.duplicate()) == 2

    def auto_layout(w: Any, ids: dict[str, str]) -> None:
        w.scene.clearSelection()
        w.editing.auto_layout()

    return {
        f.__name__: f
        for f in (
            add_node,
            add_from_wire,
            delete_nodes,
            delete_wire,
            replace_wire,
            set_param,
            move,
            bypass,
            mute,
            rename,
            frame,
            comment,
            reroute,
            paste,
            auto_layout,
        )
    }


@pytest.mark.parametrize("kind", list(edits()))
def test_undo_redo_restores_the_document(window: Any, base: dict[str, str], kind: str) -> None:
    before = doc_text(window)
    edits()[kind](window, base)
    after = doc_text(window)
    assert after != before, f"{kind} changed nothing"
    assert window.doc.modified
    stack = window.doc.undo_stack
    assert stack.count() == 1, f"{kind} should be one undo step, got {stack.count()}"
    stack.undo()
    assert doc_text(window) == before
    assert not window.doc.modified
    # The canvas mirrors the model after undo: same nodes and wires.
    assert set(window.scene.nodes) == set(window.doc.graph.nodes)
    assert set(window.scene.edges) == set(window.doc.graph.edges)
    stack.redo()
    assert doc_text(window) == after
    assert set(window.scene.edges) == set(window.doc.graph.edges)


def test_a_slider_drag_is_one_undo_step(window: Any, base: dict[str, str]) -> None:
    window.scene.select_nodes([base["blend"]])
    slider = window.inspector.widgets["opacity"].slider
    slider.setSliderDown(True)
    for v in (100, 300, 600):
        slider.setValue(v)
    slider.setSliderDown(False)
    assert window.doc.graph.nodes[base["blend"]].params["opacity"] == pytest.approx(0.6)
    assert window.doc.undo_stack.count() == 1
    window.doc.undo_stack.undo()
    assert window.doc.graph.nodes[base["blend"]].params["opacity"] == 1.0
    # Undo flows back into the inspector's widgets.
    assert window.inspector.widgets["opacity"].spin.value() == 1.0


def test_frame_and_comment_edits_undo(window: Any, base: dict[str, str]) -> None:
    s, doc = window.scene, window.doc
    gid = s.add_frame("Inputs", around=[base["a"]])
    old = doc.entry("groups", gid)
    doc.undo_stack.push(SetEntry(doc, "groups", old, dict(old, title="Sources")))
    assert s.groups[gid].title == "Sources"
    doc.undo_stack.undo()
    assert s.groups[gid].title == "Inputs"
    cid = s.add_comment("note", QPointF(0, 0))
    s.comments[cid].setPlainText("a longer note")
    s.comments[cid].on_edited(s.comments[cid], "a longer note")
    assert doc.entry("comments", cid)["text"] == "a longer note"
    doc.undo_stack.undo()
    assert s.comments[cid].toPlainText() == "note"
