"""Kept plans: an unchanged re-render reuses the graph-only planning work, every change to what
a plan depends on plans afresh, and pre-flight checks still run on every render."""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image as PILImage

from fathom.engine import graphfile
from fathom.engine.context import RunOptions
from fathom.engine.errors import GraphInvalid
from fathom.engine.executor import Executor
from fathom.engine.graph import Graph, SubgraphDef
from fathom.engine.node import Node, Output, Param
from fathom.engine.registry import Registry
from fathom.engine.subgraph import make_subgraph
from fathom.engine.types import Color, Float


class FramesSeen(Node):
    """An output node that reports the run's frame range: run options reach the nodes."""

    type_id = "t.frames_seen"
    category = "test"
    is_output = True
    outputs = (Output("value", Float),)

    def run(self, ctx: Any) -> dict[str, Any]:
        frames = ctx.options.frames
        return {"value": -1.0 if frames is None else float(frames[1] - frames[0])}


class Red(Node):
    """The red component of a colour parameter, which may be given as a list."""

    type_id = "t.red"
    category = "test"
    outputs = (Output("value", Float),)
    params = (Param("color", Color, (0.0, 0.0, 0.0, 1.0)),)

    def run(self, ctx: Any, color: tuple[float, ...]) -> dict[str, Any]:
        return {"value": color[0]}


@pytest.fixture(scope="module")
def reg(treg: Registry) -> Registry:
    """The test registry plus this module's nodes."""
    out = Registry()
    out.register_all(treg.types())
    out.register_all((FramesSeen, Red))
    return out


@pytest.fixture
def ex(reg: Registry) -> Executor:
    return Executor(reg, library=lambda name: None)


def chain() -> Graph:
    """n0 (1 + 2 = 3) → n1 (×2) → n2 (×2) → n3 (×2) = 24."""
    g = Graph()
    g.add_node("math.binary", "n0", {"a": 1.0, "b": 2.0})
    for i in range(1, 4):
        g.add_node("math.scale", f"n{i}", {"factor": 2.0})
        g.connect(f"n{i - 1}", "value", f"n{i}", "value")
    return g


def fresh(reg: Registry, graph: Graph, **kwargs: Any) -> dict[str, Any]:
    """What a new executor (nothing kept, nothing cached) computes for ``graph``."""
    return values(Executor(reg, library=lambda name: None).run(graph, **kwargs))


def values(result: Any) -> dict[str, Any]:
    """Each node's "value" output (None for nodes without one)."""
    return {n: v.get("value") for n, v in result.values.items()}


# ---- reuse ---------------------------------------------------------------------------------


def test_an_unchanged_rerun_reuses_the_plan(ex: Executor) -> None:
    g = chain()
    first = ex.plan(g)
    assert ex.plan(g) is first and ex.plans_built == 1
    assert ex.run(g).output("n3", "value") == 24.0
    assert ex.run(g).executed == [] and ex.plans_built == 1


def test_a_copy_and_editor_data_keep_the_plan(ex: Executor) -> None:
    """The editor renders a fresh copy of its graph each time; moving a node changes nothing
    that runs."""
    g = chain()
    first = ex.plan(g)
    g.ui.setdefault("nodes", {})["n1"] = {"pos": [10.0, 20.0]}
    assert ex.plan(g) is first
    assert ex.plan(g.copy()) is first and ex.plans_built == 1


def test_the_revision_counts_edits_made_through_the_graph() -> None:
    g = chain()
    before = g.revision
    g.set_param("n1", "factor", 3.0)
    g.set_flags("n1", mute=True)
    g.ui["nodes"] = {"n1": {"pos": [0.0, 0.0]}}  # editor data is not an edit of the graph
    assert g.revision == before + 2
    g.touch()
    assert g.revision == before + 3


# ---- every change plans afresh -------------------------------------------------------------


def _set_param(g: Graph) -> None:
    g.set_param("n2", "factor", 5.0)


def _param_in_place(g: Graph) -> None:
    g.nodes["n2"].params["factor"] = 5.0  # as undo, render overrides and tests do


def _param_removed(g: Graph) -> None:
    del g.nodes["n2"].params["factor"]  # back to the default, 1.0


def _edge_removed(g: Graph) -> None:
    g.disconnect(g.incoming("n3")[0])
    g.add_node("math.binary", "other", {"a": 7.0})
    g.connect("other", "value", "n3", "value")


def _edge_added(g: Graph) -> None:
    g.add_node("math.sum", "total")
    g.connect("n1", "value", "total", "values", multi=True)
    g.connect("n3", "value", "total", "values", multi=True)


def _edge_appended(g: Graph) -> None:
    g.add_node("math.sum", "total")
    g.connect("n3", "value", "total", "values", multi=True)
    g.edges.append(g.edges[-1].__class__("n0", "value", "total", "values"))


def _node_added(g: Graph) -> None:
    g.add_node("math.binary", "lone", {"a": 5.0, "b": 5.0})


def _node_removed(g: Graph) -> None:
    g.remove_node("n3")


def _bypassed(g: Graph) -> None:
    g.set_flags("n2", bypass=True)


def _bypassed_in_place(g: Graph) -> None:
    g.nodes["n2"].bypass = True


def _muted(g: Graph) -> None:
    g.set_flags("n3", mute=True)


def _reordered(g: Graph) -> None:
    g.nodes = dict(reversed(list(g.nodes.items())))


CHANGES = {
    "set_param": _set_param,
    "param edited in place": _param_in_place,
    "param removed": _param_removed,
    "edge removed": _edge_removed,
    "edge added": _edge_added,
    "edge appended to the list": _edge_appended,
    "node added": _node_added,
    "node removed": _node_removed,
    "bypass toggled": _bypassed,
    "bypass set in place": _bypassed_in_place,
    "mute toggled": _muted,
    "node order": _reordered,
}


@pytest.mark.parametrize("change", list(CHANGES.values()), ids=list(CHANGES))
def test_every_change_plans_afresh(
    ex: Executor, reg: Registry, change: Callable[[Graph], None]
) -> None:
    g = chain()
    before = ex.plan(g)
    ex.run(g)
    change(g)
    after = ex.plan(g)
    assert after is not before and ex.plans_built == 2
    got, want = values(ex.run(g)), fresh(reg, g)
    assert {t: got.get(t) for t in after.targets} == {t: want.get(t) for t in after.targets}
    assert ex.plan(g) is after  # and the new plan is kept in turn


def test_a_value_of_another_type_is_a_change(ex: Executor) -> None:
    """``1.0 == True`` in Python, but a float parameter refuses True."""
    g = chain()
    g.set_param("n2", "factor", 1.0)
    ex.plan(g)
    g.nodes["n2"].params["factor"] = True
    with pytest.raises(GraphInvalid, match="expected a number, got True"):
        ex.plan(g)


def test_a_list_parameter_edited_in_place_is_a_change(ex: Executor, reg: Registry) -> None:
    g = Graph()
    g.add_node("t.red", "r", {"color": [0.25, 0.0, 0.0]})
    assert ex.run(g).output("r", "value") == 0.25
    g.nodes["r"].params["color"][0] = 0.75
    assert ex.run(g).output("r", "value") == 0.75 and ex.plans_built == 2


def test_going_back_finds_the_earlier_plan(ex: Executor) -> None:
    """A slider dragged away and back: the plan for the old value is still kept."""
    g = chain()
    first = ex.plan(g)
    g.set_param("n2", "factor", 5.0)
    ex.plan(g)
    g.set_param("n2", "factor", 2.0)
    assert ex.plan(g) is first and ex.plans_built == 2


def test_a_changed_subgraph_definition_plans_afresh(ex: Executor, reg: Registry) -> None:
    g = chain()
    make_subgraph(g, ["n1", "n2"], "twice", instance_id="tw")
    assert ex.run(g).output("n3", "value") == 24.0
    inner = g.subgraphs["twice"].graph
    inner.nodes["n2"].params["factor"] = 10.0  # the definition, edited in place
    assert ex.run(g).output("n3", "value") == 120.0 == fresh(reg, g)["n3"]
    g.subgraphs["twice"].outputs.clear()  # its output no longer exposed: n3 loses its input
    with pytest.raises(GraphInvalid, match="required input 'value'"):
        ex.plan(g)


def test_a_definition_holding_itself_is_refused_every_time(ex: Executor) -> None:
    """Its state cannot be read (it never ends): nothing is kept, flattening reports it."""
    inner = Graph()
    inner.add_node("math.binary", "a")
    inner.add_node("subgraph.selfish", "again")
    inner.subgraphs["selfish"] = SubgraphDef("selfish", inner)
    g = Graph()
    g.subgraphs["selfish"] = inner.subgraphs["selfish"]
    g.add_node("subgraph.selfish", "s")
    for _ in range(2):
        with pytest.raises(GraphInvalid, match="subgraph 'selfish' contains itself"):
            ex.plan(g)


def test_a_changed_library_file_plans_afresh(reg: Registry, tmp_path: Path) -> None:
    source = chain()
    make_subgraph(source, ["n1", "n2"], "twice")
    lib = tmp_path / "lib"
    graphfile.save_subgraph(source.subgraphs["twice"], lib, reg)
    g = Graph()
    g.add_node("math.binary", "src", {"a": 1.0, "b": 2.0})
    g.add_node("subgraph.twice", "tw")
    g.connect("src", "value", "tw", "n1_value")
    ex = Executor(reg, library=graphfile.SubgraphLibrary([lib], reg))
    first = ex.plan(g)
    assert ex.run(first).output("tw/n2", "value") == 12.0
    assert ex.plan(g) is first

    source.subgraphs["twice"].graph.nodes["n2"].params["factor"] = 10.0
    graphfile.save_subgraph(source.subgraphs["twice"], lib, reg)
    again = ex.plan(g)
    assert again is not first and ex.run(again).output("tw/n2", "value") == 60.0

    (lib / "twice.json").unlink()
    with pytest.raises(GraphInvalid, match="unknown node type 'subgraph.twice'"):
        ex.plan(g)


def test_other_targets_plan_afresh(ex: Executor) -> None:
    g = chain()
    whole = ex.plan(g)
    part = ex.plan(g, ["n1"])
    assert part is not whole and part.needed == ["n0", "n1"]
    result = ex.run(g, ["n1"])
    assert set(result.records) == {"n0", "n1"} and result.output("n1", "value") == 6.0
    assert ex.plan(g) is whole and ex.plan(g, ["n1"]) is part and ex.plans_built == 2


def test_other_options_get_their_own_plan_without_planning_again(
    ex: Executor, reg: Registry
) -> None:
    g = chain()
    g.add_node("t.frames_seen", "seen")
    g.add_node("t.random", "rnd")
    opts = RunOptions(device="cpu", frames=(0, 10))
    first = ex.plan(g, options=opts)
    assert ex.plan(g, options=RunOptions(device="cpu", frames=(0, 10))) is first
    assert ex.run(g, options=opts).output("seen", "value") == 10.0

    fewer = ex.plan(g, options=RunOptions(device="cpu", frames=(2, 5)))
    assert fewer is not first and fewer.options.frames == (2, 5)
    assert ex.run(fewer).output("seen", "value") == 3.0
    auto = ex.plan(g, options=RunOptions(device="auto", frames=(0, 10)))
    assert auto is not first and auto.options.device == "auto"
    assert ex.run(auto).executed == []  # the device is no part of a key: all cached

    seven = RunOptions(device="cpu", seed=7)
    seeded = ex.run(g, ["rnd"], seven).output("rnd", "value")
    assert seeded == fresh(reg, g, targets=["rnd"], options=seven)["rnd"]
    assert seeded != ex.run(g, ["rnd"]).output("rnd", "value")
    assert ex.plans_built == 2  # the whole graph and the "rnd" target; options never re-plan


def test_options_changed_in_place_are_seen(ex: Executor) -> None:
    """A caller that edits its RunOptions between runs gets keys for the new values."""
    g = Graph()
    g.add_node("t.random", "rnd")
    opts = RunOptions(device="cpu", seed=1)
    one = ex.run(g, options=opts).output("rnd", "value")
    opts.seed = 2
    two = ex.run(g, options=opts)
    assert two.executed == ["rnd"] and two.output("rnd", "value") != one


def test_a_new_registry_or_library_plans_afresh(ex: Executor, reg: Registry) -> None:
    g = chain()
    first = ex.plan(g)
    ex.registry = Registry()
    ex.registry.register_all(reg.types())
    second = ex.plan(g)
    assert second is not first
    ex.library = lambda name: None
    assert ex.plan(g) is not second and ex.plans_built == 3


# ---- what still runs every time --------------------------------------------------------------


def _png(path: Path, level: int) -> Path:
    PILImage.fromarray(np.full((2, 2, 3), level, np.uint8)).save(path)
    return path


def test_a_deleted_input_file_is_reported_on_an_unchanged_rerun(
    ex: Executor, tmp_path: Path
) -> None:
    png = _png(tmp_path / "in.png", 51)
    g = Graph()
    g.add_node("image.load", "load", {"path": str(png)})
    result = ex.run(g)
    assert result.ok and float(result.output("load", "image").data[0, 0, 0]) == pytest.approx(0.2)
    png.unlink()
    with pytest.raises(GraphInvalid, match="does not exist"):
        ex.plan(g)
    with pytest.raises(GraphInvalid, match="does not exist"):
        ex.run(g)
    assert ex.plans_built == 1  # the kept plan, checked again


def test_a_rewritten_input_file_runs_again(ex: Executor, tmp_path: Path) -> None:
    """Its cache key reads the file's size and time on every run, a kept plan or not."""
    png = _png(tmp_path / "in.png", 51)
    g = Graph()
    g.add_node("image.load", "load", {"path": str(png)})
    assert ex.run(g).executed == ["load"]
    assert ex.run(g).cached == ["load"]
    _png(tmp_path / "in.png", 204)
    later = ex.run(g)
    assert later.executed == ["load"]
    assert float(later.output("load", "image").data[0, 0, 0]) == pytest.approx(0.8)


def test_uncacheable_nodes_still_run_every_time(ex: Executor) -> None:
    g = Graph()
    g.add_node("t.clock", "clock")
    g.add_node("math.scale", "after", {"factor": 1.0})
    g.connect("clock", "value", "after", "value")
    first = ex.run(g)
    second = ex.run(g)
    assert second.executed == ["clock", "after"] and ex.plans_built == 1
    assert second.output("after", "value") != first.output("after", "value")


# ---- threads ---------------------------------------------------------------------------------


def test_concurrent_runs_from_two_threads_stay_correct(ex: Executor, reg: Registry) -> None:
    """Two threads render the same executor's graphs, one re-rendering and one changing a
    parameter each time; every result is what a fresh executor computes."""
    errors: list[str] = []
    shared = chain()

    def same_graph() -> None:
        for _ in range(40):
            got = ex.run(shared.copy()).output("n3", "value")
            if got != 24.0:
                errors.append(f"unchanged graph gave {got}")

    def changing() -> None:
        g = chain()
        for i in range(40):
            g.set_param("n0", "b", float(i))
            got = ex.run(g).output("n3", "value")
            if got != (1.0 + i) * 8:
                errors.append(f"b={i} gave {got}")

    threads = [threading.Thread(target=same_graph), threading.Thread(target=changing)]
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # hand the GIL over all the time, mid-plan and mid-run
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        sys.setswitchinterval(interval)
    assert not errors
    assert ex.run(shared).executed == []
