"""generate.novel_view from a graph on a tiny random Zero123 folder: the target camera from
the parameters, equality with the engine's single-view path, cached re-runs, a view set with
depth (the model fills only the holes), and clear errors for bad inputs and wrong models."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from cancelling import cancel_after_steps
from novel_view_models import build_tiny_zero123

from fathom.engine.context import RunOptions
from fathom.engine.diffusion import novel_view as nv
from fathom.engine.errors import GraphInvalid, NodeError
from fathom.engine.executor import Executor
from fathom.engine.geometry.projection import orbit_pose
from fathom.engine.graph import Graph
from fathom.engine.models.zero123 import load_zero123
from fathom.engine.node import Node, Output
from fathom.engine.registry import Registry
from fathom.engine.types import RGBD, Camera, Depth, Image, Views

RGB = np.random.default_rng(9).random((32, 32, 3)).astype(np.float32)
PARAMS = {"steps": 3, "seed": 2, "guidance": 2.5, "elevation": 10.0, "azimuth": 30.0}


class NovelImage(Node):
    """Test source: a fixed random 32×32 image."""

    type_id = "test.novel_image"
    outputs = (Output("image", Image),)

    def run(self, ctx, **kw):
        return {"image": Image(RGB)}


REG = Registry()
REG.load_builtin()
REG.register(NovelImage)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_zero123(tmp_path_factory.mktemp("z123n"))


@pytest.fixture(scope="module")
def ex() -> Executor:
    return Executor(REG)


def _opts(tmp_path: Path) -> RunOptions:
    return RunOptions(output_dir=tmp_path / "out", base_dir=tmp_path, device="cpu")


def test_graph_run_equals_the_engine_single_view_path(
    ex: Executor, tiny: Path, tmp_path: Path
) -> None:
    g = Graph()
    g.add_node("test.novel_image", "img", {})
    g.add_node("generate.novel_view", "nv", {"model": str(tiny), **PARAMS})
    g.connect("img", "image", "nv", "image")
    res = ex.run(g, targets=["nv"], options=_opts(tmp_path))
    assert res.records["nv"].status == "executed", res.records["nv"].error
    out = res.values["nv"]
    cam = out["camera"]
    assert np.allclose(cam.pose, orbit_pose(30.0, 10.0, 2.0))  # the input sits at (0, 0, 2)
    ref_cam = Camera.from_fov(32, 32, 40.0, orbit_pose(0.0, 0.0, 2.0))
    model = load_zero123(tiny, "cpu", "float32")
    ref, _ = nv.novel_view(
        model, [nv.InputView(Image(RGB), ref_cam)], cam, nv.Sampling(32, 32, 3, 2.5, 2), 4
    )
    assert np.array_equal(out["image"].data, ref)
    assert out["mask"].data.min() == 1.0
    assert ex.run(g, targets=["nv"], options=_opts(tmp_path)).executed == []


def test_a_view_set_with_depth_is_rendered_and_only_holes_are_made(
    ex: Executor, tiny: Path
) -> None:
    cams = [Camera.from_fov(32, 32, 40.0, orbit_pose(a, 0.0, 2.0)) for a in (0.0, 40.0)]
    depth = Depth(np.full((32, 32), 2.0, np.float32), "metric")
    views = Views([Image(RGB), Image(RGB[::-1].copy())], cams, [depth, depth])
    target = Camera.from_fov(32, 32, 40.0, orbit_pose(20.0, 0.0, 2.0))
    out = ex.call(
        "generate.novel_view",
        {"views": views, "camera": target},
        {"model": str(tiny), **PARAMS},
    )
    known = nv.reproject([nv.InputView(views.images[i], cams[i], depth) for i in (0, 1)], target)
    assert np.array_equal(out["mask"].data, (~known.covered).astype(np.float32))
    assert np.array_equal(out["image"].data[known.covered], known.image[known.covered])
    assert out["camera"] is target


def test_bad_inputs_name_the_port(ex: Executor, tiny: Path) -> None:
    p = {"model": str(tiny), **PARAMS}
    with pytest.raises(NodeError) as exc:
        ex.call("generate.novel_view", {"image": [Image(RGB), Image(RGB)]}, p)
    assert exc.value.port == "cameras"
    with pytest.raises(NodeError) as exc:
        ex.call("generate.novel_view", {}, p)
    assert exc.value.port == "image"
    with pytest.raises(NodeError) as exc:
        ex.call("generate.novel_view", {"image": [Image(RGB)]}, {**p, "distance": -3.0})
    assert exc.value.port == "distance" and "centre" in str(exc.value)
    rel = Views([Image(RGB)], [Camera.from_fov(32, 32, 40.0, orbit_pose(0.0, 0.0, 2.0))])
    rel.depths = [Depth(np.full((32, 32), 0.5, np.float32), "relative")]
    with pytest.raises(NodeError) as exc:
        ex.call("generate.novel_view", {"views": rel}, p)
    assert exc.value.port == "views" and "depth.to_metric" in str(exc.value)
    bare = RGBD(Image(RGB), Depth(np.full((32, 32), 2.0, np.float32), "metric"))
    with pytest.raises(NodeError) as exc:
        ex.call("generate.novel_view", {"rgbd": [bare]}, p)
    assert exc.value.port == "rgbd" and "camera" in str(exc.value)
    odd = Camera.from_fov(30, 30, 40.0, orbit_pose(10.0, 0.0, 2.0))
    with pytest.raises(NodeError) as exc:
        ex.call("generate.novel_view", {"image": [Image(RGB)], "camera": odd}, p)
    assert exc.value.port == "camera" and "multiple of 8" in str(exc.value)


def test_a_model_of_another_family_is_refused_before_the_run(ex: Executor, tmp_path: Path) -> None:
    sd = tmp_path / "sd"
    (sd / "unet").mkdir(parents=True)
    (sd / "model_index.json").write_text(json.dumps({"_class_name": "StableDiffusionPipeline"}))
    (sd / "unet" / "config.json").write_text(json.dumps({"cross_attention_dim": 768}))
    g = Graph()
    g.add_node("test.novel_image", "img", {})
    g.add_node("generate.novel_view", "nv", {"model": str(sd), **PARAMS})
    g.connect("img", "image", "nv", "image")
    with pytest.raises(GraphInvalid) as exc:
        ex.run(g, targets=["nv"], options=_opts(tmp_path))
    assert "Zero123" in str(exc.value) and "model" in str(exc.value)


def test_progress_per_step_and_cancel_mid_sampling(
    ex: Executor, tiny: Path, tmp_path: Path
) -> None:
    cancel, seen, listener = cancel_after_steps(2)

    g = Graph()
    g.add_node("test.novel_image", "img", {})
    g.add_node("generate.novel_view", "nv", {"model": str(tiny), **PARAMS, "steps": 6})
    g.connect("img", "image", "nv", "image")
    res = ex.run(g, targets=["nv"], options=_opts(tmp_path), listener=listener, cancel=cancel)
    assert res.cancelled and res.records["nv"].status == "cancelled"
    assert seen == ["step 1/6", "step 2/6"]
