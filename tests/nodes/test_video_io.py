"""video.load / save / info / frame / from_images, frame-exact: every test frame carries its index
(videoclips), so seeking, sources and every save format are checked by reading indices back."""

from __future__ import annotations

import random
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
import pytest
from bombs import HUGE, png_bytes
from videoclips import audio_samples, decoded_indices, frame_pixels, make_clip, read_index

from fathom.engine.context import RunOptions
from fathom.engine.errors import GraphInvalid, MediaError, NodeError
from fathom.engine.executor import Executor
from fathom.engine.graph import Graph
from fathom.engine.imaging.codecs import exr_backend
from fathom.engine.registry import Registry
from fathom.engine.types import Image, Video

REG = Registry()
REG.load_builtin()
EX = Executor(REG)


def call(
    type_id: str,
    inputs: dict,
    params: dict | None,
    base: Path,
    frames: tuple[int, int] | None = None,
) -> dict:
    opts = RunOptions(device="cpu", output_dir=base, base_dir=base, frames=frames)
    return EX.call(type_id, inputs, params, opts)


def load(path: Path | str, base: Path, **params) -> Video:
    return call("video.load", {}, {"path": str(path), **params}, base)["video"]


def indices(video: Video) -> list[int]:
    return [read_index(video.frame(i).data) for i in range(len(video))]


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.rglob("*") if ".tmp" in p.name or ".old" in p.name)


def test_load_reports_the_clip_and_seeks_frame_exactly(tmp_path: Path) -> None:
    make_clip(tmp_path / "c.mp4", frames=36, fps=12.0, gop=6, audio=True)
    out = call("video.load", {}, {"path": "c.mp4"}, tmp_path)
    v = out["video"]
    assert (out["frames"], out["fps"], out["duration"]) == (
        36,
        pytest.approx(12.0),
        pytest.approx(3.0),
    )
    info = call("video.info", {"video": v}, {}, tmp_path)
    assert info == {
        "fps": pytest.approx(12.0),
        "frames": 36,
        "duration": pytest.approx(3.0),
        "width": 96,
        "height": 64,
        "has_audio": True,
        "codec": "h264",
    }
    assert v.audio is not None and v.audio.duration == pytest.approx(3.0)
    order = list(range(36))
    random.Random(0).shuffle(order)
    assert [read_index(v.frame(i).data) for i in order] == order
    last = call("video.frame", {"video": v}, {"index": -1}, tmp_path)["image"]
    assert read_index(last.data) == 35
    # Decoding scaled (a proxy): every frame still reads, at the asked size.
    small = load("c.mp4", tmp_path, width=48)
    assert small.size == (48, 32) and indices(small.slice(10, 14)) == [10, 11, 12, 13]


def test_gif_webp_and_image_sequences_are_sources(tmp_path: Path) -> None:
    for name, codec, fmt in [("a.gif", "gif", "rgb8"), ("a.webp", "libwebp_anim", "bgra")]:
        with av.open(str(tmp_path / name), "w") as out:
            s = out.add_stream(codec, rate=Fraction(10))
            s.width, s.height, s.pix_fmt = 96, 64, fmt
            if codec == "libwebp_anim":
                s.options = {"lossless": "1"}
            for i in range(8):
                for p in s.encode(av.VideoFrame.from_ndarray(frame_pixels(i), format="rgb24")):
                    out.mux(p)
            for p in s.encode():
                out.mux(p)
        v = load(name, tmp_path)
        assert len(v) == 8 and indices(v) == list(range(8)), name
        assert v.fps == pytest.approx(10.0, rel=0.05), name
    seq = tmp_path / "seq"
    seq.mkdir()
    for i in range(5):
        cv2.imwrite(str(seq / f"f_{i + 3:03d}.png"), frame_pixels(i + 3)[:, :, ::-1])
    (seq / "notes.txt").write_text("not a frame")
    for path in ("seq", "seq/f_%03d.png", "seq/*.png"):
        v = load(path, tmp_path, fps=5.0)
        assert indices(v) == [3, 4, 5, 6, 7] and v.fps == 5.0, path
        assert call("video.info", {"video": v}, {}, tmp_path)["codec"] == "png"


def test_exr_sequences_without_a_backend_are_a_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import fathom.nodes.video as video_nodes

    monkeypatch.setattr(video_nodes, "exr_backend", lambda: None)
    v = load(make_clip(tmp_path / "src.mp4", frames=3), tmp_path)
    with pytest.raises(NodeError) as err:
        call("video.save", {"video": v}, {"path": "exr/f_%04d.exr"}, tmp_path / "out")
    assert err.value.port == "path" and "OpenEXR" in str(err.value)
    assert not (tmp_path / "out" / "exr").exists()


def test_a_sequence_with_a_decompression_bomb_is_refused_on_the_path_port(
    tmp_path: Path,
) -> None:
    seq = tmp_path / "seq"
    seq.mkdir()
    cv2.imwrite(str(seq / "f_000.png"), frame_pixels(0))
    (seq / "f_001.png").write_bytes(png_bytes(*HUGE, 16))
    v = load("seq", tmp_path)
    assert read_index(v.frame(0).data) == 0
    with pytest.raises(MediaError) as err:  # read lazily, by whichever node asks for it
        v.frame(1)
    assert err.value.port == "path" and "FATHOM_MAX_IMAGE_PIXELS" in str(err.value.fix)
    (seq / "f_000.png").write_bytes(png_bytes(*HUGE, 8))
    with pytest.raises(NodeError) as err:
        load("seq", tmp_path)
    assert err.value.port == "path" and "20000×20000" in str(err.value)


@pytest.mark.parametrize(
    "name",
    [
        "o.mp4",
        "o.webm",
        "o.mkv",
        "o.gif",
        "o.webp",
        "png/f_%04d.png",
        "png16/f_%04d.png",
        "exr/f_%04d.exr",
    ],
)
def test_every_save_format_round_trips_frame_exactly(tmp_path: Path, name: str) -> None:
    src = make_clip(tmp_path / "src.mp4", frames=14)
    v = load(src, tmp_path)
    params = {
        "path": name,
        "quality": 0 if name.endswith("webp") else 12,
        "bits": "16" if name.startswith("png16") else "8",
    }
    if name.endswith(".exr"):
        assert exr_backend() is not None  # OpenEXR is a dependency: EXR sequences must work
    path = Path(call("video.save", {"video": v}, params, tmp_path / "out", frames=(2, 11))["path"])
    back = load(path, tmp_path, fps=24.0)
    assert indices(back) == list(range(2, 12)), name
    if "%" in name:
        files = sorted(path.parent.iterdir())
        assert [f.name for f in files][:2] == [path.name % 2, path.name % 3]
        if name.startswith("png16"):
            assert cv2.imread(str(files[0]), cv2.IMREAD_UNCHANGED).dtype == np.uint16
    else:
        assert back.fps == pytest.approx(24.0, rel=0.05)
    assert leftovers(tmp_path) == []


def test_audio_is_cut_with_the_frames_and_can_come_from_another_video(tmp_path: Path) -> None:
    make_clip(tmp_path / "a.mp4", frames=48, audio=True)
    make_clip(tmp_path / "b.mp4", frames=48, audio=False, first=100)
    a, b = load("a.mp4", tmp_path), load("b.mp4", tmp_path)
    part = a.slice(10, 34)  # 24 frames: 1 s
    out = Path(call("video.save", {"video": part}, {"path": "p.mp4"}, tmp_path)["path"])
    assert abs(audio_samples(out) - 48000) <= 1024
    # --frames 5-16 of b with a's sound: 12 frames, half a second of sound, from 5/24 s on.
    out2 = Path(
        call("video.save", {"video": b, "audio": a}, {"path": "q.webm"}, tmp_path, frames=(5, 16))[
            "path"
        ]
    )
    assert decoded_indices(out2) == list(range(105, 117))
    assert abs(audio_samples(out2) - 24000) <= 1024
    none = Path(
        call("video.save", {"video": a}, {"path": "n.mp4", "sound": "none"}, tmp_path)["path"]
    )
    assert audio_samples(none) == 0
    with pytest.raises(NodeError) as err:
        call("video.save", {"video": a, "audio": b}, {"path": "x.mp4"}, tmp_path)
    assert err.value.port == "audio"


def test_streaming_load_slice_map_save_decodes_each_frame_once(tmp_path: Path) -> None:
    make_clip(tmp_path / "c.mp4", frames=40, gop=10)
    v = load("c.mp4", tmp_path)
    part = v.slice(10, 35)  # starts on a keyframe: no pre-roll to decode

    def invert(img: Image) -> Image:
        return Image(1.0 - img.data)

    mapped = part.map(invert)
    path = call("video.save", {"video": mapped}, {"path": "m.mp4", "quality": 10}, tmp_path)["path"]
    assert v.decoded == 25  # type: ignore[attr-defined]
    back = load(path, tmp_path)
    assert [read_index(1.0 - back.frame(i).data) for i in range(len(back))] == list(range(10, 35))
    # Unaligned start: only the pre-roll from the keyframe before is extra.
    w = load("c.mp4", tmp_path)
    call("video.save", {"video": w.slice(13, 20)}, {"path": "u.mp4"}, tmp_path)
    assert w.decoded == 7 + 3  # type: ignore[attr-defined]


def test_from_images_builds_a_video(tmp_path: Path) -> None:
    imgs = [Image(frame_pixels(i).astype(np.float32) / 255) for i in range(4)]
    v = call("video.from_images", {"images": imgs}, {"fps": 8.0}, tmp_path)["video"]
    assert len(v) == 4 and v.fps == 8.0 and indices(v) == [0, 1, 2, 3]
    with pytest.raises(NodeError) as err:
        call("video.from_images", {"images": [imgs[0], Image(np.zeros((8, 8, 3)))]}, {}, tmp_path)
    assert err.value.port == "images" and "image 1" in str(err.value)


def test_bad_inputs_and_outputs_fail_clearly_and_leave_nothing(tmp_path: Path) -> None:
    clip = make_clip(tmp_path / "c.mp4", frames=12)
    data = clip.read_bytes()
    (tmp_path / "cut.mkv").write_bytes(b"")
    (tmp_path / "half.mp4").write_bytes(data[: len(data) // 2])  # no index: unreadable
    mkv = make_clip(tmp_path / "c.mkv", frames=24).read_bytes()
    (tmp_path / "half.mkv").write_bytes(mkv[: len(mkv) * 2 // 3])  # readable, but cut
    with av.open(str(tmp_path / "sound.m4a"), "w") as out:
        a = out.add_stream("aac", rate=48000)
        a.layout = "stereo"
        f = av.AudioFrame.from_ndarray(
            np.zeros((2, 1024), np.float32), format="fltp", layout="stereo"
        )
        f.sample_rate = 48000
        for p in [*a.encode(f), *a.encode()]:
            out.mux(p)
    cases = [
        ("half.mp4", "cannot be decoded"),
        ("cut.mkv", "cannot be decoded"),
        ("half.mkv", "truncated"),
        ("sound.m4a", "no video stream"),
        ("missing.mp4", "does not exist"),
        ("nothing/%04d.png", "no images match"),
    ]
    for name, words in cases:
        with pytest.raises(NodeError) as err:
            load(name, tmp_path)
        assert err.value.port == "path" and words in str(err.value), name
        assert err.value.fix, name
    v = load("c.mp4", tmp_path)
    (tmp_path / "blocker").write_text("a file where a folder should be")
    for name, words in [
        ("blocker/o.mp4", "is a file, not a folder"),
        ("o.avi", "unknown video format"),
        ("o", "unknown video format"),
        ("f_%04d.tga", "image sequences are written as"),
    ]:
        with pytest.raises(NodeError) as err:
            call("video.save", {"video": v}, {"path": name}, tmp_path)
        assert err.value.port == "path" and words in str(err.value), name
        assert "Fix:" in str(err.value)
    # A sequence never replaces a folder holding someone else's files.
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "keep.txt").write_text("precious")
    with pytest.raises(NodeError, match="its own"):
        call("video.save", {"video": v}, {"path": "mine/f_%04d.png"}, tmp_path)
    assert (tmp_path / "mine" / "keep.txt").exists()
    # A failure mid-encode keeps the old file and leaves no temporary behind.
    good = Path(call("video.save", {"video": v}, {"path": "keep.mp4"}, tmp_path)["path"])
    before = good.read_bytes()

    def broken(i: int) -> Image:
        if i == 5:
            raise RuntimeError("upstream failed at frame 5")
        return Image(np.zeros((64, 96, 3), np.float32))

    for name in ("keep.mp4", "seq/f_%04d.png"):
        with pytest.raises(RuntimeError, match="frame 5"):
            call(
                "video.save", {"video": Video(12, 24.0, broken, (96, 64))}, {"path": name}, tmp_path
            )
    assert good.read_bytes() == before and not (tmp_path / "seq").exists()
    assert leftovers(tmp_path) == []
    # The pre-flight check finds the same problems before a graph runs.
    g = Graph()
    g.add_node("video.load", "load", {"path": "missing.mp4"})
    g.add_node("video.save", "save", {"path": "o.avi"})
    g.connect("load", "video", "save", "video")
    with pytest.raises(GraphInvalid) as inv:
        EX.plan(g, options=RunOptions(output_dir=tmp_path, base_dir=tmp_path))
    assert {(p.node, p.port) for p in inv.value.problems} == {("load", "path"), ("save", "path")}


# ---- regressions found in review ------------------------------------------------------------

FFMPEG = pytest.mark.skipif(__import__("shutil").which("ffmpeg") is None, reason="needs ffmpeg")


def test_two_threads_reading_one_video_get_the_right_frames(tmp_path: Path) -> None:
    """The GUI player's worker and a render read the same clip at once: each frame converts with
    its own converter (a shared one crashed the process)."""
    import threading

    v = load(make_clip(tmp_path / "c.mp4", frames=24), tmp_path)
    wrong: list[int] = []

    def read() -> None:
        for k in range(150):
            if read_index(v.frame(k % 24).data) != k % 24:
                wrong.append(k)

    threads = [threading.Thread(target=read) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not wrong and not any(t.is_alive() for t in threads)


@FFMPEG
def test_an_edit_list_cut_loads_only_the_shown_frames(tmp_path: Path) -> None:
    """`ffmpeg -ss 0.3 -c copy` keeps the GOP's earlier frames as discarded pre-roll."""
    import subprocess

    src = make_clip(tmp_path / "long.mp4", frames=48, gop=12, audio=True)
    cut = tmp_path / "cut.mp4"
    subprocess.run(
        ["ffmpeg", "-v", "error", "-y", "-ss", "0.3", "-i", str(src), "-c", "copy", str(cut)],
        check=True,
    )
    truth = decoded_indices(cut)
    v = load(cut, tmp_path)
    assert len(v) == len(truth) and indices(v) == truth
    order = list(range(len(v))) * 2
    random.Random(5).shuffle(order)  # seeking, also before the first shown keyframe
    assert [read_index(v.frame(i).data) for i in order] == [truth[i] for i in order]


def test_cut_sound_has_no_click_at_its_start(tmp_path: Path) -> None:
    from fathom.engine.media.audio import decode_audio

    p = make_clip(tmp_path / "t.mp4", frames=48, audio=True)
    with av.open(str(p)) as c:
        whole = np.concatenate([f.to_ndarray() for f in c.decode(audio=0)], 1)
    got = decode_audio(load(p, tmp_path).audio.slice(0.5, 1.0))
    assert np.abs(got - whole[:, 24000:48000]).max() < 1e-3


@FFMPEG
def test_a_late_starting_video_stream_loads_in_sync(tmp_path: Path) -> None:
    import subprocess

    src = make_clip(tmp_path / "t.mp4", frames=48, audio=True)
    for ext in ("mkv", "mp4"):
        out = tmp_path / f"late.{ext}"
        subprocess.run(
            [
                "ffmpeg",
                "-v",
                "error",
                "-y",
                "-itsoffset",
                "0.5",
                "-i",
                str(src),
                "-i",
                str(src),
                "-map",
                "0:v",
                "-map",
                "1:a",
                "-c",
                "copy",
                str(out),
            ],
            check=True,
        )
        v = load(out, tmp_path)  # a complete file: not reported as truncated
        assert len(v) == 48 and indices(v)[:3] == [0, 1, 2]
        assert v.audio is not None and v.audio.spans[0].start == pytest.approx(0.5, abs=0.03)


def test_saving_to_a_glob_pattern_is_refused(tmp_path: Path) -> None:
    v = Video.from_frames([Image(frame_pixels(i) / 255.0) for i in range(3)], 24)
    with pytest.raises(NodeError) as err:
        call("video.save", {"video": v}, {"path": "seq/f_*.png"}, tmp_path)
    assert err.value.port == "path" and "%04d" in (err.value.fix or "")
    assert not (tmp_path / "seq").exists() or not list((tmp_path / "seq").iterdir())


def test_an_fps_override_retimes_the_sound_with_the_frames(tmp_path: Path) -> None:
    v = load(make_clip(tmp_path / "t.mp4", frames=24, audio=True), tmp_path)
    call("video.save", {"video": v}, {"path": "slow.mp4", "fps": 12.0}, tmp_path)
    with av.open(str(tmp_path / "slow.mp4")) as c:
        pcm = np.concatenate([f.to_ndarray() for f in c.decode(audio=0)], 1)
    assert 96000 <= pcm.shape[1] < 96000 + 2048  # 2 s of sound for 2 s of frames
    second_half = pcm[:, 48000:90000]
    assert np.sqrt((second_half**2).mean()) > 0.1  # still the tone, not padding


def test_a_frame_of_an_empty_video_says_so(tmp_path: Path) -> None:
    with pytest.raises(NodeError) as err:
        call("video.frame", {"video": Video(0, 24.0, lambda i: None)}, {}, tmp_path)
    assert err.value.port == "video" and "no frames" in str(err.value)


def test_save_refuses_settings_it_would_ignore_and_reports_what_it_changes(tmp_path: Path) -> None:
    make_clip(tmp_path / "c.mp4", frames=4, fps=12.0, gop=2)
    clip = load("c.mp4", tmp_path)
    # A colour map on colour frames would do nothing: refused on its own parameter.
    with pytest.raises(NodeError) as err:
        call("video.save", {"video": clip}, {"path": "m.mp4", "colormap": "turbo"}, tmp_path)
    assert err.value.port == "colormap" and "depth" in (err.value.fix or "")
    # 16 bits into an 8-bit movie is refused before anything runs.
    g = Graph()
    g.add_node("video.load", "load", {"path": "c.mp4"})
    g.add_node("video.save", "save", {"path": "d.mp4", "bits": "16"})
    g.connect("load", "video", "save", "video")
    with pytest.raises(GraphInvalid) as bad:
        EX.plan(g, options=RunOptions(output_dir=tmp_path, base_dir=tmp_path))
    assert {(p.node, p.port) for p in bad.value.problems} == {("save", "bits")}
    # Odd sides: H.264 drops the last column and row, and the report says so.
    odd = Video.from_frames([Image(np.full((61, 97, 3), 0.5, np.float32))] * 2, fps=12)
    ex = Executor(REG)
    opts = RunOptions(device="cpu", output_dir=tmp_path, base_dir=tmp_path)
    ex.call("video.save", {"video": odd}, {"path": "odd.mp4"}, opts)
    with av.open(str(tmp_path / "odd.mp4")) as f:
        assert (f.streams.video[0].width, f.streams.video[0].height) == (96, 60)


def test_a_size_ffmpeg_cannot_hold_is_refused_on_the_port_that_asked_for_it(
    tmp_path: Path,
) -> None:
    make_clip(tmp_path / "c.mp4", frames=2, fps=12.0, gop=2)
    with pytest.raises(NodeError) as err:
        load("c.mp4", tmp_path, width=16384, height=16384)
    assert err.value.port == "width" and "smaller" in (err.value.fix or "")
    assert load("c.mp4", tmp_path, width=64).size == (64, 43)  # an ordinary resize still works
    # Any other producer of such a size meets the same refusal in the writer, before a file.
    from fathom.engine.media.writers import ContainerWriter

    with pytest.raises(MediaError, match="larger than FFmpeg"):
        ContainerWriter(tmp_path / "huge.mp4", (16384, 16384), 24.0)
    assert not (tmp_path / "huge.mp4").exists()
