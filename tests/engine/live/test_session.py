"""The live session: frame accounting, dropping under a slow model, bounded queues, errors that
do not stop it, graph updates on the next tick, state kept across ticks, recorded timing."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

import av
import numpy as np
import pytest
from live_nodes import registry, session
from videoclips import decoded_indices, make_clip, read_index

from fathom.engine.context import RunOptions
from fathom.engine.executor import Executor
from fathom.engine.graphfile import loads
from fathom.engine.live import LiveOptions, LiveSession, NewestQueue
from fathom.engine.live.capture import FileCapture


def _accounted(report: object) -> None:
    r = report
    assert r.frames_out + r.frames_dropped + r.frames_failed == r.frames_in  # type: ignore[attr-defined]


def test_newest_queue_keeps_the_newest_and_counts_drops() -> None:
    q: NewestQueue[int] = NewestQueue(2)
    for i in range(10):
        q.put(i)
    assert len(q) == 2 and q.dropped == 8 and q.peak == 2
    assert q.get(0) == 8 and q.get(0) == 9 and q.get(0) is None
    q.close()
    assert q.get(1.0) is None  # a closed, empty queue does not wait


def test_file_capture_plays_at_its_rate_and_never_builds_a_backlog() -> None:
    now = [0.0]
    frames = [type("F", (), {"data": np.full((2, 2, 3), i, np.float32)})() for i in range(5)]

    class Clip(list):  # type: ignore[type-arg]
        def frame(self, i: int) -> object:
            return self[i]

    cap = FileCapture(Clip(frames), fps=10, loop=True, clock=lambda: now[0])
    assert cap.read()[0, 0, 0] == 0  # type: ignore[index]
    now[0] = 0.35  # a slow reader: the frame due now (3), not the ones it missed
    assert cap.read()[0, 0, 0] == 3  # type: ignore[index]
    now[0] = 0.75
    assert cap.read()[0, 0, 0] == 2  # type: ignore[index]  # frame 7 = 2 after the loop


def test_report_numbers_for_a_known_rate(tmp_path: Path) -> None:
    clip = make_clip(tmp_path / "c.mp4", frames=30, fps=30)
    s = session(
        [
            ("src", "live.file", {"path": str(clip), "loop": True}),
            ("rec", "live.record", {"path": "rec.mp4"}),
        ],
        tmp_path,
        seconds=1.5,
    )
    seen: list = []
    s.on_stats = seen.append
    s.start()
    assert s.wait(10)
    r = s.stop()
    # on_stats after every tick: counts only grow, the rates settle near the source's.
    ins = [st.frames_in for st in seen]
    assert len(seen) >= 20 and ins == sorted(ins)
    assert seen[-1].fps_in == pytest.approx(30, rel=0.25)
    assert 40 <= r.frames_in <= 52  # 30 fps for 1.5 s
    _accounted(r)
    # A fast graph keeps up (a stall of this busy machine may cost a frame or two).
    assert r.frames_dropped <= r.frames_in // 10 and r.frames_failed == 0
    assert 0 < r.latency_ms["median"] <= r.latency_ms["p95"] < 200
    assert r.fps == pytest.approx(30, rel=0.2)
    # The recording holds the frames produced, in order, with their capture timing.
    idx = decoded_indices(tmp_path / "rec.mp4")
    assert len(idx) == r.frames_out
    steps = np.diff(idx) % 30  # the clip loops; a late capture shows the frame due then
    assert idx[0] == 0 and np.all(steps >= 1) and np.median(steps) == 1
    with av.open(str(tmp_path / "rec.mp4")) as c:
        times = [float(f.pts * f.time_base) for f in c.decode(video=0)]
    gaps = np.diff(times)
    assert np.median(gaps) == pytest.approx(1 / 30, abs=0.006)


def test_slow_model_drops_frames_and_queues_stay_bounded(tmp_path: Path) -> None:
    clip = make_clip(tmp_path / "c.mp4", frames=60, fps=60)
    shown: list = []
    s = session(
        [
            ("src", "live.file", {"path": str(clip), "loop": True}),
            ("slow", "test.slow", {"delay": 0.1}),
            ("win", "live.window", {}),
        ],
        tmp_path,
        seconds=1.5,
        frames=shown,
    )
    s.start()
    lengths = []
    while s.running:
        lengths.append(len(s._sources["src"].queue))
        time.sleep(0.01)
    r = s.stop()
    _accounted(r)
    # About 10 of 60 frames a second are cooked (a busy machine may capture fewer than 90).
    assert r.frames_in >= 60 and r.frames_dropped >= r.frames_in // 2
    assert max(lengths) <= 1 and r.queue_peak["src"] == 1 and r.queue_peak["win"] <= 2
    assert len(shown) == r.frames_out
    # The newest frame wins: each shown frame is the one captured last before its tick began,
    # so consecutive shown frames are several captured frames apart.
    idx = [read_index(img.data) for _, img, _ in shown]
    steps = np.diff(idx) % 60
    assert np.median(steps) >= 4
    assert r.latency_ms["median"] < 300  # a capture waits at most one tick, never a backlog


def test_a_failing_node_is_reported_and_the_session_goes_on(tmp_path: Path) -> None:
    clip = make_clip(tmp_path / "c.mp4", frames=30, fps=30)
    shown: list = []
    s = session(
        [
            ("src", "live.file", {"path": str(clip), "loop": True}),
            ("flaky", "test.flaky", {"period": 3}),
            ("win", "live.window", {}),
        ],
        tmp_path,
        seconds=1.0,
        frames=shown,
    )
    s.start()
    s.wait(10)
    r = s.stop()
    _accounted(r)
    assert r.errors["flaky"]["count"] == r.frames_failed > 5
    assert "flaky" in r.errors["flaky"]["last"] and "planned failure" in r.errors["flaky"]["last"]
    assert r.frames_out >= 2 * r.frames_failed - 2
    assert all(read_index(img.data) % 3 != 1 for _, img, _ in shown)


def _tint_session(tmp_path: Path, shown: list) -> LiveSession:
    """A looping clip through test.tint (gain 0) to a window whose frames land in ``shown``."""
    clip = make_clip(tmp_path / "c.mp4", frames=30, fps=30)
    nodes = [
        ("src", "live.file", {"path": str(clip), "loop": True}),
        ("tint", "test.tint", {"gain": 0.0}),
        ("win", "live.window", {}),
    ]
    return session(nodes, tmp_path, frames=shown)


def test_update_graph_applies_on_the_next_tick_keeping_node_state(tmp_path: Path) -> None:
    shown: list = []
    s = _tint_session(tmp_path, shown)
    s.start()
    while len(shown) < 5:
        time.sleep(0.01)
    graph = s.graph.copy()
    graph.nodes["tint"].params["gain"] = 1.0
    s.update_graph(graph)
    asked = len(shown)
    while len(shown) < asked + 8:
        time.sleep(0.01)
    r = s.stop()
    assert not r.errors
    bright = [float(img.data[20:, :-1].mean()) > 0.1 for _, img, _ in shown]
    first = bright.index(True)
    assert not any(bright[:first]) and all(bright[first:])
    # The next tick cooks it; the tick in flight and the output queue (2) were older.
    assert first <= asked + 3
    calls = [round(float(img.data[-1, -1, 0]) * 1000) for _, img, _ in shown]
    assert calls == list(range(1, len(shown) + 1))  # ctx.state kept through the update


def _wait_for(predicate: Callable[[], bool], seconds: float = 10.0) -> bool:
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        if predicate():
            return True
        time.sleep(0.01)
    return predicate()


def test_a_refused_edit_is_no_longer_reported_once_a_fixed_one_applies(tmp_path: Path) -> None:
    shown: list = []
    s = _tint_session(tmp_path, shown)
    s.start()
    try:
        assert _wait_for(lambda: len(shown) >= 3)
        refused = s.graph.copy()
        refused.nodes["tint"].params["gain"] = -1.0  # below its minimum: the plan refuses it
        s.update_graph(refused)
        assert _wait_for(lambda: "graph" in s.stats().errors)
        stats = s.stats()
        assert "not applied" in stats.errors["graph"] and "gain" in stats.errors["graph"]
        assert stats.error == stats.errors["graph"]
        fixed = s.graph.copy()
        fixed.nodes["tint"].params["gain"] = 1.0
        s.update_graph(fixed)
        assert _wait_for(lambda: s.graph.nodes["tint"].params["gain"] == 1.0)
        stats = s.stats()
        assert "graph" not in stats.errors and stats.error is None
        # The fixed graph is the one that runs: frames after it are tinted.
        asked = len(shown)
        assert _wait_for(lambda: len(shown) >= asked + 4)
        assert float(shown[-1][1].data[20:, :-1].mean()) > 0.1
    finally:
        r = s.stop()
    assert "graph" not in r.errors


def test_a_file_without_loop_ends_the_session_with_every_frame(tmp_path: Path) -> None:
    # 10 frames/s: a capture thread late by less than a frame interval skips nothing (a file
    # plays in real time: one late by more shows the frame due then, as a camera would).
    clip = make_clip(tmp_path / "c.mp4", frames=12, fps=10)
    shown: list = []
    s = session(
        [("src", "live.file", {"path": str(clip), "loop": False}), ("win", "live.window", {})],
        tmp_path,
        frames=shown,
        input_queue=16,
    )
    s.start()
    assert s.wait(10)  # ends by itself
    r = s.stop()
    assert r.frames_in == r.frames_out == 12
    assert [read_index(img.data) for _, img, _ in shown] == list(range(12))


def test_headless_window_says_nobody_saw_it_or_records(tmp_path: Path) -> None:
    clip = make_clip(tmp_path / "c.mp4", frames=6, fps=10)
    nodes = [("src", "live.file", {"path": str(clip), "loop": False}), ("win", "live.window", {})]
    s = session(nodes, tmp_path, input_queue=8)
    s.on_frame = None
    s.start()
    s.wait(10)
    r = s.stop()
    assert r.frames_out == 6 and any("no window is shown" in n for n in r.notes)
    s = session(nodes, tmp_path, window_dir=tmp_path / "win", input_queue=8)
    s.on_frame = None
    s.start()
    s.wait(10)
    s.stop()
    assert decoded_indices(tmp_path / "win" / "win.mp4") == list(range(6))


def test_editing_a_source_reopens_its_capture(tmp_path: Path) -> None:
    first = make_clip(tmp_path / "a.mp4", frames=30, fps=30)
    second = make_clip(tmp_path / "b.mp4", frames=30, fps=30, first=500)
    shown: list = []
    s = session(
        [("src", "live.file", {"path": str(first), "loop": True}), ("win", "live.window", {})],
        tmp_path,
        frames=shown,
    )
    s.start()
    while len(shown) < 5:
        time.sleep(0.01)
    graph = s.graph.copy()
    graph.nodes["src"].params["path"] = str(second)
    s.update_graph(graph)
    while not shown or read_index(shown[-1][1].data) < 500:
        time.sleep(0.01)
    time.sleep(0.2)
    r = s.stop()
    idx = [read_index(img.data) for _, img, _ in shown]
    switch = next(i for i, v in enumerate(idx) if v >= 500)
    assert all(v < 500 for v in idx[:switch]) and all(v >= 500 for v in idx[switch:])
    assert idx[switch] == 500  # the new file plays from its start
    assert not r.errors
    _accounted(r)  # frames of the replaced capture stay counted


def test_two_sources_each_play_at_their_own_rate(tmp_path: Path) -> None:
    """Two sources in one graph: the session ticks with the faster one, and each tick sees the
    newest frame of each, so the slower source's frames repeat and neither falls behind."""
    fast, slow = (
        make_clip(tmp_path / "a.mp4", 30, fps=30),
        make_clip(tmp_path / "b.mp4", 30, fps=10),
    )
    doc = {
        "format": "fathom.graph",
        "version": 1,
        "nodes": [
            {"id": "a", "type": "live.file", "params": {"path": str(fast), "loop": True}},
            {"id": "rec_a", "type": "live.record", "params": {"path": "a.mp4"}},
            {"id": "b", "type": "live.file", "params": {"path": str(slow), "loop": True}},
            {"id": "rec_b", "type": "live.record", "params": {"path": "b.mp4"}},
        ],
        "edges": [
            {"from": ["a", "video"], "to": ["rec_a", "video"]},
            {"from": ["b", "video"], "to": ["rec_b", "video"]},
        ],
    }
    reg = registry()
    opts = LiveOptions(RunOptions(output_dir=tmp_path / "out", device="cpu"), seconds=1.5)
    s = LiveSession(loads(json.dumps(doc), registry=reg), opts, executor=Executor(registry=reg))
    s.start()
    assert s.wait(10)
    r = s.stop()
    assert r.frames_failed == 0 and not r.errors
    a, b = (decoded_indices(tmp_path / "out" / n) for n in ("a.mp4", "b.mp4"))
    assert len(a) == len(b) == r.frames_out >= 30  # one frame of each per tick
    assert np.median(np.diff(a) % 30) == 1  # the fast source frame by frame
    assert np.all(np.diff(b) >= 0) and max(np.bincount(b)) <= 5  # the slow one repeats...
    assert b[-1] == pytest.approx(10 * len(a) / 30, abs=4)  # ...keeping to its 10 fps
