"""Clockwork feature reuse: period 1 equals the baseline exactly; cheap calls skip the core."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from fathom.engine.accel.clockwork import Clockwork, ClockworkAdaptor, core_channels
from fathom.engine.diffusion.components import Components
from fathom.engine.diffusion.loop import generate


def run(pipe, steps: int = 6) -> torch.Tensor:
    out = pipe(
        "a lighthouse at dusk",
        height=64,
        width=64,
        num_inference_steps=steps,
        generator=torch.Generator().manual_seed(5),
        output_type="pt",
    )
    return out.images


def with_clockwork(pipe, cw: Clockwork) -> torch.Tensor:
    cw.attach(pipe)
    try:
        return run(pipe)
    finally:
        cw.detach()


def test_period_one_equals_baseline_exactly(pipe) -> None:
    base = run(pipe)
    for level in (1, 2, 3):
        cw = Clockwork(period=1, level=level)
        assert torch.equal(with_clockwork(pipe, cw), base)
        assert cw.stats == {"full_calls": 6, "cheap_calls": 0}


def test_cheap_calls_skip_the_core(pipe) -> None:
    base = run(pipe)
    calls = {"mid": 0}
    hook = pipe.unet.mid_block.resnets[0].register_forward_pre_hook(
        lambda *a: calls.__setitem__("mid", calls["mid"] + 1)
    )
    try:
        cw = Clockwork(period=3, level=1)
        out = with_clockwork(pipe, cw)
    finally:
        hook.remove()
    assert cw.stats == {"full_calls": 2, "cheap_calls": 4}
    assert calls["mid"] == 2  # the mid block ran on the full calls only
    assert out.shape == base.shape and not torch.equal(out, base)
    assert float((out - base).abs().mean()) < 0.2
    assert torch.equal(run(pipe), base)  # detach restored every block


def test_warmup_keeps_first_steps_whole(pipe) -> None:
    cw = Clockwork(period=4, level=1, warmup=3)
    with_clockwork(pipe, cw)
    # steps 0, 1, 2 whole, then the clock ticks from step 2: steps 3, 4, 5 cheap.
    assert cw.stats == {"full_calls": 3, "cheap_calls": 3}


def test_untrained_adaptor_is_identity_and_round_trips(pipe, tmp_path: Path) -> None:
    out_ch, in_ch = core_channels(pipe.unet, 1)
    adaptor = ClockworkAdaptor(out_ch, in_ch, hidden=16, level=1)
    identity = with_clockwork(pipe, Clockwork(period=2, level=1))
    adapted = with_clockwork(pipe, Clockwork(period=2, level=1, adaptor=adaptor))
    assert torch.allclose(identity, adapted, atol=1e-6)
    torch.nn.init.normal_(adaptor.proj_out.weight, std=0.01)
    path = adaptor.save(tmp_path / "adaptor.safetensors")
    loaded = ClockworkAdaptor.load(path)
    assert loaded.config == adaptor.config
    a = with_clockwork(pipe, Clockwork(period=2, level=1, adaptor=adaptor.eval()))
    b = with_clockwork(pipe, Clockwork(period=2, level=1, adaptor=path))
    assert torch.equal(a, b)
    with pytest.raises(ValueError, match="level"):
        Clockwork(period=2, level=2, adaptor=path)


def test_level_out_of_range(pipe) -> None:
    with pytest.raises(ValueError, match="level"):
        Clockwork(period=2, level=4).attach(pipe)
    with pytest.raises(ValueError, match="period"):
        Clockwork(period=0)


def test_loop_steps_drive_the_clock(pipe) -> None:
    """In Fathom's loop the step index (before_step) drives the clock."""
    comps = Components(pipe.unet, pipe.vae, pipe.text_encoder, pipe.tokenizer, pipe.scheduler)
    kw = dict(steps=5, guidance=5.0, seed=1, width=64, height=64, scheduler="ddim")
    base = generate(comps, "a fox", **kw)
    same = generate(comps, "a fox", accel=[Clockwork(period=1)], **kw)
    assert (base.images == same.images).all()
    cw = Clockwork(period=2)
    generate(comps, "a fox", accel=[cw], **kw)
    assert cw.stats == {"full_calls": 3, "cheap_calls": 2}
