"""Save nodes show what they wrote: the file read back from disk, its path, and buttons that
open it or its folder (they used to preview only the path string)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PySide6.QtCore import Qt, QUrl
from PySide6.QtGui import QDesktopServices

from fathom.app.preview.image_view import ImagePanel

#: Not a multiple of 1/255: the picture read back from the 8-bit PNG differs from the value the
#: node received, so the test can tell which one the preview shows.
LEVEL = 0.123


def shown_image(window: Any) -> np.ndarray | None:
    panel = window.preview.current_panel()
    return panel.view.image() if isinstance(panel, ImagePanel) else None


def first_pixel(window: Any) -> float | None:
    pixels = shown_image(window)
    return None if pixels is None else float(pixels[0, 0, 0])


def test_a_save_image_node_previews_the_file_it_wrote_and_opens_it(
    qtbot: Any, window: Any, add: Any, wire: Any, run_and_wait: Any, monkeypatch: Any
) -> None:
    color = add("image.constant", 0, 0, width=12, height=8, color=(LEVEL, LEVEL, LEVEL, 1.0))
    save = add("image.save", 300, 0, path="written.png")
    wire(color, "image", save, "image")
    assert run_and_wait().result.ok
    written = Path(window.settings.output_dir) / "written.png"
    assert written.is_file()
    window.scene.select_nodes([save])
    from_file = round(LEVEL * 255) / 255
    qtbot.waitUntil(lambda: first_pixel(window) == pytest.approx(from_file, abs=1e-4))
    assert shown_image(window).shape[:2] == (8, 12)
    assert "written.png" in window.preview.windowTitle()
    bar = window.preview.written
    assert bar.isVisible() and bar.paths() == [str(written)]
    assert bar.current() == str(written) and bar.files.currentText() == "written.png"
    assert bar.files.toolTip() == str(written)
    opened: list[QUrl] = []
    monkeypatch.setattr(QDesktopServices, "openUrl", lambda url: opened.append(url) or True)
    qtbot.mouseClick(bar.open_button, Qt.MouseButton.LeftButton)
    qtbot.mouseClick(bar.folder_button, Qt.MouseButton.LeftButton)
    assert [Path(u.toLocalFile()) for u in opened] == [written, written.parent]
    # Another node's preview has no file bar; back on the save node it returns.
    window.scene.select_nodes([color])
    assert not bar.isVisible()
    assert shown_image(window)[0, 0, 0] == pytest.approx(LEVEL, abs=1e-6)
    window.scene.select_nodes([save])
    assert bar.isVisible()


def test_a_save_node_that_has_not_run_says_so(qtbot: Any, window: Any, add: Any) -> None:
    save = add("image.save", 0, 0, path="later.png")
    window.scene.select_nodes([save])
    assert window.preview.kind == "empty"
    assert "press F5" in window.preview.message()
    assert not window.preview.written.isVisible()


def test_a_show_node_previews_the_value_it_received(
    qtbot: Any, window: Any, add: Any, wire: Any, run_and_wait: Any
) -> None:
    color = add("image.constant", 0, 0, width=4, height=4, color=(0.5, 0.25, 0.0, 1.0))
    node = add("preview.show", 300, 0)
    wire(color, "image", node, "value")
    assert run_and_wait().result.ok
    window.scene.select_nodes([node])
    pixels = shown_image(window)
    assert pixels is not None and pixels[0, 0, 1] == pytest.approx(0.25)


def test_the_video_demo_save_node_plays_the_file_it_wrote(
    qtbot: Any, window: Any, run_and_wait: Any
) -> None:
    from fathom.app.preview.video_player import VideoPlayer

    demo = Path(__file__).resolve().parents[2] / "assets" / "graphs" / "video_edit_demo.json"
    assert window.files.open_example(demo)
    save = next(
        n
        for n, inst in window.doc.graph.nodes.items()
        if inst.type == "video.save" and inst.params.get("path", "").endswith(".mp4")
    )
    assert run_and_wait(timeout=120_000).result.ok
    window.scene.select_nodes([save])
    written = Path(window.settings.output_dir) / window.doc.graph.nodes[save].params["path"]
    assert window.preview.written.paths() == [str(written)]
    qtbot.waitUntil(
        lambda: (
            isinstance(window.preview.current_panel(), VideoPlayer)
            and f"wrote {written.name}" in window.preview.windowTitle()
            and "reading" not in window.preview.windowTitle()
        ),
        timeout=20_000,
    )
    player = window.preview.current_panel()
    assert player.video is not None and player.video.source == str(written)
