"""Graph files: round trips, editor data, atomic saves with .bak, every kind of bad file,
legacy ids and node upgrades, format migrations, and loading that never runs code."""

from __future__ import annotations

import json
import os
import struct
import time
import zlib
from pathlib import Path
from typing import Any

import pytest
from bombs import HUGE, peak_rss_mb, png_bytes

from fathom.engine import fileio, graphfile
from fathom.engine.errors import GraphFileError
from fathom.engine.graph import Graph
from fathom.engine.node import Input, Node, Output, Param
from fathom.engine.registry import Registry
from fathom.engine.types import Float


def sample_graph() -> Graph:
    g = Graph()
    g.add_node("math.binary", "a", {"op": "multiply", "a": 2.0, "b": 4.0})
    g.add_node("math.scale", "b", {"factor": 0.5}, title="Half")
    g.add_node("math.scale", "c", bypass=True)
    g.add_node("math.sum", "d", mute=True)
    g.connect("a", "value", "b", "value")
    g.connect("b", "value", "c", "value")
    g.connect("c", "value", "d", "values", multi=True)
    g.ui = {
        "nodes": {"a": {"pos": [10, 20], "color": "#ff0000"}, "b": {"pos": [200, 20]}},
        "comments": [{"text": "halve it"}],
    }
    g.meta = {"name": "sample", "description": "for tests"}
    return g


def write(path: Path, doc: Any) -> Path:
    path.write_text(doc if isinstance(doc, str) else json.dumps(doc))
    return path


def minimal(**extra: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "format": "fathom.graph",
        "version": 1,
        "nodes": [{"id": "a", "type": "math.binary"}],
        "edges": [],
    }
    doc.update(extra)
    return doc


# ---- round trips ---------------------------------------------------------------------------


def test_save_load_save_is_byte_identical(tmp_path: Path, treg: Registry) -> None:
    first = graphfile.save(sample_graph(), tmp_path / "g.json", treg)
    loaded = graphfile.load(first, treg)
    second = graphfile.save(loaded, tmp_path / "g2.json", treg)
    assert first.read_bytes() == second.read_bytes()
    assert loaded.nodes["b"].title == "Half" and loaded.nodes["c"].bypass
    assert loaded.nodes["d"].mute and loaded.nodes["a"].params["op"] == "multiply"
    assert loaded.ui["nodes"]["a"]["pos"] == [10, 20] and loaded.meta["name"] == "sample"
    assert [(e.src, e.dst) for e in loaded.edges] == [("a", "b"), ("b", "c"), ("c", "d")]
    doc = json.loads(first.read_text())
    assert doc["format"] == "fathom.graph" and doc["version"] == 1
    assert doc["nodes"][0]["version"] == 1  # each node records its type's version


def test_editor_data_is_kept_but_not_hashed(tmp_path: Path, treg: Registry) -> None:
    g = sample_graph()
    h0 = graphfile.graph_hash(graphfile.to_document(g, treg))
    g.ui["nodes"]["a"]["pos"] = [999, 999]
    g.ui["groups"] = [{"title": "G", "nodes": ["a", "b"]}]
    g.meta["description"] = "changed"
    assert graphfile.graph_hash(graphfile.to_document(g, treg)) == h0
    loaded = graphfile.load(graphfile.save(g, tmp_path / "g.json", treg), treg)
    assert loaded.ui["groups"] == [{"title": "G", "nodes": ["a", "b"]}]
    g.set_param("b", "factor", 0.25)
    assert graphfile.graph_hash(graphfile.to_document(g, treg)) != h0


# ---- atomic saves --------------------------------------------------------------------------


def test_overwrite_keeps_the_previous_file_as_bak(tmp_path: Path, treg: Registry) -> None:
    path = tmp_path / "g.json"
    g = sample_graph()
    graphfile.save(g, path, treg)
    old = path.read_bytes()
    g.set_param("b", "factor", 3.0)
    graphfile.save(g, path, treg)
    assert (tmp_path / "g.json.bak").read_bytes() == old
    assert graphfile.load(path, treg).nodes["b"].params["factor"] == 3.0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["g.json", "g.json.bak"]


def test_a_failing_write_leaves_the_old_file_and_no_temp(
    tmp_path: Path, treg: Registry, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "g.json"
    graphfile.save(sample_graph(), path, treg)
    old = path.read_bytes()

    def disk_full(fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(fileio.os, "fsync", disk_full)
    g = sample_graph()
    g.set_param("a", "b", 100.0)
    with pytest.raises(OSError, match="No space left"):
        graphfile.save(g, path, treg)
    assert path.read_bytes() == old
    assert sorted(p.name for p in tmp_path.iterdir()) == ["g.json"]


@pytest.mark.parametrize("value", [object(), {"nested": 1}])
def test_params_a_file_cannot_hold_fail_before_touching_it(tmp_path: Path, value: Any) -> None:
    path = tmp_path / "g.json"
    graphfile.save(sample_graph(), path)
    old = path.read_bytes()
    g = sample_graph()
    g.nodes["a"].params["a"] = value
    with pytest.raises(GraphFileError, match=r"at \$\.nodes\[0\]\.params\.a: .* is not of type"):
        graphfile.save(g, path)
    assert path.read_bytes() == old and not (tmp_path / "g.json.bak").exists()


def test_saved_files_get_normal_permissions(tmp_path: Path) -> None:
    path = graphfile.save(sample_graph(), tmp_path / "g.json")
    umask = os.umask(0)
    os.umask(umask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~umask


# ---- bad files -----------------------------------------------------------------------------


def test_malformed_json_names_line_and_column(tmp_path: Path) -> None:
    path = write(tmp_path / "g.json", '{\n  "format": "fathom.graph",\n  "version": 1,,\n}')
    with pytest.raises(GraphFileError, match=r"not valid JSON: .* at line 3, column 16\.") as e:
        graphfile.load(path)
    assert str(path) in str(e.value) and ".bak" in str(e.value)


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        ([1, 2], "holds a JSON list, not a graph object"),
        (
            {"format": "comfy.workflow", "version": 1},
            "format 'comfy.workflow', expected 'fathom.graph'",
        ),
        ({"version": 1, "nodes": []}, "format None"),
        (
            minimal(version=2),
            "graph format version 2, newer than this Fathom reads \\(version 1\\)",
        ),
        (minimal(version="1"), "version '1'; expected a whole number"),
        (minimal(version=0), "version 0"),
    ],
)
def test_wrong_format_or_version_is_refused(tmp_path: Path, doc: Any, message: str) -> None:
    with pytest.raises(GraphFileError, match=message):
        graphfile.load(write(tmp_path / "g.json", doc))


def test_schema_violations_are_all_listed(tmp_path: Path) -> None:
    doc = minimal(
        nodes=[
            {"type": "math.binary"},  # no id
            {"id": "b", "type": "Not A Type"},  # bad type id
            {"id": "c", "type": "math.scale", "colour": "red"},
        ],  # unknown key
        edges=[{"from": ["b", "value"]}],  # no "to"
        extra=True,
    )  # unknown top-level key
    with pytest.raises(GraphFileError) as exc:
        graphfile.load(write(tmp_path / "g.json", doc))
    text = str(exc.value)
    assert "does not match the graph schema (5 problems)" in text
    for where in (
        "at $:",
        "at $.nodes[0]:",
        "at $.nodes[1].type:",
        "at $.nodes[2]:",
        "at $.edges[0]:",
    ):
        assert where in text, where
    assert "'id' is a required property" in text and "'to' is a required property" in text


def test_duplicate_node_ids_and_missing_files(tmp_path: Path) -> None:
    doc = minimal(nodes=[{"id": "a", "type": "math.binary"}, {"id": "a", "type": "math.scale"}])
    with pytest.raises(GraphFileError, match="node id 'a' is used twice"):
        graphfile.load(write(tmp_path / "g.json", doc))
    with pytest.raises(GraphFileError, match="does not exist"):
        graphfile.load(tmp_path / "nope.json")
    (tmp_path / "bin.json").write_bytes(b"\xff\xfe\x00bad")
    with pytest.raises(GraphFileError, match="cannot be read as text"):
        graphfile.load(tmp_path / "bin.json")


def test_png_without_a_graph_is_refused(tmp_path: Path) -> None:
    from PIL import Image as PILImage

    PILImage.new("RGB", (2, 2)).save(tmp_path / "plain.png")
    with pytest.raises(GraphFileError, match="has no graph embedded"):
        graphfile.load(tmp_path / "plain.png")
    (tmp_path / "fake.png").write_bytes(b"not a png")
    with pytest.raises(GraphFileError, match="cannot be read as an image"):
        graphfile.load(tmp_path / "fake.png")


def test_json_error_messages_read_once(tmp_path: Path) -> None:
    for text, what in [
        ('{"format": "fathom.graph", "nodes": "abc', "Unterminated string starting at line 1"),
        ('{"a": "tab\there"}', "Invalid control character at line 1, column 11."),
    ]:
        with pytest.raises(GraphFileError) as e:
            graphfile.load(write(tmp_path / "g.json", text))
        assert what in str(e.value) and "at at" not in str(e.value)


@pytest.mark.parametrize("depth", [101, 900, 100_000])
def test_deep_nesting_is_a_graph_file_error(tmp_path: Path, depth: int) -> None:
    editor = '{"view": ' * depth + "{}" + "}" * depth
    for text in ("[" * depth + "]" * depth, json.dumps(minimal())[:-1] + f', "editor": {editor}}}'):
        with pytest.raises(GraphFileError, match="more than 100 levels deep"):
            graphfile.load(write(tmp_path / "g.json", text))


def test_nested_subgraphs_of_a_real_depth_still_load(tmp_path: Path) -> None:
    sub: dict[str, Any] = {"nodes": [], "edges": []}
    for _ in range(30):
        sub = {"nodes": [], "edges": [], "subgraphs": {"s": sub}}
    graph = graphfile.load(write(tmp_path / "g.json", minimal(subgraphs={"s": sub})))
    assert "s" in graph.subgraphs


def test_long_values_are_quoted_briefly(tmp_path: Path) -> None:
    long = "x" * 100_000
    for doc in (
        minimal(nodes=[{"id": long, "type": "math.binary"}]),  # too long for the schema
        minimal(nodes=[{"id": "a", "type": "math.binary", "params": {long: {"k": 1}}}]),
        {"format": long, "version": 1},
        minimal(version=long),
    ):
        with pytest.raises(GraphFileError) as e:
            graphfile.load(write(tmp_path / "g.json", doc))
        assert "… (100002 characters)" in str(e.value) or "… (100000 characters)" in str(e.value)
        assert len(str(e.value)) < 1000


def png_with_graph(path: Path, size: tuple[int, int], text: str, chunk: str = "iTXt") -> Path:
    """A PNG of zeros carrying ``text`` under the graph key in a tEXt, zTXt or iTXt chunk."""
    key = graphfile.PNG_KEY.encode()
    body = {
        "tEXt": key + b"\0" + text.encode("latin-1"),
        "zTXt": key + b"\0\0" + zlib.compress(text.encode("latin-1")),
        "iTXt": key + b"\0\x01\0\0\0" + zlib.compress(text.encode()),
    }[chunk]
    kind = chunk.encode()
    crc = zlib.crc32(kind + body) & 0xFFFFFFFF
    data = png_bytes(*size)
    path.write_bytes(
        data[:-12]
        + struct.pack(">I", len(body))
        + kind
        + body
        + struct.pack(">I", crc)
        + data[-12:]
    )
    return path


@pytest.mark.parametrize("chunk", ["tEXt", "zTXt", "iTXt"])
def test_a_graph_in_a_huge_png_loads_without_decoding_the_pixels(
    tmp_path: Path, chunk: str
) -> None:
    png = png_with_graph(tmp_path / "g.png", HUGE, json.dumps(minimal()), chunk)
    before, t0 = peak_rss_mb(), time.perf_counter()
    graph = graphfile.load(png)
    assert list(graph.nodes) == ["a"]
    assert time.perf_counter() - t0 < 1.0 and peak_rss_mb() - before < 200
    deep = png_with_graph(tmp_path / "d.png", (2, 2), "[" * 100_000 + "]" * 100_000, chunk)
    with pytest.raises(GraphFileError, match="more than 100 levels deep"):
        graphfile.load(deep)
    (tmp_path / "cut.png").write_bytes(png.read_bytes()[:1000])
    with pytest.raises(GraphFileError, match="cannot be read as an image: it is truncated"):
        graphfile.load(tmp_path / "cut.png")


def test_loading_never_executes_code(tmp_path: Path, treg: Registry) -> None:
    marker = tmp_path / "pwned"
    code = f"__import__('pathlib').Path({str(marker)!r}).write_text('x')"
    doc = {
        "format": "fathom.graph",
        "version": 1,
        "meta": {"name": code},
        "nodes": [{"id": "t", "type": "t.label", "params": {"text": code}, "title": code}],
        "edges": [],
    }
    g = graphfile.load(write(tmp_path / "g.json", doc), treg)
    assert g.nodes["t"].params["text"] == code and g.meta["name"] == code
    from fathom.engine.executor import Executor

    result = Executor(treg, library=lambda n: None).run(g)
    assert result.output("t", "text") == code
    assert not marker.exists()


# ---- node versions, legacy ids, migrations -------------------------------------------------


class Gain(Node):
    """Version 2 renamed 'amount' to 'factor' and took over the old id 'legacy.gain'."""

    type_id = "t.gain"
    version = 2
    legacy_ids = ("legacy.gain",)
    inputs = (Input("value", Float, optional=True),)
    outputs = (Output("value", Float),)
    params = (Param("factor", Float, 1.0),)

    @classmethod
    def upgrade(cls, params: dict[str, Any], from_version: int) -> dict[str, Any]:
        params = dict(params)
        if from_version < 2 and "amount" in params:
            params["factor"] = params.pop("amount")
        return params

    def run(self, ctx: Any, factor: float, value: float | None = None) -> dict[str, Any]:
        return {"value": (1.0 if value is None else value) * factor}


@pytest.fixture
def gain_registry() -> Registry:
    reg = Registry()
    reg.register(Gain)
    return reg


def test_legacy_ids_resolve_and_old_versions_are_upgraded(
    tmp_path: Path, gain_registry: Registry
) -> None:
    doc = minimal(
        nodes=[
            {"id": "g", "type": "legacy.gain", "version": 1, "params": {"amount": 3.0}},
            {"id": "h", "type": "t.gain", "params": {"factor": 5.0}},
        ]
    )
    path = write(tmp_path / "old.json", doc)
    g = graphfile.load(path, gain_registry)
    assert (g.nodes["g"].type, g.nodes["g"].params, g.nodes["g"].version) == (
        "t.gain",
        {"factor": 3.0},
        2,
    )
    assert g.nodes["h"].params == {"factor": 5.0}  # no version: already current
    saved = json.loads(graphfile.dumps(graphfile.to_document(g, gain_registry)))
    assert saved["nodes"][0] == {
        "id": "g",
        "type": "t.gain",
        "version": 2,
        "params": {"factor": 3.0},
    }


def test_a_node_saved_by_a_newer_version_is_refused(
    tmp_path: Path, gain_registry: Registry
) -> None:
    doc = minimal(nodes=[{"id": "g", "type": "t.gain", "version": 3}])
    with pytest.raises(
        GraphFileError, match="version 3 of 't.gain', newer than the installed version 2"
    ):
        graphfile.load(write(tmp_path / "g.json", doc), gain_registry)


def test_migrations_run_step_by_step_to_the_current_version() -> None:
    def v1_to_v2(doc: dict[str, Any]) -> dict[str, Any]:
        doc["nodes"] = [{**n, "type": n["type"].replace("old.", "math.")} for n in doc["nodes"]]
        return doc

    doc = {
        "format": "fathom.graph",
        "version": 1,
        "nodes": [{"id": "a", "type": "old.binary"}],
        "edges": [],
    }
    out = graphfile.migrate(doc, migrations={1: v1_to_v2}, current=2)
    assert out["version"] == 2 and out["nodes"][0]["type"] == "math.binary"
    assert doc["version"] == 1 and doc["nodes"][0]["type"] == "old.binary"  # input untouched
    with pytest.raises(GraphFileError, match="no migration from graph version 1 to 2"):
        graphfile.migrate(doc, migrations={}, current=2)
    assert graphfile.migrate(doc) == doc  # already current: unchanged


def test_the_schema_ships_with_the_package() -> None:
    schema = graphfile.schema()
    assert schema["properties"]["format"] == {"const": "fathom.graph"}
    assert schema["$defs"]["editor"]["description"].startswith("Editor-only")
