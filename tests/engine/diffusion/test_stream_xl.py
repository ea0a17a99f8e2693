"""The stream on SDXL-family UNets: Stream Batch equals denoising each frame on its own (with
the pooled text embedding and size ids conditioning every call), ControlNet follows each
frame's own control image, the accelerations change nothing when off, and the generation node
streams an SDXL model."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from fathom.engine.diffusion.stream import StreamPipeline


@pytest.fixture(scope="module")
def stream(tiny_sdxl: Path) -> StreamPipeline:
    from fathom.engine.models.diffusion import load_components

    c = load_components(tiny_sdxl, "cpu", "float32")
    return StreamPipeline(
        c.unet, c.vae, c.text_encoder, c.tokenizer, c.scheduler, tiny_vae=None, components=c
    )


def frames(n: int) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(21)
    return [torch.rand(1, 3, 64, 64, generator=g) * 2 - 1 for _ in range(n)]


@pytest.mark.parametrize("cfg_type", ["none", "self", "initialize", "full"])
def test_sdxl_stream_batch_equals_sequential(stream: StreamPipeline, cfg_type: str) -> None:
    stream.prepare("a boat at dawn", "", (10, 25, 40), guidance=1.4, cfg_type=cfg_type, seed=2)
    inputs = frames(5)
    outs = [stream(f) for f in inputs]
    assert stream._added is not None and stream._added["ids"].tolist() == [[64, 64, 0, 0, 64, 64]]
    for i in range(len(inputs) - stream.latency):
        ref = stream.denoise_sequential(inputs[i])
        assert torch.allclose(outs[i + stream.latency], ref, atol=1e-4), (cfg_type, i)


def test_the_pooled_embedding_conditions_the_sdxl_stream(stream: StreamPipeline) -> None:
    """SDXL's UNet also hears the prompt through the pooled embedding: with the cross
    attention fed the same embeddings, another pooled vector changes the frame."""
    x = frames(1)[0]
    stream.prepare("a boat", t_index_list=(20,), cfg_type="none", seed=1)
    first = stream.denoise_sequential(x)
    assert stream._added is not None
    stream._added["pos"] = torch.zeros_like(stream._added["pos"])
    assert not torch.allclose(stream.denoise_sequential(x), first, atol=1e-4)


def test_accelerations_off_change_nothing_on_sdxl_and_on_they_run(stream: StreamPipeline) -> None:
    inputs = frames(4)
    stream.prepare("a boat", t_index_list=(20, 40), cfg_type="self")
    plain = [stream(f) for f in inputs]
    stream.prepare("a boat", t_index_list=(20, 40), cfg_type="self", token_merge=0.0)
    assert all(torch.equal(a, b) for a, b in zip([stream(f) for f in inputs], plain, strict=True))
    stream.prepare("a boat", t_index_list=(20, 40), cfg_type="self", clock_period=2)
    reused = [stream(f) for f in inputs]
    assert stream.clockwork is not None and stream.clockwork.stats["cheap_calls"] == 2
    assert torch.equal(reused[0], plain[0]) and not torch.equal(reused[1], plain[1])
    stream.prepare("a boat", t_index_list=(20, 40), cfg_type="self", token_merge=0.5)
    merged = [stream(f) for f in inputs]
    assert all(torch.isfinite(m).all() for m in merged)
    stream.close()


def test_an_sdxl_controlnet_in_the_stream_follows_each_frames_own_control_image(
    stream: StreamPipeline,
) -> None:
    from diffusers import ControlNetModel

    net = ControlNetModel.from_unet(stream.unet)
    gen = torch.Generator().manual_seed(5)
    with torch.no_grad():
        for p in net.parameters():
            p.add_(torch.randn(p.shape, generator=gen) * 0.05)
    stream.prepare("a boat", "blurry", (10, 25, 40), guidance=1.4, cfg_type="full")
    stream.set_controls([(net.eval(), 0.8, 0.0, 1.0)])
    try:
        inputs = frames(4)
        hints = [torch.rand(1, 3, 64, 64, generator=gen) for _ in inputs]
        outs = [stream(f, [h]) for f, h in zip(inputs, hints, strict=True)]
        for i in range(len(inputs) - stream.latency):
            ref = stream.denoise_sequential(inputs[i], [hints[i]])
            assert torch.allclose(outs[i + stream.latency], ref, atol=1e-4), i
        controlled = stream.denoise_sequential(inputs[0], [hints[0]])
    finally:
        stream.set_controls([])
    assert not torch.allclose(stream.denoise_sequential(inputs[0]), controlled, atol=1e-3)


def test_the_stream_node_runs_an_sdxl_model_and_refuses_the_refiner(
    tiny_sdxl: Path, tiny_sdxl_refiner: Path
) -> None:
    from fathom.engine.context import NodeContext, RunOptions
    from fathom.engine.executor import Executor
    from fathom.engine.registry import default_registry
    from fathom.engine.types import Image, Video

    ex = Executor(default_registry())
    rgb = np.random.default_rng(0).random((64, 64, 3)).astype(np.float32)
    clip = Video.from_frames([Image(np.roll(rgb, 8 * i, axis=1)) for i in range(3)], fps=8)
    params = {"model": str(tiny_sdxl), "prompt": "a cat", "t_index_list": "1,3"}
    params |= {"num_inference_steps": 4, "guidance": 1.0, "cfg_type": "none", "seed": 3}
    out = ex.call("generate.stream", {"frames": clip}, params)
    assert len(out["video"]) == 3
    assert all(np.isfinite(out["video"].frame(i).data).all() for i in range(3))
    cls = default_registry().get("generate.stream")
    assert cls is not None
    ctx = NodeContext("s", RunOptions(device="cpu"), None)
    refused = cls.preflight({**cls.defaults(), "model": str(tiny_sdxl_refiner)}, ctx)
    assert [p.port for p in refused] == ["model"]
    assert "SDXL refiner" in refused[0].message and "SDXL" in refused[0].message
    assert cls.preflight({**cls.defaults(), "model": str(tiny_sdxl)}, ctx) == []
