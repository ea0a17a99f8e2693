"""The loaded parts of a Stable-Diffusion-family model and what every run does with them:
prompts encoded, images encoded to latents and latents decoded to images."""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from fathom.engine.diffusion.stages import Encoded, encode_text, encode_text_xl
from fathom.engine.errors import LoopInputError

PROMPT_CACHE_SIZE = 32
#: Above this many output pixels the VAE decodes in tiles: its full-size activations would
#: need several GB (SDXL at 2048² about 10 GB in float16), tiles keep that flat.
TILE_PIXELS = 1536 * 1536


@dataclass(eq=False)
class Components:
    """The loaded parts of a Stable-Diffusion-family model, shared by every node that uses it.

    ``device`` is where the loop runs (with CPU offload the weights may live elsewhere between
    calls); ``offload`` is "none", "model" or "sequential". Prompt embeddings are cached here,
    per prompt, because the same prompt is encoded on every re-run of a graph. SDXL-family
    models (``family`` "sdxl") add a second text encoder, whose pooled output and the image's
    size and crop condition the UNet; ``force_zeros`` is their rule that an empty negative
    prompt is all zeros rather than the encoded empty string.
    """

    unet: Any
    vae: Any
    text_encoder: Any
    tokenizer: Any
    scheduler: Any
    tiny_vae: Any = None
    device: str = "cpu"
    dtype: torch.dtype = torch.float32
    offload: str = "none"
    vae_tiling: bool = False
    source: str = ""
    text_encoder_2: Any = None
    tokenizer_2: Any = None
    family: str = "sd"
    force_zeros: bool = False
    #: SDXL refiner: its UNet is told an aesthetic score (6 wanted, 2.5 for the unguided
    #: half) in place of the target size.
    aesthetics: bool = False
    #: The active text-encoder adapters (engine.diffusion.lora): part of the prompt cache key.
    text_key: str = ""
    preview_fit: Any = field(default=None, repr=False)
    _prompts: OrderedDict[str, Encoded] = field(default_factory=OrderedDict, repr=False)
    _lock: Any = field(default_factory=threading.Lock, repr=False)

    @property
    def vae_scale_factor(self) -> int:
        return 2 ** (len(self.vae.config.block_out_channels) - 1)

    @property
    def latent_channels(self) -> int:
        return int(self.vae.config.latent_channels)

    @property
    def is_inpainting(self) -> bool:
        return int(self.unet.config.in_channels) == 2 * self.latent_channels + 1

    @property
    def decoded_channels(self) -> int:
        return int(self.vae.config.out_channels)

    @property
    def is_xl(self) -> bool:
        return self.family in ("sdxl", "sdxl-refiner")

    @property
    def text_dtype(self) -> torch.dtype:
        """The dtype prompt embeddings come in (the last text encoder's, as diffusers has it)."""
        encoder = self.text_encoder_2 if self.text_encoder_2 is not None else self.text_encoder
        return encoder.dtype

    @torch.no_grad()
    def encode(self, prompt: str) -> Encoded:
        """One prompt's embeddings (and, for SDXL, its pooled embedding) on the run device,
        cached per prompt."""
        key = f"{self.text_key}\n{prompt}"
        with self._lock:
            hit = self._prompts.get(key)
            if hit is not None:
                self._prompts.move_to_end(key)
                return hit
        if self.is_xl:
            pairs = [(self.tokenizer, self.text_encoder), (self.tokenizer_2, self.text_encoder_2)]
            out = encode_text_xl([(t, e) for t, e in pairs if e is not None], prompt, self.device)
        else:
            out = encode_text(self.tokenizer, self.text_encoder, prompt, self.device)
        with self._lock:
            self._prompts[key] = out
            while len(self._prompts) > PROMPT_CACHE_SIZE:
                self._prompts.popitem(last=False)
        return out

    def encode_prompt(self, prompt: str) -> torch.Tensor:
        """1×tokens×dim embeddings of one prompt on the run device (cached per prompt)."""
        return self.encode(prompt).embeds

    def check_size(self, width: int, height: int) -> None:
        """The VAE works on blocks of ``vae_scale_factor`` pixels: other sizes are refused on
        the port at fault, with the two nearest sizes that work."""
        f = self.vae_scale_factor
        for port, v in (("width", width), ("height", height)):
            if v <= 0 or v % f:
                lo, hi = (v // f) * f, (v // f + 1) * f
                raise LoopInputError(
                    f"{port} {v} is not a multiple of {f}: the VAE works on {f}×{f} pixel blocks",
                    port=port,
                    fix=f"use {max(lo, f)} or {hi}",
                )

    def to_model_image(self, rgb: np.ndarray) -> torch.Tensor:
        """H×W×3 (or B×H×W×3) float in [0, 1] → B×3×H×W in [-1, 1] on the run device."""
        arr = np.asarray(rgb, np.float32)
        if arr.ndim == 3:
            arr = arr[None]
        t = torch.from_numpy(np.ascontiguousarray(arr)).permute(0, 3, 1, 2)
        return (2.0 * t - 1.0).contiguous().to(self.device)

    def encode_image(
        self, image: torch.Tensor, generator: torch.Generator, dtype: torch.dtype
    ) -> torch.Tensor:
        """Images in [-1, 1] → scaled latents, sampling the VAE's posterior with ``generator``
        (one draw, in the order diffusers' pipelines make it)."""
        vae = self.vae
        out = vae.encode(image.to(self.device, dtype))
        z = (
            out.latent_dist.sample(generator=generator)
            if hasattr(out, "latent_dist")
            else out.latents
        )
        return z * vae.config.scaling_factor

    @property
    def vae_upcast(self) -> bool:
        """SDXL's VAE overflows in float16 (``force_upcast`` in its config): it decodes in
        float32, as diffusers does, unless a fixed VAE says it need not."""
        return self.vae.dtype == torch.float16 and bool(getattr(self.vae.config, "force_upcast", 0))

    def tile_if_large(self, width: int, height: int) -> bool:
        """Switch the VAE to tiled decoding for large images (kept on: the model is shared and
        the switch is harmless for small ones); True when tiling is on."""
        if (
            not self.vae_tiling
            and width * height > TILE_PIXELS
            and hasattr(self.vae, "enable_tiling")
        ):
            self.vae.enable_tiling()
            self.vae_tiling = True
        return self.vae_tiling

    @torch.no_grad()
    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        """Clean latents → B×C×H×W float32 in [0, 1] on the CPU (tiled when large)."""
        f = self.vae_scale_factor
        self.tile_if_large(int(latents.shape[-1]) * f, int(latents.shape[-2]) * f)
        vae = self.vae
        upcast = self.vae_upcast
        if upcast:
            vae.to(dtype=torch.float32)
            latents = latents.float()
        try:
            img = vae.decode(latents / vae.config.scaling_factor, return_dict=False)[0]
        finally:
            if upcast:
                vae.to(dtype=torch.float16)
        return (img / 2 + 0.5).clamp(0, 1).float().cpu()
