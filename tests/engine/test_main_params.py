"""Main parameters: the few a node shows and edits on the canvas, declared once on the node
(``main_params``) or else its first simple ones; a name that is no parameter is a declaration
mistake caught at registration."""

from __future__ import annotations

from typing import Any

import pytest

from fathom.engine.context import NodeContext
from fathom.engine.node import Node, Param
from fathom.engine.registry import Registry, RegistryError, default_registry
from fathom.engine.types import Bool, Color, Enum, Float, Int, String


class Plain(Node):
    """No declaration: numbers, switches and choices come first; text and colours do not."""

    type_id = "t.plain"
    category = "test"
    params = (
        Param("label", String, ""),
        Param("tint", Color, (0.0, 0.0, 0.0, 1.0)),
        Param("amount", Float, 0.5, min=0, max=1),
        Param("mode", Enum, "a", choices=("a", "b")),
        Param("on", Bool, True),
        Param("count", Int, 3),
    )

    def run(self, ctx: NodeContext, **kw: Any) -> dict[str, Any]:
        return {}


class Declared(Plain):
    type_id = "t.declared"
    main_params = ("count", "label")


class Misnamed(Plain):
    type_id = "t.misnamed"
    main_params = ("label", "strenght")


def test_default_main_parameters_are_the_first_simple_ones() -> None:
    assert [p.name for p in Plain.main_specs()] == ["amount", "mode", "on"]


def test_declared_main_parameters_keep_their_order() -> None:
    assert [p.name for p in Declared.main_specs()] == ["count", "label"]


def test_a_misnamed_main_parameter_is_refused_at_registration() -> None:
    assert any("strenght" in p for p in Misnamed.declaration_problems())
    with pytest.raises(RegistryError, match="main_params"):
        Registry().register(Misnamed)


def test_built_in_nodes_declare_what_artists_change_most() -> None:
    reg = default_registry()
    assert [p.name for p in reg.get("generate.text_to_image").main_specs()] == [
        "prompt",
        "steps",
        "seed",
    ]
    assert [p.name for p in reg.get("image.save").main_specs()] == ["path", "format"]
    assert [p.name for p in reg.get("depth.estimate").main_specs()] == ["model", "steps"]
