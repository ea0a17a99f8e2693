"""Clockwork feature reuse: run the UNet's low-resolution core only every k-th call.

Habibian et al., "Clockwork Diffusion: Efficient Generation With Model-Step Distillation" (CVPR
2024) observe that the low-resolution UNet features change slowly along the sampling trajectory
while the high-resolution layers carry the detail. On every ``period``-th UNet call we run the
whole UNet and keep what enters the high-resolution up blocks; on the calls in between only the
outer ``level`` resolution levels run (their down blocks, their up blocks, conv in/out) and the
low-resolution features come from the kept ones through an adaptor:

- ``"identity"``: the kept features as they are;
- :class:`ClockworkAdaptor`: a light convolutional net that corrects the kept features using how
  the current input to the low-resolution core differs from the kept one and the two timesteps.
  ``bench/train_clockwork_adaptor.py`` distils it on the model's own sampling trajectories.

The skipping is done by swapping the forward of the skipped blocks for cheap stand-ins while the
UNet's own forward runs, so it works on any ``UNet2DConditionModel`` called as ``unet(...)`` (our
loop, a diffusers pipeline, the stream). ``period=1`` never skips: the output equals the baseline
exactly.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

# --------------------------------------------------------------------------- adaptor


def timestep_features(t: torch.Tensor, dim: int = 32) -> torch.Tensor:
    """Sinusoidal features of timesteps in [0, 1000): (B,) → (B, dim)."""
    half = dim // 2
    freqs = torch.exp(-math.log(1000.0) * torch.arange(half, dtype=torch.float32) / half)
    angles = t.float().reshape(-1, 1) * freqs.to(t.device).reshape(1, -1)
    return torch.cat([angles.sin(), angles.cos()], dim=1)


class ClockworkAdaptor(nn.Module):
    """Predicts the current low-resolution features from the kept ones.

    Inputs: the kept output of the low-res core (``out_channels`` at the high resolution), the
    kept and current inputs of the core (``in_channels`` at half that resolution) and the kept
    and current timesteps. It works at the core's input resolution and adds a residual, zero at
    initialisation, so an untrained adaptor is the identity.
    """

    def __init__(
        self, out_channels: int, in_channels: int, hidden: int = 64, level: int = 1, t_dim: int = 32
    ) -> None:
        super().__init__()
        self.config = {
            "out_channels": out_channels,
            "in_channels": in_channels,
            "hidden": hidden,
            "level": level,
            "t_dim": t_dim,
        }
        self.t_dim = t_dim
        self.proj_in = nn.Conv2d(out_channels + in_channels, hidden, 3, padding=1)
        self.time = nn.Linear(2 * t_dim, hidden)
        self.norm = nn.GroupNorm(8 if hidden % 8 == 0 else 1, hidden)
        self.mid = nn.Conv2d(hidden, hidden, 3, padding=1)
        self.proj_out = nn.Conv2d(hidden, out_channels, 3, padding=1)
        nn.init.zeros_(self.proj_out.weight)
        assert self.proj_out.bias is not None
        nn.init.zeros_(self.proj_out.bias)

    @property
    def level(self) -> int:
        return int(self.config["level"])

    def forward(
        self,
        kept_out: torch.Tensor,
        kept_in: torch.Tensor,
        cur_in: torch.Tensor,
        t_kept: torch.Tensor,
        t_cur: torch.Tensor,
    ) -> torch.Tensor:
        size = (int(cur_in.shape[-2]), int(cur_in.shape[-1]))
        same = tuple(kept_out.shape[-2:]) == size
        pooled = kept_out if same else F.adaptive_avg_pool2d(kept_out, size)
        h = self.proj_in(torch.cat([pooled, cur_in - kept_in], dim=1))
        b = h.shape[0]
        temb = torch.cat(
            [
                timestep_features(t_kept.expand(b) if t_kept.numel() == 1 else t_kept, self.t_dim),
                timestep_features(t_cur.expand(b) if t_cur.numel() == 1 else t_cur, self.t_dim),
            ],
            dim=1,
        ).to(h.dtype)
        h = F.silu(self.norm(h + self.time(temb)[:, :, None, None]))
        h = self.proj_out(F.silu(self.mid(h)))
        if h.shape[-2:] != kept_out.shape[-2:]:
            h = F.interpolate(h, size=kept_out.shape[-2:], mode="bilinear", align_corners=False)
        return kept_out + h

    def save(self, path: str | Path) -> Path:
        from safetensors.torch import save_file

        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        state = {k: v.detach().contiguous().cpu() for k, v in self.state_dict().items()}
        save_file(state, str(path), metadata={"fathom.clockwork": json.dumps(self.config)})
        return path

    @classmethod
    def load(cls, path: str | Path, map_location: str | torch.device = "cpu") -> ClockworkAdaptor:
        from safetensors import safe_open
        from safetensors.torch import load_file

        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
        if "fathom.clockwork" not in meta:
            raise ValueError(f"{path} is not a Clockwork adaptor (no 'fathom.clockwork' metadata)")
        adaptor = cls(**json.loads(meta["fathom.clockwork"]))
        adaptor.load_state_dict(load_file(str(path), device=str(map_location)))
        return adaptor.eval().requires_grad_(False)


# --------------------------------------------------------------------------- the UNet hook


def _zeros_like_shape(ref: torch.Tensor) -> torch.Tensor:
    """A tensor of ref's shape that costs nothing (every element aliases one zero)."""
    return ref.new_zeros(()).expand(ref.shape)


def _dummy(structure: Any) -> Any:
    if isinstance(structure, torch.Tensor):
        return _zeros_like_shape(structure)
    if isinstance(structure, tuple):
        return tuple(_dummy(s) for s in structure)
    return structure


class Clockwork:
    """Clockwork feature reuse on a ``UNet2DConditionModel``.

    period: the whole UNet runs on every ``period``-th call (per step when the loop calls
        ``before_step``); 1 = always (identical to the baseline).
    level: how many outer resolution levels still run on the cheap calls (1 = only the highest
        resolution; the features entering ``up_blocks[-level]`` are reused).
    adaptor: ``"identity"``, a :class:`ClockworkAdaptor`, or a path to a saved one. (Linear
        extrapolation from the last two kept calls was tried: lower feature error, yet 1-2 dB
        lower image PSNR than the identity on the benchmark, so it is not offered.)
    warmup: the first ``warmup`` steps all run whole before the clock starts. The earliest,
        noisiest steps decide the image's layout: reusing features there costs far more fidelity
        than anywhere later (measured in BENCHMARKS.md), so a short warm-up buys PSNR cheaply.
    full_last: also run the whole UNet on the last ``full_last`` steps of a schedule of
        ``num_steps`` (needs ``num_steps``).
    remap: ``remap(gap, batch) -> index or None`` picks, for each item of a cheap call, which
        kept batch item to reuse (``gap`` = calls since the kept one). The stream uses it to
        follow a frame along its denoising stages; None reuses item for item.
    """

    def __init__(
        self,
        period: int = 2,
        level: int = 1,
        adaptor: str | Path | ClockworkAdaptor | None = "identity",
        warmup: int = 0,
        full_last: int = 0,
        num_steps: int | None = None,
        remap: Any = None,
    ) -> None:
        if period < 1:
            raise ValueError(f"clock period must be >= 1, got {period}")
        if level < 1:
            raise ValueError(f"clockwork level must be >= 1, got {level}")
        self.period = int(period)
        self.level = int(level)
        if isinstance(adaptor, (str, Path)) and str(adaptor) != "identity":
            adaptor = ClockworkAdaptor.load(adaptor)
        self.adaptor: ClockworkAdaptor | None = adaptor if isinstance(adaptor, nn.Module) else None
        if self.adaptor is not None and self.adaptor.level != self.level:
            raise ValueError(
                f"the adaptor was trained for level {self.adaptor.level}, not level {self.level}"
            )
        self.warmup = int(warmup)
        self.remap = remap
        self.full_last = full_last
        self.num_steps = num_steps
        self.full_calls = 0
        self.cheap_calls = 0
        self._unet: Any = None
        self._hooks: list[Any] = []
        self._patched: list[nn.Module] = []
        self.reset()

    # accel interface -------------------------------------------------------
    def attach(self, components: Any) -> None:
        unet = getattr(components, "unet", components)
        if self._unet is not None:
            raise RuntimeError("Clockwork is already attached; detach() it first")
        n = len(unet.up_blocks)
        if not 1 <= self.level < n:
            raise ValueError(
                f"clockwork level must be in 1..{n - 1} for this UNet, got {self.level}"
            )
        self._unet = unet
        self.reset()
        if self.adaptor is not None:
            p = next(unet.parameters())
            self.adaptor.to(device=p.device, dtype=p.dtype)
        self._hooks.append(unet.register_forward_pre_hook(self._on_unet_call, with_kwargs=True))
        self._hooks.append(unet.register_forward_hook(self._after_unet_call))
        # The low-resolution core: down blocks below `level`, the mid block, the up blocks above.
        self._core_in = unet.down_blocks[self.level]
        self._core_out = unet.up_blocks[n - self.level - 1]
        skipped = [
            *unet.down_blocks[self.level :],
            unet.mid_block,
            *unet.up_blocks[: n - self.level],
        ]
        for block in skipped:
            self._patch(block)

    def detach(self) -> None:
        for h in self._hooks:
            h.remove()
        self._hooks.clear()
        for block in self._patched:
            del block.forward  # the instance attribute; the class's forward shows again
        self._patched.clear()
        self._unet = None
        self.reset()

    def before_step(self, step_index: int, t: Any, latents: torch.Tensor) -> None:
        self._step = int(step_index)
        self._explicit = True
        self._call_in_step = 0

    def reset(self) -> None:
        """Forget kept features and restart the clock (a new image or stream)."""
        self._step = -1
        self._explicit = False
        self._call_in_step = 0
        self._calls = 0
        self._kept: dict[int, dict[str, Any]] = {}
        self._cheap = False
        self._slot = 0
        self._t: torch.Tensor | None = None
        self._rec: dict[str, Any] = {}
        self._view: dict[str, Any] = {}

    # scheduling -------------------------------------------------------------
    def _on_unet_call(self, module: nn.Module, args: tuple, kwargs: dict) -> None:
        if self._explicit:
            step, slot = self._step, self._call_in_step
            self._call_in_step += 1
        else:
            step, slot = self._calls, 0
        self._calls += 1
        sample = args[0] if args else kwargs["sample"]
        t = args[1] if len(args) > 1 else kwargs["timestep"]
        t = torch.as_tensor(t, device=sample.device).flatten()
        self._t = t.expand(sample.shape[0]) if t.numel() == 1 else t
        self._slot = slot
        kept = self._kept.get(slot)
        due = step < self.warmup or (step - max(self.warmup - 1, 0)) % self.period == 0
        if self.full_last and self.num_steps is not None:
            due = due or step >= self.num_steps - self.full_last
        self._cheap = (
            not due
            and kept is not None
            and kept["shape"] == tuple(sample.shape)
            and self.period > 1
        )
        self._rec = {"shape": tuple(sample.shape), "call": self._calls}
        if self._cheap:
            assert kept is not None
            index = self.remap(self._calls - kept["call"], sample.shape[0]) if self.remap else None
            if index is None:
                self._view = kept
            else:
                index = index.to(kept["out"].device)
                self._view = {k: kept[k].index_select(0, index) for k in ("out", "in", "t")}

    def _after_unet_call(self, module: nn.Module, args: tuple, output: Any) -> None:
        if self._cheap:
            self.cheap_calls += 1
        else:
            self.full_calls += 1
            if self.period > 1 and "out" in self._rec:
                self._rec["t"] = self._t
                self._kept[self._slot] = self._rec
        self._cheap = False
        self._rec = {}

    # block stand-ins ----------------------------------------------------------
    def _patch(self, block: nn.Module) -> None:
        original = block.forward
        owner = self

        def forward(*args: Any, **kwargs: Any) -> Any:
            if not owner._cheap:
                out = original(*args, **kwargs)
                if owner.period > 1:
                    owner._record(block, args, kwargs, out)
                return out
            return owner._stand_in(block, args, kwargs)

        block.forward = forward
        self._patched.append(block)

    def _record(self, block: nn.Module, args: tuple, kwargs: dict, out: Any) -> None:
        rec = self._rec
        if block is self._core_in:
            rec["in"] = args[0] if args else kwargs["hidden_states"]
        if block is self._core_out:
            rec["out"] = out
        rec.setdefault("dummy", {})[id(block)] = _dummy(out)

    def _stand_in(self, block: nn.Module, args: tuple, kwargs: dict) -> Any:
        if block is self._core_in:
            self._rec["cur_in"] = args[0] if args else kwargs["hidden_states"]
        if block is self._core_out:
            view = self._view
            if self.adaptor is None:
                return view["out"]
            return self.adaptor(view["out"], view["in"], self._rec["cur_in"], view["t"], self._t)
        return self._kept[self._slot]["dummy"][id(block)]

    # introspection -------------------------------------------------------------
    @property
    def stats(self) -> dict[str, int]:
        return {"full_calls": self.full_calls, "cheap_calls": self.cheap_calls}


def core_channels(unet: Any, level: int) -> tuple[int, int]:
    """(out_channels, in_channels) of the low-resolution core below ``level`` — the adaptor's
    feature widths: what leaves ``up_blocks[-level-1]`` and what enters ``down_blocks[level]``."""
    ch = list(unet.config.block_out_channels)  # up_blocks[i] leaves with ch[n - 1 - i]
    return ch[level], ch[level - 1]
