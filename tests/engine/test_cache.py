"""The content-addressed cache: what re-runs after a change (counted), keys that ignore instance
ids, the LRU byte budgets (memory, and the spill files of lazy videos), and nodes that opt out."""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from fathom.engine.cache import OutputCache
from fathom.engine.executor import Executor
from fathom.engine.graph import Graph
from fathom.engine.media.framestore import FrameStore
from fathom.engine.node import Input, Node, Output, Param
from fathom.engine.registry import Registry
from fathom.engine.types import Float, Image, Int, Video

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


# ---- spill files: lazy videos whose frames wait in a temporary file -----------------------------

FRAME = (4, 6, 3)  # H × W × C, uint8: 72 bytes a frame on disk


def filled_store(folder: Path, frames: int) -> FrameStore:
    store = FrameStore(FRAME[1], FRAME[0], FRAME[2], folder=folder)
    for i in range(frames):
        store.append(np.full(FRAME, i, np.uint8))
    return store


def spill_files(folder: Path) -> list[Path]:
    return sorted(folder.glob("fathom-frames-*"))


def test_the_byte_count_includes_spilled_bytes_also_written_after_the_put(
    tmp_path: Path,
) -> None:
    cache = OutputCache(max_bytes=10**6, max_disk_bytes=10**6)
    store = filled_store(tmp_path, 0)
    cache.put("k", {"video": store.video(10.0)})
    memory = cache.nbytes
    assert cache.disk_nbytes == 0
    for i in range(5):  # a reader pulls frames after the put, as with video.depth's store
        store.append(np.full(FRAME, i, np.uint8))
    on_disk = store.path.stat().st_size
    assert on_disk == 5 * 72 and cache.disk_nbytes == on_disk
    assert cache.nbytes == memory + on_disk


def test_evicting_replacing_or_clearing_a_spilled_value_deletes_its_file(tmp_path: Path) -> None:
    cache = OutputCache(max_bytes=10**6, max_disk_bytes=15 * 72)  # room for one 10-frame store
    cache.put("a", {"video": filled_store(tmp_path, 10).video(10.0)})
    (first,) = spill_files(tmp_path)
    cache.put("b", {"video": filled_store(tmp_path, 10).video(10.0)})
    assert "a" not in cache and cache.evictions == 1 and not first.exists()
    (second,) = spill_files(tmp_path)
    cache.put("b", {"video": filled_store(tmp_path, 2).video(10.0)})  # a new result, same key
    assert not second.exists() and len(spill_files(tmp_path)) == 1
    assert cache.disk_nbytes == 2 * 72
    cache.clear()
    assert spill_files(tmp_path) == [] and cache.nbytes == 0


def test_past_the_disk_budget_only_entries_holding_files_are_evicted(tmp_path: Path) -> None:
    cache = OutputCache(max_bytes=10**6, max_disk_bytes=15 * 72)
    cache.put("image", {"v": arr(800)})  # the oldest, but it holds no file
    cache.put("a", {"video": filled_store(tmp_path, 10).video(10.0)})
    cache.put("b", {"video": filled_store(tmp_path, 10).video(10.0)})
    assert "image" in cache and "a" not in cache and "b" in cache
    assert cache.evictions == 1 and len(spill_files(tmp_path)) == 1


def test_budget_is_checked_again_once_stores_have_grown(tmp_path: Path) -> None:
    cache = OutputCache(max_bytes=10**6, max_disk_bytes=15 * 72)
    stores = [filled_store(tmp_path, 0) for _ in range(2)]
    cache.put("old", {"video": stores[0].video(10.0)})
    cache.put("new", {"video": stores[1].video(10.0)})
    for store in stores:
        for i in range(10):
            store.append(np.full(FRAME, i, np.uint8))
    old_path = stores[0].path
    del stores
    cache.trim()  # what the executor does at the end of a run
    assert "old" not in cache and "new" in cache and not old_path.exists()


def test_a_value_still_held_elsewhere_keeps_reading_until_it_is_released(tmp_path: Path) -> None:
    cache = OutputCache(max_bytes=10**6, max_disk_bytes=10**6)
    video = filled_store(tmp_path, 3).video(10.0)
    cache.put("k", {"video": video})
    (path,) = spill_files(tmp_path)
    cache.clear()  # a preview still shows the video
    assert path.exists() and np.allclose(video.frame(2).data, 2 / 255.0)
    del video
    assert not path.exists()


def test_a_store_shared_by_two_entries_counts_once_and_stays_while_either_holds_it(
    tmp_path: Path,
) -> None:
    cache = OutputCache(max_bytes=10**6, max_disk_bytes=10**6)
    depth = filled_store(tmp_path, 4).video(10.0)
    cache.put("depth", {"video": depth})
    cache.put("coloured", {"video": depth.map(lambda im: im)})  # reads the same store
    del depth
    assert cache.disk_nbytes == 4 * 72
    (path,) = spill_files(tmp_path)
    cache._evict("depth")
    assert path.exists() and cache.disk_nbytes == 4 * 72
    cache._evict("coloured")
    assert not path.exists() and cache.disk_nbytes == 0


def test_an_entry_whose_files_alone_outgrow_the_budget_is_not_kept(tmp_path: Path) -> None:
    cache = OutputCache(max_bytes=10**6, max_disk_bytes=5 * 72)
    cache.put("small", {"video": filled_store(tmp_path, 2).video(10.0)})
    cache.put("huge", {"video": filled_store(tmp_path, 6).video(10.0)})
    assert "huge" not in cache and "small" in cache and cache.evictions == 0
    assert len(spill_files(tmp_path)) == 1


class SpillSource(Node):
    """A lazy video that spills each frame on first read, as video.depth's store does."""

    type_id = "t.spill_source"
    category = "test"
    outputs = (Output("video", Video),)
    params = (Param("seed", Int, 0), Param("frames", Int, 10, min=1))

    def run(self, ctx: Any, seed: int, frames: int) -> dict[str, Any]:
        store = FrameStore(FRAME[1], FRAME[0], FRAME[2])

        def get(i: int) -> Image:
            while len(store) <= i:
                store.append(np.full(FRAME, seed, np.uint8))
            return store.frame(i)

        return {"video": Video(frames, 10.0, get, (FRAME[1], FRAME[0]))}


class ReadAll(Node):
    """Reads every frame: a save node's part."""

    type_id = "t.read_all"
    category = "test"
    inputs = (Input("video", Video),)
    outputs = (Output("value", Float),)

    def run(self, ctx: Any, video: Video) -> dict[str, Any]:
        return {"value": float(sum(f.data.sum() for f in video))}


def test_parameter_tweaks_keep_spill_files_within_the_disk_budget(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    reg = Registry()
    reg.register_all((SpillSource, ReadAll))
    ex = Executor(reg, cache=OutputCache(max_disk_bytes=15 * 72), library=lambda name: None)
    g = Graph()
    g.add_node("t.spill_source", "src")
    g.add_node("t.read_all", "read")
    g.connect("src", "video", "read", "video")
    for seed in range(4):  # four tweaks of one parameter
        g.set_param("src", "seed", seed)
        assert ex.run(g).output("read", "value") == pytest.approx(seed / 255 * 10 * 72)
        assert len(spill_files(tmp_path)) == 1  # the latest run's only
        assert ex.cache.disk_nbytes == 10 * 72
    assert ex.run(g).executed == []  # the latest result is still cached
