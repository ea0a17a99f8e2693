"""Pipeline stages shared by the image, video and stream runs: prompt embeddings, guidance,
timesteps from strength, noise, and the acceleration hook contract.

Each run (``loop.generate``, ``video.VideoRun``, ``stream.StreamPipeline``) is a different
schedule of UNet calls, but the set-up around them is the same: written once here so that the
runs agree with each other and with diffusers' pipelines (the order of random draws included).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Protocol

import torch

from fathom.engine.diffusion.embeddings import expand
from fathom.engine.diffusion.prompts import Chunks, apply_weights, is_plain, tokenize
from fathom.engine.diffusion.schedulers import guidance_embedding
from fathom.engine.errors import LoopInputError

# ---- text --------------------------------------------------------------------------------------


@dataclass
class Encoded:
    """One prompt's text conditioning: the token embeddings the UNet attends to (77 per chunk
    of a long prompt) and, for SDXL-family models, the pooled embedding of the second text
    encoder; ``cut`` counts text tokens dropped past the longest prompt taken."""

    embeds: torch.Tensor
    pooled: torch.Tensor | None = None
    cut: int = 0

    @property
    def chunks(self) -> int:
        return max(1, int(self.embeds.shape[1]) // 77)


def _chunked(tokenizer: Any, prompt: str) -> Chunks | None:
    """The prompt's weighted chunks, or None when the plain tokenizer call encodes it (no
    emphasis syntax and it fits): then results stay exactly diffusers'."""
    if is_plain(prompt):
        fits = len(tokenizer(prompt, add_special_tokens=False).input_ids)
        if fits <= int(tokenizer.model_max_length) - 2:
            return None
    return tokenize(tokenizer, prompt)


@torch.no_grad()
def encode_text(tokenizer: Any, text_encoder: Any, prompt: str, device: Any) -> Encoded:
    """Embeddings of one prompt, padded to the tokenizer's length (as diffusers' SD pipelines
    do) or, with emphasis or past 75 tokens, chunk by chunk (``engine.diffusion.prompts``); in
    the text encoder's dtype on ``device``, the run device (with CPU offload the encoder's
    weights are moved there by their hooks). Multi-vector embedding words expand first."""
    prompt = expand(prompt, tokenizer)
    chunks = _chunked(tokenizer, prompt)
    if chunks is None:
        tokens = tokenizer(
            prompt,
            padding="max_length",
            truncation=True,
            max_length=tokenizer.model_max_length,
            return_tensors="pt",
        )
        mask = None
        if getattr(text_encoder.config, "use_attention_mask", False):
            mask = tokens.attention_mask.to(device)
        emb = text_encoder(tokens.input_ids.to(device), attention_mask=mask)[0]
        return Encoded(emb.to(dtype=text_encoder.dtype, device=device))
    parts = []
    for ids, weights in zip(chunks.ids, chunks.weights, strict=True):
        hidden = text_encoder(torch.tensor([ids], device=device))[0]
        parts.append(apply_weights(hidden, weights))
    emb = torch.cat(parts, dim=1)
    return Encoded(emb.to(dtype=text_encoder.dtype, device=device), cut=chunks.cut)


@torch.no_grad()
def encode_text_xl(pairs: list[tuple[Any, Any]], prompt: str, device: Any) -> Encoded:
    """SDXL's prompt encoding: each (tokenizer, encoder)'s penultimate hidden states, joined
    along the features; the pooled embedding is the first 2-D output (the projection of the
    encoder that has one), as in diffusers' SDXL pipelines. Long or weighted prompts go chunk
    by chunk through both encoders, padded with empty chunks to the same count; the pooled
    embedding is the first chunk's."""
    texts = [expand(prompt, t) for t, _ in pairs]
    chunked = [(t, e, _chunked(t, text)) for (t, e), text in zip(pairs, texts, strict=True)]
    if all(c is None for _, _, c in chunked):
        return _encode_xl_plain(pairs, texts, device)
    full = [
        (e, c if c is not None else tokenize(t, text))
        for (t, e, c), text in zip(chunked, texts, strict=True)
    ]
    n = max(len(c.ids) for _, c in full)
    hidden, pooled = [], None
    for encoder, chunks in full:
        empty_ids = chunks.ids[0][:1] + [chunks.ids[0][-1]] * (len(chunks.ids[0]) - 1)
        parts = []
        for i in range(n):
            ids = chunks.ids[i] if i < len(chunks.ids) else empty_ids
            weights = chunks.weights[i] if i < len(chunks.ids) else [1.0] * len(ids)
            out = encoder(torch.tensor([ids], device=device), output_hidden_states=True)
            if pooled is None and i == 0 and out[0].ndim == 2:
                pooled = out[0]
            parts.append(apply_weights(out.hidden_states[-2], weights))
        hidden.append(torch.cat(parts, dim=1))
    dtype = pairs[-1][1].dtype
    embeds = torch.cat(hidden, dim=-1).to(dtype=dtype, device=device)
    cut = max(c.cut for _, c in full)
    return Encoded(embeds, None if pooled is None else pooled.to(device=device), cut)


def _encode_xl_plain(pairs: list[tuple[Any, Any]], texts: list[str], device: Any) -> Encoded:
    hidden, pooled = [], None
    for (tokenizer, encoder), prompt in zip(pairs, texts, strict=True):
        ids = tokenizer(
            prompt,
            padding="max_length",
            truncation=True,
            max_length=tokenizer.model_max_length,
            return_tensors="pt",
        ).input_ids
        out = encoder(ids.to(device), output_hidden_states=True)
        if pooled is None and out[0].ndim == 2:
            pooled = out[0]
        hidden.append(out.hidden_states[-2])
    dtype = pairs[-1][1].dtype
    embeds = torch.cat(hidden, dim=-1).to(dtype=dtype, device=device)
    return Encoded(embeds, None if pooled is None else pooled.to(device=device))


def pad_tokens(components: Any, enc: Encoded, tokens: int) -> Encoded:
    """``enc`` padded with encoded empty chunks to ``tokens`` tokens (a negative prompt must be
    as long as its positive: the two halves of a CFG batch share one tensor)."""
    have = int(enc.embeds.shape[1])
    if have >= tokens:
        return enc
    empty = components.encode("").embeds
    reps = (tokens - have) // int(empty.shape[1])
    embeds = torch.cat([enc.embeds, empty.repeat(int(enc.embeds.shape[0]), reps, 1)], dim=1)
    return Encoded(embeds, enc.pooled, enc.cut)


@dataclass
class Guidance:
    """Classifier-free guidance for one run: the batched embeddings (negative half first when
    ``cfg``), the scale, the guidance embedding guidance-distilled (LCM) UNets take instead of
    a second half, and SDXL's added conditioning (pooled text and size ids, batched alike)."""

    cfg: bool
    scale: float
    embeds: torch.Tensor
    t_cond: torch.Tensor | None
    added: dict[str, Any] | None = None

    def combine(self, noise_pred: torch.Tensor) -> torch.Tensor:
        """One noise prediction from a batched UNet call: uncond + scale·(text − uncond)."""
        if not self.cfg:
            return noise_pred
        uncond, text = noise_pred.chunk(2)
        return uncond + self.scale * (text - uncond)

    def batch(self, x: torch.Tensor) -> torch.Tensor:
        """The UNet input for ``x``: both halves when guiding, else ``x`` itself."""
        return torch.cat([x] * 2) if self.cfg else x


def guidance_for(
    components: Any,
    prompt: str | Sequence[str],
    negative_prompt: str,
    scale: float,
    batch: int = 1,
    size: tuple[int, int] | None = None,
) -> Guidance:
    """CFG is on above scale 1 for UNets without a guidance embedding (diffusers' rule).
    SDXL-family models also need ``size`` (height, width): their UNet is told the image's
    original and target size and its crop (none), and an empty negative prompt is zeros when
    the model says so (``force_zeros_for_empty_prompt``). A list of prompts makes ``batch``
    images of each, in prompt order (as diffusers' pipelines take a list), one negative for
    all."""
    unet = components.unet
    cond_dim = unet.config.time_cond_proj_dim
    cfg = scale > 1.0 and cond_dim is None
    pos = _encode_each(components, prompt)
    count = 1 if isinstance(prompt, str) else len(prompt)
    parts = [pos]
    if cfg:
        if not negative_prompt and getattr(components, "force_zeros", False):
            zero_pooled = None if pos.pooled is None else torch.zeros_like(pos.pooled)
            parts.insert(0, Encoded(torch.zeros_like(pos.embeds), zero_pooled))
        else:
            parts.insert(0, components.encode(negative_prompt or ""))
        longest = max(int(p.embeds.shape[1]) for p in parts)
        parts = [pad_tokens(components, p, longest) for p in parts]
    n = count * batch
    embeds = torch.cat([_rows(p.embeds, n) for p in parts])
    t_cond = None
    if cond_dim is not None:
        w = torch.tensor(scale - 1).repeat(n)
        t_cond = guidance_embedding(w, cond_dim).to(components.device, pos.embeds.dtype)
    added = None
    if pos.pooled is not None:
        if size is None:
            raise ValueError("SDXL-family models need the image size for their conditioning")
        added = _xl_conditioning(components, parts, n, size, pos.embeds.dtype)
    return Guidance(cfg, float(scale), embeds, t_cond, added)


def _encode_each(components: Any, prompt: str | Sequence[str]) -> Encoded:
    """One prompt's encoding, or a list's stacked along the batch (padded to the longest)."""
    if isinstance(prompt, str):
        return components.encode(prompt)
    each = [components.encode(p) for p in prompt]
    longest = max(int(e.embeds.shape[1]) for e in each)
    each = [pad_tokens(components, e, longest) for e in each]
    pooled = [e.pooled for e in each if e.pooled is not None]
    stacked = torch.cat(pooled) if pooled else None
    return Encoded(torch.cat([e.embeds for e in each]), stacked, max(e.cut for e in each))


def _rows(x: torch.Tensor, n: int) -> torch.Tensor:
    """``x``'s rows (one, or one per prompt) each repeated to make ``n`` rows in order."""
    return x.repeat_interleave(n // int(x.shape[0]), dim=0)


def _xl_conditioning(
    components: Any, parts: list[Encoded], batch: int, size: tuple[int, int], dtype: Any
) -> dict[str, torch.Tensor]:
    """SDXL's micro-conditioning: the pooled text embedding and the time ids original size,
    crop top-left and target size (the same size, no crop: what a generated image is); the
    refiner takes an aesthetic score in place of the target size (diffusers' defaults: 6 for
    the prompt, 2.5 for the negative half)."""
    h, w = size
    if getattr(components, "aesthetics", False):
        rows = [[h, w, 0, 0, 6.0]] if len(parts) == 1 else [[h, w, 0, 0, 2.5], [h, w, 0, 0, 6.0]]
    else:
        rows = [[h, w, 0, 0, h, w]] * len(parts)
    ids = torch.tensor(rows, dtype=dtype)
    expected = components.unet.add_embedding.linear_1.in_features
    pooled_dim = int(parts[-1].pooled.shape[-1])  # type: ignore[union-attr]
    got = components.unet.config.addition_time_embed_dim * ids.shape[1] + pooled_dim
    if got != expected:
        raise LoopInputError(
            f"this UNet's added conditioning takes {expected} values but the text encoder and "
            f"size ids give {got}: the model's parts do not belong together",
            port="model",
            fix="use a complete SDXL model folder or checkpoint",
        )
    pooled = torch.cat([_rows(p.pooled, batch) for p in parts])  # type: ignore[arg-type]
    return {
        "text_embeds": pooled.to(components.device),
        "time_ids": ids.repeat_interleave(batch, dim=0).to(components.device),
    }


# ---- timesteps and noise -----------------------------------------------------------------------


def strength_timesteps(sched: Any, steps: int, strength: float) -> tuple[torch.Tensor, int]:
    """The last ``strength`` part of a ``steps``-step schedule (image-to-image) and the number
    of user steps it holds; the scheduler is told where it begins."""
    keep = min(int(steps * strength), steps)
    t_start = max(steps - keep, 0)
    if steps - t_start < 1:
        raise LoopInputError(
            f"strength {strength} with {steps} steps leaves no step to run",
            port="strength",
            fix="raise the strength or the steps",
        )
    if hasattr(sched, "set_begin_index"):
        sched.set_begin_index(t_start * sched.order)
    return sched.timesteps[t_start * sched.order :], steps - t_start


def randn(
    shape: tuple[int, ...], generator: torch.Generator, device: Any, dtype: torch.dtype
) -> torch.Tensor:
    """Noise drawn on the CPU in the model's dtype (as diffusers does), then moved: a seed gives
    the same noise on any device."""
    return torch.randn(shape, generator=generator, device="cpu", dtype=dtype).to(device)


def step_extras(sched: Any, eta: float, generator: torch.Generator) -> dict[str, Any]:
    """The keyword arguments this scheduler's ``step`` accepts (eta for DDIM, a generator for
    the ancestral samplers)."""
    accepted = set(inspect.signature(sched.step).parameters)
    extra: dict[str, Any] = {}
    if "eta" in accepted:
        extra["eta"] = eta
    if "generator" in accepted:
        extra["generator"] = generator
    return extra


# ---- the acceleration hook contract ------------------------------------------------------------


class Acceleration(Protocol):
    """What every technique in ``engine.accel`` implements (see that package's docstring):
    ``attach`` before the first step, ``detach`` after the last (also on failure or cancel),
    and optionally ``before_step(i, t, latents)`` and ``after_step(i, t, latents, pred_x0)``,
    whose True return stops denoising early."""

    def attach(self, components: Any) -> None: ...

    def detach(self) -> None: ...


def hooks(accel: Sequence[Any], name: str) -> list[Callable[..., Any]]:
    """The accelerations' optional per-step hooks called ``name``, in list order."""
    return [getattr(a, name) for a in accel if callable(getattr(a, name, None))]


@contextmanager
def attached(accel: Sequence[Acceleration], target: Any) -> Iterator[None]:
    """Attach in list order and detach in reverse, also when an attach or the run fails: the
    components are shared by every node, so they must come back exactly as they were."""
    done: list[Acceleration] = []
    try:
        for a in accel:
            a.attach(target)
            done.append(a)
        yield
    finally:
        for a in reversed(done):
            a.detach()
