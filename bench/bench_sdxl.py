"""SDXL benchmark (issue 14): feature reuse and token merging on an SDXL-shaped mini model.

Run: python bench/bench_sdxl.py [--size 256] [--steps 20] [--prompts 2] [--reps 3]
     [--levels 1 2] [--periods 2 3 4 5] [--warmups 0] [--json out/bench/sdxl.json]
     [--md out/bench/sdxl.md] [--from-json]

The model is ``BENCH_XL`` from engine/diffusion/minimodels.py (SDXL's block layout at a fifth of
its width, random weights, calibrated autoencoders), built into out/bench/model_xl on first use.
Rows: Fathom's loop with no accelerations (checked equal to diffusers' StableDiffusionXLPipeline
on the first prompt before any timing), the pipeline itself, DeepCache 0.1.1 on that pipeline
(the published peer; ``pip install DeepCache==0.1.1``), Clockwork (identity adaptor) and token
merging in Fathom's loop. Timings are the best of ``--reps`` interleaved repetitions (each
configuration runs once per repetition, so load from other processes hits all alike); PSNR is
against the plain output of the same pipeline, prompt and seed. A per-level timing of one UNet
call says where this model spends its time, which is what decides how much each reuse scheme
can save.
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

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_generate import interleaved, mean_psnr  # type: ignore[import-not-found]

from fathom.engine.accel.clockwork import Clockwork
from fathom.engine.accel.tome import TokenMerge
from fathom.engine.diffusion.loop import generate
from fathom.engine.diffusion.minimodels import BENCH_XL, save_model
from fathom.engine.diffusion.schedulers import make_scheduler
from fathom.engine.models.diffusion import load_components

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "out" / "bench"
PROMPTS = ["a lighthouse on a cliff at dusk", "a plate of pasta with basil"]
GUIDANCE = 5.0  # SDXL's default
#: The pipelines' results may differ by float rounding only (the loop tests' bound).
EQUAL_TOL = 2 / 255


# --------------------------------------------------------------------------- where time goes


def _unet_inputs(unet: Any, size: int) -> tuple[tuple, dict]:
    """Inputs of one CFG (batch 2) UNet call at ``size``² with SDXL's extra conditioning."""
    cfg = unet.config
    pooled = int(cfg.projection_class_embeddings_input_dim) - 6 * int(cfg.addition_time_embed_dim)
    x = torch.randn(2, int(cfg.in_channels), size // 8, size // 8)
    added = {"text_embeds": torch.randn(2, pooled), "time_ids": torch.randn(2, 6)}
    embeds = torch.randn(2, 77, int(cfg.cross_attention_dim))
    return (x, torch.tensor(500)), {"encoder_hidden_states": embeds, "added_cond_kwargs": added}


@torch.no_grad()
def level_times(unet: Any, size: int, reps: int = 3) -> dict[str, Any]:
    """Seconds of one CFG UNet call and the share of each resolution level (its down block,
    and up block; the lowest level also its mid block), best of ``reps``. Clockwork at level L
    skips every level ≥ L on its cheap steps; DeepCache's branch 0 skips all but the last
    highest-resolution up layer: these shares bound what each can save."""
    n = len(unet.down_blocks)
    blocks = {f"down{i}": b for i, b in enumerate(unet.down_blocks)}
    blocks.update({f"up{n - 1 - i}": b for i, b in enumerate(unet.up_blocks)})  # up{L}: level L
    blocks["mid"] = unet.mid_block
    spent: dict[str, float] = {}
    starts: dict[str, float] = {}
    hooks = []
    for name, block in blocks.items():

        def pre(m: Any, a: Any, name: str = name) -> None:
            starts[name] = time.perf_counter()

        def post(m: Any, a: Any, o: Any, name: str = name) -> None:
            spent[name] = spent.get(name, 0.0) + time.perf_counter() - starts[name]

        hooks += [block.register_forward_pre_hook(pre), block.register_forward_hook(post)]
    args, kwargs = _unet_inputs(unet, size)
    best: dict[str, Any] = {"total": float("inf")}
    try:
        unet(*args, **kwargs)  # warm-up
        for _ in range(reps):
            spent.clear()
            t0 = time.perf_counter()
            unet(*args, **kwargs)
            total = time.perf_counter() - t0
            if total < best["total"]:
                best = {"total": total, "blocks": dict(spent)}
    finally:
        for h in hooks:
            h.remove()
    b = best["blocks"]
    levels = {f"level {i}": b[f"down{i}"] + b[f"up{i}"] for i in range(n)}
    levels[f"level {n - 1}"] += b["mid"]
    levels["stem (conv in/out, embeddings)"] = best["total"] - sum(b.values())
    return {
        "size": size,
        "seconds": best["total"],
        "share": {k: v / best["total"] for k, v in levels.items()},
    }


# --------------------------------------------------------------------------- configurations


def xl_pipeline(comps: Any) -> Any:
    """diffusers' SDXL pipeline over the same modules (nothing copied), DDIM as in our loop."""
    from diffusers import StableDiffusionXLPipeline

    pipe: Any = StableDiffusionXLPipeline(
        unet=comps.unet,
        vae=comps.vae,
        text_encoder=comps.text_encoder,
        text_encoder_2=comps.text_encoder_2,
        tokenizer=comps.tokenizer,
        tokenizer_2=comps.tokenizer_2,
        scheduler=make_scheduler(comps.scheduler, "ddim"),
        force_zeros_for_empty_prompt=comps.force_zeros,
        add_watermarker=False,
    )
    pipe.set_progress_bar_config(disable=True)
    return pipe


def runners(comps: Any, pipe: Any, size: int, steps: int, prompts: list[str]) -> tuple:
    """(ours, theirs): callables that render every prompt (seed = its index) with Fathom's
    loop and with the pipeline, each taking the accelerations to attach (ours only)."""

    def ours(accel: tuple = ()) -> list[np.ndarray]:
        return [
            generate(
                comps,
                p,
                "",
                steps=steps,
                guidance=GUIDANCE,
                seed=i,
                width=size,
                height=size,
                scheduler="ddim",
                accel=list(accel),
            ).images[0]
            for i, p in enumerate(prompts)
        ]

    def theirs() -> list[np.ndarray]:
        return [
            pipe(
                p,
                num_inference_steps=steps,
                guidance_scale=GUIDANCE,
                width=size,
                height=size,
                output_type="np",
                generator=torch.Generator("cpu").manual_seed(i),
            ).images[0]
            for i, p in enumerate(prompts)
        ]

    return ours, theirs


def deepcache_config(pipe: Any, theirs: Callable[[], Any], k: int) -> Callable[[], Any]:
    from DeepCache import DeepCacheSDHelper

    helper = DeepCacheSDHelper(pipe=pipe)

    def run() -> Any:
        helper.set_params(cache_interval=k, cache_branch_id=0)
        helper.enable()
        try:
            return theirs()
        finally:
            helper.disable()

    return run


def check_equal(ours: Callable[..., Any], theirs: Callable[[], Any], log: Callable) -> float:
    """Our accel-free loop must equal the SDXL pipeline before anything is compared to it."""
    a, b = ours()[0], theirs()[0]
    diff = float(np.abs(a - b).max())
    log(f"Fathom plain vs StableDiffusionXLPipeline, first prompt: max |diff| {diff * 255:.3f}/255")
    if diff > EQUAL_TOL:
        raise SystemExit(f"Fathom's loop differs from the SDXL pipeline by {diff * 255:.2f}/255")
    return diff


def build_configs(
    comps: Any, pipe: Any, args: argparse.Namespace, log: Callable
) -> tuple[dict[str, Callable[[], Any]], str | None]:
    """Every configuration, keyed by row name; DeepCache rows are left out (with the reason
    returned) if the peer cannot run on this pipeline."""
    prompts = PROMPTS[: args.prompts]
    ours, theirs = runners(comps, pipe, args.size, args.steps, prompts)
    configs: dict[str, Callable[[], Any]] = {
        "Fathom plain": ours,
        "diffusers SDXL pipeline": theirs,
    }
    deepcache_error = None
    try:  # one short run shows whether the peer works on this SDXL pipeline at all
        _, probe = runners(comps, pipe, 64, 4, prompts[:1])
        deepcache_config(pipe, probe, 2)()
        for k in (2, 3, 4):
            configs[f"DeepCache interval {k}"] = deepcache_config(pipe, theirs, k)
    except Exception as exc:  # noqa: BLE001 - any failure of the peer is reported, not fatal
        deepcache_error = f"{type(exc).__name__}: {exc}"
        log(f"DeepCache failed on StableDiffusionXLPipeline: {deepcache_error}")
    for level in args.levels:
        for warmup in args.warmups:
            for k in args.periods:
                cw = Clockwork(period=k, level=level, adaptor="identity", warmup=warmup)
                configs[f"Clockwork L{level} p{k} w{warmup}"] = partial(ours, (cw,))
    # SDXL has no attention at the highest resolution, so merging must reach level 1
    # (max_downsample 2): with tomesd's default (1) nothing would be merged. Level 2 holds most
    # of the time on SDXL, hence also a row that merges there (max_downsample 4).
    for ratio, down in ((0.3, 2), (0.5, 2), (0.5, 4)):
        tm = TokenMerge(ratio=ratio, max_downsample=down)
        where = "level 1" if down == 2 else "levels 1-2"
        configs[f"ToMe {ratio} ({where})"] = partial(ours, (tm,))
    return configs, deepcache_error


# --------------------------------------------------------------------------- report


def make_rows(res: dict[str, dict[str, Any]], n_prompts: int) -> list[dict[str, Any]]:
    """Per row: seconds per image, speed-up over its own pipeline's plain run (DeepCache runs in
    diffusers' pipeline, the others in Fathom's loop) and over Fathom's, PSNR to its own plain."""
    ours, theirs = res["Fathom plain"], res["diffusers SDXL pipeline"]
    rows = []
    for name, r in res.items():
        peer = name.startswith("DeepCache")
        base = theirs if peer else ours
        if name == "diffusers SDXL pipeline":
            base = ours
        rows.append(
            {
                "config": name,
                "seconds": r["best"] / n_prompts,
                "each_rep": [t / n_prompts for t in r["times"]],
                "speedup": base["best"] / r["best"],
                "x_fathom_plain": ours["best"] / r["best"],
                "psnr": mean_psnr(r["out"], base["out"]),
            }
        )
    return rows


def interpolate(points: list[tuple[float, float]], x: float) -> float | None:
    """y at x on the polyline through (x, y) points sorted by x; None outside their range."""
    pts = sorted(points)
    for (x0, y0), (x1, y1) in zip(pts, pts[1:], strict=False):
        if x0 <= x <= x1:
            return y0 if x1 == x0 else y0 + (y1 - y0) * (x - x0) / (x1 - x0)
    if len(pts) == 1 and pts[0][0] == x:
        return pts[0][1]
    return None


def versus_deepcache(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each Clockwork and ToMe point against DeepCache's speed-PSNR line at the same speed-up
    (linear between DeepCache's intervals; nothing where DeepCache has no point that fast or
    slow)."""
    line = [(r["speedup"], r["psnr"]) for r in rows if r["config"].startswith("DeepCache")]
    out = []
    for r in rows:
        if not r["config"].startswith(("Clockwork", "ToMe")) or not line:
            continue
        dc = interpolate(line, r["speedup"])
        out.append(
            {
                "config": r["config"],
                "speedup": r["speedup"],
                "psnr": r["psnr"],
                "deepcache_psnr": dc,
                "gain_db": None if dc is None else r["psnr"] - dc,
            }
        )
    return out


def dominance(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """For each DeepCache point, the Clockwork points at least as fast and at least as close
    to the plain output (which make that DeepCache setting pointless): the curve comparison
    that needs no interpolation."""
    cw = [r for r in rows if r["config"].startswith("Clockwork")]
    return [
        {
            "config": r["config"],
            "speedup": r["speedup"],
            "psnr": r["psnr"],
            "dominated_by": [
                c["config"] for c in cw if c["speedup"] >= r["speedup"] and c["psnr"] >= r["psnr"]
            ],
        }
        for r in rows
        if r["config"].startswith("DeepCache")
    ]


def markdown(results: dict[str, Any]) -> str:
    env, t = results["env"], results["levels"]
    lines = [
        f"Measured {env['date']} on {env['machine']} ({env['threads']} torch threads, no GPU), "
        f"torch {env['torch']}, diffusers {env['diffusers']}, DeepCache {env['deepcache']}; "
        f"{env['size']}², {env['steps']} DDIM steps, guidance {GUIDANCE}, {env['prompts']} "
        f"prompts; best of {env['reps']} interleaved repetitions; "
        f"whole run {env['total_s']:.0f} s; "
        f"load average {env['load_avg_start'][0]:.1f} at the start, "
        f"{env['load_avg_end'][0]:.1f} at the end. Command: `{env['command']}`",
        "",
        f"Fathom plain vs StableDiffusionXLPipeline on the first prompt: max |diff| "
        f"{results['equal_max_diff'] * 255:.3f}/255.",
        "",
        "| config | s/image | speed-up (own plain) | × Fathom plain | PSNR to own plain |",
        "|---|---|---|---|---|",
    ]
    for r in results["rows"]:
        lines.append(
            f"| {r['config']} | {r['seconds']:.2f} | {r['speedup']:.2f}× | "
            f"{r['x_fathom_plain']:.2f}× | {r['psnr']:.1f} dB |"
        )
    if results.get("deepcache_error"):
        lines += ["", f"DeepCache could not run: {results['deepcache_error']}"]
    lines += ["", "**Against DeepCache's line at the same speed-up**", ""]
    lines += ["| config | speed-up | PSNR | DeepCache at that speed | difference |"]
    lines += ["|---|---|---|---|---|"]
    for v in results["versus"]:
        dc = "outside its range"
        if v["deepcache_psnr"] is not None:
            dc = f"{v['deepcache_psnr']:.1f} dB"
        gain = "–" if v["gain_db"] is None else f"{v['gain_db']:+.1f} dB"
        lines.append(
            f"| {v['config']} | {v['speedup']:.2f}× | {v['psnr']:.1f} dB | {dc} | {gain} |"
        )
    lines += ["", "| DeepCache | speed-up | PSNR | Clockwork settings as fast and as close |"]
    lines += ["|---|---|---|---|"]
    for d in dominance(results["rows"]):
        who = ", ".join(d["dominated_by"]) or "none"
        lines.append(f"| {d['config']} | {d['speedup']:.2f}× | {d['psnr']:.1f} dB | {who} |")
    big = results["levels_large"]
    lines += [
        "",
        f"**Where one CFG UNet call spends its time** ({t['size']}²: {t['seconds']:.3f} s; "
        f"at {big['size']}²: {big['seconds']:.3f} s)",
    ]
    lines += ["", "| part | share |", "|---|---|"]
    for k, v in t["share"].items():
        lines.append(f"| {k} | {100 * v:.1f} % |")
    return "\n".join(lines) + "\n"


def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", type=Path, default=OUT / "model_xl")
    ap.add_argument("--json", type=Path, default=OUT / "sdxl.json")
    ap.add_argument("--md", type=Path, default=OUT / "sdxl.md")
    ap.add_argument("--size", type=int, default=256, help="512 takes ~4× as long per image")
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--prompts", type=int, default=2, choices=range(1, len(PROMPTS) + 1))
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--levels", type=int, nargs="+", default=[1, 2], help="Clockwork levels")
    ap.add_argument("--warmups", type=int, nargs="+", default=[0], help="Clockwork warm-ups")
    ap.add_argument("--periods", type=int, nargs="+", default=[2, 3, 4, 5])
    ap.add_argument("--from-json", action="store_true", help="only rewrite --md from --json")
    return ap.parse_args()


def main() -> None:
    args = parse_args()
    if args.from_json:
        args.md.write_text(markdown(json.loads(args.json.read_text(encoding="utf-8"))), "utf-8")
        return
    torch.set_num_threads(os.cpu_count() or 1)
    t_start, load_start = time.perf_counter(), os.getloadavg()
    log = print
    if not (args.model / "model_index.json").exists():
        log(f"building the SDXL-shaped benchmark model into {args.model}")
        save_model(args.model, BENCH_XL)
    comps = load_components(args.model, "cpu", "float32")
    pipe = xl_pipeline(comps)
    results: dict[str, Any] = {
        "levels": level_times(comps.unet, args.size),
        "levels_large": level_times(comps.unet, 2 * args.size, reps=1),
    }
    for key in ("levels", "levels_large"):
        lv = results[key]
        shares = ", ".join(f"{k} {100 * v:.0f} %" for k, v in lv["share"].items())
        log(f"UNet call (CFG) at {lv['size']}²: {lv['seconds']:.3f} s; {shares}")
    ours, theirs = runners(comps, pipe, args.size, args.steps, PROMPTS[:1])
    results["equal_max_diff"] = check_equal(ours, theirs, log)
    configs, results["deepcache_error"] = build_configs(comps, pipe, args, log)
    res = interleaved(configs, args.reps)
    results["rows"] = make_rows(res, args.prompts)
    results["versus"] = versus_deepcache(results["rows"])
    from importlib.metadata import version

    import diffusers

    results["env"] = {
        "date": time.strftime("%Y-%m-%d"),
        "machine": platform.platform(),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "diffusers": diffusers.__version__,
        "deepcache": version("DeepCache"),
        "size": args.size,
        "steps": args.steps,
        "prompts": args.prompts,
        "reps": args.reps,
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
    log(f"total {results['env']['total_s']:.0f} s; results in {args.json} and {args.md}")


if __name__ == "__main__":
    main()
