"""The main window: node editor in the centre, inspector, preview and log docks, menus.

It assembles the parts and owns nothing they could own themselves: the Document holds the graph,
commands edit it (``app.editing``), the FileController saves it, the RunController runs it off
the GUI thread into the RunSession (``app.session``, no Qt), which the window, the editor's
badges and the log panel follow; ``app.menus`` holds the actions, ``app.output_previews`` and
``app.viewer360_opener`` show what runs made; the ModelCatalog (``app.model_catalog``) lists
and downloads models for the inspector's pickers and the missing-models dialog.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtGui import QCloseEvent, QIcon
from PySide6.QtWidgets import (
    QApplication,
    QDialog,
    QDockWidget,
    QMainWindow,
    QVBoxLayout,
    QWidget,
)

from fathom.app.document import Document
from fathom.app.editing import Editing
from fathom.app.editor.breadcrumb import Breadcrumb
from fathom.app.editor.find_node import FindNode
from fathom.app.editor.palette import NodePalette
from fathom.app.editor.scene import GraphScene
from fathom.app.editor.view import GraphView
from fathom.app.files import FileController
from fathom.app.inspector import Inspector
from fathom.app.live_panel import LivePanel
from fathom.app.live_run import LiveRun
from fathom.app.log_panel import LogPanel
from fathom.app.menus import Menus
from fathom.app.missing_models import MissingModels
from fathom.app.model_catalog import ModelCatalog
from fathom.app.output_previews import OutputPreviews
from fathom.app.param_checks import ParamBadges
from fathom.app.preflight_checks import PreflightChecks
from fathom.app.preview.dock import PreviewDock, panel_kind
from fathom.app.run_controller import RunController
from fathom.app.run_docks import RunDocks
from fathom.app.session import RunSession
from fathom.app.settings import Settings, SettingsDialog
from fathom.app.subgraphs import Subgraphs
from fathom.app.viewer360_opener import Viewer360Opener
from fathom.app.warmup import warm_up
from fathom.engine.cache import OutputCache
from fathom.engine.executor import Executor
from fathom.engine.registry import Registry, default_registry
from fathom.engine.resources import icon_path

#: The narrowest a side dock can be dragged (its content's own minimum no longer counts).
DOCK_MIN_W = 240


class MainWindow(QMainWindow):
    """One open graph: editor, docks, menus; closing it asks about unsaved changes."""

    def __init__(
        self,
        registry: Registry | None = None,
        settings: Settings | None = None,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        warm_up()  # the first File → Open's one-off work, done now on a thread (app.warmup)
        self.registry = registry or default_registry()
        self.settings = settings or Settings()
        self.doc = Document(self.registry, self)
        self.session = RunSession()
        self.models = ModelCatalog(self)
        self._make_docks()
        self.executor = Executor(
            self.registry, cache=OutputCache(int(self.settings.memory_budget_gb * 1024**3))
        )
        selected = self.scene.selected_node_ids
        self.runs = RunController(
            self.doc, self.settings, self.executor, self.session, selected, self
        )
        self.runner = self.runs.runner
        self.files = FileController(self.doc, self.settings, self)
        self.editing = Editing(self.doc, self.scene, self.view, self.palette, self)
        self.find_node = FindNode(self.doc, self.view, self.editing.focus_node, self)
        self.subgraphs = Subgraphs(self.doc, self.scene, self.view, self.session, self)
        self.previews = OutputPreviews(
            self.doc, self.session, self.preview, self.settings, selected, self
        )
        self.runs.previewed = self.previews.previewed  # F5 and Live keep the open preview fresh
        self.previews.opened.connect(self.runs.preview_opened)
        self.opener360 = Viewer360Opener(self.doc, self.session, self)
        self.missing_models = MissingModels(self.doc, self.models, self.session, self)
        self.run_docks = RunDocks(self)  # the run queue, run history and output gallery
        self.live = LiveRun(self.doc, self.executor, lambda: self.runs.make_request().options, self)
        self.live_panel = LivePanel(self.live, self)
        self.menus = Menus(self)
        self._closed = False
        self._unfollow: Callable[[], None] | None = None
        self._connect()
        self._follow()
        icon = icon_path()
        if icon is not None:
            self.setWindowIcon(QIcon(str(icon)))
        self.resize(1500, 920)
        self.resizeDocks([self.inspector_dock, self.preview], [420, 420], Qt.Orientation.Horizontal)
        self.resizeDocks([self.inspector_dock, self.preview], [330, 520], Qt.Orientation.Vertical)
        self.resizeDocks([self.log], [150], Qt.Orientation.Vertical)
        self._hold_dock_widths()
        self._update_title()

    def _hold_dock_widths(self) -> None:
        """The side docks are as wide as the user drags them, never as their content asks:
        previews (image, depth, RGBD, mesh) and parameter lists want different minimum widths,
        and letting each selection widen the docks squeezed the canvas and clipped the node at
        its right edge. The content lays itself out in whatever width the dock has."""
        for dock in (self.inspector_dock, self.preview):
            content = dock.widget()
            if content is not None:
                content.setMinimumWidth(DOCK_MIN_W)

    def _make_docks(self) -> None:
        self.scene = GraphScene(self.doc)
        self.view = GraphView(self.scene)
        self.breadcrumb = Breadcrumb(self.doc)  # "Main › my_blur" while inside a subgraph
        centre = QWidget()
        column = QVBoxLayout(centre)
        column.setContentsMargins(0, 0, 0, 0)
        column.setSpacing(0)
        column.addWidget(self.breadcrumb)
        column.addWidget(self.view)
        self.setCentralWidget(centre)
        self.inspector = Inspector(self.doc, models=self.models)
        self.inspector_dock = QDockWidget("Inspector", self)
        self.inspector_dock.setObjectName("inspector")
        self.inspector_dock.setWidget(self.inspector)
        self.addDockWidget(Qt.DockWidgetArea.RightDockWidgetArea, self.inspector_dock)
        self.preview = PreviewDock(self)
        self.addDockWidget(Qt.DockWidgetArea.RightDockWidgetArea, self.preview)
        self.log = LogPanel(self)
        self.addDockWidget(Qt.DockWidgetArea.BottomDockWidgetArea, self.log)
        self.palette = NodePalette(self, self.settings)

    def _connect(self) -> None:
        notice = self.notice
        self.doc.reset.connect(self._on_reset)
        self.doc.path_changed.connect(self._update_title)
        self.doc.modified_changed.connect(self._update_title)
        self.scene.selectionChanged.connect(self._selection_changed)
        self.scene.hint.connect(lambda text: notice(text, 6000))
        self.view.files_dropped.connect(lambda paths, at: self.files.drop(paths, (at.x(), at.y())))
        self.inspector.show_output.connect(self.previews.show_output)
        self.inspector.param_menu.connect(self.subgraphs.param_menu)
        self.inspector.output_of = self.previews.ports.get
        self.inspector.open_360.connect(self.opener360.open)
        self.preview.open_360.connect(self.opener360.show_value)
        self.preview.written.problem.connect(lambda text: self.log.add("warning", text))
        self.log.node_clicked.connect(self.editing.focus_node)
        self.files.error.connect(self._show_error)
        self.files.message.connect(lambda text: notice(text, 6000))
        self.files.warning.connect(lambda text: self.log.add("warning", text))
        for part in (self.runs, self.editing, self.opener360, self.inspector, self.subgraphs):
            part.notice.connect(notice)
        self.opener360.error.connect(lambda text: self.log.add("error", text))
        self._connect_live()

    def _connect_live(self) -> None:
        """The Live panel's session: its notices and problems, the menu's Start/Stop, and the
        open preview following the session frame by frame."""
        live = self.live
        self.addDockWidget(Qt.DockWidgetArea.BottomDockWidgetArea, self.live_panel)
        self.tabifyDockWidget(self.log, self.live_panel)
        self.log.raise_()
        live.notice.connect(self.notice)
        live.failed.connect(lambda text: self.log.add("error", text))
        live.running_changed.connect(self._live_running)
        live.live_value.connect(self._live_value)
        self.live_panel.node_clicked.connect(self.editing.focus_node)
        self.previews.opened.connect(
            lambda node: live.set_watched(node, self.previews.ports.get(node))
        )

    def _live_running(self, running: bool) -> None:
        self.menus.show_live_state(running)
        if not running:
            return
        if self.session.live:
            # Live mode would re-run the whole clip after each edit beside the session, which
            # already takes edits on its next frame: it goes off, its re-runs stop.
            self.runs.set_live(False)
            self.runs.cancel()
            self.notice("Live mode is off while the live session runs", 6000)
        self.live_panel.show()
        self.live_panel.raise_()
        node = self.previews.previewed() or self.live.display_node()
        if node is not None and node != self.previews.node:
            self.previews.show_output(node)  # opening it sets the live session's watch
        self.live.set_watched(node, self.previews.ports.get(node) if node else None)

    def _live_value(self, node: str, value: Any) -> None:
        """The newest value of the previewed node: a 3D one updates the 3D view in place."""
        if node != self.previews.node:
            return
        title = f"{self.doc.title(node) if node in self.doc.graph.nodes else node} (live)"
        if panel_kind(value) == "mesh":
            self.preview.show_live_value(value, title)
        else:
            self.previews.show_value(value, title)

    # ---- the run session --------------------------------------------------------------------

    def _follow(self) -> None:
        """The window, the editor's badges and the log panel each follow the run session, and
        each lets go of it when the window closes."""
        self.scene.follow(self.session)
        # After the scene: a new graph's badges go idle first, then show parameter problems.
        self.param_badges = ParamBadges(self.doc, self.session)
        self.inspector.params_checked.connect(self.param_badges.show)
        # Then the nodes' own pre-flight checks, on a worker, as values are set.
        self.preflight = PreflightChecks(
            self.doc, self.executor, self.runs.run_options, self.param_badges, self.session, self
        )
        self.preflight.changed.connect(self.inspector.refresh_problems)
        self.inspector.checked_problems = self.preflight.text_at_level
        self.log.follow(self.session)
        self._unfollow = self.session.subscribe(self._on_session)

    def _on_session(self, kind: str, payload: dict[str, Any]) -> None:
        if kind == "node_preview":
            self.previews.step_preview(payload["node"], payload["value"], payload["title"])
            return
        if kind == "run_started":
            self.notice("Running…")
        elif kind == "run_finished":
            summary = payload["summary"]
            self.notice(summary or "The run could not start: see the log", 8000)
            if summary is not None:
                self.previews.show_selected()
        if kind in ("run_started", "run_finished", "live_changed"):
            self.menus.show_run_state(self.session.running, self.session.live)

    # ---- document state ---------------------------------------------------------------------

    def _on_reset(self) -> None:
        self.previews.clear()
        self.view.fit_to_open()  # a readable zoom, however big the graph

    def _selection_changed(self) -> None:
        ids = self.scene.selected_node_ids()
        self.inspector.set_node(ids[0] if len(ids) == 1 else None)
        self.previews.show_selected()

    def _update_title(self, *_: Any) -> None:
        name = self.doc.path.name if self.doc.path else "Untitled"
        self.setWindowTitle(f"{name}{' *' if self.doc.modified else ''} — Fathom Studio")

    def notice(self, text: str, ms: int = 0) -> None:
        """A line in the status bar (``ms`` 0: until the next one)."""
        self.statusBar().showMessage(text, ms)

    def _show_error(self, text: str) -> None:
        self.log.add("error", text)
        self.notice(text.splitlines()[0], 8000)

    # ---- settings -----------------------------------------------------------------------------

    def edit_settings(self) -> None:
        dialog = SettingsDialog(self.settings, self)
        if dialog.exec() == QDialog.DialogCode.Accepted:
            dialog.store()
            self.apply_settings()

    def apply_settings(self) -> None:
        from fathom.app.theme import apply_theme

        self.executor.cache.max_bytes = int(self.settings.memory_budget_gb * 1024**3)
        self.files.autosave_timer.setInterval(self.settings.autosave_seconds * 1000)
        self.models.refresh()  # the models folder may have changed
        self.preflight.check_all()  # and the output folder: checks resolve paths as runs do
        app = QApplication.instance()
        if isinstance(app, QApplication):
            apply_theme(app, self.settings.theme)
            self.inspector.set_node(self.inspector.node_id)  # its text colours are the theme's

    # ---- closing ------------------------------------------------------------------------------

    def closeEvent(self, event: QCloseEvent) -> None:  # noqa: N802 - Qt's name
        if self._closed:
            event.accept()
            return
        if not self.files.keep_or_discard():
            event.ignore()
            return
        self._closed = True
        self.live.shutdown()
        self.runs.shutdown()
        self.run_docks.close()
        # The scene outlives this window's C++ side; its last signals must find no slot here.
        self.scene.selectionChanged.disconnect(self._selection_changed)
        self.scene.unfollow()
        self.preflight.close()
        self.param_badges.close()
        self.log.detach()
        if self._unfollow is not None:
            self._unfollow()
            self._unfollow = None
        self.opener360.close()
        self.subgraphs.close()
        self.missing_models.close()
        self.files.close()
        self.doc.close()
        event.accept()
