"""Sparse execution (engine.accel.sparse): with every pixel active it computes what the dense
layer computes, with none active it returns the recorded activation, and inside the active box
it equals the dense layer on the new input; the region VAE decode of the sparse video edit."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
import torch
from torch import nn

from fathom.engine.accel.sparse import SparseExecution, image_boxes, level_boxes

SIZE = 32  # the image side the masks are given at


@pytest.fixture(scope="module")
def tiny() -> dict[str, Any]:
    from fathom.engine.diffusion.minimodels import TINY, build_components

    return build_components(TINY)


def _masks(batch: int, size: int = SIZE) -> dict[str, torch.Tensor]:
    part = torch.zeros(batch, 1, size, size)
    part[:, :, 8:16, 16:24] = 1
    return {
        "full": torch.ones(batch, 1, size, size),
        "empty": torch.zeros(batch, 1, size, size),
        "part": part,
    }


def _record_then(
    module: nn.Module, call: Any, old: Any, new: Any, mask: torch.Tensor, anchor: str = "off"
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(recorded output on ``old``, dense output on ``new``, sparse output on ``new``)."""
    with torch.no_grad():
        dense = call(new)
        sp = SparseExecution(align=4, anchor=anchor)
        sp.attach(module)
        try:
            sp.mode = "record"
            rec = call(old)
            sp.mode = "sparse"
            sp.set_active(mask)
            got = call(new)
            sp.mode = "off"
            assert torch.equal(call(new), dense)  # off: untouched
        finally:
            sp.detach()
    return rec, dense, got


@pytest.mark.parametrize(
    ("kernel", "stride", "padding"), [(3, 1, 1), (3, 2, 1), (1, 1, 0), (3, 2, 0)]
)
def test_convolution(kernel: int, stride: int, padding: int) -> None:
    torch.manual_seed(0)
    conv = nn.Conv2d(6, 5, kernel, stride, padding)
    old, new = torch.randn(2, 6, 16, 16), torch.randn(2, 6, 16, 16)
    if padding == 0 and kernel == 3:  # the VAE's downsampler pads by hand first
        old, new = nn.functional.pad(old, (0, 1, 0, 1)), nn.functional.pad(new, (0, 1, 0, 1))
    for name, mask in _masks(2).items():
        rec, dense, got = _record_then(conv, conv, old, new, mask)
        if name == "full":
            torch.testing.assert_close(got, dense, atol=1e-5, rtol=1e-5)
        elif name == "empty":
            assert torch.equal(got, rec)
        else:  # inside the box the new input's convolution, outside the recorded one
            f = SIZE // got.shape[-1]
            y0, x0, y1, x1 = 8 // f, 16 // f, 16 // f, 24 // f
            inside = torch.zeros_like(got, dtype=torch.bool)
            inside[:, :, y0:y1, x0:x1] = True
            torch.testing.assert_close(got[inside], dense[inside], atol=1e-5, rtol=1e-5)
            assert torch.equal(got[~inside], rec[~inside])


def test_residual_block() -> None:
    from diffusers.models.resnet import ResnetBlock2D

    torch.manual_seed(0)
    block = ResnetBlock2D(in_channels=8, out_channels=16, temb_channels=12, groups=4).eval()
    temb = torch.randn(2, 12)
    old, new = torch.randn(2, 8, 16, 16), torch.randn(2, 8, 16, 16)
    masks = _masks(2)
    rec, dense, got = _record_then(block, lambda x: block(x, temb), old, new, masks["full"])
    torch.testing.assert_close(got, dense, atol=1e-4, rtol=1e-4)
    rec, _, got = _record_then(block, lambda x: block(x, temb), old, new, masks["empty"])
    assert torch.equal(got, rec)


def test_attention_transformer() -> None:
    from diffusers.models.transformers.transformer_2d import Transformer2DModel

    torch.manual_seed(0)
    model = Transformer2DModel(
        num_attention_heads=2,
        attention_head_dim=8,
        in_channels=16,
        norm_num_groups=4,
        cross_attention_dim=12,
    ).eval()
    text = torch.randn(2, 5, 12)

    def call(x: torch.Tensor) -> torch.Tensor:
        return model(x, encoder_hidden_states=text, return_dict=False)[0]

    old, new = torch.randn(2, 16, 8, 8), torch.randn(2, 16, 8, 8)
    masks = _masks(2)
    _, dense, got = _record_then(model, call, old, new, masks["full"])
    torch.testing.assert_close(got, dense, atol=1e-5, rtol=1e-4)
    rec, _, got = _record_then(model, call, old, new, masks["empty"])
    assert torch.equal(got, rec)


def test_whole_unet_and_shared_recording(tiny: dict[str, Any]) -> None:
    """The tiny UNet with every pixel active equals the dense UNet, also when four items
    read one recorded item two by two (``repeat``); none active gives the recording."""
    unet = tiny["unet"]
    torch.manual_seed(1)
    emb = torch.randn(2, 77, unet.config.cross_attention_dim)
    old, new = torch.randn(2, 4, 8, 8), torch.randn(4, 4, 8, 8)
    t = torch.tensor(400)
    with torch.no_grad():
        dense = unet(new, t, encoder_hidden_states=emb.repeat_interleave(2, 0)).sample
        sp = SparseExecution(align=8, anchor="off")
        sp.attach(unet)
        try:
            sp.mode = "record"
            rec = unet(old, t, encoder_hidden_states=emb).sample
            sp.mode = "sparse"
            sp.set_active(torch.ones(4, 1, 64, 64), repeat=2)
            got = unet(new, t, encoder_hidden_states=emb.repeat_interleave(2, 0)).sample
            sp.set_active(torch.zeros(4, 1, 64, 64), repeat=2)
            none = unet(new, t, encoder_hidden_states=emb.repeat_interleave(2, 0)).sample
        finally:
            sp.detach()
    torch.testing.assert_close(got, dense, atol=1e-4, rtol=1e-4)
    assert torch.equal(none, rec.repeat_interleave(2, 0))
    assert not any("forward" in vars(m) for m in unet.modules())  # detached


def test_boxes() -> None:
    m = torch.zeros(2, 1, 64, 64)
    m[0, :, 3:9, 10:30] = 1
    m[1, :, 40:50, 50:60] = 1
    boxes = image_boxes(m, 8)
    assert boxes == [(0, 8, 16, 32), (40, 48, 56, 64)]
    lv = level_boxes([b for b in boxes if b is not None], 8, 8, 8)
    assert (lv.h, lv.w) == (2, 3) and lv.top == [0, 5] and lv.left == [1, 5]  # kept inside
    assert image_boxes(torch.zeros(1, 1, 8, 8), 8) == [None]


def test_region_vae_decode(tiny: dict[str, Any]) -> None:
    """Frames whose latents equal the keyframe's decode, inside their active box, exactly as
    the whole decode does; outside the box they are the source frame's pixels. With the
    whole frame active a changed frame decodes as the whole decode does."""
    from fathom.engine.diffusion.sparsevideo import SparseVideoEdit

    vae = tiny["vae"]
    comps = SimpleNamespace(vae=vae, unet=tiny["unet"], device=torch.device("cpu"))
    # One frame per call: frames decoded together share one box size (the largest).
    edit = SparseVideoEdit(comps, SimpleNamespace(attention="off"), margin=0, per_batch=1)
    torch.manual_seed(2)
    lat0 = torch.randn(1, 4, 8, 8)
    lat = torch.cat([lat0, lat0, lat0 + 0.5 * torch.randn(1, 4, 8, 8)])
    src = torch.rand(3, 3, 64, 64) * 2 - 1
    active = torch.zeros(3, 1, 64, 64, dtype=torch.bool)
    active[:, :, 20:30, 24:40] = True
    active[2] = True
    scale = vae.config.scaling_factor
    with torch.no_grad():
        whole = (vae.decode(lat / scale).sample / 2 + 0.5).clamp(0, 1).permute(0, 2, 3, 1)
        with edit.attached():
            got = dict(edit._decode(lambda i: src[i], lat, active))
    box = torch.zeros(64, 64, dtype=torch.bool)
    box[16:32, 24:40] = True  # the active pixels rounded out to 8
    pixels = (src / 2 + 0.5).permute(0, 2, 3, 1)
    for i in (0, 1):
        torch.testing.assert_close(got[i][box], whole[i][box], atol=1e-4, rtol=1e-4)
        assert torch.allclose(got[i][~box], pixels[i][~box], atol=1e-6)
    torch.testing.assert_close(got[2], whole[2], atol=1e-4, rtol=1e-4)
