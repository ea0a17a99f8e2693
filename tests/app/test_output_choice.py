"""The inspector's Output choice: picking another output of a multi-output node shows it in
the preview at once (it used to wait for the Preview button), and the choice stays with the
node when the selection moves away and back or the graph runs again."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QPlainTextEdit

from fathom.engine.imaging.codecs import write_image


def test_choosing_an_output_updates_the_preview_at_once(
    qtbot: Any, window: Any, add: Any, run_and_wait: Any, tmp_path: Path
) -> None:
    picture = tmp_path / "wide.png"
    write_image(picture, np.full((6, 10, 3), 0.5, np.float32), "png")
    load = add("image.load", 0, 0, path=str(picture))
    other = add("image.constant", 0, 200, width=4, height=4)
    assert run_and_wait([load, other]).result.ok
    window.scene.select_nodes([load])
    assert window.preview.kind == "image"
    combo = window.inspector.output_choice
    assert combo.currentData() == "image"
    combo.setFocus()
    qtbot.keyClick(combo, Qt.Key.Key_Down)  # image -> mask
    assert combo.currentData() == "mask"
    assert window.preview.kind == "image" and "mask" in window.preview.windowTitle()
    qtbot.keyClick(combo, Qt.Key.Key_Down)  # mask -> width
    assert combo.currentData() == "width"
    text = window.preview.current_panel()
    assert isinstance(text, QPlainTextEdit) and text.toPlainText() == "10"
    # The choice stays with the node: away and back, and after another run.
    window.scene.select_nodes([other])
    assert window.preview.kind == "image"
    window.scene.select_nodes([load])
    assert window.inspector.output_choice.currentData() == "width"
    assert window.preview.current_panel().toPlainText() == "10"
    run_and_wait([load])
    assert window.preview.kind == "text" and window.preview.current_panel().toPlainText() == "10"
