"""Nothing a user does stalls the GUI thread over 100 ms: opening a graph, selecting each node
(before and after a run), opening the 360° viewer from a panorama node and from the 3D preview,
and starting the standalone viewer; and the standalone viewer follows the studio's theme.

The actions run in a fresh interpreter (``tests/gui_stall_probe.py``), so first-time costs
(imports, panels made on first use) are measured as a user meets them; under Xvfb when it is
there (the OpenGL 3D preview, as on a desktop), else offscreen (the software preview).

The watchdog (``tests/gui_watchdog.py``) gives two measures per gap. The GUI thread's own CPU
time is what our code does there, so it is held to 100 ms every time. Wall-clock also counts
other processes delaying the wake-up, so it is held to 100 ms only while this machine is not
overloaded (load below its core count); it is always printed in the failure message.
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
from PySide6.QtGui import QImage

pytestmark = pytest.mark.gui
REPO = Path(__file__).resolve().parents[2]
PROBE = REPO / "tests" / "gui_stall_probe.py"
LIMIT_MS = 100.0


def run_probe(mode: str, work: Path) -> dict[str, Any]:
    env = {k: v for k, v in os.environ.items() if k != "QT_QPA_PLATFORM"}
    env["PYTHONPATH"] = os.pathsep.join([str(REPO / "tests"), env.get("PYTHONPATH", "")])
    cmd = [sys.executable, str(PROBE), mode, str(work)]
    if shutil.which("xvfb-run"):
        # Its own display range, so two probes started together never race for one.
        cmd = ["xvfb-run", "-a", "-n", str(300 + os.getpid() % 100), *cmd]
    else:
        env["QT_QPA_PLATFORM"] = "offscreen"
    proc = subprocess.run(
        cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=600, check=False
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def check(found: dict[str, Any]) -> None:
    load = os.getloadavg()[0]
    report = f"(wall ms, GUI-thread cpu ms) per action, load {load:.1f}: {found}"
    slow_cpu = {k: v for k, v in found.items() if v[1] >= LIMIT_MS}
    assert not slow_cpu, f"GUI thread busy over {LIMIT_MS} ms: {slow_cpu}\n{report}"
    if load < (os.cpu_count() or 1):
        slow_wall = {k: v for k, v in found.items() if v[0] >= LIMIT_MS}
        assert not slow_wall, f"GUI thread stalled over {LIMIT_MS} ms: {slow_wall}\n{report}"


def test_opening_selecting_running_and_the_360_viewer_never_stall(tmp_path: Path) -> None:
    found = run_probe("studio", tmp_path)
    assert "open demo" in found and "open 360 viewer (pano)" in found
    assert "select after run pano" in found and "open 360 viewer (mesh)" in found
    assert sum(k.startswith("select after run") for k in found) >= 20  # every demo node
    check(found)


def test_the_standalone_viewer_opens_without_stalling(tmp_path: Path) -> None:
    check(run_probe("standalone", tmp_path))


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
