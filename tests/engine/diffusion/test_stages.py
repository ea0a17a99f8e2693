"""The stages every diffusion run shares: guidance, timesteps from strength, noise, and the
acceleration hook contract (attach in order, detach in reverse, also on failure)."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from diffusers import DDIMScheduler

from fathom.engine.diffusion.stages import Guidance, attached, hooks, randn, strength_timesteps
from fathom.engine.errors import LoopInputError


def test_guidance_batches_both_halves_and_combines_them() -> None:
    g = Guidance(cfg=True, scale=3.0, embeds=torch.zeros(2, 4, 8), t_cond=None)
    x = torch.ones(1, 4, 2, 2)
    assert g.batch(x).shape == (2, 4, 2, 2)
    uncond, text = torch.full((1, 4, 2, 2), 1.0), torch.full((1, 4, 2, 2), 2.0)
    assert torch.allclose(g.combine(torch.cat([uncond, text])), torch.full_like(uncond, 4.0))
    off = Guidance(cfg=False, scale=1.0, embeds=torch.zeros(1, 4, 8), t_cond=None)
    assert off.batch(x) is x and off.combine(x) is x


def test_strength_keeps_the_last_part_of_the_schedule() -> None:
    sched = DDIMScheduler()
    sched.set_timesteps(10)
    timesteps, user_steps = strength_timesteps(sched, 10, 0.3)
    assert user_steps == 3 and torch.equal(timesteps, sched.timesteps[7:])
    with pytest.raises(LoopInputError) as info:
        strength_timesteps(sched, 10, 0.05)
    assert info.value.port == "strength" and "no step to run" in str(info.value)


def test_noise_is_the_same_on_any_device_for_a_seed() -> None:
    a = randn((2, 3), torch.Generator().manual_seed(7), "cpu", torch.float32)
    b = randn((2, 3), torch.Generator().manual_seed(7), "meta", torch.float32)
    assert b.device.type == "meta" and a.shape == b.shape
    assert torch.equal(a, randn((2, 3), torch.Generator().manual_seed(7), "cpu", torch.float32))


class _Recorder:
    def __init__(self, name: str, log: list[str], fail: bool = False) -> None:
        self.name, self.log, self.fail = name, log, fail

    def attach(self, components: Any) -> None:
        if self.fail:
            raise RuntimeError("cannot attach")
        self.log.append(f"attach {self.name}")

    def detach(self) -> None:
        self.log.append(f"detach {self.name}")

    def before_step(self, i: int, t: Any, latents: Any) -> None:
        self.log.append(f"step {self.name}")


def test_accelerations_attach_in_order_and_detach_in_reverse() -> None:
    log: list[str] = []
    a, b = _Recorder("a", log), _Recorder("b", log)
    with attached([a, b], object()):
        for hook in hooks([a, b], "before_step"):
            hook(0, 0, None)
    assert log == ["attach a", "attach b", "step a", "step b", "detach b", "detach a"]


def test_a_failing_attach_detaches_what_was_attached() -> None:
    log: list[str] = []
    with pytest.raises(RuntimeError), attached([_Recorder("a", log), _Recorder("b", log, True)], 0):
        pass
    assert log == ["attach a", "detach a"]


def test_a_failing_run_still_detaches() -> None:
    log: list[str] = []
    with pytest.raises(ValueError), attached([_Recorder("a", log)], 0):
        raise ValueError("the run failed")
    assert log == ["attach a", "detach a"]
