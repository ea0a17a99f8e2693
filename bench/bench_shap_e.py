"""Shap-E benchmark (issue 15): time per object of generate.text_to_3d against diffusers'
ShapEPipeline (the published implementation the node follows) in the same run.

Run: python bench/bench_shap_e.py [--steps 64] [--grid 128] [--reps 3] [--json PATH] [--md PATH]

On the tiny random text-to-3D Shap-E the tests use (tests/shap_e_models.py, built into
out/bench/shap_e on first use): the prior is tiny, so a run is the Heun loop's overhead plus
the renderer's decode (the implicit function sampled on a grid³, marching cubes, colours), the
part that dominates for the real model on CPU too. Rows, each per object, best of ``--reps``
interleaved repetitions (each repetition runs every row once with its own seed, so load from
other processes hits all alike):

- diffusers: ``ShapEPipeline(prompt, output_type="mesh")``, its renderer decoding at ``--grid``;
- node: ``generate.text_to_3d`` with the turntable off (the same loop and decode, plus the
  trimesh mesh), through the executor with the model already loaded;
- node + turntable: the same with a 24-frame 256² turntable drawn by the studio's renderer.

The ratios node / diffusers (~1.0 expected: same work) and turntable / node are printed.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

import torch

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "out" / "bench"
PROMPT = "a red chair"
sys.path.insert(0, str(ROOT / "tests"))

from shap_e_models import build_tiny_shap_e  # noqa: E402

from fathom.engine.context import RunOptions  # noqa: E402
from fathom.engine.executor import Executor  # noqa: E402
from fathom.engine.registry import Registry  # noqa: E402


def model_folder() -> Path:
    folder = OUT / "shap_e"
    if not (folder / "shap-e" / "model_index.json").is_file():
        build_tiny_shap_e(folder)
    return folder / "shap-e"


def diffusers_pipe(folder: Path, grid: int) -> Any:
    from diffusers import ShapEPipeline

    pipe = ShapEPipeline.from_pretrained(folder, use_safetensors=True)
    pipe.set_progress_bar_config(disable=True)
    renderer = pipe.shap_e_renderer
    renderer.decode_to_mesh = functools.partial(renderer.decode_to_mesh, grid_size=grid)
    return pipe


def timed(fn: Any) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=64)
    ap.add_argument("--grid", type=int, default=128)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--json", type=Path)
    ap.add_argument("--md", type=Path)
    args = ap.parse_args()

    folder = model_folder()
    pipe = diffusers_pipe(folder, args.grid)
    reg = Registry()
    reg.load_builtin()
    ex = Executor(reg)
    opts = RunOptions(output_dir=OUT / "shap_e_out", base_dir=OUT, device="cpu")
    base = {"model": str(folder), "prompt": PROMPT, "steps": args.steps, "guidance": 15.0}
    base["grid_size"] = args.grid

    def node(seed: int, turntable: bool) -> Any:
        params = {**base, "seed": seed, "turntable": turntable, "frames": 24, "frame_size": 256}
        return ex.call("generate.text_to_3d", {}, params, options=opts)

    def reference(seed: int) -> Any:
        gen = torch.Generator("cpu").manual_seed(seed)
        return pipe(
            PROMPT,
            num_inference_steps=args.steps,
            guidance_scale=15.0,
            generator=gen,
            output_type="mesh",
        )

    node(0, False)  # loads the model into the executor's manager
    rows: dict[str, list[float]] = {"diffusers": [], "node": [], "node + turntable": []}
    for rep in range(args.reps):
        seed = 100 + rep
        rows["diffusers"].append(timed(lambda s=seed: reference(s)))
        rows["node"].append(timed(lambda s=seed: node(s, False)))
        rows["node + turntable"].append(timed(lambda s=seed: node(s, True)))
    faces = len(node(100, False)["mesh"].mesh.faces)
    best = {k: min(v) for k, v in rows.items()}
    report(args, best, faces)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"best_s": best, "faces": faces, **vars_of(args)}))


def vars_of(args: argparse.Namespace) -> dict[str, Any]:
    return {"steps": args.steps, "grid": args.grid, "reps": args.reps}


def report(args: argparse.Namespace, best: dict[str, float], faces: int) -> None:
    load = os.getloadavg()
    lines = [
        f"Shap-E text to 3D, tiny random model, {args.steps} steps, grid {args.grid}³ "
        f"({faces:,} faces), best of {args.reps}; {platform.processor() or platform.machine()}, "
        f"{torch.get_num_threads()} torch threads, load {load[0]:.2f}",
        "",
        "| path | s / object | ratio |",
        "|---|---:|---:|",
        f"| diffusers ShapEPipeline (mesh) | {best['diffusers']:.2f} | 1.00 |",
        f"| generate.text_to_3d, turntable off | {best['node']:.2f} | "
        f"{best['node'] / best['diffusers']:.2f} |",
        f"| generate.text_to_3d, 24-frame 256² turntable | {best['node + turntable']:.2f} | "
        f"{best['node + turntable'] / best['diffusers']:.2f} |",
    ]
    text = "\n".join(lines)
    print(text)
    if args.md:
        args.md.parent.mkdir(parents=True, exist_ok=True)
        args.md.write_text(text + "\n")


if __name__ == "__main__":
    main()
