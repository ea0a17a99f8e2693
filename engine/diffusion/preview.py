"""Step previews: a small RGB image per denoising step, kept under 10% of a step's cost.

Two renderers: a tiny autoencoder (diffusers ``AutoencoderTiny``, e.g. TAESD) when one is
configured, else a linear map from latent channels to RGB. The linear map is fitted once per
model by decoding a few random latents with the model's own (or tiny) VAE and solving least
squares against the decoded colours pooled to latent resolution, so it fits any VAE (including
random test models and LDM3D's RGB+depth VAE) without hard-coded factors.

The budget: each preview's cost is measured against the step it follows. A tiny-VAE preview
that costs more than ``budget`` × the step decodes at half the resolution next time (down to a
quarter), then falls back to the linear map; and a preview is skipped whenever the previews so
far plus the expected one would exceed ``budget`` × the steps so far. ``measure_overhead``
reports what previews actually cost on a model.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch.nn import functional as F

MODES = ("auto", "tiny", "linear", "off")
CALIBRATION_SIZE = 16  # latent pixels per side of the calibration batch


@torch.no_grad()
def fit_linear(components: Any, decoder: Any = None, seed: int = 0) -> torch.Tensor:
    """(C+1)×3 matrix mapping [latent channels, 1] to RGB in [0, 1], fitted on random latents
    decoded by ``decoder`` (the tiny VAE if given, else the model's VAE)."""
    vae = decoder if decoder is not None else components.vae
    c = components.latent_channels
    f = components.vae_scale_factor
    g = torch.Generator().manual_seed(seed)
    z = torch.randn((2, c, CALIBRATION_SIZE, CALIBRATION_SIZE), generator=g)
    param = next(vae.parameters())
    # The run device, not the weights' (CPU offload moves the VAE there on decode).
    device = param.device if decoder is not None else components.device
    img = (
        vae.decode(z.to(device, param.dtype) / vae.config.scaling_factor, return_dict=False)[0]
        .float()
        .cpu()
    )
    rgb = (img[:, :3] / 2 + 0.5).clamp(0, 1)
    rgb = F.avg_pool2d(rgb, kernel_size=f) if rgb.shape[-1] != z.shape[-1] else rgb
    x = torch.cat([z, torch.ones_like(z[:, :1])], dim=1)
    a = x.permute(0, 2, 3, 1).reshape(-1, c + 1).double()
    b = rgb.permute(0, 2, 3, 1).reshape(-1, 3).double()
    return torch.linalg.lstsq(a, b).solution.float()


def linear_rgb(latents: torch.Tensor, fit: torch.Tensor) -> np.ndarray:
    """First image of a latent batch as H×W×3 float32 at latent resolution."""
    z = latents[0].float().cpu()
    x = torch.cat([z, torch.ones_like(z[:1])], dim=0)
    rgb = torch.einsum("chw,cd->hwd", x, fit)
    return rgb.clamp(0, 1).numpy().astype(np.float32)


@torch.no_grad()
def tiny_rgb(latents: torch.Tensor, tiny_vae: Any, scale: int = 1) -> np.ndarray:
    z = latents[:1]
    if scale > 1:
        z = F.avg_pool2d(z.float(), kernel_size=scale)
    param = next(tiny_vae.parameters())
    img = tiny_vae.decode(
        z.to(param.device, param.dtype) / tiny_vae.config.scaling_factor, return_dict=False
    )[0]
    rgb = (img[0, :3].float() / 2 + 0.5).clamp(0, 1)
    return rgb.permute(1, 2, 0).cpu().numpy().astype(np.float32)


class Previewer:
    """Call once per step with the step's predicted clean latents and the step's seconds;
    returns an H×W×3 image or None (skipped, or previews off)."""

    def __init__(
        self,
        components: Any,
        mode: str = "auto",
        tiny_vae: Any = None,
        budget: float = 0.10,
        max_side: int = 256,
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        if mode not in MODES:
            raise ValueError(f"preview mode must be one of {MODES}, got {mode!r}")
        self.components = components
        self.tiny = tiny_vae if tiny_vae is not None else getattr(components, "tiny_vae", None)
        if mode == "off":
            self.mode = "off"
        elif mode in ("auto", "tiny") and self.tiny is not None:
            self.mode = "tiny"
        else:
            self.mode = "linear"
        self.requested = mode
        self.budget = budget
        self.max_side = max_side
        self.clock = clock
        self.scale = 1
        self.fit: torch.Tensor | None = None
        self.preview_seconds = 0.0
        self.step_seconds = 0.0
        self.last_cost = 0.0
        self.shown = 0
        self.skipped = 0

    def prepare(self) -> None:
        """Fit the linear map (once per loaded model) before the steps start."""
        if self.mode == "off":
            return
        fit = getattr(self.components, "preview_fit", None)
        if fit is None:
            fit = fit_linear(self.components, self.tiny)
            try:
                self.components.preview_fit = fit
            except AttributeError:
                pass
        self.fit = fit

    def __call__(self, latents: torch.Tensor, step_seconds: float) -> np.ndarray | None:
        self.step_seconds += step_seconds
        if self.mode == "off":
            return None
        if self.fit is None:
            self.prepare()
        if self.shown and (self.preview_seconds + self.last_cost > self.budget * self.step_seconds):
            self.skipped += 1
            return None
        t0 = self.clock()
        if self.mode == "tiny":
            side = max(latents.shape[-2:])
            while (
                self.scale < 4
                and side * self.components.vae_scale_factor // self.scale > self.max_side
            ):
                self.scale *= 2
            img = tiny_rgb(latents, self.tiny, self.scale)
        else:
            assert self.fit is not None
            img = linear_rgb(latents, self.fit)
        cost = self.clock() - t0
        self.preview_seconds += cost
        self.last_cost = cost
        self.shown += 1
        if self.mode == "tiny" and cost > self.budget * step_seconds:
            if self.scale < 4:
                self.scale *= 2
            else:
                self.mode = "linear"
        return img

    @property
    def overhead(self) -> float:
        """Preview seconds per step second so far."""
        return self.preview_seconds / self.step_seconds if self.step_seconds else 0.0

    def summary(self) -> dict[str, Any]:
        return {
            "mode": self.mode,
            "requested": self.requested,
            "shown": self.shown,
            "skipped": self.skipped,
            "overhead": round(self.overhead, 4),
            "tiny_scale": self.scale if self.mode == "tiny" else None,
        }


def measure_overhead(
    components: Any,
    mode: str = "auto",
    tiny_vae: Any = None,
    steps: int = 4,
    width: int = 256,
    height: int = 256,
    guidance: float = 7.5,
    repeats: int = 2,
) -> dict[str, Any]:
    """What previews cost next to the denoising steps on this model.

    ``ratio``: one preview's seconds over one step's (medians; no budget applied, best of
    ``repeats`` runs). ``budgeted``: total preview seconds over total step seconds with the
    10% budget in force (degrading and skipping as a real run does), and how many were shown.
    """
    from fathom.engine.diffusion.loop import generate

    def run(budget: float) -> tuple[Previewer, list[float], Any]:
        pv = Previewer(components, mode, tiny_vae, budget=budget)
        pv.prepare()
        costs: list[float] = []

        def on_step(info: Any) -> None:
            before = pv.preview_seconds
            pv(info.pred_x0, info.seconds)
            costs.append(pv.preview_seconds - before)

        res = generate(
            components,
            "a photo",
            steps=steps,
            guidance=guidance,
            width=width,
            height=height,
            callback=on_step,
            decode_output=False,
        )
        return pv, costs, res

    best: dict[str, Any] | None = None
    for _ in range(max(1, repeats)):
        pv, costs, res = run(float("inf"))
        step = float(np.median(res.step_seconds))
        prev = float(np.median(costs))
        row = {
            "mode": pv.mode,
            "steps": steps,
            "size": [width, height],
            "step_seconds": step,
            "preview_seconds": prev,
            "ratio": prev / step,
        }
        if best is None or row["ratio"] < best["ratio"]:
            best = row
    assert best is not None
    pv, _, _ = run(0.10)
    best["budgeted"] = {
        "ratio": pv.overhead,
        "shown": pv.shown,
        "skipped": pv.skipped,
        "final_mode": pv.mode,
        "tiny_scale": pv.scale,
    }
    return best
