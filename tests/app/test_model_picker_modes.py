"""The model picker says which models a node's modes cannot run (``Node.mode_models``): each
row, the list's footer and the status line follow the mode chosen now, and the status line for
a refused pair is the message the node's own check gives before a run."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PySide6.QtCore import Qt
from videoclips import make_clip

from fathom.app.commands import SetParam
from fathom.app.model_picker import ModelPicker, mode_note, modes_needs
from fathom.engine.context import RunOptions
from fathom.engine.errors import GraphInvalid
from fathom.engine.executor import Executor
from fathom.engine.graph import Graph
from fathom.engine.models.catalog import ModelEntry
from fathom.engine.node import ModelsFor, Node, Output, Param
from fathom.engine.types import Enum, Image, String

VIDEO_DEPTH = "video.depth"


class Modal(Node):
    type_id = "test.modal"
    outputs = (Output("image", Image),)
    mode_param = "speed"
    params = (
        Param("model", String, ""),
        Param("speed", Enum, "any", choices=("any", "fast", "faster")),
    )
    mode_models = dict.fromkeys(("fast", "faster"), ModelsFor(("quick",), "Quick", "runs Quick"))


def test_a_node_declares_which_modes_run_which_models() -> None:
    slow = ModelEntry(
        "slow", "slow", "/m/slow", "depth", "depth", 1, "models folder", "/m", model_type="slowx"
    )
    quick = ModelEntry(
        "q", "q", "/m/q", "depth", "depth", 1, "models folder", "/m", model_type="quick"
    )
    assert Modal.modes_refusing("slowx") == ("fast", "faster")
    assert Modal.modes_refusing("quick") == () and Modal.modes_refusing(None) == ()
    assert Modal.mode_model_problem("fast", "slowx", "slow") == (
        "speed 'fast' runs Quick; slow is a slowx model",
        "use speed 'any', or a Quick model",
    )
    assert mode_note(Modal, slow, "any") == (
        "speed 'any' only",
        "speed fast and faster need a Quick model.",
    )
    short, full = mode_note(Modal, slow, "faster")
    assert short == "speed 'faster' needs a Quick model"
    assert full == (
        "speed 'faster' runs Quick; slow is a slowx model. Fix: use speed 'any', or a Quick model."
    )
    assert mode_note(Modal, quick, "fast") == ("", "")
    assert mode_note(Node, slow, "fast") == ("", "")  # no modes declared: nothing to say
    assert modes_needs(Modal) == "speed fast and faster need a Quick model."


def _depth_folder(folder: Path, arch: str, model_type: str) -> Path:
    from safetensors.numpy import save_file

    folder.mkdir(parents=True)
    config = {"architectures": [arch], "model_type": model_type}
    (folder / "config.json").write_text(json.dumps(config))
    save_file({"w": np.zeros(4, np.float32)}, str(folder / "model.safetensors"))
    return folder


@pytest.fixture
def depth_models(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A models folder with a Depth Anything and a DPT folder (configs and a token weight)."""
    from huggingface_hub import constants

    folder = tmp_path / "models"
    _depth_folder(folder / "da", "DepthAnythingForDepthEstimation", "depth_anything")
    _depth_folder(folder / "dpt", "DPTForDepthEstimation", "dpt")
    monkeypatch.setenv("FATHOM_MODELS", str(folder))
    monkeypatch.setenv("FATHOM_SETTINGS", str(tmp_path / "absent.conf"))
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hf-cache"))
    return folder


def _rows(picker: ModelPicker) -> dict[str, str]:
    items = [picker.list.list.item(i) for i in range(picker.list.list.count())]
    return {str(it.data(Qt.ItemDataRole.UserRole)): it.text() + "\n" + it.toolTip() for it in items}


def test_the_depth_picker_says_which_temporal_modes_a_model_cannot_run(
    qtbot: Any, depth_models: Path, window: Any, add: Any, tmp_path: Path
) -> None:
    nid = add(VIDEO_DEPTH, model="dpt")
    window.scene.select_nodes([nid])
    picker = window.inspector.widgets["model"]
    assert isinstance(picker, ModelPicker)
    window.models.ensure()
    qtbot.waitUntil(lambda: window.models.entries is not None and not window.models.loading)
    picker.set_open(True)
    assert sorted(picker.list.references()) == ["da", "dpt"]
    # temporal 'off': DPT runs, but only there; Depth Anything runs every mode.
    rows = _rows(picker)
    assert "temporal 'off' only" in rows["dpt"]
    assert "reuse, resq and delta need a Depth Anything (V1/V2) model" in rows["dpt"]
    assert "only" not in rows["da"].split("\n")[1] and "need" not in rows["da"]
    assert "temporal reuse, resq and delta need a Depth" in picker.list.footer.text()
    assert "need a Depth Anything" in picker.status.text()

    # temporal 'reuse': the row and the status line say what the check would refuse.
    window.doc.undo_stack.push(SetParam(window.doc, nid, "temporal", "reuse"))
    rows = _rows(picker)
    assert "temporal 'reuse' needs a Depth Anything (V1/V2) model" in rows["dpt"]
    make_clip(tmp_path / "c.mp4", frames=2)
    g = Graph()
    g.add_node("video.load", "src", {"path": "c.mp4"})
    g.add_node(VIDEO_DEPTH, "n", {"model": str(depth_models / "dpt"), "temporal": "reuse"})
    g.connect("src", "video", "n", "video")
    options = RunOptions(device="cpu", output_dir=tmp_path, base_dir=tmp_path)
    with pytest.raises(GraphInvalid) as refused:
        Executor(window.registry).plan(g, options=options)
    (problem,) = [p for p in refused.value.problems if p.port == "temporal"]
    assert problem.message in picker.status.text() and problem.fix in picker.status.text()

    # A Depth Anything model: nothing to warn about.
    picker.choose_model("da")
    assert "Depth Anything" not in picker.status.text()
    window.doc.undo_stack.push(SetParam(window.doc, nid, "temporal", "off"))
    picker.choose_model("dpt")
    assert "layer by layer" not in picker.status.text()
