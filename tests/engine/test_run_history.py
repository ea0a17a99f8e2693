"""Run history records without Qt: a real run recorded, read back and re-opened as its graph;
each run keeps its own outputs; unfinished or damaged records are skipped."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest

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
