"""Stable Diffusion 3 through diffusers' own pipelines: a tiny random SD3 folder loads through
the model manager and, with the first-block cache off, makes exactly what
``StableDiffusion3Pipeline`` makes; the cache changes the image a little and is gone after its
run; the callback cancels; sizes the model cannot make are refused on their port."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from fathom.engine.diffusion.transformer import StepInfo, generate
from fathom.engine.errors import Cancelled, LoopInputError
from fathom.engine.models.families import identify
from fathom.engine.models.locate import ModelError
from fathom.engine.models.transformer import KIND, load_transformer_model, loader

PROMPT = "a red fox in the snow"
SETTINGS = dict(steps=4, guidance=5.0, seed=3, width=64, height=64)
#: Above the tiny model's step-to-step change of the first block's residual: most steps cached.
THRESHOLD = 1.0


@pytest.fixture(scope="module")
def sd3_folder(tiny_sd3: Path) -> Path:
    return tiny_sd3


@pytest.fixture(scope="module")
def sd3(sd3_folder: Path) -> Any:
    return load_transformer_model(sd3_folder, "cpu", "float32")


@pytest.fixture(scope="module")
def reference(sd3_folder: Path) -> Any:
    """diffusers' own pipeline, loaded by diffusers from the same folder."""
    from diffusers import StableDiffusion3Pipeline

    pipe = StableDiffusion3Pipeline.from_pretrained(
        sd3_folder, text_encoder_3=None, tokenizer_3=None
    )
    pipe.set_progress_bar_config(disable=True)
    return pipe


def _reference(pipe: Any, negative: str = "", batch: int = 1, **kw: Any) -> np.ndarray:
    s = {**SETTINGS, **kw}
    return pipe(
        PROMPT,
        negative_prompt=negative,
        num_inference_steps=s["steps"],
        guidance_scale=s["guidance"],
        height=s["height"],
        width=s["width"],
        num_images_per_prompt=batch,
        generator=torch.Generator().manual_seed(s["seed"]),
        output_type="np",
    ).images


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b) ** 2))
    return float("inf") if mse == 0 else 10 * np.log10(1.0 / mse)


def test_the_folder_is_sd3_and_loads_without_t5(sd3_folder: Path, sd3: Any) -> None:
    assert identify(sd3_folder).family == "sd3"
    assert sd3.family == "sd3" and sd3.offload == "none" and sd3.device == "cpu"
    assert sd3.without == ("text_encoder_3", "tokenizer_3")
    assert sd3.pipe.text_encoder_3 is None
    assert not any(p.requires_grad for p in sd3.pipe.transformer.parameters())


def test_it_loads_once_through_the_model_manager(sd3_folder: Path, ctx: Any) -> None:
    load = loader("cpu", "float32")
    first = ctx.load_model(KIND, str(sd3_folder), load)
    assert ctx.load_model(KIND, str(sd3_folder), load) is first
    assert ctx.models.loads == 1


@pytest.mark.parametrize(
    ("negative", "batch", "guidance"), [("", 1, 5.0), ("blurry", 2, 5.0), ("", 1, 1.0)]
)
def test_without_the_cache_it_equals_the_sd3_pipeline(
    sd3: Any, reference: Any, negative: str, batch: int, guidance: float
) -> None:
    ours = generate(sd3, PROMPT, negative, batch_size=batch, **{**SETTINGS, "guidance": guidance})
    theirs = _reference(reference, negative, batch, guidance=guidance)
    assert ours.images.shape == (batch, 64, 64, 3) and ours.images.dtype == np.float32
    assert np.abs(ours.images - theirs).max() <= 2 / 255
    assert ours.latents.shape == (batch, 16, 8, 8) and ours.latents.dtype == torch.float32
    assert (ours.steps_planned, ours.steps_run, ours.cached_steps) == (4, 4, 0)
    assert ours.scaling_factor == pytest.approx(1.5305)
    assert ours.shift_factor == pytest.approx(0.0609)


def test_image_to_image_equals_the_sd3_img2img_pipeline(sd3: Any, sd3_folder: Path) -> None:
    from diffusers import StableDiffusion3Img2ImgPipeline

    image = torch.rand((1, 3, 64, 64), generator=torch.Generator().manual_seed(1)) * 2 - 1
    ours = generate(sd3, PROMPT, image=image, strength=0.5, **{**SETTINGS, "steps": 6})
    pipe = StableDiffusion3Img2ImgPipeline.from_pretrained(
        sd3_folder, text_encoder_3=None, tokenizer_3=None
    )
    pipe.set_progress_bar_config(disable=True)
    theirs = pipe(
        PROMPT,
        image=(image + 1) / 2,
        strength=0.5,
        num_inference_steps=6,
        guidance_scale=5.0,
        height=64,
        width=64,
        generator=torch.Generator().manual_seed(3),
        output_type="np",
    ).images
    assert np.abs(ours.images - theirs).max() <= 2 / 255
    assert (ours.steps_planned, ours.steps_run) == (3, 3)


def _fbc_hooks(model: Any) -> list[str]:
    return [
        name
        for block in model.pipe.transformer.transformer_blocks
        for name in getattr(getattr(block, "_diffusers_hook", None), "hooks", {})
    ]


def test_the_cache_changes_the_image_a_little_and_is_gone_after(sd3: Any, reference: Any) -> None:
    plain = _reference(reference)
    cached = generate(sd3, PROMPT, cache_threshold=THRESHOLD, **SETTINGS)
    assert cached.cached_steps >= 2 and cached.steps_run == 4
    assert np.abs(cached.images - plain).max() > 2 / 255
    assert _psnr(cached.images, plain) > 30  # measured: 38.6 dB (3 of 4 steps cached)
    assert _fbc_hooks(sd3) == []
    again = generate(sd3, PROMPT, **SETTINGS)
    assert np.abs(again.images - plain).max() <= 2 / 255
    low = generate(sd3, PROMPT, cache_threshold=1e-6, **SETTINGS)  # nothing similar enough
    assert low.cached_steps == 0 and np.abs(low.images - plain).max() <= 2 / 255


def test_the_callback_reports_each_step(sd3: Any) -> None:
    seen: list[StepInfo] = []
    generate(sd3, PROMPT, cache_threshold=THRESHOLD, callback=seen.append, **SETTINGS)
    assert [s.index for s in seen] == [0, 1, 2, 3] and {s.steps for s in seen} == {4}
    assert not seen[0].cached and any(s.cached for s in seen)
    assert seen[-1].latents.shape == (1, 16, 8, 8)
    assert all(b.seconds >= a.seconds for a, b in zip(seen, seen[1:], strict=False))


def test_raising_from_the_callback_cancels_and_leaves_the_model_plain(
    sd3: Any, reference: Any
) -> None:
    seen: list[int] = []

    def cancel_at_second(info: StepInfo) -> None:
        seen.append(info.index)
        if info.index == 1:
            raise Cancelled("cancelled")

    with pytest.raises(Cancelled):
        generate(sd3, PROMPT, cache_threshold=THRESHOLD, callback=cancel_at_second, **SETTINGS)
    assert seen == [0, 1]
    assert _fbc_hooks(sd3) == []
    plain = generate(sd3, PROMPT, **SETTINGS)
    assert np.abs(plain.images - _reference(reference)).max() <= 2 / 255


@pytest.mark.parametrize(
    ("size", "port", "message", "fix"),
    [
        ((72, 64), "width", "not a multiple of 16", "use 64 or 80"),
        ((64, 100), "height", "not a multiple of 16", "use 96 or 112"),
        ((64, 8), "height", "smaller than 16", "use 16 or 32"),
        ((528, 64), "width", "larger than this model reaches (512", "use at most 512"),
    ],
)
def test_sizes_the_model_cannot_make_are_refused_on_their_port(
    sd3: Any, size: tuple[int, int], port: str, message: str, fix: str
) -> None:
    with pytest.raises(LoopInputError) as err:
        generate(sd3, PROMPT, **{**SETTINGS, "width": size[0], "height": size[1]})
    assert err.value.port == port and message in str(err.value) and err.value.fix == fix


def test_other_settings_are_refused_on_their_port(sd3: Any) -> None:
    image = torch.zeros((1, 3, 64, 64))
    for kwargs, port in [
        ({"cache_threshold": -0.1}, "cache_threshold"),
        ({"image": image, "strength": 0.0}, "strength"),
        ({"image": torch.zeros((1, 3, 32, 64))}, "image"),
        ({"steps": 0}, "steps"),
    ]:
        with pytest.raises(LoopInputError) as err:
            generate(sd3, PROMPT, **{**SETTINGS, **kwargs})
        assert err.value.port == port


def _edit_index(src: Path, dst: Path, **changes: Any) -> Path:
    shutil.copytree(src, dst)
    index = json.loads((dst / "model_index.json").read_text())
    index.update(changes)
    (dst / "model_index.json").write_text(json.dumps(index))
    return dst


def test_the_loader_refuses_what_it_cannot_build(sd3_folder: Path, tmp_path: Path) -> None:
    weights = next((sd3_folder / "transformer").glob("*.safetensors"))
    cases = [
        (weights, "single file"),
        (tmp_path, "no model_index.json"),
        (
            _edit_index(sd3_folder, tmp_path / "remote", vae=["my_package", "MyVAE"]),
            "no remote code",
        ),
        (
            _edit_index(sd3_folder, tmp_path / "sd15", _class_name="StableDiffusionPipeline"),
            "this loader builds Stable Diffusion 3",
        ),
        (_edit_index(sd3_folder, tmp_path / "notr", transformer=[None, None]), "no transformer"),
    ]
    for path, words in cases:
        with pytest.raises(ModelError, match=words.replace("(", r"\(")):
            load_transformer_model(path, "cpu", "float32")


def test_a_folder_whose_t5_weights_are_missing_loads_without_it(
    sd3_folder: Path, tmp_path: Path
) -> None:
    folder = _edit_index(
        sd3_folder,
        tmp_path / "t5",
        text_encoder_3=["transformers", "T5EncoderModel"],
        tokenizer_3=["transformers", "T5TokenizerFast"],
    )
    (folder / "text_encoder_3").mkdir()  # a download that skipped the T5 weights
    model = load_transformer_model(folder, "cpu", "float32")
    assert model.without == ("text_encoder_3", "tokenizer_3")


def test_a_lora_is_on_for_its_run_only(sd3: Any, tmp_path: Path) -> None:
    from diffusers import StableDiffusion3Pipeline
    from diffusers.utils import convert_state_dict_to_diffusers
    from peft import LoraConfig
    from peft.utils import get_peft_model_state_dict

    from fathom.engine.diffusion.minimodels import TINY_SD3, build_sd3_components

    transformer = build_sd3_components(TINY_SD3)["transformer"]
    torch.manual_seed(5)
    transformer.add_adapter(
        LoraConfig(
            r=4, init_lora_weights=False, target_modules=["to_q", "to_k", "to_v", "to_out.0"]
        )
    )
    layers = convert_state_dict_to_diffusers(get_peft_model_state_dict(transformer))
    StableDiffusion3Pipeline.save_lora_weights(
        tmp_path, transformer_lora_layers=layers, safe_serialization=True
    )
    lora = tmp_path / "pytorch_lora_weights.safetensors"
    plain = generate(sd3, PROMPT, **SETTINGS).images
    on = generate(sd3, PROMPT, loras=[(lora, 1.0)], **SETTINGS)
    assert on.loras == 1 and np.abs(on.images - plain).max() > 10 / 255
    half = generate(sd3, PROMPT, loras=[(lora, 0.5)], **SETTINGS).images
    assert 0 < np.abs(half - plain).max() < np.abs(on.images - plain).max()
    assert np.abs(generate(sd3, PROMPT, **SETTINGS).images - plain).max() == 0


@pytest.mark.gpu
@pytest.mark.parametrize("offload", ["none", "model"])
def test_on_cuda_a_seed_gives_the_cpu_image(sd3_folder: Path, sd3: Any, offload: str) -> None:
    cpu = generate(sd3, PROMPT, cache_threshold=THRESHOLD, **SETTINGS)
    model = load_transformer_model(sd3_folder, "cuda", "float32", offload)
    assert model.offload == offload
    gpu = generate(model, PROMPT, cache_threshold=THRESHOLD, **SETTINGS)
    assert np.abs(gpu.images - cpu.images).max() <= 4 / 255
    image = torch.rand((1, 3, 64, 64), generator=torch.Generator().manual_seed(1)) * 2 - 1
    a = generate(sd3, PROMPT, image=image, **SETTINGS).images
    b = generate(model, PROMPT, image=image, **SETTINGS).images
    assert np.abs(a - b).max() <= 4 / 255
    if offload == "model":
        assert next(model.pipe.transformer.parameters()).device.type == "cpu"
