"""Truncated signed distance fusion of posed depth maps, and surface extraction.

A dense voxel grid over the views' bounding box; each view updates every voxel it sees with a
running weighted average of the truncated distance along its viewing ray (Curless & Levoy).
The surface is the zero level set, extracted with scikit-image's marching cubes. The grid's
size follows the scene and the voxel size, never the number of views.
"""

from __future__ import annotations

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


@dataclass
class TSDFGrid:
    origin: np.ndarray  # world position of voxel (0,0,0)'s centre
    voxel: float
    tsdf: np.ndarray  # X×Y×Z in [-1, 1], 1 where unobserved
    weight: np.ndarray  # X×Y×Z
    color: np.ndarray  # X×Y×Z×3


def bounds(views: list[RGBD]) -> tuple[np.ndarray, np.ndarray]:
    lo, hi = np.full(3, np.inf), np.full(3, -np.inf)
    for v in views:
        c = v.camera
        assert c is not None
        p = projection.backproject(v.depth.data, c.fx, c.fy, c.cx, c.cy, c.pose).reshape(-1, 3)
        p = p[np.all(np.isfinite(p), axis=1)]
        if len(p):
            lo, hi = np.minimum(lo, p.min(0)), np.maximum(hi, p.max(0))
    if not np.all(np.isfinite(lo)):
        raise ValueError("no view has a valid depth sample")
    return lo, hi


def integrate(
    views: list[RGBD], voxel: float, trunc_voxels: float = 4.0, device: str = "cpu"
) -> TSDFGrid:
    trunc = voxel * trunc_voxels
    lo, hi = bounds(views)
    lo, hi = lo - 2 * trunc, hi + 2 * trunc
    while np.prod(np.ceil((hi - lo) / voxel) + 1) > MAX_VOXELS:
        voxel *= 1.25
        trunc = voxel * trunc_voxels
    dims = (np.ceil((hi - lo) / voxel).astype(int) + 1).tolist()
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


def extract_mesh(grid: TSDFGrid) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(vertices, faces, colours) of the zero crossing between observed voxels."""
    from skimage.measure import marching_cubes

    observed = grid.weight > 0
    if not observed.any() or grid.tsdf[observed].min() > 0 or grid.tsdf[observed].max() < 0:
        return np.zeros((0, 3)), np.zeros((0, 3), np.int64), np.zeros((0, 3))
    verts, faces, _, _ = marching_cubes(grid.tsdf, level=0.0, mask=observed, allow_degenerate=False)
    idx = np.clip(np.round(verts).astype(int), 0, np.array(grid.tsdf.shape) - 1)
    cols = grid.color[idx[:, 0], idx[:, 1], idx[:, 2]]
    world = verts * grid.voxel + grid.origin
    return world, faces.astype(np.int64), cols


def fuse_tsdf(views: list[RGBD], voxel: float, trunc_voxels: float, device: str) -> Any:
    """TSDF integration of posed RGBD views → coloured trimesh (marching cubes)."""
    import trimesh

    grid = integrate(views, voxel, trunc_voxels, device)
    verts, faces, cols = extract_mesh(grid)
    vc = np.concatenate(
        [(np.clip(cols, 0, 1) * 255).round(), np.full((len(cols), 1), 255)], 1
    ).astype(np.uint8)
    return trimesh.Trimesh(verts, faces, vertex_colors=vc, process=False)
