"""The README's main job: the bundled DepthFusion demo renders headless from the command line."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import trimesh
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "assets" / "graphs" / "depthfusion_demo.json"


def test_demo_graph_renders_every_output(tmp_path: Path) -> None:
    out = tmp_path / "demo"
    report = tmp_path / "run.json"
    proc = subprocess.run([sys.executable, "-m", "engine.cli", "render", str(DEMO), "--out",
                           str(out), "--report", str(report), "--device", "cpu"],
                          capture_output=True, text=True, cwd=ROOT, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    rep = json.loads(report.read_text())
    assert rep["status"] == "ok" and rep["counts"]["failed"] == 0
    names = {Path(p).name for p in rep["outputs"]}
    assert {"scene_mesh.glb", "orbit.mp4", "panorama.glb", "cube_map.png", "pano_walk.mp4",
            "view_000.png", "view_120.png", "view_240.png", "scene_depth.png"} <= names
    mesh = trimesh.load(out / "scene_mesh.glb", force="mesh")
    assert len(mesh.faces) > 100_000
    import av

    with av.open(str(out / "orbit.mp4")) as c:
        frames = [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]
    assert len(frames) == 48 and frames[0].shape == (384, 512, 3)
    # The orbit moves the camera: consecutive frames differ, but stay a view of the same room.
    diff = np.abs(frames[0].astype(int) - frames[12].astype(int)).mean()
    assert 1.0 < diff < 60.0
    cube = np.asarray(Image.open(out / "cube_map.png"))
    assert cube.shape == (512, 768, 3) and cube.std() > 20
    # Saved PNGs carry the graph that made them.
    from engine.graphfile import load

    g = load(out / "view_000.png")
    assert "pano" in g.nodes and g.nodes["pano"].type == "view.panorama360"


def test_depth_tools_graph_renders_from_the_command_line(tmp_path: Path) -> None:
    graph = ROOT / "assets" / "graphs" / "depth_tools.json"
    proc = subprocess.run([sys.executable, "-m", "engine.cli", "render", str(graph), "--out",
                           str(tmp_path), "--device", "cpu", "--quiet"],
                          capture_output=True, text=True, cwd=ROOT, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    normals = np.asarray(Image.open(tmp_path / "normals.png").convert("RGB")) / 255.0
    floor = normals[370, 200]  # the floor faces up (-y): colour (0.5, 0, 0.5)
    assert np.allclose(floor, [0.5, 0.0, 0.5], atol=0.06)
    back_wall = normals[150, 256]  # the back wall faces the camera (-z): (0.5, 0.5, 0)
    assert np.allclose(back_wall, [0.5, 0.5, 0.0], atol=0.06)
    surface = trimesh.load(tmp_path / "surface.ply", force="mesh")
    assert 0 < len(surface.faces) <= 20000
    cloud = trimesh.load(tmp_path / "points.ply")
    assert len(cloud.vertices) == (384 // 4) * (512 // 4)
    view = np.asarray(Image.open(tmp_path / "fused_view.png"))
    assert view.shape[:2] == (384, 512) and view.std() > 20
