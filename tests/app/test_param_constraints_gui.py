"""Parameters that constrain each other, in the studio: a low percentile typed above the high
one is named on the node (its status and tooltip, like a failure) and in the inspector at once."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from gui_input import type_into

MESSAGE = "low_percentile (99) must be below high_percentile (98)"


def test_a_low_percentile_above_the_high_one_shows_on_the_node_and_in_the_inspector(
    qtbot: Any, window: Any, add: Any
) -> None:
    nid = add("depth.colorize", 0, 0)
    window.scene.select_nodes([nid])
    insp, item = window.inspector, window.scene.nodes[nid]
    assert insp.param_problems.isHidden() and item.status == "idle"
    type_into(qtbot, insp.widgets["low_percentile"].spin, "99")
    assert window.doc.graph.nodes[nid].params["low_percentile"] == 99  # kept: the user may
    # be about to raise the high one; the run is what must not go ahead with it
    assert MESSAGE in insp.param_problems.text() and not insp.param_problems.isHidden()
    assert "Fix: set low_percentile below 98" in insp.param_problems.text()
    assert item.status == "failed" and MESSAGE in item.toolTip()
    assert window.session.status(nid).status == "failed"
    # Raising the high one clears both.
    type_into(qtbot, insp.widgets["high_percentile"].spin, "100")
    assert insp.param_problems.isHidden() and item.status == "idle"
    assert MESSAGE not in item.toolTip()
    # Undo brings the problem back, wherever the selection is.
    window.scene.clearSelection()
    window.doc.undo_stack.undo()
    assert item.status == "failed" and MESSAGE in item.toolTip()


def test_a_graph_opened_with_a_swapped_pair_shows_it_on_the_node(
    qtbot: Any, window: Any, tmp_path: Path
) -> None:
    path = tmp_path / "swapped.json"
    doc = {
        "format": "fathom.graph",
        "version": 1,
        "nodes": [
            {
                "id": "col",
                "type": "depth.colorize",
                "params": {"low_percentile": 99.0, "high_percentile": 98.0},
            }
        ],
        "edges": [],
    }
    path.write_text(json.dumps(doc))
    assert window.files.open(path, ask=False)
    item = window.scene.nodes["col"]
    assert item.status == "failed" and MESSAGE in item.toolTip()
