"""video.depth with temporal 'delta': a student that `fathom distill` trained for a tiny
random-weight Depth Anything (saved like a user's folder) updates the teacher's features
between keyframes; keyframes are the model's own depth, and a student made for another depth
model is refused at the node's `student` port."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from object_models import build_tiny_depth
from temporal_models import pan_frames, write_clip

from fathom.engine.cli import main
from fathom.engine.context import RunOptions
from fathom.engine.errors import NodeError
from fathom.engine.executor import Executor
from fathom.engine.registry import Registry
from fathom.engine.types import Image, Video

REG = Registry()
REG.load_builtin()


def test_delta_depth_keyframes_are_the_model_and_a_foreign_student_is_refused(
    tmp_path: Path,
) -> None:
    teacher = build_tiny_depth(tmp_path / "depth")
    frames = pan_frames(8, 56, step=14)
    clip = write_clip(tmp_path / "pan.webp", frames)
    assert main(["distill", str(teacher), str(clip), "--out", str(tmp_path / "st"),
                 "--steps", "10", "--device", "cpu"]) == 0  # fmt: skip
    ex = Executor(REG)
    video = Video.from_frames([Image(f) for f in frames], 12.0)
    opts = RunOptions(device="cpu", base_dir=tmp_path)
    base = {"model": str(teacher), "keyframe_interval": 4}
    off = ex.call("video.depth", {"video": video}, {**base, "temporal": "off"}, opts)["depth"]
    got = ex.call(
        "video.depth", {"video": video}, {**base, "temporal": "delta", "student": "st"}, opts
    )["depth"]
    for i in range(len(frames)):
        a, b = got.frame(i).data, off.frame(i).data
        assert a.shape == b.shape
        if i % 4 == 0:
            np.testing.assert_array_equal(a, b)
    other = build_tiny_depth(tmp_path / "other")
    import json

    cfg = json.loads((other / "config.json").read_text())
    cfg["head_hidden_size"] = 8  # the same shape, a different file: another model
    cfg["initializer_range"] = 0.03
    (other / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(NodeError) as e:
        ex.call(
            "video.depth",
            {"video": video},
            {"model": str(other), "temporal": "delta", "student": "st"},
            opts,
        )["depth"].frame(0)
    assert e.value.port == "student" and "trained for" in str(e.value)
    # The same mismatch is found by the pre-flight check, before any model loads.
    from fathom.engine.errors import GraphInvalid
    from fathom.engine.graph import Graph

    g = Graph()
    g.add_node("video.load", "src", {"path": "pan.webp"})
    g.add_node("video.depth", "depth", {"model": str(other), "temporal": "delta", "student": "st"})
    g.connect("src", "video", "depth", "video")
    with pytest.raises(GraphInvalid) as bad:
        Executor(REG).plan(g, options=RunOptions(device="cpu", base_dir=tmp_path))
    [problem] = bad.value.problems
    assert (problem.node, problem.port) == ("depth", "student")
    assert "trained for" in problem.message and "fathom distill" in (problem.fix or "")
    g.set_param("depth", "model", str(teacher))  # its own teacher passes
    Executor(REG).plan(g, options=RunOptions(device="cpu", base_dir=tmp_path))
