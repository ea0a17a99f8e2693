"""Graph validation that reports every problem at once, each naming node, port and fix."""

from __future__ import annotations

import difflib
from typing import Any

from fathom.engine.errors import Problem, echo
from fathom.engine.graph import Edge, Graph
from fathom.engine.node import Node
from fathom.engine.types import can_connect


def _suggest(name: str, options: list[str]) -> str:
    close = difflib.get_close_matches(name, options, n=1)
    return f" Did you mean '{close[0]}'?" if close else ""


def check_params(
    node_id: str, cls: type[Node], params: dict[str, Any]
) -> tuple[dict[str, Any], list[Problem]]:
    """Coerce literal parameters against the declaration; unknown names are errors, not ignored.
    Values that are each valid are then checked together (``Node.check_values``)."""
    problems: list[Problem] = []
    values: dict[str, Any] = {}
    names = [p.name for p in cls.params]
    for key in params:
        if cls.param(key) is None:
            problems.append(
                Problem(
                    f"'{cls.type_id}' has no parameter '{echo(key)}'.{_suggest(key, names)}",
                    node_id,
                    key,
                    f"use one of: {', '.join(names) or '(none)'}",
                    code="unknown_param",
                )
            )
    for spec in cls.params:
        raw = params.get(spec.name, spec.default)
        try:
            values[spec.name] = spec.validate(raw)
        except ValueError as exc:
            problems.append(
                Problem(
                    f"parameter value is invalid: {echo(str(exc), 200)}.",
                    node_id,
                    spec.name,
                    f"set it to {spec.allowed()}",
                    code="bad_param",
                )
            )
    if not problems:  # relations only among values that are each valid
        problems.extend(cls.check_values(node_id, values))
    return values, problems


def validate(graph: Graph, resolve: Any) -> list[Problem]:
    """``resolve(type_id)`` returns a node class or None (a Registry's or a Scope's ``get``).
    Every problem is reported at once: node types and parameters, then edges, cycles and
    unconnected inputs."""
    problems: list[Problem] = []
    classes: dict[str, type[Node]] = {}
    unknown = []
    for inst in graph.nodes.values():
        cls = resolve(inst.type)
        if cls is None:
            unknown.append(inst)
            continue
        classes[inst.id] = cls
        problems.extend(check_params(inst.id, cls, inst.params)[1])
    for inst in unknown:
        problems.append(
            Problem(
                f"unknown node type '{echo(inst.type)}'.",
                inst.id,
                None,
                "install the plugin that provides it, or run `fathom nodes` to list known types",
                code="unknown_type",
            )
        )
    fed: dict[tuple[str, str], int] = {}
    for e in graph.edges:
        problems.extend(_edge_problems(graph, e, classes, fed))
    cycle = graph.find_cycle()
    if cycle:
        problems.append(
            Problem(
                f"the graph has a cycle: {echo(' -> '.join(cycle), 200)}.",
                cycle[0],
                None,
                "remove one edge of the cycle",
                code="cycle",
            )
        )
    for nid, cls in classes.items():
        problems.extend(_input_problems(graph, nid, cls, fed))
    return problems


def _edge_problems(
    graph: Graph, e: Edge, classes: dict[str, type[Node]], fed: dict[tuple[str, str], int]
) -> list[Problem]:
    """What is wrong with one edge: a missing end, port or type match, or a second edge into a
    single-valued input; counts the edges into each input in ``fed`` as it goes."""
    for end, near, port in ((e.src, e.dst, e.dst_port), (e.dst, e.src, e.src_port)):
        if end not in graph.nodes:
            where = "comes from" if end == e.src else "goes to"
            return [
                Problem(
                    f"edge {where} a node '{echo(end)}' that does not exist.",
                    near,
                    port,
                    "remove the edge",
                    code="bad_edge",
                )
            ]
    key = (e.dst, e.dst_port)
    src_cls, dst_cls = classes.get(e.src), classes.get(e.dst)
    if src_cls is None or dst_cls is None:
        # An unknown type is already reported; don't add 'input not connected' noise.
        fed[key] = fed.get(key, 0) + 1
        return []
    out, inp = src_cls.output(e.src_port), dst_cls.input(e.dst_port)
    problems = []
    if out is None:
        names = [o.name for o in src_cls.outputs]
        problems.append(_no_port(src_cls, "output", e.src, e.src_port, names))
    if inp is None:
        names = [i.name for i in dst_cls.inputs]
        problems.append(_no_port(dst_cls, "input", e.dst, e.dst_port, names))
    if out is None or inp is None:
        return problems
    if not can_connect(out.type.type_id, inp.type.type_id):
        problems.append(
            Problem(
                f"type mismatch: '{echo(e.src)}.{echo(e.src_port)}' gives {out.type.type_id} "
                f"but this input takes {inp.type.type_id}.",
                e.dst,
                e.dst_port,
                f"connect a {inp.type.type_id} output, or put a converting node between them",
                code="type_mismatch",
            )
        )
    fed[key] = fed.get(key, 0) + 1
    if fed[key] == 2 and not inp.multi:
        problems.append(
            Problem(
                "more than one edge feeds this single-valued input.",
                e.dst,
                e.dst_port,
                "keep one edge",
                code="bad_edge",
            )
        )
    return problems


def _no_port(cls: type[Node], kind: str, nid: str, port: str, names: list[str]) -> Problem:
    return Problem(
        f"'{cls.type_id}' has no {kind} '{echo(port)}'." + _suggest(port, names),
        nid,
        port,
        f"use one of: {', '.join(names) or '(none)'}",
        code="bad_port",
    )


def _input_problems(
    graph: Graph, nid: str, cls: type[Node], fed: dict[tuple[str, str], int]
) -> list[Problem]:
    """Required inputs left unconnected (a bypassed node is checked for what it passes on; a
    muted one not at all)."""
    inst = graph.nodes[nid]
    if inst.mute:
        return []
    if inst.bypass:
        return _bypass_problems(graph, nid, cls)
    return [
        Problem(
            f"required input '{inp.name}' ({inp.type.type_id}) is not connected.",
            nid,
            inp.name,
            f"connect a {inp.type.type_id} output to it, or mute the node",
            code="missing_input",
        )
        for inp in cls.inputs
        if not inp.optional and (nid, inp.name) not in fed
    ]


def bypass_source(cls: type[Node], port_type: str, fed_ports: list[str]) -> str | None:
    """The connected input a bypassed node passes to an output of ``port_type``, if any."""
    for inp in cls.inputs:
        if inp.name in fed_ports and inp.type.type_id == port_type and not inp.multi:
            return inp.name
    return None


def _bypass_problems(graph: Graph, nid: str, cls: type[Node]) -> list[Problem]:
    fed_ports = [e.dst_port for e in graph.incoming(nid)]
    used = {e.src_port for e in graph.outgoing(nid)}
    out = []
    for o in cls.outputs:
        if o.name in used and bypass_source(cls, o.type.type_id, fed_ports) is None:
            out.append(
                Problem(
                    f"cannot bypass: no connected {o.type.type_id} input to pass through to output "
                    f"'{o.name}'.",
                    nid,
                    o.name,
                    "mute the node instead, or un-bypass it",
                    code="bad_bypass",
                )
            )
    return out
