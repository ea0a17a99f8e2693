"""The video edit loop: frames denoised together with shared noise, anchor-frame attention,
DDIM inversion and flow fusion, with the object-centric accelerations plugged in."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch.nn import functional as F

from fathom.engine.accel.objectcentric import (
    ObjectTokenMerge,
    crop,
    crop_boxes,
    feather_mask,
    paste,
    shared_steps,
)
from fathom.engine.diffusion.schedulers import make_scheduler, predicted_x0
from fathom.engine.diffusion.stages import (
    Guidance,
    attached,
    guidance_for,
    randn,
    strength_timesteps,
)
from fathom.engine.diffusion.videoattn import (
    AnchorAttention,
    FrameLayout,
    fuse_along_flow,
    warp_noise,
)
from fathom.engine.errors import LoopInputError


def video_sampler(name: str, base: Any, inversion: bool = False) -> str:
    """The sampler a video edit runs: "default" means DDIM, unless the model's own is the
    consistency sampler an LCM model needs and the run does not invert (LCM adds fresh noise
    every step, which would wash out an inverted start). DDIM is what inversion runs
    backwards and what object-centric sampling's background jumps are, so with it the
    background and foreground trajectories (and inverted and noised starts) follow one
    sampler; a multistep sampler's history (PNDM, the SD 1.5 default) disagrees with the
    jumps and costs the foreground over 2 dB of PSNR to the baseline (BENCHMARKS.md)."""
    if name not in ("", "default"):
        return name
    return "default" if "LCM" in type(base).__name__ and not inversion else "ddim"


def ddim_jump(
    x: torch.Tensor, x0: torch.Tensor, a_from: torch.Tensor, a_to: torch.Tensor | float
) -> torch.Tensor:
    """Deterministic DDIM move from noise level ``a_from`` (alpha-bar) to ``a_to`` along the
    step's own noise estimate: x_to = sqrt(a_to)·x0 + sqrt(1 - a_to)·eps."""
    eps = (x - a_from.sqrt() * x0) / (1 - a_from).sqrt()
    a_to = torch.as_tensor(a_to, dtype=torch.float32)
    return (a_to.sqrt() * x0 + (1 - a_to).sqrt() * eps).to(x.dtype)


def ddim_invert(
    eps_fn: Callable[[torch.Tensor, Any], torch.Tensor],
    z0: torch.Tensor,
    timesteps: torch.Tensor,
    alphas_cumprod: torch.Tensor,
    callback: Callable[[int, int], None] | None = None,
) -> torch.Tensor:
    """DDIM inversion: run the deterministic sampler backwards from clean latents ``z0`` up to
    the first (noisiest) of ``timesteps`` (descending, as a sampler runs them), so that
    denoising from the result with DDIM over the same timesteps gives back about ``z0``."""
    ascending = list(reversed([int(t) for t in timesteps]))
    x = z0
    a_cur = torch.tensor(1.0)
    t_cur = ascending[0]
    for j, t_next in enumerate(ascending):
        eps = eps_fn(x, t_cur).float()
        a_next = alphas_cumprod[t_next].float()
        x0 = (x.float() - (1 - a_cur).sqrt() * eps) / a_cur.sqrt()
        x = (a_next.sqrt() * x0 + (1 - a_next).sqrt() * eps).to(z0.dtype)
        a_cur, t_cur = a_next, t_next
        if callback is not None:
            callback(j, len(ascending))
    return x


@dataclass
class VideoSettings:
    """Everything :meth:`VideoRun.denoise` needs besides the frames (see generate.video_edit)."""

    prompt: str = ""
    negative_prompt: str = ""
    steps: int = 20
    guidance: float = 7.5
    seed: int = 0
    strength: float = 0.6
    scheduler: str = "default"
    attention: str = "first+self"
    inversion: bool = False
    merge_bg: float = 0.0
    merge_fg: float = 0.0
    temporal_merge: bool = False
    merge_levels: int = 1
    bg_steps: int = 0  # 0: every step is a whole-frame step
    feather: int = 2
    crop_margin: int = 4
    clock_frames: bool = False
    clock_period: int = 1  # 1: off
    clock_level: int = 1
    clock_warmup: int = 0
    flow_fusion: float = 0.0
    sparse_margin: int = 16  # sparse execution (engine.diffusion.sparsevideo): context pixels
    sparse_refresh: int = 1  # ... and the keyframe's whole-frame period in steps
    sparse_vae_every: int = 0  # ... and the VAE's whole-frame period in frames (0: first only)


class VideoRun:
    """The accelerations of one video edit, attached to a UNet for the run's duration; chunks
    of frames are denoised with :meth:`denoise` (the first chunk must hold the anchor)."""

    def __init__(self, components: Any, settings: VideoSettings, chunks: int = 1) -> None:
        from fathom.engine.accel.clockwork import Clockwork

        self.c = components
        self.s = settings
        self.layout = FrameLayout()
        self.anchor = AnchorAttention(settings.attention, self.layout, keep_steps=chunks > 1)
        self.merger = ObjectTokenMerge(
            settings.merge_bg,
            settings.merge_fg,
            settings.temporal_merge,
            max_downsample=2 ** max(0, settings.merge_levels - 1),
            layout=self.layout,
            seed=settings.seed,
        )
        if settings.clock_frames and settings.clock_period > 1:
            raise ValueError(
                "Clockwork across frames and across steps swap the same UNet "
                "blocks: use one of them"
            )
        self.clock = Clockwork(period=2, level=1) if settings.clock_frames else None
        self.step_clock = (
            Clockwork(
                period=settings.clock_period,
                level=settings.clock_level,
                warmup=settings.clock_warmup,
            )
            if settings.clock_period > 1
            else None
        )
        self._parts: list[Any] = [self.anchor, self.merger]
        for clock in (self.clock, self.step_clock):
            if clock is not None:
                self._parts.append(clock)
        self.unet_calls = 0
        self.crop_calls = 0
        self._fused_last: dict[int, torch.Tensor] = {}

    def __enter__(self) -> VideoRun:
        self._attached = attached(self._parts, self.c)
        self._attached.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._attached.__exit__(None, None, None)

    # ---- one UNet evaluation of a set of frames (CFG halves batched) ----------------------
    def _eps(
        self,
        x: torch.Tensor,
        t: Any,
        guide: Guidance,
        step: Any,
        anchor: int | None,
        masks: torch.Tensor | None,
    ) -> torch.Tensor:
        f = x.shape[0]
        if self.clock is None or f < 2:
            return self._eps_call(x, t, guide, step, anchor, masks)
        # Even frames run whole; odd frame 2j+1 then reuses frame 2j's low-resolution features
        # (item for item: the kept batch holds the even frames in the same order).
        if anchor not in (0, None):
            raise ValueError(
                "Clockwork across frames needs the anchor to be the chunk's first frame"
            )
        ev, od = list(range(0, f, 2)), list(range(1, f, 2))
        self.clock.reset()
        e_eps = self._eps_call(x[ev], t, guide, step, anchor, None if masks is None else masks[ev])
        o_eps = self._eps_call(x[od], t, guide, step, None, None if masks is None else masks[od])
        out = x.new_empty((f, *e_eps.shape[1:]), dtype=e_eps.dtype)
        out[ev], out[od] = e_eps, o_eps
        return out

    def _eps_call(
        self,
        x: torch.Tensor,
        t: Any,
        guide: Guidance,
        step: Any,
        anchor: int | None,
        masks: torch.Tensor | None,
    ) -> torch.Tensor:
        f = x.shape[0]
        self.layout.frames, self.layout.halves = f, 2 if guide.cfg else 1
        self.layout.anchor, self.layout.step, self.layout.group = anchor, step, 1
        self.merger.set_masks(masks)
        x_in = guide.batch(x)
        emb = guide.embeds.repeat_interleave(f, dim=0)
        tc = None if guide.t_cond is None else guide.t_cond[:1].repeat(x_in.shape[0], 1)
        pred = self.c.unet(x_in, t, encoder_hidden_states=emb, timestep_cond=tc, return_dict=False)
        self.unet_calls += 1
        return guide.combine(pred[0])

    def _clock_step(self, i: int, t: Any, x: torch.Tensor) -> None:
        if self.step_clock is not None:
            self.step_clock.before_step(i, t, x)

    def _fuse(self, step: int, latents: torch.Tensor, flows: torch.Tensor | None) -> torch.Tensor:
        beta = self.s.flow_fusion
        if beta <= 0 or flows is None:
            return latents
        fused = fuse_along_flow(latents, flows, self._fused_last.get(step), beta)
        self._fused_last[step] = fused[-1:].clone()  # the next chunk's first frame follows it
        return fused

    # ---- a chunk of frames -------------------------------------------------------------
    @torch.no_grad()
    def denoise(
        self,
        images: torch.Tensor,
        masks: torch.Tensor | None,
        anchor: int | None,
        callback: Callable[[int, int], None] | None = None,
        noise_coords: torch.Tensor | None = None,
        flows: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """images: F×3×H×W in [-1, 1]; masks: F×1×H×W in [0, 1] (foreground) or None;
        anchor: the anchor's index in this chunk, or None when an earlier chunk held it.
        noise_coords: (F, h, w, 2) where each frame's noise comes from in the shared noise
        (:func:`engine.diffusion.videoattn.follow_coords`), so the noise moves with the
        content; None: the same noise for every frame. flows: (F, h, w, 2) latent-grid optical
        flow from each frame to the one before it, for ``flow_fusion``.
        Returns the clean latents F×4×h×w (scaled, as the VAE decodes them after dividing)."""
        c, s = self.c, self.s
        guide = guidance_for(c, s.prompt, s.negative_prompt, s.guidance)
        sched = make_scheduler(c.scheduler, video_sampler(s.scheduler, c.scheduler, s.inversion))
        sched.set_timesteps(s.steps, device=c.device)
        timesteps, _ = strength_timesteps(sched, s.steps, s.strength)
        init, noise = self._encode_frames(images, guide.embeds.dtype)
        k = len(timesteps)
        tick = _Ticker(callback, k + (k if s.inversion else 0))
        lat_masks = None
        if masks is not None:
            size = (int(init.shape[-2]), int(init.shape[-1]))
            lat_masks = F.adaptive_avg_pool2d(masks.float(), size)
            lat_masks = lat_masks.to(c.device, guide.embeds.dtype)
        run = _Chunk(sched, timesteps, guide, anchor, lat_masks, flows, tick)
        if s.inversion:
            latents = self._invert(run, init)
        else:
            per_frame = (
                noise.expand_as(init) if noise_coords is None else warp_noise(noise, noise_coords)
            )
            latents = sched.add_noise(init, per_frame, timesteps[:1].repeat(len(init)))
        shared = shared_steps(k, s.bg_steps) if 0 < s.bg_steps < k else list(range(k))
        region = self._foreground(latents, lat_masks) if len(shared) < k else None
        if self.step_clock is not None:
            self.step_clock.reset()  # the features it keeps are this chunk's frames'
        if region is None:
            return self._sample_whole(run, latents)
        return self._sample_object_centric(run, latents, shared, *region)

    def _encode_frames(
        self, images: torch.Tensor, dtype: torch.dtype
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Each frame encoded with its own generator of the same seed (the image-to-image
        node's draws for each frame), and the one noise every frame then shares."""
        inits, noise = [], None
        for i in range(images.shape[0]):
            gen = torch.Generator(device="cpu").manual_seed(int(self.s.seed))
            inits.append(self.c.encode_image(images[i : i + 1], gen, dtype))
            if noise is None:
                noise = randn(tuple(inits[0].shape), gen, self.c.device, dtype)
        assert noise is not None
        return torch.cat(inits), noise

    def _invert(self, run: _Chunk, init: torch.Tensor) -> torch.Tensor:
        """DDIM inversion of the frames under the empty prompt, every step whole: Clockwork's
        cheap steps would not retrace the same path back."""
        null = Guidance(False, 1.0, self.c.encode_prompt(""), None)
        device = self.c.device

        def eps_fn(x: torch.Tensor, t: Any) -> torch.Tensor:
            tt = torch.as_tensor(t, device=device)
            return self._eps(x, tt, null, ("inv", int(t)), run.anchor, run.masks)

        clock, period = self.step_clock, 0
        if clock is not None:
            period, clock.period = clock.period, 1
        try:
            return ddim_invert(
                eps_fn, init, run.timesteps, run.sched.alphas_cumprod.cpu(), lambda j, n: run.tick()
            )
        finally:
            if clock is not None:
                clock.period = period

    def _foreground(
        self, latents: torch.Tensor, lat_masks: torch.Tensor | None
    ) -> tuple[torch.Tensor, list[tuple[int, int, int, int]]] | None:
        """The feathered foreground weight and its crop boxes, or None when the foreground
        fills the frame (then there is nothing to save)."""
        binary = (
            (lat_masks > 0.5).float() if lat_masks is not None else torch.zeros_like(latents[:, :1])
        )
        weight = feather_mask(binary, self.s.feather).to(self.c.device, latents.dtype)
        # Any crop size runs: the UNet resizes its upsampling to the skip connections.
        boxes = crop_boxes(weight, self.s.crop_margin, 1)
        return None if boxes is None else (weight, boxes)

    def _sample_whole(self, run: _Chunk, latents: torch.Tensor) -> torch.Tensor:
        """Every step on whole frames."""
        sched = run.sched
        for i, t in enumerate(run.timesteps):
            self._clock_step(i, t, latents)
            x_in = sched.scale_model_input(latents, t)
            eps = self._eps(x_in, t, run.guide, i, run.anchor, run.masks)
            latents = self._fuse(
                i, sched.step(eps, t, latents, return_dict=True).prev_sample, run.flows
            )
            run.tick()
        return latents

    def _sample_object_centric(
        self,
        run: _Chunk,
        latents: torch.Tensor,
        shared: list[int],
        weight: torch.Tensor,
        boxes: list[tuple[int, int, int, int]],
    ) -> torch.Tensor:
        """The foreground runs every step: on its crop, or whole-frame on the shared steps; the
        background runs whole-frame at the shared steps only, on the frame with the foreground
        blended in, so it grows around the object without a seam."""
        sched, timesteps, k = run.sched, run.timesteps, len(run.timesteps)
        if float(sched.init_noise_sigma) != 1.0:
            raise LoopInputError(
                f"object-centric sampling blends latents of two noise levels "
                f"and needs a variance-preserving sampler, not "
                f"{type(sched).__name__}",
                port="scheduler",
                fix="use default, ddim, dpmpp_2m, unipc or lcm",
            )
        acp = sched.alphas_cumprod.to(self.c.device)
        x_fg = x_bg = latents
        eps_fg: torch.Tensor | None = None
        crop_masks = None if run.masks is None else crop(run.masks, boxes)
        for i, t in enumerate(timesteps):
            self._clock_step(i, t, x_fg)
            if i in shared:
                x_mix = x_bg if i == 0 else weight * x_fg + (1 - weight) * x_bg
                eps = self._eps(
                    sched.scale_model_input(x_mix, t), t, run.guide, i, run.anchor, run.masks
                )
                nxt = next((j for j in shared if j > i), k)
                x0 = predicted_x0(sched, None, eps, x_mix, t)
                a_to = acp[int(timesteps[nxt])] if nxt < k else torch.tensor(1.0)
                x_bg = ddim_jump(x_mix, x0, acp[int(t)], a_to)
                # The foreground takes this step's whole-frame estimate too: it saw the
                # background as it is now, and the foreground's own surroundings (its context
                # on the coming crop steps) catch up with the background's.
                eps_fg = eps
            else:
                assert eps_fg is not None
                x_crop = crop(sched.scale_model_input(x_fg, t), boxes)
                sub = self._eps(x_crop, t, run.guide, i, run.anchor, crop_masks)
                self.crop_calls += 1
                eps_fg = eps_fg.clone()
                paste(eps_fg, sub, boxes)
            x_fg = self._fuse(
                i, sched.step(eps_fg, t, x_fg, return_dict=True).prev_sample, run.flows
            )
            run.tick()
        return weight * x_fg + (1 - weight) * x_bg


class _Ticker:
    """Counts UNet-step units of a chunk for the progress callback."""

    def __init__(self, callback: Callable[[int, int], None] | None, total: int) -> None:
        self.callback, self.total, self.done = callback, total, 0

    def __call__(self) -> None:
        self.done += 1
        if self.callback is not None:
            self.callback(self.done, self.total)


@dataclass
class _Chunk:
    """What every step of one chunk's sampling shares."""

    sched: Any
    timesteps: torch.Tensor
    guide: Guidance
    anchor: int | None
    masks: torch.Tensor | None
    flows: torch.Tensor | None
    tick: _Ticker
