"""The text-to-3D example in the studio, driven as a user would: open it from the examples,
point its models at tiny local ones (the model picker's edit), run it, then select nodes: the
generated views show as a contact sheet (in the preview dock and on the node) and the mesh as a
textured 3D preview."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from object_models import build_tiny_depth

from fathom.app.preview.image_view import ImagePanel
from fathom.app.preview.mesh_view import MeshPanel
from fathom.engine.types import Views

ROOT = Path(__file__).resolve().parents[2]


def _set(window: Any, node: str, **params: Any) -> None:
    from fathom.app.commands import SetParam

    for name, value in params.items():
        window.doc.undo_stack.push(SetParam(window.doc, node, name, value))


def test_text_to_3d_runs_and_previews_its_views_and_textured_mesh(
    qtbot: Any, window: Any, run_and_wait: Any, tiny_sd: Path, tmp_path: Path
) -> None:
    window.missing_models.ask = lambda missing: None  # offline: the hub models are absent
    assert window.files.open_example(ROOT / "assets" / "graphs" / "text_to_3d.json")
    depth = build_tiny_depth(tmp_path / "depth")
    _set(window, "views", model=str(tiny_sd), width=64, height=64, steps=1)
    _set(window, "mesh", depth_model=str(depth), resolution=24, texture_size=64, faces=1500)
    outcome = run_and_wait(["save_mesh", "save_views"], timeout=120_000)
    assert outcome.result.ok, {n: r.error for n, r in outcome.result.records.items()}
    views = outcome.result.values["views"]["views"]
    assert isinstance(views, Views) and len(views) == 6

    window.scene.select_nodes(["views"])
    dock = window.preview
    qtbot.waitUntil(lambda: dock.kind == "image" and dock.idle, timeout=10_000)
    panel = dock.current_panel()
    assert isinstance(panel, ImagePanel)
    sheet = panel.view.image()
    assert sheet is not None and sheet.shape[:2] == (128, 192)  # 2 rows × 3 views of 64²
    tile = views.images[4].rgb()[40:60, 40:60]  # away from the label in the corner
    np.testing.assert_allclose(sheet[64 + 40 : 64 + 60, 64 + 40 : 64 + 60, :3], tile, atol=1e-6)
    assert panel.info.text() == "6 views, 64×64 each"

    bodies = window.scene.bodies
    qtbot.waitUntil(
        lambda: bodies.thumbs.idle and bodies.bodies["views"].thumb is not None, timeout=10_000
    )
    thumb = bodies.bodies["views"].thumb
    assert thumb is not None and (thumb.width(), thumb.height()) == (96, 64)  # the sheet, small

    window.scene.select_nodes(["mesh"])
    qtbot.waitUntil(lambda: dock.kind == "mesh", timeout=10_000)
    mesh_panel = dock.current_panel()
    assert isinstance(mesh_panel, MeshPanel)
    qtbot.waitUntil(lambda: mesh_panel.idle and "texture" in mesh_panel.info.text(), timeout=20_000)
    assert "64×64 texture" in mesh_panel.info.text()
