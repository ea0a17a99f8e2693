"""Analytic depth of planes and spheres seen by a pinhole camera: ground truth for geometry tests
and calibration scenes, exact to floating point."""

from __future__ import annotations

import numpy as np

from fathom.engine.geometry import projection
from fathom.engine.types import Camera


def camera_rays(cam: Camera) -> tuple[np.ndarray, np.ndarray]:
    """World-frame ray directions H×W×3 with unit z component in camera space (so the ray
    parameter t equals z depth), and the camera centre."""
    u, v = projection.pixel_grid(cam.width, cam.height)
    d_cam = np.stack([(u - cam.cx) / cam.fx, (v - cam.cy) / cam.fy, np.ones_like(u)], -1)
    return d_cam @ cam.pose[:3, :3].T, cam.pose[:3, 3].copy()


def plane_depth(cam: Camera, normal: np.ndarray, offset: float) -> np.ndarray:
    """z depth of the plane {x : n·x = offset}; inf where the ray misses or points away."""
    rays, o = camera_rays(cam)
    n = np.asarray(normal, np.float64)
    denom = rays @ n
    with np.errstate(divide="ignore", invalid="ignore"):
        t = (offset - o @ n) / denom
    return np.where(np.isfinite(t) & (t > 0), t, np.inf)


def sphere_depth(cam: Camera, center: np.ndarray, radius: float) -> np.ndarray:
    """z depth of the near side of a sphere; inf where missed."""
    rays, o = camera_rays(cam)
    oc = o - np.asarray(center, np.float64)
    a = np.sum(rays * rays, -1)
    b = rays @ oc
    c = oc @ oc - radius * radius
    disc = b * b - a * c
    with np.errstate(invalid="ignore"):
        t = (-b - np.sqrt(disc)) / a
    return np.where((disc >= 0) & (t > 0), t, np.inf)


def composite(*depths: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Nearest surface per pixel and the index of the surface that won."""
    stack = np.stack(depths)
    return stack.min(0), stack.argmin(0)
