"""User settings (QSettings) and the dialog that edits them.

Models folder, device, memory budget, preview quality, output folder, theme (dark by
default) and the run history's budget (runs and GB kept), plus the recent-files list, the
recovery folder the autosave uses, the palette's favourite and recently added node types,
and the View menu's minimap and node thumbnail switches.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from PySide6.QtCore import QSettings, QStandardPaths
from PySide6.QtWidgets import (
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLineEdit,
    QSpinBox,
    QStyle,
    QToolButton,
    QWidget,
)

from fathom.engine.device import DEVICE_CHOICES
from fathom.engine.envvars import overridden
from fathom.engine.history_prune import (
    DEFAULT_MAX_GB,
    DEFAULT_MAX_RUNS,
    GB_ENV,
    RUNS_ENV,
    HistoryBudget,
    budget_from,
)

THEMES = ("dark", "light")
#: Largest preview side in pixels per quality (None: full size).
PREVIEW_QUALITY = {"fast": 512, "balanced": 1024, "full": None}
MAX_RECENT = 10
#: How many recently added node types the palette lists at its top.
MAX_RECENT_NODES = 8


class Settings:
    """Typed access to QSettings. Tests pass an ini path so parallel runs never share state."""

    def __init__(self, path: Path | None = None) -> None:
        if path is not None:
            self.q = QSettings(str(path), QSettings.Format.IniFormat)
        else:
            self.q = QSettings("Fathom", "Fathom Studio")

    def _get(self, key: str, default: Any, kind: type = str) -> Any:
        value = self.q.value(key, default)
        if value is None:
            return default
        try:
            return kind(value)
        except (TypeError, ValueError):
            return default

    def _set(self, key: str, value: Any) -> None:
        self.q.setValue(key, value)
        self.q.sync()

    @property
    def models_dir(self) -> str:
        """Searched for models by name; the engine reads this key from this very file
        (``engine.models.locate``), so ``fathom render`` finds the same models."""
        return self._get("models_dir", "")

    @models_dir.setter
    def models_dir(self, value: str) -> None:
        self._set("models_dir", value)

    @property
    def device(self) -> str:
        value = self._get("device", "auto")
        return value if value in DEVICE_CHOICES else "auto"

    @device.setter
    def device(self, value: str) -> None:
        self._set("device", value)

    @property
    def memory_budget_gb(self) -> float:
        return max(0.25, self._get("memory_budget_gb", 4.0, float))

    @memory_budget_gb.setter
    def memory_budget_gb(self, value: float) -> None:
        self._set("memory_budget_gb", float(value))

    @property
    def preview_quality(self) -> str:
        value = self._get("preview_quality", "balanced")
        return value if value in PREVIEW_QUALITY else "balanced"

    @preview_quality.setter
    def preview_quality(self, value: str) -> None:
        self._set("preview_quality", value)

    @property
    def theme(self) -> str:
        value = self._get("theme", "dark")
        return value if value in THEMES else "dark"

    @theme.setter
    def theme(self, value: str) -> None:
        self._set("theme", value)

    @property
    def output_dir(self) -> str:
        """Where runs write; empty means an ``out`` folder beside the graph file."""
        return self._get("output_dir", "")

    @output_dir.setter
    def output_dir(self, value: str) -> None:
        self._set("output_dir", value)

    @property
    def history_max_runs(self) -> int:
        """Unpinned runs the history keeps (0: no limit)."""
        return max(0, self._get("history_max_runs", DEFAULT_MAX_RUNS, int))

    @history_max_runs.setter
    def history_max_runs(self, value: int) -> None:
        self._set("history_max_runs", int(value))

    @property
    def history_max_gb(self) -> float:
        """Disk the unpinned runs' records may hold (0: no limit)."""
        return max(0.0, self._get("history_max_gb", DEFAULT_MAX_GB, float))

    @history_max_gb.setter
    def history_max_gb(self, value: float) -> None:
        self._set("history_max_gb", float(value))

    def history_budget(self) -> HistoryBudget:
        """The two settings, unless FATHOM_HISTORY_RUNS / FATHOM_HISTORY_GB override them."""
        return budget_from(self.history_max_runs, self.history_max_gb)

    @property
    def recovery_dir(self) -> Path:
        custom = self._get("recovery_dir", "")
        if custom:
            return Path(custom)
        base = QStandardPaths.writableLocation(
            QStandardPaths.StandardLocation.AppDataLocation
        ) or str(Path.home() / ".fathom")
        return Path(base) / "recovery"

    @recovery_dir.setter
    def recovery_dir(self, value: str) -> None:
        self._set("recovery_dir", value)

    @property
    def autosave_seconds(self) -> int:
        return max(1, self._get("autosave_seconds", 60, int))

    @autosave_seconds.setter
    def autosave_seconds(self, value: int) -> None:
        self._set("autosave_seconds", int(value))

    # ---- recent files --------------------------------------------------------------------

    def recent_files(self) -> list[str]:
        value = self.q.value("recent_files", [])
        if isinstance(value, str):
            value = [value]
        return [str(v) for v in (value or [])]

    def add_recent(self, path: Path) -> None:
        p = str(Path(path).resolve())
        items = [p] + [r for r in self.recent_files() if r != p]
        self._set("recent_files", items[:MAX_RECENT])

    def clear_recent(self) -> None:
        self._set("recent_files", [])

    # ---- the palette's favourite and recently added node types ----------------------------

    def _strings(self, key: str) -> list[str]:
        value = self.q.value(key, [])
        if isinstance(value, str):  # QSettings reads a one-item list back as a string
            value = [value]
        return [str(v) for v in (value or [])]

    def favourite_nodes(self) -> list[str]:
        return self._strings("favourite_nodes")

    def set_favourite_nodes(self, type_ids: list[str]) -> None:
        self._set("favourite_nodes", list(type_ids))

    def recent_nodes(self) -> list[str]:
        return self._strings("recent_nodes")

    def add_recent_node(self, type_id: str) -> None:
        items = [type_id] + [t for t in self.recent_nodes() if t != type_id]
        self._set("recent_nodes", items[:MAX_RECENT_NODES])

    # ---- View menu choices that outlast the window ---------------------------------------

    @property
    def minimap(self) -> bool | None:
        """View → Minimap: True/False the user's choice, None (never chosen) automatic."""
        value = str(self._get("minimap", "auto")).lower()
        return {"true": True, "false": False}.get(value)

    @minimap.setter
    def minimap(self, value: bool | None) -> None:
        self._set("minimap", "auto" if value is None else ("true" if value else "false"))

    @property
    def node_thumbnails(self) -> bool:
        """View → Node Thumbnails (shown unless the user hid them)."""
        return str(self._get("node_thumbnails", "true")).lower() != "false"

    @node_thumbnails.setter
    def node_thumbnails(self, value: bool) -> None:
        self._set("node_thumbnails", "true" if value else "false")

    # ---- effects --------------------------------------------------------------------------

    def path(self) -> Path:
        return Path(self.q.fileName())

    def preview_limit(self) -> int | None:
        return PREVIEW_QUALITY[self.preview_quality]


class SettingsDialog(QDialog):
    def __init__(self, settings: Settings, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Settings")
        self.settings = settings
        form = QFormLayout(self)
        self.models = QLineEdit(settings.models_dir)
        self.models.setPlaceholderText("none: models by path or from the Hugging Face cache")
        _fit_placeholder(self.models)
        form.addRow("Models folder", _with_browse(self.models, self))
        self.output = QLineEdit(settings.output_dir)
        self.output.setPlaceholderText("an 'out' folder beside the graph file")
        _fit_placeholder(self.output)
        form.addRow("Output folder", _with_browse(self.output, self))
        self.device = QComboBox()
        self.device.addItems(DEVICE_CHOICES)
        self.device.setCurrentText(settings.device)
        form.addRow("Device", self.device)
        self.budget = QDoubleSpinBox()
        self.budget.setRange(0.25, 512)
        self.budget.setSuffix(" GB")
        self.budget.setValue(settings.memory_budget_gb)
        self.budget.setToolTip("how much memory cached node outputs may use")
        form.addRow("Memory budget", self.budget)
        self._history_rows(form, settings)
        self.quality = QComboBox()
        self.quality.addItems(list(PREVIEW_QUALITY))
        self.quality.setCurrentText(settings.preview_quality)
        form.addRow("Preview quality", self.quality)
        self.theme = QComboBox()
        self.theme.addItems(THEMES)
        self.theme.setCurrentText(settings.theme)
        form.addRow("Theme", self.theme)
        buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel
        )
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        form.addRow(buttons)

    def _history_rows(self, form: QFormLayout, settings: Settings) -> None:
        """Keep N runs, at most X GB: the oldest unpinned runs go first."""
        why = (
            "after each run the oldest unpinned records go until both limits hold; pinned "
            f"runs are always kept ({RUNS_ENV} and {GB_ENV} override these)"
        )
        self.history_runs = QSpinBox()
        self.history_runs.setRange(0, 1_000_000)
        self.history_runs.setSpecialValueText("no limit")
        self.history_runs.setSuffix(" runs")
        self.history_runs.setValue(settings.history_max_runs)
        self.history_runs.setToolTip("how many unpinned runs the history keeps: " + why)
        form.addRow("History keeps", self.history_runs)
        self.history_gb = QDoubleSpinBox()
        self.history_gb.setDecimals(3)  # 0.004 GB must not round to 0, "no limit"
        self.history_gb.setRange(0, 100_000)
        self.history_gb.setSpecialValueText("no limit")
        self.history_gb.setSuffix(" GB")
        self.history_gb.setValue(settings.history_max_gb)
        self.history_gb.setToolTip(
            "disk the unpinned runs' records may hold (outputs still in the output folder "
            "cost nothing: records hard-link them): " + why
        )
        form.addRow("History size", self.history_gb)
        # Where the environment overrides a field, show the value in effect, not editable.
        budget = settings.history_budget()
        for box, name, value in (
            (self.history_runs, RUNS_ENV, budget.max_runs),
            (self.history_gb, GB_ENV, budget.max_bytes / 2**30),
        ):
            if overridden(name):  # a refused value overrides nothing: the field applies
                box.setValue(value)
                box.setEnabled(False)
                box.setToolTip(f"set by {name}={os.environ[name].strip()} (unset it to edit here)")

    def store(self) -> None:
        s = self.settings
        # A field the environment overrides shows that value: storing it would save it.
        if self.history_runs.isEnabled():
            s.history_max_runs = self.history_runs.value()
        if self.history_gb.isEnabled():
            s.history_max_gb = self.history_gb.value()
        s.models_dir = self.models.text().strip()
        s.output_dir = self.output.text().strip()
        s.device = self.device.currentText()
        s.memory_budget_gb = self.budget.value()
        s.preview_quality = self.quality.currentText()
        s.theme = self.theme.currentText()


def _fit_placeholder(edit: QLineEdit) -> None:
    """Make the field at least as wide as its placeholder: the placeholder says what an empty
    field means (models by path, out/ beside the graph), and cut off it says nothing."""
    frame = edit.style().pixelMetric(QStyle.PixelMetric.PM_DefaultFrameWidth, None, edit)
    margins = edit.textMargins()
    text = edit.fontMetrics().horizontalAdvance(edit.placeholderText())
    # 2 px: QLineEdit's own gap between its frame and the text, on each side.
    edit.setMinimumWidth(text + 2 * (frame + 2) + margins.left() + margins.right() + 4)


def _with_browse(edit: QLineEdit, parent: QWidget) -> QWidget:
    box = QWidget()
    lay = QHBoxLayout(box)
    lay.setContentsMargins(0, 0, 0, 0)
    lay.addWidget(edit, 1)
    browse = QToolButton()
    browse.setText("…")

    def pick() -> None:
        chosen = QFileDialog.getExistingDirectory(parent, "Choose a folder", edit.text())
        if chosen:
            edit.setText(chosen)

    browse.clicked.connect(pick)
    lay.addWidget(browse)
    return box
