"""The graph model (edits, events, order, cycles) and validation that reports every problem."""

from __future__ import annotations

import pytest

from fathom.engine.errors import GraphInvalid, Problem
from fathom.engine.graph import Edge, Graph
from fathom.engine.registry import Registry
from fathom.engine.validate import validate

# ---- the graph model -----------------------------------------------------------------------


def test_edits_emit_events_until_unsubscribed() -> None:
    g = Graph()
    seen: list[tuple[str, dict]] = []
    unsubscribe = g.subscribe(lambda event, payload: seen.append((event, payload)))
    g.add_node("math.binary", "a")
    g.add_node("math.scale", "b")
    edge = g.connect("a", "value", "b", "value")
    g.set_param("b", "factor", 3.0)
    g.set_flags("b", bypass=True)
    unsubscribe()
    g.remove_node("a")
    assert [e for e, _ in seen] == [
        "node_added",
        "node_added",
        "edge_added",
        "param_changed",
        "flags_changed",
    ]
    assert seen[2][1] == {"edge": edge} and seen[3][1]["value"] == 3.0
    assert g.edges == [] and list(g.nodes) == ["b"] and g.nodes["b"].bypass


def test_ids_are_generated_unique_and_checked() -> None:
    g = Graph()
    assert g.add_node("math.scale").id == "scale1"
    assert g.add_node("math.scale").id == "scale2"
    with pytest.raises(ValueError, match="already exists"):
        g.add_node("math.scale", "scale1")
    with pytest.raises(ValueError, match="letters, digits"):
        g.add_node("math.scale", "a.b")


def test_single_inputs_keep_the_newest_edge_and_multi_inputs_keep_all() -> None:
    g = Graph()
    for nid in ("a", "b", "s", "t"):
        g.add_node("math.binary" if nid in "ab" else "math.sum", nid)
    g.connect("a", "value", "s", "values")
    g.connect("b", "value", "s", "values")
    g.connect("a", "value", "t", "values", multi=True)
    g.connect("b", "value", "t", "values", multi=True)
    g.connect("b", "value", "t", "values", multi=True)  # duplicate ignored
    assert g.incoming("s") == [Edge("b", "value", "s", "values")]
    assert [e.src for e in g.incoming("t")] == ["a", "b"]


def test_order_ancestors_and_cycles() -> None:
    g = Graph()
    for nid in ("d", "c", "b", "a", "lone"):
        g.add_node("math.scale", nid)
    g.connect("a", "value", "b", "value")
    g.connect("b", "value", "c", "value")
    g.connect("c", "value", "d", "value")
    order = g.topological_order()
    assert order.index("a") < order.index("b") < order.index("c") < order.index("d")
    assert g.ancestors(["c"]) == {"a", "b", "c"}
    assert g.find_cycle() is None
    g.connect("d", "value", "b", "value", multi=True)
    cycle = g.find_cycle()
    assert cycle is not None and cycle[0] == cycle[-1] and set(cycle) == {"b", "c", "d"}


def test_a_long_chain_does_not_hit_the_recursion_limit() -> None:
    g = Graph()
    g.add_node("math.scale", "n0")
    for i in range(1, 2000):
        g.add_node("math.scale", f"n{i}")
        g.edges.append(Edge(f"n{i - 1}", "value", f"n{i}", "value"))
    assert g.find_cycle() is None
    g.edges.append(Edge("n1999", "value", "n0", "value"))
    cycle = g.find_cycle()
    assert cycle is not None and len(cycle) == 2001 and cycle[0] == cycle[-1]


# ---- validation ----------------------------------------------------------------------------


def broken_graph() -> Graph:
    """One of every problem validation must find, all in one graph."""
    g = Graph()
    g.add_node("math.binary", "src", {"a": 1.0})
    g.add_node("no.such_type", "ghost1")
    g.add_node("other.missing", "ghost2")
    g.add_node("t.label", "text")
    g.add_node("math.scale", "mismatch")  # fed a string
    g.connect("text", "text", "mismatch", "value")
    g.add_node("math.scale", "loop_a")  # loop_a <-> loop_b
    g.add_node("math.scale", "loop_b")
    g.connect("loop_a", "value", "loop_b", "value")
    g.connect("loop_b", "value", "loop_a", "value")
    g.add_node("math.scale", "unfed")  # required input unconnected
    g.add_node("math.binary", "ranged", {"op": "cube"})  # not a choice
    g.add_node("t.sleep", "negative", {"seconds": -1})  # below min
    g.add_node("math.binary", "typo", {"opp": "add"})  # unknown parameter
    g.add_node("math.scale", "twice")
    g.connect("src", "value", "twice", "value")
    g.edges.append(Edge("ranged", "value", "twice", "value"))  # a second edge, as a file may hold
    g.add_node("math.scale", "bypassed", bypass=True)  # nothing to pass through to its output
    g.add_node("math.sum", "bypass_user")
    g.connect("bypassed", "value", "bypass_user", "values", multi=True)
    return g


def by_code(problems: list[Problem]) -> dict[str, list[Problem]]:
    out: dict[str, list[Problem]] = {}
    for p in problems:
        out.setdefault(p.code, []).append(p)
    return out


def test_validation_reports_every_problem_at_once(treg: Registry) -> None:
    problems = validate(broken_graph(), treg.get)
    codes = by_code(problems)
    assert sorted(codes) == [
        "bad_bypass",
        "bad_edge",
        "bad_param",
        "cycle",
        "missing_input",
        "type_mismatch",
        "unknown_param",
        "unknown_type",
    ]
    assert all(p.fix for p in problems)

    assert {p.node for p in codes["unknown_type"]} == {"ghost1", "ghost2"}
    assert "unknown node type 'no.such_type'" in str(codes["unknown_type"][0])
    assert "`fathom nodes`" in codes["unknown_type"][0].fix

    [mismatch] = codes["type_mismatch"]
    assert (mismatch.node, mismatch.port) == ("mismatch", "value")
    assert "'text.text' gives string but this input takes float" in mismatch.message

    [cycle] = codes["cycle"]
    assert (
        "loop_a -> loop_b -> loop_a" in cycle.message
        and cycle.fix == "remove one edge of the cycle"
    )

    assert {(p.node, p.port) for p in codes["missing_input"]} == {("unfed", "value")}
    assert "connect a float output to it" in codes["missing_input"][0].fix

    bad = {(p.node, p.port): p for p in codes["bad_param"]}
    assert set(bad) == {("ranged", "op"), ("negative", "seconds")}
    assert "'cube' is not one of: add" in bad["ranged", "op"].message
    assert "-1.0 is below the minimum 0.0" in bad["negative", "seconds"].message
    assert bad["negative", "seconds"].fix == "set it to a float in [0, inf]"

    [unknown] = codes["unknown_param"]
    assert (unknown.node, unknown.port) == ("typo", "opp")
    assert "Did you mean 'op'?" in unknown.message and "op, a, b" in unknown.fix

    [twice] = codes["bad_edge"]
    assert (twice.node, twice.port) == ("twice", "value") and "more than one edge" in twice.message

    [bypass] = codes["bad_bypass"]
    assert (bypass.node, bypass.port) == ("bypassed", "value")
    assert "mute the node instead" in bypass.fix


def test_graph_invalid_message_lists_node_port_and_fix(treg: Registry) -> None:
    problems = validate(broken_graph(), treg.get)
    text = str(GraphInvalid(problems))
    assert text.startswith(f"The graph is invalid ({len(problems)} problems):")
    assert "  - node 'mismatch', port 'value': type mismatch" in text
    assert text.count("Fix: ") == len(problems)


def test_edges_to_missing_nodes_and_ports_are_named(treg: Registry) -> None:
    g = Graph()
    g.add_node("math.binary", "a")
    g.add_node("math.scale", "b")
    g.edges.append(Edge("a", "valu", "b", "value"))
    g.edges.append(Edge("nobody", "value", "b", "value"))
    g.edges.append(Edge("a", "value", "b", "size"))
    problems = validate(g, treg.get)
    texts = [str(p) for p in problems]
    assert any("has no output 'valu'. Did you mean 'value'?" in t for t in texts)
    assert any("edge comes from a node 'nobody'" in t for t in texts)
    assert any("port 'size': 'math.scale' has no input 'size'" in t for t in texts)


def test_valid_graphs_and_muted_nodes_have_no_problems(treg: Registry) -> None:
    g = Graph()
    g.add_node("math.binary", "a")
    g.add_node("math.scale", "b")
    g.connect("a", "value", "b", "value")
    g.add_node("math.scale", "muted_unfed", mute=True)
    g.add_node("math.scale", "bypass_ok", bypass=True)
    g.connect("b", "value", "bypass_ok", "value")
    g.add_node("math.scale", "after")
    g.connect("bypass_ok", "value", "after", "value")
    g.add_node("math.sum", "ints")
    g.add_node("value.int", "i")
    g.connect("i", "value", "ints", "values", multi=True)  # int → float is allowed
    assert validate(g, treg.get) == []
