"""Relative depth runs from 0 (the nearest point) to 1: its 0 is depth, not a hole. Metric
depth's 0 stays "no return". Colouring, smoothing, hole filling and the readout agree."""

from __future__ import annotations

import numpy as np

from fathom.engine.imaging import depthmath
from fathom.engine.types import Depth


def _ramp() -> np.ndarray:
    return np.tile(np.linspace(0.0, 1.0, 16, dtype=np.float32), (8, 1))


def test_the_nearest_relative_sample_is_valid_and_metric_zero_is_not() -> None:
    d = _ramp()
    assert depthmath.valid_mask(d, relative=True).all()
    assert not depthmath.valid_mask(d)[:, 0].any()
    assert Depth(d, "relative").valid().all()
    assert not Depth(d, "metric").valid()[:, 0].any()
    assert not depthmath.valid_mask(np.float32(-0.1), relative=True)


def test_colour_smoothing_and_filling_keep_relative_zero() -> None:
    d = _ramp()
    rgb = depthmath.colorize(d, "turbo", 0.0, 100.0, relative=True)
    # The nearest column gets the near end of the map (red in turbo), not hole black.
    assert rgb[:, 0, 0].min() > 0.3 and rgb[:, 0].sum(axis=1).min() > 0.3
    assert np.allclose(depthmath.colorize(d, "turbo", 0.0, 100.0)[:, 0], 0.0)  # metric: hole
    smoothed = depthmath.smooth(d, "bilateral", 2, 0.1, relative=True)
    assert np.isfinite(smoothed).all()
    holes = d.copy()
    holes[3, 5] = np.nan
    filled = depthmath.push_pull_fill(holes, relative=True)
    assert np.isfinite(filled).all()
    assert np.array_equal(filled[:, 0], d[:, 0])  # the zeros were kept, not filled


def test_a_relative_png16_keeps_its_nearest_point_and_colour_ranges_skip_holes() -> None:
    from fathom.engine.imaging.codecs import depth_to_png16

    d = _ramp()
    d[0, 3] = np.nan
    out = depth_to_png16(d, 1000.0, relative=True)
    assert out[1, 0] == 1 and out[0, 3] == 0  # nearest: depth (not 0, "no depth"); NaN: hole
    assert depth_to_png16(d, 1000.0)[1, 0] == 0  # metric 0 stays "no depth"
    # A negative (invalid) sample does not stretch the colour range of the valid ones.
    holes = d.copy()
    holes[0, 5] = -50.0
    a = depthmath.colorize(holes, "turbo", 0.0, 100.0, relative=True)
    b = depthmath.colorize(np.where(holes < 0, np.nan, holes), "turbo", 0.0, 100.0, relative=True)
    assert np.array_equal(a, b) and not a[0, 5].any()
