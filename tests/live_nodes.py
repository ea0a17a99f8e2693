"""Live-session test helpers: small real nodes (slow, failing, tinting, counting) in a registry
with the live and video nodes, and a builder for live graphs, so the session runs the same
executor, queues and threads a user's graph does."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np

from fathom.engine.context import NodeContext, RunOptions
from fathom.engine.executor import Executor
from fathom.engine.graphfile import loads
from fathom.engine.live import LiveOptions, LiveSession
from fathom.engine.node import Input, Node, Output, Param
from fathom.engine.registry import Registry
from fathom.engine.types import Float, Image, Int, Video


class Slow(Node):
    """Passes frames through after ``delay`` seconds (a model that falls behind)."""

    type_id = "test.slow"
    title = "Slow"
    category = "test"
    inputs = (Input("video", Video),)
    outputs = (Output("video", Video),)
    params = (Param("delay", Float, 0.1, min=0),)

    def run(self, ctx: NodeContext, video: Video, delay: float) -> dict[str, Any]:
        time.sleep(delay)
        return {"video": video}


class Flaky(Node):
    """Fails on every ``period``-th captured frame, passes the others through."""

    type_id = "test.flaky"
    title = "Flaky"
    category = "test"
    inputs = (Input("video", Video),)
    outputs = (Output("video", Video),)
    params = (Param("period", Int, 3, min=1),)

    def run(self, ctx: NodeContext, video: Video, period: int) -> dict[str, Any]:
        if ctx.live is not None and ctx.live.frame_index % period == 1:
            raise ctx.error("a planned failure", port="video", fix="none needed")
        return {"video": video}


class Tint(Node):
    """Multiplies frames by ``gain`` and counts its calls in ``ctx.state`` (stamped into the
    frame's last pixel), so a test sees both a parameter change and the state kept."""

    type_id = "test.tint"
    title = "Tint"
    category = "test"
    inputs = (Input("video", Video),)
    outputs = (Output("video", Video),)
    params = (Param("gain", Float, 1.0, min=0),)

    def run(self, ctx: NodeContext, video: Video, gain: float) -> dict[str, Any]:
        ctx.state["calls"] = ctx.state.get("calls", 0) + 1
        calls = ctx.state["calls"]

        def tint(img: Image) -> Image:
            data = np.array(img.data[..., :3], dtype=np.float32) * gain
            data[-1, -1, :] = calls / 1000.0
            return Image(np.clip(data, 0, 1))

        return {"video": video.map(tint)}


def registry() -> Registry:
    from fathom.nodes import live, video

    reg = Registry()
    reg.register_module(live)
    reg.register_module(video)
    reg.register_all([Slow, Flaky, Tint])
    return reg


def graph_doc(nodes: list[tuple[str, str, dict[str, Any]]]) -> dict[str, Any]:
    """A chain of (id, type, params), each node's ``video`` output into the next one's."""
    edges = [
        {"from": [a[0], "video"], "to": [b[0], "video"]}
        for a, b in zip(nodes, nodes[1:], strict=False)
    ]
    return {
        "format": "fathom.graph",
        "version": 1,
        "nodes": [{"id": i, "type": t, "params": p} for i, t, p in nodes],
        "edges": edges,
    }


def session(
    nodes: list[tuple[str, str, dict[str, Any]]],
    out: Path,
    seconds: float | None = None,
    frames: list[Any] | None = None,
    **options: Any,
) -> LiveSession:
    """A live session of the chain ``nodes`` on the test registry, collecting live.window
    frames as (node, Image, time) into ``frames``."""
    reg = registry()
    g = loads(json.dumps(graph_doc(nodes)), registry=reg)
    opts = LiveOptions(RunOptions(output_dir=out, device="cpu"), seconds=seconds, **options)
    sink = frames if frames is not None else []
    return LiveSession(
        g,
        opts,
        on_frame=lambda nid, img: sink.append((nid, img, time.perf_counter())),
        executor=Executor(registry=reg),
    )
