"""video.segment's temporal choices (off, reuse, resq, delta) through the executor and in a live
session, on a tiny random-weight SegFormer saved and loaded like a user's folder."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from temporal_models import LABELS, build_tiny_segformer, disc_frames, pan_frames, write_clip

from fathom.engine.accel.delta import distill
from fathom.engine.context import NodeContext, RunOptions
from fathom.engine.device import DeviceInfo
from fathom.engine.errors import NodeError
from fathom.engine.executor import Executor
from fathom.engine.models.segmentation import load_transformers_segmentation
from fathom.engine.registry import Registry
from fathom.engine.types import Image, Video
from fathom.nodes.video_analysis import Segment

REG = Registry()
REG.load_builtin()


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_segformer(tmp_path_factory.mktemp("vseg") / "model")


def _video(frames: list[np.ndarray]) -> Video:
    return Video.from_frames([Image(f) for f in frames], 12.0)


def _masks(ex: Executor, frames: list[np.ndarray], params: dict) -> list[np.ndarray]:
    out = ex.call("video.segment", {"video": _video(frames)}, params, RunOptions(device="cpu"))
    return [out["mask"].frame(i).data[..., 0] for i in range(len(frames))]


def _per_frame(folder: Path, frames: list[np.ndarray], ids: list[int]) -> list[np.ndarray]:
    """The model on every frame, written out plainly: processor, forward, upsample, argmax."""
    processor, net = load_transformers_segmentation(folder, "cpu", "float32")
    masks = []
    for f in frames:
        px = processor(images=(f * 255).round().astype(np.uint8), return_tensors="pt")
        with torch.inference_mode():
            logits = net(pixel_values=px["pixel_values"]).logits
            up = torch.nn.functional.interpolate(logits, size=f.shape[:2], mode="bilinear")
        masks.append(np.isin(up.argmax(1)[0].numpy(), ids).astype(np.float32))
    return masks


def test_off_equals_the_model_and_reuse_at_threshold_zero_equals_off(model: Path) -> None:
    frames = disc_frames(5, 64, step=3.0)
    # Random weights make the classes arbitrary: take the one covering part of the frames.
    cover = {k: np.mean(_per_frame(model, frames[:1], [k])) for k in LABELS}
    label = min(cover, key=lambda k: abs(cover[k] - 0.5))
    assert 0.02 < cover[label] < 0.98
    ex = Executor(REG)
    base = {"model": str(model), "labels": LABELS[label], "interval": 8}
    off = _masks(ex, frames, {**base, "temporal": "off"})
    for got, want in zip(off, _per_frame(model, frames, [label]), strict=True):
        np.testing.assert_array_equal(got, want)
    reuse = _masks(ex, frames, {**base, "temporal": "reuse", "threshold": 0.0})
    for a, b in zip(reuse, off, strict=True):
        np.testing.assert_array_equal(a, b)


def test_flow_stays_the_default() -> None:
    defaults = {p.name: p.default for p in Segment.params}
    assert defaults["temporal"] == "flow" and defaults["interval"] == 4


def test_bad_inputs_name_the_port_and_the_fix(model: Path, tmp_path: Path) -> None:
    ex = Executor(REG)
    frames = disc_frames(2, 64)
    with pytest.raises(NodeError) as e:
        _masks(ex, frames, {"temporal": "reuse"})
    assert e.value.port == "model" and "model" in (e.value.fix or "")
    with pytest.raises(NodeError) as e:
        _masks(ex, frames, {"model": str(model), "labels": "object", "temporal": "delta"})
    assert e.value.port == "student" and "fathom distill" in (e.value.fix or "")
    with pytest.raises(NodeError) as e:
        params = {"model": str(model), "labels": "object", "temporal": "delta"}
        _masks(ex, frames, {**params, "student": str(tmp_path)})
    assert e.value.port == "student" and "not a student" in str(e.value)
    with pytest.raises(NodeError) as e:
        _masks(ex, frames, {"model": str(model), "labels": " , ", "temporal": "reuse"})
    assert e.value.port == "labels" and "no class label given" in str(e.value)
    assert "object" in str(e.value)  # the labels it knows


def test_delta_through_the_node_starts_each_keyframe_from_the_model(
    model: Path, tmp_path: Path
) -> None:
    frames = pan_frames(8, 64, step=4)
    clip = write_clip(tmp_path / "pan.webp", frames)
    distill(model, [clip], tmp_path / "student", steps=20)
    ex = Executor(REG)
    base = {"model": str(model), "labels": "object", "interval": 4}
    delta = _masks(ex, frames, {**base, "temporal": "delta", "student": str(tmp_path / "student")})
    off = _masks(ex, frames, {**base, "temporal": "off"})
    for i in (0, 4):  # keyframes: the full model
        np.testing.assert_array_equal(delta[i], off[i])
    assert all(m.shape == (64, 64) for m in delta)


def test_live_ticks_continue_the_previous_frame(model: Path) -> None:
    """One-frame videos, one per tick, with the same ctx.state: the tick after the keyframe
    reuses its work (a still camera recomputes nothing), and a new keyframe comes `interval`
    ticks later."""
    frame = disc_frames(1, 64)[0]
    state: dict = {}
    node = Segment()
    shares = []
    for tick in range(4):
        live = SimpleNamespace(tick=tick, captured_at=0.0, frame_index=tick)
        ctx = NodeContext(
            "seg", RunOptions(device="cpu"), DeviceInfo("cpu"), state=state, live=live
        )
        out = node.run(
            ctx,
            video=_video([frame]),
            backend="auto",
            model=str(model),
            labels="object",
            interval=3,
            preset="sharp",
            temporal="reuse",
            threshold=0.05,
        )
        assert len(out["mask"]) == 1
        shares.append(state["segment"][1].recomputed)
    assert state["segment"][2] == 4
    assert shares == [1.0, 0.0, 0.0, 1.0]


def test_a_temporal_mode_without_a_model_is_refused_before_the_run(tmp_path: Path) -> None:
    from fathom.engine.errors import GraphInvalid
    from fathom.engine.graph import Graph

    write_clip(tmp_path / "c.webp", disc_frames(2, 64))
    opts = RunOptions(device="cpu", output_dir=tmp_path, base_dir=tmp_path)
    for params in ({"temporal": "reuse"}, {"backend": "model"}):
        g = Graph()
        g.add_node("video.load", "src", {"path": "c.webp"})
        g.add_node("video.segment", "seg", params)
        g.connect("src", "video", "seg", "video")
        with pytest.raises(GraphInvalid) as bad:
            Executor(REG).plan(g, options=opts)
        assert [(p.node, p.port) for p in bad.value.problems] == [("seg", "model")]
    # The default (flow, no model) carries a first-frame mask: nothing to refuse up front.
    g = Graph()
    g.add_node("video.load", "src", {"path": "c.webp"})
    g.add_node("video.segment", "seg", {})
    g.connect("src", "video", "seg", "video")
    Executor(REG).plan(g, options=opts)


def _tiny_dpt_segmenter(folder: Path) -> Path:
    """A semantic segmentation model that is not a SegFormer (DPT's), saved like a user's."""
    from transformers import DPTConfig, DPTForSemanticSegmentation, DPTImageProcessor

    torch.manual_seed(0)
    cfg = DPTConfig(
        hidden_size=32,
        num_hidden_layers=4,
        num_attention_heads=2,
        intermediate_size=64,
        image_size=64,
        patch_size=16,
        backbone_out_indices=[0, 1, 2, 3],
        neck_hidden_sizes=[16, 16, 16, 16],
        fusion_hidden_size=16,
        num_labels=len(LABELS),
        id2label=dict(enumerate(LABELS)),
        label2id={v: k for k, v in enumerate(LABELS)},
    )
    DPTForSemanticSegmentation(cfg).eval().save_pretrained(folder, safe_serialization=True)
    DPTImageProcessor(size={"height": 64, "width": 64}).save_pretrained(folder)
    return folder


def test_reuse_on_a_model_that_is_not_a_segformer_is_refused_before_the_run(
    tmp_path: Path,
) -> None:
    """reuse and resq run SegFormer's layers themselves (``Segment.mode_models``): another
    model is refused by the check, naming the port and the fix, not partway through a run."""
    from fathom.engine.errors import GraphInvalid
    from fathom.engine.graph import Graph

    folder = _tiny_dpt_segmenter(tmp_path / "dpt_seg")
    write_clip(tmp_path / "c.webp", disc_frames(2, 64))
    opts = RunOptions(device="cpu", output_dir=tmp_path, base_dir=tmp_path)
    for temporal, refused in (("reuse", True), ("resq", True), ("off", False)):
        g = Graph()
        g.add_node("video.load", "src", {"path": "c.webp"})
        g.add_node("video.segment", "seg", {"model": str(folder), "temporal": temporal})
        g.connect("src", "video", "seg", "video")
        if not refused:
            Executor(REG).plan(g, options=opts)
            continue
        with pytest.raises(GraphInvalid) as bad:
            Executor(REG).plan(g, options=opts)
        (problem,) = bad.value.problems
        assert (problem.node, problem.port) == ("seg", "temporal")
        assert f"temporal '{temporal}' runs SegFormer models layer by layer" in str(problem)
        assert "is a dpt model" in str(problem) and "a SegFormer model" in str(problem)


def test_edge_slack_reaches_the_model_runner_with_the_masks_labels(
    model: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from fathom.engine.accel import temporal_segment

    made: list[tuple[float, list[int] | None]] = []
    init = temporal_segment.SegformerTemporal.__init__

    def spy(self: temporal_segment.SegformerTemporal, *a: object, **k: object) -> None:
        init(self, *a, **k)  # type: ignore[arg-type]
        made.append((self.edge_slack, self.labels))

    monkeypatch.setattr(temporal_segment.SegformerTemporal, "__init__", spy)
    frames = disc_frames(4, 64, step=2.0)
    ex = Executor(REG)
    base = {"model": str(model), "labels": "object", "interval": 8}
    slack = _masks(ex, frames, {**base, "temporal": "reuse", "threshold": 0.02, "edge_slack": 8})
    off = _masks(ex, frames, {**base, "temporal": "off"})
    object_id = next(k for k, v in LABELS.items() if v == "object")
    assert made == [(8.0, [object_id])]
    for a, b in zip(slack, off, strict=True):
        assert np.mean(a == b) > 0.9
