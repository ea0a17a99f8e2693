"""generate.image_to_views on a tiny random Zero123++ folder: six views and their sheet from a
graph, the cameras of the declared ring, seeded repeatability, progress, cancel, and refusals
of other model families and of bad inputs."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from cancelling import cancel_after_steps
from zero123pp_models import TILE, build_tiny_zero123pp

from fathom.engine.context import RunOptions
from fathom.engine.diffusion.views_sampler import RINGS, untile_views
from fathom.engine.errors import GraphInvalid, NodeError
from fathom.engine.events import Recorder
from fathom.engine.executor import Executor
from fathom.engine.geometry.projection import orbit_pose
from fathom.engine.graph import Graph
from fathom.engine.node import Node, Output
from fathom.engine.registry import Registry
from fathom.engine.types import Image, Views

RGBA = np.zeros((40, 40, 4), np.float32)
RGBA[8:32, 12:28] = (0.9, 0.4, 0.1, 1.0)


class ViewsImage(Node):
    """Test source: a fixed orange cut-out with alpha."""

    type_id = "test.views_image"
    outputs = (Output("image", Image),)

    def run(self, ctx: Any, **kw: Any) -> dict[str, Any]:
        return {"image": Image(RGBA)}


REG = Registry()
REG.load_builtin()
REG.register(ViewsImage)
PARAMS = {"steps": 2, "seed": 3, "guidance": 3.0, "view_size": TILE}


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_zero123pp(tmp_path_factory.mktemp("z123pp_node"))


@pytest.fixture(scope="module")
def ex() -> Executor:
    return Executor(REG)


def _graph(model: Path, **params: Any) -> Graph:
    g = Graph()
    g.add_node("test.views_image", "img", {})
    g.add_node("generate.image_to_views", "i2v", {"model": str(model), **PARAMS, **params})
    g.connect("img", "image", "i2v", "image")
    return g


def _opts(tmp_path: Path) -> RunOptions:
    return RunOptions(output_dir=tmp_path / "out", base_dir=tmp_path, device="cpu")


def test_six_views_with_the_ring_cameras(ex: Executor, model: Path, tmp_path: Path) -> None:
    rec = Recorder()
    res = ex.run(_graph(model), targets=["i2v"], options=_opts(tmp_path), listener=rec)
    r = res.records["i2v"]
    assert r.status == "executed", r.error
    views, sheet = res.values["i2v"]["views"], res.values["i2v"]["sheet"]
    assert isinstance(views, Views) and len(views) == 6
    assert (sheet.width, sheet.height) == (2 * TILE, 3 * TILE)
    for im, tile in zip(views.images, untile_views(sheet.data), strict=True):
        assert np.array_equal(im.data, tile)
    ring = RINGS["v1.2"]
    assert ring.elevations == (20.0, -10.0) * 3 and ring.fov == 30.0
    for k, cam in enumerate(views.cameras):
        az, el = 30.0 + 60.0 * k, 20.0 if k % 2 == 0 else -10.0
        assert np.allclose(cam.pose, orbit_pose(az, el, ring.distance))
        centre = cam.pose[:3, 3]
        assert math.isclose(np.linalg.norm(centre), 0.5 / math.tan(math.radians(15)), rel_tol=1e-6)
        assert math.isclose(
            math.degrees(math.asin(-centre[1] / np.linalg.norm(centre))), el, abs_tol=1e-6
        )
        assert (cam.width, cam.height) == (TILE, TILE)
        assert math.isclose(cam.fx, (TILE / 2) / math.tan(math.radians(15)), rel_tol=1e-6)
    steps = [e.message for e in rec.events if e.kind == "node_progress" and "step" in e.message]
    assert steps == ["step 1/2", "step 2/2"]
    d = r.as_dict()["details"]
    assert d["reference"] is True and "alpha" in d["input"] and d["device"] == "cpu"
    # Seeded: the same settings again give the same views; another seed others.
    again = ex.call(
        "generate.image_to_views", {"image": Image(RGBA)}, {"model": str(model), **PARAMS}
    )
    assert np.array_equal(again["sheet"].data, sheet.data)
    other = ex.call(
        "generate.image_to_views",
        {"image": Image(RGBA)},
        {"model": str(model), **PARAMS, "seed": 4},
    )
    assert not np.array_equal(other["sheet"].data, sheet.data)


def test_v11_cameras_and_reference_off(ex: Executor, model: Path) -> None:
    out = ex.call(
        "generate.image_to_views",
        {"image": Image(RGBA)},
        {"model": str(model), **PARAMS, "camera_set": "v1.1", "reference": False},
    )
    cams = out["views"].cameras
    assert np.allclose(cams[1].pose, orbit_pose(90.0, -20.0, RINGS["v1.1"].distance))
    on = ex.call("generate.image_to_views", {"image": Image(RGBA)}, {"model": str(model), **PARAMS})
    assert np.abs(on["sheet"].data - out["sheet"].data).max() > 1e-4


def test_cancelling_mid_denoise_stops_the_node(ex: Executor, model: Path, tmp_path: Path) -> None:
    cancel, seen, listener = cancel_after_steps(1)

    res = ex.run(
        _graph(model, steps=4, seed=9),
        targets=["i2v"],
        options=_opts(tmp_path),
        listener=listener,
        cancel=cancel,
    )
    assert res.cancelled and res.records["i2v"].status == "cancelled"
    assert seen == ["step 1/4"]


def test_other_families_and_bad_inputs_are_refused(
    ex: Executor, model: Path, tiny_sd: Path, tmp_path: Path
) -> None:
    with pytest.raises(GraphInvalid) as err:
        ex.plan(_graph(tiny_sd), options=_opts(tmp_path))
    (problem,) = err.value.problems
    assert problem.port == "model" and "Zero123++" in problem.message
    with pytest.raises(NodeError) as nerr:
        ex.call(
            "generate.image_to_views", {"image": Image(RGBA)}, {"model": str(tiny_sd), **PARAMS}
        )
    assert nerr.value.port == "model" and "Zero123" in str(nerr.value)
    with pytest.raises(NodeError) as nerr:
        ex.call(
            "generate.image_to_views",
            {"image": Image(np.zeros((8, 8, 4), np.float32))},
            {"model": str(model), **PARAMS},
        )
    assert nerr.value.port == "image" and "alpha" in str(nerr.value)
    with pytest.raises(NodeError) as nerr:
        ex.call(
            "generate.image_to_views",
            {"image": Image(RGBA)},
            {"model": str(model), **PARAMS, "view_size": 36},
        )
    assert nerr.value.port == "view_size"
    with pytest.raises(GraphInvalid) as err:
        ex.plan(_graph(model, view_size=36), options=_opts(tmp_path))
    assert [p.port for p in err.value.problems] == ["view_size"]
