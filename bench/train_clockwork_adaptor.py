"""Distil a Clockwork adaptor on the model's own sampling trajectories and save it as safetensors.

Run: python bench/train_clockwork_adaptor.py [--model DIR] [--level 1] [--out FILE]
     [--trajectories 12] [--steps 20] [--size 256] [--iters 1000]

Without --model the SD-1.5-shaped benchmark model is built (random weights, fixed seed) into
out/bench/model. The script samples plain DDIM trajectories (classifier-free guidance as the
benchmark runs them), records at every step what enters and what leaves the UNet's
low-resolution core at ``level``, and trains :class:`engine.accel.clockwork.ClockworkAdaptor` to
predict the features of step s from those kept at an earlier step a (1 ≤ s − a ≤ max period − 1),
the input difference and both timesteps. Held-out trajectories give the validation error of the
identity (plain reuse) and of the trained adaptor.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fathom.engine.accel.clockwork import ClockworkAdaptor, core_channels

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_MODEL = ROOT / "out" / "bench" / "model"

TRAIN_PROMPTS = [
    "a red house by the sea",
    "portrait of an old man, oil painting",
    "a cat on a sofa",
    "mountains at sunrise, mist",
    "a bowl of fruit on a wooden table",
    "city street at night",
    "a forest path in autumn",
    "an astronaut riding a horse",
    "a watercolor of a harbour",
    "close-up of a sunflower",
    "a snowy village",
    "a robot in a workshop",
    "a desert canyon",
    "a sailing boat in a storm",
    "a cozy library with lamps",
    "abstract colourful shapes",
]


def ensure_model(path: Path | None) -> Path:
    from fathom.engine.diffusion.minimodels import BENCH, save_model

    path = Path(path) if path else DEFAULT_MODEL
    if not (path / "model_index.json").exists():
        save_model(path, BENCH)
    return path


def record_trajectories(
    pipe: Any,
    level: int,
    prompts: list[str],
    seeds: list[int],
    steps: int,
    size: int,
    guidance: float,
) -> list[dict[str, torch.Tensor]]:
    """One dict per trajectory: 'in' (S, B, Ci, h, w), 'out' (S, B, Co, H, W), 't' (S, B)."""
    unet = pipe.unet
    n = len(unet.up_blocks)
    core_in, core_out = unet.down_blocks[level], unet.up_blocks[n - level - 1]
    cur: dict[str, list[torch.Tensor]] = {"in": [], "out": [], "t": []}

    def on_unet(module: Any, args: tuple, kwargs: dict) -> None:
        sample = args[0] if args else kwargs["sample"]
        t = args[1] if len(args) > 1 else kwargs["timestep"]
        cur["t"].append(torch.as_tensor(t).float().flatten().expand(sample.shape[0]).clone())

    def on_in(module: Any, args: tuple, kwargs: dict) -> None:
        cur["in"].append((args[0] if args else kwargs["hidden_states"]).detach().clone())

    def on_out(module: Any, args: tuple, out: Any) -> None:
        cur["out"].append(out.detach().clone())

    hooks = [
        unet.register_forward_pre_hook(on_unet, with_kwargs=True),
        core_in.register_forward_pre_hook(on_in, with_kwargs=True),
        core_out.register_forward_hook(on_out),
    ]
    runs = []
    try:
        for prompt, seed in zip(prompts, seeds, strict=True):
            for v in cur.values():
                v.clear()
            pipe(
                prompt,
                height=size,
                width=size,
                num_inference_steps=steps,
                guidance_scale=guidance,
                generator=torch.Generator().manual_seed(seed),
                output_type="latent",
            )
            runs.append({k: torch.stack(v) for k, v in cur.items()})
    finally:
        for h in hooks:
            h.remove()
    return runs


def make_pairs(runs: list[dict[str, torch.Tensor]], max_gap: int) -> list[tuple[int, int, int]]:
    """(run, kept step, current step) for every gap 1..max_gap."""
    pairs = []
    for r, run in enumerate(runs):
        n_steps = run["t"].shape[0]
        for s in range(1, n_steps):
            for a in range(max(0, s - max_gap), s):
                pairs.append((r, a, s))
    return pairs


def batch_of(
    runs: list[dict[str, torch.Tensor]], pairs: list[tuple[int, int, int]]
) -> tuple[torch.Tensor, ...]:
    cols: list[list[torch.Tensor]] = [[], [], [], [], [], []]
    for r, a, s in pairs:
        run = runs[r]
        for col, v in zip(
            cols,
            (run["out"][a], run["in"][a], run["in"][s], run["t"][a], run["t"][s], run["out"][s]),
            strict=True,
        ):
            col.append(v)
    return tuple(torch.cat(c) for c in cols)


def evaluate(
    adaptor: ClockworkAdaptor | None,
    runs: list[dict[str, torch.Tensor]],
    pairs: list[tuple[int, int, int]],
) -> float:
    """Mean squared error of the predicted features (None = identity reuse)."""
    total, count = 0.0, 0
    with torch.no_grad():
        for i in range(0, len(pairs), 32):
            kept_out, kept_in, cur_in, t_a, t_s, target = batch_of(runs, pairs[i : i + 32])
            pred = kept_out if adaptor is None else adaptor(kept_out, kept_in, cur_in, t_a, t_s)
            total += float(((pred - target) ** 2).sum())
            count += target.numel()
    return total / max(count, 1)


def train(
    model: Path,
    level: int = 1,
    out: Path | None = None,
    trajectories: int = 12,
    steps: int = 20,
    size: int = 256,
    guidance: float = 7.5,
    iters: int = 1000,
    batch: int = 16,
    max_gap: int = 4,
    hidden: int = 64,
    seed: int = 0,
    log: Any = print,
) -> tuple[Path, dict[str, Any]]:
    """Record trajectories, train, save; returns the file and a summary."""
    from diffusers import DDIMScheduler

    from fathom.engine.diffusion.minimodels import load_pipeline

    torch.manual_seed(seed)
    rng = random.Random(seed)
    pipe = load_pipeline(model)
    pipe.scheduler = DDIMScheduler.from_config(pipe.scheduler.config)
    n_val = max(2, trajectories // 8)
    prompts = [TRAIN_PROMPTS[i % len(TRAIN_PROMPTS)] for i in range(trajectories + n_val)]
    seeds = [1000 + i for i in range(trajectories + n_val)]
    t0 = time.perf_counter()
    runs = record_trajectories(pipe, level, prompts, seeds, steps, size, guidance)
    t_record = time.perf_counter() - t0
    train_runs, val_runs = runs[:trajectories], runs[trajectories:]
    train_pairs, val_pairs = make_pairs(train_runs, max_gap), make_pairs(val_runs, max_gap)
    out_ch, in_ch = core_channels(pipe.unet, level)
    adaptor = ClockworkAdaptor(out_ch, in_ch, hidden=hidden, level=level)
    opt = torch.optim.AdamW(adaptor.parameters(), lr=1e-3, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, iters)
    base_val = evaluate(None, val_runs, val_pairs)
    t0 = time.perf_counter()
    adaptor.train()
    for it in range(iters):
        kept_out, kept_in, cur_in, t_a, t_s, target = batch_of(
            train_runs, rng.sample(train_pairs, batch)
        )
        loss = F_mse(adaptor(kept_out, kept_in, cur_in, t_a, t_s), target)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        if log and (it % 250 == 0 or it == iters - 1):
            log(f"iter {it:5d}  loss {loss.item():.5f}")
    adaptor.eval().requires_grad_(False)
    t_train = time.perf_counter() - t0
    val = evaluate(adaptor, val_runs, val_pairs)
    out = Path(out) if out else model.parent / f"clockwork_adaptor_level{level}.safetensors"
    adaptor.save(out)
    summary = {
        "file": str(out),
        "level": level,
        "trajectories": trajectories,
        "steps": steps,
        "size": size,
        "iters": iters,
        "pairs": len(train_pairs),
        "val_mse_identity": base_val,
        "val_mse_adaptor": val,
        "record_s": round(t_record, 1),
        "train_s": round(t_train, 1),
        "parameters": sum(p.numel() for p in adaptor.parameters()),
    }
    if log:
        log(json.dumps(summary, indent=1))
    return out, summary


def F_mse(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:  # noqa: N802
    return torch.nn.functional.mse_loss(pred, target)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", type=Path, default=None)
    ap.add_argument("--level", type=int, default=1)
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--trajectories", type=int, default=12)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--iters", type=int, default=1000)
    ap.add_argument("--hidden", type=int, default=64)
    args = ap.parse_args()
    model = ensure_model(args.model)
    train(
        model,
        args.level,
        args.out,
        args.trajectories,
        args.steps,
        args.size,
        iters=args.iters,
        hidden=args.hidden,
    )


if __name__ == "__main__":
    main()
