"""Fathom's own denoising loop over diffusers components: prompt, latents, CFG steps, decode.

Text-to-image, image-to-image and inpainting (a UNet that takes latents + mask + masked-image
latents) share one loop. Initial noise comes from a CPU generator, so a seed gives the same
starting point on any device. With no accelerations the result equals diffusers' Stable
Diffusion pipelines for the same components, scheduler, seed and settings; the order of random
draws (image encoding, noise, masked-image encoding) follows theirs so that it can.

Accelerations plug in through the hook contract (``engine.diffusion.stages.Acceleration``,
described in ``engine/accel/__init__.py``).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch.nn import functional as F

from fathom.engine.diffusion.components import Components
from fathom.engine.diffusion.control import (
    ControlInput,
    batched_images,
    check_controls,
    residuals,
)
from fathom.engine.diffusion.schedulers import make_scheduler, predicted_x0
from fathom.engine.diffusion.stages import (
    Acceleration,
    Guidance,
    attached,
    guidance_for,
    hooks,
    randn,
    step_extras,
    strength_timesteps,
)
from fathom.engine.errors import LoopInputError


@dataclass
class StepInfo:
    """What the per-step callback sees. ``index``/``total`` count UNet evaluations; ``step``/
    ``steps`` count the steps the user asked for (1-based; PNDM's first step takes two
    evaluations, and image-to-image runs only the last ``strength`` part of the schedule)."""

    index: int
    total: int
    t: Any
    latents: torch.Tensor
    pred_x0: torch.Tensor
    seconds: float
    step: int = 0
    steps: int = 0


@dataclass
class GenerationResult:
    images: np.ndarray  # B×H×W×C float32 in [0, 1]; C = the VAE's output channels
    latents: torch.Tensor  # the final clean latents (scaled, as the UNet sees them)
    steps_run: int
    steps_planned: int
    stopped_early: bool
    scheduler: str
    seconds: float
    step_seconds: list[float] = field(default_factory=list)
    #: Chunks of 75 tokens the prompt took, and text tokens cut past the longest prompt.
    prompt_chunks: int = 1
    prompt_cut: int = 0


def _check_inputs(
    components: Components,
    width: int,
    height: int,
    steps: int,
    batch_size: int,
    image: torch.Tensor | None,
    mask: torch.Tensor | None,
) -> None:
    """Refuse settings the model cannot run, on the port at fault, before any work."""
    components.check_size(width, height)
    if steps < 1:
        raise LoopInputError("steps must be at least 1", port="steps")
    if batch_size < 1:
        raise LoopInputError("batch size must be at least 1", port="batch_size")
    if image is not None and tuple(image.shape[-2:]) != (height, width):
        raise LoopInputError(
            f"the image is {image.shape[-1]}×{image.shape[-2]} but the output is {width}×{height}",
            port="image",
            fix="resize the image or set width and height to match",
        )
    inpaint = mask is not None
    if inpaint and image is None:
        raise LoopInputError("inpainting needs an image", port="image")
    if inpaint and not components.is_inpainting:
        raise LoopInputError(
            f"this model's UNet takes {components.unet.config.in_channels} input channels, so it "
            "cannot inpaint: an inpainting UNet takes "
            f"{2 * components.latent_channels + 1} (latents, mask, masked-image latents)",
            port="model",
            fix="use an inpainting checkpoint, e.g. "
            "stable-diffusion-v1-5/stable-diffusion-inpainting",
        )
    if not inpaint and components.is_inpainting:
        raise LoopInputError(
            "this is an inpainting model: its UNet needs a mask and a masked image",
            port="model",
            fix="use it with generate.inpaint, or pick a text-to-image model",
        )


@dataclass
class _Start:
    """Where denoising starts: the latents, and for inpainting the mask and masked-image
    latents the UNet takes beside them on every step (both CFG halves)."""

    latents: torch.Tensor
    extra_in: torch.Tensor | None = None


def _inpaint_inputs(
    components: Components,
    image: torch.Tensor,
    mask: torch.Tensor,
    gen: torch.Generator,
    dtype: torch.dtype,
    batch: int,
    guide: Guidance,
) -> torch.Tensor:
    """Binarised mask and masked-image latents at latent size, batched like the UNet input."""
    f = components.vae_scale_factor
    h, w = image.shape[-2:]
    binary = (mask.float() >= 0.5).float()
    mask_in = F.interpolate(binary, size=(h // f, w // f)).to(components.device, dtype)
    masked = components.encode_image(image * (binary < 0.5), gen, dtype).to(
        components.device, dtype
    )
    mask_in = mask_in.repeat(batch // mask_in.shape[0], 1, 1, 1)
    masked = masked.repeat(batch // masked.shape[0], 1, 1, 1)
    return guide.batch(torch.cat([mask_in, masked], dim=1))


def _start(
    components: Components,
    sched: Any,
    first_t: torch.Tensor,
    gen: torch.Generator,
    guide: Guidance,
    shape: tuple[int, ...],
    image: torch.Tensor | None,
    mask: torch.Tensor | None,
    strength: float,
    noise: torch.Tensor | None = None,
) -> _Start:
    """Initial latents: pure noise (text-to-image; ``noise`` when given, else the seed's
    draw), the encoded image noised to the first timestep (image-to-image), or either for
    inpainting; the random draws come in diffusers' order (image encoding, noise, masked-image
    encoding) so that results equal theirs."""
    dtype, device, b = guide.embeds.dtype, components.device, shape[0]
    if noise is not None:
        if image is not None or tuple(noise.shape) != shape:
            raise ValueError(f"starting noise is for text-to-image, shaped {shape}")
        return _Start(noise.to(device, dtype) * sched.init_noise_sigma)
    if image is None:
        return _Start(randn(shape, gen, device, dtype) * sched.init_noise_sigma)
    pure_noise = mask is not None and strength == 1.0
    if mask is not None:
        image = image.float()
    init = None
    if not pure_noise:
        init = components.encode_image(image, gen, dtype)
        init = init.repeat(b // init.shape[0], 1, 1, 1)
    noise = randn(shape, gen, device, dtype)
    if init is None:
        latents = noise * sched.init_noise_sigma
    else:
        latents = sched.add_noise(init, noise, first_t.repeat(b))
    if mask is None:
        return _Start(latents)
    return _Start(latents, _inpaint_inputs(components, image, mask, gen, dtype, b, guide))


@dataclass
class _Denoised:
    latents: torch.Tensor
    x0: torch.Tensor
    stopped: bool
    step_seconds: list[float]


@dataclass
class _Controls:
    """The run's ControlNets and their control images, batched once."""

    inputs: Sequence[ControlInput] = ()
    images: Sequence[torch.Tensor] = ()


def _denoise(
    components: Components,
    sched: Any,
    timesteps: torch.Tensor,
    start: _Start,
    guide: Guidance,
    step_kwargs: dict[str, Any],
    accel: Sequence[Acceleration],
    callback: Callable[[StepInfo], None] | None,
    user_steps: int,
    controls: _Controls,
) -> _Denoised:
    """The step loop: one UNet call per step with the CFG halves batched, the accelerations'
    hooks around it, and the callback after it (where a raise, e.g. Cancelled, stops)."""
    before, after = hooks(accel, "before_step"), hooks(accel, "after_step")
    want_x0 = bool(after) or callback is not None
    warmup = max(0, len(timesteps) - user_steps * sched.order)
    latents = x0 = start.latents
    step_seconds: list[float] = []
    stopped = False
    with attached(accel, components):
        for i, t in enumerate(timesteps):
            t0 = time.perf_counter()
            for hook in before:
                hook(i, t, latents)
            x_in = sched.scale_model_input(guide.batch(latents), t)
            down, mid = residuals(
                controls.inputs,
                controls.images,
                x_in,
                t,
                i,
                len(timesteps),
                guide.embeds,
                guide.added,
            )
            if start.extra_in is not None:
                x_in = torch.cat([x_in, start.extra_in], dim=1)
            noise_pred = guide.combine(
                components.unet(
                    x_in,
                    t,
                    encoder_hidden_states=guide.embeds,
                    timestep_cond=guide.t_cond,
                    added_cond_kwargs=guide.added,
                    down_block_additional_residuals=down,
                    mid_block_additional_residual=mid,
                    return_dict=False,
                )[0]
            )
            out = sched.step(noise_pred, t, latents, **step_kwargs, return_dict=True)
            if want_x0:
                x0 = predicted_x0(sched, out, noise_pred, latents, t)
            latents = out.prev_sample
            for hook in after:
                stopped = bool(hook(i, t, latents, x0)) or stopped
            step_seconds.append(time.perf_counter() - t0)
            if callback is not None:
                step = max(1, (i + 1 - warmup + sched.order - 1) // sched.order)
                callback(
                    StepInfo(i, len(timesteps), t, latents, x0, step_seconds[-1], step, user_steps)
                )
            if stopped:
                break
    return _Denoised(latents, x0, stopped, step_seconds)


@torch.no_grad()
def generate(
    components: Components,
    prompt: str | Sequence[str],
    negative_prompt: str = "",
    *,
    steps: int = 20,
    guidance: float = 7.5,
    seed: int = 0,
    width: int = 512,
    height: int = 512,
    batch_size: int = 1,
    scheduler: str | None = "default",
    image: torch.Tensor | None = None,
    mask: torch.Tensor | None = None,
    strength: float = 1.0,
    eta: float = 0.0,
    accel: Sequence[Acceleration] = (),
    callback: Callable[[StepInfo], None] | None = None,
    decode_output: bool = True,
    controls: Sequence[ControlInput] = (),
    image_embeds: list[torch.Tensor] | None = None,
    latents: torch.Tensor | None = None,
) -> GenerationResult:
    """Denoise ``steps`` scheduler steps and decode.

    prompt: one prompt, or a list: ``batch_size`` images of each, in order (diffusers' list).
    latents: text-to-image's starting noise (unit variance, the batch's latent shape) in place
    of the seed's draw, as diffusers' ``latents`` (``engine.diffusion.joint_views``).

    image: 1×3×H×W in [-1, 1] for image-to-image and inpainting (``Components.to_model_image``).
    mask: 1×1×H×W in [0, 1], 1 = repaint (binarised at 0.5), for inpainting.
    callback: called after every step; raising (e.g. Cancelled) stops the run cleanly.
    controls: ControlNets with their control images (``engine.diffusion.control``).
    image_embeds: IP-Adapter image embeddings (``engine.diffusion.ipadapter.active``).
    """
    t_start_clock = time.perf_counter()
    _check_inputs(components, width, height, steps, batch_size, image, mask)
    check_controls(controls, int(components.unet.config.cross_attention_dim), width, height)
    guide = guidance_for(
        components, prompt, negative_prompt, guidance, batch_size, size=(height, width)
    )
    if image_embeds is not None:
        guide.added = {**(guide.added or {}), "image_embeds": image_embeds}
    sched = make_scheduler(components.scheduler, scheduler)
    sched.set_timesteps(steps, device=components.device)
    timesteps, user_steps = sched.timesteps, steps
    if image is not None:
        timesteps, user_steps = strength_timesteps(sched, steps, strength)
    gen = torch.Generator(device="cpu").manual_seed(int(seed))
    f = components.vae_scale_factor
    texts = [prompt] if isinstance(prompt, str) else list(prompt)
    n = batch_size * len(texts)
    shape = (n, components.latent_channels, height // f, width // f)
    start = _start(
        components, sched, timesteps[:1], gen, guide, shape, image, mask, strength, latents
    )
    control_images = batched_images(controls, n, guide.cfg, components.device)
    done = _denoise(
        components,
        sched,
        timesteps,
        start,
        guide,
        step_extras(sched, eta, gen),
        accel,
        callback,
        user_steps,
        _Controls(controls, control_images),
    )
    final = done.x0 if done.stopped else done.latents
    images = (
        components.decode(final).permute(0, 2, 3, 1).numpy()
        if decode_output
        else np.zeros((0, 0, 0, 0), np.float32)
    )
    return GenerationResult(
        images,
        final,
        len(done.step_seconds),
        len(timesteps),
        done.stopped,
        scheduler or "default",
        time.perf_counter() - t_start_clock,
        done.step_seconds,
        max(components.encode(t).chunks for t in texts),
        max(components.encode(t).cut for t in texts),
    )
