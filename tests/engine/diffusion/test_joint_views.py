"""The joint-view parts: extended attention against a direct computation, the share bias,
the object-space noise (unit variance, correlated on the sphere, independent at share 0), the
processor swap on a real UNet and its exact reduction, and the latent synchronisation."""

from __future__ import annotations

import math

import pytest
import torch
from torch.nn import functional as F

from fathom.engine.diffusion.joint_views import (
    JointAttention,
    ProxySync,
    joint_attention,
    proxy_links,
    shared_noise,
    view_cameras,
    view_prompts,
    view_seeds,
)


def _reference(q, k, v, views, heads, share):
    """Extended attention written out: an explicit (views·N)² logit matrix with the bias."""
    b, n, c = q.shape
    g, d = b // views, c // heads
    out = torch.empty_like(q)
    owner = torch.arange(views).repeat_interleave(n)
    bias = torch.where(owner[:, None] == owner[None, :], 0.0, math.log(share))
    for gi in range(g):
        rows = slice(gi * views, (gi + 1) * views)
        qs, ks, vs = (x[rows].reshape(views * n, heads, d).transpose(0, 1) for x in (q, k, v))
        w = torch.softmax(qs @ ks.transpose(1, 2) / math.sqrt(d) + bias, -1)
        out[rows] = (w @ vs).transpose(0, 1).reshape(views, n, c)
    return out


@pytest.mark.parametrize("share", [1.0, 0.3])
def test_joint_attention_equals_the_written_out_extended_attention(share: float) -> None:
    torch.manual_seed(0)
    q, k, v = (torch.randn(2 * 3, 10, 16) for _ in range(3))  # 2 CFG halves × 3 views
    got = joint_attention(q, k, v, views=3, heads=2, share=share)
    assert torch.allclose(got, _reference(q, k, v, 3, 2, share), atol=1e-5)


def test_a_tiny_share_is_each_view_attending_to_itself() -> None:
    torch.manual_seed(1)
    q, k, v = (torch.randn(4, 12, 16) for _ in range(3))
    got = joint_attention(q, k, v, views=4, heads=2, share=1e-12)

    def heads(x):
        return x.view(4, 12, 2, 8).transpose(1, 2)

    alone = F.scaled_dot_product_attention(heads(q), heads(k), heads(v))
    assert torch.allclose(got, alone.transpose(1, 2).reshape(4, 12, 16), atol=1e-5)


def test_joint_attention_on_a_real_unet_reduces_exactly_and_restores() -> None:
    """Two views with identical inputs at share 1 attend to duplicated keys: the softmax is
    unchanged, so the UNet's output equals the plain one; detach restores every processor."""
    from tinymodels import tiny_unet

    torch.manual_seed(0)
    unet = tiny_unet().eval()
    x = torch.randn(1, 4, 8, 8).repeat(2, 1, 1, 1)
    text = torch.randn(1, 5, 32).repeat(2, 1, 1)
    before = {n: type(p) for n, p in unet.attn_processors.items()}
    with torch.no_grad():
        plain = unet(x, 10, text).sample
        hook = JointAttention(views=2, share=1.0)
        hook.attach(unet)
        patched = [n for n, p in unet.attn_processors.items() if type(p) is not before[n]]
        joint = unet(x, 10, text).sample
        x2 = torch.cat([x[:1], torch.randn(1, 4, 8, 8)])
        coupled = unet(x2, 10, text).sample
        hook.detach()
        alone = unet(x2, 10, text).sample
    assert patched and all(".attn1." in n for n in patched)
    assert {n: type(p) for n, p in unet.attn_processors.items()} == before
    assert torch.allclose(joint, plain, atol=1e-5)
    # Different views do influence each other while attached.
    assert (coupled[0] - alone[0]).abs().max() > 1e-4
    JointAttention(views=2, share=0.0).attach(unet)  # share 0 patches nothing
    assert {n: type(p) for n, p in unet.attn_processors.items()} == before


def test_noise_is_unit_variance_correlated_on_the_sphere_and_plain_at_share_zero() -> None:
    cams = view_cameras(256, 256, 30.0)
    shape = (1, 4, 32, 32)
    zero = shared_noise(shape, 3, cams, 0.0, torch.float32)
    for k, s in enumerate(view_seeds(3, 6)):
        own = torch.randn(shape, generator=torch.Generator().manual_seed(s))
        assert torch.equal(zero[k : k + 1], own)
    mixed = shared_noise(shape, 3, cams[:1] * 2, 0.6, torch.float32)  # one camera twice
    assert abs(float(mixed.var()) - 1.0) < 0.05 and abs(float(mixed.mean())) < 0.03
    _, _, hit = proxy_links(cams[:1], 32, 32)
    on = hit[0].bool()
    a, b = mixed[0][:, on].flatten(), mixed[1][:, on].flatten()
    assert float(torch.corrcoef(torch.stack([a, b]))[0, 1]) == pytest.approx(0.6, abs=0.05)
    off_a, off_b = mixed[0][:, ~on].flatten(), mixed[1][:, ~on].flatten()
    assert abs(float(torch.corrcoef(torch.stack([off_a, off_b]))[0, 1])) < 0.1


def test_sync_pulls_views_together_where_they_see_the_same_point() -> None:
    cams = view_cameras(64, 64, 30.0)
    grid, seen, _ = proxy_links(cams, 16, 16)
    assert seen[0, 2].sum() == 0 and seen[0, 1].sum() > 10  # front/back share nothing

    def mismatch(x):
        total = 0.0
        for i in range(6):
            for j in range(6):
                w = F.grid_sample(x[j : j + 1], grid[i, j][None], align_corners=False)
                total += float(((x[i] - w[0]).abs() * seen[i, j]).sum())
        return total

    x = torch.randn(6, 4, 16, 16, generator=torch.Generator().manual_seed(0))
    before = mismatch(x)
    sync = ProxySync(cams, share=1.0)
    sync.attach(None)
    assert sync.after_step(0, 0, x, x) is False
    assert mismatch(x) < 0.6 * before
    untouched = torch.randn(6, 4, 16, 16)
    ProxySync(cams, share=0.0).after_step(0, 0, y := untouched.clone(), y)
    assert torch.equal(y, untouched)


def test_view_prompts() -> None:
    assert view_prompts(" a chair ")[:2] == ["a chair, front view", "a chair, right side view"]
    assert view_prompts("")[4] == "top view"
