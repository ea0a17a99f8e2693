"""Schedulers: the sampler table, fresh per-run schedulers, clean-latent estimates, guidance
embeddings. Importing it costs no torch import, so node declarations can list the samplers."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from fathom.engine.errors import LoopInputError

if TYPE_CHECKING:
    import torch

#: Scheduler choices; "default" is the scheduler the model ships with.
SCHEDULERS: dict[str, tuple[str, dict[str, Any]]] = {
    "ddim": ("DDIMScheduler", {}),
    "euler": ("EulerDiscreteScheduler", {}),
    "euler_a": ("EulerAncestralDiscreteScheduler", {}),
    "dpmpp_2m": (
        "DPMSolverMultistepScheduler",
        {"algorithm_type": "dpmsolver++", "solver_order": 2},
    ),
    "unipc": ("UniPCMultistepScheduler", {}),
    "lcm": ("LCMScheduler", {}),
}


SCHEDULER_CHOICES = ("default", *SCHEDULERS)


def make_scheduler(base: Any, name: str | None) -> Any:
    """A fresh scheduler for one run (schedulers hold per-run state), configured like ``base``."""
    # Latent diffusion never clips samples to [-1, 1], and SD-family schedules start one step
    # in: old configs that say otherwise are corrected (diffusers' SD pipelines do the same).
    fixes: dict[str, Any] = {}
    extra: dict[str, Any]
    if name in (None, "", "default"):
        cls, extra = base.__class__, {}
    elif name in SCHEDULERS:
        import diffusers

        cls_name, extra = SCHEDULERS[name]
        cls = getattr(diffusers, cls_name)
    else:
        raise LoopInputError(
            f"unknown scheduler {name!r}",
            port="scheduler",
            fix="use one of: " + ", ".join(SCHEDULER_CHOICES),
        )
    sched = cls.from_config(base.config, **extra)
    if getattr(sched.config, "steps_offset", 1) != 1:
        fixes["steps_offset"] = 1
    if getattr(sched.config, "clip_sample", False) is True:
        fixes["clip_sample"] = False
    return cls.from_config(sched.config, **fixes) if fixes else sched


def guidance_embedding(w: torch.Tensor, dim: int) -> torch.Tensor:
    """Sinusoidal embedding of the guidance scale, for guidance-distilled (LCM) UNets."""
    import torch
    from torch.nn import functional as F

    w = w.float() * 1000.0
    half = dim // 2
    freqs = torch.exp(torch.arange(half, dtype=torch.float32) * -(math.log(10000.0) / (half - 1)))
    args = w[:, None] * freqs[None, :]
    emb = torch.cat([torch.sin(args), torch.cos(args)], dim=1)
    return F.pad(emb, (0, 1)) if dim % 2 else emb


def predicted_x0(
    scheduler: Any, step_out: Any, model_output: torch.Tensor, sample: torch.Tensor, t: torch.Tensor
) -> torch.Tensor:
    """The step's estimate of the clean latents: from the scheduler when it says, else from
    the variance-preserving form x_t = sqrt(a)·x0 + sqrt(1 - a)·eps (DPM++, UniPC)."""
    import torch

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
