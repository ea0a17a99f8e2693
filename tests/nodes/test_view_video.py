"""Novel views, fusion, panoramas and video files, on scenes with known answers."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import trimesh

from fathom.engine.context import RunOptions
from fathom.engine.errors import NodeError
from fathom.engine.executor import Executor
from fathom.engine.geometry import analytic, projection, scene
from fathom.engine.imaging.ops import psnr
from fathom.engine.registry import Registry
from fathom.engine.types import (
    RGBD,
    Camera,
    CameraPath,
    Depth,
    Image,
    Mask,
    Mesh,
    PointCloud,
    Video,
)

REG = Registry()
REG.load_builtin()
EX = Executor(REG)


def call(
    type_id: str,
    inputs: dict,
    params: dict | None = None,
    out: Path | None = None,
    frames: tuple[int, int] | None = None,
):
    opts = RunOptions(
        device="cpu", output_dir=out or Path("."), base_dir=out or Path("."), frames=frames
    )
    return EX.call(type_id, inputs, params, opts)


def room(w: int = 64, h: int = 48, pose: np.ndarray | None = None) -> RGBD:
    """A sphere in front of a wall, coloured by surface so views can be compared."""
    c = Camera.from_fov(w, h, 60.0, pose)
    depth, which = analytic.composite(
        analytic.sphere_depth(c, np.array([0, 0, 3.0]), 0.8),
        analytic.plane_depth(c, np.array([0, 0, 1.0]), 5.0),
    )
    img = np.where(which[..., None] == 0, [0.9, 0.2, 0.1], [0.2, 0.5, 0.9]).astype(np.float32)
    return RGBD(Image(img), Depth(depth.astype(np.float32), "metric"), c)


def test_camera_paths_from_a_start_camera() -> None:
    start = Camera.from_fov(32, 24, 50)
    for kind, check in [
        ("orbit", lambda p: np.linalg.norm(p[:3, 3] - [0, 0, 3]) == pytest.approx(2.0)),
        ("circle", lambda p: np.linalg.norm(p[:3, 3]) == pytest.approx(2.0)),
    ]:
        path = call(
            "view.camera_path",
            {"camera": start},
            {"kind": kind, "frames": 6, "radius": 2.0, "target_z": 3.0},
        )["path"]
        assert len(path) == 6 and all(check(c.pose) for c in path.cameras), kind
        assert all((c.width, c.height, c.fx) == (32, 24, start.fx) for c in path.cameras)
    dolly = call(
        "view.camera_path", {"camera": start}, {"kind": "dolly", "frames": 3, "distance": 1.0}
    )["path"]
    assert np.allclose(dolly.cameras[-1].pose[:3, 3], [0, 0, 1])
    pan = call(
        "view.camera_path", {"camera": start}, {"kind": "pan", "frames": 3, "distance": 1.0}
    )["path"]
    assert np.allclose(pan.cameras[-1].pose[:3, 3], [1, 0, 0])
    assert np.allclose(pan.cameras[-1].pose[:3, 2], [0, 0, 1])  # still looking forward
    with pytest.raises(NodeError) as err:
        call("view.camera_path", {}, {"kind": "walk", "waypoints": "1,2"})
    assert err.value.port == "waypoints"


def test_render_rgbd_from_its_own_camera_and_a_moved_one() -> None:
    rgbd = room()
    out = call(
        "view.render", {"rgbd": rgbd, "camera": CameraPath([rgbd.camera])}, {"backend": "torch"}
    )
    covered = out["mask"].data < 0.5
    assert covered.mean() > 0.9
    assert psnr(out["image"].data, rgbd.image.data, covered) > 60
    assert np.allclose(out["depth"].data[covered], rgbd.depth.data[covered], atol=1e-4)
    pose = np.eye(4)
    pose[0, 3] = 0.5
    moved = Camera(
        *(getattr(rgbd.camera, k) for k in ("fx", "fy", "cx", "cy", "width", "height")), pose
    )
    out2 = call(
        "view.render",
        {"rgbd": rgbd, "camera": CameraPath([rgbd.camera, moved], 12)},
        {"backend": "torch"},
    )
    assert len(out2["video"]) == 2 and out2["video"].fps == 12
    holes = out2["mask_video"].frame(1).data[..., 0]
    assert holes.mean() > out["mask"].data.mean() + 0.02  # disocclusions appear when moving
    assert holes[:, -4:].all()  # the right edge was never seen


def test_render_needs_exactly_one_scene_and_a_non_empty_one() -> None:
    rgbd = room()
    path = CameraPath([rgbd.camera])
    with pytest.raises(NodeError, match="exactly one"):
        call("view.render", {"camera": path})
    with pytest.raises(NodeError, match="empty"):
        call("view.render", {"camera": path, "points": PointCloud(np.zeros((0, 3)))})
    pc = call("rgbd.to_pointcloud", {"rgbd": rgbd})["points"]
    out = call("view.render", {"camera": path, "points": pc}, {"backend": "torch"})
    assert (out["mask"].data < 0.5).mean() > 0.95


def test_fill_holes_fills_only_the_mask() -> None:
    img = np.full((16, 16, 3), 0.5, np.float32)
    img[:, :8] = 0.2
    mask = np.zeros((16, 16), np.float32)
    mask[6:10, 6:10] = 1
    holey = img.copy()
    holey[6:10, 6:10] = 0
    out = call("view.fill_holes", {"image": Image(holey), "mask": Mask(mask)})["image"].data
    assert np.array_equal(out[mask == 0], holey[mask == 0])
    assert out[6:10, 6:10].min() >= 0.19 and out[6:10, 6:10].max() <= 0.51
    with pytest.raises(NodeError, match="pair"):
        call("view.fill_holes", {"image": Image(holey)})


def test_more_fused_views_fill_more_of_a_target_view_at_flat_scene_size() -> None:
    eyes = [np.array([x, 0.0, 0.0]) for x in (-0.6, 0.6, 0.0, -0.3, 0.3)]
    views = [room(pose=projection.look_at(e, np.array([0, 0, 3.0]))) for e in eyes]
    target = Camera.from_fov(
        64, 48, 60.0, projection.look_at(np.array([0.0, -0.4, -0.3]), np.array([0, 0, 3.0]))
    )
    holes, faces = [], []
    for n in (1, 2, 5):
        fused = call("view.fuse", {"views": views[:n]}, {"method": "tsdf", "voxel": 0.05})
        out = call(
            "view.render",
            {"mesh": fused["mesh"], "camera": CameraPath([target])},
            {"backend": "torch"},
        )
        holes.append(float(out["mask"].data.mean()))
        faces.append(len(fused["mesh"].mesh.faces))
    assert holes[0] > holes[1] > holes[2] - 1e-9
    assert holes[0] - holes[2] > 0.01
    assert faces[2] < 2.0 * faces[1]  # 2.5× the views, far less than 2.5× the geometry
    pts = call("view.fuse", {"views": views[:2]}, {"method": "points", "voxel": 0.05})
    assert len(pts["points"]) < sum(v.depth.data.size for v in views[:2])
    with pytest.raises(NodeError, match="no camera"):
        call("view.fuse", {"views": [RGBD(views[0].image, views[0].depth, None)]})


def test_panorama_sphere_views_cube_map_and_errors() -> None:
    h, w = 32, 64
    img = np.random.default_rng(0).random((h, w, 3)).astype(np.float32)
    dist = np.full((h, w), 2.0, np.float32)
    out = call(
        "view.panorama360",
        {"image": Image(img), "depth": Depth(dist, "metric")},
        {
            "step": 1,
            "frames": 4,
            "width": 32,
            "height": 24,
            "cube_size": 16,
            "mode": "turn",
            "backend": "torch",
            "color": "vertex",
        },
    )
    v = np.asarray(out["mesh"].mesh.vertices)
    assert np.allclose(np.linalg.norm(v, axis=1), 2.0, atol=1e-5)
    assert out["cube"].data.shape == (32, 48, 3)
    assert len(out["video"]) == 4 and out["video"].frame(3).data.shape == (24, 32, 3)
    # From the centre of a constant-distance panorama nothing is hidden.
    assert out["mask_video"].frame(0).data.mean() < 0.02
    # The front cube face looks along +z: its centre shows the panorama's centre pixel.
    sc = scene.scene_from_mesh(out["mesh"])
    front = scene.render_torch(sc, Camera.from_fov(9, 9, 90.0))
    # The centre ray hits the middle of the grid cell's b–c diagonal (top-right/bottom-left).
    centre = (img[15, 32] + img[16, 31]) / 2
    assert np.allclose(front.image[4, 4], centre, atol=0.03)
    with pytest.raises(NodeError) as err:
        call(
            "view.panorama360",
            {"image": Image(img[:, :40]), "depth": Depth(dist[:, :40], "metric")},
        )
    assert err.value.port == "image"
    with pytest.raises(NodeError) as err:
        call("view.panorama360", {"image": Image(img), "depth": Depth(dist[:16], "metric")})
    assert err.value.port == "depth"


def frames_video(n: int = 10, w: int = 32, h: int = 24) -> Video:
    imgs = [Image(np.full((h, w, 3), i / n, np.float32)) for i in range(n)]
    return Video.from_frames(imgs, 10.0)


def test_video_save_load_round_trip_with_frame_range(tmp_path: Path) -> None:
    vid = frames_video()
    path = call("video.save", {"video": vid}, {"path": "clip.mp4", "quality": 10}, tmp_path)["path"]
    back = call("video.load", {}, {"path": path}, tmp_path)
    assert back["frames"] == 10 and back["fps"] == pytest.approx(10.0)
    v = back["video"]
    assert v.size == (32, 24)
    levels = [float(v.frame(i).data.mean()) for i in range(10)]
    assert np.allclose(levels, [i / 10 for i in range(10)], atol=0.02)
    # Random access after sequential reads seeks correctly.
    assert float(v.frame(2).data.mean()) == pytest.approx(0.2, abs=0.02)
    assert call("video.frame", {"video": v}, {"index": -1})["image"].data.mean() == pytest.approx(
        0.9, abs=0.02
    )
    call("video.save", {"video": vid}, {"path": "part.mp4"}, tmp_path, frames=(3, 5))
    part = call("video.load", {}, {"path": "part.mp4"}, tmp_path)
    assert part["frames"] == 3
    assert part["video"].frame(0).data.mean() == pytest.approx(0.3, abs=0.02)
    with pytest.raises(NodeError) as err:
        call("video.save", {"video": vid}, {"path": "x.mp4"}, tmp_path, frames=(20, 30))
    assert err.value.port == "video"
    assert not list(tmp_path.glob(".*tmp*"))


def test_corrupt_video_fails_with_a_clear_message(tmp_path: Path) -> None:
    (tmp_path / "bad.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42 not a real file")
    with pytest.raises(NodeError) as err:
        call("video.load", {}, {"path": "bad.mp4"}, tmp_path)
    assert err.value.port == "path" and "cannot be decoded" in str(err.value)


def test_mesh_render_matches_the_sphere_silhouette() -> None:
    m = trimesh.creation.icosphere(subdivisions=5)
    m.apply_translation([0, 0, 4.0])
    cam = Camera.from_fov(64, 64, 40.0)
    out = call("view.render", {"mesh": Mesh(m), "camera": CameraPath([cam])}, {"backend": "torch"})
    truth = np.isfinite(analytic.sphere_depth(cam, np.array([0, 0, 4.0]), 1.0))
    got = out["mask"].data < 0.5
    assert (got != truth).mean() < 0.02
