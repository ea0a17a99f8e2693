"""Sparse execution of a convolutional diffusion network around a recorded full-frame pass.

Li et al., "Efficient Spatially Sparse Inference for Conditional GANs and Diffusion Models"
(SIGE, NeurIPS 2022) observe that an edit touches a small part of an image, so a network
re-run on the edited image can compute only the region the edit reaches and take everything
else from the activations of a pass over the original. This module is our own implementation
of that idea for diffusers' UNet and VAE, with one active box per batch item and level (the
region's bounding box, rounded out to the level's pixels): on this CPU one dense convolution
over a box runs several times faster per output than the same work split into many small
blocks, and objects are compact.

- A *record* pass runs the model whole and keeps what the sparse pass reads as context: every
  plain ``nn.Conv2d``'s output; every ``ResnetBlock2D``'s output and the input of its second
  norm (with that input's per-group sums); every ``Transformer2DModel``'s output and its
  self-attention keys and values, block by block.
- A *sparse* pass is given each item's active region (a mask at image resolution). A residual
  block gathers its input's box with the one-pixel halo its first 3×3 convolution reads,
  runs norm, activation, convolution and time embedding on the box alone, takes the ring its
  second convolution reads around the box from the recorded first convolution's output (the
  cached context), then norm, activation, convolution and the shortcut, and writes the box
  into a copy of its recorded output. Group
  norm statistics are the whole frame's: the first norm's from the input (whole), the second
  norm's from the recorded sums with the box's recorded part swapped for the new one. A
  transformer runs its blocks on the box's tokens only: queries for them, keys and values from
  the recorded ones with the box's own written in (plus the anchor frame's, unchanged, for
  video), cross-attention and feed-forward token by token. Other convolutions (in, out,
  resampling) gather their box with the halo their kernel reads. What stays dense is cheap:
  skip concatenations, nearest upsampling, the last norm.

With every pixel active a sparse pass computes what the dense model computes (to float
rounding); with none active every layer returns its recorded output. Batch item ``i`` reads
the context recorded for item ``i // repeat`` (many frames may share one recorded keyframe).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

ANCHOR_MODES = ("first+self", "first", "off")


@dataclass
class Boxes:
    """One equal-sized box per computed item at one level: rows ``top``, columns ``left``."""

    top: list[int]
    left: list[int]
    h: int
    w: int


# --------------------------------------------------------------------------- pure functions


def image_boxes(mask: torch.Tensor, align: int) -> list[tuple[int, int, int, int] | None]:
    """(B, 1, H, W) → per item the (y0, x0, y1, x1) bounding box of its nonzero pixels,
    rounded out to multiples of ``align`` (None for an empty item)."""
    out: list[tuple[int, int, int, int] | None] = []
    h, w = mask.shape[-2:]
    for m in mask[:, 0] > 0:
        rows = torch.nonzero(m.any(1), as_tuple=False)
        cols = torch.nonzero(m.any(0), as_tuple=False)
        if rows.numel() == 0:
            out.append(None)
            continue
        y0, y1 = int(rows[0]) // align * align, -(-(int(rows[-1]) + 1) // align) * align
        x0, x1 = int(cols[0]) // align * align, -(-(int(cols[-1]) + 1) // align) * align
        out.append((y0, x0, min(h, y1), min(w, x1)))
    return out


def level_boxes(boxes: list[tuple[int, int, int, int]], factor: int, h: int, w: int) -> Boxes:
    """Image-pixel boxes → boxes at a level ``factor`` times coarser (h×w pixels), rounded
    out, all grown to the largest's size and moved back inside the level where they stick out."""
    spans = [
        (y0 // factor, x0 // factor, -(-y1 // factor), -(-x1 // factor)) for y0, x0, y1, x1 in boxes
    ]
    bh = min(h, max(b[2] - b[0] for b in spans))
    bw = min(w, max(b[3] - b[1] for b in spans))
    tops = [min(max(0, (b[0] + b[2] - bh) // 2), h - bh) for b in spans]
    lefts = [min(max(0, (b[1] + b[3] - bw) // 2), w - bw) for b in spans]
    return Boxes(tops, lefts, bh, bw)


def gather_window(
    x: torch.Tensor,
    tops: list[int],
    lefts: list[int],
    th: int,
    tw: int,
    rows: list[int] | None = None,
) -> torch.Tensor:
    """(B, C, H, W) → (I, C, th, tw) windows at (top, left) of items ``rows`` (default: every
    item in order), zero outside ``x`` (tops and lefts may be negative)."""
    _, c, h, w = x.shape
    rows = list(range(len(tops))) if rows is None else rows
    spots = list(zip(rows, tops, lefts, strict=True))
    if all(0 <= t <= h - th and 0 <= lf <= w - tw for _, t, lf in spots):
        return torch.stack([x[r, :, t : t + th, lf : lf + tw] for r, t, lf in spots])
    out = x.new_zeros((len(spots), c, th, tw))
    for i, (r, t, lf) in enumerate(spots):
        y0, y1, x0, x1 = max(0, t), min(h, t + th), max(0, lf), min(w, lf + tw)
        if y1 > y0 and x1 > x0:
            out[i, :, y0 - t : y1 - t, x0 - lf : x1 - lf] = x[r, :, y0:y1, x0:x1]
    return out


def inside(
    tops: list[int], lefts: list[int], th: int, tw: int, h: int, w: int, like: torch.Tensor
) -> torch.Tensor | None:
    """(B, 1, th, tw) 1 where a window pixel lies inside the h×w frame, else 0; None when
    every window lies inside."""
    if all(0 <= t <= h - th for t in tops) and all(0 <= lf <= w - tw for lf in lefts):
        return None
    ys = (
        torch.arange(th, device=like.device)[None, :]
        + torch.tensor(tops, device=like.device)[:, None]
    )
    xs = (
        torch.arange(tw, device=like.device)[None, :]
        + torch.tensor(lefts, device=like.device)[:, None]
    )
    ok = ((ys >= 0) & (ys < h))[:, :, None] & ((xs >= 0) & (xs < w))[:, None, :]
    return ok[:, None].to(like.dtype)


def scatter_window(
    out: torch.Tensor, y: torch.Tensor, tops: list[int], lefts: list[int], rows: list[int]
) -> None:
    """Write (I, C, bh, bw) ``y`` into ``out`` rows ``rows`` at (top, left), in place."""
    bh, bw = y.shape[-2:]
    for k, (r, t, lf) in enumerate(zip(rows, tops, lefts, strict=True)):
        out[r, :, t : t + bh, lf : lf + bw] = y[k].to(out.dtype)


def group_sums(x: torch.Tensor, groups: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, C, ...) → per-group sum and sum of squares, (B, G) each, in float64."""
    g = x.reshape(x.shape[0], groups, -1).double()
    return g.sum(-1), (g * g).sum(-1)


def group_norm_with(
    x: torch.Tensor, norm: nn.GroupNorm, mean: torch.Tensor, var: torch.Tensor
) -> torch.Tensor:
    """GroupNorm of ``x`` (B, C, h, w) with given per-group statistics (B, G), as one
    per-channel scale and shift."""
    b, c = x.shape[:2]
    g = norm.num_groups
    rstd = torch.rsqrt(var.clamp_min(0) + norm.eps)
    scale = rstd.repeat_interleave(c // g, 1)  # (B, C)
    shift = -mean.repeat_interleave(c // g, 1) * scale
    if norm.affine:
        scale = scale * norm.weight
        shift = shift * norm.weight + norm.bias
    shape = (b, c) + (1,) * (x.ndim - 2)
    return torch.addcmul(shift.reshape(shape).to(x.dtype), x, scale.reshape(shape).to(x.dtype))


# --------------------------------------------------------------------------- the executor


class SparseExecution:
    """Record / sparse execution of a model's convolutions, residual blocks and transformers.

    align: boxes are rounded out to multiples of this many image pixels. anchor: how sparse
    self-attention adds the anchor frame's keys (the recorded item's, unchanged):
    "first+self" (own updated keys and the anchor's), "first" (the anchor's only) or "off"
    (own only), as the video loop's anchor attention. reuse_stats: a residual block's first
    norm takes its whole-frame statistics from the recorded input's sums with the box's part
    swapped for the new one (as the second norm always does) instead of summing the whole
    input: exact where the input outside the box is the recorded one, at the box's cost
    instead of the frame's. ``mode`` is "off" (the model runs as if unpatched), "record" or
    "sparse"; set the active region with :meth:`set_active` first.
    """

    def __init__(self, align: int = 8, anchor: str = "off", reuse_stats: bool = False) -> None:
        if anchor not in ANCHOR_MODES:
            raise ValueError(f"anchor must be one of {ANCHOR_MODES}, not {anchor!r}")
        self.align = align
        self.anchor = anchor
        self.reuse_stats = reuse_stats
        self.mode = "off"
        self.cache: dict[str, Any] = {}
        self.repeat = 1
        self.image_hw: tuple[int, int] = (0, 0)
        self.live: list[int] = []  # items with an active region
        self.boxes: list[tuple[int, int, int, int]] = []
        self.computed = 0.0  # outputs computed in record and sparse passes (pixels, per layer)
        self.total = 0.0  # ... and those dense passes would have computed
        self._levels: dict[tuple[int, int], Boxes] = {}
        self._patched: list[nn.Module] = []
        self._hooks: list[Any] = []

    # ---- configuration ---------------------------------------------------------------------
    def set_active(self, mask: torch.Tensor, repeat: int = 1) -> None:
        """mask: (B, 1, H, W) at image resolution, nonzero where active; item i reads the
        context recorded for item i // repeat."""
        found = image_boxes(mask, self.align)
        self.live = [i for i, b in enumerate(found) if b is not None]
        self.boxes = [b for b in found if b is not None]
        self.image_hw = (int(mask.shape[-2]), int(mask.shape[-1]))
        self.repeat = repeat
        self._levels.clear()

    @property
    def cached_bytes(self) -> int:
        return sum(
            t.numel() * t.element_size() for t in self.cache.values() if isinstance(t, torch.Tensor)
        )

    def attach(self, model: nn.Module) -> None:
        owners: list[str] = []
        for name, module in model.named_modules():
            kind = type(module).__name__
            if kind == "ResnetBlock2D" and module.upsample is None and module.downsample is None:
                self._patch(module, name, self.sparse_resnet)
                self._hooks.append(
                    module.norm2.register_forward_pre_hook(self._keep_input(f"{name}.h1"))
                )
                if self.reuse_stats:
                    self._hooks.append(
                        module.norm1.register_forward_pre_hook(self._keep_input(f"{name}.x0"))
                    )
                owners.append(name)
            elif kind == "Transformer2DModel" and getattr(module, "is_input_continuous", False):
                self._patch(module, name, self.sparse_transformer)
                for j, blk in enumerate(module.transformer_blocks):
                    for part in ("k", "v"):
                        proj = getattr(blk.attn1, f"to_{part}")
                        self._hooks.append(
                            proj.register_forward_hook(self._keep(f"{name}.{j}.{part}"))
                        )
                owners.append(name)
        for name, module in model.named_modules():
            inner = any(name.startswith(f"{o}.") or (o == "" and name) for o in owners)
            if isinstance(module, nn.Conv2d) and not inner:
                self._patch(module, name, self.sparse_conv)

    def detach(self) -> None:
        for module in self._patched:
            del module.forward
        self._patched.clear()
        for hook in self._hooks:
            hook.remove()
        self._hooks.clear()
        self.cache.clear()

    def _patch(self, module: nn.Module, key: str, sparse: Any) -> None:
        original = module.forward
        owner = self

        def forward(x: torch.Tensor, *args: Any, **kwargs: Any) -> Any:
            if owner.mode == "record":
                y = original(x, *args, **kwargs)
                out = y[0] if isinstance(y, tuple) else getattr(y, "sample", y)
                owner.cache[key] = out.detach()
                whole = out.shape[0] * out.shape[-2] * out.shape[-1]
                owner.total += whole  # a recorded pass computes everything
                owner.computed += whole
                return y
            if owner.mode != "sparse":
                return original(x, *args, **kwargs)
            return sparse(module, key, x, *args, **kwargs)

        module.forward = forward
        self._patched.append(module)

    def _keep(self, key: str) -> Any:
        def hook(module: nn.Module, args: Any, output: torch.Tensor) -> None:
            if self.mode == "record":
                self.cache[key] = output.detach()

        return hook

    def _keep_input(self, key: str) -> Any:
        """A norm's pre-hook recording its input and the input's per-group sums."""

        def hook(norm: nn.GroupNorm, args: Any) -> None:
            if self.mode == "record":
                kept = args[0].detach()
                self.cache[key] = kept
                self.cache[f"{key}sums"] = group_sums(kept, norm.num_groups)

        return hook

    # ---- helpers -----------------------------------------------------------------------------
    def level(self, h: int, w: int) -> Boxes:
        hit = self._levels.get((h, w))
        if hit is None:
            factor = max(1, round(self.image_hw[0] / h))
            hit = level_boxes(self.boxes, factor, h, w)
            self._levels[(h, w)] = hit
        return hit

    def _rows(self, key: str, batch: int) -> torch.Tensor:
        """The recorded tensor laid out for a batch of ``batch`` items (a copy)."""
        kept = self.cache.get(key)
        if kept is None:
            raise RuntimeError(f"nothing recorded for {key}: run a record pass first")
        if kept.shape[0] * self.repeat != batch:
            raise RuntimeError(
                f"{key} was recorded for {kept.shape[0]} items; {batch} items cannot read it "
                f"{self.repeat} to a recorded one"
            )
        if self.repeat == 1:
            return kept.clone()
        shape = kept.shape
        wide = kept[:, None].expand(shape[0], self.repeat, *shape[1:])
        return wide.contiguous().view(batch, *shape[1:])  # a copy: rows are written into

    def _rec_rows(self) -> list[int]:
        return [i // self.repeat for i in self.live]

    def _count(self, batch: int, h: int, w: int, box: Boxes | None) -> None:
        self.total += batch * h * w
        if box is not None:
            self.computed += len(self.live) * box.h * box.w

    def _sub(self, t: torch.Tensor | None) -> torch.Tensor | None:
        if t is None or t.ndim == 0 or t.shape[0] == 1:
            return t
        return t[self.live]

    def _stats(self, x: torch.Tensor, groups: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Whole-frame per-group mean and variance of the computed items of ``x``."""
        var, mean = torch.var_mean(x.reshape(x.shape[0], groups, -1), -1, unbiased=False)
        if len(self.live) < x.shape[0]:
            return mean[self.live], var[self.live]
        return mean, var

    # ---- plain convolutions --------------------------------------------------------------------
    def sparse_conv(self, conv: nn.Conv2d, key: str, x: torch.Tensor) -> torch.Tensor:
        out = self._rows(key, x.shape[0])
        h, w = out.shape[-2:]
        if not self.live:
            self._count(x.shape[0], h, w, None)
            return out
        if conv.padding_mode != "zeros" or conv.dilation != (1, 1) or isinstance(conv.padding, str):
            raise RuntimeError(f"{key}: sparse execution supports zero-padded plain convolutions")
        box = self.level(h, w)
        (kh, kw), (sh, sw), (ph, pw) = conv.kernel_size, conv.stride, conv.padding
        th, tw = (box.h - 1) * sh + kh, (box.w - 1) * sw + kw
        tops, lefts = [t * sh - ph for t in box.top], [lf * sw - pw for lf in box.left]
        tiles = gather_window(x, tops, lefts, th, tw, self.live)
        y = F.conv2d(tiles, conv.weight, conv.bias, conv.stride, 0, 1, conv.groups)
        scatter_window(out, y, box.top, box.left, self.live)
        self._count(x.shape[0], h, w, box)
        return out

    # ---- residual blocks ----------------------------------------------------------------
    def sparse_resnet(
        self,
        block: Any,
        key: str,
        x: torch.Tensor,
        temb: torch.Tensor | None = None,
        *a: Any,
        **k: Any,
    ) -> torch.Tensor:
        if block.time_embedding_norm == "scale_shift":
            raise RuntimeError(f"{key}: sparse execution supports additive time embeddings only")
        out = self._rows(key, x.shape[0])
        bsz, _, h, w = x.shape
        if not self.live:
            self._count(bsz, h, w, None)
            return out
        box = self.level(h, w)
        tops, lefts = [t - 1 for t in box.top], [lf - 1 for lf in box.left]
        xg = gather_window(x, tops, lefts, box.h + 2, box.w + 2, self.live)
        ok = inside(tops, lefts, box.h + 2, box.w + 2, h, w, xg)
        if self.reuse_stats:
            mean, var = self._swapped_stats(block.norm1, f"{key}.x0", xg[:, :, 1:-1, 1:-1], box)
        else:
            mean, var = self._stats(x, block.norm1.num_groups)
        hid = block.nonlinearity(group_norm_with(xg, block.norm1, mean, var))
        hid = F.conv2d(hid if ok is None else hid * ok, block.conv1.weight, block.conv1.bias)
        if block.time_emb_proj is not None and temb is not None:
            t = temb if block.skip_time_act else block.nonlinearity(temb)
            hid = hid + block.time_emb_proj(self._sub(t))[:, :, None, None]
        # The second convolution's one-pixel ring around the box: the recorded first
        # convolution's output (context from the cache), the box itself new.
        ring = gather_window(
            self.cache[f"{key}.h1"], tops, lefts, box.h + 2, box.w + 2, self._rec_rows()
        )
        ring[:, :, 1:-1, 1:-1] = hid
        mean2, var2 = self._swapped_stats(block.norm2, f"{key}.h1", hid, box)
        hid = block.nonlinearity(group_norm_with(ring, block.norm2, mean2, var2))
        hid = F.conv2d(
            block.dropout(hid if ok is None else hid * ok), block.conv2.weight, block.conv2.bias
        )
        short = xg[:, :, 1:-1, 1:-1]
        if block.conv_shortcut is not None:
            cs = block.conv_shortcut
            short = F.conv2d(short, cs.weight, cs.bias)
        scatter_window(out, (short + hid) / block.output_scale_factor, box.top, box.left, self.live)
        self._count(bsz, h, w, box)
        return out

    def _swapped_stats(
        self, norm: nn.GroupNorm, key: str, core: torch.Tensor, box: Boxes
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """A norm's whole-frame statistics from its recorded input's sums with the box's
        recorded part replaced by ``core`` (the box's new values)."""
        rec = self.cache.get(key)
        if rec is None:
            raise RuntimeError(f"nothing recorded for {key}: run a record pass first")
        s1, s2 = self.cache[f"{key}sums"]
        rows = self._rec_rows()
        old = gather_window(rec, box.top, box.left, box.h, box.w, rows)
        g = norm.num_groups
        o1, o2 = group_sums(old, g)
        n1, n2 = group_sums(core, g)
        count = rec[0].numel() / g
        mean = (s1[rows] - o1 + n1) / count
        var = (s2[rows] - o2 + n2) / count - mean * mean
        return mean.float(), var.float()

    # ---- transformers -------------------------------------------------------------------
    def sparse_transformer(self, model: Any, key: str, x: torch.Tensor, *a: Any, **kw: Any) -> Any:
        out = self._rows(key, x.shape[0])
        bsz, _, h, w = x.shape
        if self.live:
            box = self.level(h, w)
            out_core = self._transformer_box(model, key, x, box, kw)
            scatter_window(out, out_core, box.top, box.left, self.live)
            self._count(bsz, h, w, box)
        else:
            self._count(bsz, h, w, None)
        if kw.get("return_dict", True):
            from diffusers.models.modeling_outputs import Transformer2DModelOutput

            return Transformer2DModelOutput(sample=out)
        return (out,)

    def _transformer_box(
        self, model: Any, key: str, x: torch.Tensor, box: Boxes, kw: dict[str, Any]
    ) -> torch.Tensor:
        i, w = len(self.live), x.shape[-1]
        norm = model.norm
        mean, var = self._stats(x, norm.num_groups)
        xb = gather_window(x, box.top, box.left, box.h, box.w, self.live)
        hid = group_norm_with(xb, norm, mean, var)
        if not model.use_linear_projection:
            hid = F.conv2d(hid, model.proj_in.weight, model.proj_in.bias)
        inner = hid.shape[1]
        tok = hid.permute(0, 2, 3, 1).reshape(i, box.h * box.w, inner)
        if model.use_linear_projection:
            tok = model.proj_in(tok)
            inner = tok.shape[-1]
        ys = torch.arange(box.h)[None, :, None] + torch.tensor(box.top)[:, None, None]
        xs_ = torch.arange(box.w)[None, None, :] + torch.tensor(box.left)[:, None, None]
        idx = (ys * w + xs_).reshape(i, -1).to(x.device)
        ehs = self._sub(kw.get("encoder_hidden_states"))
        for j, blk in enumerate(model.transformer_blocks):
            tok = self._block(blk, f"{key}.{j}", tok, idx, ehs, x.shape[0])
        if model.use_linear_projection:
            tok = model.proj_out(tok)
        hid = tok.reshape(i, box.h, box.w, inner).permute(0, 3, 1, 2)
        if not model.use_linear_projection:
            hid = F.conv2d(hid, model.proj_out.weight, model.proj_out.bias)
        return hid + xb

    def _block(
        self, blk: Any, key: str, tok: torch.Tensor, idx: torch.Tensor, ehs: Any, batch: int
    ) -> torch.Tensor:
        """A BasicTransformerBlock (layer norms, self-, cross-attention, feed-forward) on the
        box's tokens."""
        if blk.norm_type != "layer_norm" or blk.pos_embed is not None or blk.only_cross_attention:
            raise RuntimeError(f"{key}: sparse execution supports plain layer-norm blocks only")
        tok = tok + self._self_attention(blk.attn1, key, blk.norm1(tok), idx, batch)
        if blk.attn2 is not None:
            tok = tok + blk.attn2(blk.norm2(tok), encoder_hidden_states=ehs)
        return tok + blk.ff(blk.norm3(tok))

    def _self_attention(
        self, attn: Any, key: str, hs: torch.Tensor, idx: torch.Tensor, batch: int
    ) -> torch.Tensor:
        from fathom.engine.diffusion.videoattn import attention_out

        q = attn.to_q(hs)
        i, m, _ = q.shape
        if self.anchor == "first":  # the anchor's keys only: the recorded ones
            k = self._rec_tokens(f"{key}.k", None)
            v = self._rec_tokens(f"{key}.v", None)
            bias = None
        else:
            k = self._rec_tokens(f"{key}.k", attn.to_k(hs))
            v = self._rec_tokens(f"{key}.v", attn.to_v(hs))
            bias = self._key_bias(idx, k.shape[1] - m, m, q.dtype)
        i, m, _ = q.shape
        heads = attn.heads
        d = q.shape[-1] // heads
        qh = q.view(i, m, heads, d).transpose(1, 2)
        kh = k.view(i, -1, heads, d).transpose(1, 2).to(qh.dtype)
        vh = v.view(i, -1, heads, d).transpose(1, 2).to(qh.dtype)
        o = F.scaled_dot_product_attention(qh, kh, vh, attn_mask=bias, scale=attn.scale)
        o = o.transpose(1, 2).reshape(i, m, heads * d).to(q.dtype)
        return attention_out(attn, o, hs)

    def _rec_tokens(self, key: str, new: torch.Tensor | None) -> torch.Tensor:
        """The computed items' recorded tokens (I, N, C), followed by ``new`` (I, M, C)."""
        kept = self.cache[key]
        rows = self._rec_rows()
        n, c = kept.shape[1:]
        m = 0 if new is None else new.shape[1]
        out = kept.new_empty((len(rows), n + m, c))
        if len(rows) == kept.shape[0] * self.repeat:  # every item: a broadcast copy
            out[:, :n].view(kept.shape[0], self.repeat, n, c).copy_(kept[:, None])
        else:
            out[:, :n] = kept[rows]
        if new is not None:
            out[:, n:] = new.to(out.dtype)
        return out

    def _key_bias(self, idx: torch.Tensor, n: int, m: int, dtype: torch.dtype) -> torch.Tensor:
        """Attention bias over [recorded tokens, the box's new tokens]. "first+self" attends
        to the frame's own keys (recorded outside the box, new inside) and the anchor's (all
        recorded): a recorded key outside the box counts twice (+log 2). "off": own keys
        only, so the recorded keys inside the box are left out."""
        i = idx.shape[0]
        outside, in_box = (math.log(2.0), 0.0) if self.anchor == "first+self" else (0.0, -math.inf)
        rec = torch.full((i, n), outside, dtype=dtype, device=idx.device)
        rec.scatter_(1, idx, in_box)
        bias = torch.cat([rec, torch.zeros(i, m, dtype=dtype, device=idx.device)], 1)
        return bias[:, None, None, :]
