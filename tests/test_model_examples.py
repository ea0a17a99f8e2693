"""The model examples render from the command line on tiny models (their models swapped with
--set, as a user points them at their own files): SDXL + LoRA + ControlNet depth, and a
one-step turbo model."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image as PILImage


@pytest.fixture(scope="module")
def sdxl_controlnet(tiny_sdxl: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from diffusers import ControlNetModel, UNet2DConditionModel

    net = ControlNetModel.from_unet(UNet2DConditionModel.from_pretrained(tiny_sdxl / "unet"))
    gen = torch.Generator().manual_seed(3)
    with torch.no_grad():
        for p in net.parameters():
            p.add_(torch.randn(p.shape, generator=gen) * 0.05)
    folder = tmp_path_factory.mktemp("sdxl_controlnet") / "depth"
    net.save_pretrained(folder, safe_serialization=True)
    return folder


def _render(example: str, out: Path, sets: dict[str, Any]) -> dict[str, Any]:
    args = [a for k, v in sets.items() for a in ("--set", f"{k}={v}")]
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "fathom.engine.cli",
            "render",
            "--example",
            example,
            "--out",
            str(out),
            "--report",
            str(out / "run.json"),
            "--quiet",
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads((out / "run.json").read_text())


def test_sdxl_lora_controlnet_example_renders_on_tiny_models(
    tiny_sdxl: Path, sdxl_controlnet: Path, lora_factory: Any, tmp_path: Path
) -> None:
    lora = lora_factory(tiny_sdxl, seed=1)
    report = _render(
        "sdxl_lora_controlnet",
        tmp_path,
        {
            "gen.model": tiny_sdxl,
            "control.model": sdxl_controlnet,
            "gen.loras": f"{lora}:0.8",
            "gen.width": 64,
            "gen.height": 64,
            "gen.steps": 2,
        },
    )
    image = np.asarray(PILImage.open(tmp_path / "sdxl_lora_controlnet.png"))
    assert image.shape == (64, 64, 3) and image.std() > 1
    (gen,) = [n for n in report["nodes"] if n["node"] == "gen"]
    assert gen["status"] == "executed" and gen["details"]["loras"][0]["weight"] == 0.8


def test_one_step_turbo_example_renders_on_a_tiny_turbo_model(
    tiny_sdxl_turbo: Path, tmp_path: Path
) -> None:
    report = _render(
        "one_step_turbo",
        tmp_path,
        {"gen.model": tiny_sdxl_turbo, "gen.width": 64, "gen.height": 64},
    )
    (gen,) = [n for n in report["nodes"] if n["node"] == "gen"]
    assert gen["details"]["steps_run"] == 1
    assert (tmp_path / "one_step_turbo.png").is_file()
