"""Files: save/load round trip, autosave and crash recovery, prompts, drops, recent, examples."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image as PILImage
from PIL.PngImagePlugin import PngInfo
from PySide6.QtCore import QMimeData, QPoint, QPointF, Qt, QUrl
from PySide6.QtGui import QDropEvent

from fathom.app.commands import SetParam
from fathom.app.files import examples
from fathom.engine.graphfile import load

ROOT = Path(__file__).resolve().parents[2]


def build(window: Any, add: Any, wire: Any) -> dict[str, str]:
    a = add("image.constant", 0, 0, width=8, height=8, color=[0.1, 0.2, 0.3, 1.0])
    inv = add("image.invert", 250, 0)
    save = add("image.save", 500, 0, path="o.png")
    wire(a, "image", inv, "image")
    wire(inv, "image", save, "image")
    s = window.scene
    s.add_frame("Source", around=[a])
    s.add_comment("inverted on purpose", QPointF(0, -150))
    s.add_reroute(next(e for e in window.doc.graph.edges if e.dst == save), QPointF(420, 120))
    return {"a": a, "inv": inv, "save": save}


def test_save_load_round_trip(
    qtbot: Any, window: Any, add: Any, wire: Any, tmp_path: Path, test_registry: Any, settings: Any
) -> None:
    from fathom.app.main_window import MainWindow

    build(window, add, wire)
    path = tmp_path / "g.json"
    assert window.files.save_as(path)
    assert not window.doc.modified and window.windowTitle().startswith("g.json —")
    first = path.read_bytes()
    other = MainWindow(registry=test_registry, settings=settings)
    qtbot.addWidget(other)
    assert other.files.open(path)
    assert other.doc.document() == window.doc.document()
    assert set(other.scene.edges) == set(window.scene.edges)
    assert len(other.scene.groups) == len(other.scene.comments) == len(other.scene.reroutes) == 1
    assert other.files.save()
    assert path.read_bytes() == first  # save → load → save is byte-identical
    assert Path(str(path) + ".bak").exists()  # the engine's atomic save kept the old file
    assert str(path.resolve()) in settings.recent_files()
    other.close()


def test_unsaved_changes_prompt(window: Any, add: Any, tmp_path: Path) -> None:
    add("image.constant")
    asked: list[str] = []
    window.files.ask_unsaved = lambda: asked.append("?") or "cancel"
    assert not window.files.new()
    assert len(window.doc.graph.nodes) == 1 and asked
    window.files.ask_unsaved = lambda: "save"
    window.files.ask_save_path = lambda: tmp_path / "kept"
    assert window.files.new()
    assert (tmp_path / "kept.json").exists() and not window.doc.graph.nodes
    assert load(tmp_path / "kept.json").nodes["constant1"].type == "image.constant"


def test_autosave_timer_writes_recovery_and_clean_close_removes_it(
    qtbot: Any, window: Any, add: Any
) -> None:
    files = window.files
    files.autosave_timer.setInterval(50)
    assert not files.recovery_file().exists()  # nothing to save yet
    add("image.constant")
    qtbot.waitUntil(files.recovery_file().exists, timeout=3000)
    record = json.loads(files.recovery_file().read_text())
    assert record["graph"]["nodes"][0]["type"] == "image.constant"
    # A live session's recovery file is never offered to another window.
    assert files.recovery_file() not in files.orphaned_recoveries()
    window.doc.mark_saved()
    assert not files.recovery_file().exists()


CRASHING_SESSION = textwrap.dedent("""
    import os, sys
    os.environ["QT_QPA_PLATFORM"] = "offscreen"
    from PySide6.QtWidgets import QApplication
    from fathom.app.main_window import MainWindow
    from fathom.app.settings import Settings
    from fathom.app.commands import SetParam
    app = QApplication([])
    w = MainWindow(settings=Settings(sys.argv[1]))
    nid = w.editing.add_node("image.constant", (10.0, 20.0))
    w.doc.undo_stack.push(SetParam(w.doc, nid, "width", 77))
    assert w.files.autosave_now()
    os._exit(3)  # a crash: no close, no cleanup
""")


def test_recovery_after_a_crash(
    qtbot: Any, tmp_path: Path, test_registry: Any, settings: Any
) -> None:
    from fathom.app.main_window import MainWindow

    proc = subprocess.run(
        [sys.executable, "-c", CRASHING_SESSION, str(tmp_path / "settings.ini")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 3, proc.stderr
    assert len(list(Path(settings.recovery_dir).glob("*.json"))) == 1
    w = MainWindow(registry=test_registry, settings=settings)
    qtbot.addWidget(w)
    offered: list[dict] = []
    w.files.ask_restore = lambda record: offered.append(record) or True
    assert w.files.offer_restore()
    assert offered and offered[0]["path"] is None
    assert w.doc.graph.nodes["constant1"].params["width"] == 77
    assert w.doc.modified  # restored work is unsaved work
    assert "constant1" in w.scene.nodes
    assert not list(Path(settings.recovery_dir).glob("*.json"))
    assert not w.files.offer_restore()  # offered once
    w.doc.mark_saved()
    w.close()


def test_dropping_an_image_makes_a_load_node(qtbot: Any, window: Any, tmp_path: Path) -> None:
    img = tmp_path / "photo.png"
    PILImage.fromarray(np.zeros((4, 4, 3), np.uint8)).save(img)
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(img))])
    vp = window.view.viewport()
    at = QPoint(200, 150)
    event = QDropEvent(
        at, Qt.DropAction.CopyAction, mime, Qt.MouseButton.NoButton, Qt.KeyboardModifier.NoModifier
    )
    window.view.dropEvent(event)
    (nid,) = window.doc.graph.nodes
    inst = window.doc.graph.nodes[nid]
    assert inst.type == "image.load"
    assert Path(inst.params["path"]).resolve() == img.resolve()
    pos = window.view.mapToScene(at)
    assert window.doc.node_pos(nid) == (round(pos.x(), 2), round(pos.y(), 2))
    assert vp is not None
    window.doc.undo_stack.undo()
    assert not window.doc.graph.nodes


def test_dropping_a_fathom_png_restores_its_graph(window: Any, tmp_path: Path) -> None:
    graph = (ROOT / "assets" / "graphs" / "depth_tools.json").read_text()
    info = PngInfo()
    info.add_text("fathom.graph", graph)
    png = tmp_path / "render.png"
    PILImage.fromarray(np.zeros((4, 4, 3), np.uint8)).save(png, pnginfo=info)
    window.files.drop([png], (0.0, 0.0))
    assert "normals" in window.doc.graph.nodes
    assert window.doc.path is None  # the picture is not overwritten by Save
    assert window.doc.base_dir == tmp_path.resolve()


def test_examples_menu_lists_and_opens_every_example(window: Any) -> None:
    titles = [a.text() for a in window.menus.examples_menu.actions()]
    assert len(titles) == len(examples()) >= 2 and "DepthFusion demo" in titles
    for action, path in zip(window.menus.examples_menu.actions(), examples(), strict=True):
        action.trigger()
        assert len(window.scene.nodes) == len(load(path).nodes)
        assert window.doc.path is None and window.doc.base_dir == path.parent.resolve()


def test_save_as_elsewhere_keeps_input_paths_valid(window: Any, tmp_path: Path) -> None:
    demo = ROOT / "assets" / "graphs" / "depthfusion_demo.json"
    assert window.files.open_example(demo)
    target = tmp_path / "mine" / "demo.json"
    target.parent.mkdir()
    assert window.files.save_as(target)
    saved = load(target)
    rgb = saved.nodes["scene_rgb"].params["path"]
    assert (target.parent / rgb).resolve() == (ROOT / "assets" / "scene" / "rgb.png").resolve()
    assert saved.nodes["save_mesh"].params["path"] == "scene_mesh.glb"  # outputs untouched
    # One undo step puts the original relative paths back.
    window.doc.undo_stack.undo()
    assert window.doc.graph.nodes["scene_rgb"].params["path"] == "../scene/rgb.png"


def test_save_as_elsewhere_keeps_model_and_student_folders_valid(
    window: Any, tmp_path: Path
) -> None:
    """A model picked inside the project is stored relative to the graph, like a clip: Save As
    rewrites it, and the student folder; a hub id or a name that is no folder stays."""
    from fathom.engine.graph import Graph
    from fathom.engine.graphfile import save

    project = tmp_path / "project"
    (project / "models" / "da").mkdir(parents=True)
    g = Graph()
    g.add_node("video.depth", "mine", {"model": "models/da", "student": "students/da"})
    g.add_node("video.depth", "hub", {"model": "depth-anything/Depth-Anything-V2-Small-hf"})
    save(g, project / "graph.json")
    assert window.files.open(project / "graph.json", ask=False)
    target = tmp_path / "elsewhere" / "graph.json"
    target.parent.mkdir()
    assert window.files.save_as(target)
    saved = load(target)
    assert saved.nodes["mine"].params["model"] == "../project/models/da"
    assert saved.nodes["mine"].params["student"] == "../project/students/da"
    assert saved.nodes["hub"].params["model"] == "depth-anything/Depth-Anything-V2-Small-hf"


def test_recent_files_menu(window: Any, add: Any, tmp_path: Path) -> None:
    add("image.constant")
    for name in ("one.json", "two.json"):
        assert window.files.save_as(tmp_path / name)
    window.menus.fill_recent()
    names = [Path(a.text()).name for a in window.menus.recent_menu.actions()]
    assert names[:2] == ["two.json", "one.json"]
    window.doc.undo_stack.push(SetParam(window.doc, "constant1", "width", 3))
    window.menus.recent_menu.actions()[1].trigger()  # the prompt answers "discard"
    assert window.doc.path.name == "one.json"
    assert os.path.basename(str(window.doc.path)) == "one.json"
