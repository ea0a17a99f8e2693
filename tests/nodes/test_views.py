"""View-set nodes (views.make, views.pick, views.sheet) and mesh.from_views run from the
registry: cameras on the ring, RGBD input, errors naming the port, and a textured mesh from
exact views of a sphere, also when the views carry no depth and it is estimated."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from object_models import build_tiny_depth
from view_scenes import chamfer, render_views, shape

from fathom.engine.context import CancelToken, NodeContext, RunOptions
from fathom.engine.errors import NodeError
from fathom.engine.executor import Executor
from fathom.engine.geometry import projection
from fathom.engine.graph import Graph
from fathom.engine.node import Node, Output
from fathom.engine.registry import Registry
from fathom.engine.types import RGBD, Depth, Image, Views

REG = Registry()
REG.load_builtin()
EX = Executor(REG)


def call(type_id: str, inputs: dict, params: dict | None = None) -> dict:
    return EX.call(type_id, inputs, params, RunOptions(device="cpu"))


@pytest.fixture(scope="module")
def sphere_views() -> Views:
    truth, colors = shape("sphere")
    return render_views(truth, colors, 96)


def test_make_from_images_cameras_and_depths_keeps_them_in_order(sphere_views: Views) -> None:
    v = sphere_views
    out = call("views.make", {"images": v.images, "cameras": v.cameras, "depths": v.depths})[
        "views"
    ]
    assert len(out) == 6 and out.images[2] is v.images[2] and out.cameras[5] is v.cameras[5]
    assert out.depths is not None and out.depths[1] is v.depths[1]  # type: ignore[index]


def test_make_without_cameras_places_the_views_on_a_ring(sphere_views: Views) -> None:
    imgs = sphere_views.images[:4]
    out = call("views.make", {"images": imgs}, {"elevations": "10", "distance": 3.0})["views"]
    for k, cam in enumerate(out.cameras):
        assert np.allclose(cam.pose, projection.orbit_pose(90.0 * k, 10.0, 3.0))
    with pytest.raises(NodeError, match="azimuths") as err:
        call("views.make", {"images": imgs}, {"azimuths": "0, 90"})
    assert "one angle per view" in str(err.value)


def test_make_from_rgbd_and_refuses_mismatched_counts(sphere_views: Views) -> None:
    v = sphere_views
    rgbd = [RGBD(v.images[i], v.depths[i], v.cameras[i]) for i in range(3)]  # type: ignore[index]
    out = call("views.make", {"rgbd": rgbd})["views"]
    assert len(out) == 3 and out.cameras[1] is v.cameras[1]
    with pytest.raises(NodeError, match="cameras"):
        call("views.make", {"images": v.images, "cameras": v.cameras[:2]})
    with pytest.raises(NodeError, match="no views"):
        call("views.make", {})


def test_pick_and_sheet(sphere_views: Views) -> None:
    v = sphere_views
    last = call("views.pick", {"views": v}, {"index": -1})
    assert last["image"] is v.images[5] and last["camera"] is v.cameras[5]
    assert last["depth"] is v.depths[5]  # type: ignore[index]
    with pytest.raises(NodeError, match="index"):
        call("views.pick", {"views": v}, {"index": 6})
    sheet = call("views.sheet", {"views": v}, {"columns": 2})["image"]
    assert sheet.data.shape == (3 * 96, 2 * 96, 3)
    assert np.array_equal(sheet.data, v.contact_sheet(2).data)


def test_from_views_node_makes_a_textured_mesh_within_one_percent(sphere_views: Views) -> None:
    out = call(
        "mesh.from_views",
        {"views": sphere_views},
        {"resolution": 48, "texture_size": 128, "faces": 3000},
    )
    m = out["mesh"].mesh
    assert m.visual.kind == "texture" and m.visual.material.baseColorTexture.size == (128, 128)
    truth, _ = shape("sphere")
    assert chamfer(m, truth) < 0.01 * 1.0  # the sphere is 1.0 across
    assert len(out["points"]) > 100


def test_from_views_node_names_the_port_for_bad_views(sphere_views: Views) -> None:
    blank = Image(np.zeros((16, 16, 3), np.float32))
    views = call("views.make", {"images": [blank, blank]})["views"]  # no depth to fuse
    with pytest.raises(NodeError, match="depth_model") as err:
        call("mesh.from_views", {"views": views}, {"depth_model": "/nonexistent/model"})
    assert "Fix:" in str(err.value)
    empty = Views(
        sphere_views.images[:1],
        sphere_views.cameras[:1],
        [Depth(np.full((96, 96), np.inf, np.float32), kind="metric")],
    )
    with pytest.raises(NodeError, match="port 'views'.*no view has a valid depth"):
        call("mesh.from_views", {"views": empty})


@pytest.fixture(scope="module")
def tiny_depth_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random-weight Depth Anything saved like a real checkpoint (safetensors + configs)."""
    return build_tiny_depth(tmp_path_factory.mktemp("depth_model"))


def test_views_without_depth_get_the_depth_estimate_node_s_depth_made_object_centred(
    sphere_views: Views, tiny_depth_model: Path
) -> None:
    from fathom.engine.geometry import from_views as fv
    from fathom.nodes.mesh_views import MeshFromViews

    # RGBA views: alpha marks the object, the depth model gives its relative depth.
    rgba = [
        Image(np.dstack([im.rgb(), np.isfinite(d.data)]))
        for im, d in zip(sphere_views.images, sphere_views.depths or [], strict=True)
    ]
    bare = Views(rgba[:2], sphere_views.cameras[:2])
    ctx = NodeContext("n", RunOptions(device="cpu"), None)
    got = MeshFromViews.with_metric_depth(ctx, bare, str(tiny_depth_model), 0.95)
    assert got.depths is not None
    for im, cam, d in zip(rgba[:2], bare.cameras, got.depths, strict=True):
        rel = call("depth.estimate", {"image": im}, {"model": str(tiny_depth_model)})["depth"]
        want = fv.object_depth(rel.data, cam, im.alpha() > 0.5)  # type: ignore[operator]
        assert d.kind == "metric"
        np.testing.assert_allclose(d.data, want.data, rtol=1e-4)
        fg = im.alpha() > 0.5  # type: ignore[operator]
        assert np.all(np.isinf(d.data[~fg])) and np.all(d.data[fg] >= 2.0 - 0.6)


class SphereViews(Node):
    """Test source: six exact views of the coloured sphere (64²)."""

    type_id = "test.sphere_views"
    outputs = (Output("views", Views),)

    def run(self, ctx: NodeContext) -> dict:
        truth, colors = shape("sphere")
        return {"views": render_views(truth, colors, 64)}


REG.register(SphereViews)


def test_cancelling_while_baking_stops_the_node() -> None:
    g = Graph()
    g.add_node("test.sphere_views", "src")
    g.add_node("mesh.from_views", "mesh", {"resolution": 32, "texture_size": 64, "faces": 500})
    g.connect("src", "views", "mesh", "views")
    cancel = CancelToken()
    seen: list[str] = []

    def listener(event: Any) -> None:
        if event.kind == "node_progress" and event.node == "mesh":
            seen.append(event.message)
            if event.message.startswith("baking view 2/"):
                cancel.cancel()

    res = Executor(REG).run(
        g, targets=["mesh"], options=RunOptions(device="cpu"), listener=listener, cancel=cancel
    )
    assert res.cancelled and res.records["mesh"].status == "cancelled"
    assert seen[-1].startswith("baking view 2/") and seen[0].startswith("fusing 6 views")


def test_generated_views_without_depth_still_become_a_textured_object(
    sphere_views: Views, tiny_depth_model: Path
) -> None:
    """What the example graphs do with tiny random models: RGB views on a ring, no depth."""
    views = call("views.make", {"images": sphere_views.images[:4]})["views"]
    out = call(
        "mesh.from_views",
        {"views": views},
        {"depth_model": str(tiny_depth_model), "resolution": 32, "texture_size": 64},
    )
    m = out["mesh"].mesh
    assert m.visual.kind == "texture" and len(m.faces) > 0
    # Object-centred depth keeps the object inside the ring of cameras (distance 2).
    assert np.linalg.norm(m.vertices, axis=1).max() < 2.0


def test_from_views_names_a_depth_model_of_the_wrong_family(tiny_sd: Path) -> None:
    """A Stable Diffusion folder as the depth model is refused by name, not a library error."""
    blank = Image(np.zeros((16, 16, 3), np.float32))
    views = call("views.make", {"images": [blank, blank]})["views"]  # no depth: the model runs
    with pytest.raises(NodeError, match="port 'depth_model'.*Stable Diffusion 1.x") as err:
        call("mesh.from_views", {"views": views}, {"depth_model": str(tiny_sd)})
    assert "OSError" not in str(err.value) and "depth estimation" in str(err.value)
