"""Batch rendering: rows from JSONL and CSV, one folder per row and a manifest, failing rows,
and bad rows refused before anything runs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from PIL import Image as PILImage

from fathom.engine.batch import BatchFileError, read_rows
from fathom.engine.cli import main


def graph_doc() -> dict[str, Any]:
    """constant → save img.png, and a division shown in a preview (fails when b = 0)."""
    return {
        "format": "fathom.graph",
        "version": 1,
        "nodes": [
            {"id": "c", "type": "image.constant", "params": {"width": 4, "height": 4}},
            {"id": "s", "type": "image.save", "params": {"path": "img.png"}},
            {"id": "div", "type": "math.binary", "params": {"op": "divide", "a": 1, "b": 2}},
            {"id": "show", "type": "preview.show"},
        ],
        "edges": [
            {"from": ["c", "image"], "to": ["s", "image"]},
            {"from": ["div", "value"], "to": ["show", "value"]},
        ],
    }


@pytest.fixture
def graph(tmp_path: Path) -> Path:
    path = tmp_path / "g.json"
    path.write_text(json.dumps(graph_doc()))
    return path


def jsonl(path: Path, *rows: dict[str, Any]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def batch(graph: Path, rows: Path, out: Path, *args: str) -> int:
    return main(
        [
            "render",
            str(graph),
            "--batch",
            str(rows),
            "--out",
            str(out),
            "--device",
            "cpu",
            "--quiet",
            *args,
        ]
    )


def size(png: Path) -> tuple[int, int]:
    with PILImage.open(png) as im:
        return im.size


# ---- reading rows --------------------------------------------------------------------------


def test_rows_from_jsonl_and_csv(tmp_path: Path) -> None:
    rows = read_rows(
        jsonl(
            tmp_path / "r.jsonl",
            {"c.width": 3, "_name": "small one"},
            {"c.width": 5, "_seed": 9, "_frames": "2-4"},
        )
    )
    assert [(r.name, r.overrides, r.from_text) for r in rows] == [
        ("small_one", [("c", "width", 3)], False),
        ("row-0001", [("c", "width", 5)], False),
    ]
    assert (rows[1].seed, rows[1].frames) == (9, (2, 4))
    (tmp_path / "r.csv").write_text("c.width,c.color,_name\n3,#ff0000,red\n4,,plain\n")
    rows = read_rows(tmp_path / "r.csv")
    assert [(r.name, r.overrides) for r in rows] == [
        ("red", [("c", "width", "3"), ("c", "color", "#ff0000")]),
        ("plain", [("c", "width", "4")]),
    ]
    assert rows[0].from_text


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        ("r.jsonl", '{"c.width": 3}\n{oops\n', "line 2 is not JSON"),
        ("r.jsonl", "[1, 2]\n", "line 1 must be a JSON object"),
        ("r.jsonl", '{"width": 3}\n', "column 'width' must be NODE.PARAM"),
        ("r.jsonl", '{"_name": "a"}\n{"_name": "a"}\n', "row names ['a'] repeat"),
        ("r.jsonl", "\n\n", "has no rows"),
        ("r.jsonl", '{"_frames": "9-1"}\n', "need 0 <= A <= B"),
        ("r.csv", "c.width\n3,4\n", "line 2 has more cells than the header"),
        ("r.txt", "c.width\n3\n", "must be .jsonl or .csv"),
    ],
)
def test_bad_batch_files_are_refused(tmp_path: Path, name: str, text: str, message: str) -> None:
    (tmp_path / name).write_text(text)
    with pytest.raises(BatchFileError, match=message.replace("[", r"\[").replace("]", r"\]")):
        read_rows(tmp_path / name)


# ---- running -------------------------------------------------------------------------------


def test_jsonl_batch_one_folder_per_row_with_a_failing_row(tmp_path: Path, graph: Path) -> None:
    rows = jsonl(
        tmp_path / "r.jsonl",
        {"c.width": 3, "_name": "three"},
        {"c.width": 6, "div.b": 0, "_name": "zero"},
        {"c.width": 8, "_name": "eight"},
    )
    out = tmp_path / "out"
    assert batch(graph, rows, out, "--workers", "1") == 1
    assert size(out / "three" / "img.png") == (3, 4) and size(out / "eight" / "img.png") == (8, 4)
    assert size(out / "zero" / "img.png") == (6, 4)  # the failing branch kept the other one
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["format"] == "fathom.batch" and manifest["total_rows"] == 3
    assert [(r["name"], r["status"]) for r in manifest["rows"]] == [
        ("three", "ok"),
        ("zero", "failed"),
        ("eight", "ok"),
    ]
    assert manifest["counts"] == {"ok": 2, "failed": 1, "invalid": 0, "cancelled": 0}
    zero = manifest["rows"][1]
    assert zero["errors"] == [
        "node 'div', port 'y': division by zero. Fix: feed a non-zero divisor"
    ]
    assert zero["outputs"] == [str(out / "zero" / "img.png")]
    report = json.loads((out / "zero" / "run.json").read_text())
    assert report["status"] == "failed" and report["overrides"][1] == {
        "node": "div",
        "param": "b",
        "value": 0,
    }


def test_csv_batch_on_two_worker_processes(tmp_path: Path, graph: Path) -> None:
    (tmp_path / "r.csv").write_text('c.width,c.color,_name\n2,#00ff00,green\n5,"0,0,1",x\n')
    out = tmp_path / "out"
    assert batch(graph, tmp_path / "r.csv", out, "--workers", "2", "--set", "c.height=3") == 0
    manifest = json.loads((out / "manifest.json").read_text())
    assert [(r["name"], r["status"]) for r in manifest["rows"]] == [("green", "ok"), ("x", "ok")]
    assert size(out / "green" / "img.png") == (2, 3) and size(out / "x" / "img.png") == (5, 3)
    with PILImage.open(out / "x" / "img.png") as im:
        assert im.convert("RGB").getpixel((0, 0)) == (0, 0, 255)
    assert {p.name for p in out.iterdir()} == {"green", "x", "manifest.json"}


def test_shared_set_values_are_parsed_by_kind_next_to_jsonl_rows(
    tmp_path: Path, graph: Path
) -> None:
    rows = jsonl(tmp_path / "r.jsonl", {"c.width": 2})
    out = tmp_path / "out"
    assert batch(graph, rows, out, "--workers", "1", "--set", "c.color=1,0,0") == 0
    with PILImage.open(out / "row-0000" / "img.png") as im:
        assert im.convert("RGB").getpixel((1, 1)) == (255, 0, 0)


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        (
            [{"c.width": 3}, {"c.widht": 4}],
            "row 1 (row-0001): 'image.constant' has no parameter 'widht' to override",
        ),
        ([{"c.width": 3}, {"c.width": -4}], "row 1 (row-0001): override value -4 is invalid"),
        ([{"c.width": 3}, {"nobody.width": 4}], "row 1 (row-0001): override names no node"),
    ],
)
def test_a_bad_row_stops_the_batch_before_any_row_runs(
    tmp_path: Path,
    graph: Path,
    capsys: pytest.CaptureFixture[str],
    rows: list[dict[str, Any]],
    message: str,
) -> None:
    out = tmp_path / "out"
    assert batch(graph, jsonl(tmp_path / "r.jsonl", *rows), out) == 2
    err = capsys.readouterr().err
    assert err.startswith("The batch cannot start (1 problem):") and message in err
    assert not out.exists()


def test_an_invalid_graph_stops_the_batch_and_is_listed_once(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    doc = graph_doc()
    doc["nodes"].append({"id": "ghost", "type": "no.such"})
    graph = tmp_path / "g.json"
    graph.write_text(json.dumps(doc))
    rows = jsonl(tmp_path / "r.jsonl", {"c.width": 3}, {"c.width": 4})
    out = tmp_path / "out"
    assert batch(graph, rows, out) == 2
    err = capsys.readouterr().err
    assert err.count("unknown node type 'no.such'") == 1 and "row 0" not in err
    assert not out.exists()


def test_a_row_pointing_at_a_missing_file_stops_the_batch(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    doc = graph_doc()
    doc["nodes"].append({"id": "load", "type": "image.load", "params": {"path": "in.png"}})
    doc["nodes"].append({"id": "s2", "type": "image.save", "params": {"path": "copy.png"}})
    doc["edges"].append({"from": ["load", "image"], "to": ["s2", "image"]})
    graph = tmp_path / "g.json"
    graph.write_text(json.dumps(doc))
    PILImage.new("RGB", (2, 2)).save(tmp_path / "in.png")
    rows = jsonl(tmp_path / "r.jsonl", {"load.path": "in.png"}, {"load.path": "gone.png"})
    out = tmp_path / "out"
    assert batch(graph, rows, out) == 2
    err = capsys.readouterr().err
    assert f"row 1 (row-0001): file {tmp_path / 'gone.png'} does not exist" in err
    assert "row 0" not in err and not out.exists()


def test_missing_rows_file_and_unwritable_out_exit_2(
    tmp_path: Path, graph: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert batch(graph, tmp_path / "none.jsonl", tmp_path / "out") == 2
    assert f"batch file {tmp_path / 'none.jsonl'} does not exist" in capsys.readouterr().err
    blocker = tmp_path / "blocker"
    blocker.write_text("a file")
    rows = jsonl(tmp_path / "r.jsonl", {"c.width": 3}, {"c.width": 4})
    assert batch(graph, rows, blocker / "out") == 2
    err = capsys.readouterr().err
    assert err.count(f"{blocker} is a file, not a folder") == 1
    assert blocker.read_text() == "a file" and not (tmp_path / "out").exists()


def test_a_row_nested_without_end_is_refused_briefly(tmp_path: Path) -> None:
    rows = tmp_path / "rows.jsonl"
    rows.write_text('{"a.b": 1}\n' + "[" * 100_000 + "]" * 100_000 + "\n")
    with pytest.raises(BatchFileError, match="line 2 nests too deeply") as info:
        read_rows(rows)
    assert len(str(info.value)) < 300
