"""Make the photo the photo-to-3D example starts from: a small toy house, cut out on a
transparent background, as image-to-views models want their input.

Writes object/house.png (320×320 RGBA) next to this script. The house is modelled here (walls,
a pitched roof, a door, windows, a chimney) and drawn by the studio's own torch rasterizer with
a soft light, so nobody else's picture is in the repository.

Run: python assets/make_object_photo.py   (deterministic; about a second on a CPU)
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import trimesh
from PIL import Image

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from fathom.engine.geometry import projection  # noqa: E402
from fathom.engine.geometry.scene import RenderScene, render_torch  # noqa: E402
from fathom.engine.types import Camera  # noqa: E402

SIZE = 320
# OpenCV axes: y down, so "up" is -y; the house stands on y = 0.5 and fits a unit sphere.
PARTS = [  # (extents, centre, colour)
    ((1.0, 0.6, 0.8), (0.0, 0.2, 0.0), (0.93, 0.86, 0.70)),  # walls
    ((0.2, 0.34, 0.02), (0.0, 0.33, -0.41), (0.45, 0.26, 0.14)),  # door (front, -z)
    ((0.2, 0.18, 0.02), (-0.3, 0.1, -0.41), (0.45, 0.65, 0.85)),  # front windows
    ((0.2, 0.18, 0.02), (0.3, 0.1, -0.41), (0.45, 0.65, 0.85)),
    ((0.02, 0.18, 0.25), (0.51, 0.1, 0.0), (0.45, 0.65, 0.85)),  # side window (+x)
    ((0.12, 0.35, 0.12), (0.28, -0.5, 0.15), (0.55, 0.30, 0.25)),  # chimney
]
ROOF = (0.78, 0.20, 0.16)


def roof() -> trimesh.Trimesh:
    """A pitched roof (a triangular prism) over the walls, ridge along x."""
    w, d, h, y0 = 0.6, 0.5, 0.45, -0.1
    v = np.array(
        [[-w, y0, -d], [w, y0, -d], [-w, y0 - h, 0], [w, y0 - h, 0], [-w, y0, d], [w, y0, d]],
        float,
    )
    f = [[0, 1, 3], [0, 3, 2], [2, 3, 5], [2, 5, 4], [0, 2, 4], [1, 5, 3], [0, 4, 5], [0, 5, 1]]
    m = trimesh.Trimesh(v, f, process=False)
    m.fix_normals()
    return m


def house() -> tuple[trimesh.Trimesh, np.ndarray]:
    """The house's triangles (faces split, flat colours) and one colour per face."""
    meshes, colours = [], []
    for extents, centre, colour in PARTS:
        box = trimesh.creation.box(extents=extents)
        box.apply_translation(centre)
        meshes.append(box)
        colours.append(np.tile(colour, (len(box.faces), 1)))
    meshes.append(roof())
    colours.append(np.tile(ROOF, (len(meshes[-1].faces), 1)))
    mesh = trimesh.util.concatenate(meshes)
    return mesh, np.concatenate(colours)


def shaded(mesh: trimesh.Trimesh, face_colours: np.ndarray, eye: np.ndarray) -> RenderScene:
    """Flat colours lit by a key light from above-left plus ambient: one vertex per face
    corner, so faces keep their own shade."""
    light = np.array([-0.4, -0.8, -0.45])
    light /= np.linalg.norm(light)
    normals = mesh.face_normals
    lit = 0.45 + 0.55 * np.clip(normals @ light, 0, 1)
    # Faces turned to the camera a little brighter, so walls at grazing angles read.
    view = (mesh.triangles_center - eye) / np.linalg.norm(mesh.triangles_center - eye, axis=1)[
        :, None
    ]
    lit *= 0.85 + 0.15 * np.clip(-(normals * view).sum(1), 0, 1)
    cols = np.clip(face_colours * lit[:, None], 0, 1)
    verts = mesh.vertices[mesh.faces].reshape(-1, 3).astype(np.float32)
    faces = np.arange(len(verts), dtype=np.int64).reshape(-1, 3)
    return RenderScene(verts, faces, np.repeat(cols, 3, axis=0).astype(np.float32))


def main() -> None:
    mesh, colours = house()
    pose = projection.orbit_pose(-30.0, 20.0, 3.6)
    cam = Camera.from_fov(SIZE, SIZE, 35.0, pose)
    out = render_torch(shaded(mesh, colours, pose[:3, 3]), cam)
    rgba = np.concatenate([out.image, out.covered[..., None].astype(np.float32)], axis=2)
    (HERE / "object").mkdir(exist_ok=True)
    Image.fromarray((rgba * 255 + 0.5).astype(np.uint8), "RGBA").save(HERE / "object/house.png")


if __name__ == "__main__":
    main()
