"""GUI test fixtures: offscreen Qt, isolated settings, test-only nodes and a main window.

QT_QPA_PLATFORM is set here, before any test module imports Qt, so the suite needs no display.
"""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from fathom.engine.node import Input, Node, Output, Param
from fathom.engine.registry import Registry
from fathom.engine.types import Float, Image, Int


class Slow(Node):
    """Sleeps in steps, reporting progress and a step preview: a stand-in for a denoiser."""

    type_id = "test.slow"
    title = "Slow"
    category = "test"
    cacheable = False
    inputs = (Input("image", Image, optional=True),)
    outputs = (Output("image", Image),)
    params = (
        Param("seconds", Float, 1.0, min=0, max=120),
        Param("steps", Int, 10, min=1, max=10_000),
    )

    def run(self, ctx: Any, seconds: float, steps: int, image: Image | None = None) -> dict:
        for i in range(steps):
            ctx.progress(i / steps, f"step {i + 1}/{steps}")  # raises Cancelled when asked
            time.sleep(seconds / steps)
            ctx.preview(Image(np.full((16, 16, 3), i / steps, np.float32)), f"step {i + 1}")
        return {"image": image if image is not None else Image(np.zeros((8, 8, 3)))}


class Busy(Node):
    """Pure-Python work that holds the GIL between switches: the worst case for the GUI."""

    type_id = "test.busy"
    title = "Busy"
    category = "test"
    cacheable = False
    inputs = (Input("image", Image),)
    outputs = (Output("image", Image),)
    params = (Param("seconds", Float, 0.5, min=0, max=60),)

    def run(self, ctx: Any, image: Image, seconds: float) -> dict:
        end = time.perf_counter() + seconds
        n = 0
        while time.perf_counter() < end:
            n += sum(i * i for i in range(2000))
            ctx.progress(1 - (end - time.perf_counter()) / max(seconds, 1e-6))
        return {"image": Image(np.clip(image.data * 0.5, 0, 1))}


class Fail(Node):
    """Always fails, like a node meeting bad input at run time."""

    type_id = "test.fail"
    title = "Fail"
    category = "test"
    inputs = (Input("image", Image),)
    outputs = (Output("image", Image),)

    def run(self, ctx: Any, image: Image) -> dict:
        raise ctx.error("boom: this node always fails", port="image", fix="remove it")


@pytest.fixture(scope="session")
def test_registry() -> Registry:
    reg = Registry()
    reg.load_builtin()
    reg.register_all([Slow, Busy, Fail])
    return reg


@pytest.fixture
def settings(tmp_path: Path) -> Any:
    from fathom.app.settings import Settings

    s = Settings(tmp_path / "settings.ini")
    s.recovery_dir = str(tmp_path / "recovery")
    s.output_dir = str(tmp_path / "gui_out")
    s.device = "cpu"
    return s


def make_window(qtbot: Any, registry: Registry, settings: Any) -> Any:
    from fathom.app.main_window import MainWindow

    w = MainWindow(registry=registry, settings=settings)
    w.files.ask_unsaved = lambda: "discard"
    w.files.ask_restore = lambda record: False
    w.inspector.pick_path = lambda spec: None
    qtbot.addWidget(w)
    w.show()
    return w


@pytest.fixture
def window(qtbot: Any, test_registry: Registry, settings: Any) -> Iterator[Any]:
    w = make_window(qtbot, test_registry, settings)
    yield w
    w.runner.shutdown()
    w.doc.mark_saved()
    w.close()


@pytest.fixture
def add(window: Any) -> Any:
    """add(type_id, x, y, **params) -> node id, through the same path the palette uses."""

    def _add(type_id: str, x: float = 0.0, y: float = 0.0, **params: Any) -> str:
        from fathom.app.commands import SetParam

        nid = window.editing.add_node(type_id, (x, y))
        for name, value in params.items():
            window.doc.undo_stack.push(SetParam(window.doc, nid, name, value))
        return nid

    return _add


@pytest.fixture
def wire(window: Any) -> Any:
    """wire(src, src_port, dst, dst_port) -> None or the refusal reason."""

    def _wire(src: str, sp: str, dst: str, dp: str) -> str | None:
        s = window.scene
        return s.connect_ports(s.nodes[src].outputs[sp], s.nodes[dst].inputs[dp])

    return _wire


@pytest.fixture
def run_and_wait(qtbot: Any, window: Any) -> Any:
    """run_and_wait(targets=None) -> the RunOutcome, after the worker thread has finished."""

    def _run(targets: list[str] | None = None, timeout: int = 20_000) -> Any:
        with qtbot.waitSignal(window.runner.finished, timeout=timeout) as blocker:
            assert window.runs.run(targets)
        return blocker.args[0]

    return _run
