"""Where object-centric sampling loses foreground fidelity (issue 8): an oracle experiment.

Run: python bench/oracle_video_edit_context.py [--frames 8]

The foreground's crop steps see only the crop: zero padding at its border, GroupNorm statistics
of the crop, self-attention over the crop's tokens. This script gives every crop step the exact
*current* whole-frame context instead (an extra whole-frame UNet pass per crop step records each
GroupNorm's statistics and each self-attention's keys and values; the crop pass then uses
them), and separately decodes the accelerated foreground latents with the baseline's background
latents around them. If the crop's missing context were what costs fidelity, the oracle would
close the gap to the baseline; the numbers say what does. Not a speed benchmark: the oracle is
slower than the baseline. Same clip and model as bench/bench_video_edit.py.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.nn import functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_video_edit as bve

from fathom.engine.accel.objectcentric import crop
from fathom.engine.context import RunOptions
from fathom.engine.diffusion import video, videoattn
from fathom.engine.diffusion.components import Components
from fathom.engine.executor import Executor
from fathom.engine.registry import Registry
from fathom.engine.types import Image, Video


class Oracle:
    """Patches (for this experiment only) that hand crop steps the whole frame's context."""

    def __init__(self) -> None:
        self.mode: str | None = None  # "record" on the whole-frame pass, "use" on the crop's
        self.stats: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}
        self.kv: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
        self.full: torch.Tensor | None = None
        self.saved: list[tuple[Any, str, Any]] = []

    def install(self) -> None:
        oracle = self
        gn_forward = torch.nn.GroupNorm.forward
        processor = videoattn._AnchorProcessor.__call__
        eps_call = video.VideoRun._eps_call

        def group_norm(mod: torch.nn.GroupNorm, x: torch.Tensor) -> torch.Tensor:
            if oracle.mode is None or x.ndim != 4:
                return gn_forward(mod, x)
            b, c, h, w = x.shape
            xr = x.reshape(b, mod.num_groups, -1)
            if oracle.mode == "record":
                var, mean = torch.var_mean(xr, dim=-1, unbiased=False, keepdim=True)
                oracle.stats[id(mod)] = (mean, var)
                return gn_forward(mod, x)
            mean, var = oracle.stats[id(mod)]
            y = ((xr - mean) / torch.sqrt(var + mod.eps)).reshape(b, c, h, w)
            return y * mod.weight[None, :, None, None] + mod.bias[None, :, None, None]

        def attention(
            proc: Any, attn: Any, hs: torch.Tensor, *args: Any, **kw: Any
        ) -> torch.Tensor:
            if oracle.mode == "record":
                oracle.kv[proc.name] = (attn.to_k(hs), attn.to_v(hs))
            if oracle.mode != "use":
                return processor(proc, attn, hs, *args, **kw)
            lay = proc.owner.layout
            b, n, _ = hs.shape
            items = b // lay.halves
            q = attn.to_q(hs)
            key, value = oracle.kv[proc.name]  # the whole frame's tokens, this step
            if lay.anchor is not None:
                pick = [h * items + lay.anchor for h in range(lay.halves)]
                ak, av = key[pick], value[pick]
            else:
                ak, av = proc.owner.kept[(lay.step, proc.name)]
            ak = torch.cat([key, ak.repeat_interleave(items, 0)], 1)
            av = torch.cat([value, av.repeat_interleave(items, 0)], 1)
            heads = attn.heads
            d = q.shape[-1] // heads

            def split(t: torch.Tensor) -> torch.Tensor:
                return t.view(b, -1, heads, d).transpose(1, 2)

            out = F.scaled_dot_product_attention(split(q), split(ak), split(av))
            out = out.transpose(1, 2).reshape(b, n, heads * d)
            return attn.to_out[1](attn.to_out[0](out)) / attn.rescale_output_factor

        def stash_crop(x: torch.Tensor, boxes: Any) -> torch.Tensor:
            if x.shape[1] == 4:
                oracle.full = x
            return crop(x, boxes)

        def eps(
            run: Any, x: torch.Tensor, t: Any, guide: Any, step: Any, anchor: Any, masks: Any
        ) -> torch.Tensor:
            full = oracle.full
            if full is not None and tuple(x.shape[-2:]) != tuple(full.shape[-2:]):
                oracle.mode = "record"
                eps_call(run, full, t, guide, step, anchor, None)
                oracle.mode = "use"
            try:
                return eps_call(run, x, t, guide, step, anchor, masks)
            finally:
                oracle.mode = None

        for owner, name, new in (
            (torch.nn.GroupNorm, "forward", group_norm),
            (videoattn._AnchorProcessor, "__call__", attention),
            (video, "crop", stash_crop),
            (video.VideoRun, "_eps_call", eps),
        ):
            self.saved.append((owner, name, getattr(owner, name)))
            setattr(owner, name, new)

    def remove(self) -> None:
        for owner, name, old in reversed(self.saved):
            setattr(owner, name, old)
        self.saved.clear()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=8)
    ap.add_argument("--bg-steps", type=int, default=2)
    args = ap.parse_args()
    from fathom.engine.diffusion.minimodels import BENCH, save_model

    model = bve.OUT / "model"
    if not (model / "model_index.json").is_file():
        save_model(model, BENCH)
    frames, masks = bve.make_clip(args.frames, 256)
    video = Video.from_frames([Image(f) for f in frames], fps=12)
    mask = Video.from_frames([Image(m) for m in masks], fps=12)
    reg = Registry()
    reg.load_builtin()
    ex = Executor(reg)
    opts = RunOptions(device="cpu", output_dir=bve.OUT, base_dir=bve.ROOT)
    fg = np.stack(masks) > 0.5
    latents: list[torch.Tensor] = []
    comps: dict[str, Any] = {}
    decode = Components.decode

    def keep(c: Any, lat: torch.Tensor, *a: Any, **k: Any) -> torch.Tensor:
        latents.append(lat.clone())
        comps["c"] = c
        return decode(c, lat, *a, **k)

    Components.decode = keep  # type: ignore[method-assign]

    def edit(extra: dict[str, Any]) -> tuple[np.ndarray, torch.Tensor]:
        latents.clear()
        out = ex.call(
            "generate.video_edit",
            {"video": video, "mask": mask},
            {**bve.BASE, "model": str(model), **extra},
            opts,
        )["video"]
        return np.stack([f.data for f in out]), torch.cat(latents)

    sampling = {**bve.FEW_BG_STEPS, "bg_steps": args.bg_steps}
    base, base_lat = edit({})
    got, lat = edit(sampling)
    oracle = Oracle()
    oracle.install()
    try:
        told, _ = edit(sampling)
    finally:
        oracle.remove()
    inside = (
        F.adaptive_avg_pool2d(torch.from_numpy(np.stack(masks))[:, None], lat.shape[-2:]) > 0.99
    )
    mixed = torch.where(inside, lat, base_lat)
    redecoded = np.stack(
        [
            comps["c"].decode(mixed[i : i + 1])[0, :3].permute(1, 2, 0).numpy()
            for i in range(len(frames))
        ]
    )
    print(
        f"\n{args.frames} frames, {args.bg_steps} background steps; PSNR to the baseline "
        "inside the foreground mask:"
    )
    print(f"| object-centric sampling | {bve.psnr_in(got, base, fg):.2f} dB |")
    print(
        f"| + the oracle's whole-frame context on every crop step | "
        f"{bve.psnr_in(told, base, fg):.2f} dB |"
    )
    print(
        f"| sampling's foreground latents decoded with the baseline's background latents | "
        f"{bve.psnr_in(redecoded, base, fg):.2f} dB |"
    )
    Components.decode = decode  # type: ignore[method-assign]


if __name__ == "__main__":
    main()
