"""New, open, save, save as, recent files, examples, autosave/recovery and dropped files.

Files are the engine's graph format, read and written by ``engine.graphfile`` (atomic saves with
a ``.bak``), so what the studio saves is exactly what ``fathom render`` takes. Dialogs are
attributes (``ask_*``) so tests answer them without a human. Which node loads a dropped file is
node metadata (``Node.opens``, asked through ``Registry.opener``), so a plugin's loader gets
drops with no change here.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from PySide6.QtCore import QLockFile, QObject, QTimer, Signal
from PySide6.QtWidgets import QFileDialog, QMessageBox, QWidget

from fathom.app.commands import AddNodes, SetParam
from fathom.app.document import Document, relative_to
from fathom.app.model_picker import model_role
from fathom.app.settings import Settings
from fathom.engine.errors import GraphFileError, GraphInvalid
from fathom.engine.fileio import atomic_write_text
from fathom.engine.graph import Graph, NodeInstance
from fathom.engine.graphfile import from_document, load, read_png_graph, save
from fathom.engine.resources import example_graphs
from fathom.engine.types import PathValue

RECOVERY_FORMAT = "fathom.recovery"


def examples() -> list[Path]:
    """The bundled example graphs, wherever this install keeps them (checkout, wheel, bundle)."""
    return list(example_graphs().values())


def example_title(path: Path) -> str:
    try:
        name = json.loads(path.read_text("utf-8")).get("meta", {}).get("name")
    except (OSError, ValueError):
        name = None
    return name or path.stem.replace("_", " ")


def png_has_graph(path: Path) -> bool:
    try:
        read_png_graph(path)
    except GraphFileError:
        return False
    return True


class FileController(QObject):
    """File operations for one window's document."""

    error = Signal(str)
    #: A message for the status bar.
    message = Signal(str)
    #: Something the user asked for did not happen, with why: for the log panel (the status
    #: bar's line is gone after a few seconds).
    warning = Signal(str)
    #: The recent-files list changed.
    recent_changed = Signal()

    def __init__(self, doc: Document, settings: Settings, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.doc = doc
        self.settings = settings
        self.widget = parent
        self.ask_open_path: Callable[[], Path | None] = self._dialog_open
        self.ask_save_path: Callable[[], Path | None] = self._dialog_save
        self.ask_unsaved: Callable[[], str] = self._dialog_unsaved
        self.ask_restore: Callable[[dict[str, Any]], bool] = self._dialog_restore
        self.session = uuid.uuid4().hex[:12]
        self._lock: QLockFile | None = None
        self._autosaved_index = -1
        self.autosave_timer = QTimer(self)
        self.autosave_timer.timeout.connect(self.autosave_now)
        self.autosave_timer.start(settings.autosave_seconds * 1000)
        doc.modified_changed.connect(self._modified_changed)

    # ---- new / open ----------------------------------------------------------------------

    def keep_or_discard(self) -> bool:
        """The unsaved-changes prompt; True means go ahead (saved or discarded)."""
        if not self.doc.modified:
            return True
        answer = self.ask_unsaved()
        if answer == "save":
            return self.save()
        return answer == "discard"

    def new(self) -> bool:
        if not self.keep_or_discard():
            return False
        self.doc.set_graph(Graph(), None, Path.cwd())
        self.discard_recovery()
        return True

    def open(self, path: Path | None = None, ask: bool = True) -> bool:
        """Open a graph file, or a PNG that Fathom saved (its embedded graph)."""
        if ask and not self.keep_or_discard():
            return False
        path = path or self.ask_open_path()
        if path is None:
            return False
        path = Path(path)
        try:
            graph = load(path, self.doc.registry)
        except GraphFileError as exc:
            self.error.emit(str(exc))
            return False
        if path.suffix.lower() == ".png":
            # The picture is not the graph file: saving asks where to put the graph.
            self.doc.set_graph(graph, None, path.parent.resolve())
            self.doc.mark_dirty()
            self.message.emit(f"Restored the graph embedded in {path.name}")
        else:
            self.doc.set_graph(graph, path.resolve())
            self.settings.add_recent(path)
            self.recent_changed.emit()
            self.message.emit(f"Opened {path}")
        self.discard_recovery()
        return True

    def open_example(self, path: Path) -> bool:
        """Examples open untitled, reading media beside them; Save As keeps those paths valid."""
        if not self.keep_or_discard():
            return False
        try:
            graph = load(path, self.doc.registry)
        except GraphFileError as exc:
            self.error.emit(str(exc))
            return False
        self.doc.set_graph(graph, None, path.parent.resolve())
        self.discard_recovery()
        self.message.emit(f"Example: {example_title(path)} (Save As to keep your changes)")
        return True

    # ---- save ------------------------------------------------------------------------------

    def save(self) -> bool:
        if self.doc.path is None:
            return self.save_as()
        return self._write(self.doc.path)

    def save_as(self, path: Path | None = None) -> bool:
        path = path or self.ask_save_path()
        if path is None:
            return False
        path = Path(path)
        if path.suffix.lower() != ".json":
            path = path.with_name(path.name + ".json")
        self.rebase_paths(path.parent.resolve())
        if not self._write(path):
            return False
        self.doc.set_path(path.resolve())
        self.settings.add_recent(path)
        self.recent_changed.emit()
        return True

    def _write(self, path: Path) -> bool:
        try:
            save(self.doc.root, path, self.doc.registry)
        except (OSError, GraphInvalid) as exc:
            self.error.emit(f"Could not save {path}: {exc}")
            return False
        self.doc.mark_saved()
        self.discard_recovery()
        self.message.emit(f"Saved {path}")
        return True

    def rebase_paths(self, new_base: Path) -> None:
        """Relative input paths are relative to the graph's folder: when the graph moves, rewrite
        them (as one undoable step) so they still name the same files."""
        old_base = self.doc.base_dir.resolve()
        if old_base == new_base:
            return
        self.doc.go_to([])  # the paths to rewrite are the top level's
        changes = []
        for nid, inst in self.doc.graph.nodes.items():
            cls = self.doc.node_class(nid)
            if cls is None or cls.is_output:
                continue  # outputs are relative to the output folder, not the graph
            for spec in cls.params:
                value = inst.params.get(spec.name)
                if not isinstance(value, str) or not value:
                    continue
                if Path(value).expanduser().is_absolute():
                    continue
                target = (old_base / value).resolve()
                # A model may be a hub id or a catalog name: rewritten only when it is a
                # folder or file beside the graph.
                is_model = model_role(cls, spec) == "model" and target.exists()
                if issubclass(spec.type, PathValue) or is_model:
                    changes.append((nid, spec.name, _relative(target, new_base)))
        if not changes:
            return
        stack = self.doc.undo_stack
        stack.beginMacro("Keep file paths valid in the new folder")
        for nid, name, value in changes:
            stack.push(SetParam(self.doc, nid, name, value))
        stack.endMacro()

    # ---- autosave and recovery -------------------------------------------------------------

    def recovery_file(self) -> Path:
        return self.settings.recovery_dir / f"{self.session}.json"

    def _hold_lock(self) -> None:
        if self._lock is None:
            self.settings.recovery_dir.mkdir(parents=True, exist_ok=True)
            self._lock = QLockFile(str(self.settings.recovery_dir / f"{self.session}.lock"))
            self._lock.setStaleLockTime(0)
            self._lock.tryLock(0)

    def autosave_now(self) -> bool:
        """Write the recovery file if there are changes since the last one; never the real
        file (an autosave must not overwrite what the user chose to keep)."""
        if not self.doc.modified:
            return False
        index = self.doc.undo_stack.index()
        if index == self._autosaved_index and self.recovery_file().exists():
            return False
        self._hold_lock()
        record = {
            "format": RECOVERY_FORMAT,
            "version": 1,
            "saved_at": time.time(),
            "path": str(self.doc.path) if self.doc.path else None,
            "base_dir": str(self.doc.base_dir),
            "graph": self.doc.document(),
        }
        try:
            atomic_write_text(self.recovery_file(), json.dumps(record) + "\n")
        except OSError as exc:
            self.message.emit(f"Autosave failed: {exc}")
            return False
        self._autosaved_index = index
        return True

    def discard_recovery(self) -> None:
        self.recovery_file().unlink(missing_ok=True)
        self._autosaved_index = -1

    def _modified_changed(self, modified: bool) -> None:
        if not modified:
            self.discard_recovery()

    def close(self) -> None:
        """A clean exit leaves no recovery file behind."""
        self.autosave_timer.stop()
        self.discard_recovery()
        if self._lock is not None:
            self._lock.unlock()
            self._lock = None

    def orphaned_recoveries(self) -> list[Path]:
        """Recovery files whose session is gone (its lock is free): a crash left them."""
        folder = self.settings.recovery_dir
        if not folder.is_dir():
            return []
        out = []
        for f in sorted(folder.glob("*.json"), key=lambda p: p.stat().st_mtime, reverse=True):
            if f.stem == self.session:
                continue
            lock = QLockFile(str(folder / f"{f.stem}.lock"))
            lock.setStaleLockTime(0)
            if lock.tryLock(0):
                lock.unlock()
                out.append(f)
        return out

    def offer_restore(self) -> bool:
        """After a crash: offer the newest orphaned recovery file; True if one was restored."""
        for f in self.orphaned_recoveries():
            try:
                record = json.loads(f.read_text("utf-8"))
                if record.get("format") != RECOVERY_FORMAT:
                    raise GraphFileError("not a recovery file")
                graph = from_document(record["graph"], str(f), self.doc.registry)
            except (OSError, ValueError, KeyError, GraphFileError) as exc:
                self.message.emit(f"Ignored an unreadable recovery file {f.name}: {exc}")
                f.unlink(missing_ok=True)
                continue
            if self.ask_restore(record):
                path = Path(record["path"]) if record.get("path") else None
                self.doc.set_graph(graph, path, Path(record["base_dir"]))
                self.doc.mark_dirty()
                f.unlink(missing_ok=True)
                self.message.emit("Restored unsaved work from the last session")
                return True
            f.unlink(missing_ok=True)
        return False

    # ---- drops -----------------------------------------------------------------------------

    def drop(self, paths: list[Path], at: tuple[float, float]) -> list[str]:
        """Graph files (and PNGs with a graph inside) open; any other file becomes the node
        that declares it opens that suffix, the path in its input-file parameter. Returns the
        ids of nodes added."""
        graphs = [
            p
            for p in paths
            if p.suffix.lower() == ".json" or (p.suffix.lower() == ".png" and png_has_graph(p))
        ]
        if graphs:
            self.open(graphs[0])
            return []
        nodes, ui = [], {}
        taken = set(self.doc.graph.nodes)
        for i, p in enumerate(paths):
            opener = self.doc.registry.opener(p.suffix)
            if opener is None:
                self._cannot_open(p)
                continue
            cls, param = opener
            stem = cls.type_id.split(".")[0]
            j = 1
            while f"{stem}{j}" in taken:
                j += 1
            nid = f"{stem}{j}"
            taken.add(nid)
            nodes.append(
                NodeInstance(nid, cls.type_id, {param: relative_to(str(p), self.doc.base_dir)})
            )
            ui[nid] = {"pos": [round(float(at[0]) + 30 * i, 2), round(float(at[1]) + 150 * i, 2)]}
        if nodes:
            self.doc.undo_stack.push(
                AddNodes(self.doc, nodes, [], ui, text=f"Drop {len(nodes)} file(s)")
            )
        return [n.id for n in nodes]

    def _cannot_open(self, path: Path) -> None:
        kind = f"{path.suffix.lower()} files" if path.suffix else "files without a suffix"
        opened = ", ".join(self.doc.registry.opened_suffixes())
        self.message.emit(f"Cannot load {path.name}: no node opens {kind} (see the log)")
        self.warning.emit(
            f"Cannot load {path.name}: no node opens {kind}. Drop a graph (.json, or a .png "
            f"that Fathom saved) to open it, or a file a node loads: {opened}."
        )

    # ---- dialogs ---------------------------------------------------------------------------

    def _dialog_open(self) -> Path | None:
        chosen, _ = QFileDialog.getOpenFileName(
            self.widget,
            "Open graph",
            str(self.doc.base_dir),
            "Fathom graphs (*.json *.png);;All files (*)",
        )
        return Path(chosen) if chosen else None

    def _dialog_save(self) -> Path | None:
        start = str(self.doc.path or self.doc.base_dir / "untitled.json")
        chosen, _ = QFileDialog.getSaveFileName(
            self.widget, "Save graph", start, "Fathom graphs (*.json)"
        )
        return Path(chosen) if chosen else None

    def _dialog_unsaved(self) -> str:
        buttons = QMessageBox.StandardButton
        answer = QMessageBox.question(
            self.widget,
            "Unsaved changes",
            "The graph has unsaved changes. Save them?",
            buttons.Save | buttons.Discard | buttons.Cancel,
            buttons.Save,
        )
        return {buttons.Save: "save", buttons.Discard: "discard"}.get(answer, "cancel")

    def _dialog_restore(self, record: dict[str, Any]) -> bool:
        when = time.strftime("%Y-%m-%d %H:%M", time.localtime(record.get("saved_at", 0)))
        name = Path(record["path"]).name if record.get("path") else "an untitled graph"
        answer = QMessageBox.question(
            self.widget,
            "Restore unsaved work?",
            f"Fathom Studio did not close properly. Restore the unsaved changes to {name} "
            f"from {when}?",
        )
        return answer == QMessageBox.StandardButton.Yes


def _relative(target: Path, base: Path) -> str:
    try:
        return Path(os.path.relpath(target, base)).as_posix()
    except ValueError:  # another drive on Windows
        return str(target)
