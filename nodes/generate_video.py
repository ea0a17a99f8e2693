"""Video-to-video generation: restyle a clip from a prompt, frame-coherently, with optional
object-centric acceleration (more computation on the foreground than on the background)."""

from __future__ import annotations

from typing import Any

import numpy as np

from fathom.engine.context import NodeContext
from fathom.engine.diffusion.schedulers import SCHEDULER_CHOICES
from fathom.engine.generation import (
    LORA_PARAM,
    SD15,
    ModelNode,
    guidance_param,
    load_diffusion,
    loras_on,
)
from fathom.engine.media.framestore import FrameStore
from fathom.engine.node import Input, Output, Param
from fathom.engine.types import Bool, Enum, Float, Image, Int, Seed, String, Video


def _frame_tensor(frame: Image) -> Any:
    import torch

    rgb = torch.from_numpy(np.ascontiguousarray(frame.rgb())).permute(2, 0, 1)
    return 2.0 * rgb - 1.0


def _mask_tensor(frame: Image) -> Any:
    import torch

    return torch.from_numpy(np.ascontiguousarray(frame.gray()))[None]


class _NoiseMotion:
    """Follows the input's motion (OpenCV DIS optical flow, frame to frame) at the latent
    resolution: for each frame, where its noise comes from in the first frame's."""

    def __init__(self, lh: int, lw: int) -> None:
        import cv2

        self.lh, self.lw = lh, lw
        self.dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
        self.prev: np.ndarray | None = None
        self.coords: Any = None

    def next(self, frame: Image) -> tuple[Any, Any]:
        """(source positions of the frame's noise, latent-grid flow to the previous frame)."""
        import cv2
        import torch

        from fathom.engine.diffusion.videoattn import follow_coords

        gray = cv2.cvtColor((np.clip(frame.rgb(), 0, 1) * 255).astype(np.uint8), cv2.COLOR_RGB2GRAY)
        if self.prev is None:
            ys, xs = torch.meshgrid(
                torch.arange(self.lh, dtype=torch.float32),
                torch.arange(self.lw, dtype=torch.float32),
                indexing="ij",
            )
            self.coords = torch.stack([xs, ys], -1)
            flow = torch.zeros(self.lh, self.lw, 2)
        else:
            back = self.dis.calc(gray, self.prev, None)  # new frame → previous frame
            back = cv2.resize(back, (self.lw, self.lh), interpolation=cv2.INTER_AREA)
            scale = np.array([self.lw / gray.shape[1], self.lh / gray.shape[0]], np.float32)
            flow = torch.from_numpy(back * scale)
            self.coords = follow_coords(self.coords, flow)
        self.prev = gray
        return self.coords, flow


class VideoEdit(ModelNode):
    """Re-imagine every frame of a video from a prompt, coherently: every frame starts from the
    same noise, every frame's self-attention also looks at the first frame (the anchor), after
    every step each frame's latents lean towards the previous frame's carried along the input's
    optical flow, and optionally each frame's latent is DDIM-inverted instead of noised.
    Frames run in batches and come out as they finish. The object-centric switches (a
    foreground mask video, e.g. from video.segment) spend less on the background: merged
    background tokens, across space and neighbouring frames, and fewer whole-frame denoising
    steps, blended without a seam."""

    type_id = "generate.video_edit"
    title = "Video Edit (video-to-video)"
    families = ("sd1", "sd2")
    category = "generate"
    main_params = ("prompt", "strength", "seed")
    thread_safe = False  # the model (and the processors patched onto it) is shared
    inputs = (
        Input("video", Video, "the clip to edit; sides must be multiples of 8"),
        Input(
            "mask",
            Video,
            "foreground mask per frame (1 = the object), e.g. from "
            "video.segment; needed by the object-centric switches",
            optional=True,
        ),
    )
    outputs = (Output("video", Video, "the edited clip, one frame per input frame"),)
    params = (
        Param(
            "model",
            String,
            SD15,
            "model folder, .safetensors file or Hugging Face id "
            "(already downloaded: `fathom models pull ID`)",
        ),
        Param("prompt", String, "", "what the clip should become", multiline=True),
        Param("negative_prompt", String, "", "what to steer away from", multiline=True),
        LORA_PARAM,
        Param(
            "strength",
            Float,
            0.6,
            "how much to change (0: keep, 1: all new)",
            min=0.05,
            max=1,
            step=0.05,
        ),
        Param("steps", Int, 20, "denoising steps (the run does strength × steps)", min=1, max=500),
        guidance_param(7.5),
        Param("seed", Seed, 0, "noise seed, shared by every frame"),
        Param(
            "scheduler",
            Enum,
            "default",
            "sampler (default: DDIM, which inversion and "
            "object-centric sampling follow; an LCM model's own)",
            choices=SCHEDULER_CHOICES,
        ),
        Param(
            "attention",
            Enum,
            "first+self",
            "temporal attention: every frame also attends "
            "to the first frame (first+self), only to it (first), or not (off)",
            choices=("first+self", "first", "off"),
        ),
        Param(
            "noise",
            Enum,
            "shared",
            "the seed's noise for every frame: the same "
            "(shared), or the same carried along the input's optical flow so the texture "
            "moves with the content (follow_motion)",
            choices=("shared", "follow_motion"),
        ),
        Param(
            "flow_fusion",
            Float,
            0.5,
            "temporal fusion: after every step each frame's "
            "latents move this far towards the previous frame's, carried along the input's "
            "optical flow (0: off)",
            min=0,
            max=0.95,
            step=0.05,
        ),
        Param(
            "inversion",
            Bool,
            False,
            "start from each frame's DDIM inversion instead of "
            "noise (keeps more of the input's structure)",
        ),
        Param(
            "frames_per_batch", Int, 4, "frames denoised together (memory vs speed)", min=1, max=64
        ),
        Param(
            "merge_bg",
            Float,
            0.0,
            "object-centric token merging: fraction of background tokens merged away (0: off)",
            min=0,
            max=0.95,
            step=0.05,
        ),
        Param(
            "merge_fg",
            Float,
            0.0,
            "fraction of foreground tokens merged away",
            min=0,
            max=0.95,
            step=0.05,
        ),
        Param("temporal_merge", Bool, False, "also merge tokens across neighbouring frames"),
        Param(
            "merge_levels",
            Int,
            1,
            "UNet resolution levels that merge (1: the finest)",
            min=1,
            max=4,
        ),
        Param(
            "bg_steps",
            Int,
            0,
            "object-centric sampling: whole-frame steps; the rest run on "
            "the foreground only (0: all steps whole-frame)",
            min=0,
            max=500,
        ),
        Param(
            "feather",
            Int,
            2,
            "object-centric sampling: blend ramp around the foreground, "
            "in latent pixels (8 image pixels each)",
            min=0,
            max=16,
        ),
        Param(
            "crop_margin",
            Int,
            4,
            "context kept around the foreground on its own steps, in latent pixels",
            min=0,
            max=64,
        ),
        Param(
            "sparse",
            Bool,
            False,
            "object-centric sparse execution: the first frame runs whole and "
            "recorded; every other frame computes the UNet and the VAE only on the blocks its "
            "mask (grown by sparse_margin) covers, its context taken from the first frame's "
            "recording; outside those blocks the output keeps the source pixels",
        ),
        Param(
            "sparse_margin",
            Int,
            16,
            "sparse: context computed around the mask, in image pixels",
            min=0,
            max=256,
        ),
        Param(
            "sparse_refresh",
            Int,
            1,
            "sparse: the first frame runs whole every k-th step (the steps between "
            "reuse its recording; 1: every step)",
            min=1,
            max=50,
        ),
        Param(
            "sparse_vae_every",
            Int,
            0,
            "sparse: the VAE encodes and decodes every k-th frame whole and the frames after "
            "it on their boxes with its context, nearer than the first frame's (0: the first "
            "frame only, fastest; 1: every frame whole, most faithful)",
            min=0,
            max=1000,
        ),
        Param(
            "clock_frames",
            Bool,
            False,
            "Clockwork across frames: odd frames reuse the "
            "previous frame's low-resolution UNet features at the same step",
        ),
        Param(
            "clock_period",
            Int,
            1,
            "Clockwork across steps: the whole UNet runs every k-th "
            "step, the steps between reuse each frame's low-resolution features (1: off; "
            "not with clock_frames)",
            min=1,
            max=10,
        ),
        Param(
            "clock_level",
            Int,
            1,
            "Clockwork across steps: outer resolution levels that still run on cheap steps",
            min=1,
            max=3,
        ),
        Param(
            "clock_warmup",
            Int,
            0,
            "Clockwork across steps: first steps that all run whole (they decide the layout)",
            min=0,
            max=500,
        ),
    )

    def run(
        self,
        ctx: NodeContext,
        video: Video,
        model: str,
        prompt: str,
        negative_prompt: str,
        loras: str,
        strength: float,
        steps: int,
        guidance: float,
        seed: int,
        scheduler: str,
        attention: str,
        noise: str,
        flow_fusion: float,
        inversion: bool,
        frames_per_batch: int,
        merge_bg: float,
        merge_fg: float,
        temporal_merge: bool,
        merge_levels: int,
        bg_steps: int,
        feather: int,
        crop_margin: int,
        clock_frames: bool,
        clock_period: int,
        clock_level: int,
        clock_warmup: int,
        sparse: bool = False,
        sparse_margin: int = 16,
        sparse_refresh: int = 1,
        sparse_vae_every: int = 0,
        mask: Video | None = None,
    ) -> dict[str, Any]:
        from fathom.engine.diffusion.video import VideoSettings

        object_centric = _check_clip(ctx, video, mask, steps, merge_bg, merge_fg, bg_steps)
        clockwork = _check_clockwork(ctx, clock_frames, clock_period)
        if sparse:
            _check_sparse(ctx, mask, inversion, merge_bg + merge_fg, bg_steps, clockwork)
        settings = VideoSettings(
            prompt=prompt,
            negative_prompt=negative_prompt,
            steps=steps,
            guidance=guidance,
            seed=seed,
            strength=strength,
            scheduler=scheduler,
            attention=attention,
            inversion=inversion,
            merge_bg=merge_bg,
            merge_fg=merge_fg,
            temporal_merge=temporal_merge,
            merge_levels=merge_levels,
            bg_steps=bg_steps,
            feather=feather,
            crop_margin=crop_margin,
            clock_frames=clock_frames,
            clock_period=clock_period,
            clock_level=clock_level,
            clock_warmup=clock_warmup,
            flow_fusion=flow_fusion,
            sparse_margin=sparse_margin,
            sparse_refresh=sparse_refresh,
            sparse_vae_every=sparse_vae_every,
        )
        comps = load_diffusion(ctx, model)
        _check_model(ctx, comps, clock_period, clock_level)
        if sparse:
            return _run_sparse(ctx, comps, settings, video, mask, noise, frames_per_batch, loras)
        edit = _Edit(ctx, comps, settings, video, mask, noise == "follow_motion")
        with loras_on(ctx, comps, loras):
            outs, run, chunks, kept_mb, fallback = edit.run_with_retries(frames_per_batch)
        ctx.report(
            device=comps.device,
            dtype=str(comps.dtype).replace("torch.", ""),
            frames=len(video),
            chunks=chunks,
            unet_calls=run.unet_calls,
            foreground_only_calls=run.crop_calls,
            merged_blocks=run.merger.merged_calls,
            clockwork_cheap_calls=sum(
                c.cheap_calls for c in (run.clock, run.step_clock) if c is not None
            ),
            anchor_kept_mb=kept_mb,
            object_centric=object_centric,
            **({"oom_fallback": fallback} if fallback else {}),
        )
        return {"video": outs.video(video.fps, video.source, video.audio)}


def _check_clip(
    ctx: NodeContext,
    video: Video,
    mask: Video | None,
    steps: int,
    merge_bg: float,
    merge_fg: float,
    bg_steps: int,
) -> bool:
    """Refuse a clip (or mask) the edit cannot run before loading anything; True when the
    object-centric accelerations are on."""
    n = len(video)
    if n == 0:
        raise ctx.error(
            "the video has no frames", port="video", fix="connect a clip with at least one frame"
        )
    w, h = video.size
    if w % 8 or h % 8:
        raise ctx.error(
            f"the video is {w}×{h}; both sides must be multiples of 8 (the VAE "
            "works on 8×8 pixel blocks)",
            port="video",
            fix=f"resize it first (e.g. to {max(8, w // 8 * 8)}×{max(8, h // 8 * 8)}) or crop it",
        )
    if mask is not None and len(mask) != n:
        raise ctx.error(
            f"the mask video has {len(mask)} frames but the video has {n}",
            port="mask",
            fix="trim the mask (or the video) to match",
        )
    if mask is not None and tuple(mask.size) != (w, h):
        raise ctx.error(
            f"the mask video is {mask.size[0]}×{mask.size[1]} but the video is {w}×{h}",
            port="mask",
            fix="make the mask at the video's size (or resize it)",
        )
    needs_mask = merge_fg > 0 or 0 < bg_steps < steps
    if mask is None and needs_mask:
        raise ctx.error(
            "the foreground settings need a mask video",
            port="mask",
            fix="connect a mask video (e.g. from video.segment), or set merge_fg and bg_steps to 0",
        )
    return merge_bg > 0 or needs_mask


def _check_clockwork(ctx: NodeContext, clock_frames: bool, clock_period: int) -> bool:
    """Refuse both Clockworks at once; True when one runs."""
    if clock_frames and clock_period > 1:
        raise ctx.error(
            "Clockwork across frames and across steps reuse the same UNet "
            "features: only one can run",
            port="clock_period",
            fix="set clock_period to 1, or turn clock_frames off",
        )
    return clock_frames or clock_period > 1


def _check_sparse(
    ctx: NodeContext,
    mask: Video | None,
    inversion: bool,
    merging: float,
    bg_steps: int,
    clockwork: bool,
) -> None:
    """Sparse execution needs a mask with a foreground and replaces the other switches."""
    if mask is None:
        raise ctx.error(
            "sparse execution needs a foreground mask video",
            port="mask",
            fix="connect a mask video (e.g. from video.segment), or turn sparse off",
        )
    others = [
        name
        for name, on in (
            ("inversion", inversion),
            ("merge_bg/merge_fg", merging > 0),
            ("bg_steps", bg_steps > 0),
            ("clock_frames/clock_period", clockwork),
        )
        if on
    ]
    if others:
        raise ctx.error(
            f"sparse execution cannot be combined with {', '.join(others)}",
            port="sparse",
            fix=f"turn sparse off, or set {', '.join(others)} to off/0",
        )
    for i in range(len(mask)):
        if float(mask.frame(i).gray().max()) > 0.5:
            return
    raise ctx.error(
        f"the mask video is empty: none of its {len(mask)} frames marks a foreground "
        "(no pixel above 0.5)",
        port="mask",
        fix="connect the object's mask (white on the object), or turn sparse off",
    )


def _run_sparse(
    ctx: NodeContext,
    comps: Any,
    settings: Any,
    video: Video,
    mask: Video | None,
    noise: str,
    per_batch: int,
    loras: str,
) -> dict[str, Any]:
    """The sparse object-centric edit (engine.diffusion.sparsevideo), frames stored as they
    come out of the VAE."""
    import torch

    from fathom.engine.diffusion.sparsevideo import SparseVideoEdit
    from fathom.engine.errors import LoopInputError
    from fathom.engine.models.diffusion import settle

    assert mask is not None  # _check_sparse refused a run without one
    n = len(video)
    w, h = video.size
    masks = torch.stack([_mask_tensor(mask.frame(i)) for i in range(n)])
    coords = flows = None
    if noise == "follow_motion" or settings.flow_fusion > 0:
        motion = _NoiseMotion(h // 8, w // 8)
        got = [motion.next(video.frame(i)) for i in range(n)]
        flows = torch.stack([g[1] for g in got])
        if noise == "follow_motion":
            coords = torch.stack([g[0] for g in got])
    edit = SparseVideoEdit(
        comps,
        settings,
        settings.sparse_margin,
        refresh=settings.sparse_refresh,
        per_batch=per_batch,
        vae_every=settings.sparse_vae_every,
    )

    def frame(i: int) -> Any:
        return _frame_tensor(video.frame(i))

    def on_step(done: int, total: int) -> None:
        ctx.check_cancelled()
        ctx.progress(0.9 * done / total, f"step {done}/{total}")

    outs = FrameStore(w, h, 3)
    try:
        with loras_on(ctx, comps, loras):
            _sparse_frames(ctx, edit.run(frame, masks, on_step, coords, flows), outs, n)
    except LoopInputError as exc:
        raise ctx.refuse(exc) from None
    finally:
        settle(comps)
    st = edit.stats
    ctx.report(
        device=comps.device,
        dtype=str(comps.dtype).replace("torch.", ""),
        frames=n,
        sparse=True,
        whole_frame_unet_calls=st.dense_unet_calls,
        sparse_unet_calls=st.sparse_unet_calls,
        unet_computed=round(st.unet_computed, 3),
        vae_computed=round(st.vae_computed, 3),
    )
    return {"video": outs.video(video.fps, video.source, video.audio)}


def _sparse_frames(ctx: NodeContext, frames: Any, outs: FrameStore, n: int) -> None:
    """Store the edit's frames as they come, shown and counted."""
    for i, rgb in frames:
        ctx.check_cancelled()
        outs.append(rgb.numpy())
        ctx.progress(0.9 + 0.1 * (i + 1) / n, f"frame {i + 1}/{n}")
        ctx.preview(outs.frame(len(outs) - 1), f"frame {i + 1}/{n}")


def _check_model(ctx: NodeContext, comps: Any, clock_period: int, clock_level: int) -> None:
    levels = len(comps.unet.up_blocks)
    if clock_period > 1 and not clock_level < levels:
        raise ctx.error(
            f"clock_level {clock_level} leaves no low-resolution core to reuse "
            f"in this UNet of {levels} levels",
            port="clock_level",
            fix=f"use 1 to {levels - 1}",
        )
    if comps.is_inpainting:
        raise ctx.error(
            "this is an inpainting model: its UNet needs a mask and a masked image",
            port="model",
            fix="pick a text-to-image model",
        )


class _Edit:
    """One edit of a clip in chunks of frames, retried with smaller chunks when memory runs
    out (the anchor and flow state then start over from frame 0)."""

    def __init__(
        self,
        ctx: NodeContext,
        comps: Any,
        settings: Any,
        video: Video,
        mask: Video | None,
        follow_motion: bool,
    ) -> None:
        self.ctx, self.comps, self.settings = ctx, comps, settings
        self.video, self.mask, self.follow_motion = video, mask, follow_motion
        self.per_batch = 1

    def run_with_retries(self, frames_per_batch: int) -> tuple[Any, Any, int, float, str]:
        from fathom.engine.errors import LoopInputError, NodeError
        from fathom.engine.models.diffusion import fall_back, settle
        from fathom.engine.models.memory import retry_on_oom

        ctx, comps = self.ctx, self.comps
        self.per_batch = frames_per_batch

        def lower() -> str:
            freed = ctx.models.free(keep=comps)
            self.per_batch = max(1, self.per_batch // 2)
            changed = (
                f"{fall_back(comps) or f'freeing {freed} cached models'}, "
                f"{self.per_batch} frames per batch"
            )
            ctx.log.warning("out of memory: retrying with %s", changed)
            return changed

        def fail(changed: str) -> NodeError:
            return NodeError(
                f"ran out of {comps.device} memory, also after retrying with {changed}",
                node=ctx.node_id,
                fix="lower frames_per_batch, the video's size, or steps (or free memory)",
            )

        try:
            done, fallback = retry_on_oom(lambda: self.attempt(self.per_batch), lower, fail)
        except LoopInputError as exc:
            raise ctx.refuse(exc) from None
        finally:
            settle(comps)
        return (*done, fallback)

    def attempt(self, per_batch: int) -> tuple[FrameStore, Any, int, float]:
        from fathom.engine.diffusion.video import VideoRun

        n = len(self.video)
        w, h = self.video.size
        starts = list(range(0, n, per_batch))
        # Frames go to disk as they are made: memory stays flat however long the clip is.
        outs = FrameStore(w, h, 3)
        run = VideoRun(self.comps, self.settings, chunks=len(starts))
        moves = self.follow_motion or self.settings.flow_fusion > 0
        motion = _NoiseMotion(h // 8, w // 8) if moves else None
        with run:
            for ci, a in enumerate(starts):
                self.chunk(run, motion, outs, ci, a, min(n, a + per_batch))
            kept_mb = round(run.anchor.kept_bytes / 2**20, 2)  # before the run lets go
        return outs, run, len(starts), kept_mb

    def chunk(
        self, run: Any, motion: _NoiseMotion | None, outs: FrameStore, ci: int, a: int, b: int
    ) -> None:
        """Frames [a, b): denoised together (the first chunk holds the anchor), decoded one by
        one into ``outs``."""
        import torch

        ctx, comps, video, mask, n = self.ctx, self.comps, self.video, self.mask, len(self.video)
        ctx.check_cancelled()
        x = torch.stack([_frame_tensor(video.frame(i)) for i in range(a, b)])
        m = (
            None
            if mask is None
            else torch.stack([_mask_tensor(mask.frame(i)) for i in range(a, b)])
        )

        def on_step(done: int, total: int) -> None:
            ctx.check_cancelled()
            ctx.progress(
                (a + (b - a) * done / (total + 1)) / n,
                f"frames {a + 1}–{b}/{n}: step {done}/{total}",
            )

        coords = flows = None
        if motion is not None:
            got = [motion.next(video.frame(i)) for i in range(a, b)]
            flows = torch.stack([g[1] for g in got])
            if self.follow_motion:
                coords = torch.stack([g[0] for g in got])
        lat = run.denoise(x.to(comps.device), m, 0 if ci == 0 else None, on_step, coords, flows)
        for j in range(lat.shape[0]):
            rgb = comps.decode(lat[j : j + 1])[0, :3].permute(1, 2, 0).numpy()
            outs.append(rgb)
            ctx.progress((a + j + 1) / n, f"frame {a + j + 1}/{n}")
            ctx.preview(outs.frame(len(outs) - 1), f"frame {a + j + 1}/{n}")
