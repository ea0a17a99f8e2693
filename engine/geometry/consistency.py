"""How consistent a view set is: each view reprojected into the others through its depth.

Views of one object agree where they see the same surface: a pixel of view i, lifted to 3-D
by its depth and projected into view j, must have the colour view j shows there, if view j
sees that point (its depth there matches). The photometric error over the pixels two views
both see is the measure multi-view generators are compared by (the issue's consistency rows):
0 for exact renders of one object, large for views of different objects.

Colours in view j are sampled bilinearly; a pixel counts only where all four taps see the same
surface (depth within ``depth_tol`` relative), so silhouettes and occluders never mix in.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from fathom.engine.geometry import analytic, projection
from fathom.engine.types import Camera, Depth, Views


@dataclass
class Consistency:
    """The photometric error of a view set: mean absolute error (colour in [0, 1], averaged
    over channels) and PSNR (dB) over every pixel seen by a view and one of its neighbours,
    ``pixels`` of them, and per ordered pair (i, j) the error and pixel count."""

    mae: float
    psnr: float
    pixels: int
    pairs: dict[tuple[int, int], tuple[float, int]] = field(default_factory=dict)


def _valid(depth: np.ndarray) -> np.ndarray:
    return np.isfinite(depth) & (depth > 0)


def reproject_pair(
    image_i: np.ndarray,
    depth_i: np.ndarray,
    cam_i: Camera,
    image_j: np.ndarray,
    depth_j: np.ndarray,
    cam_j: Camera,
    depth_tol: float = 0.01,
) -> tuple[np.ndarray, np.ndarray]:
    """View i's colours and view j's colours at the same surface points, each K×C for the K
    pixels of view i that view j sees (bilinear in j, all four taps on the same surface)."""
    pts = projection.backproject(depth_i, cam_i.fx, cam_i.fy, cam_i.cx, cam_i.cy, cam_i.pose)
    ok_i = _valid(depth_i)
    src = pts[ok_i]
    uv, z = projection.project(src, cam_j.fx, cam_j.fy, cam_j.cx, cam_j.cy, cam_j.pose)
    h, w = depth_j.shape
    # Pixel centres sit at +0.5: tap coordinates of the bilinear footprint.
    x, y = uv[:, 0] - 0.5, uv[:, 1] - 0.5
    ok = np.isfinite(x) & np.isfinite(y) & (z > 0) & (x >= 0) & (y >= 0)
    ok &= (x <= w - 1) & (y <= h - 1)
    x0 = np.clip(np.floor(np.where(ok, x, 0)).astype(np.int64), 0, max(w - 2, 0))
    y0 = np.clip(np.floor(np.where(ok, y, 0)).astype(np.int64), 0, max(h - 2, 0))
    x1, y1 = np.minimum(x0 + 1, w - 1), np.minimum(y0 + 1, h - 1)
    dj = np.where(_valid(depth_j), depth_j, np.nan)
    for yy, xx in ((y0, x0), (y0, x1), (y1, x0), (y1, x1)):
        with np.errstate(invalid="ignore"):
            ok &= np.abs(dj[yy, xx] - z) <= depth_tol * z
    fx, fy = (x - x0)[ok, None], (y - y0)[ok, None]
    x0, x1, y0, y1 = x0[ok], x1[ok], y0[ok], y1[ok]
    top = image_j[y0, x0] * (1 - fx) + image_j[y0, x1] * fx
    bottom = image_j[y1, x0] * (1 - fx) + image_j[y1, x1] * fx
    return image_i[ok_i][ok], top * (1 - fy) + bottom * fy


def reprojection_error(
    images: list[np.ndarray],
    depths: list[np.ndarray],
    cameras: list[Camera],
    pairs: list[tuple[int, int]] | None = None,
    depth_tol: float = 0.01,
) -> Consistency:
    """The photometric error of views (H×W×C colours in [0, 1], z depths, cameras) over the
    ordered ``pairs`` (default: every pair; pairs that share no surface add nothing)."""
    n = len(images)
    if not (len(depths) == len(cameras) == n):
        raise ValueError(f"{n} images, {len(depths)} depths and {len(cameras)} cameras")
    todo = pairs if pairs is not None else [(i, j) for i in range(n) for j in range(n) if i != j]
    total_abs, total_sq, count = 0.0, 0.0, 0
    out: dict[tuple[int, int], tuple[float, int]] = {}
    for i, j in todo:
        a, b = reproject_pair(
            images[i], depths[i], cameras[i], images[j], depths[j], cameras[j], depth_tol
        )
        if not len(a):
            continue
        diff = a.astype(np.float64) - b.astype(np.float64)
        out[(i, j)] = (float(np.abs(diff).mean()), len(a))
        total_abs += float(np.abs(diff).mean(-1).sum())
        total_sq += float((diff**2).mean(-1).sum())
        count += len(a)
    if count == 0:
        raise ValueError("no two views see the same surface: nothing to compare")
    mse = total_sq / count
    psnr = math.inf if mse == 0 else 10.0 * math.log10(1.0 / mse)
    return Consistency(total_abs / count, psnr, count, out)


def views_consistency(views: Views, depth_tol: float = 0.01) -> Consistency:
    """:func:`reprojection_error` of a view set that carries z depths (metric or in the
    cameras' units)."""
    if views.depths is None:
        raise ValueError("the views carry no depth; estimate it or give a proxy")
    return reprojection_error(
        [im.rgb() for im in views.images],
        [d.data for d in views.depths],
        views.cameras,
        depth_tol=depth_tol,
    )


def sphere_proxy(cameras: list[Camera], radius: float = 1.0) -> list[Depth]:
    """Each camera's z depth of a sphere of ``radius`` at the origin (inf where missed): the
    shape a generated view set of an object at the origin is compared through when it has no
    depth of its own. It measures whether the views agree where the object's rough bulk would
    be; it knows nothing of the object's true shape."""
    return [
        Depth(analytic.sphere_depth(c, np.zeros(3), radius).astype(np.float32), "metric")
        for c in cameras
    ]
