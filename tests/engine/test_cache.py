"""The content-addressed cache: what re-runs after a change (counted), keys that ignore instance
ids, the LRU byte budget, and nodes that opt out."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

from fathom.engine.cache import OutputCache
from fathom.engine.executor import Executor
from fathom.engine.graph import Graph
from fathom.engine.types import Image

# ---- OutputCache on its own ----------------------------------------------------------------


def arr(n_bytes: int) -> np.ndarray:
    return np.zeros(n_bytes // 8, np.float64)


def test_lru_evicts_the_least_recently_used_past_the_budget() -> None:
    cache = OutputCache(max_bytes=3 * (1000 + 128))
    for key in "abc":
        cache.put(key, {"v": arr(1000)})
    assert len(cache) == 3 and cache.nbytes == 3 * 1128 and cache.evictions == 0
    assert cache.get("a") is not None  # a is now the most recent
    cache.put("d", {"v": arr(1000)})
    assert "b" not in cache and all(k in cache for k in "acd")
    assert cache.evictions == 1 and cache.nbytes == 3 * 1128
    assert (cache.hits, cache.misses) == (1, 0)
    assert cache.get("b") is None and cache.misses == 1


def test_an_entry_bigger_than_the_budget_is_not_kept_and_flushes_nothing() -> None:
    cache = OutputCache(max_bytes=5000)
    cache.put("small", {"v": arr(800)})
    cache.put("huge", {"v": arr(8000)})
    assert "huge" not in cache and "small" in cache and cache.evictions == 0


def test_replacing_a_key_and_clearing_keep_the_byte_count_right() -> None:
    cache = OutputCache(max_bytes=10_000)
    cache.put("k", {"v": arr(800)})
    cache.put("k", {"v": arr(1600)})
    assert len(cache) == 1 and cache.nbytes == 1600 + 128
    cache.clear()
    assert len(cache) == 0 and cache.nbytes == 0


def test_the_executor_respects_the_cache_budget(make_executor: Callable[..., Executor]) -> None:
    g = Graph()
    for i in range(3):  # three 32×32 RGB float images: 12 KiB each
        g.add_node("t.blob", f"b{i}", {"side": 32, "fill": i / 4})
    ex = make_executor(cache=OutputCache(max_bytes=2 * (12288 + 128)))
    assert len(ex.run(g).executed) == 3
    assert len(ex.cache) == 2 and ex.cache.evictions == 1
    again = ex.run(g)  # b0 was the least recently used: only it runs again
    assert again.executed == ["b0"] and sorted(again.cached) == ["b1", "b2"]
    assert ex.cache.evictions == 2 and len(ex.cache) == 2
    assert isinstance(again.output("b0", "image"), Image)
    assert float(again.output("b0", "image").data.max()) == 0.0


# ---- what re-runs --------------------------------------------------------------------------


def test_an_unchanged_graph_executes_nothing(
    make_executor: Callable[..., Executor], graphs
) -> None:
    ex = make_executor()
    g = graphs.chain(5)
    first = ex.run(g)
    assert first.executed == ["n0", "n1", "n2", "n3", "n4"]
    assert first.output("n4", "value") == 3 * 2**4
    second = ex.run(g)
    assert second.executed == [] and len(second.cached) == 5
    assert second.output("n4", "value") == 48.0


def test_one_parameter_change_reruns_exactly_the_downstream_chain(
    make_executor: Callable[..., Executor], graphs
) -> None:
    ex = make_executor()
    g = graphs.chain(6)
    ex.run(g)
    g.set_param("n3", "factor", 10.0)
    result = ex.run(g)
    assert result.executed == ["n3", "n4", "n5"]
    assert result.cached == ["n0", "n1", "n2"]
    assert result.output("n5", "value") == 3 * 2 * 2 * 10 * 2 * 2
    g.set_param("n3", "factor", 2.0)  # back to a value seen before: all cached
    assert ex.run(g).executed == []


def test_one_parameter_change_on_a_diamond(make_executor: Callable[..., Executor], graphs) -> None:
    ex = make_executor()
    g = graphs.diamond()
    assert ex.run(g).output("bottom", "value") == 25.0
    g.set_param("right", "factor", 4.0)
    result = ex.run(g)
    assert result.executed == ["right", "bottom"]
    assert result.output("bottom", "value") == 30.0
    g.set_param("top", "a", 0.0)
    assert ex.run(g).executed == ["top", "left", "right", "bottom"]


def test_cache_keys_ignore_the_instance_id(make_executor: Callable[..., Executor]) -> None:
    ex = make_executor()
    first, second = Graph(), Graph()
    first.add_node("math.binary", "alpha", {"op": "power", "a": 2.0, "b": 10.0})
    second.add_node("math.binary", "renamed", {"op": "power", "a": 2.0, "b": 10.0})
    r1 = ex.run(first)
    r2 = ex.run(second)
    assert r1.executed == ["alpha"] and r2.cached == ["renamed"]
    assert r1.records["alpha"].key == r2.records["renamed"].key
    assert r2.output("renamed", "value") == 1024.0
    assert len(ex.cache) == 1


def test_non_cacheable_nodes_and_their_dependents_rerun(
    make_executor: Callable[..., Executor],
) -> None:
    ex = make_executor()
    g = Graph()
    g.add_node("t.clock", "clock")
    g.add_node("math.scale", "after_clock")
    g.connect("clock", "value", "after_clock", "value")
    g.add_node("math.binary", "steady", {"a": 1.0})
    first = ex.run(g)
    second = ex.run(g)
    assert sorted(second.executed) == ["after_clock", "clock"]
    assert second.cached == ["steady"]
    assert second.output("clock", "value") > first.output("clock", "value")


def test_seeded_nodes_keep_the_node_id_in_their_key(make_executor: Callable[..., Executor]) -> None:
    """A node seeded from its id must not reuse another id's cached draw."""
    ex = make_executor()
    a, b = Graph(), Graph()
    a.add_node("t.random", "first")
    b.add_node("t.random", "second")
    ra, rb = ex.run(a), ex.run(b)
    assert rb.executed == ["second"]
    assert ra.output("first", "value") != rb.output("second", "value")
    assert ex.run(a).cached == ["first"]


@pytest.mark.parametrize("flag", ["bypass", "mute"])
def test_flags_are_part_of_the_key(
    make_executor: Callable[..., Executor], graphs, flag: str
) -> None:
    ex = make_executor()
    g = graphs.chain(3)
    ex.run(g)
    g.set_flags("n1", **{flag: True})
    result = ex.run(g)
    assert result.records["n1"].status == ("bypassed" if flag == "bypass" else "muted")
    assert "n2" not in result.cached
