"""Node header colours come from metadata: the family (load, save or the category) a node's
declaration puts it in, so the GUI colours plugin nodes too and never names a node id."""

from __future__ import annotations

from typing import Any

from fathom.engine.node import Input, Node, Output, Param
from fathom.engine.registry import CATEGORY_COLORS, Registry, default_registry, node_family
from fathom.engine.types import Image, InputFile, OutputFile, String


def _node(type_id: str, **attrs: Any) -> type[Node]:
    attrs = {"type_id": type_id, "category": "plugin", "run": lambda s, c, **k: {}, **attrs}
    return type(type_id.replace(".", "_"), (Node,), attrs)


def test_loaders_and_savers_are_families_of_their_own() -> None:
    loader = _node("p.load", params=(Param("path", InputFile, ""),), outputs=(Output("i", Image),))
    saver = _node(
        "p.save",
        is_output=True,
        inputs=(Input("i", Image),),
        params=(Param("path", OutputFile, "out.png"),),
        outputs=(Output("written", String),),
    )
    worker = _node("p.work", inputs=(Input("i", Image),), outputs=(Output("i", Image),))
    assert [node_family(c) for c in (loader, saver, worker)] == ["load", "save", "plugin"]
    reg = Registry()
    reg.register_all([loader, saver, worker])
    assert reg.node_color(loader) == CATEGORY_COLORS["load"]
    assert reg.node_color(saver) == CATEGORY_COLORS["save"]
    assert reg.node_color(worker) == reg.category_color("plugin")


def test_every_built_in_family_has_a_colour_of_its_own() -> None:
    reg = default_registry()
    families = {node_family(cls) for cls in reg.types()}
    assert families <= set(CATEGORY_COLORS)
    assert len({reg.category_color(f) for f in families}) == len(families)
