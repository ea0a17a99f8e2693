"""A pure-torch z-buffer rasterizer: meshes and point clouds to colour, depth and coverage.

It needs no display and no OpenGL, runs on CPU or GPU, and is the reference the OpenGL path is
tested against. Triangles are grouped by screen-space size so each group is one batched tensor
operation; the z-buffer is a scatter-min. Conventions are those of ``engine.geometry``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

#: Upper bound on candidate samples per batched step; keeps memory flat for big triangles.
MAX_SAMPLES = 1 << 22


@dataclass
class Fragments:
    """Per-pixel result of rasterization: winning face (-1 for none), perspective-correct
    barycentrics and depth along the camera axis (inf where nothing was hit)."""

    face: torch.Tensor  # H×W int64
    bary: torch.Tensor  # H×W×3 float32
    depth: torch.Tensor  # H×W float32

    @property
    def covered(self) -> torch.Tensor:
        return self.face >= 0


def to_camera(vertices: torch.Tensor, pose: np.ndarray) -> torch.Tensor:
    """World → camera coordinates with a camera-to-world ``pose``."""
    w2c = torch.as_tensor(np.linalg.inv(pose), dtype=vertices.dtype, device=vertices.device)
    return vertices @ w2c[:3, :3].T + w2c[:3, 3]


def rasterize(
    verts_cam: torch.Tensor,
    faces: torch.Tensor,
    fx: float,
    fy: float,
    cx: float,
    cy: float,
    width: int,
    height: int,
    near: float = 1e-3,
) -> Fragments:
    dev = verts_cam.device
    npix = width * height
    zbuf = torch.full((npix,), float("inf"), device=dev)
    face_buf = torch.full((npix,), -1, dtype=torch.int64, device=dev)
    if len(faces) == 0 or len(verts_cam) == 0:
        return _finish(face_buf, zbuf, verts_cam, faces, fx, fy, cx, cy, width, height)
    z = verts_cam[:, 2]
    zs = torch.where(z > near, z, torch.ones_like(z))
    sx = fx * verts_cam[:, 0] / zs + cx
    sy = fy * verts_cam[:, 1] / zs + cy
    f = faces
    ok = (z[f] > near).all(dim=1)
    fx3, fy3 = sx[f], sy[f]  # F×3 screen coords
    x0 = torch.ceil(fx3.min(1).values - 0.5).clamp(min=0)
    x1 = torch.floor(fx3.max(1).values - 0.5).clamp(max=width - 1)
    y0 = torch.ceil(fy3.min(1).values - 0.5).clamp(min=0)
    y1 = torch.floor(fy3.max(1).values - 0.5).clamp(max=height - 1)
    area = _edge(fx3[:, 0], fy3[:, 0], fx3[:, 1], fy3[:, 1], fx3[:, 2], fy3[:, 2])
    ok &= (x1 >= x0) & (y1 >= y0) & (area.abs() > 1e-12)
    ok &= torch.isfinite(fx3).all(1) & torch.isfinite(fy3).all(1)
    idx = torch.nonzero(ok).squeeze(1)
    if len(idx) == 0:
        return _finish(face_buf, zbuf, verts_cam, faces, fx, fy, cx, cy, width, height)
    size = torch.maximum(x1[idx] - x0[idx], y1[idx] - y0[idx]) + 1
    # Size classes 1, 2, 4, ... pixels: each class is enumerated on a k×k grid.
    cls = torch.ceil(torch.log2(size.float())).long()
    inv_z = 1.0 / zs
    pix_all, z_all, f_all = [], [], []
    for c in torch.unique(cls).tolist():
        k = 1 << int(c)
        members = idx[cls == c]
        per = max(1, MAX_SAMPLES // (k * k))
        for start in range(0, len(members), per):
            sel = members[start : start + per]
            out = _samples(sel, k, f, fx3, fy3, area, x0, y0, x1, y1, inv_z, width, dev)
            if out is not None:
                pix_all.append(out[0])
                z_all.append(out[1])
                f_all.append(out[2])
    if pix_all:
        pix = torch.cat(pix_all)
        zc = torch.cat(z_all)
        fc = torch.cat(f_all)
        zbuf.scatter_reduce_(0, pix, zc, reduce="amin")
        win = zc <= zbuf[pix]
        face_buf[pix[win]] = fc[win]
    return _finish(face_buf, zbuf, verts_cam, faces, fx, fy, cx, cy, width, height)


def _edge(
    ax: torch.Tensor,
    ay: torch.Tensor,
    bx: torch.Tensor,
    by: torch.Tensor,
    px: torch.Tensor,
    py: torch.Tensor,
) -> torch.Tensor:
    return (bx - ax) * (py - ay) - (by - ay) * (px - ax)


def _samples(
    sel: torch.Tensor,
    k: int,
    f: torch.Tensor,
    fx3: torch.Tensor,
    fy3: torch.Tensor,
    area: torch.Tensor,
    x0: torch.Tensor,
    y0: torch.Tensor,
    x1: torch.Tensor,
    y1: torch.Tensor,
    inv_z: torch.Tensor,
    width: int,
    dev: torch.device,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None:
    off = torch.arange(k, device=dev, dtype=fx3.dtype)
    px = x0[sel][:, None, None] + off[None, None, :]  # n×1×k
    py = y0[sel][:, None, None] + off[None, :, None]  # n×k×1
    inside_box = (px <= x1[sel][:, None, None]) & (py <= y1[sel][:, None, None])
    cx_, cy_ = px + 0.5, py + 0.5
    X, Y = fx3[sel], fy3[sel]  # noqa: N806 - the triangle's screen x and y, as in the paper
    a = area[sel][:, None, None]
    w0 = (
        _edge(
            X[:, 1, None, None],
            Y[:, 1, None, None],
            X[:, 2, None, None],
            Y[:, 2, None, None],
            cx_,
            cy_,
        )
        / a
    )
    w1 = (
        _edge(
            X[:, 2, None, None],
            Y[:, 2, None, None],
            X[:, 0, None, None],
            Y[:, 0, None, None],
            cx_,
            cy_,
        )
        / a
    )
    w2 = 1.0 - w0 - w1
    eps = -1e-6
    inside = inside_box & (w0 >= eps) & (w1 >= eps) & (w2 >= eps)
    if not bool(inside.any()):
        return None
    iz = inv_z[f[sel]]  # n×3
    zinv = w0 * iz[:, 0, None, None] + w1 * iz[:, 1, None, None] + w2 * iz[:, 2, None, None]
    n_idx, yy, xx = torch.nonzero(inside, as_tuple=True)
    pix = (py.expand_as(inside)[n_idx, yy, xx] * width + px.expand_as(inside)[n_idx, yy, xx]).long()
    zc = 1.0 / zinv[n_idx, yy, xx]
    return pix, zc.to(torch.float32), sel[n_idx]


def _finish(
    face_buf: torch.Tensor,
    zbuf: torch.Tensor,
    verts_cam: torch.Tensor,
    faces: torch.Tensor,
    fx: float,
    fy: float,
    cx: float,
    cy: float,
    width: int,
    height: int,
) -> Fragments:
    """Perspective-correct barycentrics of each pixel's winning face."""
    dev = face_buf.device
    bary = torch.zeros((width * height, 3), device=dev)
    hit = torch.nonzero(face_buf >= 0).squeeze(1)
    if len(hit):
        fsel = faces[face_buf[hit]]
        v = verts_cam[fsel]  # n×3×3
        z = v[..., 2]
        sx = fx * v[..., 0] / z + cx
        sy = fy * v[..., 1] / z + cy
        px = (hit % width).to(sx.dtype) + 0.5
        py = (hit // width).to(sx.dtype) + 0.5
        a = _edge(sx[:, 0], sy[:, 0], sx[:, 1], sy[:, 1], sx[:, 2], sy[:, 2])
        w0 = _edge(sx[:, 1], sy[:, 1], sx[:, 2], sy[:, 2], px, py) / a
        w1 = _edge(sx[:, 2], sy[:, 2], sx[:, 0], sy[:, 0], px, py) / a
        w = torch.stack([w0, w1, 1 - w0 - w1], 1) / z
        bary[hit] = (w / w.sum(1, keepdim=True)).to(torch.float32)
    return Fragments(
        face_buf.view(height, width), bary.view(height, width, 3), zbuf.view(height, width)
    )


def shade_vertex_colors(
    frags: Fragments,
    faces: torch.Tensor,
    colors: torch.Tensor,
    background: tuple[float, ...] = (0.0, 0.0, 0.0),
) -> torch.Tensor:
    """H×W×C image: barycentric blend of per-vertex colours, background where uncovered."""
    h, w = frags.face.shape
    c = colors.shape[1]
    out = torch.empty((h, w, c), device=colors.device, dtype=torch.float32)
    out[:] = torch.tensor(background[:c], device=colors.device, dtype=torch.float32)
    cov = frags.covered
    if bool(cov.any()):
        fc = colors[faces[frags.face[cov]]].float()  # n×3×C
        out[cov] = (frags.bary[cov][..., None] * fc).sum(1)
    return out


def shade_texture(
    frags: Fragments,
    faces: torch.Tensor,
    uv: torch.Tensor,
    texture: torch.Tensor,
    background: tuple[float, ...] = (0.0, 0.0, 0.0),
) -> torch.Tensor:
    """Bilinear texture lookup of interpolated UVs (uv origin bottom-left, as in glTF/OBJ)."""
    h, w = frags.face.shape
    c = texture.shape[2]
    out = torch.empty((h, w, c), device=texture.device, dtype=torch.float32)
    out[:] = torch.tensor(background[:c], device=texture.device, dtype=torch.float32)
    cov = frags.covered
    if bool(cov.any()):
        fuv = uv[faces[frags.face[cov]]].float()
        puv = (frags.bary[cov][..., None] * fuv).sum(1)
        grid = torch.stack([puv[:, 0] * 2 - 1, (1 - puv[:, 1]) * 2 - 1], -1)[None, None]
        tex = texture.permute(2, 0, 1)[None].float()
        sampled = torch.nn.functional.grid_sample(
            tex, grid, mode="bilinear", padding_mode="border", align_corners=False
        )
        out[cov] = sampled[0, :, 0].T
    return out


def splat_points(
    points_cam: torch.Tensor,
    colors: torch.Tensor,
    fx: float,
    fy: float,
    cx: float,
    cy: float,
    width: int,
    height: int,
    radius: int = 1,
    near: float = 1e-3,
    background: tuple[float, ...] = (0.0, 0.0, 0.0),
) -> tuple[torch.Tensor, torch.Tensor]:
    """Z-buffered square splats of ``2·radius+1`` pixels; returns (H×W×C image, H×W depth)."""
    dev = points_cam.device
    z = points_cam[:, 2]
    keep = z > near
    p, col, z = points_cam[keep], colors[keep].float(), z[keep]
    u = torch.floor(fx * p[:, 0] / z + cx).long()
    v = torch.floor(fy * p[:, 1] / z + cy).long()
    zbuf = torch.full((width * height,), float("inf"), device=dev)
    pix_l, z_l, i_l = [], [], []
    ar = torch.arange(len(z), device=dev)
    for dy in range(-radius, radius + 1):
        for dx in range(-radius, radius + 1):
            uu, vv = u + dx, v + dy
            ok = (uu >= 0) & (uu < width) & (vv >= 0) & (vv < height)
            pix_l.append((vv * width + uu)[ok])
            z_l.append(z[ok])
            i_l.append(ar[ok])
    c = col.shape[1]
    img = torch.empty((width * height, c), device=dev)
    img[:] = torch.tensor(background[:c], device=dev, dtype=torch.float32)
    if pix_l:
        pix, zc, ic = torch.cat(pix_l), torch.cat(z_l), torch.cat(i_l)
        zbuf.scatter_reduce_(0, pix, zc.float(), reduce="amin")
        win = zc <= zbuf[pix]
        img[pix[win]] = col[ic[win]]
    return img.view(height, width, c), zbuf.view(height, width)
