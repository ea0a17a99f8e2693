"""Fathom's own denoising loop over diffusers components: prompt, latents, CFG steps, decode.

Text-to-image, image-to-image and inpainting (a UNet that takes latents + mask + masked-image
latents) share one loop. Initial noise comes from a CPU generator, so a seed gives the same
starting point on any device. With no accelerations the result equals diffusers' Stable
Diffusion pipelines for the same components, scheduler, seed and settings; the order of random
draws (image encoding, noise, masked-image encoding) follows theirs so that it can.

Accelerations plug in through the contract in ``engine/accel/__init__.py``.
"""

from __future__ import annotations

import inspect
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch.nn import functional as F

from fathom.engine.diffusion.components import (
    Components,
    LoopInputError,
    _encode,
    check_size,
    decode,
)
from fathom.engine.diffusion.schedulers import guidance_embedding, make_scheduler, predicted_x0


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


def _randn(
    shape: tuple[int, ...], generator: torch.Generator, device: str, dtype: torch.dtype
) -> torch.Tensor:
    # Drawn on the CPU in the model's dtype (as diffusers does), then moved: same noise anywhere.
    return torch.randn(shape, generator=generator, device="cpu", dtype=dtype).to(device)


def _hooks(accel: Sequence[Any], name: str) -> list[Callable[..., Any]]:
    return [getattr(a, name) for a in accel if callable(getattr(a, name, None))]


@torch.no_grad()
def generate(
    components: Components,
    prompt: str,
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
    accel: Sequence[Any] = (),
    callback: Callable[[StepInfo], None] | None = None,
    decode_output: bool = True,
) -> GenerationResult:
    """Denoise ``steps`` scheduler steps and decode.

    image: 1×3×H×W in [-1, 1] for image-to-image and inpainting (``to_model_image``).
    mask: 1×1×H×W in [0, 1], 1 = repaint (binarised at 0.5), for inpainting.
    callback: called after every step; raising (e.g. Cancelled) stops the run cleanly.
    """
    t_start_clock = time.perf_counter()
    check_size(components, width, height)
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
    device = components.device
    unet = components.unet
    b = batch_size
    cfg = guidance > 1.0 and unet.config.time_cond_proj_dim is None

    cond = components.encode_prompt(prompt)
    dtype = cond.dtype
    embeds = cond.repeat(b, 1, 1)
    if cfg:
        embeds = torch.cat(
            [components.encode_prompt(negative_prompt or "").repeat(b, 1, 1), embeds]
        )

    sched = make_scheduler(components.scheduler, scheduler)
    sched.set_timesteps(steps, device=device)
    timesteps = sched.timesteps
    user_steps = steps
    if image is not None:
        keep = min(int(steps * strength), steps)
        t_start = max(steps - keep, 0)
        timesteps = timesteps[t_start * sched.order :]
        if hasattr(sched, "set_begin_index"):
            sched.set_begin_index(t_start * sched.order)
        if steps - t_start < 1:
            raise LoopInputError(
                f"strength {strength} with {steps} steps leaves no step to run",
                port="strength",
                fix="raise the strength or the steps",
            )
        user_steps = steps - t_start
    warmup = max(0, len(timesteps) - user_steps * sched.order)

    gen = torch.Generator(device="cpu").manual_seed(int(seed))
    f = components.vae_scale_factor
    shape = (b, components.latent_channels, height // f, width // f)
    mask_in = masked_in = None
    if image is None:
        latents = _randn(shape, gen, device, dtype) * sched.init_noise_sigma
    elif not inpaint:
        init = _encode(components, image, gen, dtype)
        init = init.repeat(b // init.shape[0], 1, 1, 1)
        noise = _randn(shape, gen, device, dtype)
        latents = sched.add_noise(init, noise, timesteps[:1].repeat(b))
    else:
        assert mask is not None
        full = strength == 1.0
        image = image.float()
        if not full:
            init = _encode(components, image, gen, dtype)
            init = init.repeat(b // init.shape[0], 1, 1, 1)
        noise = _randn(shape, gen, device, dtype)
        latents = (
            noise * sched.init_noise_sigma
            if full
            else sched.add_noise(init, noise, timesteps[:1].repeat(b))
        )
        binary = (mask.float() >= 0.5).float()
        masked_image = image * (binary < 0.5)
        mask_in = F.interpolate(binary, size=(height // f, width // f)).to(device, dtype)
        masked_in = _encode(components, masked_image, gen, dtype).to(device, dtype)
        mask_in = mask_in.repeat(b // mask_in.shape[0], 1, 1, 1)
        masked_in = masked_in.repeat(b // masked_in.shape[0], 1, 1, 1)
        if cfg:
            mask_in, masked_in = torch.cat([mask_in] * 2), torch.cat([masked_in] * 2)

    accepted = set(inspect.signature(sched.step).parameters)
    extra: dict[str, Any] = {}
    if "eta" in accepted:
        extra["eta"] = eta
    if "generator" in accepted:
        extra["generator"] = gen
    t_cond = None
    if unet.config.time_cond_proj_dim is not None:
        w = torch.tensor(guidance - 1).repeat(b)
        t_cond = guidance_embedding(w, unet.config.time_cond_proj_dim).to(device, latents.dtype)

    before, after = _hooks(accel, "before_step"), _hooks(accel, "after_step")
    want_x0 = bool(after) or callback is not None
    attached: list[Any] = []
    step_seconds: list[float] = []
    stopped = False
    x0 = latents
    try:
        for a in accel:
            a.attach(components)
            attached.append(a)
        for i, t in enumerate(timesteps):
            t0 = time.perf_counter()
            for hook in before:
                hook(i, t, latents)
            x_in = torch.cat([latents] * 2) if cfg else latents
            x_in = sched.scale_model_input(x_in, t)
            if inpaint:
                x_in = torch.cat([x_in, mask_in, masked_in], dim=1)
            noise_pred = components.unet(
                x_in, t, encoder_hidden_states=embeds, timestep_cond=t_cond, return_dict=False
            )[0]
            if cfg:
                uncond, text = noise_pred.chunk(2)
                noise_pred = uncond + guidance * (text - uncond)
            out = sched.step(noise_pred, t, latents, **extra, return_dict=True)
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
    finally:
        for a in reversed(attached):
            a.detach()
    final = x0 if stopped else latents
    images = (
        decode(components, final).permute(0, 2, 3, 1).numpy()
        if decode_output
        else np.zeros((0, 0, 0, 0), np.float32)
    )
    return GenerationResult(
        images,
        final,
        len(step_seconds),
        len(timesteps),
        stopped,
        scheduler or "default",
        time.perf_counter() - t_start_clock,
        step_seconds,
    )
