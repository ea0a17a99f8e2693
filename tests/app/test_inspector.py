"""The inspector builds its widgets from Param specs and validates as the engine does."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import trimesh

from fathom.app.param_widgets import (
    BoolWidget,
    ChoiceWidget,
    ColorWidget,
    NumberWidget,
    PathWidget,
    SeedWidget,
    TextWidget,
    make_widget,
)
from fathom.engine.node import Param
from fathom.engine.types import Enum, Float, Int, Mesh, Seed, String


def test_widgets_follow_the_declared_specs(window: Any, add: Any) -> None:
    nid = add("image.save", 0, 0)
    window.scene.select_nodes([nid])
    w = window.inspector.widgets
    assert isinstance(w["path"], PathWidget)
    assert isinstance(w["format"], ChoiceWidget)
    assert [w["format"].combo.itemText(i) for i in range(w["format"].combo.count())] == [
        "auto",
        "png",
        "jpeg",
        "webp",
        "exr",
    ]
    assert isinstance(w["quality"], NumberWidget) and w["quality"].slider is not None
    assert (w["quality"].spin.minimum(), w["quality"].spin.maximum()) == (1, 100)
    assert isinstance(w["embed_graph"], BoolWidget) and w["embed_graph"].box.isChecked()
    c = add("image.constant", 0, 300)
    window.scene.select_nodes([c])
    assert isinstance(window.inspector.widgets["color"], ColorWidget)
    t = add("value.string", 0, 600)
    window.scene.select_nodes([t])
    assert isinstance(window.inspector.widgets["value"], TextWidget)
    assert window.inspector.widgets["value"].text.__class__.__name__ == "_PromptEdit"


def test_refused_values_show_the_engine_message_and_change_nothing(qtbot: Any) -> None:
    spec = Param("scale", Float, 1.0, "", min=0.5, max=2.0)
    widget = make_widget(spec, lambda s: None)
    qtbot.addWidget(widget)
    got: list[Any] = []
    widget.edited.connect(lambda value, merge: got.append(value))
    assert not widget.offer(5.0)
    assert "above the maximum" in widget.error.text() and not widget.error.isHidden()
    assert widget.offer(1.5) and got == [1.5] and widget.error.isHidden()
    seed = make_widget(Param("seed", Seed, 0), lambda s: None)
    qtbot.addWidget(seed)
    seed.edit.setText("-3")
    seed.edit.editingFinished.emit()
    assert "seed" in seed.error.text()
    choice = make_widget(Param("mode", Enum, "a", choices=("a", "b")), lambda s: None)
    qtbot.addWidget(choice)
    assert not choice.offer("c") and "one of" in choice.error.text()


def test_seed_randomize_and_lock(qtbot: Any, window: Any, add: Any) -> None:
    nid = add("depth.estimate", 0, 0)
    window.scene.select_nodes([nid])
    seed = window.inspector.widgets["seed"]
    assert isinstance(seed, SeedWidget)
    seed.dice.click()
    first = window.doc.graph.nodes[nid].params["seed"]
    assert isinstance(first, int) and first == int(seed.edit.text())
    seed.lock.setChecked(True)
    assert not seed.dice.isEnabled() and seed.edit.isReadOnly()
    seed.randomize()
    assert window.doc.graph.nodes[nid].params["seed"] == first
    # The lock is editor data: it survives reselection and never enters the node's params.
    window.scene.clearSelection()
    window.scene.select_nodes([nid])
    assert window.inspector.widgets["seed"].lock.isChecked()
    assert window.doc.graph.ui["nodes"][nid]["locked"] == ["seed"]


def test_path_picker_stores_paths_relative_to_the_graph(
    window: Any, add: Any, tmp_path: Path
) -> None:
    window.doc.set_path(tmp_path / "g.json")
    nid = add("image.load", 0, 0)
    window.scene.select_nodes([nid])
    from fathom.app.document import relative_to

    window.inspector.pick_path = lambda spec: relative_to(
        str(tmp_path / "media" / "a.png"), window.doc.base_dir
    )
    window.inspector.widgets["path"].browse()
    assert window.doc.graph.nodes[nid].params["path"] == "media/a.png"


def test_flags_title_and_number_edits(window: Any, add: Any) -> None:
    nid = add("image.resize", 0, 0)
    window.scene.select_nodes([nid])
    insp = window.inspector
    insp.bypass.setChecked(True)
    assert window.doc.graph.nodes[nid].bypass and window.scene.nodes[nid].bypass
    insp.title.setText("Thumbnail")
    insp.title.editingFinished.emit()
    assert window.scene.nodes[nid].title == "Thumbnail"
    insp.widgets["width"].spin.setValue(320)
    assert window.doc.graph.nodes[nid].params["width"] == 320
    window.doc.undo_stack.undo()
    assert insp.widgets["width"].spin.value() == 512


def test_outputs_preview_and_360_viewer(qtbot: Any, window: Any, add: Any) -> None:
    nid = add("mesh.load", 0, 0)
    window.scene.select_nodes([nid])
    assert window.inspector.open360 is not None
    box = trimesh.creation.box()
    box.visual.vertex_colors = np.tile([200, 120, 40, 255], (len(box.vertices), 1))
    window.session.outputs[nid] = {"mesh": Mesh(box)}
    shown: list[str] = []
    window.preview.show_value = lambda value, title="": shown.append(title)
    window.inspector.show_output.emit(nid, "mesh")
    assert shown == [f"{nid}.mesh"]
    assert window.opener360.open(nid, "mesh")
    assert window.opener360.viewer is not None and window.opener360.viewer.isVisible()
    window.opener360.viewer.close()
    plain = add("image.invert", 0, 300)
    window.scene.select_nodes([plain])
    assert window.inspector.open360 is None


def test_unknown_kinds_fall_back_to_validated_text(qtbot: Any) -> None:
    spec = Param("name", String, "x")
    w = make_widget(spec, lambda s: None)
    qtbot.addWidget(w)
    assert isinstance(w, TextWidget)
    n = make_widget(Param("count", Int, 3), lambda s: None)
    qtbot.addWidget(n)
    assert isinstance(n, NumberWidget) and n.slider is None


class _FakeViewer:
    def __init__(self) -> None:
        self.calls: list[tuple[str, Any]] = []
        self.shown = False

    def show_panorama(self, image: Any, depth: Any) -> None:
        self.calls.append(("panorama", (image, depth)))

    def show_mesh(self, mesh: Any) -> None:
        self.calls.append(("mesh", mesh))

    def show(self) -> None:
        self.shown = True

    def raise_(self) -> None:
        pass


def test_open_in_360_picks_what_to_show(qtbot: Any, window: Any, add: Any, wire: Any) -> None:
    from fathom.engine.types import RGBD, Depth, Image

    fake = _FakeViewer()
    window.opener360.viewer_window = lambda: fake
    img = add("image.load", 0, 0)
    dep = add("depth.load", 0, 200)
    pano = add("view.panorama360", 300, 0)
    wire(img, "image", pano, "image")
    wire(dep, "depth", pano, "depth")
    eq_image = Image(np.zeros((32, 64, 3), np.float32))
    eq_depth = Depth(np.ones((32, 64), np.float32), kind="metric")
    window.session.outputs.update(
        {
            img: {"image": eq_image},
            dep: {"depth": eq_depth},
            pano: {"mesh": Mesh(trimesh.creation.box())},
        }
    )
    assert window.opener360.open(pano) and fake.shown
    assert fake.calls[-1][0] == "panorama" and fake.calls[-1][1][0] is eq_image
    rgbd = add("rgbd.make", 0, 400)
    window.session.outputs[rgbd] = {"rgbd": RGBD(eq_image, eq_depth)}
    assert window.opener360.open(rgbd, "rgbd") and fake.calls[-1][0] == "panorama"
    photo = RGBD(
        Image(np.full((24, 32, 3), 0.5, np.float32)),
        Depth(np.full((24, 32), 2.0, np.float32), kind="metric"),
    )
    window.session.outputs[rgbd] = {"rgbd": photo}
    assert window.opener360.open(rgbd, "rgbd")
    qtbot.waitUntil(lambda: fake.calls[-1][0] == "mesh", timeout=10_000)
    assert len(fake.calls[-1][1].mesh.faces) > 100  # meshed by the geometry library, off-thread
    nothing = add("image.invert", 0, 600)
    assert not window.opener360.open(nothing)


def test_video_map_suggests_the_graphs_subgraphs(qtbot: Any, window: Any) -> None:
    """The map node's subgraph is free text (a library name works too); the inspector offers
    the names it can find."""
    root = Path(__file__).resolve().parents[2]
    assert window.files.open_example(root / "assets" / "graphs" / "video_edit_demo.json")
    window.scene.select_nodes(["grade"])
    widget = window.inspector.widgets["subgraph"]
    completer = widget.text.completer()
    assert completer is not None and "grade" in completer.model().stringList()
    assert "grade" in widget.text.placeholderText()


def test_file_parameters_get_the_dialog_their_kind_declares(qtbot: Any, monkeypatch: Any) -> None:
    """Open dialog filtered to the suffixes for a file a node reads, save dialog for one it
    writes, a folder for a generic path named like one; a sequence also offers a folder."""
    from fathom.app.param_widgets import choose_path, dialog_kind
    from fathom.engine.types import InputFile, OutputFile, PathValue

    asked: list[tuple[str, str]] = []

    class Dialogs:
        @staticmethod
        def getOpenFileName(parent: Any, title: str, start: str, filter: str) -> tuple:  # noqa: N802
            asked.append(("open", filter))
            return "/data/in.png", ""

        @staticmethod
        def getSaveFileName(parent: Any, title: str, start: str, filter: str) -> tuple:  # noqa: N802
            asked.append(("save", filter))
            return "/data/out.glb", ""

        @staticmethod
        def getExistingDirectory(parent: Any, title: str, start: str) -> str:  # noqa: N802
            asked.append(("folder", ""))
            return ""  # cancelled

    monkeypatch.setattr("fathom.app.param_widgets.QFileDialog", Dialogs)
    read = Param("path", InputFile, "a.png", suffixes=(".png", ".jpg"))
    write = Param("path", OutputFile, "a.glb")
    folder = Param("out_dir", PathValue, "out")
    assert [dialog_kind(p) for p in (read, write, folder)] == ["open", "save", "folder"]
    assert choose_path(read, None, "/data") == "/data/in.png"
    assert choose_path(write, None, "/data") == "/data/out.glb"
    assert choose_path(folder, None, "/data") is None
    assert asked == [
        ("open", "path files (*.png *.jpg);;All files (*)"),
        ("save", "All files (*)"),
        ("folder", ""),
    ]
    frames = Param("path", InputFile, "clip.mp4", suffixes=(".mp4",), sequence=True)
    folders: list[str] = []
    widget = make_widget(
        frames, lambda s: None, pick_folder=lambda s: folders.append(s.name) or "shots"
    )
    qtbot.addWidget(widget)
    assert isinstance(widget, PathWidget) and widget.folder_button is not None
    got: list[Any] = []
    widget.edited.connect(lambda value, merge: got.append(value))
    widget.folder_button.click()
    assert folders == ["path"] and got == ["shots"]
    plain = make_widget(read, lambda s: None, pick_folder=lambda s: "x")
    qtbot.addWidget(plain)
    assert plain.folder_button is None  # a single file: no folder button
