"""The studio's start-up warm-up: model libraries imported off the GUI thread, and what they
leave frozen out of later garbage collections (a full collection over them froze the GUI
thread for ~270 ms)."""

from __future__ import annotations

import gc
import sys
import threading

import pytest

from fathom.app import warmup


def test_a_paused_collection_freezes_what_the_block_made_and_restores_the_setting() -> None:
    before = gc.get_freeze_count()
    kept = []
    with warmup.collection_paused():
        assert not gc.isenabled()
        kept = [[object()] for _ in range(1000)]  # containers: tracked by the collector
    assert gc.isenabled() and gc.get_freeze_count() >= before + len(kept)
    gc.disable()
    try:
        with warmup.collection_paused():
            pass
        assert not gc.isenabled()  # a collector the caller had switched off stays off
    finally:
        gc.enable()
        gc.unfreeze()  # leave the process as other tests expect it


def test_the_model_libraries_import_with_their_model_registries() -> None:
    warmup.import_model_libraries()
    assert "transformers" in sys.modules and "diffusers" in sys.modules
    assert "transformers.models.auto.modeling_auto" in sys.modules


def test_workers_wait_for_the_warm_up_imports(monkeypatch: pytest.MonkeyPatch) -> None:
    """A run's thread importing diffusers while the warm-up does got half-made modules; it now
    starts only when the warm-up is over (and at once where there is none)."""
    started, done = threading.Event(), threading.Event()
    monkeypatch.setattr(warmup, "_started", started)
    monkeypatch.setattr(warmup, "done", done)
    warmup.wait_until_warm(timeout=5.0)  # no warm-up: no wait
    started.set()
    order: list[str] = []
    worker = threading.Thread(target=lambda: (warmup.wait_until_warm(5.0), order.append("run")))
    worker.start()
    worker.join(0.2)
    assert worker.is_alive() and not order
    order.append("warm")
    done.set()
    worker.join(5.0)
    assert order == ["warm", "run"]
