"""MobileVD-style savings for Stable Video Diffusion (Yahia et al., "MobileVD", 2024).

SVD spends its time in the spatio-temporal UNet, once per frame per step (twice with guidance),
so the savings are: fewer latent pixels (sample at a lower resolution, upsample after), fewer
frames (denoise keyframes, interpolate between them: the multi-scale temporal idea), fewer
temporal blocks (bypass the ones a calibration run ranks least important) and narrower
layers (``engine.models.svd_prune``). Each is off by default and then changes nothing, so the
plain run stays equal to diffusers' ``StableVideoDiffusionPipeline``.

A temporal block here is a module that mixes a spatial and a temporal branch through an
``AlphaBlender`` (``time_mixer``): each ``SpatioTemporalResBlock`` and each
``TransformerSpatioTemporalModel``. Bypassing one returns the spatial branch, exactly what
the blend gives at mix factor α = 1, without computing the temporal branch.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

UPSAMPLE = ("latents", "frames")


def lowres_size(width: int, height: int, scale: float) -> tuple[int, int]:
    """The sampling size at ``scale`` of (width, height): multiples of 8 (the VAE's block),
    at least 8."""
    if scale >= 1.0:
        return width, height
    return (max(8, round(width * scale / 8) * 8), max(8, round(height * scale / 8) * 8))


def resize_latents(latents: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """B×T×C×h×w video latents resized to height×width (bilinear: smooth, no overshoot that
    the decoder would turn into ringing)."""
    b, t, c, h, w = latents.shape
    if (h, w) == (height, width):
        return latents
    flat = latents.reshape(b * t, c, h, w).float()
    out = F.interpolate(flat, size=(height, width), mode="bilinear", align_corners=False)
    return out.to(latents.dtype).reshape(b, t, c, height, width)


def keyframe_count(frames: int, stride: int) -> int:
    """How many frames to denoise so that neighbours are at most ``stride`` frames apart and
    the first and last frame are among them."""
    if stride <= 1 or frames <= 2:
        return frames
    return math.ceil((frames - 1) / stride) + 1


def interpolate_time(latents: torch.Tensor, frames: int) -> torch.Tensor:
    """B×K×C×h×w keyframe latents, evenly spread over ``frames``, to B×frames×C×h×w by
    linear interpolation in time (keyframes land on frames 0 and frames-1)."""
    k = latents.shape[1]
    if k == frames:
        return latents
    if k == 1:
        return latents.expand(-1, frames, -1, -1, -1).clone()
    pos = torch.linspace(0, k - 1, frames)
    lo = pos.floor().long().clamp(max=k - 2)
    w = (pos - lo).to(latents.device, torch.float32).view(1, frames, 1, 1, 1)
    a, b = latents[:, lo].float(), latents[:, lo + 1].float()
    return (a * (1 - w) + b * w).to(latents.dtype)


# ---- temporal blocks --------------------------------------------------------------------------
def temporal_blocks(unet: nn.Module) -> list[tuple[str, Any]]:
    """The UNet's temporal blocks (modules with a ``time_mixer``) in forward order."""
    return [(n, m) for n, m in unet.named_modules() if hasattr(m, "time_mixer") and n]


class _Identity(nn.Module):
    """A bypassed temporal branch: returns its input untouched."""

    def forward(self, hidden_states: torch.Tensor, *args: Any, **kwargs: Any) -> torch.Tensor:
        return hidden_states


class _SpatialOnly(nn.Module):
    """A blender at α = 1: the spatial branch alone."""

    def forward(
        self, x_spatial: torch.Tensor, x_temporal: torch.Tensor, image_only_indicator: Any = None
    ) -> torch.Tensor:
        return x_spatial


def _bypass(block: Any) -> dict[str, nn.Module]:
    """Swap a block's temporal branch and blender out; returns what to put back."""
    kept = {"time_mixer": block.time_mixer}
    block.time_mixer = _SpatialOnly()
    if hasattr(block, "temporal_res_block"):
        kept["temporal_res_block"] = block.temporal_res_block
        block.temporal_res_block = _Identity()
    if hasattr(block, "temporal_transformer_blocks"):
        kept["temporal_transformer_blocks"] = block.temporal_transformer_blocks
        n = len(block.temporal_transformer_blocks)
        block.temporal_transformer_blocks = nn.ModuleList(_Identity() for _ in range(n))
    return kept


@contextmanager
def skipping(unet: nn.Module, names: list[str]) -> Iterator[None]:
    """Run ``unet`` with the named temporal blocks bypassed (restored on exit, also on error:
    the model is shared)."""
    blocks = dict(temporal_blocks(unet))
    unknown = [n for n in names if n not in blocks]
    if unknown:
        raise ValueError(f"no temporal block named {unknown[0]!r} in this UNet")
    saved = [(blocks[n], _bypass(blocks[n])) for n in names]
    try:
        yield
    finally:
        for block, kept in saved:
            for attr, module in kept.items():
                setattr(block, attr, module)


def skip_count(total: int, fraction: float) -> int:
    """How many of ``total`` blocks a ``skip_temporal`` fraction bypasses."""
    return max(0, min(total, round(total * fraction)))


class CapturedCalls:
    """Records a UNet's calls (positional and keyword inputs) while attached."""

    def __init__(self, unet: nn.Module) -> None:
        self.unet, self.calls = unet, []  # type: ignore[var-annotated]

    def _hook(self, _m: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        detach = lambda v: v.detach().clone() if isinstance(v, torch.Tensor) else v  # noqa: E731
        self.calls.append(
            (tuple(detach(a) for a in args), {k: detach(v) for k, v in kwargs.items()})
        )

    @contextmanager
    def attached(self) -> Iterator[CapturedCalls]:
        handle = self.unet.register_forward_pre_hook(self._hook, with_kwargs=True)
        try:
            yield self
        finally:
            handle.remove()


@torch.no_grad()
def rank_temporal_blocks(
    unet: nn.Module,
    calls: list[tuple[tuple[Any, ...], dict[str, Any]]],
    progress: Callable[[int, int], None] | None = None,
) -> list[tuple[str, float]]:
    """Each temporal block's contribution, measured on recorded UNet calls: the relative
    change of the UNet's output, ‖out_bypassed − out‖² / ‖out‖², summed over the calls, when
    that block alone is bypassed. Least important first."""
    blocks = [n for n, _ in temporal_blocks(unet)]
    scores = dict.fromkeys(blocks, 0.0)
    total = len(calls) * (len(blocks) + 1)
    done = 0
    for args, kwargs in calls:
        kw = {**kwargs, "return_dict": False}
        base = unet(*args, **kw)[0].float()
        ref = float(base.pow(2).sum()) or 1.0
        done += 1
        for name in blocks:
            with skipping(unet, [name]):
                out = unet(*args, **kw)[0].float()
            scores[name] += float((out - base).pow(2).sum()) / ref
            done += 1
            if progress is not None:
                progress(done, total)
    return sorted(scores.items(), key=lambda kv: (kv[1], blocks.index(kv[0])))


def unet_flops(unet: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]) -> int:
    """Floating-point operations of one UNet call (torch's FLOP counter: matrix products and
    convolutions, 2 per multiply-add)."""
    from torch.utils.flop_counter import FlopCounterMode

    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        unet(*args, **{**kwargs, "return_dict": False})
    return int(counter.get_total_flops())


RANKING_FILE = "fathom_mobilevd.json"


def read_ranking(folder: Path) -> list[tuple[str, float]]:
    """The temporal-block ranking saved with a model folder ([] when there is none)."""
    try:
        data = json.loads((folder / RANKING_FILE).read_text("utf-8"))
    except (OSError, ValueError):
        return []
    return [(str(n), float(s)) for n, s in data.get("temporal_ranking", [])]


def ranking_json(ranking: list[tuple[str, float]], **facts: Any) -> str:
    """A ranking (least important first) with facts about it, as the ranking file holds it."""
    return json.dumps({"temporal_ranking": [[n, s] for n, s in ranking], **facts}, indent=1)


def write_ranking(folder: Path, ranking: list[tuple[str, float]], **facts: Any) -> None:
    """Save a ranking (least important first) with a model folder, with facts about it."""
    (folder / RANKING_FILE).write_text(ranking_json(ranking, **facts), "utf-8")
