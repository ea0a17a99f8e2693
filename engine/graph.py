"""The graph model: node instances, edges, subgraph definitions and editor data, with plain events.

Knows nothing of Qt or of running; the GUI subscribes to its events, the executor reads it.
"""

from __future__ import annotations

import copy
import re
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

_ID_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_\-]*$")


@dataclass
class NodeInstance:
    """One node in a graph: which type, its literal parameters and its bypass/mute flags."""

    id: str
    type: str
    params: dict[str, Any] = field(default_factory=dict)
    bypass: bool = False
    mute: bool = False
    title: str | None = None
    #: The node type's version this instance was saved with (None: the installed version).
    version: int | None = None


@dataclass(frozen=True)
class Edge:
    src: str
    src_port: str
    dst: str
    dst_port: str


@dataclass(frozen=True)
class Exposed:
    """A port or parameter of an inner node that a subgraph shows on its outside."""

    name: str
    node: str
    port: str


@dataclass
class SubgraphDef:
    """A reusable graph with exposed inputs, outputs and parameters; used as one node."""

    name: str
    graph: Graph
    inputs: list[Exposed] = field(default_factory=list)
    outputs: list[Exposed] = field(default_factory=list)
    params: list[Exposed] = field(default_factory=list)
    doc: str = ""
    version: int = 1

    @property
    def type_id(self) -> str:
        return subgraph_type_id(self.name)


def subgraph_type_id(name: str) -> str:
    return f"subgraph.{name}"


Listener = Callable[[str, dict[str, Any]], None]


class Graph:
    """Nodes by id and edges between named ports. Emits ``(event, payload)`` to subscribers."""

    def __init__(self) -> None:
        self.nodes: dict[str, NodeInstance] = {}
        self.edges: list[Edge] = []
        self.subgraphs: dict[str, SubgraphDef] = {}
        self.ui: dict[str, Any] = {}
        self.meta: dict[str, Any] = {}
        #: Bumped by every edit made through the methods below (nodes, edges, parameters,
        #: flags; not editor data such as positions), so a listener can tell "changed" without
        #: comparing. Code that edits ``nodes``, ``edges`` or ``subgraphs`` directly bypasses
        #: it and should call ``touch()``. The executor's kept plans do not rely on it (the
        #: editor runs a fresh copy each time, undo edits dicts): they compare content.
        self.revision = 0
        self._listeners: list[Listener] = []

    # ---- events ----------------------------------------------------------------------------

    def subscribe(self, listener: Listener) -> Callable[[], None]:
        """Returns the function that unsubscribes, so widgets can disconnect when closed."""
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener) if listener in self._listeners else None

    def touch(self) -> None:
        """Record an edit made around the methods below (a direct dict edit, a new subgraph
        definition), so revision-based listeners see it."""
        self.revision += 1

    def _emit(self, event: str, **payload: Any) -> None:
        # Every edit method emits, so counting here covers them all and any added later.
        self.revision += 1
        for listener in list(self._listeners):
            listener(event, payload)

    # ---- editing ---------------------------------------------------------------------------

    def new_id(self, type_id: str) -> str:
        stem = re.sub(r"[^A-Za-z0-9_]", "_", type_id.split(".")[-1]) or "node"
        i = 1
        while f"{stem}{i}" in self.nodes:
            i += 1
        return f"{stem}{i}"

    def add_node(
        self,
        type_id: str,
        node_id: str | None = None,
        params: dict[str, Any] | None = None,
        **flags: Any,
    ) -> NodeInstance:
        node_id = node_id or self.new_id(type_id)
        if not _ID_RE.match(node_id):
            raise ValueError(f"node id {node_id!r} must be letters, digits, '_' or '-'")
        if node_id in self.nodes:
            raise ValueError(f"a node with id {node_id!r} already exists")
        inst = NodeInstance(node_id, type_id, dict(params or {}), **flags)
        self.nodes[node_id] = inst
        self._emit("node_added", node=node_id)
        return inst

    def remove_node(self, node_id: str) -> None:
        self.nodes.pop(node_id)
        removed = [e for e in self.edges if node_id in (e.src, e.dst)]
        self.edges = [e for e in self.edges if e not in removed]
        for e in removed:
            self._emit("edge_removed", edge=e)
        self.ui.get("nodes", {}).pop(node_id, None)
        self._emit("node_removed", node=node_id)

    def connect(
        self, src: str, src_port: str, dst: str, dst_port: str, multi: bool = False
    ) -> Edge:
        """Adds an edge; a single-valued input keeps only its newest edge, as in every editor."""
        edge = Edge(src, src_port, dst, dst_port)
        if not multi:
            for old in [e for e in self.edges if e.dst == dst and e.dst_port == dst_port]:
                self.disconnect(old)
        if edge not in self.edges:
            self.edges.append(edge)
            self._emit("edge_added", edge=edge)
        return edge

    def disconnect(self, edge: Edge) -> None:
        self.edges.remove(edge)
        self._emit("edge_removed", edge=edge)

    def set_param(self, node_id: str, name: str, value: Any) -> None:
        self.nodes[node_id].params[name] = value
        self._emit("param_changed", node=node_id, param=name, value=value)

    def set_flags(
        self, node_id: str, *, bypass: bool | None = None, mute: bool | None = None
    ) -> None:
        inst = self.nodes[node_id]
        if bypass is not None:
            inst.bypass = bypass
        if mute is not None:
            inst.mute = mute
        self._emit("flags_changed", node=node_id)

    # ---- queries ---------------------------------------------------------------------------

    def incoming(self, node_id: str) -> list[Edge]:
        return [e for e in self.edges if e.dst == node_id]

    def outgoing(self, node_id: str) -> list[Edge]:
        return [e for e in self.edges if e.src == node_id]

    def incoming_map(self) -> dict[str, list[Edge]]:
        out: dict[str, list[Edge]] = defaultdict(list)
        for e in self.edges:
            out[e.dst].append(e)
        return out

    def copy(self) -> Graph:
        g = Graph()
        g.nodes = {k: copy.deepcopy(v) for k, v in self.nodes.items()}
        g.edges = list(self.edges)
        g.subgraphs = dict(self.subgraphs)
        g.ui = copy.deepcopy(self.ui)
        g.meta = copy.deepcopy(self.meta)
        return g

    def find_cycle(self) -> list[str] | None:
        """A list of node ids forming a cycle, or None: validation names them all.

        Iterative depth-first search, so a long chain cannot exhaust Python's recursion limit.
        """
        adj: dict[str, list[str]] = defaultdict(list)
        for e in self.edges:
            adj[e.src].append(e.dst)
        state: dict[str, int] = {}  # 1: on the current path, 2: done
        for root in self.nodes:
            if root in state:
                continue
            path = [root]
            todo = [iter(adj.get(root, ()))]
            state[root] = 1
            while todo:
                m = next(todo[-1], None)
                if m is None:
                    state[path.pop()] = 2
                    todo.pop()
                elif state.get(m) == 1:
                    return path[path.index(m) :] + [m]
                elif m not in state:
                    state[m] = 1
                    path.append(m)
                    todo.append(iter(adj.get(m, ())))
        return None

    def topological_order(self, subset: set[str] | None = None) -> list[str]:
        """Kahn's algorithm in insertion order, so runs are reproducible; assumes no cycle."""
        nodes = [n for n in self.nodes if subset is None or n in subset]
        member = set(nodes)
        indeg = dict.fromkeys(nodes, 0)
        adj: dict[str, list[str]] = defaultdict(list)
        for e in self.edges:
            if e.src in member and e.dst in member:
                indeg[e.dst] += 1
                adj[e.src].append(e.dst)
        ready = [n for n in nodes if indeg[n] == 0]
        order: list[str] = []
        i = 0
        while i < len(ready):
            n = ready[i]
            i += 1
            order.append(n)
            for m in adj[n]:
                indeg[m] -= 1
                if indeg[m] == 0:
                    ready.append(m)
        return order

    def ancestors(self, targets: list[str]) -> set[str]:
        inc = self.incoming_map()
        seen: set[str] = set()
        todo = [t for t in targets if t in self.nodes]
        while todo:
            n = todo.pop()
            if n in seen:
                continue
            seen.add(n)
            todo.extend(e.src for e in inc.get(n, ()))
        return seen
