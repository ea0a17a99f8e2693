"""SD3 on the generation nodes: text-to-image and image-to-image take an SD3 folder and equal
diffusers' SD3 pipelines; the first-block cache is `cache_threshold`, reported; progress and
previews come each step; settings only the other kind of model takes are refused on their
ports before the run; ControlNet on SD3 stops the node naming the input."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from fathom.engine.context import NodeContext, RunOptions
from fathom.engine.errors import NodeError
from fathom.engine.events import Recorder
from fathom.engine.executor import Executor
from fathom.engine.graph import Graph
from fathom.engine.registry import default_registry
from fathom.engine.types import Control, Image, Latent

SETTINGS: dict[str, Any] = dict(
    prompt="a red fox in the snow", negative_prompt="", steps=4, guidance=5.0, seed=3
)


@pytest.fixture(scope="module")
def ex() -> Executor:
    return Executor(default_registry())


def _opts(tmp_path: Path) -> RunOptions:
    return RunOptions(output_dir=tmp_path / "out", base_dir=tmp_path, device="cpu")


def _pipe(cls_name: str, folder: Path) -> Any:
    import diffusers

    pipe = getattr(diffusers, cls_name).from_pretrained(
        folder, text_encoder_3=None, tokenizer_3=None
    )
    pipe.set_progress_bar_config(disable=True)
    return pipe


def _run(ex: Executor, tmp_path: Path, type_id: str, params: dict) -> Any:
    g = Graph()
    g.add_node(type_id, "gen", params)
    rec = Recorder()
    res = ex.run(g, targets=["gen"], options=_opts(tmp_path), listener=rec)
    return res, rec


def test_text_to_image_takes_sd3_and_equals_its_pipeline(
    ex: Executor, tiny_sd3: Path, tmp_path: Path
) -> None:
    params = {"model": str(tiny_sd3), **SETTINGS, "width": 64, "height": 64, "batch_size": 2}
    res, rec = _run(ex, tmp_path, "generate.text_to_image", params)
    r = res.records["gen"]
    assert r.status == "executed", r.error
    ref = _pipe("StableDiffusion3Pipeline", tiny_sd3)(
        SETTINGS["prompt"],
        negative_prompt="",
        num_inference_steps=4,
        guidance_scale=5.0,
        width=64,
        height=64,
        num_images_per_prompt=2,
        generator=torch.Generator().manual_seed(3),
        output_type="np",
    ).images
    out = res.values["gen"]
    assert np.abs(out["image"].data - ref[0]).max() <= 2 / 255
    assert np.abs(out["images"].frame(1).data - ref[1]).max() <= 2 / 255
    latent = out["latent"]
    assert isinstance(latent, Latent) and latent.tensor.shape[1] == 16
    d = r.details
    assert d["family"] == "sd3" and d["steps_run"] == 4 and d["accelerations"] == []
    steps = [e.message for e in rec.events if e.kind == "node_progress" and "step" in e.message]
    assert steps == ["step 1/4", "step 2/4", "step 3/4", "step 4/4"]
    previews = [e for e in rec.events if e.kind == "node_preview"]
    assert previews and all(isinstance(p.value, Image) for p in previews)
    assert d["preview"]["mode"] == "linear" and d["preview"]["shown"] == len(previews)


def test_image_to_image_takes_sd3_and_equals_its_img2img_pipeline(
    ex: Executor, tiny_sd3: Path, tmp_path: Path
) -> None:
    from fathom.engine.types import Image as ImageT

    rgb = np.random.default_rng(1).random((64, 64, 3)).astype(np.float32)
    out = ex.call(
        "generate.image_to_image",
        {"image": ImageT(rgb)},
        {"model": str(tiny_sd3), **SETTINGS, "strength": 0.7},
        _opts(tmp_path),
    )
    ref = _pipe("StableDiffusion3Img2ImgPipeline", tiny_sd3)(
        SETTINGS["prompt"],
        image=torch.from_numpy(rgb).permute(2, 0, 1)[None],
        strength=0.7,
        width=64,
        height=64,
        negative_prompt="",
        num_inference_steps=4,
        guidance_scale=5.0,
        generator=torch.Generator().manual_seed(3),
        output_type="np",
    ).images
    assert np.abs(out["image"].data - ref[0]).max() <= 2 / 255


def test_the_first_block_cache_is_cache_threshold_and_is_reported(
    ex: Executor, tiny_sd3: Path, tmp_path: Path
) -> None:
    base = {"model": str(tiny_sd3), **SETTINGS, "width": 64, "height": 64}
    plain, _ = _run(ex, tmp_path, "generate.text_to_image", base)
    cached, _ = _run(ex, tmp_path, "generate.text_to_image", {**base, "cache_threshold": 1.0})
    d = cached.records["gen"].details
    assert d["accelerations"] == ["FirstBlockCache"] and d["cached_steps"] >= 1
    a, b = plain.values["gen"]["image"].data, cached.values["gen"]["image"].data
    assert 0 < np.abs(a - b).max() and 10 * np.log10(1 / np.mean((a - b) ** 2)) > 30


def test_settings_for_the_other_kind_of_model_are_refused_on_their_ports(
    tiny_sd3: Path, tiny_sd: Path, tmp_path: Path
) -> None:
    cls = default_registry().get("generate.text_to_image")
    assert cls is not None
    ctx = NodeContext("gen", _opts(tmp_path), None)
    sd3 = {**cls.defaults(), "model": str(tiny_sd3), "width": 72, "height": 64}
    sd3 |= {"token_merge": 0.5, "clock_period": 2, "scheduler": "euler"}
    problems = {p.port: p for p in cls.preflight(sd3, ctx)}
    assert set(problems) == {"token_merge", "clock_period", "scheduler", "width"}
    assert "transformer model (SD3)" in problems["token_merge"].message
    assert "cache_threshold" in (problems["clock_period"].fix or "")
    assert problems["width"].fix == "use 64 or 80"
    sd15 = {**cls.defaults(), "model": str(tiny_sd), "cache_threshold": 0.3}
    (problem,) = cls.preflight(sd15, ctx)
    assert problem.port == "cache_threshold" and "UNet model" in problem.message
    assert cls.preflight({**cls.defaults(), "model": str(tiny_sd3)}, ctx) == []


def test_a_controlnet_on_an_sd3_model_stops_the_node_naming_the_input(
    ex: Executor, tiny_sd3: Path, tmp_path: Path
) -> None:
    control = Control(model="any", image=Image(np.zeros((64, 64, 3), np.float32)))
    with pytest.raises(NodeError) as err:
        ex.call(
            "generate.text_to_image",
            {"control": [control]},
            {"model": str(tiny_sd3), **SETTINGS, "width": 64, "height": 64},
            _opts(tmp_path),
        )
    assert err.value.port == "control" and "transformer model (SD3)" in str(err.value)


def test_weighted_prompts_on_sd3_are_read_as_plain_text_and_reported(
    ex: Executor, tiny_sd3: Path, tmp_path: Path
) -> None:
    base = {"model": str(tiny_sd3), **SETTINGS, "width": 64, "height": 64}
    weighted, _ = _run(
        ex, tmp_path, "generate.text_to_image", {**base, "prompt": "a (red:1.4) fox in the snow"}
    )
    plain, _ = _run(
        ex, tmp_path, "generate.text_to_image", {**base, "prompt": "a red fox in the snow"}
    )
    assert weighted.records["gen"].details["prompt_weights_ignored"] is True
    a, b = weighted.values["gen"]["image"].data, plain.values["gen"]["image"].data
    assert np.abs(a - b).max() <= 2 / 255
