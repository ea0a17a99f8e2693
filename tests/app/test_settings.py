"""Settings persist in their ini file and take effect in the running window."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fathom.app.settings import PREVIEW_QUALITY, Settings, SettingsDialog


def test_defaults_and_persistence(tmp_path: Path) -> None:
    s = Settings(tmp_path / "s.ini")
    assert (s.theme, s.device, s.preview_quality, s.memory_budget_gb) == (
        "dark",
        "auto",
        "balanced",
        4.0,
    )
    s.theme, s.device, s.memory_budget_gb, s.preview_quality = "light", "cpu", 1.5, "fast"
    again = Settings(tmp_path / "s.ini")
    assert (again.theme, again.device, again.memory_budget_gb, again.preview_limit()) == (
        "light",
        "cpu",
        1.5,
        PREVIEW_QUALITY["fast"],
    )
    again.q.setValue("device", "quantum")  # a bad value falls back to the default
    assert again.device == "auto"


def test_dialog_applies_to_the_window(
    qtbot: Any, window: Any, monkeypatch: Any, tmp_path: Path
) -> None:
    dialog = SettingsDialog(window.settings, window)
    qtbot.addWidget(dialog)
    dialog.budget.setValue(0.5)
    dialog.models.setText(str(tmp_path / "models"))
    dialog.quality.setCurrentText("fast")
    dialog.store()
    window.apply_settings()
    assert window.executor.cache.max_bytes == int(0.5 * 1024**3)
    # The engine (and so `fathom render`) reads the models folder from the same file.
    from fathom.engine.models.locate import model_folders

    monkeypatch.setenv("FATHOM_SETTINGS", str(window.settings.path()))
    monkeypatch.delenv("FATHOM_MODELS", raising=False)
    assert model_folders() == [tmp_path / "models"]
    import numpy as np

    from fathom.engine.types import Image

    shown: list[Any] = []
    window.preview.show_value = lambda value, title="": shown.append(value)
    window.previews.show_value(Image(np.zeros((2048, 1024, 3), np.float32)), "big")
    assert max(shown[0].data.shape[:2]) <= 512


def test_history_budget_setting_its_dialog_rows_and_environment_override(
    qtbot: Any, tmp_path: Path, monkeypatch: Any
) -> None:
    from fathom.engine.history_prune import DEFAULT_MAX_RUNS, HistoryBudget

    monkeypatch.delenv("FATHOM_HISTORY_RUNS", raising=False)
    monkeypatch.delenv("FATHOM_HISTORY_GB", raising=False)
    s = Settings(tmp_path / "s.ini")
    assert s.history_max_runs == DEFAULT_MAX_RUNS and s.history_max_gb > 0
    dialog = SettingsDialog(s)
    qtbot.addWidget(dialog)
    assert dialog.history_runs.value() == DEFAULT_MAX_RUNS
    dialog.history_runs.setValue(0)  # shown as "no limit"
    assert dialog.history_runs.text() == "no limit"
    dialog.history_gb.setValue(1.5)
    dialog.store()
    again = Settings(tmp_path / "s.ini")
    assert again.history_budget() == HistoryBudget(0, int(1.5 * 2**30))
    monkeypatch.setenv("FATHOM_HISTORY_RUNS", "12")
    assert again.history_budget().max_runs == 12


def test_history_rows_show_what_the_environment_sets_and_keep_small_sizes(
    qtbot: Any, tmp_path: Path, monkeypatch: Any
) -> None:
    """An overridden field shows the value in effect and cannot be edited (storing it would
    save the environment's value); 0.004 GB stays 0.004, not 0 ("no limit")."""
    monkeypatch.setenv("FATHOM_HISTORY_RUNS", "7")
    monkeypatch.delenv("FATHOM_HISTORY_GB", raising=False)
    s = Settings(tmp_path / "s.ini")
    s.history_max_runs = 50
    dialog = SettingsDialog(s)
    qtbot.addWidget(dialog)
    assert dialog.history_runs.value() == 7 and not dialog.history_runs.isEnabled()
    assert "FATHOM_HISTORY_RUNS=7" in dialog.history_runs.toolTip()
    assert dialog.history_gb.isEnabled()
    dialog.history_gb.setValue(0.004)
    dialog.store()
    again = Settings(tmp_path / "s.ini")
    assert again.history_max_runs == 50  # the stored setting is untouched
    assert again.history_max_gb == 0.004
    monkeypatch.setenv("FATHOM_HISTORY_RUNS", "lots")  # refused: the field is what applies
    dialog = SettingsDialog(again)
    qtbot.addWidget(dialog)
    assert dialog.history_runs.isEnabled() and dialog.history_runs.value() == 50
