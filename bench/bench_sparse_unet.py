"""One UNet call of the sparse object-centric video edit against the dense call (issue 16).

Run: python bench/bench_sparse_unet.py [--size 512] [--frames 4] [--fractions 0.10 0.22 0.40]

The SD-1.5-shaped mini model (engine/diffusion/minimodels.BENCH, random weights) denoises
``--frames`` frames with classifier-free guidance and anchor attention (every frame's
self-attention also attends to the first frame, as generate.video_edit runs it): densely, and
sparsely on a square of each share of the frame (grown by the edit's 16 px margin) with the
context recorded from the keyframe. This is the UNet part of the edit only (no VAE, no
keyframe), measured where a whole clip would take too long on a shared CPU; it says how close
the sampling gets to the bound 1 / share at a size. Times are the process's CPU seconds at one
torch thread (the shared CPU's load makes wall times swing); best of ``--reps`` calls.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--frames", type=int, default=4)
    ap.add_argument("--fractions", type=float, nargs="*", default=[0.10, 0.22, 0.40])
    ap.add_argument("--margin", type=int, default=16)
    ap.add_argument("--reps", type=int, default=1)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    from fathom.engine.accel.sparse import SparseExecution
    from fathom.engine.diffusion.minimodels import BENCH, build_components
    from fathom.engine.diffusion.sparsevideo import dilate
    from fathom.engine.diffusion.videoattn import AnchorAttention, FrameLayout

    unet = build_components(BENCH)["unet"].eval()
    s, f = args.size // 8, args.frames
    gen = torch.Generator().manual_seed(0)
    key = torch.randn(2, 4, s, s, generator=gen)
    frames = torch.randn(2 * f, 4, s, s, generator=gen)
    emb = torch.randn(2, 77, unet.config.cross_attention_dim, generator=gen)
    t = torch.tensor(600)
    layout = FrameLayout(frames=f, halves=2, anchor=None, step=0)
    anchor = AnchorAttention("first+self", layout, keep_steps=True)
    sparse = SparseExecution(8, "first+self")
    load0 = os.getloadavg()[0]
    times: dict[str, list[float]] = {}
    with torch.no_grad():
        anchor.attach(unet)
        layout.frames, layout.anchor = 1, 0
        unet(key, t, encoder_hidden_states=emb)  # keeps the anchor's keys for the dense calls
        layout.frames, layout.anchor = f, None
        anchor_kept = dict(anchor.kept)
        anchor.detach()
        sparse.attach(unet)
        sparse.mode = "record"
        unet(key, t, encoder_hidden_states=emb)
        sparse.mode = "off"
        for _ in range(args.reps):
            anchor.attach(unet)
            anchor.kept.update(anchor_kept)
            t0 = time.process_time()
            unet(frames, t, encoder_hidden_states=emb.repeat_interleave(f, 0))
            times.setdefault("dense", []).append(time.process_time() - t0)
            anchor.detach()
            for fr in args.fractions:
                side = int(round(fr**0.5 * args.size))
                m = torch.zeros(2 * f, 1, args.size, args.size)
                m[
                    :,
                    :,
                    args.size // 8 : args.size // 8 + side,
                    args.size // 8 : args.size // 8 + side,
                ] = 1
                sparse.mode = "sparse"
                sparse.set_active(dilate(m, args.margin), repeat=f)
                t0 = time.process_time()
                unet(frames, t, encoder_hidden_states=emb.repeat_interleave(f, 0))
                times.setdefault(f"{fr:.0%}", []).append(time.process_time() - t0)
                sparse.mode = "off"
    dense = min(times.pop("dense"))
    print(
        f"\nUNet call, {f} frames × 2 halves at {args.size}², {args.threads} thread(s); "
        f"CPU seconds; load {load0:.1f} → {os.getloadavg()[0]:.1f}\n"
    )
    print(
        "| share | bound | dense s | sparse s | UNet speed-up | % of bound |\n"
        "|---|---|---|---|---|---|"
    )
    for fr in args.fractions:
        sp = min(times[f"{fr:.0%}"])
        print(
            f"| {fr:.0%} | {1 / fr:.2f}× | {dense:.2f} | {sp:.2f} | {dense / sp:.2f}× | "
            f"{dense / sp * fr:.0%} |"
        )


if __name__ == "__main__":
    main()
