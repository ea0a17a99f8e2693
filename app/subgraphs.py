"""Subgraphs from the editor: make one from the selection, open its inside, expose parameters,
save it to the library folder.

The engine owns what a subgraph is (``engine.subgraph``) and how a library file is written
(``engine.graphfile.save_subgraph``); this module asks the user, checks, and pushes the undo
commands of ``app.subgraph_commands``. The dialogs are attributes so tests can answer them.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, QPoint, QPointF, Signal
from PySide6.QtGui import QAction, QTransform
from PySide6.QtWidgets import QInputDialog, QMenu, QMessageBox, QWidget

from fathom.app.document import Document
from fathom.app.editor.scene import GraphScene
from fathom.app.editor.view import GraphView
from fathom.app.expose_dialog import ExposeDialog, ExposeRow
from fathom.app.session import RunSession
from fathom.app.subgraph_commands import MakeSubgraph, SetExposedParams
from fathom.engine.errors import GraphFileError
from fathom.engine.graph import Exposed, SubgraphDef
from fathom.engine.graphfile import save_subgraph
from fathom.engine.subgraph import PREFIX, flatten, is_subgraph_type, make_subgraph

#: Exposed names, as the graph file schema allows them.
_EXPOSED_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class Subgraphs(QObject):
    """The Edit menu's subgraph actions and the double-click that opens a subgraph node."""

    #: A notice for the status bar: (text, milliseconds).
    notice = Signal(str, int)

    def __init__(
        self,
        doc: Document,
        scene: GraphScene,
        view: GraphView,
        session: RunSession,
        parent: QWidget,
    ) -> None:
        super().__init__(parent)
        self.doc = doc
        self.session = session
        self.scene = scene
        self.view = view
        self._parent = parent
        #: (suggested name, why the last one was refused or "") -> a name, or None: cancel.
        self.ask_name: Callable[[str, str], str | None] = self._dialog_name
        #: (node title, rows) -> {parameter: exposed name, or None to hide}, or None: cancel.
        self.ask_exposed: Callable[[str, list[ExposeRow]], dict[str, str | None] | None] = (
            self._dialog_exposed
        )
        #: A library file of that name exists: replace it (a .bak copy is kept)?
        self.confirm_replace: Callable[[Path], bool] = self._dialog_replace
        #: Shows a node's right-click menu (tests trigger its actions instead).
        self.show_menu: Callable[[QMenu, QPoint], object] = lambda menu, at: menu.exec(at)
        #: Actions that only make sense inside a subgraph (Up, Expose Parameters).
        self.inside_actions: list[QAction] = []
        scene.open_subgraph.connect(self.open_node)
        scene.node_menu.connect(self._node_menu)
        #: Each level's zoom and centre when the user left it: going back returns there.
        self._places: dict[tuple[tuple[str, str], ...], tuple[float, QPointF]] = {}
        doc.level_leaving.connect(self._keep_place)
        doc.level_changed.connect(self._level_changed)
        doc.reset.connect(self._reset)
        self._unfollow = session.subscribe(self._on_session)

    # ---- making ----------------------------------------------------------------------------

    def make_from_selection(self) -> str | None:
        """Ask a name and replace the selected nodes by one subgraph node (one undo step);
        returns the new node's id."""
        ids = self.scene.selected_node_ids()
        if not ids:
            self.notice.emit("Select the nodes to put in a subgraph first", 6000)
            return None
        suggestion, error = self._free_name(), ""
        while True:
            name = self.ask_name(suggestion, error)
            if name is None:
                return None
            name = name.strip()
            error = self.name_problem(ids, name)
            if not error:
                break
            self.notice.emit(error, 8000)
            suggestion = name
        cmd = MakeSubgraph(self.doc, ids, name)
        self.doc.undo_stack.push(cmd)
        self.scene.select_nodes([cmd.instance])
        self.notice.emit(
            f"Made subgraph '{name}' from {len(ids)} node(s); double-click it to edit inside", 6000
        )
        return cmd.instance

    def name_problem(self, ids: list[str], name: str) -> str:
        """Why ``name`` cannot name a new subgraph of ``ids``, or "". The engine's own check,
        tried on a copy, so its rules live in one place."""
        if self.doc.scope().find_def(name) is not None:
            return f"A subgraph named '{name}' already exists here or in the library."
        try:
            make_subgraph(self.doc.graph.copy(), ids, name)
        except ValueError as exc:
            text = str(exc)
            return text[0].upper() + text[1:] + "."
        return ""

    def _free_name(self) -> str:
        scope = self.doc.scope()
        i = 1
        while scope.find_def(f"subgraph{i}") is not None:
            i += 1
        return f"subgraph{i}"

    # ---- levels ------------------------------------------------------------------------------

    def open_selected(self) -> bool:
        ids = self.scene.selected_node_ids()
        if len(ids) != 1:
            self.notice.emit("Select one subgraph node to open", 5000)
            return False
        return self.open_node(ids[0])

    def open_node(self, node_id: str) -> bool:
        """Show the inside of subgraph node ``node_id`` in the editor."""
        inst = self.doc.graph.nodes.get(node_id)
        if inst is None or not is_subgraph_type(inst.type):
            self.notice.emit(f"'{node_id}' is not a subgraph node", 5000)
            return False
        name = inst.type[len(PREFIX) :]
        trail = [*self.doc.trail, (node_id, name)]
        if self.doc.level_defs(trail) is None:
            where = "the library folder" if self.doc.scope().find_def(name) else "nowhere"
            self.notice.emit(
                f"Subgraph '{name}' is defined in {where}, not in this graph: its inside "
                "cannot be edited here",
                8000,
            )
            return False
        return self.doc.go_to(trail)

    def up(self) -> bool:
        """Back to the enclosing graph, with the subgraph node that was open selected."""
        if not self.doc.trail:
            return False
        came_from = self.doc.trail[-1][0]
        self.doc.go_to(self.doc.trail[:-1])
        if came_from in self.scene.nodes:
            self.scene.select_nodes([came_from])
        return True

    def _keep_place(self) -> None:
        view = self.view
        centre = view.mapToScene(view.viewport().rect().center())
        self._places[tuple(self.doc.trail)] = (view.zoom(), QPointF(centre))

    def _reset(self) -> None:
        self._places.clear()  # another graph: no level of it has been seen
        self._level_changed()

    def _level_changed(self) -> None:
        for action in self.inside_actions:
            action.setEnabled(bool(self.doc.trail))
        place = self._places.get(tuple(self.doc.trail))
        if place is None:
            self.view.fit_all()
        else:  # back where the user left this level
            self.view.setTransform(QTransform.fromScale(place[0], place[0]))
            self.view.centerOn(place[1])

    # ---- exposing ----------------------------------------------------------------------------

    def expose_selected(self) -> bool:
        """Choose which parameters of the selected inner node the subgraph node shows."""
        d = self.doc.definition()
        ids = self.scene.selected_node_ids()
        if d is None or len(ids) != 1:
            self.notice.emit("Open a subgraph and select one node inside it", 5000)
            return False
        cls = self.doc.node_class(ids[0])
        if cls is None or not cls.params:
            self.notice.emit(f"'{ids[0]}' has no parameters to expose", 5000)
            return False
        current = {x.port: x.name for x in d.params if x.node == ids[0]}
        rows = [
            ExposeRow(p.name, current.get(p.name), self._free_exposed(d, ids[0], p.name))
            for p in cls.params
        ]
        answer = self.ask_exposed(self.doc.title(ids[0]), rows)
        if answer is None:
            return False
        return self.set_exposed(ids[0], answer)

    def set_exposed(self, node_id: str, choice: dict[str, str | None]) -> bool:
        """Expose (a name) or hide (None) parameters of inner node ``node_id``; one undo step."""
        d = self.doc.definition()
        if d is None:
            return False
        keep = [x for x in d.params if not (x.node == node_id and x.port in choice)]
        added = [Exposed(name.strip(), node_id, port) for port, name in choice.items() if name]
        names = [x.name for x in keep + added]
        bad = [x.name for x in added if not _EXPOSED_RE.match(x.name)]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if bad or dupes:
            why = (
                f"'{bad[0]}' is not a valid name: use letters, digits and '_'"
                if bad
                else f"'{dupes[0]}' is exposed twice: give each its own name"
            )
            self.notice.emit(f"Cannot expose: {why}", 8000)
            return False
        params = [*keep, *added]
        if params == d.params:
            return True
        shown = ", ".join(x.name for x in added) or "none"
        self.doc.undo_stack.push(
            SetExposedParams(self.doc, params, f"Expose parameters of {node_id}: {shown}")
        )
        return True

    def param_menu(self, node_id: str, param: str, at: QPoint) -> None:
        """Right-click on a parameter in the inspector, inside a subgraph: expose it on the
        subgraph node (under a free name), or hide it again."""
        d = self.doc.definition()
        if d is None or node_id not in self.doc.graph.nodes:
            return
        exposed = next((x.name for x in d.params if x.node == node_id and x.port == param), None)
        menu = QMenu(self._parent)
        if exposed is None:
            name = self._free_exposed(d, node_id, param)
            menu.addAction(
                f"Expose '{param}' on the Subgraph Node",
                lambda: self.set_exposed(node_id, {param: name}),
            )
        else:
            menu.addAction(
                f"Hide '{exposed}' from the Subgraph Node",
                lambda: self.set_exposed(node_id, {param: None}),
            )
        menu.addAction("Expose Parameters…", self.expose_selected)
        self.show_menu(menu, at)
        menu.deleteLater()

    def _free_exposed(self, d: SubgraphDef, node_id: str, param: str) -> str:
        taken = {x.name for x in d.params if not (x.node == node_id and x.port == param)}
        name = param if param not in taken else re.sub(r"\W", "_", f"{node_id}_{param}")
        return name

    # ---- the library -------------------------------------------------------------------------

    def save_to_library(self) -> Path | None:
        """Write the selected subgraph node's definition (or the open one) to the library
        folder, atomically, so the palette offers it in every graph."""
        d = self._chosen_definition()
        if d is None:
            self.notice.emit("Select a subgraph node, or open one, to save it to the library", 6000)
            return None
        folder = self.doc.library_folder
        path = folder / f"{d.name}.json"
        if path.exists() and not self.confirm_replace(path):
            return None
        uses: dict[str, SubgraphDef] = dict(self.doc.root.subgraphs)
        for level in self.doc.level_defs(self.doc.trail) or []:
            uses.update(level.graph.subgraphs)
        try:
            folder.mkdir(parents=True, exist_ok=True)
            written = save_subgraph(d, folder, self.doc.registry, uses=uses)
        except (OSError, GraphFileError) as exc:
            self.notice.emit(f"Could not save '{d.name}' to the library: {exc}", 10000)
            return None
        self.doc.library_changed(d.name)
        self.notice.emit(f"Saved subgraph '{d.name}' to {written}", 8000)
        return written

    def _chosen_definition(self) -> SubgraphDef | None:
        ids = self.scene.selected_node_ids()
        if len(ids) == 1:
            inst = self.doc.graph.nodes[ids[0]]
            if is_subgraph_type(inst.type):
                defs = self.doc.level_defs([*self.doc.trail, (ids[0], inst.type[len(PREFIX) :])])
                return defs[-1] if defs else None
        return self.doc.definition()

    # ---- run outputs -----------------------------------------------------------------------

    def _on_session(self, kind: str, payload: dict[str, Any]) -> None:
        """A finished run's outputs of each top-level subgraph node, so its preview and output
        choice work like any node's. The session keeps top-level nodes' outputs; a subgraph
        node's are its inner nodes' exposed ones, which only the definitions know."""
        result = payload["outcome"].result if kind == "run_finished" else None
        if result is None:
            return
        try:
            flat = flatten(self.doc.snapshot(), self.doc.root_scope())
        except GraphFileError:
            return  # a library file that no longer reads: the run said so already
        for (inst, name), (node, port) in flat.meta["_outputs"].items():
            value = result.values.get(node, {}).get(port)
            if "/" not in inst and value is not None:
                self.session.outputs.setdefault(inst, {})[name] = value

    def close(self) -> None:
        """The window closes: stop following its run session."""
        self._unfollow()

    # ---- the node menu -----------------------------------------------------------------------

    def menu_for(self, node_id: str) -> QMenu:
        """The subgraph entries of a node's right-click menu, for the level shown."""
        menu = QMenu(self._parent)
        menu.addAction("Make Subgraph…", self.make_from_selection)
        inst = self.doc.graph.nodes.get(node_id)
        if inst is not None and is_subgraph_type(inst.type):
            menu.addAction("Open Subgraph", lambda: self.open_node(node_id))
            menu.addAction("Save Subgraph to Library", self.save_to_library)
        if self.doc.trail:
            menu.addAction("Expose Parameters…", self.expose_selected)
            menu.addAction("Up to Enclosing Graph", self.up)
        return menu

    def _node_menu(self, node_id: str, at: QPoint) -> None:
        menu = self.menu_for(node_id)
        self.show_menu(menu, at)
        menu.deleteLater()

    # ---- dialogs -------------------------------------------------------------------------------

    def _dialog_name(self, suggestion: str, error: str) -> str | None:
        rules = "Lowercase letters, digits and '_', starting with a letter."
        label = f"{error}\n\n{rules}" if error else f"Name of the new subgraph.\n{rules}"
        text, ok = QInputDialog.getText(self._parent, "Make Subgraph", label, text=suggestion)
        return text if ok else None

    def _dialog_exposed(self, title: str, rows: list[ExposeRow]) -> dict[str, str | None] | None:
        dialog = ExposeDialog(title, rows, self._parent)
        return dialog.choice() if dialog.exec() else None

    def _dialog_replace(self, path: Path) -> bool:
        answer = QMessageBox.question(
            self._parent,
            "Save to Library",
            f"{path} exists. Replace it? (The old file is kept as a .bak copy.)",
        )
        return answer == QMessageBox.StandardButton.Yes
