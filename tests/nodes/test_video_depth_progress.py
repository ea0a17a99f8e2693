"""video.depth's frames compute while a node downstream reads them, after video.depth finished:
their progress is still the depth node's, naming the reader, and a cancel during that read names
the node that was running. Real nodes: a tiny Depth Anything, video.load and video.save."""

from __future__ import annotations

from pathlib import Path

import pytest
from video_depth_models import build_depth_anything
from videoclips import make_clip

from fathom.engine.context import CancelToken, RunOptions
from fathom.engine.events import Event, Recorder
from fathom.engine.executor import Executor
from fathom.engine.graph import Graph
from fathom.engine.registry import Registry

REG = Registry()
REG.load_builtin()
FRAMES = 5


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("depth_progress")
    build_depth_anything(folder / "da", 56, 56)
    make_clip(folder / "clip.mp4", frames=FRAMES, size=(48, 48))
    return folder


def depth_to_save(project: Path, tmp_path: Path) -> tuple[Graph, RunOptions]:
    g = Graph()
    g.add_node("video.load", "clip", {"path": "clip.mp4"})
    g.add_node("video.depth", "depth", {"model": "da", "temporal": "off"})
    g.add_node("video.save", "save", {"path": "depth/%04d.png"})
    g.connect("clip", "video", "depth", "video")
    g.connect("depth", "depth", "save", "video")
    return g, RunOptions(device="cpu", base_dir=project, output_dir=tmp_path)


def test_depth_frames_read_by_a_save_are_the_depth_nodes_progress(
    project: Path, tmp_path: Path
) -> None:
    g, opts = depth_to_save(project, tmp_path)
    rec = Recorder()
    result = Executor(REG).run(g, options=opts, listener=rec)
    assert result.ok, result.records
    assert len(list((tmp_path / "depth").glob("*.png"))) == FRAMES
    depth = [e for e in rec.events if e.node == "depth"]
    finished = next(i for i, e in enumerate(depth) if e.kind == "node_finished")
    own = [(e.message, e.reader) for e in depth[:finished] if e.kind == "node_progress"]
    assert own == [("loading the depth model", None)]  # its run: says what takes the time
    frames = [(e.message, e.reader) for e in depth[finished:] if e.kind == "node_progress"]
    assert frames == [(f"depth frame {i}/{FRAMES}", "save") for i in range(1, FRAMES + 1)]
    save_end = [(e.kind, e.node) for e in rec.events].index(("node_finished", "save"))
    assert rec.events.index(depth[-1]) < save_end  # all while the save ran


def test_a_cancel_while_the_save_reads_depth_frames_names_the_save(
    project: Path, tmp_path: Path
) -> None:
    g, opts = depth_to_save(project, tmp_path)
    cancel = CancelToken()

    def listener(event: Event) -> None:
        if event.node == "depth" and event.reader == "save" and (event.progress or 0) >= 0.4:
            cancel.cancel()

    result = Executor(REG).run(g, options=opts, listener=listener, cancel=cancel)
    assert result.cancelled
    assert result.records["depth"].status == "executed"
    save = result.records["save"]
    assert save.status == "cancelled"
    # video.save checks for a cancel too: whichever notices first, the save is named running.
    assert save.error in (
        "cancelled while running node 'save'",
        "cancelled while running node 'save' (reading the output of node 'depth')",
    )
