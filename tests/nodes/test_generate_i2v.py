"""generate.image_to_video: equal to diffusers' StableVideoDiffusionPipeline on a tiny random
SVD saved like a user's model, chunked decoding, progress, cancel and bad inputs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from cancelling import cancel_after_steps
from faults import out_of_memory

from fathom.engine.context import RunOptions
from fathom.engine.errors import GraphInvalid, NodeError
from fathom.engine.events import Recorder
from fathom.engine.executor import Executor
from fathom.engine.graph import Graph
from fathom.engine.node import Node, Output
from fathom.engine.registry import Registry
from fathom.engine.types import Image, Video

RGB = np.random.default_rng(3).random((48, 80, 3)).astype(np.float32)
FRAMES = 4


class I2VImage(Node):
    """Test source: a fixed random 80×48 image."""

    type_id = "test.i2v_image"
    outputs = (Output("image", Image),)

    def run(self, ctx, **kw):
        return {"image": Image(RGB)}


REG = Registry()
REG.load_builtin()
REG.register(I2VImage)


def build_tiny_svd(folder: Path, seed: int = 0) -> Path:
    """A Stable Video Diffusion folder with random weights: a two-level spatio-temporal UNet
    (32/64 channels, 4 frames), a 4-level temporal-decoder VAE (scale 8), a 2-layer CLIP vision
    encoder at SVD's 224² input and SVD's Euler scheduler (v-prediction, Karras sigmas)."""
    from diffusers import (
        AutoencoderKLTemporalDecoder,
        EulerDiscreteScheduler,
        StableVideoDiffusionPipeline,
        UNetSpatioTemporalConditionModel,
    )
    from tinymodels import tiny_clip_vision
    from transformers import CLIPImageProcessor

    torch.manual_seed(seed)
    unet = UNetSpatioTemporalConditionModel(
        sample_size=8,
        in_channels=8,
        out_channels=4,
        block_out_channels=(32, 64),
        down_block_types=("CrossAttnDownBlockSpatioTemporal", "DownBlockSpatioTemporal"),
        up_block_types=("UpBlockSpatioTemporal", "CrossAttnUpBlockSpatioTemporal"),
        layers_per_block=1,
        cross_attention_dim=32,
        num_attention_heads=(2, 4),
        addition_time_embed_dim=8,
        projection_class_embeddings_input_dim=24,
        num_frames=FRAMES,
    )
    vae = AutoencoderKLTemporalDecoder(
        block_out_channels=(32, 32, 32, 32),
        down_block_types=("DownEncoderBlock2D",) * 4,
        layers_per_block=1,
        latent_channels=4,
    )
    encoder = tiny_clip_vision(224, 32)
    scheduler = EulerDiscreteScheduler(
        beta_start=0.00085,
        beta_end=0.012,
        beta_schedule="scaled_linear",
        interpolation_type="linear",
        prediction_type="v_prediction",
        sigma_max=700.0,
        sigma_min=0.002,
        steps_offset=1,
        timestep_spacing="leading",
        timestep_type="continuous",
        use_karras_sigmas=True,
    )
    pipe = StableVideoDiffusionPipeline(
        vae=vae,
        image_encoder=encoder,
        unet=unet,
        scheduler=scheduler,
        feature_extractor=CLIPImageProcessor(crop_size=224, size=224),
    )
    out = folder / "svd"
    pipe.save_pretrained(out, safe_serialization=True)
    return out


@pytest.fixture(scope="module")
def tiny_svd(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_svd(tmp_path_factory.mktemp("tiny_svd"))


@pytest.fixture(scope="module")
def ex() -> Executor:
    """One executor (and model manager): the model loads once for the module."""
    return Executor(REG)


@pytest.fixture(scope="module")
def reference(tiny_svd: Path) -> Any:
    """The plain diffusers pipeline on the same folder."""
    from diffusers import StableVideoDiffusionPipeline

    pipe = StableVideoDiffusionPipeline.from_pretrained(tiny_svd, use_safetensors=True)
    pipe.set_progress_bar_config(disable=True)
    return pipe


PARAMS = {
    "steps": 3,
    "seed": 11,
    "width": 64,
    "height": 48,
    "fps": 6,
    "motion_bucket_id": 90,
    "noise_aug_strength": 0.05,
    "min_guidance": 1.0,
    "max_guidance": 2.5,
}


def _opts(tmp_path: Path) -> RunOptions:
    return RunOptions(output_dir=tmp_path / "out", base_dir=tmp_path, device="cpu")


def _ref(pipe: Any, chunk: int | None, output_type: str = "np") -> Any:
    from fathom.nodes.generate_i2v import to_pil

    return pipe(
        to_pil(Image(RGB)),
        height=48,
        width=64,
        num_frames=FRAMES,
        num_inference_steps=3,
        min_guidance_scale=1.0,
        max_guidance_scale=2.5,
        fps=6,
        motion_bucket_id=90,
        noise_aug_strength=0.05,
        decode_chunk_size=chunk,
        generator=torch.Generator().manual_seed(11),
        output_type=output_type,
    ).frames


def _frames(video: Video) -> np.ndarray:
    return np.stack([f.data for f in video])


def test_equals_the_pipeline_and_runs_from_a_graph(
    ex: Executor, tiny_svd: Path, reference: Any, tmp_path: Path
) -> None:
    g = Graph()
    g.add_node("test.i2v_image", "img", {})
    g.add_node(
        "generate.image_to_video", "i2v", {"model": str(tiny_svd), "decode_chunk_size": 0, **PARAMS}
    )
    g.connect("img", "image", "i2v", "image")
    rec = Recorder()
    res = ex.run(g, targets=["i2v"], options=_opts(tmp_path), listener=rec)
    r = res.records["i2v"]
    assert r.status == "executed", r.error
    video = res.values["i2v"]["video"]
    assert isinstance(video, Video) and len(video) == FRAMES and video.fps == 6.0
    assert video.size == (64, 48)
    ref = _ref(reference, None)[0]
    assert ref.shape == (FRAMES, 48, 64, 3)
    got = _frames(video)
    assert np.allclose(got, ref, atol=1e-5), np.abs(got - ref).max()
    assert np.array_equal(res.values["i2v"]["last_frame"].data, got[-1])
    steps = [e.message for e in rec.events if e.kind == "node_progress" and "step" in e.message]
    assert steps == ["step 1/3", "step 2/3", "step 3/3"]
    d = r.as_dict()["details"]
    assert d["device"] == "cpu" and d["offload"] == "none" and d["frames"] == FRAMES
    assert any(f.endswith("unet/diffusion_pytorch_model.safetensors") for f in r.model_files)
    assert ex.run(g, targets=["i2v"], options=_opts(tmp_path)).executed == []


def test_chunked_decode_equals_the_pipeline_at_each_chunk_size(
    ex: Executor, tiny_svd: Path, reference: Any
) -> None:
    """The temporal decoder mixes the frames decoded together, so each chunk size is its own
    (deterministic) answer: the pipeline's at that size; one frame per chunk equals decoding
    every frame alone."""
    outs = {}
    for chunk in (1, 3, 0):
        video = ex.call(
            "generate.image_to_video",
            {"image": Image(RGB)},
            {"model": str(tiny_svd), "decode_chunk_size": chunk, **PARAMS},
        )["video"]
        outs[chunk] = _frames(video)
        assert outs[chunk].shape == (FRAMES, 48, 64, 3)
        ref = _ref(reference, chunk or None)[0]
        assert np.allclose(outs[chunk], ref, atol=1e-5), (chunk, np.abs(outs[chunk] - ref).max())
    latents = _ref(reference, None, "latent")
    with torch.no_grad():
        alone = [
            reference.vae.decode(
                latents[0, i : i + 1] / reference.vae.config.scaling_factor, num_frames=1
            ).sample
            for i in range(FRAMES)
        ]
    alone_np = ((torch.cat(alone) / 2 + 0.5).clamp(0, 1)).permute(0, 2, 3, 1).numpy()
    assert np.allclose(outs[1], alone_np, atol=1e-5)
    assert not np.allclose(outs[1], outs[0], atol=1e-3)  # frames decoded together do mix
    # The chunks' frame ranges.
    from fathom.nodes.generate_i2v import chunks

    assert chunks(25, 8) == [(0, 8), (8, 16), (16, 24), (24, 25)]
    assert chunks(5, 0) == [(0, 5)] and chunks(3, 9) == [(0, 3)]


def test_cancelling_mid_denoise_stops_the_node(
    ex: Executor, tiny_svd: Path, tmp_path: Path
) -> None:
    cancel, seen, listener = cancel_after_steps(2)

    g = Graph()
    g.add_node("test.i2v_image", "img", {})
    g.add_node(
        "generate.image_to_video",
        "i2v",
        {"model": str(tiny_svd), **{**PARAMS, "steps": 5, "seed": 12}},
    )
    g.connect("img", "image", "i2v", "image")
    res = ex.run(g, targets=["i2v"], options=_opts(tmp_path), listener=listener, cancel=cancel)
    assert res.cancelled and res.records["i2v"].status == "cancelled"
    assert seen == ["step 1/5", "step 2/5"]


def test_bad_models_and_sizes_are_explained(
    ex: Executor, tiny_svd: Path, tiny_sd: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FATHOM_SETTINGS", str(tmp_path / "absent.conf"))
    monkeypatch.setenv("FATHOM_MODELS", str(tmp_path / "models"))
    # A missing folder: named before anything runs, and again if called directly.
    g = Graph()
    g.add_node("test.i2v_image", "img", {})
    g.add_node("generate.image_to_video", "i2v", {"model": str(tmp_path / "nowhere"), **PARAMS})
    g.connect("img", "image", "i2v", "image")
    with pytest.raises(GraphInvalid) as err:
        ex.plan(g, options=_opts(tmp_path))
    assert [(p.node, p.port) for p in err.value.problems] == [("i2v", "model")]
    with pytest.raises(NodeError) as nerr:
        ex.call(
            "generate.image_to_video",
            {"image": Image(RGB)},
            {"model": str(tmp_path / "nowhere"), **PARAMS},
        )
    assert nerr.value.port == "model" and "not found" in str(nerr.value)
    # A Stable Diffusion (text-to-image) folder is not an SVD model.
    with pytest.raises(NodeError) as nerr:
        ex.call("generate.image_to_video", {"image": Image(RGB)}, {"model": str(tiny_sd), **PARAMS})
    assert nerr.value.port == "model"
    assert "StableDiffusionPipeline" in str(nerr.value) and "not Stable Video" in str(nerr.value)
    # A folder with no model_index.json.
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "w.safetensors").write_bytes(b"")
    with pytest.raises(NodeError) as nerr:
        ex.call(
            "generate.image_to_video",
            {"image": Image(RGB)},
            {"model": str(tmp_path / "empty"), **PARAMS},
        )
    assert nerr.value.port == "model" and "model_index.json" in str(nerr.value)
    # A damaged weights file: named on the model port, not a raw safetensors error.
    import shutil

    broken = tmp_path / "broken-svd"
    shutil.copytree(tiny_svd, broken)
    (broken / "unet" / "diffusion_pytorch_model.safetensors").write_bytes(b"\x08not a header")
    with pytest.raises(NodeError) as nerr:
        ex.call("generate.image_to_video", {"image": Image(RGB)}, {"model": str(broken), **PARAMS})
    assert nerr.value.port == "model" and "could not be loaded" in str(nerr.value)
    # A typo in the offload setting names the variable, not the model.
    monkeypatch.setenv("FATHOM_OFFLOAD", "gpu-please")
    with pytest.raises(NodeError) as nerr:
        ex.call(
            "generate.image_to_video", {"image": Image(RGB)}, {"model": str(tiny_svd), **PARAMS}
        )
    assert "FATHOM_OFFLOAD is 'gpu-please'" in str(nerr.value) and nerr.value.port is None
    assert "sequential" in (nerr.value.fix or "")
    monkeypatch.delenv("FATHOM_OFFLOAD")
    # Sizes that are no multiple of 8: in the plan and at run time, with the fix.
    g2 = Graph()
    g2.add_node("test.i2v_image", "img", {})
    g2.add_node("generate.image_to_video", "i2v", {"model": str(tiny_svd), **PARAMS, "width": 100})
    g2.connect("img", "image", "i2v", "image")
    with pytest.raises(GraphInvalid) as err:
        ex.plan(g2, options=_opts(tmp_path))
    assert [(p.port, p.fix) for p in err.value.problems] == [("width", "use 96 or 104")]
    with pytest.raises(NodeError) as nerr:
        ex.call(
            "generate.image_to_video",
            {"image": Image(RGB)},
            {"model": str(tiny_svd), **PARAMS, "height": 52},
        )
    assert nerr.value.port == "height" and "multiple of 8" in str(nerr.value)


def test_out_of_memory_frees_retries_then_explains(
    tiny_svd: Path, reference: Any, tmp_path: Path
) -> None:
    ex = Executor(REG)  # its own manager: the fault is injected into its copy of the model
    ex.call(
        "generate.image_to_video",
        {"image": Image(RGB)},
        {"model": str(tiny_svd), **PARAMS, "steps": 1},
    )
    unet = ex.models.entries()[-1].model.pipe.unet
    with out_of_memory(unet) as fails:
        g = Graph()
        g.add_node("test.i2v_image", "img", {})
        g.add_node(
            "generate.image_to_video",
            "i2v",
            {"model": str(tiny_svd), **PARAMS, "decode_chunk_size": 0},
        )
        g.connect("img", "image", "i2v", "image")
        res = ex.run(g, targets=["i2v"], options=_opts(tmp_path))
        r = res.records["i2v"]
        assert r.status == "executed", r.error
        assert r.details["oom_fallback"].startswith("freeing")
        assert np.allclose(
            _frames(res.values["i2v"]["video"]), _ref(reference, None)[0], atol=1e-5
        )  # the retry starts clean
        fails.left = 10
        g.nodes["i2v"].params["seed"] = 1
        res = ex.run(g, targets=["i2v"], options=_opts(tmp_path))
        err = res.records["i2v"].error
        assert res.records["i2v"].status == "failed"
        assert "node 'i2v'" in err and "ran out of cpu memory" in err
        assert "decode_chunk_size" in err


def test_out_of_memory_while_decoding_keeps_the_latents_and_halves_the_chunks(
    tiny_svd: Path, reference: Any
) -> None:
    ex = Executor(REG)
    ex.call(
        "generate.image_to_video",
        {"image": Image(RGB)},
        {"model": str(tiny_svd), **PARAMS, "steps": 1},
    )
    pipe = ex.models.entries()[-1].model.pipe
    steps: list[int] = []
    real_step = pipe.scheduler.step
    with out_of_memory(pipe.vae.decoder) as fails:
        pipe.scheduler.step = lambda *a, **k: steps.append(1) or real_step(*a, **k)
        try:
            g = Graph()
            g.add_node("test.i2v_image", "img", {})
            g.add_node(
                "generate.image_to_video",
                "i2v",
                {"model": str(tiny_svd), **PARAMS, "decode_chunk_size": 0},
            )
            g.connect("img", "image", "i2v", "image")
            res = ex.run(g, targets=["i2v"], options=RunOptions(device="cpu"))
        finally:
            del pipe.scheduler.step
    r = res.records["i2v"]
    assert r.status == "executed", r.error
    assert fails.left == 0 and len(steps) == 3  # denoised once: the latents were kept
    half = FRAMES // 2
    assert r.details["decode_chunk_size"] == half
    assert r.details["oom_fallback"].endswith(f"decode_chunk_size {half}")
    assert np.allclose(_frames(res.values["i2v"]["video"]), _ref(reference, half)[0], atol=1e-5)


def test_a_half_precision_only_download_loads(ex: Executor, tiny_svd: Path, tmp_path: Path) -> None:
    import shutil

    half = tmp_path / "half-svd"
    shutil.copytree(tiny_svd, half)
    for f in half.glob("*/*.safetensors"):
        f.rename(f.with_name(f.name.replace(".safetensors", ".fp16.safetensors")))
    params = {**PARAMS, "steps": 1, "decode_chunk_size": 0}
    want = ex.call(
        "generate.image_to_video", {"image": Image(RGB)}, {"model": str(tiny_svd), **params}
    )["video"]
    got = ex.call("generate.image_to_video", {"image": Image(RGB)}, {"model": str(half), **params})[
        "video"
    ]
    assert np.array_equal(_frames(got), _frames(want))


def test_the_conditioning_image_is_the_input_rounded_to_8_bits() -> None:
    from fathom.nodes.generate_i2v import to_pil

    rgba = np.concatenate([RGB, np.full((48, 80, 1), 0.5, np.float32)], axis=2)
    pil = to_pil(Image(rgba))
    assert pil.mode == "RGB" and pil.size == (80, 48)
    assert np.array_equal(np.asarray(pil), (RGB * 255).round().astype(np.uint8))


def test_one_frame_and_guidance_order(
    ex: Executor, tiny_svd: Path, reference: Any, tmp_path: Path
) -> None:
    """One frame guides at min_guidance (its place on the ramp) and must not trip the
    pipeline's two guidance decisions; a falling ramp is refused before anything runs."""
    from fathom.nodes.generate_i2v import to_pil

    one = ex.call(
        "generate.image_to_video",
        {"image": Image(RGB)},
        {
            "model": str(tiny_svd),
            "decode_chunk_size": 0,
            **PARAMS,
            "frames": 1,
            "min_guidance": 1.0,
        },
    )["video"]
    assert len(one) == 1
    ref = reference(
        to_pil(Image(RGB)),
        height=48,
        width=64,
        num_frames=1,
        num_inference_steps=3,
        min_guidance_scale=1.0,
        max_guidance_scale=1.0,
        fps=6,
        motion_bucket_id=90,
        noise_aug_strength=0.05,
        generator=torch.Generator().manual_seed(11),
        output_type="np",
    ).frames[0]
    assert np.allclose(_frames(one), ref, atol=1e-5)
    g = Graph()
    g.add_node("test.i2v_image", "img", {})
    g.add_node(
        "generate.image_to_video",
        "i2v",
        {"model": str(tiny_svd), **PARAMS, "min_guidance": 3.0, "max_guidance": 1.0},
    )
    g.connect("img", "image", "i2v", "image")
    with pytest.raises(GraphInvalid) as err:
        ex.plan(g, options=_opts(tmp_path))
    assert [(p.port, p.fix) for p in err.value.problems] == [
        ("min_guidance", "set it to at most 1.0, or raise max_guidance")
    ]
    with pytest.raises(NodeError) as nerr:
        ex.call(
            "generate.image_to_video",
            {"image": Image(RGB)},
            {"model": str(tiny_svd), **PARAMS, "min_guidance": 3.0, "max_guidance": 1.0},
        )
    assert nerr.value.port == "min_guidance"
