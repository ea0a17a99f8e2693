"""Shap-E text and image to 3D: conditioning, the prior's denoising loop with a per-step
callback (progress and cancel), the mesh decode, and the turntable cameras.

diffusers' ``ShapEPipeline`` and ``ShapEImg2ImgPipeline`` run this loop but take no step
callback, so a long run could neither report nor stop. This module follows them operation for
operation over the same components (the conditioning, the noise draw, the scheduler calls,
the guidance and the renderer's marching-cubes decode), so with the same seed and settings
the mesh is the pipeline's own (tested). Shap-E's objects stand z-up and face -y (Blender's
front view); ``to_studio_axes`` turns them into the studio's OpenCV frame (up is -y, the
front camera on -z) with an exact quarter turn about x.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from fathom.engine.errors import LibraryError
from fathom.engine.geometry.projection import orbit_pose
from fathom.engine.types import Camera

#: Shap-E's own preview cameras (diffusers' ``create_pan_cameras``): 4 units from the object,
#: looking down at atan(0.5) and a 0.7 rad field of view; the object fills [-1, 1]³.
VIEW_DISTANCE = 4.0
VIEW_ELEVATION = math.degrees(math.atan(0.5))
VIEW_FOV = math.degrees(0.7)


@dataclass
class DecodedMesh:
    """A decoded object: vertices (V×3 float32, Shap-E's frame), faces (F×3 int64) and the
    decoder's colour channels per vertex (V×3 float32 in [0, 1], linear as diffusers gives)."""

    vertices: np.ndarray
    faces: np.ndarray
    colors: np.ndarray


def encode_text(pipe: Any, prompt: str, device: Any, guided: bool) -> Any:
    """Shap-E's text condition: the CLIP text projection of the prompt, unit-normalised and
    scaled to unit variance per feature; guidance adds an all-zero unconditional row first.
    The pipeline pads with token id 0 whatever the tokenizer says, and so does this."""
    import torch

    tok = pipe.tokenizer
    enc = tok(
        prompt,
        padding="max_length",
        max_length=tok.model_max_length,
        truncation=True,
        return_tensors="pt",
    )
    ids = enc.input_ids.masked_fill(enc.attention_mask == 0, 0)
    embeds = pipe.text_encoder(ids.to(device)).text_embeds
    embeds = embeds / torch.linalg.norm(embeds, dim=-1, keepdim=True)
    if guided:
        embeds = torch.cat([torch.zeros_like(embeds), embeds])
    return math.sqrt(embeds.shape[1]) * embeds


def encode_image(pipe: Any, image: Any, device: Any, guided: bool) -> Any:
    """Shap-E's image condition: the CLIP vision encoder's patch tokens (its class token
    dropped) for an 8-bit PIL image, through the model's own image processor."""
    import torch

    pixels = pipe.image_processor(image, return_tensors="pt").pixel_values[0].unsqueeze(0)
    pixels = pixels.to(dtype=pipe.image_encoder.dtype, device=device)
    embeds = pipe.image_encoder(pixels)["last_hidden_state"][:, 1:, :].contiguous()
    if guided:
        embeds = torch.cat([torch.zeros_like(embeds), embeds])
    return embeds


def sample(
    pipe: Any,
    cond: Any,
    steps: int,
    guidance: float,
    generator: Any,
    device: Any,
    on_step: Callable[[int, int], None] | None = None,
) -> Any:
    """The prior's denoising from noise to one object latent (1 × tokens × width).
    ``on_step(i, n)`` runs after each of the n model calls (the Heun scheduler makes about two
    per step) and may raise to stop. Guidance applies when above 1, as in the pipeline."""
    import torch
    from diffusers.utils.torch_utils import randn_tensor

    guided = guidance > 1.0
    sched = pipe.scheduler
    sched.set_timesteps(steps, device=device)
    tokens = int(pipe.prior.config.num_embeddings)
    width = int(pipe.prior.config.embedding_dim)
    noise = randn_tensor((1, tokens * width), generator=generator, device=device, dtype=cond.dtype)
    latents = (noise * sched.init_noise_sigma).reshape(1, tokens, width)
    timesteps = sched.timesteps
    for i, t in enumerate(timesteps):
        model_in = torch.cat([latents] * 2) if guided else latents
        model_in = sched.scale_model_input(model_in, t)
        pred = pipe.prior(model_in, timestep=t, proj_embedding=cond).predicted_image_embedding
        pred = pred[..., : model_in.shape[2]]  # the rest is the variance, which is unused
        if guided:
            uncond, text = pred.chunk(2)
            pred = uncond + guidance * (text - uncond)
        latents = sched.step(pred, timestep=t, sample=latents).prev_sample
        if on_step is not None:
            on_step(i, len(timesteps))
    return latents


def decode_mesh(pipe: Any, latent: Any, device: Any, grid_size: int = 128) -> DecodedMesh:
    """The renderer's mesh: the latent becomes the weights of its implicit function, whose
    signed distance is sampled on a ``grid_size``³ grid over [-1, 1]³ and meshed by marching
    cubes; the colour head is read at each vertex. LibraryError when nothing is inside."""
    renderer = pipe.shap_e_renderer
    if not bool(renderer.mesh_decoder.masks.any()):
        raise LibraryError(
            "the model's mesh decoder has an empty marching-cubes table (shap_e_renderer "
            "weights without the 'mesh_decoder.cases' and 'mesh_decoder.masks' buffers)",
            port="model",
            fix="use a complete Shap-E folder, e.g. `fathom models pull openai/shap-e`",
        )
    try:
        raw = renderer.decode_to_mesh(latent[:1], device, grid_size=grid_size)
    except ZeroDivisionError:  # diffusers indexes colours modulo the vertex count
        raw = None
    if raw is None or len(raw.faces) == 0:
        raise LibraryError(
            "the generated object is empty: its signed distance is negative everywhere",
            port="seed",
            fix="try another seed or prompt, or more steps",
        )
    colors = np.stack([raw.vertex_channels[c].float().cpu().numpy() for c in "RGB"], axis=1)
    return DecodedMesh(
        raw.verts.float().cpu().numpy().astype(np.float32),
        raw.faces.cpu().numpy().astype(np.int64),
        colors.astype(np.float32),
    )


def to_studio_axes(vertices: np.ndarray) -> np.ndarray:
    """Shap-E's frame (z up, front toward -y) to the studio's (y down, front toward -z):
    (x, y, z) -> (x, -z, y), a rotation about x, exact in floating point."""
    v = np.asarray(vertices)
    return np.stack([v[:, 0], -v[:, 2], v[:, 1]], axis=1)


def color_bytes(colors: np.ndarray) -> np.ndarray:
    """8-bit vertex colours, quantised as diffusers' ``export_to_ply`` writes them."""
    return np.clip(np.round(np.asarray(colors, np.float64) * 255.499), 0, 255).astype(np.uint8)


def turntable_cameras(frames: int, size: int) -> list[Camera]:
    """``frames`` cameras evenly around the object (studio frame), starting at the front, at
    the distance, elevation and field of view of Shap-E's own previews."""
    out = []
    for k in range(frames):
        cam = Camera.from_fov(size, size, VIEW_FOV)
        cam.pose = orbit_pose(360.0 * k / frames, VIEW_ELEVATION, VIEW_DISTANCE)
        out.append(cam)
    return out


def shade(colors: np.ndarray, normals: np.ndarray, camera: Camera) -> np.ndarray:
    """Vertex colours lit from the camera (two-sided), so the turntable shows the shape and
    not only its outline: colour × (0.35 + 0.65 |n · view|)."""
    forward = camera.pose[:3, 2].astype(np.float32)
    lam = np.abs(np.nan_to_num(np.asarray(normals, np.float32) @ forward))
    return (np.asarray(colors, np.float32) * (0.35 + 0.65 * lam)[:, None]).astype(np.float32)
