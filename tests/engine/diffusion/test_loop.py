"""Fathom's denoising loop equals diffusers' pipelines; the acceleration contract; previews."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from fathom.engine.diffusion.loop import generate
from fathom.engine.diffusion.preview import Previewer, fit_linear, linear_rgb, measure_overhead
from fathom.engine.diffusion.schedulers import make_scheduler, predicted_x0
from fathom.engine.diffusion.seamless import horizontal_wrap
from fathom.engine.errors import Cancelled, LoopInputError
from fathom.engine.models.diffusion import load_components

RGB = np.random.default_rng(0).random((64, 64, 3)).astype(np.float32)
MASK = np.zeros((64, 64), np.float32)
MASK[16:48, 8:40] = 1.0
MASK[:4, :4] = 0.7  # binarised at 0.5


@pytest.fixture(scope="module")
def comps(tiny_sd: Path) -> Any:
    return load_components(tiny_sd, "cpu", "float32")


@pytest.fixture(scope="module")
def inpaint_comps(tiny_sd_factory: Any) -> Any:
    return load_components(tiny_sd_factory(unet_in_channels=9), "cpu", "float32")


def _pipe(cls: Any, comps: Any, scheduler: str) -> Any:
    pipe = cls(
        unet=comps.unet,
        vae=comps.vae,
        text_encoder=comps.text_encoder,
        tokenizer=comps.tokenizer,
        scheduler=make_scheduler(comps.scheduler, scheduler),
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
    pipe.set_progress_bar_config(disable=True)
    return pipe


def _image_pt() -> torch.Tensor:
    # NCHW-contiguous in [0, 1]: exactly what the loop gets (to_model_image), so the VAE
    # encoder runs the same kernels in both.
    return torch.from_numpy(RGB).permute(2, 0, 1)[None].contiguous()


@pytest.mark.parametrize(
    "scheduler", ["default", "ddim", "euler", "euler_a", "dpmpp_2m", "unipc", "lcm"]
)
def test_text_to_image_equals_the_diffusers_pipeline(comps: Any, scheduler: str) -> None:
    from diffusers import StableDiffusionPipeline

    batch = 2 if scheduler in ("default", "euler_a") else 1
    ours = generate(
        comps,
        "a red cat",
        "blurry",
        steps=3,
        guidance=7.5,
        seed=3,
        width=64,
        height=64,
        scheduler=scheduler,
        batch_size=batch,
    )
    ref = _pipe(StableDiffusionPipeline, comps, scheduler)(
        "a red cat",
        negative_prompt="blurry",
        num_inference_steps=3,
        guidance_scale=7.5,
        width=64,
        height=64,
        num_images_per_prompt=batch,
        output_type="np",
        generator=torch.Generator("cpu").manual_seed(3),
    ).images
    assert ours.images.shape == ref.shape == (batch, 64, 64, 3)
    assert np.allclose(ours.images, ref, atol=1e-5)
    # PNDM (the model's default) evaluates one extra timestep in its first step.
    assert ours.steps_run == ours.steps_planned == (4 if scheduler == "default" else 3)
    assert not ours.stopped_early


def test_guidance_distilled_unets_get_the_guidance_embedding(comps: Any) -> None:
    from diffusers import StableDiffusionPipeline, UNet2DConditionModel

    from fathom.engine.diffusion.components import Components

    torch.manual_seed(0)
    unet = UNet2DConditionModel.from_config({**comps.unet.config, "time_cond_proj_dim": 16})
    lcm = Components(unet.eval(), comps.vae, comps.text_encoder, comps.tokenizer, comps.scheduler)
    ours = generate(
        lcm, "a cat", steps=2, guidance=8.0, seed=1, width=64, height=64, scheduler="lcm"
    )
    ref = _pipe(StableDiffusionPipeline, lcm, "lcm")(
        "a cat",
        num_inference_steps=2,
        guidance_scale=8.0,
        width=64,
        height=64,
        output_type="np",
        generator=torch.Generator().manual_seed(1),
    ).images
    assert np.allclose(ours.images, ref, atol=1e-5)


@pytest.mark.parametrize("scheduler", ["default", "euler_a"])
def test_image_to_image_equals_the_diffusers_pipeline(comps: Any, scheduler: str) -> None:
    from diffusers import StableDiffusionImg2ImgPipeline

    ours = generate(
        comps,
        "a cat",
        steps=4,
        guidance=5.0,
        seed=1,
        width=64,
        height=64,
        scheduler=scheduler,
        image=comps.to_model_image(RGB),
        strength=0.6,
    )
    ref = _pipe(StableDiffusionImg2ImgPipeline, comps, scheduler)(
        "a cat",
        image=_image_pt(),
        num_inference_steps=4,
        guidance_scale=5.0,
        strength=0.6,
        generator=torch.Generator().manual_seed(1),
        output_type="np",
    ).images
    assert np.allclose(ours.images, ref, atol=1e-5)
    # int(4 * 0.6) = 2 of the 4 steps run (PNDM evaluates one extra timestep)
    assert ours.steps_planned == (3 if scheduler == "default" else 2)


@pytest.mark.parametrize(("scheduler", "strength"), [("default", 1.0), ("euler_a", 0.7)])
def test_inpainting_equals_the_diffusers_pipeline(
    inpaint_comps: Any, scheduler: str, strength: float
) -> None:
    from diffusers import StableDiffusionInpaintPipeline

    ours = generate(
        inpaint_comps,
        "a cat",
        steps=3,
        guidance=6.0,
        seed=2,
        width=64,
        height=64,
        scheduler=scheduler,
        batch_size=2,
        image=inpaint_comps.to_model_image(RGB),
        mask=torch.from_numpy(MASK)[None, None],
        strength=strength,
    )
    ref = _pipe(StableDiffusionInpaintPipeline, inpaint_comps, scheduler)(
        "a cat",
        image=_image_pt(),
        mask_image=MASK[None, :, :, None],
        num_inference_steps=3,
        guidance_scale=6.0,
        strength=strength,
        num_images_per_prompt=2,
        height=64,
        width=64,
        generator=torch.Generator().manual_seed(2),
        output_type="np",
    ).images
    assert np.allclose(ours.images, ref, atol=1e-5)


def test_bad_settings_name_their_port(comps: Any, inpaint_comps: Any) -> None:
    with pytest.raises(LoopInputError) as err:
        generate(comps, "", steps=2, width=60, height=64)
    assert err.value.port == "width" and err.value.fix == "use 56 or 64"
    with pytest.raises(LoopInputError) as err:
        generate(
            comps,
            "",
            steps=2,
            width=64,
            height=64,
            image=comps.to_model_image(RGB),
            mask=torch.ones(1, 1, 64, 64),
        )
    assert err.value.port == "model" and "9" in str(err.value)
    with pytest.raises(LoopInputError) as err:
        generate(inpaint_comps, "", steps=2, width=64, height=64)
    assert err.value.port == "model" and "inpainting model" in str(err.value)
    with pytest.raises(LoopInputError) as err:
        generate(
            comps, "", steps=2, width=64, height=64, image=comps.to_model_image(RGB), strength=0.1
        )
    assert err.value.port == "strength"


def test_prompts_are_encoded_once_and_seeds_repeat(comps: Any) -> None:
    calls = []
    handle = comps.text_encoder.register_forward_hook(lambda *a: calls.append(1))
    try:
        first = comps.encode_prompt("a seldom used prompt")
        assert comps.encode_prompt("a seldom used prompt") is first and len(calls) == 1
    finally:
        handle.remove()
    a = generate(comps, "x", steps=2, seed=11, width=64, height=64, guidance=1.0)
    b = generate(comps, "x", steps=2, seed=11, width=64, height=64, guidance=1.0)
    c = generate(comps, "x", steps=2, seed=12, width=64, height=64, guidance=1.0)
    assert np.array_equal(a.images, b.images) and not np.allclose(a.images, c.images)


class Recorder:
    """An acceleration that wraps the UNet through components.unet and records the hooks."""

    def __init__(self, stop_at: int | None = None) -> None:
        self.log: list[str] = []
        self.stop_at = stop_at
        self.unet_calls = 0

    def attach(self, components: Any) -> None:
        self.components, self.unet = components, components.unet
        outer = self

        class Wrapped(torch.nn.Module):
            def __init__(self, inner: Any) -> None:
                super().__init__()
                self.inner, self.config = inner, inner.config

            def forward(self, *args: Any, **kwargs: Any) -> Any:
                outer.unet_calls += 1
                return self.inner(*args, **kwargs)

        components.unet = Wrapped(self.unet)
        self.log.append("attach")

    def detach(self) -> None:
        self.components.unet = self.unet
        self.log.append("detach")

    def before_step(self, i: int, t: Any, latents: torch.Tensor) -> None:
        self.log.append(f"before {i}")

    def after_step(self, i: int, t: Any, latents: torch.Tensor, pred_x0: torch.Tensor) -> bool:
        self.log.append(f"after {i}")
        return i == self.stop_at


def test_accelerations_see_every_step_and_the_unet_and_can_stop_early(comps: Any) -> None:
    rec = Recorder(stop_at=1)
    unet = comps.unet
    res = generate(
        comps, "a cat", steps=4, seed=0, width=64, height=64, accel=[rec], scheduler="ddim"
    )
    assert rec.log == ["attach", "before 0", "after 0", "before 1", "after 1", "detach"]
    assert rec.unet_calls == 2 and comps.unet is unet
    assert res.steps_run == 2 and res.steps_planned == 4 and res.stopped_early
    # An early stop decodes the step's clean estimate, not the noisy latents.

    assert np.allclose(res.images, comps.decode(res.latents).permute(0, 2, 3, 1).numpy())


def test_cancelling_in_the_callback_stops_and_detaches(comps: Any) -> None:
    rec = Recorder()
    seen = []

    def cancel(info: Any) -> None:
        seen.append(info.index)
        if info.index == 1:
            raise Cancelled("stop")

    with pytest.raises(Cancelled):
        generate(comps, "a cat", steps=5, width=64, height=64, accel=[rec], callback=cancel)
    assert seen == [0, 1] and rec.log[-1] == "detach"


def test_predicted_x0_matches_the_scheduler_where_it_reports_one(comps: Any) -> None:
    ddim = make_scheduler(comps.scheduler, "ddim")
    ddim.set_timesteps(10)
    g = torch.Generator().manual_seed(0)
    x, eps = torch.randn(1, 4, 8, 8, generator=g), torch.randn(1, 4, 8, 8, generator=g)
    t = ddim.timesteps[3]
    out = ddim.step(eps, t, x)
    assert torch.allclose(
        predicted_x0(ddim, object(), eps, x, t), out.pred_original_sample, atol=1e-5
    )


def test_horizontal_wrap_makes_convolutions_circular_in_width_and_restores_them() -> None:
    conv = torch.nn.Conv2d(2, 3, 3, padding=1)
    x = torch.randn(1, 2, 5, 7)
    plain = conv(x)
    with horizontal_wrap(conv):
        wrapped = conv(x)
    ref = torch.nn.functional.conv2d(
        torch.nn.functional.pad(
            torch.nn.functional.pad(x, (1, 1, 0, 0), mode="circular"), (0, 0, 1, 1)
        ),
        conv.weight,
        conv.bias,
    )
    assert torch.allclose(wrapped, ref, atol=1e-6) and not torch.allclose(wrapped, plain)
    assert conv.padding == (1, 1) and "forward" not in conv.__dict__
    assert torch.equal(conv(x), plain)


# ---- previews ------------------------------------------------------------------------------


def test_linear_preview_fits_the_models_own_decoder(comps: Any) -> None:

    fit = fit_linear(comps)
    assert fit.shape == (comps.latent_channels + 1, 3)
    z = torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(5))
    img = linear_rgb(z, fit)
    assert img.shape == (8, 8, 3) and img.dtype == np.float32
    ref = torch.nn.functional.avg_pool2d(comps.decode(z), 8)[0].permute(1, 2, 0).numpy()
    # A least-squares fit beats predicting the mean colour everywhere.
    assert np.mean((img - ref) ** 2) < np.mean((ref.mean(axis=(0, 1)) - ref) ** 2)


class FakeClock:
    def __init__(self) -> None:
        self.t = 0.0
        self.cost = 0.0

    def __call__(self) -> float:
        self.t += self.cost / 2  # each preview reads the clock twice
        return self.t


def test_previews_stay_within_a_tenth_of_the_step_time(comps: Any) -> None:
    clock = FakeClock()
    pv = Previewer(comps, "tiny", budget=0.10, clock=clock)
    pv.prepare()
    z = torch.randn(1, 4, 8, 8)
    clock.cost = 0.25  # a preview costing a quarter of a 1 s step
    shown = [pv(z, 1.0) is not None for _ in range(20)]
    assert pv.overhead <= 0.10 + 0.25 / 20  # at most one preview ahead of the budget
    assert any(shown) and not all(shown)
    assert pv.mode == "linear" or pv.scale > 1  # a slow tiny preview degrades
    clock.cost = 0.001
    fast = Previewer(comps, "linear", clock=clock)
    assert all(fast(z, 1.0) is not None for _ in range(5))
    assert Previewer(comps, "off")(z, 1.0) is None
    assert Previewer(comps, "auto").mode == "tiny"  # the model's vae_tiny/ is used


def test_measure_overhead_reports_step_and_preview_cost(comps: Any) -> None:
    row = measure_overhead(comps, "linear", steps=2, width=64, height=64, repeats=1)
    assert row["mode"] == "linear" and row["step_seconds"] > 0 and row["ratio"] >= 0
