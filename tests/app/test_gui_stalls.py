"""Nothing a user does stalls the GUI thread over 100 ms: opening a graph, selecting each node
(before and after a run), opening the 360° viewer from a panorama node and from the 3D preview,
and starting the standalone viewer; and the standalone viewer follows the studio's theme.
What keeps them cheap is tested here too: large 3D previews and 360° scenes are made on a
worker thread behind a "Preparing…"/"Loading…" note.

The actions run in a fresh interpreter (``tests/gui_stall_probe.py``), so first-time costs
(imports, panels made on first use) are measured as a user meets them; under Xvfb when it is
there (the OpenGL 3D preview, as on a desktop), else offscreen (the software preview).

The watchdog (``tests/gui_watchdog.py``) gives two measures per gap. The GUI thread's own CPU
time is what our code does there, so it is held to 100 ms on the run judged. Wall-clock also counts
other processes delaying the wake-up, so it is held to 100 ms only while other processes left
a core free during the probe (``tests/machine_load.py``); it is always printed in the failure
message. A probe with a gap over the limit runs again, up to three times, and each action is
judged on the run where its wall-clock gap was least (other processes only ever add to a gap,
CPU time included: they share the core's caches).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import trimesh
from machine_load import OtherLoad, least_stalls
from PySide6.QtGui import QImage

from fathom.engine.types import Depth, Image, Mesh

pytestmark = pytest.mark.gui
REPO = Path(__file__).resolve().parents[2]
PROBE = REPO / "tests" / "gui_stall_probe.py"
LIMIT_MS = 100.0


def run_probe(mode: str, work: Path) -> tuple[dict[str, Any], OtherLoad]:
    env = {k: v for k, v in os.environ.items() if k != "QT_QPA_PLATFORM"}
    env["PYTHONPATH"] = os.pathsep.join([str(REPO / "tests"), env.get("PYTHONPATH", "")])
    cmd = [sys.executable, str(PROBE), mode, str(work)]
    if shutil.which("xvfb-run"):
        # Its own display range, so two probes started together never race for one.
        cmd = ["xvfb-run", "-a", "-n", str(300 + os.getpid() % 100), *cmd]
    else:
        env["QT_QPA_PLATFORM"] = "offscreen"
    with OtherLoad() as others:
        proc = subprocess.run(
            cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=600, check=False
        )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1]), others


def probe_stalls(mode: str, work: Path) -> dict[str, list[float]]:
    """The probe's (wall ms, GUI-thread cpu ms) per action, held to the limit; repeated (at
    most 3 runs, each in its own folder) only while a gap is over it: each action's pair from
    the run where its wall-clock gap was least."""
    runs = iter(range(3))

    def once() -> tuple[dict[str, list[float]], OtherLoad]:
        folder = work / f"run{next(runs)}"
        folder.mkdir()
        return run_probe(mode, folder)

    found, quiet, load = least_stalls(once, LIMIT_MS)
    report = f"(wall ms, GUI-thread cpu ms) per action, {load}: {found}"
    slow_cpu = {k: v for k, v in found.items() if v[1] >= LIMIT_MS}
    assert not slow_cpu, f"GUI thread busy over {LIMIT_MS} ms: {slow_cpu}\n{report}"
    if quiet:
        slow_wall = {k: v for k, v in found.items() if v[0] >= LIMIT_MS}
        assert not slow_wall, f"GUI thread stalled over {LIMIT_MS} ms: {slow_wall}\n{report}"
    return found


def test_opening_selecting_running_and_the_360_viewer_never_stall(tmp_path: Path) -> None:
    found = probe_stalls("studio", tmp_path)
    assert "open demo" in found and "open 360 viewer (pano)" in found
    assert "select after run pano" in found and "open 360 viewer (mesh)" in found
    assert sum(k.startswith("select after run") for k in found) >= 20  # every demo node


def test_the_standalone_viewer_opens_without_stalling(tmp_path: Path) -> None:
    assert "open standalone viewer" in probe_stalls("standalone", tmp_path)


def window_colour(png: Path) -> np.ndarray:
    """The colour under the viewer's slider bar and status line (the window background)."""
    img = QImage(str(png)).convertToFormat(QImage.Format.Format_RGB888)
    a = np.frombuffer(img.constBits(), np.uint8).reshape(img.height(), img.bytesPerLine())
    rgb = a[:, : img.width() * 3].reshape(img.height(), img.width(), 3)
    return np.median(rgb[-3:, :].reshape(-1, 3), axis=0)


@pytest.mark.parametrize("theme", ["dark", "light"])
def test_the_standalone_viewer_follows_the_theme_setting(tmp_path: Path, theme: str) -> None:
    from fathom.app.settings import Settings

    ini = tmp_path / "settings.ini"
    Settings(ini).theme = theme
    out = tmp_path / "viewer.png"
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen"}
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "fathom.app.viewer360",
            "--settings",
            str(ini),
            "--screenshot",
            str(out),
            "--size",
            "480x300",
        ],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    brightness = float(window_colour(out).mean())
    if theme == "dark":
        assert brightness < 80, brightness  # the studio's dark window colour, #26272b
    else:
        assert brightness > 180, brightness  # Fusion's light window colour


# --------------------------------------------------------------------------------------------
# What keeps those actions cheap: large 3D previews and 360° scenes are made on a worker


def big_mesh(n: int = 160) -> Mesh:
    """A green grid of 2·(n-1)² triangles 3 m ahead: large enough to be prepared off-thread."""
    g = np.stack(np.meshgrid(np.linspace(-1, 1, n), np.linspace(-1, 1, n)), -1).reshape(-1, 2)
    verts = np.concatenate([g, np.full((len(g), 1), 3.0)], 1)
    i = np.arange(n * n).reshape(n, n)
    a, b, c, d = i[:-1, :-1].ravel(), i[:-1, 1:].ravel(), i[1:, :-1].ravel(), i[1:, 1:].ravel()
    faces = np.concatenate([np.stack([a, b, c], 1), np.stack([b, d, c], 1)])
    tm = trimesh.Trimesh(verts, faces, vertex_colors=[0, 255, 0, 255], process=False)
    return Mesh(tm)


def test_a_large_mesh_preview_is_prepared_off_the_gui_thread(qtbot: Any) -> None:
    from fathom.app.preview.mesh_view import PREPARE_HERE, MeshPanel

    panel = MeshPanel(backend="software")
    qtbot.addWidget(panel)
    panel.resize(240, 200)
    panel.show()
    mesh = big_mesh()
    assert len(mesh.mesh.faces) > PREPARE_HERE
    panel.set_value(mesh)
    assert "Preparing" in panel.info.text() and not panel.open360_button.isEnabled()
    qtbot.waitUntil(lambda: panel.idle, timeout=20_000)
    assert panel.info.text().startswith(f"mesh: {len(mesh.mesh.vertices):,} vertices")
    assert panel.open360_button.isEnabled()
    img = panel.view.render_now()  # type: ignore[union-attr]
    h, w = img.shape[:2]
    assert np.allclose(img[h // 2, w // 2], [0, 1, 0], atol=0.02)  # the green grid
    # A newer value wins over a large one still being prepared.
    panel.set_value(big_mesh())
    small = Mesh(trimesh.creation.icosphere(subdivisions=1))
    panel.set_value(small)
    qtbot.waitUntil(lambda: panel.idle, timeout=20_000)
    qtbot.wait(50)
    assert panel.info.text().startswith(f"mesh: {len(small.mesh.vertices)} vertices")


def test_the_360_viewer_loads_off_the_gui_thread(qtbot: Any) -> None:
    from fathom.app.viewer360 import Viewer360

    viewer = Viewer360()
    qtbot.addWidget(viewer)
    viewer.resize(320, 240)
    viewer.show()
    h, w = 64, 128
    image = Image(np.tile(np.array([1.0, 0.0, 0.0], np.float32), (h, w, 1)))
    depth = Depth(np.full((h, w), 3.0, np.float32), kind="metric")
    with pytest.raises(ValueError, match="2:1"):  # refused at once, before any work
        viewer.show_panorama(Image(image.data[:, :100]), Depth(depth.data[:, :100], "metric"))
    viewer.show_panorama(image, depth)
    assert viewer.message == "Loading the panorama…" and viewer.frame() is None
    assert not viewer.idle
    with qtbot.waitSignal(viewer.loaded, timeout=20_000):
        pass
    qtbot.waitUntil(lambda: viewer.idle and viewer.frame() is not None, timeout=20_000)
    assert viewer.message == ""
    centre = viewer.render_image(32, 24)[12, 16]
    assert np.allclose(centre, [1, 0, 0], atol=0.05)

    def broken() -> Any:
        raise OSError("no such file: pano.png")

    viewer.load(broken, "panorama")
    qtbot.waitUntil(lambda: viewer.idle, timeout=20_000)
    assert viewer.message == "could not load: OSError: no such file: pano.png"
    assert viewer.frame() is None
