"""Meshes from depth, panoramas and points: grid triangulation, cuts at depth jumps, fusion."""

from __future__ import annotations

import functools
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


def _cell_keep(depth: np.ndarray, max_ratio: float) -> tuple[np.ndarray, np.ndarray]:
    """Which of each grid cell's two triangles survive the cut, as two flat masks over the
    h·w vertex ids (cell (j, i) at its top-left vertex j·w + i; last row and column False).

    Cell (j, i) has corners a = (j, i), b = (j, i+1), c = (j+1, i), d = (j+1, i+1) and the
    triangles (a, c, b), (b, c, d) of ``grid_faces``; shifted contiguous slices of the flat
    depth give each corner for all cells at once, with ``cut_discontinuities``' rule and
    float64 arithmetic, so a megapixel takes milliseconds instead of per-face gathers."""
    h, w = depth.shape
    z = np.array(depth, np.float64).reshape(-1)
    z[~(np.isfinite(z) & (z > 0))] = np.nan  # NaN fails every comparison below
    n = h * w - w - 1
    a, b, c, d = z[:n], z[1 : n + 1], z[w : w + n], z[w + 1 :]
    keep1, keep2 = np.zeros(h * w, bool), np.zeros(h * w, bool)
    lo_bc, hi_bc = np.minimum(b, c), np.maximum(b, c)
    # In place where possible: fewer fresh megabyte buffers, fewer page faults.
    for corner, keep in ((a, keep1), (d, keep2)):
        lo, hi = np.minimum(corner, lo_bc), np.maximum(corner, hi_bc)
        hi -= lo
        hi /= lo
        np.less_equal(hi, max_ratio, out=keep[:n])
    keep1[w - 1 :: w] = False  # the last column's "cells" would wrap to the next row
    keep2[w - 1 :: w] = False
    return keep1, keep2


def cut_cells(depth: np.ndarray, max_ratio: float) -> tuple[np.ndarray, np.ndarray]:
    """(h-1)×(w-1) masks of each grid cell's first (a, c, b) and second (b, c, d) triangle
    kept by ``cut_discontinuities``' rule (see ``_cell_keep``)."""
    h, w = depth.shape
    k1, k2 = _cell_keep(depth, max_ratio)
    return k1.reshape(h, w)[:-1, :-1], k2.reshape(h, w)[:-1, :-1]


def _cell_triangles(ids: np.ndarray, keep1: np.ndarray, keep2: np.ndarray, w: int) -> np.ndarray:
    """Faces of the kept cell triangles, in ``grid_faces`` order (every first triangle, then
    every second), with the flat per-vertex ``ids`` as vertex numbers."""
    n = len(ids) - w - 1
    k1, k2 = keep1[:n], keep2[:n]
    a, b, c, d = ids[:n], ids[1 : n + 1], ids[w : w + n], ids[w + 1 :]
    n1 = int(np.count_nonzero(k1))
    faces = np.empty((n1 + int(np.count_nonzero(k2)), 3), np.int64)
    np.stack([a[k1], c[k1], b[k1]], axis=1, out=faces[:n1])
    np.stack([b[k2], c[k2], d[k2]], axis=1, out=faces[n1:])
    return faces


def _used_vertices(keep1: np.ndarray, keep2: np.ndarray, w: int) -> np.ndarray:
    """Flat mask of grid vertices that a kept triangle touches."""
    n = len(keep1) - w - 1
    k1, k2 = keep1[:n], keep2[:n]
    either = k1 | k2
    used = np.zeros(len(keep1), bool)
    used[:n] |= k1
    used[1 : n + 1] |= either
    used[w : w + n] |= either
    used[w + 1 :] |= k2
    return used


def _scaled_grid(
    depth: np.ndarray, fx: float, fy: float, cx: float, cy: float, step: int
) -> tuple[np.ndarray, float, float, float, float]:
    if step > 1:
        # Sample s·i keeps its own pixel centre (s·i + 0.5) in the scaled intrinsics.
        depth = depth[::step, ::step]
        fx, fy = fx / step, fy / step
        cx, cy = (cx + 0.5 * (step - 1)) / step, (cy + 0.5 * (step - 1)) / step
    return depth, fx, fy, cx, cy


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
    colour lookup), and callers may drop them with ``compact`` (or use ``cut_grid_mesh``).
    """
    full_h, full_w = depth.shape
    depth, fx, fy, cx, cy = _scaled_grid(depth, fx, fy, cx, cy, step)
    h, w = depth.shape
    pts = backproject(depth, fx, fy, cx, cy, pose).reshape(-1, 3)
    vertex_ids = np.arange(h * w, dtype=np.int64)
    faces = _cell_triangles(vertex_ids, *_cell_keep(depth, max_ratio), w)
    u, v = pixel_grid(full_w, full_h)
    u, v = u[::step, ::step], v[::step, ::step]
    uv = np.stack([u.reshape(-1) / full_w, 1.0 - v.reshape(-1) / full_h], axis=-1)
    return pts, faces, uv


@functools.lru_cache(maxsize=4)
def _pixel_centres(height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """Read-only (u, v) pixel-centre grids, cached per size (every frame of a video shares
    them)."""
    u, v = pixel_grid(width, height)
    u.flags.writeable = False
    v.flags.writeable = False
    return u, v


def cut_grid_mesh(
    depth: np.ndarray,
    fx: float,
    fy: float,
    cx: float,
    cy: float,
    pose: np.ndarray | None = None,
    max_ratio: float = 0.05,
    step: int = 1,
    with_uv: bool = True,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``compact(*depth_grid_mesh(...))`` without building what it would drop: (vertices,
    faces, uv, used) of the used grid vertices only, identical to that composition. ``used``
    is the (sub)sampled grid's mask of kept vertices (in vertex order), for colour lookup;
    ``with_uv=False`` skips the uv (returned empty) for vertex-coloured meshes."""
    full_h, full_w = depth.shape
    depth, fx, fy, cx, cy = _scaled_grid(depth, fx, fy, cx, cy, step)
    h, w = depth.shape
    keep1, keep2 = _cell_keep(depth, max_ratio)
    used = _used_vertices(keep1, keep2, w)
    ids = np.cumsum(used, dtype=np.int64)
    ids -= 1  # compact id of each used vertex
    faces = _cell_triangles(ids, keep1, keep2, w)
    u, v = _pixel_centres(h, w)
    uu, vv = u.reshape(-1)[used], v.reshape(-1)[used]
    z = depth.reshape(-1)[used].astype(np.float64)
    # The same float64 expressions as ``backproject`` so vertices match it.
    pts = np.stack([(uu - cx) / fx * z, (vv - cy) / fy * z, z], axis=1)
    if pose is not None and not np.array_equal(pose, np.eye(4)):
        pts = pts @ pose[:3, :3].T + pose[:3, 3]
    uv = np.zeros((0, 2))
    if with_uv:  # at the full-resolution pixel centres
        fu, fv = (uu - 0.5) * step + 0.5, (vv - 0.5) * step + 0.5
        uv = np.stack([fu / full_w, 1.0 - fv / full_h], 1)
    used = used.reshape(h, w)
    return pts, faces, uv, used


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


def _rows(a: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """``a[mask]`` for a 2-D array, with each row moved as one opaque item: numpy's row-wise
    boolean indexing goes element by element and costs several times more."""
    a = np.ascontiguousarray(a)
    row = np.dtype((np.void, a.dtype.itemsize * a.shape[1]))
    return a.view(row).reshape(-1)[mask].view(a.dtype).reshape(-1, a.shape[1])


def _vertex_colors(cols: np.ndarray) -> np.ndarray:
    """Float RGB in [0, 1] → opaque RGBA bytes, rounded."""
    vc = np.full((len(cols), 4), 255, np.uint8)
    vc[:, :3] = np.rint(np.clip(cols, 0, 1) * 255)
    return vc


def rgbd_mesh(rgbd: RGBD, cam: Camera, max_ratio: float, step: int, color: str) -> Any:
    """Grid triangulation of an RGBD view as a trimesh, cut at depth jumps; unused vertices
    dropped; colour per vertex or as a texture (the image itself) with UVs. Built from the
    kept cells directly and handed to trimesh unprocessed: a megapixel in tens of ms."""
    import trimesh

    d = rgbd.depth.data
    verts, faces, uv, ids = cut_grid_mesh(
        d, cam.fx, cam.fy, cam.cx, cam.cy, cam.pose, max_ratio, step, color == "texture"
    )
    rgb = rgbd.image.rgb()
    if color == "texture":
        from PIL import Image as PILImage

        tex = PILImage.fromarray((np.clip(rgb, 0, 1) * 255).astype(np.uint8))
        visual = trimesh.visual.TextureVisuals(uv=uv, image=tex)
        return trimesh.Trimesh(verts, faces, visual=visual, process=False, validate=False)
    cols = _rows(rgb[::step, ::step].reshape(-1, 3), ids.reshape(-1))
    return trimesh.Trimesh(
        verts, faces, vertex_colors=_vertex_colors(cols), process=False, validate=False
    )
