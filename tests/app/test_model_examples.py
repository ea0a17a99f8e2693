"""The model examples run in the studio on tiny models, pointed at them through the model
picker's own edit (as a user picks their files): SDXL + LoRA + ControlNet depth, and a one-step
turbo model; the result shows in the preview dock."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[2]


def _set(window: Any, node: str, **params: Any) -> None:
    from fathom.app.commands import SetParam

    for name, value in params.items():
        window.doc.undo_stack.push(SetParam(window.doc, node, name, value))


def _open(window: Any, name: str) -> list[Any]:
    asked: list[Any] = []
    window.missing_models.ask = asked.append
    assert window.files.open_example(ROOT / "assets" / "graphs" / f"{name}.json")
    return asked


def _offline(monkeypatch: Any, tmp_path: Path) -> None:
    """No models folders and an empty Hugging Face cache: the examples' hub models are missing."""
    from huggingface_hub import constants

    monkeypatch.delenv("FATHOM_MODELS", raising=False)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hf-cache"))


def _controlnet(tiny_sdxl: Path, folder: Path) -> Path:
    from diffusers import ControlNetModel, UNet2DConditionModel

    net = ControlNetModel.from_unet(UNet2DConditionModel.from_pretrained(tiny_sdxl / "unet"))
    net.save_pretrained(folder, safe_serialization=True)
    return folder


def test_the_sdxl_lora_controlnet_example_runs_in_the_studio(
    qtbot: Any,
    window: Any,
    run_and_wait: Any,
    tiny_sdxl: Path,
    lora_factory: Any,
    tmp_path: Path,
    monkeypatch: Any,
) -> None:
    _offline(monkeypatch, tmp_path)
    asked = _open(window, "sdxl_lora_controlnet")
    qtbot.waitUntil(lambda: bool(asked), timeout=10_000)  # one dialog names what is missing
    assert {(m.node, m.param) for m in asked[0]} >= {("gen", "model"), ("control", "model")}
    lora = lora_factory(tiny_sdxl, seed=1)
    _set(window, "gen", model=str(tiny_sdxl), loras=f"{lora}:0.8", width=64, height=64, steps=2)
    _set(window, "control", model=str(_controlnet(tiny_sdxl, tmp_path / "cn")))
    outcome = run_and_wait(["gen"], timeout=120_000)
    assert outcome.result.ok, outcome.result.records
    image = outcome.result.values["gen"]["image"].data
    assert image.shape == (64, 64, 3) and float(np.std(image)) > 0.001
    window.scene.select_nodes(["gen"])
    qtbot.waitUntil(lambda: window.preview.current_panel() is not None, timeout=10_000)


def test_the_one_step_turbo_example_runs_in_the_studio(
    window: Any, run_and_wait: Any, tiny_sdxl_turbo: Path
) -> None:
    torch.manual_seed(0)
    _open(window, "one_step_turbo")
    _set(window, "gen", model=str(tiny_sdxl_turbo), width=64, height=64)
    outcome = run_and_wait(["gen"], timeout=120_000)
    assert outcome.result.ok, outcome.result.records
    assert outcome.result.records["gen"].details["steps_run"] == 1
