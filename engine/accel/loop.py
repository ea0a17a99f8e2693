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
import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch.nn import functional as F

#: Scheduler choices; "default" is the scheduler the model ships with.
SCHEDULERS: dict[str, tuple[str, dict[str, Any]]] = {
    "ddim": ("DDIMScheduler", {}),
    "euler": ("EulerDiscreteScheduler", {}),
    "euler_a": ("EulerAncestralDiscreteScheduler", {}),
    "dpmpp_2m": ("DPMSolverMultistepScheduler", {"algorithm_type": "dpmsolver++",
                                                 "solver_order": 2}),
    "unipc": ("UniPCMultistepScheduler", {}),
    "lcm": ("LCMScheduler", {}),
}
SCHEDULER_CHOICES = ("default", *SCHEDULERS)
PROMPT_CACHE_SIZE = 32


class LoopInputError(ValueError):
    """A setting the loop cannot use; ``port`` names the node input or parameter at fault."""

    def __init__(self, message: str, port: str | None = None, fix: str | None = None) -> None:
        super().__init__(message)
        self.port = port
        self.fix = fix


@dataclass(eq=False)
class Components:
    """The loaded parts of a Stable-Diffusion-family model, shared by every node that uses it.

    ``device`` is where the loop runs (with CPU offload the weights may live elsewhere between
    calls); ``offload`` is "none", "model" or "sequential". Prompt embeddings are cached here,
    per prompt, because the same prompt is encoded on every re-run of a graph.
    """

    unet: Any
    vae: Any
    text_encoder: Any
    tokenizer: Any
    scheduler: Any
    tiny_vae: Any = None
    device: str = "cpu"
    dtype: torch.dtype = torch.float32
    offload: str = "none"
    vae_tiling: bool = False
    source: str = ""
    preview_fit: Any = field(default=None, repr=False)
    _prompts: OrderedDict[str, torch.Tensor] = field(default_factory=OrderedDict, repr=False)
    _lock: Any = field(default_factory=threading.Lock, repr=False)

    @property
    def vae_scale_factor(self) -> int:
        return 2 ** (len(self.vae.config.block_out_channels) - 1)

    @property
    def latent_channels(self) -> int:
        return int(self.vae.config.latent_channels)

    @property
    def is_inpainting(self) -> bool:
        return int(self.unet.config.in_channels) == 2 * self.latent_channels + 1

    @property
    def decoded_channels(self) -> int:
        return int(self.vae.config.out_channels)

    @torch.no_grad()
    def encode_prompt(self, prompt: str) -> torch.Tensor:
        """1×tokens×dim embeddings of one prompt on the run device (cached per prompt)."""
        with self._lock:
            hit = self._prompts.get(prompt)
            if hit is not None:
                self._prompts.move_to_end(prompt)
                return hit
        ids = self.tokenizer(prompt, padding="max_length", truncation=True,
                             max_length=self.tokenizer.model_max_length,
                             return_tensors="pt").input_ids
        mask = None
        if getattr(self.text_encoder.config, "use_attention_mask", False):
            mask = self.tokenizer(prompt, padding="max_length", truncation=True,
                                  max_length=self.tokenizer.model_max_length,
                                  return_tensors="pt").attention_mask.to(self.device)
        emb = self.text_encoder(ids.to(self.device), attention_mask=mask)[0]
        emb = emb.to(dtype=self.text_encoder.dtype, device=self.device)
        with self._lock:
            self._prompts[prompt] = emb
            while len(self._prompts) > PROMPT_CACHE_SIZE:
                self._prompts.popitem(last=False)
        return emb


def make_scheduler(base: Any, name: str | None) -> Any:
    """A fresh scheduler for one run (schedulers hold per-run state), configured like ``base``."""
    # Latent diffusion never clips samples to [-1, 1], and SD-family schedules start one step
    # in: old configs that say otherwise are corrected (diffusers' SD pipelines do the same).
    fixes: dict[str, Any] = {}
    if name in (None, "", "default"):
        cls, extra = base.__class__, {}
    elif name in SCHEDULERS:
        import diffusers

        cls_name, extra = SCHEDULERS[name]
        cls = getattr(diffusers, cls_name)
    else:
        raise LoopInputError(f"unknown scheduler {name!r}", port="scheduler",
                             fix="use one of: " + ", ".join(SCHEDULER_CHOICES))
    sched = cls.from_config(base.config, **extra)
    if getattr(sched.config, "steps_offset", 1) != 1:
        fixes["steps_offset"] = 1
    if getattr(sched.config, "clip_sample", False) is True:
        fixes["clip_sample"] = False
    return cls.from_config(sched.config, **fixes) if fixes else sched


def guidance_embedding(w: torch.Tensor, dim: int) -> torch.Tensor:
    """Sinusoidal embedding of the guidance scale, for guidance-distilled (LCM) UNets."""
    w = w.float() * 1000.0
    half = dim // 2
    freqs = torch.exp(torch.arange(half, dtype=torch.float32) * -(math.log(10000.0) / (half - 1)))
    args = w[:, None] * freqs[None, :]
    emb = torch.cat([torch.sin(args), torch.cos(args)], dim=1)
    return F.pad(emb, (0, 1)) if dim % 2 else emb


def predicted_x0(scheduler: Any, step_out: Any, model_output: torch.Tensor,
                 sample: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """The step's estimate of the clean latents: from the scheduler when it says, else from
    the variance-preserving form x_t = sqrt(a)·x0 + sqrt(1 - a)·eps (DPM++, UniPC)."""
    for name in ("pred_original_sample", "denoised"):
        x0 = getattr(step_out, name, None)
        if x0 is not None:
            return x0
    acp = scheduler.alphas_cumprod[int(t)].to(sample.device, torch.float32)
    a, s = acp.sqrt(), (1 - acp).sqrt()
    kind = scheduler.config.prediction_type
    x = sample.float()
    out = model_output.float()
    if kind == "v_prediction":
        x0 = a * x - s * out
    elif kind == "sample":
        x0 = out
    else:
        x0 = (x - s * out) / a
    return x0.to(sample.dtype)


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


def check_size(components: Components, width: int, height: int) -> None:
    f = components.vae_scale_factor
    for port, v in (("width", width), ("height", height)):
        if v <= 0 or v % f:
            lo, hi = (v // f) * f, (v // f + 1) * f
            raise LoopInputError(f"{port} {v} is not a multiple of {f}: the VAE works on "
                                 f"{f}×{f} pixel blocks", port=port,
                                 fix=f"use {max(lo, f)} or {hi}")


def to_model_image(rgb: np.ndarray, components: Components) -> torch.Tensor:
    """H×W×3 (or B×H×W×3) float in [0, 1] → B×3×H×W in [-1, 1] on the run device."""
    arr = np.asarray(rgb, np.float32)
    if arr.ndim == 3:
        arr = arr[None]
    t = torch.from_numpy(np.ascontiguousarray(arr)).permute(0, 3, 1, 2)
    return (2.0 * t - 1.0).contiguous().to(components.device)


def _randn(shape: tuple[int, ...], generator: torch.Generator, device: str,
           dtype: torch.dtype) -> torch.Tensor:
    # Drawn on the CPU in the model's dtype (as diffusers does), then moved: same noise anywhere.
    return torch.randn(shape, generator=generator, device="cpu", dtype=dtype).to(device)


def _encode(components: Components, image: torch.Tensor, generator: torch.Generator,
            dtype: torch.dtype) -> torch.Tensor:
    vae = components.vae
    out = vae.encode(image.to(components.device, dtype))
    if hasattr(out, "latent_dist"):
        z = out.latent_dist.sample(generator=generator)
    else:
        z = out.latents
    return z * vae.config.scaling_factor


@torch.no_grad()
def decode(components: Components, latents: torch.Tensor) -> torch.Tensor:
    """Clean latents → B×C×H×W float32 in [0, 1] on the CPU."""
    vae = components.vae
    img = vae.decode(latents / vae.config.scaling_factor, return_dict=False)[0]
    return (img / 2 + 0.5).clamp(0, 1).float().cpu()


def _hooks(accel: Sequence[Any], name: str) -> list[Callable[..., Any]]:
    return [getattr(a, name) for a in accel if callable(getattr(a, name, None))]


@torch.no_grad()
def generate(components: Components, prompt: str, negative_prompt: str = "", *,
             steps: int = 20, guidance: float = 7.5, seed: int = 0, width: int = 512,
             height: int = 512, batch_size: int = 1, scheduler: str | None = "default",
             image: torch.Tensor | None = None, mask: torch.Tensor | None = None,
             strength: float = 1.0, eta: float = 0.0, accel: Sequence[Any] = (),
             callback: Callable[[StepInfo], None] | None = None,
             decode_output: bool = True) -> GenerationResult:
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
        raise LoopInputError(f"the image is {image.shape[-1]}×{image.shape[-2]} but the output "
                             f"is {width}×{height}", port="image",
                             fix="resize the image or set width and height to match")
    inpaint = mask is not None
    if inpaint and image is None:
        raise LoopInputError("inpainting needs an image", port="image")
    if inpaint and not components.is_inpainting:
        raise LoopInputError(
            f"this model's UNet takes {components.unet.config.in_channels} input channels, so it "
            "cannot inpaint: an inpainting UNet takes "
            f"{2 * components.latent_channels + 1} (latents, mask, masked-image latents)",
            port="model", fix="use an inpainting checkpoint, e.g. "
            "stable-diffusion-v1-5/stable-diffusion-inpainting")
    if not inpaint and components.is_inpainting:
        raise LoopInputError("this is an inpainting model: its UNet needs a mask and a masked "
                             "image", port="model", fix="use it with generate.inpaint, or pick "
                             "a text-to-image model")
    device = components.device
    unet = components.unet
    b = batch_size
    cfg = guidance > 1.0 and unet.config.time_cond_proj_dim is None

    cond = components.encode_prompt(prompt)
    dtype = cond.dtype
    embeds = cond.repeat(b, 1, 1)
    if cfg:
        embeds = torch.cat([components.encode_prompt(negative_prompt or "").repeat(b, 1, 1),
                            embeds])

    sched = make_scheduler(components.scheduler, scheduler)
    sched.set_timesteps(steps, device=device)
    timesteps = sched.timesteps
    user_steps = steps
    if image is not None:
        keep = min(int(steps * strength), steps)
        t_start = max(steps - keep, 0)
        timesteps = timesteps[t_start * sched.order:]
        if hasattr(sched, "set_begin_index"):
            sched.set_begin_index(t_start * sched.order)
        if steps - t_start < 1:
            raise LoopInputError(f"strength {strength} with {steps} steps leaves no step to run",
                                 port="strength", fix="raise the strength or the steps")
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
        latents = noise * sched.init_noise_sigma if full else sched.add_noise(
            init, noise, timesteps[:1].repeat(b))
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
            noise_pred = components.unet(x_in, t, encoder_hidden_states=embeds,
                                         timestep_cond=t_cond, return_dict=False)[0]
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
                callback(StepInfo(i, len(timesteps), t, latents, x0, step_seconds[-1],
                                  step, user_steps))
            if stopped:
                break
    finally:
        for a in reversed(attached):
            a.detach()
    final = x0 if stopped else latents
    images = (decode(components, final).permute(0, 2, 3, 1).numpy() if decode_output
              else np.zeros((0, 0, 0, 0), np.float32))
    return GenerationResult(images, final, len(step_seconds), len(timesteps), stopped,
                            scheduler or "default", time.perf_counter() - t_start_clock,
                            step_seconds)


@contextmanager
def horizontal_wrap(*modules: Any) -> Iterator[None]:
    """Convolutions pad circularly along the width while inside: the left and right edges of an
    equirectangular 360° panorama then continue into each other (no seam). Rows still get zero
    padding (the poles do not wrap). Restores every convolution on exit."""
    patched: list[tuple[Any, Any, Any]] = []
    for m in modules:
        if m is None:
            continue
        for conv in m.modules():
            if not isinstance(conv, torch.nn.Conv2d) or isinstance(conv.padding, str):
                continue
            ph, pw = conv.padding
            if pw == 0 or conv.padding_mode != "zeros":
                continue
            own = conv.__dict__.get("forward")  # e.g. an offload hook's forward
            inner = conv.forward

            def forward(x: torch.Tensor, _inner: Any = inner, _ph: int = ph,
                        _pw: int = pw) -> torch.Tensor:
                x = F.pad(x, (_pw, _pw, 0, 0), mode="circular")
                return _inner(F.pad(x, (0, 0, _ph, _ph)))

            patched.append((conv, conv.padding, own))
            conv.padding = (0, 0)
            conv.forward = forward
    try:
        yield
    finally:
        for conv, padding, own in patched:
            conv.padding = padding
            if own is None:
                del conv.forward
            else:
                conv.forward = own
