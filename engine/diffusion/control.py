"""ControlNet guidance inside Fathom's loop: each ControlNet reads the step's latents and its
control image and adds residuals to the UNet's skip connections, scaled by its strength, inside
its start-to-end part of the schedule (as diffusers' ControlNet pipelines do; several add up).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from fathom.engine.errors import LoopInputError


@dataclass
class ControlInput:
    """One loaded ControlNet for a run: ``image`` is 1×3×H×W in [0, 1] at the output size."""

    model: Any
    image: torch.Tensor
    scale: float = 1.0
    start: float = 0.0
    end: float = 1.0


def keep(i: int, n: int, start: float, end: float) -> float:
    """1.0 when step ``i`` of ``n`` lies inside [start, end] of the schedule, else 0.0
    (diffusers' rule: a step counts from its own fraction to the next one's)."""
    return 1.0 - float(i / n < start or (i + 1) / n > end)


def check_controls(
    controls: Sequence[ControlInput], cross_dim: int, width: int, height: int
) -> None:
    """A ControlNet made for another model family, or a control image of another size, is
    refused on the ``control`` port before the first step."""
    for k, c in enumerate(controls):
        got = int(c.model.config.cross_attention_dim)
        if got != cross_dim:
            raise LoopInputError(
                f"ControlNet {k + 1} attends to {got}-wide text features but the model to "
                f"{cross_dim}-wide ones: it was made for another model family",
                port="control",
                fix="use a ControlNet made for this model's family",
            )
        if tuple(c.image.shape[-2:]) != (height, width):
            raise LoopInputError(
                f"control image {k + 1} is {c.image.shape[-1]}×{c.image.shape[-2]}, the output "
                f"{width}×{height}",
                port="control",
                fix="resize the control image to the output size",
            )


def batched_images(
    controls: Sequence[ControlInput], batch: int, cfg: bool, device: Any
) -> list[torch.Tensor]:
    """Each control image repeated for the batch and both CFG halves (in its ControlNet's
    dtype), once per run."""
    out = []
    for c in controls:
        img = c.image.float().repeat_interleave(batch, dim=0)
        img = img.to(device=device, dtype=c.model.dtype)
        out.append(torch.cat([img] * 2) if cfg else img)
    return out


def residuals(
    controls: Sequence[ControlInput],
    images: Sequence[torch.Tensor],
    x_in: torch.Tensor,
    t: Any,
    step: int,
    steps: int,
    embeds: torch.Tensor,
    added: dict[str, torch.Tensor] | None,
) -> tuple[list[torch.Tensor] | None, torch.Tensor | None]:
    """The summed down-block and mid-block residuals of every ControlNet for this step (None,
    None without ControlNets)."""
    down: list[torch.Tensor] | None = None
    mid: torch.Tensor | None = None
    for c, image in zip(controls, images, strict=True):
        d, m = c.model(
            x_in,
            t,
            encoder_hidden_states=embeds,
            controlnet_cond=image,
            conditioning_scale=c.scale * keep(step, steps, c.start, c.end),
            added_cond_kwargs=added,
            guess_mode=False,
            return_dict=False,
        )
        if down is None or mid is None:
            down, mid = list(d), m
        else:
            down = [a + b for a, b in zip(down, d, strict=True)]
            mid = mid + m
    return down, mid
