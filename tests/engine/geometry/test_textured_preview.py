"""Textured meshes in the previews: the software path samples the texture per pixel, the
per-vertex form (for OpenGL) carries the texture's colours on the right faces, also across atlas
seams and on coarse meshes, and glTF materials (base colour factor, no image) are honoured."""

from __future__ import annotations

import io

import numpy as np
import pytest
import trimesh
from textured_cube import colour_of, textured_cube
from trimesh.visual.material import PBRMaterial

from fathom.engine.geometry.scene import RenderScene, render_torch
from fathom.engine.geometry.viewing import (
    OrbitCamera,
    geometry_from_value,
    render_geometry,
    sample_texture,
    textured_vertex_mesh,
)
from fathom.engine.types import Mesh

#: (azimuth, elevation) of an orbit camera → the cube face it looks at, (axis, sign).
FACING = [
    ((0, 0), (2, -1)),
    ((90, 0), (0, -1)),
    ((180, 0), (2, 1)),
    ((270, 0), (0, 1)),
    ((0, 89), (1, -1)),
    ((0, -89), (1, 1)),
]


def centre_patch(image: np.ndarray) -> np.ndarray:
    h, w = image.shape[:2]
    return image[h // 2 - 4 : h // 2 + 4, w // 2 - 4 : w // 2 + 4].reshape(-1, 3)


@pytest.mark.parametrize(("angles", "face"), FACING)
def test_software_preview_shows_each_face_its_texture_colour(angles, face) -> None:
    geom = geometry_from_value(Mesh(textured_cube()))
    assert geom.has_colors and geom.scene.texture is not None and "48×32 texture" in geom.summary
    cam = OrbitCamera(np.zeros(3), 4.0, *angles).camera(64, 48)
    patch = centre_patch(render_geometry(geom, cam))
    np.testing.assert_allclose(patch, np.tile(colour_of(*face), (len(patch), 1)), atol=1e-3)


def test_per_vertex_form_colours_every_face_from_its_own_tile() -> None:
    """The atlas tiles touch (their UVs end exactly on shared edges): a corner sampled on the
    edge would take the neighbour's colour; each face must carry only its own."""
    tm = textured_cube()
    verts, faces, colours = geometry_from_value(Mesh(tm), per_vertex=True).vertex_mesh
    assert len(verts) == 3 * len(faces) and len(faces) > len(tm.faces)  # split and subdivided
    centre = verts[faces].mean(1)  # a face's outward axis is where its centre is ±0.5
    axis = np.abs(centre).argmax(1)
    sign = np.sign(centre[np.arange(len(centre)), axis]).astype(int)
    want = np.array([colour_of(a, s) for a, s in zip(axis, sign, strict=True)])
    np.testing.assert_allclose(colours.reshape(-1, 3, 3), want[:, None].repeat(3, 1), atol=1e-5)
    for angles, face in FACING[:4]:
        cam = OrbitCamera(np.zeros(3), 4.0, *angles).camera(64, 48)
        out = render_torch(RenderScene(verts, faces, colours), cam)
        seen = out.image[out.covered & (np.abs(out.image - colour_of(*face)).max(2) > 1e-3)]
        assert len(seen) < 0.02 * out.covered.sum()  # only silhouette slivers of side faces
        np.testing.assert_allclose(centre_patch(out.image)[0], colour_of(*face), atol=1e-4)


def test_a_coarse_mesh_is_subdivided_so_vertex_colours_follow_the_texture() -> None:
    """One quad (two triangles) under a 2×2 checker: its four corners alone would blend to one
    colour; subdivided, each quarter of the quad shows its own."""
    quad = np.array([[-1, -1, 0], [1, -1, 0], [1, 1, 0], [-1, 1, 0]], np.float64)
    uv = np.array([[0, 1], [1, 1], [1, 0], [0, 0]], np.float64)  # image top-left at quad's (-1,-1)
    checker = np.zeros((8, 8, 3), np.float32)
    checker[:4, :4] = checker[4:, 4:] = (1.0, 0.2, 0.1)
    checker[:4, 4:] = checker[4:, :4] = (0.1, 0.3, 1.0)
    verts, faces, colours = textured_vertex_mesh(
        quad, np.array([[0, 1, 2], [0, 2, 3]]), uv, checker
    )
    cam = OrbitCamera(np.zeros(3), 3.0, 0.0, 0.0, 60.0).camera(64, 64)
    img = render_torch(RenderScene(verts, faces, colours), cam).image
    centre = np.array([32.0, 32.0])
    for (dx, dy), texel in (((-1, -1), (0, 0)), ((1, -1), (0, 7)), ((1, 1), (7, 7))):
        x, y = (centre + np.array([dx, dy]) * 8).astype(int)
        np.testing.assert_allclose(img[y, x], checker[texel], atol=0.02)
    assert np.allclose(sample_texture(checker, np.array([[0.1, 0.9]])), checker[0, 0])


def test_gltf_round_trip_keeps_the_texture_and_its_factor() -> None:
    """A .glb written and read back (a PBR material with a base-colour texture) previews the
    same; glTF's base colour factor tints it; a material without an image shows its colour."""
    buf = io.BytesIO(textured_cube().export(file_type="glb"))
    back = trimesh.load(buf, file_type="glb", force="mesh")
    geom = geometry_from_value(Mesh(back))
    cam = OrbitCamera(np.zeros(3), 4.0, 90.0, 0.0).camera(64, 48)
    np.testing.assert_allclose(centre_patch(render_geometry(geom, cam))[0], colour_of(0, -1), 2e-3)

    tinted = textured_cube()
    tinted.visual.material.baseColorFactor = np.array([255, 0, 255, 255], np.uint8)
    img = render_geometry(geometry_from_value(Mesh(tinted)), cam)
    np.testing.assert_allclose(centre_patch(img)[0], colour_of(0, -1) * [1, 0, 1], atol=2e-3)

    plain = textured_cube()
    plain.visual = trimesh.visual.TextureVisuals(
        uv=plain.visual.uv, material=PBRMaterial(baseColorFactor=[200, 100, 50, 255])
    )
    img = render_geometry(geometry_from_value(Mesh(plain)), cam)
    np.testing.assert_allclose(centre_patch(img)[0], np.array([200, 100, 50]) / 255, atol=2e-3)
