"""view.fill_holes with a diffusion inpainting model: only the hole pixels change, and they are
generate.inpaint's pixels (feathered over a classical fill at the edge when asked)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from fathom.engine.context import RunOptions
from fathom.engine.errors import GraphInvalid, NodeError
from fathom.engine.executor import Executor
from fathom.engine.graph import Graph
from fathom.engine.imaging.fill import composite_fill, feather_weights, inpaint
from fathom.engine.registry import Registry
from fathom.engine.types import Image, Mask, Video

RGB = np.random.default_rng(5).random((64, 64, 3)).astype(np.float32)
HOLES = np.zeros((64, 64), np.float32)
HOLES[20:44, 12:40] = 1.0
VIEW = RGB.copy()
VIEW[HOLES > 0.5] = 0.0  # what view.render leaves where nothing was seen
COMMON = {"prompt": "a wall", "steps": 3, "guidance": 5.0, "seed": 4}


@pytest.fixture(scope="module")
def ex() -> Executor:
    reg = Registry()
    reg.load_builtin()
    return Executor(reg)


@pytest.fixture(scope="module")
def inpainter(tiny_sd_factory: Any) -> Path:
    return tiny_sd_factory(unet_in_channels=9)


def _fill(ex: Executor, image: np.ndarray, mask: np.ndarray, **params: Any) -> np.ndarray:
    out = ex.call(
        "view.fill_holes",
        {"image": Image(image), "mask": Mask(mask)},
        {"method": "diffusion", **COMMON, **params},
    )
    return out["image"].data


def test_diffusion_fill_is_generate_inpaint_inside_the_holes_only(
    ex: Executor, inpainter: Path
) -> None:
    got = _fill(ex, VIEW, HOLES, model=str(inpainter), feather=0)
    holes = HOLES > 0.5
    assert got.shape == VIEW.shape
    assert np.array_equal(got[~holes], VIEW[~holes])  # bit-exact outside
    assert np.abs(got[holes] - VIEW[holes]).mean() > 0.05
    ref = ex.call(
        "generate.inpaint",
        {"image": Image(VIEW), "mask": Mask(HOLES)},
        {"model": str(inpainter), **COMMON},
    )["image"].data
    assert np.allclose(got[holes], ref[holes], atol=1e-6)
    # The same fill with a feathered edge: deep inside still the model's pixels, at the edge a
    # blend with the classical fill, outside untouched.
    f = 3
    soft = _fill(ex, VIEW, HOLES, model=str(inpainter), feather=f)
    assert np.array_equal(soft[~holes], VIEW[~holes])
    deep = feather_weights(holes, f) >= 1.0
    assert deep.sum() > 100 and np.allclose(soft[deep], ref[deep], atol=1e-6)
    base = inpaint(VIEW, HOLES, 5, "telea")
    edge = (20, 25)  # on the hole's top row: weight 1 / (f + 1)
    w = 1.0 / (f + 1)
    assert np.allclose(soft[edge], base[edge] * (1 - w) + ref[edge] * w, atol=1e-6)


def test_a_lora_on_the_diffusion_fill_is_generate_inpaint_with_that_lora(
    ex: Executor, inpainter: Path, lora_factory: Any
) -> None:
    lora = f"{lora_factory(inpainter, seed=2)}:0.8"
    got = _fill(ex, VIEW, HOLES, model=str(inpainter), feather=0, loras=lora)
    plain = _fill(ex, VIEW, HOLES, model=str(inpainter), feather=0)
    ref = ex.call(
        "generate.inpaint",
        {"image": Image(VIEW), "mask": Mask(HOLES)},
        {"model": str(inpainter), **COMMON, "loras": lora},
    )["image"].data
    holes = HOLES > 0.5
    assert np.allclose(got[holes], ref[holes], atol=1e-6)
    assert np.abs(got[holes] - plain[holes]).max() > 1e-3  # the LoRA changed the fill


def test_a_video_is_filled_inside_the_node_once_per_frame(
    ex: Executor, inpainter: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The model runs during the node's own run (its lock, progress and cancel), once per
    frame with holes; reading the frames later runs nothing."""
    from fathom.engine import generation

    got = _fill(ex, VIEW, HOLES, model=str(inpainter), feather=0)
    calls = []
    real = generation.run_generation
    monkeypatch.setattr(
        generation, "run_generation", lambda *a, **k: calls.append(1) or real(*a, **k)
    )
    vid = Video.from_frames([Image(VIEW), Image(RGB)], 12.0)
    masks = Video.from_frames([Image(HOLES[..., None]), Image(np.zeros((64, 64, 1)))], 12.0)
    out = ex.call(
        "view.fill_holes",
        {"video": vid, "mask_video": masks},
        {"method": "diffusion", "model": str(inpainter), "feather": 0, **COMMON},
    )
    assert len(calls) == 1  # frame 1 has no holes: nothing runs for it
    video = out["video"]
    assert len(video) == 2 and video.fps == 12.0
    first = video.frame(0).data
    holes = HOLES > 0.5
    assert np.array_equal(first[~holes], VIEW[~holes])  # exact outside the holes
    assert np.abs(first[holes] - got[holes]).max() <= 0.5 / 255 + 1e-6  # 8 bits inside
    assert np.array_equal(video.frame(1).data, RGB)
    assert np.array_equal(video.frame(0).data, first) and len(calls) == 1  # re-read: no run
    # Frames of different sizes are refused before any model runs.
    small = Video.from_frames([Image(np.zeros((32, 64, 1), np.float32))] * 2, 12.0)
    with pytest.raises(NodeError) as err:
        ex.call("view.fill_holes", {"video": vid, "mask_video": small}, {"method": "telea"})
    assert err.value.port == "mask_video" and "64×32" in str(err.value)
    empty = Video.from_frames([], 12.0)
    with pytest.raises(NodeError) as err:
        ex.call(
            "view.fill_holes",
            {"video": empty, "mask_video": empty},
            {"method": "diffusion", "model": str(inpainter), **COMMON},
        )
    assert err.value.port == "video" and "no frames" in str(err.value)


def test_grey_views_fill_too() -> None:
    grey = VIEW[..., :1].copy()
    out = inpaint(grey, HOLES, 5, "telea")
    holes = HOLES > 0.5
    assert out.shape == grey.shape and np.array_equal(out[~holes], grey[~holes])
    assert out[holes].mean() > 0.05  # the hole (0 in the view) took its surroundings
    fill = np.full((64, 64, 3), [0.2, 0.4, 0.6], np.float32)
    blended = composite_fill(grey, fill, holes, holes.astype(np.float32))
    assert blended.shape == grey.shape and np.allclose(blended[holes], 0.4)


def test_sizes_that_are_no_multiple_of_8_go_through_the_model_resized(
    ex: Executor, inpainter: Path
) -> None:
    image, mask = VIEW[:60, :44], HOLES[:60, :44]
    got = _fill(ex, image, mask, model=str(inpainter))
    assert got.shape == image.shape
    assert np.array_equal(got[mask < 0.5], image[mask < 0.5])
    assert np.abs(got[mask > 0.5] - image[mask > 0.5]).mean() > 0.05


def test_feather_weights_and_composite_known_answers() -> None:
    holes = np.zeros((1, 9), bool)
    holes[0, 1:8] = True
    w = feather_weights(holes, 2)
    # Distance to the nearest pixel outside: 1, 2, 3, 4, 3, 2, 1 → divided by 3, capped at 1.
    assert np.allclose(w[0], [0, 1 / 3, 2 / 3, 1, 1, 1, 2 / 3, 1 / 3, 0])
    assert np.array_equal(feather_weights(holes, 0), holes.astype(np.float32))
    image = np.full((1, 9, 4), 0.25, np.float32)
    fill = np.ones((1, 9, 3), np.float32)
    base = np.zeros((1, 9, 3), np.float32)
    out = composite_fill(image, fill, holes, w, base)
    assert np.allclose(out[0, :, 0], w[0] + 0.25 * ~holes[0])
    assert np.array_equal(out[..., 3], image[..., 3])  # alpha kept


def test_diffusion_without_or_with_a_wrong_model_is_explained(
    ex: Executor, tiny_sd: Path, tmp_path: Path
) -> None:
    with pytest.raises(NodeError) as err:
        _fill(ex, VIEW, HOLES)
    assert err.value.port == "model" and "needs an inpainting model" in str(err.value)
    assert "method telea" in (err.value.fix or "")
    g = Graph()
    g.add_node("view.fill_holes", "fill", {"method": "diffusion"})
    with pytest.raises(GraphInvalid) as gerr:
        ex.plan(g, options=RunOptions(device="cpu", base_dir=tmp_path))
    assert [(p.node, p.port) for p in gerr.value.problems] == [("fill", "model")]
    # A text-to-image model's UNet takes no mask.
    with pytest.raises(NodeError) as err:
        _fill(ex, VIEW, HOLES, model=str(tiny_sd))
    assert err.value.port == "model" and "inpainting checkpoint" in str(err.value)
    # The classical methods need no model and ignore the diffusion settings.
    out = ex.call(
        "view.fill_holes",
        {"image": Image(VIEW), "mask": Mask(HOLES)},
        {"method": "telea", "model": ""},
    )["image"].data
    assert np.array_equal(out, inpaint(VIEW, HOLES, 5, "telea"))
