"""Narrow-band TSDF fusion equals the dense definition and rebuilds a known sphere, colours too."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial import cKDTree

from fathom.engine.geometry import analytic, projection, tsdf
from fathom.engine.types import RGBD, Depth, Image

RADIUS = 0.5


def sphere_views(n: int = 6, size: tuple[int, int] = (96, 72)) -> list[RGBD]:
    """Exact renders of a sphere at the origin coloured by its normal, from a ring of cameras
    (three above, three below), with a wall behind that only some views see."""
    az = [360.0 * k / n for k in range(n)]
    el = [20.0 if k % 2 else -15.0 for k in range(n)]
    out = []
    for cam in projection.ring_cameras(az, el, 2.0, 50.0, size):
        depth = analytic.sphere_depth(cam, np.zeros(3), RADIUS)
        pts = projection.backproject(depth, cam.fx, cam.fy, cam.cx, cam.cy, cam.pose)
        with np.errstate(invalid="ignore"):
            rgb = np.nan_to_num(0.5 + 0.5 * pts / RADIUS, nan=0.0).astype(np.float32)
        out.append(RGBD(Image(rgb), Depth(depth.astype(np.float32), "metric"), cam))
    return out


def overlap(
    small: tsdf.TSDFGrid, big: tsdf.TSDFGrid
) -> tuple[tuple[slice, ...], tuple[slice, ...]]:
    """Index boxes of the voxels the two grids share (same voxel lattice)."""
    start = np.rint((small.origin - big.origin) / big.voxel).astype(int)
    a, b = [], []
    for s, n_small, n_big in zip(start, small.tsdf.shape, big.tsdf.shape, strict=True):
        lo, hi = max(s, 0), min(s + n_small, n_big)
        b.append(slice(lo, hi))
        a.append(slice(lo - s, hi - s))
    return tuple(a), tuple(b)


def test_band_integration_equals_the_dense_definition() -> None:
    views = sphere_views()
    band = tsdf.integrate(views, 0.04, 4.0)
    dense = tsdf.integrate_dense(views, 0.04, 4.0)
    assert band.voxel == dense.voxel
    a, b = overlap(band, dense)
    # Every voxel the dense grid sets below +1 lies inside the band's grid ...
    outside = np.ones(dense.tsdf.shape, bool)
    outside[b] = False
    assert np.all(dense.tsdf[outside] == 1.0)
    # ... where the two agree, up to float32 rounding at pixel borders (matmul vs elementwise).
    differ = np.abs(band.tsdf[a] - dense.tsdf[b]) > 1e-5
    assert differ.mean() < 1e-4
    in_band = band.weight[a] > 0
    assert np.mean(band.weight[a][in_band] != dense.weight[b][in_band]) < 1e-4
    assert np.all(dense.tsdf[b][~in_band] == 1.0)  # the band holds every non-free voxel
    assert np.mean(np.abs(band.color[a] - dense.color[b]).max(-1) > 1e-5) < 1e-4
    # ... and it is a small part of the grid.
    assert in_band.sum() < 0.5 * dense.tsdf.size


def chamfer(p: np.ndarray, q: np.ndarray) -> float:
    return float(cKDTree(q).query(p)[0].mean() + cKDTree(p).query(q)[0].mean()) / 2


def old_extraction(grid: tsdf.TSDFGrid) -> np.ndarray:
    """Vertices as the studio extracted them before: every cube whose far corner was seen."""
    from skimage.measure import marching_cubes

    v = marching_cubes(grid.tsdf, 0.0, mask=grid.weight > 0, allow_degenerate=False)[0]
    return v * grid.voxel + grid.origin


def test_fused_sphere_matches_the_dense_fusion_and_the_true_shape() -> None:
    views = sphere_views()
    fast = tsdf.fuse_tsdf(views, 0.04, 4.0, "cpu")
    dense = tsdf.integrate_dense(views, 0.04, 4.0)
    v, f, cols = tsdf.extract_mesh(dense)
    fv = np.asarray(fast.vertices)
    assert len(fast.faces) == pytest.approx(len(f), rel=0.01)
    assert chamfer(fv, v) < 0.001 * 2 * RADIUS  # 0.1 % of the object's size
    # The true shape: within 1 % of its size on average, no vertex off by a voxel.
    err = np.abs(np.linalg.norm(fv, axis=1) - RADIUS)
    assert err.mean() < 0.01 * 2 * RADIUS and err.max() < 0.04
    # The old extraction also meshed a shell one truncation inside; the outer surface is
    # the same: every new vertex lies on the old mesh.
    old = old_extraction(dense)
    assert np.mean(np.abs(np.linalg.norm(old, axis=1) - RADIUS) > 0.1) > 0.2  # the old shell
    assert cKDTree(old).query(fv)[0].mean() < 0.1 * dense.voxel
    # Colours: the normal colouring, as the dense fusion gave it and as the truth is.
    vc = np.asarray(fast.visual.vertex_colors)[:, :3] / 255.0
    truth = 0.5 + 0.5 * fv / np.linalg.norm(fv, axis=1, keepdims=True)
    assert np.abs(vc - truth).mean() < 0.05
    assert np.abs(vc - cols[cKDTree(v).query(fv)[1]]).mean() < 0.01


def test_progress_reaches_one_and_can_cancel() -> None:
    views = sphere_views(3)
    seen: list[float] = []
    tsdf.fuse_tsdf(views, 0.05, 4.0, "cpu", lambda f, _m: seen.append(f))
    assert seen == sorted(seen) and seen[-1] == pytest.approx(1.0) and len(seen) >= 3

    class Stop(Exception):
        pass

    def cancel(fraction: float, _message: str) -> None:
        raise Stop

    with pytest.raises(Stop):
        tsdf.fuse_tsdf(views, 0.05, 4.0, "cpu", cancel)
    with pytest.raises(ValueError, match="no view has a valid depth"):
        empty = RGBD(
            views[0].image,
            Depth(np.full_like(views[0].depth.data, np.nan), "metric"),
            views[0].camera,
        )
        tsdf.fuse_tsdf([empty], 0.05, 4.0, "cpu")
