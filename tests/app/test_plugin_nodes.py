"""A plugin's node gets file drops, a header colour, file dialogs and viewers from its own
metadata, through the same code paths the built-in nodes use: no GUI edits needed."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import trimesh
from PySide6.QtCore import QMimeData, QPoint, Qt, QUrl
from PySide6.QtGui import QColor, QDropEvent

from fathom.app.preview.dock import panel_kind
from fathom.engine.node import Node, Output, Param
from fathom.engine.registry import Registry
from fathom.engine.types import RGBD, Camera, Depth, Image, InputFile, Mesh, PointCloud


class XyzLoad(Node):
    """Loads a scan from an .xyz file (a stand-in for a third-party loader)."""

    type_id = "acme.xyz_load"
    title = "XYZ Scan"
    category = "scans"
    color = "#123456"
    outputs = (
        Output("scan", Mesh),
        Output("relief", Depth, "heights, best read as a grey picture", viewers=("image",)),
    )
    params = (Param("source", InputFile, "scan.xyz", "scan file", suffixes=(".xyz",)),)
    opens = (".xyz",)

    def run(self, ctx: Any, source: str) -> dict:
        raise NotImplementedError


@pytest.fixture
def plugin_window(qtbot: Any, settings: Any) -> Any:
    from fathom.app.main_window import MainWindow

    registry = Registry()  # a fresh one: nothing built in, only the plugin
    registry.register(XyzLoad)
    w = MainWindow(registry=registry, settings=settings)
    w.files.ask_unsaved = lambda: "discard"
    qtbot.addWidget(w)
    w.show()
    yield w
    w.runs.shutdown()
    w.doc.mark_saved()
    w.close()


def drop(window: Any, paths: list[Path], at: QPoint) -> None:
    """Drop files on the canvas as a file manager does: through the view's drop event."""
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(p)) for p in paths])
    event = QDropEvent(
        at, Qt.DropAction.CopyAction, mime, Qt.MouseButton.NoButton, Qt.KeyboardModifier.NoModifier
    )
    window.view.dropEvent(event)


def test_a_plugin_node_gets_file_drops(plugin_window: Any, tmp_path: Path) -> None:
    window = plugin_window
    window.doc.set_path(tmp_path / "g.json")
    scan, other = tmp_path / "media" / "room.XYZ", tmp_path / "notes.abc"
    scan.parent.mkdir()
    scan.write_text("0 0 0\n")
    other.write_text("?")
    messages: list[str] = []
    window.files.message.connect(messages.append)
    drop(window, [scan, other], QPoint(120, 80))
    (nid,) = window.doc.graph.nodes
    inst = window.doc.graph.nodes[nid]
    assert inst.type == "acme.xyz_load"
    assert inst.params == {"source": "media/room.XYZ"}  # the declared input-file parameter
    assert any("notes.abc" in m and "no node opens .abc files" in m for m in messages)
    window.doc.undo_stack.undo()
    assert not window.doc.graph.nodes


def test_a_plugin_node_gets_its_colour_dialog_and_viewers(
    qtbot: Any, plugin_window: Any, monkeypatch: Any
) -> None:
    window = plugin_window
    nid = window.editing.add_node("acme.xyz_load", (0, 0))
    assert window.scene.nodes[nid].header_color == QColor("#123456")
    window.scene.select_nodes([nid])
    insp = window.inspector
    assert insp.open360 is not None  # its Mesh output is shown in the 360° viewer

    asked: list[tuple[str, str]] = []

    class Dialogs:
        @staticmethod
        def getOpenFileName(parent: Any, title: str, start: str, filter: str) -> tuple:  # noqa: N802
            asked.append(("open", filter))
            return str(Path(start) / "scan.xyz"), filter

    monkeypatch.setattr("fathom.app.param_widgets.QFileDialog", Dialogs)
    insp.pick_path = insp._dialog_pick
    insp.widgets["source"].browse()
    assert asked == [("open", "source files (*.xyz);;All files (*)")]
    assert window.doc.graph.nodes[nid].params["source"] == "scan.xyz"

    box = Mesh(trimesh.creation.box())
    relief = Depth(np.linspace(0, 1, 64, dtype=np.float32).reshape(8, 8), kind="metric")
    window.session.outputs[nid] = {"scan": box, "relief": relief}
    assert window.previews.show_output(nid, "scan") and window.preview.kind == "mesh"
    # The 3D panel's own "360°" button reaches the window's viewer through a signal.
    window.preview.panel("mesh").open360_button.click()
    assert window.opener360.viewer is not None and window.opener360.viewer.isVisible()
    window.opener360.viewer.close()
    assert window.previews.show_output(nid, "relief") and window.preview.kind == "image"
    assert window.opener360.open(nid)
    assert window.opener360.viewer is not None and window.opener360.viewer.isVisible()
    window.opener360.viewer.close()


def test_the_preview_panel_comes_from_declared_viewers() -> None:
    img = Image(np.zeros((4, 4, 3), np.float32))
    depth = Depth(np.ones((4, 4), np.float32), kind="metric")
    assert panel_kind(img) == "image" and panel_kind(depth) == "depth"
    assert panel_kind(RGBD(img, depth)) == "mesh"  # its type: ("mesh", "360")
    assert panel_kind(PointCloud(np.zeros((3, 3), np.float32))) == "mesh"
    assert panel_kind(depth, ("360", "image")) == "image"  # an output's own, panels only
    assert panel_kind(Camera.from_fov(8, 8, 60.0)) == panel_kind(3) == "text"
    assert panel_kind(None) == "empty"
