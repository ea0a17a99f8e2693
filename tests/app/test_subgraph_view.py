"""Going back out of a subgraph returns to the place the user left: the enclosing graph keeps
its zoom and scroll position (it used to be refitted, so a user working zoomed in on one part
of a big graph lost their place on every Esc)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from PySide6.QtCore import QPointF, Qt
from PySide6.QtTest import QTest

CTRL_SHIFT = Qt.KeyboardModifier.ControlModifier | Qt.KeyboardModifier.ShiftModifier


@pytest.fixture(autouse=True)
def library(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("FATHOM_SUBGRAPH_PATH", str(tmp_path / "library"))


def view_state(window: Any) -> tuple[float, QPointF]:
    view = window.view
    return view.zoom(), view.mapToScene(view.viewport().rect().center())


def test_esc_out_of_a_subgraph_keeps_the_zoom_and_place(
    qtbot: Any, window: Any, add: Any, wire: Any
) -> None:
    ids = [add("image.constant", 0, 0, width=8, height=6)]
    for i in range(1, 12):  # a long chain: the graph is wider than the view at 1.3 zoom
        ids.append(add("image.adjust" if i % 2 else "image.invert", 260 * i, 0))
        wire(ids[-2], "image", ids[-1], "image")
    window.subgraphs.ask_name = lambda suggestion, error: "tone"
    window.scene.select_nodes(ids[5:7])
    window.view.setFocus()
    qtbot.waitUntil(window.view.hasFocus)
    QTest.keyClick(window.view, Qt.Key.Key_G, CTRL_SHIFT)
    inst = next(n for n, i in window.doc.graph.nodes.items() if i.type.startswith("subgraph."))

    # The user zooms in and scrolls to the subgraph node, then double-clicks it.
    window.view.zoom_by(1.3 / window.view.zoom())
    item = window.scene.nodes[inst]
    at = item.mapToScene(QPointF(item.boundingRect().center().x(), 10))
    window.view.centerOn(at)
    zoom, centre = view_state(window)
    QTest.mouseDClick(
        window.view.viewport(),
        Qt.MouseButton.LeftButton,
        Qt.KeyboardModifier.NoModifier,
        window.view.mapFromScene(at),
    )
    assert window.doc.trail == [(inst, "tone")]
    window.view.setFocus()
    QTest.keyClick(window.view, Qt.Key.Key_Escape)
    assert window.doc.trail == []
    back_zoom, back_centre = view_state(window)
    assert back_zoom == pytest.approx(zoom, rel=1e-3)
    assert abs(back_centre.x() - centre.x()) < 5 and abs(back_centre.y() - centre.y()) < 5
