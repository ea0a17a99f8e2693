"""The main window's menu bar, run toolbar and their actions, with shortcuts and status tips.

Actions only call into the parts that do the work (files, editing, runs, the view); the window
keeps the run actions' state in step with its run session.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QObject, Qt
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import QMenu, QToolBar

from fathom.app.files import example_title, examples

if TYPE_CHECKING:
    from fathom.app.main_window import MainWindow

K = QKeySequence.StandardKey


class Menus(QObject):
    """Builds the menus and toolbar of one window and holds the actions others update."""

    def __init__(self, window: MainWindow) -> None:
        super().__init__(window)
        self.window = window
        bar = window.menuBar()
        self._file_menu(bar.addMenu("&File"))
        self._edit_menu(bar.addMenu("&Edit"))
        self._view_menu(bar.addMenu("&View"))
        self._run_menu(bar.addMenu("&Run"))
        self._toolbar()

    def action(
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
        a = QAction(text, self.window)
        if shortcut is not None:
            a.setShortcuts(shortcut if isinstance(shortcut, list) else [QKeySequence(shortcut)])
        if canvas:
            a.setShortcutContext(Qt.ShortcutContext.WidgetWithChildrenShortcut)
            self.window.view.addAction(a)
        a.setCheckable(checkable)
        if tip:
            a.setStatusTip(tip)
        a.triggered.connect(slot)
        return a

    # ---- the menus -------------------------------------------------------------------------

    def _file_menu(self, menu: QMenu) -> None:
        files = self.window.files
        menu.addAction(self.action("&New", lambda: files.new(), K.New))
        menu.addAction(self.action("&Open…", lambda: files.open(), K.Open))
        self.recent_menu = menu.addMenu("Open &Recent")
        self.recent_menu.aboutToShow.connect(self.fill_recent)
        self.examples_menu = menu.addMenu("&Examples")
        for path in examples():
            self.examples_menu.addAction(
                self.action(example_title(path), lambda _=False, p=path: files.open_example(p))
            )
        menu.addSeparator()
        menu.addAction(self.action("&Save", lambda: files.save(), K.Save))
        menu.addAction(self.action("Save &As…", lambda: files.save_as(), K.SaveAs))
        menu.addSeparator()
        menu.addAction(self.action("Se&ttings…", self.window.edit_settings))
        menu.addAction(self.action("&Quit", self.window.close, K.Quit))

    def _edit_menu(self, menu: QMenu) -> None:
        w, ed = self.window, self.window.editing
        undo = w.doc.undo_stack.createUndoAction(w, "&Undo")
        undo.setShortcut(K.Undo)
        redo = w.doc.undo_stack.createRedoAction(w, "&Redo")
        # Both, whatever the platform's first Redo binding is (offscreen Qt's is Ctrl+Y).
        redo.setShortcuts([QKeySequence("Ctrl+Shift+Z"), QKeySequence("Ctrl+Y")])
        menu.addAction(undo)
        menu.addAction(redo)
        menu.addSeparator()
        delete = [QKeySequence(K.Delete), QKeySequence("Backspace")]
        for text, slot, keys in (
            ("&Copy", ed.copy, K.Copy),
            ("&Paste", lambda: ed.paste(), K.Paste),  # triggered's bool is no clipboard text
            ("D&uplicate", ed.duplicate, "Ctrl+D"),
            ("&Delete", w.scene.delete_selection, delete),
            ("Select &All", ed.select_all, K.SelectAll),
        ):
            menu.addAction(self.action(text, slot, keys, canvas=True))
        menu.addSeparator()
        menu.addAction(
            self.action(
                "Add &Node…",
                lambda: ed.open_palette(w.view.cursor_scene_pos()),
                "Shift+A",
                canvas=True,
                tip="search nodes (also Tab or double-click on the canvas)",
            )
        )
        for text, slot, keys in (
            ("Add &Frame", ed.add_frame, "Ctrl+G"),
            ("Add C&omment", ed.add_comment, "Ctrl+M"),
            ("&Rename…", ed.rename, "F2"),
            ("&Bypass", lambda: ed.toggle_flag("bypass"), "Ctrl+B"),
            ("&Mute", lambda: ed.toggle_flag("mute"), "Ctrl+E"),
            ("Auto &Layout", ed.auto_layout, "Ctrl+L"),
        ):
            menu.addAction(self.action(text, slot, keys, canvas=True))
        self._subgraph_items(menu)

    def _subgraph_items(self, menu: QMenu) -> None:
        """Make, open and leave subgraphs; Up and Expose work only inside one."""
        sg = self.window.subgraphs
        menu.addSeparator()
        for text, slot, keys, tip in (
            ("Make &Subgraph…", sg.make_from_selection, "Ctrl+Shift+G", "selection → one node"),
            ("&Open Subgraph", sg.open_selected, ["Return", "Enter", "Alt+Down"], "edit inside"),
        ):
            menu.addAction(self.action(text, slot, keys, canvas=True, tip=tip))
        for text, slot, keys, tip in (
            ("&Up to Enclosing Graph", sg.up, ["Escape", "Alt+Up"], "leave the subgraph"),
            ("E&xpose Parameters…", sg.expose_selected, None, "show them on the subgraph node"),
        ):
            action = self.action(text, slot, keys, canvas=True, tip=tip)
            action.setEnabled(False)
            sg.inside_actions.append(action)
            menu.addAction(action)
        menu.addAction(
            self.action(
                "Save Subgraph to &Library",
                sg.save_to_library,
                tip="offer it in every graph's palette",
            )
        )

    def _view_menu(self, menu: QMenu) -> None:
        w = self.window
        self.fit_action = self.action("&Fit to View", w.view.fit_all, ["F", "Home"], canvas=True)
        menu.addAction(self.fit_action)
        menu.addAction(self.action("Zoom &In", lambda: w.view.zoom_by(1.25), K.ZoomIn))
        menu.addAction(self.action("Zoom &Out", lambda: w.view.zoom_by(0.8), K.ZoomOut))
        self._finding_menu(menu)
        menu.addSeparator()
        bodies = w.scene.bodies
        settings = w.settings
        bodies.set_all_thumbnails(settings.node_thumbnails)
        self.thumbnails_action = self.action(
            "Node &Thumbnails",
            self._set_thumbnails,
            checkable=True,
            tip="show each node's last output on the node",
        )
        self.thumbnails_action.setChecked(bodies.thumbnails_on)
        menu.addAction(self.thumbnails_action)
        self.thumbnail_selected_action = self.action(
            "Thumbnail of &Selected Nodes",
            bodies.toggle_selected_thumbnails,
            "Shift+T",
            canvas=True,
            tip="show or hide the selected nodes' thumbnails",
        )
        menu.addAction(self.thumbnail_selected_action)
        menu.addSeparator()
        for dock in (w.inspector_dock, w.preview, w.log):
            menu.addAction(dock.toggleViewAction())
        d = w.run_docks
        for dock in (d.queue_dock, d.history, d.gallery, w.live_panel):
            menu.addAction(dock.toggleViewAction())

    def _finding_menu(self, menu: QMenu) -> None:
        """The minimap toggle and Find Node: finding one's way in a big graph."""
        w, find = self.window, self.window.find_node
        menu.addSeparator()
        mini, settings = w.view.minimap, w.settings
        self.minimap_action = self.action(
            "&Minimap",
            self._set_minimap,
            "Ctrl+Shift+M",
            checkable=True,
            tip="an overview of the whole graph; click or drag in it to move the view",
        )
        mini.shown_changed.connect(self.minimap_action.setChecked)
        mini.set_forced(settings.minimap)  # the last window's choice; automatic if none
        self.minimap_action.setChecked(not mini.isHidden())  # the window is not shown yet
        menu.addAction(self.minimap_action)
        menu.addAction(
            self.action(
                "Fin&d Node…", find.open, "Ctrl+F", tip="find nodes by title, type or value"
            )
        )
        menu.addAction(self.action("Find Ne&xt", lambda: find.step(True), "F3"))
        menu.addAction(self.action("Find Pre&vious", lambda: find.step(False), "Shift+F3"))

    def _set_minimap(self, on: bool) -> None:
        """The user's minimap choice, kept in the settings for the next window."""
        self.window.view.minimap.set_forced(on)
        self.window.settings.minimap = on

    def _set_thumbnails(self, on: bool) -> None:
        """Thumbnails on every node or none, kept in the settings for the next window."""
        self.window.scene.bodies.set_all_thumbnails(on)
        self.window.settings.node_thumbnails = on

    def _run_menu(self, menu: QMenu) -> None:
        runs = self.window.runs
        self.run_action = self.action(
            "&Run", lambda: runs.run(), ["F5", "Ctrl+Return"], tip="run every output"
        )
        self.run_sel_action = self.action(
            "Run to &Selected",
            runs.run_selected,
            "Shift+F5",
            tip="run only what the selected nodes need",
        )
        docks = self.window.run_docks
        self.queue_action = self.action(
            "&Queue Run",
            lambda: docks.queue_run(),
            ["Ctrl+Shift+Return", "Ctrl+Shift+Enter"],
            tip="queue the graph with its current parameters; queued runs go one after another",
        )
        self.cancel_action = self.action("&Cancel", runs.cancel, "Ctrl+.")
        self.cancel_action.setEnabled(False)
        self.live_action = self.action(
            "&Live Mode",
            runs.set_live,
            checkable=True,
            tip="re-run what a change affects, as you edit",
        )
        live = self.window.live
        self.live_session_action = self.action(
            "Start Live &Session",
            lambda: live.toggle(),
            "F6",
            tip="run the graph on every frame of its live source (camera, screen, file, "
            "stream) until stopped; see the Live panel",
        )
        self.window.live_panel.set_action(self.live_session_action)
        for a in (
            self.run_action,
            self.run_sel_action,
            self.queue_action,
            self.cancel_action,
            self.live_action,
            self.live_session_action,
        ):
            menu.addAction(a)
        menu.addSeparator()
        menu.addAction(self.action("Clear Cache", runs.executor.cache.clear))

    def _toolbar(self) -> None:
        bar = QToolBar("Run")
        bar.setObjectName("runbar")
        for a in (
            self.run_action,
            self.run_sel_action,
            self.queue_action,
            self.cancel_action,
            self.live_action,
            self.live_session_action,
            self.fit_action,
        ):
            bar.addAction(a)
        self.window.addToolBar(bar)

    def fill_recent(self) -> None:
        """The recent files, read when the menu opens (another window may have added one)."""
        self.recent_menu.clear()
        files = self.window.files
        for p in self.window.settings.recent_files():
            self.recent_menu.addAction(self.action(p, lambda _=False, p=p: files.open(Path(p))))
        if not self.window.settings.recent_files():
            self.recent_menu.addAction("(none)").setEnabled(False)

    def show_live_state(self, running: bool) -> None:
        """The live session action starts a session, or stops the one running."""
        text = "Stop Live &Session" if running else "Start Live &Session"
        self.live_session_action.setText(text)

    def show_run_state(self, running: bool, live: bool) -> None:
        """Cancel is offered while a run is going; the live toggle shows the session's mode."""
        self.cancel_action.setEnabled(running)
        self.live_action.setChecked(live)
