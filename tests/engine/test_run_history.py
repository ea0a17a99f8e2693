"""Run history records without Qt: a real run recorded, read back and re-opened as its graph;
each run keeps its own outputs; unfinished or damaged records are skipped."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from videoclips import make_clip, read_index

from fathom.engine import run_history
from fathom.engine.context import RunOptions
from fathom.engine.executor import Executor, NodeRecord, RunResult
from fathom.engine.graph import Graph
from fathom.engine.graphfile import from_document, to_document
from fathom.engine.imaging.codecs import read_image, write_image
from fathom.engine.registry import Registry
from fathom.engine.run_history import (
    HISTORY_DIR,
    gallery,
    list_runs,
    media_kind,
    record_run,
    run_report,
)


@pytest.fixture(scope="module")
def registry() -> Registry:
    reg = Registry()
    reg.load_builtin()
    return reg


def _graph(color: list[float]) -> Graph:
    g = Graph()
    g.add_node("image.constant", "const", {"width": 4, "height": 4, "color": color})
    g.add_node("image.save", "save", {"path": "out.png"})
    g.connect("const", "image", "save", "image")
    return g


def _run_and_record(registry: Registry, out: Path, color: list[float], when: float) -> Path:
    graph = _graph(color)
    document = to_document(graph, registry)
    options = RunOptions(output_dir=out, base_dir=out, device="cpu")
    result = Executor(registry).run(graph, options=options)
    report = run_report(result, document, when, graph_path="/g.json", output_dir=str(out))
    return record_run(out, document, report)


def test_a_recorded_run_reads_back_with_its_graph_report_and_own_output(
    registry: Registry, tmp_path: Path
) -> None:
    red, blue = [1.0, 0.0, 0.0, 1.0], [0.0, 0.0, 1.0, 1.0]
    first = _run_and_record(registry, tmp_path, red, 1000.0)
    second = _run_and_record(registry, tmp_path, blue, 2000.0)
    assert sorted(p.name for p in first.iterdir()) == ["files", "graph.json", "report.json"]
    entries = list_runs(tmp_path)
    assert [e.folder for e in entries] == [second, first]
    old = entries[1]
    assert old.status == "ok" and old.counts["executed"] == 2 and old.started == 1000.0
    assert {n["node"]: n["status"] for n in old.report["nodes"]} == {
        "const": "executed",
        "save": "executed",
    }
    assert old.report["outputs"] == [str(tmp_path / "out.png")]
    # out.png now holds blue; the first record kept its own red file.
    (kept,) = old.outputs()
    assert np.allclose(read_image(kept)[0, 0, :3], red[:3])
    assert np.allclose(read_image(tmp_path / "out.png")[0, 0, :3], blue[:3])
    # The graph re-opens as the one that ran.
    graph = from_document(old.graph_document(), str(old.folder), registry)
    assert graph.nodes["const"].params["color"] == red
    assert to_document(graph, registry)["nodes"] == to_document(_graph(red), registry)["nodes"]
    # Written atomically: no temporary files left behind.
    assert not [p for p in first.rglob(".*") if p.is_file()]


def _fake_record(out: Path, files: list[Path], graph: str | None, started: float) -> Path:
    rec = NodeRecord("save", "image.save", 1, status="executed", seconds=0.1)
    rec.files = [str(f) for f in files]
    result = RunResult({"save": rec}, {}, seconds=0.1)
    report = run_report(result, {"format": "fathom.graph"}, started, graph_path=graph)
    return record_run(out, {"format": "fathom.graph", "nodes": []}, report)


def _image(path: Path, shade: float) -> Path:
    write_image(path, np.full((4, 4, 3), shade, np.float32), "png")
    return path


def test_gallery_lists_each_graphs_files_newest_first_and_once(tmp_path: Path) -> None:
    a = _image(tmp_path / "a.png", 0.0)
    first = _fake_record(tmp_path, [a], "/g.json", 1000.0)
    _image(tmp_path / "a.png", 1.0)  # the next run replaces a.png (atomically)
    second = _fake_record(tmp_path, [a, tmp_path / "gone.png"], "/g.json", 2000.0)
    third = _fake_record(tmp_path, [a], "/g.json", 2500.0)  # a.png unchanged: the same file
    _fake_record(tmp_path, [a], None, 3000.0)  # another (untitled) graph's run
    entries = list_runs(tmp_path)
    assert [e.started for e in entries] == [3000.0, 2500.0, 2000.0, 1000.0]
    # gone.png was never written: it is listed as an output but kept nowhere.
    assert entries[2].folder == second and entries[2].outputs()[1] == tmp_path / "gone.png"
    shown = gallery(entries, "/g.json")
    assert [p for p, _ in shown] == [third / "files" / "a.png", first / "files" / "a.png"]
    assert media_kind("x.MP4") == "video" and media_kind("x.exr") == "image"
    assert media_kind("x.ply") is None


def test_without_hard_links_outputs_are_copied_up_to_a_limit(
    tmp_path: Path, monkeypatch: Any
) -> None:
    def no_links(*_: Any) -> None:
        raise OSError("this file system has no hard links")

    monkeypatch.setattr(os, "link", no_links)
    a = _image(tmp_path / "a.png", 0.25)
    copied = _fake_record(tmp_path, [a], None, 1000.0)
    assert (copied / "files" / "a.png").read_bytes() == a.read_bytes()
    monkeypatch.setattr(run_history, "KEEP_COPY_LIMIT", 10)  # bytes: a.png is larger
    big = _fake_record(tmp_path, [a], None, 2000.0)
    assert not (big / "files" / "a.png").exists()
    (entry,) = [e for e in list_runs(tmp_path) if e.folder == big]
    assert entry.outputs() == [a]  # not kept: the file itself is what there is


def test_unfinished_and_damaged_records_are_skipped(tmp_path: Path) -> None:
    good = _fake_record(tmp_path, [], None, 1000.0)
    root = tmp_path / HISTORY_DIR
    (root / "20000101-000000-000").mkdir()  # cut off before its report was written
    (root / "20000101-000001-000").mkdir()
    (root / "20000101-000001-000" / "report.json").write_text("{not json")
    (root / "20000101-000002-000").mkdir()
    (root / "20000101-000002-000" / "report.json").write_text(json.dumps({"format": "x"}))
    assert [e.folder for e in list_runs(tmp_path)] == [good]
    assert list_runs(tmp_path / "nowhere") == []


def test_two_records_started_in_the_same_millisecond_get_their_own_folders(
    tmp_path: Path,
) -> None:
    a = _fake_record(tmp_path, [], None, 1000.5)
    b = _fake_record(tmp_path, [], None, 1000.5)
    assert a != b and a.parent == b.parent
    assert len(list_runs(tmp_path)) == 2


def _record_sequence(registry: Registry, out: Path, clip: Path, when: float) -> Path:
    """Run Load Video → Save Video into ``frames/%04d.png`` and record it, as the studio does."""
    graph = Graph()
    graph.add_node("video.load", "load", {"path": str(clip)})
    graph.add_node("video.save", "save", {"path": "frames/%04d.png"})
    graph.connect("load", "video", "save", "video")
    document = to_document(graph, registry)
    options = RunOptions(output_dir=out, base_dir=out, device="cpu")
    result = Executor(registry).run(graph, options=options)
    assert result.ok, result.records
    report = run_report(result, document, when, output_dir=str(out))
    return record_run(out, document, report)


def test_each_record_keeps_its_own_image_sequence_as_links(
    registry: Registry, tmp_path: Path
) -> None:
    """A sequence save writes a folder; each record used to list the live folder, so older
    records showed the newest run's frames."""
    first_clip = make_clip(tmp_path / "first.mp4", frames=3, first=0)
    second_clip = make_clip(tmp_path / "second.mp4", frames=3, first=500)
    out = tmp_path / "out"
    first = _record_sequence(registry, out, first_clip, 1000.0)
    second = _record_sequence(registry, out, second_clip, 2000.0)
    new, old = list_runs(out)
    assert (old.folder, new.folder) == (first, second)
    assert old.report["outputs"] == [str(out / "frames")]
    (old_frames,) = old.outputs()
    (new_frames,) = new.outputs()
    assert old_frames == first / "files" / "frames" and new_frames == second / "files" / "frames"
    names = sorted(p.name for p in (out / "frames").iterdir())
    assert names == ["0000.png", "0001.png", "0002.png"]
    assert sorted(p.name for p in old_frames.iterdir()) == names
    # Each record shows the frames its own run wrote; the live folder holds the newest run's.
    for name in names:
        assert read_index(read_image(old_frames / name)) == int(name[:4])
        assert read_index(read_image(new_frames / name)) == 500 + int(name[:4])
        live = out / "frames" / name
        assert os.path.samestat((new_frames / name).stat(), live.stat())  # a link, not a copy
        assert live.stat().st_nlink == 2
        assert (old_frames / name).stat().st_nlink == 1  # the run that replaced it let go
    # Deleting a record takes its links with it and leaves the live frames alone.
    shutil.rmtree(second)
    assert [e.folder for e in list_runs(out)] == [first]
    assert all((out / "frames" / n).stat().st_nlink == 1 for n in names)


def test_a_sequence_is_copied_without_links_and_never_kept_by_halves(
    tmp_path: Path, monkeypatch: Any
) -> None:
    frames = tmp_path / "frames"
    frames.mkdir()
    shots = [_image(frames / f"{i:04d}.png", i / 4) for i in range(1, 4)]
    linked = _fake_record(tmp_path, [frames], None, 1000.0)
    assert sorted(p.name for p in (linked / "files" / "frames").iterdir()) == [
        p.name for p in shots
    ]

    def no_links(*_: Any) -> None:
        raise OSError("this file system has no hard links")

    monkeypatch.setattr(os, "link", no_links)
    copied = _fake_record(tmp_path, [frames], None, 2000.0)
    for shot in shots:
        kept = copied / "files" / "frames" / shot.name
        assert kept.read_bytes() == shot.read_bytes() and kept.stat().st_nlink == 1
    # Over the copy limit (all frames together), nothing is kept rather than part of it.
    monkeypatch.setattr(run_history, "KEEP_COPY_LIMIT", shots[0].stat().st_size + 1)
    big = _fake_record(tmp_path, [frames], None, 3000.0)
    assert not (big / "files" / "frames").exists()
    (entry,) = [e for e in list_runs(tmp_path) if e.folder == big]
    assert entry.outputs() == [frames]
    # The studio links on the GUI thread (no copies) and copies on a worker afterwards.
    folder = run_history.start_record(tmp_path, 4000.0)
    assert run_history.keep_outputs(folder, [str(frames)], copy=False) == {}
    assert not (folder / "files" / "frames").exists()
    monkeypatch.setattr(run_history, "KEEP_COPY_LIMIT", 1 << 20)
    kept = run_history.keep_outputs(folder, [str(frames)], copy=True, kept={})
    assert kept == {str(frames): "files/frames"}


def test_two_outputs_of_one_name_are_both_kept(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    a = _image(tmp_path / "a" / "x.png", 0.0)
    seq = tmp_path / "b" / "x.png"  # a folder named like a file: names must not collide
    seq.mkdir()
    _image(seq / "0001.png", 1.0)
    record = _fake_record(tmp_path, [a, seq], None, 1000.0)
    (entry,) = list_runs(tmp_path)
    assert entry.outputs() == [record / "files" / "x.png", record / "files" / "x-2.png"]
    assert (record / "files" / "x-2.png" / "0001.png").is_file()


def test_a_long_sequence_is_left_to_the_second_pass(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The studio's first pass runs on the GUI thread: a sequence longer than LINK_NOW_LIMIT
    frames waits for the worker's pass, which links it all."""
    monkeypatch.setattr(run_history, "LINK_NOW_LIMIT", 3)
    frames = tmp_path / "out" / "frames"
    frames.mkdir(parents=True)
    for i in range(5):
        (frames / f"{i:04d}.png").write_bytes(bytes([i]))
    folder = run_history.start_record(tmp_path / "out", 0.0)
    first = run_history.keep_outputs(folder, [str(frames)], copy=False)
    assert first == {}
    kept = run_history.keep_outputs(folder, [str(frames)], copy=True, kept=first)
    linked = folder / kept[str(frames)]
    assert sorted(p.name for p in linked.iterdir()) == [f"{i:04d}.png" for i in range(5)]
    assert os.stat(linked / "0004.png").st_nlink == 2
