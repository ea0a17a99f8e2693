"""SegFormer on a video, computing only what changed since the previous frame.

Consecutive frames share most of their content, so most of a segmentation network's work on
frame t repeats its work on frame t − 1. ``SegformerTemporal`` runs a transformers SegFormer
(``SegformerForSemanticSegmentation``) layer by layer and keeps, per layer, the activations of
the previous frame:

* ``reuse`` (training-free, in the manner of Eventful Transformers / CMC): at the input of every
  transformer block and of every stage's path into the decoder, a token is recomputed only when
  it moved by more than ``threshold`` (relative: the L2 norm of its change over the layer's mean
  token norm on the keyframe) since it was last computed; the others keep their cached outputs.
  The parts that mix neighbours are handled where they sit: the overlapping patch embeddings and
  the Mix-FFN's 3×3 depth-wise convolution run densely (they are cheap), and the rows after that
  convolution are recomputed over the changed set dilated by one token (its margin); the
  spatially reduced keys and values are recomputed densely every frame (a few dozen tokens), so
  recomputed queries always see the current frame. The decoder's projection and 1×1 fuse layer
  are linear, and so is bilinear upsampling, so each stage is projected straight to the fused
  channels at its own resolution and only the changed pixels of the 1/4-resolution map (the
  bilinear footprint of the changed tokens) are summed, normalised and classified. With
  ``threshold`` 0 only what provably did not change is reused (a query is also recomputed when
  any key moved).
* ``resq`` (ResQ, Abati et al. 2023): the same gating, but each linear layer computes a changed
  token from the low-bit quantised residual against its cached input, ``y = y_prev + W·Q(x −
  x_prev)``; the bit-width follows the amount of change of the frame (``frame_bits``).

The reference a token is compared with is its input when it was last recomputed, so slow drift
is caught instead of accumulating. Keyframes (the caller decides) run every row. Only one
frame's activations are held. ``FrameStream`` turns such a per-frame step into the random-access
frame function a lazy ``Video`` needs.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F

TEMPORAL_MODES = ("reuse", "resq")


def quantise(delta: torch.Tensor, bits: int) -> torch.Tensor:
    """Symmetric uniform fake quantisation to ``bits`` bits, one scale per token (row)."""
    levels = 2 ** (bits - 1) - 1
    scale = delta.abs().amax(dim=-1, keepdim=True).clamp_min(1e-12) / levels
    return torch.round(delta / scale).clamp_(-levels, levels) * scale


def frame_bits(change: float, bits: int, full_change: float = 0.1) -> int:
    """Bit-width for a frame whose input moved by ``change`` (relative RMS): ``bits`` at
    ``full_change`` or more, one bit fewer per halving of the change, never below 2."""
    if change <= 0:
        return 2
    return int(max(2, min(bits, bits + math.ceil(math.log2(change / full_change)))))


def _rows(t: torch.Tensor, idx: torch.Tensor | None) -> torch.Tensor:
    return t if idx is None else t[:, idx]


def _put(cache: torch.Tensor | None, idx: torch.Tensor | None, v: torch.Tensor) -> torch.Tensor:
    if idx is None or cache is None:
        return v.clone()
    cache[:, idx] = v
    return cache


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


def _dilate(idx: torch.Tensor, h: int, w: int) -> torch.Tensor | None:
    """Token indices within one token (3×3) of ``idx`` on an h×w grid; None: all of them."""
    m = torch.zeros(1, 1, h, w, device=idx.device)
    m.view(-1)[idx] = 1.0
    m = F.max_pool2d(m, 3, stride=1, padding=1).view(-1)
    out = m.nonzero()[:, 0]
    return None if out.numel() == h * w else out


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

    def __init__(self, model: Any, mode: str, threshold: float, bits: int = 4) -> None:
        if mode not in TEMPORAL_MODES:
            raise ValueError(f"mode must be one of {TEMPORAL_MODES}; got {mode!r}")
        self.model, self.mode = model, mode
        self.threshold, self.bits = float(threshold), int(bits)
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

    # ---- helpers ---------------------------------------------------------------------------

    def _lin(self, key: str, weight: torch.Tensor, bias: torch.Tensor | None) -> _Lin:
        lin = self._lins.get(key)
        if lin is None:
            lin = self._lins[key] = _Lin(weight, bias, self.mode == "resq")
        return lin

    def _gate(self, key: str, x: torch.Tensor, key_frame: bool) -> torch.Tensor | None:
        """Rows of ``x`` (1, N, C) to recompute (None: all), updating their references."""
        ref = self._refs.get(key)
        n = x.shape[1]
        if key_frame or ref is None or ref.shape != x.shape:
            self._refs[key] = x.clone()
            # The layer's mean token norm at the keyframe: what the threshold is relative to.
            self._scales[key] = self.threshold * float(x.float().norm(dim=-1).mean())
            self._counts[0] += n
            self._counts[1] += n
            return None
        d = torch.linalg.vector_norm(x - ref, dim=-1)[0]
        idx = (d > self._scales[key]).nonzero()[:, 0]
        self._counts[0] += n
        self._counts[1] += idx.numel()
        if idx.numel() == n:
            ref.copy_(x)
            return None
        ref[:, idx] = x[:, idx]
        return idx

    # ---- the network -----------------------------------------------------------------------

    def _kv(self, att: Any, h: torch.Tensor, hh: int, ww: int) -> tuple[torch.Tensor, torch.Tensor]:
        kvh = att.sequence_reduction(h, hh, ww) if att.sequence_reduction_ratio > 1 else h
        shape = (1, -1, att.num_attention_heads, att.head_dim)
        k = att.k_proj(kvh).view(shape).transpose(1, 2)
        v = att.v_proj(kvh).view(shape).transpose(1, 2)
        return k, v

    def _attend(
        self, key: str, blk: Any, h: torch.Tensor, idx: torch.Tensor | None, kv: Any, bits: Any
    ) -> torch.Tensor:
        att = blk.attention
        nh, hd = att.num_attention_heads, att.head_dim
        rows = _rows(h, idx)
        q = self._lin(key + ".q", att.q_proj.weight, att.q_proj.bias)(rows, idx, bits)
        q = q.view(1, -1, nh, hd).transpose(1, 2)
        o = F.scaled_dot_product_attention(q, kv[0], kv[1], scale=att.scaling)
        o = o.transpose(1, 2).reshape(1, -1, nh * hd)
        return self._lin(key + ".o", att.o_proj.weight, att.o_proj.bias)(o, idx, bits)

    def _block(
        self, key: str, blk: Any, x: torch.Tensor, hw: tuple[int, int], kf: bool, bits: Any
    ) -> torch.Tensor:
        hh, ww = hw
        c = self._cache.setdefault(key, {})
        idx = self._gate(key, x, kf)
        h = blk.layernorm_before(x)
        k, v = self._kv(blk.attention, h, hh, ww)
        if self.exact and not kf and idx is not None and "k" in c:
            if not (torch.equal(k, c["k"]) and torch.equal(v, c["v"])):
                idx = None  # threshold 0: every query sees a changed key
        c["k"], c["v"] = k, v
        mlp = blk.mlp
        if idx is None or idx.numel():
            a = self._attend(key, blk, h, idx, (k, v), bits)
            c["attn"] = _put(c.get("attn"), idx, a)
            mid = x + c["attn"]
            h2 = blk.layernorm_after(_rows(mid, idx))
            f1 = self._lin(key + ".fc1", mlp.fc1.weight, mlp.fc1.bias)(h2, idx, bits)
            c["f1"] = _put(c.get("f1"), idx, f1)
            rows = None if idx is None else _dilate(idx, hh, ww)
            g = mlp.activation_fn(_rows(mlp.dwconv(c["f1"], hh, ww), rows))
            m = self._lin(key + ".fc2", mlp.fc2.weight, mlp.fc2.bias)(g, rows, bits)
            c["mlp"] = _put(c.get("mlp"), rows, m)
        else:
            mid = x + c["attn"]
        return c["mlp"] + mid

    def _encoder(self, pixels: torch.Tensor, kf: bool, bits: Any) -> list[torch.Tensor]:
        maps, hidden = [], pixels
        for s, stage in enumerate(self.model.segformer.stages):
            x, hh, ww = stage.patch_embeddings(hidden)
            for j, blk in enumerate(stage.blocks):
                x = self._block(f"s{s}.{j}", blk, x, (hh, ww), kf, bits)
            x = stage.layer_norm(x)
            hidden = x.reshape(1, hh, ww, -1).permute(0, 3, 1, 2).contiguous()
            maps.append(hidden)
        return maps

    def _stage_weights(self, s: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Stage s's projection followed by its block of the 1×1 fuse layer, as one linear map
        (both are linear, and bilinear upsampling commutes with a per-pixel linear map)."""
        key = f"w{s}"
        if key not in self._cache:
            head = self.model.decode_head
            n = len(head.linear_projections)
            c = head.config.decoder_hidden_size
            w_fuse = head.linear_fuse.weight.flatten(1)[:, (n - 1 - s) * c : (n - s) * c]
            proj = head.linear_projections[s].proj
            self._cache[key] = (w_fuse @ proj.weight, w_fuse @ proj.bias)
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

    def _decoder(self, maps: list[torch.Tensor], kf: bool, bits: Any) -> torch.Tensor:
        head = self.model.decode_head
        h0, w0 = maps[0].shape[2:]
        region = torch.zeros(1, 1, h0, w0, dtype=torch.bool, device=maps[0].device)
        for s, fmap in enumerate(maps):
            tokens = fmap.flatten(2).transpose(1, 2)
            idx = self._gate(f"d{s}", tokens, kf)
            if idx is None or idx.numel():
                weight, bias = self._stage_weights(s)
                q = self._lin(f"d{s}", weight, bias)(_rows(tokens, idx), idx, bits)
                self._cache[f"q{s}"] = _put(self._cache.get(f"q{s}"), idx, q)
                region |= _region(idx, fmap.shape[2:], (h0, w0), region.device)
        rows = region.view(-1).nonzero()[:, 0]
        grids = [tuple(m.shape[2:]) for m in maps]
        if rows.numel() == h0 * w0:
            y = sum(
                F.interpolate(
                    self._cache[f"q{s}"].transpose(1, 2).reshape(1, -1, *grids[s]),
                    size=(h0, w0),
                    mode="bilinear",
                    align_corners=False,
                )
                for s in range(len(maps))
            )
            y, idx_or_none = y.flatten(2).transpose(1, 2), None  # type: ignore[union-attr]
        elif rows.numel():
            y = sum(
                self._bilinear_rows(s, self._cache[f"q{s}"], grids[s], (h0, w0), rows)
                for s in range(len(maps))
            )
            idx_or_none = rows
        if rows.numel():
            bn = head.batch_norm
            y = (y - bn.running_mean) / torch.sqrt(bn.running_var + bn.eps) * bn.weight + bn.bias
            y = torch.relu(y)
            cls = head.classifier
            logit = self._lin("cls", cls.weight.flatten(1), cls.bias)(y, idx_or_none, bits)
            self._cache["logits"] = _put(self._cache.get("logits"), idx_or_none, logit)
        return self._cache["logits"].transpose(1, 2).reshape(1, -1, h0, w0)

    def __call__(self, pixels: torch.Tensor, keyframe: bool) -> torch.Tensor:
        """Logits (1, labels, H/4, W/4) for one frame's ``pixel_values`` (1, 3, H, W)."""
        prev = self._prev_pixels
        kf = keyframe or prev is None or prev.shape != pixels.shape
        bits: int | None = None
        if self.mode == "resq" and not kf and prev is not None:
            change = float((pixels - prev).float().pow(2).mean().sqrt())
            change /= float(prev.float().pow(2).mean().sqrt()) + 1e-12
            bits = frame_bits(change, self.bits)
        self.frame_bits = bits
        self._counts = [0, 0]
        with torch.inference_mode():
            logits = self._decoder(self._encoder(pixels, kf, bits), kf, bits)
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
