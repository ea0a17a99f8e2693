"""RGBD → points → mesh on analytic scenes, mesh files, and bad geometric input."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import trimesh

from fathom.engine.context import RunOptions
from fathom.engine.errors import NodeError
from fathom.engine.executor import Executor
from fathom.engine.geometry import analytic, projection
from fathom.engine.registry import Registry
from fathom.engine.types import RGBD, Camera, Depth, Image, Mesh, PointCloud

REG = Registry()
REG.load_builtin()
EX = Executor(REG)


def call(type_id: str, inputs: dict, params: dict | None = None, out: Path | None = None):
    opts = RunOptions(device="cpu", output_dir=out or Path("."), base_dir=out or Path("."))
    return EX.call(type_id, inputs, params, opts)


def sphere_rgbd(w: int = 64, h: int = 48) -> tuple[RGBD, np.ndarray, float]:
    c = Camera.from_fov(w, h, 60.0)
    centre, r = np.array([0.1, 0.0, 3.0]), 1.0
    sphere = analytic.sphere_depth(c, centre, r)
    wall = analytic.plane_depth(c, np.array([0, 0, 1.0]), 6.0)
    depth, _ = analytic.composite(sphere, wall)
    img = np.random.default_rng(0).random((h, w, 3)).astype(np.float32)
    return RGBD(Image(img), Depth(depth.astype(np.float32), "metric"), c), centre, r


def test_pointcloud_points_lie_on_the_analytic_surfaces() -> None:
    rgbd, centre, r = sphere_rgbd()
    pc = call("rgbd.to_pointcloud", {"rgbd": rgbd})["points"]
    assert len(pc) == 64 * 48
    on_sphere = np.abs(np.linalg.norm(pc.points - centre, axis=1) - r) < 1e-4
    on_wall = np.abs(pc.points[:, 2] - 6.0) < 1e-4
    assert np.all(on_sphere | on_wall) and on_sphere.sum() > 100
    assert np.allclose(pc.colors, rgbd.image.data.reshape(-1, 3))


def test_mesh_vertices_are_on_the_surface_and_no_triangle_joins_sphere_and_wall() -> None:
    rgbd, centre, r = sphere_rgbd()
    m = call("rgbd.to_mesh", {"rgbd": rgbd}, {"cut": 0.05})["mesh"].mesh
    v = np.asarray(m.vertices)
    d_sphere = np.abs(np.linalg.norm(v - centre, axis=1) - r)
    d_wall = np.abs(v[:, 2] - 6.0)
    assert np.minimum(d_sphere, d_wall).max() < 1e-4
    on_sphere = d_sphere < 1e-4
    per_face = on_sphere[np.asarray(m.faces)]
    assert np.all(per_face.all(1) | (~per_face).all(1))  # no rubber sheet
    # Vertex colours are the image's pixels.
    assert np.asarray(m.visual.vertex_colors).shape == (len(v), 4)


def test_texture_mode_makes_a_uv_textured_mesh_that_saves_as_glb(tmp_path: Path) -> None:
    rgbd, _, _ = sphere_rgbd()
    m = call("rgbd.to_mesh", {"rgbd": rgbd}, {"color": "texture"})["mesh"]
    assert m.mesh.visual.kind == "texture" and m.mesh.visual.uv.shape[1] == 2
    path = call("mesh.save", {"mesh": m}, {"path": "scene.glb"}, tmp_path)["path"]
    back = call("mesh.load", {}, {"path": path}, tmp_path)["mesh"].mesh
    assert len(back.faces) == len(m.mesh.faces)
    assert np.allclose(np.sort(back.vertices, 0), np.sort(m.mesh.vertices, 0), atol=1e-5)


@pytest.mark.parametrize("suffix", [".glb", ".ply", ".obj"])
def test_mesh_save_load_round_trip(tmp_path: Path, suffix: str) -> None:
    box = trimesh.creation.box(extents=(1, 2, 3))
    box.visual.vertex_colors = np.tile([10, 200, 30, 255], (len(box.vertices), 1))
    call("mesh.save", {"mesh": Mesh(box)}, {"path": f"box{suffix}"}, tmp_path)
    back = call("mesh.load", {}, {"path": f"box{suffix}"}, tmp_path)["mesh"].mesh
    assert back.volume == pytest.approx(6.0, rel=1e-5)
    assert not list(tmp_path.glob(".*tmp*"))  # atomic: no temp files left


def test_invalid_depth_is_masked_never_a_crash() -> None:
    rgbd, _, _ = sphere_rgbd(16, 12)
    d = rgbd.depth.data.copy()
    d[0, :4] = [np.nan, np.inf, 0.0, -2.0]
    bad = RGBD(rgbd.image, Depth(d, "metric"), rgbd.camera)
    pc = call("rgbd.to_pointcloud", {"rgbd": bad})["points"]
    assert len(pc) == 16 * 12 - 4 and np.isfinite(pc.points).all()
    m = call("rgbd.to_mesh", {"rgbd": bad})["mesh"].mesh
    assert np.isfinite(m.vertices).all() and len(m.vertices) <= 16 * 12 - 4


def test_bad_geometric_inputs_name_the_node_and_port(tmp_path: Path) -> None:
    c = Camera.from_fov(8, 8, 60)
    with pytest.raises(NodeError) as err:
        call("rgbd.make", {"image": Image(np.zeros((8, 8, 3))), "depth": Depth(np.ones((4, 4)))})
    assert err.value.port == "depth" and "resize" in str(err.value)
    # Different sizes can't even make an RGBD value.
    with pytest.raises(ValueError, match="resize"):
        RGBD(Image(np.zeros((8, 8, 3))), Depth(np.ones((4, 4))), c)
    empty = RGBD(Image(np.zeros((8, 8, 3))), Depth(np.full((8, 8), np.nan), "metric"), c)
    with pytest.raises(NodeError, match="no valid sample"):
        call("rgbd.to_mesh", {"rgbd": empty})
    rel = RGBD(Image(np.zeros((8, 8, 3))), Depth(np.ones((8, 8)), "relative"), c)
    with pytest.raises(NodeError, match="depth.to_metric"):
        call("rgbd.to_pointcloud", {"rgbd": rel})
    with pytest.raises(NodeError) as err:
        call("mesh.reconstruct", {"points": PointCloud(np.zeros((0, 3)))})
    assert err.value.port == "points"
    broken = tmp_path / "broken.ply"
    broken.write_bytes(b"ply\nformat ascii 1.0\nelement vertex 3\nproperty float x\nend_header\n1")
    with pytest.raises(NodeError) as err:
        call("mesh.load", {}, {"path": str(broken)}, tmp_path)
    assert err.value.node == "node" and err.value.port == "path"


def test_poisson_and_ball_pivoting_recover_a_sphere() -> None:
    pts = trimesh.creation.icosphere(subdivisions=4).vertices * 0.5
    pc = PointCloud(pts, np.full((len(pts), 3), 0.5))
    for method in ("poisson", "ball_pivoting"):
        m = call(
            "mesh.reconstruct",
            {"points": pc},
            {"method": method, "depth": 6, "trim": 0.0, "orient": "tangent_plane"},
        )
        v = np.asarray(m["mesh"].mesh.vertices)
        assert len(m["mesh"].mesh.faces) > 100
        assert np.abs(np.linalg.norm(v, axis=1) - 0.5).mean() < 0.02, method


def test_simplify_reaches_the_face_budget_and_keeps_the_shape() -> None:
    sphere = trimesh.creation.icosphere(subdivisions=4)
    out = call("mesh.simplify", {"mesh": Mesh(sphere)}, {"target_faces": 500})["mesh"].mesh
    assert len(out.faces) <= 500
    assert np.abs(np.linalg.norm(out.vertices, axis=1) - 1).max() < 0.05


def test_pointcloud_save_load_round_trip(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    pc = PointCloud(rng.random((50, 3)), rng.random((50, 3)))
    call("pointcloud.save", {"points": pc}, {"path": "p.ply"}, tmp_path)
    back = call("pointcloud.load", {}, {"path": "p.ply"}, tmp_path)["points"]
    assert np.allclose(back.points, pc.points, atol=1e-6)
    assert np.allclose(back.colors, pc.colors, atol=1 / 255)


def test_camera_create_looks_at_its_target() -> None:
    cam = call(
        "camera.create", {}, {"width": 32, "height": 16, "fov": 90, "z": -1.0, "target_z": 1.0}
    )["camera"]
    assert np.allclose(cam.pose[:3, 3], [0, 0, -1]) and np.allclose(cam.pose[:3, 2], [0, 0, 1])
    assert cam.fy == pytest.approx(8.0)
    uv, _ = projection.project(np.array([[0, 0, 1.0]]), cam.fx, cam.fy, cam.cx, cam.cy, cam.pose)
    assert np.allclose(uv, [[16, 8]])
