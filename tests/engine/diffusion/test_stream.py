"""Stream pipeline: Stream Batch equals sequential denoising; the similarity filter; reuse."""

from __future__ import annotations

import pytest
import torch

from fathom.engine.accel.similarity import SimilarityFilter, skip_probability
from fathom.engine.diffusion.stream import StreamPipeline


@pytest.fixture(scope="module")
def stream() -> StreamPipeline:
    from fathom.engine.diffusion.minimodels import TINY, build_components

    c = build_components(TINY)
    return StreamPipeline(
        c["unet"],
        c["vae"],
        c["text_encoder"],
        c["tokenizer"],
        c["scheduler"],
        tiny_vae=c["tiny_vae"],
    )


def frames(n: int, batch: int = 1) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(11)
    return [torch.rand(batch, 3, 64, 64, generator=g) * 2 - 1 for _ in range(n)]


@pytest.mark.parametrize("cfg_type", ["none", "self", "initialize", "full"])
@pytest.mark.parametrize("t_index_list", [(32, 45), (10, 25, 40)])
def test_stream_batch_equals_sequential(
    stream: StreamPipeline, cfg_type: str, t_index_list: tuple[int, ...]
) -> None:
    stream.prepare(
        "a painting of a boat",
        "blurry",
        t_index_list=t_index_list,
        guidance=1.4,
        cfg_type=cfg_type,
        seed=3,
    )
    inputs = frames(5)
    calls = stream.unet_calls
    outs = [stream(f) for f in inputs]
    assert stream.unet_calls - calls == len(inputs)  # one UNet pass per frame
    lag = stream.latency
    assert lag == len(t_index_list) - 1
    for i in range(len(inputs) - lag):
        ref = stream.denoise_sequential(inputs[i])
        assert torch.allclose(outs[i + lag], ref, atol=1e-4), (cfg_type, i)  # batch rounding


def test_stream_batch_of_frames(stream: StreamPipeline) -> None:
    stream.prepare("a cat", t_index_list=(20, 40), cfg_type="self")
    inputs = frames(3, batch=2)
    outs = [stream(f) for f in inputs]
    assert outs[-1].shape == (2, 3, 64, 64)
    assert torch.allclose(outs[1], stream.denoise_sequential(inputs[0]), atol=1e-5)


def test_tiny_and_full_vae_paths(stream: StreamPipeline) -> None:
    stream.prepare("a cat", t_index_list=(30,), cfg_type="none", use_tiny_vae=False)
    out = stream(frames(1)[0])
    assert out.shape == (1, 3, 64, 64) and float(out.abs().max()) <= 1.0


def test_similarity_filter_skips_identical_frames(stream: StreamPipeline) -> None:
    f = SimilarityFilter(threshold=0.98, max_skip=3)
    x = frames(1)[0]
    decisions = [f(x) for _ in range(9)]
    # first frame processed, then 3 skips, then forced, then 3 skips, forced ...
    assert decisions == [True, False, False, False, True, False, False, False, True]
    other = -x
    assert f(other) is True  # a different frame is never skipped (similarity -1)
    assert skip_probability(1.0, 0.98) == 1.0 and skip_probability(0.5, 0.98) == 0.0
    assert skip_probability(0.99, 1.0) == 0.0

    stream.prepare(
        "a cat",
        t_index_list=(20, 40),
        cfg_type="self",
        similarity_threshold=0.98,
        similarity_max_skip=100,
    )
    calls = stream.unet_calls
    first = stream(x)
    for _ in range(4):
        assert stream(x) is first  # skipped: previous output, no UNet pass
    assert stream.unet_calls - calls == 1
    stream(other)
    assert stream.unet_calls - calls == 2


def test_clockwork_in_stream(stream: StreamPipeline) -> None:
    inputs = frames(6)
    stream.prepare("a boat", t_index_list=(20, 40), cfg_type="self")
    plain = [stream(f) for f in inputs]
    stream.prepare("a boat", t_index_list=(20, 40), cfg_type="self", clock_period=3)
    reused = [stream(f) for f in inputs]
    assert stream.clockwork is not None
    assert stream.clockwork.stats == {"full_calls": 2, "cheap_calls": 4}
    assert torch.equal(reused[0], plain[0])  # a full call
    assert not torch.equal(reused[1], plain[1])
    assert float((reused[1] - plain[1]).abs().mean()) < 0.2
    stream.close()
    stream.prepare("a boat", t_index_list=(20, 40), cfg_type="self")
    assert all(torch.equal(a, b) for a, b in zip([stream(f) for f in inputs], plain, strict=True))


def test_prepare_rejects_bad_settings(stream: StreamPipeline) -> None:
    with pytest.raises(ValueError, match="cfg_type"):
        stream.prepare("a", cfg_type="double")
    with pytest.raises(ValueError, match="t_index_list"):
        stream.prepare("a", t_index_list=(10, 99))
    stream.prepare("a", t_index_list=(10,))
    with pytest.raises(ValueError, match="B×3×H×W"):
        stream(torch.zeros(3, 64, 64))


@pytest.mark.parametrize("cfg_type", ["self", "initialize", "full"])
def test_a_controlnet_in_the_stream_follows_each_frames_own_control_image(
    stream: StreamPipeline, cfg_type: str
) -> None:
    from diffusers import ControlNetModel

    net = ControlNetModel.from_unet(stream.unet)
    gen = torch.Generator().manual_seed(5)
    with torch.no_grad():
        for p in net.parameters():
            p.add_(torch.randn(p.shape, generator=gen) * 0.05)
    stream.prepare("a boat", "blurry", t_index_list=(10, 25, 40), guidance=1.4, cfg_type=cfg_type)
    stream.set_controls([(net.eval(), 0.8, 0.0, 1.0)])
    inputs = frames(5)
    hints = [torch.rand(1, 3, 64, 64, generator=gen) for _ in inputs]
    outs = [stream(f, [h]) for f, h in zip(inputs, hints, strict=True)]
    lag = stream.latency
    for i in range(len(inputs) - lag):
        ref = stream.denoise_sequential(inputs[i], [hints[i]])
        assert torch.allclose(outs[i + lag], ref, atol=1e-4), (cfg_type, i)
    controlled = stream.denoise_sequential(inputs[0], [hints[0]])
    stream.set_controls([])
    plain = stream.denoise_sequential(inputs[0])
    assert not torch.allclose(plain, controlled, atol=1e-3)  # the ControlNet steered
