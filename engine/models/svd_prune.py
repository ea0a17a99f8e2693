"""Structured channel pruning of Stable Video Diffusion's UNet, saved as a new model folder.

MobileVD narrows SVD's UNet channels; pruning whole channels (not single weights) is what
makes the network itself smaller and faster on any device. A diffusers UNet's widths live in
its config (``block_out_channels``), so the pruned model keeps the architecture and narrows
each resolution level (with it, the time embedding, 4× the first width): the saved folder has
the diffusers layout, safetensors weights and a config with the pruned widths, and loads like
any other SVD folder (``fathom prune-svd``; ``generate.image_to_video``).

Which channels stay comes from a calibration run: the pipeline denoises the calibration image
while hooks record each channel's mean |activation| (a level's residual stream across its
blocks, the time embedding, each feed-forward's hidden layer, each frame-position embedding);
the most active channels are kept. A level's kept channels are chosen the same number from
every block of ``gcd(GroupNorm group width, head width)`` consecutive channels, so each pruned
GroupNorm group and attention head comes from one original group and head. The sinusoidal
embeddings (diffusion time, frame position) are rebuilt by diffusers at the pruned width with
every r-th frequency of the original (exact for keep = 1/r), so their first layer keeps
those frequencies' columns.

Without fine-tuning (MobileVD fine-tunes after pruning) the pruned model is an approximation
of the original whose error grows as ``keep`` falls; the report says how far it moved.
"""

from __future__ import annotations

import math
import re
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

GROUPS = 32  # every GroupNorm in diffusers' spatio-temporal UNet uses 32 groups
_FF_IN = re.compile(r"(.*\.(?:ff|ff_in))\.net\.0\.proj\.(weight|bias)$")
_FF_OUT = re.compile(r"(.*\.(?:ff|ff_in))\.net\.2\.weight$")
_POS_1 = re.compile(r"(.*\.time_pos_embed)\.linear_1\.(weight|bias)$")
_POS_2 = re.compile(r"(.*\.time_pos_embed)\.linear_2\.weight$")
_UP_RES = re.compile(r"up_blocks\.(\d+)\.resnets\.(\d+)\.spatial_res_block\.(conv1|conv_shortcut)")
_UP_NORM = re.compile(r"up_blocks\.(\d+)\.resnets\.(\d+)\.spatial_res_block\.norm1\.")
_STREAM = re.compile(r"(?:(?:down|up)_blocks\.\d+|mid_block)\.(?:resnets|attentions)\.\d+")
_DOWN_IN = re.compile(
    r"down_blocks\.(\d+)\.resnets\.0\.spatial_res_block\.(conv1|conv_shortcut|norm1)"
)


class PruneError(ValueError):
    """A pruning request that cannot be met (the message says why and what to do)."""


def pruned_widths(widths: tuple[int, ...], keep: float) -> tuple[int, ...]:
    """Each level's width times ``keep``, to a multiple of the 32 GroupNorm groups."""
    if not 0 < keep <= 1:
        raise PruneError(f"keep {keep} is not in (0, 1]; use e.g. 0.5 to keep half")
    out = tuple(max(GROUPS, round(w * keep / GROUPS) * GROUPS) for w in widths)
    for w, n in zip(widths, out, strict=True):
        if n > w:
            raise PruneError(
                f"a level of {w} channels cannot keep {n} (at least {GROUPS}, the GroupNorm "
                "groups): raise keep or prune a wider model"
            )
    for i in range(1, len(widths)):
        if widths[i] != widths[i - 1] and out[i] == out[i - 1]:
            raise PruneError(
                f"at keep {keep:g} the widths {list(widths)} would become {list(out)}: levels "
                f"{i - 1} and {i} would be equally wide, which removes the shortcut between "
                "them that the model's weights need; choose another keep or prune a wider model"
            )
    return out


@dataclass
class Activity:
    """Mean |activation| per channel, summed over a calibration run, per channel space."""

    levels: dict[int, torch.Tensor] = field(default_factory=dict)
    spaces: dict[str, torch.Tensor] = field(default_factory=dict)

    def add(self, table: dict[Any, torch.Tensor], key: Any, x: torch.Tensor, dim: int) -> None:
        dims = [d for d in range(x.ndim) if d != dim % x.ndim]
        a = x.detach().float().abs().mean(dim=dims).cpu()
        a = a / (a.mean() + 1e-12)  # each record weighs the same
        table[key] = table[key] + a if key in table else a


def _level_of(name: str, levels: int) -> int | None:
    if m := re.match(r"down_blocks\.(\d+)\.", name):
        return int(m.group(1))
    if name.startswith("mid_block."):
        return levels - 1
    if m := re.match(r"up_blocks\.(\d+)\.", name):
        return levels - 1 - int(m.group(1))
    return None


def record_activity(unet: Any, run: Callable[[], Any]) -> Activity:
    """Run ``run()`` (a denoising that calls ``unet``) with hooks that record the channel
    activity of every prunable space."""
    levels = len(unet.config.block_out_channels)
    act = Activity()
    hooks = []

    def stream(level: int) -> Callable[..., None]:
        def hook(_m: nn.Module, _i: Any, out: Any) -> None:
            x = out[0] if isinstance(out, tuple) else out
            act.add(act.levels, level, x, 1)

        return hook

    def hidden(key: str) -> Callable[..., None]:
        def hook(_m: nn.Module, inputs: tuple[Any, ...]) -> None:
            act.add(act.spaces, key, inputs[0], -1)

        return hook

    def embed(_m: nn.Module, _i: Any, out: torch.Tensor) -> None:
        act.add(act.spaces, "time", out, -1)

    for name, mod in unet.named_modules():
        level = _level_of(name, levels)
        if level is not None and _STREAM.fullmatch(name):
            hooks.append(mod.register_forward_hook(stream(level)))
        elif re.search(r"\.(ff|ff_in)\.net\.2$", name):
            hooks.append(mod.register_forward_pre_hook(hidden(name[: -len(".net.2")])))
        elif name.endswith("time_pos_embed.linear_2"):
            hooks.append(mod.register_forward_pre_hook(hidden(name[: -len(".linear_2")])))
        elif name in ("time_embedding", "add_embedding"):
            hooks.append(mod.register_forward_hook(embed))
    try:
        run()
    finally:
        for h in hooks:
            h.remove()
    return act


def _top(score: torch.Tensor, k: int) -> torch.Tensor:
    return torch.sort(torch.topk(score, k).indices).values


def _balanced(score: torch.Tensor, k: int, block: int) -> torch.Tensor:
    """The ``k`` most active channels, the same number from every ``block`` consecutive ones
    (plain top-k when ``k`` does not split evenly)."""
    n = score.numel()
    if block <= 1 or n % block or (k * block) % n:
        return _top(score, k)
    per = k * block // n
    local = torch.topk(score.view(n // block, block), per, dim=1).indices
    base = torch.arange(0, n, block).unsqueeze(1)
    return torch.sort((local + base).flatten()).values


def _frequencies(width: int, new: int) -> torch.Tensor:
    """Columns of a ``width``-wide [cos | sin] timestep embedding that a ``new``-wide one of
    diffusers' ``Timesteps`` reproduces (every r-th frequency; nearest for non-integer r)."""
    half, nhalf = width // 2, new // 2
    idx = torch.tensor([min(half - 1, round(j * half / nhalf)) for j in range(nhalf)])
    return torch.cat([idx, idx + half])


@dataclass
class Plan:
    """Kept channel indices of every space, and the widths they give."""

    widths: tuple[int, ...]
    new: tuple[int, ...]
    levels: list[torch.Tensor]
    time: torch.Tensor
    spaces: dict[str, torch.Tensor]
    skips: dict[tuple[int, int], torch.Tensor]


def plan_pruning(unet: Any, act: Activity, keep: float) -> Plan:
    """Choose the channels to keep from the calibration activity."""
    cfg = unet.config
    widths = tuple(cfg.block_out_channels)
    new = pruned_widths(widths, keep)
    heads = tuple(cfg.num_attention_heads)
    levels: list[torch.Tensor] = []
    for i, (w, n) in enumerate(zip(widths, new, strict=True)):
        if i and widths[i - 1] == w and new[i - 1] == n:
            levels.append(levels[-1])  # an identity shortcut ties the level to the last
            continue
        block = math.gcd(w // GROUPS, w // heads[i])
        levels.append(_balanced(act.levels.get(i, torch.ones(w)), n, block))
    t_old, t_new = 4 * widths[0], 4 * new[0]
    time = _top(act.spaces.get("time", torch.ones(t_old)), t_new)
    spaces = {
        key: _top(score, _scaled(score.numel(), key, widths, new))
        for key, score in act.spaces.items()
        if key != "time"
    }
    return Plan(widths, new, levels, time, spaces, _skip_sets(cfg, levels, widths))


def _scaled(size: int, key: str, widths: tuple[int, ...], new: tuple[int, ...]) -> int:
    level = _level_of(key, len(widths))
    assert level is not None
    return size * new[level] // widths[level]


def _skip_sets(
    cfg: Any, levels: list[torch.Tensor], widths: tuple[int, ...]
) -> dict[tuple[int, int], torch.Tensor]:
    """For each up-block resnet (block, index): the kept channels of its concatenated input
    (the path below, then the skip connection from the down path)."""
    n, layers = len(widths), int(cfg.layers_per_block)
    stack = [(levels[0], widths[0])]
    for i in range(n):
        stack += [(levels[i], widths[i])] * layers
        if i < n - 1:
            stack.append((levels[i], widths[i]))
    out = {}
    for j in range(n):
        lvl = n - 1 - j
        for k in range(layers + 1):
            below = lvl if k else min(n - 1, lvl + 1)  # the up path's input comes from below
            h_set, h_w = levels[below], widths[below]
            s_set, _ = stack.pop()
            out[(j, k)] = torch.cat([h_set, s_set + h_w])
    return out


def _geglu(f: torch.Tensor, inner: int) -> torch.Tensor:
    """Rows of a GEGLU projection (value half, then gate half) for kept hidden units ``f``."""
    return torch.cat([f, f + inner])


def _special(name: str, shape: tuple[int, ...], plan: Plan) -> list[Any] | None:
    """Index sets of parameters outside the level streams' plain pattern (None: the plain
    pattern applies)."""
    w, t = plan.widths, plan.time
    level = _level_of(name, len(w))
    r = plan.levels[level] if level is not None else plan.levels[0]
    top: dict[str, list[Any]] = {
        "conv_in.weight": [r, None],
        "conv_in.bias": [r],
        "time_embedding.linear_1.weight": [t, _frequencies(w[0], plan.new[0])],
        "add_embedding.linear_1.weight": [t, None],
        "conv_out.weight": [None, r],
        "conv_out.bias": [None],
        "conv_norm_out.weight": [r],
        "conv_norm_out.bias": [r],
    }
    if name in top:
        return top[name]
    if name.startswith(("time_embedding.", "add_embedding.")):
        return [t] * len(shape)
    if name.endswith("time_emb_proj.weight"):
        return [r, t]
    if (m := _POS_1.match(name)) and level is not None:
        p = plan.spaces[m.group(1)]
        return [p, _frequencies(w[level], plan.new[level])] if m.group(2) == "weight" else [p]
    if m := _POS_2.match(name):
        return [r, plan.spaces[m.group(1)]]
    if m := _FF_IN.match(name):
        g = _geglu(plan.spaces[m.group(1)], shape[0] // 2)
        return [g, r] if m.group(2) == "weight" else [g]
    if m := _FF_OUT.match(name):
        return [r, plan.spaces[m.group(1)]]
    if re.search(r"attn2\.to_[kv]\.weight$", name):
        return [r, None]
    if m := _UP_RES.match(name):
        cat = plan.skips[(int(m.group(1)), int(m.group(2)))]
        return [r, cat] if name.endswith("weight") else [r]
    if m := _UP_NORM.match(name):
        return [plan.skips[(int(m.group(1)), int(m.group(2)))]]
    if (m := _DOWN_IN.match(name)) and int(m.group(1)) > 0:
        below = plan.levels[int(m.group(1)) - 1]
        if m.group(2) == "norm1":
            return [below]
        return [r, below] if name.endswith("weight") else [r]
    return None


def _index_sets(name: str, shape: tuple[int, ...], plan: Plan) -> list[Any]:
    """For each of a parameter's dimensions, the kept indices (None: all)."""
    sets = _special(name, shape, plan)
    if sets is None:
        level = _level_of(name, len(plan.widths))
        if level is None:
            raise PruneError(f"no pruning rule for UNet parameter {name}")
        width = plan.widths[level]
        sets = [
            plan.levels[level] if d < 2 and shape[d] == width else None for d in range(len(shape))
        ]
    return sets + [None] * (len(shape) - len(sets))


def apply_plan(unet: Any, plan: Plan) -> Any:
    """A new UNet of the pruned widths holding the kept channels' weights."""
    from diffusers import UNetSpatioTemporalConditionModel

    config = {k: v for k, v in dict(unet.config).items() if not k.startswith("_")}
    config["block_out_channels"] = list(plan.new)
    pruned = UNetSpatioTemporalConditionModel.from_config(config)
    want = pruned.state_dict()
    state = {}
    for name, value in unet.state_dict().items():
        v = value.detach()
        for d, idx in enumerate(_index_sets(name, tuple(v.shape), plan)):
            if idx is not None:
                v = v.index_select(d, idx.to(v.device))
        if tuple(v.shape) != tuple(want[name].shape):
            raise PruneError(
                f"pruning {name} gave {tuple(v.shape)}, the pruned model needs "
                f"{tuple(want[name].shape)}: this UNet's layout is not SVD's"
            )
        state[name] = v.contiguous()
    pruned.load_state_dict(state, strict=True)
    dtype = next(unet.parameters()).dtype
    if dtype != torch.float32:
        pruned = pruned.to(dtype)
    return pruned.eval().requires_grad_(False)


@dataclass
class PruneReport:
    """What ``prune_svd`` wrote and measured."""

    out: Path
    widths: tuple[int, ...]
    new: tuple[int, ...]
    params: tuple[int, int]
    flops: tuple[int, int]
    unet_change: float
    seconds: float

    def lines(self) -> list[str]:
        (p0, p1), (f0, f1) = self.params, self.flops
        return [
            f"wrote {self.out}",
            f"UNet widths {list(self.widths)} -> {list(self.new)}",
            f"parameters {p0 / 1e6:.1f} M -> {p1 / 1e6:.1f} M ({p1 / p0:.2f})",
            f"FLOPs per UNet call {f0 / 1e9:.2f} G -> {f1 / 1e9:.2f} G (saves {1 - f1 / f0:.0%})",
            f"UNet output change on the calibration run: {self.unet_change:.3f} (relative L2; "
            "not fine-tuned)",
            f"{self.seconds:.1f} s",
        ]


def prune_svd(
    source: Path,
    out: Path,
    keep: float,
    image: Any,
    *,
    width: int = 512,
    height: int = 288,
    frames: int = 0,
    steps: int = 2,
    device: str = "cpu",
    log: Callable[[str], None] = lambda _line: None,
) -> PruneReport:
    """Prune ``source``'s UNet to ``keep`` of its channels, calibrated on denoising ``image``
    (a PIL image), and save the result (and its temporal-block ranking) as the folder ``out``."""
    from fathom.engine.diffusion.mobilevd import (
        CapturedCalls,
        rank_temporal_blocks,
        unet_flops,
        write_ranking,
    )
    from fathom.engine.models.svd import load_svd

    start = time.perf_counter()
    if out.exists():
        raise PruneError(f"{out} exists; choose a new folder for the pruned model")
    pipe = load_svd(source, device, "float32", "none").pipe
    unet = pipe.unet
    widths = tuple(unet.config.block_out_channels)
    if pruned_widths(widths, keep) == widths:  # refuse before the calibration run
        raise PruneError(
            f"at keep {keep:g} every level keeps all its channels ({list(widths)}: widths "
            f"stay multiples of the {GROUPS} GroupNorm groups), so nothing would be pruned; "
            "lower keep or prune a wider model"
        )
    n = frames or int(unet.config.num_frames)
    capture = CapturedCalls(unet)
    log(f"calibrating on {n} frames at {width}x{height}, {steps} steps")
    act = record_activity(unet, lambda: _calibrate(pipe, capture, image, (width, height, n, steps)))
    pruned: Any = apply_plan(unet, plan_pruning(unet, act, keep))
    args, kwargs = capture.calls[0]
    with torch.no_grad():
        a = unet(*args, **{**kwargs, "return_dict": False})[0].float()
        b = pruned(*args, **{**kwargs, "return_dict": False})[0].float()
    change = float((b - a).norm() / (a.norm() + 1e-12))
    flops = (unet_flops(unet, args, kwargs), unet_flops(pruned, args, kwargs))
    log("ranking the pruned model's temporal blocks")
    ranking = rank_temporal_blocks(pruned, capture.calls[:1])
    _save(source, out, pruned)
    count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    report = PruneReport(
        out,
        tuple(unet.config.block_out_channels),
        tuple(pruned.config.block_out_channels),
        (count(unet), count(pruned)),
        flops,
        change,
        time.perf_counter() - start,
    )
    write_ranking(
        out,
        ranking,
        pruned_from=str(source),
        keep=keep,
        calibration={"width": width, "height": height, "frames": n, "steps": steps},
        flops_per_unet_call=list(flops),
        unet_change=change,
    )
    return report


def _calibrate(pipe: Any, capture: Any, image: Any, shape: tuple[int, int, int, int]) -> None:
    """Denoise ``image`` for a calibration, ``capture`` recording the UNet's calls. ``shape``:
    width, height, frames, steps. The conditional half only (guidance 1): half the cost."""
    width, height, n, steps = shape
    with torch.no_grad(), capture.attached():
        pipe(
            image,
            height=height,
            width=width,
            num_frames=n,
            num_inference_steps=steps,
            min_guidance_scale=1.0,
            max_guidance_scale=1.0,
            generator=torch.Generator("cpu").manual_seed(0),
            output_type="latent",
        )


def rank_svd(
    source: Path,
    image: Any,
    *,
    width: int = 512,
    height: int = 288,
    frames: int = 0,
    steps: int = 2,
    device: str = "cpu",
    log: Callable[[str], None] = lambda _line: None,
) -> list[tuple[str, float]]:
    """Rank ``source``'s temporal blocks on denoising ``image`` and save the ranking in the
    model folder, where generate.image_to_video's ``skip_temporal`` reads it: every later run,
    whatever its image or seed, skips the same blocks without a calibration run of its own
    (which costs about (blocks + 1) UNet calls per calibrated step)."""
    from fathom.engine.diffusion.mobilevd import (
        RANKING_FILE,
        CapturedCalls,
        rank_temporal_blocks,
        ranking_json,
    )
    from fathom.engine.fileio import atomic_write_text, writable_dir_problem
    from fathom.engine.models.svd import load_svd

    start = time.perf_counter()
    target = Path(source) / RANKING_FILE
    if not Path(source).is_dir():
        raise PruneError(f"{source} is not a model folder; give the SVD model's folder")
    problem = writable_dir_problem(source)  # refused before the calibration run, not after
    if problem:
        raise PruneError(
            f"cannot save the ranking in the model folder: {problem}; copy the model to a "
            "folder you can write to"
        )
    pipe = load_svd(source, device, "float32", "none").pipe
    n = frames or int(pipe.unet.config.num_frames)
    capture = CapturedCalls(pipe.unet)
    log(f"calibrating on {n} frames at {width}x{height}, {steps} steps")
    _calibrate(pipe, capture, image, (width, height, n, steps))
    total = len(capture.calls)

    def tick(done: int, count: int) -> None:
        if done == count or done % 10 == 0:
            log(f"ranking temporal blocks: {done}/{count} UNet calls ({total} calibration calls)")

    ranking = rank_temporal_blocks(pipe.unet, capture.calls, tick)
    calibration = {"width": width, "height": height, "frames": n, "steps": steps}
    atomic_write_text(target, ranking_json(ranking, calibration=calibration))
    seconds = time.perf_counter() - start
    log(f"wrote {target}: {len(ranking)} temporal blocks ranked in {seconds:.1f} s")
    return ranking


def _save(source: Path, out: Path, unet: Any) -> None:
    """The source folder's other parts as they are, the pruned UNet in diffusers' layout."""
    out.parent.mkdir(parents=True, exist_ok=True)
    shutil.copytree(source, out, ignore=shutil.ignore_patterns("unet", "*.md", "fathom_*.json"))
    unet.save_pretrained(out / "unet", safe_serialization=True)
