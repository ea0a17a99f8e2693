"""A muted node does not run, and the run's log lines say so: "Running 3 nodes: 2 save nodes and
what they need" then "2 executed, 0 cached, 0 failed" read as if the muted save had run, and one
node went missing from the count."""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtTest import QTest


def test_the_run_lines_name_a_muted_save_node(
    qtbot: Any, window: Any, add: Any, wire: Any, run_and_wait: Any
) -> None:
    const = add("image.constant", 0, 0, width=4, height=4)
    kept = add("image.save", 300, 0, path="kept.png")
    quiet = add("image.save", 300, 200, path="quiet.png")
    wire(const, "image", kept, "image")
    wire(const, "image", quiet, "image")
    window.scene.select_nodes([quiet])
    window.view.setFocus()
    qtbot.waitUntil(window.view.hasFocus)
    QTest.keyClick(window.view, Qt.Key.Key_E, Qt.KeyboardModifier.ControlModifier)  # Mute
    assert window.doc.graph.nodes[quiet].mute
    window.scene.select_nodes([])
    before = len(window.log.messages())
    assert run_and_wait().result.ok
    lines = window.log.messages()[before:]
    scope = next(line for line in lines if "Running" in line)
    assert "1 muted" in scope, scope
    summary = next(line for line in lines if "Run finished" in line)
    assert "1 muted" in summary, summary
