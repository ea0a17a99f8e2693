"""video.depth computes each frame once per run: several consumers of one depth output (a
save, a colourised save and a parallax) read the frames the first one made back from the
run's DepthStore instead of restarting the stream, and get the same numbers."""

from __future__ import annotations

import gc
import os
from typing import Any

import numpy as np
import pytest
from video_depth_models import build_depth_anything, disc_clip

import fathom.nodes.video_depth as vd
from fathom.engine.executor import Executor
from fathom.engine.registry import Registry
from fathom.engine.types import Image, Video

REG = Registry()
REG.load_builtin()
EX = Executor(REG)
CLIP = Video.from_frames([Image(f) for f in disc_clip(7, size=48, step=2.0)], 12.0)


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> str:
    return str(build_depth_anything(tmp_path_factory.mktemp("da"), 84, 84))


class _Counting:
    """A stepper that counts the model's per-frame work it is asked for."""

    def __init__(self, inner: vd.Stepper, calls: list[int]) -> None:
        self.inner, self.calls = inner, calls

    def step(self, pixel_values: Any) -> Any:
        self.calls.append(1)
        return self.inner.step(pixel_values)

    def reset(self, index: int = 0) -> None:
        self.inner.reset(index)


@pytest.mark.parametrize("temporal", ["off", "reuse"])
def test_two_consumers_of_one_depth_output_run_the_model_once_per_frame(
    model: str, temporal: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[int] = []
    inner = vd.TEMPORAL_MODES[temporal]
    monkeypatch.setitem(vd.TEMPORAL_MODES, temporal, lambda n, s: _Counting(inner(n, s), calls))
    params = {"model": model, "temporal": temporal, "keyframe_interval": 3}
    depth = EX.call("video.depth", {"video": CLIP}, params)["depth"]
    n = len(CLIP)
    first = [depth.frame(i).data.copy() for i in range(n)]
    assert len(calls) == n
    second = [depth.frame(i).data for i in range(n)]  # a second consumer, from frame 0 again
    backwards = [depth.frame(i).data for i in reversed(range(n))]
    assert len(calls) == n  # no frame computed twice
    for a, b, c in zip(first, second, backwards[::-1], strict=True):
        np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(a, c)
    # A fresh run read out of order gives the same frames, and stores its catch-up frames.
    calls.clear()
    again = EX.call("video.depth", {"video": CLIP}, params)["depth"]
    np.testing.assert_array_equal(again.frame(5).data, first[5])
    for i in range(n):
        np.testing.assert_array_equal(again.frame(i).data, first[i])
    assert len(calls) == n  # catch-up frames (3, 4 before 5) were kept, not redone


def test_the_store_spills_exact_frames_to_a_file_removed_with_it() -> None:
    store = vd.DepthStore()
    rng = np.random.default_rng(0)
    frames = {i: rng.random((5, 7), dtype=np.float32) * 10 for i in (3, 0, 1)}
    for i, f in frames.items():
        store.put(i, f)
    assert 2 not in store and all(i in store for i in frames)
    for i, f in frames.items():
        np.testing.assert_array_equal(store.get(i), f)
    path = store._file.name
    assert os.path.getsize(path) == 3 * 5 * 7 * 4
    del store
    gc.collect()
    assert not os.path.exists(path)


def test_past_its_disk_budget_the_store_keeps_no_more_frames(
    model: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A long clip does not fill the disk: frames past the budget are not kept, and a second
    reader computes those again (the same numbers) instead."""
    store = vd.DepthStore(budget=2 * 5 * 7 * 4)
    for i in range(4):
        store.put(i, np.full((5, 7), float(i), np.float32))
    assert [i in store for i in range(4)] == [True, True, False, False]
    assert os.path.getsize(store._file.name) == 2 * 5 * 7 * 4

    calls: list[int] = []
    inner = vd.TEMPORAL_MODES["reuse"]
    monkeypatch.setitem(vd.TEMPORAL_MODES, "reuse", lambda n, s: _Counting(inner(n, s), calls))
    w, h = CLIP.size
    monkeypatch.setenv("FATHOM_DEPTH_STORE_MB", str(3 * w * h * 4 / 2**20))  # three frames
    params = {"model": model, "temporal": "reuse", "keyframe_interval": 3}
    depth = EX.call("video.depth", {"video": CLIP}, params)["depth"]
    n = len(CLIP)
    first = [depth.frame(i).data.copy() for i in range(n)]
    second = [depth.frame(i).data for i in range(n)]
    assert n < len(calls) < 2 * n  # the first frames came back from the store, the rest again
    for a, b in zip(first, second, strict=True):
        np.testing.assert_array_equal(a, b)
