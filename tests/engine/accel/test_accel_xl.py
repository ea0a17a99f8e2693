"""The accelerations work on SDXL UNets as on SD 1.5's: switched off they change nothing,
switched on they run and give the shared UNet back exactly; previews show SDXL latents."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from fathom.engine.accel.adaptive import AdaptiveSteps
from fathom.engine.accel.clockwork import Clockwork
from fathom.engine.accel.tome import TokenMerge
from fathom.engine.diffusion.loop import generate
from fathom.engine.diffusion.preview import Previewer
from fathom.engine.models.diffusion import load_components

KW: dict[str, Any] = dict(steps=6, guidance=5.0, seed=2, width=64, height=64, scheduler="ddim")


@pytest.fixture(scope="module")
def xl(tiny_sdxl: Path) -> Any:
    return load_components(tiny_sdxl, "cpu", "float32")


@pytest.fixture(scope="module")
def plain(xl: Any) -> np.ndarray:
    return generate(xl, "a lighthouse", "", **KW).images


@pytest.mark.parametrize(
    "make", [lambda: Clockwork(period=1), lambda: TokenMerge(ratio=0.0), lambda: AdaptiveSteps(0.0)]
)
def test_switched_off_an_acceleration_changes_nothing(
    xl: Any, plain: np.ndarray, make: Any
) -> None:
    assert np.array_equal(generate(xl, "a lighthouse", "", accel=[make()], **KW).images, plain)


@pytest.mark.parametrize(
    "make",
    [
        lambda: Clockwork(period=2, level=1, num_steps=6),
        lambda: TokenMerge(ratio=0.5, seed=0),
        lambda: AdaptiveSteps(threshold=0.5),
    ],
)
def test_switched_on_an_acceleration_runs_and_gives_the_unet_back(
    xl: Any, plain: np.ndarray, make: Any
) -> None:
    out = generate(xl, "a lighthouse", "", accel=[make()], **KW)
    assert np.isfinite(out.images).all() and out.images.shape == plain.shape
    assert np.array_equal(generate(xl, "a lighthouse", "", **KW).images, plain)


def test_adaptive_steps_stop_early_on_sdxl(xl: Any) -> None:
    out = generate(xl, "a lighthouse", "", accel=[AdaptiveSteps(threshold=0.5)], **KW)
    assert out.stopped_early and out.steps_run < out.steps_planned


def test_clockwork_skips_the_low_resolution_core_on_cheap_steps(xl: Any) -> None:
    clock = Clockwork(period=2, level=1, num_steps=6)
    generate(xl, "a lighthouse", "", accel=[clock], **KW)
    assert clock.cheap_calls == 3


def test_step_previews_show_sdxl_latents(xl: Any) -> None:
    shown = []
    previewer = Previewer(xl, "linear")
    previewer.prepare()

    def on_step(info: Any) -> None:
        img = previewer(info.pred_x0, info.seconds)
        if img is not None:
            shown.append(img)

    generate(xl, "a lighthouse", "", callback=on_step, **KW)
    assert shown and shown[-1].ndim == 3 and shown[-1].shape[2] == 3
