"""Object-centric video editing by sparse execution: the edit computes the masked object only.

The earlier object-centric switches (token merging, fewer background steps on a crop) leave the
VAE whole and cut the foreground's context off at the crop. Here the clip's first frame (the
keyframe) runs whole, layer by layer recorded (:class:`engine.accel.sparse.SparseExecution`);
every other frame runs the same full-frame network only on the blocks its foreground mask
(dilated by ``margin`` pixels of context) covers, its context everywhere else taken from the
keyframe's recorded activations at the same step. The VAE does the same: the keyframe is
encoded and decoded whole, every other frame only on the active blocks, and the output keeps
the source frame's pixels outside them. The work therefore follows the foreground's share of
the frame, plus one whole frame per clip.

The VAE may take its context from a nearer whole frame (``vae_every``): measured on the
random-weight benchmark model, most of the sparse decode's error was its group-norm statistics
(the decoder's mid-block attention mixes the whole frame, so away from the box frame j's
activations are not the keyframe's; the decode given the true whole-frame statistics gained
4.8 of the 7 dB it lost), and a frame a few frames away has nearly the right ones.

Everything is decided by the frames and the masks: a background that moves under the object
(a panning camera) is not the keyframe's, so the context is then only approximate; the edit
still touches only the masked blocks.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch
from torch.nn import functional as F

from fathom.engine.accel.sparse import SparseExecution, image_boxes
from fathom.engine.diffusion.schedulers import make_scheduler
from fathom.engine.diffusion.stages import guidance_for, randn, strength_timesteps
from fathom.engine.diffusion.videoattn import fuse_along_flow, warp_noise
from fathom.engine.errors import LoopInputError


def dilate(mask: torch.Tensor, margin: int) -> torch.Tensor:
    """(F, 1, H, W) → bool, grown by ``margin`` pixels (a square neighbourhood)."""
    m = (mask > 0.5).float()
    if margin > 0:
        m = F.max_pool2d(m, 2 * margin + 1, stride=1, padding=margin)
    return m > 0


def box_cover(boxes: list[tuple[int, int, int, int] | None], h: int, w: int) -> torch.Tensor:
    """(F, 1, h, w) bool: 1 inside each frame's (y0, x0, y1, x1) box (none for None)."""
    out = torch.zeros(len(boxes), 1, h, w, dtype=torch.bool)
    for i, b in enumerate(boxes):
        if b is not None:
            out[i, :, b[0] : b[2], b[1] : b[3]] = True
    return out


@dataclass
class SparseEditStats:
    """What a sparse edit computed, for the node's report."""

    unet_computed: float = 0.0  # fraction of the dense UNet's outputs computed
    vae_computed: float = 0.0
    dense_unet_calls: int = 0
    sparse_unet_calls: int = 0
    encode_s: float = 0.0  # seconds in the VAE encoder, the sampling and the VAE decoder
    sample_s: float = 0.0
    decode_s: float = 0.0


class SparseVideoEdit:
    """One sparse object-centric edit of a clip (see the module doc).

    components: the loaded diffusion components; settings: the video edit's VideoSettings;
    margin: context pixels around the mask; align: boxes are rounded out to this many pixels;
    refresh: the keyframe runs whole every ``refresh``-th step (its steps between reuse its
    own recording, sparse, like every other frame); per_batch: frames per sparse call;
    vae_every: the VAE encodes and decodes every ``vae_every``-th frame whole (recorded) and
    the frames after it on their boxes with its context (0: the first frame only; 1: every
    frame whole, so only the UNet is sparse).
    """

    def __init__(
        self,
        components: Any,
        settings: Any,
        margin: int = 16,
        align: int = 8,
        refresh: int = 1,
        per_batch: int = 4,
        vae_every: int = 0,
    ) -> None:
        if vae_every < 0:
            raise ValueError(f"vae_every must be 0 or more, not {vae_every}")
        self.c, self.s = components, settings
        self.vae_every = vae_every
        self.margin, self.align = margin, align
        self.refresh, self.per_batch = max(1, refresh), max(1, per_batch)
        self.unet_x = SparseExecution(align, settings.attention)
        # Whole-frame norm statistics at pixel resolution were 41 % of a sparse decode; the
        # recorded sums with the box swapped in cost the box's share instead.
        self.vae_x = SparseExecution(align, "off", reuse_stats=True)
        self.stats = SparseEditStats()

    @contextmanager
    def attached(self) -> Iterator[None]:
        self.unet_x.attach(self.c.unet)
        self.vae_x.attach(self.c.vae)
        try:
            yield
        finally:
            self.unet_x.detach()
            self.vae_x.detach()

    # ---- the whole clip ------------------------------------------------------------------
    @torch.no_grad()
    def run(
        self,
        frame: Callable[[int], torch.Tensor],
        masks: torch.Tensor,
        callback: Callable[[int, int], None] | None = None,
        noise_coords: torch.Tensor | None = None,
        flows: torch.Tensor | None = None,
    ) -> Iterator[tuple[int, torch.Tensor]]:
        """frame(i): (3, H, W) in [-1, 1]; masks: (F, 1, H, W) in [0, 1]. Yields (index,
        (H, W, 3) float in [0, 1]) for every frame in order, after the sampling."""
        active = dilate(masks, self.margin)
        st = self.stats
        with self.attached():
            t0 = time.perf_counter()
            init = self._encode(frame, active)
            t1 = time.perf_counter()
            lat = self._sample(init, active, callback, noise_coords, flows)
            t2 = time.perf_counter()
            st.encode_s, st.sample_s = t1 - t0, t2 - t1
            for out in self._decode(frame, lat, active):
                t = time.perf_counter()
                yield out
                t2 += time.perf_counter() - t  # the consumer's time is not the decoder's
            st.decode_s = time.perf_counter() - t2
        self.stats.unet_computed = self.unet_x.computed / max(1, self.unet_x.total)
        self.stats.vae_computed = self.vae_x.computed / max(1, self.vae_x.total)

    def _batches(self, n: int, start: int = 1) -> Iterator[list[int]]:
        for a in range(start, n, self.per_batch):
            yield list(range(a, min(n, a + self.per_batch)))

    def _vae_groups(self, n: int) -> Iterator[tuple[int, Iterator[list[int]]]]:
        """(whole frame, batches of the sparse frames reading its recording), in frame order."""
        k = self.vae_every or n
        for a in range(0, n, k):
            yield a, self._batches(min(n, a + k), a + 1)

    # ---- VAE -----------------------------------------------------------------------------
    def _encode(self, frame: Callable[[int], torch.Tensor], active: torch.Tensor) -> torch.Tensor:
        """Scaled latents of every frame: the whole frames' whole, the others' on their active
        blocks (the rest are their whole frame's), all with the one posterior draw every frame
        of the dense edit makes (each frame there uses a fresh generator of the same seed)."""
        c, vae, x = self.c, self.c.vae, self.vae_x
        dtype = c.unet.dtype
        gen = torch.Generator(device="cpu").manual_seed(int(self.s.seed))
        outs = []
        for key, batches in self._vae_groups(active.shape[0]):
            x.mode = "record"
            whole = vae.encode(frame(key)[None].to(c.device, vae.dtype)).latent_dist
            if key == 0:
                eps = randn(tuple(whole.mean.shape), gen, c.device, whole.mean.dtype)
                self.noise = randn(tuple(whole.mean.shape), gen, c.device, dtype)
            outs.append(whole.mean + whole.std * eps)
            x.mode = "sparse"
            for idx in batches:
                x.set_active(active[idx], repeat=len(idx))
                imgs = torch.stack([frame(i) for i in idx]).to(c.device, vae.dtype)
                dist = vae.encode(imgs).latent_dist
                outs.append(dist.mean + dist.std * eps)
        x.mode = "off"
        return (torch.cat(outs) * vae.config.scaling_factor).to(dtype)

    def _decode(
        self, frame: Callable[[int], torch.Tensor], lat: torch.Tensor, active: torch.Tensor
    ) -> Iterator[tuple[int, torch.Tensor]]:
        """The whole frames decoded whole (recorded); the others on their active blocks, with
        their whole frame's latents and activations around them; outside the blocks the
        source."""
        x, vae = self.vae_x, self.c.vae
        scale = vae.config.scaling_factor
        h, w = active.shape[-2:]
        lat_active = F.adaptive_max_pool2d(active.float(), lat.shape[-2:]) > 0
        for key, batches in self._vae_groups(lat.shape[0]):
            x.mode = "record"
            whole = vae.decode(lat[key : key + 1] / scale, return_dict=False)[0]
            box = box_cover(image_boxes(active[key : key + 1], self.align), h, w)[0]
            yield key, self._composite(frame(key), whole[0], box)
            x.mode = "sparse"
            for idx in batches:
                yield from self._decode_sparse(frame, lat, active, lat_active, idx, key)
        x.mode = "off"

    def _decode_sparse(
        self,
        frame: Callable[[int], torch.Tensor],
        lat: torch.Tensor,
        active: torch.Tensor,
        lat_active: torch.Tensor,
        idx: list[int],
        key: int,
    ) -> Iterator[tuple[int, torch.Tensor]]:
        """One batch of frames decoded on their boxes around the whole frame ``key``."""
        x, vae = self.vae_x, self.c.vae
        h, w = active.shape[-2:]
        x.set_active(active[idx], repeat=len(idx))
        z = torch.where(lat_active[idx].to(lat.device), lat[idx], lat[key : key + 1])
        imgs = vae.decode(z / vae.config.scaling_factor, return_dict=False)[0]
        boxes: list[tuple[int, int, int, int] | None] = [None] * len(idx)
        if x.live:
            final = x.level(h, w)  # the box the last convolution computed
            for j, r in enumerate(x.live):
                t, lf = final.top[j], final.left[j]
                boxes[r] = (t, lf, t + final.h, lf + final.w)
        cover = box_cover(boxes, h, w)
        for j, i in enumerate(idx):
            yield i, self._composite(frame(i), imgs[j], cover[j])

    @staticmethod
    def _composite(src: torch.Tensor, decoded: torch.Tensor, cover: torch.Tensor) -> torch.Tensor:
        img = torch.where(cover.to(decoded.device), decoded.float(), src.to(decoded.device).float())
        return (img / 2 + 0.5).clamp(0, 1).permute(1, 2, 0).cpu()

    # ---- UNet ------------------------------------------------------------------------------
    def _sample(
        self,
        init: torch.Tensor,
        active: torch.Tensor,
        callback: Callable[[int, int], None] | None,
        noise_coords: torch.Tensor | None,
        flows: torch.Tensor | None,
    ) -> torch.Tensor:
        c, s = self.c, self.s
        guide = guidance_for(c, s.prompt, s.negative_prompt, s.guidance)
        from fathom.engine.diffusion.video import video_sampler

        sched = make_scheduler(c.scheduler, video_sampler(s.scheduler, c.scheduler, False))
        check_sampler(sched)
        sched.set_timesteps(s.steps, device=c.device)
        timesteps, _ = strength_timesteps(sched, s.steps, s.strength)
        noise = (
            self.noise.expand_as(init)
            if noise_coords is None
            else warp_noise(self.noise, noise_coords).to(init.dtype)
        )
        lat = sched.add_noise(init, noise, timesteps[:1].repeat(len(init)))
        n, halves = lat.shape[0], 2 if guide.cfg else 1
        for i, t in enumerate(timesteps):
            eps = torch.empty_like(lat)
            x_key = sched.scale_model_input(lat[:1], t)
            eps[:1] = self._keyframe_eps(x_key, t, guide, i, active[:1])
            self.unet_x.mode = "sparse"
            for idx in self._batches(n):
                f = len(idx)
                self.unet_x.set_active(active[idx].repeat(halves, 1, 1, 1), repeat=f)
                eps[idx] = self._eps(sched.scale_model_input(lat[idx], t), t, guide)
                self.stats.sparse_unet_calls += 1
            self.unet_x.mode = "off"
            lat = sched.step(eps, t, lat, return_dict=True).prev_sample
            if s.flow_fusion > 0 and flows is not None:
                lat = fuse_along_flow(lat, flows, None, s.flow_fusion)
            if callback is not None:
                callback(i + 1, len(timesteps))
        return lat

    def _keyframe_eps(
        self, lat: torch.Tensor, t: Any, guide: Any, step: int, active: torch.Tensor
    ) -> torch.Tensor:
        x = self.unet_x
        halves = 2 if guide.cfg else 1
        if step % self.refresh == 0:
            x.mode = "record"
            self.stats.dense_unet_calls += 1
        else:
            x.mode = "sparse"
            x.set_active(active.repeat(halves, 1, 1, 1))
            self.stats.sparse_unet_calls += 1
        return self._eps(lat, t, guide)

    def _eps(self, x: torch.Tensor, t: Any, guide: Any) -> torch.Tensor:
        f = x.shape[0]
        emb = guide.embeds.repeat_interleave(f, dim=0)
        x_in = guide.batch(x)
        tc = None if guide.t_cond is None else guide.t_cond[:1].repeat(x_in.shape[0], 1)
        pred = self.c.unet(x_in, t, encoder_hidden_states=emb, timestep_cond=tc, return_dict=False)
        return guide.combine(pred[0])


def check_sampler(sched: Any) -> None:
    """Sparse editing needs a sampler whose model input is the latents themselves."""
    if float(sched.init_noise_sigma) != 1.0:
        raise LoopInputError(
            f"sparse object-centric editing needs a variance-preserving sampler, not "
            f"{type(sched).__name__}",
            port="scheduler",
            fix="use default, ddim, dpmpp_2m, unipc or lcm",
        )
