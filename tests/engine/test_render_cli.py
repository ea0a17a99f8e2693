"""The `fathom` command: render with report and overrides, every bad input (exit 2, nothing
written), node failures (exit 1), validate, and graphs embedded in saved PNGs."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image as PILImage

from fathom.engine import graphfile
from fathom.engine.cli import main
from fathom.engine.context import derive_seed
from fathom.engine.device import DeviceUnavailable, pick_device
from fathom.engine.executor import Executor
from fathom.engine.provenance import HashCache, file_sha256
from fathom.engine.registry import Registry, default_registry
from fathom.engine.render import RenderJob, build_report, execute, prepare

ROOT = Path(__file__).resolve().parents[2]


def graph_doc(*extra_nodes: dict[str, Any], edges: list[Any] | None = None) -> dict[str, Any]:
    """constant (4×3 red) → save a.png, plus whatever a test adds."""
    nodes = [
        {
            "id": "c",
            "type": "image.constant",
            "params": {"width": 4, "height": 3, "color": "#ff0000"},
        },
        {"id": "s", "type": "image.save", "params": {"path": "a.png"}},
        *extra_nodes,
    ]
    return {
        "format": "fathom.graph",
        "version": 1,
        "nodes": nodes,
        "edges": [{"from": ["c", "image"], "to": ["s", "image"]}, *(edges or [])],
    }


def write(path: Path, doc: Any) -> Path:
    path.write_text(doc if isinstance(doc, str) else json.dumps(doc))
    return path


def render(graph: Path, out: Path, *args: str) -> int:
    return main(["render", str(graph), "--out", str(out), "--device", "cpu", *args])


# ---- a good render -------------------------------------------------------------------------


def test_render_writes_outputs_and_a_full_report(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    graph = write(tmp_path / "g.json", graph_doc())
    out, report_path = tmp_path / "out", tmp_path / "reports" / "run.json"
    assert render(graph, out, "--report", str(report_path), "--seed", "5") == 0
    captured = capsys.readouterr()
    png = out / "a.png"
    assert captured.out.strip() == str(png)
    assert "[2/2] s done" in captured.err  # plain progress lines off a terminal
    with PILImage.open(png) as im:
        assert im.size == (4, 3) and im.convert("RGB").getpixel((0, 0)) == (255, 0, 0)

    report = json.loads(report_path.read_text())
    assert report["format"] == "fathom.run" and report["status"] == "ok"
    doc = graphfile.to_document(graphfile.load(graph, default_registry()), default_registry())
    assert report["graph_hash"] == graphfile.graph_hash(doc)
    nodes = {n["node"]: n for n in report["nodes"]}
    assert {n: r["status"] for n, r in nodes.items()} == {"c": "executed", "s": "executed"}
    assert nodes["s"]["outputs"] == [str(png)] and nodes["c"]["outputs"] == []
    assert all(r["seconds"] >= 0 for r in nodes.values())
    assert report["outputs"] == [str(png)]
    assert report["node_versions"] == {"image.constant": 1, "image.save": 1}
    assert report["device"]["kind"] == "cpu" and report["device"]["dtype"] == "float32"
    assert {"python", "numpy", "pillow"} <= set(report["packages"])
    assert report["seed"] == 5 and report["seeds"] == {
        "c": derive_seed(5, "c"),
        "s": derive_seed(5, "s"),
    }
    assert report["counts"]["executed"] == 2 and report["counts"]["failed"] == 0


def test_set_overrides_parameters_and_is_reported(tmp_path: Path) -> None:
    graph = write(tmp_path / "g.json", graph_doc())
    out = tmp_path / "out"
    assert (
        render(
            graph,
            out,
            "--quiet",
            "--report",
            str(out / "run.json"),
            "--set",
            "c.width=7",
            "--set",
            "c.color=0,0,1",
        )
        == 0
    )
    with PILImage.open(out / "a.png") as im:
        assert im.size == (7, 3) and im.convert("RGB").getpixel((6, 2)) == (0, 0, 255)
    report = json.loads((out / "run.json").read_text())
    assert report["overrides"] == [
        {"node": "c", "param": "width", "value": 7},
        {"node": "c", "param": "color", "value": [0, 0, 1, 1]},
    ]
    assert json.loads(graph.read_text()) == graph_doc()  # the graph file is not changed


def test_saved_pngs_carry_the_graph_that_made_them(tmp_path: Path) -> None:
    graph = write(tmp_path / "g.json", graph_doc())
    out = tmp_path / "out"
    assert render(graph, out, "--quiet", "--set", "c.width=5") == 0
    reg = default_registry()
    with PILImage.open(out / "a.png") as im:
        assert "fathom.graph" in im.text
    from_png = graphfile.load(out / "a.png", reg)
    expected = graphfile.load(graph, reg)
    expected.nodes["c"].params["width"] = 5
    assert graphfile.to_document(from_png, reg) == graphfile.to_document(expected, reg)
    # and it renders again, straight from the picture
    assert render(out / "a.png", tmp_path / "again", "--quiet") == 0
    with PILImage.open(tmp_path / "again" / "a.png") as im:
        assert im.size == (5, 3)


def test_device_and_target_options(tmp_path: Path) -> None:
    doc = graph_doc(
        {"id": "m", "type": "math.binary", "params": {"a": 2, "b": 3}},
        {"id": "show", "type": "preview.show"},
        edges=[{"from": ["m", "value"], "to": ["show", "value"]}],
    )
    graph = write(tmp_path / "g.json", doc)
    out = tmp_path / "out"
    assert (
        render(
            graph,
            out,
            "--quiet",
            "--target",
            "show",
            "--frames",
            "2-4",
            "--report",
            str(tmp_path / "r.json"),
        )
        == 0
    )
    report = json.loads((tmp_path / "r.json").read_text())
    assert sorted(n["node"] for n in report["nodes"]) == ["m", "show"]
    assert report["frames"] == [2, 4]
    assert not (out / "a.png").exists() and report["device"]["device"] == "cpu"


# ---- bad input: exit 2, nothing written ----------------------------------------------------

CYCLE = graph_doc(
    {"id": "p", "type": "math.scale"},
    {"id": "q", "type": "math.scale"},
    edges=[
        {"from": ["p", "value"], "to": ["q", "value"]},
        {"from": ["q", "value"], "to": ["p", "value"]},
    ],
)
MISMATCH = graph_doc(
    {"id": "t", "type": "value.string"},
    {"id": "k", "type": "math.scale"},
    edges=[{"from": ["t", "value"], "to": ["k", "value"]}],
)
UNKNOWN = graph_doc({"id": "u1", "type": "fancy.blur"}, {"id": "u2", "type": "other.node"})
MISSING = graph_doc(
    {"id": "load", "type": "image.load", "params": {"path": "nope.png"}},
    {"id": "s2", "type": "image.save", "params": {"path": "b.png"}},
    edges=[{"from": ["load", "image"], "to": ["s2", "image"]}],
)


@pytest.mark.parametrize(
    ("doc", "args", "expected"),
    [
        (
            '{"format": "fathom.graph",\n "version": 1,\n "nodes": [}',
            [],
            "is not valid JSON: Expecting value at line 3, column 12",
        ),
        (
            {"format": "other.app", "version": 1, "nodes": [], "edges": []},
            [],
            "format 'other.app', expected 'fathom.graph'",
        ),
        ({**graph_doc(), "version": 3}, [], "graph format version 3, newer than"),
        (UNKNOWN, [], "unknown node type 'fancy.blur'"),
        (UNKNOWN, [], "node 'u2': unknown node type 'other.node'"),
        (MISMATCH, [], "type mismatch: 't.value' gives string but this input takes float"),
        (CYCLE, [], "the graph has a cycle"),
        (
            graph_doc(),
            ["--set", "c.widht=3"],
            "'image.constant' has no parameter 'widht' to override",
        ),
        (
            graph_doc(),
            ["--set", "c.width=0"],
            "node 'c', port 'width': override value '0' is invalid: 0 is below the minimum 1",
        ),
        (graph_doc(), ["--set", "c.width=wide"], "expected an integer, got 'wide'"),
        (graph_doc(), ["--set", "zz.width=3"], "override names no node 'zz'"),
        (graph_doc(), ["--set", "c.width"], "needs the form NODE.PARAM=VALUE"),
        (graph_doc(), ["--frames", "9-2"], "need 0 <= A <= B"),
        (graph_doc(), ["--frames", "a-b"], "must look like 10-50"),
        (MISSING, [], "node 'load', port 'path': file"),
    ],
)
def test_invalid_input_exits_2_and_writes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], doc: Any, args: list[str], expected: str
) -> None:
    graph = write(tmp_path / "g.json", doc)
    out = tmp_path / "out"
    out.mkdir()
    (out / "a.png").write_bytes(b"an earlier render")
    (out / "run.json").write_text("an earlier report")
    code = render(graph, out, "--report", str(out / "run.json"), *args)
    err = capsys.readouterr().err
    assert code == 2
    assert expected in err
    assert (out / "a.png").read_bytes() == b"an earlier render"
    assert (out / "run.json").read_text() == "an earlier report"
    assert sorted(p.name for p in out.iterdir()) == ["a.png", "run.json"]


def test_missing_input_file_message_is_one_clear_paragraph(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    graph = write(tmp_path / "g.json", MISSING)
    assert render(graph, tmp_path / "out") == 2
    err = capsys.readouterr().err
    assert err.startswith("The render cannot start (1 problem):")
    assert f"file {tmp_path / 'nope.png'} does not exist" in err
    assert "Fix: point `path` at an existing file" in err
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("where", ["out", "report"])
def test_unwritable_destinations_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], where: str
) -> None:
    graph = write(tmp_path / "g.json", graph_doc())
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    out = blocker / "out" if where == "out" else tmp_path / "out"
    report = blocker / "run.json" if where == "report" else tmp_path / "run.json"
    assert render(graph, out, "--report", str(report)) == 2
    err = capsys.readouterr().err
    assert f"{blocker} is a file, not a folder" in err
    assert blocker.read_text() == "not a folder"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a_file", "g.json"]


def test_a_failed_node_exits_1_and_the_rest_is_written(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    doc = graph_doc(
        {"id": "div", "type": "math.binary", "params": {"op": "divide", "a": 1, "b": 0}},
        {"id": "show", "type": "preview.show"},
        edges=[{"from": ["div", "value"], "to": ["show", "value"]}],
    )
    graph = write(tmp_path / "g.json", doc)
    out = tmp_path / "out"
    assert render(graph, out, "--quiet", "--report", str(out / "run.json")) == 1
    err = capsys.readouterr().err
    assert "node 'div', port 'y': division by zero. Fix: feed a non-zero divisor" in err
    assert (out / "a.png").is_file()
    report = json.loads((out / "run.json").read_text())
    nodes = {n["node"]: n for n in report["nodes"]}
    assert report["status"] == "failed" and report["counts"]["failed"] == 1
    assert nodes["div"]["status"] == "failed" and "division by zero" in nodes["div"]["error"]
    assert nodes["show"]["status"] == "skipped" and nodes["s"]["status"] == "executed"
    assert report["outputs"] == [str(out / "a.png")]


def test_an_out_folder_that_passes_the_check_but_cannot_be_made_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """On /sys, root passes the access check yet mkdir fails; here the check is told all is well
    and creating the folder fails, on any machine and as any user."""
    from fathom.engine import fileio
    from fathom.engine import render as render_module

    graph = write(tmp_path / "g.json", graph_doc())
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    monkeypatch.setattr(fileio, "writable_dir_problem", lambda folder: None)
    monkeypatch.setattr(render_module, "writable_dir_problem", lambda folder: None)
    assert render(graph, blocker / "out") == 2
    err = capsys.readouterr().err
    assert err.startswith("The render cannot start (1 problem):")
    assert f"output folder {blocker / 'out'} cannot be created: " in err
    assert "Fix: choose another --out folder" in err and "Traceback" not in err
    report = blocker / "reports" / "run.json"
    assert render(graph, tmp_path / "out", "--report", str(report)) == 2
    assert "--report folder" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a_file", "g.json"]


@pytest.mark.skipif(
    not os.path.isdir("/sys") or not os.access("/sys", os.W_OK | os.X_OK),
    reason="only where /sys passes the access check (as root on Linux)",
)
def test_a_pseudo_filesystem_out_folder_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    graph = write(tmp_path / "g.json", graph_doc())
    out = Path("/sys/fathom-render-test")
    assert render(graph, out) == 2
    err = capsys.readouterr().err
    assert f"output folder {out} cannot be created: " in err and not out.exists()


def deep_graph(where: str, depth: int) -> str:
    """A graph file nested ``depth`` levels deep: all of it, or inside a node's parameters."""
    if where == "whole":
        return "[" * depth + "]" * depth
    deep = '{"a": ' * depth + "1" + "}" * depth
    return json.dumps(graph_doc()).replace('"width": 4', f'"width": {deep}')


@pytest.mark.parametrize("depth", [500, 100_000])
@pytest.mark.parametrize("where", ["whole", "params", "png"])
def test_any_nesting_exits_2_with_a_short_message(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], where: str, depth: int
) -> None:
    text = deep_graph("whole" if where == "whole" else "params", depth)
    if where == "png":
        from PIL import PngImagePlugin

        info = PngImagePlugin.PngInfo()
        info.add_itxt("fathom.graph", text, zip=True)
        graph = tmp_path / "g.png"
        PILImage.new("RGB", (2, 2)).save(graph, pnginfo=info)
    else:
        graph = write(tmp_path / "g.json", text)
    for args in (["validate", str(graph)], ["render", str(graph), "--out", str(tmp_path / "o")]):
        assert main(args) == 2
        err = capsys.readouterr().err
        assert "nests arrays or objects more than 100 levels deep" in err, err[:300]
        assert len(err) < 300 and "Traceback" not in err
    assert not (tmp_path / "o").exists()


def test_messages_quote_long_input_briefly(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    long = "x" * 100_000
    doc = graph_doc(
        {"id": "u", "type": "fancy." + long},
        {"id": "k", "type": "math.scale", "params": {"factor": long}},
        edges=[{"from": ["c", long], "to": ["s", "image"]}],
    )
    graph = write(tmp_path / "g.json", doc)
    assert main(["validate", str(graph)]) == 2
    err = capsys.readouterr().err
    assert f"unknown node type 'fancy.{long[:54]}… (100006 characters)'" in err
    assert f"has no output '{long[:60]}… (100000 characters)'" in err
    assert f"port '{long[:60]}… (100000 characters)'" in err
    assert "node 'k', port 'factor': parameter value is invalid: expected a number" in err
    assert len(err) < 2000
    good = write(tmp_path / "good.json", graph_doc())
    for setting in (f"c.{long}=1", f"{long}.width=1", f"c.width={long}", long):
        assert render(good, tmp_path / "out", "--set", setting) == 2
        err = capsys.readouterr().err
        assert "(100" in err and " characters)" in err and len(err) < 1000, err[:300]


# ---- validate ------------------------------------------------------------------------------


def test_validate_exit_codes_and_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good = write(tmp_path / "good.json", graph_doc())
    assert main(["validate", str(good)]) == 0
    assert capsys.readouterr().out.strip() == f"{good}: valid (2 nodes, 1 edges)"
    bad = write(tmp_path / "bad.json", CYCLE)
    assert main(["validate", str(bad)]) == 2
    assert "the graph has a cycle" in capsys.readouterr().err
    assert main(["validate", str(bad), "--json"]) == 2
    listing = json.loads(capsys.readouterr().out)
    assert listing["valid"] is False
    assert [p["code"] for p in listing["problems"]] == ["cycle"]
    assert main(["validate", str(write(tmp_path / "m.json", "{"))]) == 2
    assert "not valid JSON" in capsys.readouterr().err


def test_validate_runs_the_checks_render_runs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    graph = write(tmp_path / "missing.json", MISSING)
    assert render(graph, tmp_path / "out") == 2
    rendered = capsys.readouterr().err
    assert main(["validate", str(graph)]) == 2
    validated = capsys.readouterr().err
    assert validated == rendered  # the same problems, printed the same way
    assert f"node 'load', port 'path': file {tmp_path / 'nope.png'} does not exist" in validated
    assert main(["validate", str(graph), "--json"]) == 2
    listing = json.loads(capsys.readouterr().out)
    assert listing["valid"] is False and listing["error"] == validated.strip()
    assert [(p["node"], p["port"]) for p in listing["problems"]] == [("load", "path")]
    # a graph made on another machine, before its media are in place
    assert main(["validate", str(graph), "--no-file-checks"]) == 0
    assert capsys.readouterr().out.strip() == f"{graph}: valid (4 nodes, 2 edges)"
    assert main(["validate", str(graph), "--no-file-checks", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == {"valid": True, "nodes": 4}
    PILImage.new("RGB", (2, 2)).save(tmp_path / "nope.png")
    assert main(["validate", str(graph)]) == 0  # the checks pass once the file is there


def test_the_real_command_exits_2_on_a_bad_graph(tmp_path: Path) -> None:
    graph = write(tmp_path / "g.json", UNKNOWN)
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
    }
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "fathom.engine.cli",
            "render",
            str(graph),
            "--out",
            str(tmp_path / "out"),
            "--device",
            "cpu",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2, proc.stderr
    assert "unknown node type 'fancy.blur'" in proc.stderr
    assert "unknown node type 'other.node'" in proc.stderr
    assert proc.stdout == "" and not (tmp_path / "out").exists()


def test_rendered_pixels_match_the_graph(tmp_path: Path) -> None:
    graph = write(tmp_path / "g.json", graph_doc())
    assert render(graph, tmp_path / "out", "--quiet", "--set", "c.color=#336699") == 0
    with PILImage.open(tmp_path / "out" / "a.png") as im:
        pixels = np.asarray(im.convert("RGB"))
    assert pixels.shape == (3, 4, 3) and (pixels == [0x33, 0x66, 0x99]).all()


# ---- provenance and devices ----------------------------------------------------------------


def test_reports_record_model_file_hashes_once_computed(
    tmp_path: Path, treg: Registry, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FATHOM_CACHE_DIR", str(tmp_path / "cache"))
    weights = tmp_path / "w.safetensors"
    weights.write_bytes(b"\x00weights" * 1000)
    graph = write(
        tmp_path / "g.json",
        {
            "format": "fathom.graph",
            "version": 1,
            "nodes": [{"id": "m", "type": "t.weights", "params": {"path": "w.safetensors"}}],
            "edges": [],
        },
    )
    ex = Executor(treg, library=lambda n: None)
    job = RenderJob(graph, tmp_path / "out", device="cpu")
    prep = prepare(job, ex)
    report = build_report(prep, execute(prep, ex), time.time())
    digest = hashlib.sha256(weights.read_bytes()).hexdigest()
    assert report["model_files"] == {str(weights): digest}
    stored = json.loads((tmp_path / "cache" / "file_hashes.json").read_text())
    assert stored[str(weights.resolve())]["sha256"] == digest
    again = build_report(prep, execute(prepare(job, ex), ex), time.time())
    assert again["counts"]["cached"] == 1 and again["model_files"] == {str(weights): digest}


def test_hash_cache_recomputes_when_the_file_changes(tmp_path: Path) -> None:
    path = tmp_path / "w.bin"
    path.write_bytes(b"one")
    cache = HashCache(tmp_path / "hashes.json")
    assert file_sha256(path, cache) == hashlib.sha256(b"one").hexdigest()
    assert cache.lookup(path) == hashlib.sha256(b"one").hexdigest()
    path.write_bytes(b"two, longer")
    assert cache.lookup(path) is None
    assert file_sha256(path, cache) == hashlib.sha256(b"two, longer").hexdigest()


def test_device_choice_without_an_accelerator_question() -> None:
    cpu = pick_device("cpu")
    assert (cpu.kind, cpu.torch_device, cpu.dtype) == ("cpu", "cpu", "float32")
    with pytest.raises(DeviceUnavailable, match="unknown device 'tpu'"):
        pick_device("tpu")


def test_quiet_or_piped_runs_silence_third_party_progress_bars() -> None:
    """--quiet (or a stderr that is not a terminal, as in CI) turns off the progress bars and
    advisory warnings of the libraries models load through."""
    from diffusers.utils import logging as diffusers_logging

    from fathom.engine.cli import hush_libraries

    hush_libraries()
    assert not diffusers_logging.is_progress_bar_enabled()
    assert os.environ["HF_HUB_DISABLE_PROGRESS_BARS"] == "1"
    assert os.environ["TRANSFORMERS_VERBOSITY"] == "error"
