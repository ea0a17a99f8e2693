"""The text/photo-to-3D examples render headless on tiny random-weight models, pointed at them
as a user points the graphs at their own (the same parameters `--set` changes): a prompt to six
views, a textured .glb and a turntable video; a photo to six views and a textured .glb. The
graphs' own defaults name the real models on the Hugging Face hub."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import trimesh
from object_models import build_tiny_depth
from zero123pp_models import build_tiny_zero123pp

from fathom.engine import graphfile
from fathom.engine.executor import Executor, RunOptions
from fathom.engine.registry import Registry
from fathom.engine.resources import example_graphs
from fathom.engine.types import Mesh, Video, Views

GRAPHS = Path(__file__).resolve().parents[1] / "assets" / "graphs"
#: Small enough for a test: few voxels, a small atlas, four turntable frames.
SMALL_MESH = {"resolution": 24, "texture_size": 64, "faces": 1500}


@pytest.fixture(scope="module")
def tiny_depth(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_depth(tmp_path_factory.mktemp("object_depth"))


@pytest.fixture(scope="module")
def tiny_zero123pp(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_zero123pp(tmp_path_factory.mktemp("object_z123pp"))


def render(registry: Registry, name: str, out: Path, sets: dict[str, dict[str, Any]]) -> Any:
    graph = graphfile.load(GRAPHS / f"{name}.json", registry)
    for node, params in sets.items():
        for key, value in params.items():
            graph.set_param(node, key, value)
    options = RunOptions(output_dir=out, base_dir=GRAPHS, device="cpu")
    result = Executor(registry).run(graph, options=options)
    failed = {n: r.error for n, r in result.records.items() if r.status != "executed"}
    assert not failed, failed
    return result


def check_glb(path: Path, views: Views) -> trimesh.Trimesh:
    """The .glb holds one mesh with UVs and a base-colour texture made from the views' colours."""
    mesh = trimesh.load(path, force="mesh")
    assert len(mesh.faces) > 100
    assert mesh.visual.kind == "texture" and mesh.visual.uv.shape == (len(mesh.vertices), 2)
    tex = np.asarray(mesh.visual.material.baseColorTexture.convert("RGB"), np.float32) / 255
    assert tex.shape == (64, 64, 3) and tex.std() > 0.01
    seen = np.concatenate([im.rgb().reshape(-1, 3) for im in views.images])
    assert abs(float(tex.mean()) - float(seen.mean())) < 0.25  # baked from these views
    return mesh


def test_both_examples_are_bundled_with_real_models_by_default() -> None:
    graphs = example_graphs()
    assert {"text_to_3d", "photo_to_3d"} <= set(graphs)
    text = json.loads(graphs["text_to_3d"].read_text())
    params = {n["id"]: n["params"] for n in text["nodes"]}
    assert params["views"]["model"] == "stable-diffusion-v1-5/stable-diffusion-v1-5"
    assert params["mesh"]["depth_model"] == "depth-anything/Depth-Anything-V2-Small-hf"
    photo = json.loads(graphs["photo_to_3d"].read_text())
    params = {n["id"]: n["params"] for n in photo["nodes"]}
    assert params["views"]["model"] == "sudo-ai/zero123plus-v1.2"
    assert (GRAPHS / params["photo"]["path"]).is_file()


def test_text_to_3d_renders_views_a_textured_glb_and_a_turntable(
    registry: Registry, tiny_sd: Path, tiny_depth: Path, tmp_path: Path
) -> None:
    result = render(
        registry,
        "text_to_3d",
        tmp_path,
        {
            "views": {"model": str(tiny_sd), "width": 64, "height": 64, "steps": 1},
            "mesh": {"depth_model": str(tiny_depth), **SMALL_MESH},
            "turntable": {"frames": 4, "width": 32, "height": 32},
        },
    )
    views = result.values["views"]["views"]
    assert isinstance(views, Views) and len(views) == 6
    angles = [
        round(float(np.degrees(np.arctan2(c.pose[0, 3], -c.pose[2, 3])))) for c in views.cameras
    ]
    assert angles[:4] == [0, 90, 180, -90]  # front, right, back, left (then top, bottom)
    assert isinstance(result.values["mesh"]["mesh"], Mesh)
    check_glb(tmp_path / "text_to_3d.glb", views)
    video = result.values["render"]["video"]
    assert isinstance(video, Video) and len(video) == 4
    frames = np.stack([video.frame(i).data for i in range(4)])
    assert (np.abs(frames - 1.0).max(-1) > 0.02).mean() > 0.01  # the object, not only white
    assert (tmp_path / "text_to_3d_turntable.mp4").stat().st_size > 0
    assert (tmp_path / "text_to_3d_views.png").is_file()


def test_photo_to_3d_renders_views_and_a_textured_glb(
    registry: Registry, tiny_zero123pp: Path, tiny_depth: Path, tmp_path: Path
) -> None:
    result = render(
        registry,
        "photo_to_3d",
        tmp_path,
        {
            "views": {"model": str(tiny_zero123pp), "view_size": 32, "steps": 1},
            "mesh": {"depth_model": str(tiny_depth), **SMALL_MESH},
        },
    )
    views = result.values["views"]["views"]
    assert isinstance(views, Views) and len(views) == 6
    assert views.images[0].width == 32
    check_glb(tmp_path / "photo_to_3d.glb", views)
    assert (tmp_path / "photo_to_3d_views.png").is_file()
