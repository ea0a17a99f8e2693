"""The DPT neck's fine end, computed block-wise where its input changed, on a tiny random Depth
Anything: the split neck is the model's own, and the sparse fine end is always exactly the fine
end run on its reference input."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from video_depth_models import build_depth_anything

from fathom.engine.accel.depth_neck import Reassembled, SparseFine, neck_coarse, neck_fine
from fathom.engine.accel.depth_vit import DepthViT
from fathom.engine.models.depth import load_transformers_depth


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> tuple:
    folder = build_depth_anything(tmp_path_factory.mktemp("da"), 140, 168)
    _, net = load_transformers_depth(Path(folder), "cpu", "float32")
    torch.manual_seed(0)
    x = torch.randn(1, 3, 140, 168)
    vit = DepthViT(net)
    hidden, _, _ = vit.encode(x)
    h = neck_coarse(net, vit.features(hidden), 10, 12)
    return net, x, h


def _close(a: torch.Tensor, b: torch.Tensor) -> bool:
    return float((a - b).abs().max()) <= 1e-5 * float(b.abs().max())


@torch.inference_mode()
def test_split_neck_is_the_models_own(setup: tuple) -> None:
    net, x, h = setup
    assert h.shape[2:] == (40, 48)  # four pixels per patch
    assert torch.equal(neck_fine(net, h, 10, 12), net(pixel_values=x).predicted_depth)


@torch.inference_mode()
def test_threshold_zero_is_exact_and_a_local_change_stays_local(setup: tuple) -> None:
    net, _, h = setup
    fine = SparseFine(net, threshold=0.0, block=2)
    before = fine.dense(h, 10, 12)
    moved = h.clone()
    moved[..., 30:34, 40:44] += 1.0  # patch (7..8, 10): near the bottom-right corner
    after, frac = fine.update(moved, 10, 12, before)
    assert _close(after, neck_fine(net, moved, 10, 12))
    assert 0 < frac < 0.25  # a few of the 5 × 6 blocks
    # Blocks far from the change keep the previous depth exactly.
    assert torch.equal(after[:, :56, :112], before[:, :56, :112])
    # Nothing changed: nothing recomputed.
    again, frac = fine.update(moved.clone(), 10, 12, after)
    assert frac == 0 and torch.equal(again, after)


@torch.inference_mode()
def test_depth_is_always_the_fine_end_on_its_reference(setup: tuple) -> None:
    net, _, h = setup
    fine = SparseFine(net, threshold=0.5, block=1)
    depth = fine.dense(h, 10, 12)
    gen = torch.Generator().manual_seed(1)
    cur = h.clone()
    scale = float(h.abs().mean())
    for _ in range(4):
        cur = cur + 0.3 * scale * torch.randn(cur.shape, generator=gen) * (
            torch.rand(cur.shape[2:], generator=gen) < 0.1
        )
        depth, frac = fine.update(cur, 10, 12, depth)
        assert fine.ref is not None and 0 < frac <= 1
        assert _close(depth, neck_fine(net, fine.ref, 10, 12))
    assert not torch.equal(fine.ref, cur)  # the changes below the threshold were held back


@torch.inference_mode()
def test_changes_below_the_threshold_add_up(setup: tuple) -> None:
    net, _, h = setup
    fine = SparseFine(net, threshold=0.5, block=2)
    depth = fine.dense(h, 10, 12)
    step = torch.zeros_like(h)
    step[..., 4:8, 4:8] = 0.2 * fine.scale  # each frame 0.2 of the threshold's scale
    cur, fracs = h.clone(), []
    for _ in range(3):
        cur = cur + step
        depth, frac = fine.update(cur, 10, 12, depth)
        fracs.append(frac)
    assert fracs[:2] == [0.0, 0.0] and fracs[2] > 0  # 0.2, 0.4 held back; 0.6 crosses 0.5
    assert _close(depth, neck_fine(net, cur, 10, 12))


@torch.inference_mode()
def test_reassembled_maps_follow_the_changed_tokens_exactly(setup: tuple) -> None:
    net, x, _ = setup
    vit = DepthViT(net)
    hidden, _, _ = vit.encode(x)
    feats = vit.features(hidden)
    keep = Reassembled(net)
    whole = keep.full(feats, 10, 12)
    for a, b in zip(whole, net.neck.reassemble_stage(feats, 10, 12), strict=True):
        assert torch.equal(a, b)  # a keyframe's maps are the model's own
    index = torch.tensor([0, 1, 14, 15, 60, 119, 120])  # CLS, then tokens across the grid
    gen = torch.Generator().manual_seed(2)
    moved = [f.clone() for f in feats]
    for f in moved:
        f[:, index[1:]] += torch.randn(f[:, index[1:]].shape, generator=gen)
    got = keep.update(moved, index, 12)
    want = net.neck.reassemble_stage(moved, 10, 12)
    for a, b in zip(got, want, strict=True):
        assert _close(a, b)
    # The depth through the updated maps is the model's on the moved features.
    h = neck_coarse(net, moved, 10, 12, channels_last=True, maps=got)
    assert _close(h, neck_coarse(net, moved, 10, 12))
