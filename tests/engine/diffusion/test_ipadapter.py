"""IP-Adapter in Fathom's loop equals diffusers' pipelines with load_ip_adapter (SD and
SDXL), is gone from the shared UNet after the run, and is refused for another family."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from fathom.engine.diffusion.ipadapter import AdapterInput, active, read_state
from fathom.engine.diffusion.loop import generate
from fathom.engine.diffusion.schedulers import make_scheduler
from fathom.engine.errors import LibraryError
from fathom.engine.models.diffusion import load_components

REF = np.random.default_rng(3).random((48, 40, 3)).astype(np.float32)
KW: dict[str, Any] = dict(steps=3, guidance=5.0, seed=6, width=64, height=64)


def _encoder(adapter: Path) -> Any:
    from transformers import CLIPVisionModelWithProjection

    return CLIPVisionModelWithProjection.from_pretrained(adapter.parent / "image_encoder").eval()


def _ours(comps: Any, adapter: Path, scale: float) -> np.ndarray:
    inputs = [AdapterInput(read_state(adapter), REF, scale)]
    with active(comps, _encoder(adapter), inputs, 1, True) as embeds:
        return generate(comps, "a cup", "", image_embeds=embeds, **KW).images


def _theirs(cls_name: str, folder: Path, adapter: Path, scale: float) -> np.ndarray:
    import diffusers
    from PIL import Image as PILImage

    pipe = getattr(diffusers, cls_name).from_pretrained(folder, image_encoder=_encoder(adapter))
    pipe.scheduler = make_scheduler(pipe.scheduler, "default")
    pipe.set_progress_bar_config(disable=True)
    pipe.load_ip_adapter(
        str(adapter.parent), subfolder="", weight_name=adapter.name, image_encoder_folder=None
    )
    pipe.set_ip_adapter_scale(scale)
    ref_image = PILImage.fromarray((REF * 255).round().astype(np.uint8))
    return pipe(
        "a cup",
        ip_adapter_image=ref_image,
        num_inference_steps=3,
        guidance_scale=5.0,
        width=64,
        height=64,
        output_type="np",
        generator=torch.Generator().manual_seed(6),
    ).images


@pytest.mark.parametrize(
    ("model", "cls_name"),
    [("tiny_sd", "StableDiffusionPipeline"), ("tiny_sdxl", "StableDiffusionXLPipeline")],
)
def test_an_ip_adapter_equals_the_diffusers_pipeline_and_leaves_no_trace(
    request: pytest.FixtureRequest, ip_adapter_factory: Any, model: str, cls_name: str
) -> None:
    folder = request.getfixturevalue(model)
    comps = load_components(folder, "cpu", "float32")
    adapter = ip_adapter_factory(folder, seed=1)
    plain_before = generate(comps, "a cup", "", **KW).images
    ours = _ours(comps, adapter, 0.7)
    theirs = _theirs(cls_name, folder, adapter, 0.7)
    assert np.abs(ours - theirs).max() <= 2 / 255
    assert np.abs(ours - plain_before).max() > 1e-3  # the image steered it
    assert comps.unet.encoder_hid_proj is None  # unloaded from the shared UNet
    assert np.array_equal(generate(comps, "a cup", "", **KW).images, plain_before)


def test_an_ip_adapter_for_another_family_is_refused(
    tiny_sd: Path, tiny_sdxl: Path, ip_adapter_factory: Any
) -> None:
    comps = load_components(tiny_sd, "cpu", "float32")
    adapter = ip_adapter_factory(tiny_sdxl, seed=2)
    with (
        pytest.raises(LibraryError) as info,
        active(comps, _encoder(adapter), [AdapterInput(read_state(adapter), REF, 1.0)], 1, True),
    ):
        pass
    assert info.value.port == "ip_adapter" and "another model family" in str(info.value)
