"""Zero123-style novel views from one or more input views, with the VaLID-style aggregation.

Why this shape (Zero-1-to-3, Liu et al. 2023): the denoiser is an SD UNet with 8 input
channels, the noisy latents concatenated with the input view's VAE latents (the distribution's
mode, not scaled by the VAE's scaling factor, as the paper's code does); its cross-attention
attends to one token, a linear projection (``cc_projection``) of the input's CLIP image
embedding concatenated with the relative pose ``[Δpolar (rad), sin Δazimuth, cos Δazimuth,
Δdistance]`` (Zero123's polar angle is 90° − elevation). Classifier-free guidance uses a
zero token and zero image latents as the unconditional branch.

Several input views (the VaLID idea): each view is tokenised on its own (its CLIP embedding +
the target's pose relative to it, through ``cc_projection``), and the tokens of all views are
pooled into a fixed number K of conditioning tokens by attention whose queries come from the
target pose and whose keys are each view's pose features, so the UNet's cost per target view
does not grow with the number of views. Training-free pooling: token k weighs view i by
``softmax(-|p_i − p_id|² / τ_k)`` (p_id: the identity pose, the target seen from itself; τ_k
from sharp, the nearest view, to broad, the mean), a convex combination of trained conditions.
With one view every token IS that view's Zero123 token. A trained aggregator's weights
(``engine.models.zero123.AGGREGATOR_KEYS``) replace the pooling when a folder provides them.

Where inputs carry metric depth, their geometry is rendered into the target camera first and
the model fills only what no input saw: RePaint-style, the known region's latents are re-noised
to each step's level and blended in, and the known pixels are kept exactly in the output.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from fathom.engine.geometry import projection
from fathom.engine.types import RGBD, Camera, Depth, Image

if TYPE_CHECKING:
    import torch

#: CLIP's input normalisation (OpenAI's mean and std).
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
#: The pose features of the target seen from itself.
IDENTITY_POSE = (0.0, 0.0, 1.0, 0.0)
#: Pooling sharpness of the training-free aggregation, from nearest view to mean.
TAU_MIN, TAU_MAX = 0.05, 4.0


@dataclass
class InputView:
    """One input: an image, the camera that saw it, and its metric depth when known."""

    image: Image
    camera: Camera
    depth: Depth | None = None


def orbit_of(pose: np.ndarray) -> tuple[float, float, float]:
    """(elevation°, azimuth°, distance) of a camera's position about the origin, in
    ``projection.orbit_pose``'s convention (its inverse for cameras that look at the origin)."""
    eye = np.asarray(pose, np.float64)[:3, 3]
    r = float(np.linalg.norm(eye))
    if r < 1e-9:
        return 0.0, 0.0, 0.0
    elevation = math.degrees(math.asin(max(-1.0, min(1.0, -eye[1] / r))))
    azimuth = math.degrees(math.atan2(eye[0], -eye[2]))
    return elevation, azimuth, r


def relative_orbit(view: np.ndarray, target: np.ndarray) -> tuple[float, float, float]:
    """The target camera relative to a view: (Δelevation°, Δazimuth°, Δdistance)."""
    ve, va, vd = orbit_of(view)
    te, ta, td = orbit_of(target)
    return te - ve, ta - va, td - vd


def pose_features(d_elevation: float, d_azimuth: float, d_distance: float) -> list[float]:
    """Zero123's 4 pose numbers for a relative camera: [Δpolar (rad), sin Δaz, cos Δaz, Δr],
    with Δpolar = −Δelevation (the polar angle is measured from the up axis). Zero123 measures
    azimuth as atan2(y, x) in a right-handed z-up world; the studio's world is right-handed
    with up −y, so (x, z, −y) is such a world and its azimuth is ours minus 90°: the two
    Δazimuths agree in sign."""
    az = math.radians(d_azimuth)
    return [math.radians(-d_elevation), math.sin(az), math.cos(az), float(d_distance)]


def target_pose(
    reference: np.ndarray, d_elevation: float, d_azimuth: float, d_distance: float
) -> np.ndarray:
    """Camera-to-world pose of the target: the reference camera moved on its orbit about the
    origin by the given amounts, looking at the origin. ValueError when the distance would put
    it at or behind the centre."""
    e, a, r = orbit_of(reference)
    dist = r + d_distance
    if dist <= 1e-6:
        raise ValueError(f"the target would sit {dist:.3g} from the object's centre")
    return projection.orbit_pose(a + d_azimuth, e + d_elevation, dist)


def on_white(image: Image) -> np.ndarray:
    """H×W×3: an image with alpha composited over white (Zero123 was trained on objects
    rendered over white); an opaque image as it is."""
    rgb = image.rgb()
    alpha = image.alpha()
    if alpha is None:
        return rgb
    a = np.clip(alpha, 0.0, 1.0)[..., None]
    return (rgb * a + (1.0 - a)).astype(np.float32)


def image_tensor(rgb: np.ndarray, size: tuple[int, int] | None, device: str, dtype: Any) -> Any:
    """H×W×3 [0,1] → 1×3×H×W in [-1,1] (resized to ``size`` = (width, height) when given)."""
    import torch

    from fathom.engine.imaging.ops import resize

    arr = np.clip(rgb[..., :3], 0.0, 1.0).astype(np.float32)
    if size is not None and (arr.shape[1], arr.shape[0]) != size:
        arr = resize(arr, size[0], size[1], "bicubic").clip(0.0, 1.0)
    t = torch.from_numpy(np.ascontiguousarray(arr)).permute(2, 0, 1)[None]
    return (t * 2.0 - 1.0).to(device=device, dtype=dtype)


def clip_embeddings(encoder: Any, images: torch.Tensor) -> torch.Tensor:
    """B×D projected CLIP image embeddings of B×3×H×W images in [-1,1], preprocessed as
    Zero123's code does (bicubic resize to the encoder's size, corners aligned, no antialias,
    then CLIP's normalisation)."""
    import torch
    import torch.nn.functional as F

    size = int(encoder.config.image_size)
    x = F.interpolate(
        images.float(), (size, size), mode="bicubic", align_corners=True, antialias=False
    )
    x = (x + 1.0) / 2.0
    mean = torch.tensor(CLIP_MEAN, device=x.device).view(1, 3, 1, 1)
    std = torch.tensor(CLIP_STD, device=x.device).view(1, 3, 1, 1)
    x = ((x - mean) / std).to(images.dtype)
    return encoder(pixel_values=x).image_embeds


def view_tokens(projection_layer: Any, embeds: torch.Tensor, feats: torch.Tensor) -> torch.Tensor:
    """N×D pose-aware tokens: each view's CLIP embedding with the target's pose relative to
    it, through ``cc_projection`` (Zero123's single-view condition, one per view)."""
    import torch

    return projection_layer(torch.cat([embeds, feats.to(embeds.dtype)], dim=-1))


def pool_weights(feats: torch.Tensor, num_tokens: int) -> torch.Tensor:
    """K×N training-free attention weights: query = the target's own pose, key = each view's
    pose features, score = −squared distance between them, one temperature per token."""
    import torch

    ident = torch.tensor(IDENTITY_POSE, device=feats.device, dtype=torch.float32)
    scores = -((feats.float() - ident) ** 2).sum(-1)  # N
    if num_tokens == 1:
        taus = torch.tensor([TAU_MIN], device=feats.device)
    else:
        taus = torch.logspace(
            math.log10(TAU_MIN), math.log10(TAU_MAX), num_tokens, device=feats.device
        )
    return torch.softmax(scores[None, :] / taus[:, None], dim=-1)


def trained_pool(agg: dict[str, Any], tokens: torch.Tensor, feats: torch.Tensor) -> torch.Tensor:
    """K×D tokens from a trained aggregator (``engine.models.zero123.AGGREGATOR_KEYS``)."""
    import torch

    def lin(name: str, x: torch.Tensor) -> torch.Tensor:
        out = x @ agg[f"{name}.weight"].T
        bias = agg.get(f"{name}.bias")
        return out + bias if bias is not None else out

    ident = torch.tensor(IDENTITY_POSE, device=tokens.device, dtype=tokens.dtype)
    q = lin("to_q", agg["queries"] + lin("pose_proj", ident[None]))
    k = lin("to_k", tokens + lin("pose_proj", feats.to(tokens.dtype)))
    v = lin("to_v", tokens)
    attn = torch.softmax(q @ k.T / math.sqrt(q.shape[-1]), dim=-1)
    pooled = attn @ v
    return lin("to_out", pooled) if "to_out.weight" in agg else pooled


def aggregate(
    tokens: torch.Tensor, feats: torch.Tensor, num_tokens: int, agg: dict[str, Any] | None = None
) -> torch.Tensor:
    """N view tokens → a fixed K×D conditioning (K = ``num_tokens``, or the trained
    aggregator's own count)."""
    if agg is not None:
        return trained_pool(agg, tokens, feats)
    w = pool_weights(feats, num_tokens).to(tokens.dtype)
    return w @ tokens


def nearest_view(feats: torch.Tensor) -> int:
    """The view whose pose is nearest the target's (its latents go into the UNet's input)."""
    return int(pool_weights(feats, 1)[0].argmax())


@dataclass
class Known:
    """What the inputs' geometry shows in the target camera."""

    image: np.ndarray  # H×W×3
    covered: np.ndarray  # H×W bool
    depth: np.ndarray  # H×W, inf where nothing


def reproject(
    views: list[InputView], target: Camera, device: str = "cpu", cut: float = 0.05
) -> Known:
    """Render each view that carries metric depth into the target camera (a grid mesh cut at
    depth jumps, the scene ``view.render`` draws from an RGBD) and keep the nearest surface
    per pixel. ValueError for relative depth."""
    from fathom.engine.geometry import scene

    h, w = target.height, target.width
    image = np.zeros((h, w, 3), np.float32)
    depth = np.full((h, w), np.inf, np.float32)
    for v in views:
        if v.depth is None:
            continue
        sc = scene.scene_from_rgbd(RGBD(v.image, v.depth, v.camera), v.camera, cut)
        out = scene.render_torch(sc, target, device)
        nearer = out.covered & (out.depth < depth)
        image[nearer] = out.image[nearer]
        depth[nearer] = out.depth[nearer]
    return Known(image, np.isfinite(depth), depth)


@dataclass
class Sampling:
    """One target view's sampling settings."""

    width: int
    height: int
    steps: int = 50
    guidance: float = 3.0
    seed: int = 0


def encode_views(model: Any, views: list[InputView], target: Camera, num_tokens: int) -> Any:
    """(K×D conditioning tokens, index of the nearest view) for a target camera."""
    import torch

    feats = torch.tensor(
        [pose_features(*relative_orbit(v.camera.pose, target.pose)) for v in views],
        device=model.device,
        dtype=torch.float32,
    )
    with torch.inference_mode():
        # One call per view, each from its own size, as Zero123 preprocesses its one input.
        embeds = torch.cat(
            [
                clip_embeddings(
                    model.image_encoder,
                    image_tensor(on_white(v.image), None, model.device, model.dtype),
                )
                for v in views
            ]
        )
        tokens = view_tokens(model.cc_projection, embeds, feats)
        pooled = aggregate(tokens, feats, num_tokens, model.aggregator)
    return pooled, nearest_view(feats)


def _known_latents(model: Any, known: Known, s: Sampling) -> tuple[Any, Any]:
    """(scaled clean latents of the rendered known region, latent-cell mask: 1 where every
    pixel of the cell is covered, so the model fills every partly seen cell)."""
    import torch
    import torch.nn.functional as F

    x = image_tensor(known.image, (s.width, s.height), model.device, model.dtype)
    lat = model.vae.encode(x).latent_dist.mode() * model.vae.config.scaling_factor
    cov = torch.from_numpy(known.covered.astype(np.float32))[None, None].to(model.device)
    f = s.width // lat.shape[-1]
    mask = -F.max_pool2d(-cov, f)  # min-pool: a cell is known only if all its pixels are
    return lat, mask.to(model.dtype)


def sample(
    model: Any,
    cond_image: np.ndarray,
    tokens: torch.Tensor,
    s: Sampling,
    known: Known | None = None,
    callback: Callable[[int, int], None] | None = None,
) -> np.ndarray:
    """Denoise one target view: ``cond_image`` (H×W×3 in [0,1]) gives the concatenated
    latents, ``tokens`` (K×D) the cross-attention condition; with ``known`` the covered
    region is blended in at every step (RePaint) and its pixels are kept. Returns H×W×3."""
    import torch

    from fathom.engine.diffusion.schedulers import make_scheduler

    dev, dt = model.device, model.dtype
    sched = make_scheduler(model.scheduler, None)
    sched.set_timesteps(s.steps, device=dev)
    gen = torch.Generator("cpu").manual_seed(s.seed)
    f = 2 ** (len(model.vae.config.block_out_channels) - 1)
    shape = (1, int(model.vae.config.latent_channels), s.height // f, s.width // f)
    latents = torch.randn(shape, generator=gen).to(dev, dt) * sched.init_noise_sigma
    cfg = s.guidance > 1.0
    with torch.inference_mode():
        img = image_tensor(cond_image, (s.width, s.height), dev, dt)
        img_lat = model.vae.encode(img).latent_dist.mode()  # unscaled, as Zero123
        cond = tokens[None].to(dt)
        if cfg:
            cond = torch.cat([torch.zeros_like(cond), cond])
            img_lat = torch.cat([torch.zeros_like(img_lat), img_lat])
        blend = _known_latents(model, known, s) if known is not None else None
        renoise = torch.Generator("cpu").manual_seed(s.seed + 1)
        steps = sched.timesteps
        for i, t in enumerate(steps):
            x = torch.cat([latents] * 2) if cfg else latents
            x = torch.cat([sched.scale_model_input(x, t), img_lat], dim=1)
            eps = model.unet(x, t, encoder_hidden_states=cond).sample
            if cfg:
                uncond, c = eps.chunk(2)
                eps = uncond + s.guidance * (c - uncond)
            latents = sched.step(eps, t, latents, return_dict=False)[0]
            if blend is not None:
                clean, mask = blend
                if i + 1 < len(steps):
                    noise = torch.randn(shape, generator=renoise).to(dev, dt)
                    clean = sched.add_noise(clean, noise, steps[i + 1 : i + 2])
                latents = mask * clean + (1.0 - mask) * latents
            if callback is not None:
                callback(i + 1, len(steps))
        out = model.vae.decode(latents / model.vae.config.scaling_factor).sample
    rgb = (out[0].float().permute(1, 2, 0).cpu().numpy() + 1.0) / 2.0
    rgb = np.clip(rgb, 0.0, 1.0).astype(np.float32)
    if known is not None:
        rgb[known.covered] = known.image[known.covered]
    return rgb


def novel_view(
    model: Any,
    views: list[InputView],
    target: Camera,
    s: Sampling,
    num_tokens: int = 4,
    use_depth: bool = True,
    callback: Callable[[int, int], None] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """The target camera's view from the inputs: (H×W×3 image, H×W mask of what the model
    made, 1 where no input's geometry reached)."""
    if (s.width, s.height) != (target.width, target.height):
        raise ValueError(
            f"sampling at {s.width}×{s.height} but the target camera is "
            f"{target.width}×{target.height}"
        )
    tokens, nearest = encode_views(model, views, target, num_tokens)
    known = None
    if use_depth and any(v.depth is not None for v in views):
        known = reproject(views, target, "cuda" if str(model.device).startswith("cuda") else "cpu")
    rgb = sample(model, on_white(views[nearest].image), tokens, s, known, callback)
    made = np.ones((s.height, s.width), np.float32)
    if known is not None:
        made[known.covered] = 0.0
    return rgb, made
