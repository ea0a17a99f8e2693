"""Subgraphs: reusable graphs used as one node, resolved through a scope and flattened to run.

Flattening keeps the inner nodes' own types and parameters, so the cache works inside a subgraph
exactly as it does outside; flattened ids read ``outer/inner`` so errors still point somewhere.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from fathom.engine.errors import Problem
from fathom.engine.graph import Edge, Exposed, Graph, NodeInstance, SubgraphDef, subgraph_type_id
from fathom.engine.node import Input, Node, Output, Param
from fathom.engine.registry import Registry

PREFIX = "subgraph."
#: Subgraph names, as the graph file schema allows them.
_NAME_RE = re.compile(r"^[a-z][a-z0-9_]*$")


class Scope:
    """Resolves type ids: registry types, then subgraph definitions of this graph, its parents
    and the user's subgraph library."""

    def __init__(
        self,
        registry: Registry,
        subgraphs: dict[str, SubgraphDef] | None = None,
        parent: Scope | None = None,
        library: Callable[[str], SubgraphDef | None] | None = None,
    ) -> None:
        self.registry = registry
        self.subgraphs = subgraphs or {}
        self.parent = parent
        self.library: Callable[[str], SubgraphDef | None] | None = (
            library if library is not None else (parent.library if parent else None)
        )
        self._classes: dict[int, type[Node]] = {}

    def find_def(self, name: str) -> SubgraphDef | None:
        scope: Scope | None = self
        while scope is not None:
            if name in scope.subgraphs:
                return scope.subgraphs[name]
            scope = scope.parent
        return self.library(name) if self.library else None

    def child(self, d: SubgraphDef) -> Scope:
        return Scope(self.registry, d.graph.subgraphs, parent=self)

    def get(self, type_id: str) -> type[Node] | None:
        if type_id.startswith(PREFIX):
            d = self.find_def(type_id[len(PREFIX) :])
            if d is None:
                return None
            key = id(d)
            if key not in self._classes:
                self._classes[key] = subgraph_node_class(d, self.child(d))
            return self._classes[key]
        return self.registry.get(type_id)


def subgraph_node_class(d: SubgraphDef, inner: Scope) -> type[Node]:
    """A node class whose ports are the definition's exposed inner ports, with their types."""

    def inner_cls(node_id: str) -> type[Node] | None:
        inst = d.graph.nodes.get(node_id)
        return inner.get(inst.type) if inst else None

    inputs: list[Input] = []
    seen: set[str] = set()
    for ex in d.inputs:
        cls = inner_cls(ex.node)
        port = cls.input(ex.port) if cls else None
        if port is not None and ex.name not in seen:
            seen.add(ex.name)
            inputs.append(Input(ex.name, port.type, port.doc, port.optional, port.multi))
    outputs = []
    for ex in d.outputs:
        cls = inner_cls(ex.node)
        out = cls.output(ex.port) if cls else None
        if out is not None:
            outputs.append(Output(ex.name, out.type, out.doc))
    params = []
    for ex in d.params:
        cls = inner_cls(ex.node)
        spec = cls.param(ex.port) if cls else None
        if spec is not None:
            default = d.graph.nodes[ex.node].params.get(ex.port, spec.default)
            params.append(
                Param(
                    ex.name,
                    spec.type,
                    default,
                    spec.doc,
                    spec.min,
                    spec.max,
                    spec.choices,
                    spec.optional,
                    spec.multiline,
                    spec.step,
                )
            )

    def run(self: Node, ctx: Any, **kwargs: Any) -> dict[str, Any]:
        raise RuntimeError("subgraph nodes are flattened before running")

    attrs = {
        "type_id": d.type_id,
        "title": d.name,
        "category": "subgraph",
        "version": d.version,
        "inputs": tuple(inputs),
        "outputs": tuple(outputs),
        "params": tuple(params),
        "__doc__": d.doc or f"Subgraph '{d.name}'.",
        "run": run,
        "definition": d,
    }
    return type(f"Subgraph_{d.name}", (Node,), attrs)


def is_subgraph_type(type_id: str) -> bool:
    return type_id.startswith(PREFIX)


def flatten(graph: Graph, scope: Scope, prefix: str = "", _within: tuple[int, ...] = ()) -> Graph:
    """Inline every (non-bypassed, non-muted) subgraph instance, recursively.

    Bypassed or muted instances stay as single nodes: they never run, and the executor's generic
    bypass/mute handling covers them. Parameters an instance sets that its definition does not
    expose are listed in ``meta["_problems"]``: the inner nodes vanish, so nothing else would.
    """
    flat = Graph()
    problems: list[Problem] = []
    in_map: dict[tuple[str, str], list[tuple[str, str]]] = {}
    out_map: dict[tuple[str, str], tuple[str, str]] = {}
    for inst in graph.nodes.values():
        fid = prefix + inst.id
        d = scope.find_def(inst.type[len(PREFIX) :]) if is_subgraph_type(inst.type) else None
        if d is not None and id(d) in _within:
            problems.append(
                Problem(
                    f"subgraph '{d.name}' contains itself.",
                    fid,
                    None,
                    "remove this instance from the subgraph",
                    code="cycle",
                )
            )
            d = None
        if d is None or inst.bypass or inst.mute:
            flat.nodes[fid] = NodeInstance(
                fid, inst.type, dict(inst.params), inst.bypass, inst.mute, inst.title
            )
            continue
        inner = d.graph.copy()
        for ex in d.params:
            if ex.name in inst.params and ex.node in inner.nodes:
                inner.nodes[ex.node].params[ex.port] = inst.params[ex.name]
        problems.extend(_unexposed_params(fid, inst, d))
        sub = flatten(inner, scope.child(d), fid + "/", (*_within, id(d)))
        flat.nodes.update(sub.nodes)
        flat.edges.extend(sub.edges)
        problems.extend(sub.meta["_problems"])
        # Exposed ports of a nested instance were resolved by the inner flatten: follow them.
        sub_in, sub_out = sub.meta["_inputs"], sub.meta["_outputs"]
        for ex in d.inputs:
            key = (f"{fid}/{ex.node}", ex.port)
            in_map.setdefault((inst.id, ex.name), []).extend(sub_in.get(key, [key]))
        for ex in d.outputs:
            key = (f"{fid}/{ex.node}", ex.port)
            out_map[(inst.id, ex.name)] = sub_out.get(key, key)
    for e in graph.edges:
        src = out_map.get((e.src, e.src_port), (prefix + e.src, e.src_port))
        dsts = in_map.get((e.dst, e.dst_port), [(prefix + e.dst, e.dst_port)])
        for dst in dsts:
            flat.edges.append(Edge(src[0], src[1], dst[0], dst[1]))
    flat.meta = {
        "_inputs": {(prefix + n, p): v for (n, p), v in in_map.items()},
        "_outputs": {(prefix + n, p): v for (n, p), v in out_map.items()},
        "_problems": problems,
    }
    return flat


def _unexposed_params(fid: str, inst: NodeInstance, d: SubgraphDef) -> list[Problem]:
    names = [ex.name for ex in d.params]
    return [
        Problem(
            f"subgraph '{d.name}' exposes no parameter '{key}'.",
            fid,
            key,
            f"use one of: {', '.join(names) or '(none)'}",
            code="unknown_param",
        )
        for key in inst.params
        if key not in names
    ]


def make_subgraph(
    graph: Graph,
    node_ids: list[str],
    name: str,
    expose_params: list[tuple[str, str]] | None = None,
    instance_id: str | None = None,
) -> NodeInstance:
    """Turn a selection into a subgraph definition stored in ``graph`` and one instance node.

    Each distinct outside source feeding the selection becomes one exposed input; each inner
    output read from outside becomes one exposed output; the graph computes the same results.
    """
    chosen = [n for n in graph.nodes if n in set(node_ids)]
    if not chosen:
        raise ValueError("select at least one node to make a subgraph")
    if not _NAME_RE.match(name):
        raise ValueError(
            f"subgraph name {name!r} must be lowercase letters, digits and '_', "
            "starting with a letter"
        )
    if name in graph.subgraphs:
        raise ValueError(f"a subgraph named {name!r} already exists in this graph")
    inner = Graph()
    for nid in chosen:
        inner.nodes[nid] = graph.nodes[nid]
    sel = set(chosen)
    inputs: list[Exposed] = []
    outputs: list[Exposed] = []
    src_names: dict[tuple[str, str], str] = {}
    out_names: dict[tuple[str, str], str] = {}
    outer_in: list[tuple[str, str, str]] = []
    outer_out: list[tuple[str, str, str, str]] = []
    for e in graph.edges:
        if e.src in sel and e.dst in sel:
            inner.edges.append(e)
        elif e.dst in sel:
            key = (e.src, e.src_port)
            if key not in src_names:
                src_names[key] = _unique(_port_name(e.dst, e.dst_port), src_names.values())
                outer_in.append((e.src, e.src_port, src_names[key]))
            inputs.append(Exposed(src_names[key], e.dst, e.dst_port))
        elif e.src in sel:
            key = (e.src, e.src_port)
            if key not in out_names:
                out_names[key] = _unique(_port_name(e.src, e.src_port), out_names.values())
                outputs.append(Exposed(out_names[key], e.src, e.src_port))
            outer_out.append((out_names[key], e.dst, e.dst_port, ""))
    params = [Exposed(_port_name(n, p), n, p) for n, p in (expose_params or [])]
    d = SubgraphDef(name, inner, inputs, outputs, params)
    graph.subgraphs[name] = d
    for nid in chosen:
        graph.remove_node(nid)
    inst = graph.add_node(subgraph_type_id(name), instance_id or graph.new_id(name))
    for src, port, exposed in outer_in:
        graph.connect(src, port, inst.id, exposed, multi=True)
    for exposed, dst, dport, _ in outer_out:
        graph.connect(inst.id, exposed, dst, dport, multi=True)
    return inst


def _port_name(node: str, port: str) -> str:
    """An exposed name the file schema accepts: node ids may hold '-', exposed names may not."""
    return re.sub(r"[^A-Za-z0-9_]", "_", f"{node}_{port}")


def _unique(name: str, taken: Any) -> str:
    taken = set(taken)
    out, i = name, 2
    while out in taken:
        out, i = f"{name}_{i}", i + 1
    return out
