"""Undo of a parameter the file never set: the parameter is absent again, not a stand-in value.

A graph file may omit parameters (they take their defaults). Setting one and pressing Ctrl+Z must
give back the file as it was; it used to leave a private marker object as the value, which the
inspector then failed to show (and PySide crashed reporting that failure).
"""

from __future__ import annotations

import json
from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtTest import QTest

from fathom.app.commands import SetParam
from fathom.engine.graph import Graph


def test_undo_restores_an_absent_parameter(qtbot: Any, window: Any) -> None:
    g = Graph()
    g.add_node("image.adjust", "adj")  # no parameters set: all defaults, as a hand-made file
    window.doc.set_graph(g)
    before = json.dumps(window.doc.document(), sort_keys=True)

    window.scene.select_nodes(["adj"])
    window.doc.undo_stack.push(SetParam(window.doc, "adj", "gamma", 2.0))
    assert window.doc.graph.nodes["adj"].params == {"gamma": 2.0}
    window.view.setFocus()
    qtbot.waitUntil(window.view.hasFocus)
    QTest.keyClick(window.view, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)

    assert window.doc.graph.nodes["adj"].params == {}
    assert json.dumps(window.doc.document(), sort_keys=True) == before
    assert window.inspector.widgets["gamma"].spin.value() == 1.0  # the default, shown
