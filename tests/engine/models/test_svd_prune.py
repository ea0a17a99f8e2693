"""Structured channel pruning of an SVD UNet (engine.models.svd_prune, `fathom prune-svd`) on a
tiny random SVD in SVD's four-level layout: keeping every channel reproduces the UNet, the
pruned timestep embeddings are the original's frequencies, and a pruned folder is a diffusers
folder with the pruned widths that generate.image_to_video loads and runs, with its saved
temporal-block ranking and fewer FLOPs."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image as PILImage

from fathom.engine.diffusion.mobilevd import RANKING_FILE, read_ranking, unet_flops
from fathom.engine.diffusion.svd_minimodels import SVDSpec, save_svd_model
from fathom.engine.models.svd_prune import (
    PruneError,
    _frequencies,
    apply_plan,
    plan_pruning,
    prune_svd,
    pruned_widths,
    record_activity,
)

SPEC = SVDSpec(
    widths=(64, 64, 128, 128),
    heads=(1, 1, 2, 2),
    layers=1,
    embed=32,
    frames=2,
    vae_widths=(32, 32, 32, 32),
    vae_layers=1,
)


def _inputs(seed: int = 0) -> tuple[tuple[torch.Tensor, ...], dict[str, torch.Tensor]]:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(1, SPEC.frames, 8, 6, 8, generator=g)
    kw = {
        "encoder_hidden_states": torch.randn(1, 1, SPEC.embed, generator=g),
        "added_time_ids": torch.randn(1, 3, generator=g),
    }
    return (x, torch.tensor([0.7])), kw


@pytest.fixture(scope="module")
def pruned(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, object]:
    root = tmp_path_factory.mktemp("prune")
    src = save_svd_model(root / "svd", SPEC, seed=2)
    image = PILImage.fromarray(
        (np.random.default_rng(1).random((32, 32, 3)) * 255).astype(np.uint8)
    )
    report = prune_svd(src, root / "small", 0.5, image, width=32, height=32, steps=1)
    return src, root / "small", report


def test_keeping_every_channel_reproduces_the_unet(pruned: tuple[Path, Path, object]) -> None:
    from diffusers import UNetSpatioTemporalConditionModel

    unet = UNetSpatioTemporalConditionModel.from_pretrained(pruned[0] / "unet").eval()
    args, kw = _inputs()
    with torch.no_grad():
        act = record_activity(unet, lambda: unet(*args, **kw))
        same = apply_plan(unet, plan_pruning(unet, act, 1.0))
        a, b = unet(*args, **kw).sample, same(*args, **kw).sample
    assert torch.allclose(a, b, atol=1e-5), (a - b).abs().max()
    # Activity was recorded for every level stream, feed-forward and position embedding.
    assert sorted(act.levels) == [0, 1, 2, 3] and "time" in act.spaces


def test_pruned_widths_and_timestep_frequencies() -> None:
    assert pruned_widths((320, 640, 1280, 1280), 0.5) == (160, 320, 640, 640)
    assert pruned_widths((64, 128, 256, 256), 0.5) == (32, 64, 128, 128)
    # A level keeps at least the 32 groups, and two levels of different widths must stay
    # different (the shortcut between them holds weights): (32, 64) at 0.5 cannot be pruned.
    with pytest.raises(PruneError, match="equally wide"):
        pruned_widths((32, 64), 0.5)
    assert pruned_widths((32, 128), 0.5) == (32, 64)
    with pytest.raises(PruneError, match="GroupNorm"):
        pruned_widths((16,), 1.0)  # narrower than the 32 groups: nothing to keep
    with pytest.raises(PruneError, match="keep"):
        pruned_widths((64,), 0.0)
    # diffusers rebuilds the sinusoidal embedding at the pruned width: every 2nd frequency.
    from diffusers.models.embeddings import Timesteps

    t = torch.tensor([0.3, -1.2, 5.0])
    wide, narrow = Timesteps(128, True, 0)(t), Timesteps(64, True, 0)(t)
    assert torch.allclose(wide[:, _frequencies(128, 64)], narrow, atol=1e-6)


def test_a_pruned_folder_loads_like_any_other(pruned: tuple[Path, Path, object]) -> None:
    from diffusers import UNetSpatioTemporalConditionModel

    from fathom.engine.executor import Executor
    from fathom.engine.registry import Registry
    from fathom.engine.types import Image

    src, out, report = pruned
    cfg = json.loads((out / "unet" / "config.json").read_text())
    assert cfg["block_out_channels"] == [32, 32, 64, 64]
    assert sorted(p.name for p in (out / "unet").iterdir()) == [
        "config.json",
        "diffusion_pytorch_model.safetensors",
    ]
    assert (out / "model_index.json").read_text() == (src / "model_index.json").read_text()
    # About a quarter of the FLOPs at half the widths, measured on the same call.
    f0, f1 = report.flops  # type: ignore[attr-defined]
    assert 0.2 < f1 / f0 < 0.35
    small = UNetSpatioTemporalConditionModel.from_pretrained(out / "unet", use_safetensors=True)
    big = UNetSpatioTemporalConditionModel.from_pretrained(src / "unet", use_safetensors=True)
    args, kw = _inputs(3)
    assert unet_flops(small, args, kw) / unet_flops(big, args, kw) == pytest.approx(
        f1 / f0, rel=0.05
    )
    # Its temporal-block ranking is saved with it and covers the pruned UNet's blocks.
    saved = read_ranking(out)
    assert len(saved) == 24 and json.loads((out / RANKING_FILE).read_text())["keep"] == 0.5
    # The node runs it, skipping blocks by the saved ranking (no calibration run).
    reg = Registry()
    reg.load_builtin()
    ex = Executor(reg)
    rgb = np.random.default_rng(2).random((32, 32, 3)).astype(np.float32)
    video = ex.call(
        "generate.image_to_video",
        {"image": Image(rgb)},
        {
            "model": str(out),
            "steps": 1,
            "frames": 2,
            "width": 32,
            "height": 32,
            "max_guidance": 1.0,
            "skip_temporal": 0.5,
        },
    )["video"]
    assert len(video) == 2 and video.size == (32, 32)
    model = ex.models.entries()[-1].model
    assert list(model.pipe.unet.config.block_out_channels) == [32, 32, 64, 64]
    assert model.rankings == {}


def test_refusals(pruned: tuple[Path, Path, object], tmp_path: Path) -> None:
    from fathom.engine.cli import main

    src, out, _ = pruned
    with pytest.raises(PruneError, match="exists"):
        prune_svd(src, out, 0.5, None)
    assert main(["prune-svd", str(src), "--out", str(tmp_path / "x"), "--calib", "nope.png"]) == 2
    assert not (tmp_path / "x").exists()
    # A keep that rounds back to every width would write a full copy: refused, nothing written.
    with pytest.raises(PruneError, match="nothing would be pruned"):
        prune_svd(src, tmp_path / "y", 0.99, None)
    assert not (tmp_path / "y").exists()


def test_rank_svd_saves_the_ranking_the_node_then_uses(tmp_path: Path) -> None:
    """`fathom rank-svd` ranks the temporal blocks on the calibration image (the same ranking
    as measuring the recorded calls directly) and saves it in the model folder; the node's
    skip_temporal then runs no calibration of its own."""
    import os
    import shutil

    from fathom.engine.cli import main
    from fathom.engine.diffusion.mobilevd import CapturedCalls, rank_temporal_blocks
    from fathom.engine.executor import Executor
    from fathom.engine.models.svd import load_svd
    from fathom.engine.models.svd_prune import _calibrate
    from fathom.engine.registry import Registry
    from fathom.engine.types import Image

    folder = save_svd_model(tmp_path / "svd", SPEC, seed=3)
    calib = tmp_path / "calib.png"
    rgb = np.random.default_rng(4).random((32, 32, 3))
    PILImage.fromarray((rgb * 255).astype(np.uint8)).save(calib)
    args = ["--calib", str(calib), "--width", "32", "--height", "32", "--steps", "1"]
    from fathom.engine.context import NodeContext, RunOptions
    from fathom.engine.registry import Registry as _Registry

    i2v = _Registry()
    i2v.load_builtin()
    node = i2v.get("generate.image_to_video")
    ctx = NodeContext("i2v", RunOptions(), None)
    keyed = {"model": str(folder), "skip_temporal": 0.5}
    before = node.cache_extra(keyed, ctx)
    assert node.cache_extra({**keyed, "skip_temporal": 0.0}, ctx) != before
    assert main(["rank-svd", str(folder), *args, "--device", "cpu"]) == 0
    # The saved ranking changes which blocks are skipped: a cached result must not serve.
    assert node.cache_extra(keyed, ctx) != before
    saved = read_ranking(folder)
    pipe = load_svd(folder, "cpu", "float32", "none").pipe
    capture = CapturedCalls(pipe.unet)
    _calibrate(pipe, capture, PILImage.open(calib).convert("RGB"), (32, 32, SPEC.frames, 1))
    want = rank_temporal_blocks(pipe.unet, capture.calls)
    assert [n for n, _ in saved] == [n for n, _ in want]
    assert [s for _, s in saved] == pytest.approx([s for _, s in want], rel=1e-5)
    assert json.loads((folder / RANKING_FILE).read_text())["calibration"]["steps"] == 1

    reg = Registry()
    reg.load_builtin()
    ex = Executor(reg)
    params = {"model": str(folder), "steps": 1, "frames": 2, "width": 32, "height": 32}
    ex.call(
        "generate.image_to_video",
        {"image": Image(rgb.astype(np.float32))},
        {**params, "max_guidance": 1.0, "skip_temporal": 0.5},
    )
    assert ex.models.entries()[-1].model.rankings == {}

    assert main(["rank-svd", str(tmp_path / "nowhere"), *args]) == 2
    # Numbers the calibration cannot use are refused before anything loads, not by a traceback.
    for flag, bad in (("--width", "60"), ("--width", "-8"), ("--steps", "0"), ("--frames", "-1")):
        assert main(["rank-svd", str(folder), *args, flag, bad]) == 2
        assert main(["prune-svd", str(folder), "--out", str(tmp_path / "p"), *args, flag, bad]) == 2
    assert not (tmp_path / "p").exists()
    # A folder that cannot take the ranking is refused before the calibration run (where
    # folder permissions bind: not for root).
    locked = shutil.copytree(folder, tmp_path / "locked")
    (locked / RANKING_FILE).unlink()
    os.chmod(locked, 0o555)
    try:
        if not os.access(locked, os.W_OK):
            assert main(["rank-svd", str(locked), *args]) == 2
            assert not (locked / RANKING_FILE).exists()
    finally:
        os.chmod(locked, 0o755)
