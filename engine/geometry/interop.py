"""Open3D and trimesh conversions, and writing mesh files."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from fathom.engine.fileio import atomic_path, atomic_write_bytes
from fathom.engine.types import PointCloud

MESH_FORMATS = (".glb", ".gltf", ".ply", ".obj", ".stl", ".off")


def _o3d() -> Any:
    try:
        import open3d as o3d
    except ImportError as exc:
        raise ImportError(
            f"this node needs Open3D: pip install 'fathom-studio[3d]' (import failed: {exc})"
        ) from exc
    return o3d


def to_o3d_points(pc: PointCloud) -> Any:
    o3d = _o3d()
    p = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(pc.points.astype(np.float64)))
    if pc.colors is not None:
        p.colors = o3d.utility.Vector3dVector(np.clip(pc.colors, 0, 1).astype(np.float64))
    if pc.normals is not None:
        p.normals = o3d.utility.Vector3dVector(pc.normals.astype(np.float64))
    return p


def o3d_to_trimesh(m: Any) -> Any:
    import trimesh

    verts = np.asarray(m.vertices)
    faces = np.asarray(m.triangles)
    kwargs: dict[str, Any] = {}
    if m.has_vertex_colors():
        c = np.clip(np.asarray(m.vertex_colors), 0, 1)
        kwargs["vertex_colors"] = np.concatenate(
            [(c * 255).round(), np.full((len(c), 1), 255)], 1
        ).astype(np.uint8)
    return trimesh.Trimesh(verts, faces, process=False, **kwargs)


def trimesh_to_o3d(tm: Any) -> Any:
    o3d = _o3d()
    m = o3d.geometry.TriangleMesh(
        o3d.utility.Vector3dVector(np.asarray(tm.vertices, float)),
        o3d.utility.Vector3iVector(np.asarray(tm.faces, np.int32)),
    )
    try:
        vc = np.asarray(tm.visual.to_color().vertex_colors)[:, :3] / 255.0
        if len(vc) == len(tm.vertices):
            m.vertex_colors = o3d.utility.Vector3dVector(vc.astype(np.float64))
    except (AttributeError, ValueError):
        pass
    return m


def mean_spacing(pcd: Any) -> float:
    d = np.asarray(pcd.compute_nearest_neighbor_distance())
    d = d[np.isfinite(d)]
    return float(d.mean()) if len(d) else 0.0


def export_mesh(tm: Any, target: Path) -> list[Path]:
    """Atomic export by extension; OBJ also writes its material and texture beside it."""
    suffix = target.suffix.lower()
    if suffix not in MESH_FORMATS:
        raise ValueError(f"unsupported mesh format {suffix!r}; use one of {MESH_FORMATS}")
    if suffix == ".obj":
        from trimesh.exchange.obj import export_obj

        text, extra = export_obj(
            tm, include_texture=True, return_texture=True, mtl_name=f"{target.stem}.mtl"
        )
        written = []
        for name, data in extra.items():
            atomic_write_bytes(target.parent / name, data)
            written.append(target.parent / name)
        atomic_write_bytes(target, text.encode("utf-8"))
        return [target, *written]
    with atomic_path(target) as tmp:
        tm.export(tmp, file_type=suffix.lstrip("."))
    return [target]
