"""Temporal reuse and ResQ on a tiny random Depth Anything: identities with the model's own
forward, what is recomputed on static and local changes, and ResQ against per-frame 4-bit."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from video_depth_models import build_depth_anything, disc_clip

from fathom.engine.accel.depth_neck import neck_coarse, neck_fine
from fathom.engine.accel.depth_vit import DepthViT, is_depth_vit
from fathom.engine.accel.resq import PerFrameQuant, ResQ, bits_for_change, quantize
from fathom.engine.accel.temporal_reuse import TemporalReuse
from fathom.engine.models.depth import load_transformers_depth


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> tuple:
    folder = build_depth_anything(tmp_path_factory.mktemp("da"), 140, 168)
    return load_transformers_depth(Path(folder), "cpu", "float32")


def _pixels(processor, frames: list[np.ndarray]) -> list[torch.Tensor]:
    return [
        processor(images=(f * 255).astype(np.uint8), return_tensors="pt")["pixel_values"]
        for f in frames
    ]


@torch.inference_mode()
def test_layer_by_layer_forward_is_the_models_own(model: tuple) -> None:
    processor, net = model
    assert is_depth_vit(net)
    x = _pixels(processor, disc_clip(1))[0]
    assert torch.equal(DepthViT(net).forward(x)[0], net(pixel_values=x).predicted_depth)


@torch.inference_mode()
def test_embedding_a_subset_of_tokens_equals_the_models_embeddings(model: tuple) -> None:
    processor, net = model
    vit = DepthViT(net)
    x = _pixels(processor, disc_clip(1))[0]
    full = vit.embed(x)
    index = torch.tensor([0, 1, 5, 17, 60, full.shape[1] - 1])
    got = vit.embed_subset(x, index)
    assert vit._subset_exact  # the fast path, not the fallback
    assert torch.allclose(got, full[:, index], atol=1e-5 * float(full.abs().max()), rtol=0)
    # A new input size re-interpolates the positions.
    small = x[..., :112, :126]
    assert torch.allclose(
        vit.embed_subset(small, index[:4]), vit.embed(small)[:, index[:4]], atol=1e-5, rtol=1e-5
    )


@torch.inference_mode()
def test_threshold_zero_recomputes_everything_and_equals_the_model(model: tuple) -> None:
    processor, net = model
    reuse = TemporalReuse(net, threshold=0.0)
    for x in _pixels(processor, disc_clip(4)):
        assert torch.equal(reuse.step(x), net(pixel_values=x).predicted_depth)
    assert reuse.stats.keyframes == 4 and reuse.stats.token_fraction == 1.0


@torch.inference_mode()
def test_a_static_clip_recomputes_nothing_after_the_keyframe(model: tuple) -> None:
    processor, net = model
    frame = _pixels(processor, disc_clip(1))[0]
    reuse = TemporalReuse(net, threshold=0.01, keyframe_interval=100)
    first = reuse.step(frame).clone()
    tokens = reuse.stats.tokens_computed
    for _ in range(5):
        assert torch.equal(reuse.step(frame.clone()), first)
    assert reuse.stats.tokens_computed == tokens and reuse.stats.tiles_computed == 0
    assert reuse.stats.keyframes == 1


@torch.inference_mode()
def test_a_local_change_recomputes_only_its_tokens_and_the_neck_near_it(model: tuple) -> None:
    processor, net = model
    frames = _pixels(processor, disc_clip(2, size=64, step=0.0))
    moved = frames[0].clone()
    moved[..., :14, :14] += 0.8  # one corner patch changes
    reuse = TemporalReuse(net, threshold=0.01, neck_threshold=0.0, block=1)
    reuse.step(frames[0])
    after = reuse.step(moved)
    assert reuse.stats.tokens_computed == 120 + 1  # the keyframe's 10×12 patches, then one
    # At neck threshold 0 the sparse neck is exactly the whole neck on the reused features ...
    feats = reuse.vit.features(reuse.hidden)
    dense = neck_fine(net, neck_coarse(net, feats, 10, 12), 10, 12)
    assert float((after - dense).abs().max()) <= 1e-5 * float(dense.abs().max())
    # ... and the reused features follow the full model closely near the change.
    full = net(pixel_values=moved).predicted_depth
    err = (after - full)[:, :28, :28].abs().max() / full.abs().max()
    assert float(err) < 0.05
    # With a neck threshold, the neck's fine end recomputes only the blocks near the change.
    reuse = TemporalReuse(net, threshold=0.01, neck_threshold=0.3, block=1)
    before = reuse.step(frames[0]).clone()
    after = reuse.step(moved)
    assert 0 < reuse.stats.tiles_computed < 0.5
    assert torch.equal(after[:, 70:], before[:, 70:])  # the bottom half: the previous depth


@torch.inference_mode()
def test_resq_at_high_bits_is_the_model(model: tuple) -> None:
    processor, net = model
    resq = ResQ(net, bits=16, adaptive=False)
    for x in _pixels(processor, disc_clip(4)):
        ref = net(pixel_values=x).predicted_depth
        assert torch.allclose(resq.step(x), ref, atol=1e-3 * float(ref.abs().max()))
    assert resq.frame_bits == [0, 16, 16, 16]


@torch.inference_mode()
def test_resq_4_bit_error_is_below_per_frame_4_bit(model: tuple) -> None:
    processor, net = model
    xs = _pixels(processor, disc_clip(6))
    resq, plain = ResQ(net, bits=4, adaptive=False), PerFrameQuant(net, bits=4)
    err_resq, err_plain = [], []
    for i, x in enumerate(xs):
        ref = net(pixel_values=x).predicted_depth
        a, b = resq.step(x), plain.step(x)
        if i:
            err_resq.append(float((a - ref).pow(2).mean()))
            err_plain.append(float((b - ref).pow(2).mean()))
    assert np.mean(err_resq) < np.mean(err_plain)


def test_quantiser_and_bit_rule() -> None:
    x = torch.linspace(-1, 1, 101)
    q = quantize(x, 4)
    assert len(torch.unique(q)) == 15 and float((q - x).abs().max()) <= 1 / 7 / 2 + 1e-6
    assert bits_for_change(0.01, 4, 0.02) == 4
    assert bits_for_change(0.05, 4, 0.02) == 6  # 2.5× the reference: two doublings started
    assert bits_for_change(10.0, 4, 0.02) == 8
