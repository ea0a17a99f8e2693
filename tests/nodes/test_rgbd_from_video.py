"""A clip and its depth video become an RGBD of one frame (the newest by default, the live
frame in a live session) exactly as the still-image path makes it; bad input names the port."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from fathom.engine.context import RunOptions
from fathom.engine.errors import NodeError
from fathom.engine.registry import Registry
from fathom.engine.types import Camera, Depth, Image, Video


def clip(n: int = 3, w: int = 32, h: int = 24) -> tuple[Video, Video]:
    """n colour frames and n relative depth frames (0 near … 1 far), each frame distinct."""
    rng = np.random.default_rng(0)
    colour = [Image(rng.random((h, w, 3), dtype=np.float32)) for _ in range(n)]
    depth = [Image(rng.random((h, w, 1), dtype=np.float32)) for _ in range(n)]
    return Video.from_frames(colour, fps=10.0), Video.from_frames(depth, fps=10.0)


def from_video(registry: Registry, ctx_dir: Path, video: Video, depth: Video, **params) -> dict:
    cls = registry.get("rgbd.from_video")
    assert cls is not None
    defaults = {p.name: p.default for p in cls.params}
    from fathom.engine.context import NodeContext

    ctx = NodeContext("rgbd", RunOptions(output_dir=ctx_dir), None)
    return cls().run(ctx, video=video, depth=depth, **{**defaults, **params})


def test_the_newest_frame_lifts_as_make_rgbd_and_to_metric_lift_it(
    registry: Registry, tmp_path: Path
) -> None:
    video, depth = clip()
    got = from_video(registry, tmp_path, video, depth, near=0.5, far=6.0)["rgbd"]
    # The same frame through the still-image nodes: depth.to_metric, then rgbd.make.
    to_metric = registry.get("depth.to_metric")
    make = registry.get("rgbd.make")
    assert to_metric is not None and make is not None
    from fathom.engine.context import NodeContext

    ctx = NodeContext("x", RunOptions(output_dir=tmp_path), None)
    rel = Depth(depth.frame(2).data[:, :, 0], kind="relative")
    metric = to_metric().run(ctx, depth=rel, near=0.5, far=6.0, mapping="inverse")["depth"]
    want = make().run(ctx, image=video.frame(2), depth=metric, fov=60.0)["rgbd"]
    assert np.array_equal(got.image.data, want.image.data)
    assert np.array_equal(got.depth.data, want.depth.data) and got.depth.kind == "metric"
    assert np.allclose(got.camera.K, want.camera.K)
    first = from_video(registry, tmp_path, video, depth, index=0)["rgbd"]
    assert np.array_equal(first.image.data, video.frame(0).data)


def test_metric_depth_is_kept_and_zero_means_no_depth(registry: Registry, tmp_path: Path) -> None:
    video, _ = clip(1)
    metres = np.full((24, 32, 1), 2.5, np.float32)
    metres[0, 0] = 0.0
    depth = Video.from_frames([Image(metres)], fps=10.0)
    cam = Camera.from_fov(32, 24, 45.0)
    got = from_video(registry, tmp_path, video, depth, depth_kind="metric", camera=cam)["rgbd"]
    assert got.depth.data[5, 5] == 2.5 and not got.depth.valid()[0, 0]
    assert got.camera is cam


def test_bad_input_names_the_port(registry: Registry, tmp_path: Path) -> None:
    video, _ = clip(2)
    small = Video.from_frames([Image(np.zeros((12, 16, 1), np.float32))] * 2, fps=10.0)
    with pytest.raises(NodeError) as info:
        from_video(registry, tmp_path, video, small)
    assert info.value.port == "depth" and "16×12" in str(info.value)
    with pytest.raises(NodeError) as info:
        from_video(registry, tmp_path, video, clip(2)[1], index=5)
    assert info.value.port == "index" and "0..1" in str(info.value)
