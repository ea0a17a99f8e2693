"""Pipeline stages shared by the image, video and stream runs: prompt embeddings, guidance,
timesteps from strength, noise, and the acceleration hook contract.

Each run (``loop.generate``, ``video.VideoRun``, ``stream.StreamPipeline``) is a different
schedule of UNet calls, but the set-up around them is the same: written once here so that the
runs agree with each other and with diffusers' pipelines (the order of random draws included).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Protocol

import torch

from fathom.engine.diffusion.schedulers import guidance_embedding
from fathom.engine.errors import LoopInputError

# ---- text --------------------------------------------------------------------------------------


@torch.no_grad()
def encode_text(tokenizer: Any, text_encoder: Any, prompt: str, device: Any) -> torch.Tensor:
    """1×tokens×dim embeddings of one prompt, padded to the tokenizer's length (as diffusers'
    SD pipelines do), in the text encoder's dtype on ``device``, the run device (with CPU
    offload the encoder's weights are moved there by their hooks)."""
    tokens = tokenizer(
        prompt,
        padding="max_length",
        truncation=True,
        max_length=tokenizer.model_max_length,
        return_tensors="pt",
    )
    mask = None
    if getattr(text_encoder.config, "use_attention_mask", False):
        mask = tokens.attention_mask.to(device)
    emb = text_encoder(tokens.input_ids.to(device), attention_mask=mask)[0]
    return emb.to(dtype=text_encoder.dtype, device=device)


@dataclass
class Guidance:
    """Classifier-free guidance for one run: the batched embeddings (negative half first when
    ``cfg``), the scale, and the guidance embedding guidance-distilled (LCM) UNets take instead
    of a second half."""

    cfg: bool
    scale: float
    embeds: torch.Tensor
    t_cond: torch.Tensor | None

    def combine(self, noise_pred: torch.Tensor) -> torch.Tensor:
        """One noise prediction from a batched UNet call: uncond + scale·(text − uncond)."""
        if not self.cfg:
            return noise_pred
        uncond, text = noise_pred.chunk(2)
        return uncond + self.scale * (text - uncond)

    def batch(self, x: torch.Tensor) -> torch.Tensor:
        """The UNet input for ``x``: both halves when guiding, else ``x`` itself."""
        return torch.cat([x] * 2) if self.cfg else x


def guidance_for(
    components: Any, prompt: str, negative_prompt: str, scale: float, batch: int = 1
) -> Guidance:
    """CFG is on above scale 1 for UNets without a guidance embedding (diffusers' rule)."""
    unet = components.unet
    cond_dim = unet.config.time_cond_proj_dim
    cfg = scale > 1.0 and cond_dim is None
    cond = components.encode_prompt(prompt)
    embeds = cond.repeat(batch, 1, 1)
    if cfg:
        neg = components.encode_prompt(negative_prompt or "").repeat(batch, 1, 1)
        embeds = torch.cat([neg, embeds])
    t_cond = None
    if cond_dim is not None:
        w = torch.tensor(scale - 1).repeat(batch)
        t_cond = guidance_embedding(w, cond_dim).to(components.device, cond.dtype)
    return Guidance(cfg, float(scale), embeds, t_cond)


# ---- timesteps and noise -----------------------------------------------------------------------


def strength_timesteps(sched: Any, steps: int, strength: float) -> tuple[torch.Tensor, int]:
    """The last ``strength`` part of a ``steps``-step schedule (image-to-image) and the number
    of user steps it holds; the scheduler is told where it begins."""
    keep = min(int(steps * strength), steps)
    t_start = max(steps - keep, 0)
    if steps - t_start < 1:
        raise LoopInputError(
            f"strength {strength} with {steps} steps leaves no step to run",
            port="strength",
            fix="raise the strength or the steps",
        )
    if hasattr(sched, "set_begin_index"):
        sched.set_begin_index(t_start * sched.order)
    return sched.timesteps[t_start * sched.order :], steps - t_start


def randn(
    shape: tuple[int, ...], generator: torch.Generator, device: Any, dtype: torch.dtype
) -> torch.Tensor:
    """Noise drawn on the CPU in the model's dtype (as diffusers does), then moved: a seed gives
    the same noise on any device."""
    return torch.randn(shape, generator=generator, device="cpu", dtype=dtype).to(device)


def step_extras(sched: Any, eta: float, generator: torch.Generator) -> dict[str, Any]:
    """The keyword arguments this scheduler's ``step`` accepts (eta for DDIM, a generator for
    the ancestral samplers)."""
    accepted = set(inspect.signature(sched.step).parameters)
    extra: dict[str, Any] = {}
    if "eta" in accepted:
        extra["eta"] = eta
    if "generator" in accepted:
        extra["generator"] = generator
    return extra


# ---- the acceleration hook contract ------------------------------------------------------------


class Acceleration(Protocol):
    """What every technique in ``engine.accel`` implements (see that package's docstring):
    ``attach`` before the first step, ``detach`` after the last (also on failure or cancel),
    and optionally ``before_step(i, t, latents)`` and ``after_step(i, t, latents, pred_x0)``,
    whose True return stops denoising early."""

    def attach(self, components: Any) -> None: ...

    def detach(self) -> None: ...


def hooks(accel: Sequence[Any], name: str) -> list[Callable[..., Any]]:
    """The accelerations' optional per-step hooks called ``name``, in list order."""
    return [getattr(a, name) for a in accel if callable(getattr(a, name, None))]


@contextmanager
def attached(accel: Sequence[Acceleration], target: Any) -> Iterator[None]:
    """Attach in list order and detach in reverse, also when an attach or the run fails: the
    components are shared by every node, so they must come back exactly as they were."""
    done: list[Acceleration] = []
    try:
        for a in accel:
            a.attach(target)
            done.append(a)
        yield
    finally:
        for a in reversed(done):
            a.detach()
