"""SegFormer on a video, computing only what changed since the previous frame.

Consecutive frames share most of their content, so most of a segmentation network's work on
frame t repeats its work on frame t − 1. ``SegformerTemporal`` runs a transformers SegFormer
(``SegformerForSemanticSegmentation``) layer by layer and keeps, per layer, the activations of
the previous frame:

* ``reuse`` (training-free, in the manner of Eventful Transformers / CMC): a pixel, and at the
  input of every transformer block and of every stage's path into the decoder a token, counts as
  changed only when it moved by more than ``threshold`` (relative: the L2 norm of its change over
  the layer's mean norm on the keyframe) since it was last computed; the others keep their cached
  values, and everything downstream of them is reused. Work follows the changed set: only the
  rows that moved this frame are checked (an unmoved row cannot newly cross the threshold); the
  overlapping patch embeddings and the spatially reduced keys and values are computed only at
  the output positions whose receptive field holds a changed token (their patches gathered, one
  matrix product; the first embedding, over three-channel pixels whose patches are too small to
  gather well, as a dense convolution over the band of rows that holds them); the Mix-FFN's 3×3
  depth-wise convolution runs over the full-width band of map rows that holds the changed rows,
  channels-last as the token rows lie in memory, and its output is recomputed at the changed
  rows (at threshold 0 also on their one-token dilation, which the convolution reaches);
  cached tensors are updated in place (``index_copy_``). The decoder's projection,
  its 1×1 fuse layer and the batch norm are linear, and so is bilinear upsampling, so each
  stage is projected straight to the fused, normalised channels at its own resolution (the
  model's 1×1 fuse alone costs 1,024 × 256 multiply-adds per 1/4-resolution pixel; the folded
  projections about 16 K per pixel at SegFormer-B0's widths). Where few pixels of the
  1/4-resolution map can have changed (the bilinear footprint of the changed tokens), only they
  are summed and classified; otherwise the stages are upsampled channels-last into buffers kept
  from frame to frame and every pixel is classified (cheaper than gathering most of them). With
  ``threshold`` 0 only what provably did not change is reused (a query is also recomputed when
  any key moved, so a frame where anything moved is recomputed whole; a still frame is reused
  whole), and the result equals the model's up to float rounding.
* ``resq`` (ResQ, Abati et al. 2023): the same gating, but each linear layer computes a changed
  token from the low-bit quantised residual against its cached input, ``y = y_prev + W·Q(x −
  x_prev)``; the bit-width follows the amount of change of the frame: ``bits`` for a small
  change, one more per doubling beyond ``BASE_CHANGE`` (``resq.bits_for_change``).

With ``edge_slack`` above 1, both modes spend the work near the mask's edges: a token whose
pixels are all far from flipping (a wide margin between the mask's labels and the rest on the
previous frame) may change up to ``edge_slack`` times the threshold before it is recomputed, in
proportion to that margin; near an edge the threshold stands (``_set_slack``).

The reference a token is compared with is its input when it was last recomputed, so slow drift
of a token's own input is caught instead of accumulating (above threshold 0, the Mix-FFN ring
around changed tokens is the exception, see ``_block``; where ``edge_slack`` falls, the tokens
it tightened are checked again on the next frame). Keyframes (the caller decides) run every
row, and a frame of another size starts afresh. Only one frame's activations are held.
``FrameStream`` turns such a per-frame step into the random-access frame function a lazy
``Video`` needs.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F

from fathom.engine.accel.resq import bits_for_change

TEMPORAL_MODES = ("reuse", "resq")
#: The frame change (relative RMS of the pixels) up to which ``resq`` uses ``bits``; one bit
#: more per doubling beyond it, up to 8 (the same rule as video.depth's ResQ).
BASE_CHANGE = 0.1
#: The margin (between the mask's labels and the rest, per pixel) from which ``edge_slack``
#: starts to loosen the threshold: this share of the keyframe's median margin.
MARGIN_SHARE = 0.25


def quantise(delta: torch.Tensor, bits: int) -> torch.Tensor:
    """Symmetric uniform fake quantisation to ``bits`` bits, one scale per token (row)."""
    levels = 2 ** (bits - 1) - 1
    scale = delta.abs().amax(dim=-1, keepdim=True).clamp_min(1e-12) / levels
    return torch.round(delta / scale).clamp_(-levels, levels) * scale


def _rows(t: torch.Tensor, idx: torch.Tensor | None) -> torch.Tensor:
    return t if idx is None else t[:, idx]


def _put(cache: torch.Tensor | None, idx: torch.Tensor | None, v: torch.Tensor) -> torch.Tensor:
    """Rows ``idx`` of ``cache`` (1, N, C) set to ``v`` in place; None: ``v`` becomes the cache."""
    if idx is None or cache is None:
        return v.clone()
    return cache.index_copy_(1, idx, v)


def _patch_index(grid: tuple[int, int], k: int, stride: int, pad: int) -> torch.Tensor:
    """For a k×k convolution with ``stride`` and zero ``pad`` on an h×w token grid: per output
    position, the k·k input tokens it reads (row-major, h·w standing for the zero padding)."""
    h, w = grid
    axes = []
    for n in (h, w):
        start = torch.arange((n + 2 * pad - k) // stride + 1) * stride - pad
        pos = start[:, None] + torch.arange(k)[None, :]
        axes.append((pos, (pos >= 0) & (pos < n)))
    (yy, vy), (xx, vx) = axes
    idx = yy[:, None, :, None] * w + xx[None, :, None, :]
    valid = vy[:, None, :, None] & vx[None, :, None, :]
    return torch.where(valid, idx, h * w).reshape(-1, k * k)


def _spread(
    rows: torch.Tensor, grid: tuple[int, int], k: int, stride: int, pad: int
) -> torch.Tensor:
    """Output positions of a k×k / ``stride`` / ``pad`` convolution on ``grid`` that read any of
    the input tokens ``rows``."""
    m = torch.zeros(1, 1, *grid, device=rows.device)
    m.view(-1)[rows] = 1.0
    return F.max_pool2d(m, k, stride, pad).view(-1).nonzero()[:, 0]


class _Lin:
    """A linear layer applied to some rows; in ``resq`` mode it keeps its input and output per
    row and computes changed rows from the quantised residual."""

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor | None, resq: bool) -> None:
        self.w, self.b, self.resq = weight, bias, resq
        self.x_ref: torch.Tensor | None = None
        self.y: torch.Tensor | None = None

    def __call__(self, x: torch.Tensor, idx: torch.Tensor | None, bits: int | None) -> torch.Tensor:
        if not self.resq:
            return F.linear(x, self.w, self.b)
        if bits is None or self.x_ref is None or self.y is None:
            y = F.linear(x, self.w, self.b)
        else:
            ref = _rows(self.x_ref, idx)
            dq = quantise((x - ref).float(), bits).to(x.dtype)
            y = _rows(self.y, idx) + F.linear(dq, self.w)
            x = ref + dq  # the reference follows what was added: no drift between the two
        self.x_ref = _put(self.x_ref, idx, x)
        self.y = _put(self.y, idx, y)
        return y


def _dilate(idx: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """Token indices within one token (3×3) of ``idx`` on an h×w grid."""
    m = torch.zeros(1, 1, h, w, device=idx.device)
    m.view(-1)[idx] = 1.0
    return F.max_pool2d(m, 3, stride=1, padding=1).view(-1).nonzero()[:, 0]


def _region(idx: torch.Tensor | None, grid: Any, size: Any, device: torch.device) -> torch.Tensor:
    """Where a bilinear upsampling of a map to ``size`` changes when the tokens ``idx`` of the
    map (on ``grid``) change: their one-token dilation, sampled to ``size``."""
    if idx is None:
        return torch.ones(1, 1, *size, dtype=torch.bool, device=device)
    m = torch.zeros(1, 1, *grid, device=device)
    m.view(-1)[idx] = 1.0
    m = F.max_pool2d(m, 3, stride=1, padding=1)
    return F.interpolate(m, size=tuple(size), mode="nearest") > 0


class SegformerTemporal:
    """One SegFormer over one stream of frames (see the module docstring)."""

    def __init__(
        self,
        model: Any,
        mode: str,
        threshold: float,
        bits: int = 4,
        edge_slack: float = 1.0,
        labels: list[int] | None = None,
    ) -> None:
        if mode not in TEMPORAL_MODES:
            raise ValueError(f"mode must be one of {TEMPORAL_MODES}; got {mode!r}")
        self.model, self.mode = model, mode
        self.threshold, self.bits = float(threshold), int(bits)
        #: How many times the threshold a token away from the mask's edges may change before
        #: it is recomputed (1: the threshold everywhere); ``labels``: the classes the mask
        #: is made of, whose decision against the rest the edges are where it is close.
        self.edge_slack = max(1.0, float(edge_slack))
        self.labels = None if labels is None else sorted(set(labels))
        self.exact = self.threshold <= 0
        self.recomputed = 1.0  # share of the gated rows recomputed on the last frame
        self.frame_bits: int | None = None
        self.reset()

    def reset(self) -> None:
        self._refs: dict[str, torch.Tensor] = {}
        self._scales: dict[str, float] = {}
        self._cache: dict[str, Any] = {}
        self._lins: dict[str, _Lin] = {}
        self._prev_pixels: torch.Tensor | None = None
        self._counts = [0, 0]
        self._slack: dict[str, torch.Tensor] = {}  # per stage ("s0"...) and the pixels ("px")
        #: Per stage, the tokens whose slack fell on the last frame: checked again on the next
        #: although their input did not move (what they drifted under more slack may now be
        #: over their threshold).
        self._tightened: dict[str, torch.Tensor] = {}
        self._margin_ref = 0.0

    # ---- helpers ---------------------------------------------------------------------------

    def _lin(self, key: str, weight: torch.Tensor, bias: torch.Tensor | None) -> _Lin:
        lin = self._lins.get(key)
        if lin is None:
            lin = self._lins[key] = _Lin(weight, bias, self.mode == "resq")
        return lin

    def _gate(
        self, key: str, x: torch.Tensor, cand: torch.Tensor | None, key_frame: bool
    ) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        """Rows of ``x`` (1, N, C) to recompute (None: all, on a keyframe), updating their
        references, and those rows of ``x`` (gathered once: the caller needs them too). Only
        the candidates ``cand`` (the rows whose value moved this frame) are checked: a row
        that did not move cannot newly cross the threshold (except where ``edge_slack`` fell:
        those rows are checked too)."""
        n = x.shape[1]
        self._counts[0] += n
        ref = self._refs.get(key)
        if key_frame or ref is None or ref.shape != x.shape:
            self._refs[key] = x.clone()
            # The layer's mean token norm at the keyframe: what the threshold is relative to.
            self._scales[key] = self.threshold * float(x.float().norm(dim=-1).mean())
            self._counts[1] += n
            return None, None
        stage = "s" + key[1:].split(".")[0]  # "s1.0", "d1": stage 1's
        if cand is None:
            cand = torch.arange(n, device=x.device)
        elif (more := self._tightened.get(stage)) is not None and more.numel():
            if int(more.max()) < n:  # a tightened token is checked though it did not move
                cand = torch.unique(torch.cat([cand, more]))
        if cand.numel() * 2 > n:  # a dense difference is cheaper than gathering most rows
            d = torch.linalg.vector_norm(x[0] - ref[0], dim=-1)[cand]
        else:
            d = torch.linalg.vector_norm(x[0, cand] - ref[0, cand], dim=-1)
        slack = self._slack.get(stage)
        if slack is not None and slack.numel() == n:
            d = d / slack[cand]
        idx = cand[d > self._scales[key]]
        self._counts[1] += idx.numel()
        rows = x[:, idx]
        ref.index_copy_(1, idx, rows)
        return idx, rows

    def _index(self, key: str, conv: Any, grid: tuple[int, int]) -> torch.Tensor:
        """The gather index of ``conv`` (square kernel) on ``grid`` (see ``_patch_index``)."""
        ik = f"{key}.idx"
        if ik not in self._cache:
            k, st, pd = conv.kernel_size[0], conv.stride[0], conv.padding[0]
            self._cache[ik] = _patch_index(grid, k, st, pd).to(conv.weight.device)
        return self._cache[ik]

    def _conv_rows(
        self, key: str, conv: Any, src: torch.Tensor, grid: tuple[int, int], rows: torch.Tensor
    ) -> torch.Tensor:
        """Output positions ``rows`` of the dense convolution ``conv`` over the token map
        ``src`` ((N + 1, C), its last row zero: the padding) on ``grid``, as (n, C_out)."""
        wk = f"{key}.w"
        if wk not in self._cache:
            self._cache[wk] = conv.weight.permute(0, 2, 3, 1).reshape(conv.weight.shape[0], -1)
        if conv.in_channels <= 4:
            return self._conv_band(key, conv, src, grid, rows)
        patches = src[self._index(key, conv, grid)[rows]].flatten(1)
        return F.linear(patches, self._cache[wk], conv.bias)

    def _conv_band(
        self, key: str, conv: Any, src: torch.Tensor, grid: tuple[int, int], rows: torch.Tensor
    ) -> torch.Tensor:
        """``_conv_rows`` for a convolution over few channels (the pixels), whose patches are
        too small to gather well: the convolution runs densely, channels-last, over the
        full-width band of output rows that holds ``rows``, reading the band's input rows in
        place (zero padding added only at the map's own borders)."""
        h, w = grid
        k, st, pd = conv.kernel_size[0], conv.stride[0], conv.padding[0]
        ow = (w + 2 * pd - k) // st + 1
        wk = f"{key}.wcl"
        if wk not in self._cache:
            self._cache[wk] = conv.weight.contiguous(memory_format=torch.channels_last)
        oy = rows // ow
        r0, r1 = int(oy.min()), int(oy.max()) + 1
        i0, i1 = r0 * st - pd, (r1 - 1) * st - pd + k
        lo, hi = max(0, i0), min(h, i1)
        band = src[lo * w : hi * w].view(1, hi - lo, w, -1).permute(0, 3, 1, 2)
        band = F.pad(band, (pd, pd, lo - i0, i1 - hi))
        band = band.contiguous(memory_format=torch.channels_last)
        out = F.conv2d(band, self._cache[wk], conv.bias, stride=st)
        return out.permute(0, 2, 3, 1).reshape(-1, out.shape[1])[rows - r0 * ow]

    def _dw_rows(
        self, key: str, conv: Any, src: torch.Tensor, grid: tuple[int, int], rows: torch.Tensor
    ) -> torch.Tensor:
        """Output positions ``rows`` of the depth-wise 3×3 ``conv`` over ``src`` (as above),
        as (n, C): the convolution runs densely over the full-width band of map rows that
        holds them plus one token (outside the band's outer ring its zero padding is never
        read). The band of the (N, C) token map is a channels-last image as it lies in memory,
        and with the weight also channels-last the convolution runs in that layout: no copy
        in, and the output positions are rows again."""
        h, w = grid
        wk = f"{key}.dw"
        if wk not in self._cache:
            self._cache[wk] = conv.weight.contiguous(memory_format=torch.channels_last)
        ys = rows // w
        y0, y1 = max(0, int(ys.min()) - 1), min(h, int(ys.max()) + 2)
        band = src[y0 * w : y1 * w].view(1, y1 - y0, w, -1).permute(0, 3, 1, 2)
        out = F.conv2d(band, self._cache[wk], conv.bias, padding=1, groups=conv.groups)
        return out.permute(0, 2, 3, 1).reshape(-1, out.shape[1])[rows - y0 * w]

    # ---- the network -----------------------------------------------------------------------

    def _pixels(self, pixels: torch.Tensor, kf: bool) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The frame as a padded token map (H·W + 1, 3) and the pixels that moved beyond the
        threshold (relative to the keyframe's mean pixel norm); the others keep their value.
        The test runs on channel-first planes (contiguous), the token map is updated only at
        the moved pixels."""
        planes = pixels[0].flatten(1)
        if kf:
            tok = planes.t()
            self._cache["px"] = torch.cat([tok, tok.new_zeros(1, tok.shape[1])])
            self._cache["pxc"] = planes.clone()
            self._scales["px"] = self.threshold * float(tok.float().norm(dim=-1).mean())
            return self._cache["px"], None
        ref = self._cache["pxc"]
        d2 = (planes - ref).square_().sum(0)
        slack = self._slack.get("px")
        if slack is not None and slack.numel() == d2.numel():
            d2 = d2.div_(slack)
        rows = (d2 > self._scales["px"] ** 2).nonzero()[:, 0]
        moved = planes[:, rows]
        ref.index_copy_(1, rows, moved)
        self._cache["px"].index_copy_(0, rows, moved.t())
        return self._cache["px"], rows

    def _embed(
        self, s: int, stage: Any, src: torch.Tensor, grid: Any, rows: torch.Tensor | None
    ) -> tuple[torch.Tensor, tuple[int, int], torch.Tensor | None]:
        """Stage s's overlapping patch embedding: all of it on a keyframe (``rows`` None),
        else only the output positions that read a changed input token, in place."""
        pe, key = stage.patch_embeddings, f"e{s}"
        if rows is None:
            img = src[:-1].t().reshape(1, -1, *grid).contiguous()
            x, hh, ww = pe(img)
            self._cache[key] = (x, (hh, ww))
            return x, (hh, ww), None
        x, hw = self._cache[key]
        conv = pe.proj
        out = _spread(rows, tuple(grid), conv.kernel_size[0], conv.stride[0], conv.padding[0])
        if out.numel():
            y = pe.layer_norm(self._conv_rows(key, conv, src, tuple(grid), out))
            x.index_copy_(1, out, y[None])
        return x, hw, out

    def _kv_rows(self, key: str, att: Any, c: dict, hw: Any, idx: torch.Tensor) -> bool:
        """Recompute the keys and values that read the tokens ``idx``; True when one moved."""
        r = att.sequence_reduction_ratio
        if r > 1:
            red = att.sequence_reduction
            cells = _spread(idx, hw, r, r, 0)
            if not cells.numel():
                return False
            kvh = self._conv_rows(key + ".sr", red.sequence_reduction, c["h"][0], hw, cells)
            kvh = red.layer_norm(kvh)
        else:
            cells, kvh = idx, c["h"][0, idx]
        k, v = att.k_proj(kvh), att.v_proj(kvh)
        moved = not (self.exact and torch.equal(k, c["k"][0, cells]))
        moved = moved or not torch.equal(v, c["v"][0, cells])
        c["k"].index_copy_(1, cells, k[None])
        c["v"].index_copy_(1, cells, v[None])
        return moved

    def _attend(
        self, key: str, att: Any, h: torch.Tensor, idx: torch.Tensor | None, c: dict, bits: Any
    ) -> torch.Tensor:
        nh, hd = att.num_attention_heads, att.head_dim
        k = c["k"].view(1, -1, nh, hd).transpose(1, 2)
        v = c["v"].view(1, -1, nh, hd).transpose(1, 2)
        q = self._lin(key + ".q", att.q_proj.weight, att.q_proj.bias)(h, idx, bits)
        q = q.view(1, -1, nh, hd).transpose(1, 2)
        o = F.scaled_dot_product_attention(q, k, v, scale=att.scaling)
        o = o.transpose(1, 2).reshape(1, -1, nh * hd)
        return self._lin(key + ".o", att.o_proj.weight, att.o_proj.bias)(o, idx, bits)

    def _block_dense(
        self, key: str, blk: Any, x: torch.Tensor, hw: tuple[int, int], c: dict
    ) -> tuple[torch.Tensor, None]:
        """A keyframe's block: every row, filling the caches the sparse frames update."""
        att, mlp = blk.attention, blk.mlp
        c["h"] = h = blk.layernorm_before(x)
        kvh = att.sequence_reduction(h, *hw) if att.sequence_reduction_ratio > 1 else h
        c["k"], c["v"] = att.k_proj(kvh), att.v_proj(kvh)
        mid = self._attend(key, att, h, None, c, None) + x
        if self.exact:  # only the exact path's dilation ring reads it again
            c["mid"] = mid
        f1 = self._lin(key + ".fc1", mlp.fc1.weight, mlp.fc1.bias)(
            blk.layernorm_after(mid), None, None
        )
        c["f1"] = torch.cat([f1[0], f1.new_zeros(1, f1.shape[-1])])
        g = mlp.activation_fn(mlp.dwconv(f1, *hw))
        c["out"] = self._lin(key + ".fc2", mlp.fc2.weight, mlp.fc2.bias)(g, None, None) + mid
        return c["out"], None

    def _block(
        self, key: str, blk: Any, x: torch.Tensor, hw: Any, cand: Any, kf: bool, bits: Any
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """One transformer block; returns its (cached, updated in place) output and the rows
        of it that changed (None: all)."""
        c = self._cache.setdefault(key, {})
        idx, xi = self._gate(key, x, cand, kf)
        if idx is None or xi is None:
            return self._block_dense(key, blk, x, hw, c)
        if not idx.numel():
            return c["out"], idx
        n = x.shape[1]
        h = blk.layernorm_before(xi)
        c["h"].index_copy_(1, idx, h)
        if self._kv_rows(key, blk.attention, c, hw, idx) and self.exact and idx.numel() < n:
            self._counts[1] += n - idx.numel()  # threshold 0: every query sees a moved key
            # Every row; those the gate passed over equal their reference (threshold 0).
            idx, h, xi = torch.arange(n, device=x.device), c["h"], x
        mid = self._attend(key, blk.attention, h, idx, c, bits) + xi
        if self.exact:  # only the dilation ring below reads the cached residual
            c["mid"].index_copy_(1, idx, mid)
        mlp = blk.mlp
        f1 = self._lin(key + ".fc1", mlp.fc1.weight, mlp.fc1.bias)(
            blk.layernorm_after(mid), idx, bits
        )
        c["f1"].index_copy_(0, idx, f1[0])
        # The 3×3 depth-wise convolution carries a change one token further. Exact (threshold
        # 0), that ring is recomputed too; otherwise it keeps its output (a few of its nine
        # taps changed) until its own input moves past the threshold or a keyframe: no loss of
        # IoU measured on random-weight models, 7-10 % of a frame saved (BENCHMARKS.md).
        rows = _dilate(idx, *hw) if self.exact else idx
        g = self._dw_rows(key, mlp.dwconv.dwconv, c["f1"], hw, rows)[None]
        m = self._lin(key + ".fc2", mlp.fc2.weight, mlp.fc2.bias)(mlp.activation_fn(g), rows, bits)
        c["out"].index_copy_(1, rows, m + (c["mid"][:, rows] if self.exact else mid))
        return c["out"], rows

    def _encoder(self, pixels: torch.Tensor, kf: bool, bits: Any) -> list[tuple]:
        """Per stage: its output as a padded token map (N + 1, C), its grid and the rows of
        it that changed (None: all)."""
        maps: list[tuple] = []
        src, rows = self._pixels(pixels, kf)
        grid = tuple(pixels.shape[2:])
        for s, stage in enumerate(self.model.segformer.stages):
            x, hw, rows = self._embed(s, stage, src, grid, rows)
            for j, blk in enumerate(stage.blocks):
                x, rows = self._block(f"s{s}.{j}", blk, x, hw, rows, kf, bits)
            if rows is None:
                y = stage.layer_norm(x)[0]
                self._cache[f"o{s}"] = torch.cat([y, y.new_zeros(1, y.shape[1])])
            elif rows.numel():
                self._cache[f"o{s}"].index_copy_(0, rows, stage.layer_norm(x[0, rows]))
            src, grid = self._cache[f"o{s}"], hw
            maps.append((src, hw, rows))
        return maps

    def _stage_weights(self, s: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Stage s's projection, its block of the 1×1 fuse layer and the batch norm's scale,
        as one linear map (all are linear, and bilinear upsampling, whose weights sum to one,
        commutes with a per-pixel affine map); the batch norm's shift rides on stage 0."""
        key = f"w{s}"
        if key not in self._cache:
            head = self.model.decode_head
            n = len(head.linear_projections)
            c = head.config.decoder_hidden_size
            w_fuse = head.linear_fuse.weight.flatten(1)[:, (n - 1 - s) * c : (n - s) * c]
            proj, bn = head.linear_projections[s].proj, head.batch_norm
            scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
            bias = scale * (w_fuse @ proj.bias)
            if s == 0:
                bias = bias + bn.bias - scale * bn.running_mean
            self._cache[key] = (scale[:, None] * (w_fuse @ proj.weight), bias)
        return self._cache[key]

    def _bilinear_rows(
        self, s: int, q: torch.Tensor, grid: Any, size: Any, idx: torch.Tensor
    ) -> torch.Tensor:
        """Rows ``idx`` of the bilinear upsampling (align_corners=False) of the token map ``q``
        (1, hs·ws, C) on ``grid`` to ``size``: four neighbours and their weights per row."""
        key = f"bil{s}"
        if key not in self._cache:
            axes = []
            for n_in, n_out in zip(grid, size, strict=True):
                src = (torch.arange(n_out, dtype=torch.float64) + 0.5) * n_in / n_out - 0.5
                src = src.clamp_min(0)
                i0 = src.floor().long().clamp_max(n_in - 1)
                i1 = (i0 + 1).clamp_max(n_in - 1)
                axes.append((i0, i1, (src - i0).float()))
            (y0, y1, fy), (x0, x1, fx) = axes
            nbr = torch.stack(
                [
                    (y0[:, None] * grid[1] + x0[None, :]),
                    (y0[:, None] * grid[1] + x1[None, :]),
                    (y1[:, None] * grid[1] + x0[None, :]),
                    (y1[:, None] * grid[1] + x1[None, :]),
                ],
                -1,
            ).view(-1, 4)
            wy, wx = fy[:, None], fx[None, :]
            wts = torch.stack(
                [(1 - wy) * (1 - wx), (1 - wy) * wx, wy * (1 - wx), wy * wx], -1
            ).view(-1, 4)
            self._cache[key] = (nbr.to(q.device), wts.to(q.device, q.dtype))
        nbr, wts = self._cache[key]
        return (q[0][nbr[idx]] * wts[idx][..., None]).sum(1)[None]

    def _fused(self, grids: list[tuple[int, int]], size: tuple[int, int]) -> torch.Tensor:
        """The batch-normalised fuse layer's output before its ReLU, every pixel, as (H·W, C):
        each stage's fused-channel map upsampled bilinearly (align_corners=False) in the
        channels-last layout its token rows already have, and summed in place. The sum and the
        upsampling write into buffers kept from frame to frame: a fresh 1/4-resolution map
        per stage and frame costs as much in page faults as the upsampling itself."""
        c = self._cache["q0"].shape[-1]
        y = self._cache.get("fused")
        if y is None or y.shape != (size[0] * size[1], c):
            y = self._cache["fused"] = self._cache["q0"].new_empty(size[0] * size[1], c)
            self._cache["up"] = y.new_empty(1, *size, c).permute(0, 3, 1, 2)
        up = self._cache["up"]
        q0 = self._cache["q0"].view(-1, c)  # stage 0 is at the output's size
        if len(grids) == 1:
            return y.copy_(q0)
        for s in range(1, len(grids)):
            m = self._cache[f"q{s}"].view(1, *grids[s], c)
            if tuple(grids[s]) != tuple(size):
                src = m.permute(0, 3, 1, 2)
                torch.ops.aten.upsample_bilinear2d.out(src, list(size), False, None, None, out=up)
                m = up.permute(0, 2, 3, 1)
            if s == 1:
                torch.add(q0, m.reshape(-1, c), out=y)  # stage 0 needs no copy of its own
            else:
                y.add_(m.reshape(-1, c))
        return y

    def _decoder(self, maps: list[tuple], kf: bool, bits: Any) -> torch.Tensor:
        h0, w0 = maps[0][1]
        region = torch.zeros(1, 1, h0, w0, dtype=torch.bool, device=maps[0][0].device)
        for s, (pad, grid, cand) in enumerate(maps):
            tokens = pad[:-1][None]
            idx, rows_in = self._gate(f"d{s}", tokens, cand, kf)
            if idx is None or idx.numel():
                weight, bias = self._stage_weights(s)
                x = tokens if rows_in is None else rows_in
                q = self._lin(f"d{s}", weight, bias)(x, idx, bits)
                self._cache[f"q{s}"] = _put(self._cache.get(f"q{s}"), idx, q)
                region |= _region(idx, grid, (h0, w0), region.device)
        rows = region.view(-1).nonzero()[:, 0]
        grids = [tuple(m[1]) for m in maps]
        idx_or_none: torch.Tensor | None = rows
        if rows.numel() * 4 > h0 * w0:
            # Dense upsampling beats gathering a large share, and classifying every pixel
            # beats gathering the changed ones: unchanged pixels get their old value again.
            y, idx_or_none = self._fused(grids, (h0, w0))[None], None
        elif rows.numel():
            y = self._bilinear_rows(0, self._cache["q0"], grids[0], (h0, w0), rows)
            for s in range(1, len(maps)):
                y += self._bilinear_rows(s, self._cache[f"q{s}"], grids[s], (h0, w0), rows)
        if rows.numel():
            cls = self.model.decode_head.classifier
            logit = self._lin("cls", cls.weight.flatten(1), cls.bias)(y.relu_(), idx_or_none, bits)
            self._cache["logits"] = _put(self._cache.get("logits"), idx_or_none, logit)
        return self._cache["logits"].transpose(1, 2).reshape(1, -1, h0, w0)

    def _margin(self, logits: torch.Tensor) -> torch.Tensor:
        """Per pixel, how far the mask's decision is from flipping: the gap between the best of
        the mask's labels and the best of the others (without ``labels``: the top two)."""
        lg = logits[0]
        n = lg.shape[0]
        split = self._label_split(n, lg.device)
        if split is not None:
            inside, outside = split
            best_in = lg.index_select(0, inside).amax(0)
            return (best_in - lg.index_select(0, outside).amax(0)).abs()[None, None]
        if n < 2:
            return lg.abs().amax(0)[None, None]
        top = lg.topk(2, dim=0).values
        return (top[0] - top[1])[None, None]

    def _label_split(
        self, n: int, device: torch.device
    ) -> tuple[torch.Tensor, torch.Tensor] | None:
        """The mask's label indices and the others' (made once per label count), or None
        when the mask's labels are none or all of the ``n``."""
        key = f"labels{n}"
        if key not in self._cache:
            inside = sorted(i for i in (self.labels or []) if 0 <= i < n)
            outside = [i for i in range(n) if i not in set(inside)]
            pair = (torch.tensor(inside, device=device), torch.tensor(outside, device=device))
            self._cache[key] = pair if inside and outside else None
        return self._cache[key]

    def _set_slack(self, logits: torch.Tensor, kf: bool, size: tuple[int, int]) -> None:
        """Per stage grid, how much more change each token may take before it is recomputed.
        A pixel's mask flips only when its logits move by more than its margin (``_margin``),
        and a token's staleness moves the logits around it roughly in proportion, so where
        every pixel a token reaches (its area and one token around) has a wide margin, a
        proportionally larger change is tolerated, up to ``edge_slack`` times the threshold;
        near an edge of the mask (a margin under ``MARGIN_SHARE`` of the keyframe's median)
        the threshold stands."""
        margin = self._margin(logits)
        if kf or self._margin_ref <= 0:
            self._margin_ref = float(margin.median()) * MARGIN_SHARE + 1e-12
        for s in range(len(self.model.segformer.stages)):
            grid = self._cache[f"e{s}"][1]
            m = -F.adaptive_max_pool2d(-margin, grid)
            m = -F.max_pool2d(-m, 3, stride=1, padding=1)
            new = (m / self._margin_ref).clamp_(1.0, self.edge_slack).view(-1)
            old = self._slack.get(f"s{s}")
            if old is not None and old.shape == new.shape and not kf:
                self._tightened[f"s{s}"] = (new < old).nonzero()[:, 0]
            else:
                self._tightened.pop(f"s{s}", None)
            self._slack[f"s{s}"] = new
        # The pixels: stage 0's slack (its tokens are 4×4 pixels) spread over them, squared
        # as the pixel test compares squared norms.
        s0 = self._slack["s0"].view(1, 1, *self._cache["e0"][1])
        self._slack["px"] = F.interpolate(s0, size=size, mode="nearest").view(-1).square()

    def __call__(self, pixels: torch.Tensor, keyframe: bool) -> torch.Tensor:
        """Logits (1, labels, H/4, W/4) for one frame's ``pixel_values`` (1, 3, H, W)."""
        prev = self._prev_pixels
        if prev is not None and prev.shape != pixels.shape:
            self.reset()  # caches and gather indices are per frame size
            prev = None
        kf = keyframe or prev is None
        bits: int | None = None
        if self.mode == "resq" and not kf and prev is not None:
            change = float((pixels - prev).float().pow(2).mean().sqrt())
            change /= float(prev.float().pow(2).mean().sqrt()) + 1e-12
            bits = bits_for_change(change, self.bits, BASE_CHANGE)
        self.frame_bits = bits
        self._counts = [0, 0]
        with torch.inference_mode():
            logits = self._decoder(self._encoder(pixels, kf, bits), kf, bits)
            if self.edge_slack > 1.0 and not self.exact:
                self._set_slack(logits, kf, (pixels.shape[2], pixels.shape[3]))
        self._prev_pixels = pixels
        self.recomputed = self._counts[1] / max(1, self._counts[0])
        return logits.clone()


class FrameStream:
    """Random access over a stream whose frame i depends on frames k..i (k: the keyframe before
    i, every ``interval``-th frame). Reading in order steps once per frame; a jump restarts from
    the keyframe, so frame i's value never depends on the order frames were read in. Holds one
    frame's state; thread-safe."""

    def __init__(
        self, step: Callable[[int, bool], Any], reset: Callable[[], None], interval: int
    ) -> None:
        self._step, self._reset, self.interval = step, reset, max(1, int(interval))
        self._last: int | None = None
        self._value: Any = None
        self._lock = threading.Lock()
        self.steps = 0

    def __call__(self, i: int) -> Any:
        with self._lock:
            if i == self._last:
                return self._value
            key = i - i % self.interval
            start = key
            if self._last is not None and key <= self._last < i:
                start = self._last + 1
            else:
                self._reset()
            for j in range(start, i + 1):
                self._value = self._step(j, j == key)
                self._last = j
                self.steps += 1
            return self._value
