"""Generation nodes: text/image-to-image, inpainting, RGB+depth (LDM3D) and the frame stream.

Every node loads its model through the model manager (Stable Diffusion 1.x/2.x-family diffusers
folders or single .safetensors files) and runs Fathom's own loop (``engine.accel.loop``). With
every acceleration off a node's output equals the plain diffusers pipeline for the same model,
scheduler, seed and settings. Previews follow the run options (``preview``: auto, tiny, linear,
off; ``preview_vae``: a tiny autoencoder) and never change a result, so they are not parameters.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from engine.errors import NodeError, Problem
from engine.node import Input, Node, Output, Param
from engine.types import (
    RGBD,
    Bool,
    Depth,
    Enum,
    Float,
    Image,
    Int,
    Latent,
    Mask,
    Seed,
    String,
    Video,
)

SCHEDULER_CHOICES = ("default", "ddim", "euler", "euler_a", "dpmpp_2m", "unipc", "lcm")
SD15 = "stable-diffusion-v1-5/stable-diffusion-v1-5"
SD15_INPAINT = "stable-diffusion-v1-5/stable-diffusion-inpainting"
LDM3D = "Intel/ldm3d-4c"
STREAM_MODEL = "SimianLuo/LCM_Dreamshaper_v7"
LOWER_HINT = "lower width and height, or batch_size (or free memory for the model)"


# ---- shared declarations -----------------------------------------------------------------------


def _prompt_params(model: str) -> tuple[Param, ...]:
    return (
        Param("model", String, model, "model folder, .safetensors file or Hugging Face id "
              "(already downloaded: `fathom models pull ID`)"),
        Param("prompt", String, "", "what to make (may be empty)", multiline=True),
        Param("negative_prompt", String, "", "what to steer away from", multiline=True),
    )


def _sampling_params(size: int, size_min: int, steps: int = 20,
                     guidance: float = 7.5) -> tuple[Param, ...]:
    size_doc = "multiple of 8" + (" (0: the input image's size)" if size_min == 0 else "")
    return (
        Param("steps", Int, steps, "denoising steps", min=1, max=500),
        Param("guidance", Float, guidance, "classifier-free guidance scale (<= 1: off)", min=0,
              max=50, step=0.5),
        Param("seed", Seed, 0, "noise seed: the same seed gives the same image on any device"),
        Param("width", Int, size, f"output width, {size_doc}", min=size_min, max=8192, step=8),
        Param("height", Int, size, f"output height, {size_doc}", min=size_min, max=8192, step=8),
        Param("scheduler", Enum, "default", "sampler (default: the one the model ships with)",
              choices=SCHEDULER_CHOICES),
        Param("batch_size", Int, 1, "images made at once from the seed", min=1, max=64),
    )


ACCEL_PARAMS = (
    Param("token_merge", Float, 0.0, "token merging ratio on high-resolution self-attention "
          "(0: off)", min=0, max=0.9, step=0.05),
    Param("clock_period", Int, 1, "Clockwork feature reuse: the whole UNet runs every k-th step "
          "(1: off)", min=1, max=10),
    Param("clock_level", Int, 1, "Clockwork: outer resolution levels still run on cheap steps",
          min=1, max=3),
    Param("clock_adaptor", String, "identity", "Clockwork adaptor: 'identity' or a trained "
          "adaptor .safetensors file"),
    Param("adaptive_threshold", Float, 0.0, "adaptive steps: stop once the predicted image "
          "changes less than this between steps (0: off)", min=0, max=1, step=0.001),
)

GEN_OUTPUTS = (Output("image", Image, "the first image of the batch"),
               Output("images", Video, "every image of the batch, as frames"),
               Output("latent", Latent, "the final clean latents"))


def _source(ctx: Any, model: str) -> str:
    p = ctx.resolve_path(model)
    return str(p) if model and p.exists() else model


def _check(cls: type[Node], params: dict[str, Any], ctx: Any) -> list[Problem]:
    from engine.models import ModelError, locate_model

    out = []
    try:
        locate_model(params["model"], ctx.options.base_dir)
    except ModelError as exc:
        out.append(Problem(str(exc), ctx.node_id, "model"))
    for port in ("width", "height"):
        v = params.get(port)
        if v is not None and v % 8:
            out.append(Problem(f"{port} {v} is not a multiple of 8 (the VAE works on 8×8 pixel "
                               "blocks).", ctx.node_id, port,
                               f"use {max(8, v // 8 * 8)} or {v // 8 * 8 + 8}"))
    return out


def _fingerprint(params: dict[str, Any], ctx: Any) -> str:
    """The model's weights by size and mtime: replacing a checkpoint re-runs the node."""
    from engine.models import ModelError, locate_model
    from engine.models.locate import safetensors_files

    try:
        path = locate_model(params["model"], ctx.options.base_dir)
        files = safetensors_files(path)
    except ModelError:
        return ""
    stats = [(str(f.relative_to(path)) if f != path else f.name, f.stat()) for f in files]
    return f"{path.resolve()}|" + ";".join(f"{n}:{s.st_size}:{s.st_mtime_ns}" for n, s in stats)


def _load(ctx: Any, model: str) -> Any:
    from engine.models.diffusion import KIND, loader

    ctx.check_cancelled()
    ctx.progress(0.0, "loading model")
    dev = ctx.device
    return ctx.load_model(KIND, _source(ctx, model),
                          loader(dev.torch_device, dev.dtype, _offload(ctx)))


def _offload(ctx: Any) -> str:
    from engine.models.diffusion import OFFLOAD_FIX, offload_setting

    try:
        return offload_setting()
    except ValueError as exc:
        raise ctx.error(str(exc), fix=OFFLOAD_FIX) from None


def _tiny_vae(ctx: Any, source: str) -> Any:
    """A tiny autoencoder through the manager (previews, the stream's encode/decode)."""
    import torch

    dev = ctx.device

    def load(path: Any) -> Any:
        from diffusers import AutoencoderTiny

        from engine.models.diffusion import diffusers_dtype

        m = AutoencoderTiny.from_pretrained(path, **diffusers_dtype(getattr(torch, dev.dtype)),
                                            use_safetensors=True)
        return m.to(dev.torch_device).eval().requires_grad_(False)

    return ctx.load_model("tiny-vae", _source(ctx, source), load)


def _accelerations(ctx: Any, seed: int, steps: int, token_merge: float, clock_period: int,
                   clock_level: int, clock_adaptor: str, adaptive_threshold: float) -> list[Any]:
    out: list[Any] = []
    if token_merge > 0:
        from engine.accel.tome import TokenMerge

        out.append(TokenMerge(ratio=token_merge, seed=seed))
    if clock_period > 1:
        from engine.accel.clockwork import Clockwork

        adaptor = clock_adaptor if clock_adaptor in ("", "identity") else str(
            ctx.resolve_path(clock_adaptor))
        out.append(Clockwork(period=clock_period, level=clock_level,
                             adaptor=adaptor or "identity", num_steps=steps))
    if adaptive_threshold > 0:
        try:
            from engine.accel import adaptive
        except ImportError as exc:
            raise ctx.error("adaptive steps are not available in this build",
                            port="adaptive_threshold", fix="set it to 0") from exc
        out.append(adaptive.AdaptiveSteps(threshold=adaptive_threshold))
    return out


def _image_tensor(ctx: Any, image: Image, width: int, height: int, port: str = "image") -> Any:
    """An input image as 1×3×H×W in [-1, 1], resized to width×height when those are set."""
    import torch
    from torch.nn import functional as F

    rgb = torch.from_numpy(np.ascontiguousarray(image.rgb())).permute(2, 0, 1)[None]
    w, h = width or image.width, height or image.height
    if (w, h) != (image.width, image.height):
        rgb = F.interpolate(rgb, size=(h, w), mode="bicubic", antialias=True,
                            align_corners=False).clamp(0, 1)
    elif w % 8 or h % 8:
        raise ctx.error(f"the image is {w}×{h}; both sides must be multiples of 8", port=port,
                        fix="set width and height (the image is then resized) or crop it")
    return (2.0 * rgb - 1.0).contiguous()


def _mask_tensor(mask: Mask, width: int, height: int) -> Any:
    import torch
    from torch.nn import functional as F

    m = torch.from_numpy(np.ascontiguousarray(mask.data))[None, None]
    if tuple(m.shape[-2:]) != (height, width):
        m = F.interpolate(m, size=(height, width), mode="bilinear", align_corners=False)
    return m


def run_generation(ctx: Any, comps: Any, *, prompt: str, negative_prompt: str, steps: int,
                   guidance: float, seed: int, width: int, height: int, scheduler: str,
                   batch_size: int, image: Any = None, mask: Any = None, strength: float = 1.0,
                   accel: list[Any] | None = None, wrap: bool = False) -> Any:
    """The loop with progress, previews, cancellation, the out-of-memory fallback and the run
    report; LoopInputError becomes a NodeError naming the port."""
    from engine.accel.loop import LoopInputError, generate, horizontal_wrap
    from engine.accel.preview import Previewer
    from engine.models.diffusion import fall_back, settle
    from engine.models.memory import retry_on_oom

    extra = ctx.options.extra
    pv_source = extra.get("preview_vae") or os.environ.get("FATHOM_PREVIEW_VAE", "")
    previewer = Previewer(comps, extra.get("preview", "auto"),
                          _tiny_vae(ctx, pv_source) if pv_source else None)

    def on_step(info: Any) -> None:
        msg = f"step {info.step}/{info.steps}"
        ctx.progress((info.index + 1) / info.total, msg)
        img = previewer(info.pred_x0, info.seconds)
        if img is not None:
            ctx.preview(Image(img), msg)

    def attempt() -> Any:
        previewer.prepare()
        kwargs = dict(steps=steps, guidance=guidance, seed=seed, width=width, height=height,
                      batch_size=batch_size, scheduler=scheduler, image=image, mask=mask,
                      strength=strength, accel=accel or [], callback=on_step)
        if wrap:
            with horizontal_wrap(comps.unet, comps.vae):
                return generate(comps, prompt, negative_prompt, **kwargs)
        return generate(comps, prompt, negative_prompt, **kwargs)

    def lower() -> str:
        freed = ctx.models.free(keep=comps)
        fallback = fall_back(comps) or "nothing more to lower"
        ctx.log.warning("out of memory: freed %d cached models, retrying with %s", freed,
                        fallback)
        return fallback

    def fail(fallback: str) -> NodeError:
        return NodeError(f"ran out of {comps.device} memory, also after freeing cached "
                         f"models and retrying with {fallback}", node=ctx.node_id,
                         fix=LOWER_HINT)

    try:
        result, fallback = retry_on_oom(attempt, lower, fail)
    except LoopInputError as exc:
        raise ctx.error(str(exc), port=exc.port, fix=exc.fix) from None
    finally:
        settle(comps)
    ctx.report(device=comps.device, dtype=str(comps.dtype).replace("torch.", ""),
               offload=comps.offload, vae_tiling=comps.vae_tiling,
               scheduler=result.scheduler,
               steps_run=result.steps_run, steps_planned=result.steps_planned,
               stopped_early=result.stopped_early,
               accelerations=[type(a).__name__ for a in accel or []],
               preview=previewer.summary(),
               **({"oom_fallback": fallback} if fallback else {}))
    return result


def _outputs(images: np.ndarray, result: Any, comps: Any) -> dict[str, Any]:
    frames = [Image(im[:, :, :3]) for im in images]
    return {"image": frames[0], "images": Video.from_frames(frames, fps=1.0),
            "latent": Latent(result.latents, float(comps.vae.config.scaling_factor))}


# ---- nodes -------------------------------------------------------------------------------------


class ModelNode(Node):
    """A node that loads a generation model: a missing or unusable model folder is a problem
    before the run starts, and the weights' identity is part of the cache key."""

    @classmethod
    def check(cls, params: dict[str, Any], ctx: Any) -> list[Problem]:
        return _check(cls, params, ctx)

    @classmethod
    def cache_extra(cls, params: dict[str, Any], ctx: Any) -> str:
        return _fingerprint(params, ctx)


class TextToImage(ModelNode):
    """Make images from a text prompt with a Stable Diffusion-family model. Initial noise comes
    from a CPU generator: a seed gives the same image on any device. With the accelerations off
    the result equals diffusers' StableDiffusionPipeline."""

    type_id = "generate.text_to_image"
    title = "Text to Image"
    category = "generate"
    thread_safe = False  # the model (and accelerations patched onto it) is shared
    outputs = GEN_OUTPUTS
    params = (*_prompt_params(SD15), *_sampling_params(512, 64), *ACCEL_PARAMS)

    def run(self, ctx: Any, model: str, prompt: str, negative_prompt: str, steps: int,
            guidance: float, seed: int, width: int, height: int, scheduler: str,
            batch_size: int, **accel: Any) -> dict[str, Any]:
        comps = _load(ctx, model)
        res = run_generation(ctx, comps, prompt=prompt, negative_prompt=negative_prompt,
                             steps=steps, guidance=guidance, seed=seed, width=width,
                             height=height, scheduler=scheduler, batch_size=batch_size,
                             accel=_accelerations(ctx, seed, steps, **accel))
        return _outputs(res.images, res, comps)


class ImageToImage(ModelNode):
    """Re-imagine an image from a prompt: the image is encoded, noised to `strength` (1 = all
    noise) and denoised. Equals diffusers' StableDiffusionImg2ImgPipeline with the
    accelerations off."""

    type_id = "generate.image_to_image"
    title = "Image to Image"
    category = "generate"
    thread_safe = False
    inputs = (Input("image", Image, "the starting image"),)
    outputs = GEN_OUTPUTS
    params = (*_prompt_params(SD15), *_sampling_params(0, 0, steps=30),
              Param("strength", Float, 0.6, "how much to change (0: keep, 1: all new)", min=0,
                    max=1, step=0.05),
              *ACCEL_PARAMS)

    def run(self, ctx: Any, image: Image, model: str, prompt: str, negative_prompt: str,
            steps: int, guidance: float, seed: int, width: int, height: int, scheduler: str,
            batch_size: int, strength: float, **accel: Any) -> dict[str, Any]:
        x = _image_tensor(ctx, image, width, height)
        comps = _load(ctx, model)
        res = run_generation(ctx, comps, prompt=prompt, negative_prompt=negative_prompt,
                             steps=steps, guidance=guidance, seed=seed, width=x.shape[-1],
                             height=x.shape[-2], scheduler=scheduler, batch_size=batch_size,
                             image=x.to(comps.device), strength=strength,
                             accel=_accelerations(ctx, seed, steps, **accel))
        return _outputs(res.images, res, comps)


class Inpaint(ModelNode):
    """Repaint the masked part of an image (mask 1 = repaint, binarised at 0.5) with an
    inpainting model, whose UNet also takes the mask and the masked image. Equals diffusers'
    StableDiffusionInpaintPipeline with the accelerations off."""

    type_id = "generate.inpaint"
    title = "Inpaint"
    category = "generate"
    thread_safe = False
    inputs = (Input("image", Image, "the image to repaint"),
              Input("mask", Mask, "1 where to repaint"))
    outputs = GEN_OUTPUTS
    params = (*_prompt_params(SD15_INPAINT), *_sampling_params(0, 0, steps=30),
              Param("strength", Float, 1.0, "how much of the masked part to change", min=0,
                    max=1, step=0.05),
              *ACCEL_PARAMS)

    def run(self, ctx: Any, image: Image, mask: Mask, model: str, prompt: str,
            negative_prompt: str, steps: int, guidance: float, seed: int, width: int,
            height: int, scheduler: str, batch_size: int, strength: float,
            **accel: Any) -> dict[str, Any]:
        if (mask.width, mask.height) != (image.width, image.height):
            raise ctx.error(f"the mask is {mask.width}×{mask.height} but the image is "
                            f"{image.width}×{image.height}", port="mask",
                            fix="make the mask at the image's size")
        x = _image_tensor(ctx, image, width, height)
        m = _mask_tensor(mask, x.shape[-1], x.shape[-2])
        comps = _load(ctx, model)
        res = run_generation(ctx, comps, prompt=prompt, negative_prompt=negative_prompt,
                             steps=steps, guidance=guidance, seed=seed, width=x.shape[-1],
                             height=x.shape[-2], scheduler=scheduler, batch_size=batch_size,
                             image=x.to(comps.device), mask=m.to(comps.device),
                             strength=strength, accel=_accelerations(ctx, seed, steps, **accel))
        return _outputs(res.images, res, comps)


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


class TextToRGBD(ModelNode):
    """Make an image and its depth from a prompt with an LDM3D model, whose VAE decodes RGB and
    depth together. Depth is relative, 0 = nearest and 1 = farthest (LDM3D predicts
    disparity-like depth; it is flipped). Panorama mode (LDM3D-pano models) makes a 360°
    equirectangular image (width = 2 × height) whose left and right edges meet without a
    seam."""

    type_id = "generate.text_to_rgbd"
    title = "Text to RGB+Depth"
    category = "generate"
    thread_safe = False
    outputs = (Output("image", Image), Output("depth", Depth, "relative, 0 = near"),
               Output("rgbd", RGBD))
    params = (*_prompt_params(LDM3D), *_sampling_params(512, 64, steps=50, guidance=7.0),
              Param("mode", Enum, "perspective", "a normal view, or a 360° panorama "
                    "(for LDM3D-pano models, e.g. 1024×512)", choices=("perspective", "panorama")),
              Param("seamless", Bool, True, "panorama: wrap the left and right edges"),
              *ACCEL_PARAMS)

    @classmethod
    def check(cls, params: dict[str, Any], ctx: Any) -> list[Problem]:
        out = super().check(params, ctx)
        if params.get("mode") == "panorama" and params["width"] != 2 * params["height"]:
            out.append(Problem(f"a panorama is twice as wide as it is high; got "
                               f"{params['width']}×{params['height']}.", ctx.node_id, "width",
                               f"set width to {2 * params['height']}"))
        return out

    def run(self, ctx: Any, model: str, prompt: str, negative_prompt: str, steps: int,
            guidance: float, seed: int, width: int, height: int, scheduler: str,
            batch_size: int, mode: str, seamless: bool, **accel: Any) -> dict[str, Any]:
        if mode == "panorama" and width != 2 * height:
            raise ctx.error(f"a panorama is twice as wide as it is high; got {width}×{height}",
                            port="width", fix=f"set width to {2 * height}")
        comps = _load(ctx, model)
        if comps.decoded_channels not in (4, 6):
            raise ctx.error(f"this model's VAE decodes {comps.decoded_channels} channels, so it "
                            "makes no depth", port="model",
                            fix="use an LDM3D model, e.g. Intel/ldm3d-4c or Intel/ldm3d-pano")
        res = run_generation(ctx, comps, prompt=prompt, negative_prompt=negative_prompt,
                             steps=steps, guidance=guidance, seed=seed, width=width,
                             height=height, scheduler=scheduler, batch_size=batch_size,
                             accel=_accelerations(ctx, seed, steps, **accel),
                             wrap=mode == "panorama" and seamless)
        rgb, disparity = split_rgbd(res.images[0])
        image = Image(rgb)
        depth = Depth(1.0 - disparity, kind="relative")
        ctx.report(mode=mode)
        return {"image": image, "depth": depth, "rgbd": RGBD(image, depth)}


class Stream(ModelNode):
    """Restyle a frame sequence in real time (StreamDiffusion's design): the denoising stages of
    consecutive frames run as one batched UNet call, guidance is residual (no second UNet pass
    for "self"/"initialize"), and near-identical frames can be skipped. Use an LCM-capable model
    and 1–4 stages. Output frames line up with the input frames (the stream is drained)."""

    type_id = "generate.stream"
    title = "Stream (real-time img2img)"
    category = "generate"
    thread_safe = False
    inputs = (Input("frames", Video, "input frames (an Image is a one-frame video)"),)
    outputs = (Output("video", Video, "one output frame per input frame"),)
    params = (
        *_prompt_params(STREAM_MODEL),
        Param("t_index_list", String, "32,45", "the denoising stages: indices into the "
              "num_inference_steps schedule, comma-separated"),
        Param("num_inference_steps", Int, 50, "schedule the stages index into", min=1,
              max=1000),
        Param("guidance", Float, 1.2, "guidance scale (<= 1: off)", min=0, max=20, step=0.1),
        Param("cfg_type", Enum, "self", "residual CFG: self (input as negative), initialize "
              "(negative prompt once), full (ordinary CFG), none",
              choices=("self", "initialize", "full", "none")),
        Param("delta", Float, 1.0, "residual CFG strength of the virtual negative", min=0,
              max=5),
        Param("seed", Seed, 0, "noise seed"),
        Param("width", Int, 0, "frame width, multiple of 8 (0: the input's)", min=0, max=4096,
              step=8),
        Param("height", Int, 0, "frame height, multiple of 8 (0: the input's)", min=0,
              max=4096, step=8),
        Param("tiny_vae", String, "", "tiny autoencoder for encode/decode (folder or id); "
              "empty: the model's vae_tiny/ when present, else its full VAE"),
        Param("similarity_threshold", Float, 0.0, "skip frames at least this similar to the "
              "last processed one, stochastically (0: off; 0.98 typical)", min=0, max=1),
        Param("token_merge", Float, 0.0, "token merging ratio (0: off)", min=0, max=0.9),
        Param("clock_period", Int, 1, "Clockwork reuse of the UNet's low-resolution core "
              "every k-th call (1: off)", min=1, max=10),
        Param("clock_level", Int, 1, "Clockwork: outer levels that still run", min=1, max=3),
        Param("clock_reuse", Enum, "step", "Clockwork: reuse features of the same frame one "
              "stage earlier (step) or of the previous frame (frame)", choices=("step", "frame")),
    )

    @classmethod
    def check(cls, params: dict[str, Any], ctx: Any) -> list[Problem]:
        out = super().check(params, ctx)
        try:
            _stages(params["t_index_list"], params["num_inference_steps"])
        except ValueError as exc:
            out.append(Problem(str(exc), ctx.node_id, "t_index_list", "e.g. 32,45"))
        return out

    def run(self, ctx: Any, frames: Video, model: str, prompt: str, negative_prompt: str,
            t_index_list: str, num_inference_steps: int, guidance: float, cfg_type: str,
            delta: float, seed: int, width: int, height: int, tiny_vae: str,
            similarity_threshold: float, token_merge: float, clock_period: int,
            clock_level: int, clock_reuse: str) -> dict[str, Any]:
        from engine.accel.stream import StreamPipeline
        from engine.models.diffusion import settle

        try:
            stages = _stages(t_index_list, num_inference_steps)
        except ValueError as exc:
            raise ctx.error(str(exc), port="t_index_list", fix="e.g. 32,45") from None
        if len(frames) == 0:
            raise ctx.error("the video has no frames", port="frames")
        comps = _load(ctx, model)
        tiny = _tiny_vae(ctx, tiny_vae) if tiny_vae else comps.tiny_vae
        pipe = StreamPipeline(comps.unet, comps.vae, comps.text_encoder, comps.tokenizer,
                              comps.scheduler, tiny_vae=tiny)
        outs: list[Image] = []
        try:
            pipe.prepare(prompt, negative_prompt, stages, guidance, cfg_type, seed,
                         num_inference_steps=num_inference_steps, delta=delta,
                         use_tiny_vae=tiny is not None,
                         similarity_threshold=similarity_threshold or None,
                         clock_period=clock_period, clock_level=clock_level,
                         clock_reuse=clock_reuse, token_merge=token_merge)
            n = len(frames)
            total = n + pipe.latency
            for i in range(total):
                frame = frames.frame(min(i, n - 1))
                x = _image_tensor(ctx, frame, width, height, port="frames")
                y = pipe(x)
                if i >= pipe.latency:
                    rgb = ((y[0].float().clamp(-1, 1) + 1) / 2).permute(1, 2, 0).cpu().numpy()
                    outs.append(Image(rgb))
                    ctx.preview(outs[-1], f"frame {len(outs)}/{n}")
                ctx.progress((i + 1) / total, f"frame {min(i + 1, n)}/{n}")
        finally:
            pipe.close()
            settle(comps)
        flt = pipe.filter
        ctx.report(device=comps.device, dtype=str(comps.dtype).replace("torch.", ""),
                   offload=comps.offload, stages=list(stages), unet_calls=pipe.unet_calls,
                   latency=pipe.latency, tiny_vae=tiny is not None,
                   skipped_frames=flt.skipped if flt is not None else 0)
        return {"video": Video.from_frames(outs, fps=frames.fps)}


def _stages(text: str, steps: int) -> list[int]:
    try:
        stages = [int(s) for s in str(text).replace(" ", "").split(",") if s]
    except ValueError:
        raise ValueError(f"t_index_list {text!r} must be comma-separated integers") from None
    if not stages:
        raise ValueError("t_index_list needs at least one stage")
    if any(b <= a for a, b in zip(stages, stages[1:], strict=False)):
        raise ValueError(f"t_index_list {text!r} must increase")
    if stages[0] < 0 or stages[-1] >= steps:
        raise ValueError(f"t_index_list {text!r} must lie in 0..{steps - 1} "
                         "(num_inference_steps - 1)")
    return stages
