"""Generation nodes: text/image-to-image, inpainting, RGB+depth (LDM3D) and the frame stream.

Every node loads its model through the model manager (Stable Diffusion 1.x/2.x-family diffusers
folders or single .safetensors files) and runs Fathom's own loop (``engine.accel.loop``). With
every acceleration off a node's output equals the plain diffusers pipeline for the same model,
scheduler, seed and settings. Previews follow the run options (``preview``: auto, tiny, linear,
off; ``preview_vae``: a tiny autoencoder) and never change a result, so they are not parameters.
"""

from __future__ import annotations

from contextlib import ExitStack
from typing import Any

import numpy as np

from fathom.engine.context import NodeContext
from fathom.engine.errors import Problem
from fathom.engine.generation import (
    ACCEL_PARAMS,
    GEN_OUTPUTS,
    LDM3D,
    SD15,
    SD15_INPAINT,
    STREAM_MODEL,
    ModelNode,
    accelerations,
    generation_outputs,
    image_tensor,
    load_controlnets,
    load_diffusion,
    load_tiny_vae,
    loras_on,
    mask_tensor,
    model_problems,
    prompt_params,
    run_generation,
    sampling_params,
    split_rgbd,
)
from fathom.engine.generation_transformer import (
    CACHE_PARAM,
    load_transformer,
    refuse_unet_inputs,
    run_transformer_generation,
    transformer_family,
    transformer_problems,
)
from fathom.engine.node import Input, Output, Param
from fathom.engine.types import (
    RGBD,
    Bool,
    Control,
    Depth,
    Enum,
    Float,
    Image,
    ImagePrompt,
    Int,
    Mask,
    Seed,
    String,
    Video,
)

# ---- shared declarations -----------------------------------------------------------------------


# ---- nodes -------------------------------------------------------------------------------------


#: ControlNets steering the generation (generate.controlnet nodes; several add up).
CONTROL_INPUT = Input(
    "control", Control, "ControlNets to follow (generate.controlnet)", optional=True, multi=True
)
#: Images as prompts (generate.ip_adapter nodes).
IMAGE_PROMPT_INPUT = Input(
    "image_prompt",
    ImagePrompt,
    "reference images through IP-Adapters (generate.ip_adapter)",
    optional=True,
    multi=True,
)


class _EitherKind(ModelNode):
    """A generation node that runs UNet models and transformer models (SD3): the settings only
    one kind takes are refused for the other before the run."""

    families = ("sd1", "sd2", "sdxl", "sd3")

    @classmethod
    def check(cls, params: dict[str, Any], ctx: NodeContext) -> list[Problem]:
        family = transformer_family(ctx, params["model"])
        out = model_problems(cls, params, ctx)
        if family is not None:  # its own size rule (16) replaces the VAE's (8)
            out = [p for p in out if p.port not in ("width", "height")]
        return out + transformer_problems(params, ctx, family)

    def generate(
        self,
        ctx: NodeContext,
        model: str,
        common: dict[str, Any],
        *,
        scheduler: str,
        cache_threshold: float,
        control: list[Control] | None,
        image_prompt: list[ImagePrompt] | None,
        accel: dict[str, Any],
        image: Any = None,
        strength: float = 1.0,
    ) -> dict[str, Any]:
        """One run on the model's kind: a transformer model through diffusers' pipeline (with
        the first-block cache), a UNet model through Fathom's loop (with its accelerations,
        ControlNets and image prompts). ``common``: the settings both take."""
        family = transformer_family(ctx, model)
        if family is not None:
            refuse_unet_inputs(ctx, family, control=control, image_prompt=image_prompt)
            return run_transformer_generation(
                ctx,
                load_transformer(ctx, model),
                **common,
                cache_threshold=cache_threshold,
                image=image,
                strength=strength,
            )
        comps = load_diffusion(ctx, model)
        res = run_generation(
            ctx,
            comps,
            **common,
            scheduler=scheduler,
            image=None if image is None else image.to(comps.device),
            strength=strength,
            accel=accelerations(ctx, common["seed"], common["steps"], **accel),
            controls=control,
            prompts=image_prompt,
        )
        return generation_outputs(res.images, res, comps)


class TextToImage(_EitherKind):
    """Make images from a text prompt with a Stable Diffusion 1.x, 2.x, SDXL or SD3 / 3.5 model
    (a diffusers folder or a single checkpoint; the family is read from the model). Initial
    noise comes from a CPU generator: a seed gives the same image on any device. With the
    accelerations off the result equals diffusers' StableDiffusionPipeline (SDXL:
    StableDiffusionXLPipeline, an empty negative prompt being SDXL's zero embedding; SD3:
    StableDiffusion3Pipeline, whose first-block cache is `cache_threshold`)."""

    type_id = "generate.text_to_image"
    title = "Text to Image"
    category = "generate"
    main_params = ("prompt", "steps", "seed")
    thread_safe = False  # the model (and accelerations patched onto it) is shared
    inputs = (CONTROL_INPUT, IMAGE_PROMPT_INPUT)
    outputs = GEN_OUTPUTS
    params = (*prompt_params(SD15), *sampling_params(512, 64), *ACCEL_PARAMS, CACHE_PARAM)

    def run(
        self,
        ctx: NodeContext,
        model: str,
        prompt: str,
        negative_prompt: str,
        loras: str,
        steps: int,
        guidance: float,
        seed: int,
        width: int,
        height: int,
        scheduler: str,
        batch_size: int,
        cache_threshold: float,
        control: list[Control] | None = None,
        image_prompt: list[ImagePrompt] | None = None,
        **accel: Any,
    ) -> dict[str, Any]:
        return self.generate(
            ctx,
            model,
            dict(
                prompt=prompt,
                negative_prompt=negative_prompt,
                loras=loras,
                steps=steps,
                guidance=guidance,
                seed=seed,
                width=width,
                height=height,
                batch_size=batch_size,
            ),
            scheduler=scheduler,
            cache_threshold=cache_threshold,
            control=control,
            image_prompt=image_prompt,
            accel=accel,
        )


class ImageToImage(_EitherKind):
    """Re-imagine an image from a prompt: the image is encoded, noised to `strength` (1 = all
    noise) and denoised, with an SD 1.x, 2.x, SDXL or SD3 model. With the SDXL refiner this is
    its second pass (after an SDXL text-to-image node, strength about 0.3). Equals diffusers'
    StableDiffusionImg2ImgPipeline (SDXL and refiner: StableDiffusionXLImg2ImgPipeline; SD3:
    StableDiffusion3Img2ImgPipeline) with the accelerations off."""

    type_id = "generate.image_to_image"
    title = "Image to Image"
    category = "generate"
    main_params = ("prompt", "strength", "steps", "seed")
    thread_safe = False
    #: The SDXL refiner runs here: a second pass over an SDXL image at low strength.
    families = ("sd1", "sd2", "sdxl", "sdxl-refiner", "sd3")
    inputs = (Input("image", Image, "the starting image"), CONTROL_INPUT, IMAGE_PROMPT_INPUT)
    outputs = GEN_OUTPUTS
    params = (
        *prompt_params(SD15),
        *sampling_params(0, 0, steps=30),
        Param(
            "strength",
            Float,
            0.6,
            "how much to change (0: keep, 1: all new)",
            min=0,
            max=1,
            step=0.05,
        ),
        *ACCEL_PARAMS,
        CACHE_PARAM,
    )

    def run(
        self,
        ctx: NodeContext,
        image: Image,
        model: str,
        prompt: str,
        negative_prompt: str,
        loras: str,
        steps: int,
        guidance: float,
        seed: int,
        width: int,
        height: int,
        scheduler: str,
        batch_size: int,
        strength: float,
        cache_threshold: float,
        control: list[Control] | None = None,
        image_prompt: list[ImagePrompt] | None = None,
        **accel: Any,
    ) -> dict[str, Any]:
        x = image_tensor(ctx, image, width, height)
        return self.generate(
            ctx,
            model,
            dict(
                prompt=prompt,
                negative_prompt=negative_prompt,
                loras=loras,
                steps=steps,
                guidance=guidance,
                seed=seed,
                width=x.shape[-1],
                height=x.shape[-2],
                batch_size=batch_size,
            ),
            scheduler=scheduler,
            cache_threshold=cache_threshold,
            control=control,
            image_prompt=image_prompt,
            accel=accel,
            image=x,
            strength=strength,
        )


class Inpaint(ModelNode):
    """Repaint the masked part of an image (mask 1 = repaint, binarised at 0.5) with an
    inpainting model, whose UNet also takes the mask and the masked image. Equals diffusers'
    StableDiffusionInpaintPipeline with the accelerations off."""

    type_id = "generate.inpaint"
    title = "Inpaint"
    category = "generate"
    main_params = ("prompt", "strength", "steps", "seed")
    thread_safe = False
    families = ("sd1", "sd2")
    inpainting = True
    inputs = (
        Input("image", Image, "the image to repaint"),
        Input("mask", Mask, "1 where to repaint"),
        CONTROL_INPUT,
        IMAGE_PROMPT_INPUT,
    )
    outputs = GEN_OUTPUTS
    params = (
        *prompt_params(SD15_INPAINT),
        *sampling_params(0, 0, steps=30),
        Param(
            "strength", Float, 1.0, "how much of the masked part to change", min=0, max=1, step=0.05
        ),
        *ACCEL_PARAMS,
    )

    def run(
        self,
        ctx: NodeContext,
        image: Image,
        mask: Mask,
        model: str,
        prompt: str,
        negative_prompt: str,
        loras: str,
        steps: int,
        guidance: float,
        seed: int,
        width: int,
        height: int,
        scheduler: str,
        batch_size: int,
        strength: float,
        control: list[Control] | None = None,
        image_prompt: list[ImagePrompt] | None = None,
        **accel: Any,
    ) -> dict[str, Any]:
        if (mask.width, mask.height) != (image.width, image.height):
            raise ctx.error(
                f"the mask is {mask.width}×{mask.height} but the image is "
                f"{image.width}×{image.height}",
                port="mask",
                fix="make the mask at the image's size",
            )
        x = image_tensor(ctx, image, width, height)
        m = mask_tensor(mask, x.shape[-1], x.shape[-2])
        comps = load_diffusion(ctx, model)
        res = run_generation(
            ctx,
            comps,
            prompt=prompt,
            negative_prompt=negative_prompt,
            loras=loras,
            steps=steps,
            guidance=guidance,
            seed=seed,
            width=x.shape[-1],
            height=x.shape[-2],
            scheduler=scheduler,
            batch_size=batch_size,
            image=x.to(comps.device),
            mask=m.to(comps.device),
            strength=strength,
            accel=accelerations(ctx, seed, steps, **accel),
            controls=control,
            prompts=image_prompt,
        )
        return generation_outputs(res.images, res, comps)


class TextToRGBD(ModelNode):
    """Make an image and its depth from a prompt with an LDM3D model, whose VAE decodes RGB and
    depth together. Depth is relative, 0 = nearest and 1 = farthest (LDM3D predicts
    disparity-like depth; it is flipped). Panorama mode (LDM3D-pano models) makes a 360°
    equirectangular image (width = 2 × height) whose left and right edges meet without a
    seam."""

    type_id = "generate.text_to_rgbd"
    title = "Text to RGB+Depth"
    category = "generate"
    main_params = ("prompt", "steps", "seed")
    thread_safe = False
    families = ("ldm3d",)
    outputs = (
        Output("image", Image),
        Output("depth", Depth, "relative, 0 = near"),
        Output("rgbd", RGBD),
    )
    params = (
        *prompt_params(LDM3D),
        *sampling_params(512, 64, steps=50, guidance=7.0),
        Param(
            "mode",
            Enum,
            "perspective",
            "a normal view, or a 360° panorama (for LDM3D-pano models, e.g. 1024×512)",
            choices=("perspective", "panorama"),
        ),
        Param("seamless", Bool, True, "panorama: wrap the left and right edges"),
        *ACCEL_PARAMS,
    )

    @classmethod
    def check(cls, params: dict[str, Any], ctx: NodeContext) -> list[Problem]:
        out = super().check(params, ctx)
        if params.get("mode") == "panorama" and params["width"] != 2 * params["height"]:
            out.append(
                Problem(
                    f"a panorama is twice as wide as it is high; got "
                    f"{params['width']}×{params['height']}.",
                    ctx.node_id,
                    "width",
                    f"set width to {2 * params['height']}",
                )
            )
        return out

    def run(
        self,
        ctx: NodeContext,
        model: str,
        prompt: str,
        negative_prompt: str,
        loras: str,
        steps: int,
        guidance: float,
        seed: int,
        width: int,
        height: int,
        scheduler: str,
        batch_size: int,
        mode: str,
        seamless: bool,
        **accel: Any,
    ) -> dict[str, Any]:
        if mode == "panorama" and width != 2 * height:
            raise ctx.error(
                f"a panorama is twice as wide as it is high; got {width}×{height}",
                port="width",
                fix=f"set width to {2 * height}",
            )
        comps = load_diffusion(ctx, model)
        if comps.decoded_channels not in (4, 6):
            raise ctx.error(
                f"this model's VAE decodes {comps.decoded_channels} channels, so it makes no depth",
                port="model",
                fix="use an LDM3D model, e.g. Intel/ldm3d-4c or Intel/ldm3d-pano",
            )
        res = run_generation(
            ctx,
            comps,
            prompt=prompt,
            negative_prompt=negative_prompt,
            loras=loras,
            steps=steps,
            guidance=guidance,
            seed=seed,
            width=width,
            height=height,
            scheduler=scheduler,
            batch_size=batch_size,
            accel=accelerations(ctx, seed, steps, **accel),
            wrap=mode == "panorama" and seamless,
        )
        rgb, disparity = split_rgbd(res.images[0])
        image = Image(rgb)
        depth = Depth(1.0 - disparity, kind="relative")
        ctx.report(mode=mode)
        return {"image": image, "depth": depth, "rgbd": RGBD(image, depth)}


class Stream(ModelNode):
    """Restyle a frame sequence in real time (StreamDiffusion's design): the denoising stages of
    consecutive frames run as one batched UNet call, guidance is residual (no second UNet pass
    for "self"/"initialize"), and near-identical frames can be skipped. Use an LCM-capable model
    (SD 1.x, 2.x or SDXL; an LCM LoRA in `loras` makes one) and 1–4 stages. Output frames line
    up with the input frames (the stream is drained). Live (`fathom live`), the stream stays
    loaded between frames: each frame leaves after one UNet pass, `latency` frames late, and
    a prompt edit re-encodes only the prompt."""

    type_id = "generate.stream"
    title = "Stream (real-time img2img)"
    category = "generate"
    thread_safe = False
    families = ("sd1", "sd2", "sdxl")
    inputs = (
        Input("frames", Video, "input frames (an Image is a one-frame video)"),
        CONTROL_INPUT,
    )
    outputs = (Output("video", Video, "one output frame per input frame"),)
    params = (
        *prompt_params(STREAM_MODEL),
        Param(
            "t_index_list",
            String,
            "32,45",
            "the denoising stages: indices into the num_inference_steps schedule, comma-separated",
        ),
        Param("num_inference_steps", Int, 50, "schedule the stages index into", min=1, max=1000),
        Param("guidance", Float, 1.2, "guidance scale (<= 1: off)", min=0, max=20, step=0.1),
        Param(
            "cfg_type",
            Enum,
            "self",
            "residual CFG: self (input as negative), initialize "
            "(negative prompt once), full (ordinary CFG), none",
            choices=("self", "initialize", "full", "none"),
        ),
        Param("delta", Float, 1.0, "residual CFG strength of the virtual negative", min=0, max=5),
        Param("seed", Seed, 0, "noise seed"),
        Param(
            "width", Int, 0, "frame width, multiple of 8 (0: the input's)", min=0, max=4096, step=8
        ),
        Param(
            "height",
            Int,
            0,
            "frame height, multiple of 8 (0: the input's)",
            min=0,
            max=4096,
            step=8,
        ),
        Param(
            "tiny_vae",
            String,
            "",
            "tiny autoencoder for encode/decode (folder or id); "
            "empty: the model's vae_tiny/ when present, else its full VAE",
        ),
        Param(
            "similarity_threshold",
            Float,
            0.0,
            "skip frames at least this similar to the "
            "last processed one, stochastically (0: off; 0.98 typical)",
            min=0,
            max=1,
        ),
        Param("token_merge", Float, 0.0, "token merging ratio (0: off)", min=0, max=0.9),
        Param(
            "clock_period",
            Int,
            1,
            "Clockwork reuse of the UNet's low-resolution core every k-th call (1: off)",
            min=1,
            max=10,
        ),
        Param("clock_level", Int, 1, "Clockwork: outer levels that still run", min=1, max=3),
        Param(
            "clock_reuse",
            Enum,
            "step",
            "Clockwork: reuse features of the same frame one "
            "stage earlier (step) or of the previous frame (frame)",
            choices=("step", "frame"),
        ),
    )

    @classmethod
    def check(cls, params: dict[str, Any], ctx: NodeContext) -> list[Problem]:
        out = super().check(params, ctx)
        try:
            _stages(params["t_index_list"], params["num_inference_steps"])
        except ValueError as exc:
            out.append(Problem(str(exc), ctx.node_id, "t_index_list", "e.g. 32,45"))
        return out

    def run(
        self,
        ctx: NodeContext,
        frames: Video,
        model: str,
        prompt: str,
        negative_prompt: str,
        loras: str,
        t_index_list: str,
        num_inference_steps: int,
        guidance: float,
        cfg_type: str,
        delta: float,
        seed: int,
        width: int,
        height: int,
        tiny_vae: str,
        similarity_threshold: float,
        token_merge: float,
        clock_period: int,
        clock_level: int,
        clock_reuse: str,
        control: list[Control] | None = None,
    ) -> dict[str, Any]:
        from fathom.engine.diffusion.stream import StreamPipeline
        from fathom.engine.models.diffusion import settle

        try:
            stages = _stages(t_index_list, num_inference_steps)
        except ValueError as exc:
            raise ctx.error(str(exc), port="t_index_list", fix="e.g. 32,45") from None
        if len(frames) == 0:
            raise ctx.error("the video has no frames", port="frames")
        if ctx.live is not None:  # a tick: the stream kept in ctx.state moves one frame on
            given = locals()
            setup = {k: given[k] for k in _STREAM_LIVE} | {"stages": tuple(stages)}
            return {"video": _live_stream(ctx, frames, control or [], setup)}
        comps = load_diffusion(ctx, model)
        tiny = load_tiny_vae(ctx, tiny_vae) if tiny_vae else comps.tiny_vae
        pipe = StreamPipeline(
            comps.unet,
            comps.vae,
            comps.text_encoder,
            comps.tokenizer,
            comps.scheduler,
            tiny_vae=tiny,
            components=comps,
        )
        outs: list[Image] = []
        adapters = ExitStack()  # the LoRAs stay on for the whole stream, off after it
        try:
            adapters.enter_context(loras_on(ctx, comps, loras))
            pipe.prepare(
                prompt,
                negative_prompt,
                stages,
                guidance,
                cfg_type,
                seed,
                num_inference_steps=num_inference_steps,
                delta=delta,
                use_tiny_vae=tiny is not None,
                similarity_threshold=similarity_threshold or None,
                clock_period=clock_period,
                clock_level=clock_level,
                clock_reuse=clock_reuse,
                token_merge=token_merge,
            )
            nets = load_controlnets(ctx, control)  # their images come with each frame
            pipe.set_controls(
                [(net, c.scale, c.start, c.end) for net, c in zip(nets, control or [], strict=True)]
            )
            n = len(frames)
            total = n + pipe.latency
            for i in range(total):
                frame = frames.frame(min(i, n - 1))
                x = image_tensor(ctx, frame, width, height, port="frames")
                y = pipe(x, _stream_hints(control or [], min(i, n - 1), x.shape[-1], x.shape[-2]))
                if i >= pipe.latency:
                    rgb = ((y[0].float().clamp(-1, 1) + 1) / 2).permute(1, 2, 0).cpu().numpy()
                    outs.append(Image(rgb))
                    ctx.preview(outs[-1], f"frame {len(outs)}/{n}")
                ctx.progress((i + 1) / total, f"frame {min(i + 1, n)}/{n}")
        finally:
            adapters.close()
            pipe.close()
            settle(comps)
        flt = pipe.filter
        ctx.report(
            device=comps.device,
            dtype=str(comps.dtype).replace("torch.", ""),
            offload=comps.offload,
            stages=list(stages),
            unet_calls=pipe.unet_calls,
            latency=pipe.latency,
            tiny_vae=tiny is not None,
            skipped_frames=flt.skipped if flt is not None else 0,
        )
        return {"video": Video.from_frames(outs, fps=frames.fps)}


#: generate.stream's parameters a live tick reads (``stages`` is added, parsed).
_STREAM_LIVE = (
    "model",
    "loras",
    "tiny_vae",
    "num_inference_steps",
    "guidance",
    "cfg_type",
    "delta",
    "seed",
    "similarity_threshold",
    "token_merge",
    "clock_period",
    "clock_level",
    "clock_reuse",
    "prompt",
    "negative_prompt",
    "width",
    "height",
)


def _live_stream(
    ctx: NodeContext, frames: Video, controls: list[Control], setup: dict[str, Any]
) -> Video:
    """A live tick: one StreamPipeline kept in ``ctx.state`` for the whole session, so each
    tick pushes its frame(s) through the Stream Batch and takes what leaves (for the first
    ``latency`` ticks, the newest frame's one-stage estimate). A prompt change encodes the
    prompt again, nothing else; any other setting prepares the stream again."""
    prompts = (setup.pop("prompt"), setup.pop("negative_prompt"))
    size = (setup.pop("width"), setup.pop("height"))
    state = ctx.state
    key = (tuple(setup.items()), tuple((c.model, c.scale, c.start, c.end) for c in controls))
    if state.get("key") != key:
        _close_live_stream(state)
        state.update(_open_live_stream(ctx, controls, setup, prompts), key=key, prompts=prompts)
    elif state["prompts"] != prompts:
        state["pipe"].set_prompt(*prompts)
        state["prompts"] = prompts
    pipe = state["pipe"]
    outs: list[Image] = []
    for i in range(len(frames)):
        x = image_tensor(ctx, frames.frame(i), size[0], size[1], port="frames")
        y = pipe(x, _stream_hints(controls, i, x.shape[-1], x.shape[-2]))
        outs.append(Image(((y[0].float().clamp(-1, 1) + 1) / 2).permute(1, 2, 0).cpu().numpy()))
    flt = pipe.filter
    ctx.report(
        unet_calls=pipe.unet_calls,
        latency=pipe.latency,
        skipped_frames=flt.skipped if flt is not None else 0,
    )
    return Video.from_frames(outs, fps=frames.fps)


def _open_live_stream(
    ctx: NodeContext, controls: list[Control], setup: dict[str, Any], prompts: tuple[str, str]
) -> dict[str, Any]:
    """Load and prepare the stream a live session keeps; ``close`` undoes it at the end."""
    from fathom.engine.diffusion.stream import StreamPipeline
    from fathom.engine.models.diffusion import settle

    comps = load_diffusion(ctx, setup["model"])
    tiny = load_tiny_vae(ctx, setup["tiny_vae"]) if setup["tiny_vae"] else comps.tiny_vae
    pipe = StreamPipeline(
        comps.unet,
        comps.vae,
        comps.text_encoder,
        comps.tokenizer,
        comps.scheduler,
        tiny_vae=tiny,
        components=comps,
    )
    adapters = ExitStack()  # the LoRAs stay on for the whole session

    def close() -> None:
        adapters.close()
        pipe.close()
        settle(comps)

    try:
        adapters.enter_context(loras_on(ctx, comps, setup["loras"]))
        pipe.prepare(
            prompts[0],
            prompts[1],
            list(setup["stages"]),
            setup["guidance"],
            setup["cfg_type"],
            setup["seed"],
            num_inference_steps=setup["num_inference_steps"],
            delta=setup["delta"],
            use_tiny_vae=tiny is not None,
            similarity_threshold=setup["similarity_threshold"] or None,
            clock_period=setup["clock_period"],
            clock_level=setup["clock_level"],
            clock_reuse=setup["clock_reuse"],
            token_merge=setup["token_merge"],
        )
        nets = load_controlnets(ctx, controls)
        pipe.set_controls(
            [(net, c.scale, c.start, c.end) for net, c in zip(nets, controls, strict=True)]
        )
    except BaseException:
        close()
        raise
    return {"pipe": pipe, "close": close}


def _close_live_stream(state: dict[str, Any]) -> None:
    closer = state.get("close")
    state.clear()
    if callable(closer):
        closer()


def _stream_hints(controls: list[Control], i: int, width: int, height: int) -> list[Any]:
    """Each ControlNet's control image for input frame ``i``: its own frame of the control
    video (the last one once the video is shorter), else its still image; 1×3×H×W in [0, 1]."""
    import torch

    from fathom.engine.imaging.ops import resize

    out = []
    for c in controls:
        video = c.video
        still = video.frame(min(i, len(video) - 1)) if video is not None and len(video) else c.image
        rgb = still.rgb()
        if (still.width, still.height) != (width, height):
            rgb = resize(rgb, width, height, "lanczos")
        out.append(torch.from_numpy(np.ascontiguousarray(rgb)).permute(2, 0, 1)[None].clamp(0, 1))
    return out


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
        raise ValueError(
            f"t_index_list {text!r} must lie in 0..{steps - 1} (num_inference_steps - 1)"
        )
    return stages
