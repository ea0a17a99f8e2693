"""The model picker: a node's model parameter lists the local models that fit the node (family,
kind, inpainting), with their size and where they were found; choosing one is an undoable
edit; a hub id not on this machine downloads with progress and cancel; LoRA lines get an
"Add LoRA" list of the LoRAs that fit the node's model; a graph whose models are missing
opens one dialog naming each node, parameter and model."""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PySide6.QtCore import Qt

from fathom.app.missing_models import MissingModel, replace_lora
from fathom.app.model_picker import LoraPicker, ModelPicker, model_kind, model_role
from fathom.app.param_widgets import TextWidget
from fathom.engine.errors import Cancelled, Problem
from fathom.engine.models.pull import PullProgress
from fathom.engine.node import Node, Output, Param
from fathom.engine.types import Image, String

TEXT_TO_IMAGE, INPAINT = "generate.text_to_image", "generate.inpaint"


def xl_width_lora(path: Path) -> Path:
    """A LoRA whose cross-attention takes 64-wide text features (the tiny SDXL's): only its
    header is read when listing, so a small file with the right key names and shapes does."""
    from safetensors.numpy import save_file

    path.parent.mkdir(parents=True, exist_ok=True)
    block = "unet.down_blocks.1.attentions.0.transformer_blocks.0.attn2"
    tensors = {f"{block}.to_k.lora_A.weight": np.zeros((4, 64), np.float32)}
    save_file(tensors, str(path))
    return path


@pytest.fixture
def models(
    tmp_path: Path,
    tiny_sd: Path,
    tiny_sdxl: Path,
    lora_factory: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> Path:
    """A models folder (FATHOM_MODELS) with tiny_sd, tiny_sdxl, a LoRA made for tiny_sd and
    one of the SDXL's width; an empty Hugging Face cache."""
    from huggingface_hub import constants

    folder = tmp_path / "models"
    shutil.copytree(tiny_sd, folder / "sd-tiny")
    shutil.copytree(tiny_sdxl, folder / "xl-tiny")
    (folder / "loras").mkdir()
    shutil.copy(lora_factory(tiny_sd), folder / "loras" / "ink.safetensors")
    xl_width_lora(folder / "loras" / "xl-ink.safetensors")
    monkeypatch.setenv("FATHOM_MODELS", str(folder))
    monkeypatch.setenv("FATHOM_SETTINGS", str(tmp_path / "absent.conf"))
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hf-cache"))
    return folder


CONTROLNET, IP_ADAPTER = "generate.controlnet", "generate.ip_adapter"


@pytest.fixture(scope="module")
def controlnets(
    tiny_sd: Path, tiny_sdxl: Path, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Path]:
    """ControlNet folders made from the tiny SD 1.5 and SDXL UNets (built once)."""
    from diffusers import ControlNetModel, UNet2DConditionModel

    out = {}
    for name, model in (("sd1", tiny_sd), ("sdxl", tiny_sdxl)):
        net = ControlNetModel.from_unet(UNet2DConditionModel.from_pretrained(model / "unet"))
        folder = tmp_path_factory.mktemp("controlnets") / name
        net.save_pretrained(folder, safe_serialization=True)
        out[name] = folder
    return out


@pytest.fixture
def addons(
    models: Path, controlnets: dict[str, Path], tiny_sd: Path, ip_adapter_factory: Any
) -> Path:
    """The models folder with ControlNets in controlnet/ (an SD 1.5 folder, the same as one
    file, an SDXL folder in a subfolder) and an IP-Adapter in ipadapter/ (its image encoder
    beside it)."""
    shutil.copytree(controlnets["sd1"], models / "controlnet" / "depth-sd15")
    weights = controlnets["sd1"] / "diffusion_pytorch_model.safetensors"
    shutil.copy(weights, models / "controlnet" / "canny.safetensors")
    shutil.copytree(controlnets["sdxl"], models / "controlnet" / "xl" / "depth-xl")
    shutil.copytree(ip_adapter_factory(tiny_sd).parent, models / "ipadapter")
    return models


def listed(qtbot: Any, window: Any) -> None:
    window.models.ensure()
    qtbot.waitUntil(lambda: window.models.entries is not None and not window.models.loading)


def select(window: Any, nid: str) -> dict[str, Any]:
    window.scene.select_nodes([nid])
    return window.inspector.widgets


def click(qtbot: Any, button: Any) -> None:
    """A mouse click, once the button is laid out (a row that just appeared is not yet)."""
    qtbot.waitUntil(lambda: button.isVisible() and button.height() > 0)
    qtbot.mouseClick(button, Qt.MouseButton.LeftButton)


def click_row(qtbot: Any, picker: Any, reference: str) -> None:
    """Click the list row of ``reference`` with the mouse, as a user does."""
    widget = picker.list.list
    row = picker.list.references().index(reference)
    rect = widget.visualItemRect(widget.item(row))
    qtbot.mouseClick(widget.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())


def test_model_parameters_are_found_from_node_metadata() -> None:
    class Plain(Node):
        type_id = "test.plain_model"
        outputs = (Output("image", Image),)
        params = (Param("model", String, ""), Param("loras", String, "", multiline=True))

    class Declared(Plain):
        type_id = "test.declared_model"
        params = (Param("checkpoint", String, "", suggest="models"),)

    class WithFamilies(Plain):
        type_id = "test.family_model"
        families = ("sdxl",)

    class Addons(Plain):
        type_id = "test.addon_models"
        params = (
            Param("net", String, "", suggest="controlnet"),
            Param("adapter", String, "", suggest="ip-adapter"),
        )

    assert [model_role(Plain, p) for p in Plain.params] == ["", ""]
    assert model_role(Declared, Declared.params[0]) == "model"
    assert [model_role(WithFamilies, p) for p in WithFamilies.params] == ["model", "loras"]
    assert [model_role(Addons, p) for p in Addons.params] == ["model", "model"]
    assert [model_kind(p) for p in Addons.params] == ["controlnet", "ip-adapter"]
    assert model_kind(Declared.params[0]) == "model"


def test_the_picker_lists_only_the_models_that_fit_the_node(
    qtbot: Any, models: Path, window: Any, add: Any
) -> None:
    nid = add(TEXT_TO_IMAGE)
    widgets = select(window, nid)
    picker = widgets["model"]
    assert isinstance(picker, ModelPicker) and isinstance(widgets["loras"], LoraPicker)
    assert isinstance(widgets["prompt"], TextWidget)  # other text stays text
    listed(qtbot, window)
    picker.choose.click()
    assert not picker.list.isHidden()
    assert picker.list.references() == ["sd-tiny", "xl-tiny"]  # not the LoRAs
    rows = [picker.list.list.item(i).text() for i in range(picker.list.list.count())]
    assert "Stable Diffusion 1.x pipeline" in rows[0] and "MB · models folder" in rows[0]
    assert "SDXL pipeline" in rows[1]
    # An inpainting node runs SD 1.x/2.x inpainting models: none here, and it says why.
    inpaint = select(window, add(INPAINT, 0, 400))["model"]
    inpaint.set_open(True)
    assert inpaint.list.references() == []
    assert "xl-tiny (SDXL)" in inpaint.list.footer.text()


def test_choosing_a_model_is_an_undoable_edit(
    qtbot: Any, models: Path, window: Any, add: Any
) -> None:
    nid = add(TEXT_TO_IMAGE)
    params = window.doc.graph.nodes[nid].params
    default = params["model"]
    picker = select(window, nid)["model"]
    listed(qtbot, window)
    picker.set_open(True)
    click_row(qtbot, picker, "xl-tiny")
    assert params["model"] == "xl-tiny" and picker.list.isHidden()
    assert "SDXL pipeline" in picker.status.text()
    window.doc.undo_stack.undo()
    assert params["model"] == default and picker.text.text() == default
    window.doc.undo_stack.redo()
    assert picker.text.text() == "xl-tiny"


def test_add_lora_lists_the_loras_that_fit_the_nodes_model(
    qtbot: Any, models: Path, window: Any, add: Any
) -> None:
    nid = add(TEXT_TO_IMAGE, model="sd-tiny")
    widgets = select(window, nid)
    listed(qtbot, window)
    loras = widgets["loras"]
    loras.add.click()
    assert loras.list.references() == ["ink"]
    assert "for sd-tiny (Stable Diffusion 1.x)" in loras.list.footer.text()
    click_row(qtbot, loras, "ink")
    assert window.doc.graph.nodes[nid].params["loras"] == "ink:1"
    window.doc.undo_stack.undo()
    assert window.doc.graph.nodes[nid].params["loras"] == ""
    widgets["model"].choose_model("xl-tiny")
    loras.set_open(True)
    assert loras.list.references() == ["xl-ink"]


def slow_pull(calls: list[str]) -> Any:
    """A stand-in for pull_model: reports progress over about two seconds, checking for a
    cancel between steps as the hub's download does between chunks."""

    def pull(repo_id: str, progress: Any, cancelled: Any) -> Path:
        calls.append(repo_id)
        for i in range(200):
            if cancelled():
                raise Cancelled("the download was cancelled")
            progress(PullProgress(i // 20, 10, i * 10_000, 2_000_000))
            time.sleep(0.01)
        return Path("/nowhere")

    return pull


def test_a_missing_hub_model_downloads_with_progress_and_cancel(
    qtbot: Any, models: Path, window: Any, add: Any
) -> None:
    calls: list[str] = []
    window.models.pull = slow_pull(calls)
    nid = add(TEXT_TO_IMAGE, model="someone/not-here")
    picker = select(window, nid)["model"]
    listed(qtbot, window)
    assert "Not on this machine" in picker.status.text()
    assert not picker.download_row.isHidden() and not picker.fetch.isHidden()
    qtbot.waitUntil(lambda: picker.fetch.height() > 0)
    started = time.perf_counter()
    picker.fetch.click()
    # The pull takes about two seconds: the click returning well before that shows it runs off
    # the GUI thread (the bound leaves room for a loaded two-core CI runner).
    assert time.perf_counter() - started < 0.5
    qtbot.waitUntil(lambda: picker.bar.value() > 0 and not picker.bar.isHidden())
    assert "of 10 files" in picker.bar.format() and picker.fetch.isHidden()
    click(qtbot, picker.stop)
    job = window.models.downloads["someone/not-here"]
    qtbot.waitUntil(lambda: job.state == "cancelled")
    qtbot.waitUntil(lambda: "Cancelled" in picker.status.text())
    assert picker.bar.isHidden() and picker.fetch.text() == "Download again"
    assert calls == ["someone/not-here"]


def write_graph(path: Path, registry: Any) -> Path:
    from fathom.engine.graph import Graph
    from fathom.engine.graphfile import save

    g = Graph()
    g.add_node(TEXT_TO_IMAGE, "gen", {"model": "someone/missing-sd", "loras": "gone:0.5"})
    g.nodes["gen"].title = "Hero shot"
    g.add_node(TEXT_TO_IMAGE, "ok", {"model": "sd-tiny"})
    save(g, path, registry)
    return path


def test_a_graph_with_missing_models_shows_one_dialog_naming_node_and_model(
    qtbot: Any, models: Path, window: Any, tmp_path: Path, test_registry: Any
) -> None:
    calls: list[str] = []
    window.models.pull = slow_pull(calls)
    window.missing_models.pick = lambda missing, kind: str(models / "loras" / "ink.safetensors")
    assert window.files.open(write_graph(tmp_path / "needs.json", test_registry), ask=False)
    qtbot.waitUntil(lambda: window.missing_models.dialog is not None)
    dialog = window.missing_models.dialog
    assert dialog.isVisible() and "2 models" in dialog.intro.text()
    assert [r.missing for r in dialog.rows] == [
        MissingModel(
            "gen", "Hero shot", "model", "someone/missing-sd", dialog.rows[0].missing.message
        ),
        MissingModel("gen", "Hero shot", "loras", "gone", dialog.rows[1].missing.message, "lora"),
    ]
    assert (
        "Hero shot" in dialog.rows[0].node.text()
        and "someone/missing-sd" in dialog.rows[0].model.text()
    )
    model_row, lora_row = dialog.rows
    assert not model_row.download.isHidden() and lora_row.download.isHidden()  # files, no ids
    assert "Looked in" in model_row.missing.message and "loras/" in lora_row.status.text()
    # Browse: the node now uses the chosen copy, as one undoable edit (the weight kept).
    dialog.browse(lora_row, "open")
    params = window.doc.graph.nodes["gen"].params
    assert params["loras"] == f"{models / 'loras' / 'ink.safetensors'}:0.5"
    window.doc.undo_stack.undo()
    assert params["loras"] == "gone:0.5"
    # Download: progress in the row, and cancel.
    click(qtbot, model_row.download)
    qtbot.waitUntil(lambda: model_row.bar.value() > 0 and not model_row.bar.isHidden())
    click(qtbot, model_row.cancel)
    qtbot.waitUntil(lambda: "Cancelled" in model_row.status.text())
    assert calls == ["someone/missing-sd"]
    dialog.close()


def test_a_run_that_misses_a_model_asks_again(
    qtbot: Any, models: Path, window: Any, add: Any
) -> None:
    from fathom.app.session import RunOutcome

    asked: list[list[MissingModel]] = []
    window.missing_models.ask = asked.append
    nid = add(TEXT_TO_IMAGE, model="someone/missing-sd")
    window.session.finished(RunOutcome(problems=[Problem("not found", nid, "model")]))
    qtbot.waitUntil(lambda: bool(asked))
    assert [(m.node, m.param, m.value) for m in asked[0]] == [(nid, "model", "someone/missing-sd")]


def test_a_controlnet_picker_lists_only_the_controlnets_with_their_family(
    qtbot: Any, addons: Path, window: Any, add: Any
) -> None:
    nid = add(CONTROLNET)
    picker = select(window, nid)["model"]
    assert isinstance(picker, ModelPicker) and picker.kind == "controlnet"
    listed(qtbot, window)
    picker.choose.click()
    # Not the pipelines, LoRAs or IP-Adapter; a ControlNet folder's weights are no second one.
    assert picker.list.references() == ["canny", "depth-sd15", "xl/depth-xl"]
    rows = [picker.list.list.item(i).text() for i in range(picker.list.list.count())]
    assert (
        "Stable Diffusion 1.x ControlNet" in rows[1] and "controlnet/ in models folder" in rows[1]
    )
    assert "SDXL ControlNet" in rows[2]
    footer = picker.list.footer.text()
    assert "Stable Diffusion 1.x: canny, depth-sd15" in footer and "SDXL: xl/depth-xl" in footer
    picker.list.filter.setText("xl")
    shown = [i for i in range(picker.list.list.count()) if not picker.list.list.item(i).isHidden()]
    assert shown == [2]
    adapter = select(window, add(IP_ADAPTER, 0, 300))["model"]
    adapter.set_open(True)
    assert adapter.list.references() == ["ip-adapter"]  # not its image encoder


def test_choosing_a_controlnet_is_an_undoable_edit(
    qtbot: Any, addons: Path, window: Any, add: Any
) -> None:
    nid = add(CONTROLNET)
    params = window.doc.graph.nodes[nid].params
    default = params["model"]
    picker = select(window, nid)["model"]
    listed(qtbot, window)
    assert "Not on this machine" in picker.status.text()  # the default, a hub id
    picker.set_open(True)
    click_row(qtbot, picker, "xl/depth-xl")
    assert params["model"] == "xl/depth-xl" and picker.list.isHidden()
    assert "SDXL ControlNet" in picker.status.text() and picker.download_row.isHidden()
    window.doc.undo_stack.undo()
    assert params["model"] == default and picker.text.text() == default
    window.doc.undo_stack.redo()
    assert picker.text.text() == "xl/depth-xl"
    picker.choose_model("sd-tiny")  # a pipeline typed in: it says what is wrong
    assert "not a ControlNet" in picker.status.text()


def test_a_missing_controlnet_downloads_and_an_ip_adapter_is_never_a_hub_id(
    qtbot: Any, addons: Path, window: Any, add: Any
) -> None:
    calls: list[str] = []
    window.models.pull = slow_pull(calls)
    picker = select(window, add(CONTROLNET, model="someone/cn-not-here"))["model"]
    listed(qtbot, window)
    assert not picker.download_row.isHidden()
    click(qtbot, picker.fetch)
    qtbot.waitUntil(lambda: picker.bar.value() > 0 and not picker.bar.isHidden())
    click(qtbot, picker.stop)
    qtbot.waitUntil(lambda: "Cancelled" in picker.status.text())
    assert calls == ["someone/cn-not-here"]
    adapter = select(window, add(IP_ADAPTER, 0, 300, model="sdxl/plus"))["model"]
    assert adapter.download_row.isHidden() and "ipadapter/" in adapter.status.text()
    adapter.choose_model("ip-adapter")
    assert "IP-Adapter" in adapter.status.text() and "not an" not in adapter.status.text()


def test_the_dialog_names_a_missing_controlnet_and_ip_adapter(
    qtbot: Any, addons: Path, window: Any, tmp_path: Path, test_registry: Any
) -> None:
    from fathom.engine.graph import Graph
    from fathom.engine.graphfile import save

    g = Graph()
    g.add_node(CONTROLNET, "control", {"model": "someone/missing-cn"})
    g.nodes["control"].title = "Depth guide"
    g.add_node(CONTROLNET, "found", {"model": "depth-sd15"})  # in controlnet/: not missing
    g.add_node(IP_ADAPTER, "ip", {"model": "gone-adapter"})
    save(g, tmp_path / "addons.json", test_registry)
    assert window.files.open(tmp_path / "addons.json", ask=False)
    qtbot.waitUntil(lambda: window.missing_models.dialog is not None)
    dialog = window.missing_models.dialog
    got = [(m.node, m.param, m.value, m.kind) for m in (r.missing for r in dialog.rows)]
    assert got == [
        ("control", "model", "someone/missing-cn", "controlnet"),
        ("ip", "model", "gone-adapter", "ip-adapter"),
    ]
    cn_row, ip_row = dialog.rows
    assert "Depth guide" in cn_row.node.text() and "someone/missing-cn" in cn_row.model.text()
    assert not cn_row.download.isHidden() and ip_row.download.isHidden()
    assert "ipadapter/" in ip_row.status.text() and "ipadapter" in ip_row.missing.message
    dialog.close()


def test_replacing_a_lora_line_keeps_its_weight_and_the_other_lines() -> None:
    text = "ink:0.8\n# a comment\ngone:0.5\nother"
    assert replace_lora(text, "gone", "/loras/g.safetensors") == (
        "ink:0.8\n# a comment\n/loras/g.safetensors:0.5\nother"
    )


def test_the_screenshot_option_opens_a_nodes_picker(
    qtbot: Any, models: Path, window: Any, add: Any
) -> None:
    from PySide6.QtWidgets import QApplication

    from fathom.app.main import _open_picker, build_parser

    args = build_parser().parse_args(
        ["--screenshot", "x.png", "--select", "gen", "--pick", "model"]
    )
    assert (args.select, args.pick) == ("gen", "model")
    nid = add(TEXT_TO_IMAGE, model="xl-tiny")
    picker = select(window, nid)["model"]
    app = QApplication.instance()
    assert _open_picker(app, window, "model")
    assert picker.list.isVisible() and picker.list.references() == ["sd-tiny", "xl-tiny"]
    assert picker.list.list.currentItem().data(Qt.ItemDataRole.UserRole) == "xl-tiny"
    assert not _open_picker(app, window, "prompt")  # no picker there: it says so
