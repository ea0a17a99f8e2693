"""Depth/3D benchmark: RGBD→mesh against Open3D's route, view.render frame rates, fusion scaling.

Run: python bench/bench_depth3d.py [--json results.json] [--quick]
Every number is measured in this run on this machine; baselines run in the same process.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fathom.engine.geometry import analytic, projection, scene
from fathom.engine.geometry.meshing import rgbd_mesh
from fathom.engine.geometry.tsdf import fuse_tsdf
from fathom.engine.types import RGBD, Camera, Depth, Image


def analytic_rgbd(w: int, h: int, pose: np.ndarray | None = None) -> RGBD:
    """Spheres in front of a slanted wall: exact depth for the accuracy columns."""
    c = Camera.from_fov(w, h, 60.0, pose)
    wall_n = np.array([0.2, 0.0, 1.0]) / np.linalg.norm([0.2, 0.0, 1.0])
    depths = [
        analytic.plane_depth(c, wall_n, 6.0),
        analytic.sphere_depth(c, np.array([-0.8, 0.2, 3.0]), 0.7),
        analytic.sphere_depth(c, np.array([0.9, -0.3, 4.0]), 0.9),
    ]
    depth, which = analytic.composite(*depths)
    u, v = projection.pixel_grid(w, h)
    tex = 0.5 + 0.5 * np.sin(u[..., None] * [0.05, 0.07, 0.11] + v[..., None] * 0.03)
    col = np.where(which[..., None] == 0, tex, [0.9, 0.3, 0.2]).astype(np.float32)
    return RGBD(Image(col), Depth(depth.astype(np.float32), "metric"), c)


def timed(fn, repeat: int = 3) -> tuple[float, object]:
    times, out = [], None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), out


def surface_error(verts: np.ndarray) -> float:
    """Mean distance of vertices to the nearest analytic surface (metres)."""
    wall_n = np.array([0.2, 0.0, 1.0]) / np.linalg.norm([0.2, 0.0, 1.0])
    d = np.stack(
        [
            np.abs(verts @ wall_n - 6.0),
            np.abs(np.linalg.norm(verts - [-0.8, 0.2, 3.0], axis=1) - 0.7),
            np.abs(np.linalg.norm(verts - [0.9, -0.3, 4.0], axis=1) - 0.9),
        ]
    )
    return float(d.min(0).mean())


def bench_rgbd_to_mesh(size: int) -> dict:
    import open3d as o3d

    rgbd = analytic_rgbd(size, size)
    cam = rgbd.camera
    t_ours, mesh = timed(lambda: rgbd_mesh(rgbd, cam, 0.05, 1, "vertex"))
    color = o3d.geometry.Image((rgbd.image.data * 255).astype(np.uint8))
    depth = o3d.geometry.Image(rgbd.depth.data)
    intr = o3d.camera.PinholeCameraIntrinsic(size, size, cam.fx, cam.fy, cam.cx - 0.5, cam.cy - 0.5)

    def open3d_route():
        im = o3d.geometry.RGBDImage.create_from_color_and_depth(
            color, depth, depth_scale=1.0, depth_trunc=100.0, convert_rgb_to_intensity=False
        )
        pcd = o3d.geometry.PointCloud.create_from_rgbd_image(im, intr)
        pcd.estimate_normals(o3d.geometry.KDTreeSearchParamKNN(30))
        pcd.orient_normals_towards_camera_location(np.zeros(3))
        m, _ = o3d.geometry.TriangleMesh.create_from_point_cloud_poisson(pcd, depth=9)
        return m

    t_o3d, m_o3d = timed(open3d_route, repeat=1)
    v_o3d = np.asarray(m_o3d.vertices)
    return {
        "size": size,
        "ours_s": t_ours,
        "ours_faces": len(mesh.faces),
        "ours_err_m": surface_error(np.asarray(mesh.vertices)),
        "open3d_poisson_s": t_o3d,
        "open3d_faces": len(m_o3d.triangles),
        "open3d_err_m": surface_error(v_o3d),
        "speedup": t_o3d / t_ours,
    }


def bench_render(size: int, frames: int) -> dict:
    rgbd = analytic_rgbd(708, 708)  # ≈ 1.0 M triangles after cutting
    mesh = rgbd_mesh(rgbd, rgbd.camera, 0.05, 1, "vertex")
    sc = scene.RenderScene(
        np.asarray(mesh.vertices, np.float32),
        np.asarray(mesh.faces),
        np.asarray(mesh.visual.vertex_colors)[:, :3] / 255.0,
    )
    pose = projection.look_at(np.array([0.3, -0.2, 0.0]), np.array([0, 0, 4.0]))
    cam = Camera.from_fov(size, size, 60.0, pose)
    out = {"triangles": len(mesh.faces), "size": size}
    scene.render_torch(sc, cam)  # warm-up
    t, _ = timed(lambda: scene.render_torch(sc, cam), frames)
    out["torch_cpu_fps"] = 1 / t
    if scene.opengl_available():
        scene.render_opengl(sc, cam)
        t, _ = timed(lambda: scene.render_opengl(sc, cam), frames)
        out["opengl_fps"] = 1 / t
    else:
        out["opengl_fps"] = None
    try:
        import torch

        if torch.cuda.is_available():
            scene.render_torch(sc, cam, "cuda")
            torch.cuda.synchronize()
            t, _ = timed(lambda: scene.render_torch(sc, cam, "cuda"), frames)
            out["torch_cuda_fps"] = 1 / t
    except RuntimeError:
        pass
    return out


def bench_fusion(counts: list[int]) -> list[dict]:
    rows = []
    target = Camera.from_fov(
        512, 512, 60.0, projection.look_at(np.array([0.0, -0.3, 0.2]), np.array([0, 0, 4.0]))
    )
    for n in counts:
        views = []
        for k in range(n):
            a = 2 * np.pi * k / max(n, 1)
            eye = np.array([0.5 * np.cos(a), 0.3 * np.sin(a), 0.0])
            views.append(analytic_rgbd(256, 192, projection.look_at(eye, np.array([0, 0, 4.0]))))
        t_fuse, tm = timed(lambda v=views: fuse_tsdf(v, 0.03, 4.0, "cpu"), 1)
        sc = scene.RenderScene(
            np.asarray(tm.vertices, np.float32),
            np.asarray(tm.faces),
            np.asarray(tm.visual.vertex_colors)[:, :3] / 255.0,
        )
        scene.render_torch(sc, target)
        t_render, out = timed(lambda s=sc: scene.render_torch(s, target), 3)
        rows.append(
            {
                "views": n,
                "fuse_s": t_fuse,
                "faces": len(tm.faces),
                "render_s": t_render,
                "hole_fraction": float((~out.covered).mean()),
            }
        )
    return rows


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--json", type=Path)
    ap.add_argument("--quick", action="store_true", help="smaller sizes, for a smoke run")
    args = ap.parse_args()
    size = 256 if args.quick else 1024
    res = {
        "machine": f"{platform.processor() or platform.machine()}, python "
        f"{platform.python_version()}"
    }
    r = bench_rgbd_to_mesh(size)
    res["rgbd_to_mesh"] = r
    print(
        f"RGBD {size}x{size} -> mesh: ours {r['ours_s']:.3f}s ({r['ours_faces']} faces, "
        f"mean surface error {r['ours_err_m'] * 1000:.3f} mm) | Open3D create_from_rgbd_image"
        f" + Poisson(9) {r['open3d_poisson_s']:.3f}s ({r['open3d_faces']} faces, "
        f"{r['open3d_err_m'] * 1000:.3f} mm) | ratio {r['speedup']:.1f}x"
    )
    rr = bench_render(256 if args.quick else 512, 3 if args.quick else 5)
    res["render"] = rr
    gl = "n/a" if rr["opengl_fps"] is None else f"{rr['opengl_fps']:.2f} fps"
    cuda = f", torch CUDA {rr['torch_cuda_fps']:.1f} fps" if "torch_cuda_fps" in rr else ""
    print(
        f"view.render {rr['size']}^2, {rr['triangles']} triangles: torch CPU "
        f"{rr['torch_cpu_fps']:.2f} fps, OpenGL (EGL, Mesa) {gl}{cuda}"
    )
    rows = bench_fusion([1, 2, 4] if args.quick else [1, 2, 4, 8, 16])
    res["fusion"] = rows
    print("views | fuse s | faces | render s | hole fraction")
    for row in rows:
        print(
            f"{row['views']:5d} | {row['fuse_s']:6.3f} | {row['faces']:6d} | "
            f"{row['render_s']:8.4f} | {row['hole_fraction']:.4f}"
        )
    if args.json:
        args.json.write_text(json.dumps(res, indent=2))


if __name__ == "__main__":
    main()
