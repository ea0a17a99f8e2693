"""Image-to-video generation with Stable Video Diffusion (diffusers' StableVideoDiffusionPipeline).

The model loads through the model manager (``engine.models.svd``); the denoising runs in
diffusers' pipeline and the temporal VAE decode runs here, chunk by chunk, so a long clip
never needs every frame's activations at once and frames become Images as they are decoded.
With the same seed the frames equal the pipeline's own output.

The MobileVD switches (``engine.diffusion.mobilevd``) make it cheaper: sampling at a lower
resolution, denoising keyframes and interpolating the rest, bypassing the temporal blocks a
calibration run ranks least important; a channel-pruned model (``fathom prune-svd``) and a
few-step distilled checkpoint load like any other folder. All off, the output is the
pipeline's.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from fathom.engine.context import NodeContext
from fathom.engine.errors import NodeError, Problem
from fathom.engine.generation import ModelNode, load_folder_model
from fathom.engine.node import Input, Output, Param
from fathom.engine.types import Enum, Float, Image, Int, Seed, String, Video

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


MOBILEVD_PARAMS = (
    Param(
        "sample_scale",
        Float,
        1.0,
        "denoise at this fraction of width and height, then upsample (1: off; 0.5 does a "
        "quarter of the UNet work)",
        min=0.25,
        max=1.0,
        step=0.05,
    ),
    Param(
        "upsample",
        Enum,
        "latents",
        "with sample_scale < 1: upsample the latents and decode at full size (sharper), or "
        "decode small and upsample the frames (the decoder's work shrinks too)",
        choices=("latents", "frames"),
    ),
    Param(
        "frame_stride",
        Int,
        1,
        "denoise every k-th frame (first and last included) and interpolate the latents "
        "between them (1: off)",
        min=1,
        max=8,
    ),
    Param(
        "skip_temporal",
        Float,
        0.0,
        "fraction of the UNet's temporal blocks to bypass, least important first (ranked by "
        "a calibration run on this image and seed, or once for all by the ranking `fathom "
        "rank-svd` or `fathom prune-svd` saved in the model folder)",
        min=0.0,
        max=1.0,
        step=0.05,
    ),
    Param(
        "scheduler",
        Enum,
        "default",
        "default: the model's own (the consistency sampler for a few-step distilled "
        "checkpoint such as AnimateLCM-SVD); euler: SVD's; consistency: 1-4 step sampling",
        choices=("default", "euler", "consistency"),
    ),
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
        *MOBILEVD_PARAMS,
    )

    @classmethod
    def cache_extra(cls, params: dict[str, Any], ctx: NodeContext) -> str:
        """The weights (as every model node), and with ``skip_temporal`` the ranking file in
        the model folder: `fathom rank-svd` writing or replacing it changes which blocks are
        skipped, so a result made with the other ranking must not come from the cache."""
        base = super().cache_extra(params, ctx)
        if float(params.get("skip_temporal") or 0.0) <= 0.0:
            return base
        from fathom.engine.diffusion.mobilevd import RANKING_FILE
        from fathom.engine.models import ModelError, locate_model

        try:
            ranking = locate_model(params["model"], ctx.options.base_dir) / RANKING_FILE
            st = ranking.stat()
        except (ModelError, OSError):
            return f"{base}|ranking:none"
        return f"{base}|ranking:{st.st_size}:{st.st_mtime_ns}"

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
        sample_scale: float = 1.0,
        upsample: str = "latents",
        frame_stride: int = 1,
        skip_temporal: float = 0.0,
        scheduler: str = "default",
    ) -> dict[str, Any]:
        from fathom.engine.models.memory import retry_on_oom

        _check_settings(ctx, width, height, min_guidance, max_guidance)
        m = self._load(ctx, model)
        pipe = m.pipe
        n = frames or int(pipe.unet.config.num_frames)
        plan = _Plan.make(n, width, height, fps, sample_scale, frame_stride, upsample)
        # The pipeline decides whether to guide twice: from max_guidance when it encodes the
        # image, from the per-frame ramp while denoising. One frame's ramp is min_guidance
        # alone, so give it that for both, or the two disagree and the batches do not match.
        call = {
            "image": to_pil(image),
            "height": plan.height,
            "width": plan.width,
            "num_frames": plan.keys,
            "min_guidance_scale": min_guidance,
            "max_guidance_scale": min_guidance if plan.keys == 1 else max_guidance,
            "fps": plan.fps,
            "motion_bucket_id": motion_bucket_id,
            "noise_aug_strength": noise_aug_strength,
        }
        sampler = _sampler(ctx, m, scheduler, steps)
        run = _Denoiser(ctx, m, call, sampler, seed)
        skip = run.skipped(skip_temporal, image) if skip_temporal > 0 else []

        def lower() -> str:
            changed = lower_memory(ctx, m)
            ctx.log.warning("out of memory: retrying with %s", changed)
            return changed

        what = f"{n} frames at {width}×{height}"
        decoder = _Decoder(ctx, m, decode_chunk_size or n, what)
        try:
            latents, fallback = retry_on_oom(
                lambda: run.latents(steps, skip), lower, decoder.failure("making")
            )
            latents = plan.to_full(latents)
            out, decode_fallback = decoder.decode(latents)
        finally:
            pipe.maybe_free_model_hooks()
        out = plan.resize_frames(out)
        fallbacks = "; ".join(f for f in (fallback, decode_fallback) if f)
        ctx.report(
            device=m.device,
            dtype=str(m.dtype).replace("torch.", ""),
            offload=m.offload,
            frames=n,
            steps=steps,
            decode_chunk_size=decoder.chunk,
            scheduler=type(sampler).__name__,
            **plan.report(),
            **({"temporal_blocks_skipped": len(skip)} if skip else {}),
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


CALIBRATION_STEPS = 2  # denoising steps whose UNet calls a temporal-block calibration measures


@dataclass
class _Plan:
    """Where the run samples (size, keyframes, their fps conditioning) and how it returns to
    the requested frames and size."""

    frames: int
    keys: int
    width: int
    height: int
    full: tuple[int, int]
    fps: int
    upsample: str

    @classmethod
    def make(
        cls, n: int, width: int, height: int, fps: int, scale: float, stride: int, up: str
    ) -> _Plan:
        from fathom.engine.diffusion.mobilevd import keyframe_count, lowres_size

        keys = keyframe_count(n, stride)
        w, h = lowres_size(width, height, scale)
        # The keyframes are (n-1)/(keys-1) frames apart: the model's fps conditioning says so.
        key_fps = fps if keys >= n else max(1, round(fps * (keys - 1) / (n - 1)))
        return cls(n, keys, w, h, (width, height), key_fps, up)

    def to_full(self, latents: Any) -> Any:
        """Keyframe latents to every frame; to full size too when upsampling latents."""
        from fathom.engine.diffusion.mobilevd import interpolate_time, resize_latents

        latents = interpolate_time(latents, self.frames)
        if self.upsample == "latents" and (self.width, self.height) != self.full:
            w, h = self.full
            latents = resize_latents(latents, h // 8, w // 8)
        return latents

    def resize_frames(self, frames: list[Image]) -> list[Image]:
        """Decoded frames to full size when upsampling frames (bicubic, clipped to 0..1)."""
        from fathom.engine.imaging.ops import resize

        w, h = self.full
        if frames[0].data.shape[1::-1] == (w, h):
            return frames
        return [Image(np.clip(resize(f.data, w, h, "bicubic"), 0.0, 1.0)) for f in frames]

    def report(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if (self.width, self.height) != self.full:
            out.update(sample_size=f"{self.width}×{self.height}", upsample=self.upsample)
        if self.keys != self.frames:
            out.update(keyframes=self.keys)
        return out


def _sampler(ctx: NodeContext, m: Any, choice: str, steps: int) -> Any:
    """The scheduler the run denoises with (see the ``scheduler`` parameter)."""
    from fathom.engine.diffusion.fewstep_svd import (
        SVDConsistencyScheduler,
        consistency_from_folder,
        euler_for_svd,
    )

    if choice == "euler":
        return euler_for_svd(m.pipe.scheduler)
    sampler = m.default_scheduler if choice == "default" else None
    if sampler is None or (
        choice == "consistency" and not isinstance(sampler, SVDConsistencyScheduler)
    ):
        sampler = (
            m.default_scheduler
            if isinstance(m.default_scheduler, SVDConsistencyScheduler)
            else consistency_from_folder(Path(m.source))
        )
    if isinstance(sampler, SVDConsistencyScheduler) and steps > len(sampler):
        raise ctx.error(
            f"{steps} steps: the consistency sampler takes 1 to {len(sampler)} "
            "(few-step checkpoints are made for 1-8)",
            port="steps",
            fix="use 1 to 4 steps, or scheduler euler for an ordinary SVD",
        )
    return sampler


def _digest(image: Image) -> str:
    return hashlib.sha1(np.ascontiguousarray(image.data).tobytes()).hexdigest()


class _Denoiser:
    """One run's denoising through the pipeline: its sampler swapped in (and seeded, when it
    draws noise of its own), and temporal blocks bypassed; also the calibration that ranks
    those blocks."""

    def __init__(
        self, ctx: NodeContext, m: Any, call: dict[str, Any], sampler: Any, seed: int
    ) -> None:
        self.ctx, self.m, self.call, self.sampler, self.seed = ctx, m, call, sampler, seed

    def _pipe(self, steps: int, on_step: Any) -> Any:
        import torch

        pipe = self.m.pipe
        kept, pipe.scheduler = pipe.scheduler, self.sampler
        if hasattr(self.sampler, "generator"):
            self.sampler.generator = torch.Generator("cpu").manual_seed(self.seed + 1)
        try:
            with torch.inference_mode():
                return pipe(
                    **self.call,
                    num_inference_steps=steps,
                    generator=torch.Generator("cpu").manual_seed(self.seed),
                    output_type="latent",
                    callback_on_step_end=on_step,
                ).frames
        finally:
            pipe.scheduler = kept

    def latents(self, steps: int, skip: list[str]) -> Any:
        """The denoised (keyframe) latents, B×T×C×h×w."""
        from fathom.engine.diffusion.mobilevd import skipping

        ctx = self.ctx

        def on_step(_pipe: Any, i: int, _t: Any, _kw: dict[str, Any]) -> dict[str, Any]:
            ctx.progress(0.05 + 0.85 * (i + 1) / steps, f"step {i + 1}/{steps}")
            return {}

        with skipping(self.m.pipe.unet, skip):
            return self._pipe(steps, on_step)

    def skipped(self, fraction: float, image: Image) -> list[str]:
        """The temporal blocks a ``skip_temporal`` fraction bypasses, least important first."""
        from fathom.engine.diffusion.mobilevd import skip_count

        ranking = self._ranking(image)
        return [name for name, _ in ranking[: skip_count(len(ranking), fraction)]]

    def _ranking(self, image: Image) -> list[tuple[str, float]]:
        """The ranking saved with the model (``fathom prune-svd``), else one measured on this
        image and these settings (kept with the loaded model for the next run)."""
        import torch

        from fathom.engine.diffusion.mobilevd import (
            CapturedCalls,
            rank_temporal_blocks,
            read_ranking,
        )

        saved = read_ranking(Path(self.m.source))
        if saved:
            self.ctx.report(temporal_ranking="saved in the model folder")
            return saved
        settings = tuple(sorted((k, v) for k, v in self.call.items() if k != "image"))
        key = (_digest(image), settings, self.seed, type(self.sampler).__name__)
        self.ctx.report(temporal_ranking="calibrated on this image and settings")
        if key not in self.m.rankings:
            ctx, unet = self.ctx, self.m.pipe.unet
            steps = min(
                CALIBRATION_STEPS, len(self.sampler) if hasattr(self.sampler, "generator") else 99
            )
            capture = CapturedCalls(unet)
            with capture.attached():
                self._pipe(steps, lambda *_a: {})

            def tick(done: int, total: int) -> None:
                ctx.progress(0.05 * done / total, f"calibrating temporal blocks {done}/{total}")

            start = time.perf_counter()
            with torch.inference_mode():
                self.m.rankings[key] = rank_temporal_blocks(unet, capture.calls, tick)
            # A warning, so the CLI and the studio's log show it: the calibration can cost
            # more than the run it is for, and one command removes it for good.
            ctx.log.warning(
                "skip_temporal calibrated %d temporal blocks on this image in %.1f s (kept "
                "for this image and settings). To skip this step for every image and seed: "
                "`fathom rank-svd MODEL --calib IMAGE` saves a ranking in the model folder",
                len(self.m.rankings[key]),
                time.perf_counter() - start,
            )
        return self.m.rankings[key]
