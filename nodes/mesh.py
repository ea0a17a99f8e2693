"""Mesh nodes: surface reconstruction from points, simplification, and mesh/point files."""

from __future__ import annotations

from typing import Any

import numpy as np

from fathom.engine.context import NodeContext
from fathom.engine.fileio import atomic_path
from fathom.engine.geometry.interop import (
    MESH_FORMATS,
    _o3d,
    export_mesh,
    mean_spacing,
    o3d_to_trimesh,
    to_o3d_points,
    trimesh_to_o3d,
)
from fathom.engine.node import Input, Node, Output, Param
from fathom.engine.types import Enum, Float, InputFile, Int, Mesh, OutputFile, PointCloud, String

# ---- Open3D bridges (imported lazily: Open3D is an optional extra) ---------------------------


# ---- nodes ---------------------------------------------------------------------------------


class ReconstructMesh(Node):
    """Surface from a point cloud with Open3D: Poisson (watertight, smooth; low-support areas
    trimmed by density) or ball pivoting (keeps the original points, leaves holes)."""

    type_id = "mesh.reconstruct"
    title = "Reconstruct Mesh"
    category = "mesh"
    inputs = (Input("points", PointCloud),)
    outputs = (Output("mesh", Mesh),)
    params = (
        Param("method", Enum, "poisson", "algorithm", choices=("poisson", "ball_pivoting")),
        Param("depth", Int, 8, "Poisson octree depth (detail)", min=4, max=12),
        Param("trim", Float, 0.05, "Poisson: drop the lowest-density fraction", min=0, max=0.9),
        Param(
            "orient",
            Enum,
            "origin",
            "normal orientation: toward the origin (RGBD "
            "clouds in camera space) or a consistent tangent plane",
            choices=("origin", "tangent_plane"),
        ),
    )

    def run(
        self,
        ctx: NodeContext,
        points: PointCloud,
        method: str,
        depth: int,
        trim: float,
        orient: str,
    ) -> dict[str, Any]:
        if len(points) < 4:
            raise ctx.error(
                f"the point cloud has {len(points)} points; at least 4 are needed",
                port="points",
                fix="check the upstream depth or mask",
            )
        o3d = _o3d()
        pcd = to_o3d_points(points)
        spacing = mean_spacing(pcd)
        if pcd.is_empty() or spacing <= 0:
            raise ctx.error("all points coincide", port="points", fix="check the input")
        if not pcd.has_normals():
            pcd.estimate_normals(
                o3d.geometry.KDTreeSearchParamHybrid(radius=spacing * 6, max_nn=30)
            )
            if orient == "origin":
                pcd.orient_normals_towards_camera_location(np.zeros(3))
            else:
                pcd.orient_normals_consistent_tangent_plane(12)
        ctx.progress(0.3, "reconstructing")
        if method == "poisson":
            mesh, dens = o3d.geometry.TriangleMesh.create_from_point_cloud_poisson(pcd, depth=depth)
            dens = np.asarray(dens)
            if trim > 0 and len(dens):
                mesh.remove_vertices_by_mask(dens < np.quantile(dens, trim))
        else:
            radii = o3d.utility.DoubleVector([spacing * k for k in (1.5, 3.0, 6.0)])
            mesh = o3d.geometry.TriangleMesh.create_from_point_cloud_ball_pivoting(pcd, radii)
        if len(mesh.triangles) == 0:
            raise ctx.error(
                f"{method} produced no triangles",
                port="points",
                fix="try the other method, or a denser cloud",
            )
        return {"mesh": Mesh(o3d_to_trimesh(mesh))}


class SimplifyMesh(Node):
    """Quadric-error decimation (Open3D) to a face budget; vertex colours are kept."""

    type_id = "mesh.simplify"
    title = "Simplify Mesh"
    category = "mesh"
    inputs = (Input("mesh", Mesh),)
    outputs = (Output("mesh", Mesh),)
    params = (
        Param("target_faces", Int, 0, "face budget (0: use ratio)", min=0),
        Param(
            "ratio", Float, 0.5, "fraction of faces kept when target_faces is 0", min=0.001, max=1.0
        ),
    )

    def run(self, ctx: NodeContext, mesh: Mesh, target_faces: int, ratio: float) -> dict[str, Any]:
        n = len(mesh.mesh.faces)
        target = target_faces or max(1, int(round(n * ratio)))
        if target >= n:
            return {"mesh": mesh}
        out = trimesh_to_o3d(mesh.mesh).simplify_quadric_decimation(target)
        return {"mesh": Mesh(o3d_to_trimesh(out))}


class LoadMesh(Node):
    """Read a mesh (.glb, .gltf, .ply, .obj, .stl, .off) with trimesh; scenes are merged."""

    type_id = "mesh.load"
    title = "Load Mesh"
    category = "mesh"
    main_params = ("path",)
    outputs = (Output("mesh", Mesh),)
    params = (Param("path", InputFile, "mesh.glb", "mesh file", suffixes=MESH_FORMATS),)
    opens = MESH_FORMATS

    def run(self, ctx: NodeContext, path: str) -> dict[str, Any]:
        import trimesh

        p = ctx.resolve_path(path)
        if p.suffix.lower() not in MESH_FORMATS:
            raise ctx.error(
                f"{p.name}: unsupported mesh format",
                port="path",
                fix=f"use one of {', '.join(MESH_FORMATS)}",
            )
        try:
            loaded = trimesh.load(p, force="mesh", process=False)
        except Exception as exc:  # noqa: BLE001 - parsers raise many types on bad files
            raise ctx.error(
                f"{p.name} could not be parsed as a mesh: {exc}",
                port="path",
                fix="check that the file is complete and of the named format",
            ) from None
        if not isinstance(loaded, trimesh.Trimesh) or len(loaded.faces) == 0:
            raise ctx.error(
                f"{p.name} holds no triangles",
                port="path",
                fix="export the mesh with faces, not only points or lines",
            )
        return {"mesh": Mesh(loaded)}


class SaveMesh(Node):
    """Write a mesh as .glb (recommended: colours and textures travel), .ply or .obj."""

    type_id = "mesh.save"
    title = "Save Mesh"
    category = "mesh"
    main_params = ("path",)
    is_output = True
    inputs = (Input("mesh", Mesh),)
    outputs = (Output("path", String),)
    params = (
        Param("path", OutputFile, "mesh.glb", "file to write (relative: in the output folder)"),
    )

    def run(self, ctx: NodeContext, mesh: Mesh, path: str) -> dict[str, Any]:
        target = ctx.output_path(path)
        try:
            files = export_mesh(mesh.mesh, target)
        except ValueError as exc:
            raise ctx.error(
                str(exc), port="path", fix="end the file name with .glb, .ply or .obj"
            ) from None
        for f in files:
            ctx.record_file(f)
        return {"path": str(target)}


class SavePointCloud(Node):
    """Write a point cloud (.ply with colours) for other tools."""

    type_id = "pointcloud.save"
    title = "Save Point Cloud"
    category = "mesh"
    main_params = ("path",)
    is_output = True
    inputs = (Input("points", PointCloud),)
    outputs = (Output("path", String),)
    params = (Param("path", OutputFile, "points.ply", "file to write"),)

    def run(self, ctx: NodeContext, points: PointCloud, path: str) -> dict[str, Any]:
        import trimesh

        target = ctx.output_path(path)
        if target.suffix.lower() != ".ply":
            raise ctx.error(
                "point clouds are saved as .ply", port="path", fix="end the file name with .ply"
            )
        colors = None
        if points.colors is not None:
            colors = (np.clip(points.colors, 0, 1) * 255).astype(np.uint8)
        cloud = trimesh.PointCloud(points.points, colors=colors)
        with atomic_path(target) as tmp:
            cloud.export(tmp, file_type="ply")
        ctx.record_file(target)
        return {"path": str(target)}


class LoadPointCloud(Node):
    """Read a .ply point cloud (vertices and colours; faces ignored)."""

    type_id = "pointcloud.load"
    title = "Load Point Cloud"
    category = "mesh"
    main_params = ("path",)
    outputs = (Output("points", PointCloud),)
    params = (Param("path", InputFile, "points.ply", "point cloud file", suffixes=(".ply",)),)

    def run(self, ctx: NodeContext, path: str) -> dict[str, Any]:
        import trimesh

        p = ctx.resolve_path(path)
        try:
            geo = trimesh.load(p, process=False)
        except Exception as exc:  # noqa: BLE001
            raise ctx.error(
                f"{p.name} could not be parsed: {exc}",
                port="path",
                fix="check that the file is a complete .ply",
            ) from None
        verts = np.asarray(getattr(geo, "vertices", np.zeros((0, 3))), np.float32)
        if len(verts) == 0:
            raise ctx.error(f"{p.name} holds no points", port="path", fix="check the file")
        colors = None
        vc = getattr(geo, "colors", None)
        if vc is None and hasattr(geo, "visual"):
            vc = getattr(geo.visual, "vertex_colors", None)
        if vc is not None and len(vc) == len(verts):
            colors = np.asarray(vc)[:, :3].astype(np.float32) / 255.0
        return {"points": PointCloud(verts, colors)}
