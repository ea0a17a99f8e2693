"""Subgraphs: made from a selection, nested, exposed parameters, cache inside, stored in the
file and in a library folder."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from fathom.engine import graphfile
from fathom.engine.errors import GraphFileError, GraphInvalid
from fathom.engine.executor import Executor
from fathom.engine.graph import Exposed, Graph, SubgraphDef
from fathom.engine.registry import Registry
from fathom.engine.subgraph import Scope, make_subgraph


def pipeline() -> Graph:
    """src(6) → half(×0.5) → plus(+1) → out(×10); tap(×2) reads half; total sums out, tap."""
    g = Graph()
    g.add_node("math.binary", "src", {"a": 4.0, "b": 2.0})
    g.add_node("math.scale", "half", {"factor": 0.5})
    g.add_node("math.scale", "plus", {"offset": 1.0})
    g.add_node("math.scale", "out", {"factor": 10.0})
    g.add_node("math.scale", "tap", {"factor": 2.0})
    g.add_node("math.sum", "total")
    g.connect("src", "value", "half", "value")
    g.connect("half", "value", "plus", "value")
    g.connect("plus", "value", "out", "value")
    g.connect("half", "value", "tap", "value")
    g.connect("out", "value", "total", "values", multi=True)
    g.connect("tap", "value", "total", "values", multi=True)
    return g


def outputs(result, nodes=("out", "tap", "total")) -> dict[str, float]:
    return {n: result.output(n, "value") for n in nodes}


def test_make_subgraph_keeps_the_results(make_executor: Callable[..., Executor]) -> None:
    before = make_executor().run(pipeline())
    g = pipeline()
    inst = make_subgraph(g, ["half", "plus"], "halfplus")
    assert inst.type == "subgraph.halfplus" and set(g.nodes) == {
        "src",
        "out",
        "tap",
        "total",
        inst.id,
    }
    d = g.subgraphs["halfplus"]
    assert [x.name for x in d.inputs] == ["half_value"]
    assert sorted(x.name for x in d.outputs) == ["half_value", "plus_value"]
    after = make_executor().run(g)
    assert outputs(after) == outputs(before) == {"out": 40.0, "tap": 6.0, "total": 46.0}
    assert sorted(after.executed) == sorted(
        ["src", f"{inst.id}/half", f"{inst.id}/plus", "out", "tap", "total"]
    )


def test_made_subgraphs_always_save_loadably(
    tmp_path: Path, treg: Registry, make_executor: Callable[..., Executor]
) -> None:
    g = Graph()
    g.add_node("math.binary", "src-1", {"a": 2.0})
    g.add_node("math.scale", "x-2", {"factor": 3.0})
    g.add_node("math.scale", "y-3")
    g.connect("src-1", "value", "x-2", "value")
    g.connect("x-2", "value", "y-3", "value")
    with pytest.raises(ValueError, match="subgraph name 'My Sub' must be lowercase"):
        make_subgraph(g, ["x-2"], "My Sub")
    make_subgraph(g, ["x-2"], "triple", expose_params=[("x-2", "factor")], instance_id="t")
    d = g.subgraphs["triple"]
    assert [x.name for x in (*d.inputs, *d.outputs, *d.params)] == [
        "x_2_value",
        "x_2_value",
        "x_2_factor",
    ]
    loaded = graphfile.load(graphfile.save(g, tmp_path / "g.json", treg), treg)
    assert make_executor().run(loaded).output("y-3", "value") == 6.0


def test_nested_subgraphs_flatten_and_run(make_executor: Callable[..., Executor]) -> None:
    g = pipeline()
    inner = make_subgraph(g, ["half", "plus"], "inner", instance_id="in1")
    outer = make_subgraph(g, ["in1", "out"], "outer", instance_id="out1")
    assert g.subgraphs["outer"].graph.nodes["in1"].type == "subgraph.inner"
    assert inner.id in g.subgraphs["outer"].graph.nodes
    result = make_executor().run(g)
    assert result.output("out1/out", "value") == 40.0
    assert result.output("total", "value") == 46.0 and result.output("tap", "value") == 6.0
    assert {"out1/in1/half", "out1/in1/plus", "out1/out"} <= set(result.executed)
    assert outer.id == "out1"


def test_exposed_params_override_inner_params(make_executor: Callable[..., Executor]) -> None:
    g = pipeline()
    inst = make_subgraph(
        g, ["half", "plus"], "hp", expose_params=[("plus", "offset")], instance_id="hp1"
    )
    ex = make_executor()
    assert ex.run(g).output("out", "value") == 40.0  # default: the inner value 1.0
    g.set_param("hp1", "plus_offset", 7.0)
    result = ex.run(g)
    assert result.output("out", "value") == 100.0 and result.output("tap", "value") == 6.0
    assert sorted(result.executed) == ["hp1/plus", "out", "total"]  # cache works inside
    assert ex.run(g).executed == []
    spec = Scope(ex.registry, g.subgraphs).get(inst.type).param("plus_offset")
    assert spec is not None and spec.default == 1.0


def test_bad_instance_params_are_reported(make_executor: Callable[..., Executor]) -> None:
    g = pipeline()
    make_subgraph(g, ["half", "plus"], "hp", expose_params=[("half", "factor")], instance_id="hp1")
    g.set_param("hp1", "plus_offset", 3.0)  # not exposed
    g.set_param("hp1", "half_factor", "lots")
    with pytest.raises(GraphInvalid) as exc:
        make_executor().run(g)
    problems = {(p.node, p.port, p.code) for p in exc.value.problems}
    assert problems == {
        ("hp1", "plus_offset", "unknown_param"),
        ("hp1/half", "factor", "bad_param"),
    }
    assert "subgraph 'hp' exposes no parameter 'plus_offset'" in str(exc.value)


def test_a_subgraph_that_contains_itself_is_refused(
    treg: Registry, make_executor: Callable[..., Executor]
) -> None:
    inner = Graph()
    inner.add_node("math.binary", "a")
    inner.add_node("subgraph.selfish", "again")
    g = Graph()
    g.subgraphs["selfish"] = SubgraphDef("selfish", inner)
    g.add_node("subgraph.selfish", "s")
    with pytest.raises(GraphInvalid, match="node 's/again': subgraph 'selfish' contains itself"):
        make_executor().run(g)


def test_bypass_and_mute_apply_to_subgraph_instances(
    make_executor: Callable[..., Executor],
) -> None:
    g = pipeline()
    make_subgraph(g, ["plus"], "p", instance_id="p1")
    g.set_flags("p1", bypass=True)
    result = make_executor().run(g)
    assert result.records["p1"].status == "bypassed"
    assert result.output("out", "value") == 30.0  # +1 skipped
    g.set_flags("p1", bypass=False, mute=True)
    muted = make_executor().run(g)
    assert muted.records["p1"].status == "muted" and muted.records["out"].status == "skipped"
    assert muted.output("tap", "value") == 6.0


def test_subgraphs_round_trip_in_the_file(
    tmp_path: Path, treg: Registry, make_executor: Callable[..., Executor]
) -> None:
    g = pipeline()
    make_subgraph(
        g, ["half", "plus"], "inner", instance_id="in1", expose_params=[("plus", "offset")]
    )
    make_subgraph(g, ["in1", "out"], "outer", instance_id="out1")
    first = graphfile.save(g, tmp_path / "g.json", treg)
    loaded = graphfile.load(first, treg)
    second = graphfile.save(loaded, tmp_path / "g2.json", treg)
    assert first.read_bytes() == second.read_bytes()
    assert loaded.subgraphs["inner"].params == [Exposed("plus_offset", "plus", "offset")]
    assert make_executor().run(loaded).output("total", "value") == 46.0


def test_a_library_folder_resolves_subgraph_types(tmp_path: Path, treg: Registry) -> None:
    source = pipeline()
    make_subgraph(source, ["half", "plus"], "halfplus", expose_params=[("plus", "offset")])
    path = graphfile.save_subgraph(source.subgraphs["halfplus"], tmp_path / "lib", treg)
    assert path == tmp_path / "lib" / "halfplus.json"

    g = Graph()  # uses the type without holding its definition
    g.add_node("math.binary", "src", {"a": 1.0, "b": 1.0})
    g.add_node("subgraph.halfplus", "hp", {"plus_offset": 0.5})
    g.connect("src", "value", "hp", "half_value")
    library = graphfile.SubgraphLibrary([tmp_path / "empty", tmp_path / "lib"], treg)
    assert library.names() == ["halfplus"]
    result = Executor(treg, library=library).run(g)
    assert result.output("hp/plus", "value") == 1.5
    with pytest.raises(GraphInvalid, match="unknown node type 'subgraph.halfplus'"):
        Executor(treg, library=graphfile.SubgraphLibrary([tmp_path / "empty"])).run(g)


def test_a_nested_library_subgraph_carries_its_inner_definitions(
    tmp_path: Path, treg: Registry
) -> None:
    source = pipeline()
    make_subgraph(source, ["half", "plus"], "inner", instance_id="in1")
    make_subgraph(source, ["in1", "out"], "outer", instance_id="out1")
    graphfile.save_subgraph(source.subgraphs["outer"], tmp_path / "alone", treg)
    graphfile.save_subgraph(
        source.subgraphs["outer"], tmp_path / "lib", treg, uses=source.subgraphs
    )
    assert sorted(p.name for p in (tmp_path / "lib").iterdir()) == ["outer.json"]

    g = Graph()
    g.add_node("math.binary", "src", {"a": 2.0, "b": 2.0})
    g.add_node("subgraph.outer", "o")
    g.connect("src", "value", "o", "in1_half_value")
    lib = graphfile.SubgraphLibrary([tmp_path / "lib"], treg)
    assert Executor(treg, library=lib).run(g).output("o/out", "value") == 30.0
    alone = graphfile.SubgraphLibrary([tmp_path / "alone"], treg)
    with pytest.raises(GraphInvalid, match="unknown node type 'subgraph.inner'"):
        Executor(treg, library=alone).run(g)


def test_a_library_file_of_the_wrong_format_is_refused(tmp_path: Path, treg: Registry) -> None:
    (tmp_path / "x.json").write_text('{"format": "fathom.graph", "version": 1}')
    g = Graph()
    g.add_node("subgraph.x", "x")
    with pytest.raises(GraphFileError, match="is not a Fathom subgraph file"):
        Executor(treg, library=graphfile.SubgraphLibrary([tmp_path])).run(g)
