"""The executor: targets, cancellation, per-node errors, seeding, events, parallel branches,
bypass and mute."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from fathom.engine.context import CancelToken, RunOptions, derive_seed
from fathom.engine.errors import GraphInvalid
from fathom.engine.events import Event, Recorder
from fathom.engine.executor import Executor
from fathom.engine.graph import Edge, Graph
from fathom.engine.node import Node, Output, Param
from fathom.engine.registry import Registry
from fathom.engine.types import Bool, Float


def two_branches() -> Graph:
    """a → a2 and b → b2, independent."""
    g = Graph()
    g.add_node("math.binary", "a", {"a": 1.0})
    g.add_node("math.scale", "a2", {"factor": 3.0})
    g.add_node("math.binary", "b", {"a": 10.0})
    g.add_node("math.scale", "b2", {"factor": 5.0})
    g.connect("a", "value", "a2", "value")
    g.connect("b", "value", "b2", "value")
    return g


# ---- what runs -----------------------------------------------------------------------------


def test_runs_only_what_the_targets_need(make_executor: Callable[..., Executor]) -> None:
    result = make_executor().run(two_branches(), targets=["b2"])
    assert result.executed == ["b", "b2"] and set(result.records) == {"b", "b2"}
    assert result.output("b2", "value") == 50.0 and "a" not in result.values


def test_default_targets_are_output_nodes_else_leaves(
    make_executor: Callable[..., Executor],
) -> None:
    ex = make_executor()
    assert sorted(ex.run(two_branches()).executed) == ["a", "a2", "b", "b2"]
    g = two_branches()
    g.add_node("preview.show", "show")
    g.connect("a2", "value", "show", "value")
    result = make_executor().run(g)
    assert result.executed == ["a", "a2", "show"]


def test_a_long_chain_runs(make_executor: Callable[..., Executor]) -> None:
    g = Graph()
    g.add_node("math.binary", "n0", {"a": 1.0})
    for i in range(1, 1500):
        g.add_node("math.scale", f"n{i}", {"offset": 1.0})
        g.edges.append(Edge(f"n{i - 1}", "value", f"n{i}", "value"))
    result = make_executor().run(g)
    assert len(result.executed) == 1500 and result.output("n1499", "value") == 1500.0


def test_implicit_conversions_happen_on_the_edge(make_executor: Callable[..., Executor]) -> None:
    g = Graph()
    g.add_node("value.int", "i", {"value": 3})
    g.add_node("math.scale", "s", {"factor": 0.5})
    g.connect("i", "value", "s", "value")
    g.add_node("t.blob", "img", {"side": 2, "fill": 0.75})
    g.add_node("t.frames", "f")
    g.connect("img", "image", "f", "video")
    result = make_executor().run(g)
    assert result.output("s", "value") == 1.5
    assert (result.output("f", "length"), result.output("f", "fps")) == (1, 1.0)
    assert result.output("f", "first") is result.output("img", "image")


def test_unknown_targets_are_refused(make_executor: Callable[..., Executor]) -> None:
    with pytest.raises(GraphInvalid, match="node 'zz': no node 'zz' to render"):
        make_executor().run(two_branches(), targets=["zz"])


def test_call_runs_one_node_with_checked_params(make_executor: Callable[..., Executor]) -> None:
    ex = make_executor()
    assert ex.call("math.scale", {"value": 2.0}, {"factor": 4.0, "offset": 1.0}) == {"value": 9.0}
    with pytest.raises(GraphInvalid) as exc:
        ex.call("math.scale", {}, {"factr": 1.0})
    text = str(exc.value)
    assert "has no parameter 'factr'" in text and "required input 'value' is missing" in text


# ---- failures ------------------------------------------------------------------------------


def test_a_failing_node_keeps_the_other_branches(make_executor: Callable[..., Executor]) -> None:
    g = two_branches()
    g.add_node("t.boom", "boom")
    g.connect("a2", "value", "boom", "value")
    g.add_node("math.scale", "after_boom")
    g.connect("boom", "value", "after_boom", "value")
    result = make_executor().run(g)
    assert result.failed == ["boom"] and not result.ok
    assert result.records["after_boom"].status == "skipped"
    assert result.records["after_boom"].error == "input 'value' has no value: 'boom' is failed"
    assert result.output("b2", "value") == 50.0 and result.output("a2", "value") == 3.0
    rec = result.records["boom"]
    assert rec.error == "node 'boom' (t.boom) failed: RuntimeError: kaboom"
    assert "raise RuntimeError" in rec.traceback


def test_node_errors_name_node_port_and_fix(make_executor: Callable[..., Executor]) -> None:
    g = Graph()
    g.add_node("math.binary", "div", {"op": "divide", "a": 1.0, "b": 0.0})
    g.add_node("t.wrong", "wrong")
    result = make_executor().run(g)
    assert sorted(result.failed) == ["div", "wrong"]
    assert result.records["div"].error == (
        "node 'div', port 'y': division by zero. Fix: feed a non-zero divisor"
    )
    assert (
        result.records["wrong"].error == "node 'wrong', port 'image': output should be "
        "image, got float"
    )
    assert result.records["div"].traceback is None  # a deliberate error needs no traceback


class BuggyHooks(Node):
    """Its cache_extra hook crashes (when fussy, its check hook too)."""

    type_id = "t.buggy"
    outputs = (Output("value", Float),)
    params = (Param("fussy", Bool, False),)

    @classmethod
    def check(cls, params: dict[str, Any], ctx: Any) -> list[Any]:
        if params["fussy"]:
            raise KeyError("oops")
        return []

    @classmethod
    def cache_extra(cls, params: dict[str, Any], ctx: Any) -> str:
        raise OSError("stat failed")

    def run(self, ctx: Any, fussy: bool) -> dict[str, Any]:
        return {"value": 2.0}


def test_crashing_hooks_are_contained(treg: Registry) -> None:
    reg = Registry()
    reg.register_all([*treg.types(), BuggyHooks])
    ex = Executor(reg, library=lambda n: None)
    g = two_branches()
    g.add_node("t.buggy", "bug")
    assert ex.run(g).output("bug", "value") == 2.0
    again = ex.run(g)
    assert again.executed == ["bug"] and len(again.cached) == 4  # only it lost its cache
    g.set_param("bug", "fussy", True)
    with pytest.raises(
        GraphInvalid,
        match="node 'bug': its pre-flight check crashed: "
        r"KeyError\('oops'\)",
    ):
        ex.run(g)


# ---- cancellation --------------------------------------------------------------------------


def loop_graph() -> Graph:
    g = Graph()
    g.add_node("t.loop", "loop", {"steps": 50, "step_seconds": 0.002})
    g.add_node("math.scale", "s1")
    g.add_node("math.scale", "s2")
    g.connect("loop", "value", "s1", "value")
    g.connect("s1", "value", "s2", "value")
    return g


def test_cancel_from_a_listener_stops_inside_the_node(
    make_executor: Callable[..., Executor],
) -> None:
    cancel = CancelToken()
    progress: list[float] = []

    def listener(event: Event) -> None:
        if event.kind == "node_progress":
            progress.append(event.progress or 0.0)
            if event.progress and event.progress >= 0.2:
                cancel.cancel()

    result = make_executor().run(loop_graph(), listener=listener, cancel=cancel)
    assert result.cancelled and not result.ok
    assert [result.records[n].status for n in ("loop", "s1", "s2")] == ["cancelled"] * 3
    assert result.records["loop"].error == "cancelled while running node 'loop'"
    assert max(progress) == pytest.approx(0.2) and len(progress) == 11  # stopped at once
    assert "loop" not in result.values


def test_cancel_from_another_thread(make_executor: Callable[..., Executor]) -> None:
    cancel = CancelToken()
    started = threading.Event()
    g = loop_graph()
    g.set_param("loop", "steps", 5000)
    results = []

    def listener(event: Event) -> None:
        if event.kind == "node_progress":
            started.set()

    worker = threading.Thread(
        target=lambda: results.append(make_executor().run(g, listener=listener, cancel=cancel))
    )
    t0 = time.perf_counter()
    worker.start()
    assert started.wait(10)
    cancel.cancel()
    worker.join(10)
    assert not worker.is_alive() and time.perf_counter() - t0 < 5  # 5000 steps would take 10 s
    [result] = results
    assert result.cancelled and result.by_status("cancelled") == ["loop", "s1", "s2"]


# ---- seeds ---------------------------------------------------------------------------------


def test_seeding_is_deterministic_and_per_node(make_executor: Callable[..., Executor]) -> None:
    g = Graph()
    g.add_node("t.random", "r1")
    g.add_node("t.random", "r2")
    opts = RunOptions(seed=7, device="cpu")
    first = make_executor().run(g, options=opts)
    again = make_executor().run(g, options=opts)
    assert first.output("r1", "value") == again.output("r1", "value")
    assert first.output("r1", "value") != first.output("r2", "value")
    expected = np.random.default_rng(derive_seed(7, "r1")).random()
    assert first.output("r1", "value") == expected
    assert first.records["r2"].seed == derive_seed(7, "r2")
    other = make_executor().run(g, options=RunOptions(seed=8, device="cpu"))
    assert other.output("r1", "value") != first.output("r1", "value")


def test_derive_seed_is_stable_and_in_range() -> None:
    assert derive_seed(0, "a") == derive_seed(0, "a")
    assert len({derive_seed(0, "a"), derive_seed(0, "b"), derive_seed(1, "a")}) == 3
    assert all(0 <= derive_seed(s, n) < 2**63 for s in range(5) for n in "xyz")


# ---- events --------------------------------------------------------------------------------


def test_event_order_for_one_node_and_cached_on_rerun(
    make_executor: Callable[..., Executor],
) -> None:
    g = Graph()
    g.add_node("t.loop", "loop", {"steps": 3})
    ex = make_executor()
    rec = Recorder()
    ex.run(g, listener=rec)
    assert rec.kinds("loop") == [
        "node_queued",
        "node_started",
        "node_progress",
        "node_progress",
        "node_progress",
        "node_preview",
        "node_finished",
    ]
    assert [e.value for e in rec.events if e.kind == "node_preview"] == [3.0]
    assert [e.progress for e in rec.events if e.kind == "node_progress"] == pytest.approx(
        [0, 1 / 3, 2 / 3]
    )
    assert rec.kinds()[0] == "run_started" and rec.kinds()[-1] == "run_finished"
    rerun = Recorder()
    ex.run(g, listener=rerun)
    assert rerun.kinds("loop") == ["node_cached"]


def test_failed_and_skipped_nodes_emit_their_events(make_executor: Callable[..., Executor]) -> None:
    g = Graph()
    g.add_node("t.boom", "boom")
    g.add_node("math.scale", "after")
    g.connect("boom", "value", "after", "value")
    rec = Recorder()
    make_executor().run(g, listener=rec)
    assert rec.kinds("boom") == ["node_queued", "node_started", "node_failed"]
    assert rec.kinds("after") == ["node_queued", "node_skipped"]


# ---- parallel branches ---------------------------------------------------------------------


def wide_graph() -> Graph:
    g = Graph()
    g.add_node("math.binary", "root", {"a": 1.5, "b": 0.5})
    g.add_node("math.sum", "total")
    for i in range(6):
        g.add_node("math.scale", f"s{i}", {"factor": float(i + 1), "offset": 0.25})
        g.add_node("math.binary", f"p{i}", {"op": "power", "b": 2.0})
        g.connect("root", "value", f"s{i}", "value")
        g.connect(f"s{i}", "value", f"p{i}", "x")
        g.connect(f"p{i}", "value", "total", "values", multi=True)
    return g


def test_parallel_runs_give_the_sequential_results(make_executor: Callable[..., Executor]) -> None:
    seq = make_executor().run(wide_graph())
    par = make_executor(max_workers=2).run(wide_graph())
    assert par.values == seq.values and sorted(par.executed) == sorted(seq.executed)
    assert par.output("total", "value") == sum((2.0 * (i + 1) + 0.25) ** 2 for i in range(6))


def test_independent_branches_overlap(make_executor: Callable[..., Executor]) -> None:
    g = Graph()
    g.add_node("t.sleep", "left", {"seconds": 0.4})
    g.add_node("t.sleep", "right", {"seconds": 0.4})
    t0 = time.perf_counter()
    result = make_executor(max_workers=2).run(g)
    wall = time.perf_counter() - t0
    assert sorted(result.executed) == ["left", "right"]
    assert wall < 1.8 * 0.4


def test_parallel_cancel_stops_queued_nodes(make_executor: Callable[..., Executor]) -> None:
    g = loop_graph()
    g.add_node("t.sleep", "side", {"seconds": 0.05})
    cancel = CancelToken()

    def listener(event: Event) -> None:
        if event.kind == "node_progress" and (event.progress or 0) >= 0.1:
            cancel.cancel()

    result = make_executor(max_workers=2).run(g, listener=listener, cancel=cancel)
    assert result.cancelled
    assert [result.records[n].status for n in ("loop", "s1", "s2")] == ["cancelled"] * 3


# ---- bypass and mute -----------------------------------------------------------------------


def test_bypass_passes_the_same_typed_input_through(
    make_executor: Callable[..., Executor], graphs
) -> None:
    g = graphs.chain(3)  # 3 → ×2 → ×2
    g.set_flags("n1", bypass=True)
    result = make_executor().run(g)
    assert result.records["n1"].status == "bypassed"
    assert result.output("n1", "value") == 3.0 and result.output("n2", "value") == 6.0


def test_mute_skips_the_node_and_its_dependents(
    make_executor: Callable[..., Executor], graphs
) -> None:
    g = graphs.chain(4)
    g.set_flags("n1", mute=True)
    g.add_node("math.binary", "optional_user", {"a": 7.0, "b": 1.0})  # x optional
    g.connect("n1", "value", "optional_user", "x")
    result = make_executor().run(g)
    assert result.records["n1"].status == "muted"
    assert [result.records[n].status for n in ("n2", "n3")] == ["skipped", "skipped"]
    assert result.records["n2"].error == "input 'value' has no value: 'n1' is muted"
    assert result.records["optional_user"].status == "executed"
    assert result.output("optional_user", "value") == 8.0  # x got None: a is used
    assert result.executed == ["optional_user"] and result.records["n0"].status == "not_needed"
