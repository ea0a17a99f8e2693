"""Undo commands for subgraphs: making one from a selection, and exposing inner parameters.

Like ``app.commands``, each restores the exact previous document on undo. The engine does the
rewiring (``engine.subgraph.make_subgraph``); these commands add what the editor keeps beside
it (positions, reroutes) and the way back.
"""

from __future__ import annotations

import copy
from typing import Any

from PySide6.QtGui import QUndoCommand

from fathom.app.commands import RemoveItems
from fathom.app.document import INNER_UI, Document
from fathom.engine.graph import Exposed, SubgraphDef, subgraph_type_id
from fathom.engine.subgraph import make_subgraph

#: What ``SetExposedParams`` removes from the instances of a definition, to put back on undo:
#: (instance id, parameter name, value).
_Values = list[tuple[str, str, Any]]


class MakeSubgraph(QUndoCommand):
    """Replaces the selected nodes by one subgraph node; inner wires, outer wires (now on the
    subgraph's ports), positions and reroutes inside the selection go with them."""

    def __init__(self, doc: Document, node_ids: list[str], name: str) -> None:
        super().__init__(f"Make subgraph {name}")
        self.doc = doc
        self.name = name
        g = doc.graph
        self.ids = [n for n in g.nodes if n in set(node_ids)]
        # Everything undo must put back, as deleting the selection would: nodes, their wires
        # and reroutes, the order of both, their positions.
        self.removed = RemoveItems(doc, self.ids)
        self.instance = g.new_id(subgraph_type_id(name))
        self.ui_key = doc.inner_ui_key(name)
        # Editor data a file may still hold under that key (its definition long gone).
        self.old_ui = copy.deepcopy(doc.root.ui.get(INNER_UI, {}).get(self.ui_key))
        # Where the selection began: the node takes the room its nodes leave.
        self.pos = _top_left([doc.node_pos(n) for n in self.ids])

    def redo(self) -> None:
        g = self.doc.graph
        inside = set(self.ids)
        positions = {
            n: copy.deepcopy(g.ui["nodes"][n]) for n in self.ids if n in g.ui.get("nodes", {})
        }
        reroutes = [
            copy.deepcopy(entry)
            for kind, entry, _ in self.removed.entries
            if kind == "reroutes" and entry["edge"][0] in inside and entry["edge"][2] in inside
        ]
        for kind, entry, _ in self.removed.entries:
            self.doc.remove_entry(kind, entry["id"])
        if self.pos is not None:
            g.ui.setdefault("nodes", {})[self.instance] = {"pos": list(self.pos)}
        self.doc.forget_scope()  # the new node's type resolves through the new definition
        # The definition goes in before the node that uses it, so the editor can draw it.
        make_subgraph(g, self.ids, self.name, instance_id=self.instance)
        d = g.subgraphs[self.name]
        d.graph.ui = {"nodes": positions}
        if reroutes:
            d.graph.ui["reroutes"] = reroutes
        self.doc.drop_inner_ui(self.ui_key)
        self.doc.keep_inner_ui(d, self.ui_key)
        g.touch()

    def undo(self) -> None:
        g = self.doc.graph
        g.remove_node(self.instance)
        del g.subgraphs[self.name]
        self.doc.drop_inner_ui(self.ui_key)
        if self.old_ui is not None:
            self.doc.root.ui.setdefault(INNER_UI, {})[self.ui_key] = copy.deepcopy(self.old_ui)
        self.doc.forget_scope()
        self.removed.undo()
        g.touch()


class SetExposedParams(QUndoCommand):
    """Sets which inner parameters the shown subgraph definition exposes on its node.

    Values the enclosing graph's instances set for a parameter that is no longer exposed are
    removed (flattening would report them as unknown), and come back on undo."""

    def __init__(self, doc: Document, params: list[Exposed], text: str) -> None:
        super().__init__(text)
        self.doc = doc
        d = self._definition()
        self.old = list(d.params)
        self.new = list(params)
        gone = {x.name for x in self.old} - {x.name for x in self.new}
        self.dropped: _Values = [
            (inst.id, key, copy.deepcopy(value))
            for inst in self._parent().nodes.values()
            if inst.type == d.type_id
            for key, value in inst.params.items()
            if key in gone
        ]

    def _definition(self) -> SubgraphDef:
        d = self.doc.definition()
        if d is None:
            raise RuntimeError("exposed parameters belong to a subgraph: open one first")
        return d

    def _parent(self) -> Any:
        defs = self.doc.level_defs(self.doc.trail[:-1]) or []
        return defs[-1].graph if defs else self.doc.root

    def redo(self) -> None:
        self._definition().params = list(self.new)
        parent = self._parent()
        for nid, key, _ in self.dropped:
            parent.nodes[nid].params.pop(key, None)
        self._changed(parent)

    def undo(self) -> None:
        self._definition().params = list(self.old)
        parent = self._parent()
        for nid, key, value in self.dropped:
            parent.nodes[nid].params[key] = copy.deepcopy(value)
        self._changed(parent)

    def _changed(self, parent: Any) -> None:
        self.doc.forget_scope()
        parent.touch()
        self.doc.graph.touch()


def _top_left(points: list[tuple[float, float] | None]) -> tuple[float, float] | None:
    known = [p for p in points if p is not None]
    if not known:
        return None
    return (min(p[0] for p in known), min(p[1] for p in known))
