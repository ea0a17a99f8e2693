"""The node contract: declared once (run's signature checked against the declarations), file
parameters the engine checks and keys, and the metadata the GUI reads instead of node ids."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import pytest

from fathom.engine.context import NodeContext, RunOptions
from fathom.engine.errors import GraphInvalid
from fathom.engine.executor import Executor
from fathom.engine.graph import Graph
from fathom.engine.node import Input, Node, Output, Param
from fathom.engine.registry import CATEGORY_COLORS, Registry, RegistryError, default_registry
from fathom.engine.types import Float, Image, InputFile, Mesh, OutputFile, String


class ReadText(Node):
    """Reads a text file: an input-file parameter, opened from dropped .txt files."""

    type_id = "t.read_text"
    category = "test"
    outputs = (Output("text", String),)
    params = (Param("path", InputFile, "in.txt", suffixes=(".txt",)),)
    opens = (".txt",)
    runs = 0

    def run(self, ctx: NodeContext, path: str) -> dict[str, Any]:
        type(self).runs += 1
        return {"text": ctx.resolve_path(path).read_text()}


class WriteText(Node):
    """Writes a text file: an output-file parameter."""

    type_id = "t.write_text"
    category = "test"
    is_output = True
    inputs = (Input("text", String),)
    params = (Param("path", OutputFile, "out.txt"),)

    def run(self, ctx: NodeContext, text: str, path: str) -> dict[str, Any]:
        target = ctx.output_path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)
        return {}


class ReadFrames(Node):
    """A sequence parameter: a folder or numbered pattern of files."""

    type_id = "t.read_frames"
    category = "test"
    outputs = (Output("count", Float),)
    params = (Param("path", InputFile, "frames/%04d.png", sequence=True),)

    def run(self, ctx: NodeContext, path: str) -> dict[str, Any]:
        return {"count": 1.0}


def _executor() -> Executor:
    reg = Registry()
    for cls in (ReadText, WriteText, ReadFrames):
        reg.register(cls)
    return Executor(reg)


def _read_write(path: str) -> Graph:
    g = Graph()
    g.add_node("t.read_text", "read", {"path": path})
    g.add_node("t.write_text", "write", {"path": "copy/out.txt"})
    g.connect("read", "text", "write", "text")
    return g


# ---- declared once ---------------------------------------------------------------------------


def _bad(run: Any) -> type[Node]:
    return type(
        "Bad",
        (Node,),
        {
            "type_id": "t.bad",
            "inputs": (Input("image", Image),),
            "params": (Param("radius", Float, 1.0),),
            "run": run,
        },
    )


def test_run_must_take_every_declared_input_and_parameter() -> None:
    def run(self: Node, ctx: NodeContext, image: Any) -> dict[str, Any]:
        return {}

    with pytest.raises(RegistryError, match="no argument for the parameter 'radius'"):
        Registry().register(_bad(run))


def test_run_must_take_nothing_undeclared() -> None:
    def run(self: Node, ctx: NodeContext, image: Any, radius: float, sigma: float = 1.0) -> dict:
        return {}

    with pytest.raises(RegistryError, match="'sigma' is neither an input nor a parameter"):
        Registry().register(_bad(run))


def test_a_node_without_run_is_refused() -> None:
    cls = type("NoRun", (Node,), {"type_id": "t.norun"})
    with pytest.raises(RegistryError, match="has no run method"):
        Registry().register(cls)


def test_every_built_in_node_is_declared_once() -> None:
    for cls in default_registry().types():
        assert cls.declaration_problems() == [], cls.type_id


# ---- file parameters -------------------------------------------------------------------------


def test_a_missing_input_file_is_found_before_the_run(tmp_path: Path) -> None:
    ex = _executor()
    opts = RunOptions(base_dir=tmp_path, output_dir=tmp_path / "out")
    with pytest.raises(GraphInvalid) as info:
        ex.run(_read_write("missing.txt"), options=opts)
    (problem,) = info.value.problems
    assert problem.node == "read" and problem.port == "path"
    assert "does not exist" in problem.message and "point `path`" in (problem.fix or "")


def test_file_checks_can_be_skipped_for_validation(tmp_path: Path) -> None:
    opts = RunOptions(base_dir=tmp_path, output_dir=tmp_path / "out", check_files=False)
    plan = _executor().plan(_read_write("missing.txt"), options=opts)
    assert "read" in plan.needed


def test_an_unwritable_output_folder_is_found_before_the_run(tmp_path: Path) -> None:
    (tmp_path / "in.txt").write_text("hello")
    (tmp_path / "out").write_text("a file where the output folder should be")
    opts = RunOptions(base_dir=tmp_path, output_dir=tmp_path / "out")
    with pytest.raises(GraphInvalid) as info:
        _executor().run(_read_write("in.txt"), options=opts)
    (problem,) = info.value.problems
    assert problem.node == "write" and problem.port == "path"
    assert "is a file, not a folder" in problem.message


def test_an_edited_input_file_reruns_its_node_and_an_unchanged_one_does_not(
    tmp_path: Path,
) -> None:
    src = tmp_path / "in.txt"
    src.write_text("one")
    ex = _executor()
    opts = RunOptions(base_dir=tmp_path, output_dir=tmp_path / "out")
    g = _read_write("in.txt")
    before = ReadText.runs
    ex.run(g, options=opts)
    ex.run(g, options=opts)
    assert ReadText.runs == before + 1  # the second run came from the cache
    src.write_text("two, longer")
    os.utime(src, ns=(time.time_ns(), time.time_ns() + 10**9))
    ex.run(g, options=opts)
    assert ReadText.runs == before + 2
    assert (tmp_path / "out" / "copy" / "out.txt").read_text() == "two, longer"


def test_sequence_parameters_check_every_matching_file(tmp_path: Path) -> None:
    g = Graph()
    g.add_node("t.read_frames", "frames", {"path": "frames/%04d.png"})
    opts = RunOptions(base_dir=tmp_path, output_dir=tmp_path / "out")
    ex = _executor()
    with pytest.raises(GraphInvalid, match="no images match"):
        ex.plan(g, targets=["frames"], options=opts)
    (tmp_path / "frames").mkdir()
    (tmp_path / "frames" / "0001.png").write_bytes(b"x")
    ex.plan(g, targets=["frames"], options=opts)


def test_file_parameters_are_described_for_the_gui() -> None:
    d = ReadText.describe()
    assert d["params"][0]["type"] == "input_file" and d["params"][0]["suffixes"] == [".txt"]
    assert d["opens"] == [".txt"]
    assert WriteText.describe()["params"][0]["type"] == "output_file"


# ---- what the GUI reads ----------------------------------------------------------------------


def test_dropped_files_go_to_the_node_that_claims_their_suffix() -> None:
    reg = Registry()
    reg.register(ReadText)
    assert reg.opener(".TXT") == (ReadText, "path")
    assert reg.opener(".png") is None
    built_in = default_registry()
    assert built_in.opener(".png")[0].type_id == "image.load"
    assert built_in.opener(".npy")[0].type_id == "depth.load"
    assert built_in.opener(".mp4")[0].type_id == "video.load"
    assert built_in.opener(".glb")[0].type_id == "mesh.load"


def test_opening_files_needs_exactly_one_input_file_parameter() -> None:
    cls = type(
        "Opens",
        (Node,),
        {
            "type_id": "t.opens",
            "opens": (".txt",),
            "run": lambda self, ctx: {},
        },
    )
    with pytest.raises(RegistryError, match="exactly one input-file parameter"):
        Registry().register(cls)


def test_outputs_say_which_viewers_show_them() -> None:
    assert Output("m", Mesh).shown_in() == ("mesh", "360")
    assert Output("m", Mesh, viewers=("360",)).shown_in() == ("360",)
    assert Output("x", Float).shown_in() == ()
    pano = default_registry().get("view.panorama360")
    assert any("360" in o.shown_in() for o in pano.outputs)


def test_categories_have_distinct_colours_and_plugins_can_set_theirs() -> None:
    reg = default_registry()
    used = {cls.category for cls in reg.types()}
    colours = {reg.category_color(c) for c in used}
    assert len(colours) == len(used)  # every family is told apart
    assert used <= set(CATEGORY_COLORS)
    plugin = Registry()
    cls = type(
        "Tinted",
        (Node,),
        {"type_id": "p.tinted", "category": "plugin", "color": "#123456", "run": lambda s, c: {}},
    )
    plugin.register(cls)
    assert plugin.category_color("plugin") == "#123456"
    assert plugin.category_color("other") == plugin.category_color("other")  # stable
