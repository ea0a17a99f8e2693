"""The `fathom-studio` entry point: the offscreen self-test, and window screenshots under Xvfb
for every example graph (the canvas must show the graph, not an empty background)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from fathom.app.files import examples

ROOT = Path(__file__).resolve().parents[2]
BACKGROUND = np.array([[0x1E, 0x1F, 0x22], [0x2A, 0x2C, 0x30]], np.int16)  # canvas and grid


def test_self_test_exits_zero(tmp_path: Path) -> None:
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "HOME": str(tmp_path)}
    proc = subprocess.run(
        [sys.executable, "-m", "fathom.app.main", "--self-test"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "self-test passed" in proc.stdout
    assert all(f"{p.name}: ok" in proc.stdout for p in examples())


def canvas_content(png: Path) -> tuple[float, float]:
    """(pixel std, share of pixels unlike the empty canvas) over the editor's area."""
    img = np.asarray(Image.open(png).convert("RGB")).astype(np.int16)
    h, w = img.shape[:2]
    canvas = img[int(h * 0.08) : int(h * 0.75), : int(w * 0.72)]
    diff = np.abs(canvas[:, :, None, :] - BACKGROUND[None, None]).max(axis=3).min(axis=2)
    return float(canvas.std()), float((diff > 24).mean())


@pytest.mark.gui
@pytest.mark.skipif(shutil.which("xvfb-run") is None, reason="needs xvfb-run (apt xvfb)")
def test_screenshots_of_every_example_under_xvfb(tmp_path: Path) -> None:
    shots = {p.stem: tmp_path / f"{p.stem}.png" for p in examples()}
    empty = tmp_path / "empty.png"
    commands = [
        f"{sys.executable} -m fathom.app.main --screenshot {shots[p.stem]} --open {p}"
        for p in examples()
    ]
    commands.append(f"{sys.executable} -m fathom.app.main --screenshot {empty}")
    env = {k: v for k, v in os.environ.items() if k != "QT_QPA_PLATFORM"}
    env["HOME"] = str(tmp_path)
    # -a picks a free display from -n upwards; starting away from the default 99 keeps two
    # xvfb-run calls started at the same moment (pytest -n 2) from racing for one display.
    first = str(200 + os.getpid() % 700)
    proc = subprocess.run(
        [
            "xvfb-run",
            "-a",
            "-n",
            first,
            "-s",
            "-screen 0 1920x1200x24",
            "sh",
            "-c",
            " && ".join(commands),
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    for name, png in shots.items():
        assert png.exists(), name
        assert Image.open(png).size == (1600, 1000)
        std, drawn = canvas_content(png)
        # A two-node example covers ~1% of the canvas at 100% zoom; an empty canvas 0%.
        assert std > 5 and drawn > 0.005, f"{name}: canvas looks blank ({std=:.1f}, {drawn=:.4f})"
    # The same measure calls an empty canvas blank, so the check above means something.
    std, drawn = canvas_content(empty)
    assert drawn < 0.001 and std < 5
