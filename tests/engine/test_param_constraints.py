"""Parameters that constrain each other (a low percentile below the high one) are declared on
the node and refused by validation, so ``fathom validate`` and render stop before running."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from fathom.engine.cli import main
from fathom.engine.errors import GraphInvalid
from fathom.engine.executor import Executor
from fathom.engine.graph import Graph
from fathom.engine.node import Input, Node, Ordered, Output, Param
from fathom.engine.registry import Registry, default_registry
from fathom.engine.types import Float, Image, Int
from fathom.engine.validate import validate

REG = default_registry()


def colorize_graph(low: float, high: float) -> dict[str, Any]:
    """depth.npy → colorize → save, with the colorize percentiles given."""
    return {
        "format": "fathom.graph",
        "version": 1,
        "nodes": [
            {"id": "d", "type": "depth.load", "params": {"path": "depth.npy"}},
            {
                "id": "col",
                "type": "depth.colorize",
                "params": {"low_percentile": low, "high_percentile": high},
            },
            {"id": "s", "type": "image.save", "params": {"path": "a.png"}},
        ],
        "edges": [
            {"from": ["d", "depth"], "to": ["col", "depth"]},
            {"from": ["col", "image"], "to": ["s", "image"]},
        ],
    }


def test_a_low_percentile_above_the_high_one_is_refused_before_the_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    np.save(tmp_path / "depth.npy", np.linspace(1, 5, 12, dtype=np.float32).reshape(3, 4))
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(colorize_graph(99.0, 2.0)))
    assert main(["validate", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "node 'col', port 'low_percentile'" in err
    assert "low_percentile (99) must be below high_percentile (2)" in err
    assert "Fix: set low_percentile below 2, or raise high_percentile above 99" in err
    assert main(["render", str(bad), "--out", str(tmp_path / "o"), "--device", "cpu"]) == 2
    assert "low_percentile (99) must be below high_percentile (2)" in capsys.readouterr().err
    assert not (tmp_path / "o" / "a.png").exists()
    good = tmp_path / "good.json"
    good.write_text(json.dumps(colorize_graph(2.0, 98.0)))
    assert main(["validate", str(good)]) == 0


def test_the_built_in_pairs_are_declared() -> None:
    """Every built-in node with an ordered pair declares it (the ones an artist can swap)."""
    pairs = {
        "depth.normalize": ("low_percentile", "high_percentile"),
        "depth.colorize": ("low_percentile", "high_percentile"),
        "depth.to_metric": ("near", "far"),
        "image.edges": ("low", "high"),
        "generate.controlnet": ("start", "end"),
        "video.trim": ("start", "end"),
        "video.text": ("start", "end"),
    }
    for type_id, (low, high) in pairs.items():
        cls = REG.get(type_id)
        assert cls is not None, type_id
        values = {**cls.defaults(), low: 0.9, high: 0.1}
        (problem,) = cls.check_values("n", values)
        assert problem.node == "n" and problem.port == low and high in problem.message
        assert cls.check_values("n", {**cls.defaults(), low: 0.1, high: 0.9}) == []


class Window(Node):
    """A test node with a strict and a non-strict pair and an optional end."""

    type_id = "t.window"
    category = "test"
    inputs = (Input("image", Image, optional=True),)
    outputs = (Output("image", Image),)
    params = (
        Param("lo", Float, 0.2, min=0, max=1),
        Param("hi", Float, 0.8, min=0, max=1),
        Param("first", Int, 0, min=0),
        Param("last", Int, None, min=0, optional=True),
    )
    constraints = (Ordered("lo", "hi"), Ordered("first", "last", strict=False))

    def run(
        self, ctx: Any, lo: float, hi: float, first: int, last: int | None, image: Any = None
    ) -> dict[str, Any]:
        return {"image": image}


def test_ordered_pairs_strict_equal_optional_and_declaration_checks() -> None:
    assert (
        Window.check_values("w", {"lo": 0.5, "hi": 0.5, "first": 0, "last": None})[0].port == "lo"
    )
    assert Window.check_values("w", {"lo": 0.1, "hi": 0.5, "first": 3, "last": 3}) == []
    assert Window.check_values("w", {"lo": 0.1, "hi": 0.5, "first": 3, "last": None}) == []
    (p,) = Window.check_values("w", {"lo": 0.1, "hi": 0.5, "first": 4, "last": 3})
    assert "first (4) must be at or below last (3)" in p.message and p.code == "param_order"

    class Broken(Window):
        type_id = "t.broken"
        constraints = (Ordered("lo", "nope"),)

    assert any("names no parameter ['nope']" in m for m in Broken.declaration_problems())


def test_validation_and_planning_report_the_pair_once_with_other_problems() -> None:
    reg = Registry()
    reg.load_builtin()
    reg.register(Window)
    g = Graph()
    g.add_node("t.window", "w", {"lo": 0.9, "hi": 0.1})
    problems = validate(g, reg.get)
    assert [(p.node, p.port, p.code) for p in problems] == [("w", "lo", "param_order")]
    # A value that is itself invalid is reported alone: no relation among invalid values.
    g.set_param("w", "hi", 5.0)
    assert [p.code for p in validate(g, reg.get)] == ["bad_param"]
    g.set_param("w", "hi", 0.1)
    with pytest.raises(GraphInvalid, match="lo \\(0.9\\) must be below hi \\(0.1\\)"):
        Executor(reg).plan(g)
