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
from typing import Any

import torch
from torch.nn import functional as F

from fathom.engine.accel.tome import MergePlan, destination_mask, merge, token_grid, unmerge
from fathom.engine.diffusion.videoattn import (
    FrameLayout,
)

# --------------------------------------------------------------------------- pure functions


def plan_object_merge(
    metric: torch.Tensor, dst: torch.Tensor, fg: torch.Tensor, ratio_bg: float, ratio_fg: float
) -> MergePlan:
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
    return MergePlan(
        keep=keep, src=src_index[merged_local], into=best_dst.gather(1, merged_local), n=n
    )


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


def crop_boxes(
    weight: torch.Tensor, margin: int, multiple: int
) -> list[tuple[int, int, int, int]] | None:
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
    return torch.stack([x[i, :, t : t + h, lf : lf + w] for i, (t, lf, h, w) in enumerate(boxes)])


def paste(x: torch.Tensor, patch: torch.Tensor, boxes: list[tuple[int, int, int, int]]) -> None:
    for i, (t, lf, h, w) in enumerate(boxes):
        x[i, :, t : t + h, lf : lf + w] = patch[i]


def shared_steps(k: int, bg_steps: int) -> list[int]:
    """Indices (into the k run timesteps) where the whole frame is denoised: ``bg_steps`` of
    them, evenly spread, always including the first (the layout is decided there)."""
    n = max(1, min(int(bg_steps), k))
    return sorted({int(math.floor(i * k / n)) for i in range(n)})


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

    def __init__(
        self,
        ratio_bg: float = 0.5,
        ratio_fg: float = 0.0,
        temporal: bool = False,
        max_downsample: int = 1,
        layout: FrameLayout | None = None,
        seed: int = 0,
        sx: int = 2,
        sy: int = 2,
    ) -> None:
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
