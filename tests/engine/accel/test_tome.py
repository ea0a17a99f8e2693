"""Token merging: the pure merge math, and ratio 0 leaves a pipeline's output bit-identical."""

from __future__ import annotations

import pytest
import torch

from fathom.engine.accel.tome import (
    TokenMerge,
    destination_mask,
    merge,
    merged_sizes,
    plan_merge,
    token_grid,
    unmerge,
)


def run(pipe, steps: int = 3) -> torch.Tensor:
    out = pipe(
        "a small red boat",
        height=64,
        width=64,
        num_inference_steps=steps,
        generator=torch.Generator().manual_seed(3),
        output_type="pt",
    )
    return out.images


def test_destination_mask_one_per_cell() -> None:
    m = destination_mask(6, 8, 2, 2, torch.Generator().manual_seed(0)).view(6, 8)
    assert int(m.sum()) == 12
    assert torch.all(m.view(3, 2, 4, 2).sum(dim=(1, 3)) == 1)
    fixed = destination_mask(5, 5, 2, 2).view(5, 5)  # border cells keep their top-left
    assert int(fixed.sum()) == 9 and bool(fixed[4, 4])


def test_merge_unmerge_math() -> None:
    torch.manual_seed(0)
    x = torch.randn(2, 16, 5)
    dst = destination_mask(4, 4)
    plan0 = plan_merge(x, 0, dst)
    restored = unmerge(merge(x, plan0), plan0)
    assert torch.equal(restored, x)
    # Duplicated tokens merge first and come back exactly.
    x[:, 1] = x[:, 0]  # token 0 is a destination (top-left of its cell), token 1 a source
    plan = plan_merge(x, 1, dst)
    assert plan.src.tolist() == [[1], [1]]
    y = merge(x, plan)
    assert y.shape == (2, 15, 5)
    assert torch.allclose(unmerge(y, plan), x, atol=1e-6)
    assert merged_sizes(plan).sum(dim=1).tolist() == [16.0, 16.0]


def test_mean_merge_averages() -> None:
    x = torch.zeros(1, 4, 1)
    x[0, :, 0] = torch.tensor([1.0, 3.0, 10.0, 20.0])
    dst = torch.tensor([True, False, False, False])
    plan = plan_merge(torch.ones(1, 4, 2), 3, dst)  # every source matches the only destination
    assert merge(x, plan).flatten().tolist() == [pytest.approx(8.5)]
    assert unmerge(merge(x, plan), plan).flatten().tolist() == [pytest.approx(8.5)] * 4


def test_score_hook_blocks_pairs() -> None:
    torch.manual_seed(1)
    x = torch.randn(1, 16, 8)
    dst = destination_mask(4, 4)
    group = (torch.arange(16) % 4 >= 2).long()  # left half / right half of the grid

    def same_group_only(scores, src, dst_idx):
        ok = group[src].view(-1, 1) == group[dst_idx].view(1, -1)
        return scores.masked_fill(~ok, float("-inf"))

    plan = plan_merge(x, 6, dst, score_hook=same_group_only)
    joined = plan.keep[0, plan.into[0]]
    assert torch.equal(group[plan.src[0]], group[joined])


def test_token_grid() -> None:
    assert token_grid(64, (8, 8)) == (8, 8, 1)
    assert token_grid(16, (8, 8)) == (4, 4, 2)
    assert token_grid(6, (3, 5)) == (2, 3, 2)
    with pytest.raises(ValueError):
        token_grid(7, (8, 8))


def test_ratio_zero_equals_baseline_exactly(pipe) -> None:
    base = run(pipe)
    tm = TokenMerge(ratio=0.0)
    tm.attach(pipe)
    try:
        assert torch.equal(run(pipe), base)
    finally:
        tm.detach()


def test_merging_changes_little_and_detach_restores(pipe) -> None:
    base = run(pipe)
    processors = dict(pipe.unet.attn_processors)
    tm = TokenMerge(ratio=0.5, proportional=True)
    tm.attach(pipe)
    try:
        merged = run(pipe)
    finally:
        tm.detach()
    assert merged.shape == base.shape and not torch.equal(merged, base)
    assert float((merged - base).abs().mean()) < 0.1
    assert dict(pipe.unet.attn_processors) == processors
    assert torch.equal(run(pipe), base)
