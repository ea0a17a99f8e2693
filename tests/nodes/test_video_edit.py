"""Video editing nodes, frame-exact: every frame carries its index as a code (videoclips), so
trim, concat, speed, reverse, loop and transitions are checked by reading the indices back."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from videoclips import audio_samples, decoded_indices, frame_pixels, make_clip, read_index

from fathom.engine.cli import main
from fathom.engine.context import CancelToken, RunOptions
from fathom.engine.errors import GraphInvalid, NodeError
from fathom.engine.events import Event
from fathom.engine.executor import Executor
from fathom.engine.graph import Exposed, Graph, SubgraphDef
from fathom.engine.graphfile import SubgraphLibrary, save_subgraph
from fathom.engine.node import Input, Node, Output
from fathom.engine.registry import Registry
from fathom.engine.types import AudioTrack, Image, Mask, Video

REG = Registry()
REG.load_builtin()
EX = Executor(REG)


def call(
    type_id: str, inputs: dict[str, Any], params: dict[str, Any] | None = None, ex: Executor = EX
) -> dict[str, Any]:
    return ex.call(type_id, inputs, params, RunOptions(device="cpu"))


def clip(
    n: int = 12,
    first: int = 0,
    fps: float = 24.0,
    size: tuple[int, int] = (96, 64),
    audio: bool = False,
) -> Video:
    """In-memory coded frames first..first+n-1; with ``audio``, a file-span track as long."""
    frames = [Image(frame_pixels(first + i, *size) / 255.0) for i in range(n)]
    v = Video.from_frames(frames, fps)
    return v.with_audio(AudioTrack.from_file("tone.wav", n / fps)) if audio else v


def indices(video: Video) -> list[int]:
    return [read_index(f.data) for f in video]


def px(i: int, size: tuple[int, int] = (96, 64)) -> np.ndarray:
    return frame_pixels(i, *size).astype(np.float32) / 255.0


# ---- cutting and sizing -------------------------------------------------------------------


def test_trim_by_frames_and_seconds_on_a_decoded_clip(tmp_path: Path) -> None:
    path = make_clip(tmp_path / "c.mp4", frames=24, fps=24, gop=6)
    video = call("video.load", {}, {"path": str(path)})["video"]
    frames = call("video.trim", {"video": video}, {"start": 5, "end": 17})["video"]
    assert indices(frames) == list(range(5, 17))  # end is exclusive
    secs = call("video.trim", {"video": video}, {"start": 0.25, "end": 0.5, "unit": "seconds"})[
        "video"
    ]
    assert indices(secs) == list(range(6, 12))
    tail = call("video.trim", {"video": video}, {"start": 20})["video"]
    assert indices(tail) == [20, 21, 22, 23]
    # An empty span is refused before the run (a declared constraint on start and end)...
    with pytest.raises(GraphInvalid, match="start \\(10\\) must be below end \\(10\\)"):
        call("video.trim", {"video": video}, {"start": 10, "end": 10})
    # ... and a span past the clip's end when the clip's length is known.
    with pytest.raises(NodeError) as err:
        call("video.trim", {"video": video}, {"start": 30, "end": 40})
    assert err.value.port == "start" and "keeps no frames" in str(err.value)
    assert "below 24 frames" in (err.value.fix or "")  # the start is past the clip
    with pytest.raises(NodeError) as err:
        call("video.trim", {"video": video}, {"start": 2.5})
    assert err.value.port == "start"


def test_trim_cuts_audio_along() -> None:
    out = call("video.trim", {"video": clip(24, audio=True)}, {"start": 6, "end": 18})["video"]
    assert out.audio is not None and out.audio.duration == pytest.approx(0.5)
    assert out.audio.spans[0].start == pytest.approx(0.25)


def test_trimmed_and_joined_sound_is_saved_with_the_right_length(tmp_path: Path) -> None:
    opts = RunOptions(device="cpu", output_dir=tmp_path / "out")

    def run(type_id: str, inputs: dict[str, Any], params: dict[str, Any]) -> Any:
        return EX.call(type_id, inputs, params, opts)

    voiced = run(
        "video.load", {}, {"path": str(make_clip(tmp_path / "a.mp4", frames=24, audio=True))}
    )["video"]
    mute = run("video.load", {}, {"path": str(make_clip(tmp_path / "b.mp4", frames=8, first=100))})[
        "video"
    ]
    cut = run("video.trim", {"video": voiced}, {"start": 6, "end": 18})
    joined = run("video.concat", {"videos": [cut["video"], mute, cut["video"]]}, {})
    for name, video, frames in (("cut", cut["video"], 12), ("joined", joined["video"], 32)):
        out = Path(run("video.save", {"video": video}, {"path": f"{name}.mp4"})["path"])
        want = frames * 48000 // 24  # AAC writes whole 1024-sample frames: up to one more
        assert want <= audio_samples(out) < want + 1024, name
    assert decoded_indices(out) == [*range(6, 18), *range(100, 108), *range(6, 18)]


def test_resize_modes() -> None:
    v = clip(3)
    out = call("video.resize", {"video": v}, {"width": 48, "height": 32})["video"]
    assert out.size == (48, 32) and indices(out) == [0, 1, 2]
    assert out.frame(1).data.shape == (32, 48, 3)
    fit = call("video.resize", {"video": v}, {"width": 60, "height": 60, "keep_aspect": "fit"})[
        "video"
    ]
    assert fit.size == (60, 40) and fit.frame(0).data.shape == (40, 60, 3)
    box = call(
        "video.resize", {"video": v}, {"width": 96, "height": 96, "keep_aspect": "letterbox"}
    )["video"]
    f = box.frame(0).data
    assert f.shape == (96, 96, 3) and f[:16].max() == 0 and f[-16:].max() == 0
    assert read_index(f[16:80]) == 0


def test_resize_a_decoded_clip(tmp_path: Path) -> None:
    loaded = call("video.load", {}, {"path": str(make_clip(tmp_path / "c.mp4", frames=6))})
    cut = call("video.trim", {"video": loaded["video"]}, {"start": 2})["video"]
    for aspect, size in (("stretch", (48, 48)), ("fit", (48, 32)), ("fill", (48, 48))):
        out = call(
            "video.resize", {"video": cut}, {"width": 48, "height": 48, "keep_aspect": aspect}
        )["video"]
        assert out.size == size and out.frame(0).data.shape == (size[1], size[0], 3), aspect
        if aspect != "fill":  # fill crops the code's outer blocks away
            assert indices(out) == [2, 3, 4, 5], aspect


# ---- concat ---------------------------------------------------------------------------------


def test_concat_three_inputs_with_audio_and_silence() -> None:
    a, b, c = clip(5, 0, audio=True), clip(4, 100), clip(6, 200, audio=True)
    out = call("video.concat", {"videos": [a, b, c]})["video"]
    assert len(out) == 15 and out.size == (96, 64)
    assert indices(out) == [*range(5), *range(100, 104), *range(200, 206)]
    assert out.audio is not None and out.audio.duration == pytest.approx(15 / 24)
    spans = [(s.path, round(s.duration * 24)) for s in out.audio.spans]
    assert spans == [("tone.wav", 5), (None, 4), ("tone.wav", 6)]  # b adds silence
    assert call("video.concat", {"videos": [b, b]})["video"].audio is None


def test_concat_mismatch_is_a_clear_error_and_conform_fixes_it() -> None:
    a = clip(6)
    big = clip(4, 300, size=(48, 64))
    slow = clip(6, 500, fps=12.0)
    for other, what in ((big, "48×64"), (slow, "12 fps")):
        with pytest.raises(NodeError) as err:
            call("video.concat", {"videos": [a, other]})
        assert err.value.port == "videos" and what in str(err.value)
        assert "turn on conform" in str(err.value)
    out = call("video.concat", {"videos": [a, big, slow]}, {"conform": True, "fit": "stretch"})[
        "video"
    ]
    # slow: 6 frames at 12 fps last 0.5 s = 12 frames at 24 fps, each shown twice
    assert len(out) == 6 + 4 + 12 and out.fps == 24
    assert indices(out) == [*range(6), *range(300, 304), *[500 + j // 2 for j in range(12)]]
    assert all(f.data.shape == (64, 96, 3) for f in out)
    boxed = call("video.concat", {"videos": [a, big]}, {"conform": True})["video"].frame(7)
    # 48×64 letterboxed into 96×64: black bars left and right, the frame itself in the middle
    assert boxed.data[:, :24].max() == 0 and boxed.data[:, -24:].max() == 0
    assert np.array_equal(boxed.data[:, 24:72], px(301, (48, 64)))
    with pytest.raises(NodeError) as err:
        call("video.concat", {"videos": []})
    assert err.value.port == "videos"


# ---- time -----------------------------------------------------------------------------------


def test_speed_drop_and_duplicate_exact_indices() -> None:
    v = clip(10, audio=True)
    fast = call("video.speed", {"video": v}, {"factor": 2.0})["video"]
    assert indices(fast) == [0, 2, 4, 6, 8]
    assert fast.audio is not None and fast.audio.duration == pytest.approx(5 / 24)
    assert fast.audio.spans[0].speed == 2.0
    slow = call("video.speed", {"video": v}, {"factor": 0.5})["video"]
    assert indices(slow) == [i // 2 for i in range(20)]
    assert slow.audio is not None and slow.audio.duration == pytest.approx(20 / 24)
    assert call("video.speed", {"video": v}, {"factor": 1.0})["video"].audio is v.audio


def test_speed_blend_is_the_expected_average() -> None:
    v = clip(10)
    fast = call("video.speed", {"video": v}, {"factor": 2.0, "mode": "blend"})["video"]
    assert len(fast) == 5
    for j in range(5):
        assert np.allclose(fast.frame(j).data, (px(2 * j) + px(2 * j + 1)) / 2, atol=1e-6)
    slow = call("video.speed", {"video": v}, {"factor": 0.5, "mode": "blend"})["video"]
    assert len(slow) == 20
    assert np.array_equal(slow.frame(4).data, px(2))
    assert np.allclose(slow.frame(5).data, (px(2) + px(3)) / 2, atol=1e-6)
    assert np.array_equal(slow.frame(19).data, px(9))


def test_reverse_and_loop() -> None:
    v = clip(7, 40, audio=True)
    rev = call("video.reverse", {"video": v})["video"]
    assert indices(rev) == list(range(46, 39, -1))
    assert rev.audio is not None and rev.audio.spans[0].reverse
    loop = call("video.loop", {"video": v}, {"count": 3})["video"]
    assert indices(loop) == list(range(40, 47)) * 3
    assert loop.audio is not None and loop.audio.duration == pytest.approx(21 / 24)


def test_speed_and_reverse_keep_the_sound_in_step_and_in_tune(tmp_path: Path) -> None:
    """A 2 s tone (440 Hz left, 880 Hz right) at 2×: 1 s of sound, same pitch; reversed: the
    same samples backwards; the saved file holds exactly the frames' length of sound."""
    from fathom.engine.media.audio import decode_audio

    path = make_clip(tmp_path / "t.mp4", frames=48, audio=True)
    v = call("video.load", {}, {"path": str(path)})["video"]
    original = decode_audio(v.audio)
    fast = call("video.speed", {"video": v}, {"factor": 2.0})["video"]
    pcm = decode_audio(fast.audio)
    assert pcm.shape == (2, 48000)
    for ch, hz in ((0, 440.0), (1, 880.0)):
        spectrum = np.abs(np.fft.rfft(pcm[ch, 4800:-4800]))
        assert abs(np.argmax(spectrum) * 48000 / (pcm.shape[1] - 9600) - hz) < 3
    rev = call("video.reverse", {"video": v})["video"]
    assert np.allclose(decode_audio(rev.audio), original[:, ::-1], atol=1e-6)
    call("video.save", {"video": fast}, {"path": str(tmp_path / "fast.mp4")})
    assert 48000 <= audio_samples(tmp_path / "fast.mp4") < 48000 + 1024


def test_slow_motion_and_reverse_read_each_source_frame_once(tmp_path: Path) -> None:
    reads: list[int] = []
    frames = [Image(px(i)) for i in range(40)]

    def get(i: int) -> Image:
        reads.append(i)
        return frames[i]

    src = Video(40, 24.0, get, (96, 64))
    for node, params in (
        ("video.reverse", {}),
        ("video.speed", {"factor": 0.5}),
        ("video.speed", {"factor": 0.25, "mode": "blend"}),
    ):
        reads.clear()
        out = call(node, {"video": src}, params)["video"]
        list(out)
        assert sorted(reads) == list(range(40)), (node, params)
    path = make_clip(tmp_path / "c.mp4", frames=30, gop=5)
    loaded = call("video.load", {}, {"path": str(path)})["video"]
    assert indices(call("video.reverse", {"video": loaded})["video"]) == list(range(29, -1, -1))


# ---- compositing ----------------------------------------------------------------------------


def test_transition_length_and_mid_fade_pixels() -> None:
    a, b = clip(10, 0, audio=True), clip(8, 100)
    out = call("video.transition", {"a": a, "b": b}, {"frames": 4})["video"]
    assert len(out) == 10 + 8 - 4
    got = indices(out)
    assert got[:6] == list(range(6)) and got[10:] == list(range(104, 108))
    # overlap frame k mixes a[6 + k] and b[k] with b's weight (k + 1) / 5
    for k in range(4):
        t = (k + 1) / 5
        want = (1 - t) * px(6 + k) + t * px(100 + k)
        assert np.allclose(out.frame(6 + k).data, want, atol=1e-6)
    wipe = call(
        "video.transition", {"a": a, "b": b}, {"frames": 3, "kind": "wipe", "direction": "right"}
    )["video"]
    mid = wipe.frame(8).data  # k = 1: t = 0.5, b covers the left half
    assert np.array_equal(mid[:, :48], px(101)[:, :48])
    assert np.array_equal(mid[:, 48:], px(8)[:, 48:])
    dip = call(
        "video.transition", {"a": a, "b": b}, {"frames": 3, "kind": "dip", "color": "#ff0000"}
    )["video"]
    assert np.allclose(dip.frame(8).data, [1, 0, 0])  # the middle is all colour
    # sound: a's up to the middle of the overlap, then b's silence from its middle
    assert out.audio is not None and out.audio.duration == pytest.approx(14 / 24)
    assert out.audio.spans[0].duration == pytest.approx(8 / 24)
    with pytest.raises(NodeError) as err:
        call("video.transition", {"a": a, "b": b}, {"frames": 9})
    assert err.value.port == "frames"
    with pytest.raises(NodeError) as err:
        call("video.transition", {"a": a, "b": clip(8, size=(48, 32))}, {"frames": 2})
    assert err.value.port == "b"


def _solid(n: int, value: float, size: tuple[int, int] = (100, 50)) -> Video:
    return Video.from_frames([Image(np.full((size[1], size[0], 3), value, np.float32))] * n, 24.0)


def test_overlay_follows_keyframes() -> None:
    base, top = _solid(49, 0.0), _solid(49, 1.0, (40, 20))
    out = call(
        "video.overlay",
        {"base": base, "overlay": top},
        {"position": "0:0.1,0.1; 48:0.5,0.7", "scale": "0:0.2"},
    )["video"]
    assert len(out) == 49
    for frame, (x, y) in ((0, (10, 5)), (24, (30, 20)), (48, (50, 35))):
        f = out.frame(frame).data[:, :, 0]
        # a 20×10 white box (0.2 × 100 wide, aspect 2:1) with its corner at the keyframed place
        assert f[y : y + 10, x : x + 20].min() == 1.0, frame
        assert f.sum() == 200, frame
    late = call(
        "video.overlay",
        {"base": base, "overlay": top},
        {"position": "0.5,0.5", "scale": "0.2", "start": 40},
    )["video"]
    assert late.frame(39).data.max() == 0 and late.frame(40).data.max() == 1
    with pytest.raises(NodeError) as err:
        call("video.overlay", {"base": base, "overlay": top}, {"position": "0:0.1"})
    assert err.value.port == "position"


def test_overlay_masked_composite() -> None:
    base, top = _solid(3, 0.0, (8, 4)), _solid(3, 1.0, (8, 4))
    m = np.zeros((4, 8), np.float32)
    m[:, :4] = 1.0
    m[0, 0] = 0.5
    out = call(
        "video.overlay",
        {"base": base, "overlay": top, "mask": Mask(m)},
        {"position": "0,0", "scale": "1", "opacity": 1.0},
    )["video"]
    assert np.allclose(out.frame(1).data[:, :, 1], m)
    mv = Video.from_frames([Image(m * (k / 2)) for k in range(3)], 24.0)
    out = call(
        "video.overlay",
        {"base": base, "overlay": top, "mask_video": mv},
        {"position": "0,0", "scale": "1", "opacity": 0.5},
    )["video"]
    assert np.allclose(out.frame(2).data[:, :, 0], m * 0.5)
    assert out.frame(0).data.max() == 0


def test_text_changes_pixels_only_inside_its_box() -> None:
    from fathom.engine.media import videoops as vo

    v = _solid(10, 0.2, (160, 90))
    out = call(
        "video.text",
        {"video": v},
        {
            "text": "Hello",
            "size": 24,
            "color": "#ffff00",
            "x": 0.5,
            "y": 0.5,
            "start": 2,
            "end": 8,
            "fade": 2,
        },
    )["video"]
    cover = vo.render_text("Hello", 24)
    h, w = cover.shape
    x0, y0 = vo.place(160, 90, w, h, 0.5, 0.5)
    full = out.frame(5).data
    inside = np.zeros(full.shape[:2], bool)
    inside[y0 : y0 + h, x0 : x0 + w] = True
    changed = np.any(full != 0.2, axis=2)
    assert changed.any() and not changed[~inside].any()
    assert np.allclose(
        full[inside & (np.pad(cover, ((y0, 90 - y0 - h), (x0, 160 - x0 - w))) == 1)], [1, 1, 0]
    )
    # fading in: frame 2 shows the text at a third of its strength, frames 0-1 and 8+ not at all
    peak = np.unravel_index(np.argmax(full[:, :, 0]), full.shape[:2])
    assert out.frame(2).data[peak][0] == pytest.approx(0.2 + 0.8 / 3, abs=1e-6)
    for i in (0, 1, 8, 9):
        assert np.array_equal(out.frame(i).data, v.frame(i).data)


# ---- video.map: any image subgraph per frame -------------------------------------------------


class CountingInvert(Node):
    """image.invert that counts its runs, to see the per-frame cache at work."""

    type_id = "test.count_invert"
    title = "Counting invert"
    inputs = (Input("image", Image),)
    outputs = (Output("image", Image),)
    runs = 0

    def run(self, ctx: Any, image: Image) -> dict[str, Any]:
        type(self).runs += 1
        return {"image": Image(1.0 - image.data)}


def one_node_subgraph(type_id: str, name: str = "inv") -> SubgraphDef:
    inner = Graph()
    inner.add_node(type_id, "n")
    return SubgraphDef(
        name, inner, [Exposed("image", "n", "image")], [Exposed("image", "n", "image")]
    )


def map_graph(path: Path, d: SubgraphDef) -> Graph:
    g = Graph()
    g.subgraphs[d.name] = d
    g.add_node("video.load", "load", {"path": str(path)})
    g.add_node("video.map", "map", {"subgraph": d.name})
    g.connect("load", "video", "map", "video")
    return g


def test_map_equals_the_image_node_per_frame(tmp_path: Path) -> None:
    path = make_clip(tmp_path / "c.mp4", frames=8)
    g = map_graph(path, one_node_subgraph("image.invert"))
    res = Executor(REG).run(g, options=RunOptions(device="cpu", base_dir=tmp_path), targets=["map"])
    assert res.ok, res.records
    mapped, source = res.output("map", "video"), res.output("load", "video")
    assert len(mapped) == 8 and mapped.fps == source.fps and mapped.size == (96, 64)
    for i in range(8):
        want = call("image.invert", {"image": source.frame(i)})["image"].data
        assert np.array_equal(mapped.frame(i).data, want)
    assert indices(mapped) == [1023 - i for i in range(8)]  # every code bit flipped


def test_map_caches_per_frame_and_reports_progress(tmp_path: Path) -> None:
    reg = Registry()
    reg.load_builtin()
    reg.register(CountingInvert)
    ex = Executor(reg)
    path = make_clip(tmp_path / "c.mp4", frames=6)
    g = map_graph(path, one_node_subgraph("test.count_invert"))
    g.add_node("video.save", "save", {"path": "mapped.mp4"})
    g.connect("map", "video", "save", "video")
    events: list[Event] = []
    opts = RunOptions(device="cpu", base_dir=tmp_path, output_dir=tmp_path)
    CountingInvert.runs = 0
    res = ex.run(g, targets=["save"], options=opts, listener=events.append)
    assert res.ok and CountingInvert.runs == 6  # the save pulled every frame through the map
    progress = [e for e in events if e.kind == "node_progress" and e.node == "map"]
    # one report per frame read (the writer reads frame 0 twice: size, then frame; a hit)
    assert list(dict.fromkeys(e.message for e in progress)) == [f"frame {i}" for i in range(6)]
    assert progress[-1].progress == pytest.approx(1.0)
    mapped = res.output("map", "video")
    n_events = len(events)
    first = mapped.frame(3).data
    assert CountingInvert.runs == 6  # a hit: the save's run cached every frame's result
    assert len(events) == n_events  # the run is over: late frames report to no one
    assert indices(mapped)[3] == 1023 - 3
    # a second render finds the mapped video cached, and its frames' results too
    again = ex.run(g, targets=["map"], options=opts)
    assert again.records["map"].status == "cached"
    again.output("map", "video").frame(3)
    assert CountingInvert.runs == 6
    # editing the subgraph re-runs the map node: its definition is part of the key
    g.subgraphs["inv"].graph.nodes["n"].type = "image.invert"
    edited = ex.run(g, targets=["map"], options=opts)
    assert edited.records["map"].status == "executed"
    assert np.array_equal(edited.output("map", "video").frame(3).data, first)
    assert CountingInvert.runs == 6


def test_a_cancel_after_the_run_does_not_reach_its_lazy_frames(tmp_path: Path) -> None:
    """A mapped video outlives its run (the cache, the player); cancelling that run later, or
    a run cancelled downstream, must not make its frames raise Cancelled when read."""
    reg = Registry()
    reg.load_builtin()
    reg.register(CountingInvert)
    ex = Executor(reg)
    g = map_graph(make_clip(tmp_path / "c.mp4", frames=4), one_node_subgraph("test.count_invert"))
    cancel = CancelToken()
    res = ex.run(
        g, targets=["map"], options=RunOptions(device="cpu", base_dir=tmp_path), cancel=cancel
    )
    assert res.ok
    cancel.cancel()
    assert indices(res.output("map", "video"))[2] == 1023 - 2


def test_map_from_the_library_and_its_errors(tmp_path: Path) -> None:
    lib = tmp_path / "lib"
    lib.mkdir()
    save_subgraph(one_node_subgraph("image.invert", "negative"), lib, REG)
    ex = Executor(REG, library=SubgraphLibrary([lib], REG))
    v = clip(4, 10)
    out = call("video.map", {"video": v}, {"subgraph": "negative"}, ex)["video"]
    assert indices(out) == [1023 - i for i in range(10, 14)]  # keyed by pixels: no graph here
    with pytest.raises(NodeError) as err:
        call("video.map", {"video": v}, {"subgraph": "nothing"}, ex)
    assert err.value.port == "subgraph" and "no subgraph 'nothing'" in str(err.value)
    const = Graph()
    const.add_node("image.constant", "c")
    no_input = SubgraphDef("const", const, [], [Exposed("image", "c", "image")])
    g = Graph()
    g.subgraphs["const"] = no_input
    g.add_node("video.load", "load", {"path": str(make_clip(tmp_path / "c.mp4", frames=2))})
    g.add_node("video.map", "map", {"subgraph": "const"})
    g.connect("load", "video", "map", "video")
    res = ex.run(g, targets=["map"], options=RunOptions(device="cpu"))
    assert res.failed == ["map"] and "exposes no Image inputs" in res.records["map"].error
    g.nodes["map"].params["subgraph"] = "missing"
    with pytest.raises(GraphInvalid) as bad:
        ex.run(g, targets=["map"], options=RunOptions(device="cpu"))
    assert bad.value.problems[0].port == "subgraph"


def test_render_cli_load_trim_map_save_with_frames(tmp_path: Path) -> None:
    make_clip(tmp_path / "in.mp4", frames=24)
    doc = {
        "format": "fathom.graph",
        "version": 1,
        "nodes": [
            {"id": "load", "type": "video.load", "params": {"path": "in.mp4"}},
            {"id": "trim", "type": "video.trim", "params": {"start": 4, "end": 16}},
            {"id": "map", "type": "video.map", "params": {"subgraph": "neg"}},
            {"id": "save", "type": "video.save", "params": {"path": "out.mp4"}},
        ],
        "edges": [
            {"from": ["load", "video"], "to": ["trim", "video"]},
            {"from": ["trim", "video"], "to": ["map", "video"]},
            {"from": ["map", "video"], "to": ["save", "video"]},
        ],
        "subgraphs": {
            "neg": {
                "inputs": [{"name": "image", "node": "inv", "port": "image"}],
                "outputs": [{"name": "image", "node": "inv", "port": "image"}],
                "nodes": [{"id": "inv", "type": "image.invert"}],
                "edges": [],
            }
        },
    }
    graph = tmp_path / "g.json"
    graph.write_text(json.dumps(doc))
    out = tmp_path / "out"
    code = main(
        ["render", str(graph), "--out", str(out), "--device", "cpu", "--frames", "2-5", "--quiet"]
    )
    assert code == 0
    # trimmed frames 2..5 are source frames 6..9, inverted
    assert decoded_indices(out / "out.mp4") == [1023 - i for i in range(6, 10)]


def test_every_editing_node_renders_from_a_graph_file(tmp_path: Path) -> None:
    make_clip(tmp_path / "in.mp4", frames=24)

    def node(nid: str, type_id: str, **params: Any) -> dict[str, Any]:
        return {"id": nid, "type": type_id, "params": params}

    def edge(src: str, dst: str, port: str = "video") -> dict[str, Any]:
        return {"from": [src, "video"], "to": [dst, port]}

    doc = {
        "format": "fathom.graph",
        "version": 1,
        "nodes": [
            node("load", "video.load", path="in.mp4"),
            node("a", "video.trim", start=0, end=8),
            node("b", "video.trim", start=8, end=12),
            node("tail", "video.trim", start=16, unit="frames"),
            node("rev", "video.reverse"),
            node("fast", "video.speed", factor=2.0),
            node("twice", "video.loop", count=2),
            node("join", "video.concat"),
            node("fade", "video.transition", kind="wipe", frames=2),
            node("pip", "video.overlay", position="0:0.5,0.6", scale="0.25"),
            node("title", "video.text", text="End", size=10, y=0.85, end=None),
            node("big", "video.resize", width=192, height=128),
            node("save", "video.save", path="edit.mp4"),
        ],
        "edges": [
            edge("load", "a"),
            edge("load", "b"),
            edge("load", "tail"),
            edge("b", "rev"),
            edge("a", "fast"),
            edge("rev", "twice"),
            edge("fast", "join", "videos"),
            edge("twice", "join", "videos"),
            edge("join", "fade", "a"),
            edge("tail", "fade", "b"),
            edge("fade", "pip", "base"),
            edge("a", "pip", "overlay"),
            edge("pip", "title"),
            edge("title", "big"),
            edge("big", "save"),
        ],
    }
    graph = tmp_path / "g.json"
    graph.write_text(json.dumps(doc))
    out = tmp_path / "out"
    assert (
        main(
            [
                "render",
                str(graph),
                "--out",
                str(out),
                "--device",
                "cpu",
                "--frames",
                "8-13",
                "--quiet",
            ]
        )
        == 0
    )
    # join = [0, 2, 4, 6] + [11, 10, 9, 8] * 2; its last two frames wipe into 16, 17; then 18..
    got = decoded_indices(out / "edit.mp4")
    assert len(got) == 6 and [got[0], got[1], got[4], got[5]] == [11, 10, 18, 19]


def test_map_names_the_inner_node_that_fails_and_a_missing_output(tmp_path: Path) -> None:
    inner = Graph()
    inner.add_node("image.crop", "n", {"x": 500})
    crop = SubgraphDef(
        "crop", inner, [Exposed("image", "n", "image")], [Exposed("image", "n", "image")]
    )
    g = map_graph(make_clip(tmp_path / "c.mp4", frames=3), crop)
    g.add_node("video.save", "save", {"path": "x.mp4"})
    g.connect("map", "video", "save", "video")
    res = Executor(REG).run(g, options=RunOptions(device="cpu", output_dir=tmp_path / "out"))
    err = res.records["save"].error
    assert res.failed == ["save"] and err.count("node 'map/n'") == 1
    assert "port 'x'" in err and "outside the image" in err
    assert not (tmp_path / "out" / "x.mp4").exists()  # nothing half-written
    blind = SubgraphDef("blind", inner, [Exposed("image", "n", "image")], [])
    with pytest.raises(NodeError) as bad:
        call(
            "video.map",
            {"video": clip(2)},
            {"subgraph": "blind"},
            Executor(REG, library=lambda name: blind if name == "blind" else None),
        )
    assert bad.value.port == "subgraph" and "no Image outputs" in str(bad.value)


def test_map_with_a_mask_subgraph_makes_a_mask_video() -> None:
    inner = Graph()
    inner.add_node("mask.threshold", "t", {"threshold": 0.5})
    d = SubgraphDef(
        "bright", inner, [Exposed("image", "t", "image")], [Exposed("mask", "t", "mask")]
    )
    ex = Executor(REG, library=lambda name: d if name == "bright" else None)
    v = clip(3, 5)
    out = call("video.map", {"video": v}, {"subgraph": "bright"}, ex)["video"]
    for i in range(3):
        want = call("mask.threshold", {"image": v.frame(i)}, {"threshold": 0.5})["mask"].data
        got = out.frame(i).data
        assert got.shape == (64, 96, 1) and np.array_equal(got[:, :, 0], want)


def test_map_passes_settings_to_the_subgraphs_exposed_parameters() -> None:
    inner = Graph()
    inner.add_node("image.adjust", "adj")
    d = SubgraphDef(
        "grade",
        inner,
        [Exposed("image", "adj", "image")],
        [Exposed("image", "adj", "image")],
        [Exposed("brightness", "adj", "brightness")],
    )
    ex = Executor(REG, library=lambda name: d if name == "grade" else None)
    v = clip(2)
    out = call(
        "video.map", {"video": v}, {"subgraph": "grade", "settings": '{"brightness": -0.25}'}, ex
    )["video"]
    want = call("image.adjust", {"image": v.frame(1)}, {"brightness": -0.25})["image"].data
    assert np.array_equal(out.frame(1).data, want) and not np.array_equal(want, px(1))
    for bad, why in (
        ('{"gamma": 2}', "no parameter 'gamma'"),
        ("[1]", "JSON object"),
        ('{"brightness": 9}', "above the maximum"),
        ("{", "not JSON"),
    ):
        with pytest.raises(NodeError) as err:
            call("video.map", {"video": v}, {"subgraph": "grade", "settings": bad}, ex)
        assert err.value.port == "settings" and why in str(err.value), bad


def test_ntsc_rates_typed_two_ways_are_one_rate() -> None:
    frames = [Image(frame_pixels(i) / 255.0) for i in range(4)]
    a, b = Video.from_frames(frames, 29.97), Video.from_frames(frames, 30000 / 1001)
    out = call("video.concat", {"videos": [a, b]})["video"]
    assert len(out) == 8
    with pytest.raises(NodeError) as err:
        call("video.concat", {"videos": [a, Video.from_frames(frames, 25.0)]})
    assert "25 fps but the first at 29.97 fps" in str(err.value)
