"""Meshes from depth, panoramas and points: grid triangulation, cuts at depth jumps, fusion."""

from __future__ import annotations

from typing import Any

import numpy as np

from fathom.engine.geometry import projection
from fathom.engine.geometry.projection import backproject, equirect_directions, pixel_grid
from fathom.engine.types import (
    RGBD,
    Camera,
    PointCloud,
)


def grid_faces(height: int, width: int, wrap_u: bool = False) -> np.ndarray:
    """Two triangles per grid cell over an H×W vertex grid (row-major vertex ids), wound so the
    front faces the camera in OpenCV axes. ``wrap_u`` closes the seam of a panorama."""
    cols = width if wrap_u else width - 1
    j, i = np.meshgrid(np.arange(height - 1), np.arange(cols), indexing="ij")
    a = j * width + i
    b = j * width + (i + 1) % width
    c = (j + 1) * width + i
    d = (j + 1) * width + (i + 1) % width
    tri1 = np.stack([a, c, b], axis=-1).reshape(-1, 3)
    tri2 = np.stack([b, c, d], axis=-1).reshape(-1, 3)
    return np.concatenate([tri1, tri2]).astype(np.int64)


def cut_discontinuities(faces: np.ndarray, depth_flat: np.ndarray, max_ratio: float) -> np.ndarray:
    """Keep faces whose three depths are valid and whose relative spread (max-min)/min is at most
    ``max_ratio``: this removes the 'rubber sheet' between foreground and background."""
    z = depth_flat[faces]
    valid = np.all(np.isfinite(z) & (z > 0), axis=1)
    zmin = np.where(valid, z.min(axis=1), 1.0)
    spread = (z.max(axis=1) - zmin) / zmin
    keep = valid & (spread <= max_ratio)
    return faces[keep]


def depth_grid_mesh(
    depth: np.ndarray,
    fx: float,
    fy: float,
    cx: float,
    cy: float,
    pose: np.ndarray | None = None,
    max_ratio: float = 0.05,
    step: int = 1,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Depth → (vertices V×3, faces F×3, uv V×2 in [0,1]) with one vertex per (sub)pixel.

    ``step`` subsamples the grid; unused vertices are kept so vertex i is pixel i (simple
    colour lookup), and callers may drop them with ``compact``.
    """
    full_h, full_w = depth.shape
    if step > 1:
        # Sample s·i keeps its own pixel centre (s·i + 0.5) in the scaled intrinsics.
        depth = depth[::step, ::step]
        fx, fy = fx / step, fy / step
        cx, cy = (cx + 0.5 * (step - 1)) / step, (cy + 0.5 * (step - 1)) / step
    h, w = depth.shape
    pts = backproject(depth, fx, fy, cx, cy, pose).reshape(-1, 3)
    faces = cut_discontinuities(grid_faces(h, w), depth.reshape(-1).astype(np.float64), max_ratio)
    u, v = pixel_grid(full_w, full_h)
    u, v = u[::step, ::step], v[::step, ::step]
    uv = np.stack([u.reshape(-1) / full_w, 1.0 - v.reshape(-1) / full_h], axis=-1)
    return pts, faces, uv


def compact(vertices: np.ndarray, faces: np.ndarray, *attrs: np.ndarray) -> tuple[np.ndarray, ...]:
    """Drop vertices no face uses; returns (vertices, faces, *attrs) re-indexed."""
    used = np.zeros(len(vertices), bool)
    used[faces.reshape(-1)] = True
    remap = -np.ones(len(vertices), np.int64)
    remap[used] = np.arange(int(used.sum()))
    out = [vertices[used], remap[faces]]
    out += [a[used] for a in attrs]
    return tuple(out)


def panorama_mesh(
    distance: np.ndarray, max_ratio: float = 0.08, step: int = 1, seam: str = "wrap"
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Equirectangular distance map (metres from the centre, along each ray) → depth-displaced
    sphere (vertices, faces, uv), poles capped by the grid's first/last rows.

    ``seam='wrap'`` joins the last column to the first (one vertex per sample, for vertex
    colours); ``'duplicate'`` repeats the first column at u = 1 so a texture does not wrap
    backwards across the seam.
    """
    full_h, full_w = distance.shape
    dirs = equirect_directions(full_w, full_h)[::step, ::step]
    distance = distance[::step, ::step]
    u, v = pixel_grid(full_w, full_h)
    u, v = u[::step, ::step] / full_w, 1.0 - v[::step, ::step] / full_h
    if seam == "duplicate":
        dirs = np.concatenate([dirs, dirs[:, :1]], axis=1)
        distance = np.concatenate([distance, distance[:, :1]], axis=1)
        u = np.concatenate([u, u[:, :1] + 1.0], axis=1)
        v = np.concatenate([v, v[:, :1]], axis=1)
    h, w = distance.shape
    r = distance.reshape(-1).astype(np.float64)
    r = np.where(np.isfinite(r) & (r > 0), r, np.nan)
    verts = dirs.reshape(-1, 3) * r[:, None]
    faces = cut_discontinuities(grid_faces(h, w, wrap_u=seam == "wrap"), r, max_ratio)
    faces = faces[:, [0, 2, 1]]  # seen from inside: flip winding to face the centre
    uv = np.stack([u.reshape(-1), v.reshape(-1)], axis=-1)
    return verts, faces, uv


def fuse_points(views: list[RGBD], voxel: float) -> PointCloud:
    """Union of back-projected views, one averaged point per voxel (bounded size)."""
    pts, cols = [], []
    for v in views:
        c = v.camera
        assert c is not None
        p = projection.backproject(v.depth.data, c.fx, c.fy, c.cx, c.cy, c.pose).reshape(-1, 3)
        ok = np.all(np.isfinite(p), axis=1)
        pts.append(p[ok])
        cols.append(v.image.rgb().reshape(-1, 3)[ok])
    p = np.concatenate(pts)
    col = np.concatenate(cols)
    keys = np.floor(p / voxel).astype(np.int64)
    _, inv, counts = np.unique(keys, axis=0, return_inverse=True, return_counts=True)
    inv = inv.reshape(-1)
    out_p = np.zeros((len(counts), 3))
    out_c = np.zeros((len(counts), 3))
    np.add.at(out_p, inv, p)
    np.add.at(out_c, inv, col)
    return PointCloud(out_p / counts[:, None], out_c / counts[:, None])


def points_mesh(pc: PointCloud, size: float) -> Any:
    """Each fused point as two crossed quads of the voxel's size: visible from any side, and
    bounded by the voxel count rather than by how many views went in."""
    import trimesh

    p = pc.points.astype(np.float64)
    h = size * 0.5
    offs = np.array(
        [
            [-h, -h, 0],
            [h, -h, 0],
            [h, h, 0],
            [-h, h, 0],
            [0, -h, -h],
            [0, h, -h],
            [0, h, h],
            [0, -h, h],
        ]
    )
    verts = (p[:, None, :] + offs[None]).reshape(-1, 3)
    base = np.arange(len(p))[:, None] * 8
    quad = np.array([[0, 1, 2], [0, 2, 3], [4, 5, 6], [4, 6, 7]])
    faces = (base[:, None, :] + quad[None]).reshape(-1, 3)
    colors = pc.colors if pc.colors is not None else np.full((len(p), 3), 0.8)
    vc = np.repeat((np.clip(colors, 0, 1) * 255).astype(np.uint8), 8, axis=0)
    vc = np.concatenate([vc, np.full((len(vc), 1), 255, np.uint8)], 1)
    return trimesh.Trimesh(verts, faces, vertex_colors=vc, process=False)


def panorama_trimesh(
    image: np.ndarray, distance: np.ndarray, step: int, cut: float, color: str = "texture"
) -> Any:
    """The panorama as a trimesh: textured with the full-resolution image (sharp at any grid
    step) or with one colour per vertex."""
    import trimesh

    seam = "duplicate" if color == "texture" else "wrap"
    verts, faces, uv = panorama_mesh(distance, cut, step, seam)
    verts = np.nan_to_num(verts)
    if color == "texture":
        from PIL import Image as PILImage

        verts, faces, uv = compact(verts, faces, uv)
        tex = PILImage.fromarray((np.clip(image[..., :3], 0, 1) * 255).round().astype(np.uint8))
        visual = trimesh.visual.TextureVisuals(uv=uv, image=tex)
        return trimesh.Trimesh(verts, faces, visual=visual, process=False)
    cols = image[::step, ::step, :3].reshape(-1, 3)
    verts, faces, cols = compact(verts, faces, cols)
    vc = np.concatenate(
        [(np.clip(cols, 0, 1) * 255).round(), np.full((len(cols), 1), 255)], 1
    ).astype(np.uint8)
    return trimesh.Trimesh(verts, faces, vertex_colors=vc, process=False)


def rgbd_mesh(rgbd: RGBD, cam: Camera, max_ratio: float, step: int, color: str) -> Any:
    """Grid triangulation of an RGBD view as a trimesh, cut at depth jumps; unused vertices
    dropped; colour per vertex or as a texture (the image itself) with UVs."""
    import trimesh

    d = rgbd.depth.data
    verts, faces, uv = depth_grid_mesh(d, cam.fx, cam.fy, cam.cx, cam.cy, cam.pose, max_ratio, step)
    cols = rgbd.image.rgb()[::step, ::step].reshape(-1, 3)
    verts, faces, uv, cols = compact(verts, faces, uv, cols)
    if color == "texture":
        from PIL import Image as PILImage

        tex = PILImage.fromarray((np.clip(rgbd.image.rgb(), 0, 1) * 255).astype(np.uint8))
        visual = trimesh.visual.TextureVisuals(uv=uv, image=tex)
        return trimesh.Trimesh(verts, faces, visual=visual, process=False)
    vc = np.concatenate(
        [(np.clip(cols, 0, 1) * 255).round(), np.full((len(cols), 1), 255)], 1
    ).astype(np.uint8)
    return trimesh.Trimesh(verts, faces, vertex_colors=vc, process=False)
