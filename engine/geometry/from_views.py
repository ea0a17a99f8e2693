"""A view set with cameras and depths to one textured mesh: fusion, UV atlas, baked texture.

What ``mesh.from_views`` runs. The views' depths are fused into one surface (the studio's TSDF,
or screened Poisson over the views' oriented points), small floating pieces are dropped, the
surface gets a UV atlas and a texture baked from the views (``uv_bake``), and the result is a
trimesh with a PBR base-colour texture, which trimesh writes as a .glb that Blender and browser
glTF viewers open. Depth a generator or estimator gives only up to scale is turned into
object-centred metric depth by ``object_depth`` (the cameras of a view set look at the origin).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from fathom.engine.errors import LibraryError
from fathom.engine.geometry import projection, tsdf, uv_bake
from fathom.engine.types import RGBD, Camera, Depth, PointCloud, Views

METHODS = ("tsdf", "poisson")


@dataclass
class FromViewsResult:
    mesh: Any  # trimesh.Trimesh with TextureVisuals (uv + PBR baseColorTexture)
    points: PointCloud  # the fused surface's vertices with their colours
    voxel: float  # the voxel size used (metres, or the views' units)
    seen: float  # fraction of the surface's texels at least one view saw


def metric_views(views: Views) -> list[RGBD]:
    """The views as metric RGBDs, or a LibraryError saying what is missing."""
    if views.depths is None:
        raise LibraryError(
            "these views carry no depth", "estimate depth first (depth.estimate)", "views"
        )
    for i, d in enumerate(views.depths):
        if d.kind != "metric":
            raise LibraryError(
                f"view {i} has relative depth",
                "convert it with depth.to_metric, or let from_views estimate object depth",
                "views",
            )
    if not any(d.valid().any() for d in views.depths):
        raise LibraryError(
            "no view has a valid depth sample (all empty, NaN or not positive)",
            "check the depth source of the views",
            "views",
        )
    return [views.rgbd(i) for i in range(len(views))]


def auto_voxel(views: list[RGBD], resolution: int) -> float:
    """The voxel that puts ``resolution`` voxels across the largest extent of what the views
    see (the object, when the background carries no depth), but never smaller than a pixel's
    footprint at the first view's median depth: finer voxels than the views resolve alias
    their depth edges into specks."""
    lo, hi = tsdf.bounds(views)
    v = views[0]
    assert v.camera is not None
    d = v.depth.data[v.depth.valid()]
    footprint = float(np.median(d)) / max(v.camera.fx, v.camera.fy) if len(d) else 0.0
    return max(float(np.max(hi - lo)) / max(8, int(resolution)), footprint)


def object_depth(relative: np.ndarray, camera: Camera, foreground: np.ndarray) -> Depth:
    """Metric depth for a view of an object at the origin from depth known only up to an
    increasing map (small = near): the object is taken as a ball whose silhouette spans the
    foreground's extent at the camera's distance D, so its radius is r = D·sin(half-angle) and
    its visible side spans depths [D - r, D - r²/D] (the nearest point to the silhouette's
    rim); the foreground's depths are spread linearly over that span. Exact for a sphere seen
    with exact relative depth; a heuristic for other objects, good enough to fuse generated
    views whose cameras look at the origin. The background gets no depth."""
    dist = float(np.linalg.norm(camera.pose[:3, 3]))
    foreground = foreground & np.isfinite(relative)
    if dist <= 0 or not foreground.any():
        raise LibraryError(
            "the view has no foreground or its camera sits at the origin",
            "give the view an alpha mask or a camera on an orbit (views.make)",
            "views",
        )
    u, v = projection.pixel_grid(camera.width, camera.height)
    tan_x = np.abs(u[foreground] + 0.5 * np.sign(u[foreground] - camera.cx) - camera.cx) / camera.fx
    tan_y = np.abs(v[foreground] + 0.5 * np.sign(v[foreground] - camera.cy) - camera.cy) / camera.fy
    radius = dist * math.sin(math.atan(float(max(tan_x.max(), tan_y.max()))))
    near, far = dist - radius, dist - radius * radius / dist
    rel = relative[foreground]
    lo, hi = float(np.min(rel)), float(np.max(rel))
    t = (relative - lo) / (hi - lo) if hi > lo else np.zeros_like(relative)
    depth = near + (far - near) * t
    return Depth(np.where(foreground, depth, np.inf).astype(np.float32), kind="metric")


def _main_pieces(tm: Any, keep: np.ndarray, min_fraction: float = 0.02) -> np.ndarray:
    """``keep`` less the faces in connected pieces (through kept faces) holding fewer than
    ``min_fraction`` of the kept faces: fusion specks."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    adj = np.asarray(tm.face_adjacency)
    adj = adj[keep[adj[:, 0]] & keep[adj[:, 1]]]
    n = len(keep)
    graph = coo_matrix((np.ones(len(adj)), (adj[:, 0], adj[:, 1])), shape=(n, n))
    _, labels = connected_components(graph, directed=False)
    counts = np.bincount(labels[keep], minlength=labels.max() + 1)
    return keep & (counts[labels] >= max(1.0, min_fraction * keep.sum()))


def _support(tm: Any, views: list[RGBD], tolerance: float) -> np.ndarray:
    """Per face and view (F×V bool): the face's centre lies within ``tolerance`` of the depth
    that view measured where the centre projects, i.e. that view saw this face."""
    cen = torch.from_numpy(np.array(tm.triangles_center, np.float32))
    out = torch.zeros((len(cen), len(views)), dtype=torch.bool)
    for k, v in enumerate(views):
        c = v.camera
        assert c is not None
        w2c = torch.as_tensor(np.linalg.inv(c.pose), dtype=torch.float32)
        p = cen @ w2c[:3, :3].T + w2c[:3, 3]
        z = p[:, 2].clamp(min=1e-9)
        u, vv = c.fx * p[:, 0] / z + c.cx, c.fy * p[:, 1] / z + c.cy
        ok = (p[:, 2] > 1e-9) & (u >= 0) & (u < c.width) & (vv >= 0) & (vv < c.height)
        depth = torch.as_tensor(v.depth.data).reshape(-1)
        pix = vv.long().clamp(0, c.height - 1) * c.width + u.long().clamp(0, c.width - 1)
        out[:, k] = ok & ((depth[pix] - p[:, 2]).abs() <= tolerance)
    return out.numpy()


def _clean(tm: Any, views: list[RGBD], tolerance: float) -> Any:
    """Keep the faces some view saw (a zero crossing fusion made where no view looked, such as
    the edge of the observed band, is not the object), drop specks, and wind the faces so they
    face the cameras that saw them (glTF viewers cull back faces)."""
    import trimesh

    seen = _support(tm, views, tolerance)
    keep = _main_pieces(tm, np.asarray(seen.any(axis=1), bool))
    faces = np.asarray(tm.faces)
    score = 0.0
    for k, v in enumerate(views):
        assert v.camera is not None
        sel = keep & seen[:, k]
        to_eye = v.camera.pose[:3, 3] - tm.triangles_center[sel]
        score += float(np.sum(np.sign(np.einsum("ij,ij->i", tm.face_normals[sel], to_eye))))
    faces = faces[keep][:, ::-1] if score < 0 else faces[keep]
    used = np.unique(faces)
    remap = np.zeros(len(tm.vertices), np.int64)
    remap[used] = np.arange(len(used))
    colours = np.asarray(tm.visual.vertex_colors)[used]
    return trimesh.Trimesh(
        np.asarray(tm.vertices)[used], remap[faces], vertex_colors=colours, process=False
    )


def fuse(views: list[RGBD], voxel: float, method: str, truncation: float, device: str) -> Any:
    """The views' surface as a vertex-coloured trimesh (TSDF or Poisson)."""
    if method not in METHODS:
        raise LibraryError(f"unknown method {method!r}", f"use one of {METHODS}", "method")
    tm = tsdf.fuse_tsdf(views, voxel, truncation, device) if method == "tsdf" else None
    if tm is None:
        tm = _poisson(views, voxel)
    if len(tm.faces) == 0:
        raise LibraryError(
            "fusion produced an empty surface",
            "check that the views overlap and their cameras are right",
            "views",
        )
    tm = _clean(tm, views, 2.0 * voxel)
    if len(tm.faces) == 0:
        raise LibraryError(
            "no fused surface agrees with the views' depths",
            "check the cameras (poses, field of view) against the depths",
            "views",
        )
    return tm


def decimate(tm: Any, faces: int) -> Any:
    """Quadric decimation to about ``faces`` triangles (0 or more than there are: unchanged),
    keeping vertex colours (each new vertex takes its nearest old vertex's): the atlas's cost
    grows faster than linearly with the triangles, and the texture carries the detail."""
    import trimesh
    from scipy.spatial import cKDTree

    if faces <= 0 or len(tm.faces) <= faces:
        return tm
    out = tm.simplify_quadric_decimation(face_count=int(faces))
    vc = np.asarray(tm.visual.vertex_colors)
    nearest = cKDTree(np.asarray(tm.vertices)).query(np.asarray(out.vertices))[1]
    return trimesh.Trimesh(out.vertices, out.faces, vertex_colors=vc[nearest], process=False)


def _oriented_points(views: list[RGBD]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """World points, normals (facing their camera) and colours of every valid depth sample."""
    pts, nrm, col = [], [], []
    for v in views:
        c = v.camera
        assert c is not None
        p = projection.backproject(v.depth.data, c.fx, c.fy, c.cx, c.cy, c.pose).reshape(-1, 3)
        n = projection.depth_normals(v.depth.data, c.fx, c.fy, c.cx, c.cy).reshape(-1, 3)
        n = n @ c.pose[:3, :3].T
        ok = np.all(np.isfinite(p), 1) & np.all(np.isfinite(n), 1)
        pts.append(p[ok])
        nrm.append(n[ok])
        col.append(v.image.rgb().reshape(-1, 3)[ok])
    return np.concatenate(pts), np.concatenate(nrm), np.concatenate(col)


def _poisson(views: list[RGBD], voxel: float) -> Any:
    """Screened Poisson (Open3D) over the views' oriented points, trimmed to where they are."""
    from fathom.engine.geometry.interop import _o3d, o3d_to_trimesh

    o3d = _o3d()
    p, n, c = _oriented_points(views)
    pcd = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(p.astype(np.float64)))
    pcd.normals = o3d.utility.Vector3dVector(n.astype(np.float64))
    pcd.colors = o3d.utility.Vector3dVector(np.clip(c, 0, 1).astype(np.float64))
    pcd = pcd.voxel_down_sample(voxel)
    extent = float(np.max(p.max(0) - p.min(0)))
    depth = int(min(11, max(5, math.ceil(math.log2(max(extent / voxel, 2.0))))))
    mesh, dens = o3d.geometry.TriangleMesh.create_from_point_cloud_poisson(pcd, depth=depth)
    dens = np.asarray(dens)
    if len(dens):
        mesh.remove_vertices_by_mask(dens < np.quantile(dens, 0.02))
    box = o3d.geometry.AxisAlignedBoundingBox(p.min(0) - voxel, p.max(0) + voxel)
    return o3d_to_trimesh(mesh.crop(box))


def textured(
    tm: Any,
    views: list[uv_bake.BakeView],
    size: int,
    tolerance: float,
    device: str = "cpu",
    progress: uv_bake.Progress | None = None,
) -> tuple[Any, float]:
    """(the mesh with a UV atlas and a texture baked from ``views``, fraction of texels seen)."""
    import trimesh
    from PIL import Image as PILImage

    atlas = uv_bake.uv_atlas(np.asarray(tm.vertices), np.asarray(tm.faces), size)
    vc = None
    if getattr(tm.visual, "kind", None) == "vertex":
        vc = np.asarray(tm.visual.vertex_colors)[:, :3].astype(np.float32) / 255.0
    tex, seen, surface = uv_bake.bake(atlas, views, size, tolerance, vc, device, progress)
    frac = float(seen.sum()) / max(1, int(surface.sum()))
    image = PILImage.fromarray((np.clip(tex, 0, 1) * 255).round().astype(np.uint8))
    material = trimesh.visual.material.PBRMaterial(
        baseColorTexture=image, metallicFactor=0.0, roughnessFactor=1.0, doubleSided=False
    )
    visual = trimesh.visual.TextureVisuals(uv=atlas.uv, material=material)
    out = trimesh.Trimesh(atlas.vertices, atlas.faces, visual=visual, process=False)
    return out, frac


def from_views(
    views: Views,
    voxel: float = 0.0,
    resolution: int = 128,
    method: str = "tsdf",
    texture_size: int = 1024,
    faces: int = 20000,
    truncation: float = 4.0,
    device: str = "cpu",
    progress: uv_bake.Progress | None = None,
) -> FromViewsResult:
    """One textured mesh from a view set with metric depths (see the module's docstring)."""
    rgbd = metric_views(views)
    vox = voxel if voxel > 0 else auto_voxel(rgbd, resolution)
    if progress is not None:
        progress(0.05, f"fusing {len(rgbd)} views ({method}, voxel {vox:.4g})")
    tm = decimate(fuse(rgbd, vox, method, truncation, device), faces)
    vc = np.asarray(tm.visual.vertex_colors)[:, :3].astype(np.float32) / 255.0
    points = PointCloud(np.asarray(tm.vertices, np.float32), vc)
    if progress is not None:
        progress(0.4, f"UV atlas for {len(tm.faces)} triangles")
    bake_views = [uv_bake.BakeView(v.image.rgb(), v.camera, v.depth.data) for v in rgbd if v.camera]

    def sub(f: float, msg: str) -> None:
        if progress is not None:
            progress(0.5 + 0.5 * f, msg)

    mesh, seen = textured(tm, bake_views, texture_size, 2.0 * vox, device, sub)
    return FromViewsResult(mesh, points, vox, seen)
