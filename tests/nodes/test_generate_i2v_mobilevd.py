"""generate.image_to_video's MobileVD switches on a tiny random SVD in SVD's block layout:
each switch off equals diffusers' StableVideoDiffusionPipeline, each on equals the same
diffusers pieces composed by hand (low-resolution sampling + latent upsampling, keyframes +
time interpolation, temporal blocks at mix factor α = 1), and few-step checkpoints load and
run with the consistency sampler their folder names."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from fathom.engine.diffusion.fewstep_svd import SVDConsistencyScheduler
from fathom.engine.diffusion.mobilevd import (
    interpolate_time,
    keyframe_count,
    resize_latents,
    temporal_blocks,
)
from fathom.engine.diffusion.svd_minimodels import TINY_SVD, save_svd_model
from fathom.engine.errors import NodeError
from fathom.engine.executor import Executor
from fathom.engine.registry import Registry
from fathom.engine.types import Image
from fathom.nodes.generate_i2v import decode_frames, to_pil

RGB = np.random.default_rng(5).random((48, 64, 3)).astype(np.float32)
N = 5  # frames
ATOL = 1e-4  # float32 rounding of a 4-level UNet run twice (different thread splits)
BASE = {
    "steps": 2,
    "seed": 4,
    "width": 64,
    "height": 48,
    "fps": 6,
    "motion_bucket_id": 90,
    "noise_aug_strength": 0.05,
    "min_guidance": 1.0,
    "max_guidance": 2.0,
    "frames": N,
    "decode_chunk_size": 0,
}


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_svd_model(tmp_path_factory.mktemp("mvd") / "svd", TINY_SVD, seed=1)


@pytest.fixture(scope="module")
def ex() -> Executor:
    reg = Registry()
    reg.load_builtin()
    return Executor(reg)


@pytest.fixture(scope="module")
def pipe(folder: Path) -> Any:
    from diffusers import StableVideoDiffusionPipeline

    p = StableVideoDiffusionPipeline.from_pretrained(folder, use_safetensors=True)
    p.set_progress_bar_config(disable=True)
    return p


def _loaded(ex: Executor, folder: Path) -> Any:
    """The pipeline the node loaded: references composed from its own parts (SVD starts at
    σ = 700, so two loads that split float sums differently drift by ~1e-3 at 4×3 latents)."""
    found = [e.model.pipe for e in ex.models.entries() if e.model.source == str(folder)]
    if not found:
        _node(ex, folder, steps=1)
        return _loaded(ex, folder)
    return found[0]


def _node(ex: Executor, model: Path, **params: Any) -> np.ndarray:
    video = ex.call(
        "generate.image_to_video", {"image": Image(RGB)}, {"model": str(model), **BASE, **params}
    )["video"]
    return np.stack([f.data for f in video])


def _latents(pipe: Any, **over: Any) -> Any:
    kw = {
        "height": 48,
        "width": 64,
        "num_frames": N,
        "num_inference_steps": 2,
        "min_guidance_scale": 1.0,
        "max_guidance_scale": 2.0,
        "fps": 6,
        "motion_bucket_id": 90,
        "noise_aug_strength": 0.05,
        **over,
    }
    with torch.no_grad():
        return pipe(
            to_pil(Image(RGB)),
            generator=torch.Generator().manual_seed(4),
            output_type="latent",
            **kw,
        ).frames


def _decode(pipe: Any, latents: Any) -> np.ndarray:
    with torch.no_grad():
        return np.stack([f.data for f in decode_frames(pipe, latents, 0)])


def test_all_switches_off_equal_the_pipeline(ex: Executor, folder: Path, pipe: Any) -> None:
    got = _node(
        ex,
        folder,
        sample_scale=1.0,
        frame_stride=1,
        skip_temporal=0.0,
        scheduler="default",
        upsample="frames",
    )
    with torch.no_grad():
        ref = pipe(
            to_pil(Image(RGB)),
            height=48,
            width=64,
            num_frames=N,
            num_inference_steps=2,
            min_guidance_scale=1.0,
            max_guidance_scale=2.0,
            fps=6,
            motion_bucket_id=90,
            noise_aug_strength=0.05,
            generator=torch.Generator().manual_seed(4),
            output_type="np",
        ).frames[0]
    assert np.allclose(got, ref, atol=ATOL), np.abs(got - ref).max()


def test_lower_resolution_sampling_upsamples_the_latents(ex: Executor, folder: Path) -> None:
    """sample_scale 0.5: the pipeline's latents at 32×24, bilinearly upsampled to the full
    latent grid, decoded at 64×48; with upsample=frames the small frames are upsampled."""
    pipe = _loaded(ex, folder)
    got = _node(ex, folder, sample_scale=0.5)
    small = _latents(pipe, height=24, width=32)
    assert small.shape[-2:] == (3, 4)
    ref = _decode(pipe, resize_latents(small, 6, 8))
    assert got.shape == (N, 48, 64, 3)
    assert np.allclose(got, ref, atol=ATOL), np.abs(got - ref).max()
    frames = _node(ex, folder, sample_scale=0.5, upsample="frames")
    small_frames = _decode(pipe, small)
    assert frames.shape == (N, 48, 64, 3) and small_frames.shape == (N, 24, 32, 3)
    # Each 2×2 block of the upsampled frame averages to about the small frame's pixel.
    pooled = frames.reshape(N, 24, 2, 32, 2, 3).mean(axis=(2, 4))
    assert np.abs(pooled - small_frames)[:, 2:-2, 2:-2].mean() < 0.02


def test_keyframes_are_denoised_and_the_rest_interpolated(ex: Executor, folder: Path) -> None:
    """frame_stride 2 on 5 frames denoises 3 keyframes (0, 2, 4) at half the fps conditioning
    and fills frames 1 and 3 halfway between their neighbours' latents."""
    pipe = _loaded(ex, folder)
    assert keyframe_count(N, 2) == 3 and keyframe_count(25, 2) == 13 and keyframe_count(5, 1) == 5
    got = _node(ex, folder, frame_stride=2)
    keys = _latents(pipe, num_frames=3, fps=3)
    full = interpolate_time(keys, N)
    assert torch.equal(full[:, ::2], keys)
    assert torch.allclose(full[:, 1], (keys[:, 0] + keys[:, 1]) / 2, atol=1e-6)
    ref = _decode(pipe, full)
    assert np.allclose(got, ref, atol=ATOL), np.abs(got - ref).max()


def _alpha_one(unet: Any, names: list[str]) -> list[tuple[Any, Any]]:
    """Set the named blocks' learned mix factor so that α = sigmoid(m) is exactly 1."""
    kept = []
    for name, block in temporal_blocks(unet):
        if name in names:
            kept.append((block.time_mixer.mix_factor, block.time_mixer.mix_factor.data.clone()))
            block.time_mixer.mix_factor.data.fill_(1e4)
    return kept


def test_bypassed_temporal_blocks_equal_mix_factor_one(
    ex: Executor, folder: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Skipping every temporal block gives the pipeline's output with every blend at α = 1
    (the spatial branch alone); a fraction skips the lowest-ranked ones, and the calibration
    that ranked them is kept with the loaded model. The calibration says (as a warning, which
    the CLI and the studio's log show) what it cost and how to skip it."""
    pipe = _loaded(ex, folder)
    names = [n for n, _ in temporal_blocks(pipe.unet)]
    assert len(names) == 24  # SVD's layout at 1 layer: 2+2+2+1 down, 2+1 mid, 2+4+4+4 up
    with caplog.at_level(logging.WARNING):
        got = _node(ex, folder, skip_temporal=1.0)
    said = [r.getMessage() for r in caplog.records if "calibrated" in r.getMessage()]
    assert len(said) == 1 and "fathom rank-svd MODEL --calib IMAGE" in said[0]
    kept = _alpha_one(pipe.unet, names)
    try:
        ref = _decode(pipe, _latents(pipe))
    finally:
        for p, v in kept:
            p.data.copy_(v)
    assert np.allclose(got, ref, atol=ATOL), np.abs(got - ref).max()
    model = [e.model for e in ex.models.entries() if getattr(e.model, "rankings", None)][0]
    ranking = next(iter(model.rankings.values()))
    assert sorted(n for n, _ in ranking) == sorted(names)
    scores = [s for _, s in ranking]
    assert scores == sorted(scores) and scores[-1] > 0
    # A fraction bypasses the least important blocks: equal to α = 1 on exactly those.
    low = [n for n, _ in ranking[:6]]
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        part = _node(ex, folder, skip_temporal=0.25)
    assert len(model.rankings) == 1  # the same settings reuse the calibration
    assert not [r for r in caplog.records if "calibrated" in r.getMessage()]
    kept = _alpha_one(pipe.unet, low)
    try:
        ref = _decode(pipe, _latents(pipe))
    finally:
        for p, v in kept:
            p.data.copy_(v)
    assert np.allclose(part, ref, atol=ATOL), np.abs(part - ref).max()


def _few_step_folder(
    src: Path, dst: Path, scheduler: dict[str, Any] | None, card: str = ""
) -> Path:
    shutil.copytree(src, dst)
    if scheduler is not None:
        (dst / "scheduler" / "scheduler_config.json").write_text(json.dumps(scheduler))
        index = json.loads((dst / "model_index.json").read_text())
        index["scheduler"] = ["diffusers", scheduler["_class_name"]]
        (dst / "model_index.json").write_text(json.dumps(index))
    if card:
        (dst / "README.md").write_text(card)
    return dst


def test_a_few_step_checkpoint_runs_with_the_scheduler_its_folder_names(
    ex: Executor, folder: Path, tmp_path: Path
) -> None:
    """A folder whose scheduler config names AnimateLCM-SVD's sampler (absent from diffusers)
    loads, and by default samples with our consistency sampler built from that config: equal
    to diffusers' pipeline driven by that sampler, seeded the same way."""
    pipe = _loaded(ex, folder)
    cfg = {
        "_class_name": "AnimateLCMSVDStochasticIterativeScheduler",
        "num_train_timesteps": 40,
        "sigma_min": 0.002,
        "sigma_max": 700.0,
        "sigma_data": 1.0,
        "rho": 7,
        "s_noise": 1.0,
        "clip_denoised": False,
    }
    lcm = _few_step_folder(folder, tmp_path / "lcm", cfg)
    for steps in (1, 4):
        got = _node(ex, lcm, steps=steps, max_guidance=1.0)
        sched = SVDConsistencyScheduler(sigma_max=700.0, num_train_timesteps=40)
        sched.generator = torch.Generator().manual_seed(5)
        kept, pipe.scheduler = pipe.scheduler, sched
        try:
            ref = _decode(pipe, _latents(pipe, num_inference_steps=steps, max_guidance_scale=1.0))
        finally:
            pipe.scheduler = kept
        assert np.allclose(got, ref, atol=ATOL), (steps, np.abs(got - ref).max())
    # Choosing euler on it runs SVD's Euler sampler (here: the plain pipeline's).
    euler = _node(ex, lcm, scheduler="euler")
    assert np.allclose(euler, _decode(pipe, _latents(pipe)), atol=ATOL)
    # More steps than the sampler's grid: refused on the steps port.
    with pytest.raises(NodeError) as err:
        _node(ex, lcm, steps=41)
    assert err.value.port == "steps" and "1 to 40" in str(err.value)
    # An SVD folder with Euler's config whose model card names the distilled checkpoint.
    card = _few_step_folder(folder, tmp_path / "card", None, "# AnimateLCM-SVD-xt\n")
    a = _node(ex, card, steps=2, max_guidance=1.0)
    b = _node(ex, lcm, steps=2, max_guidance=1.0)
    assert np.array_equal(a, b)


def test_consistency_sampler_steps() -> None:
    """Timesteps are SVD's 0.25·ln σ on the Karras grid; the last step lands on the clean
    estimate c_skip·x + c_out·v with no fresh noise; at σ_min the estimate is x itself."""
    s = SVDConsistencyScheduler()
    s.set_timesteps(2)
    assert torch.allclose(s.timesteps, 0.25 * torch.log(s.sigmas[:2]))
    assert s.sigmas[0] == pytest.approx(700.0, rel=1e-5) and s.sigmas[-1] == pytest.approx(0.002)
    x, v = torch.randn(1, 2, 4, 3, 3), torch.randn(1, 2, 4, 3, 3)
    s.generator = torch.Generator().manual_seed(0)
    s.step(v, s.timesteps[0], x)
    last = s.step(v, s.timesteps[1], x).prev_sample
    sig = float(s.sigmas[1])
    d = sig - 0.002
    want = x / (d**2 + 1) - d / (sig**2 + 1) ** 0.5 * v
    assert torch.allclose(last, want, atol=ATOL)
    s.set_timesteps(1)
    s.sigmas[0] = 0.002
    assert torch.allclose(s.step(v, s.timesteps[0], x).prev_sample, x)
