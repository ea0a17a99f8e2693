"""video.flow, video.interpolate and video.segment on clips with known motion, and the
segmentation backend on a tiny random-weight SegFormer saved and loaded like a user's folder."""

from __future__ import annotations

import math
from pathlib import Path

import cv2
import numpy as np
import pytest
from videoclips import make_clip, read_index

from fathom.engine.context import NodeContext, RunOptions
from fathom.engine.device import DeviceInfo
from fathom.engine.errors import NodeError
from fathom.engine.executor import Executor
from fathom.engine.graph import Graph
from fathom.engine.imaging import flow as fl
from fathom.engine.registry import Registry
from fathom.engine.types import AudioTrack, Image, Mask, Video
from fathom.nodes.video_analysis import Segment

REG = Registry()
REG.load_builtin()
H, W, S = 64, 96, 24


def call(ex: Executor, type_id: str, inputs: dict, params: dict | None = None) -> dict:
    return ex.call(type_id, inputs, params, RunOptions(device="cpu"))


def _texture(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    t = cv2.GaussianBlur(rng.random((h, w)).astype(np.float32), (0, 0), 1.5)
    t = (t - t.min()) / (t.max() - t.min())
    return np.stack([t, 1 - t, 0.5 * t + 0.25], -1).astype(np.float32)


class SquareClip:
    """A textured square sliding by ``step`` pixels a frame over a textured background; any
    time t (fractional too) can be drawn, so in-between frames have an exact answer."""

    def __init__(self, step: tuple[float, float] = (3, 1), start: tuple[float, float] = (8, 16)):
        rng = np.random.default_rng(0)
        self.bg = _texture(rng, H, W) * 0.6
        self.sq = _texture(rng, S, S) * 0.6 + 0.4
        self.step, self.start = step, start
        self.decoded: list[int] = []

    def _at(self, t: float) -> tuple[np.ndarray, np.ndarray]:
        x, y = self.start[0] + self.step[0] * t, self.start[1] + self.step[1] * t
        m = np.float32([[1, 0, x], [0, 1, y]])
        alpha = cv2.warpAffine(np.ones((S, S), np.float32), m, (W, H), flags=cv2.INTER_LINEAR)
        img = self.bg * (1 - alpha[..., None]) + cv2.warpAffine(
            self.sq, m, (W, H), flags=cv2.INTER_LINEAR
        )
        return np.clip(img, 0, 1).astype(np.float32), alpha

    def image(self, t: float) -> np.ndarray:
        return self._at(t)[0]

    def mask(self, t: float) -> np.ndarray:
        return self._at(t)[1]

    def video(self, n: int, fps: float = 24.0) -> Video:
        def get(i: int) -> Image:
            self.decoded.append(i)
            return Image(self.image(i))

        return Video(n, fps, get, (W, H))


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    return float(10 * np.log10(1.0 / np.mean((a - b) ** 2)))


# ---- video.flow -------------------------------------------------------------------------------


def test_flow_picture_shows_direction_and_speed() -> None:
    clip = SquareClip((3, 0))
    out = call(
        Executor(REG),
        "video.flow",
        {"video": clip.video(5)},
        {"preset": "sharp", "max_motion": 6.0},
    )["flow"]
    assert len(out) == 5 and out.fps == 24.0 and out.size == (W, H)
    assert clip.decoded == []  # lazy: nothing read until a frame is asked for
    assert out.frame(0).data.max() == 0  # no earlier frame: no motion
    pic = out.frame(2).data
    x, y = 8 + 3 * 2, 16
    inner = pic[y + 6 : y + S - 6, x + 6 : x + S - 6].reshape(-1, 3)
    # moving right at 3 of 6 px: hue 0 (red) at half brightness
    assert np.allclose(np.median(inner, axis=0), [0.5, 0, 0], atol=0.05)
    assert np.median(pic[:, 70:].reshape(-1, 3), axis=0).max() < 0.05  # still background
    assert sorted(set(clip.decoded)) == [1, 2]
    # the raw flow behind the picture, as other nodes get it
    src = clip.video(5)
    raw = fl.PairFlows(lambda i: src.frame(i).data, "sharp").flow(1, 2)
    inner_flow = raw[y + 6 : y + S - 6, x + 6 : x + S - 6].reshape(-1, 2)
    assert np.allclose(np.median(inner_flow, axis=0), [3, 0], atol=0.1)


def test_flow_needs_two_frames() -> None:
    with pytest.raises(NodeError) as err:
        call(Executor(REG), "video.flow", {"video": SquareClip().video(1)})
    assert err.value.port == "video" and err.value.node == "node"


# ---- video.interpolate ------------------------------------------------------------------------


def test_interpolate_doubles_with_in_betweens_at_the_true_positions() -> None:
    clip = SquareClip((4, 2))
    src = clip.video(6).with_audio(AudioTrack.silence(6 / 24))
    out = call(Executor(REG), "video.interpolate", {"video": src}, {"factor": 2})["video"]
    assert (len(out), out.fps) == (12, 48.0) and out.duration == src.duration
    assert out.audio is not None and out.audio.duration == pytest.approx(out.duration)
    assert clip.decoded == []
    mid = out.frame(5).data  # between source frames 2 and 3
    assert sorted(set(clip.decoded)) == [2, 3]
    assert psnr(mid, clip.image(2.5)) > 36
    assert (
        psnr(mid, clip.image(2.5))
        > psnr(0.5 * (clip.image(2) + clip.image(3)), clip.image(2.5)) + 5
    )
    for j in range(12):
        if j % 2 == 0 or j == 11:  # source frames, and the held last frame, pass unchanged
            assert np.array_equal(out.frame(j).data, clip.image(min(j // 2, 5))), j
        else:
            assert psnr(out.frame(j).data, clip.image(j / 2)) > 36, j
    assert sorted(clip.decoded) == list(range(6))  # every source frame decoded once


def test_interpolate_to_a_target_fps() -> None:
    clip = SquareClip((2.5, 1))
    out = call(
        Executor(REG), "video.interpolate", {"video": clip.video(6, fps=24.0)}, {"fps": 60.0}
    )["video"]
    assert (len(out), out.fps) == (15, 60.0)  # 6 frames at 24 fps = 0.25 s = 15 at 60
    assert np.array_equal(out.frame(5).data, clip.image(2))  # 5 / 60 s = frame 2 exactly
    for j in (1, 3, 7, 11):
        assert psnr(out.frame(j).data, clip.image(j * 0.4)) > 36, j
    same = call(Executor(REG), "video.interpolate", {"video": clip.video(6)}, {"factor": 1})[
        "video"
    ]
    assert len(same) == 6 and np.array_equal(same.frame(3).data, clip.image(3))


def test_interpolate_from_a_graph_keeps_source_frames_exact(tmp_path: Path) -> None:
    make_clip(tmp_path / "c.mp4", frames=6)
    g = Graph()
    g.add_node("video.load", "load", {"path": "c.mp4"})
    g.add_node("video.interpolate", "interp", {"factor": 3})
    g.connect("load", "video", "interp", "video")
    res = Executor(REG).run(
        g, options=RunOptions(device="cpu", base_dir=tmp_path), targets=["interp"]
    )
    assert res.ok, res.records
    out = res.output("interp", "video")
    assert len(out) == 18 and out.fps == pytest.approx(72.0)
    assert [read_index(out.frame(j).data) for j in range(0, 18, 3)] == list(range(6))
    assert res.records["interp"].details["frames"] == 18


# ---- video.segment: classical backend -----------------------------------------------------------


@pytest.mark.parametrize("step", [(3, 1), (2.5, -1.0)])
def test_segment_propagates_a_first_frame_mask(ctx: NodeContext, step: tuple[float, float]) -> None:
    clip = SquareClip(step, start=(8, 24))
    n = 14
    out = Segment().run(
        ctx,
        video=clip.video(n),
        mask=Mask(clip.mask(0)),
        backend="auto",
        model="",
        labels="person",
        interval=4,
        preset="sharp",
    )["mask"]
    assert ctx.details["keyframes"] == 1 and ctx.details["backend"] == "propagate"
    assert len(out) == n and out.size == (W, H)
    frames = [out.frame(i) for i in range(n)]
    assert all(f.channels == 1 for f in frames)
    assert np.array_equal(frames[0].data[..., 0], clip.mask(0))
    ious = [fl.iou(f.data[..., 0], clip.mask(i)) for i, f in enumerate(frames)]
    assert min(ious) > 0.9, ious


def test_segment_errors_name_the_port_and_the_fix() -> None:
    ex = Executor(REG)
    clip = SquareClip()
    with pytest.raises(NodeError) as err:
        call(ex, "video.segment", {"video": clip.video(3)})
    assert err.value.port == "model" and "mask" in str(err.value)
    with pytest.raises(NodeError) as err:
        call(ex, "video.segment", {"video": clip.video(3)}, {"backend": "propagate"})
    assert err.value.port == "mask"
    with pytest.raises(NodeError) as err:
        call(ex, "video.segment", {"video": clip.video(3), "mask": Mask(np.ones((H, W - 1)))})
    assert err.value.port == "mask" and "96×64" in str(err.value)
    with pytest.raises(NodeError) as err:
        call(ex, "video.segment", {"video": clip.video(3)}, {"backend": "model"})
    assert err.value.port == "model"


# ---- video.segment: model backend ---------------------------------------------------------------

LABELS = {0: "background", 1: "person", 2: "car", 3: "tree"}


@pytest.fixture(scope="module")
def tiny_segformer(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random-weight SegFormer (two small stages) and its image processor at 64×64, saved as
    a user's checkpoint folder is."""
    import torch
    from transformers import (
        SegformerConfig,
        SegformerForSemanticSegmentation,
        SegformerImageProcessor,
    )

    folder = tmp_path_factory.mktemp("segformer") / "model"
    torch.manual_seed(0)
    cfg = SegformerConfig(
        num_encoder_blocks=2,
        depths=[1, 1],
        sr_ratios=[2, 1],
        hidden_sizes=[8, 16],
        patch_sizes=[7, 3],
        strides=[4, 2],
        num_attention_heads=[1, 2],
        mlp_ratios=[2, 2],
        decoder_hidden_size=16,
        num_labels=len(LABELS),
        id2label=LABELS,
        label2id={v: k for k, v in LABELS.items()},
    )
    model = SegformerForSemanticSegmentation(cfg)
    model.save_pretrained(folder, safe_serialization=True)
    SegformerImageProcessor(size={"height": 64, "width": 64}).save_pretrained(folder)
    return folder


def reference_masks(folder: Path, frames: list[np.ndarray], ids: list[int]) -> list[np.ndarray]:
    """Per-frame segmentation written out plainly: processor, model, upsample, argmax."""
    import torch
    from transformers import AutoImageProcessor, AutoModelForSemanticSegmentation

    proc = AutoImageProcessor.from_pretrained(folder)
    net = AutoModelForSemanticSegmentation.from_pretrained(folder, use_safetensors=True).eval()
    out = []
    for f in frames:
        px = proc(images=(f * 255).round().astype(np.uint8), return_tensors="pt")
        with torch.inference_mode():
            logits = net(**px).logits
        up = torch.nn.functional.interpolate(
            logits, size=f.shape[:2], mode="bilinear", align_corners=False
        )
        out.append(np.isin(up.argmax(1)[0].numpy(), ids).astype(np.float32))
    return out


def _model_of(ex: Executor):
    (entry,) = [e for e in ex.models.entries() if e.key[0] == "transformers-segmentation"]
    return entry.model[1]


@pytest.mark.parametrize("interval", [1, 3, 4])
def test_model_keyframes_equal_per_frame_and_run_ceil_n_over_k(
    tiny_segformer: Path, interval: int
) -> None:
    clip = SquareClip((3, 1))
    n = 10
    ref = reference_masks(tiny_segformer, [clip.image(i) for i in range(n)], [0, 2])
    assert 0.02 < np.mean(ref) < 0.98  # the tiny model draws something
    ex = Executor(REG)
    out = call(
        ex,
        "video.segment",
        {"video": clip.video(n)},
        {"model": str(tiny_segformer), "labels": "Background, car", "interval": interval},
    )
    runs: list[int] = []
    _model_of(ex).register_forward_hook(lambda *_: runs.append(1))
    masks = [out["mask"].frame(i).data[..., 0] for i in range(n)]
    assert len(runs) == math.ceil(n / interval)
    assert clip.decoded == list(range(n))  # model and flow share each decoded frame
    for i in range(0, n, interval):  # keyframes are the model's own masks, exactly
        assert np.array_equal(masks[i], ref[i]), i
    if interval == 1:
        assert all(np.array_equal(m, r) for m, r in zip(masks, ref, strict=True))
    else:  # between keyframes: the previous mask carried by flow, frame by frame
        carried = fl.propagate_mask(masks[0], fl.dis_flow(clip.image(1), clip.image(0), "sharp"))
        assert np.array_equal(masks[1], carried)


def test_model_backend_reports_keyframes_and_refuses_unknown_labels(
    tiny_segformer: Path, options: RunOptions
) -> None:
    ctx = NodeContext("seg", options, DeviceInfo("cpu"))
    Segment().run(
        ctx,
        video=SquareClip().video(9),
        backend="auto",
        model=str(tiny_segformer),
        labels="person",
        interval=4,
        preset="sharp",
    )
    assert ctx.details["keyframes"] == 3 and ctx.details["backend"] == "model"
    assert any(p.endswith("model.safetensors") for p in ctx.model_files)
    with pytest.raises(NodeError) as err:
        call(
            Executor(REG),
            "video.segment",
            {"video": SquareClip().video(3)},
            {"model": str(tiny_segformer), "labels": "person, horse"},
        )
    assert err.value.port == "labels"
    assert "'horse'" in str(err.value) and "background, person, car, tree" in str(err.value)


def test_segment_check_reports_a_missing_model(tmp_path: Path) -> None:
    g = Graph()
    g.add_node("video.load", "load", {"path": str(make_clip(tmp_path / "c.mp4", frames=2))})
    g.add_node("video.segment", "seg", {"model": str(tmp_path / "nowhere")})
    g.connect("load", "video", "seg", "video")
    from fathom.engine.errors import GraphInvalid

    with pytest.raises(GraphInvalid) as err:
        Executor(REG).plan(g, options=RunOptions(device="cpu", base_dir=tmp_path))
    assert any(p.port == "model" and "nowhere" in p.message for p in err.value.problems)
