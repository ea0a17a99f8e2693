"""A cube whose six faces show six colours through a UV texture atlas: what a textured preview
must draw on the right faces (shared by the geometry and the studio tests)."""

from __future__ import annotations

import numpy as np
import trimesh
from PIL import Image as PILImage
from trimesh.visual.material import PBRMaterial

#: Face (outward axis, sign) → its colour in the texture (RGB, 0–255).
FACE_COLOURS: dict[tuple[int, int], tuple[int, int, int]] = {
    (0, 1): (230, 30, 30),  # +x red
    (0, -1): (30, 200, 40),  # -x green
    (1, 1): (40, 60, 230),  # +y (down: up is -y) blue
    (1, -1): (240, 220, 30),  # -y (up) yellow
    (2, 1): (220, 40, 220),  # +z (back) magenta
    (2, -1): (30, 210, 220),  # -z (front, seen at azimuth 0) cyan
}
TILE = 16


def textured_cube(size: float = 1.0) -> trimesh.Trimesh:
    """A cube of side ``size`` at the origin, 24 vertices (four per face), its texture a 3×2
    atlas of solid tiles, one per face (``FACE_COLOURS``), in a glTF-style PBR material."""
    atlas = np.zeros((2 * TILE, 3 * TILE, 3), np.uint8)
    verts, faces, uvs = [], [], []
    h = size / 2
    for k, ((axis, sign), colour) in enumerate(FACE_COLOURS.items()):
        row, col = divmod(k, 3)
        atlas[row * TILE : (row + 1) * TILE, col * TILE : (col + 1) * TILE] = colour
        a, b = [i for i in range(3) if i != axis]
        base = len(verts)
        for s, t in ((-1, -1), (1, -1), (1, 1), (-1, 1)):
            p = np.zeros(3)
            p[axis], p[a], p[b] = sign * h, s * h, t * h
            verts.append(p)
            # The tile's own corners, exactly on the edges it shares with its neighbours (as
            # an atlas packs its charts); uv origin bottom-left.
            u = (col + (s + 1) / 2) / 3
            v = 1.0 - (row + (t + 1) / 2) / 2
            uvs.append((u, v))
        quad = [(0, 1, 2), (0, 2, 3)]
        faces += [[base + i for i in tri] for tri in quad]
    mesh = trimesh.Trimesh(np.array(verts), np.array(faces), process=False)
    mesh.fix_normals()  # outward winding, whatever the loop above produced
    material = PBRMaterial(baseColorTexture=PILImage.fromarray(atlas))
    mesh.visual = trimesh.visual.TextureVisuals(uv=np.array(uvs), material=material)
    return mesh


def colour_of(axis: int, sign: int) -> np.ndarray:
    """A face's texture colour as floats in [0, 1]."""
    return np.array(FACE_COLOURS[(axis, sign)], np.float32) / 255.0
