"""Object-centric video edit, speed against the foreground's share of the frame (issue 16).

Run: python bench/bench_video_edit_curve.py [--size 256] [--frames 16] [--steps 20]
     [--strength 0.8] [--fractions 0.10 0.22 0.40] [--disc 0.14] [--best] [--plot docs/x.png]
     [--margins 0 8] [--vae-every 0 4] [--plain-cache DIR]

For each clip a textured square of the given share of a size×size frame slides over a smooth
background (``--disc``: a textured disc moving diagonally, the "object of at most 15 %" clip),
with the object as the foreground mask. Every clip runs `generate.video_edit` through the
executor on the SD-1.5-shaped mini model (engine/diffusion/minimodels.BENCH, random weights):
the plain edit (every acceleration off), with ``--best`` (on the 22 % clip) the best earlier
object-centric setting (token merging + Clockwork across steps), and sparse execution
(``sparse``, this issue; every ``--margins`` × ``--vae-every`` pair, the latter being how
often the VAE runs a whole frame for its context). PSNR is measured against the plain edit
inside the mask. The bound on the speed-up is 1 / (foreground share). Also prints where the
sparse run's time goes (VAE encode, sampling, VAE decode) and the fraction of the dense work
it computed.
Speed-ups are ratios of the process's CPU time at one torch thread (the wall times are kept in
the JSON): on the shared, oversubscribed CPU the wall time of a run swings with other jobs.
A report, not a test: one repetition per configuration.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench_video_edit import psnr_in

from fathom.engine.context import RunOptions
from fathom.engine.executor import Executor
from fathom.engine.registry import Registry
from fathom.engine.types import Image, Video

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "out" / "bench"
BEST = {
    "merge_bg": 0.95,
    "temporal_merge": True,
    "merge_levels": 3,
    "clock_period": 8,
    "clock_warmup": 2,
}


def _smooth(rng: np.random.Generator, size: int, cells: int, nearest: bool) -> np.ndarray:
    import cv2

    mode = cv2.INTER_NEAREST if nearest else cv2.INTER_CUBIC
    small = rng.random((cells, cells, 3)).astype(np.float32)
    return cv2.resize(small, (size, size), interpolation=mode).clip(0, 1)


def make_clip(
    n: int, size: int, fraction: float, disc: bool = False
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Frames and masks: a square of ``fraction`` of the frame sliding right by size/64 px a
    frame, or a disc of that share moving diagonally."""
    rng = np.random.default_rng(0)
    bg = _smooth(rng, size, max(2, size // 16), nearest=False)
    side = int(round(math.sqrt(fraction) * size))
    if disc:
        side = int(round(math.sqrt(fraction / math.pi) * size)) * 2
    tex = _smooth(rng, side, max(2, side // 4), nearest=True)
    yy, xx = np.mgrid[0:side, 0:side]
    shape = (
        ((yy - side / 2 + 0.5) ** 2 + (xx - side / 2 + 0.5) ** 2 <= (side / 2) ** 2)
        if disc
        else np.ones((side, side), bool)
    ).astype(np.float32)
    step = max(1, size // 64)
    frames, masks = [], []
    for i in range(n):
        f, m = bg.copy(), np.zeros((size, size), np.float32)
        x = size // 8 + step * i
        y = size // 8 + step * i if disc else (size - side) // 2
        region = f[y : y + side, x : x + side]
        region[:] = shape[..., None] * tex + (1 - shape[..., None]) * region
        m[y : y + side, x : x + side] = shape
        frames.append(f)
        masks.append(m)
    return frames, masks


def _run(
    ex: Executor, opts: RunOptions, clip: Any, params: dict[str, Any]
) -> tuple[float, float, Any]:
    """(CPU seconds, wall seconds, frames). The CPU time of this process is what the speed-up
    is taken from: on a shared, oversubscribed machine the wall time of one run swings with
    the other jobs' load, while the work one single-threaded run does stays put."""
    t0, c0 = time.perf_counter(), time.process_time()
    out = ex.call("generate.video_edit", clip, params, opts)["video"]
    got = np.stack([f.data for f in out])
    return time.process_time() - c0, time.perf_counter() - t0, got


def _args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--frames", type=int, default=16)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--strength", type=float, default=0.8)
    ap.add_argument("--fractions", type=float, nargs="*", default=[0.10, 0.22, 0.40])
    ap.add_argument("--disc", type=float, default=0.14, help="disc clip's share (0: none)")
    ap.add_argument(
        "--margins", type=int, nargs="*", default=[0, 16], help="sparse_margin values to run"
    )
    ap.add_argument("--refresh", type=int, default=1, help="sparse_refresh")
    ap.add_argument(
        "--vae-every",
        type=int,
        nargs="*",
        default=[0],
        help="sparse_vae_every values to run (each with every margin)",
    )
    ap.add_argument("--best", action="store_true", help="also today's best on the 22 %% clip")
    ap.add_argument("--no-baseline", action="store_true", help="sparse runs only (no PSNR)")
    ap.add_argument("--plot", default="", help="write the curve as a PNG here")
    ap.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch threads (1: on a shared, oversubscribed CPU two threads wait on each "
        "other at every operation, which punishes many small operations far more than few "
        "large ones)",
    )
    ap.add_argument("--json", default="")
    ap.add_argument(
        "--plain-cache",
        default="",
        help="keep the plain edits (CPU s and frames) in this folder and reuse them on a later "
        "run with the same settings (for quick experiments; final rows measure the plain edit)",
    )
    ap.add_argument(
        "--extra",
        default="{}",
        help="JSON of extra video_edit parameters for the sparse runs, e.g. '{\"sparse_grow\": 2}'",
    )
    return ap.parse_args()


def _plain(
    ex: Executor, opts: RunOptions, clip: Any, params: dict[str, Any], cache: Path | None, key: str
) -> tuple[float, float, Any]:
    """The plain edit, from ``cache`` when it holds this key."""
    if cache is None:
        return _run(ex, opts, clip, params)
    path = cache / f"{key}.npz"
    if path.is_file():
        kept = np.load(path)
        return float(kept["cpu"]), float(kept["wall"]), kept["frames"]
    cpu, wall, got = _run(ex, opts, clip, params)
    cache.mkdir(parents=True, exist_ok=True)
    np.savez(path, cpu=cpu, wall=wall, frames=got)
    return cpu, wall, got


def main() -> None:
    args = _args()
    import torch

    torch.set_num_threads(args.threads)
    import fathom.engine.diffusion.sparsevideo as sv
    from fathom.engine.diffusion.minimodels import BENCH, save_model

    model = OUT / "model"
    if not (model / "model_index.json").is_file():
        save_model(model, BENCH)
    reg = Registry()
    reg.load_builtin()
    ex = Executor(reg)
    opts = RunOptions(device="cpu", output_dir=OUT, base_dir=ROOT)
    base = {
        "model": str(model),
        "prompt": "a plate of pasta with basil",
        "negative_prompt": "blurry",
        "steps": args.steps,
        "strength": args.strength,
        "guidance": 7.5,
        "seed": 3,
        "frames_per_batch": 4,
    }
    sparse = {"sparse": True, "sparse_refresh": args.refresh, **json.loads(args.extra)}
    last: list[Any] = []
    init = sv.SparseVideoEdit.__init__

    def spy(self: Any, *a: Any, **k: Any) -> None:
        init(self, *a, **k)
        last.append(self)

    sv.SparseVideoEdit.__init__ = spy  # type: ignore[method-assign]
    f0, m0 = make_clip(2, args.size, 0.2)
    warm = {"video": Video.from_frames([Image(f) for f in f0], fps=12)}
    ex.call("generate.video_edit", warm, {**base, "steps": 2}, opts)  # load the model
    load0 = os.getloadavg()[0]
    clips = [(f"square {fr:.0%}", fr, False) for fr in args.fractions]
    if args.disc > 0:
        clips.append((f"disc {args.disc:.0%}", args.disc, True))
    rows = []
    for name, fraction, disc in clips:
        frames, masks = make_clip(args.frames, args.size, fraction, disc)
        share = float(np.mean(np.stack(masks) > 0.5))
        clip = {
            "video": Video.from_frames([Image(f) for f in frames], fps=12),
            "mask": Video.from_frames([Image(m) for m in masks], fps=12),
        }
        fg = np.stack(masks) > 0.5
        key = f"{args.size}_{args.frames}_{args.steps}_{args.strength}_{name.replace(' ', '')}"
        cache = Path(args.plain_cache) if args.plain_cache else None
        ref_t, ref_wall, ref = (
            (None, None, None)
            if args.no_baseline
            else _plain(ex, opts, clip, base, cache, key.replace("%", "pc"))
        )
        configs = [
            (_label(m, v), {**sparse, "sparse_margin": m, "sparse_vae_every": v})
            for m in args.margins
            for v in args.vae_every
        ]
        if args.best and abs(fraction - 0.22) < 0.01:
            configs.insert(0, ("merging + clockwork (earlier best)", BEST))
        for label, extra in configs:
            secs, wall, got = _run(ex, opts, clip, {**base, **extra})
            st = last[-1].stats if label.startswith("sparse") else None
            row = {
                "clip": name,
                "share": share,
                "bound": 1 / share,
                "config": label,
                "seconds": secs,
                "baseline_s": ref_t,
                "wall_s": wall,
                "baseline_wall_s": ref_wall,
                "speedup": None if ref_t is None else ref_t / secs,
                "psnr_fg": None if ref is None else psnr_in(got, ref, fg),
                "stats": None if st is None else vars(st),
            }
            rows.append(row)
            print(json.dumps(row), flush=True)
    info = {
        "machine": platform.platform(),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "run_steps": int(args.steps * args.strength),
        "load_start": load0,
        "load_end": os.getloadavg()[0],
        "command": "python bench/bench_video_edit_curve.py " + " ".join(sys.argv[1:]),
        "settings": {**base, **sparse, "frames": args.frames, "size": args.size},
        "margins": args.margins,
    }
    _table(rows, info, args)
    if args.plot:
        _plot(rows, Path(args.plot), args)
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps({"info": info, "rows": rows}, indent=1))


def _label(margin: int, vae_every: int) -> str:
    return f"sparse, margin {margin}" + (f", VAE whole every {vae_every}" if vae_every else "")


def _table(rows: list[dict[str, Any]], info: dict[str, Any], args: argparse.Namespace) -> None:
    run_steps = int(args.steps * args.strength)
    print(
        f"\n{args.frames} frames {args.size}², {args.steps} steps × strength {args.strength} = "
        f"{run_steps} run steps; load {info['load_start']:.1f} → {info['load_end']:.1f}\n"
    )
    print(
        "| clip | fraction | bound | config | plain CPU s | CPU s | speed-up | % of bound | "
        "PSNR in mask | UNet / VAE computed | encode / sample / decode s |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        sp = r["speedup"]
        st = r["stats"]
        parts = "–" if st is None else f"{st['unet_computed']:.0%} / {st['vae_computed']:.0%}"
        where = (
            "–"
            if st is None
            else f"{st['encode_s']:.1f} / {st['sample_s']:.1f} / {st['decode_s']:.1f}"
        )
        print(
            f"| {r['clip']} | {r['share']:.1%} | {r['bound']:.2f}× | {r['config']} | "
            + ("–" if r["baseline_s"] is None else f"{r['baseline_s']:.1f}")
            + f" | {r['seconds']:.1f} | "
            + ("–" if sp is None else f"{sp:.2f}× | {sp / r['bound']:.0%}")
            + (" | –" if sp is None else "")
            + " | "
            + ("–" if r["psnr_fg"] is None else f"{r['psnr_fg']:.1f} dB")
            + f" | {parts} | {where} |"
        )


def _plot(rows: list[dict[str, Any]], path: Path, args: argparse.Namespace) -> None:
    import cv2

    labels = [_label(m, v) for m in args.margins for v in args.vae_every]
    series = [
        [(r["share"], r["speedup"]) for r in rows if r["config"] == lab and r["speedup"]]
        for lab in labels
    ]
    pts = [p for one in series for p in one]
    if not pts:
        return
    w, h, pad = 480, 320, 40
    img = np.full((h, w, 3), 255, np.uint8)
    top = max(12.0, max(s for _, s in pts) * 1.1)

    def xy(f: float, s: float) -> tuple[int, int]:
        return int(pad + f / 0.5 * (w - 2 * pad)), int(h - pad - s / top * (h - 2 * pad))

    cv2.rectangle(img, (pad, pad), (w - pad, h - pad), (0, 0, 0), 1)
    bound = [xy(f, min(top, 1 / f)) for f in np.linspace(0.06, 0.5, 60)]
    cv2.polylines(img, [np.array(bound)], False, (160, 160, 160), 1)
    seventy = [xy(f, min(top, 0.7 / f)) for f in np.linspace(0.06, 0.5, 60)]
    cv2.polylines(img, [np.array(seventy)], False, (0, 160, 255), 1)
    font = cv2.FONT_HERSHEY_SIMPLEX
    colours = [(200, 60, 0), (0, 140, 0), (150, 0, 150), (0, 0, 200), (120, 120, 0)]
    for k, (lab, one) in enumerate(zip(labels, series, strict=True)):
        colour = colours[k % len(colours)]
        for f, s in sorted(one):
            cv2.circle(img, xy(f, s), 4, colour, -1)
        dbs = [r["psnr_fg"] for r in rows if r["config"] == lab and r["psnr_fg"] is not None]
        text = lab.replace("sparse, ", "") + (f" ({min(dbs):.0f}+ dB)" if dbs else "")
        cv2.putText(img, text, (w - pad - 230, pad + 14 + 14 * k), font, 0.35, colour, 1)
    cv2.putText(img, "speed-up vs foreground share", (pad, 24), font, 0.5, (0, 0, 0), 1)
    cv2.putText(img, "grey: 1/f, orange: 70%", (pad, h - 12), font, 0.4, (0, 0, 0), 1)
    cv2.putText(img, f"{args.size}px  0..50%  0..{top:.0f}x", (w - 200, h - 12), font, 0.4, 0, 1)
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), img)


if __name__ == "__main__":
    main()
