"""Object-centric video editing: the video denoising loop, object-centric token merging and
object-centric sampling.

Kahatapitiya et al., "Object-Centric Diffusion for Efficient Video Editing" (ECCV 2024) observe
that an edit is judged on the edited object, so the background deserves less computation. Two
switches here spend it unevenly; both are our own implementations:

- :class:`ObjectTokenMerge` merges tokens before every transformer block of the UNet (attention,
  cross-attention and feed-forward run on the merged tokens; each token's update is copied back
  to the tokens it absorbed). Background and foreground have their own merge ratios, tokens merge
  only within their class, and with ``temporal`` two neighbouring frames form one token sequence
  (they then also attend to each other) so that static background merges across time. Ratio 0
  leaves the UNet untouched.
- Object-centric sampling (``bg_steps`` in :meth:`VideoRun.denoise`): the background is
  denoised whole-frame at ``bg_steps`` evenly spread "shared" timesteps only, on the frame with
  the current foreground blended in through a feathered mask (so it grows around the object: no
  seam), and jumps straight to the next shared timestep (a DDIM step from its predicted clean
  latents); the foreground takes every step, the shared ones from that whole-frame pass and the
  others on a crop around it only. The result is the feathered blend of the two. With
  ``bg_steps`` equal to the step count every step is shared and the loop is the baseline's. On
  the random-weight benchmark model the foreground depends on the whole frame's content, so a
  coarse background costs it fidelity that a trained model would keep (see BENCHMARKS.md: the
  crop's missing context is not the cause, the background's content is).

Clockwork reuse across frames (``clock_frames``): even frames run the whole UNet; each odd frame
then reuses its predecessor's low-resolution features from the same step
(:class:`engine.accel.clockwork.Clockwork`, period 2, item for item). Clockwork across steps
(``clock_period``), as in image generation: every frame reuses its own low-resolution features
from the last whole step; one of the two at a time, since both swap the same blocks.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch.nn import functional as F

from engine.accel.tome import MergePlan, destination_mask, merge, token_grid, unmerge
from engine.accel.videoattn import AnchorAttention, FrameLayout, fuse_along_flow, warp_noise

# --------------------------------------------------------------------------- pure functions


def plan_object_merge(metric: torch.Tensor, dst: torch.Tensor, fg: torch.Tensor,
                      ratio_bg: float, ratio_fg: float) -> MergePlan:
    """Bipartite soft matching with a merge ratio per class (foreground / background).

    metric: (B, N, C) token features; dst: (N,) destination mask; fg: (B, N) bool, True for
    foreground tokens. A source merges only into a destination of its own class. Each item
    merges about ``ratio_bg`` of its background tokens and ``ratio_fg`` of its foreground
    tokens (capped by the sources there are); the total is the same for every item (the mean),
    so merged sequences batch, and each class keeps its share of it.
    """
    b, n, _ = metric.shape
    dev = metric.device
    dst = dst.to(dev)
    fg = fg.to(dev)
    dst_index = torch.nonzero(dst, as_tuple=False).squeeze(1)
    src_index = torch.nonzero(~dst, as_tuple=False).squeeze(1)
    m = metric / metric.norm(dim=-1, keepdim=True).clamp_min(1e-6)
    scores = m.index_select(1, src_index) @ m.index_select(1, dst_index).transpose(1, 2)
    src_fg = fg.index_select(1, src_index)  # (B, Ns)
    same = src_fg.unsqueeze(2) == fg.index_select(1, dst_index).unsqueeze(1)
    scores = scores.masked_fill(~same, float("-inf"))
    best, best_dst = scores.max(dim=-1)
    n_fg_tok = fg.sum(1).float()
    n_fg_src = src_fg.sum(1).float()
    n_bg_src = src_fg.shape[1] - n_fg_src
    r_fg = torch.minimum(torch.floor(ratio_fg * n_fg_tok), n_fg_src)
    r_bg = torch.minimum(torch.floor(ratio_bg * (n - n_fg_tok)), n_bg_src)
    r = int(round(float((r_fg + r_bg).mean())))
    r = max(0, min(r, int(src_index.numel())))
    # Rank each source within its class (0 = best match), then scale by the class's quota: the
    # r smallest keys are each class's best-matched sources up to its quota.
    key = torch.empty_like(best)
    for cls_mask, quota in ((src_fg, r_fg), (~src_fg, r_bg)):
        s = best.masked_fill(~cls_mask, float("-inf"))
        order = s.argsort(dim=-1, descending=True)
        rank = torch.empty_like(order)
        rank.scatter_(1, order, torch.arange(order.shape[1], device=dev).expand_as(order))
        k = (rank.float() + 1) / quota.clamp_min(1e-3).unsqueeze(1)
        key = torch.where(cls_mask, k, key)
    key = key.masked_fill(~torch.isfinite(best), float("inf"))
    pick = key.argsort(dim=-1)
    merged_local, kept_local = pick[:, :r], pick[:, r:]
    keep = torch.cat([dst_index.expand(b, -1), src_index[kept_local]], dim=1)
    return MergePlan(keep=keep, src=src_index[merged_local],
                     into=best_dst.gather(1, merged_local), n=n)


def group_frames(x: torch.Tensor, group: int) -> torch.Tensor:
    """(B, N, C) with consecutive frames in the batch → (B/group, group·N, C)."""
    if group == 1:
        return x
    b, n, c = x.shape
    return x.reshape(b // group, group * n, c)


def ungroup_frames(x: torch.Tensor, group: int) -> torch.Tensor:
    if group == 1:
        return x
    b, n, c = x.shape
    return x.reshape(b * group, n // group, c)


def token_mask(masks: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """(F, 1, H, W) soft masks → (F, h·w) bool: a token is foreground if any of it is."""
    m = F.adaptive_max_pool2d(masks.float(), (h, w)) if masks.shape[-2:] != (h, w) else masks
    return (m > 0.01).reshape(masks.shape[0], h * w)


def feather_mask(binary: torch.Tensor, feather: int) -> torch.Tensor:
    """(F, 1, h, w) 0/1 → soft mask: 1 on the foreground, falling linearly to 0 over
    ``feather`` pixels outside it (the blend weight of the foreground trajectory)."""
    out = binary.float()
    if feather <= 0:
        return out
    acc = out.clone()
    grown = out
    for _ in range(feather):
        grown = F.max_pool2d(grown, 3, stride=1, padding=1)
        acc = acc + grown
    return acc / (feather + 1)


def crop_boxes(weight: torch.Tensor, margin: int, multiple: int) -> list[tuple[int, int, int,
                                                                             int]] | None:
    """One (top, left, height, width) box per frame, all the same size (so crops batch): the
    support of ``weight`` (F, 1, h, w) grown by ``margin`` and rounded up to ``multiple``.
    None when the boxes would cover the whole latent (nothing to save)."""
    f, _, h, w = weight.shape
    boxes = []
    bh = bw = 0
    for i in range(f):
        ys, xs = torch.nonzero(weight[i, 0] > 0, as_tuple=True)
        if ys.numel() == 0:
            boxes.append((h // 2, w // 2, h // 2, w // 2))
            continue
        y0, y1 = int(ys.min()) - margin, int(ys.max()) + 1 + margin
        x0, x1 = int(xs.min()) - margin, int(xs.max()) + 1 + margin
        boxes.append((y0, x0, y1, x1))
        bh, bw = max(bh, y1 - y0), max(bw, x1 - x0)
    bh = min(h, max(multiple, math.ceil(bh / multiple) * multiple))
    bw = min(w, max(multiple, math.ceil(bw / multiple) * multiple))
    if bh * bw >= h * w:
        return None
    out = []
    for y0, x0, y1, x1 in boxes:
        cy, cx = (y0 + y1) // 2, (x0 + x1) // 2
        top = min(max(cy - bh // 2, 0), h - bh)
        left = min(max(cx - bw // 2, 0), w - bw)
        out.append((top, left, bh, bw))
    return out


def crop(x: torch.Tensor, boxes: list[tuple[int, int, int, int]]) -> torch.Tensor:
    return torch.stack([x[i, :, t:t + h, lf:lf + w] for i, (t, lf, h, w) in enumerate(boxes)])


def paste(x: torch.Tensor, patch: torch.Tensor, boxes: list[tuple[int, int, int, int]]) -> None:
    for i, (t, lf, h, w) in enumerate(boxes):
        x[i, :, t:t + h, lf:lf + w] = patch[i]


def shared_steps(k: int, bg_steps: int) -> list[int]:
    """Indices (into the k run timesteps) where the whole frame is denoised: ``bg_steps`` of
    them, evenly spread, always including the first (the layout is decided there)."""
    n = max(1, min(int(bg_steps), k))
    return sorted({int(math.floor(i * k / n)) for i in range(n)})


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


def ddim_jump(x: torch.Tensor, x0: torch.Tensor, a_from: torch.Tensor,
              a_to: torch.Tensor | float) -> torch.Tensor:
    """Deterministic DDIM move from noise level ``a_from`` (alpha-bar) to ``a_to`` along the
    step's own noise estimate: x_to = sqrt(a_to)·x0 + sqrt(1 - a_to)·eps."""
    eps = (x - a_from.sqrt() * x0) / (1 - a_from).sqrt()
    a_to = torch.as_tensor(a_to, dtype=torch.float32)
    return (a_to.sqrt() * x0 + (1 - a_to).sqrt() * eps).to(x.dtype)


def ddim_invert(eps_fn: Callable[[torch.Tensor, Any], torch.Tensor], z0: torch.Tensor,
                timesteps: torch.Tensor, alphas_cumprod: torch.Tensor,
                callback: Callable[[int, int], None] | None = None) -> torch.Tensor:
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


# --------------------------------------------------------------------------- token merging


def _is_transformer_block(module: Any) -> bool:
    return type(module).__name__ == "BasicTransformerBlock"


class ObjectTokenMerge:
    """Object-centric token merging on every transformer block fine enough (see module doc).

    ratio_bg / ratio_fg: fraction of background / foreground tokens merged away (0 and 0: the
    UNet is left untouched and the output equals the baseline bit for bit). temporal: join two
    neighbouring frames into one sequence first (the second frame's tokens may merge into the
    first's), when the call holds an even number of frames. max_downsample: merge only where
    the token grid is at most this much coarser than the latent. Masks (F, 1, h, w) at the
    latent resolution of the coming UNet call are set with :meth:`set_masks` (None: all
    background).
    """

    def __init__(self, ratio_bg: float = 0.5, ratio_fg: float = 0.0, temporal: bool = False,
                 max_downsample: int = 1, layout: FrameLayout | None = None, seed: int = 0,
                 sx: int = 2, sy: int = 2) -> None:
        for name, v in (("ratio_bg", ratio_bg), ("ratio_fg", ratio_fg)):
            if not 0.0 <= v < 1.0:
                raise ValueError(f"{name} must be in [0, 1), got {v}")
        self.ratio_bg, self.ratio_fg = float(ratio_bg), float(ratio_fg)
        self.temporal = temporal
        self.max_downsample = max_downsample
        self.layout = layout or FrameLayout()
        self.seed = seed
        self.sx, self.sy = sx, sy
        self.masks: torch.Tensor | None = None
        self.merged_calls = 0
        self._gen = torch.Generator().manual_seed(seed)
        self._plans: dict[tuple[int, int, int], tuple[MergePlan, int]] = {}
        self._latent_hw: tuple[int, int] | None = None
        self._patched: list[Any] = []
        self._hook: Any = None

    @property
    def active(self) -> bool:
        return self.ratio_bg > 0 or self.ratio_fg > 0

    def set_masks(self, masks: torch.Tensor | None) -> None:
        self.masks = masks

    def attach(self, components: Any) -> None:
        if self._patched or self._hook is not None:
            raise RuntimeError("ObjectTokenMerge is already attached; detach() it first")
        self._gen.manual_seed(self.seed)
        if not self.active:
            return
        unet = getattr(components, "unet", components)
        for module in unet.modules():
            if _is_transformer_block(module):
                self._patch(module)
        self._hook = unet.register_forward_pre_hook(self._on_unet_call, with_kwargs=True)

    def detach(self) -> None:
        for block in self._patched:
            del block.forward
        self._patched.clear()
        if self._hook is not None:
            self._hook.remove()
            self._hook = None

    def _on_unet_call(self, module: Any, args: tuple, kwargs: dict) -> None:
        sample = args[0] if args else kwargs["sample"]
        self._latent_hw = (int(sample.shape[-2]), int(sample.shape[-1]))
        self._plans.clear()

    def plan_for(self, x: torch.Tensor) -> tuple[MergePlan, int] | None:
        """(plan, frames per item) for a block input (B, N, C), or None where not merged."""
        if self._latent_hw is None or x.ndim != 3:
            return None
        b, n, _ = x.shape
        try:
            h, w, d = token_grid(n, self._latent_hw)
        except ValueError:
            return None
        if d > self.max_downsample:
            return None
        key = (h, w, b)
        hit = self._plans.get(key)
        if hit is not None:
            return hit
        lay = self.layout
        frames = b // lay.halves
        group = 2 if self.temporal and frames % 2 == 0 else 1
        dst = destination_mask(h, w, self.sx, self.sy, self._gen)
        if group == 2:
            dst = torch.cat([dst, torch.zeros_like(dst)])
        if self.masks is not None and self.masks.shape[0] == frames:
            fg = token_mask(self.masks, h, w)
        else:
            fg = torch.zeros(frames, n, dtype=torch.bool)
        fg = fg.reshape(frames // group, group * n).to(x.device).repeat(lay.halves, 1)
        plan = plan_object_merge(group_frames(x, group), dst, fg, self.ratio_bg, self.ratio_fg)
        self._plans[key] = (plan, group)
        return plan, group

    def _patch(self, block: Any) -> None:
        original = block.forward
        owner = self

        def forward(hidden_states: torch.Tensor, *args: Any, **kwargs: Any) -> torch.Tensor:
            found = owner.plan_for(hidden_states)
            if found is None or found[0].r == 0:
                return original(hidden_states, *args, **kwargs)
            plan, group = found
            x = group_frames(hidden_states, group)
            xm = merge(x, plan)
            if group > 1:
                ehs = kwargs.get("encoder_hidden_states")
                if ehs is not None:
                    kwargs["encoder_hidden_states"] = ehs[::group]
            owner.layout.group = group
            try:
                ym = original(xm, *args, **kwargs)
            finally:
                owner.layout.group = 1
            owner.merged_calls += 1
            return ungroup_frames(x + unmerge(ym - xm, plan), group)

        block.forward = forward
        self._patched.append(block)


# --------------------------------------------------------------------------- the video loop


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


class VideoRun:
    """The accelerations of one video edit, attached to a UNet for the run's duration; chunks
    of frames are denoised with :meth:`denoise` (the first chunk must hold the anchor)."""

    def __init__(self, components: Any, settings: VideoSettings, chunks: int = 1) -> None:
        from engine.accel.clockwork import Clockwork

        self.c = components
        self.s = settings
        self.layout = FrameLayout()
        self.anchor = AnchorAttention(settings.attention, self.layout, keep_steps=chunks > 1)
        self.merger = ObjectTokenMerge(settings.merge_bg, settings.merge_fg,
                                       settings.temporal_merge,
                                       max_downsample=2 ** max(0, settings.merge_levels - 1),
                                       layout=self.layout, seed=settings.seed)
        if settings.clock_frames and settings.clock_period > 1:
            raise ValueError("Clockwork across frames and across steps swap the same UNet "
                             "blocks: use one of them")
        self.clock = Clockwork(period=2, level=1) if settings.clock_frames else None
        self.step_clock = Clockwork(period=settings.clock_period, level=settings.clock_level,
                                    warmup=settings.clock_warmup) \
            if settings.clock_period > 1 else None
        self._parts: list[Any] = [self.anchor, self.merger]
        for clock in (self.clock, self.step_clock):
            if clock is not None:
                self._parts.append(clock)
        self.unet_calls = 0
        self.crop_calls = 0
        self._fused_last: dict[int, torch.Tensor] = {}

    def __enter__(self) -> VideoRun:
        attached = []
        try:
            for p in self._parts:
                p.attach(self.c)
                attached.append(p)
        except Exception:
            for p in reversed(attached):
                p.detach()
            raise
        return self

    def __exit__(self, *exc: Any) -> None:
        for p in reversed(self._parts):
            p.detach()

    # ---- one UNet evaluation of a set of frames (CFG halves batched) ----------------------
    def _eps(self, x: torch.Tensor, t: Any, embeds: torch.Tensor, t_cond: Any, step: Any,
             anchor: int | None, masks: torch.Tensor | None, cfg: bool,
             guidance: float) -> torch.Tensor:
        f = x.shape[0]
        halves = 2 if cfg else 1
        if self.clock is None or f < 2:
            return self._eps_call(x, t, embeds, t_cond, step, anchor, masks, halves, guidance)
        # Even frames run whole; odd frame 2j+1 then reuses frame 2j's low-resolution features
        # (item for item: the kept batch holds the even frames in the same order).
        if anchor not in (0, None):
            raise ValueError("Clockwork across frames needs the anchor to be the chunk's first "
                             "frame")
        ev, od = list(range(0, f, 2)), list(range(1, f, 2))
        self.clock.reset()
        e_eps = self._eps_call(x[ev], t, embeds, t_cond, step, anchor,
                               None if masks is None else masks[ev], halves, guidance)
        o_eps = self._eps_call(x[od], t, embeds, t_cond, step, None,
                               None if masks is None else masks[od], halves, guidance)
        out = x.new_empty((f, *e_eps.shape[1:]), dtype=e_eps.dtype)
        out[ev], out[od] = e_eps, o_eps
        return out

    def _eps_call(self, x: torch.Tensor, t: Any, embeds: torch.Tensor, t_cond: Any, step: Any,
                  anchor: int | None, masks: torch.Tensor | None, halves: int,
                  guidance: float) -> torch.Tensor:
        f = x.shape[0]
        self.layout.frames, self.layout.halves = f, halves
        self.layout.anchor, self.layout.step, self.layout.group = anchor, step, 1
        self.merger.set_masks(masks)
        x_in = torch.cat([x] * halves) if halves > 1 else x
        emb = embeds.repeat_interleave(f, dim=0)
        tc = None if t_cond is None else t_cond[:1].repeat(x_in.shape[0], 1)
        pred = self.c.unet(x_in, t, encoder_hidden_states=emb, timestep_cond=tc,
                           return_dict=False)[0]
        self.unet_calls += 1
        if halves > 1:
            uncond, text = pred.chunk(2)
            pred = uncond + guidance * (text - uncond)
        return pred

    def _clock_step(self, i: int, t: Any, x: torch.Tensor) -> None:
        if self.step_clock is not None:
            self.step_clock.before_step(i, t, x)

    def _fuse(self, step: int, latents: torch.Tensor, flows: torch.Tensor | None
              ) -> torch.Tensor:
        beta = self.s.flow_fusion
        if beta <= 0 or flows is None:
            return latents
        fused = fuse_along_flow(latents, flows, self._fused_last.get(step), beta)
        self._fused_last[step] = fused[-1:].clone()  # the next chunk's first frame follows it
        return fused

    # ---- a chunk of frames -------------------------------------------------------------
    @torch.no_grad()
    def denoise(self, images: torch.Tensor, masks: torch.Tensor | None, anchor: int | None,
                callback: Callable[[int, int], None] | None = None,
                noise_coords: torch.Tensor | None = None,
                flows: torch.Tensor | None = None) -> torch.Tensor:
        """images: F×3×H×W in [-1, 1]; masks: F×1×H×W in [0, 1] (foreground) or None;
        anchor: the anchor's index in this chunk, or None when an earlier chunk held it.
        noise_coords: (F, h, w, 2) where each frame's noise comes from in the shared noise
        (:func:`engine.accel.videoattn.follow_coords`), so the noise moves with the content;
        None: the same noise for every frame. flows: (F, h, w, 2) latent-grid optical flow
        from each frame to the one before it, for ``flow_fusion``.
        Returns the clean latents F×4×h×w (scaled, as the VAE decodes them after dividing)."""
        from engine.accel.loop import (
            LoopInputError,
            _encode,
            _randn,
            guidance_embedding,
            make_scheduler,
            predicted_x0,
        )

        c, s = self.c, self.s
        device = c.device
        unet = c.unet
        cfg = s.guidance > 1.0 and unet.config.time_cond_proj_dim is None
        cond = c.encode_prompt(s.prompt)
        dtype = cond.dtype
        neg = c.encode_prompt(s.negative_prompt or "")
        embeds = torch.cat([neg, cond]) if cfg else cond
        sched = make_scheduler(c.scheduler, video_sampler(s.scheduler, c.scheduler,
                                                          s.inversion))
        sched.set_timesteps(s.steps, device=device)
        keep = min(int(s.steps * s.strength), s.steps)
        t_start = max(s.steps - keep, 0)
        if s.steps - t_start < 1:
            raise LoopInputError(f"strength {s.strength} with {s.steps} steps leaves no step to "
                                 "run", port="strength", fix="raise the strength or the steps")
        timesteps = sched.timesteps[t_start * sched.order:]
        if hasattr(sched, "set_begin_index"):
            sched.set_begin_index(t_start * sched.order)
        k = len(timesteps)

        # Encode every frame with its own generator of the same seed: the image-to-image node's
        # draws for each frame, so every frame gets the same (shared) noise.
        f_n = images.shape[0]
        inits, noise = [], None
        for i in range(f_n):
            gen = torch.Generator(device="cpu").manual_seed(int(s.seed))
            inits.append(_encode(c, images[i:i + 1], gen, dtype))
            if noise is None:
                noise = _randn(tuple(inits[0].shape), gen, device, dtype)
        init = torch.cat(inits)
        assert noise is not None
        total = k + (k if s.inversion else 0)
        done = 0

        def tick() -> None:
            nonlocal done
            done += 1
            if callback is not None:
                callback(done, total)

        lat_masks = None
        if masks is not None:
            lat_masks = F.adaptive_avg_pool2d(masks.float(), tuple(init.shape[-2:])).to(
                device, dtype)
        if s.inversion:
            null = c.encode_prompt("")

            def eps_fn(x: torch.Tensor, t: Any) -> torch.Tensor:
                tt = torch.as_tensor(t, device=device)
                return self._eps(x, tt, null, None, ("inv", int(t)), anchor, lat_masks,
                                 False, 1.0)

            clock, period = self.step_clock, 0
            if clock is not None:  # inversion runs every step whole: it must retrace exactly
                period, clock.period = clock.period, 1
            try:
                latents = ddim_invert(eps_fn, init, timesteps, sched.alphas_cumprod.cpu(),
                                      lambda j, n: tick())
            finally:
                if clock is not None:
                    clock.period = period
        else:
            per_frame = noise.expand_as(init) if noise_coords is None else \
                warp_noise(noise, noise_coords)
            latents = sched.add_noise(init, per_frame, timesteps[:1].repeat(f_n))

        t_cond = None
        if unet.config.time_cond_proj_dim is not None:
            w = torch.tensor(s.guidance - 1).repeat(1)
            t_cond = guidance_embedding(w, unet.config.time_cond_proj_dim).to(device, dtype)

        shared = shared_steps(k, s.bg_steps) if 0 < s.bg_steps < k else list(range(k))
        weight = boxes = None
        if len(shared) < k:
            binary = (lat_masks > 0.5).float() if lat_masks is not None else \
                torch.zeros_like(latents[:, :1])
            weight = feather_mask(binary, s.feather).to(device, latents.dtype)
            # Any crop size runs: the UNet resizes its upsampling to the skip connections.
            boxes = crop_boxes(weight, s.crop_margin, 1)
            if boxes is None:  # the foreground fills the frame: nothing to save
                shared = list(range(k))
        if self.step_clock is not None:
            self.step_clock.reset()  # the features it keeps are this chunk's frames'
        if len(shared) == k:
            for i, t in enumerate(timesteps):
                self._clock_step(i, t, latents)
                x_in = sched.scale_model_input(latents, t)
                eps = self._eps(x_in, t, embeds, t_cond, i, anchor, lat_masks, cfg,
                                s.guidance)
                latents = self._fuse(i, sched.step(eps, t, latents, return_dict=True)
                                     .prev_sample, flows)
                tick()
            return latents
        if float(sched.init_noise_sigma) != 1.0:
            raise LoopInputError(f"object-centric sampling blends latents of two noise levels "
                                 f"and needs a variance-preserving sampler, not "
                                 f"{type(sched).__name__}", port="scheduler",
                                 fix="use default, ddim, dpmpp_2m, unipc or lcm")
        assert weight is not None and boxes is not None
        # The foreground runs every step: on its crop, or whole-frame on the shared steps; the
        # background runs whole-frame at the shared steps only, on the frame with the
        # foreground blended in, so it grows around the object without a seam.
        acp = sched.alphas_cumprod.to(device)
        x_fg = x_bg = latents
        eps_fg: torch.Tensor | None = None
        crop_masks = None if lat_masks is None else crop(lat_masks, boxes)
        for i, t in enumerate(timesteps):
            self._clock_step(i, t, x_fg)
            if i in shared:
                x_mix = x_bg if i == 0 else weight * x_fg + (1 - weight) * x_bg
                eps = self._eps(sched.scale_model_input(x_mix, t), t, embeds, t_cond,
                                i, anchor, lat_masks, cfg, s.guidance)
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
                sub = self._eps(crop(sched.scale_model_input(x_fg, t), boxes), t, embeds,
                                t_cond, i, anchor, crop_masks, cfg,
                                s.guidance)
                self.crop_calls += 1
                eps_fg = eps_fg.clone()
                paste(eps_fg, sub, boxes)
            assert eps_fg is not None
            x_fg = self._fuse(i, sched.step(eps_fg, t, x_fg, return_dict=True).prev_sample,
                              flows)
            tick()
        return weight * x_fg + (1 - weight) * x_bg

