"""Zero123++-style sampling on a tiny random model saved like a user's folder: with the
reference off it is exactly diffusers' plain guided Stable Diffusion sampler; reference
attention with the sample as its own reference is the identity; with the reference on the
views depend on the input; sheets tile and untile; the folder loads and other families are
refused."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from zero123pp_models import TILE, build_tiny_zero123pp, plain_sd_pipeline

from fathom.engine.diffusion import views_sampler as vs
from fathom.engine.diffusion.reference_attention import ReferenceAttnProcessor
from fathom.engine.models.families import identify
from fathom.engine.models.locate import ModelError
from fathom.engine.models.zero123pp import load_zero123pp, read_index


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_zero123pp(tmp_path_factory.mktemp("z123pp"))


@pytest.fixture(scope="module")
def model(folder: Path) -> Any:
    return load_zero123pp(folder, "cpu", "float32")


def _rgb(seed: int) -> np.ndarray:
    return np.random.default_rng(seed).random((TILE, TILE, 3)).astype(np.float32)


def test_loads_the_folder_and_tells_its_family(folder: Path, model: Any) -> None:
    assert identify(folder).family == "zero123pp"
    assert len(model.ramping) == 77 and model.offload == "none"
    assert model.scheduler.config.timestep_spacing == "trailing"
    assert model.scheduler.config.prediction_type == "v_prediction"
    wrapped = [
        n for n, p in model.unet.attn_processors.items() if isinstance(p, ReferenceAttnProcessor)
    ]
    assert wrapped and all(n.endswith("attn1.processor") for n in wrapped)


def test_a_list_class_name_is_the_same_family(tmp_path: Path) -> None:
    (tmp_path / "model_index.json").write_text(
        json.dumps({"_class_name": ["pipeline", "Zero123PlusPipeline"]})
    )
    assert identify(tmp_path).family == "zero123pp"


def test_other_families_and_remote_code_are_refused(
    tiny_sd: Path, folder: Path, tmp_path: Path
) -> None:
    with pytest.raises(ModelError, match="not Zero123"):
        read_index(tiny_sd)
    index = json.loads((folder / "model_index.json").read_text())
    index["unet"] = ["pipeline", "RefOnlyNoisedUNet"]
    (tmp_path / "model_index.json").write_text(json.dumps(index))
    with pytest.raises(ModelError, match="no remote code"):
        read_index(tmp_path)


def test_tiling_round_trips_in_row_order() -> None:
    views = [np.full((4, 5, 3), k, np.float32) for k in range(6)]
    sheet = vs.tile_views(views)
    assert sheet.shape == (12, 10, 3)
    for k in range(6):
        r, c = divmod(k, 2)
        assert (sheet[r * 4 : r * 4 + 4, c * 5 : c * 5 + 5] == k).all()
    back = vs.untile_views(sheet)
    assert all(np.array_equal(a, b) for a, b in zip(back, views, strict=True))
    with pytest.raises(ValueError):
        vs.untile_views(np.zeros((13, 10, 3)))


def test_reference_off_is_the_plain_guided_sampler(folder: Path, model: Any) -> None:
    """Our loop with the reference off against diffusers' StableDiffusionPipeline on a plain
    UNet (no wrapped processors) loaded from the same folder, same conditioning and seed."""
    cond = vs.condition(model, _rgb(0), 3.0, False, None)
    assert cond.reference is None and cond.embeds.shape == (2, 77, 32)
    ours = vs.sample_views(model, cond, TILE, 4, 3.0, torch.Generator().manual_seed(5))
    pipe = plain_sd_pipeline(model)
    theirs = pipe(
        prompt_embeds=cond.embeds[1:],
        negative_prompt_embeds=cond.embeds[:1],
        guidance_scale=3.0,
        height=3 * TILE,
        width=2 * TILE,
        num_inference_steps=4,
        generator=torch.Generator().manual_seed(5),
        output_type="latent",
    ).images
    assert ours.shape == (1, 4, 12, 8)
    assert torch.equal(ours, theirs), (ours - theirs).abs().max()


def test_the_sample_as_its_own_reference_changes_nothing(model: Any) -> None:
    """Attending to [x, x] equals attending to [x] (duplicated keys split the softmax evenly),
    so a reference pass on the very sample leaves every layer, and the output, unchanged."""
    g = torch.Generator().manual_seed(1)
    x = torch.randn((1, 4, 12, 8), generator=g)
    emb = torch.randn((1, 77, 32), generator=g)
    t = torch.tensor(500)
    with torch.inference_mode():
        plain = model.unet(x, t, encoder_hidden_states=emb).sample
        with model.bank.writing():
            model.unet(x, t, encoder_hidden_states=emb)
        with model.bank.reading():
            same = model.unet(x, t, encoder_hidden_states=emb).sample
        with model.bank.writing():
            model.unet(torch.randn((1, 4, 12, 8), generator=g), t, encoder_hidden_states=emb)
        with model.bank.reading():
            other = model.unet(x, t, encoder_hidden_states=emb).sample
    assert torch.allclose(plain, same, atol=1e-5), (plain - same).abs().max()
    assert (plain - other).abs().max() > 1e-3
    assert model.bank.mode == "off" and not model.bank.tokens


def test_with_the_reference_on_the_views_depend_on_the_input(model: Any) -> None:
    """Same global condition, different reference images: different views; reference off:
    different again."""

    def run(rgb: np.ndarray, reference: bool) -> torch.Tensor:
        cond = vs.condition(model, _rgb(0), 3.0, reference, torch.Generator().manual_seed(2))
        if reference:
            other = vs.condition(model, rgb, 3.0, True, torch.Generator().manual_seed(2))
            cond.reference = other.reference
        return vs.sample_views(
            model,
            cond,
            TILE,
            3,
            3.0,
            torch.Generator().manual_seed(7),
            torch.Generator().manual_seed(8),
        )

    a, b, off = run(_rgb(0), True), run(_rgb(1), True), run(_rgb(0), False)
    assert (a - b).abs().max() > 1e-3
    assert (a - off).abs().max() > 1e-3
    assert torch.equal(a, run(_rgb(0), True))  # seeded: repeatable


def test_condition_image_mattes_alpha_and_squares() -> None:
    rgba = np.zeros((40, 60, 4), np.float32)
    rgba[10:30, 20:30] = (1.0, 0.0, 0.0, 1.0)  # a 10 wide, 20 tall red cut-out
    out, note = vs.condition_image(rgba)
    assert "alpha" in note and out.shape[0] == out.shape[1] == int(np.ceil(20 / 0.85))
    red = (out[..., 0] == 1.0) & (out[..., 1] == 0.0)
    ys, xs = np.nonzero(red)
    assert ys.max() - ys.min() + 1 == 20 and xs.max() - xs.min() + 1 == 10
    assert (
        abs(ys.mean() - (out.shape[0] - 1) / 2) <= 1
        and abs(xs.mean() - (out.shape[1] - 1) / 2) <= 1
    )
    assert np.allclose(out[0, 0], vs.BACKGROUND)
    plain, note = vs.condition_image(np.ones((8, 6, 3), np.float32))
    assert plain.shape == (8, 8, 3) and "no alpha" in note
    with pytest.raises(ValueError, match="alpha is empty"):
        vs.condition_image(np.zeros((8, 8, 4), np.float32))


def test_decoded_sheet_has_the_sheet_size(model: Any) -> None:
    latents = torch.zeros((1, 4, 12, 8))
    sheet = vs.decode_sheet(model, latents)
    assert sheet.shape == (3 * TILE, 2 * TILE, 3) and sheet.dtype == np.float32
    assert 0.0 <= sheet.min() and sheet.max() <= 1.0
