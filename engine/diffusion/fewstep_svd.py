"""The sampler few-step (consistency-distilled) Stable Video Diffusion checkpoints need.

Checkpoints such as AnimateLCM-SVD-xt are SVD-xt UNets distilled to make a clip in 1-4 steps
without guidance; they ship no diffusers scheduler (their authors' sampler is a consistency
model sampler adapted to SVD's EDM parameterisation, which diffusers lacks: its
``CMStochasticIterativeScheduler`` feeds the network ``1000·0.25·ln σ`` where SVD's UNet was
trained on ``0.25·ln σ``). This module holds that sampler, written from the consistency-model
formulas (Song et al. 2023, boundary-condition scalings) with SVD's v-prediction EDM
preconditioning, as a diffusers scheduler so that ``StableVideoDiffusionPipeline`` runs it
unchanged, and the rule that finds which sampler a folder needs.
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import torch
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.schedulers.scheduling_utils import SchedulerMixin, SchedulerOutput

#: Scheduler class names (from a folder's scheduler_config.json) that mean "a consistency
#: model sampler": the AnimateLCM-SVD one (not in diffusers) and diffusers' own CM scheduler
#: (in diffusers, but its timestep scale is wrong for SVD's UNet).
CONSISTENCY_NAMES = (
    "AnimateLCMSVDStochasticIterativeScheduler",
    "CMStochasticIterativeScheduler",
    "SVDConsistencyScheduler",
)
#: Words in a folder's model card (README.md) that mark a consistency-distilled SVD.
CARD_MARKS = ("animatelcm", "consistency distilled", "consistency-distilled")
SCHEDULERS = ("default", "euler", "consistency")


class SVDConsistencyScheduler(SchedulerMixin, ConfigMixin):  # type: ignore[misc]
    """Multistep consistency sampling on SVD's EDM v-prediction: each step maps the sample at
    noise level σ to a clean estimate ``c_skip·x + c_out·v`` (the boundary-condition
    scalings, exact at σ_min), then re-noises it to the next σ with fresh noise drawn from
    ``generator`` (set it for a reproducible clip). Sigmas follow Karras et al.'s ρ-schedule
    on a grid of ``num_train_timesteps`` levels; the network sees ``0.25·ln σ``."""

    order = 1

    @register_to_config
    def __init__(
        self,
        num_train_timesteps: int = 40,
        sigma_min: float = 0.002,
        sigma_max: float = 700.0,
        sigma_data: float = 1.0,
        s_noise: float = 1.0,
        rho: float = 7.0,
        clip_denoised: bool = False,
    ) -> None:
        self.generator: torch.Generator | None = None
        self.set_timesteps(1)
        self.init_noise_sigma = float(sigma_max)

    def _karras(self, ramp: np.ndarray) -> np.ndarray:
        c: Any = self.config
        lo, hi = c.sigma_min ** (1 / c.rho), c.sigma_max ** (1 / c.rho)
        return np.asarray((hi + ramp * (lo - hi)) ** c.rho)

    def set_timesteps(self, num_inference_steps: int, device: Any = None) -> None:
        """Evenly spaced levels of the training grid, noisiest first, then σ_min."""
        cfg: Any = self.config
        n, grid = int(num_inference_steps), int(cfg.num_train_timesteps)
        if not 1 <= n <= grid:
            raise ValueError(f"{n} steps: a consistency sampler takes 1 to {grid} steps")
        ramp = np.arange(n) * (grid // n) / (grid - 1)
        sigmas = self._karras(ramp)
        self.num_inference_steps = n
        self.timesteps = torch.from_numpy(0.25 * np.log(sigmas)).float().to(device)
        self.sigmas = torch.from_numpy(np.append(sigmas, cfg.sigma_min)).float()
        self.init_noise_sigma = float(sigmas[0])
        self._index = 0

    def scale_model_input(self, sample: torch.Tensor, timestep: Any = None) -> torch.Tensor:
        sigma = self.sigmas[self._index]
        cfg: Any = self.config
        return sample / (sigma**2 + cfg.sigma_data**2) ** 0.5

    def step(
        self,
        model_output: torch.Tensor,
        timestep: Any,
        sample: torch.Tensor,
        return_dict: bool = True,
    ) -> SchedulerOutput | tuple[torch.Tensor]:
        c: Any = self.config
        sigma, nxt = self.sigmas[self._index], self.sigmas[self._index + 1]
        d = sigma - c.sigma_min
        c_skip = c.sigma_data**2 / (d**2 + c.sigma_data**2)
        c_out = -d * c.sigma_data / (sigma**2 + c.sigma_data**2) ** 0.5  # v-prediction
        denoised = c_skip * sample.float() + c_out * model_output.float()
        if c.clip_denoised:
            denoised = denoised.clamp(-1, 1)
        if self._index + 1 < len(self.timesteps):
            noise = torch.randn(sample.shape, generator=self.generator, dtype=torch.float32)
            scale = (nxt.clamp(c.sigma_min, c.sigma_max) ** 2 - c.sigma_min**2) ** 0.5
            denoised = denoised + noise.to(sample.device) * c.s_noise * scale
        self._index += 1
        prev = denoised.to(sample.dtype)
        return SchedulerOutput(prev_sample=prev) if return_dict else (prev,)

    def __len__(self) -> int:
        cfg: Any = self.config
        return int(cfg.num_train_timesteps)


def folder_scheduler_name(path: Path) -> str:
    """The scheduler class a diffusers folder's scheduler config names ("" if none)."""
    try:
        cfg = json.loads((path / "scheduler" / "scheduler_config.json").read_text("utf-8"))
    except (OSError, ValueError):
        return ""
    return str(cfg.get("_class_name", ""))


def needs_consistency(path: Path) -> bool:
    """Whether a folder is a few-step consistency-distilled SVD: its scheduler config names a
    consistency sampler, or its model card says it is (a folder made by swapping a distilled
    UNet into SVD-xt keeps SVD's Euler config, but its README names the checkpoint)."""
    if folder_scheduler_name(path) in CONSISTENCY_NAMES:
        return True
    try:
        card = (path / "README.md").read_text("utf-8", errors="replace").lower()
    except OSError:
        return False
    return any(mark in card for mark in CARD_MARKS)


def consistency_from_folder(path: Path) -> SVDConsistencyScheduler:
    """The consistency sampler, with the folder's scheduler config values where it has them
    (sigma range, grid, σ_data, ρ), our defaults (AnimateLCM-SVD's published ones) else."""
    try:
        cfg = json.loads((path / "scheduler" / "scheduler_config.json").read_text("utf-8"))
    except (OSError, ValueError):
        cfg = {}
    names = set(inspect.signature(SVDConsistencyScheduler.__init__).parameters) - {"self"}
    if folder_scheduler_name(path) not in CONSISTENCY_NAMES:
        cfg = {}  # an Euler config's sigma_max etc. describe another sampler
    return SVDConsistencyScheduler(**{k: v for k, v in cfg.items() if k in names})


@contextmanager
def known_to_diffusers(path: Path) -> Iterator[None]:
    """While loading a folder whose scheduler config names AnimateLCM-SVD's sampler (a class
    diffusers lacks, so its loader stops on the name), let the name stand for our sampler:
    diffusers then builds ours from the folder's config. Only for the load (removed after);
    nothing from the folder is imported or run."""
    import diffusers

    name = folder_scheduler_name(path)
    add = name in CONSISTENCY_NAMES and name not in dir(diffusers)
    if add:
        setattr(diffusers, name, SVDConsistencyScheduler)
    try:
        yield
    finally:
        if add:
            delattr(diffusers, name)


def euler_for_svd(base: Any) -> Any:
    """SVD's own Euler sampler: the folder's when it is one, else SVD-xt's published
    settings (v-prediction, Karras sigmas 0.002-700, continuous timesteps)."""
    from diffusers import EulerDiscreteScheduler

    if isinstance(base, EulerDiscreteScheduler):
        return base
    return EulerDiscreteScheduler(
        beta_start=0.00085,
        beta_end=0.012,
        beta_schedule="scaled_linear",
        interpolation_type="linear",
        prediction_type="v_prediction",
        sigma_max=700.0,
        sigma_min=0.002,
        steps_offset=1,
        timestep_spacing="leading",
        timestep_type="continuous",
        use_karras_sigmas=True,
    )
