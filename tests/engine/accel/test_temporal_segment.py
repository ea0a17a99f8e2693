"""SegformerTemporal (temporal reuse / ResQ for SegFormer) against the model's own forward, on a
tiny random-weight SegFormer saved and loaded like a user's folder, and FrameStream's order
independence."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest
import torch
from temporal_models import build_tiny_segformer, disc_frames, pan_frames

from fathom.engine.accel.resq import bits_for_change
from fathom.engine.accel.temporal_segment import (
    BASE_CHANGE,
    FrameStream,
    SegformerTemporal,
    quantise,
)
from fathom.engine.models.segmentation import load_transformers_segmentation


@pytest.fixture(scope="module")
def segformer(tmp_path_factory: pytest.TempPathFactory) -> tuple[object, object]:
    folder = build_tiny_segformer(tmp_path_factory.mktemp("tseg") / "model")
    return load_transformers_segmentation(Path(folder), "cpu", "float32")


def _pixels(processor: object, frames: list[np.ndarray]) -> list[torch.Tensor]:
    return [
        processor(images=(f * 255).round().astype(np.uint8), return_tensors="pt")["pixel_values"]
        for f in frames
    ]


def _reference(net: object, pixels: list[torch.Tensor]) -> list[torch.Tensor]:
    with torch.inference_mode():
        return [net(pixel_values=p).logits for p in pixels]  # type: ignore[operator]


def test_threshold_zero_equals_the_model_and_reuses_a_still_frame(segformer: tuple) -> None:
    processor, net = segformer
    pixels = _pixels(processor, disc_frames(5, 64, step=3.0))
    ref = _reference(net, pixels)
    run = SegformerTemporal(net, "reuse", threshold=0.0)
    shares = []
    for i, p in enumerate(pixels):
        got = run(p, keyframe=i == 0)
        assert torch.equal(got.argmax(1), ref[i].argmax(1))
        torch.testing.assert_close(got, ref[i], atol=1e-5, rtol=1e-4)
        shares.append(run.recomputed)
    assert shares[0] == 1.0
    # A moved key reaches every query at threshold 0, so a moving frame is recomputed whole;
    # a frame that did not move is reused whole, still equal to the model.
    again = run(pixels[-1].clone(), keyframe=False)
    assert run.recomputed == 0.0
    torch.testing.assert_close(again, ref[-1], atol=1e-5, rtol=1e-4)


def test_a_static_clip_recomputes_nothing_after_the_keyframe(segformer: tuple) -> None:
    processor, net = segformer
    (p,) = _pixels(processor, disc_frames(1, 64))
    for mode in ("reuse", "resq"):
        run = SegformerTemporal(net, mode, threshold=0.05)
        first = run(p, keyframe=True)
        for _ in range(3):
            again = run(p.clone(), keyframe=False)
            assert run.recomputed == 0.0
            assert torch.equal(again, first)


def test_reuse_and_resq_stay_close_on_a_moving_clip(segformer: tuple) -> None:
    processor, net = segformer
    pixels = _pixels(processor, disc_frames(6, 64, step=2.0))
    ref = _reference(net, pixels)
    for mode, bits in (("reuse", 4), ("resq", 8)):
        run = SegformerTemporal(net, mode, threshold=0.05, bits=bits)
        for i, p in enumerate(pixels):
            got = run(p, keyframe=i == 0)
            agree = (got.argmax(1) == ref[i].argmax(1)).float().mean()
            assert agree > 0.95, (mode, i, float(agree))
            if i:
                assert run.recomputed < 1.0
        if mode == "resq":
            assert run.frame_bits == 8  # never fewer than `bits`


def test_the_incremental_decoder_equals_the_decode_head(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Whatever the encoder reused, the logits are the model's decode head applied to the
    stage features now held: a small change (only the changed pixels of the 1/4-resolution
    map gathered and classified) and a pan (the whole map upsampled densely) both."""
    processor, net = load_transformers_segmentation(
        Path(build_tiny_segformer(tmp_path / "model", size=128)), "cpu", "float32"
    )
    gathered = []
    rows = SegformerTemporal._bilinear_rows
    monkeypatch.setattr(
        SegformerTemporal,
        "_bilinear_rows",
        lambda self, *a: gathered.append(1) or rows(self, *a),
    )
    clips = ((disc_frames(4, 128, step=1.0), 0.2, True), (pan_frames(3, 128, step=3), 0.05, False))
    for frames, threshold, sparse in clips:
        run = SegformerTemporal(net, "reuse", threshold=threshold)
        gathered.clear()
        for i, p in enumerate(_pixels(processor, frames)):
            got = run(p, keyframe=i == 0)
            feats = []
            for s in range(len(net.config.hidden_sizes)):
                o = run._cache[f"o{s}"][:-1]
                side = int(round(o.shape[0] ** 0.5))
                feats.append(o.t().reshape(1, -1, side, side))
            with torch.inference_mode():
                want = net.decode_head(feats)
            torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-4)
        assert bool(gathered) == sparse


def test_depthwise_rows_equal_the_full_convolution(segformer: tuple) -> None:
    """The depth-wise 3×3 convolution at some output positions, run channels-last over their
    band of map rows, equals the model's convolution over the whole map there."""
    _, net = segformer
    conv = net.segformer.stages[0].blocks[0].mlp.dwconv.dwconv
    h, w = 12, 9
    gen = torch.Generator().manual_seed(0)
    src = torch.cat(
        [torch.randn(h * w, conv.in_channels, generator=gen), torch.zeros(1, conv.in_channels)]
    )
    full = conv(src[:-1].t().reshape(1, -1, h, w)).flatten(2)[0].t()
    run = SegformerTemporal(net, "reuse", threshold=0.05)
    for rows in (torch.tensor([0, 1, 13, 40]), torch.tensor([50, 60, 107]), torch.arange(h * w)):
        got = run._dw_rows("t", conv, src, (h, w), rows)
        torch.testing.assert_close(got, full[rows], atol=1e-6, rtol=1e-5)


def test_quantiser_and_bit_choice() -> None:
    x = torch.randn(10, 32)
    for bits in (2, 4, 8):
        q = quantise(x, bits)
        step = x.abs().amax(-1, keepdim=True) / (2 ** (bits - 1) - 1)
        assert torch.all((q - x).abs() <= step / 2 + 1e-6)
    # The same rule as video.depth's ResQ: ``bits`` up to the base change, one more per doubling.
    assert bits_for_change(0.0, 4, BASE_CHANGE) == 4 and bits_for_change(0.1, 4, BASE_CHANGE) == 4
    assert bits_for_change(0.2, 4, BASE_CHANGE) == 5 and bits_for_change(0.35, 4, BASE_CHANGE) == 6
    assert bits_for_change(100.0, 4, BASE_CHANGE) == 8


def test_frame_stream_gives_the_same_frames_in_any_order() -> None:
    log: list[tuple[int, bool]] = []
    state = {"acc": 0}

    def step(i: int, key: bool) -> int:
        log.append((i, key))
        state["acc"] = i if key else state["acc"] * 10 + i
        return state["acc"]

    def reset() -> None:
        state["acc"] = -1

    in_order = FrameStream(step, reset, 3)
    want = [in_order(i) for i in range(8)]
    assert in_order.steps == 8 and [k for _, k in log] == [i % 3 == 0 for i in range(8)]
    jumping = FrameStream(step, reset, 3)
    assert [jumping(i) for i in (7, 2, 5, 5, 0, 6)] == [want[i] for i in (7, 2, 5, 5, 0, 6)]


def test_the_margin_is_between_the_masks_labels_and_the_rest(segformer: tuple) -> None:
    _, net = segformer
    logits = torch.tensor([[3.0, 0.0], [1.0, 2.5], [0.5, 2.0]]).view(1, 3, 1, 2)  # 3 labels
    # The mask is labels 0 and 2: pixel 0 picks 0 (3 against 1: margin 2); pixel 1 picks 1
    # (2.5 against max(0, 2) = 2: margin 0.5).
    masks = SegformerTemporal(net, "reuse", 0.05, edge_slack=4, labels=[0, 2])._margin(logits)
    torch.testing.assert_close(masks.flatten(), torch.tensor([2.0, 0.5]))
    # Without labels: the gap between the top two.
    top2 = SegformerTemporal(net, "reuse", 0.05, edge_slack=4)._margin(logits)
    torch.testing.assert_close(top2.flatten(), torch.tensor([2.0, 0.5]))
    wide = torch.tensor([[3.0], [0.0], [2.9]]).view(1, 3, 1, 1)  # 0 and 2 are both the mask
    assert float(SegformerTemporal(net, "reuse", 0.05, labels=[0, 2])._margin(wide)) == 3.0
    assert float(SegformerTemporal(net, "reuse", 0.05)._margin(wide)) == pytest.approx(0.1)


def test_edge_slack_loosens_in_proportion_to_the_margin_away_from_edges(segformer: tuple) -> None:
    """A margin of 1 on the left half and 100 on the right: the reference is a quarter of the
    median (1), so the left may change 4× the threshold, the right the most (16×), and the
    right's column beside the left (one token around) stays at the left's 4×."""
    processor, net = segformer
    (p,) = _pixels(processor, disc_frames(1, 64))
    run = SegformerTemporal(net, "reuse", 0.05, edge_slack=16, labels=[1])
    logits = run(p, keyframe=True)
    h, w = logits.shape[2:]
    fake = torch.zeros(1, logits.shape[1], h, w)
    fake[0, 1, :, : w // 2] = 1.0
    fake[0, 1, :, w // 2 :] = 100.0
    run._set_slack(fake, True, (64, 64))
    s0 = run._slack["s0"].view(h, w)
    assert torch.all(s0[:, : w // 2 + 1] == 4.0) and torch.all(s0[:, w // 2 + 1 :] == 16.0)
    px = run._slack["px"].view(64, 64)  # stage 0's slack spread to 4×4 pixels, squared
    assert float(px[0, 0]) == 16.0 and float(px[63, 63]) == 256.0


def test_edge_slack_recomputes_less_and_keeps_exactness_at_threshold_zero(
    segformer: tuple,
) -> None:
    processor, net = segformer
    pixels = _pixels(processor, disc_frames(6, 64, step=2.0))
    ref = _reference(net, pixels)
    shares: dict[float, float] = {}
    for slack in (1.0, 8.0):
        run = SegformerTemporal(net, "reuse", threshold=0.02, edge_slack=slack, labels=[1])
        total = 0.0
        for i, p in enumerate(pixels):
            got = run(p, keyframe=i == 0)
            agree = (got.argmax(1) == ref[i].argmax(1)).float().mean()
            assert agree > 0.9, (slack, i, float(agree))
            total += run.recomputed if i else 0.0
        shares[slack] = total
    assert shares[8.0] < shares[1.0], shares
    exact = SegformerTemporal(net, "reuse", threshold=0.0, edge_slack=8.0, labels=[1])
    for i, p in enumerate(pixels):
        torch.testing.assert_close(exact(p, keyframe=i == 0), ref[i], atol=1e-5, rtol=1e-4)


def test_tokens_the_slack_let_drift_are_checked_again_when_it_tightens(segformer: tuple) -> None:
    """Wide margins (slack 16) while the disc moves, then narrow ones (slack 1) on a still
    frame: the tokens that drifted under the slack are checked against the tighter threshold
    and recomputed, although their input did not move, which brings the result back to the
    model's."""
    processor, net = segformer
    frames = _pixels(processor, disc_frames(3, 64, step=4.0))
    ref = _reference(net, frames)
    run = SegformerTemporal(net, "reuse", threshold=0.05, edge_slack=16, labels=[1])
    # The keyframe's (its median sets the reference, 0.25), wide twice, then narrow.
    margins = itertools.chain([1.0, 100.0, 100.0], itertools.repeat(0.25))
    run._margin = lambda logits: torch.full((1, 1, *logits.shape[2:]), next(margins))
    run(frames[0], keyframe=True)
    run(frames[1], keyframe=False)
    loose = run(frames[2], keyframe=False)
    assert run._slack["s0"].min() == 16.0 and not run._tightened.get("s0", torch.ones(0)).numel()
    run._set_slack(loose, False, (64, 64))  # narrow margins now: slack 1 everywhere...
    assert run._tightened["s0"].numel() == run._slack["s0"].numel()
    # ...but the pixels' kept loose, so no pixel passes and only the re-check can find the
    # drift the blocks' gates let through.
    run._slack["px"] = torch.full_like(run._slack["px"], 256.0)
    again = run(frames[2].clone(), keyframe=False)  # still: no input moved
    assert run.recomputed > 0
    err = lambda got: float((got - ref[2]).abs().max())  # noqa: E731
    assert err(again) < err(loose)


def test_a_frame_of_another_size_starts_afresh(segformer: tuple) -> None:
    _, net = segformer
    gen = torch.Generator().manual_seed(1)
    square = [torch.randn(1, 3, 64, 64, generator=gen) for _ in range(2)]
    wide = torch.randn(1, 3, 48, 80, generator=gen)
    run = SegformerTemporal(net, "reuse", threshold=0.0)
    for i, p in enumerate(square):
        run(p, keyframe=i == 0)
    got = run(wide, keyframe=False)  # cached gather indices were for 64²: a fresh start
    assert run.recomputed == 1.0
    torch.testing.assert_close(got, _reference(net, [wide])[0], atol=1e-5, rtol=1e-4)
