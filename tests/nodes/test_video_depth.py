"""video.depth, its temporal modes, depth video saving and video.parallax, on a tiny random
Depth Anything saved like a real checkpoint and a synthetic moving-disc clip."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import cv2
import numpy as np
import pytest
from temporal_models import build_tiny_segformer
from video_depth_models import build_depth_anything, build_tiny_dpt, disc_clip
from videoclips import make_clip

from fathom.engine.context import NodeContext, RunOptions
from fathom.engine.errors import NodeError
from fathom.engine.executor import Executor
from fathom.engine.registry import Registry
from fathom.engine.types import Image, Video

REG = Registry()
REG.load_builtin()
EX = Executor(REG)
CLIP = Video.from_frames([Image(f) for f in disc_clip(6, size=48, step=2.0)], 12.0)


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> str:
    return str(build_depth_anything(tmp_path_factory.mktemp("da"), 84, 84))


def depth_video(model: str, **params: object) -> Video:
    return EX.call("video.depth", {"video": CLIP}, {"model": model, **params})["depth"]


def frames(video: Video, order: list[int] | None = None) -> list[np.ndarray]:
    return [video.frame(i).data[:, :, 0] for i in (order or range(len(video)))]


def test_off_equals_depth_estimate_frame_by_frame(model: str) -> None:
    out = depth_video(model, temporal="off")
    assert len(out) == len(CLIP) and out.fps == CLIP.fps
    for i, got in enumerate(frames(out)):
        want = EX.call("depth.estimate", {"image": CLIP.frame(i)}, {"model": model})["depth"]
        assert np.array_equal(got, want.data)


def test_reuse_with_threshold_zero_equals_off(model: str) -> None:
    off = frames(depth_video(model, temporal="off"))
    reuse = frames(depth_video(model, temporal="reuse", threshold=0.0))
    assert all(np.array_equal(a, b) for a, b in zip(off, reuse, strict=True))


def test_reuse_and_resq_stay_close_to_off_and_read_out_of_order_alike(model: str) -> None:
    off = frames(depth_video(model, temporal="off"))
    for params in ({"temporal": "reuse"}, {"temporal": "resq", "bits": 8}):
        video = depth_video(model, keyframe_interval=3, **params)
        ordered = frames(video)
        mse = np.mean([np.mean((a - b) ** 2) for a, b in zip(off, ordered, strict=True)])
        assert 10 * np.log10(1 / max(mse, 1e-12)) > 30, params
        jumped = frames(depth_video(model, keyframe_interval=3, **params), [4, 1, 5])
        assert all(np.array_equal(a, ordered[i]) for a, i in zip(jumped, [4, 1, 5], strict=True))


@pytest.mark.parametrize("temporal", ["reuse", "resq"])
def test_a_live_session_of_one_frame_ticks_equals_the_whole_clip(model: str, temporal: str) -> None:
    from fathom.nodes.video_depth import VideoDepth

    params = {"model": model, "temporal": temporal, "keyframe_interval": 4, "threshold": 0.02}
    params |= {"bits": 4, "student": ""}
    whole = frames(depth_video(model, **{k: v for k, v in params.items() if k != "model"}))
    state: dict = {}
    for i in range(len(CLIP)):
        live = SimpleNamespace(tick=i, captured_at=float(i), frame_index=i)
        ctx = NodeContext("d", RunOptions(device="cpu"), None, models=EX.models, state=state)
        ctx.live = live
        tick = VideoDepth().run(ctx, video=CLIP.slice(i, i + 1), **params)["depth"]
        assert len(tick) == 1 and np.array_equal(tick.frame(0).data[:, :, 0], whole[i])
    stepper = state["stream"][1].stepper
    assert stepper.index == len(CLIP)  # one stream carried across all ticks


def test_bad_inputs_name_the_node_the_port_and_the_fix(model: str, tmp_path: Path) -> None:
    from fathom.nodes.video_depth import VideoDepth

    problems = VideoDepth.check({"model": str(tmp_path / "nothing")}, _ctx())
    assert problems and problems[0].port == "model" and problems[0].fix
    with pytest.raises(NodeError) as err:
        depth_video(model, temporal="delta", student=str(tmp_path / "student"))
    assert err.value.node == "node" and err.value.port == "student" and err.value.fix
    with pytest.raises(NodeError) as err:
        EX.call("video.depth", {"video": CLIP.slice(0, 0)}, {"model": model})
    assert err.value.port == "video"


def _ctx() -> NodeContext:
    return NodeContext("d", RunOptions(device="cpu"), None)


def test_depth_videos_save_as_16_bit_png_exr_and_colourised_mp4(model: str, tmp_path: Path) -> None:
    import cv2

    from fathom.engine.imaging.codecs import exr_backend, read_image

    depth = depth_video(model, temporal="reuse").slice(0, 3)
    want = frames(depth)
    opts = RunOptions(device="cpu", output_dir=tmp_path, base_dir=tmp_path)
    save = {"fps": 0.0, "quality": 20}
    EX.call("video.save", {"video": depth}, {"path": "png/%04d.png", "bits": "16", **save}, opts)
    for i, w in enumerate(want):
        got = cv2.imread(str(tmp_path / "png" / f"{i:04d}.png"), cv2.IMREAD_UNCHANGED)
        assert got.dtype == np.uint16 and got.shape == w.shape
        assert np.abs(got / 65535.0 - w).max() <= 0.5 / 65535 + 1e-7
    if exr_backend() is not None:
        EX.call("video.save", {"video": depth}, {"path": "exr/%04d.exr", **save}, opts)
        got = read_image(tmp_path / "exr" / "0001.exr")
        assert np.allclose(got.reshape(w.shape), want[1], atol=1e-6)
    EX.call("video.save", {"video": depth}, {"path": "d.mp4", "colormap": "turbo", **save}, opts)
    back = EX.call("video.load", {}, {"path": str(tmp_path / "d.mp4")}, opts)["video"]
    rgb = back.frame(0).rgb()
    assert len(back) == 3 and rgb.shape[:2] == want[0].shape
    assert np.abs(rgb[..., 0] - rgb[..., 2]).max() > 0.3  # colours, not grey


def test_parallax_renders_each_frame_from_a_moving_camera(model: str) -> None:
    depth = depth_video(model, temporal="reuse")
    params = {"motion": "sway", "period": 4, "near": 1.0, "far": 3.0, "cut": 100.0}
    still = EX.call("video.parallax", {"video": CLIP, "depth": depth}, {**params, "amount": 0.0})
    moved = EX.call("video.parallax", {"video": CLIP, "depth": depth}, {**params, "amount": 0.2})
    a, b = still["video"], moved["video"]
    assert len(a) == len(CLIP) and a.size == CLIP.size
    # Seen from where it was taken, a frame re-renders as itself (inside the borders) ...
    assert np.abs(a.frame(2).rgb()[4:-4, 4:-4] - CLIP.frame(2).rgb()[4:-4, 4:-4]).mean() < 0.02
    # ... and the moving camera sees it differently (sway is at its widest on frame 1).
    assert np.abs(b.frame(1).rgb() - CLIP.frame(1).rgb()).mean() > 0.01
    with pytest.raises(NodeError) as err:
        EX.call("video.parallax", {"video": CLIP, "depth": depth.slice(0, 2)}, params)
    assert err.value.port == "depth"
    with pytest.raises(NodeError) as err:  # the colour clip wired in as its own depth
        EX.call("video.parallax", {"video": CLIP, "depth": CLIP}, params)
    assert err.value.port == "depth" and "3 channels" in str(err.value)


def test_the_video_depth_example_renders_headless_on_a_tiny_model(
    model: str, tmp_path: Path
) -> None:
    import subprocess
    import sys

    import cv2

    cmd = [sys.executable, "-m", "fathom.engine.cli", "render", "--example", "video_depth"]
    cmd += ["--out", str(tmp_path), "--frames", "0-3", "--quiet", "--set", f"depth.model={model}"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    pngs = sorted((tmp_path / "video_depth").glob("*.png"))
    assert len(pngs) == 4
    first = cv2.imread(str(pngs[0]), cv2.IMREAD_UNCHANGED)
    assert first.dtype == np.uint16 and first.shape == (192, 256) and first.std() > 100
    for name in ("video_depth.mp4", "video_parallax.mp4"):
        back = EX.call("video.load", {}, {"path": str(tmp_path / name)})["video"]
        assert len(back) == 4 and back.size == (256, 192)


def test_depth_streams_so_memory_does_not_grow_with_the_clip(model: str) -> None:
    import tracemalloc

    def clip(n: int) -> Video:
        def frame(i: int) -> Image:
            rng = np.random.default_rng(i)
            return Image(rng.random((192, 256, 3), dtype=np.float32))

        return Video(n, 24.0, frame, (256, 192))

    def peak(n: int) -> int:
        out = EX.call("video.depth", {"video": clip(n)}, {"model": model, "temporal": "reuse"})
        depth = out["depth"]
        tracemalloc.start()
        for i in range(n):
            depth.frame(i)
        top = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        return top

    frame_bytes = 192 * 256 * 3 * 4
    short, long = peak(6), peak(30)
    assert long < short + 2 * frame_bytes, (short, long)  # 24 more frames would be +14 MB


def test_a_wrong_model_or_student_is_refused_before_the_run(model: str, tmp_path: Path) -> None:
    from fathom.engine.errors import GraphInvalid
    from fathom.engine.graph import Graph

    seg = str(build_tiny_segformer(tmp_path / "seg"))
    dpt = str(build_tiny_dpt(tmp_path / "dpt"))
    opts = RunOptions(device="cpu", output_dir=tmp_path, base_dir=tmp_path)
    cases = [
        ("video.depth", {"model": seg}, "model", "segmentation"),
        ("video.depth", {"model": dpt, "temporal": "reuse"}, "temporal", "Depth Anything"),
        ("video.segment", {"model": model, "temporal": "reuse"}, "model", "depth"),
        ("depth.estimate", {"model": seg}, "model", "segmentation"),
        ("video.depth", {"model": model, "temporal": "delta"}, "student", "needs a"),
        (
            "video.depth",
            {"model": model, "temporal": "delta", "student": "nope"},
            "student",
            "not a",
        ),
    ]
    make_clip(tmp_path / "c.mp4", frames=2)
    for type_id, params, port, words in cases:
        g = Graph()
        g.add_node(type_id, "n", params)
        src, out = ("load", "image") if type_id == "depth.estimate" else ("video.load", "video")
        if src == "load":
            cv2.imwrite(str(tmp_path / "i.png"), np.zeros((32, 32, 3), np.uint8))
            g.add_node("image.load", "src", {"path": "i.png"})
            g.connect("src", "image", "n", "image")
        else:
            g.add_node("video.load", "src", {"path": "c.mp4"})
            g.connect("src", "video", "n", "video")
        with pytest.raises(GraphInvalid) as bad:
            EX.plan(g, options=opts)
        found = [p for p in bad.value.problems if p.node == "n" and p.port == port]
        assert found and words in found[0].message, (type_id, bad.value.problems)
    # A DPT with temporal 'off' is fine: it runs the model's own forward.
    g = Graph()
    g.add_node("video.load", "src", {"path": "c.mp4"})
    g.add_node("video.depth", "n", {"model": dpt})
    g.connect("src", "video", "n", "video")
    assert _problems(g, opts) == []


def _problems(g: object, opts: RunOptions) -> list:
    from fathom.engine.errors import GraphInvalid

    try:
        EX.plan(g, options=opts)
    except GraphInvalid as exc:
        return exc.problems
    return []


def test_models_given_relative_to_the_graph_load_from_any_working_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The studio stores a model picked inside the project relative to the graph's folder, so
    the pre-flight check and the load both read it from there, not from the working folder."""
    from fathom.engine.graph import Graph

    project = tmp_path / "project"
    build_depth_anything(project / "models" / "da", 84, 84)
    build_tiny_segformer(project / "models" / "seg")
    make_clip(project / "clip.mp4", frames=3, size=(48, 48))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    g = Graph()
    g.add_node("video.load", "src", {"path": "clip.mp4"})
    g.add_node("video.depth", "depth", {"model": "models/da"})
    g.add_node(
        "video.segment", "seg", {"model": "models/seg", "labels": "object", "temporal": "reuse"}
    )
    g.connect("src", "video", "depth", "video")
    g.connect("src", "video", "seg", "video")
    opts = RunOptions(device="cpu", base_dir=project, output_dir=tmp_path / "out")
    result = Executor(REG).run(g, options=opts)
    assert result.by_status("executed") == ["src", "depth", "seg"] or sorted(result.executed) == [
        "depth",
        "seg",
        "src",
    ]
    assert result.values["depth"]["depth"].frame(0).data.shape == (48, 48, 1)
    assert result.values["seg"]["mask"].frame(2).data.shape == (48, 48, 1)


def test_settings_the_mode_ignores_do_not_rerun_it_and_replaced_files_do(tmp_path: Path) -> None:
    """temporal 'off' reads none of the temporal settings, so changing them serves the cached
    depth; a setting the mode reads, weights replaced in place or a student distilled again
    into its folder run the node again."""
    import os

    from fathom.engine.graph import Graph

    build_depth_anything(tmp_path / "da", 84, 84)
    make_clip(tmp_path / "clip.mp4", frames=2, size=(48, 48))
    (tmp_path / "st").mkdir()
    for name in ("student.json", "student.safetensors"):
        (tmp_path / "st" / name).write_text("{}")  # only its stamp is read for the key
    g = Graph()
    g.add_node("video.load", "src", {"path": "clip.mp4"})
    g.add_node("video.depth", "depth", {"model": "da", "temporal": "off"})
    g.connect("src", "video", "depth", "video")
    ex = Executor(REG)
    opts = RunOptions(device="cpu", base_dir=tmp_path, check_files=False)

    def status(**params: object) -> str:
        for k, v in params.items():
            g.set_param("depth", k, v)
        return ex.run(g, options=opts).records["depth"].status

    assert status() == "executed"
    assert status(bits=6, threshold=0.5, keyframe_interval=3, student="st") == "cached"
    assert status(temporal="reuse") == "executed"
    assert status(bits=2) == "cached"  # reuse reads no bits
    assert status(threshold=0.1) == "executed"
    weights = next((tmp_path / "da").glob("*.safetensors"))
    st = weights.stat()
    os.utime(weights, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    assert status() == "executed"
    key_before = ex.run(g, options=opts).records["depth"].status
    assert key_before == "cached"
    from fathom.nodes.video_depth import VideoDepth

    delta = {**g.nodes["depth"].params, "temporal": "delta", "student": "st"}
    first = VideoDepth.cache_extra(delta, _depth_ctx(opts))
    meta = tmp_path / "st" / "student.json"
    os.utime(meta, ns=(meta.stat().st_atime_ns, meta.stat().st_mtime_ns + 10**9))
    assert VideoDepth.cache_extra(delta, _depth_ctx(opts)) != first


def _depth_ctx(opts: RunOptions) -> NodeContext:
    from fathom.engine.device import DeviceInfo

    return NodeContext("depth", opts, DeviceInfo("cpu"))


def test_parallax_near_beyond_far_is_refused_before_the_run(tmp_path: Path) -> None:
    from fathom.engine.errors import GraphInvalid
    from fathom.engine.graph import Graph

    make_clip(tmp_path / "clip.mp4", frames=2, size=(48, 48))
    g = Graph()
    g.add_node("video.load", "src", {"path": "clip.mp4"})
    g.add_node("video.parallax", "par", {"near": 5.0, "far": 2.0})
    g.connect("src", "video", "par", "video")
    g.connect("src", "video", "par", "depth")
    opts = RunOptions(device="cpu", base_dir=tmp_path)
    with pytest.raises(GraphInvalid) as bad:
        Executor(REG).plan(g, options=opts)
    assert [(p.node, p.port, p.fix) for p in bad.value.problems] == [("par", "near", "swap them")]
    g.set_param("par", "depth_kind", "metric")  # metric depth reads no near/far
    Executor(REG).plan(g, options=opts)
