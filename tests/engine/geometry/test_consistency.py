"""The view-consistency metric on exact renders of known shapes: one object seen from six
cameras agrees with itself (error ≈ 0); the same images under the wrong cameras do not."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import trimesh

from fathom.engine.diffusion.joint_views import view_cameras
from fathom.engine.geometry.consistency import (
    reproject_pair,
    reprojection_error,
    sphere_proxy,
    views_consistency,
)
from fathom.engine.geometry.raster import rasterize, shade_vertex_colors, to_camera
from fathom.engine.types import Depth, Image, Views


def _shape(name: str) -> trimesh.Trimesh:
    if name == "sphere":
        return trimesh.creation.icosphere(subdivisions=4, radius=0.8)
    box = trimesh.creation.box(extents=(1.0, 0.8, 0.9)).subdivide().subdivide()
    box.apply_transform(trimesh.transformations.euler_matrix(0.3, 0.5, 0.1))
    return box


def _render(mesh: trimesh.Trimesh, size: int = 64) -> tuple[list, list, list]:
    """Colour (a smooth function of position: the same surface point has one colour from
    every side) and z depth of ``mesh`` from the six hexa-view cameras, with the studio's
    rasterizer."""
    cams = view_cameras(size, size, 30.0)
    verts = torch.tensor(mesh.vertices, dtype=torch.float32)
    faces = torch.tensor(mesh.faces, dtype=torch.int64)
    colors = torch.tensor(0.5 + 0.5 * np.sin(2.5 * mesh.vertices + [0, 1, 2]), dtype=torch.float32)
    images, depths = [], []
    for c in cams:
        frags = rasterize(to_camera(verts, c.pose), faces, c.fx, c.fy, c.cx, c.cy, size, size)
        images.append(shade_vertex_colors(frags, faces, colors).numpy())
        depths.append(frags.depth.numpy())
    return images, depths, cams


@pytest.mark.parametrize("shape", ["sphere", "box"])
def test_exact_renders_agree_and_shuffled_views_do_not(shape: str) -> None:
    images, depths, cams = _render(_shape(shape))
    good = reprojection_error(images, depths, cams)
    # Every view shares surface with its four ring/pole neighbours.
    assert good.pixels > 1000 and len(good.pairs) >= 12
    assert good.mae < 0.01 and good.psnr > 35, (good.mae, good.psnr)
    shuffled = images[1:] + images[:1]  # each camera gets its neighbour's picture
    bad = reprojection_error(shuffled, depths, cams)
    assert bad.mae > 10 * good.mae and bad.mae > 0.05, (bad.mae, good.mae)
    assert bad.psnr < good.psnr - 15


def test_views_and_pairs() -> None:
    images, depths, cams = _render(_shape("sphere"), size=48)
    views = Views([Image(im) for im in images], cams, [Depth(d, "metric") for d in depths])
    res = views_consistency(views)
    assert res.mae == pytest.approx(reprojection_error(images, depths, cams).mae)
    # Front (0) and back (2) see opposite caps of the sphere: nothing in common.
    a, _ = reproject_pair(images[0], depths[0], cams[0], images[2], depths[2], cams[2])
    assert len(a) == 0 and (0, 2) not in res.pairs
    with pytest.raises(ValueError, match="no depth"):
        views_consistency(Views(views.images, cams))


def test_sphere_proxy_matches_a_rendered_sphere() -> None:
    _, depths, cams = _render(trimesh.creation.icosphere(subdivisions=5, radius=1.0))
    proxy = sphere_proxy(cams, 1.0)
    for d, p in zip(depths, proxy, strict=True):
        both = np.isfinite(d) & np.isfinite(p.data)
        # The icosphere is inscribed: within its chord error of the true sphere.
        assert both.sum() > 0.9 * np.isfinite(p.data).sum()
        assert np.abs(d[both] - p.data[both]).max() < 0.01
