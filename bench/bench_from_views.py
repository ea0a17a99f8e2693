"""mesh.from_views benchmark: six 256² exact RGBD views of known shapes to a textured mesh.

Run: python bench/bench_from_views.py [--size 256] [--json results.json]
Rows, all measured in this run on this machine:
- ours: `engine.geometry.from_views` (TSDF, decimation, xatlas atlas, texture bake);
- baseline: the studio's plain route before this node (`view.fuse`'s TSDF, vertex colours);
- peer: Open3D's texturing (UVAtlas isocharts `compute_uvatlas` + `project_images_to_albedo`)
  on the same fused, decimated mesh, against our atlas + bake on that mesh.
Accuracy: Chamfer distance to the true surface (percent of the object's largest extent) and the
PSNR of the mesh rendered back from each camera over the object's pixels (worst and mean view).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import trimesh

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from view_scenes import chamfer, psnr_per_view, render_views, shape

from fathom.engine.geometry import from_views as fv
from fathom.engine.geometry.tsdf import fuse_tsdf
from fathom.engine.types import Views

RESOLUTION, TEXTURE, FACES = 128, 1024, 20000


def manifold(tm: trimesh.Trimesh) -> Any:
    """Open3D's clean-up to a manifold legacy mesh: its UV atlas refuses anything else."""
    import open3d as o3d

    m = o3d.geometry.TriangleMesh(
        o3d.utility.Vector3dVector(np.asarray(tm.vertices, np.float64)),
        o3d.utility.Vector3iVector(np.asarray(tm.faces, np.int32)),
    )
    m.remove_degenerate_triangles()
    m.remove_duplicated_triangles()
    m.remove_duplicated_vertices()
    m.remove_non_manifold_edges()
    m.remove_unreferenced_vertices()
    return m


def open3d_texture(tm: trimesh.Trimesh, views: Views, size: int) -> trimesh.Trimesh:
    """Open3D's UV atlas and image projection on ``tm``, as a trimesh (corners unshared)."""
    import open3d as o3d

    m = o3d.t.geometry.TriangleMesh.from_legacy(manifold(tm))
    m.compute_uvatlas(size=size)
    images = [o3d.t.geometry.Image(np.ascontiguousarray(im.rgb())) for im in views.images]
    ks = [o3d.core.Tensor(c.K) for c in views.cameras]
    exts = [o3d.core.Tensor(np.linalg.inv(c.pose)) for c in views.cameras]
    albedo = np.asarray(m.project_images_to_albedo(images, ks, exts, size).as_tensor().numpy())
    uv = m.triangle.texture_uvs.numpy().reshape(-1, 2)
    faces = np.arange(len(uv)).reshape(-1, 3)
    verts = np.asarray(tm.vertices)[np.asarray(tm.faces)].reshape(-1, 3)
    tex = albedo[..., :3].astype(np.float32)
    tex = tex / 255.0 if albedo.dtype == np.uint8 else tex
    from PIL import Image as PILImage

    img = PILImage.fromarray((np.clip(tex, 0, 1) * 255).astype(np.uint8))
    material = trimesh.visual.material.PBRMaterial(baseColorTexture=img)
    visual = trimesh.visual.TextureVisuals(uv=uv, material=material)  # both: v bottom-up
    return trimesh.Trimesh(verts, faces, visual=visual, process=False)


def timed(fn: Any) -> tuple[float, Any]:
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def quality(mesh: trimesh.Trimesh, truth: trimesh.Trimesh, views: Views) -> dict[str, float]:
    psnr = psnr_per_view(mesh, views)
    both = psnr_per_view(mesh, views, "both")
    return {
        "chamfer_pct": 100 * chamfer(mesh, truth) / float(np.max(truth.extents)),
        "psnr_min": float(min(psnr)),
        "psnr_mean": float(np.mean(psnr)),
        "psnr_tex_min": float(min(both)),
    }


def bench_shape(kind: str, size: int) -> dict[str, Any]:
    truth, colors = shape(kind)
    views = render_views(truth, colors, size)
    t_ours, res = timed(
        lambda: fv.from_views(views, resolution=RESOLUTION, texture_size=TEXTURE, faces=FACES)
    )
    rgbd = fv.metric_views(views)
    vox = res.voxel
    t_plain, plain = timed(lambda: fuse_tsdf(rgbd, vox, 4.0, "cpu"))
    t_fuse, fused = timed(lambda: fv.decimate(fv.fuse(rgbd, vox, "tsdf", 4.0, "cpu"), FACES))
    m = manifold(fused)  # the peer needs a manifold mesh: both texture the same one
    fused = trimesh.Trimesh(np.asarray(m.vertices), np.asarray(m.triangles), process=False)
    bake_views = [fv.uv_bake.BakeView(v.image.rgb(), v.camera, v.depth.data) for v in rgbd]
    t_tex, (ours_tex, _) = timed(lambda: fv.textured(fused, bake_views, TEXTURE, 2 * vox))
    row_tex = quality(ours_tex, truth, views)
    row: dict[str, Any] = {
        "shape": kind,
        "views": f"6 × {size}²",
        "faces": len(res.mesh.faces),
        "ours_s": t_ours,
        "ours": quality(res.mesh, truth, views),
        "plain_s": t_plain,
        "plain_faces": len(plain.faces),
        "plain": quality(plain, truth, views),
        "fuse_s": t_fuse,
        "ours_texture_s": t_tex,
        "ours_texture": row_tex,
    }
    try:
        t_o3d, o3d_mesh = timed(lambda: open3d_texture(fused, views, TEXTURE))
        row["open3d_texture_s"] = t_o3d
        row["open3d"] = quality(o3d_mesh, truth, views)
    except Exception as exc:  # noqa: BLE001 - report the peer's failure, keep our rows
        row["open3d_error"] = f"{type(exc).__name__}: {exc}"
    return row


def table(rows: list[dict[str, Any]]) -> str:
    out = [
        "| shape | route | time (s) | Chamfer (% of size) | PSNR worst / mean (dB) "
        "| texture-only PSNR worst (dB) |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        q = r["ours"]
        out.append(
            f"| {r['shape']} | from_views (TSDF + xatlas + bake, {r['faces']} faces, "
            f"{TEXTURE}² texture) | {r['ours_s']:.2f} | {q['chamfer_pct']:.2f} | "
            f"{q['psnr_min']:.1f} / {q['psnr_mean']:.1f} | {q['psnr_tex_min']:.1f} |"
        )
        q = r["plain"]
        out.append(
            f"| {r['shape']} | plain view.fuse TSDF, vertex colours ({r['plain_faces']} faces) "
            f"| {r['plain_s']:.2f} | "
            f"{q['chamfer_pct']:.2f} | {q['psnr_min']:.1f} / {q['psnr_mean']:.1f} "
            f"| {q['psnr_tex_min']:.1f} |"
        )
        q = r["ours_texture"]
        out.append(
            f"| {r['shape']} | texturing only: ours (xatlas + bake) | {r['ours_texture_s']:.2f} "
            f"| same mesh | {q['psnr_min']:.1f} / {q['psnr_mean']:.1f} | {q['psnr_tex_min']:.1f} |"
        )
        if "open3d" in r:
            q = r["open3d"]
            ratio = r["open3d_texture_s"] / r["ours_texture_s"]
            out.append(
                f"| {r['shape']} | texturing only: Open3D (UVAtlas + project_images_to_albedo) "
                f"| {r['open3d_texture_s']:.2f} ({ratio:.2f}× ours) | same mesh | "
                f"{q['psnr_min']:.1f} / {q['psnr_mean']:.1f} | {q['psnr_tex_min']:.1f} |"
            )
        else:
            out.append(f"| {r['shape']} | Open3D texturing | failed: {r['open3d_error']} | | |")
    return "\n".join(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=256, help="view width and height")
    ap.add_argument("--json", type=Path, help="also write the rows here")
    args = ap.parse_args()
    rows = [bench_shape(kind, args.size) for kind in ("sphere", "box", "pair")]
    load = os.getloadavg()
    print(
        f"# {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"load {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}"
    )
    print(table(rows))
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
