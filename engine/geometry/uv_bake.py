"""UV atlases (xatlas) and textures baked from posed views: how a fused mesh gets its colour.

A fused surface carries colour only at its vertices, one sample per voxel; the views hold many
more. So the mesh is cut into charts laid out on one texture (xatlas), every texel is mapped
back to its 3-D point on the surface (the studio's rasteriser run in UV space), and each point
takes the colour of the views that see it: projected into every view, kept where that view's
depth agrees with the point's (so occluded views do not paint it), weighted by how squarely the
view faces the surface, and blended. Texels no view saw fall back to the fused vertex colours;
texels outside every chart copy their nearest chart texel, so bilinear filtering and mipmaps
never bleed black across seams. UV origin is bottom-left (glTF and OBJ as trimesh stores them).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from fathom.engine.geometry import raster
from fathom.engine.types import Camera

#: The surface is cut into at least this many charts (see ``uv_atlas``).
CHARTS = 64

#: Exponent on the cosine weighting of views: high, so the most frontal view dominates where
#: it sees (a slightly misplaced surface blurs a blend of grazing views: +5 dB on the test
#: sphere going from 1 to 8), while seams between views still blend.
SHARPNESS = 8.0

#: Progress callback: fraction in [0, 1] and a short message (a node passes ``ctx.progress``).
Progress = Callable[[float, str], None]


@dataclass
class Atlas:
    """A mesh re-indexed for texturing: vertices on chart seams are split, so each has one UV."""

    vertices: np.ndarray  # V×3 float64
    faces: np.ndarray  # F×3 int64
    uv: np.ndarray  # V×2 float32 in [0, 1], origin bottom-left
    source: np.ndarray  # V int64: the input vertex each one copies


@dataclass
class BakeView:
    """One view to bake from: RGB, the camera, and the depth to test visibility against."""

    image: np.ndarray  # H×W×3 float32 in [0, 1]
    camera: Camera
    depth: np.ndarray | None  # H×W z-depth, non-finite where the view saw nothing


def uv_atlas(vertices: np.ndarray, faces: np.ndarray, resolution: int, padding: int = 2) -> Atlas:
    """Charts and packing by xatlas for a ``resolution``² texture with ``padding`` texels
    between charts (room for the seam dilation and bilinear filtering)."""
    import xatlas

    if len(faces) == 0:
        raise ValueError("a UV atlas needs at least one triangle")
    atlas = xatlas.Atlas()
    atlas.add_mesh(
        np.ascontiguousarray(vertices, np.float32), np.ascontiguousarray(faces, np.uint32)
    )
    pack = xatlas.PackOptions()
    pack.resolution = int(resolution)
    pack.padding = int(padding)
    pack.bilinear = True
    chart = xatlas.ChartOptions()
    # Growing a few huge charts dominates xatlas's time (7 s for 20k triangles here); capping a
    # chart at 1/64 of the surface makes it ten times faster for a few percent less packing.
    tri = np.asarray(vertices, np.float64)[np.asarray(faces)]
    area = 0.5 * np.linalg.norm(np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0]), axis=1)
    chart.max_chart_area = float(area.sum()) / CHARTS
    atlas.generate(chart, pack)
    vmap, idx, uv = atlas[0]
    src = vmap.astype(np.int64)
    return Atlas(
        np.asarray(vertices, np.float64)[src],
        idx.astype(np.int64).reshape(-1, 3),
        np.clip(uv.astype(np.float32), 0.0, 1.0),
        src,
    )


def texel_surface(
    atlas: Atlas, size: int, device: str = "cpu"
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Rasterise the atlas in UV space: (covered texel indices, their 3-D points, their unit
    normals, their barycentric weights over the face's vertices with the face ids)."""
    dev = torch.device(device)
    uv = torch.as_tensor(atlas.uv, dtype=torch.float32, device=dev)
    # Texel row 0 is v = 1 (the top of the image): put (u, 1 - v) on a unit-depth "camera".
    flat = torch.stack([uv[:, 0] * size, (1 - uv[:, 1]) * size, torch.ones_like(uv[:, 0])], 1)
    faces = torch.as_tensor(atlas.faces, dtype=torch.int64, device=dev)
    frags = raster.rasterize(flat, faces, 1.0, 1.0, 0.0, 0.0, size, size, near=0.5)
    cov = frags.face.reshape(-1) >= 0
    texels = torch.nonzero(cov).squeeze(1)
    fid = frags.face.reshape(-1)[texels]
    bary = frags.bary.reshape(-1, 3)[texels]
    verts = torch.as_tensor(atlas.vertices, dtype=torch.float32, device=dev)
    tri = verts[faces[fid]]  # n×3×3
    points = (bary[..., None] * tri).sum(1)
    normals = torch.linalg.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    normals = normals / normals.norm(dim=1, keepdim=True).clamp(min=1e-12)
    return texels, points, normals, torch.cat([bary, fid[:, None].float()], 1)


def _sample(image: torch.Tensor, u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Bilinear samples (n×C) of an H×W×C image at continuous pixel coordinates."""
    h, w = image.shape[:2]
    grid = torch.stack([u / w * 2 - 1, v / h * 2 - 1], -1)[None, None]
    out = torch.nn.functional.grid_sample(
        image.permute(2, 0, 1)[None], grid, mode="bilinear", align_corners=False
    )
    return out[0, :, 0].T


def view_contribution(
    view: BakeView,
    points: torch.Tensor,
    normals: torch.Tensor,
    tolerance: float,
    sharpness: float = SHARPNESS,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(n×3 colours, n weights) one view gives the surface points: zero weight where the point
    is behind the camera, outside the frame, facing away or hidden (its depth disagrees with the
    view's depth by more than ``tolerance``); else cos(angle to the viewer)^``sharpness``."""
    dev = points.device
    cam = view.camera
    w2c = torch.as_tensor(np.linalg.inv(cam.pose), dtype=torch.float32, device=dev)
    pc = points @ w2c[:3, :3].T + w2c[:3, 3]
    z = pc[:, 2]
    zs = torch.where(z > 1e-6, z, torch.ones_like(z))
    u = cam.fx * pc[:, 0] / zs + cam.cx
    v = cam.fy * pc[:, 1] / zs + cam.cy
    ok = (z > 1e-6) & (u >= 0) & (u < cam.width) & (v >= 0) & (v < cam.height)
    eye = torch.as_tensor(cam.pose[:3, 3], dtype=torch.float32, device=dev)
    to_eye = eye - points
    cos = (normals * to_eye).sum(1) / to_eye.norm(dim=1).clamp(min=1e-12)
    ok &= cos > 0.05
    if view.depth is not None:
        d = torch.as_tensor(
            np.nan_to_num(view.depth, nan=np.inf).astype(np.float32), device=dev
        ).reshape(-1)
        ui = u.long().clamp(0, cam.width - 1)
        vi = v.long().clamp(0, cam.height - 1)
        ok &= (d[vi * cam.width + ui] - z).abs() <= tolerance
    image = torch.as_tensor(view.image, dtype=torch.float32, device=dev)
    colours = torch.zeros((len(points), 3), device=dev)
    idx = torch.nonzero(ok).squeeze(1)
    if len(idx):
        colours[idx] = _sample(image, u[idx], v[idx])
    weight = torch.where(ok, cos.clamp(min=0) ** sharpness, torch.zeros_like(cos))
    return colours, weight


def fill_empty(texture: np.ndarray, filled: np.ndarray) -> np.ndarray:
    """Every texel outside ``filled`` copies its nearest filled texel (seam padding)."""
    from scipy.ndimage import distance_transform_edt

    if filled.all() or not filled.any():
        return texture
    _, (iy, ix) = distance_transform_edt(~filled, return_indices=True)
    return texture[iy, ix]


def bake(
    atlas: Atlas,
    views: list[BakeView],
    size: int,
    tolerance: float,
    vertex_colors: np.ndarray | None = None,
    device: str = "cpu",
    progress: Progress | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(size×size×3 float32 texture, size×size masks of the texels some view saw and of those
    on the surface). Surface texels no view saw take ``vertex_colors`` (per input vertex,
    interpolated) when given."""
    with torch.inference_mode():
        texels, points, normals, bary_fid = texel_surface(atlas, size, device)
        dev = points.device
        acc = torch.zeros((len(points), 3), device=dev)
        wsum = torch.zeros(len(points), device=dev)
        for i, view in enumerate(views):
            colours, weight = view_contribution(view, points, normals, tolerance)
            acc += colours * weight[:, None]
            wsum += weight
            if progress is not None:
                progress((i + 1) / len(views), f"baking view {i + 1}/{len(views)}")
        seen = wsum > 0
        colour = acc / wsum.clamp(min=1e-12)[:, None]
        if vertex_colors is not None and not bool(seen.all()):
            vc = torch.as_tensor(vertex_colors[atlas.source], dtype=torch.float32, device=dev)
            faces = torch.as_tensor(atlas.faces, device=dev)
            fid = bary_fid[:, 3].long()
            fallback = (bary_fid[:, :3, None] * vc[faces[fid]]).sum(1)
            colour = torch.where(seen[:, None], colour, fallback)
        tex = np.zeros((size * size, 3), np.float32)
        on_surface = np.zeros(size * size, bool)
        seen_mask = np.zeros(size * size, bool)
        t = texels.cpu().numpy()
        tex[t] = colour.clamp(0, 1).cpu().numpy()
        on_surface[t] = True
        seen_mask[t] = seen.cpu().numpy()
    usable = on_surface if vertex_colors is not None else seen_mask
    texture = fill_empty(tex.reshape(size, size, 3), usable.reshape(size, size))
    return texture, seen_mask.reshape(size, size), on_surface.reshape(size, size)
