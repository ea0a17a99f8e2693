"""Image-to-video generation with Stable Video Diffusion (diffusers' StableVideoDiffusionPipeline).

The model loads through the model manager (``engine.models.svd``); the denoising runs in
diffusers' pipeline and the temporal VAE decode runs here, chunk by chunk, so a long clip
never needs every frame's activations at once and frames become Images as they are decoded.
With the same seed the frames equal the pipeline's own output.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from fathom.engine.context import NodeContext
from fathom.engine.errors import NodeError, Problem
from fathom.engine.generation import ModelNode, load_folder_model
from fathom.engine.node import Input, Output, Param
from fathom.engine.types import Float, Image, Int, Seed, String, Video

SVD = "stabilityai/stable-video-diffusion-img2vid-xt"
MEMORY_HINT = "lower decode_chunk_size, frames, or width and height (or free memory)"


def chunks(total: int, size: int) -> list[tuple[int, int]]:
    """Frame ranges of one VAE decode each; size 0 means every frame at once."""
    size = total if size <= 0 else size
    return [(a, min(a + size, total)) for a in range(0, total, size)]


def to_pil(image: Image) -> Any:
    """8-bit RGB, the form the pipeline conditions its CLIP image encoder with as trained (its
    tensor input skips the 224×224 resize the encoder needs)."""
    from PIL import Image as PILImage

    rgb = np.clip(image.rgb(), 0.0, 1.0)
    return PILImage.fromarray((rgb * 255.0).round().astype(np.uint8))


def decode_frames(pipe: Any, latents: Any, chunk: int, on_chunk: Any = None) -> list[Image]:
    """Decode B=1 video latents (1×T×C×h×w) ``chunk`` frames per VAE call, through the
    pipeline's own decode and post-processing. The temporal decoder mixes the frames of one
    call, so the chunk size is part of the result (diffusers' default: all frames at once)."""
    total = latents.shape[1]
    out: list[Image] = []
    for a, b in chunks(total, chunk):
        part = pipe.decode_latents(latents[:, a:b], b - a, b - a)
        arr = pipe.video_processor.postprocess_video(video=part, output_type="np")[0]
        del part
        out.extend(Image(np.ascontiguousarray(f, dtype=np.float32)) for f in arr)
        if on_chunk is not None:
            on_chunk(b, total, out[-1])
    return out


def lower_memory(ctx: NodeContext, m: Any) -> str:
    """One step down after running out of memory: drop every other cached model and, on a GPU,
    move to more CPU offload. Returns what changed, for the report."""
    from fathom.engine.models.svd import place

    changed = [f"freeing {ctx.models.free(keep=m)} cached models"]
    nxt = {"none": "model", "model": "sequential"}.get(m.offload)
    if m.device.startswith("cuda") and nxt is not None:
        m.offload = place(m.pipe, m.device, nxt)
        changed.append(f"CPU offload ({nxt})")
    return ", ".join(changed)


def _falling_guidance(lo: float, hi: float) -> tuple[str, str] | None:
    """(problem, fix) when the guidance ramp would fall from the first frame to the last."""
    if lo <= hi:
        return None
    return (
        f"min_guidance {lo} is above max_guidance {hi} (guidance rises from the first "
        "frame to the last)",
        f"set it to at most {hi}, or raise max_guidance",
    )


class ImageToVideo(ModelNode):
    """Animate a still image into a short clip with Stable Video Diffusion. `fps` and
    `motion_bucket_id` are the model's micro-conditioning (more motion for a higher bucket);
    guidance rises from min_guidance on the first frame to max_guidance on the last. Initial
    noise comes from a CPU generator, so a seed gives the same clip on any device."""

    type_id = "generate.image_to_video"
    title = "Image to Video (SVD)"
    category = "generate"
    thread_safe = False  # the model is shared
    families = ("svd",)
    inpainting = None
    inputs = (Input("image", Image, "the first frame to animate"),)
    outputs = (
        Output("video", Video, "the generated frames at `fps`"),
        Output("last_frame", Image, "the final frame, to continue from"),
    )
    params = (
        Param(
            "model",
            String,
            SVD,
            "Stable Video Diffusion folder or Hugging Face id (already "
            "downloaded: `fathom models pull ID`)",
        ),
        Param("frames", Int, 0, "frames to make (0: the model's own, 14 or 25)", min=0, max=256),
        Param(
            "fps",
            Int,
            7,
            "frames per second: the output's rate and the model's fps conditioning",
            min=1,
            max=60,
        ),
        Param(
            "motion_bucket_id",
            Int,
            127,
            "how much motion (the model's motion conditioning)",
            min=0,
            max=1023,
        ),
        Param(
            "noise_aug_strength",
            Float,
            0.02,
            "noise added to the conditioning image; more departs further from it and moves more",
            min=0,
            max=1,
            step=0.01,
        ),
        Param("steps", Int, 25, "denoising steps", min=1, max=500),
        Param("min_guidance", Float, 1.0, "guidance on the first frame", min=0, max=20, step=0.5),
        Param(
            "max_guidance",
            Float,
            3.0,
            "guidance on the last frame (<= 1 everywhere: guidance off)",
            min=0,
            max=20,
            step=0.5,
        ),
        Param("seed", Seed, 0, "noise seed: the same seed gives the same clip on any device"),
        Param(
            "width",
            Int,
            1024,
            "frame width, multiple of 8 (SVD was trained at 1024×576)",
            min=8,
            max=4096,
            step=8,
        ),
        Param("height", Int, 576, "frame height, multiple of 8", min=8, max=4096, step=8),
        Param(
            "decode_chunk_size",
            Int,
            8,
            "frames per VAE decode (0: all at once); lower "
            "needs less memory, higher is smoother across chunk borders",
            min=0,
            max=256,
        ),
    )

    @classmethod
    def check(cls, params: dict[str, Any], ctx: NodeContext) -> list[Problem]:
        problems = super().check(params, ctx)
        bad = _falling_guidance(params.get("min_guidance", 1.0), params.get("max_guidance", 3.0))
        if bad:
            problems.append(Problem(bad[0], ctx.node_id, "min_guidance", bad[1]))
        return problems

    def run(
        self,
        ctx: NodeContext,
        image: Image,
        model: str,
        frames: int,
        fps: int,
        motion_bucket_id: int,
        noise_aug_strength: float,
        steps: int,
        min_guidance: float,
        max_guidance: float,
        seed: int,
        width: int,
        height: int,
        decode_chunk_size: int,
    ) -> dict[str, Any]:
        import torch

        from fathom.engine.models.memory import retry_on_oom

        _check_settings(ctx, width, height, min_guidance, max_guidance)
        m = self._load(ctx, model)
        pipe = m.pipe
        n = frames or int(pipe.unet.config.num_frames)
        # The pipeline decides whether to guide twice: from max_guidance when it encodes the
        # image, from the per-frame ramp while denoising. One frame's ramp is min_guidance
        # alone, so give it that for both, or the two disagree and the batches do not match.
        top = min_guidance if n == 1 else max_guidance

        def on_step(_pipe: Any, i: int, _t: Any, _kw: dict[str, Any]) -> dict[str, Any]:
            ctx.progress(0.05 + 0.85 * (i + 1) / steps, f"step {i + 1}/{steps}")
            return {}

        def denoise() -> Any:
            with torch.inference_mode():
                return pipe(
                    to_pil(image),
                    height=height,
                    width=width,
                    num_frames=n,
                    num_inference_steps=steps,
                    min_guidance_scale=min_guidance,
                    max_guidance_scale=top,
                    fps=fps,
                    motion_bucket_id=motion_bucket_id,
                    noise_aug_strength=noise_aug_strength,
                    generator=torch.Generator("cpu").manual_seed(seed),
                    output_type="latent",
                    callback_on_step_end=on_step,
                ).frames

        def lower() -> str:
            changed = lower_memory(ctx, m)
            ctx.log.warning("out of memory: retrying with %s", changed)
            return changed

        what = f"{n} frames at {width}×{height}"
        decoder = _Decoder(ctx, m, decode_chunk_size or n, what)
        try:
            latents, fallback = retry_on_oom(denoise, lower, decoder.failure("making"))
            out, decode_fallback = decoder.decode(latents)
        finally:
            pipe.maybe_free_model_hooks()
        fallbacks = "; ".join(f for f in (fallback, decode_fallback) if f)
        ctx.report(
            device=m.device,
            dtype=str(m.dtype).replace("torch.", ""),
            offload=m.offload,
            frames=n,
            steps=steps,
            decode_chunk_size=decoder.chunk,
            **({"oom_fallback": fallbacks} if fallbacks else {}),
        )
        return {"video": Video.from_frames(out, fps=float(fps)), "last_frame": out[-1]}

    @staticmethod
    def _load(ctx: NodeContext, model: str) -> Any:
        from fathom.engine.models.svd import EXAMPLE, KIND, loader

        return load_folder_model(
            ctx, model, KIND, loader, f"use a Stable Video Diffusion folder, e.g. {EXAMPLE}"
        )


def _check_settings(
    ctx: NodeContext, width: int, height: int, min_guidance: float, max_guidance: float
) -> None:
    for port, v in (("width", width), ("height", height)):
        if v % 8:
            raise ctx.error(
                f"{port} {v} is not a multiple of 8 (the VAE works on 8×8 pixel blocks)",
                port=port,
                fix=f"use {max(8, v // 8 * 8)} or {v // 8 * 8 + 8}",
            )
    bad = _falling_guidance(min_guidance, max_guidance)
    if bad:
        raise ctx.error(bad[0], port="min_guidance", fix=bad[1])


class _Decoder:
    """Decodes the latents in chunks of frames. The latents are small; the decoded frames are
    what a long clip holds, so out of memory here keeps the latents and retries with half the
    frames per VAE call instead of denoising again."""

    def __init__(self, ctx: NodeContext, model: Any, chunk: int, what: str) -> None:
        self.ctx, self.model, self.chunk, self.what = ctx, model, chunk, what

    def failure(self, doing: str) -> Callable[[str], NodeError]:
        def fail(changed: str) -> NodeError:
            return NodeError(
                f"ran out of {self.model.device} memory {doing} {self.what}, also after {changed}",
                node=self.ctx.node_id,
                fix=MEMORY_HINT,
            )

        return fail

    def decode(self, latents: Any) -> tuple[list[Image], str]:
        import torch

        from fathom.engine.models.memory import retry_on_oom

        ctx = self.ctx

        def on_chunk(done: int, total: int, last: Image) -> None:
            ctx.preview(last, f"frame {done}/{total}")
            ctx.progress(0.9 + 0.1 * done / total, f"decoded {done}/{total} frames")

        def decode() -> list[Image]:
            with torch.inference_mode():
                return decode_frames(self.model.pipe, latents, self.chunk, on_chunk)

        def smaller_chunks() -> str:
            self.chunk = max(1, self.chunk // 2)
            changed = f"{lower_memory(ctx, self.model)}, decode_chunk_size {self.chunk}"
            ctx.log.warning("out of memory while decoding: retrying with %s", changed)
            return changed

        return retry_on_oom(decode, smaller_chunks, self.failure("decoding"))
