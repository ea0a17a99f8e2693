"""LoRA benchmark (issue 14): what LoRAs cost per denoising step, unfused and fused.

Run: python bench/bench_lora.py [--rank 16] [--reps 5] [--json out/bench/lora.json]
     [--md out/bench/lora.md]

On the SD-1.5-shaped mini model (``BENCH`` in engine/diffusion/minimodels.py, built into
out/bench/model on first use, as bench_generate.py builds it) with random LoRAs on the UNet's
attention projections (to_q, to_k, to_v, to_out.0; made with peft as tests/conftest.py
``make_lora`` makes them, ``--rank`` wide). Rows, each a run of Fathom's loop:

- no LoRA, on a model that never had one (the baseline);
- no LoRA, on a model with three adapters loaded but switched off: Fathom keeps adapters loaded
  between runs (engine/diffusion/lora.py), so the next run without them pays peft's wrappers;
- one and three LoRAs unfused: diffusers' ``set_adapters``, how Fathom runs them
  (``engine.diffusion.lora.active``); every step adds the low-rank products;
- one and three LoRAs fused (``fuse_lora`` before the run, ``unfuse_lora`` after): the steps
  cost what the base model's do, fusing and unfusing cost once per run.

Per-step time is the fastest step of ``--reps`` interleaved repetitions (every row runs once
per repetition, so load from other processes hits all alike; every DDIM step does the same work,
so the fastest is the least disturbed).
The one-time costs (loading a LoRA file, switching adapters on and off, fusing, unfusing,
deleting) are timed apart, best of the same number of tries.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import torch

from fathom.engine.diffusion.loop import generate

# _load is what `active` runs on a LoRA's first use: diffusers' loader plus Fathom's table.
from fathom.engine.diffusion.lora import _load, active, adapter_name, pipeline_view
from fathom.engine.diffusion.minimodels import BENCH, save_model
from fathom.engine.models.diffusion import load_components

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "out" / "bench"
PROMPT = "a lighthouse on a cliff at dusk"
#: (size, steps, extra repetitions): the per-step LoRA cost is per token, the wrappers' per call,
#: so two resolutions show both; 512² runs fewer steps to keep the benchmark short.
LORA_B_SCALE = 0.05
SIZES = ((256, 10, 0), (512, 5, -1))


def make_lora(model: Path, out: Path, seed: int, rank: int) -> Path:
    """A random LoRA for the model folder (rank ``rank`` on the UNet attention projections),
    saved as training scripts save one (diffusers layout, safetensors); built once."""
    path = out / "pytorch_lora_weights.safetensors"
    if path.exists():
        return path
    from diffusers import DiffusionPipeline
    from diffusers.utils import convert_state_dict_to_diffusers
    from peft import LoraConfig
    from peft.utils import get_peft_model_state_dict

    pipe = DiffusionPipeline.from_pretrained(model)
    torch.manual_seed(seed)
    targets = ["to_q", "to_k", "to_v", "to_out.0"]
    pipe.unet.add_adapter(
        LoraConfig(r=rank, lora_alpha=rank, init_lora_weights=False, target_modules=targets)
    )
    # peft's random B is as large as A: such a LoRA swamps the model (latents several times
    # their normal spread). Scaled down, it moves the result as a trained one does; the work
    # per step, which is what is measured, does not depend on the values.
    for name, param in pipe.unet.named_parameters():
        if "lora_B" in name:
            param.data.mul_(LORA_B_SCALE)
    layers = convert_state_dict_to_diffusers(get_peft_model_state_dict(pipe.unet))
    out.mkdir(parents=True, exist_ok=True)
    type(pipe).save_lora_weights(out, unet_lora_layers=layers, safe_serialization=True)
    return path


# --------------------------------------------------------------------------- per-step rows


def run_loop(comps: Any, size: int, steps: int) -> dict[str, Any]:
    """One text-to-image run of Fathom's loop without decoding (the steps are what LoRAs
    change): its fastest step (every DDIM step does the same work, so the fastest is the one
    other processes disturbed least) and the final latents."""
    r = generate(
        comps,
        PROMPT,
        "",
        steps=steps,
        seed=0,
        width=size,
        height=size,
        scheduler="ddim",
        decode_output=False,
    )
    return {"step": min(r.step_seconds), "latents": r.latents}


def unfused(comps: Any, loras: list[Path], size: int, steps: int) -> Callable[[], dict]:
    def run() -> dict[str, Any]:
        with active(comps, [(p, 1.0) for p in loras]):
            return run_loop(comps, size, steps)

    return run


def fused(comps: Any, loras: list[Path], size: int, steps: int) -> Callable[[], dict]:
    """Fuse the LoRAs into the UNet's weights for the run and take them out after, as a
    fused mode in Fathom would have to (the components are shared with other nodes)."""

    def run() -> dict[str, Any]:
        view = pipeline_view(comps)
        names = [adapter_name(p) for p in loras]
        view.enable_lora()
        view.set_adapters(names, [1.0] * len(names))
        t0 = time.perf_counter()
        view.fuse_lora(components=["unet"], lora_scale=1.0, adapter_names=names)
        t_fuse = time.perf_counter() - t0
        try:
            out = run_loop(comps, size, steps)
        finally:
            t0 = time.perf_counter()
            view.unfuse_lora(components=["unet"])
            t_unfuse = time.perf_counter() - t0
            view.disable_lora()
        return {**out, "fuse": t_fuse, "unfuse": t_unfuse}

    return run


def step_rows(clean: Any, loaded: Any, loras: list[Path], size: int, steps: int, reps: int) -> list:
    """The six rows at one size, interleaved; per row the best mean step time and, for the
    fused rows, the best fuse and unfuse times; latents are compared to check the work."""
    configs: dict[str, Callable[[], dict]] = {
        "no LoRA": lambda: run_loop(clean, size, steps),
        "no LoRA, 3 adapters loaded and off": lambda: run_loop(loaded, size, steps),
        "1 LoRA, unfused (set_adapters)": unfused(loaded, loras[:1], size, steps),
        "3 LoRAs, unfused (set_adapters)": unfused(loaded, loras, size, steps),
        "1 LoRA, fused": fused(loaded, loras[:1], size, steps),
        "3 LoRAs, fused": fused(loaded, loras, size, steps),
    }
    res: dict[str, list[dict]] = {k: [] for k in configs}
    for _ in range(reps):
        for name, fn in configs.items():
            res[name].append(fn())
    base = min(r["step"] for r in res["no LoRA"])
    ref = {k: v[0]["latents"] for k, v in res.items()}
    rows = []
    for name, runs in res.items():
        best = min(r["step"] for r in runs)
        row: dict[str, Any] = {
            "config": name,
            "ms_per_step": 1000 * best,
            "steps_per_s": 1 / best,
            "ratio": best / base,
            # how far the result is from no LoRA: 0 where no LoRA is on, large where one is
            "rms_to_none": float((ref[name] - ref["no LoRA"]).pow(2).mean().sqrt()),
        }
        if "fuse" in runs[0]:
            row["fuse_s"] = min(r["fuse"] for r in runs)
            row["unfuse_s"] = min(r["unfuse"] for r in runs)
            twin = name.replace("fused", "unfused (set_adapters)")
            row["rms_to_unfused"] = float((ref[name] - ref[twin]).pow(2).mean().sqrt())
        rows.append(row)
    return rows


# --------------------------------------------------------------------------- one-time costs


def weight_drift(clean: Any, loaded: Any) -> float:
    """Largest change of any base weight of the UNet that went through the fuse/unfuse cycles
    (unfusing subtracts the product it added, so float rounding may be left behind)."""
    ref = clean.unet.state_dict()
    worst = 0.0
    for key, w in loaded.unet.state_dict().items():
        base = key.replace(".base_layer", "")
        if "lora_" in key or base not in ref:
            continue
        worst = max(worst, float((w - ref[base]).abs().max()))
    return worst


def timed(fn: Callable[[], Any]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def one_time_costs(model: Path, loras: list[Path], reps: int) -> dict[str, float]:
    """Best of ``reps`` fresh model loads: the model, each LoRA file (the first one also makes
    peft wrap the attention layers), Fathom's switching on and off of loaded adapters, and
    deleting them (Fathom deletes the least recently used past eight)."""
    names = [adapter_name(p) for p in loras]
    best: dict[str, float] = {}

    def keep(key: str, seconds: float) -> None:
        best[key] = min(best.get(key, float("inf")), seconds)

    for _ in range(reps):
        t0 = time.perf_counter()
        comps = load_components(model, "cpu", "float32")
        keep("load the model (load_components)", time.perf_counter() - t0)
        view = pipeline_view(comps)
        for i, (p, n) in enumerate(zip(loras, names, strict=True)):
            label = "load LoRA 1 (wraps the layers)" if i == 0 else f"load LoRA {i + 1}"
            keep(label, timed(partial(_load, view, comps, p, n)))
        for k in (1, 3):
            sel = [(p, 1.0) for p in loras[:k]]

            def switch(sel: list = sel, comps: Any = comps) -> None:
                with active(comps, sel):
                    pass

            keep(f"switch {k} loaded LoRA(s) on and off (active)", timed(switch))
        keep("delete 3 adapters", timed(partial(view.delete_adapters, names)))
    return best


# --------------------------------------------------------------------------- report


def markdown(results: dict[str, Any]) -> str:
    env = results["env"]
    lines = [
        f"Measured {env['date']} on {env['machine']} ({env['threads']} torch threads, no GPU), "
        f"torch {env['torch']}, diffusers {env['diffusers']}, peft {env['peft']}; LoRA rank "
        f"{env['rank']} on to_q/to_k/to_v/to_out.0 of every UNet attention; guidance 7.5 (UNet "
        f"batch 2), DDIM; fastest step of {env['reps']} interleaved repetitions "
        f"(512²: {env['reps_large']}); whole run {env['total_s']:.0f} s; load average "
        f"{env['load_avg_start'][0]:.1f} at the start, {env['load_avg_end'][0]:.1f} at the end. "
        f"Command: `{env['command']}`",
    ]
    for block in results["sizes"]:
        lines += [
            "",
            f"**{block['size']}², {block['steps']} steps**",
            "",
            "| config | ms/step | steps/s | × no LoRA | fuse + unfuse | latent RMS to no LoRA "
            "| RMS fused vs unfused |",
            "|---|---|---|---|---|---|---|",
        ]
        for r in block["rows"]:
            fuse = (
                f"{1000 * r['fuse_s']:.0f} + {1000 * r['unfuse_s']:.0f} ms"
                if "fuse_s" in r
                else "–"
            )
            twin = f"{r['rms_to_unfused']:.1e}" if "rms_to_unfused" in r else "–"
            lines.append(
                f"| {r['config']} | {r['ms_per_step']:.1f} | {r['steps_per_s']:.2f} | "
                f"{r['ratio']:.3f} | {fuse} | {r['rms_to_none']:.3f} | {twin} |"
            )
    lines += ["", "**One-time costs** (best of fresh loads)", "", "| operation | time |"]
    lines += ["|---|---|"]
    for k, v in results["one_time"].items():
        lines.append(f"| {k} | {1000 * v:.0f} ms |")
    lines += [
        "",
        f"Largest change of a base UNet weight after {results['fuse_cycles']} fuse/unfuse "
        f"cycles: {results['weight_drift']:.1e}.",
    ]
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", type=Path, default=OUT / "model")
    ap.add_argument("--rank", type=int, default=16)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--json", type=Path, default=OUT / "lora.json")
    ap.add_argument("--md", type=Path, default=OUT / "lora.md")
    args = ap.parse_args()
    torch.set_num_threads(os.cpu_count() or 1)
    t_start, load_start = time.perf_counter(), os.getloadavg()
    log = print
    if not (args.model / "model_index.json").exists():
        log(f"building the benchmark model into {args.model}")
        save_model(args.model, BENCH)
    loras = [
        make_lora(args.model, OUT / "loras" / f"seed{s}_r{args.rank}", s, args.rank)
        for s in range(3)
    ]
    clean = load_components(args.model, "cpu", "float32")
    loaded = load_components(args.model, "cpu", "float32")
    with active(loaded, [(p, 1.0) for p in loras]):
        pass  # load all three once; from here on they are only switched
    results: dict[str, Any] = {"sizes": [], "fuse_cycles": 0}
    for size, steps, extra in SIZES:
        reps = max(1, args.reps + extra)
        rows = step_rows(clean, loaded, loras, size, steps, reps)
        results["sizes"].append({"size": size, "steps": steps, "reps": reps, "rows": rows})
        results["fuse_cycles"] += 2 * reps
        for r in rows:
            log(f"{size}² {r['config']:36s} {r['ms_per_step']:7.1f} ms/step  ×{r['ratio']:.3f}")
    results["weight_drift"] = weight_drift(clean, loaded)
    results["one_time"] = one_time_costs(args.model, loras, args.reps)
    import diffusers
    import peft

    results["env"] = {
        "date": time.strftime("%Y-%m-%d"),
        "machine": platform.platform(),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "diffusers": diffusers.__version__,
        "peft": peft.__version__,
        "rank": args.rank,
        "reps": args.reps,
        "reps_large": results["sizes"][-1]["reps"],
        "load_avg_start": load_start,
        "load_avg_end": os.getloadavg(),
        "total_s": time.perf_counter() - t_start,
        "command": " ".join(["python", *sys.argv]),
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(results, indent=1, default=float), encoding="utf-8")
    md = markdown(results)
    args.md.write_text(md, encoding="utf-8")
    log(md)


if __name__ == "__main__":
    main()
