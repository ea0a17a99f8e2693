"""ControlNet guidance in Fathom's loop equals diffusers' ControlNet pipelines: one ControlNet
with a strength and an end fraction, two at once (MultiControlNet), and SDXL's; a ControlNet for
another family is refused before the first step."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from fathom.engine.diffusion.control import ControlInput, keep
from fathom.engine.diffusion.loop import generate
from fathom.engine.diffusion.schedulers import make_scheduler
from fathom.engine.errors import LoopInputError
from fathom.engine.models.diffusion import load_components

RNG = np.random.default_rng(7)
HINT = torch.from_numpy(RNG.random((1, 3, 64, 64)).astype(np.float32))
HINT2 = torch.from_numpy(RNG.random((1, 3, 64, 64)).astype(np.float32))


def controlnet_for(unet: Any, seed: int) -> Any:
    """A ControlNet shaped for ``unet`` with random weights everywhere (from_unet copies the
    UNet's encoder and zeroes the output convolutions, which would make it a no-op)."""
    from diffusers import ControlNetModel

    net = ControlNetModel.from_unet(unet)
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in net.parameters():
            p.add_(torch.randn(p.shape, generator=gen) * 0.05)
    return net.eval()


@pytest.fixture(scope="module")
def sd(tiny_sd: Path) -> Any:
    return load_components(tiny_sd, "cpu", "float32")


@pytest.fixture(scope="module")
def xl(tiny_sdxl: Path) -> Any:
    return load_components(tiny_sdxl, "cpu", "float32")


def _sd_pipe(comps: Any, controlnet: Any) -> Any:
    from diffusers import StableDiffusionControlNetPipeline

    pipe = StableDiffusionControlNetPipeline(
        vae=comps.vae,
        text_encoder=comps.text_encoder,
        tokenizer=comps.tokenizer,
        unet=comps.unet,
        controlnet=controlnet,
        scheduler=make_scheduler(comps.scheduler, "default"),
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
    pipe.set_progress_bar_config(disable=True)
    return pipe


KW: dict[str, Any] = dict(steps=4, guidance=6.0, seed=9, width=64, height=64)


def _ref_kw() -> dict[str, Any]:
    return dict(
        num_inference_steps=4,
        guidance_scale=6.0,
        width=64,
        height=64,
        output_type="np",
        generator=torch.Generator().manual_seed(9),
    )


def test_the_step_range_keeps_diffusers_rule() -> None:
    assert [keep(i, 4, 0.0, 0.6) for i in range(4)] == [1.0, 1.0, 0.0, 0.0]
    assert [keep(i, 4, 0.3, 1.0) for i in range(4)] == [0.0, 0.0, 1.0, 1.0]


def test_one_controlnet_equals_the_diffusers_pipeline(sd: Any) -> None:
    net = controlnet_for(sd.unet, 1)
    ours = generate(sd, "a house", "fog", controls=[ControlInput(net, HINT, 0.8, 0.0, 0.6)], **KW)
    ref = _sd_pipe(sd, net)(
        "a house",
        negative_prompt="fog",
        image=HINT,
        controlnet_conditioning_scale=0.8,
        control_guidance_start=0.0,
        control_guidance_end=0.6,
        **_ref_kw(),
    ).images
    assert np.abs(ours.images - ref).max() <= 2 / 255
    plain = generate(sd, "a house", "fog", **KW)
    assert np.abs(ours.images - plain.images).max() > 1e-3  # it steered


def test_two_controlnets_add_up_as_multicontrolnet(sd: Any) -> None:
    a, b = controlnet_for(sd.unet, 2), controlnet_for(sd.unet, 3)
    ours = generate(
        sd,
        "a house",
        "fog",
        controls=[ControlInput(a, HINT, 0.5, 0.0, 1.0), ControlInput(b, HINT2, 1.0, 0.25, 0.75)],
        **KW,
    )
    ref = _sd_pipe(sd, [a, b])(
        "a house",
        negative_prompt="fog",
        image=[HINT, HINT2],
        controlnet_conditioning_scale=[0.5, 1.0],
        control_guidance_start=[0.0, 0.25],
        control_guidance_end=[1.0, 0.75],
        **_ref_kw(),
    ).images
    assert np.abs(ours.images - ref).max() <= 2 / 255


def test_sdxl_controlnet_equals_the_diffusers_pipeline(xl: Any) -> None:
    from diffusers import StableDiffusionXLControlNetPipeline

    net = controlnet_for(xl.unet, 4)
    ours = generate(xl, "a house", "", controls=[ControlInput(net, HINT, 0.9)], **KW)
    pipe = StableDiffusionXLControlNetPipeline(
        vae=xl.vae,
        text_encoder=xl.text_encoder,
        text_encoder_2=xl.text_encoder_2,
        tokenizer=xl.tokenizer,
        tokenizer_2=xl.tokenizer_2,
        unet=xl.unet,
        controlnet=net,
        scheduler=make_scheduler(xl.scheduler, "default"),
        force_zeros_for_empty_prompt=True,
        add_watermarker=False,
    )
    pipe.set_progress_bar_config(disable=True)
    ref = pipe("a house", image=HINT, controlnet_conditioning_scale=0.9, **_ref_kw()).images
    assert np.abs(ours.images - ref).max() <= 2 / 255


def test_a_controlnet_for_another_family_is_refused_on_the_control_port(sd: Any, xl: Any) -> None:
    net = controlnet_for(xl.unet, 5)
    with pytest.raises(LoopInputError) as info:
        generate(sd, "a house", controls=[ControlInput(net, HINT)], **KW)
    assert info.value.port == "control" and "another model family" in str(info.value)
