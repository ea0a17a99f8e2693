"""The DPT neck's fine end (last upsampling, projection and head), computed only where it changed.

Temporal reuse (``temporal_reuse``) recomputes only the changed ViT tokens of a frame, but on a
camera move the changed patches scatter over the whole frame, and the neck's coarse levels
spread every change further: a neck run on crops around the changed patches costs as much as the
whole frame. Measured on Depth Anything V2 Small's shape (784×518 input), the part of the neck
that costs the most is its fine end: the last fusion layer's ×2 upsampling and projection and
the head (a 3×3 convolution, upsampling to the input resolution, a 3×3 and a 1×1 convolution),
about 60 % of the neck's time, all at 2 × 4 to 14 pixels per patch.

So the neck is split where its resolution is still low: everything up to the last fusion
layer's residual units runs whole (``neck_coarse``); its output ``h`` (fusion width, 4 pixels
per patch) is compared with the reference it was last computed from, in the manner of DeltaCNN
(Parger et al., CVPR 2022): a pixel of ``h`` whose largest channel change reaches ``threshold``
× the mean magnitude of ``h`` takes its new value in the reference, the others keep theirs.
The fine end then runs over the blocks (``block`` × ``block`` patches) whose receptive field
holds such a pixel, each on a window of the reference with the ring of context its layers read,
upsampling at the frame's own sample positions (bilinear, corners aligned, as the model does)
and zero padding only at the frame's borders; every other block keeps its depth. So the depth is
always exactly (to float rounding) the fine end run on the reference: the only approximation is
the changes below the threshold, which still add up until they cross it.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

#: How far (in pixels of ``h``) around a block the fine end reads: the ×2 upsampling, the head's
#: 3×3 convolutions and its upsampling to the input's resolution reach 2 pixels of ``h`` (worked
#: out at every block for grids of 10 to 56 patches; the tests check it against the dense run).
RING = 2


def neck_coarse(
    net: Any,
    features: list[torch.Tensor],
    rows: int,
    cols: int,
    channels_last: bool = False,
    maps: list[torch.Tensor] | None = None,
) -> torch.Tensor:
    """The neck up to (and with) the last fusion layer's residual units: B × C × 4·rows × 4·cols.

    ``channels_last``: the convolutions run on channels-last maps, which oneDNN convolves
    without reordering them (the last fusion layer's residual units, half of this part's time,
    about 1.5× faster on a CPU); equal to the model's own layout up to float rounding, so a
    keyframe, which must equal the model, keeps the model's layout. ``maps``: the reassembled
    maps when the caller has them (``Reassembled``), else the model reassembles ``features``."""
    neck = net.neck
    if maps is None:
        maps = neck.reassemble_stage(features, rows, cols)
    if channels_last:
        maps = [m.contiguous(memory_format=torch.channels_last) for m in maps]
    maps = [conv(m) for conv, m in zip(neck.convs, maps, strict=True)][::-1]
    layers = list(neck.fusion_stage.layers)
    fused = None
    for i, (m, layer) in enumerate(zip(maps[:-1], layers[:-1], strict=True)):
        size = maps[i + 1].shape[2:]
        fused = layer(m, size=size) if fused is None else layer(fused, m, size=size)
    last = layers[-1]
    assert fused is not None
    residual = maps[-1]
    if fused.shape != residual.shape:
        residual = F.interpolate(residual, size=fused.shape[2:], mode="bilinear")
    return last.residual_layer2(fused + last.residual_layer1(residual))


class Reassembled:
    """The neck's reassembled maps for one clip, updated token by token between keyframes.

    Each stage's projection is 1×1 and the ×4 and ×2 resizes are transposed convolutions whose
    stride equals their kernel, so a token's outputs are its own block of the map: only the
    changed tokens' blocks are recomputed (the model projects and resizes every token of four
    stages on every call). The coarsest stage's stride-2 3×3 convolution mixes neighbours and
    runs whole, on its kept projected map. ``full`` runs the model's own operations, so a
    keyframe's maps equal the model's."""

    def __init__(self, net: Any) -> None:
        self.layers = list(net.neck.reassemble_stage.layers)
        self.projected: list[torch.Tensor] = []
        self.maps: list[torch.Tensor] = []

    def full(self, features: list[torch.Tensor], rows: int, cols: int) -> list[torch.Tensor]:
        self.projected, self.maps = [], []
        for f, layer in zip(features, self.layers, strict=True):
            x = f[:, 1:].reshape(f.shape[0], rows, cols, -1).permute(0, 3, 1, 2).contiguous()
            p = layer.projection(x)
            self.projected.append(p)
            self.maps.append(layer.resize(p))
        return self.maps

    def update(
        self, features: list[torch.Tensor], index: torch.Tensor, cols: int
    ) -> list[torch.Tensor]:
        """After the tokens at ``index`` (0 is CLS, not in the maps) changed in ``features``."""
        flat = index[index > 0] - 1
        r, c = flat // cols, flat % cols
        for i, (f, layer) in enumerate(zip(features, self.layers, strict=True)):
            proj = layer.projection
            p = F.linear(f[0, flat + 1], proj.weight.flatten(1), proj.bias)  # K × C
            self.projected[i][0][:, r, c] = p.t()
            resize = layer.resize
            if isinstance(resize, nn.ConvTranspose2d) and resize.stride == resize.kernel_size:
                k = int(resize.kernel_size[0])
                blocks = torch.einsum("nc,coab->noab", p, resize.weight)
                if resize.bias is not None:
                    blocks = blocks + resize.bias.view(1, -1, 1, 1)
                m = self.maps[i][0]
                m.view(m.shape[0], m.shape[1] // k, k, m.shape[2] // k, k)[:, r, :, c, :] = blocks
            elif isinstance(resize, nn.Identity):
                self.maps[i] = self.projected[i]
            else:
                self.maps[i] = resize(self.projected[i])
        return self.maps


def neck_fine(net: Any, h: torch.Tensor, rows: int, cols: int) -> torch.Tensor:
    """The fine end on whole maps, exactly as the model runs it: B × (rows·patch) × (cols·patch)."""
    return _fine_maps(net, h, rows, cols)[2]


def _fine_maps(
    net: Any, h: torch.Tensor, rows: int, cols: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The fine end on whole maps: the projection's output, the head's first convolution's and
    the depth."""
    last, head = net.neck.fusion_stage.layers[-1], net.head
    pre = last.projection(F.interpolate(h, scale_factor=2, mode="bilinear", align_corners=True))
    q = head.conv1(pre)
    p = int(head.patch_size)
    x = F.interpolate(q, (rows * p, cols * p), mode="bilinear", align_corners=True)
    x = head.conv3(head.activation1(head.conv2(x)))
    return pre, q, (head.activation2(x) * head.max_depth).squeeze(1)


def _put_blocks(
    x: torch.Tensor, side: int, by: torch.Tensor, bx: torch.Tensor, val: torch.Tensor
) -> None:
    """Write B × C × side × side blocks into the H × W × C map ``x`` at (by, bx), in place."""
    h, w, c = x.shape
    x.view(h // side, side, w // side, side, c)[by, :, bx] = val.permute(0, 2, 3, 1)


def _windows(
    x: torch.Tensor, side: int, ring: int, by: torch.Tensor, bx: torch.Tensor
) -> torch.Tensor:
    """(ring + n·side + ring) × … × C padded map → the blocks at (by, bx) with ``ring`` pixels
    around each: B × C × (side + 2·ring) × (side + 2·ring), channels last."""
    h, w, c = x.shape
    size = side + 2 * ring
    n, m = (h - 2 * ring) // side, (w - 2 * ring) // side
    view = x.as_strided((n, m, size, size, c), (side * w * c, side * c, w * c, c, 1))
    return view[by, bx].permute(0, 3, 1, 2)


def _resample(
    x: torch.Tensor,
    dim: int,
    origin: torch.Tensor,
    start: torch.Tensor,
    n: int,
    n_in: int,
    n_out: int,
) -> torch.Tensor:
    """The model's bilinear upsampling (corners aligned) along ``dim`` (1 rows, 2 columns) of a
    batch of B × rows × columns × C windows: window b starts at input index ``origin[b]`` of
    the whole ``n_in`` map; its ``n`` outputs are output indices ``start[b]``… of the whole
    ``n_out`` map, sampled where the whole map samples them, and zero outside it (padding).

    Done as one batched matrix product with each window's interpolation weights (two per
    output row): gathering the two source rows per output and blending them took about 4×
    as long on a CPU (an index copy of every window per source row)."""
    weights = _interpolation(origin, start, n, x.shape[dim], n_in, n_out).to(x.dtype)
    b, r, c, ch = x.shape
    if dim == 1:
        return torch.bmm(weights, x.reshape(b, r, c * ch)).view(b, n, c, ch)
    return torch.einsum("bjk,brkc->brjc", weights, x)


def _interpolation(
    origin: torch.Tensor, start: torch.Tensor, n: int, size: int, n_in: int, n_out: int
) -> torch.Tensor:
    """B × n × size weights of ``_resample``: output j of window b blends input rows i0 and
    i0 + 1 (local to the window) as the whole map's corner-aligned upsampling does."""
    y = start[:, None] + torch.arange(n)[None, :]
    scale = torch.tensor((n_in - 1) / max(1, n_out - 1), dtype=torch.float32)
    src = y.clamp(0, n_out - 1).float() * scale
    i0 = src.floor().long().clamp(0, n_in - 1)
    t = src - i0.float()
    i1 = (i0 + 1).clamp(max=n_in - 1)
    keep = ((y >= 0) & (y < n_out)).float()
    w = torch.zeros(y.shape[0], n, size)
    w.scatter_add_(
        2, (i0 - origin[:, None]).clamp(0, size - 1)[..., None], ((1 - t) * keep)[..., None]
    )
    w.scatter_add_(2, (i1 - origin[:, None]).clamp(0, size - 1)[..., None], (t * keep)[..., None])
    return w


def _hwc(x: torch.Tensor) -> torch.Tensor:
    """1 × C × H × W → H × W × C (a view when ``x`` is channels last)."""
    return x[0].permute(1, 2, 0)


def _up(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """The model's bilinear upsampling (corners aligned), computed and returned channels last."""
    x = x.contiguous(memory_format=torch.channels_last)
    return F.interpolate(x, size, mode="bilinear", align_corners=True)


class SparseFine:
    """The neck's fine end for one clip: ``dense`` on a keyframe, ``update`` on the frames
    between (recomputing only the blocks whose input changed).

    Holds the reference ``h`` and, padded to whole blocks (channels last, so a block's row is
    one contiguous copy), the fine end's maps that a block reads around it: the projection's
    output and the head's first convolution's (×2 resolution), and the depth."""

    def __init__(self, net: Any, threshold: float = 0.3, block: int = 2) -> None:
        self.net = net
        self.threshold = float(threshold)
        self.block = max(1, int(block))
        self.patch = int(net.head.patch_size)
        self.ref: torch.Tensor | None = None
        self.scale = 0.0
        self.maps: dict[str, torch.Tensor] = {}

    def _sizes(self, rows: int, cols: int) -> tuple[int, int, int, int]:
        """Blocks down and across, and a block's side at ×2 and at the input's resolution."""
        assert self.ref is not None
        f = self.ref.shape[2] // rows  # pixels of h per patch
        nby, nbx = -(-rows // self.block), -(-cols // self.block)
        return nby, nbx, 2 * f * self.block, self.patch * self.block

    def dense(self, h: torch.Tensor, rows: int, cols: int) -> torch.Tensor:
        """The fine end on whole maps (the model's own computation), keeping its maps."""
        self.ref = h.clone()
        self.scale = float(h.abs().mean())
        nby, nbx, s1, s2 = self._sizes(rows, cols)
        pre, q, depth = _fine_maps(self.net, h, rows, cols)
        h1, w1 = pre.shape[2:]
        h2, w2 = depth.shape[1:]
        c1, c2 = pre.shape[1], q.shape[1]
        self.maps = {
            "pre": pre.new_zeros(nby * s1 + 2, nbx * s1 + 2, c1),
            "q": q.new_zeros(nby * s1 + 4, nbx * s1 + 4, c2),
            "depth": depth.new_zeros(nby * s2, nbx * s2, 1),
        }
        self.maps["pre"][1 : 1 + h1, 1 : 1 + w1] = _hwc(pre)
        self.maps["q"][2 : 2 + h1, 2 : 2 + w1] = _hwc(q)
        self.maps["depth"][:h2, :w2, 0] = depth[0]
        return depth

    def update(
        self, h: torch.Tensor, rows: int, cols: int, depth: torch.Tensor
    ) -> tuple[torch.Tensor, float]:
        """The depth after this frame's ``h`` (``depth`` the last one, not changed) and the
        fraction of blocks recomputed."""
        if self.ref is None or self.ref.shape != h.shape:
            return self.dense(h, rows, cols), 1.0
        delta = (h - self.ref).abs().amax(1, keepdim=True)
        # At threshold 0 every pixel that changed at all counts (the fine end is then exact).
        limit = self.threshold * self.scale
        changed = delta >= limit if limit > 0 else delta > 0
        self.ref = torch.where(changed, h, self.ref)
        side = h.shape[2] // rows * self.block
        pad = F.pad(changed.float(), (RING, RING + side, RING, RING + side))
        hit = F.max_pool2d(pad, side + 2 * RING, stride=side)[0, 0]
        nby, nbx = -(-rows // self.block), -(-cols // self.block)
        blocks = torch.nonzero(hit[:nby, :nbx] > 0)
        if blocks.numel() == 0:
            return depth, 0.0
        self._blocks(blocks[:, 0], blocks[:, 1], rows, cols)
        return self.maps["depth"][None, : depth.shape[1], : depth.shape[2], 0].clone(), (
            blocks.shape[0] / (nby * nbx)
        )

    def _blocks(self, by: torch.Tensor, bx: torch.Tensor, rows: int, cols: int) -> None:
        """Recompute the fine end's maps on the blocks (by, bx), reading the ring each
        convolution needs from the maps around them."""
        assert self.ref is not None
        last, head, m = self.net.neck.fusion_stage.layers[-1], self.net.head, self.maps
        nby, nbx, s1, s2 = self._sizes(rows, cols)
        # ×2: the projection (1×1) runs before the upsampling (both are linear per pixel and the
        # upsampling's weights sum to one, so the order changes only float rounding), and both
        # run whole: they are cheap, and the upsampling samples where the whole map samples.
        h1, w1 = 2 * self.ref.shape[2], 2 * self.ref.shape[3]
        pre = _up(last.projection(self.ref), (h1, w1))
        m["pre"][1 : 1 + h1, 1 : 1 + w1] = _hwc(pre)
        q = F.conv2d(_windows(m["pre"], s1, 1, by, bx), head.conv1.weight, head.conv1.bias)
        _put_blocks(m["q"][2:-2, 2:-2], s1, by, bx, q)
        # The input's resolution: each block's window (with the ring of one that the 3×3
        # convolution reads) upsampled from its window of q, at the whole map's positions.
        h2, w2 = rows * self.patch, cols * self.patch
        win = _windows(m["q"], s1, 2, by, bx).permute(0, 2, 3, 1)  # B × S × S × C
        win = _resample(win, 1, by * s1 - 2, by * s2 - 1, s2 + 2, h1, h2)
        win = _resample(win, 2, bx * s1 - 2, bx * s2 - 1, s2 + 2, w1, w2)
        x = F.conv2d(win.permute(0, 3, 1, 2), head.conv2.weight, head.conv2.bias)
        x = head.activation2(head.conv3(head.activation1(x))) * head.max_depth
        _put_blocks(m["depth"], s2, by, bx, x)
