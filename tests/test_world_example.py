"""The text-to-world example renders headless on a tiny random-weight LDM3D model, pointed at it
as a user points the graph at their own (the parameters `--set` changes): a prompt to an RGB +
depth panorama, a metric walk video, a .glb; and the 360° viewer opens on what feeds its
`world` node, as the studio's "Open in 360° viewer" does. The graph's own default names the
real model on the Hugging Face hub."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import numpy as np

from fathom.engine import graphfile
from fathom.engine.executor import Executor, RunOptions
from fathom.engine.registry import Registry
from fathom.engine.resources import example_graphs
from fathom.engine.types import Depth, Image, Mesh, Video

GRAPHS = Path(__file__).resolve().parents[1] / "assets" / "graphs"


def test_the_world_example_is_bundled_with_the_real_model() -> None:
    graph = json.loads(example_graphs()["text_to_world"].read_text())
    params = {n["id"]: n["params"] for n in graph["nodes"]}
    assert params["pano_gen"]["model"] == "Intel/ldm3d-pano"
    assert params["pano_gen"]["mode"] == "panorama"
    assert params["pano_gen"]["width"] == 2 * params["pano_gen"]["height"]
    edges = {(tuple(e["from"]), tuple(e["to"])) for e in graph["edges"]}
    assert (("metric", "depth"), ("world", "depth")) in edges  # metres, as the viewer needs
    assert (("pano_gen", "image"), ("world", "image")) in edges


def test_text_to_world_renders_a_walk_on_a_tiny_ldm3d(
    registry: Registry, tiny_sd_factory: Any, tmp_path: Path, qtbot: Any
) -> None:
    model = tiny_sd_factory(vae_channels=4, ldm3d=True)
    graph = graphfile.load(GRAPHS / "text_to_world.json", registry)
    sets = {
        "pano_gen": {"model": str(model), "width": 128, "height": 64, "steps": 1},
        "world": {"frames": 4, "width": 32, "height": 24, "cube_size": 16, "step": 1},
    }
    for node, params in sets.items():
        for key, value in params.items():
            graph.set_param(node, key, value)
    options = RunOptions(output_dir=tmp_path, base_dir=GRAPHS, device="cpu")
    result = Executor(registry).run(graph, options=options)
    failed = {n: r.error for n, r in result.records.items() if r.status != "executed"}
    assert not failed, failed
    walk = result.values["fill"]["video"]
    assert isinstance(walk, Video) and len(walk) == 4
    frames = np.stack([walk.frame(i).data for i in range(4)])
    assert frames.shape[1:3] == (24, 32) and frames.std() > 0.01  # a world, not a blank
    assert isinstance(result.values["world"]["mesh"], Mesh)
    for name in ("text_to_world_walk.mp4", "text_to_world.glb", "text_to_world_panorama.png"):
        assert (tmp_path / name).stat().st_size > 0, name

    # What the studio's "Open in 360° viewer" on the world node shows: the pair feeding it.
    from fathom.app.viewer360 import Viewer360
    from fathom.app.viewer360_opener import fed_panorama

    pano = fed_panorama(graph, result.values, "world")
    assert pano is not None
    image, depth = pano
    assert isinstance(image, Image) and isinstance(depth, Depth) and depth.kind == "metric"
    near, far = graph.nodes["metric"].params["near"], graph.nodes["metric"].params["far"]
    assert near <= float(np.nanmin(depth.data)) and float(np.nanmax(depth.data)) <= far
    viewer = Viewer360()
    qtbot.addWidget(viewer)
    viewer.set_panorama(image, depth)
    seen = viewer.render_image(48, 32)
    assert seen.std() > 0.01
    viewer.hold_key(0x57)  # Qt.Key_W: walk until the wall stops it
    for _ in range(40):
        viewer.advance(0.25)
    viewer.release_keys()
    assert 0 < np.linalg.norm(viewer.position) < far
