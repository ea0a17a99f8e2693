"""video.depth's spill file under the output cache: its bytes count against the cache's disk
budget as readers fill it, and it is deleted once the cached depth video is evicted."""

from __future__ import annotations

import os

import pytest
from video_depth_models import build_depth_anything, disc_clip

from fathom.engine.cache import OutputCache, value_spills
from fathom.engine.executor import Executor
from fathom.engine.registry import Registry
from fathom.engine.types import Image, Video

REG = Registry()
REG.load_builtin()
EX = Executor(REG)
CLIP = Video.from_frames([Image(f) for f in disc_clip(5, size=48, step=2.0)], 12.0)


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> str:
    return str(build_depth_anything(tmp_path_factory.mktemp("da"), 84, 84))


def depth_run(model: str, threshold: float) -> Video:
    params = {"model": model, "temporal": "reuse", "threshold": threshold}
    video: Video = EX.call("video.depth", {"video": CLIP}, params)["depth"]
    return video


def test_a_cached_depth_video_counts_its_spill_file_and_takes_it_when_evicted(
    model: str,
) -> None:
    w, h = CLIP.size
    one_run = len(CLIP) * w * h * 4  # float32 depth per frame
    cache = OutputCache(max_disk_bytes=one_run * 3 // 2)
    first = depth_run(model, 0.01)
    cache.put("first", {"depth": first})
    assert cache.disk_nbytes == 0  # the store fills as a reader pulls frames
    for frame in first:  # a save node reads the clip
        assert frame.width == w
    (store,) = value_spills(first)  # found through the video's frame function
    path = store._file.name
    assert cache.disk_nbytes == os.path.getsize(path) == one_run
    del first, store, frame
    second = depth_run(model, 0.02)
    cache.put("second", {"depth": second})
    list(second)
    cache.trim()  # the end of the run
    assert "first" not in cache and not os.path.exists(path)
    assert cache.disk_nbytes == one_run
