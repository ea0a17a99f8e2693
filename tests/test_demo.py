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
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "fathom.engine.cli",
            "render",
            str(DEMO),
            "--out",
            str(out),
            "--report",
            str(report),
            "--device",
            "cpu",
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    rep = json.loads(report.read_text())
    assert rep["status"] == "ok" and rep["counts"]["failed"] == 0
    names = {Path(p).name for p in rep["outputs"]}
    assert {
        "scene_mesh.glb",
        "orbit.mp4",
        "panorama.glb",
        "cube_map.png",
        "pano_walk.mp4",
        "view_000.png",
        "view_120.png",
        "view_240.png",
        "scene_depth.png",
    } <= names
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
    from fathom.engine.graphfile import load

    g = load(out / "view_000.png")
    assert "pano" in g.nodes and g.nodes["pano"].type == "view.panorama360"


def test_depth_tools_graph_renders_from_the_command_line(tmp_path: Path) -> None:
    graph = ROOT / "assets" / "graphs" / "depth_tools.json"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "fathom.engine.cli",
            "render",
            str(graph),
            "--out",
            str(tmp_path),
            "--device",
            "cpu",
            "--quiet",
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=600,
    )
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


def test_video_edit_demo_renders_with_sound_and_a_frame_range(tmp_path: Path) -> None:
    """The bundled clip cut, graded, wiped, titled, with a flow picture-in-picture, smoothed to
    48 fps; the soundtrack follows the edit. --frames limits every video.save to that range."""
    import av

    graph = ROOT / "assets" / "graphs" / "video_edit_demo.json"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "fathom.engine.cli",
            "render",
            str(graph),
            "--out",
            str(tmp_path),
            "--device",
            "cpu",
            "--quiet",
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    # 40 + 40 frames wiped over 12 → 68 frames at 24 fps → 136 at 48 fps.
    with av.open(str(tmp_path / "video_edit.mp4")) as c:
        v = c.streams.video[0]
        assert float(v.average_rate) == 48.0
        frames = [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]
    with av.open(str(tmp_path / "video_edit.mp4")) as c:
        samples = sum(f.samples for f in c.decode(audio=0))
    assert len(frames) == 136 and frames[0].shape == (192, 256, 3)
    assert abs(samples - 68 / 24 * 48000) <= 2048  # AAC pads to whole 1024-sample frames
    # Output frame 20 is source frame 10 passed through the interpolation: equal to it except
    # under the title (top centre) and the flow inset (bottom right at the start).
    src = ROOT / "assets" / "video" / "dolly.mp4"
    with av.open(str(src)) as c:
        tenth = [f.to_ndarray(format="rgb24") for f in c.decode(video=0)][10].astype(int)
    out = frames[20].astype(int)
    title, inset, clear = (
        (slice(6, 34), slice(70, 186)),
        (slice(125, 185), slice(165, 250)),
        (slice(40, 110), slice(0, 150)),
    )
    assert np.abs(out[title] - tenth[title]).mean() > 8
    assert np.abs(out[inset] - tenth[inset]).mean() > 8
    assert np.abs(out[clear] - tenth[clear]).mean() < 3
    still = np.asarray(Image.open(tmp_path / "video_edit_frame30.png").convert("RGB"))
    assert still.shape == (192, 256, 3)
    with Image.open(tmp_path / "video_edit_preview.gif") as gif:
        assert gif.n_frames == 68 and gif.size == (128, 96)

    ranged = tmp_path / "ranged"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "fathom.engine.cli",
            "render",
            str(graph),
            "--out",
            str(ranged),
            "--device",
            "cpu",
            "--quiet",
            "--frames",
            "10-29",
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    with av.open(str(ranged / "video_edit.mp4")) as c:
        part = [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]
    assert len(part) == 20
    assert np.abs(part[0].astype(int) - frames[10].astype(int)).mean() < 3  # same frames
