"""Textual-inversion embeddings by name in the prompt: found in the models folders'
embeddings/, loaded once, multi-vector words expanded; the image equals diffusers' pipeline
with load_textual_inversion; prompts without the word are unchanged."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from fathom.engine.context import RunOptions
from fathom.engine.executor import Executor
from fathom.engine.graph import Graph
from fathom.engine.registry import default_registry

PARAMS: dict[str, Any] = dict(
    negative_prompt="", steps=3, guidance=5.0, seed=4, width=64, height=64
)


@pytest.fixture
def models(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "models"
    (folder / "embeddings").mkdir(parents=True)
    g = torch.Generator().manual_seed(0)
    # A1111's format: one vector; and a two-vector one, as diffusers' `emb_params` layout.
    save_file(
        {"emb_params": torch.randn(1, 32, generator=g)},
        str(folder / "embeddings" / "inkstyle.safetensors"),
    )
    save_file(
        {"emb_params": torch.randn(2, 32, generator=g)},
        str(folder / "embeddings" / "twovec.safetensors"),
    )
    monkeypatch.setenv("FATHOM_MODELS", str(folder))
    return folder


def _node(ex: Executor, model: Path, prompt: str, tmp_path: Path) -> np.ndarray:
    g = Graph()
    g.add_node("generate.text_to_image", "gen", {"model": str(model), "prompt": prompt, **PARAMS})
    res = ex.run(g, options=RunOptions(base_dir=tmp_path, output_dir=tmp_path, device="cpu"))
    assert res.records["gen"].status in ("executed", "cached"), res.records["gen"].error
    return res.values["gen"]["image"].data


def _theirs(model: Path, prompt: str, embeddings: list[tuple[Path, str]]) -> np.ndarray:
    from diffusers import StableDiffusionPipeline

    pipe = StableDiffusionPipeline.from_pretrained(
        model, safety_checker=None, requires_safety_checker=False
    )
    pipe.set_progress_bar_config(disable=True)
    for path, token in embeddings:
        pipe.load_textual_inversion(str(path), token=token)
    return pipe(
        prompt,
        num_inference_steps=3,
        guidance_scale=5.0,
        width=64,
        height=64,
        output_type="np",
        generator=torch.Generator().manual_seed(4),
    ).images[0]


def test_embeddings_named_in_the_prompt_render_as_diffusers_does(
    tiny_sd: Path, models: Path, tmp_path: Path
) -> None:
    model = tiny_sd
    ex = Executor(default_registry())  # its own model manager: the embeddings load into it
    before = _node(ex, model, "a cat in twovec style", tmp_path)  # loads twovec
    plain = _node(ex, model, "a cat", tmp_path)
    assert np.abs(plain - _theirs(model, "a cat", [])).max() <= 2 / 255  # others unchanged
    ours = _node(ex, model, "a cat, inkstyle, twovec", tmp_path)
    theirs = _theirs(
        model,
        "a cat, inkstyle, twovec",
        [
            (models / "embeddings" / "inkstyle.safetensors", "inkstyle"),
            (models / "embeddings" / "twovec.safetensors", "twovec"),
        ],
    )
    assert np.abs(ours - theirs).max() <= 2 / 255
    assert (
        np.abs(
            before
            - _theirs(
                model,
                "a cat in twovec style",
                [(models / "embeddings" / "twovec.safetensors", "twovec")],
            )
        ).max()
        <= 2 / 255
    )
