"""Generation benchmark (issue 7): each efficiency technique beside plain diffusers and its peer.

Run: python bench/bench_generate.py [--json out/bench/generate.json] [--md out/bench/generate.md]
     [--plot docs/bench_speed_psnr.png] [--reps 3] [--frames 16] [--only ROW ...]

All rows run in one process on the SD-1.5-shaped mini model (engine/accel/benchmodel.py, random
weights, built into out/bench/model on first use) at 256×256 unless a row says otherwise. The
peers are the PyPI packages (pip install -e ".[bench]" and `pip install --no-deps
streamdiffusion==0.1.1`): StreamDiffusion 0.1.1, DeepCache 0.1.1, tomesd 0.1.3. Timings are the
best of ``--reps`` interleaved repetitions (every configuration runs once per repetition, so
load from other processes hits all of them alike); PSNR is against the row's own reference.
The Clockwork adaptor is trained by bench/train_clockwork_adaptor.py when its file is missing.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fathom.engine.accel.adaptive import AdaptiveSteps
from fathom.engine.accel.clockwork import Clockwork, ClockworkAdaptor
from fathom.engine.accel.tome import TokenMerge
from fathom.engine.diffusion.minimodels import BENCH, load_pipeline, save_model
from fathom.engine.diffusion.stream import StreamPipeline

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "out" / "bench"
PROMPTS = ["a lighthouse on a cliff at dusk", "a plate of pasta with basil"]


# --------------------------------------------------------------------------- helpers


def psnr(a: np.ndarray | torch.Tensor, b: np.ndarray | torch.Tensor, peak: float = 1.0) -> float:
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    mse = float(np.mean((a - b) ** 2))
    return float("inf") if mse == 0 else 10 * np.log10(peak**2 / mse)


def interleaved(configs: dict[str, Callable[[], Any]], reps: int) -> dict[str, dict[str, Any]]:
    """Run every config once per repetition; keep the best time and the first output."""
    res: dict[str, dict[str, Any]] = {k: {"times": [], "out": None} for k in configs}
    for _ in range(reps):
        for name, fn in configs.items():
            t0 = time.perf_counter()
            out = fn()
            res[name]["times"].append(time.perf_counter() - t0)
            if res[name]["out"] is None:
                res[name]["out"] = out
    for r in res.values():
        r["best"] = min(r["times"])
    return res


def ddim(pipe: Any) -> Any:
    from diffusers import DDIMScheduler

    pipe.scheduler = DDIMScheduler.from_config(pipe.scheduler.config)
    return pipe


def txt2img(pipe: Any, prompts: list[str], size: int, steps: int) -> list[np.ndarray]:
    return [
        pipe(
            p,
            height=size,
            width=size,
            num_inference_steps=steps,
            generator=torch.Generator().manual_seed(i),
            output_type="np",
        ).images[0]
        for i, p in enumerate(prompts)
    ]


def attached(accel: Any, pipe: Any, fn: Callable[[], Any]) -> Callable[[], Any]:
    def run() -> Any:
        accel.attach(pipe)
        try:
            return fn()
        finally:
            accel.detach()

    return run


def mean_psnr(outs: list[Any], refs: list[Any]) -> float:
    return float(np.mean([psnr(a, b) for a, b in zip(outs, refs, strict=True)]))


# --------------------------------------------------------------------------- rows


def video_frames(n: int, size: int) -> list[torch.Tensor]:
    """A smooth synthetic clip: drifting colour waves (1×3×size×size in [-1, 1] per frame)."""
    yy, xx = torch.meshgrid(torch.linspace(-1, 1, size), torch.linspace(-1, 1, size), indexing="ij")
    out = []
    for i in range(n):
        ph = 0.12 * i
        r = torch.sin(5 * xx + ph) * torch.cos(3 * yy - 0.5 * ph)
        g = torch.sin(4 * (xx + yy) + 0.7 * ph)
        b = torch.cos(6 * yy + ph) * torch.sin(2 * xx - 0.3 * ph)
        out.append(torch.stack([r, g, b])[None] * 0.8)
    return out


def inert_cuda_timing() -> None:
    """StreamDiffusion 0.1.1 times each frame with CUDA events: make them inert on CPU."""
    import streamdiffusion.pipeline as sdp

    class Event:
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            self.t = 0.0

        def record(self, *args: Any) -> None:
            self.t = time.perf_counter()

        def elapsed_time(self, other: Event) -> float:
            return (other.t - self.t) * 1000.0

    sdp.torch.cuda.Event = Event  # type: ignore[attr-defined]
    sdp.torch.cuda.synchronize = lambda *a, **k: None  # type: ignore[assignment]


def _stream_rows(res: dict[str, Any], n: int, log: Callable[[str], None]) -> list[dict]:
    """Frames per second of each stream configuration over ``n`` timed frames, as ratios to
    the diffusers loop and the peer, and the PSNR of our accelerated outputs to our plain one."""
    ref = res["ours"]["out"]
    rows = []
    peer_fps = n / res["StreamDiffusion 0.1.1"]["best"]
    loop_fps = n / res["diffusers img2img loop"]["best"]
    for name, r in res.items():
        fps = n / r["best"]
        row = {
            "config": name,
            "s_per_frame": r["best"] / n,
            "fps": fps,
            "x_loop": fps / loop_fps,
            "x_peer": fps / peer_fps,
        }
        if name.startswith("ours"):
            row["psnr_to_ours"] = mean_psnr(
                [(o + 1) / 2 for o in r["out"]], [(o + 1) / 2 for o in ref]
            )
        rows.append(row)
        log(
            f"stream  {name:34s} {row['s_per_frame']:.3f} s/frame  {fps:5.2f} fps  "
            f"x peer {row['x_peer']:.2f}  psnr {row.get('psnr_to_ours', float('nan')):.1f}"
        )
    return rows


def bench_stream(model: Path, n_frames: int, reps: int, log: Callable[[str], None]) -> dict:
    from diffusers import AutoencoderTiny, LCMScheduler, StableDiffusionImg2ImgPipeline

    size, prompt, t_index = 256, "a watercolor painting of a harbour", (32, 45)
    frames = video_frames(n_frames + 3, size)
    warm, timed = frames[:3], frames[3:]
    pipe = load_pipeline(model)
    tiny = AutoencoderTiny.from_pretrained(str(model / "vae_tiny")).eval()

    # 1. The plain diffusers img2img loop: LCM, 4 steps × strength 0.5 = 2 UNet steps, CFG 1.2.
    img2img = StableDiffusionImg2ImgPipeline(**pipe.components)
    img2img.scheduler = LCMScheduler.from_config(pipe.scheduler.config)
    img2img.set_progress_bar_config(disable=True)

    def run_img2img() -> list[torch.Tensor]:
        return [
            img2img(
                prompt,
                image=(f + 1) / 2,
                num_inference_steps=4,
                strength=0.5,
                guidance_scale=1.2,
                generator=torch.Generator().manual_seed(0),
                output_type="pt",
            ).images
            for f in timed
        ]

    # 2. StreamDiffusion 0.1.1: Stream Batch, RCFG self, TAESD.
    inert_cuda_timing()
    from streamdiffusion import StreamDiffusion

    peer = StreamDiffusion(
        pipe,
        t_index_list=list(t_index),
        torch_dtype=torch.float32,
        width=size,
        height=size,
        cfg_type="self",
    )
    peer.vae = tiny
    peer.prepare(prompt, num_inference_steps=50, guidance_scale=1.2)

    def run_peer() -> list[torch.Tensor]:
        for f in warm:
            peer((f[0] + 1) / 2)
        return [peer((f[0] + 1) / 2) for f in timed]

    # 3. Ours, accel-free and accelerated.
    ours = StreamPipeline(
        pipe.unet, pipe.vae, pipe.text_encoder, pipe.tokenizer, pipe.scheduler, tiny_vae=tiny
    )
    variants: dict[str, dict[str, Any]] = {
        "ours": {},
        "ours + clockwork p2": {"clock_period": 2},
        "ours + clockwork p3": {"clock_period": 3},
        "ours + ToMe 0.5": {"token_merge": 0.5},
        "ours + clockwork p2 + ToMe 0.5": {"clock_period": 2, "token_merge": 0.5},
        "ours + clockwork p3 + ToMe 0.5": {"clock_period": 3, "token_merge": 0.5},
        "ours + clockwork p3 + ToMe 0.7": {"clock_period": 3, "token_merge": 0.7},
    }

    def run_ours(kw: dict[str, Any]) -> Callable[[], list[torch.Tensor]]:
        def run() -> list[torch.Tensor]:
            ours.prepare(prompt, t_index_list=t_index, guidance=1.2, cfg_type="self", seed=2, **kw)
            for f in warm:
                ours(f)
            out = [ours(f) for f in timed]
            ours.close()
            return out

        return run

    configs: dict[str, Callable[[], Any]] = {
        "diffusers img2img loop": run_img2img,
        "StreamDiffusion 0.1.1": run_peer,
    }
    configs.update({k: run_ours(v) for k, v in variants.items()})
    res = interleaved(configs, reps)
    rows = _stream_rows(res, len(timed), log)
    return {"size": size, "frames": len(timed), "t_index_list": list(t_index), "rows": rows}


def bench_feature_reuse(
    model: Path, adaptor_path: Path, reps: int, log: Callable[[str], None]
) -> dict:
    from DeepCache import DeepCacheSDHelper

    size, steps = 256, 20
    pipe = ddim(load_pipeline(model))
    adaptor = ClockworkAdaptor.load(adaptor_path)

    def plain() -> list[np.ndarray]:
        return txt2img(pipe, PROMPTS, size, steps)

    helper = DeepCacheSDHelper(pipe=pipe)

    def deepcache(k: int) -> Callable[[], list[np.ndarray]]:
        def run() -> list[np.ndarray]:
            helper.set_params(cache_interval=k, cache_branch_id=0)
            helper.enable()
            try:
                return plain()
            finally:
                helper.disable()

        return run

    configs: dict[str, Callable[[], Any]] = {"plain": plain}
    for k in (2, 3, 4):
        configs[f"DeepCache interval {k}"] = deepcache(k)
    for warmup in (0, 3):
        for name, ad in (("identity", "identity"), ("trained", adaptor)):
            for k in (2, 3, 4, 5):
                cw = Clockwork(period=k, level=1, adaptor=ad, warmup=warmup)
                configs[f"Clockwork {name} p{k} w{warmup}"] = attached(cw, pipe, plain)
    # Clockwork's cheap step still runs the full-resolution blocks, whose self-attention over
    # every latent pixel is most of their cost: merging tokens there is what takes Clockwork
    # into DeepCache's speed range (the studio's stream uses the same pair).
    for k in (2, 3, 4, 5):
        cw = Clockwork(period=k, level=1, adaptor=adaptor, warmup=3)
        tm = TokenMerge(ratio=0.5)
        configs[f"Clockwork trained p{k} w3 + ToMe 0.5"] = attached(
            cw, pipe, attached(tm, pipe, plain)
        )
    res = interleaved(configs, reps)
    base = res["plain"]
    rows = []
    for name, r in res.items():
        row = {
            "config": name,
            "seconds": r["best"] / len(PROMPTS),
            "speedup": base["best"] / r["best"],
            "psnr": mean_psnr(r["out"], base["out"]),
        }
        rows.append(row)
        log(
            f"reuse   {name:30s} {row['seconds']:.2f} s  x{row['speedup']:.2f}  "
            f"{row['psnr']:.1f} dB"
        )
    return {"size": size, "steps": steps, "prompts": PROMPTS, "rows": rows}


def bench_tome(model: Path, reps: int, log: Callable[[str], None]) -> dict:
    import tomesd

    size, steps = 512, 2
    pipe = ddim(load_pipeline(model))

    def plain() -> list[np.ndarray]:
        return txt2img(pipe, PROMPTS[:1], size, steps)

    def peer(ratio: float) -> Callable[[], list[np.ndarray]]:
        def run() -> list[np.ndarray]:
            tomesd.apply_patch(pipe, ratio=ratio)
            try:
                return plain()
            finally:
                tomesd.remove_patch(pipe)

        return run

    configs: dict[str, Callable[[], Any]] = {"plain": plain, "tomesd 0.5": peer(0.5)}
    for ratio in (0.5, 0.6, 0.7):
        configs[f"ours {ratio}"] = attached(TokenMerge(ratio), pipe, plain)
    configs["ours 0.5, plan per layer (as ToMe/tomesd)"] = attached(
        TokenMerge(0.5, share_plan=False), pipe, plain
    )
    configs["ours 0.5 + proportional attention"] = attached(
        TokenMerge(0.5, proportional=True), pipe, plain
    )
    res = interleaved(configs, reps)
    base = res["plain"]
    rows = []
    for name, r in res.items():
        row = {
            "config": name,
            "seconds": r["best"],
            "speedup": base["best"] / r["best"],
            "psnr": mean_psnr(r["out"], base["out"]),
        }
        rows.append(row)
        log(
            f"tome    {name:36s} {row['seconds']:.2f} s  x{row['speedup']:.2f}  "
            f"{row['psnr']:.1f} dB"
        )
    return {"size": size, "steps": steps, "rows": rows}


def bench_adaptive(model: Path, reps: int, log: Callable[[str], None]) -> dict:
    size, steps = 256, 20
    pipe = ddim(load_pipeline(model))
    counts: dict[float, list[int]] = {}

    def config(thr: float) -> Callable[[], list[np.ndarray]]:
        def run() -> list[np.ndarray]:
            outs, n = [], []
            for i, p in enumerate(PROMPTS):
                ad = AdaptiveSteps(threshold=thr)
                outs.append(
                    pipe(
                        p,
                        height=size,
                        width=size,
                        num_inference_steps=steps,
                        generator=torch.Generator().manual_seed(i),
                        output_type="np",
                        callback_on_step_end=ad.diffusers_callback(pipe),
                    ).images[0]
                )
                n.append(ad.steps_run)
            counts[thr] = n
            return outs

        return run

    thresholds = (0.0, 0.005, 0.01, 0.02, 0.05)
    res = interleaved({f"threshold {t}": config(t) for t in thresholds}, reps)
    base = res["threshold 0.0"]
    rows = []
    for thr in thresholds:
        name = f"threshold {thr}"
        r = res[name]
        mean_steps = float(np.mean(counts[thr]))
        row = {
            "config": name,
            "steps_run": mean_steps,
            "steps_saved": steps - mean_steps,
            "seconds": r["best"] / len(PROMPTS),
            "speedup": base["best"] / r["best"],
            "psnr": mean_psnr(r["out"], base["out"]),
        }
        rows.append(row)
        log(
            f"adapt   {name:18s} steps {mean_steps:4.1f}/{steps}  x{row['speedup']:.2f}  "
            f"{row['psnr']:.1f} dB"
        )
    return {"size": size, "steps": steps, "rows": rows}


def bench_previews(model: Path, log: Callable[[str], None]) -> dict:
    try:
        from fathom.engine.diffusion.components import Components
        from fathom.engine.diffusion.preview import measure_overhead
    except ImportError as exc:  # the loop/preview modules belong to the generation nodes
        log(f"preview row skipped: {exc}")
        return {"skipped": str(exc)}
    from diffusers import AutoencoderTiny

    pipe = load_pipeline(model)
    tiny = AutoencoderTiny.from_pretrained(str(model / "vae_tiny")).eval()
    comps = Components(
        pipe.unet, pipe.vae, pipe.text_encoder, pipe.tokenizer, pipe.scheduler, tiny_vae=tiny
    )
    rows = []
    for mode in ("tiny", "linear"):
        r = measure_overhead(comps, mode=mode, steps=4, width=256, height=256, repeats=2)
        r["config"] = mode
        rows.append(r)
        log(
            f"preview {mode:8s} step {r['step_seconds']:.3f} s  preview "
            f"{r['preview_seconds'] * 1000:.1f} ms  = {100 * r['ratio']:.1f}% of a step"
        )
    return {"rows": rows}


# --------------------------------------------------------------------------- report


def plot(reuse: dict, path: Path) -> bool:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    rows = reuse["rows"]
    series = {"DeepCache 0.1.1 (interval 2/3/4)": [r for r in rows if "DeepCache" in r["config"]]}
    for w in (0, 3):
        for kind in ("identity", "trained"):
            series[f"Clockwork {kind} adaptor, warm-up {w} (period 2-5)"] = [
                r
                for r in rows
                if r["config"].startswith(f"Clockwork {kind}") and r["config"].endswith(f"w{w}")
            ]
    series["Clockwork trained, warm-up 3, + ToMe 0.5 (period 2-5)"] = [
        r for r in rows if r["config"].endswith("+ ToMe 0.5")
    ]
    series = {k: v for k, v in series.items() if v}
    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=110)
    marks = ["s-", "o--", "o-", "^--", "^-", "D-"][: len(series)]
    for (label, pts), mk in zip(series.items(), marks, strict=True):
        # in period (interval) order: the configs are listed that way
        line = ax.plot([p["speedup"] for p in pts], [p["psnr"] for p in pts], mk, label=label)
        for p in pts:
            tag = p["config"].split()[-1] if "DeepCache" in p["config"] else p["config"].split()[2]
            ax.annotate(
                tag if "DeepCache" not in p["config"] else f"i{tag}",
                (p["speedup"], p["psnr"]),
                textcoords="offset points",
                xytext=(4, 3),
                fontsize=7,
                color=line[0].get_color(),
            )
    ax.set_xlabel(
        "speed-up over plain diffusers (20 DDIM steps, 256², CPU; pN = period N, iN = interval N)"
    )
    ax.set_ylabel("PSNR to the plain output (dB)")
    ax.set_title("Feature reuse: speed vs fidelity (SD-1.5-shaped mini model)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return True


def markdown(results: dict) -> str:
    lines = []
    env = results["env"]
    lines.append(
        f"Measured {env['date']} on {env['machine']} ({env['threads']} torch threads), "
        f"torch {env['torch']}, diffusers {env['diffusers']}; best of {env['reps']} "
        f"interleaved repetitions (token merging: {env['reps'] + 1}); whole run "
        f"{env['total_s']:.0f} s; load average {env['load_avg_start'][0]:.1f} at the "
        f"start, {env['load_avg_end'][0]:.1f} at the end. Command: `{env['command']}`"
    )
    s = results["stream"]
    lines += [
        "",
        f"**Stream** ({s['size']}², {s['frames']} frames after 3 warm-up frames, "
        f"2 stages t_index {s['t_index_list']} of 50 LCM steps, guidance 1.2, RCFG self, "
        "TAESD; the img2img loop runs LCM 4 steps × strength 0.5 = 2 steps with CFG and "
        "the full VAE). PSNR is to our own accel-free stream output.",
        "",
        "| config | s/frame | frames/s | × img2img loop | × StreamDiffusion | PSNR |",
        "|---|---|---|---|---|---|",
    ]
    for r in s["rows"]:
        p = f"{r['psnr_to_ours']:.1f} dB" if "psnr_to_ours" in r else "–"
        lines.append(
            f"| {r['config']} | {r['s_per_frame']:.3f} | {r['fps']:.2f} | "
            f"{r['x_loop']:.2f} | {r['x_peer']:.2f} | {p} |"
        )
    f = results["reuse"]
    lines += [
        "",
        f"**Feature reuse** ({f['size']}², {f['steps']} DDIM steps, guidance 7.5, "
        f"{len(f['prompts'])} prompts; Clockwork level 1, pN = period N, wN = warm-up "
        "N whole steps; PSNR to the plain output).",
        "",
        "| config | s/image | speed-up | PSNR |",
        "|---|---|---|---|",
    ]
    for r in f["rows"]:
        lines.append(
            f"| {r['config']} | {r['seconds']:.2f} | {r['speedup']:.2f}× | {r['psnr']:.1f} dB |"
        )
    if results.get("plot"):
        lines += ["", f"![speed vs PSNR]({results['plot']})"]
    t = results["tome"]
    lines += [
        "",
        f"**Token merging** ({t['size']}², {t['steps']} DDIM steps, guidance 7.5, "
        "highest-resolution self-attention only, as tomesd's default).",
        "",
        "| config | s/image | speed-up | PSNR to plain |",
        "|---|---|---|---|",
    ]
    for r in t["rows"]:
        lines.append(
            f"| {r['config']} | {r['seconds']:.2f} | {r['speedup']:.2f}× | {r['psnr']:.1f} dB |"
        )
    a = results["adaptive"]
    lines += [
        "",
        f"**Adaptive steps** ({a['size']}², {a['steps']} DDIM steps; stop when x̂₀ "
        "changes by less than the threshold; PSNR to the full schedule).",
        "",
        "| threshold | steps run | steps saved | speed-up | PSNR |",
        "|---|---|---|---|---|",
    ]
    for r in a["rows"]:
        lines.append(
            f"| {r['config'].split()[-1]} | {r['steps_run']:.1f} | "
            f"{r['steps_saved']:.1f} | {r['speedup']:.2f}× | {r['psnr']:.1f} dB |"
        )
    pv = results["previews"]
    if "rows" in pv:
        lines += [
            "",
            "**Previews** (256², 4 steps, engine/accel/preview.py, no budget applied).",
            "",
            "| preview | step | preview | share of a step |",
            "|---|---|---|---|",
        ]
        for r in pv["rows"]:
            lines.append(
                f"| {r['config']} | {r['step_seconds']:.3f} s | "
                f"{r['preview_seconds'] * 1000:.1f} ms | {100 * r['ratio']:.1f}% |"
            )
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", type=Path, default=OUT / "generate.json")
    ap.add_argument("--md", type=Path, default=OUT / "generate.md")
    ap.add_argument("--plot", type=Path, default=ROOT / "docs" / "bench_speed_psnr.png")
    ap.add_argument("--model", type=Path, default=OUT / "model")
    ap.add_argument("--adaptor", type=Path, default=None)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--frames", type=int, default=16)
    ap.add_argument(
        "--only", nargs="*", default=None, help="rows to run: stream reuse tome adaptive previews"
    )
    ap.add_argument(
        "--from-json",
        action="store_true",
        help="only redraw the plot and the markdown from an existing --json",
    )
    args = ap.parse_args()
    if args.from_json:
        results = json.loads(args.json.read_text(encoding="utf-8"))
        if args.plot and plot(results["reuse"], args.plot):
            results["plot"] = os.path.relpath(args.plot, ROOT)
        args.md.write_text(markdown(results), encoding="utf-8")
        return
    torch.set_num_threads(os.cpu_count() or 1)
    t_start = time.perf_counter()
    load_start = os.getloadavg()
    log = print
    if not (args.model / "model_index.json").exists():
        log(f"building the benchmark model into {args.model}")
        save_model(args.model, BENCH)
    adaptor = args.adaptor or args.model.parent / "clockwork_adaptor_level1.safetensors"
    results: dict[str, Any] = {}
    if args.only and args.json.exists():  # re-run some rows, keep the others' last results
        results = json.loads(args.json.read_text(encoding="utf-8"))
        results.pop("env", None)
    if not adaptor.exists() and (args.only is None or "reuse" in args.only):
        from train_clockwork_adaptor import train  # type: ignore[import-not-found]

        log("training the Clockwork adaptor (bench/train_clockwork_adaptor.py)")
        _, results["adaptor_training"] = train(
            args.model, 1, adaptor, trajectories=12, iters=1000, log=None
        )
    rows = args.only or ["stream", "reuse", "tome", "adaptive", "previews"]
    if "stream" in rows:
        results["stream"] = bench_stream(args.model, args.frames, args.reps, log)
    if "reuse" in rows:
        results["reuse"] = bench_feature_reuse(args.model, adaptor, args.reps, log)
        if args.plot and plot(results["reuse"], args.plot):
            results["plot"] = os.path.relpath(args.plot, ROOT)
    if "tome" in rows:
        results["tome"] = bench_tome(args.model, args.reps + 1, log)
    if "adaptive" in rows:
        results["adaptive"] = bench_adaptive(args.model, args.reps, log)
    if "previews" in rows:
        results["previews"] = bench_previews(args.model, log)
    import diffusers

    results["env"] = {
        "date": time.strftime("%Y-%m-%d"),
        "load_avg_end": os.getloadavg(),
        "load_avg_start": load_start,
        "machine": platform.platform(),
        "cpus": os.cpu_count(),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "diffusers": diffusers.__version__,
        "reps": args.reps,
        "total_s": time.perf_counter() - t_start,
        "command": " ".join(["python", *sys.argv]),
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(results, indent=1, default=float), encoding="utf-8")
    if set(results) >= {"stream", "reuse", "tome", "adaptive", "previews"}:
        args.md.write_text(markdown(results), encoding="utf-8")
        log(f"wrote {args.md}")
    log(f"total {results['env']['total_s']:.0f} s; results in {args.json}")


if __name__ == "__main__":
    main()
