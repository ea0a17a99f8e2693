"""Adaptive steps: threshold 0 runs the full schedule; a threshold stops early; predictors."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from fathom.engine.accel.adaptive import (
    AdaptiveSteps,
    HeuristicStepPredictor,
    RegressionStepPredictor,
    relative_change,
)
from fathom.engine.diffusion.components import Components
from fathom.engine.diffusion.loop import generate


def run(pipe, callback=None) -> torch.Tensor:
    return pipe(
        "a quiet harbour",
        height=64,
        width=64,
        num_inference_steps=10,
        generator=torch.Generator().manual_seed(2),
        output_type="pt",
        callback_on_step_end=callback,
    ).images


def test_threshold_zero_runs_full_schedule(pipe) -> None:
    base = run(pipe)
    ad = AdaptiveSteps(threshold=0.0)
    out = run(pipe, ad.diffusers_callback(pipe))
    assert torch.equal(out, base)
    assert ad.steps_run == 10 and ad.stopped_at is None
    assert "step" not in pipe.scheduler.__dict__  # the scheduler hook is gone


def test_threshold_stops_early(pipe) -> None:
    ad = AdaptiveSteps(threshold=0.05, min_steps=3)
    run(pipe, ad.diffusers_callback(pipe))
    assert ad.stopped_at is not None and 3 <= ad.stopped_at < 10
    assert all(c >= 0.05 for c in ad.changes[:-1]) and ad.changes[-1] < 0.05
    assert "step" not in pipe.scheduler.__dict__


def test_loop_contract(pipe) -> None:
    comps = Components(pipe.unet, pipe.vae, pipe.text_encoder, pipe.tokenizer, pipe.scheduler)
    kw = dict(steps=8, guidance=5.0, seed=4, width=64, height=64, scheduler="ddim")
    base = generate(comps, "a fox", **kw)
    full = generate(comps, "a fox", accel=[AdaptiveSteps(threshold=0.0)], **kw)
    assert (base.images == full.images).all() and full.steps_run == 8
    ad = AdaptiveSteps(threshold=0.05)
    early = generate(comps, "a fox", accel=[ad], **kw)
    assert early.stopped_early and early.steps_run == ad.stopped_at < 8


def test_relative_change() -> None:
    a = torch.ones(2, 4)
    assert relative_change(a, a) == 0.0
    assert relative_change(a * 1.1, a) == pytest.approx(0.1, rel=1e-5)


def test_heuristic_predictor_orders_prompts() -> None:
    p = HeuristicStepPredictor()
    plain = p.predict("a cat", steps=30)
    rich = p.predict("a highly detailed, intricate portrait, sharp focus, fur, 8k", steps=30)
    assert 2 <= plain < rich <= 30


def test_regression_predictor_fits_logged_runs(tmp_path: Path) -> None:
    runs = [
        {"prompt": "a cat", "steps": 20, "steps_run": 8},
        {"prompt": "a dog", "steps": 20, "steps_run": 8},
        {"prompt": "a detailed, intricate city, sharp", "steps": 20, "steps_run": 18},
        {"prompt": "highly detailed fur, texture", "steps": 20, "steps_run": 17},
    ]
    reg = RegressionStepPredictor(l2=1e-3).fit(runs)
    assert reg.predict("a bird", steps=20) < reg.predict("detailed intricate fur", steps=20)
    reg.save(tmp_path / "p.json")
    again = RegressionStepPredictor.load(tmp_path / "p.json")
    assert again.predict("a bird", steps=20) == reg.predict("a bird", steps=20)
    with pytest.raises(RuntimeError):
        RegressionStepPredictor().predict("x", steps=10)
