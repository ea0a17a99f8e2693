"""Text to a textured mesh end to end on this machine, stage by stage: the `text_to_3d` example's
generate.text_to_views (the SD-1.5-shaped mini model: random weights in SD 1.5's layout,
``engine.diffusion.minimodels.BENCH``), depth of the six views (a random-weight model in Depth
Anything V2 Small's shape, what mesh.from_views runs on views without depth), and fusion + UV
atlas + texture bake (``engine.geometry.from_views`` at the example's settings), so the time per
object is what the real models cost here.

Random-weight views have no consistent geometry to fuse (from_views rightly refuses them), so
the fusion stage runs on exact RGB + depth renders of a known object (a coloured sphere of the
views' object size) from the same six cameras at the same resolution.

Rows, measured in one run: the joint six views (HexaGen3D's idea, one batch) and the plain
baseline (six independent text-to-image runs), each followed by the same depth and fusion;
HexaGen3D's published 7 s per object (A100, its fine-tuned SDXL) is printed beside them (it
cannot run here: its weights are not public). A turntable of the fused mesh is timed on its own.

Run: python bench/bench_text_to_3d.py [--size 256] [--steps 10] [--json out/bench/text_to_3d.json]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "out" / "bench"
sys.path.insert(0, str(ROOT))

from fathom.engine import graphfile  # noqa: E402
from fathom.engine.diffusion.minimodels import BENCH, save_model  # noqa: E402
from fathom.engine.executor import Executor, RunOptions  # noqa: E402
from fathom.engine.models.mini_depth import save_depth_anything  # noqa: E402
from fathom.engine.registry import Registry  # noqa: E402
from fathom.engine.types import Depth, Image, Views  # noqa: E402

#: HexaGen3D (Mercier et al., 2024): textured meshes "in about 7 seconds" per object.
HEXAGEN3D_SECONDS = 7.0
GRAPH = ROOT / "assets" / "graphs" / "text_to_3d.json"


def save_depth_model(folder: Path) -> Path:
    """Depth Anything V2 Small's architecture with random weights and its image processor."""
    return save_depth_anything(folder, v2_small=True)


def depth_seconds(depth: Path, size: int, views: int = 6) -> float:
    """Estimating six views' depth, as mesh.from_views does (the model already loaded)."""
    from transformers import AutoImageProcessor, AutoModelForDepthEstimation

    processor = AutoImageProcessor.from_pretrained(depth)
    net = AutoModelForDepthEstimation.from_pretrained(depth).eval()
    rgb = (np.random.default_rng(0).random((size, size, 3)) * 255).astype(np.uint8)
    with torch.inference_mode():
        net(**processor(images=rgb, return_tensors="pt"))  # warm-up
        t0 = time.perf_counter()
        for _ in range(views):
            net(**processor(images=rgb, return_tensors="pt"))
    return time.perf_counter() - t0


def views_seconds(executor: Executor, model: Path, joint: bool, args: Any) -> tuple[float, Views]:
    """The example's views node alone (its model loaded by a one-step run first)."""
    graph = graphfile.load(GRAPH, executor.registry)
    for k, v in {"model": str(model), "width": args.size, "height": args.size}.items():
        graph.set_param("views", k, v)
    graph.set_param("views", "joint", joint)
    options = RunOptions(output_dir=OUT / "text_to_3d_run", base_dir=GRAPH.parent, device="cpu")
    graph.set_param("views", "steps", 1)
    graph.set_param("views", "seed", 101)
    executor.run(graph, targets=["views"], options=options)
    graph.set_param("views", "steps", args.steps)
    graph.set_param("views", "seed", 1)
    result = executor.run(graph, targets=["views"], options=options)
    rec = result.records["views"]
    if rec.status != "executed":
        raise SystemExit(f"the views failed: {rec.error}")
    return rec.seconds, result.values["views"]["views"]


def object_views(views: Views) -> Views:
    """Exact RGB + metric depth of a coloured sphere (radius 0.8, the views' object size) from
    the generated views' own cameras: what fusion gets from a consistent view set."""
    import trimesh

    from fathom.engine.geometry.scene import RenderScene, render_torch

    sphere = trimesh.creation.icosphere(subdivisions=5, radius=0.8)
    v = np.asarray(sphere.vertices, np.float32)
    colours = (0.5 + 0.5 * np.sin(v * [3.0, 5.0, 7.0])).astype(np.float32)
    scene = RenderScene(v, np.asarray(sphere.faces, np.int64), colours)
    images, depths = [], []
    for cam in views.cameras:
        out = render_torch(scene, cam)
        images.append(Image(out.image))
        depths.append(Depth(out.depth, kind="metric"))
    return Views(images, views.cameras, depths)


def fusion_seconds(views: Views, frames: int) -> tuple[float, float, dict[str, Any]]:
    """(fusion + atlas + bake seconds at the example's settings, turntable seconds, details)."""
    from fathom.engine.geometry import from_views as fv
    from fathom.engine.geometry import projection
    from fathom.engine.geometry.scene import render_torch, scene_from_mesh
    from fathom.engine.types import Camera, Mesh

    doc = json.loads(GRAPH.read_text(encoding="utf-8"))
    params = next(n["params"] for n in doc["nodes"] if n["id"] == "mesh")
    t0 = time.perf_counter()
    res = fv.from_views(
        views,
        resolution=params["resolution"],
        texture_size=params["texture_size"],
        faces=params["faces"],
        method=params["method"],
    )
    fused = time.perf_counter() - t0
    cam0 = views.cameras[0]
    scene = scene_from_mesh(Mesh(res.mesh))
    t1 = time.perf_counter()
    for pose in projection.orbit_path(np.zeros(3), 4.0, frames, 1.45):
        render_torch(
            scene, Camera(cam0.fx, cam0.fy, cam0.cx, cam0.cy, cam0.width, cam0.height, pose)
        )
    turntable = time.perf_counter() - t1
    return fused, turntable, {"faces": len(res.mesh.faces), "texels_seen": round(res.seen, 3)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=256, help="pixels per view")
    ap.add_argument("--steps", type=int, default=10, help="denoising steps")
    ap.add_argument("--frames", type=int, default=24, help="turntable frames")
    ap.add_argument("--model", type=Path, default=OUT / "model")
    ap.add_argument("--depth", type=Path, default=OUT / "depth_v2_small_shape")
    ap.add_argument("--json", type=Path, default=OUT / "text_to_3d.json")
    args = ap.parse_args()
    torch.set_num_threads(os.cpu_count() or 1)
    load_start = os.getloadavg()
    if not (args.model / "model_index.json").exists():
        print(f"building the SD-1.5-shaped mini model into {args.model}")
        save_model(args.model, BENCH)
    if not (args.depth / "config.json").exists():
        save_depth_model(args.depth)
    registry = Registry()
    registry.load_builtin()
    executor = Executor(registry)
    joint_s, views = views_seconds(executor, args.model, True, args)
    plain_s, _ = views_seconds(executor, args.model, False, args)
    depth_s = depth_seconds(args.depth, args.size)
    fused_s, turntable_s, details = fusion_seconds(object_views(views), args.frames)
    rows = {
        "joint_views_s": round(joint_s, 2),
        "plain_views_s": round(plain_s, 2),
        "depth_s": round(depth_s, 2),
        "fusion_bake_s": round(fused_s, 2),
        "turntable_s": round(turntable_s, 2),
        "joint_total_s": round(joint_s + depth_s + fused_s, 2),
        "plain_total_s": round(plain_s + depth_s + fused_s, 2),
        **details,
    }
    env = {
        "cpus": os.cpu_count(),
        "torch": torch.__version__,
        "load_before": [round(x, 2) for x in load_start],
        "load_after": [round(x, 2) for x in os.getloadavg()],
        "size": args.size,
        "steps": args.steps,
        "frames": args.frames,
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps({"rows": rows, "env": env}, indent=2), encoding="utf-8")
    print(f"\n{args.size}² views, {args.steps} steps, guidance 7.5, CPU ({os.cpu_count()} cores)")
    print("| run | views s | depth s | fusion + atlas + bake s | per object s | vs plain |")
    print("|---|---|---|---|---|---|")
    for name, v, total in (
        ("joint six views (text_to_views)", joint_s, rows["joint_total_s"]),
        ("plain: six independent text-to-image", plain_s, rows["plain_total_s"]),
    ):
        print(
            f"| {name} | {v:.1f} | {depth_s:.1f} | {fused_s:.1f} | {total:.1f} | "
            f"{total / rows['plain_total_s']:.2f}× |"
        )
    print(f"| HexaGen3D, published (A100 GPU) | – | – | – | {HEXAGEN3D_SECONDS} | – |")
    print(f"turntable of {args.frames} frames: {turntable_s:.1f} s; mesh {details}")
    print(f"load average before {env['load_before']}, after {env['load_after']}")


if __name__ == "__main__":
    main()
