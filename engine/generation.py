"""What the generation nodes share: model parameters, checks and fingerprints, loading,
accelerations, tensors from port values, and one guarded generation run."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from fathom.engine.context import NodeContext
from fathom.engine.diffusion.prompts import MAX_CHUNKS
from fathom.engine.diffusion.schedulers import SCHEDULER_CHOICES
from fathom.engine.errors import LibraryError, NodeError, Problem
from fathom.engine.imaging.ops import resize
from fathom.engine.models.locate import ModelError, locate_addon
from fathom.engine.node import Node, Output, Param
from fathom.engine.types import (
    Control,
    Enum,
    Float,
    Image,
    ImagePrompt,
    Int,
    Latent,
    Mask,
    Seed,
    String,
    Video,
)

SD15 = "stable-diffusion-v1-5/stable-diffusion-v1-5"


SD15_INPAINT = "stable-diffusion-v1-5/stable-diffusion-inpainting"


LDM3D = "Intel/ldm3d-4c"


STREAM_MODEL = "SimianLuo/LCM_Dreamshaper_v7"


LOWER_HINT = "lower width and height, or batch_size (or free memory for the model)"


LORA_PARAM = Param(
    "loras",
    String,
    "",
    "LoRA adapters, one per line: a .safetensors file or a name in the models folders' "
    "loras/, then :WEIGHT (1 when left out), e.g. ink-wash:0.8",
    multiline=True,
    suggest="loras",
)


def prompt_params(model: str) -> tuple[Param, ...]:
    return (
        Param(
            "model",
            String,
            model,
            "model folder, .safetensors file or Hugging Face id "
            "(already downloaded: `fathom models pull ID`)",
            suggest="models",
        ),
        Param("prompt", String, "", "what to make (may be empty)", multiline=True),
        Param("negative_prompt", String, "", "what to steer away from", multiline=True),
        LORA_PARAM,
    )


def guidance_param(default: float = 7.5) -> Param:
    """The classifier-free guidance scale parameter, declared once so every generating node
    (images, video, 3D) offers the same range and wording."""
    return Param(
        "guidance",
        Float,
        default,
        "classifier-free guidance scale (<= 1: off)",
        min=0,
        max=50,
        step=0.5,
    )


def sampling_params(
    size: int, size_min: int, steps: int = 20, guidance: float = 7.5
) -> tuple[Param, ...]:
    size_doc = "multiple of 8" + (" (0: the input image's size)" if size_min == 0 else "")
    return (
        Param("steps", Int, steps, "denoising steps", min=1, max=500),
        guidance_param(guidance),
        Param("seed", Seed, 0, "noise seed: the same seed gives the same image on any device"),
        Param("width", Int, size, f"output width, {size_doc}", min=size_min, max=8192, step=8),
        Param("height", Int, size, f"output height, {size_doc}", min=size_min, max=8192, step=8),
        Param(
            "scheduler",
            Enum,
            "default",
            "sampler (default: the one the model ships with)",
            choices=SCHEDULER_CHOICES,
        ),
        Param("batch_size", Int, 1, "images made at once from the seed", min=1, max=64),
    )


ACCEL_PARAMS = (
    Param(
        "token_merge",
        Float,
        0.0,
        "token merging ratio on high-resolution self-attention (0: off)",
        min=0,
        max=0.9,
        step=0.05,
    ),
    Param(
        "clock_period",
        Int,
        1,
        "Clockwork feature reuse: the whole UNet runs every k-th step (1: off)",
        min=1,
        max=10,
    ),
    Param(
        "clock_level",
        Int,
        1,
        "Clockwork: outer resolution levels still run on cheap steps",
        min=1,
        max=3,
    ),
    Param(
        "clock_adaptor",
        String,
        "identity",
        "Clockwork adaptor: 'identity' or a trained adaptor .safetensors file",
    ),
    Param(
        "adaptive_threshold",
        Float,
        0.0,
        "adaptive steps: stop once the predicted image "
        "changes less than this between steps (0: off)",
        min=0,
        max=1,
        step=0.001,
    ),
)


GEN_OUTPUTS = (
    Output("image", Image, "the first image of the batch"),
    Output("images", Video, "every image of the batch, as frames"),
    Output("latent", Latent, "the final clean latents"),
)


def model_source(ctx: NodeContext, model: str) -> str:
    p = ctx.resolve_path(model)
    return str(p) if model and p.exists() else model


def model_problems(cls: type[Node], params: dict[str, Any], ctx: NodeContext) -> list[Problem]:
    """A model that is missing, or of a family (or kind) the node does not run, is refused
    before the run, naming what it is and what the node takes; so are sizes the VAE cannot
    encode."""
    from fathom.engine.models import ModelError, locate_model

    out = []
    try:
        path = locate_model(params["model"], ctx.options.base_dir)
    except ModelError as exc:
        out.append(Problem(str(exc), ctx.node_id, "model"))
    else:
        out += family_problems(cls, path, ctx)
        out += lora_problems(params.get("loras") or "", path, ctx)
    for port in ("width", "height"):
        v = params.get(port)
        if v is not None and v % 8:
            out.append(
                Problem(
                    f"{port} {v} is not a multiple of 8 (the VAE works on 8×8 pixel blocks).",
                    ctx.node_id,
                    port,
                    f"use {max(8, v // 8 * 8)} or {v // 8 * 8 + 8}",
                )
            )
    return out


def family_problems(cls: type[Node], path: Any, ctx: NodeContext) -> list[Problem]:
    from fathom.engine.models import ModelError
    from fathom.engine.models.families import identify, names

    families: tuple[str, ...] = getattr(cls, "families", ())
    inpainting: bool | None = getattr(cls, "inpainting", None)
    try:
        info = identify(path)
    except ModelError as exc:
        return [Problem(str(exc), ctx.node_id, "model")]
    if families and info.family not in families:
        return [
            Problem(
                f"{path.name} is {info.title} model; {cls.title or cls.type_id} runs "
                f"{names(families)} models.",
                ctx.node_id,
                "model",
                f"choose a {names(families)} model",
            )
        ]
    if inpainting is not None and info.kind == "pipeline" and info.inpainting != inpainting:
        need = "an inpainting model" if inpainting else "a model that is not for inpainting"
        return [
            Problem(
                f"{path.name} is {'an' if info.inpainting else 'not an'} inpainting model; "
                f"{cls.title or cls.type_id} needs {need}.",
                ctx.node_id,
                "model",
                "use generate.inpaint for inpainting models"
                if info.inpainting
                else "choose an inpainting checkpoint",
            )
        ]
    return []


def lora_problems(text: str, model: Any, ctx: NodeContext) -> list[Problem]:
    """Each LoRA line must name a LoRA file that exists and was made for this model (the width
    of the text features its cross-attention takes); checked before the run."""
    from fathom.engine.diffusion.lora import parse_loras
    from fathom.engine.errors import LibraryError
    from fathom.engine.models import ModelError
    from fathom.engine.models.families import (
        CROSS_DIMS,
        TITLES,
        identify,
        lora_cross_dim,
        model_cross_dim,
        safetensors_header,
    )

    try:
        refs = parse_loras(text)
    except LibraryError as exc:
        return [Problem(str(exc), ctx.node_id, "loras", exc.fix)]
    out = []
    want = model_cross_dim(model) if refs else None
    for ref in refs:
        try:
            path = locate_addon(ref.source, "lora", ctx.options.base_dir)
            info = identify(path)
            got = lora_cross_dim(safetensors_header(path))
        except ModelError as exc:
            out.append(Problem(f"line {ref.line}: {exc}", ctx.node_id, "loras"))
            continue
        if info.kind != "lora":
            out.append(
                Problem(
                    f"line {ref.line}: {path.name} is {info.title} {info.kind}, not a LoRA.",
                    ctx.node_id,
                    "loras",
                    "list LoRA files here; the model goes in `model`",
                )
            )
        elif want is not None and got is not None and got != want:
            made = TITLES.get(CROSS_DIMS.get(got, ""), f"a model with {got}-wide text features")
            mine = TITLES.get(CROSS_DIMS.get(want, ""), f"a model with {want}-wide text features")
            out.append(
                Problem(
                    f"line {ref.line}: {path.name} is a LoRA for {made}, but the model is {mine}.",
                    ctx.node_id,
                    "loras",
                    "choose a LoRA made for this model's family, or a model of the LoRA's",
                )
            )
    return out


def resolve_loras(ctx: NodeContext, text: str) -> list[tuple[Path, float]]:
    """The LoRA files and weights a ``loras`` text lists (NodeError on the ``loras`` port)."""
    from fathom.engine.diffusion.lora import parse_loras
    from fathom.engine.errors import LibraryError
    from fathom.engine.models import ModelError

    try:
        refs = parse_loras(text)
        return [(locate_addon(r.source, "lora", ctx.options.base_dir), r.weight) for r in refs]
    except LibraryError as exc:
        raise ctx.refuse(exc) from None
    except ModelError as exc:
        raise ctx.error(str(exc), port="loras") from None


@contextmanager
def loras_on(ctx: NodeContext, comps: Any, text: str) -> Iterator[None]:
    """The node's LoRAs on the shared model for the block, recorded in the run report (files
    hashed like the model's)."""
    from fathom.engine.diffusion.lora import active

    loras = resolve_loras(ctx, text)
    for path, _ in loras:
        ctx.record_model_file(path)
    if loras:
        ctx.report(loras=[{"file": p.name, "weight": w} for p, w in loras])
    try:
        with active(comps, loras):
            yield
    except LibraryError as exc:
        raise ctx.refuse(exc) from None


def embedding_folders() -> list[Path]:
    """Where textual-inversion embeddings are found by name: the models folders' embeddings/
    (and embedding/) subfolders."""
    from fathom.engine.models.locate import ADDON_FOLDERS, model_folders

    return [f / sub for f in model_folders() for sub in ADDON_FOLDERS["embedding"]]


def load_embeddings(ctx: NodeContext, comps: Any, *texts: str) -> None:
    """The embeddings the prompts name, into the model (once per file version), recorded in
    the run report like model files."""
    from fathom.engine.diffusion import embeddings

    found = embeddings.find(embedding_folders())
    used = embeddings.triggers(" ".join(texts), list(found))
    for name in used:
        try:
            embeddings.load(comps, name, found[name])
        except LibraryError as exc:
            raise ctx.refuse(exc) from None
        ctx.record_model_file(found[name])
    if used:
        ctx.report(embeddings=used)


def model_fingerprint(params: dict[str, Any], ctx: NodeContext) -> str:
    """The model's weights by size and mtime: replacing a checkpoint re-runs the node."""
    from fathom.engine.models import ModelError, locate_model
    from fathom.engine.models.locate import safetensors_files

    try:
        path = locate_model(params["model"], ctx.options.base_dir)
        files = safetensors_files(path)
    except ModelError:
        return ""
    stats = [(str(f.relative_to(path)) if f != path else f.name, f.stat()) for f in files]
    from fathom.engine.diffusion.embeddings import find, triggers

    found = find(embedding_folders())
    text = f"{params.get('prompt', '')} {params.get('negative_prompt', '')}"
    stats += [(str(found[n]), found[n].stat()) for n in triggers(text, list(found))]
    for ref in _lora_refs(params.get("loras") or ""):
        try:
            lora = locate_addon(ref, "lora", ctx.options.base_dir)
        except ModelError:
            continue
        stats.append((str(lora), lora.stat()))
    return f"{path.resolve()}|" + ";".join(f"{n}:{s.st_size}:{s.st_mtime_ns}" for n, s in stats)


def _lora_refs(text: str) -> list[str]:
    from fathom.engine.diffusion.lora import parse_loras
    from fathom.engine.errors import LibraryError

    try:
        return [r.source for r in parse_loras(text)]
    except LibraryError:
        return []


def load_diffusion(ctx: NodeContext, model: str) -> Any:
    from fathom.engine.models.diffusion import KIND, loader

    ctx.check_cancelled()
    ctx.progress(0.0, "loading model")
    dev = ctx.device
    return ctx.load_model(
        KIND, model_source(ctx, model), loader(dev.torch_device, dev.dtype, offload_mode(ctx))
    )


def load_folder_model(ctx: NodeContext, model: str, kind: str, loader: Any, fix: str) -> Any:
    """Load ``model`` through ``loader(device, dtype, offload)`` (an ``engine.models`` module's
    ``loader``) under the model cache's ``kind``; a folder the loader refuses becomes a node
    error on the model port with ``fix``. The one loading step of the folder-model nodes
    (Zero123++, SVD, Shap-E), so they check cancellation and report progress alike."""
    ctx.check_cancelled()
    ctx.progress(0.0, "loading model")
    dev = ctx.device
    try:
        return ctx.load_model(
            kind, model_source(ctx, model), loader(dev.torch_device, dev.dtype, offload_mode(ctx))
        )
    except ModelError as exc:
        raise ctx.error(str(exc), port="model", fix=fix) from None


def offload_mode(ctx: NodeContext) -> str:
    from fathom.engine.models.diffusion import OFFLOAD_FIX, offload_setting

    try:
        return offload_setting()
    except ValueError as exc:
        raise ctx.error(str(exc), fix=OFFLOAD_FIX) from None


def load_tiny_vae(ctx: NodeContext, source: str) -> Any:
    """A tiny autoencoder through the manager (previews, the stream's encode/decode)."""
    import torch

    dev = ctx.device

    def load(path: Any) -> Any:
        from diffusers import AutoencoderTiny

        from fathom.engine.models.diffusion import diffusers_dtype

        m = AutoencoderTiny.from_pretrained(
            path, **diffusers_dtype(getattr(torch, dev.dtype)), use_safetensors=True
        )
        return m.to(dev.torch_device).eval().requires_grad_(False)

    return ctx.load_model("tiny-vae", model_source(ctx, source), load)


def accelerations(
    ctx: NodeContext,
    seed: int,
    steps: int,
    token_merge: float,
    clock_period: int,
    clock_level: int,
    clock_adaptor: str,
    adaptive_threshold: float,
) -> list[Any]:
    out: list[Any] = []
    if token_merge > 0:
        from fathom.engine.accel.tome import TokenMerge

        out.append(TokenMerge(ratio=token_merge, seed=seed))
    if clock_period > 1:
        from fathom.engine.accel.clockwork import Clockwork

        adaptor = (
            clock_adaptor
            if clock_adaptor in ("", "identity")
            else str(ctx.resolve_path(clock_adaptor))
        )
        out.append(
            Clockwork(
                period=clock_period,
                level=clock_level,
                adaptor=adaptor or "identity",
                num_steps=steps,
            )
        )
    if adaptive_threshold > 0:
        try:
            from fathom.engine.accel import adaptive
        except ImportError as exc:
            raise ctx.error(
                "adaptive steps are not available in this build",
                port="adaptive_threshold",
                fix="set it to 0",
            ) from exc
        out.append(adaptive.AdaptiveSteps(threshold=adaptive_threshold))
    return out


def image_tensor(
    ctx: NodeContext, image: Image, width: int, height: int, port: str = "image"
) -> Any:
    """An input image as 1×3×H×W in [-1, 1], resized to width×height when those are set."""
    import torch
    from torch.nn import functional as F

    rgb = torch.from_numpy(np.ascontiguousarray(image.rgb())).permute(2, 0, 1)[None]
    w, h = width or image.width, height or image.height
    if (w, h) != (image.width, image.height):
        rgb = F.interpolate(
            rgb, size=(h, w), mode="bicubic", antialias=True, align_corners=False
        ).clamp(0, 1)
    elif w % 8 or h % 8:
        raise ctx.error(
            f"the image is {w}×{h}; both sides must be multiples of 8",
            port=port,
            fix="set width and height (the image is then resized) or crop it",
        )
    return (2.0 * rgb - 1.0).contiguous()


def mask_tensor(mask: Mask, width: int, height: int) -> Any:
    import torch
    from torch.nn import functional as F

    m = torch.from_numpy(np.ascontiguousarray(mask.data))[None, None]
    if tuple(m.shape[-2:]) != (height, width):
        m = F.interpolate(m, size=(height, width), mode="bilinear", align_corners=False)
    return m


def run_generation(
    ctx: NodeContext,
    comps: Any,
    *,
    prompt: str | list[str],
    negative_prompt: str,
    steps: int,
    guidance: float,
    seed: int,
    width: int,
    height: int,
    scheduler: str,
    batch_size: int,
    image: Any = None,
    mask: Any = None,
    strength: float = 1.0,
    accel: list[Any] | None = None,
    wrap: bool = False,
    loras: str = "",
    controls: list[Control] | None = None,
    prompts: list[ImagePrompt] | None = None,
    latents: Any = None,
) -> Any:
    """The loop with the node's LoRAs on, progress, previews, cancellation, the out-of-memory
    fallback and the run report; LoopInputError becomes a NodeError naming the port. Prompt
    lists and ``latents``: as ``engine.diffusion.loop.generate`` takes them."""
    from fathom.engine.diffusion.ipadapter import active as ipadapter_on
    from fathom.engine.diffusion.loop import generate
    from fathom.engine.diffusion.seamless import horizontal_wrap
    from fathom.engine.errors import LoopInputError
    from fathom.engine.models.diffusion import fall_back, settle
    from fathom.engine.models.memory import retry_on_oom

    previewer = _previewer(ctx, comps)

    def on_step(info: Any) -> None:
        msg = f"step {info.step}/{info.steps}"
        ctx.progress((info.index + 1) / info.total, msg)
        img = previewer(info.pred_x0, info.seconds)
        if img is not None:
            ctx.preview(Image(img), msg)

    texts = [prompt] if isinstance(prompt, str) else prompt
    load_embeddings(ctx, comps, *texts, negative_prompt)
    control = control_inputs(ctx, controls, width, height)
    encoder, adapters = image_prompts(ctx, prompts)
    embeds: list[Any] | None = None

    def attempt() -> Any:
        previewer.prepare()
        kwargs = dict(
            steps=steps,
            guidance=guidance,
            seed=seed,
            width=width,
            height=height,
            batch_size=batch_size,
            scheduler=scheduler,
            image=image,
            mask=mask,
            strength=strength,
            accel=accel or [],
            callback=on_step,
            controls=control,
            image_embeds=embeds,
            latents=latents,
        )
        if wrap:
            with horizontal_wrap(comps.unet, comps.vae):
                return generate(comps, prompt, negative_prompt, **kwargs)
        return generate(comps, prompt, negative_prompt, **kwargs)

    lower, fail = oom_steps(ctx, comps, fall_back)
    cfg = guidance > 1.0 and comps.unet.config.time_cond_proj_dim is None
    try:
        with (
            loras_on(ctx, comps, loras),
            ipadapter_on(comps, encoder, adapters, batch_size * len(texts), cfg) as embeds,
        ):
            result, fallback = retry_on_oom(attempt, lower, fail)
    except LoopInputError as exc:
        raise ctx.refuse(exc) from None
    finally:
        settle(comps)
    _report(ctx, comps, result, accel or [], previewer.summary(), fallback)
    return result


def _previewer(ctx: NodeContext, comps: Any) -> Any:
    """The run's step previews as the run options ask (``preview``, ``preview_vae``)."""
    from fathom.engine.diffusion.preview import Previewer

    extra = ctx.options.extra
    pv_source = extra.get("preview_vae") or os.environ.get("FATHOM_PREVIEW_VAE", "")
    return Previewer(
        comps, extra.get("preview", "auto"), load_tiny_vae(ctx, pv_source) if pv_source else None
    )


def _report(
    ctx: NodeContext,
    comps: Any,
    result: Any,
    accel: list[Any],
    preview: dict[str, Any],
    fallback: str | None,
) -> None:
    """How the generation ran, for the run report (and a cut prompt, for the log too)."""
    ctx.report(
        device=comps.device,
        dtype=str(comps.dtype).replace("torch.", ""),
        offload=comps.offload,
        vae_tiling=comps.vae_tiling,
        # SDXL's VAE overflows in float16: it decoded in float32 (its force_upcast).
        vae_upcast=bool(getattr(comps, "vae_upcast", False)),
        scheduler=result.scheduler,
        steps_run=result.steps_run,
        steps_planned=result.steps_planned,
        stopped_early=result.stopped_early,
        accelerations=[type(a).__name__ for a in accel],
        preview=preview,
        prompt_chunks=result.prompt_chunks,
        **({"prompt_cut_tokens": result.prompt_cut} if result.prompt_cut else {}),
        **({"oom_fallback": fallback} if fallback else {}),
    )
    if result.prompt_cut:
        ctx.log.warning(
            "the prompt is longer than %d chunks of 75 tokens: its last %d tokens were cut",
            MAX_CHUNKS,
            result.prompt_cut,
        )


def load_controlnets(ctx: NodeContext, controls: list[Control] | None) -> list[Any]:
    """The Controls' ControlNet models, loaded through the model manager (shared like any
    model)."""
    from fathom.engine.models.controlnet import KIND, loader

    dev = ctx.device
    out = []
    for k, c in enumerate(controls or []):
        try:
            load = loader(dev.torch_device, dev.dtype)
            out.append(ctx.load_model(KIND, model_source(ctx, c.model), load))
        except ModelError as exc:
            raise ctx.error(f"ControlNet {k + 1}: {exc}", port="control") from None
    return out


def control_inputs(
    ctx: NodeContext, controls: list[Control] | None, width: int, height: int
) -> list[Any]:
    """The node's Controls as loaded ControlNets with their control images resized to the
    output size, as the loop takes them."""
    if not controls:
        return []
    import torch

    from fathom.engine.diffusion.control import ControlInput

    out = []
    for c, net in zip(controls, load_controlnets(ctx, controls), strict=True):
        rgb = c.image.rgb()
        if (c.image.width, c.image.height) != (width, height):
            rgb = resize(rgb, width, height, "lanczos")
        image = torch.from_numpy(np.ascontiguousarray(rgb)).permute(2, 0, 1)[None]
        out.append(ControlInput(net, image.clamp(0, 1), c.scale, c.start, c.end))
    return out


def image_prompts(ctx: NodeContext, prompts: list[ImagePrompt] | None) -> tuple[Any, list[Any]]:
    """The node's image prompts as loaded IP-Adapters (weights and their shared CLIP image
    encoder, from the ``image_encoder/`` folder beside the adapter file, as the h94 repos lay
    them out) through the model manager."""
    if not prompts:
        return None, []
    from fathom.engine.diffusion.ipadapter import AdapterInput, read_state

    encoders = {Path(p.model).parent / "image_encoder" for p in prompts}
    if len(encoders) != 1:
        raise ctx.error(
            "the IP-Adapters use different image encoders; one run takes one",
            port="ip_adapter",
            fix="use IP-Adapters that share an image_encoder/ folder",
        )
    (folder,) = encoders
    if not (folder / "config.json").is_file():
        raise ctx.error(
            f"the IP-Adapter's CLIP image encoder was not found at {folder}",
            port="ip_adapter",
            fix="put the adapter's image_encoder/ folder beside its .safetensors file "
            "(as the h94/IP-Adapter repositories do)",
        )
    dev = ctx.device
    try:
        encoder = ctx.load_model(
            "clip-vision", str(folder), _vision_loader(dev.torch_device, dev.dtype)
        )
        inputs = [
            AdapterInput(ctx.load_model("ip-adapter", p.model, read_state), p.image.rgb(), p.scale)
            for p in prompts
        ]
    except LibraryError as exc:
        raise ctx.refuse(exc) from None
    return encoder, inputs


def _vision_loader(device: str, dtype: str) -> Any:
    def load(path: Path) -> Any:
        import torch
        from transformers import CLIPVisionModelWithProjection

        model: Any = CLIPVisionModelWithProjection.from_pretrained(
            path, dtype=getattr(torch, dtype), use_safetensors=True
        )
        return model.to(device).eval().requires_grad_(False)

    return load


def generation_outputs(images: np.ndarray, result: Any, comps: Any) -> dict[str, Any]:
    frames = [Image(im[:, :, :3]) for im in images]
    return {
        "image": frames[0],
        "images": Video.from_frames(frames, fps=1.0),
        "latent": Latent(result.latents, float(comps.vae.config.scaling_factor)),
    }


class ModelNode(Node):
    """A node that loads a generation model: a missing or unusable model folder, or one of a
    family it does not run, is a problem before the run starts, and the weights' identity is
    part of the cache key."""

    #: The model families (``engine.models.families.TITLES``) the node runs.
    families: ClassVar[tuple[str, ...]] = ("sd1", "sd2", "sdxl")
    #: True: needs an inpainting UNet; False: refuses one; None: either.
    inpainting: ClassVar[bool | None] = False

    @classmethod
    def check(cls, params: dict[str, Any], ctx: NodeContext) -> list[Problem]:
        return model_problems(cls, params, ctx)

    @classmethod
    def cache_extra(cls, params: dict[str, Any], ctx: NodeContext) -> str:
        return model_fingerprint(params, ctx)


def split_rgbd(decoded: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """LDM3D's decode step: the VAE decodes RGB plus depth. 4 channels: depth is the 4th;
    6 channels: depth is 16-bit, high byte in the 5th and low byte in the 6th (quantised to
    8 bits each, as the model was trained). Returns RGB (…×3) and disparity-like depth in
    [0, 1] (1 = near, as LDM3D's DPT-made training depth)."""
    rgb = decoded[..., :3]
    c = decoded.shape[-1]
    if c == 4:
        return rgb, decoded[..., 3]
    if c == 6:
        hi = np.round(decoded[..., 4] * 255.0)
        lo = np.round(decoded[..., 5] * 255.0)
        return rgb, ((hi * 256.0 + lo) / 65535.0).astype(np.float32)
    raise ValueError(f"a decoded RGB+depth image has 4 or 6 channels, not {c}")


def oom_steps(
    ctx: Any, model: Any, fall_back: Callable[[Any], str | None]
) -> tuple[Callable[[], str], Callable[[str], NodeError]]:
    """What ``retry_on_oom`` does on running out of memory for ``model`` (UNet components or
    a transformer pipeline): free the other cached models and lower the model's footprint one
    step (its family's ``fall_back``), then, if that is not enough, the error naming what was
    tried."""

    def lower() -> str:
        freed = ctx.models.free(keep=model)
        fallback = fall_back(model) or "nothing more to lower"
        ctx.log.warning("out of memory: freed %d cached models, retrying with %s", freed, fallback)
        return fallback

    def fail(fallback: str) -> NodeError:
        return NodeError(
            f"ran out of {model.device} memory, also after freeing cached models and retrying "
            f"with {fallback}",
            node=ctx.node_id,
            fix=LOWER_HINT,
        )

    return lower, fail
