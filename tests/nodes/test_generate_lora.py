"""LoRA adapters on the generation nodes: several at once with their own weights, equal to
diffusers' load_lora_weights + set_adapters; never left on the shared model; a LoRA for another
family, or a missing one, refused before the run; an edited LoRA file re-runs the node."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image as PILImage

from fathom.engine.context import NodeContext, RunOptions
from fathom.engine.diffusion.lora import parse_loras
from fathom.engine.errors import LibraryError
from fathom.engine.executor import Executor
from fathom.engine.graph import Graph
from fathom.engine.registry import default_registry

ROOT = Path(__file__).resolve().parents[2]
PARAMS: dict[str, Any] = dict(
    prompt="a lighthouse", negative_prompt="", steps=3, guidance=5.0, seed=3, width=64, height=64
)


@pytest.fixture(scope="module")
def ex() -> Executor:
    return Executor(default_registry())


def _opts(tmp_path: Path) -> RunOptions:
    return RunOptions(output_dir=tmp_path / "out", base_dir=tmp_path, device="cpu")


def _run(ex: Executor, model: Path, tmp_path: Path, loras: str = "", **kw: Any) -> np.ndarray:
    g = Graph()
    g.add_node(
        "generate.text_to_image", "gen", {"model": str(model), **PARAMS, "loras": loras, **kw}
    )
    res = ex.run(g, options=_opts(tmp_path))
    assert res.records["gen"].status in ("executed", "cached"), res.records["gen"].error
    return res.values["gen"]["image"].data


def _reference(cls_name: str, model: Path, loras: list[tuple[Path, float]]) -> np.ndarray:
    import diffusers

    pipe = getattr(diffusers, cls_name).from_pretrained(model)
    pipe.set_progress_bar_config(disable=True)
    for i, (path, _) in enumerate(loras):
        pipe.load_lora_weights(str(path), adapter_name=f"l{i}")
    if loras:
        pipe.set_adapters([f"l{i}" for i in range(len(loras))], [w for _, w in loras])
    return pipe(
        PARAMS["prompt"],
        num_inference_steps=PARAMS["steps"],
        guidance_scale=PARAMS["guidance"],
        width=64,
        height=64,
        output_type="np",
        generator=torch.Generator().manual_seed(PARAMS["seed"]),
    ).images[0]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("a.safetensors", [("a.safetensors", 1.0)]),
        ("a.safetensors:0.8\n\n# off for now\nb:-0.5", [("a.safetensors", 0.8), ("b", -0.5)]),
        (r"C:\loras\ink.safetensors:0.7", [(r"C:\loras\ink.safetensors", 0.7)]),
        (r"C:\loras\ink.safetensors", [(r"C:\loras\ink.safetensors", 1.0)]),
    ],
)
def test_lora_lines_parse(text: str, expected: list[tuple[str, float]]) -> None:
    assert [(r.source, r.weight) for r in parse_loras(text)] == expected


def test_an_absurd_weight_is_refused_on_the_loras_port() -> None:
    with pytest.raises(LibraryError) as info:
        parse_loras("ok.safetensors\nbad.safetensors:99")
    assert info.value.port == "loras" and "line 2" in str(info.value)


def test_sdxl_with_a_lora_at_0_8_equals_diffusers(
    ex: Executor, tiny_sdxl: Path, lora_factory: Any, tmp_path: Path
) -> None:
    lora = lora_factory(tiny_sdxl, seed=1, text=True)
    ours = _run(ex, tiny_sdxl, tmp_path, f"{lora}:0.8")
    ref = _reference("StableDiffusionXLPipeline", tiny_sdxl, [(lora, 0.8)])
    assert np.abs(ours - ref).max() <= 2 / 255
    base = _run(ex, tiny_sdxl, tmp_path)  # the same shared model, with the LoRA off again
    plain = _reference("StableDiffusionXLPipeline", tiny_sdxl, [])
    assert np.abs(base - plain).max() <= 2 / 255
    assert np.abs(ours - base).max() > 0.01


def test_two_loras_with_their_own_weights_equal_diffusers(
    ex: Executor, tiny_sd: Path, lora_factory: Any, tmp_path: Path
) -> None:
    a, b = lora_factory(tiny_sd, seed=2), lora_factory(tiny_sd, seed=3, text=True)
    ours = _run(ex, tiny_sd, tmp_path, f"{a}:0.5\n{b}:0.7")
    ref = _reference("StableDiffusionPipeline", tiny_sd, [(a, 0.5), (b, 0.7)])
    assert np.abs(ours - ref).max() <= 2 / 255


def _to_kohya(lora: Path, out: Path) -> Path:
    """The same LoRA in the kohya (sd-scripts) key layout most community LoRAs use: module
    paths joined by underscores under lora_unet_/lora_te_, lora_down/lora_up, and an alpha per
    module (alpha = rank keeps the scale at 1)."""
    from safetensors.torch import load_file, save_file

    prefixes = {"unet.": "lora_unet_", "text_encoder.": "lora_te_text_model_"}
    kohya: dict[str, torch.Tensor] = {}
    for key, tensor in load_file(str(lora)).items():
        head = next(p for p in prefixes if key.startswith(p))
        module, rest = key[len(head) :].split(".lora", 1)
        module = module.removeprefix("text_model.")
        name = prefixes[head] + module.replace(".", "_")
        down = "down" in rest or "lora_A" in rest
        kohya[f"{name}.{'lora_down' if down else 'lora_up'}.weight"] = tensor
        if down:
            kohya[f"{name}.alpha"] = torch.tensor(float(tensor.shape[0]))
    save_file(kohya, str(out))
    return out


def test_a_kohya_format_lora_loads_through_diffusers_converter_as_the_same_lora(
    ex: Executor, tiny_sd: Path, lora_factory: Any, tmp_path: Path
) -> None:
    lora = lora_factory(tiny_sd, seed=3, text=True)
    kohya = _to_kohya(lora, tmp_path / "kohya_style.safetensors")
    from safetensors import safe_open

    with safe_open(str(kohya), "pt") as f:
        keys = list(f.keys())
    assert any(k.startswith("lora_te_") for k in keys) and all("lora_A" not in k for k in keys)
    ours = _run(ex, tiny_sd, tmp_path, f"{kohya}:0.7")
    same = _run(ex, tiny_sd, tmp_path, f"{lora}:0.7")
    ref = _reference("StableDiffusionPipeline", tiny_sd, [(lora, 0.7)])
    assert np.abs(ours - same).max() <= 1e-5
    assert np.abs(ours - ref).max() <= 2 / 255


def test_a_lora_is_found_by_name_in_the_models_folder(
    ex: Executor, tiny_sd: Path, lora_factory: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    models = tmp_path / "models"
    (models / "loras").mkdir(parents=True)
    (models / "loras" / "ink.safetensors").write_bytes(lora_factory(tiny_sd, seed=2).read_bytes())
    monkeypatch.setenv("FATHOM_MODELS", str(models))
    by_name = _run(ex, tiny_sd, tmp_path, "ink:0.5")
    by_path = _run(ex, tiny_sd, tmp_path, f"{lora_factory(tiny_sd, seed=2)}:0.5")
    assert np.abs(by_name - by_path).max() <= 1e-6


def test_a_lora_for_another_family_or_a_missing_one_is_refused_before_the_run(
    tiny_sd: Path, tiny_sdxl: Path, lora_factory: Any, tmp_path: Path
) -> None:
    cls = default_registry().get("generate.text_to_image")
    assert cls is not None
    ctx = NodeContext("gen", _opts(tmp_path), None)
    sd_lora = lora_factory(tiny_sd, seed=2)
    params = {**cls.defaults(), "model": str(tiny_sdxl), "loras": f"{sd_lora}:0.5\nnowhere:1"}
    problems = [p for p in cls.preflight(params, ctx) if p.port == "loras"]
    assert len(problems) == 2
    wrong, missing = problems
    assert (
        "line 1" in wrong.message
        and "is a LoRA for a model with 32-wide text features, but the"
        " model is a model with 64-wide"
        in wrong.message
    )
    assert "line 2" in missing.message and "'nowhere' was not found" in missing.message


def test_an_edited_lora_file_reruns_the_node(
    ex: Executor, tiny_sd: Path, lora_factory: Any, tmp_path: Path
) -> None:
    lora = tmp_path / "mine.safetensors"
    lora.write_bytes(lora_factory(tiny_sd, seed=2).read_bytes())
    first = _run(ex, tiny_sd, tmp_path, "mine.safetensors:0.9")
    lora.write_bytes(lora_factory(tiny_sd, seed=4).read_bytes())
    os.utime(lora, ns=(time.time_ns(), time.time_ns() + 10**9))
    second = _run(ex, tiny_sd, tmp_path, "mine.safetensors:0.9")
    assert np.abs(first - second).max() > 1e-3


def test_the_text_to_image_graph_with_sdxl_and_a_lora_renders_as_diffusers_does(
    tiny_sdxl: Path, lora_factory: Any, tmp_path: Path
) -> None:
    lora = lora_factory(tiny_sdxl, seed=1, text=True)
    sets = {
        "gen.model": str(tiny_sdxl),
        "gen.loras": f"{lora}:0.8",
        "gen.steps": 3,
        "gen.guidance": 5.0,
        "gen.seed": 3,
        "gen.width": 64,
        "gen.height": 64,
        "gen.scheduler": "default",
        "gen.prompt": "a lighthouse",
        "gen.negative_prompt": "",
    }
    args = [a for k, v in sets.items() for a in ("--set", f"{k}={v}")]
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "fathom.engine.cli",
            "render",
            "--example",
            "text_to_image",
            "--out",
            str(tmp_path / "out"),
            "--report",
            str(tmp_path / "run.json"),
            "--quiet",
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    got = np.asarray(PILImage.open(tmp_path / "out" / "text_to_image.png").convert("RGB"))
    ref = _reference("StableDiffusionXLPipeline", tiny_sdxl, [(lora, 0.8)])
    assert np.abs(got.astype(int) - np.round(ref * 255).astype(int)).max() <= 2
    (node,) = [
        n for n in json.loads((tmp_path / "run.json").read_text())["nodes"] if n["node"] == "gen"
    ]
    assert node["details"]["loras"] == [{"file": lora.name, "weight": 0.8}]
    assert str(lora) in node["model_files"]  # hashed like the model's weights
