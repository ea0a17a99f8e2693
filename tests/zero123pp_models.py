"""A tiny random-weight Zero123++ folder, laid out like the ``sudo-ai/zero123plus`` downloads.

Each component is saved with its own library's ``save_pretrained`` (safetensors) into the
subfolder the real model uses, and ``model_index.json`` names the custom pipeline class and
carries the ramping coefficients, so the test loads it through the same code a user's folder
takes. Views are 32² (a 64×96 sheet; latents 8×12).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

TILE = 32


def build_tiny_zero123pp(folder: Path, seed: int = 0, class_name: object = None) -> Path:
    """Write the folder and return it (``class_name`` overrides the index's pipeline name)."""
    import torch
    from tinymodels import clip_text_config, clip_tokenizer, tiny_clip_vision, tiny_unet, tiny_vae
    from transformers import (
        CLIPTextModel,
    )

    tok = clip_tokenizer(folder / "vocab")
    torch.manual_seed(seed)
    out = folder / "zero123pp"
    tiny_unet().save_pretrained(out / "unet")
    tiny_vae(sample_size=32).save_pretrained(out / "vae")
    CLIPTextModel(clip_text_config(tok)).save_pretrained(out / "text_encoder")
    tok.save_pretrained(out / "tokenizer")
    tiny_clip_vision(TILE, 8).save_pretrained(out / "vision_encoder")
    save_zero123pp_rest(out, TILE, class_name or "Zero123PlusPipeline")
    return out


def save_zero123pp_rest(out: Path, tile: int, class_name: str = "Zero123PlusPipeline") -> None:
    """Zero123++'s parts besides the networks, into ``out``: the two image processors for
    ``tile``² views, the v-prediction Euler-ancestral scheduler, and ``model_index.json``
    (pipeline ``class_name``, the ramping coefficients)."""
    from diffusers import EulerAncestralDiscreteScheduler
    from transformers import CLIPImageProcessor

    square = {"shortest_edge": tile}, {"height": tile, "width": tile}
    CLIPImageProcessor(size=square[0], crop_size=square[1]).save_pretrained(
        out / "feature_extractor_clip"
    )
    # The VAE's input: [0, 1] → (x − 0.5) / 0.8, Zero123++'s image scaling.
    CLIPImageProcessor(
        size=square[0], crop_size=square[1], image_mean=[0.5] * 3, image_std=[0.8] * 3
    ).save_pretrained(out / "feature_extractor_vae")
    EulerAncestralDiscreteScheduler(
        beta_start=0.00085,
        beta_end=0.012,
        beta_schedule="linear",
        prediction_type="v_prediction",
        steps_offset=1,
    ).save_pretrained(out / "scheduler")
    ramp = [round(0.2 + 0.8 * k / 76, 6) for k in range(77)]
    index = {
        "_class_name": class_name,
        "_diffusers_version": "0.20.2",
        "feature_extractor_clip": ["transformers", "CLIPImageProcessor"],
        "feature_extractor_vae": ["transformers", "CLIPImageProcessor"],
        "ramping_coefficients": ramp,
        "safety_checker": [None, None],
        "scheduler": ["diffusers", "EulerAncestralDiscreteScheduler"],
        "text_encoder": ["transformers", "CLIPTextModel"],
        "tokenizer": ["transformers", "CLIPTokenizer"],
        "unet": ["diffusers", "UNet2DConditionModel"],
        "vae": ["diffusers", "AutoencoderKL"],
        "vision_encoder": ["transformers", "CLIPVisionModelWithProjection"],
    }
    (out / "model_index.json").write_text(json.dumps(index, indent=2))


def plain_sd_pipeline(model: Any) -> Any:
    """diffusers' ``StableDiffusionPipeline`` on a loaded Zero123++ ``model``'s parts, with the
    UNet read afresh from its folder (plain attention processors, no reference attention): the
    peer the views sampler's reference-off path must equal."""
    from diffusers import StableDiffusionPipeline, UNet2DConditionModel

    unet = UNet2DConditionModel.from_pretrained(Path(model.source) / "unet", use_safetensors=True)
    pipe = StableDiffusionPipeline(
        vae=model.vae,
        text_encoder=model.text_encoder,
        tokenizer=model.tokenizer,
        unet=unet.eval(),
        scheduler=type(model.scheduler).from_config(model.scheduler.config),
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
    pipe.set_progress_bar_config(disable=True)
    return pipe
