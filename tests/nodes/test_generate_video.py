"""generate.video_edit: runs from a graph, explains bad input, reports progress per frame, stops
when cancelled, and is more temporally coherent than editing each frame on its own."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
from cancelling import cancel_after_steps
from faults import out_of_memory

from fathom.engine.context import RunOptions
from fathom.engine.errors import NodeError
from fathom.engine.events import Recorder
from fathom.engine.executor import Executor
from fathom.engine.graph import Graph
from fathom.engine.node import Node, Output, Param
from fathom.engine.registry import Registry
from fathom.engine.types import Image, Int, Video

SIZE = 64
STEP = 2  # pixels the square moves per frame


def moving_square(n: int, size: int = SIZE) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """A textured 24×24 square sliding STEP px a frame to the right over a smooth gradient."""
    rng = np.random.default_rng(3)
    yy, xx = np.mgrid[0:size, 0:size] / size
    bg = np.stack([0.3 + 0.4 * xx, 0.5 + 0.2 * yy, 0.6 - 0.3 * xx * yy], -1)
    tex = cv2.resize(rng.random((6, 6, 3)), (24, 24), interpolation=cv2.INTER_NEAREST)
    frames, masks = [], []
    for i in range(n):
        f, m = bg.copy(), np.zeros((size, size), np.float32)
        x = 12 + STEP * i
        f[20:44, x : x + 24] = tex
        m[20:44, x : x + 24] = 1.0
        frames.append(f.astype(np.float32))
        masks.append(m)
    return frames, masks


class MovingSquare(Node):
    """Test source: the moving-square clip and its foreground masks."""

    type_id = "test.moving_square"
    outputs = (Output("video", Video), Output("mask", Video))
    params = (Param("frames", Int, 6, min=0),)

    def run(self, ctx: Any, frames: int) -> dict[str, Any]:
        f, m = moving_square(frames)
        return {
            "video": Video.from_frames([Image(x) for x in f], fps=12),
            "mask": Video.from_frames([Image(x) for x in m], fps=12),
        }


REG = Registry()
REG.load_builtin()
REG.register(MovingSquare)


@pytest.fixture(scope="module")
def ex() -> Executor:
    return Executor(REG)


def _opts(tmp_path: Path) -> RunOptions:
    return RunOptions(output_dir=tmp_path / "out", base_dir=tmp_path, device="cpu")


def _params(model: Path, **kw: Any) -> dict[str, Any]:
    return {
        "model": str(model),
        "prompt": "a red cat",
        "steps": 4,
        "strength": 0.75,
        "guidance": 7.5,
        "seed": 11,
        **kw,
    }


def _graph(model: Path, frames: int = 6, **kw: Any) -> Graph:
    g = Graph()
    g.add_node("test.moving_square", "clip", {"frames": frames})
    g.add_node("generate.video_edit", "edit", _params(model, **kw))
    g.connect("clip", "video", "edit", "video")
    g.connect("clip", "mask", "edit", "mask")
    return g


def test_runs_from_a_graph_with_progress_per_frame(
    ex: Executor, tiny_sd: Path, tmp_path: Path
) -> None:
    rec = Recorder()
    graph = _graph(
        tiny_sd,
        merge_bg=0.5,
        temporal_merge=True,
        bg_steps=1,
        feather=1,
        crop_margin=0,
        frames_per_batch=4,
    )
    res = ex.run(graph, targets=["edit"], options=_opts(tmp_path), listener=rec)
    r = res.records["edit"]
    assert r.status == "executed", r.error
    out = res.values["edit"]["video"]
    assert isinstance(out, Video) and len(out) == 6 and out.size == (SIZE, SIZE)
    assert out.fps == 12 and out.frame(5).data.shape == (SIZE, SIZE, 3)
    msgs = [e.message for e in rec.events if e.kind == "node_progress"]
    assert [m for m in msgs if m.startswith("frame ")] == [f"frame {i}/6" for i in range(1, 7)]
    previews = [e for e in rec.events if e.kind == "node_preview"]
    assert len(previews) == 6  # every frame is shown as it comes
    d = r.as_dict()["details"]
    assert d["chunks"] == 2 and d["merged_blocks"] > 0 and d["foreground_only_calls"] > 0


def test_bad_inputs_are_explained(ex: Executor, tiny_sd: Path) -> None:
    frames, masks = moving_square(4)
    video = Video.from_frames([Image(f) for f in frames], fps=12)
    mask = Video.from_frames([Image(m) for m in masks], fps=12)
    cases = [
        ({"video": Video(0, 12, lambda i: Image(frames[0]))}, {}, "video", "no frames"),
        ({"video": video, "mask": mask.slice(0, 3)}, {}, "mask", "3 frames"),
        (
            {"video": video, "mask": mask.map(lambda im: Image(im.data[:32]), (64, 32))},
            {},
            "mask",
            "64×32",
        ),
        (
            {"video": video.map(lambda im: Image(im.data[:60, :60]), (60, 60))},
            {},
            "video",
            "multiples of 8",
        ),
        ({"video": video}, {"bg_steps": 1}, "mask", "need a mask"),
        (
            {"video": video},
            {"clock_frames": True, "clock_period": 2},
            "clock_period",
            "only one can run",
        ),
        (
            {"video": video},
            {"clock_period": 2, "clock_level": 3},
            "clock_level",
            "no low-resolution core",
        ),
    ]
    for inputs, extra, port, text in cases:
        with pytest.raises(NodeError) as err:
            ex.call("generate.video_edit", inputs, _params(tiny_sd, **extra))
        assert err.value.port == port and text in str(err.value), str(err.value)
    with pytest.raises(NodeError) as err:
        ex.call(
            "generate.video_edit",
            {"video": video.map(lambda im: Image(im.data[:60, :60]), (60, 60))},
            _params(tiny_sd),
        )
    assert "resize" in (err.value.fix or "")


def test_cancelling_stops_between_steps(ex: Executor, tiny_sd: Path, tmp_path: Path) -> None:
    cancel, seen, listener = cancel_after_steps(1)

    res = ex.run(
        _graph(tiny_sd, frames_per_batch=2),
        targets=["edit"],
        options=_opts(tmp_path),
        listener=listener,
        cancel=cancel,
    )
    assert res.cancelled and res.records["edit"].status == "cancelled"
    assert seen == ["frames 1–2/6: step 1/3"]  # DDIM: int(steps × strength) steps


def warped_difference(outs: list[np.ndarray], inputs: list[np.ndarray]) -> float:
    """Mean |out_t - out_{t+1} warped back along the input's optical flow| (DIS flow)."""
    dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
    h, w = inputs[0].shape[:2]
    gx, gy = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    total = 0.0
    for t in range(len(outs) - 1):
        a = cv2.cvtColor((inputs[t] * 255).astype(np.uint8), cv2.COLOR_RGB2GRAY)
        b = cv2.cvtColor((inputs[t + 1] * 255).astype(np.uint8), cv2.COLOR_RGB2GRAY)
        flow = dis.calc(a, b, None)
        back = cv2.remap(
            outs[t + 1],
            gx + flow[..., 0],
            gy + flow[..., 1],
            cv2.INTER_LINEAR,
            borderMode=cv2.BORDER_REPLICATE,
        )
        total += float(np.abs(outs[t] - back)[4:-4, 4:-4].mean())
    return total / (len(outs) - 1)


def test_edit_is_more_coherent_than_per_frame_image_to_image(ex: Executor, tiny_sd: Path) -> None:
    frames, _ = moving_square(6)
    video = Video.from_frames([Image(f) for f in frames], fps=12)
    settings = _params(tiny_sd, scheduler="ddim")  # the same sampler both ways
    edited = ex.call("generate.video_edit", {"video": video}, settings)["video"]
    outs = [edited.frame(i).data for i in range(6)]
    per_frame = [
        ex.call("generate.image_to_image", {"image": Image(f)}, settings)["image"].data
        for f in frames
    ]
    # Flow is measured on the input, so it holds the known motion: check it does.
    dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
    g = [cv2.cvtColor((f * 255).astype(np.uint8), cv2.COLOR_RGB2GRAY) for f in frames[:2]]
    flow = dis.calc(g[0], g[1], None)
    assert np.median(flow[24:40, 16:32, 0]) == pytest.approx(STEP, abs=0.5)
    ours, theirs = warped_difference(outs, frames), warped_difference(per_frame, frames)
    assert ours < 0.9 * theirs, (ours, theirs)


def test_out_of_memory_retries_with_smaller_batches_then_explains(
    ex: Executor, tiny_sd: Path, tmp_path: Path
) -> None:
    """A first out-of-memory error frees cached models and starts over with half the frames per
    batch (the same frames come out); a second one is a clear error saying what to lower."""
    plain = ex.run(
        _graph(tiny_sd, frames=4, frames_per_batch=4, seed=21),
        targets=["edit"],
        options=_opts(tmp_path),
    )
    want = plain.values["edit"]["video"]
    comps = ex.models.entries()[-1].model
    with out_of_memory(comps.unet) as fails:
        ex.cache.clear()
        res = ex.run(
            _graph(tiny_sd, frames=4, frames_per_batch=4, seed=21),
            targets=["edit"],
            options=_opts(tmp_path),
        )
        r = res.records["edit"]
        assert r.status == "executed", r.error
        assert r.details["oom_fallback"].endswith("2 frames per batch")
        got = res.values["edit"]["video"]
        assert r.details["chunks"] == 2 and len(got) == 4
        for i in range(4):  # chunking does not change the edit (anchor and fusion carry over)
            assert np.abs(got.frame(i).data - want.frame(i).data).max() <= 2 / 255
        fails.left = 1000
        res = ex.run(
            _graph(tiny_sd, frames=4, frames_per_batch=4, seed=23),
            targets=["edit"],
            options=_opts(tmp_path),
        )
        err = res.records["edit"].error
        assert res.records["edit"].status == "failed"
        assert "ran out of cpu memory" in err and "lower frames_per_batch" in err
