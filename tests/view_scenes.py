"""Known shapes seen from six cameras, rendered exactly by the studio's rasteriser: the ground
truth `mesh.from_views` is checked against (tests and bench/bench_from_views.py share it)."""

from __future__ import annotations

import numpy as np
import trimesh
from scipy.spatial import cKDTree

from fathom.engine.geometry import projection, scene
from fathom.engine.types import Depth, Image, Mesh, Views

#: Front, right, back, left on the equator, then above and below: the hexa-view layout.
AZIMUTHS = [0.0, 90.0, 180.0, 270.0, 0.0, 0.0]
ELEVATIONS = [0.0, 0.0, 0.0, 0.0, 89.9, -89.9]


def shape(kind: str) -> tuple[trimesh.Trimesh, np.ndarray]:
    """A sphere of radius 0.5, a 0.8×0.6×0.5 box, or a ball on a crate (the demo room's
    objects), about the origin, with smooth per-vertex colours."""
    if kind == "sphere":
        m = trimesh.creation.icosphere(subdivisions=5, radius=0.5)
    elif kind == "box":
        m = trimesh.creation.box(extents=(0.8, 0.6, 0.5))
        for _ in range(4):  # fine vertices, so the colour field is sampled densely
            m = m.subdivide()
    elif kind == "pair":  # the demo room's objects: a ball resting on a crate (occlusion)
        crate = trimesh.creation.box(extents=(0.6, 0.4, 0.6))
        crate.apply_translation((0.0, 0.2, 0.0))
        for _ in range(4):
            crate = crate.subdivide()
        ball = trimesh.creation.icosphere(subdivisions=4, radius=0.25)
        ball.apply_translation((0.1, -0.25, 0.05))  # y is down: on top, touching
        m = trimesh.util.concatenate([crate, ball])
    else:
        raise ValueError(kind)
    v = np.asarray(m.vertices)
    col = 0.5 + 0.45 * np.sin(v * np.array([7.0, 5.0, 9.0]) + np.array([0.0, 1.0, 2.0]))
    return trimesh.Trimesh(m.vertices, m.faces, process=False), col.astype(np.float32)


def render_views(mesh: trimesh.Trimesh, colors: np.ndarray, size: int) -> Views:
    """Six exact RGB + metric depth views (background: no depth) at distance 2, 40° fov."""
    cams = projection.ring_cameras(AZIMUTHS, ELEVATIONS, 2.0, 40.0, (size, size))
    sc = scene.RenderScene(
        np.asarray(mesh.vertices, np.float32), np.asarray(mesh.faces, np.int64), colors
    )
    images, depths = [], []
    for c in cams:
        out = scene.render_torch(sc, c)
        images.append(Image(out.image))
        depths.append(Depth(out.depth, kind="metric"))
    return Views(images, cams, depths)


def chamfer(a: trimesh.Trimesh, b: trimesh.Trimesh, n: int = 20000) -> float:
    """Symmetric mean nearest-surface distance between ``n`` area-uniform samples of each."""
    pa = trimesh.sample.sample_surface(a, n, seed=0)[0]
    pb = trimesh.sample.sample_surface(b, n, seed=1)[0]
    return 0.5 * float(cKDTree(pb).query(pa)[0].mean() + cKDTree(pa).query(pb)[0].mean())


def psnr_per_view(mesh: trimesh.Trimesh, views: Views, where: str = "object") -> list[float]:
    """PSNR (dB) of the textured mesh rendered back from each view's camera against the view,
    over the pixels the true object covers (``where="object"``: silhouette errors count) or
    over those both the object and the mesh cover (``"both"``: the texture alone)."""
    sc = scene.scene_from_mesh(Mesh(mesh))
    out = []
    for im, cam, d in zip(views.images, views.cameras, views.depths or [], strict=True):
        rendered = scene.render_torch(sc, cam)
        got = rendered.image
        cov = np.isfinite(d.data)
        if where == "both":
            cov &= rendered.covered
        mse = float(np.mean((got[cov] - im.rgb()[cov]) ** 2))
        out.append(10 * np.log10(1.0 / max(mse, 1e-12)))
    return out
