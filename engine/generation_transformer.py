"""Node support for transformer-family models (Stable Diffusion 3 / 3.5) on the generation nodes.

Text-to-image and image-to-image take an SD3 folder as readily as an SD 1.x or SDXL one; the
family is read from the model. A transformer model runs through diffusers' own pipeline
(``engine.diffusion.transformer``), so the UNet accelerations (token merging, Clockwork,
adaptive steps), the sampler choice, ControlNet and IP-Adapter do not apply to it: each is
refused before the run on its own port, naming what to do instead. Its speed-up is diffusers'
first-block cache (``cache_threshold``), which a UNet model refuses in turn. Progress, cancel,
previews, LoRAs, the out-of-memory fallback and the run report follow the UNet runs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fathom.engine.context import NodeContext
from fathom.engine.errors import LibraryError, Problem
from fathom.engine.generation import model_source, offload_mode, oom_steps, resolve_loras
from fathom.engine.node import Param
from fathom.engine.types import Float, Image, Latent, Video

CACHE_PARAM = Param(
    "cache_threshold",
    Float,
    0.0,
    "first-block cache (transformer models such as SD3): the later blocks' work is reused "
    "while the first block's output changes less than this between steps (0: off)",
    min=0,
    max=1,
    step=0.01,
)

#: The accelerations only UNets take, and the value that means off.
UNET_ONLY = {"token_merge": 0.0, "clock_period": 1, "adaptive_threshold": 0.0}


def transformer_family(ctx: NodeContext, model: str) -> str | None:
    """The model's family when it is a transformer family, else None (also when the model is
    missing: the node's own checks report that)."""
    from fathom.engine.models import ModelError, locate_model
    from fathom.engine.models.families import identify
    from fathom.engine.models.transformer import TRANSFORMER_FAMILIES

    try:
        family = identify(locate_model(model, ctx.options.base_dir)).family
    except ModelError:
        return None
    return family if family in TRANSFORMER_FAMILIES else None


def transformer_problems(
    params: dict[str, Any], ctx: NodeContext, family: str | None
) -> list[Problem]:
    """Settings that only the other kind of model takes, refused before the run on their
    ports (``family``: the model's transformer family, None for a UNet model)."""
    out = []
    if family is None:
        if params.get("cache_threshold", 0.0) > 0:
            out.append(
                Problem(
                    "the first-block cache works on transformer models (SD3); this is a UNet model",
                    ctx.node_id,
                    "cache_threshold",
                    "set it to 0; clock_period or token_merge speed up UNet models",
                )
            )
        return out
    title = family.upper()
    for port, off in UNET_ONLY.items():
        if params.get(port, off) != off:
            out.append(
                Problem(
                    f"{port} works on UNet models (SD 1.x, 2.x, SDXL); this is a transformer "
                    f"model ({title})",
                    ctx.node_id,
                    port,
                    f"set it to {off}; cache_threshold speeds up {title}",
                )
            )
    if params.get("scheduler", "default") != "default":
        out.append(
            Problem(
                f"{title} runs with the flow-matching sampler it ships with",
                ctx.node_id,
                "scheduler",
                "set scheduler to default",
            )
        )
    for port in ("width", "height"):
        v = params.get(port)
        if v and v % 16:
            lo = max(16, v // 16 * 16)
            out.append(
                Problem(
                    f"{port} {v} is not a multiple of 16 ({title} works on 16×16 pixel patches)",
                    ctx.node_id,
                    port,
                    f"use {lo} or {lo + 16}",
                )
            )
    return out


def refuse_unet_inputs(ctx: NodeContext, family: str, **inputs: Any) -> None:
    """ControlNet and IP-Adapter inputs steer UNets; on a transformer model they would be
    silently ignored, so a connected one stops the node, naming the input."""
    for port, value in inputs.items():
        if value:
            raise ctx.error(
                f"{port} works on UNet models (SD 1.x, 2.x, SDXL); this is a transformer "
                f"model ({family.upper()})",
                port=port,
                fix=f"disconnect {port}, or choose an SD 1.5 or SDXL model",
            )


def load_transformer(ctx: NodeContext, model: str) -> Any:
    from fathom.engine.models.transformer import KIND, loader

    ctx.check_cancelled()
    ctx.progress(0.0, "loading model")
    dev = ctx.device
    return ctx.load_model(
        KIND, model_source(ctx, model), loader(dev.torch_device, dev.dtype, offload_mode(ctx))
    )


@dataclass(eq=False)
class _PreviewView:
    """What the step previewer needs of a transformer model: its VAE (decoding with the
    latent shift SD3's VAE adds), latent channels, scale factor and run device."""

    vae: Any
    device: str
    preview_fit: Any = field(default=None)

    @property
    def latent_channels(self) -> int:
        return int(self.vae.config.latent_channels)

    @property
    def vae_scale_factor(self) -> int:
        return 2 ** (len(self.vae.config.block_out_channels) - 1)


class _ShiftedVAE:
    """The model's VAE seen as the previewer's linear fit expects: decode(z / scale) of the
    denoiser's latents, with SD3's shift added back first."""

    def __init__(self, vae: Any, shift: float) -> None:
        self.inner, self.shift, self.config = vae, shift, vae.config

    def parameters(self) -> Any:
        return self.inner.parameters()

    def decode(self, z: Any, return_dict: bool = False) -> Any:
        return self.inner.decode(z + self.shift, return_dict=return_dict)


def _previewer(ctx: NodeContext, model: Any) -> Any:
    from fathom.engine.diffusion.preview import Previewer

    vae = model.pipe.vae
    shift = float(vae.config.get("shift_factor") or 0.0)
    view = getattr(model, "_preview_view", None)
    if view is None:
        view = _PreviewView(_ShiftedVAE(vae, shift), model.device)
        model.__dict__["_preview_view"] = view  # the fit is made once per loaded model
    return Previewer(view, ctx.options.extra.get("preview", "auto"))


def _plain_prompt(ctx: NodeContext, prompt: str, port: str) -> str:
    """diffusers' SD3 pipeline takes plain text: emphasis brackets and BREAK are taken out
    (their words kept) and the log and report say their weights were not applied."""
    from fathom.engine.diffusion.prompts import is_plain, parse

    if is_plain(prompt):
        return prompt
    ctx.log.warning("%s: prompt weights are not applied to transformer models", port)
    ctx.report(**{f"{port}_weights_ignored": True})
    return " ".join(s.text.strip() for s in parse(prompt) if s.text and s.text.strip())


def run_transformer_generation(
    ctx: NodeContext,
    model: Any,
    *,
    prompt: str,
    negative_prompt: str,
    loras: str,
    steps: int,
    guidance: float,
    seed: int,
    width: int,
    height: int,
    batch_size: int,
    cache_threshold: float,
    image: Any = None,
    strength: float = 0.6,
) -> dict[str, Any]:
    """A transformer-family run with the node's LoRAs, progress, previews, cancel, the
    out-of-memory fallback and the run report; returns the generation outputs."""
    from fathom.engine.diffusion.transformer import generate
    from fathom.engine.models.memory import retry_on_oom
    from fathom.engine.models.transformer import fall_back

    files = resolve_loras(ctx, loras)
    for path, _ in files:
        ctx.record_model_file(path)
    texts = (_plain_prompt(ctx, prompt, "prompt"), _plain_prompt(ctx, negative_prompt, "negative"))
    previewer = _previewer(ctx, model)
    last = [0.0]

    def on_step(info: Any) -> None:
        msg = f"step {info.index + 1}/{info.steps}" + (" (cached)" if info.cached else "")
        ctx.progress((info.index + 1) / max(info.steps, 1), msg)  # raises Cancelled
        img = previewer(info.latents, info.seconds - last[0])
        last[0] = info.seconds
        if img is not None:
            ctx.preview(Image(img), msg)

    def attempt() -> Any:
        previewer.prepare()
        return generate(
            model,
            *texts,
            steps=steps,
            guidance=guidance,
            seed=seed,
            width=width,
            height=height,
            batch_size=batch_size,
            image=image,
            strength=strength,
            cache_threshold=cache_threshold,
            loras=files,
            callback=on_step,
        )

    lower, fail = oom_steps(ctx, model, fall_back)
    try:
        result, fallback = retry_on_oom(attempt, lower, fail)
    except LibraryError as exc:  # LoopInputError (sizes, strength...), a LoRA that won't load
        raise ctx.refuse(exc) from None
    _report(ctx, model, result, files, previewer.summary(), fallback)
    return _outputs(result)


def _report(
    ctx: NodeContext,
    model: Any,
    result: Any,
    files: list[tuple[Path, float]],
    preview: dict[str, Any],
    fallback: str | None,
) -> None:
    ctx.report(
        family=model.family,
        device=model.device,
        dtype=str(model.dtype).replace("torch.", ""),
        offload=model.offload,
        vae_tiling=model.vae_tiling,
        scheduler="default",
        steps_run=result.steps_run,
        steps_planned=result.steps_planned,
        stopped_early=False,
        accelerations=["FirstBlockCache"] if result.cache_threshold > 0 else [],
        cached_steps=result.cached_steps,
        preview=preview,
        **({"loras": [{"file": p.name, "weight": w} for p, w in files]} if files else {}),
        **({"without": list(model.without)} if model.without else {}),
        **({"oom_fallback": fallback} if fallback else {}),
    )


def _outputs(result: Any) -> dict[str, Any]:
    frames = [Image(im[:, :, :3]) for im in result.images]
    return {
        "image": frames[0],
        "images": Video.from_frames(frames, fps=1.0),
        "latent": Latent(result.latents, result.scaling_factor, result.shift_factor),
    }
