"""Sparse execution's context: norm statistics from the recording with the box swapped in
(engine.accel.sparse) equal the whole-frame ones, and the sparse video edit's VAE with a whole
frame every k frames (engine.diffusion.sparsevideo) decodes those frames exactly as the dense
VAE does and the others around them."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
import torch

from fathom.engine.accel.sparse import SparseExecution


@pytest.fixture(scope="module")
def tiny() -> dict[str, Any]:
    from fathom.engine.diffusion.minimodels import TINY, build_components

    return build_components(TINY)


def _box_mask(batch: int, size: int, y0: int, y1: int, x0: int, x1: int) -> torch.Tensor:
    m = torch.zeros(batch, 1, size, size)
    m[:, :, y0:y1, x0:x1] = 1
    return m


def _decode(
    vae: Any, calls: list[tuple[str, torch.Tensor, torch.Tensor | None]], **options: Any
) -> tuple[torch.Tensor, SparseExecution]:
    """Run the decoder through ("record" | "sparse", latents, active mask) calls; returns the
    last call's image and the executor (detached)."""
    sp = SparseExecution(align=8, **options)
    sp.attach(vae)
    try:
        with torch.no_grad():
            for mode, z, mask in calls:
                sp.mode = mode
                if mask is not None:
                    sp.set_active(mask)
                out = vae.decode(z).sample
        kept = dict(sp.cache)
    finally:
        sp.detach()
    sp.cache = kept
    return out, sp


def test_reused_statistics_equal_whole_frame_statistics() -> None:
    """Latents changed inside the box only, a decoder without the (global) mid-block
    attention: every norm's input outside the box is the recorded one, so statistics from the
    recorded sums with the box swapped in give the whole-frame statistics' decode."""
    from diffusers import AutoencoderKL

    torch.manual_seed(6)
    vae = AutoencoderKL(
        block_out_channels=(8, 8, 16, 16),
        down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4,
        norm_num_groups=8,
        mid_block_add_attention=False,
    ).eval()
    torch.manual_seed(4)
    old = torch.randn(1, 4, 8, 8)
    new = old.clone()
    new[:, :, 2:5, 1:4] = torch.randn(1, 4, 3, 3)
    mask = _box_mask(1, 64, 16, 40, 8, 32)
    calls = [("record", old, None), ("sparse", new, mask)]
    whole, _ = _decode(vae, calls)
    swapped, _ = _decode(vae, calls, reuse_stats=True)
    torch.testing.assert_close(swapped, whole, atol=1e-4, rtol=1e-4)
    assert (swapped - vae.decode(old).sample).abs().amax() > 1e-2  # the box did change


def _latents() -> torch.Tensor:
    """Four latents: 1 and 3 equal 0 and 2 outside a box, 2 differs from 0 everywhere."""
    torch.manual_seed(8)
    lat = torch.randn(4, 4, 8, 8)
    lat[1], lat[3] = lat[0], lat[2]
    lat[1, :, 2:4, 3:5] += 0.5
    lat[3, :, 2:4, 3:5] -= 0.5
    return lat


def _edit_decode(tiny: dict[str, Any], vae_every: int) -> dict[int, torch.Tensor]:
    """The four latents through the sparse edit's VAE decode, frame by frame."""
    from fathom.engine.diffusion.sparsevideo import SparseVideoEdit

    comps = SimpleNamespace(vae=tiny["vae"], unet=tiny["unet"], device=torch.device("cpu"))
    settings = SimpleNamespace(attention="off")
    edit = SparseVideoEdit(comps, settings, margin=0, per_batch=1, vae_every=vae_every)
    lat = _latents()
    active = torch.zeros(4, 1, 64, 64, dtype=torch.bool)
    active[:, :, 16:32, 24:40] = True
    src = torch.zeros(4, 3, 64, 64)
    with torch.no_grad(), edit.attached():
        return dict(edit._decode(lambda i: src[i], lat, active))


def test_vae_every_decodes_whole_frames_whole(tiny: dict[str, Any]) -> None:
    """vae_every=2: frames 0 and 2 are decoded whole, so their boxes equal the dense decode;
    frame 3, whose latents differ from frame 2's only inside the box, reads frame 2's
    context and comes nearer its dense decode than frame 2's box does with only the first
    frame whole (frame 0's context; frame 2 differs from it everywhere). Frame 1 reads frame
    0's recording either way."""
    vae = tiny["vae"]
    every2 = _edit_decode(tiny, 2)
    first = _edit_decode(tiny, 0)
    assert sorted(every2) == [0, 1, 2, 3]
    lat = _latents()
    with torch.no_grad():
        dense = (vae.decode(lat / vae.config.scaling_factor).sample / 2 + 0.5).clamp(0, 1)
    dense = dense.permute(0, 2, 3, 1)
    box = (slice(16, 32), slice(24, 40))
    torch.testing.assert_close(every2[2][box], dense[2][box], atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(every2[0][box], dense[0][box], atol=1e-4, rtol=1e-4)
    far = (first[2][box] - dense[2][box]).abs().mean()
    near = (every2[3][box] - dense[3][box]).abs().mean()
    assert far > 1e-2 and near < far
    torch.testing.assert_close(every2[1], first[1])  # both read frame 0's recording
