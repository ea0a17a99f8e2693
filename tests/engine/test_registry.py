"""Registry: built-in node families, third-party entry points (good and broken), and the
`fathom nodes` listing."""

from __future__ import annotations

import json
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from fathom.engine.cli import main
from fathom.engine.executor import Executor
from fathom.engine.graph import Graph
from fathom.engine.registry import Registry, RegistryError, default_registry

BUILTINS = (
    "image.load",
    "image.save",
    "image.resize",
    "value.int",
    "value.float",
    "value.string",
    "preview.show",
    "math.binary",
    "math.scale",
    "math.sum",
)


def test_builtin_families_are_found() -> None:
    reg = Registry()
    reg.load_builtin()
    for type_id in BUILTINS:
        assert type_id in reg, type_id
    ids = [c.type_id for c in reg.types()]
    assert ids == sorted(ids) and len(ids) == len(set(ids))
    assert all(i == i.lower() and "." in i and " " not in i for i in ids)
    assert reg.load_errors == []


def test_a_type_id_cannot_be_declared_twice() -> None:
    reg = Registry()
    reg.load_builtin()
    cls = reg.get("math.scale")
    clone = type("Scale2", (cls,), {"__module__": "elsewhere"})
    with pytest.raises(RegistryError, match="'math.scale' is declared twice"):
        reg.register(clone)
    reg.register(cls)  # the same class again is harmless
    assert reg.get("math.scale") is cls


PLUGIN = '''
"""A third-party node pack used by the registry test."""
from fathom.engine.node import Node, Output, Param
from fathom.engine.types import String


class Hello(Node):
    """Says hello to someone."""

    type_id = "testplugin.hello"
    category = "plugin"
    legacy_ids = ("testplugin.hi",)
    outputs = (Output("text", String),)
    params = (Param("name", String, "world"),)

    def run(self, ctx, name):
        return {"text": f"hello {name}"}


def more():
    class Shout(Node):
        """Says it louder."""

        type_id = "testplugin.shout"
        category = "plugin"
        outputs = (Output("text", String),)

        def run(self, ctx):
            return {"text": "HEY"}

    return [Shout]
'''


@pytest.fixture
def plugin_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A fake installed distribution whose entry points name a good pack, a factory, a pack
    that raises on import and one that names a missing attribute."""
    dist = tmp_path / "fathom_testplugin-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: fathom-testplugin\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text(
        textwrap.dedent("""\
        [fathom.nodes]
        hello = fathom_testplugin
        more = fathom_testplugin:more
        broken = fathom_testbroken
        missing = fathom_testplugin:nothing_here
        """)
    )
    (tmp_path / "fathom_testplugin.py").write_text(PLUGIN)
    (tmp_path / "fathom_testbroken.py").write_text("raise RuntimeError('plugin exploded')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    yield tmp_path
    for name in ("fathom_testplugin", "fathom_testbroken"):
        sys.modules.pop(name, None)


def test_entry_point_plugins_register_and_broken_ones_are_recorded(plugin_dir: Path) -> None:
    reg = Registry()
    reg.load_builtin()
    before = len(reg.types())
    reg.load_entry_points()
    assert "testplugin.hello" in reg and "testplugin.shout" in reg
    assert reg.get("testplugin.hi") is reg.get("testplugin.hello")
    assert len(reg.types()) == before + 2
    assert len(reg.load_errors) == 2
    broken, missing = sorted(reg.load_errors)
    assert "plugin 'broken' (fathom_testbroken) failed to load: plugin exploded" in broken
    assert "'missing'" in missing and "nothing_here" in missing
    g = Graph()
    g.add_node("testplugin.hello", "h", {"name": "fathom"})
    result = Executor(reg, library=lambda n: None).run(g)
    assert result.output("h", "text") == "hello fathom"


def test_fathom_nodes_json_lists_every_type(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["nodes", "--json"]) == 0
    listing = json.loads(capsys.readouterr().out)
    nodes = {n["type"]: n for n in listing["nodes"]}
    assert set(nodes) == {c.type_id for c in default_registry().types()}
    for n in nodes.values():
        assert n["category"] and n["doc"], n["type"]
        assert {"inputs", "outputs", "params", "version", "title"} <= set(n)
    binary = nodes["math.binary"]
    assert [p["name"] for p in binary["params"]] == ["op", "a", "b"]
    assert binary["params"][0]["choices"][:2] == ["add", "subtract"]
    assert binary["inputs"][0] == {
        "name": "x",
        "type": "float",
        "optional": True,
        "multi": False,
        "doc": "first operand (overrides a)",
    }
    assert nodes["image.save"]["is_output"] is True
    assert {
        "from": "image",
        "to": "video",
        "doc": "an Image becomes a one-frame Video at 1 fps",
    } in listing["conversions"]


def test_fathom_nodes_text_listing(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["nodes", "--category", "math"]) == 0
    out = capsys.readouterr().out
    assert "math.binary" in out and "[math] (x:float?, y:float?) -> (value:float)" in out
    assert "- op = 'add'  (one of: add, subtract" in out
    assert "image.save" not in out


def test_node_docs_read_as_prose() -> None:
    """Docstrings are written for the source (indented, hard-wrapped, ``code`` marks): the
    inspector and `fathom nodes` show them unwrapped, paragraphs kept."""
    from fathom.engine.node import Node

    class Documented(Node):
        """First line wraps
        onto a second, with ``code``.

        A new paragraph."""

        type_id = "test.documented"

    assert Documented.doc() == "First line wraps onto a second, with code.\n\nA new paragraph."
