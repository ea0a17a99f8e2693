"""Model parameters as pickers: the local models that fit the node, browsing, downloading.

Which parameters name a model is node metadata, never a node id: a parameter that declares
``suggest="models"`` (or ``"loras"``), or a ``model`` (a multi-line ``loras``) parameter on a
node class that declares the model ``families`` it runs (``engine.generation.ModelNode``); and
a parameter that declares ``suggest="controlnet"`` or ``"ip-adapter"``, an add-on model of
that kind (``model_kind``). The list comes from the window's ``ModelCatalog``; what fits is
the engine's rule (``engine.models.catalog.fits``: family, kind, inpainting; ``lora_fits``: a
LoRA for the node's current model; an add-on: its kind, each row saying the family it is made
for). A chosen model is typed into the parameter like any edit, so it is undoable.

Where some modes of the node run only some of its models (``Node.mode_models``: a mode that
runs one model type layer by layer), each model's row and the status line say so, for the
mode chosen now: the picker shows what the node's check would refuse before the run.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from PySide6.QtCore import QModelIndex, QPersistentModelIndex, QSize, Qt, Signal
from PySide6.QtGui import QColor, QFont, QFontMetrics, QPainter
from PySide6.QtWidgets import (
    QApplication,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QMenu,
    QProgressBar,
    QPushButton,
    QStyle,
    QStyledItemDelegate,
    QStyleOptionViewItem,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from fathom.app.model_catalog import (
    ACTIVE_STATES,
    STALE_S,
    Download,
    ModelCatalog,
    source_text,
)
from fathom.app.param_widgets import ParamWidget, TextWidget
from fathom.app.theme import text_color, text_style
from fathom.engine.models.catalog import ADDON_KINDS, ModelEntry, human_size
from fathom.engine.models.families import names
from fathom.engine.models.locate import looks_like_hub_id
from fathom.engine.node import Node, Param

#: note(entry) -> (short, full): what the node's modes say of a model (``mode_note``).
ModeNote = Callable[[ModelEntry], tuple[str, str]]

#: pick(spec, kind) -> path or None: kind "open" (a file) or "folder" (the inspector's dialogs).
ModelPathPicker = Callable[[Param, str], str | None]
#: Item data: the model's name and its details line (the delegate draws them on two lines).
NAME_ROLE, DETAILS_ROLE = Qt.ItemDataRole.UserRole + 1, Qt.ItemDataRole.UserRole + 2


#: The ``suggest`` of a parameter that takes an add-on model: the catalog kind it lists.
ADDON_SUGGESTS = ("controlnet", "ip-adapter")
#: How a picker names the kind of model it lists.
KIND_NOUNS = {"model": "model", "controlnet": "ControlNet", "ip-adapter": "IP-Adapter"}
#: Where a missing add-on of a kind goes, as the "nothing here" line says.
ADDON_HOMES = {
    "controlnet": "put ControlNet folders or .safetensors files in a models folder's "
    "controlnet/, or type a Hugging Face id and download it",
    "ip-adapter": "put IP-Adapter .safetensors files, their image_encoder/ folder beside "
    "them, in a models folder's ipadapter/",
}


def model_role(cls: type[Node] | None, spec: Param) -> str:
    """ "model" for a parameter naming a model a node loads (the one it runs, or a ControlNet
    or IP-Adapter: ``model_kind`` tells which), "loras" for its LoRA lines, "" for any other,
    read from the node's declarations."""
    if spec.suggest in ("models", "loras", *ADDON_SUGGESTS):
        return "loras" if spec.suggest == "loras" else "model"
    if cls is None or not hasattr(cls, "families"):
        return ""
    if spec.name == "model":
        return "model"
    return "loras" if spec.name == "loras" and spec.multiline else ""


def model_kind(spec: Param) -> str:
    """What a model parameter takes: "controlnet" or "ip-adapter" (an add-on, listed by kind
    and looked up as the node looks it up), else "model" (one the node runs, listed by the
    families it declares)."""
    return spec.suggest if spec.suggest in ADDON_SUGGESTS else "model"


def takes_hub_ids(kind: str) -> bool:
    """Whether a parameter of ``kind`` may name a Hugging Face id, so a missing one can be
    downloaded: a model or a ControlNet (a folder); an IP-Adapter or a LoRA is a file."""
    return kind in ("model", "controlnet")


def entry_details(entry: ModelEntry) -> str:
    """'SDXL pipeline · 6.9 GB · models folder': what a model is, its size, where it is."""
    size = f" · {human_size(entry.size_bytes)}" if entry.size_bytes else ""
    return f"{entry.label}{size} · {source_text(entry)}"


def mode_note(cls: type[Node] | None, entry: ModelEntry, mode: str) -> tuple[str, str]:
    """What the node's modes (``Node.mode_models``) say of ``entry`` as its model: ("", "")
    when every mode runs it; else a short note for its row and a full one for the status line
    and tooltip. With the chosen ``mode`` one that cannot run it: "temporal 'reuse' needs a
    Depth Anything (V1/V2) model", and the node's own check's message and fix; otherwise
    "temporal 'off' only", and which modes need what."""
    if cls is None or not cls.mode_models:
        return "", ""
    refused = cls.modes_refusing(entry.model_type)
    if not refused:
        return "", ""
    param = cls.mode_param
    problem = cls.mode_model_problem(mode, entry.model_type, entry.name)
    if problem is not None:
        message, fix = problem
        title = cls.mode_models[mode].title
        return f"{param} '{mode}' needs {_a(title)} model", f"{message}. Fix: {fix}."
    spec = next((p for p in cls.params if p.name == param), None)
    runs = [m for m in (spec.choices or ()) if m not in refused] if spec is not None else []
    short = f"{param} {' / '.join(repr(m) for m in runs)} only" if runs else ""
    return short, modes_needs(cls, refused)


def modes_needs(cls: type[Node], modes: tuple[str, ...] | None = None) -> str:
    """'temporal reuse, resq and delta need a Depth Anything (V1/V2) model.' (``modes``: these
    only; None: every mode that runs only some models)."""
    groups: dict[str, list[str]] = {}
    for m, need in cls.mode_models.items():
        if modes is None or m in modes:
            groups.setdefault(need.title, []).append(m)
    parts = []
    for title, group in groups.items():
        listed = ", ".join(group[:-1]) + f" and {group[-1]}" if len(group) > 1 else group[0]
        verb = "need" if len(group) > 1 else "needs"
        parts.append(f"{cls.mode_param} {listed} {verb} {_a(title)} model")
    return "; ".join(parts) + "." if parts else ""


def _a(title: str) -> str:
    return f"{'an' if title[:1].lower() in 'aeiou' else 'a'} {title}"


class _EntryDelegate(QStyledItemDelegate):
    """Draws a model row: its name in bold, and below, in grey, what it is, its size and
    where it was found (each elided to the list's width)."""

    def paint(
        self,
        painter: QPainter,
        option: QStyleOptionViewItem,
        index: QModelIndex | QPersistentModelIndex,
    ) -> None:
        name, details = index.data(NAME_ROLE), index.data(DETAILS_ROLE)
        if name is None:
            super().paint(painter, option, index)
            return
        opt = QStyleOptionViewItem(option)
        self.initStyleOption(opt, index)
        opt.text = ""
        widget = opt.widget
        style = widget.style() if widget is not None else QApplication.style()
        style.drawControl(QStyle.ControlElement.CE_ItemViewItem, opt, painter, widget)
        rect = opt.rect.adjusted(8, 4, -8, -4)
        selected = bool(opt.state & QStyle.StateFlag.State_Selected)
        palette = opt.palette
        painter.save()
        bold = QFont(opt.font)
        bold.setBold(True)
        line = QFontMetrics(bold).height()
        painter.setFont(bold)
        painter.setPen(palette.highlightedText().color() if selected else palette.text().color())
        top = rect.adjusted(0, 0, 0, -(rect.height() - line))
        elide = Qt.TextElideMode.ElideRight
        painter.drawText(top, 0, QFontMetrics(bold).elidedText(name, elide, rect.width()))
        painter.setFont(opt.font)
        if not selected:
            painter.setPen(QColor(text_color("help")))
        fm = QFontMetrics(opt.font)
        painter.drawText(
            rect.adjusted(0, line + 1, 0, 0), 0, fm.elidedText(details, elide, rect.width())
        )
        painter.restore()

    def sizeHint(  # noqa: N802 - Qt's name
        self, option: QStyleOptionViewItem, index: QModelIndex | QPersistentModelIndex
    ) -> QSize:
        if index.data(NAME_ROLE) is None:
            return super().sizeHint(option, index)
        font = option.font
        return QSize(100, 2 * QFontMetrics(font).height() + 10)


class ModelList(QWidget):
    """The list a picker opens inline: a filter, one row per model (name, then what it is,
    its size and where it was found), and a line about what is not shown."""

    #: The user chose a model: its reference (what the parameter takes).
    chosen = Signal(str)

    def __init__(self) -> None:
        super().__init__()
        self.filter = QLineEdit()
        self.filter.setPlaceholderText("Filter by name…")
        self.filter.setClearButtonEnabled(True)
        self.filter.textChanged.connect(self._apply_filter)
        self.refresh = QToolButton()
        self.refresh.setText("⟳")
        self.refresh.setToolTip("look in the models folders and the Hugging Face cache again")
        self.list = QListWidget()
        self.list.setObjectName("modelList")
        self.list.setMinimumHeight(170)
        self.list.setAlternatingRowColors(True)
        self.list.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.list.setItemDelegate(_EntryDelegate(self.list))
        self.list.itemClicked.connect(self._picked)
        self.list.itemActivated.connect(self._picked)
        self.footer = QLabel("")
        self.footer.setWordWrap(True)
        self.footer.setStyleSheet(text_style("help"))
        top = QHBoxLayout()
        top.setContentsMargins(0, 0, 0, 0)
        top.addWidget(self.filter, 1)
        top.addWidget(self.refresh)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 2, 0, 4)
        lay.setSpacing(3)
        lay.addLayout(top)
        lay.addWidget(self.list)
        lay.addWidget(self.footer)
        self.hide()

    def show_entries(
        self,
        entries: list[ModelEntry],
        footer: str,
        empty: str,
        current: str = "",
        note: ModeNote | None = None,
    ) -> None:
        """List ``entries`` (``current``, the parameter's value, selected), ``footer`` under
        them, or the ``empty`` line when there are none; ``note`` adds what the node's modes
        say of each model to its row and tooltip."""
        self.list.clear()
        for e in entries:
            short, full = note(e) if note is not None else ("", "")
            details = entry_details(e) + (f" — {short}" if short else "")
            item = QListWidgetItem(f"{e.name}\n    {details}")
            item.setData(Qt.ItemDataRole.UserRole, e.reference)
            item.setData(NAME_ROLE, e.name)
            item.setData(DETAILS_ROLE, details)
            tip = f"{e.path}\nas the parameter: {e.reference}"
            item.setToolTip(tip + (f"\n{full}" if full else ""))
            self.list.addItem(item)
            if current and current in (e.reference, e.path):
                self.list.setCurrentItem(item)
        if not entries:
            item = QListWidgetItem(empty)
            item.setFlags(Qt.ItemFlag.NoItemFlags)
            self.list.addItem(item)
        self.footer.setText(footer)
        self.footer.setVisible(bool(footer))
        self._apply_filter(self.filter.text())

    def references(self) -> list[str]:
        """The references listed (in order), hidden by the filter or not."""
        refs = (self.list.item(i).data(Qt.ItemDataRole.UserRole) for i in range(self.list.count()))
        return [r for r in refs if r]

    def _apply_filter(self, text: str) -> None:
        needle = text.strip().lower()
        for i in range(self.list.count()):
            item = self.list.item(i)
            item.setHidden(bool(needle) and needle not in item.text().lower())

    def _picked(self, item: QListWidgetItem) -> None:
        ref = item.data(Qt.ItemDataRole.UserRole)
        if ref:
            self.chosen.emit(str(ref))


def _not_fitting_note(
    others: list[ModelEntry], families: tuple[str, ...], inpainting: bool | None
) -> str:
    """'Not shown (this node runs SDXL models, not inpainting ones): a (depth estimation),
    b (inpainting).' What is here but does not fit, and why."""
    if not others:
        return ""

    def why(e: ModelEntry) -> str:
        if inpainting is not None and e.inpainting != inpainting:
            if not families or e.family in families:
                return "inpainting" if e.inpainting else "not inpainting"
        return e.family_title

    shown = ", ".join(f"{e.name} ({why(e)})" for e in others[:3])
    more = f" and {len(others) - 3} more" if len(others) > 3 else ""
    runs = f"this node runs {names(families)} models" if families else ""
    if inpainting is not None:
        runs += (", " if runs else "this node runs ") + (
            "inpainting ones" if inpainting else "not inpainting ones"
        )
    return f"Not shown ({runs}): {shown}{more}." if runs else f"Not shown: {shown}{more}."


def _names(entries: list[ModelEntry], most: int = 3) -> str:
    """'a, b, c and 2 more'."""
    more = f" and {len(entries) - most} more" if len(entries) > most else ""
    return ", ".join(e.name for e in entries[:most]) + more


def _made_for_note(found: list[ModelEntry], noun: str) -> str:
    """'Made for SDXL: depth-xl, canny-xl; Stable Diffusion 1.x: depth. A ControlNet steers
    only a generation model of its family.' An add-on fits the model it feeds, which its
    node does not know; so every one is listed, and this says which family each is for."""
    usable = [e for e in found if e.usable]
    groups: dict[str, list[ModelEntry]] = {}
    for e in usable:
        title = "an unknown family" if e.family == "unknown" else e.family_title
        groups.setdefault(title, []).append(e)
    notes = []
    if groups:
        made = "; ".join(f"{title}: {_names(group)}" for title, group in groups.items())
        notes.append(f"Made for {made}. A {noun} steers only a generation model of its family.")
    unusable = [e for e in found if not e.usable]
    if unusable:
        why = ", ".join(f"{e.name} ({e.problem})" for e in unusable[:3])
        more = f" and {len(unusable) - 3} more" if len(unusable) > 3 else ""
        notes.append(f"Not shown (cannot be used as they are): {why}{more}.")
    return " ".join(notes)


class ModelPicker(ParamWidget):
    """A model parameter: its text, "Models ▾" (the local models that fit the node), "…"
    (browse to a file or folder), what the current model is, and for a hub id not on this
    machine a Download button with progress and Cancel."""

    def __init__(
        self,
        spec: Param,
        catalog: ModelCatalog,
        families: tuple[str, ...],
        inpainting: bool | None,
        pick: ModelPathPicker,
        base_dir: Callable[[], Path],
        node: type[Node] | None = None,
        mode: Callable[[], str] | None = None,
    ) -> None:
        super().__init__(spec)
        self.catalog, self.families, self.inpainting = catalog, families, inpainting
        self.pick, self.base_dir = pick, base_dir
        #: The node class (for its ``mode_models``) and its mode now (``mode_param``'s value).
        self.node, self.mode = node, mode or (lambda: "")
        #: "model", or the add-on kind listed ("controlnet", "ip-adapter").
        self.kind = model_kind(spec)
        self.noun = KIND_NOUNS[self.kind]
        self._last: str | None = None
        self.text = QLineEdit()
        self.text.setPlaceholderText(
            {
                "model": "a models-folder name, a path or a Hugging Face id",
                "controlnet": "a name in controlnet/, a folder, a file or a Hugging Face id",
                "ip-adapter": "a name in ipadapter/ or an IP-Adapter .safetensors file",
            }[self.kind]
        )
        self.text.editingFinished.connect(self._typed)
        self.choose = QToolButton()
        self.choose.setText("Models ▾")
        self.choose.setCheckable(True)
        self.choose.setToolTip(
            "the models on this machine that this node runs"
            if self.kind == "model"
            else f"the {self.noun}s on this machine"
        )
        self.choose.toggled.connect(self.set_open)
        self.row.addWidget(self.text, 1)
        self.row.addWidget(self.choose)
        self.row.addWidget(self._browse_button())
        self.status = QLabel("")
        self.status.setWordWrap(True)
        self.status.setStyleSheet(text_style("help"))
        self.status.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.list = ModelList()
        self.list.chosen.connect(self.choose_model)
        self.list.refresh.clicked.connect(catalog.refresh)
        lay = self.layout()
        assert isinstance(lay, QVBoxLayout)
        lay.insertWidget(1, self.status)
        lay.insertWidget(2, self._download_row())
        lay.insertWidget(3, self.list)
        catalog.changed.connect(self._catalog_changed)
        catalog.download_changed.connect(self._download_changed)
        catalog.ensure()

    def _browse_button(self) -> QToolButton:
        browse = QToolButton()
        browse.setText("…")
        noun = self.noun[0].upper() + self.noun[1:]  # "Model", "ControlNet"
        file_only = self.kind == "ip-adapter"  # an IP-Adapter is a file, its encoder beside it
        browse.setToolTip(f"choose a {self.noun} file{'' if file_only else ' or folder'} on disk")
        menu = QMenu(browse)
        menu.addAction(f"{noun} file (.safetensors)…", lambda: self._browse("open"))
        if not file_only:
            what = "diffusers" if self.kind == "controlnet" else "diffusers or transformers"
            menu.addAction(f"{noun} folder ({what})…", lambda: self._browse("folder"))
        browse.setMenu(menu)
        browse.setPopupMode(QToolButton.ToolButtonPopupMode.InstantPopup)
        return browse

    def _download_row(self) -> QWidget:
        row = QWidget()
        lay = QHBoxLayout(row)
        lay.setContentsMargins(0, 0, 0, 0)
        self.fetch = QPushButton("Download")
        self.fetch.setToolTip(
            "fetch it from the Hugging Face hub into the first models folder: its configs and "
            "one precision of the weights its pipeline loads"
        )
        self.fetch.clicked.connect(self.start_download)
        self.bar = QProgressBar()
        self.bar.setRange(0, 1000)
        self.bar.setTextVisible(True)
        self.stop = QPushButton("Cancel")
        self.stop.clicked.connect(lambda: self.catalog.cancel(self.value()))
        lay.addWidget(self.fetch)
        lay.addWidget(self.bar, 1)
        lay.addWidget(self.stop)
        self.download_row = row
        row.hide()
        return row

    # ---- the value -----------------------------------------------------------------------------

    def value(self) -> str:
        return self.text.text().strip()

    def set_value(self, value: object) -> None:
        text = "" if value is None else str(value)
        self._last = text
        if self.text.text() != text:
            self.text.setText(text)
        self._show_state()

    def _typed(self) -> None:
        if self.value() != self._last:
            self._last = self.value()
            self.offer(self.value())
        self._show_state()

    def choose_model(self, reference: str) -> None:
        """Make ``reference`` the parameter's value (one undoable edit) and close the list."""
        self.text.setText(reference)
        self._typed()
        self.set_open(False)

    def _browse(self, kind: str) -> None:
        chosen = self.pick(replace(self.spec, suffixes=(".safetensors",)), kind)
        if chosen:
            self.choose_model(chosen)

    # ---- the list ------------------------------------------------------------------------------

    def set_open(self, on: bool) -> None:
        """Show (or hide) the list of the models that fit this node."""
        self.choose.blockSignals(True)
        self.choose.setChecked(on)
        self.choose.blockSignals(False)
        if on:
            self.catalog.ensure(STALE_S)
            self._fill()
        self.list.setVisible(on)

    def _fill(self) -> None:
        entries = self.catalog.entries
        if entries is None:
            self.list.show_entries([], "", f"Looking for {self.noun}s…")
            return
        where = "no models folder is set (Settings → Models folder, or FATHOM_MODELS)"
        if len(self.catalog.places) > 1:
            where = "none in the models folders or the Hugging Face cache"
        if self.kind == "model":
            fit = self.catalog.fitting(self.families, self.inpainting)
            others = [e for e in entries if e.usable and e not in fit and e.kind not in ADDON_KINDS]
            footer = _not_fitting_note(others, self.families, self.inpainting)
            if self.node is not None and any(self.note(e)[1] for e in fit):
                footer = " ".join(t for t in (modes_needs(self.node), footer) if t)
            empty = f"No model here fits this node: {where}."
        else:
            found = self.catalog.of_kind(self.kind)
            fit = [e for e in found if e.usable]
            footer = _made_for_note(found, self.noun)
            empty = f"No {self.noun} here: {where}; {ADDON_HOMES[self.kind]}."
        if self.catalog.error:
            footer = f"Listing failed: {self.catalog.error}"
        note = self.note if self.kind == "model" else None
        self.list.show_entries(fit, footer, empty, self.value(), note)

    def note(self, entry: ModelEntry) -> tuple[str, str]:
        """What the node's modes say of ``entry``, for the mode chosen now (``mode_note``)."""
        return mode_note(self.node, entry, self.mode())

    def mode_changed(self) -> None:
        """The node's mode changed: what each model's row and the status line say follows."""
        self._catalog_changed()

    def _catalog_changed(self) -> None:
        if self.list.isVisible():
            self._fill()
        self._show_state()

    # ---- what the current value is -------------------------------------------------------------

    def _show_state(self) -> None:
        value = self.value()
        addon = "" if self.kind == "model" else self.kind
        entry = self.catalog.describe_value(value, self.base_dir(), addon)
        hub_missing = entry is None and takes_hub_ids(self.kind) and looks_like_hub_id(value)
        noun = self.noun
        if entry is not None:
            text = entry_details(entry)
            if addon and entry.kind != addon:
                text += f" — not {'an' if noun[0] in 'AEIOU' else 'a'} {noun}"
            elif self.families and entry.family not in self.families:
                text += f" — this node runs {names(self.families)} models"
            elif entry.problem:
                text += f" — {entry.problem}"
            elif not addon and self.note(entry)[1]:
                text += f" — {self.note(entry)[1]}"
        elif self.catalog.entries is None:
            text = f"Looking for {noun}s…"
        elif not value:
            text = f"No {noun} chosen: pick one from Models ▾, or browse to it."
        elif hub_missing:
            text = f"Not on this machine: download it, or choose another {noun}."
        elif addon:
            text = f"Not found: choose one from Models ▾, or {ADDON_HOMES[addon]}."
        else:
            text = "Not found: choose a model from Models ▾, or browse to it."
        self.status.setText(text)
        job = self.catalog.downloads.get(value)
        self.download_row.setVisible(hub_missing or (job is not None and job.active))
        self._show_download(job)

    def start_download(self) -> None:
        if takes_hub_ids(self.kind) and looks_like_hub_id(self.value()):
            self._show_download(self.catalog.download(self.value()))

    def _download_changed(self, repo_id: str) -> None:
        if repo_id == self.value():
            self._show_state()

    def _show_download(self, job: Download | None) -> None:
        # The download's thread moves its state on while this runs: read it once, so the bar,
        # the buttons and the status line always show the same state.
        state = None if job is None else job.state
        active = state in ACTIVE_STATES
        self.fetch.setVisible(not active)
        self.bar.setVisible(active)
        self.stop.setVisible(active)
        self.stop.setEnabled(state == "running")
        if job is None:
            return
        p = job.progress
        self.bar.setValue(round(1000 * (p.fraction or 0.0)) if p else 0)
        self.bar.setFormat(progress_text(job))
        if state in ("cancelled", "failed"):
            self.fetch.setText("Download again" if state == "cancelled" else "Try again")
            note = (
                "Cancelled: the files already fetched are kept, downloading again resumes."
                if state == "cancelled"
                else f"Download failed: {job.message.splitlines()[0] if job.message else ''}"
            )
            self.status.setText(note)


def progress_text(job: Download) -> str:
    """'3 of 9 files · 1.2 GB of 4.1 GB' (what a bar shows while a model downloads)."""
    if job.state == "cancelling":
        return "Cancelling…"
    p = job.progress
    if p is None:
        return "Starting…"
    files = f"{p.files_done} of {p.files_total} files" if p.files_total else "files"
    size = f" · {human_size(p.bytes_done)} of {human_size(p.bytes_total)}" if p.bytes_total else ""
    return files + size


class LoraPicker(TextWidget):
    """The LoRA lines of a node, with "Add LoRA ▾": the LoRA files here that fit the node's
    current model, each added as a line ``NAME:1`` (the weight to adjust)."""

    def __init__(
        self,
        spec: Param,
        catalog: ModelCatalog,
        model_value: Callable[[], str],
        base_dir: Callable[[], Path],
    ) -> None:
        super().__init__(spec)
        self.catalog, self.model_value, self.base_dir = catalog, model_value, base_dir
        self.add = QToolButton()
        self.add.setText("Add LoRA ▾")
        self.add.setCheckable(True)
        self.add.setToolTip("the LoRA files on this machine that fit this node's model")
        self.add.toggled.connect(self.set_open)
        self.list = ModelList()
        self.list.chosen.connect(self.add_lora)
        self.list.refresh.clicked.connect(catalog.refresh)
        bar = QHBoxLayout()
        bar.setContentsMargins(0, 0, 0, 0)
        bar.addWidget(self.add)
        bar.addStretch(1)
        lay = self.layout()
        assert isinstance(lay, QVBoxLayout)
        lay.insertLayout(1, bar)
        lay.insertWidget(2, self.list)
        catalog.changed.connect(self._catalog_changed)

    def set_open(self, on: bool) -> None:
        self.add.blockSignals(True)
        self.add.setChecked(on)
        self.add.blockSignals(False)
        if on:
            self.catalog.ensure(STALE_S)
            self._fill()
        self.list.setVisible(on)

    def _fill(self) -> None:
        if self.catalog.entries is None:
            self.list.show_entries([], "", "Looking for LoRAs…")
            return
        model = self.catalog.describe_value(self.model_value(), self.base_dir())
        footer = (
            f"LoRAs for {model.name} ({model.family_title})."
            if model is not None
            else "The node's model is not found, so every LoRA is listed."
        )
        self.list.show_entries(
            self.catalog.loras(model), footer, "No LoRA here fits: put LoRA files in loras/."
        )

    def _catalog_changed(self) -> None:
        if self.list.isVisible():
            self._fill()

    def add_lora(self, reference: str) -> None:
        """Append ``reference:1`` as a new line (one undoable edit) and close the list."""
        current = self.current_text().rstrip("\n")
        text = f"{current}\n{reference}:1" if current.strip() else f"{reference}:1"
        self.set_value(text)
        self._last = None
        self._commit()
        self.set_open(False)
