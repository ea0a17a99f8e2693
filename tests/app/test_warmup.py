"""The studio's start-up warm-up: model libraries imported off the GUI thread, and what they
leave frozen out of later garbage collections (a full collection over them froze the GUI
thread for ~270 ms)."""

from __future__ import annotations

import gc
import sys

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
