"""Test-only node types for the engine-core tests, registered in a fresh Registry (never the
default one), plus small graph builders shared by the executor, subgraph and file tests."""

from __future__ import annotations

import time
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

from fathom.engine.executor import Executor
from fathom.engine.graph import Graph
from fathom.engine.node import Input, Node, Output, Param
from fathom.engine.registry import Registry
from fathom.engine.types import Float, Image, Int, PathValue, String, Video


class Sleep(Node):
    """Passes its input on (or 1.0) after sleeping: makes overlap between branches measurable."""

    type_id = "t.sleep"
    category = "test"
    inputs = (Input("value", Float, optional=True),)
    outputs = (Output("value", Float),)
    params = (Param("seconds", Float, 0.0, min=0.0),)

    def run(self, ctx: Any, seconds: float, value: float | None = None) -> dict[str, Any]:
        time.sleep(seconds)
        return {"value": 1.0 if value is None else value}


class Loop(Node):
    """A long loop that reports progress each step; cancelling stops it at the next step."""

    type_id = "t.loop"
    category = "test"
    outputs = (Output("value", Float),)
    params = (Param("steps", Int, 10, min=1), Param("step_seconds", Float, 0.0, min=0.0))

    def run(self, ctx: Any, steps: int, step_seconds: float) -> dict[str, Any]:
        for i in range(steps):
            ctx.progress(i / steps, f"step {i}")
            time.sleep(step_seconds)
        ctx.check_cancelled()
        ctx.preview(float(steps), "done")
        return {"value": float(steps)}


class Boom(Node):
    """Raises a plain exception: the kind of bug a third-party node has."""

    type_id = "t.boom"
    category = "test"
    inputs = (Input("value", Float, optional=True),)
    outputs = (Output("value", Float),)

    def run(self, ctx: Any, value: float | None = None) -> dict[str, Any]:
        raise RuntimeError("kaboom")


class Random(Node):
    """A uniform number from the node's own derived seed (no seed parameter)."""

    type_id = "t.random"
    category = "test"
    seeded = True
    outputs = (Output("value", Float),)

    def run(self, ctx: Any) -> dict[str, Any]:
        return {"value": float(ctx.rng().random())}


class Clock(Node):
    """Reads the outside world (the clock), so it opts out of caching."""

    type_id = "t.clock"
    category = "test"
    cacheable = False
    outputs = (Output("value", Float),)

    def run(self, ctx: Any) -> dict[str, Any]:
        return {"value": time.perf_counter()}


class Blob(Node):
    """An image of a given size: a value whose bytes the cache budget counts."""

    type_id = "t.blob"
    category = "test"
    inputs = (Input("value", Float, optional=True),)
    outputs = (Output("image", Image),)
    params = (Param("side", Int, 8, min=1), Param("fill", Float, 0.5))

    def run(self, ctx: Any, side: int, fill: float, value: float | None = None) -> dict[str, Any]:
        return {"image": Image(np.full((side, side, 3), fill, np.float32))}


class Label(Node):
    """Text output, to test type mismatches against float inputs."""

    type_id = "t.label"
    category = "test"
    outputs = (Output("text", String),)
    params = (Param("text", String, "hi"),)

    def run(self, ctx: Any, text: str) -> dict[str, Any]:
        return {"text": text}


class WrongOutput(Node):
    """Declares an image but returns a number: the node must fail itself."""

    type_id = "t.wrong"
    category = "test"
    outputs = (Output("image", Image),)

    def run(self, ctx: Any) -> dict[str, Any]:
        return {"image": 3.0}


class Weights(Node):
    """Stands in for a model loader: records the weights file it used, for provenance."""

    type_id = "t.weights"
    category = "test"
    outputs = (Output("value", Float),)
    params = (Param("path", PathValue, "w.safetensors"),)

    def run(self, ctx: Any, path: str) -> dict[str, Any]:
        file = ctx.resolve_path(path)
        ctx.record_model_file(file)
        return {"value": float(file.stat().st_size)}


class Frames(Node):
    """Reads a video's length and rate: an Image wired in arrives as a one-frame Video."""

    type_id = "t.frames"
    category = "test"
    inputs = (Input("video", Video),)
    outputs = (Output("length", Int), Output("fps", Float), Output("first", Image))

    def run(self, ctx: Any, video: Video) -> dict[str, Any]:
        return {"length": len(video), "fps": video.fps, "first": video.frame(0)}


TEST_NODES = (Frames, Sleep, Loop, Boom, Random, Clock, Blob, Label, WrongOutput, Weights)


@pytest.fixture(scope="session")
def treg() -> Registry:
    """Built-in nodes plus the test-only ones above, in a registry of its own."""
    reg = Registry()
    reg.load_builtin()
    reg.register_all(TEST_NODES)
    return reg


@pytest.fixture
def make_executor(treg: Registry) -> Callable[..., Executor]:
    """Executors that never look in the user's subgraph library folder."""

    def make(**kwargs: Any) -> Executor:
        kwargs.setdefault("library", lambda name: None)
        return Executor(treg, **kwargs)

    return make


def chain(n: int = 4) -> Graph:
    """n0 (a=1, b=2: 3) → n1 … scale nodes with factor 2: n_k = 3·2^k."""
    g = Graph()
    g.add_node("math.binary", "n0", {"a": 1.0, "b": 2.0})
    for i in range(1, n):
        g.add_node("math.scale", f"n{i}", {"factor": 2.0})
        g.connect(f"n{i - 1}", "value", f"n{i}", "value")
    return g


def diamond() -> Graph:
    """top (5) → left (×2) and right (×3) → bottom = left + right = 25."""
    g = Graph()
    g.add_node("math.binary", "top", {"a": 2.0, "b": 3.0})
    g.add_node("math.scale", "left", {"factor": 2.0})
    g.add_node("math.scale", "right", {"factor": 3.0})
    g.add_node("math.sum", "bottom")
    g.connect("top", "value", "left", "value")
    g.connect("top", "value", "right", "value")
    g.connect("left", "value", "bottom", "values", multi=True)
    g.connect("right", "value", "bottom", "values", multi=True)
    return g


@pytest.fixture
def graphs() -> SimpleNamespace:
    """The graph builders, for test modules (which cannot import a conftest)."""
    return SimpleNamespace(chain=chain, diamond=diamond)


@pytest.fixture(scope="module")
def pipe():
    """A plain diffusers txt2img pipeline (DDIM) over the tiny random-weight benchmark parts:
    the baseline the acceleration identity tests compare against."""
    from diffusers import DDIMScheduler, StableDiffusionPipeline

    from fathom.engine.diffusion.minimodels import TINY, build_components

    parts = build_components(TINY)
    parts.pop("tiny_vae")
    p = StableDiffusionPipeline(
        **parts, safety_checker=None, feature_extractor=None, requires_safety_checker=False
    )
    p.scheduler = DDIMScheduler.from_config(p.scheduler.config)
    p.set_progress_bar_config(disable=True)
    return p
