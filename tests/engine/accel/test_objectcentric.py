"""Object-centric video acceleration: the pure math, and each switch's identity with the
baseline (token merging at ratio 0, sampling with equal step counts, anchor keys kept across
chunks, Clockwork reuse across identical frames)."""

from __future__ import annotations

import pytest
import torch

from fathom.engine.accel.objectcentric import (
    crop_boxes,
    feather_mask,
    group_frames,
    plan_object_merge,
    shared_steps,
    ungroup_frames,
)
from fathom.engine.accel.tome import destination_mask, merge, unmerge
from fathom.engine.diffusion.video import VideoRun, VideoSettings, ddim_jump

SIZE = 64


@pytest.fixture(scope="module")
def comps():
    from fathom.engine.diffusion.components import Components
    from fathom.engine.diffusion.minimodels import TINY, build_components

    return Components(**build_components(TINY))


def clip(n: int = 4, static: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """n frames (n×3×64×64 in [-1, 1]) of a textured square moving 4 px a frame over a smooth
    background, and its masks (n×1×64×64)."""
    g = torch.Generator().manual_seed(0)
    bg = torch.nn.functional.interpolate(
        torch.rand(1, 3, 8, 8, generator=g), size=SIZE, mode="bilinear", align_corners=False
    )[0]
    tex = torch.rand(3, 20, 20, generator=g)
    frames, masks = [], []
    for i in range(n):
        f = bg.clone()
        m = torch.zeros(1, SIZE, SIZE)
        x = 16 + (0 if static else 4 * i)
        f[:, 20:40, x : x + 20] = tex
        m[:, 20:40, x : x + 20] = 1
        frames.append(f)
        masks.append(m)
    return torch.stack(frames) * 2 - 1, torch.stack(masks)


def run(comps, frames, masks, chunk: int = 0, **kw):
    s = VideoSettings(
        **{
            "prompt": "a red boat",
            "negative_prompt": "blur",
            "steps": 6,
            "strength": 0.8,
            "seed": 5,
            **kw,
        }
    )
    n = frames.shape[0]
    chunk = chunk or n
    starts = list(range(0, n, chunk))
    with VideoRun(comps, s, chunks=len(starts)) as vr:
        out = torch.cat(
            [
                vr.denoise(
                    frames[a : a + chunk],
                    None if masks is None else masks[a : a + chunk],
                    0 if a == 0 else None,
                )
                for a in starts
            ]
        )
    return out, vr


# ---- pure functions -----------------------------------------------------------------------


def test_object_merge_keeps_classes_apart_and_meets_each_ratio() -> None:
    torch.manual_seed(0)
    x = torch.randn(3, 64, 8)
    fg = torch.zeros(3, 64, dtype=torch.bool)
    fg[:, 8:24] = True  # rows 1-2 of an 8×8 grid are foreground
    dst = destination_mask(8, 8)
    plan = plan_object_merge(x, dst, fg, ratio_bg=0.5, ratio_fg=0.0)
    # Uniform count for every item (so merged sequences batch): half the 48 background tokens.
    assert plan.src.shape == (3, 24) and plan.keep.shape == (3, 40)
    for b in range(3):
        assert not fg[b, plan.src[b]].any()  # no foreground token merged at ratio 0
        joined = plan.keep[b, plan.into[b]]
        assert torch.equal(fg[b, plan.src[b]], fg[b, joined])  # same class only
    both = plan_object_merge(x, dst, fg, ratio_bg=0.5, ratio_fg=0.5)
    assert both.src.shape[1] == 24 + 8
    assert int(fg[0, both.src[0]].sum()) == 8
    none = plan_object_merge(x, dst, fg, 0.0, 0.0)
    assert none.r == 0 and torch.equal(unmerge(merge(x, none), none), x)


def test_temporal_grouping_round_trips_and_merges_static_tokens_across_frames() -> None:
    torch.manual_seed(1)
    x = torch.randn(4, 16, 5)  # 4 frames of a 4×4 grid
    assert torch.equal(ungroup_frames(group_frames(x, 2), 2), x)
    still = x.clone()
    still[1] = still[0]  # frame 1 repeats frame 0: its tokens merge into frame 0's exactly
    dst = torch.cat([torch.ones(16, dtype=torch.bool), torch.zeros(16, dtype=torch.bool)])
    pairs = group_frames(still[:2], 2)
    plan = plan_object_merge(pairs, dst, torch.zeros(1, 32, dtype=torch.bool), 0.5, 0.0)
    assert plan.r == 16 and sorted(plan.src[0].tolist()) == list(range(16, 32))
    assert torch.allclose(unmerge(merge(pairs, plan), plan), pairs)


def test_video_edits_sample_with_ddim_unless_the_model_needs_its_own() -> None:
    from diffusers import DDIMScheduler, LCMScheduler, PNDMScheduler

    from fathom.engine.diffusion.video import video_sampler

    assert video_sampler("default", PNDMScheduler()) == "ddim"
    assert video_sampler("", DDIMScheduler()) == "ddim"
    assert video_sampler("default", LCMScheduler()) == "default"
    assert video_sampler("default", LCMScheduler(), inversion=True) == "ddim"
    assert video_sampler("euler", PNDMScheduler()) == "euler"


def test_feather_crop_and_schedule_helpers() -> None:
    m = torch.zeros(2, 1, 16, 16)
    m[0, :, 4:8, 4:8] = 1
    m[1, :, 6:10, 8:12] = 1
    w = feather_mask(m, 2)
    assert torch.equal(w[m > 0], torch.ones(32))
    ramp = w[0, 0, 5, 7:11].tolist()  # the last foreground column, then 1, 2, 3 pixels out
    assert ramp == pytest.approx([1.0, 2 / 3, 1 / 3, 0.0])
    boxes = crop_boxes(w, 1, 1)
    assert boxes is not None and len({(b[2], b[3]) for b in boxes}) == 1
    for i, (t, lf, h, ww) in enumerate(boxes):  # each box holds its frame's blend support
        ys, xs = torch.nonzero(w[i, 0] > 0, as_tuple=True)
        assert t <= ys.min() and ys.max() < t + h and lf <= xs.min() and xs.max() < lf + ww
    assert crop_boxes(torch.ones(1, 1, 8, 8), 0, 1) is None  # nothing to save
    assert shared_steps(16, 2) == [0, 8] and shared_steps(5, 5) == [0, 1, 2, 3, 4]
    x0, eps = torch.randn(1, 4, 2, 2), torch.randn(1, 4, 2, 2)
    a, b = torch.tensor(0.3), torch.tensor(0.8)
    x = a.sqrt() * x0 + (1 - a).sqrt() * eps
    assert torch.allclose(ddim_jump(x, x0, a, b), b.sqrt() * x0 + (1 - b).sqrt() * eps, atol=1e-5)


# ---- identities with the baseline -----------------------------------------------------------


def test_one_frame_without_anchor_equals_image_to_image(comps) -> None:
    from fathom.engine.diffusion.loop import generate

    frames, masks = clip(2)
    out, _ = run(comps, frames, masks, attention="off")
    ref = generate(
        comps,
        "a red boat",
        "blur",
        steps=6,
        strength=0.8,
        seed=5,
        width=SIZE,
        height=SIZE,
        image=frames[1:2],
        decode_output=False,
        scheduler="ddim",
    )
    assert torch.allclose(out[1:2], ref.latents, atol=1e-4)


def test_token_merging_ratio_zero_is_exact_and_detach_restores(comps) -> None:
    frames, masks = clip(4)
    base, _ = run(comps, frames, masks)
    same, vr = run(comps, frames, masks, merge_bg=0.0, merge_fg=0.0, temporal_merge=True)
    assert torch.equal(same, base) and vr.merger.merged_calls == 0
    processors = dict(comps.unet.attn_processors)
    merged, vr = run(comps, frames, masks, merge_bg=0.8, temporal_merge=True, merge_levels=2)
    assert vr.merger.merged_calls > 0 and not torch.equal(merged, base)
    assert float((merged - base).abs().mean()) < 0.5 * float(base.abs().mean())
    assert dict(comps.unet.attn_processors) == processors
    assert not any("forward" in m.__dict__ for m in comps.unet.modules())
    assert torch.equal(run(comps, frames, masks)[0], base)


def test_object_centric_sampling_equal_steps_is_exact(comps) -> None:
    frames, masks = clip(4)
    base, _ = run(comps, frames, masks)
    k = 4  # 6 steps × strength 0.8 on DDIM (the video edit's default sampler)
    for bg in (0, 6, k):
        same, vr = run(comps, frames, masks, bg_steps=bg)
        assert torch.equal(same, base) and vr.crop_calls == 0, bg
    fewer, vr = run(comps, frames, masks, bg_steps=2, feather=1, crop_margin=1)
    assert vr.crop_calls == k - 2 and vr.unet_calls == k  # shared steps run no crop
    assert fewer.shape == base.shape and not torch.equal(fewer, base)


def test_anchor_keys_kept_across_chunks_equal_one_batch(comps) -> None:
    frames, masks = clip(4)
    whole, _ = run(comps, frames, masks, attention="first")
    chunked, vr = run(comps, frames, masks, chunk=2, attention="first")
    assert torch.allclose(chunked, whole, atol=1e-4)
    off, _ = run(comps, frames, masks, attention="off")
    assert not torch.allclose(off[1:], whole[1:], atol=1e-3)  # the anchor really is attended


def test_clockwork_across_identical_frames_equals_the_baseline(comps) -> None:
    frames, masks = clip(4, static=True)
    base, _ = run(comps, frames, masks)
    reused, vr = run(comps, frames, masks, clock_frames=True)
    assert vr.clock is not None and vr.clock.cheap_calls > 0
    assert torch.allclose(reused, base, atol=1e-4)
    moving, mmasks = clip(4)
    moved, vr = run(comps, moving, mmasks, clock_frames=True)
    assert not torch.allclose(moved, run(comps, moving, mmasks)[0], atol=1e-4)


def test_ddim_inversion_reconstructs_the_input_latents(comps) -> None:

    frames, masks = clip(2)
    s = dict(prompt="", guidance=1.0, strength=1.0, steps=10, scheduler="ddim", attention="off")
    inverted, _ = run(comps, frames, masks, inversion=True, **s)
    noised, _ = run(comps, frames, masks, **s)
    z0 = torch.cat(
        [
            comps.encode_image(frames[i : i + 1], torch.Generator().manual_seed(5), torch.float32)
            for i in range(2)
        ]
    )
    err_inv = float((inverted - z0).abs().mean())
    err_noise = float((noised - z0).abs().mean())
    assert err_inv < 0.5 * err_noise, (err_inv, err_noise)


def test_flow_fusion_carries_the_previous_frame_along_the_flow() -> None:
    from fathom.engine.diffusion.videoattn import (
        follow_coords,
        fuse_along_flow,
        warp_back,
        warp_noise,
    )

    x = torch.arange(2 * 5 * 6, dtype=torch.float32).view(1, 2, 5, 6)
    shift = torch.zeros(1, 5, 6, 2)
    shift[..., 0] = -1.0  # each new pixel came from one pixel to its left
    moved = warp_back(x, shift)
    assert torch.allclose(moved[..., 1:], x[..., :-1], atol=1e-4)
    assert torch.allclose(moved[..., 0], x[..., 0], atol=1e-4)
    frames = torch.stack([x[0], x[0] + 10.0])
    fused = fuse_along_flow(frames, torch.zeros(2, 5, 6, 2), None, 0.25)
    assert torch.equal(fused[0], frames[0])  # the first frame has nothing to follow
    assert torch.allclose(fused[1], 0.75 * frames[1] + 0.25 * frames[0])
    prev = torch.zeros(1, 2, 5, 6)  # the previous chunk's last frame, for its first frame
    assert torch.allclose(
        fuse_along_flow(frames, torch.zeros(2, 5, 6, 2), prev, 0.5)[0], 0.5 * frames[0]
    )
    # Noise carried along a half-pixel motion keeps unit variance.
    ys, xs = torch.meshgrid(torch.arange(32.0), torch.arange(32.0), indexing="ij")
    coords = follow_coords(torch.stack([xs, ys], -1), torch.full((32, 32, 2), -0.5))
    noise = warp_noise(
        torch.randn(1, 4, 32, 32, generator=torch.Generator().manual_seed(0)), coords[None]
    )
    assert float(noise[..., 1:, 1:].std()) == pytest.approx(1.0, abs=0.05)


def test_flow_fusion_off_is_exact_and_on_is_chunk_independent(comps) -> None:
    frames, masks = clip(4)
    base, _ = run(comps, frames, masks, negative_prompt="")
    flows = torch.zeros(4, 8, 8, 2)
    flows[1:, ..., 0] = -0.5  # the square moves 4 px = half a latent pixel a frame
    s = VideoSettings(prompt="a red boat", steps=6, strength=0.8, seed=5, flow_fusion=0.5)
    outs = []
    for chunk in (4, 2):
        with VideoRun(comps, s, chunks=4 // chunk) as vr:
            outs.append(
                torch.cat(
                    [
                        vr.denoise(
                            frames[a : a + chunk],
                            None,
                            0 if a == 0 else None,
                            flows=flows[a : a + chunk],
                        )
                        for a in range(0, 4, chunk)
                    ]
                )
            )
    assert torch.allclose(outs[0], outs[1], atol=1e-4) and not torch.allclose(outs[0], base)
    s.flow_fusion = 0.0
    with VideoRun(comps, s) as vr:
        assert torch.equal(vr.denoise(frames, None, 0, flows=flows), base)


def test_a_run_stopped_mid_step_leaves_the_unet_as_it_was(comps) -> None:
    """Cancelling raises out of the step callback: every patch must still come off."""
    frames, masks = clip(4)
    base, _ = run(comps, frames, masks)
    processors = dict(comps.unet.attn_processors)
    s = VideoSettings(
        prompt="a red boat",
        steps=6,
        strength=0.8,
        seed=5,
        merge_bg=0.8,
        temporal_merge=True,
        merge_levels=2,
        bg_steps=2,
        feather=1,
        crop_margin=1,
        clock_frames=True,
    )

    class Stop(Exception):
        pass

    def stop_at_two(done: int, total: int) -> None:
        if done == 2:
            raise Stop

    with pytest.raises(Stop), VideoRun(comps, s) as vr:
        vr.denoise(frames, masks, 0, stop_at_two)
    assert vr.unet_calls > 0 and vr.merger.merged_calls > 0
    assert dict(comps.unet.attn_processors) == processors
    assert not any("forward" in m.__dict__ for m in comps.unet.modules())
    assert not comps.unet._forward_pre_hooks and not comps.unet._forward_hooks
    assert torch.equal(run(comps, frames, masks)[0], base)


def test_merging_without_a_mask_treats_every_token_as_background(comps) -> None:
    frames, masks = clip(4)
    none, vr = run(comps, frames, None, merge_bg=0.6, temporal_merge=True)
    zeros, _ = run(comps, frames, torch.zeros_like(masks), merge_bg=0.6, temporal_merge=True)
    assert vr.merger.merged_calls > 0 and torch.equal(none, zeros)
    with_fg, _ = run(comps, frames, masks, merge_bg=0.6, temporal_merge=True)
    assert not torch.equal(with_fg, none)  # the mask really moves tokens between classes


def test_temporal_merge_with_odd_chunks_attends_to_one_anchor(comps) -> None:
    """5 frames in chunks of 3 and 2: the first chunk cannot pair its frames, the second can;
    both attend to the anchor's keys, kept once per guidance half and step."""
    frames, masks = clip(5)
    s = VideoSettings(
        prompt="a red boat",
        negative_prompt="blur",
        steps=6,
        strength=0.8,
        seed=5,
        merge_bg=0.6,
        temporal_merge=True,
    )
    with VideoRun(comps, s, chunks=2) as vr:
        first = vr.denoise(frames[:3], masks[:3], 0)
        kept = {kv[0].shape[0] for kv in vr.anchor.kept.values()}
        out = torch.cat([first, vr.denoise(frames[3:], masks[3:], None)])
    assert vr.merger.merged_calls > 0 and torch.isfinite(out).all()
    assert kept == {2}  # one anchor item per guidance half, whatever the grouping
    off, _ = run(comps, frames, masks, chunk=3, merge_bg=0.6, temporal_merge=True, attention="off")
    assert not torch.allclose(off[3:], out[3:], atol=1e-3)  # the second chunk sees the anchor
    whole, _ = run(comps, frames, masks, merge_bg=0.6, temporal_merge=True)
    assert float((out - whole).abs().mean()) < 0.25 * float(whole.abs().mean())


def test_clockwork_across_steps_reuses_each_frames_own_features(comps) -> None:
    frames, masks = clip(4)
    base, _ = run(comps, frames, masks, steps=10)
    reused, vr = run(comps, frames, masks, steps=10, clock_period=2, clock_warmup=2)
    assert vr.step_clock is not None
    # 8 steps: 2 warm-up, then every other step whole → 3 cheap calls
    assert (vr.step_clock.full_calls, vr.step_clock.cheap_calls) == (5, 3)
    err = float((reused - base).pow(2).mean() / base.pow(2).mean())
    assert 0 < err < 0.05, err  # close to the baseline, not equal to it
    chunked, vr = run(comps, frames, masks, steps=10, chunk=2, clock_period=2, clock_warmup=2)
    assert vr.step_clock.cheap_calls == 6  # the clock restarts for every chunk
    assert torch.allclose(chunked[:2], reused[:2], atol=1e-4)
    _, vr = run(
        comps,
        frames[:2],
        masks[:2],
        steps=10,
        clock_period=2,
        clock_warmup=2,
        inversion=True,
        scheduler="ddim",
    )
    assert vr.step_clock.cheap_calls == 3  # the inversion's 8 calls all ran whole
    with pytest.raises(ValueError, match="one of them"):
        VideoRun(comps, VideoSettings(clock_period=2, clock_frames=True))


@pytest.mark.parametrize("full_first", [True, False])
def test_sampling_chunks_may_crop_or_not_and_share_the_anchor(comps, full_first) -> None:
    """A chunk whose object fills the frame runs every step whole; a chunk with a small object
    runs crop steps. Either may hold the anchor: the other still finds its keys per step."""
    frames, masks = clip(4)
    big = slice(0, 2) if full_first else slice(2, 4)
    masks[big] = 1.0
    out, vr = run(comps, frames, masks, chunk=2, bg_steps=2, feather=1, crop_margin=1)
    assert vr.crop_calls == 2 and torch.isfinite(out).all()  # one chunk: k - 2 crop steps
