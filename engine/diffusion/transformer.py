"""Text-to-image and image-to-image runs of transformer-family models (Stable Diffusion 3 / 3.5)
through diffusers' own pipelines, with its first-block cache as the acceleration.

Fathom's UNet loop (``engine.diffusion.loop``) and its accelerations know UNets; a transformer
family instead runs through the pipeline class diffusers ships for it, so its model code,
schedule and guidance are diffusers' exactly: with the cache off, a run here equals calling the
pipeline directly with the same settings and a CPU generator. What Fathom adds is the run
contract the other generation runs keep: sizes refused with a typed error naming the port, one
per-step callback (progress, a preview's latents, cancel by raising), LoRAs and the cache on
for one run and off after (the model is shared by every node), and a small result record.

The cache is diffusers' First Block Cache (``diffusers.hooks.apply_first_block_cache``): each
step runs the first transformer block, and when its residual changed less than ``threshold``
(relative mean absolute change) since the last full step, the remaining blocks' residual from
that step is reused instead of running them. Two things SD3 needs that diffusers leaves out:
SD3's transformer is no ``CacheMixin`` and its pipeline sets no cache context, so the context is
set here for the whole run (one context: the pipeline batches the unconditional and conditional
passes into one call); and SD3's last block (``context_pre_only``) returns no text stream, which
diffusers' tail hook subtracts from, so the cache spans every block but the last, which always
runs on the cached blocks' output.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from fathom.engine.errors import LoopInputError

#: The name the one cache context carries (diffusers keys the cache's state by it).
CACHE_CONTEXT = "fathom"


@dataclass(frozen=True)
class StepInfo:
    """What the per-step callback gets after each denoising step."""

    index: int  # 0-based step of this run
    steps: int  # steps this run makes (fewer than asked for image-to-image)
    seconds: float  # since the run began (text encoding included)
    cached: bool  # the first-block cache skipped the transformer's other blocks this step
    latents: Any  # the step's latents (B×C×h×w, the denoiser's space), e.g. for a preview


@dataclass
class TransformerResult:
    """A finished run: images, final latents and what ran, for the outputs and the report."""

    images: np.ndarray  # B×H×W×3 float32 in [0, 1]
    latents: Any  # B×C×h×w float32 on the CPU, the denoiser's space: decode z / scale + shift
    scaling_factor: float
    shift_factor: float
    steps_planned: int
    steps_run: int
    cached_steps: int
    seconds: float
    cache_threshold: float
    loras: int = 0


# ---- checks -----------------------------------------------------------------------------------


def size_multiple(pipe: Any) -> int:
    """Pixels per latent patch side (16 for SD3: the VAE's 8 × the transformer's patch 2):
    every size must be a multiple of it."""
    return int(pipe.vae_scale_factor) * int(pipe.transformer.config.patch_size)


def max_size(pipe: Any) -> int | None:
    """The largest side the transformer's position embeddings reach (None: no limit)."""
    cap = pipe.transformer.config.get("pos_embed_max_size")
    return None if cap is None else int(cap) * size_multiple(pipe)


def check_size(pipe: Any, width: int, height: int) -> None:
    """Refuse a size the model cannot make, naming the port and the two nearest sizes it can
    (diffusers would raise a ValueError naming neither the port nor a fix)."""
    m, cap = size_multiple(pipe), max_size(pipe)
    for port, v in (("width", width), ("height", height)):
        if v < m or v % m:
            lo = max(m, v // m * m)
            what = f"smaller than {m}" if v < m else f"not a multiple of {m}"
            raise LoopInputError(
                f"{port} {v} is {what} (the model works on {m}×{m} pixel patches)",
                port,
                f"use {lo} or {lo + m}",
            )
        if cap is not None and v > cap:
            raise LoopInputError(
                f"{port} {v} is larger than this model reaches ({cap}: its position "
                "embeddings end there)",
                port,
                f"use at most {cap}",
            )


def check_inputs(
    pipe: Any,
    steps: int,
    width: int,
    height: int,
    batch_size: int,
    image: Any,
    strength: float,
    cache_threshold: float,
) -> None:
    """Every setting checked before the run starts, each refusal naming its port."""
    check_size(pipe, width, height)
    if steps < 1:
        raise LoopInputError(f"steps is {steps}", "steps", "use at least 1 step")
    if batch_size < 1:
        raise LoopInputError(f"batch_size is {batch_size}", "batch_size", "use at least 1")
    if cache_threshold < 0:
        raise LoopInputError(
            f"cache_threshold is {cache_threshold:g}", "cache_threshold", "use 0 (off) or more"
        )
    if cache_threshold > 0 and len(pipe.transformer.transformer_blocks) < 3:
        raise LoopInputError(
            "the first-block cache needs a transformer of at least 3 blocks",
            "cache_threshold",
            "set it to 0",
        )
    if image is None:
        return
    if tuple(image.shape[-2:]) != (height, width):
        raise LoopInputError(
            f"the image is {image.shape[-1]}×{image.shape[-2]}, the output {width}×{height}",
            "image",
            "resize the image to the output size",
        )
    if not 0 < strength <= 1:
        raise LoopInputError(
            f"strength is {strength:g}", "strength", "use a strength above 0 and at most 1"
        )


# ---- the first-block cache --------------------------------------------------------------------


class CacheWatch:
    """Whether the cache skipped the last transformer call (always False when it is off)."""

    def __init__(self, head_hook: Any = None) -> None:
        self._hook = head_hook

    def skipped(self) -> bool:
        if self._hook is None:
            return False
        return not self._hook.state_manager.get_state().should_compute


@contextmanager
def first_block_cache(transformer: Any, threshold: float) -> Iterator[CacheWatch]:
    """diffusers' first-block cache on ``transformer`` for the block, removed after (also on
    failure or cancel): the transformer is shared, and the next run without the cache must be
    the plain model exactly. ``threshold`` 0 is off."""
    if threshold <= 0:
        yield CacheWatch()
        return
    import torch
    from diffusers.hooks import FirstBlockCacheConfig, HookRegistry, apply_first_block_cache
    from diffusers.hooks.first_block_cache import _FBC_BLOCK_HOOK, _FBC_LEADER_BLOCK_HOOK
    from diffusers.hooks.hooks import CacheContext, _set_cache_context

    blocks = list(transformer.transformer_blocks)
    # The hooks go on the blocks themselves; the holder only tells diffusers which blocks
    # (all but the last: SD3's last block returns no text stream for the tail hook).
    holder = torch.nn.Module()
    holder.transformer_blocks = torch.nn.ModuleList(blocks[:-1])
    registry = HookRegistry.check_if_exists_or_initialize(transformer)
    try:
        apply_first_block_cache(holder, FirstBlockCacheConfig(threshold=float(threshold)))
        registry.invalidate_child_registries_cache()
        _set_cache_context(transformer, CacheContext(CACHE_CONTEXT))
        head = HookRegistry.check_if_exists_or_initialize(blocks[0]).get_hook(
            _FBC_LEADER_BLOCK_HOOK
        )
        yield CacheWatch(head)
    finally:
        _set_cache_context(transformer, None)
        for block in blocks:
            block_registry = HookRegistry.check_if_exists_or_initialize(block)
            block_registry.remove_hook(_FBC_LEADER_BLOCK_HOOK, recurse=False)
            block_registry.remove_hook(_FBC_BLOCK_HOOK, recurse=False)
            _restore_forward(block, block_registry)
        registry.invalidate_child_registries_cache()


def _restore_forward(block: Any, registry: Any) -> None:
    """Removing the last hook leaves the block's own forward as an instance attribute (a
    reference cycle on a shared model); with no hook left, drop it so the class's applies."""
    own = block.__dict__.get("forward")
    if not registry.hooks and getattr(own, "__func__", None) is type(block).forward:
        del block.forward


# ---- LoRAs ------------------------------------------------------------------------------------


@contextmanager
def loras_active(model: Any, loras: Sequence[tuple[Path, float]]) -> Iterator[list[str]]:
    """The LoRAs on, each at its weight, for the block, and off after (also on failure), as
    :func:`engine.diffusion.lora.active` does for the UNet families; loaded through the
    pipeline's own LoRA loader (SD3's: transformer and both CLIP encoders) and kept loaded per
    file version by the same table."""
    if not loras:
        yield []
        return
    from fathom.engine.diffusion import lora

    pipe = model.pipe
    with lora.LOCK:
        names = [lora.adapter_name(p) for p, _ in loras]
        for (path, _), name in zip(loras, names, strict=True):
            lora._load(pipe, model, path, name)
        pipe.enable_lora()
        pipe.set_adapters(names, [w for _, w in loras])
    try:
        yield names
    finally:
        with lora.LOCK:
            pipe.disable_lora()


# ---- the run ----------------------------------------------------------------------------------


class _Steps:
    """The pipeline's ``callback_on_step_end``: counts steps and cached steps, keeps the last
    latents, and calls the caller's callback (which cancels by raising)."""

    def __init__(self, callback: Callable[[StepInfo], None] | None, cache: CacheWatch) -> None:
        self.callback = callback
        self.cache = cache
        self.start = time.perf_counter()
        self.run = 0
        self.cached = 0
        self.total = 0
        self.latents: Any = None

    def __call__(self, pipe: Any, i: int, t: Any, kwargs: dict[str, Any]) -> dict[str, Any]:
        self.run += 1
        skipped = self.cache.skipped()
        self.cached += int(skipped)
        self.total = int(getattr(pipe, "num_timesteps", 0) or 0)
        self.latents = kwargs["latents"]
        if self.callback is not None:
            info = StepInfo(i, self.total, time.perf_counter() - self.start, skipped, self.latents)
            self.callback(info)
        return {}


def _pipeline(model: Any, image_to_image: bool) -> Any:
    """The loaded text-to-image pipeline, or an image-to-image one over the same modules
    (nothing is copied; offload hooks live on the modules, so they carry over)."""
    if not image_to_image:
        return model.pipe
    import diffusers

    from fathom.engine.models.transformer import PIPELINES

    cls = getattr(diffusers, PIPELINES[model.family][1])
    pipe = cls(**model.pipe.components)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def generate(
    model: Any,
    prompt: str,
    negative_prompt: str = "",
    *,
    steps: int = 28,
    guidance: float = 7.0,
    seed: int = 0,
    width: int = 1024,
    height: int = 1024,
    batch_size: int = 1,
    image: Any = None,
    strength: float = 0.6,
    cache_threshold: float = 0.0,
    loras: Sequence[tuple[Path, float]] = (),
    callback: Callable[[StepInfo], None] | None = None,
) -> TransformerResult:
    """Make ``batch_size`` images with a loaded transformer model
    (:class:`engine.models.transformer.TransformerModel`) through diffusers' pipeline.

    ``image`` (1×3×H×W in [-1, 1] at width×height, as ``generation.image_tensor`` makes it)
    turns the run into image-to-image at ``strength``. ``guidance`` <= 1 turns classifier-free
    guidance off (as diffusers does). The noise comes from a CPU generator seeded with
    ``seed``, so a seed gives the same image on any device. ``cache_threshold`` > 0 switches
    on the first-block cache for this run only; ``loras`` (file, weight) likewise. Raises
    LoopInputError (with the port) for settings the model cannot use; whatever ``callback``
    raises (e.g. Cancelled) stops the run and propagates, with the cache and LoRAs removed."""
    import torch

    from fathom.engine.models.transformer import settle

    pipe = _pipeline(model, image is not None)
    check_inputs(pipe, steps, width, height, batch_size, image, strength, cache_threshold)
    kwargs: dict[str, Any] = dict(
        prompt=prompt,
        negative_prompt=negative_prompt,
        num_inference_steps=steps,
        guidance_scale=guidance,
        height=height,
        width=width,
        num_images_per_prompt=batch_size,
        generator=torch.Generator("cpu").manual_seed(int(seed)),
        output_type="np",
        callback_on_step_end_tensor_inputs=["latents"],
    )
    if image is not None:
        kwargs.update(image=((image.float() + 1.0) / 2.0).clamp(0.0, 1.0), strength=strength)
    with model.lock:
        try:
            with (
                loras_active(model, loras),
                first_block_cache(model.pipe.transformer, cache_threshold) as cache,
            ):
                steps_cb = _Steps(callback, cache)
                out = pipe(**kwargs, callback_on_step_end=steps_cb)
        finally:
            settle(model)
    vae = model.pipe.vae.config
    return TransformerResult(
        images=np.ascontiguousarray(out.images, dtype=np.float32),
        latents=steps_cb.latents.detach().float().cpu(),
        scaling_factor=float(vae.scaling_factor),
        shift_factor=float(vae.get("shift_factor") or 0.0),
        steps_planned=steps_cb.total,
        steps_run=steps_cb.run,
        cached_steps=steps_cb.cached,
        seconds=time.perf_counter() - steps_cb.start,
        cache_threshold=float(cache_threshold),
        loras=len(loras),
    )
