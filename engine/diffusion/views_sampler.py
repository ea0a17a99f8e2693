"""Zero123++-style sampling: one image to a fixed ring of six views in one denoising pass.

Facts from the Zero123++ report (arXiv 2310.15110) and its model cards / public pipeline
(read, not run or copied):

- the six views are tiled 3 rows × 2 columns into one image (320² each: 640 wide × 960 tall)
  and denoised together, so the views attend to each other inside every self-attention;
- local condition: the input's VAE latents, noised to the current timestep and scaled like the
  model input, go through the same UNet first; each self-attention layer of the denoising pass
  then also attends to that pass's tokens ("reference attention",
  :mod:`fathom.engine.diffusion.reference_attention`); with guidance, the unconditional half
  refers to the latents of an all-zero (grey) image instead;
- global condition: the CLIP image embedding, weighted per text token by the model's
  ``ramping_coefficients``, added to the empty prompt's text features (the unconditional half
  keeps the plain empty-prompt features);
- the sampled latents live in a shifted and scaled space (``(z - 0.22) · 0.75``) and the decoded
  image is scaled by 0.8 around grey; the condition latents are the VAE's raw sample;
- cameras: azimuths 30°…330° in 60° steps from the input's view, elevations 20°/−10°
  alternating (v1.2; v1.1: 30°/−20°); v1.2 renders with a 30° field of view at distance
  0.5 / tan(15°) (objects normalised into a sphere of radius 0.5).

With the reference off, the loop is exactly the plain guided sampler of diffusers'
Stable Diffusion pipeline (same noise, same scheduler calls), which the tests check.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

ROWS, COLS = 3, 2
VIEWS = ROWS * COLS
TILE = 320
LATENT_SHIFT, LATENT_SCALE = 0.22, 0.75
IMAGE_SCALE = 0.8
#: Grey the official pipeline composites transparent pixels onto (127/255).
BACKGROUND = 127.0 / 255.0
#: Share of the square side the object fills after matting (as the Zero123++ demos do).
FOREGROUND_RATIO = 0.85


@dataclass(frozen=True)
class Ring:
    """The fixed cameras of a Zero123++ version (degrees; azimuth relative to the input)."""

    azimuths: tuple[float, ...]
    elevations: tuple[float, ...]
    fov: float
    distance: float


AZIMUTHS = (30.0, 90.0, 150.0, 210.0, 270.0, 330.0)
RINGS = {
    "v1.2": Ring(AZIMUTHS, (20.0, -10.0) * 3, 30.0, 0.5 / math.tan(math.radians(15.0))),
    # v1.1 publishes only its elevations; it shares v1.2's field of view and distance here.
    "v1.1": Ring(AZIMUTHS, (30.0, -20.0) * 3, 30.0, 0.5 / math.tan(math.radians(15.0))),
}


# ---- tiling ------------------------------------------------------------------------------------


def tile_views(views: list[np.ndarray]) -> np.ndarray:
    """Six H×W×C views to one (3H)×(2W)×C sheet, row by row (view k at row k // 2, column
    k % 2): the layout the model denoises."""
    if len(views) != VIEWS:
        raise ValueError(f"a Zero123++ sheet holds {VIEWS} views, not {len(views)}")
    shape = views[0].shape
    if any(v.shape != shape for v in views):
        raise ValueError("all views of a sheet must have the same size")
    rows = [np.concatenate(views[r * COLS : (r + 1) * COLS], axis=1) for r in range(ROWS)]
    return np.concatenate(rows, axis=0)


def untile_views(sheet: np.ndarray) -> list[np.ndarray]:
    """The six views of a sheet made by :func:`tile_views` (its inverse)."""
    h, w = sheet.shape[0], sheet.shape[1]
    if h % ROWS or w % COLS:
        raise ValueError(f"a {w}×{h} sheet does not split into {COLS}×{ROWS} equal views")
    th, tw = h // ROWS, w // COLS
    return [
        np.ascontiguousarray(sheet[r * th : (r + 1) * th, c * tw : (c + 1) * tw])
        for r in range(ROWS)
        for c in range(COLS)
    ]


# ---- the condition image -----------------------------------------------------------------------


def condition_image(image: np.ndarray) -> tuple[np.ndarray, str]:
    """The square RGB (float, [0, 1]) the model is conditioned on, and what was done to it.

    With an alpha channel (a cut-out), the object is matted with its alpha (threshold 0.5 for
    its extent), centred, scaled to fill 85 % of a square, and composited onto the grey the
    model was trained with. Without one the picture is taken as it is (no background removal:
    cut the object out first for best results), padded to a square with grey."""
    rgb = np.asarray(image[..., :3], np.float32)
    if image.ndim == 3 and image.shape[2] == 4:
        alpha = np.asarray(image[..., 3], np.float32)
        inside = alpha > 0.5
        if not inside.any():
            raise ValueError("the image's alpha is empty: nothing to turn around")
        ys, xs = np.nonzero(inside)
        y0, y1, x0, x1 = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
        crop = rgb[y0:y1, x0:x1] * alpha[y0:y1, x0:x1, None]
        crop = crop + BACKGROUND * (1.0 - alpha[y0:y1, x0:x1, None])
        side = int(math.ceil(max(y1 - y0, x1 - x0) / FOREGROUND_RATIO))
        return _pad_square(crop, side), "alpha matte: centred on grey, 85 % of the square"
    if rgb.shape[0] == rgb.shape[1]:
        return rgb, "no alpha: used as it is"
    return _pad_square(rgb, max(rgb.shape[:2])), "no alpha: padded to a square with grey"


def _pad_square(rgb: np.ndarray, side: int) -> np.ndarray:
    out = np.full((side, side, 3), BACKGROUND, np.float32)
    h, w = rgb.shape[:2]
    top, left = (side - h) // 2, (side - w) // 2
    out[top : top + h, left : left + w] = rgb
    return out


# ---- conditioning ------------------------------------------------------------------------------


@dataclass
class ViewsCondition:
    """What one run is conditioned on. ``embeds`` is (uncond, cond) stacked when guided;
    ``reference`` the matching condition latents (grey image, input), or None when off."""

    embeds: Any
    reference: Any
    guided: bool


def empty_prompt(model: Any) -> Any:
    """The text features of the empty prompt (77 tokens), as the pipeline encodes them."""
    import torch

    tok = model.tokenizer
    ids = tok(
        "",
        padding="max_length",
        max_length=tok.model_max_length,
        truncation=True,
        return_tensors="pt",
    ).input_ids
    with torch.inference_mode():
        out = model.text_encoder(ids.to(model.device))[0]
    return out.to(model.dtype)


def global_condition(model: Any, pil: Any) -> Any:
    """Empty-prompt features plus the CLIP image embedding weighted by each token's ramping
    coefficient: the denoiser's cross-attention condition."""
    import torch

    pixels = model.feature_extractor_clip(images=pil, return_tensors="pt").pixel_values
    with torch.inference_mode():
        image_embeds = model.vision_encoder(pixels.to(model.device, model.dtype)).image_embeds
    ramp = torch.tensor(model.ramping, device=model.device, dtype=model.dtype)[:, None]
    return empty_prompt(model) + image_embeds[:, None, :].to(model.dtype) * ramp


def reference_latents(model: Any, pil: Any, guided: bool, generator: Any) -> Any:
    """The input's VAE latents (a raw sample of the encoder's distribution), with the grey
    image's in front when guided."""
    import torch

    pixels = model.feature_extractor_vae(images=pil, return_tensors="pt").pixel_values
    pixels = pixels.to(model.device, model.dtype)
    batch = torch.cat([torch.zeros_like(pixels), pixels]) if guided else pixels
    with torch.inference_mode():
        dist = model.vae.encode(batch).latent_dist
    noise = _randn(dist.mean.shape, generator, model.device, dist.mean.dtype)
    return dist.mean + dist.std * noise


def condition(
    model: Any, rgb: np.ndarray, guidance: float, reference: bool, generator: Any
) -> ViewsCondition:
    """Encode the square condition image (H×W×3 in [0, 1]) for :func:`sample_views`."""
    import torch
    from PIL import Image as PILImage

    pil = PILImage.fromarray((np.clip(rgb, 0.0, 1.0) * 255.0).round().astype(np.uint8))
    guided = guidance > 1.0
    cond = global_condition(model, pil)
    embeds = torch.cat([empty_prompt(model), cond]) if guided else cond
    ref = reference_latents(model, pil, guided, generator) if reference else None
    return ViewsCondition(embeds, ref, guided)


# ---- sampling ----------------------------------------------------------------------------------


def _randn(shape: Any, generator: Any, device: Any, dtype: Any) -> Any:
    from diffusers.utils.torch_utils import randn_tensor

    return randn_tensor(tuple(shape), generator=generator, device=device, dtype=dtype)


def latent_shape(
    model: Any, tile: int, grid: tuple[int, int] = (ROWS, COLS)
) -> tuple[int, int, int, int]:
    """(1, C, h, w) of a sheet of ``tile``-pixel views, ``grid`` = (rows, columns)."""
    factor = 2 ** (len(model.vae.config.block_out_channels) - 1)
    if tile % factor:
        raise ValueError(f"the view size {tile} is not a multiple of {factor} (the VAE's scale)")
    c = int(model.unet.config.in_channels)
    return (1, c, grid[0] * tile // factor, grid[1] * tile // factor)


def _step_kwargs(scheduler: Any, generator: Any) -> dict[str, Any]:
    accepted = set(inspect.signature(scheduler.step).parameters)
    out: dict[str, Any] = {}
    if "generator" in accepted:
        out["generator"] = generator
    if "eta" in accepted:
        out["eta"] = 0.0
    return out


def sample_views(
    model: Any,
    cond: ViewsCondition,
    tile: int,
    steps: int,
    guidance: float,
    generator: Any,
    reference_generator: Any = None,
    on_step: Callable[[int, int], None] | None = None,
    grid: tuple[int, int] = (ROWS, COLS),
) -> Any:
    """Denoise one sheet of six views; returns its latents (in the model's shifted space).

    ``generator`` draws the initial and the scheduler's noise (as diffusers' pipeline does, so
    with the reference off the result equals it); ``reference_generator`` the noise the
    reference latents get at each step. ``on_step(i, steps)`` may raise to cancel. ``grid``
    other than 3×2 is for comparisons (one view: (1, 1)); the model was trained on 3×2."""
    import torch

    unet, bank = model.unet, model.bank
    scheduler = type(model.scheduler).from_config(model.scheduler.config)
    scheduler.set_timesteps(steps, device=model.device)
    embeds = cond.embeds
    latents = _randn(latent_shape(model, tile, grid), generator, model.device, embeds.dtype)
    latents = latents * scheduler.init_noise_sigma
    extra = _step_kwargs(scheduler, generator)
    ref = cond.reference
    total = len(scheduler.timesteps)
    with torch.inference_mode():
        for i, t in enumerate(scheduler.timesteps):
            x = torch.cat([latents] * 2) if cond.guided else latents
            x = scheduler.scale_model_input(x, t)
            if ref is not None:
                noise = _randn(ref.shape, reference_generator, model.device, ref.dtype)
                noisy = scheduler.add_noise(ref, noise, t.reshape(-1))
                noisy = scheduler.scale_model_input(noisy, t)
                with bank.writing():
                    unet(noisy, t, encoder_hidden_states=embeds, return_dict=False)
                with bank.reading():
                    pred = unet(x, t, encoder_hidden_states=embeds, return_dict=False)[0]
            else:
                pred = unet(x, t, encoder_hidden_states=embeds, return_dict=False)[0]
            if cond.guided:
                uncond, text = pred.chunk(2)
                pred = uncond + guidance * (text - uncond)
            latents = scheduler.step(pred, t, latents, **extra, return_dict=False)[0]
            if on_step is not None:
                on_step(i + 1, total)
    return latents


def decode_sheet(model: Any, latents: Any) -> np.ndarray:
    """The sheet as an H×W×3 float image in [0, 1]: undo the latent shift and the image
    scale the model was trained with."""
    import torch

    z = latents / LATENT_SCALE + LATENT_SHIFT
    with torch.inference_mode():
        image = model.vae.decode(z / model.vae.config.scaling_factor, return_dict=False)[0]
    image = image / 0.5 * IMAGE_SCALE
    image = (image / 2 + 0.5).clamp(0, 1)
    return image[0].permute(1, 2, 0).float().cpu().numpy()
