"""Build a graph only through UI actions, run it in the studio, and compare with `fathom render`.

Palette typing, a real mouse drag between ports, inspector edits; then the saved file rendered by
the command line must produce the very same PNG bytes the studio wrote.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image as PILImage
from PySide6.QtCore import QPoint, QPointF, Qt
from PySide6.QtTest import QTest

ROOT = Path(__file__).resolve().parents[2]


def palette_add(qtbot: Any, window: Any, query: str, at: tuple[float, float]) -> str:
    """Open the palette as Tab would, type, press Enter; returns the new node's id."""
    before = set(window.doc.graph.nodes)
    window.editing.open_palette(QPointF(*at))
    qtbot.keyClicks(window.palette.search, query)
    qtbot.keyClick(window.palette.search, Qt.Key.Key_Return)
    (added,) = set(window.doc.graph.nodes) - before
    return added


def view_point(window: Any, item: Any) -> QPoint:
    return window.view.mapFromScene(item.scene_center())


def drag_wire(window: Any, src: Any, dst: Any) -> None:
    """Press on a port, move, release on another: real mouse events through the view."""
    vp = window.view.viewport()
    a, b = view_point(window, src), view_point(window, dst)
    QTest.mousePress(vp, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, a)
    QTest.mouseMove(vp, (a + b) / 2)
    QTest.mouseMove(vp, b)
    QTest.mouseRelease(vp, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, b)


def test_ui_built_graph_renders_like_the_command_line(
    qtbot: Any, window: Any, tmp_path: Path, run_and_wait: Any
) -> None:
    color = palette_add(qtbot, window, "solid color", (0, 0))
    adjust = palette_add(qtbot, window, "adjust", (260, 0))
    save = palette_add(qtbot, window, "save image", (520, 0))
    assert [window.doc.graph.nodes[n].type for n in (color, adjust, save)] == [
        "image.constant",
        "image.adjust",
        "image.save",
    ]
    window.view.fit_all()
    qtbot.wait(10)
    s = window.scene
    drag_wire(window, s.nodes[color].outputs["image"], s.nodes[adjust].inputs["image"])
    drag_wire(window, s.nodes[adjust].outputs["image"], s.nodes[save].inputs["image"])
    edges = {(e.src, e.src_port, e.dst, e.dst_port) for e in window.doc.graph.edges}
    assert edges == {(color, "image", adjust, "image"), (adjust, "image", save, "image")}

    # Parameters through the inspector's generated widgets.
    s.select_nodes([color])
    insp = window.inspector
    insp.widgets["width"].spin.setValue(40)
    insp.widgets["height"].spin.setValue(24)
    insp.widgets["color"].hex.setText("#cc6633")
    insp.widgets["color"].hex.editingFinished.emit()
    s.select_nodes([adjust])
    insp.widgets["gamma"].spin.setValue(2.2)
    insp.widgets["saturation"].spin.setValue(0.5)
    s.select_nodes([save])
    insp.widgets["path"].text.setText("result.png")
    insp.widgets["path"].text.editingFinished.emit()
    params = window.doc.graph.nodes
    assert params[color].params["width"] == 40 and params[adjust].params["gamma"] == 2.2
    assert params[color].params["color"] == [0.8, 0.4, 0.2, 1.0]

    graph_file = tmp_path / "built.json"
    assert window.files.save_as(graph_file)
    outcome = run_and_wait()
    assert outcome.result is not None and outcome.result.ok, outcome
    gui_png = Path(window.settings.output_dir) / "result.png"
    assert gui_png.exists()
    assert s.nodes[save].status == "done"

    cli_out = tmp_path / "cli_out"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "fathom.engine.cli",
            "render",
            str(graph_file),
            "--out",
            str(cli_out),
            "--device",
            "cpu",
            "--quiet",
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    cli_png = cli_out / "result.png"
    assert cli_png.read_bytes() == gui_png.read_bytes()
    pixels = np.asarray(PILImage.open(gui_png))
    assert pixels.shape == (24, 40, 3)
    # gamma 2.2 brightens, half saturation pulls channels together: a real change happened.
    assert not np.array_equal(pixels[0, 0], [204, 102, 51])
    # The selected node's output is what the preview dock shows.
    s.select_nodes([adjust])
    assert window.session.outputs[adjust]["image"].data.shape == (24, 40, 3)


def test_run_to_selected_runs_only_what_it_needs(
    window: Any, add: Any, wire: Any, run_and_wait: Any
) -> None:
    a = add("image.constant", 0, 0, width=8, height=8)
    b = add("image.invert", 250, 0)
    c = add("image.save", 500, 0, path="never.png")
    wire(a, "image", b, "image")
    wire(b, "image", c, "image")
    outcome = run_and_wait([b])
    assert set(outcome.result.executed) == {a, b}
    assert not (Path(window.settings.output_dir) / "never.png").exists()
    item = window.scene.nodes[c]
    assert item.status == "skipped"  # left out, and the node says why
    assert "selected nodes do not need it" in item.toolTip()
