"""The main window: node editor in the centre, inspector, preview and log docks, menus, runs.

It wires the parts together and owns nothing they could own themselves: the Document holds the
graph, commands edit it, the Runner runs it off the GUI thread, the FileController saves it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
from PySide6.QtCore import QPointF, Qt, QTimer
from PySide6.QtGui import QAction, QCloseEvent, QIcon, QKeySequence
from PySide6.QtWidgets import (
    QApplication,
    QDialog,
    QDockWidget,
    QInputDialog,
    QMainWindow,
    QToolBar,
    QWidget,
)

from fathom.app.commands import AddNodes, Connect, Move, SetEntry, SetFlags, SetTitle
from fathom.app.document import Document
from fathom.app.editor.clipboard import paste_command, selection_text
from fathom.app.editor.layout import layered_layout
from fathom.app.editor.node_item import PortItem
from fathom.app.editor.palette import NodePalette
from fathom.app.editor.scene import GraphScene
from fathom.app.editor.view import GraphView
from fathom.app.files import FileController, example_title, examples
from fathom.app.inspector import PANORAMA_NODE, Inspector
from fathom.app.log_panel import LogPanel
from fathom.app.param_widgets import to_json_value
from fathom.app.preview.dock import PreviewDock
from fathom.app.runner import Runner, RunOutcome, RunRequest, Task
from fathom.app.settings import Settings, SettingsDialog
from fathom.app.viewer360 import Viewer360
from fathom.engine.cache import OutputCache
from fathom.engine.context import RunOptions
from fathom.engine.errors import GraphFileError
from fathom.engine.events import Event
from fathom.engine.executor import Executor
from fathom.engine.graph import Edge, NodeInstance
from fathom.engine.node import Node
from fathom.engine.registry import Registry, default_registry
from fathom.engine.resources import icon_path
from fathom.engine.types import RGBD, Depth, Image, Mesh, can_connect

#: Least time between two step previews shown (ms): the preview keeps up, the GUI stays free.
PREVIEW_MS = 50
#: What a run's event means for a node's badge.
EVENT_STATUS = {
    "node_queued": "queued",
    "node_started": "running",
    "node_progress": "running",
    "node_finished": "done",
    "node_cached": "cached",
    "node_failed": "failed",
    "node_skipped": "skipped",
}


def downscaled(value: Any, limit: int | None) -> Any:
    """Previews above the quality setting's size are strided down: the GUI stays quick and the
    real output is untouched."""
    if limit is None or not isinstance(value, (Image, Depth)):
        return value
    h, w = value.data.shape[:2]
    step = int(np.ceil(max(h, w) / limit))
    if step <= 1:
        return value
    if isinstance(value, Image):
        return Image(value.data[::step, ::step])
    return Depth(value.data[::step, ::step], kind=value.kind, units=value.units)


class MainWindow(QMainWindow):
    """One open graph: editor, docks, menus; closing it asks about unsaved changes."""

    def __init__(
        self,
        registry: Registry | None = None,
        settings: Settings | None = None,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.registry = registry or default_registry()
        self.settings = settings or Settings()
        self.doc = Document(self.registry, self)
        self.scene = GraphScene(self.doc)
        self.view = GraphView(self.scene)
        self.setCentralWidget(self.view)
        self.inspector = Inspector(self.doc)
        self.inspector_dock = QDockWidget("Inspector", self)
        self.inspector_dock.setObjectName("inspector")
        self.inspector_dock.setWidget(self.inspector)
        self.addDockWidget(Qt.DockWidgetArea.RightDockWidgetArea, self.inspector_dock)
        self.preview = PreviewDock(self)
        self.addDockWidget(Qt.DockWidgetArea.RightDockWidgetArea, self.preview)
        self.log = LogPanel(self)
        self.addDockWidget(Qt.DockWidgetArea.BottomDockWidgetArea, self.log)
        self.palette = NodePalette(self)
        self.executor = Executor(
            self.registry, cache=OutputCache(int(self.settings.memory_budget_gb * 1024**3))
        )
        self.runner = Runner(self.executor, self)
        self.files = FileController(self.doc, self.settings, self)
        #: The latest outputs of each node, by output name (from finished runs).
        self.outputs: dict[str, dict[str, Any]] = {}
        self.last_outcome: RunOutcome | None = None
        self.viewer360: Viewer360 | None = None
        self._palette_at = QPointF()
        self._palette_wire: PortItem | None = None
        self._unsubscribe: Any = None
        self._tasks: list[Task] = []
        self._pending_preview: tuple[Any, str] | None = None
        self._preview_timer = QTimer(self)
        self._preview_timer.setInterval(PREVIEW_MS)
        self._preview_timer.setSingleShot(True)
        self._preview_timer.timeout.connect(self._flush_preview)
        self.live = False
        self._closed = False
        self._make_actions()
        self._connect()
        self._resubscribe()
        icon = icon_path()
        if icon is not None:
            self.setWindowIcon(QIcon(str(icon)))
        self.resize(1500, 920)
        self.resizeDocks([self.inspector_dock, self.preview], [420, 420], Qt.Orientation.Horizontal)
        self.resizeDocks([self.inspector_dock, self.preview], [330, 520], Qt.Orientation.Vertical)
        self.resizeDocks([self.log], [150], Qt.Orientation.Vertical)
        self._update_title()

    # ---- actions and menus -------------------------------------------------------------------

    def _action(
        self,
        text: str,
        slot: Any,
        shortcut: Any = None,
        canvas: bool = False,
        checkable: bool = False,
        tip: str = "",
    ) -> QAction:
        """``canvas`` shortcuts work only while the editor has focus, so typing in a field
        never deletes nodes."""
        a = QAction(text, self)
        if shortcut is not None:
            a.setShortcuts(shortcut if isinstance(shortcut, list) else [QKeySequence(shortcut)])
        if canvas:
            a.setShortcutContext(Qt.ShortcutContext.WidgetWithChildrenShortcut)
            self.view.addAction(a)
        a.setCheckable(checkable)
        if tip:
            a.setStatusTip(tip)
        a.triggered.connect(slot)
        return a

    def _make_actions(self) -> None:
        K = QKeySequence.StandardKey  # noqa: N806 - Qt's enum
        m = self.menuBar()
        file = m.addMenu("&File")
        file.addAction(self._action("&New", lambda: self.files.new(), K.New))
        file.addAction(self._action("&Open…", lambda: self.files.open(), K.Open))
        self.recent_menu = file.addMenu("Open &Recent")
        self.recent_menu.aboutToShow.connect(self._fill_recent)
        self.examples_menu = file.addMenu("&Examples")
        for path in examples():
            self.examples_menu.addAction(
                self._action(
                    example_title(path), lambda _=False, p=path: self.files.open_example(p)
                )
            )
        file.addSeparator()
        file.addAction(self._action("&Save", lambda: self.files.save(), K.Save))
        file.addAction(self._action("Save &As…", lambda: self.files.save_as(), K.SaveAs))
        file.addSeparator()
        file.addAction(self._action("Se&ttings…", self.edit_settings))
        file.addAction(self._action("&Quit", self.close, K.Quit))

        edit = m.addMenu("&Edit")
        undo = self.doc.undo_stack.createUndoAction(self, "&Undo")
        undo.setShortcut(K.Undo)
        redo = self.doc.undo_stack.createRedoAction(self, "&Redo")
        redo.setShortcuts([QKeySequence(K.Redo), QKeySequence("Ctrl+Y")])
        edit.addAction(undo)
        edit.addAction(redo)
        edit.addSeparator()
        edit.addAction(self._action("&Copy", self.copy, K.Copy, canvas=True))
        edit.addAction(self._action("&Paste", self.paste, K.Paste, canvas=True))
        edit.addAction(self._action("D&uplicate", self.duplicate, "Ctrl+D", canvas=True))
        edit.addAction(
            self._action(
                "&Delete",
                self.scene.delete_selection,
                [QKeySequence(K.Delete), QKeySequence("Backspace")],
                canvas=True,
            )
        )
        edit.addAction(self._action("Select &All", self.select_all, K.SelectAll, canvas=True))
        edit.addSeparator()
        edit.addAction(
            self._action(
                "Add &Node…",
                lambda: self.open_palette(self.view.cursor_scene_pos()),
                "Shift+A",
                canvas=True,
                tip="search nodes (also Tab or double-click on the canvas)",
            )
        )
        edit.addAction(self._action("Add &Frame", self.add_frame, "Ctrl+G", canvas=True))
        edit.addAction(self._action("Add C&omment", self.add_comment, "Ctrl+M", canvas=True))
        edit.addAction(self._action("&Rename…", self.rename, "F2", canvas=True))
        edit.addAction(
            self._action("&Bypass", lambda: self.toggle_flag("bypass"), "Ctrl+B", canvas=True)
        )
        edit.addAction(
            self._action("&Mute", lambda: self.toggle_flag("mute"), "Ctrl+E", canvas=True)
        )
        edit.addAction(self._action("Auto &Layout", self.auto_layout, "Ctrl+L", canvas=True))

        view = m.addMenu("&View")
        self.fit_action = self._action(
            "&Fit to View", self.view.fit_all, ["F", "Home"], canvas=True
        )
        view.addAction(self.fit_action)
        view.addAction(self._action("Zoom &In", lambda: self.view.zoom_by(1.25), K.ZoomIn))
        view.addAction(self._action("Zoom &Out", lambda: self.view.zoom_by(0.8), K.ZoomOut))
        view.addSeparator()
        for dock in (self.inspector_dock, self.preview, self.log):
            view.addAction(dock.toggleViewAction())

        run = m.addMenu("&Run")
        self.run_action = self._action(
            "&Run", lambda: self.run(), ["F5", "Ctrl+Return"], tip="run every output"
        )
        self.run_sel_action = self._action(
            "Run to &Selected",
            self.run_selected,
            "Shift+F5",
            tip="run only what the selected nodes need",
        )
        self.cancel_action = self._action("&Cancel", self.cancel, "Ctrl+.")
        self.cancel_action.setEnabled(False)
        self.live_action = self._action(
            "&Live Mode",
            self.set_live,
            checkable=True,
            tip="re-run what a change affects, as you edit",
        )
        for a in (self.run_action, self.run_sel_action, self.cancel_action, self.live_action):
            run.addAction(a)
        run.addSeparator()
        run.addAction(self._action("Clear Cache", self.executor.cache.clear))

        bar = QToolBar("Run")
        bar.setObjectName("runbar")
        for a in (
            self.run_action,
            self.run_sel_action,
            self.cancel_action,
            self.live_action,
            self.fit_action,
        ):
            bar.addAction(a)
        self.addToolBar(bar)

    def _connect(self) -> None:
        self.doc.reset.connect(self._on_reset)
        self.doc.path_changed.connect(self._update_title)
        self.doc.modified_changed.connect(self._update_title)
        self.scene.selectionChanged.connect(self._selection_changed)
        self.scene.wire_dropped.connect(self._wire_dropped)
        self.scene.frame_rename.connect(self.rename_frame)
        self.scene.hint.connect(lambda text: self.statusBar().showMessage(text, 6000))
        self.view.palette_requested.connect(self.open_palette)
        self.view.files_dropped.connect(lambda paths, at: self.files.drop(paths, (at.x(), at.y())))
        self.palette.chosen.connect(self._palette_chosen)
        self.inspector.show_output.connect(self.show_output)
        self.inspector.open_360.connect(self.open_360)
        self.log.node_clicked.connect(self.focus_node)
        self.runner.started.connect(self._run_started)
        self.runner.event.connect(self._on_event)
        self.runner.finished.connect(self._on_finished)
        self.files.error.connect(self._show_error)
        self.files.message.connect(lambda text: self.statusBar().showMessage(text, 6000))

    def _fill_recent(self) -> None:
        self.recent_menu.clear()
        for p in self.settings.recent_files():
            self.recent_menu.addAction(
                self._action(p, lambda _=False, p=p: self.files.open(Path(p)))
            )
        if not self.settings.recent_files():
            self.recent_menu.addAction("(none)").setEnabled(False)

    # ---- document state ---------------------------------------------------------------------

    def _resubscribe(self) -> None:
        if self._unsubscribe is not None:
            self._unsubscribe()
        self._unsubscribe = self.doc.graph.subscribe(self._on_graph_event)

    def _on_reset(self) -> None:
        self._resubscribe()
        self.outputs.clear()
        self.preview.clear()
        self.view.fit_all()

    def _on_graph_event(self, event: str, payload: dict[str, Any]) -> None:
        if event == "node_removed":
            self.outputs.pop(payload["node"], None)
        if self.live:
            self.runner.schedule(self.make_request)

    def _update_title(self, *_: Any) -> None:
        name = self.doc.path.name if self.doc.path else "Untitled"
        self.setWindowTitle(f"{name}{' *' if self.doc.modified else ''} — Fathom Studio")

    def _show_error(self, text: str) -> None:
        self.log.add("error", text)
        self.statusBar().showMessage(text.splitlines()[0], 8000)

    # ---- editing ------------------------------------------------------------------------------

    def node_classes(self) -> list[type[Node]]:
        scope = self.doc.scope()
        subs = [scope.get(f"subgraph.{n}") for n in self.doc.graph.subgraphs]
        return [*self.registry.types(), *[c for c in subs if c is not None]]

    def open_palette(self, at: QPointF, wire: PortItem | None = None) -> None:
        self._palette_at = at
        self._palette_wire = wire
        accepts = wire.type_id if wire is not None and wire.is_output else None
        gives = wire.type_id if wire is not None and not wire.is_output else None
        pos = self.view.mapToGlobal(self.view.mapFromScene(at))
        self.palette.open(self.node_classes(), pos, accepts, gives)

    def _wire_dropped(self, port: PortItem, at: QPointF) -> None:
        self.open_palette(at, port)

    def _palette_chosen(self, type_id: str) -> None:
        self.add_node(type_id, (self._palette_at.x(), self._palette_at.y()), self._palette_wire)
        self._palette_wire = None

    def add_node(self, type_id: str, pos: tuple[float, float], wire: PortItem | None = None) -> str:
        """Add a node with its parameters' defaults written out (so a later change of a
        default never changes this graph's result); connect it to ``wire`` when given."""
        cls = self.doc.scope().get(type_id)
        if cls is None:
            raise KeyError(f"unknown node type {type_id!r}")
        nid = self.doc.graph.new_id(type_id)
        params = {p.name: to_json_value(p.default) for p in cls.params}
        inst = NodeInstance(nid, type_id, params)
        ui = {nid: {"pos": [round(float(pos[0]), 2), round(float(pos[1]), 2)]}}
        stack = self.doc.undo_stack
        edge = _wire_edge(wire, nid, cls) if wire is not None else None
        if edge is not None:
            stack.beginMacro(f"Add {cls.title} and connect")
        stack.push(AddNodes(self.doc, [inst], [], ui))
        if edge is not None:
            dst_cls = self.doc.node_class(edge.dst)
            inp = dst_cls.input(edge.dst_port) if dst_cls is not None else None
            stack.push(Connect(self.doc, edge, multi=bool(inp and inp.multi)))
            stack.endMacro()
        self.scene.select_nodes([nid])
        return nid

    def select_all(self) -> None:
        for item in self.scene.items():
            if item.flags() & item.GraphicsItemFlag.ItemIsSelectable:
                item.setSelected(True)

    def copy(self) -> None:
        ids = self.scene.selected_node_ids()
        if ids:
            QApplication.clipboard().setText(selection_text(self.doc, ids))
            self.statusBar().showMessage(f"Copied {len(ids)} node(s)", 3000)

    def paste(self, text: str | None = None) -> list[str]:
        text = QApplication.clipboard().text() if text is None else text
        try:
            cmd = paste_command(self.doc, text, at=_tuple(self.view.cursor_scene_pos()))
        except GraphFileError:
            self.statusBar().showMessage("The clipboard holds no Fathom graph", 4000)
            return []
        self.doc.undo_stack.push(cmd)
        ids = [n.id for n in cmd.nodes]
        self.scene.select_nodes(ids)
        return ids

    def duplicate(self) -> list[str]:
        ids = self.scene.selected_node_ids()
        if not ids:
            return []
        cmd = paste_command(self.doc, selection_text(self.doc, ids))
        cmd.setText(f"Duplicate {len(ids)} node(s)")
        self.doc.undo_stack.push(cmd)
        new = [n.id for n in cmd.nodes]
        self.scene.select_nodes(new)
        return new

    def add_frame(self) -> str:
        ids = self.scene.selected_node_ids()
        return self.scene.add_frame("Frame", around=ids or None, at=self.view.cursor_scene_pos())

    def add_comment(self) -> str:
        return self.scene.add_comment("Comment", self.view.cursor_scene_pos())

    def rename(self) -> None:
        ids = self.scene.selected_node_ids()
        frames = [e for k, e in self.scene.selected_entries() if k == "groups"]
        if ids:
            text, ok = QInputDialog.getText(
                self, "Rename node", "Title", text=self.doc.title(ids[0])
            )
            if ok:
                self.doc.undo_stack.push(SetTitle(self.doc, ids[0], text.strip()))
        elif frames:
            self.rename_frame(frames[0])

    def rename_frame(self, group_id: str) -> None:
        old = self.doc.entry("groups", group_id)
        if old is None:
            return
        text, ok = QInputDialog.getText(self, "Rename frame", "Title", text=old.get("title", ""))
        if ok and text.strip() != old.get("title", ""):
            self.doc.undo_stack.push(
                SetEntry(self.doc, "groups", old, dict(old, title=text.strip()))
            )

    def toggle_flag(self, flag: str) -> None:
        ids = self.scene.selected_node_ids()
        if not ids:
            return
        on = not getattr(self.doc.graph.nodes[ids[0]], flag)
        self.doc.undo_stack.beginMacro(f"{flag.title()} {len(ids)} node(s)")
        for nid in ids:
            self.doc.undo_stack.push(SetFlags(self.doc, nid, **{flag: on}))
        self.doc.undo_stack.endMacro()

    def auto_layout(self) -> None:
        """Lay out the selection (or everything) by dependency depth, as one undoable move."""
        ids = set(self.scene.selected_node_ids()) or set(self.doc.graph.nodes)
        sub = self.doc.graph.copy()
        sub.nodes = {n: i for n, i in sub.nodes.items() if n in ids}
        sub.edges = [e for e in sub.edges if e.src in ids and e.dst in ids]
        boxes = [self.scene.nodes[n].sceneBoundingRect() for n in ids]
        origin = (min(b.left() for b in boxes), min(b.top() for b in boxes))
        heights = {n: self.scene.nodes[n].height for n in ids}
        layout = layered_layout(sub, heights, origin)
        moves = {
            n: (self.doc.node_pos(n), p) for n, p in layout.items() if self.doc.node_pos(n) != p
        }
        if moves:
            self.doc.undo_stack.push(Move(self.doc, moves, text="Auto layout"))

    def focus_node(self, node_id: str) -> None:
        node_id = node_id.split("/")[0]
        if node_id in self.scene.nodes:
            self.scene.select_nodes([node_id])
            self.view.centerOn(self.scene.nodes[node_id])

    def edit_settings(self) -> None:
        dialog = SettingsDialog(self.settings, self)
        if dialog.exec() == QDialog.DialogCode.Accepted:
            dialog.store()
            self.apply_settings()

    def apply_settings(self) -> None:
        from fathom.app.theme import apply_theme

        self.executor.cache.max_bytes = int(self.settings.memory_budget_gb * 1024**3)
        self.files.autosave_timer.setInterval(self.settings.autosave_seconds * 1000)
        app = QApplication.instance()
        if isinstance(app, QApplication):
            apply_theme(app, self.settings.theme)

    # ---- running ------------------------------------------------------------------------------

    def output_dir(self) -> Path:
        if self.settings.output_dir:
            return Path(self.settings.output_dir)
        if self.doc.path is not None:
            return self.doc.path.parent / "out"
        return Path.home() / "Fathom" / "out"

    def make_request(self, targets: list[str] | None = None) -> RunRequest:
        """A snapshot run exactly as ``fathom render`` would run the saved file: the same
        document is embedded in saved PNGs, inputs resolve against the graph's folder. The
        device is resolved on the worker, so importing torch never stalls the GUI."""
        graph = self.doc.graph.copy()
        document = self.doc.document()
        options = RunOptions(
            output_dir=self.output_dir(),
            base_dir=self.doc.base_dir.resolve(),
            device=self.settings.device,
            seed=0,
            graph_json=json.dumps(document, separators=(",", ":")),
        )
        return RunRequest(graph, options, targets)

    def run(self, targets: list[str] | None = None) -> bool:
        if self.runner.running:
            self.statusBar().showMessage("A run is in progress", 3000)
            return False
        if not self.doc.graph.nodes:
            self.statusBar().showMessage("Nothing to run: add nodes first", 3000)
            return False
        return self.runner.start(self.make_request(targets))

    def run_selected(self) -> bool:
        ids = self.scene.selected_node_ids()
        return self.run(ids) if ids else self.run()

    def cancel(self) -> None:
        if self.runner.running:
            self.runner.cancel()
            self.statusBar().showMessage("Cancelling after the running step…")

    def set_live(self, on: bool) -> None:
        self.live = bool(on)
        self.live_action.setChecked(self.live)
        if self.live:
            self.runner.schedule(self.make_request, 0)

    def _run_started(self) -> None:
        self.cancel_action.setEnabled(True)
        self.scene.reset_status()
        self.statusBar().showMessage("Running…")

    def _on_event(self, ev: Event) -> None:
        if ev.node is None:
            return
        if ev.kind == "node_preview":
            selected = self.scene.selected_node_ids()
            if not selected or ev.node.split("/")[0] in selected:
                self._queue_preview(ev.value, f"{ev.node} (step preview) {ev.message}".strip())
            return
        status = EVENT_STATUS.get(ev.kind)
        if status is None:
            return
        if ev.kind == "node_finished" and ev.message == "bypassed":
            status = "bypassed"
        progress = (
            ev.progress
            if ev.kind == "node_progress"
            else (0.0 if ev.kind == "node_started" else None)
        )
        self.scene.set_status(ev.node, status, progress, ev.message)
        if ev.kind == "node_failed":
            self.log.add("error", ev.message, ev.node)
        elif ev.kind == "node_skipped":
            self.log.add("warning", f"skipped: {ev.message}", ev.node)

    def _on_finished(self, outcome: RunOutcome) -> None:
        self.last_outcome = outcome
        self.cancel_action.setEnabled(False)
        for p in outcome.problems:
            if p.node:
                self.scene.set_status(p.node, "failed", message=str(p))
            self.log.add("error", str(p), (p.node or "").split("/")[0])
        result = outcome.result
        if result is None:
            if outcome.error and not outcome.problems:
                self.log.add("error", outcome.error)
            self.statusBar().showMessage("The run could not start: see the log", 8000)
            return
        for nid, values in result.values.items():
            if "/" not in nid:
                self.outputs[nid] = values
        for nid, rec in result.records.items():
            if rec.status == "cancelled":
                self.scene.set_status(nid, "cancelled", message=rec.error or "")
        counts = {s: len(result.by_status(s)) for s in ("executed", "cached", "failed")}
        word = "cancelled" if result.cancelled else "finished"
        summary = (
            f"Run {word} in {result.seconds:.2f} s: {counts['executed']} executed, "
            f"{counts['cached']} cached, {counts['failed']} failed"
        )
        self.log.add("error" if counts["failed"] else "info", summary)
        self.statusBar().showMessage(summary, 8000)
        ids = self.scene.selected_node_ids()
        if len(ids) == 1:
            self.show_output(ids[0])

    # ---- previews -----------------------------------------------------------------------------

    def _selection_changed(self) -> None:
        ids = self.scene.selected_node_ids()
        self.inspector.set_node(ids[0] if len(ids) == 1 else None)
        if len(ids) == 1:
            self.show_output(ids[0])

    def _queue_preview(self, value: Any, title: str) -> None:
        """Step previews show at most every PREVIEW_MS: the newest wins, none queue up."""
        self._pending_preview = (value, title)
        if not self._preview_timer.isActive():
            self._flush_preview()
            self._preview_timer.start()

    def _flush_preview(self) -> None:
        if self._pending_preview is not None:
            value, title = self._pending_preview
            self._pending_preview = None
            self.show_value(value, title)

    def show_value(self, value: Any, title: str) -> None:
        self.preview.show_value(downscaled(value, self.settings.preview_limit()), title)

    def show_output(self, node_id: str, port: str | None = None) -> bool:
        values = self.outputs.get(node_id)
        if not values:
            return False
        if port is None or port not in values:
            port = next((k for k, v in values.items() if v is not None), None)
        if port is None:
            return False
        self.show_value(values[port], f"{node_id}.{port}")
        return True

    def open_360(self, node_id: str, port: str | None = None) -> bool:
        """Open the 360° viewer on a panorama node's input, a mesh, or an RGBD output."""
        values = self.outputs.get(node_id, {})
        inst = self.doc.graph.nodes.get(node_id)
        if inst is None or not values:
            self.statusBar().showMessage("Run the graph first: this node has no output yet", 5000)
            return False
        viewer = self._viewer()
        if inst.type == PANORAMA_NODE:
            fed = {
                e.dst_port: self.outputs.get(e.src, {}).get(e.src_port)
                for e in self.doc.graph.incoming(node_id)
            }
            if isinstance(fed.get("image"), Image) and isinstance(fed.get("depth"), Depth):
                viewer.set_panorama(fed["image"], fed["depth"])
                return self._raise(viewer)
        value = values.get(port) if port else None
        if not isinstance(value, (Mesh, RGBD)):
            value = next((v for v in values.values() if isinstance(v, (Mesh, RGBD))), None)
        if isinstance(value, Mesh):
            viewer.set_mesh(value)
        elif isinstance(value, RGBD):
            h, w = value.image.height, value.image.width
            if abs(w / h - 2.0) < 0.05:  # equirectangular: a panorama
                viewer.set_panorama(value.image, value.depth)
            else:
                self._mesh_for_viewer(value, viewer)
        else:
            self.statusBar().showMessage("No panorama, mesh or RGBD output to show", 5000)
            return False
        return self._raise(viewer)

    def _viewer(self) -> Viewer360:
        if self.viewer360 is None:
            self.viewer360 = Viewer360()
            self.viewer360.setWindowTitle("360° viewer — Fathom Studio")
            self.viewer360.resize(1000, 640)
        return self.viewer360

    @staticmethod
    def _raise(viewer: QWidget) -> bool:
        viewer.show()
        viewer.raise_()
        return True

    def _mesh_for_viewer(self, rgbd: RGBD, viewer: Any) -> None:
        """A photo's RGBD becomes a mesh on a worker (the same node the graph would use)."""
        task = Task(lambda: self.executor.call("rgbd.to_mesh", {"rgbd": rgbd})["mesh"], self)
        task.succeeded.connect(viewer.set_mesh)
        task.failed.connect(lambda msg: self.log.add("error", f"360° viewer: {msg}"))
        task.finished.connect(lambda: self._tasks.remove(task))
        self._tasks.append(task)
        task.start()

    # ---- closing ------------------------------------------------------------------------------

    def closeEvent(self, event: QCloseEvent) -> None:  # noqa: N802 - Qt's name
        if self._closed:
            event.accept()
            return
        if not self.files.keep_or_discard():
            event.ignore()
            return
        self._closed = True
        self.runner.shutdown()
        # The scene outlives this window's C++ side; its last signals must find no slot here.
        self.scene.selectionChanged.disconnect(self._selection_changed)
        for task in list(self._tasks):
            task.wait(5000)
        self.files.close()
        self.log.detach()
        if self._unsubscribe is not None:
            self._unsubscribe()
        if self.viewer360 is not None:
            self.viewer360.close()
        event.accept()


def _tuple(p: QPointF) -> tuple[float, float]:
    return (p.x(), p.y())


def _wire_edge(port: PortItem, new_id: str, cls: type[Node]) -> Edge | None:
    """The edge joining a dragged wire to the first matching port of a new node (an exact type
    match wins over an implicit conversion)."""
    if port.is_output:
        cands = [i for i in cls.inputs if can_connect(port.type_id, i.type.type_id)]
        cands.sort(key=lambda i: i.type.type_id != port.type_id)
        return Edge(port.node_id, port.name, new_id, cands[0].name) if cands else None
    cands_o = [o for o in cls.outputs if can_connect(o.type.type_id, port.type_id)]
    cands_o.sort(key=lambda o: o.type.type_id != port.type_id)
    return Edge(new_id, cands_o[0].name, port.node_id, port.name) if cands_o else None
