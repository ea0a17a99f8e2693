"""The pure rules behind video editing: frame ranges, retime maps, blends, wipes, keyframes."""

from __future__ import annotations

import numpy as np
import pytest

from fathom.engine.media import videoops as vo


def test_trim_range_frames_and_seconds() -> None:
    assert vo.trim_range(48, 24, 5, 17, "frames") == (5, 17)
    assert vo.trim_range(48, 24, 5, None, "frames") == (5, 48)
    assert vo.trim_range(48, 24, 40, 99, "frames") == (40, 48)  # clamped to the clip
    # 0.5 s .. 1.0 s at 24 fps: frames starting inside [0.5, 1.0) are 12..23
    assert vo.trim_range(48, 24, 0.5, 1.0, "seconds") == (12, 24)
    # a time between frame starts picks the next frame that starts after it
    assert vo.trim_range(48, 24, 0.51, None, "seconds") == (13, 48)
    # float noise: 0.1 s at 30 fps is frame 3 exactly, not 4
    assert vo.trim_range(60, 30, 0.1, 0.2, "seconds") == (3, 6)
    with pytest.raises(ValueError, match="whole frame"):
        vo.trim_range(48, 24, 1.5, None, "frames")


def test_speed_index_maps_drop_and_duplicate() -> None:
    assert vo.speed_length(10, 2.0) == 5
    assert [vo.speed_index(j, 2.0, 10) for j in range(5)] == [0, 2, 4, 6, 8]
    assert vo.speed_length(10, 0.5) == 20
    assert [vo.speed_index(j, 0.5, 10) for j in range(20)] == [i // 2 for i in range(20)]
    assert vo.speed_length(10, 3.0) == 4
    assert [vo.speed_index(j, 3.0, 10) for j in range(4)] == [0, 3, 6, 9]
    assert vo.speed_length(10, 1.5) == 7
    assert [vo.speed_index(j, 1.5, 10) for j in range(7)] == [0, 1, 3, 4, 6, 7, 9]


def test_speed_weights_average_when_faster_and_interpolate_when_slower() -> None:
    assert vo.speed_weights(1, 2.0, 10) == [(2, 0.5), (3, 0.5)]
    w = vo.speed_weights(0, 1.5, 10)  # covers frame 0 fully and half of frame 1
    assert [i for i, _ in w] == [0, 1] and np.allclose([x for _, x in w], [2 / 3, 1 / 3])
    assert vo.speed_weights(1, 0.5, 10) == [(0, 0.5), (1, 0.5)]
    assert vo.speed_weights(2, 0.5, 10) == [(1, 1.0)]
    assert vo.speed_weights(19, 0.5, 10) == [(9, 1.0)]  # no frame after the last
    for f in (0.3, 0.5, 1.0, 1.7, 2.0, 4.0):
        for j in range(vo.speed_length(10, f)):
            ws = vo.speed_weights(j, f, 10)
            assert abs(sum(x for _, x in ws) - 1) < 1e-9 and all(0 <= i < 10 for i, _ in ws)


def test_conform_keeps_duration_and_locate_finds_parts() -> None:
    assert vo.conform_length(24, 24, 12) == 12 and vo.conform_length(10, 10, 25) == 25
    assert [vo.conform_index(j, 24, 12, 24) for j in range(4)] == [0, 2, 4, 6]
    assert [vo.conform_index(j, 12, 24, 12) for j in range(4)] == [0, 0, 1, 1]
    offsets = [0, 5, 5, 12]
    assert vo.locate(offsets, 0) == (0, 0)
    assert vo.locate(offsets, 4) == (0, 4)
    assert vo.locate(offsets, 5) == (2, 0)  # part 1 is empty
    assert vo.locate(offsets, 13) == (3, 1)


def test_transitions_known_pixels() -> None:
    a = np.zeros((4, 8, 3), np.float32)
    b = np.ones((4, 8, 3), np.float32)
    assert vo.transition_progress(0, 3) == 0.25 and vo.transition_progress(2, 3) == 0.75
    assert np.allclose(vo.transition_frame(a, b, 0.25, "crossfade"), 0.25)
    left = vo.transition_frame(a, b, 0.5, "wipe", "left")
    assert np.all(left[:, 4:] == 1) and np.all(left[:, :4] == 0)  # b comes in from the right
    right = vo.transition_frame(a, b, 0.25, "wipe", "right")
    assert np.all(right[:, :2] == 1) and np.all(right[:, 2:] == 0)
    down = vo.transition_frame(a, b, 0.5, "wipe", "down")
    assert np.all(down[:2] == 1) and np.all(down[2:] == 0)
    red = (1.0, 0.0, 0.0)
    assert np.allclose(vo.transition_frame(a, b, 0.5, "dip", color=red), [1, 0, 0])
    quarter = vo.transition_frame(a, b, 0.25, "dip", color=red)
    assert np.allclose(quarter, [0.5, 0, 0])
    assert np.allclose(vo.transition_frame(a, b, 0.75, "dip", color=red), [1, 0.5, 0.5])


def test_keyframes_parse_and_interpolate() -> None:
    keys = vo.parse_keyframes("0:0.1,0.1; 48:0.6,0.6", 2)
    assert keys == [(0.0, (0.1, 0.1)), (48.0, (0.6, 0.6))]
    assert np.allclose(vo.interpolate(keys, 24), (0.35, 0.35))
    assert vo.interpolate(keys, -5) == (0.1, 0.1) and vo.interpolate(keys, 99) == (0.6, 0.6)
    assert vo.parse_keyframes("0.5", 1) == [(0.0, (0.5,))]  # a constant
    three = vo.parse_keyframes("10:1; 0:0; 20:0", 1)  # order does not matter
    assert vo.interpolate(three, 5) == (0.5,) and vo.interpolate(three, 15) == (0.5,)
    for bad, why in [
        ("0:1,2", "needs 1"),
        ("a:1", "not numbers"),
        ("", "no keyframes"),
        ("0:1; 0:2", "two keyframes"),
        ("0:1; 5", "FRAME:VALUES"),
    ]:
        with pytest.raises(ValueError, match=why):
            vo.parse_keyframes(bad, 1)


def test_composite_places_and_clips() -> None:
    base = np.zeros((6, 6, 3), np.float32)
    layer = np.ones((2, 3, 3), np.float32)
    out = vo.composite(base, layer, np.full((2, 3, 1), 0.5, np.float32), 4, -1)
    assert np.allclose(out[0, 4:], 0.5) and out[1:].max() == 0 and out[:, :4].max() == 0
    assert vo.composite(base, layer, np.ones((2, 3, 1), np.float32), 9, 9).max() == 0
    padded = vo.pad_center(np.ones((2, 4, 3), np.float32), 4, 4, (1.0, 0, 0))
    assert np.allclose(padded[1:3], 1) and np.allclose(padded[0], [1, 0, 0])


def test_fade_and_text_rendering() -> None:
    assert [vo.fade_alpha(i, 2, 8, 2) for i in range(10)] == [
        0,
        0,
        1 / 3,
        2 / 3,
        1,
        1,
        2 / 3,
        1 / 3,
        0,
        0,
    ]
    cover = vo.render_text("Hi", 20)
    assert cover.dtype == np.float32 and cover.max() == 1.0 and cover.min() == 0.0
    assert vo.render_text("Hi", 20) is cover  # cached
    assert vo.render_text("Hi\nthere", 20).shape[0] > cover.shape[0] * 1.5
    assert vo.place(100, 50, 20, 10, 0.5, 0.5) == (40, 20)
    assert vo.place(100, 50, 20, 10, 0.5, 0.5, anchor="topleft") == (50, 25)
