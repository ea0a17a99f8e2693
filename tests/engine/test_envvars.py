"""FATHOM_* numbers from the environment: a good value is used, a bad one is refused with a
warning naming the variable and the fix (never a bare ValueError at start-up), and the
default is used instead."""

from __future__ import annotations

import logging

import pytest

from fathom.engine.cache import OutputCache
from fathom.engine.envvars import env_number
from fathom.engine.models.manager import ModelManager


def test_values_defaults_and_refusals(caplog: pytest.LogCaptureFixture) -> None:
    assert env_number("FATHOM_X", 4, "things", env={"FATHOM_X": " 12.5 "}) == 12.5
    assert env_number("FATHOM_X", 4, "things", env={"FATHOM_X": ""}) == 4
    assert env_number("FATHOM_X", 4, "things", env={}) == 4
    with caplog.at_level(logging.WARNING, logger="fathom.env"):
        for bad in ("lots", "-3", "nan", "inf", "1e400"):
            assert env_number("FATHOM_X", 4, "things", env={"FATHOM_X": bad}) == 4
        assert env_number("FATHOM_Y", 1, "workers", minimum=1, env={"FATHOM_Y": "0"}) == 1
    said = [r.getMessage() for r in caplog.records]
    assert len(said) == 6
    assert "FATHOM_X='lots' is not a number of things" in said[0]
    assert "Fix: set FATHOM_X to a number such as 4, or unset it" in said[0]
    # Said once per value, not at every read.
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="fathom.env"):
        env_number("FATHOM_X", 4, "things", env={"FATHOM_X": "lots"})
    assert not caplog.records


def test_budgets_read_through_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FATHOM_SPILL_MB", "12")
    assert OutputCache().max_disk_bytes == 12 * 2**20
    monkeypatch.setenv("FATHOM_SPILL_MB", "12 MB")  # used to stop the studio with a ValueError
    assert OutputCache().max_disk_bytes == 4096 * 2**20
    monkeypatch.setenv("FATHOM_MAX_MODELS", "2")
    assert ModelManager().max_models == 2
    monkeypatch.setenv("FATHOM_MAX_MODELS", "two")
    assert ModelManager().max_models == 4
    monkeypatch.setenv("FATHOM_MAX_MODELS", "inf")  # int(inf) used to raise OverflowError
    assert ModelManager().max_models == 4
