"""SDXL-family models in Fathom's loop equal diffusers' SDXL pipelines: two text encoders,
pooled and size conditioning, the zero negative prompt, image-to-image; and the VAE decodes in
float32 where SDXL's overflows in float16."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from fathom.engine.diffusion.loop import generate
from fathom.engine.diffusion.schedulers import make_scheduler
from fathom.engine.models.diffusion import load_components
from fathom.engine.models.families import identify

RGB = np.random.default_rng(1).random((64, 64, 3)).astype(np.float32)


@pytest.fixture(scope="module")
def xl(tiny_sdxl: Path) -> Any:
    return load_components(tiny_sdxl, "cpu", "float32")


def _pipe(cls: Any, comps: Any, scheduler: str = "default") -> Any:
    pipe = cls(
        unet=comps.unet,
        vae=comps.vae,
        text_encoder=comps.text_encoder,
        text_encoder_2=comps.text_encoder_2,
        tokenizer=comps.tokenizer,
        tokenizer_2=comps.tokenizer_2,
        scheduler=make_scheduler(comps.scheduler, scheduler),
        force_zeros_for_empty_prompt=comps.force_zeros,
        add_watermarker=False,
    )
    pipe.set_progress_bar_config(disable=True)
    return pipe


def test_the_family_is_read_from_the_folder(tiny_sdxl: Path, xl: Any) -> None:
    info = identify(tiny_sdxl)
    assert (info.family, info.kind, info.inpainting) == ("sdxl", "pipeline", False)
    assert xl.is_xl and xl.text_encoder_2 is not None and xl.force_zeros


@pytest.mark.parametrize(
    ("negative", "scheduler", "batch"),
    [("", "default", 1), ("blurry", "default", 2), ("blurry", "ddim", 1)],
)
def test_text_to_image_equals_the_sdxl_pipeline(
    xl: Any, negative: str, scheduler: str, batch: int
) -> None:
    from diffusers import StableDiffusionXLPipeline

    ours = generate(
        xl,
        "a red fox",
        negative,
        steps=3,
        guidance=6.0,
        seed=5,
        width=64,
        height=64,
        scheduler=scheduler,
        batch_size=batch,
    )
    ref = _pipe(StableDiffusionXLPipeline, xl, scheduler)(
        "a red fox",
        negative_prompt=negative or None,  # an empty negative is SDXL's zero embedding
        num_inference_steps=3,
        guidance_scale=6.0,
        width=64,
        height=64,
        num_images_per_prompt=batch,
        output_type="np",
        generator=torch.Generator("cpu").manual_seed(5),
    ).images
    assert ours.images.shape == ref.shape == (batch, 64, 64, 3)
    assert np.abs(ours.images - ref).max() <= 2 / 255


def test_the_empty_negative_prompt_is_zeros_not_the_empty_string(xl: Any) -> None:
    kw: dict[str, Any] = dict(steps=2, guidance=6.0, seed=1, width=64, height=64)
    zeros = generate(xl, "a fox", "", **kw).images
    xl.force_zeros = False
    try:
        encoded = generate(xl, "a fox", "", **kw).images
    finally:
        xl.force_zeros = True
    assert np.abs(zeros - encoded).max() > 1e-3


def test_image_to_image_equals_the_sdxl_pipeline(xl: Any) -> None:
    from diffusers import StableDiffusionXLImg2ImgPipeline

    image = torch.from_numpy(RGB).permute(2, 0, 1)[None].contiguous()
    ours = generate(
        xl,
        "a fox in snow",
        "",
        steps=4,
        guidance=5.0,
        seed=2,
        width=64,
        height=64,
        image=xl.to_model_image(RGB),
        strength=0.6,
    )
    ref = _pipe(StableDiffusionXLImg2ImgPipeline, xl)(
        "a fox in snow",
        image=image,
        strength=0.6,
        num_inference_steps=4,
        guidance_scale=5.0,
        output_type="np",
        generator=torch.Generator("cpu").manual_seed(2),
    ).images
    assert np.abs(ours.images - ref).max() <= 2 / 255


def test_the_vae_decodes_in_float32_when_it_would_overflow_in_float16(xl: Any) -> None:
    latents = torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(0))
    full = xl.decode(latents)
    xl.vae.to(torch.float16)
    try:
        assert xl.vae_upcast
        half = xl.decode(latents.half())
        assert xl.vae.dtype == torch.float16  # put back after decoding
    finally:
        xl.vae.to(torch.float32)
    assert half.dtype == torch.float32
    assert np.abs((half - full).numpy()).max() < 1e-2


def test_large_images_decode_in_tiles(tiny_sdxl: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from fathom.engine.diffusion import components as comp

    xl = load_components(tiny_sdxl, "cpu", "float32")
    latents = torch.randn(1, 4, 16, 16, generator=torch.Generator().manual_seed(1))
    whole = xl.decode(latents)
    assert not xl.vae_tiling
    monkeypatch.setattr(comp, "TILE_PIXELS", 64 * 64)  # 128² is now "large"
    xl.vae.tile_sample_min_size, xl.vae.tile_latent_min_size = 64, 8  # tiles of 64 px
    tiled = xl.decode(latents)
    assert xl.vae_tiling and tiled.shape == whole.shape == (1, 3, 128, 128)
    assert np.abs((tiled - whole).numpy()).mean() < 0.1  # the same picture, blended seams
