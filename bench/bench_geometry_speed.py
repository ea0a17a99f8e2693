"""Geometry at interactive speed: rgbd.to_mesh on 1 MP and TSDF fusion of 16 views, each against
the code it replaced and against Open3D, all measured in this run on this machine.

Run: python bench/bench_geometry_speed.py [--json out.json] [--repeat 7] [--views 16]
Needs the `3d` extra (Open3D) for the reference columns.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_depth3d import analytic_rgbd, surface_error

from fathom.engine.geometry import meshing, projection, tsdf
from fathom.engine.types import RGBD, Camera


def timed(fn: Callable[[], Any], repeat: int) -> tuple[float, float, Any]:
    """(median wall, best CPU) seconds over ``repeat`` calls, and the last result. CPU time
    (all of this process's threads) is what a shared machine inflates least."""
    times, cpu, out = [], [], None
    for _ in range(repeat):
        t0, c0 = time.perf_counter(), time.process_time()
        out = fn()
        times.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    return statistics.median(times), min(cpu), out


def old_rgbd_mesh(rgbd: RGBD, cam: Camera, cut: float) -> Any:
    """``rgbd_mesh`` as it was (step 1, vertex colours): every face gathered and cut, then the
    unused vertices dropped."""
    import trimesh

    d = rgbd.depth.data
    h, w = d.shape
    pts = projection.backproject(d, cam.fx, cam.fy, cam.cx, cam.cy, cam.pose).reshape(-1, 3)
    faces = meshing.cut_discontinuities(
        meshing.grid_faces(h, w), d.reshape(-1).astype(np.float64), cut
    )
    cols = rgbd.image.rgb().reshape(-1, 3)
    verts, faces, cols = meshing.compact(pts, faces, cols)
    vc = np.concatenate(
        [(np.clip(cols, 0, 1) * 255).round(), np.full((len(cols), 1), 255)], 1
    ).astype(np.uint8)
    return trimesh.Trimesh(verts, faces, vertex_colors=vc, process=False)


def bench_rgbd(size: int, repeat: int) -> dict[str, Any]:
    """Old, new, the node and Open3D's RGBD→points, interleaved round by round so that load
    changes and allocator state hit all of them alike; median and best of ``repeat``."""
    import open3d as o3d

    from fathom.engine.context import RunOptions
    from fathom.engine.executor import Executor
    from fathom.engine.registry import Registry

    rgbd = analytic_rgbd(size, size)
    cam = rgbd.camera
    assert cam is not None
    reg = Registry()
    reg.load_builtin()
    ex = Executor(reg)
    opts = RunOptions(device="cpu", output_dir=Path("."), base_dir=Path("."))
    color = o3d.geometry.Image((rgbd.image.data * 255).astype(np.uint8))
    depth = o3d.geometry.Image(rgbd.depth.data)
    intr = o3d.camera.PinholeCameraIntrinsic(size, size, cam.fx, cam.fy, cam.cx - 0.5, cam.cy - 0.5)

    def open3d_points() -> Any:
        im = o3d.geometry.RGBDImage.create_from_color_and_depth(
            color, depth, depth_scale=1.0, depth_trunc=100.0, convert_rgb_to_intensity=False
        )
        return o3d.geometry.PointCloud.create_from_rgbd_image(im, intr)

    runs: dict[str, Callable[[], Any]] = {
        "old": lambda: old_rgbd_mesh(rgbd, cam, 0.05),
        "new": lambda: meshing.rgbd_mesh(rgbd, cam, 0.05, 1, "vertex"),
        "node": lambda: ex.call("rgbd.to_mesh", {"rgbd": rgbd}, {"cut": 0.05}, opts)["mesh"].mesh,
        "open3d_points": open3d_points,
    }
    times: dict[str, list[float]] = {k: [] for k in runs}
    cpu: dict[str, list[float]] = {k: [] for k in runs}
    out: dict[str, Any] = {}
    for _ in range(repeat):
        for name, fn in runs.items():
            t0, c0 = time.perf_counter(), time.process_time()
            out[name] = fn()
            times[name].append(time.perf_counter() - t0)
            # CPU seconds of this process: less inflated than wall time on a shared machine
            cpu[name].append(time.process_time() - c0)
    m_old, m_new = out["old"], out["new"]
    same = np.array_equal(np.asarray(m_old.faces), np.asarray(m_new.faces)) and np.array_equal(
        np.asarray(m_old.vertices), np.asarray(m_new.vertices)
    )
    row: dict[str, Any] = {"size": size, "faces": len(m_new.faces)}
    for name, ts in times.items():
        row[f"{name}_s"] = statistics.median(ts)
        row[f"{name}_best_s"] = min(ts)
        row[f"{name}_cpu_s"] = min(cpu[name])
    row.update(
        open3d_points=len(out["open3d_points"].points),
        identical_to_old=bool(same),
        err_m=surface_error(np.asarray(m_new.vertices)),
    )
    return row


def ring_views(n: int) -> list[RGBD]:
    """The depth/3D benchmark's fusion scene: n 256×192 views around a wall and two spheres."""
    views = []
    for k in range(n):
        a = 2 * np.pi * k / max(n, 1)
        eye = np.array([0.5 * np.cos(a), 0.3 * np.sin(a), 0.0])
        views.append(analytic_rgbd(256, 192, projection.look_at(eye, np.array([0, 0, 4.0]))))
    return views


def old_fuse(views: list[RGBD], voxel: float) -> tuple[np.ndarray, np.ndarray]:
    """``fuse_tsdf`` as it was: the dense grid, then every cube whose far corner was seen."""
    from skimage.measure import marching_cubes

    grid = tsdf.integrate_dense(views, voxel, 4.0, "cpu")
    verts, faces, _, _ = marching_cubes(
        grid.tsdf, 0.0, mask=grid.weight > 0, allow_degenerate=False
    )
    return verts * grid.voxel + grid.origin, faces


def open3d_fuse(views: list[RGBD], voxel: float) -> Any:
    """Open3D's tensor voxel-block TSDF on the CPU, same voxel and truncation."""
    import open3d as o3d
    import open3d.core as o3c

    dev = o3c.Device("CPU:0")
    vbg = o3d.t.geometry.VoxelBlockGrid(
        attr_names=("tsdf", "weight", "color"),
        attr_dtypes=(o3c.float32, o3c.float32, o3c.float32),
        attr_channels=((1), (1), (3)),
        voxel_size=voxel,
        block_resolution=8,
        block_count=100000,
        device=dev,
    )
    for v in views:
        c = v.camera
        assert c is not None
        k = np.array([[c.fx, 0, c.cx - 0.5], [0, c.fy, c.cy - 0.5], [0, 0, 1]])
        intr = o3c.Tensor(k, o3c.float64)
        extr = o3c.Tensor(np.linalg.inv(c.pose), o3c.float64)
        depth = o3d.t.geometry.Image(np.ascontiguousarray(np.nan_to_num(v.depth.data)))
        color = o3d.t.geometry.Image(np.ascontiguousarray(v.image.rgb(), np.float32))
        blocks = vbg.compute_unique_block_coordinates(depth, intr, extr, 1.0, 100.0, 4.0)
        vbg.integrate(blocks, depth, color, intr, extr, 1.0, 100.0, 4.0)
    return vbg.extract_triangle_mesh()


def chamfer(p: np.ndarray, q: np.ndarray) -> float:
    from scipy.spatial import cKDTree

    return float(cKDTree(q).query(p)[0].mean() + cKDTree(p).query(q)[0].mean()) / 2


def bench_fusion(n: int, voxel: float) -> dict[str, Any]:
    from scipy.spatial import cKDTree

    views = ring_views(n)
    t_new, c_new, mesh = timed(lambda: tsdf.fuse_tsdf(views, voxel, 4.0, "cpu"), 2)
    t_old, c_old, (v_old, f_old) = timed(lambda: old_fuse(views, voxel), 1)
    v_new = np.asarray(mesh.vertices)
    row: dict[str, Any] = {
        "views": n,
        "voxel": voxel,
        "old_s": t_old,
        "new_s": t_new,
        "old_cpu_s": c_old,
        "new_cpu_s": c_new,
        "old_faces": len(f_old),
        "new_faces": len(mesh.faces),
        "old_err_m": surface_error(v_old),
        "new_err_m": surface_error(v_new),
        # one-sided: the new surface lies on the old one (the old also had an inner shell)
        "new_to_old_m": float(cKDTree(v_old).query(v_new)[0].mean()),
    }
    try:
        t_o3d, c_o3d, m = timed(lambda: open3d_fuse(views, voxel), 2)
        v_o3d = m.vertex.positions.numpy()
        row.update(
            open3d_s=t_o3d,
            open3d_cpu_s=c_o3d,
            open3d_faces=len(m.triangle.indices),
            open3d_err_m=surface_error(v_o3d) if len(v_o3d) else None,
            chamfer_new_open3d_m=chamfer(v_new, v_o3d) if len(v_o3d) else None,
        )
    except Exception as exc:  # noqa: BLE001 - a reference column, reported not fatal
        row["open3d_error"] = f"{type(exc).__name__}: {exc}"
    return row


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--json", type=Path)
    ap.add_argument("--repeat", type=int, default=7)
    ap.add_argument("--views", type=int, default=16)
    ap.add_argument("--size", type=int, default=1024, help="RGBD side (1024: 1 MP)")
    args = ap.parse_args()
    import torch

    res: dict[str, Any] = {
        "machine": f"{platform.platform()}, {os.cpu_count()} CPUs, python "
        f"{platform.python_version()}, torch {torch.__version__} "
        f"({torch.get_num_threads()} threads)",
        "load_before": os.getloadavg()[0],
    }
    r = bench_rgbd(args.size, args.repeat)
    res["rgbd_to_mesh"] = r
    print(
        f"rgbd.to_mesh {r['size']}² ({r['faces']} faces, identical to old: "
        f"{r['identical_to_old']}): old {r['old_s'] * 1e3:.0f} ms | new {r['new_s'] * 1e3:.0f} ms"
        f" (best {r['new_best_s'] * 1e3:.0f}) | node {r['node_s'] * 1e3:.0f} ms (best "
        f"{r['node_best_s'] * 1e3:.0f}) | Open3D "
        f"RGBD→points {r['open3d_points_s'] * 1e3:.0f} ms | old/new {r['old_s'] / r['new_s']:.1f}× "
        f"| new/Open3D {r['new_s'] / r['open3d_points_s']:.1f}×\n  best CPU time: old "
        f"{r['old_cpu_s'] * 1e3:.0f} ms, new {r['new_cpu_s'] * 1e3:.0f} ms, node "
        f"{r['node_cpu_s'] * 1e3:.0f} ms, Open3D {r['open3d_points_cpu_s'] * 1e3:.0f} ms"
    )
    f = bench_fusion(args.views, 0.03)
    res["fusion"] = f
    o3d_txt = (
        f"Open3D VoxelBlockGrid {f['open3d_s']:.2f} s ({f['open3d_faces']} faces, err "
        f"{(f['open3d_err_m'] or 0) * 1e3:.2f} mm) | new/Open3D {f['new_s'] / f['open3d_s']:.1f}×"
        if "open3d_s" in f
        else f"Open3D failed: {f['open3d_error']}"
    )
    print(
        f"fusion {f['views']} views 256×192, voxel {f['voxel']} m: old {f['old_s']:.2f} s "
        f"({f['old_faces']} faces, err {f['old_err_m'] * 1e3:.2f} mm) | new {f['new_s']:.2f} s "
        f"({f['new_faces']} faces, err {f['new_err_m'] * 1e3:.2f} mm, on old surface "
        f"{f['new_to_old_m'] * 1e3:.3f} mm) | old/new {f['old_s'] / f['new_s']:.1f}× | {o3d_txt}"
        f"\n  best CPU time (all threads): old {f['old_cpu_s']:.2f} s, new {f['new_cpu_s']:.2f} s"
        + (f", Open3D {f['open3d_cpu_s']:.2f} s" if "open3d_cpu_s" in f else "")
    )
    res["load_after"] = os.getloadavg()[0]
    print(f"load average (1 min): {res['load_before']:.2f} before, {res['load_after']:.2f} after")
    if args.json:
        args.json.write_text(json.dumps(res, indent=2))


if __name__ == "__main__":
    main()
