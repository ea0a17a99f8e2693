"""Truncated signed distance fusion of posed depth maps, and surface extraction.

A voxel grid over the views' bounding box; each view updates every voxel it sees with a
running weighted average of the truncated distance along its viewing ray (Curless & Levoy).
The surface is the zero level set, extracted with scikit-image's marching cubes inside fully
observed cubes. The grid's size follows the scene and the voxel size, never the number of views.

Only voxels near an observed surface can end up anywhere but +1 (free space), so ``integrate``
allocates the narrow band around the back-projected depth in small blocks (as voxel-block
TSDFs do) and, view by view, updates every band voxel at once with whole-vector torch
arithmetic; every other voxel keeps +1. Its result equals ``integrate_dense`` (every voxel,
every view: the plain definition, 10-20× slower) up to float rounding, as the band is wide
enough to hold every voxel a view can set below +1.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from fathom.engine.geometry import projection
from fathom.engine.types import (
    RGBD,
)

#: Voxel budget: past this the voxel size grows so memory stays bounded (~0.3 GB at 32M).
MAX_VOXELS = 1 << 25
#: Side, in voxels, of the blocks the narrow band is allocated in.
BLOCK = 2
#: Band voxels updated at once: bounds the temporaries (about 100 bytes a voxel).
CHUNK = 1 << 20

Progress = Callable[[float, str], None]


@dataclass
class TSDFGrid:
    origin: np.ndarray  # world position of voxel (0,0,0)'s centre
    voxel: float
    tsdf: np.ndarray  # X×Y×Z in [-1, 1], 1 where unobserved
    weight: np.ndarray  # X×Y×Z
    color: np.ndarray  # X×Y×Z×3


def _world_points(views: list[RGBD]) -> list[np.ndarray]:
    """Each view's valid depth samples back-projected to world points (N×3)."""
    out = []
    for v in views:
        c = v.camera
        assert c is not None
        p = projection.backproject(v.depth.data, c.fx, c.fy, c.cx, c.cy, c.pose).reshape(-1, 3)
        out.append(p[np.all(np.isfinite(p), axis=1)])
    return out


def bounds(views: list[RGBD]) -> tuple[np.ndarray, np.ndarray]:
    return _bounds(_world_points(views))


def _bounds(points: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    lo, hi = np.full(3, np.inf), np.full(3, -np.inf)
    for p in points:
        if len(p):
            lo, hi = np.minimum(lo, p.min(0)), np.maximum(hi, p.max(0))
    if not np.all(np.isfinite(lo)):
        raise ValueError("no view has a valid depth sample")
    return lo, hi


def _grid(
    points: list[np.ndarray], voxel: float, trunc_voxels: float
) -> tuple[np.ndarray, float, float, list[int]]:
    """(origin, voxel, truncation, dims) of the grid over the points, grown to the budget."""
    trunc = voxel * trunc_voxels
    lo, hi = _bounds(points)
    lo, hi = lo - 2 * trunc, hi + 2 * trunc
    while np.prod(np.ceil((hi - lo) / voxel) + 1) > MAX_VOXELS:
        voxel *= 1.25
        trunc = voxel * trunc_voxels
    dims = (np.ceil((hi - lo) / voxel).astype(int) + 1).tolist()
    return lo, voxel, trunc, dims


def integrate_dense(
    views: list[RGBD], voxel: float, trunc_voxels: float = 4.0, device: str = "cpu"
) -> TSDFGrid:
    """The plain definition, every voxel of the grid against every view: the reference that
    ``integrate`` must equal (tests, benchmarks); far slower, same grid."""
    lo, voxel, trunc, dims = _grid(_world_points(views), voxel, trunc_voxels)
    dev = torch.device(device)
    axes = [
        torch.arange(n, device=dev, dtype=torch.float32) * voxel + float(o)
        for n, o in zip(dims, lo, strict=True)
    ]
    gx, gy, gz = torch.meshgrid(*axes, indexing="ij")
    pts = torch.stack([gx, gy, gz], -1).reshape(-1, 3)
    n = len(pts)
    tsdf = torch.ones(n, device=dev)
    weight = torch.zeros(n, device=dev)
    color = torch.zeros((n, 3), device=dev)
    for v in views:
        c = v.camera
        assert c is not None
        w2c = torch.as_tensor(np.linalg.inv(c.pose), dtype=torch.float32, device=dev)
        pc = pts @ w2c[:3, :3].T + w2c[:3, 3]
        z = pc[:, 2]
        zs = torch.where(z > 1e-6, z, torch.ones_like(z))
        u = torch.floor(c.fx * pc[:, 0] / zs + c.cx).long()
        vv = torch.floor(c.fy * pc[:, 1] / zs + c.cy).long()
        inside = (z > 1e-6) & (u >= 0) & (u < c.width) & (vv >= 0) & (vv < c.height)
        idx = torch.nonzero(inside).squeeze(1)
        d_img = torch.as_tensor(np.nan_to_num(v.depth.data, nan=0.0, posinf=0.0), device=dev)
        rgb = torch.as_tensor(v.image.rgb(), device=dev)
        d = d_img[vv[idx], u[idx]]
        sdf = d - z[idx]
        keep = (d > 0) & (sdf > -trunc)
        idx, sdf = idx[keep], sdf[keep]
        val = torch.clamp(sdf / trunc, max=1.0)
        w_old = weight[idx]
        tsdf[idx] = (tsdf[idx] * w_old + val) / (w_old + 1)
        near = sdf.abs() < trunc
        ci = idx[near]
        cw = weight[ci]
        color[ci] = (color[ci] * cw[:, None] + rgb[vv[ci], u[ci]]) / (cw[:, None] + 1)
        weight[idx] = w_old + 1
    shape = tuple(dims)
    return TSDFGrid(
        lo.astype(np.float64),
        voxel,
        tsdf.reshape(shape).cpu().numpy(),
        weight.reshape(shape).cpu().numpy(),
        color.reshape(*shape, 3).cpu().numpy(),
    )


def _band_radius(views: list[RGBD], points: list[np.ndarray], trunc: float, voxel: float) -> int:
    """Chebyshev radius, in voxels, around the voxels holding depth samples that contains every
    voxel a view can set below +1. Such a voxel lies within ``trunc`` of the depth along the
    ray through its pixel, so within trunc·|ray| of that pixel's sample, plus the offset
    from the pixel centre (half a pixel's footprint at the sample's depth), plus half a
    voxel from the sample to its voxel's centre."""
    reach = 0.0
    for v, p in zip(views, points, strict=True):
        c = v.camera
        assert c is not None
        if not len(p):
            continue
        xn = max(abs(c.cx), abs(c.width - c.cx)) / c.fx
        yn = max(abs(c.cy), abs(c.height - c.cy)) / c.fy
        ray = math.sqrt(1.0 + xn * xn + yn * yn)
        d = v.depth.data
        d_max = float(d[np.isfinite(d) & (d > 0)].max())
        reach = max(reach, trunc * ray + d_max * 0.5 * math.hypot(1 / c.fx, 1 / c.fy))
    return int(math.ceil(reach / voxel + 0.5 + 1e-6))


def _dilate(occ: np.ndarray, r: int) -> np.ndarray:
    """Boolean 3-D dilation by a (2r+1)³ cube, one axis at a time."""
    for axis in range(3):
        out = occ.copy()
        for s in range(1, min(r, occ.shape[axis] - 1) + 1):
            lo = [slice(None)] * 3
            hi = [slice(None)] * 3
            lo[axis], hi[axis] = slice(None, -s), slice(s, None)
            out[tuple(hi)] |= occ[tuple(lo)]
            out[tuple(lo)] |= occ[tuple(hi)]
        occ = out
    return occ


def band_blocks(
    points: list[np.ndarray], origin: np.ndarray, voxel: float, dims: list[int], radius: int
) -> np.ndarray:
    """K×3 indices of the BLOCK³ voxel blocks of the narrow band: each block within
    ``radius`` voxels (Chebyshev) of a block holding a depth sample, so the band's voxels are
    a superset of those within ``radius`` of a sample's voxel. Row-major order."""
    bdims = [-(-n // BLOCK) for n in dims]
    occ = np.zeros(bdims, bool)
    top = np.array(dims) - 1
    for p in points:
        b = np.clip(np.rint((p - origin) / voxel).astype(np.int64), 0, top) // BLOCK
        occ[b[:, 0], b[:, 1], b[:, 2]] = True
    return np.argwhere(_dilate(occ, -(-radius // BLOCK)))


@dataclass
class _View:
    """A view as tensors on the fusion device; depth and colour padded by a one-pixel border
    of zero depth, where every voxel projecting off the image lands (and is skipped)."""

    w2c: list[list[float]]  # 3×4
    depth: torch.Tensor  # (H+2)·(W+2), 0 where invalid
    rgb: torch.Tensor  # (H+2)·(W+2)×3
    fx: float
    fy: float
    cx: float
    cy: float
    width: int
    height: int


def _views_on(views: list[RGBD], dev: torch.device) -> list[_View]:
    out = []
    for v in views:
        c = v.camera
        assert c is not None
        d = np.zeros((c.height + 2, c.width + 2), np.float32)
        d[1:-1, 1:-1] = np.nan_to_num(v.depth.data, nan=0.0, posinf=0.0, neginf=0.0)
        d[d < 0] = 0.0
        rgb = np.zeros((c.height + 2, c.width + 2, 3), np.float32)
        rgb[1:-1, 1:-1] = v.image.rgb()
        out.append(
            _View(
                np.linalg.inv(c.pose)[:3].astype(np.float32).tolist(),
                torch.as_tensor(d.reshape(-1), device=dev),
                torch.as_tensor(rgb.reshape(-1, 3), device=dev),
                c.fx,
                c.fy,
                c.cx,
                c.cy,
                c.width,
                c.height,
            )
        )
    return out


def _camera_coord(p: tuple[torch.Tensor, ...], row: list[float]) -> torch.Tensor:
    out = p[0] * row[0]
    return out.add_(p[1], alpha=row[1]).add_(p[2], alpha=row[2]).add_(row[3])


def _update(
    p: tuple[torch.Tensor, torch.Tensor, torch.Tensor],
    view: _View,
    trunc: float,
    state: tuple[torch.Tensor, torch.Tensor, torch.Tensor],
) -> None:
    """One view's running-average update, in place, of (tsdf, weight, colour) at the world
    points ``p`` = (x, y, z): ``integrate_dense``'s rule as whole-vector arithmetic."""
    tsdf, weight, color = state
    x, y, z = (_camera_coord(p, row) for row in view.w2c)
    zs = z.clamp(min=1e-6)
    u = (x.mul_(view.fx)).div_(zs).add_(view.cx).floor_().clamp_(-1, view.width)
    v = (y.mul_(view.fy)).div_(zs).add_(view.cy).floor_().clamp_(-1, view.height)
    # Off-image voxels land on the zero border; float32 indexes exactly below 2^24 pixels.
    pix = v.add_(1).mul_(view.width + 2).add_(u).add_(1).long()
    sdf = view.depth[pix]
    hit = sdf > 0
    sdf.sub_(z)
    hit &= (sdf > -trunc) & (z > 1e-6)
    val = (sdf / trunc).clamp_(max=1.0)
    tsdf.copy_(torch.where(hit, (tsdf * weight).add_(val).div_(weight + 1), tsdf))
    near = (hit & (sdf.abs() < trunc)).nonzero().squeeze(1)
    if len(near):
        wn = weight[near, None]
        color[near] = (color[near] * wn).add_(view.rgb[pix[near]]).div_(wn + 1)
    weight.add_(hit)


def integrate(
    views: list[RGBD],
    voxel: float,
    trunc_voxels: float = 4.0,
    device: str = "cpu",
    progress: Progress | None = None,
) -> TSDFGrid:
    """TSDF of the posed views over the narrow band around their depth. The grid returned
    spans the band's blocks (every voxel outside the band is +1, unobserved)."""
    points = _world_points(views)
    lo, voxel, trunc, dims = _grid(points, voxel, trunc_voxels)
    blocks = band_blocks(points, lo, voxel, dims, _band_radius(views, points, trunc, voxel))
    b0 = blocks.min(0)
    blocks -= b0
    shape = tuple(((blocks.max(0) + 1) * BLOCK).tolist())
    origin = lo + b0 * BLOCK * voxel
    dev = torch.device(device)
    tv = _views_on(views, dev)
    if max(v.depth.numel() for v in tv) >= 1 << 24:
        raise ValueError("TSDF fusion takes views below 16 megapixels")
    # Voxel offsets inside a block, and their row-major offsets in the grid.
    offs = np.stack(np.meshgrid(*[np.arange(BLOCK)] * 3, indexing="ij"), -1).reshape(-1, 3)
    strides = np.array([shape[1] * shape[2], shape[2], 1])
    n = int(np.prod(shape))
    tsdf = torch.ones(n, device=dev)
    weight = torch.zeros(n, device=dev)
    color = torch.zeros((n, 3), device=dev)
    per = max(1, CHUNK // len(offs))
    steps = max(1, -(-len(blocks) // per) * len(tv))
    for k, c0 in enumerate(range(0, len(blocks), per)):
        vox = (blocks[c0 : c0 + per, None, :] * BLOCK + offs[None]).reshape(-1, 3)
        # Voxel centres as ``integrate_dense`` computes them (index·voxel + origin, float32).
        px, py, pz = (
            torch.as_tensor(vox[:, a], device=dev).float().mul_(voxel).add_(float(origin[a]))
            for a in range(3)
        )
        at = torch.as_tensor(vox @ strides, device=dev)
        state = (tsdf[at], weight[at], color[at])
        for j, view in enumerate(tv):
            _update((px, py, pz), view, trunc, state)
            if progress is not None:
                progress((k * len(tv) + j + 1) / steps, "fusing views")
        for full, part in zip((tsdf, weight, color), state, strict=True):
            full.index_copy_(0, at, part)
    return TSDFGrid(
        origin,
        voxel,
        tsdf.reshape(shape).cpu().numpy(),
        weight.reshape(shape).cpu().numpy(),
        color.reshape(*shape, 3).cpu().numpy(),
    )


def observed_cubes(weight: np.ndarray) -> np.ndarray:
    """Marching-cubes mask of the cubes whose eight corners were all observed. scikit-image
    runs a cube when the mask holds at its far corner (x+1, y+1, z+1) only, so masking by
    observed voxels alone also meshed the step from the last voxel behind a surface (about
    -1) to the unobserved +1 beyond: a spurious inner shell one truncation deep."""
    o = weight > 0
    m = np.zeros_like(o)
    m[1:, 1:, 1:] = o[1:, 1:, 1:] & o[:-1, 1:, 1:] & o[1:, :-1, 1:] & o[1:, 1:, :-1]
    m[1:, 1:, 1:] &= o[:-1, :-1, 1:] & o[:-1, 1:, :-1] & o[1:, :-1, :-1] & o[:-1, :-1, :-1]
    return m


def extract_mesh(grid: TSDFGrid) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(vertices, faces, colours) of the zero crossing inside fully observed cubes."""
    from skimage.measure import marching_cubes

    cubes = observed_cubes(grid.weight)
    inside = grid.tsdf[cubes]
    if not len(inside) or inside.min() > 0 or inside.max() < 0:
        return np.zeros((0, 3)), np.zeros((0, 3), np.int64), np.zeros((0, 3))
    try:
        verts, faces, _, _ = marching_cubes(
            grid.tsdf, level=0.0, mask=cubes, allow_degenerate=False
        )
    except RuntimeError:  # signs differ only across voxels no observed cube joins
        return np.zeros((0, 3)), np.zeros((0, 3), np.int64), np.zeros((0, 3))
    idx = np.clip(np.round(verts).astype(int), 0, np.array(grid.tsdf.shape) - 1)
    cols = grid.color[idx[:, 0], idx[:, 1], idx[:, 2]]
    world = verts * grid.voxel + grid.origin
    return world, faces.astype(np.int64), cols


def fuse_tsdf(
    views: list[RGBD],
    voxel: float,
    trunc_voxels: float,
    device: str,
    progress: Progress | None = None,
) -> Any:
    """TSDF integration of posed RGBD views → coloured trimesh (marching cubes).
    ``progress(fraction, message)`` is called per view and chunk (it may raise to cancel)."""
    import trimesh

    grid = integrate(views, voxel, trunc_voxels, device, progress)
    verts, faces, cols = extract_mesh(grid)
    vc = np.concatenate(
        [(np.clip(cols, 0, 1) * 255).round(), np.full((len(cols), 1), 255)], 1
    ).astype(np.uint8)
    return trimesh.Trimesh(verts, faces, vertex_colors=vc, process=False)
