"""Shared fixtures: the built-in node registry, a graph runner, a node context for direct calls."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from engine.context import NodeContext, RunOptions
from engine.device import DeviceInfo
from engine.executor import Executor, RunResult
from engine.graph import Graph
from engine.registry import Registry


@pytest.fixture(scope="session")
def registry() -> Registry:
    reg = Registry()
    reg.load_builtin()
    return reg


@pytest.fixture
def options(tmp_path: Path) -> RunOptions:
    """Inputs resolve against tmp_path; outputs land in tmp_path/out."""
    return RunOptions(output_dir=tmp_path / "out", base_dir=tmp_path, device="cpu")


@pytest.fixture
def run_graph(registry: Registry, options: RunOptions) -> Callable[..., RunResult]:
    """run_graph(graph, **executor_run_kwargs) with a fresh executor (so a fresh cache)."""

    def run(graph: Graph, **kwargs: Any) -> RunResult:
        kwargs.setdefault("options", options)
        return Executor(registry).run(graph, **kwargs)

    return run


@pytest.fixture
def ctx(options: RunOptions) -> NodeContext:
    return NodeContext("node", options, DeviceInfo("cpu"))


@pytest.fixture
def rgba8() -> np.ndarray:
    """A tiny 5×4 RGBA uint8 image with every value different enough to catch channel swaps."""
    return np.random.default_rng(7).integers(0, 256, (4, 5, 4), dtype=np.uint8)
