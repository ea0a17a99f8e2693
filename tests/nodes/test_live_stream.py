"""generate.stream live: a session over a clip equals the offline node frame by frame (shifted by
the stream's latency) when no frame drops and the similarity filter is off; a prompt edit
re-encodes the prompt in the same kept pipeline; the example graph runs under `fathom live`."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch
from videoclips import make_clip

from fathom.engine.context import RunOptions
from fathom.engine.executor import Executor
from fathom.engine.graphfile import loads
from fathom.engine.live import LiveOptions, LiveSession

ROOT = Path(__file__).resolve().parents[2]


def _doc(clip: Path, model: Path, out: str, stages: str, window: bool) -> dict[str, Any]:
    gen = {
        "model": str(model),
        "prompt": "a cat",
        "t_index_list": stages,
        "num_inference_steps": 4,
        "guidance": 1.0,
        "cfg_type": "none",
        "seed": 3,
        "width": 64,
        "height": 64,
    }
    sink = {"id": "out", "type": "live.window", "params": {}}
    if not window:
        sink = {"id": "out", "type": "video.save", "params": {"path": out}}
    return {
        "format": "fathom.graph",
        "version": 1,
        "nodes": [
            {"id": "src", "type": "live.file", "params": {"path": str(clip), "loop": False}},
            {"id": "gen", "type": "generate.stream", "params": gen},
            sink,
        ],
        "edges": [
            {"from": ["src", "video"], "to": ["gen", "frames"]},
            {"from": ["gen", "video"], "to": ["out", "video"]},
        ],
    }


def test_live_equals_offline_shifted_by_the_latency(tiny_sd: Path, tmp_path: Path) -> None:
    clip = make_clip(tmp_path / "c.mp4", frames=6, fps=10)  # slow enough that no frame is late
    ex = Executor()
    offline = ex.run(
        loads(json.dumps(_doc(clip, tiny_sd, "x.mp4", "1,3", False))),
        targets=["gen"],
        options=RunOptions(output_dir=tmp_path, device="cpu"),
    ).output("gen", "video")
    shown: list[np.ndarray] = []
    # A queue as long as the clip: no frame drops, every frame goes through the stream.
    opts = LiveOptions(RunOptions(output_dir=tmp_path, device="cpu"), input_queue=8)
    s = LiveSession(
        loads(json.dumps(_doc(clip, tiny_sd, "", "1,3", True))),
        opts,
        on_frame=lambda nid, img: shown.append(img.data),
        executor=ex,
    )
    s.start()
    assert s.wait(60)
    r = s.stop()
    assert r.frames_in == r.frames_out == 6 and not r.errors
    # Two stages: live output k is the frame that entered one tick earlier (offline k - 1);
    # the first tick shows the newest frame's one-stage estimate while the stream fills.
    for k in range(1, 6):
        assert np.allclose(shown[k], offline.frame(k - 1).data, atol=1e-5), k
    assert s.states["gen"] == {}  # the kept pipeline was closed with the session


def test_a_prompt_edit_keeps_the_stream_and_encodes_the_prompt(
    tiny_sd: Path, tmp_path: Path
) -> None:
    clip = make_clip(tmp_path / "c.mp4", frames=30, fps=30)
    graph = loads(json.dumps(_doc(clip, tiny_sd, "", "1,3", True)))
    graph.nodes["src"].params["loop"] = True
    shown: list[Any] = []
    s = LiveSession(
        graph,
        LiveOptions(RunOptions(output_dir=tmp_path, device="cpu")),
        on_frame=lambda nid, img: shown.append(img),
    )
    s.start()
    while len(shown) < 3:
        s.wait(0.05)
    pipe = s.states["gen"]["pipe"]
    before = pipe.cond.clone()
    edited = s.graph.copy()
    edited.nodes["gen"].params["prompt"] = "a dog on a beach"
    s.update_graph(edited)
    while s.states["gen"].get("prompts", ("",))[0] != "a dog on a beach":
        s.wait(0.05)
    assert s.states["gen"]["pipe"] is pipe  # not prepared again
    assert not torch.equal(pipe.cond, before)
    r = s.stop()
    assert not r.errors and r.frames_out >= 4


def test_example_graph_runs_under_fathom_live(tiny_sd: Path, tmp_path: Path) -> None:
    graph = ROOT / "assets" / "graphs" / "live_stream.json"
    out, report = tmp_path / "out", tmp_path / "run.json"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "fathom.engine.cli",
            "live",
            str(graph),
            "--seconds",
            "4",
            "--set",
            f"gen.model={tiny_sd}",
            "--set",
            "gen.width=64",
            "--set",
            "gen.height=64",
            "--set",
            "gen.num_inference_steps=4",
            "--set",
            "gen.t_index_list=2",
            "--out",
            str(out),
            "--report",
            str(report),
            "--device",
            "cpu",
            "--quiet",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    r = json.loads(report.read_text())
    # 24 fps for 4 s; the first tick loads the model, later ones take a fraction of a second.
    assert r["frames_out"] >= 5 and r["frames_in"] >= 60
    assert r["frames_out"] + r["frames_dropped"] + r["frames_failed"] == r["frames_in"]
    assert set(r["latency_ms"]) == {"median", "p95"} and r["fps"] > 0
    assert (out / "live_stream.mp4").stat().st_size > 0


def test_similarity_filter_skips_a_still_scene_live(tiny_sd: Path, tmp_path: Path) -> None:
    import av

    clip = tmp_path / "still.mp4"
    with av.open(str(clip), mode="w") as out:
        v: Any = out.add_stream("libx264", rate=10)
        v.width, v.height, v.pix_fmt = 64, 64, "yuv420p"
        still = np.full((64, 64, 3), 120, np.uint8)
        for _ in range(12):
            for p in v.encode(av.VideoFrame.from_ndarray(still, format="rgb24")):
                out.mux(p)
        for p in v.encode():
            out.mux(p)
    graph = loads(json.dumps(_doc(clip, tiny_sd, "", "2", True)))
    graph.nodes["gen"].params["similarity_threshold"] = 0.95
    shown: list[np.ndarray] = []
    s = LiveSession(
        graph,
        LiveOptions(RunOptions(output_dir=tmp_path, device="cpu"), input_queue=32),
        on_frame=lambda nid, img: shown.append(img.data),
    )
    s.start()
    while "pipe" not in s.states.get("gen", {}):
        s.wait(0.02)
    pipe = s.states["gen"]["pipe"]
    assert s.wait(60)
    r = s.stop()
    assert r.frames_out == r.frames_in == 12
    assert pipe.filter.skipped >= 6 and pipe.unet_calls == 12 - pipe.filter.skipped
    assert all(np.array_equal(f, shown[0]) for f in shown)  # a skipped frame repeats the last
