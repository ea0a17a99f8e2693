"""QUndoStack commands, one per kind of edit; the graph model itself knows nothing of undo.

Every command restores the exact previous document on undo (node order, edge order, absent
parameters), so undo followed by save writes the same bytes as before the edit.
"""

from __future__ import annotations

import copy
from typing import Any

from PySide6.QtGui import QUndoCommand

from fathom.app.document import Document
from fathom.engine.graph import Edge, NodeInstance

_MISSING = object()


def _edge_key(e: Edge) -> list[str]:
    return [e.src, e.src_port, e.dst, e.dst_port]


def reroutes_of(doc: Document, edges: list[Edge]) -> list[dict[str, Any]]:
    keys = [_edge_key(e) for e in edges]
    return [r for r in doc.entries("reroutes") if r.get("edge") in keys]


def _restore_order(doc: Document, node_order: list[str], edge_order: list[Edge]) -> None:
    """Put re-added nodes and edges back where they were: order is part of the file (and the
    order of a multi-input's values)."""
    g = doc.graph
    rank = {n: i for i, n in enumerate(node_order)}
    g.nodes = dict(sorted(g.nodes.items(), key=lambda kv: rank.get(kv[0], len(rank))))
    erank = {e: i for i, e in enumerate(edge_order)}
    g.edges.sort(key=lambda e: erank.get(e, len(erank)))


class AddNodes(QUndoCommand):
    """Adds nodes (with their editor entries) and edges among or to them: add, paste, drop."""

    def __init__(
        self,
        doc: Document,
        nodes: list[NodeInstance],
        edges: list[Edge] = (),
        ui: dict[str, dict[str, Any]] | None = None,
        text: str = "",
    ) -> None:
        if not text:
            cls = doc.registry.get(nodes[0].type) if len(nodes) == 1 else None
            text = f"Add {cls.title}" if cls is not None else f"Add {len(nodes)} nodes"
        super().__init__(text)
        self.doc = doc
        self.nodes = [copy.deepcopy(n) for n in nodes]
        self.edges = list(edges)
        self.ui = copy.deepcopy(ui or {})

    def redo(self) -> None:
        g = self.doc.graph
        for n in self.nodes:
            if n.id in self.ui:
                g.ui.setdefault("nodes", {})[n.id] = copy.deepcopy(self.ui[n.id])
            g.add_node(
                n.type,
                n.id,
                copy.deepcopy(n.params),
                bypass=n.bypass,
                mute=n.mute,
                title=n.title,
                version=n.version,
            )
        for e in self.edges:
            g.connect(e.src, e.src_port, e.dst, e.dst_port, multi=True)

    def undo(self) -> None:
        g = self.doc.graph
        for e in reversed(self.edges):
            if e in g.edges:
                g.disconnect(e)
        for n in reversed(self.nodes):
            g.remove_node(n.id)


class RemoveItems(QUndoCommand):
    """Deletes nodes, edges and editor entries; edges touching deleted nodes and reroutes on
    deleted edges go with them."""

    def __init__(
        self,
        doc: Document,
        node_ids: list[str] = (),
        edges: list[Edge] = (),
        entries: list[tuple[str, str]] = (),
        text: str = "",
    ) -> None:
        g = doc.graph
        node_set = set(node_ids)
        all_edges = [
            e for e in g.edges if e in set(edges) or e.src in node_set or e.dst in node_set
        ]
        entries = list(entries) + [("reroutes", r["id"]) for r in reroutes_of(doc, all_edges)]
        seen: set[tuple[str, str]] = set()
        entries = [x for x in entries if not (x in seen or seen.add(x))]  # type: ignore[func-returns-value]
        count = len(node_set) + len(edges) + len(entries)
        super().__init__(text or f"Delete {count} item{'s' if count != 1 else ''}")
        self.doc = doc
        self.nodes = [copy.deepcopy(g.nodes[n]) for n in g.nodes if n in node_set]
        self.node_ui = {n: copy.deepcopy(g.ui.get("nodes", {}).get(n)) for n in node_set}
        self.edges = all_edges
        self.node_order = list(g.nodes)
        self.edge_order = list(g.edges)
        self.entries = [
            (kind, copy.deepcopy(doc.entry(kind, eid)), doc.entry_index(kind, eid))
            for kind, eid in entries
            if doc.entry(kind, eid) is not None
        ]

    def redo(self) -> None:
        g = self.doc.graph
        for kind, entry, _ in self.entries:
            self.doc.remove_entry(kind, entry["id"])
        for e in self.edges:
            if e in g.edges:
                g.disconnect(e)
        for n in self.nodes:
            g.remove_node(n.id)

    def undo(self) -> None:
        g = self.doc.graph
        for n in self.nodes:
            if self.node_ui.get(n.id) is not None:
                g.ui.setdefault("nodes", {})[n.id] = copy.deepcopy(self.node_ui[n.id])
            g.add_node(
                n.type,
                n.id,
                copy.deepcopy(n.params),
                bypass=n.bypass,
                mute=n.mute,
                title=n.title,
                version=n.version,
            )
        for e in self.edges:
            g.connect(e.src, e.src_port, e.dst, e.dst_port, multi=True)
        _restore_order(self.doc, self.node_order, self.edge_order)
        for kind, entry, index in sorted(self.entries, key=lambda x: x[2]):
            self.doc.put_entry(kind, copy.deepcopy(entry), index)


class Connect(QUndoCommand):
    """Adds an edge; on a single-valued input the edge it replaces comes back on undo."""

    def __init__(self, doc: Document, edge: Edge, multi: bool = False) -> None:
        super().__init__(f"Connect {edge.src}.{edge.src_port} → {edge.dst}.{edge.dst_port}")
        self.doc = doc
        self.edge = edge
        self.multi = multi
        g = doc.graph
        self.replaced = (
            []
            if multi
            else [
                e
                for e in g.edges
                if e.dst == edge.dst and e.dst_port == edge.dst_port and e != edge
            ]
        )
        self.reroutes = [
            (copy.deepcopy(r), doc.entry_index("reroutes", r["id"]))
            for r in reroutes_of(doc, self.replaced)
        ]
        self.edge_order = list(g.edges)

    def redo(self) -> None:
        for r, _ in self.reroutes:
            self.doc.remove_entry("reroutes", r["id"])
        e = self.edge
        self.doc.graph.connect(e.src, e.src_port, e.dst, e.dst_port, multi=self.multi)

    def undo(self) -> None:
        g = self.doc.graph
        if self.edge in g.edges:
            g.disconnect(self.edge)
        for e in self.replaced:
            g.connect(e.src, e.src_port, e.dst, e.dst_port, multi=True)
        _restore_order(self.doc, list(g.nodes), self.edge_order)
        for r, index in self.reroutes:
            self.doc.put_entry("reroutes", copy.deepcopy(r), index)


class SetParam(QUndoCommand):
    """One parameter's new value. Slider drags pass ``merge=True`` so a drag is one undo step."""

    def __init__(
        self, doc: Document, node_id: str, name: str, value: Any, merge: bool = False
    ) -> None:
        super().__init__(f"Set {node_id}.{name}")
        self.doc = doc
        self.node_id = node_id
        self.name = name
        self.new = copy.deepcopy(value)
        old = doc.graph.nodes[node_id].params.get(name, _MISSING)
        # Not the marker itself through deepcopy: a copy of it would no longer mean "absent".
        self.old = old if old is _MISSING else copy.deepcopy(old)
        self.merge = merge

    def id(self) -> int:
        return 4101 if self.merge else -1

    def mergeWith(self, other: QUndoCommand) -> bool:  # noqa: N802 - Qt's name
        if not (
            isinstance(other, SetParam)
            and other.merge
            and other.node_id == self.node_id
            and other.name == self.name
        ):
            return False
        self.new = other.new
        return True

    def redo(self) -> None:
        self.doc.graph.set_param(self.node_id, self.name, copy.deepcopy(self.new))

    def undo(self) -> None:
        g = self.doc.graph
        if self.old is _MISSING:
            # Listeners see the effective (default) value; the document regains its absence.
            cls = self.doc.node_class(self.node_id)
            spec = cls.param(self.name) if cls is not None else None
            g.set_param(self.node_id, self.name, spec.default if spec is not None else None)
            g.nodes[self.node_id].params.pop(self.name, None)
        else:
            g.set_param(self.node_id, self.name, copy.deepcopy(self.old))


class SetFlags(QUndoCommand):
    def __init__(
        self, doc: Document, node_id: str, bypass: bool | None = None, mute: bool | None = None
    ) -> None:
        word = "Bypass" if bypass is not None else "Mute"
        super().__init__(f"{word} {node_id}")
        inst = doc.graph.nodes[node_id]
        self.doc = doc
        self.node_id = node_id
        self.new = (bypass, mute)
        self.old = (
            inst.bypass if bypass is not None else None,
            inst.mute if mute is not None else None,
        )

    def redo(self) -> None:
        self.doc.graph.set_flags(self.node_id, bypass=self.new[0], mute=self.new[1])

    def undo(self) -> None:
        self.doc.graph.set_flags(self.node_id, bypass=self.old[0], mute=self.old[1])


class SetTitle(QUndoCommand):
    def __init__(self, doc: Document, node_id: str, title: str | None) -> None:
        super().__init__(f"Rename {node_id}")
        self.doc = doc
        self.node_id = node_id
        self.new = title or None
        self.old = doc.graph.nodes[node_id].title

    def redo(self) -> None:
        self.doc.set_title(self.node_id, self.new)

    def undo(self) -> None:
        self.doc.set_title(self.node_id, self.old)


class SetEntry(QUndoCommand):
    """Adds (old None), edits, or removes (new None) a group, comment or reroute."""

    def __init__(
        self,
        doc: Document,
        kind: str,
        old: dict[str, Any] | None,
        new: dict[str, Any] | None,
        text: str = "",
    ) -> None:
        noun = {"groups": "frame", "comments": "comment", "reroutes": "reroute"}[kind]
        verb = "Add" if old is None else ("Delete" if new is None else "Edit")
        super().__init__(text or f"{verb} {noun}")
        self.doc = doc
        self.kind = kind
        self.old = copy.deepcopy(old)
        self.new = copy.deepcopy(new)
        ident = (old or new or {}).get("id", "")
        self.index = doc.entry_index(kind, ident)

    def _apply(self, value: dict[str, Any] | None, other: dict[str, Any] | None) -> None:
        if value is None:
            if other is not None:
                self.doc.remove_entry(self.kind, other["id"])
        else:
            self.doc.put_entry(
                self.kind, copy.deepcopy(value), self.index if self.index >= 0 else None
            )

    def redo(self) -> None:
        self._apply(self.new, self.old)

    def undo(self) -> None:
        self._apply(self.old, self.new)


class Move(QUndoCommand):
    """Nodes to new positions, plus moved groups, comments and reroutes."""

    def __init__(
        self,
        doc: Document,
        nodes: dict[str, tuple[tuple[float, float], tuple[float, float]]],
        entries: list[tuple[str, dict[str, Any], dict[str, Any]]] = (),
        text: str = "",
    ) -> None:
        count = len(nodes) + len(entries)
        super().__init__(text or f"Move {count} item{'s' if count != 1 else ''}")
        self.doc = doc
        self.nodes = dict(nodes)
        # Plain Python list, not Qt child commands: PySide would let their wrappers be
        # collected while Qt still calls them.
        self.entries = [SetEntry(doc, kind, old, new) for kind, old, new in entries]

    def redo(self) -> None:
        for nid, (_, new) in self.nodes.items():
            self.doc.set_node_pos(nid, new)
        for cmd in self.entries:
            cmd.redo()

    def undo(self) -> None:
        for nid, (old, _) in self.nodes.items():
            self.doc.set_node_pos(nid, old)
        for cmd in reversed(self.entries):
            cmd.undo()
