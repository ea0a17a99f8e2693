"""engine.media: frame index, seeking, VFR, audio decoding and the pure helpers, on real files."""

from __future__ import annotations

import random
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from videoclips import audio_samples, decoded_indices, frame_pixels, make_clip, read_index, tone

from fathom.engine.errors import MediaError
from fathom.engine.media.audio import decode_audio
from fathom.engine.media.readers import AVReader
from fathom.engine.media.timing import (
    average_fps,
    declared_seconds,
    keyframe_before,
    presentation_index,
    sample_bounds,
    sequence_name,
    sequence_pattern,
    truncated,
)
from fathom.engine.media.writers import ContainerWriter, prefetch, to_uint8
from fathom.engine.types import AudioSpan, AudioTrack


def test_pure_helpers() -> None:
    assert presentation_index([0, 3, 1, 2, 3]) == [0, 1, 2, 3]
    assert keyframe_before([0, 12, 24], 11) == 0
    assert keyframe_before([0, 12, 24], 12) == 12
    assert keyframe_before([0, 12, 24], 30) == 24
    # 10 frames 1/10 s apart in a 1/1000 time base; a declared rate within 1% wins.
    pts = [i * 100 for i in range(10)]
    assert average_fps(pts, Fraction(1, 1000), None) == pytest.approx(10.0)
    assert average_fps(pts, Fraction(1, 1000), 10.05) == 10.05
    assert average_fps(pts, Fraction(1, 1000), 30.0) == pytest.approx(10.0)
    # Rounding on the running total: three 1/3 s spans at 10 Hz give 3+4+3, never 3+3+3.
    assert sample_bounds([1 / 3] * 3, 10) == [(0, 3), (3, 7), (7, 10)]
    assert declared_seconds(None, Fraction(1, 1000), {"DURATION": "00:01:02.5"}) == 62.5
    assert declared_seconds(48, Fraction(1, 24), {}) == 2.0
    assert not truncated(2.0, 2.0 - 1 / 24, 48)  # the last frame's own duration
    assert truncated(2.0, 1.4, 34) and not truncated(None, 1.4, 34)
    rx = sequence_pattern("out/f_%04d.png")
    assert rx is not None and rx.match("f_0007.png") and not rx.match("f_7.png")
    assert sequence_pattern("a/*.png").match("x1.png")  # type: ignore[union-attr]
    assert sequence_pattern("clip.mp4") is None
    assert sequence_name("f_%04d.png", 7) == "f_0007.png"
    arr = np.array([[[-0.3, 0.5, 1.2]]], np.float32)
    assert to_uint8(arr).tolist() == [[[0, 128, 255]]]


def test_random_access_is_frame_exact_in_any_order(tmp_path: Path) -> None:
    clip = make_clip(tmp_path / "c.mp4", frames=40, gop=8)
    r = AVReader(clip, cache_frames=2)
    assert r.length == 40 and r.fps == pytest.approx(24.0) and r.size == (96, 64)
    assert r.keyframes == [0, 8, 16, 24, 32]
    order = list(range(40)) * 2
    random.Random(1).shuffle(order)
    assert [read_index(r.array(i)) for i in order] == order
    # Sequential reads continue the decoder: 40 frames, 40 decodes.
    s = AVReader(clip)
    assert [read_index(s.array(i)) for i in range(40)] == list(range(40))
    assert s.decoded == 40
    # A jump forward within the GOP decodes forward; past a keyframe it seeks there.
    s.close()
    s.array(1)
    before = s.decoded
    s.array(30)
    assert s.decoded - before == 30 - 24 + 1


def vfr_clip(path: Path, stamps: list[int]) -> Path:
    """Frames shown at irregular times (1/1000 s units): a variable-frame-rate file."""
    with av.open(str(path), mode="w") as out:
        v = out.add_stream("libx264", rate=1000)  # codec clock in ms; frames where stamped
        v.width, v.height, v.pix_fmt = 96, 64, "yuv420p"
        v.options = {"crf": "12", "g": "5", "bf": "2"}
        for i, t in enumerate(stamps):
            f = av.VideoFrame.from_ndarray(frame_pixels(i), format="rgb24")
            f.pts, f.time_base = t, Fraction(1, 1000)
            for p in v.encode(f):
                out.mux(p)
        for p in v.encode():
            out.mux(p)
    return path


def test_variable_frame_rate_maps_frame_i_to_the_ith_shown_frame(tmp_path: Path) -> None:
    stamps = [0, 33, 50, 150, 160, 400, 433, 466, 800, 810, 900, 1000]
    clip = vfr_clip(tmp_path / "vfr.mp4", stamps)
    r = AVReader(clip)
    assert r.length == len(stamps)
    spans = [(b - a) for a, b in zip(r.pts, r.pts[1:], strict=False)]
    assert len(set(spans)) > 2  # really irregular
    assert r.fps == pytest.approx((len(stamps) - 1) / 1.0, rel=0.02)
    order = list(range(len(stamps)))
    random.Random(2).shuffle(order)
    assert [read_index(r.array(i)) for i in order] == order


def test_scaled_reads_and_damaged_files(tmp_path: Path) -> None:
    clip = make_clip(tmp_path / "c.mp4", frames=12)
    r = AVReader(clip)
    small = r.array(5, (48, 32))
    assert small.shape == (32, 48, 3) and read_index(small) == 5
    data = clip.read_bytes()
    (tmp_path / "cut.mp4").write_bytes(data[: len(data) // 2])
    with pytest.raises(MediaError, match="cannot be decoded"):
        AVReader(tmp_path / "cut.mp4")


def test_audio_track_decodes_spans_and_silence_to_exact_lengths(tmp_path: Path) -> None:
    clip = make_clip(tmp_path / "a.mp4", frames=24, audio=True)  # 1 s of tone
    ref = tone(1.0)
    track = AudioTrack((AudioSpan(str(clip), 0.25, 0.5), AudioSpan(None, 0.0, 0.1)), 48000, 2)
    pcm = decode_audio(track)
    assert pcm.shape == (2, round(0.6 * 48000))
    assert np.abs(pcm[:, 24000:]).max() == 0  # the silence span
    # The file span is the tone from 0.25 s: compare away from AAC's edges.
    seg = pcm[:, 2000:20000]
    want = ref[:, 12000 + 2000 : 12000 + 20000]
    assert np.corrcoef(seg[0], want[0])[0, 1] > 0.99
    assert np.corrcoef(seg[1], want[1])[0, 1] > 0.99
    # Resampled to mono 16 kHz: still exactly duration × rate.
    mono = decode_audio(track, 16000, 1)
    assert mono.shape == (1, round(0.6 * 16000))
    # A span past the file's end is padded, never short.
    long = decode_audio(AudioTrack.from_file(str(clip), 1.5))
    assert long.shape[1] == 72000 and audio_samples(clip) >= 48000


def test_writers_stream_and_keep_frames_exact(tmp_path: Path) -> None:
    track = AudioTrack.silence(0.5)
    out = tmp_path / "w.mp4"
    w = ContainerWriter(out, (95, 63), 24.0, quality=10, audio=track)
    assert w.size == (94, 62)  # 4:2:0 wants even sides
    for i in range(12):
        w.write(frame_pixels(i, 95, 63).astype(np.float32) / 255)
    w.close()
    assert decoded_indices(out) == list(range(12))
    assert abs(audio_samples(out) - 24000) <= 1024


def test_prefetch_keeps_order_bounds_lookahead_and_surfaces_errors() -> None:
    seen: list[int] = []

    def read(i: int) -> int:
        seen.append(i)
        if i == 6:
            raise KeyError("frame 6 failed")
        return i * 10

    got = []
    with pytest.raises(KeyError, match="frame 6"):
        for v in prefetch(read, 10, depth=2):
            got.append(v)
    assert got == [0, 10, 20, 30, 40, 50] and max(seen) == 6  # stopped at the failure
    gen = prefetch(lambda i: i, 1000, depth=2)
    assert next(gen) == 0
    gen.close()  # the worker stops instead of reading the other 999


def test_frame_store_spills_to_disk_round_trips_and_cleans_up(tmp_path: Path) -> None:
    import gc

    from fathom.engine.media.framestore import FrameStore

    store = FrameStore(6, 4, 3, folder=tmp_path)
    rng = np.random.default_rng(0)
    frames = [rng.integers(0, 256, (4, 6, 3), dtype=np.uint8) for _ in range(5)]
    for f in frames:
        store.append(f)
    store.append(np.full((4, 6, 3), 0.5, np.float32))  # floats are rounded to 8 bits
    assert store.path.stat().st_size == 6 * 4 * 6 * 3  # on disk as they came
    video = store.video(12.0)
    assert len(video) == 6 and video.size == (6, 4)
    assert all(np.array_equal(store.array(i), frames[i]) for i in range(5))
    assert np.all(store.array(5) == 128)
    assert np.allclose(video.frame(2).data, frames[2] / 255.0)
    with pytest.raises(ValueError):
        store.append(np.zeros((5, 6, 3), np.uint8))
    path = store.path
    del store, video
    gc.collect()
    assert not path.exists()
