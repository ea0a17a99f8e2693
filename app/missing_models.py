"""The models a graph needs that are not on this machine, in one dialog.

When a graph opens (and when a run's pre-flight check refuses a model), the model parameters
(the models nodes run, and their ControlNets and IP-Adapters) and LoRA lines of its nodes
(found from node metadata, as the pickers find them) are looked up off the GUI thread with the
engine's own resolvers (``locate_kind``: what each node's check uses). What is missing is
shown in one dialog that names each node, parameter and model, and offers to download it (a
hub id, with progress and cancel) or to browse to a copy; a browsed path becomes an undoable
edit of the node.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, Qt
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QGridLayout,
    QLabel,
    QMenu,
    QProgressBar,
    QPushButton,
    QScrollArea,
    QVBoxLayout,
    QWidget,
)

from fathom.app.commands import SetParam
from fathom.app.document import Document, relative_to
from fathom.app.model_catalog import ACTIVE_STATES, ModelCatalog
from fathom.app.model_picker import model_kind, model_role, progress_text, takes_hub_ids
from fathom.app.preview.worker import BackgroundRenderer
from fathom.app.session import RunSession
from fathom.engine.errors import LibraryError
from fathom.engine.models.locate import (
    ModelError,
    locate_addon,
    locate_kind,
    looks_like_hub_id,
    model_folders,
)


@dataclass(frozen=True)
class MissingModel:
    """A model one node needs and this machine lacks: the node, its title, the parameter
    ("model", or "loras" for a LoRA line), the model as the graph names it, the engine's
    message (every place it looked), and its kind: "model" (one a node runs), "lora",
    "controlnet" or "ip-adapter"."""

    node: str
    title: str
    param: str
    value: str
    message: str
    kind: str = "model"

    @property
    def downloadable(self) -> bool:
        """A hub id where the parameter takes one (a model or a ControlNet; LoRA lines and
        IP-Adapters take files, not hub ids)."""
        return takes_hub_ids(self.kind) and looks_like_hub_id(self.value)


#: (node id, title, parameter, kind, value) for each model parameter of a graph: the kind
#: "model", "controlnet" or "ip-adapter" (``model_kind``), or "loras" for LoRA lines.
Wanted = tuple[str, str, str, str, str]


def model_params(doc: Document) -> list[Wanted]:
    """The model parameters and LoRA lines of the graph's nodes that run (muted and bypassed
    nodes load nothing); read on the GUI thread, cheaply."""
    out = []
    for nid, inst in doc.graph.nodes.items():
        cls = doc.node_class(nid)
        if cls is None or inst.mute or inst.bypass:
            continue
        for spec in cls.params:
            role = model_role(cls, spec)
            value = str(inst.params.get(spec.name, spec.default) or "").strip()
            if role and value:
                kind = model_kind(spec) if role == "model" else role
                out.append((nid, doc.title(nid), spec.name, kind, value))
    return out


def find_missing(wanted: list[Wanted], base_dir: Path) -> list[MissingModel]:
    """Which of ``wanted`` the engine cannot find (on a worker: a hub id is looked up in
    every models folder and the Hugging Face cache)."""
    from fathom.engine.diffusion.lora import parse_loras

    out = []
    for nid, title, param, kind, value in wanted:
        if kind != "loras":
            try:
                locate_kind(value, kind, base_dir)
            except ModelError as exc:
                out.append(MissingModel(nid, title, param, value, str(exc), kind))
            continue
        try:
            refs = parse_loras(value)
        except LibraryError:
            continue  # a malformed line is the pre-flight check's to report
        for ref in refs:
            try:
                locate_addon(ref.source, "lora", base_dir)
            except ModelError as exc:
                out.append(MissingModel(nid, title, param, ref.source, str(exc), "lora"))
    return out


def replace_lora(text: str, old: str, new: str) -> str:
    """The LoRA lines with every line naming ``old`` naming ``new`` (weights kept)."""
    from fathom.engine.diffusion.lora import parse_loras

    lines = text.splitlines()
    for ref in parse_loras(text):
        if ref.source == old:
            lines[ref.line - 1] = f"{new}:{ref.weight:g}"
    return "\n".join(lines)


class _Row:
    """One missing model's line in the dialog: its labels, buttons and download state."""

    def __init__(self, missing: MissingModel) -> None:
        self.missing = missing
        self.node = QLabel(f"<b>{missing.title}</b> ({missing.node})")
        self.param = QLabel(missing.param)
        self.model = QLabel(missing.value)
        self.model.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.model.setToolTip(missing.message)
        self.download = QPushButton("Download")
        self.download.setVisible(missing.downloadable)
        self.browse = QPushButton("Browse…")
        self.bar = QProgressBar()
        self.bar.setRange(0, 1000)
        self.bar.hide()
        self.cancel = QPushButton("Cancel")
        self.cancel.hide()
        self.status = QLabel(self._hint())
        self.status.setWordWrap(True)

    def _hint(self) -> str:
        """What to do where there is nothing to download."""
        if self.missing.downloadable:
            return ""
        if self.missing.kind == "lora":
            return "A LoRA is a file: browse to it, or put it in a models folder's loras/."
        if self.missing.kind == "ip-adapter":
            return (
                "An IP-Adapter is a file: browse to it, or put it (its image_encoder/ folder "
                "beside it) in a models folder's ipadapter/."
            )
        where = "controlnet/" if self.missing.kind == "controlnet" else "a models folder"
        return f"Not a Hugging Face id: browse to it, or put it in {where}."


class MissingModelsDialog(QDialog):
    """Lists the missing models; each row downloads (hub ids) or browses to the model."""

    def __init__(
        self,
        doc: Document,
        catalog: ModelCatalog,
        pick: Callable[[MissingModel, str], str | None],
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.doc, self.catalog, self.pick = doc, catalog, pick
        self.setWindowTitle("Models this graph needs")
        self.rows: list[_Row] = []
        self.intro = QLabel("")
        self.intro.setWordWrap(True)
        self._grid_host = QWidget()
        self.grid = QGridLayout(self._grid_host)
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setWidget(self._grid_host)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.rejected.connect(self.close)
        lay = QVBoxLayout(self)
        lay.addWidget(self.intro)
        lay.addWidget(scroll, 1)
        lay.addWidget(buttons)
        self.resize(860, 320)
        catalog.download_changed.connect(self._download_changed)

    def set_missing(self, missing: list[MissingModel]) -> None:
        while self.grid.count():
            item = self.grid.takeAt(0)
            if item.widget() is not None:
                item.widget().deleteLater()
        folders = model_folders()
        into = str(folders[0]) if folders else "the Hugging Face cache"
        self.intro.setText(
            f"This graph needs {len(missing)} model{'s' if len(missing) != 1 else ''} that "
            f"{'are' if len(missing) != 1 else 'is'} not on this machine. Download each from "
            f"the Hugging Face hub (into {into}; an interrupted download resumes), or browse "
            "to a copy you have."
        )
        for col, head in enumerate(("Node", "Parameter", "Model", "", "", "")):
            self.grid.addWidget(QLabel(f"<b>{head}</b>"), 0, col)
        self.rows = [_Row(m) for m in missing]
        for i, row in enumerate(self.rows, 1):
            for col, w in enumerate((row.node, row.param, row.model, row.download, row.browse)):
                self.grid.addWidget(w, i, col)
            self.grid.addWidget(self._progress_cell(row), i, 5)
            row.download.clicked.connect(lambda _=False, r=row: self.start_download(r))
            self._browse_menu(row)
            row.cancel.clicked.connect(lambda _=False, r=row: self.catalog.cancel(r.missing.value))
            self._show(row)
        self.grid.setColumnStretch(5, 1)
        self.grid.setRowStretch(len(self.rows) + 1, 1)

    def _progress_cell(self, row: _Row) -> QWidget:
        cell = QWidget()
        lay = QGridLayout(cell)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addWidget(row.bar, 0, 0)
        lay.addWidget(row.cancel, 0, 1)
        lay.addWidget(row.status, 1, 0, 1, 2)
        return cell

    def _browse_menu(self, row: _Row) -> None:
        """A model may be a file or a folder; a LoRA is a file."""
        menu = QMenu(row.browse)
        menu.addAction("A .safetensors file…", lambda r=row: self.browse(r, "open"))
        if row.missing.kind in ("model", "controlnet"):
            menu.addAction("A model folder…", lambda r=row: self.browse(r, "folder"))
        row.browse.setMenu(menu)

    def start_download(self, row: _Row) -> None:
        self.catalog.download(row.missing.value)
        self._show(row)

    def browse(self, row: _Row, kind: str) -> None:
        """Point the node at a copy on disk (``kind`` "open": a file, "folder": a folder):
        one undoable edit of its parameter."""
        chosen = self.pick(row.missing, kind)
        if not chosen:
            return
        m = row.missing
        inst = self.doc.graph.nodes.get(m.node)
        if inst is None:
            return
        value = chosen
        if m.kind == "lora":
            value = replace_lora(str(inst.params.get(m.param, "")), m.value, chosen)
        self.doc.undo_stack.push(SetParam(self.doc, m.node, m.param, value))
        row.download.setEnabled(False)
        row.status.setText(f"✓ now uses {chosen}")

    def _download_changed(self, repo_id: str) -> None:
        for row in self.rows:
            if row.missing.downloadable and row.missing.value == repo_id:
                self._show(row)

    def _show(self, row: _Row) -> None:
        job = self.catalog.downloads.get(row.missing.value) if row.missing.downloadable else None
        # The download's thread moves its state on while this runs: read it once.
        state = None if job is None else job.state
        active = state in ACTIVE_STATES
        row.bar.setVisible(active)
        row.cancel.setVisible(active)
        row.cancel.setEnabled(state == "running")
        row.download.setEnabled(not active)
        if job is None:
            return
        p = job.progress
        row.bar.setValue(round(1000 * (p.fraction or 0.0)) if p else 0)
        row.bar.setFormat(progress_text(job))
        text = {
            "done": "✓ downloaded",
            "cancelled": "Cancelled: the files already fetched are kept; Download resumes.",
            "failed": f"Failed: {job.message.splitlines()[0] if job.message else ''}",
        }.get(state or "", "")
        row.status.setText(text)
        row.status.setToolTip(job.message)
        row.download.setText("Download again" if state in ("cancelled", "failed") else "Download")
        row.download.setVisible(state != "done")


class MissingModels(QObject):
    """Looks for missing models when a graph opens or a run misses one, and asks once."""

    def __init__(
        self, doc: Document, catalog: ModelCatalog, session: RunSession, parent: QWidget
    ) -> None:
        super().__init__(parent)
        self.doc, self.catalog, self.widget = doc, catalog, parent
        #: Shows what is missing (the dialog; tests replace it).
        self.ask: Callable[[list[MissingModel]], None] = self.show_dialog
        #: Asks where a copy is (a file or folder dialog; tests replace it).
        self.pick: Callable[[MissingModel, str], str | None] = self._dialog_pick
        self.missing: list[MissingModel] | None = None
        self.dialog: MissingModelsDialog | None = None
        self._worker = BackgroundRenderer(self._found, self)
        self._unsubscribe = session.subscribe(self._on_session)
        doc.reset.connect(self.check)

    def check(self) -> None:
        """Look up the graph's models off the GUI thread; ``ask`` when some are missing."""
        wanted = model_params(self.doc)
        if not wanted:
            self._found(self.doc.graph, [])
            return
        base = self.doc.base_dir
        self._worker.submit(lambda: find_missing(wanted, base), self.doc.graph)

    def _found(self, graph: Any, result: Any) -> None:
        if graph is not self.doc.graph or isinstance(result, BaseException):
            return  # another graph opened meanwhile; or the lookup broke: the run will say
        self.missing = result
        if result:
            self.ask(result)
        elif self.dialog is not None:
            self.dialog.close()  # it spoke of another graph

    def _on_session(self, kind: str, payload: dict[str, Any]) -> None:
        if kind != "run_finished":
            return
        problems = getattr(payload.get("outcome"), "problems", [])
        if any(p.port in ("model", "loras") for p in problems):
            self.check()

    def show_dialog(self, missing: list[MissingModel]) -> None:
        if self.dialog is None:
            self.dialog = MissingModelsDialog(
                self.doc, self.catalog, lambda m, kind: self.pick(m, kind), self.widget
            )
        self.dialog.set_missing(missing)
        self.dialog.show()
        self.dialog.raise_()

    def _dialog_pick(self, missing: MissingModel, kind: str) -> str | None:
        title = f"{missing.param} for {missing.title}"
        if kind == "folder":
            chosen = QFileDialog.getExistingDirectory(self.widget, title, str(self.doc.base_dir))
        else:
            chosen, _ = QFileDialog.getOpenFileName(
                self.widget, title, str(self.doc.base_dir), "Weights (*.safetensors)"
            )
        return relative_to(chosen, self.doc.base_dir) if chosen else None

    def close(self) -> None:
        """Stop listening to the run session (the window closes)."""
        self._unsubscribe()
        if self.dialog is not None:
            self.dialog.close()
