"""Lazy outputs (a video whose frames compute when read) report their work as their own node's,
naming the node downstream whose run reads them; a cancel noticed in that work names the node
that was running. The reader here is the real video.save, which reads frames ahead on a worker
thread."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from fathom.engine.context import (
    CancelToken,
    NodeContext,
    RunOptions,
    node_running,
    running_node,
)
from fathom.engine.events import Event, Recorder
from fathom.engine.executor import Executor
from fathom.engine.graph import Graph
from fathom.engine.node import Input, Node, Output, Param
from fathom.engine.registry import Registry
from fathom.engine.types import Image, Int, Video

FRAMES = 6


class LazyFrames(Node):
    """A video computed frame by frame when read, as video.depth's is: its run only prepares
    (and says so), each frame reports progress and checks for a cancel."""

    type_id = "t.lazy_frames"
    category = "test"
    outputs = (Output("video", Video),)
    params = (Param("frames", Int, FRAMES, min=1),)

    def run(self, ctx: Any, frames: int) -> dict[str, Any]:
        ctx.progress(0.0, "preparing")
        done: list[int] = []
        lock = threading.Lock()

        def get(i: int) -> Image:
            ctx.check_cancelled()
            with lock:
                done.append(i)
            ctx.progress((i + 1) / frames, f"frame {i + 1}/{frames}")
            return Image(np.full((8, 8, 3), i / frames, np.float32))

        return {"video": Video(frames, 12.0, get, (8, 8))}


class ReadAll(Node):
    """Reads every frame of its video on its own thread and checks nothing itself: a cancel is
    noticed only in the lazy video's code."""

    type_id = "t.read_all"
    category = "test"
    inputs = (Input("video", Video),)
    outputs = (Output("frames", Int),)

    def run(self, ctx: Any, video: Video) -> dict[str, Any]:
        return {"frames": sum(1 for _ in video)}


@pytest.fixture(scope="module")
def ex_registry() -> Registry:
    reg = Registry()
    reg.load_builtin()
    reg.register_all((LazyFrames, ReadAll))
    return reg


def lazy_graph(*saves: str) -> Graph:
    """lazy → one video.save per name, each writing a PNG sequence."""
    g = Graph()
    g.add_node("t.lazy_frames", "lazy")
    for name in saves:
        g.add_node("video.save", name, {"path": f"{name}/%04d.png"})
        g.connect("lazy", "video", name, "video")
    return g


def run(reg: Registry, g: Graph, tmp_path: Path, **kwargs: Any) -> Any:
    ex = Executor(reg, library=lambda name: None, max_workers=kwargs.pop("max_workers", 1))
    opts = RunOptions(device="cpu", output_dir=tmp_path)
    return ex.run(g, options=opts, **kwargs)


def frame_events(rec: Recorder, node: str) -> list[Event]:
    return [
        e for e in rec.events if e.kind == "node_progress" and e.message.startswith("frame ")
        and e.node == node
    ]  # fmt: skip


def test_frames_read_downstream_report_progress_for_the_reading_node(
    ex_registry: Registry, tmp_path: Path
) -> None:
    rec = Recorder()
    result = run(ex_registry, lazy_graph("save"), tmp_path, listener=rec)
    assert result.ok and result.executed == ["lazy", "save"]
    assert len(list((tmp_path / "save").glob("*.png"))) == FRAMES
    kinds = [(e.kind, e.node) for e in rec.events]
    finished = kinds.index(("node_finished", "lazy"))
    # The node's own run: its progress names no reader.
    own = [e for e in rec.events[:finished] if e.kind == "node_progress" and e.node == "lazy"]
    assert [(e.message, e.reader) for e in own] == [("preparing", None)]
    # Its frames compute during the save's run, after it finished: they are still its own
    # progress events, and name the save as the node doing the work (on the save's worker
    # thread too: video.save reads ahead on one).
    frames = frame_events(rec, "lazy")
    assert [e.message for e in frames] == [f"frame {i}/{FRAMES}" for i in range(1, FRAMES + 1)]
    assert {e.reader for e in frames} == {"save"}
    assert all(rec.events.index(e) > finished for e in frames)
    assert frames[-1].progress == pytest.approx(1.0)
    assert rec.events.index(frames[-1]) < kinds.index(("node_finished", "save"))
    # The save's own progress is its own.
    saves = frame_events(rec, "save")
    assert len(saves) == FRAMES and {e.reader for e in saves} == {None}


def test_parallel_readers_each_name_themselves(ex_registry: Registry, tmp_path: Path) -> None:
    rec = Recorder()
    result = run(ex_registry, lazy_graph("a", "b"), tmp_path, listener=rec, max_workers=2)
    assert result.ok
    frames = frame_events(rec, "lazy")
    for reader in ("a", "b"):
        mine = [e.message for e in frames if e.reader == reader]
        assert mine == [f"frame {i}/{FRAMES}" for i in range(1, FRAMES + 1)], reader
    assert {e.reader for e in frames} == {"a", "b"}


def cancel_at_frame(k: int) -> tuple[CancelToken, Any]:
    """A token and a listener that cancels it once the lazy video reports frame ``k``."""
    cancel = CancelToken()

    def listener(event: Event) -> None:
        if event.kind == "node_progress" and event.node == "lazy" and event.reader:
            if (event.progress or 0) >= k / FRAMES:
                cancel.cancel()

    return cancel, listener


def test_a_cancel_noticed_in_a_lazy_output_names_the_reader_and_the_lazy_node(
    ex_registry: Registry, tmp_path: Path
) -> None:
    g = lazy_graph()
    g.add_node("t.read_all", "read")
    g.connect("lazy", "video", "read", "video")
    cancel, listener = cancel_at_frame(3)
    result = run(ex_registry, g, tmp_path, listener=listener, cancel=cancel)
    assert result.cancelled
    assert result.records["lazy"].status == "executed"  # its run had finished: it is not blamed
    assert result.records["read"].status == "cancelled"
    assert result.records["read"].error == (
        "cancelled while running node 'read' (reading the output of node 'lazy')"
    )


def test_a_cancel_while_a_save_reads_names_the_save(ex_registry: Registry, tmp_path: Path) -> None:
    """video.save checks for a cancel itself as well: whichever notices first, the message
    names the save as the node that was running."""
    cancel, listener = cancel_at_frame(3)
    result = run(ex_registry, lazy_graph("save"), tmp_path, listener=listener, cancel=cancel)
    assert result.cancelled and result.records["lazy"].status == "executed"
    assert result.records["save"].status == "cancelled"
    assert result.records["save"].error in (
        "cancelled while running node 'save'",
        "cancelled while running node 'save' (reading the output of node 'lazy')",
    )


def test_the_running_mark_is_the_outermost_node_and_ends_with_it() -> None:
    ctx = NodeContext("lazy", RunOptions(device="cpu"), None)
    assert running_node() is None and ctx.reader() is None
    with node_running("lazy"):
        assert ctx.reader() is None  # its own run
    with node_running("save"):
        assert ctx.reader() == "save"
        with node_running("save:feed:video"):  # a run nested in the save's keeps its mark
            assert running_node() == "save" and ctx.reader() == "save"
        seen: list[str | None] = []
        worker = threading.Thread(target=lambda: seen.append(running_node()))
        worker.start()
        worker.join()
        assert seen == [None]  # a plain thread is no node's: prefetch copies the context
    assert running_node() is None
