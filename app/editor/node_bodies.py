"""What the scene's node bodies share: edits turned into undo commands, the one open on-node
editor, the per-node and global thumbnail switches, and the thumbnails made after each run.

The scene owns one ``NodeBodies``; it hands over each node item it makes and the graph events
it hears, so a parameter changed anywhere (inspector, undo, a script) shows on the node, and a
change made on the node reaches the inspector through the same graph event.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QObject, QPoint, Qt, QTimer
from PySide6.QtGui import QAction, QImage, QTextCursor
from PySide6.QtWidgets import (
    QAbstractSpinBox,
    QApplication,
    QGraphicsProxyWidget,
    QMenu,
    QPlainTextEdit,
    QWidget,
)

from fathom.app.commands import SetParam
from fathom.app.document import relative_to
from fathom.app.editor.node_body import (
    EditorKeys,
    NodeBody,
    editor_has_focus,
    focus_target,
    menu_for,
)
from fathom.app.editor.thumbnail import ThumbnailMaker, shown_value
from fathom.app.param_widgets import (
    SeedWidget,
    TextWidget,
    choose_path,
    make_widget,
    to_json_value,
)
from fathom.app.session import RunSession
from fathom.engine.graph import Edge
from fathom.engine.node import Node, Param

if TYPE_CHECKING:
    from fathom.app.editor.node_item import NodeItem
    from fathom.app.editor.scene import GraphScene

#: The key of a node's editor entry that hides its thumbnail (absent: shown).
THUMB_KEY = "thumbnail"


class NodeBodies(QObject):
    """The bodies of one scene's nodes, by node id."""

    def __init__(self, scene: GraphScene) -> None:
        super().__init__(scene)
        self.scene = scene
        self.doc = scene.doc
        self.bodies: dict[str, NodeBody] = {}
        #: The View menu's switch: thumbnails on every node (each node may still hide its own).
        self.thumbnails_on = True
        self.thumbs = ThumbnailMaker(self._thumbnail_ready, self)
        self.editor: QGraphicsProxyWidget | None = None
        self._editing: tuple[NodeBody, Param] | None = None
        self._keys = EditorKeys(self)
        #: The open list of a choice parameter's values (kept so it is not collected).
        self.menu: QMenu | None = None
        self.session: RunSession | None = None
        self._unfollow: Callable[[], None] | None = None
        # Focus leaves an on-node editor for another widget, or for another item (a click on
        # the canvas keeps the application's focus in the view): either closes it.
        app = QApplication.instance()
        if isinstance(app, QApplication):
            app.focusChanged.connect(self._focus_changed)
        scene.focusItemChanged.connect(self._focus_changed)

    # ---- items ----------------------------------------------------------------------------

    def clear(self) -> None:
        """The scene dropped every item (another graph is open)."""
        self.close_editor(keep=False)
        self.bodies.clear()
        self.thumbs.forget()

    def attach(self, item: NodeItem, cls: type[Node] | None) -> None:
        """Give a node item its body: main parameters now, a thumbnail after a run."""
        if cls is None:
            return
        nid = item.node_id
        body = NodeBody(item, cls.main_specs(), self)
        params = self.doc.graph.nodes[nid].params
        for spec in body.specs:
            body.values[spec.name] = params.get(spec.name, spec.default)
        body.thumb_on = self.doc.graph.ui.get("nodes", {}).get(nid, {}).get(THUMB_KEY, True)
        body.relayout()
        self.bodies[nid] = body
        if self.session is not None and self.session.outputs:
            self.thumbs.request({nid: shown_value(self.doc, self.session.outputs, nid)})

    def on_graph_event(self, event: str, payload: dict[str, Any]) -> None:
        nid = payload.get("node")
        body = self.bodies.get(nid) if isinstance(nid, str) else None
        if event == "param_changed" and body is not None:
            body.set_value(payload["param"], payload["value"])
            if self._editing is not None and self._editing[0] is body:
                if self._editing[1].name == payload["param"] and self.editor is not None:
                    self.editor.widget().set_value(payload["value"])  # type: ignore[attr-defined]
        elif event == "node_removed":
            if self._editing is not None and self._editing[0] is body:
                self.close_editor(keep=False)
            self.bodies.pop(nid, None)  # type: ignore[arg-type]

    # ---- edits --------------------------------------------------------------------------------

    def commit(self, nid: str, spec: Param, raw: Any, merge: bool = False) -> SetParam | None:
        """Validate as the engine does, then one undoable SetParam (the inspector's command);
        a refused value is said beside the node. Returns the command pushed, if any."""
        inst = self.doc.graph.nodes.get(nid)
        if inst is None:
            return None
        try:
            value = to_json_value(spec.validate(raw))
        except ValueError as exc:
            self.scene.hint.emit(f"{spec.name}: {exc}; give {spec.allowed()}")
            return None
        if spec.name in inst.params and inst.params[spec.name] == value:
            return None
        cmd = SetParam(self.doc, nid, spec.name, value, merge)
        self.doc.undo_stack.push(cmd)
        return cmd

    def select(self, nid: str, modifiers: Qt.KeyboardModifier) -> None:
        """A press on a row selects its node (the inspector then shows the full set)."""
        item = self.scene.nodes.get(nid)
        if item is None or item.isSelected():
            return
        if not modifiers & (
            Qt.KeyboardModifier.ControlModifier | Qt.KeyboardModifier.ShiftModifier
        ):
            self.scene.clearSelection()
        item.setSelected(True)

    def offer_choices(self, body: NodeBody, spec: Param, at: QPoint) -> None:
        nid = body.node.node_id
        self.menu = menu_for(spec, body.values.get(spec.name, spec.default))

        def chosen(action: QAction) -> None:
            self.commit(nid, spec, action.data())

        self.menu.triggered.connect(chosen)
        self.menu.popup(at)

    # ---- the on-node editor -------------------------------------------------------------------

    def open_editor(self, body: NodeBody, spec: Param) -> QWidget:
        """The parameter's own editor (the inspector's kind) over its row, with focus."""
        self.close_editor()
        nid = body.node.node_id
        widget = make_widget(spec, self._pick, self._suggestions, self._pick_folder)
        widget.set_value(body.values.get(spec.name, spec.default))
        widget.edited.connect(lambda value, merge: self.commit(nid, spec, value, merge))
        if isinstance(widget, SeedWidget):
            # The inspector's lock, kept in the node's editor entry: a locked seed stays put.
            locked = self.doc.graph.ui.get("nodes", {}).get(nid, {}).get("locked", [])
            widget.lock.setChecked(spec.name in locked)
            widget.lock.toggled.connect(lambda on: self._lock(nid, spec.name, on))
        widget.setAutoFillBackground(True)
        proxy = QGraphicsProxyWidget(body)
        proxy.setWidget(widget)
        rect = body.row_rect(body.specs.index(spec))
        proxy.setPos(rect.topLeft())
        proxy.resize(rect.width(), max(rect.height(), widget.sizeHint().height()))
        proxy.setZValue(10)
        body.node.setZValue(3)  # above neighbours the editor may overlap
        self.editor, self._editing = proxy, (body, spec)
        target = focus_target(widget) or widget
        for child in (target, *widget.findChildren(QWidget)):
            child.installEventFilter(self._keys)
        proxy.setFocus()
        target.setFocus(Qt.FocusReason.MouseFocusReason)
        if isinstance(target, QAbstractSpinBox):
            target.selectAll()  # a number is retyped, as in Blender
        elif isinstance(target, QPlainTextEdit):
            target.moveCursor(QTextCursor.MoveOperation.End)  # a prompt is added to
        return widget

    def close_editor(self, keep: bool = True) -> None:
        """Close the open editor; ``keep``: commit text typed but not yet committed."""
        proxy, editing = self.editor, self._editing
        if proxy is None or editing is None:
            return
        self.editor = self._editing = None
        widget = proxy.widget()
        if keep and isinstance(widget, TextWidget):
            self.commit(editing[0].node.node_id, editing[1], widget.current_text())
        widget.blockSignals(True)
        editing[0].node.setZValue(1)
        proxy.hide()
        proxy.setParentItem(None)
        if proxy.scene() is not None:
            proxy.scene().removeItem(proxy)
        proxy.deleteLater()
        views = self.scene.views()
        if views:
            views[0].setFocus()

    def _focus_changed(self, *_: Any) -> None:
        if self.editor is not None and not editor_has_focus(self.editor):
            QTimer.singleShot(0, self._close_if_unfocused)

    def _close_if_unfocused(self) -> None:
        """Focus left the editor for good (a file dialog or a completer is not leaving)."""
        if QApplication.activeModalWidget() is not None or QApplication.activePopupWidget():
            return
        if self.editor is not None and not editor_has_focus(self.editor):
            self.close_editor()

    def _lock(self, nid: str, name: str, on: bool) -> None:
        entry = self.doc.graph.ui.setdefault("nodes", {}).setdefault(nid, {})
        locked = [n for n in entry.get("locked", []) if n != name] + ([name] if on else [])
        if locked:
            entry["locked"] = locked
        else:
            entry.pop("locked", None)

    def _pick(self, spec: Param, kind: str | None = None) -> str | None:
        views = self.scene.views()
        chosen = choose_path(spec, views[0] if views else None, str(self.doc.base_dir), kind)
        return relative_to(chosen, self.doc.base_dir) if chosen else None

    def _pick_folder(self, spec: Param) -> str | None:
        return self._pick(spec, "folder")

    def _suggestions(self, kind: str) -> list[str]:
        return self.doc.subgraph_names() if kind == "subgraphs" else []

    # ---- thumbnails ---------------------------------------------------------------------------

    def follow(self, session: RunSession) -> None:
        """Thumbnails follow this session's outputs (the scene's run session)."""
        self.unfollow()
        self.session = session
        self._unfollow = session.subscribe(self._on_run_event)

    def unfollow(self) -> None:
        if self._unfollow is not None:
            self._unfollow()
        self._unfollow = None
        self.session = None

    def _on_run_event(self, kind: str, payload: dict[str, Any]) -> None:
        if kind == "run_finished" and payload.get("summary") is not None:
            self.refresh_thumbnails()
        elif kind == "cleared":
            self.thumbs.forget()
            for body in self.bodies.values():
                body.set_thumbnail(None)

    def refresh_thumbnails(self) -> None:
        """Ask for each node's picture of its latest output (drawn off the GUI thread)."""
        if self.session is None:
            return
        edges_in: dict[str, list[Edge]] = {}
        for e in self.doc.graph.edges:
            edges_in.setdefault(e.dst, []).append(e)
        outputs = self.session.outputs
        self.thumbs.request(
            {n: shown_value(self.doc, outputs, n, edges_in.get(n, [])) for n in self.bodies}
        )

    def _thumbnail_ready(self, nid: str, image: QImage | None) -> None:
        body = self.bodies.get(nid)
        if body is not None:
            body.set_thumbnail(image)

    def set_node_thumbnail(self, nid: str, on: bool) -> None:
        """Show or hide one node's thumbnail; kept in its editor entry, like a seed's lock."""
        entry = self.doc.graph.ui.setdefault("nodes", {}).setdefault(nid, {})
        if on:
            entry.pop(THUMB_KEY, None)
        else:
            entry[THUMB_KEY] = False
        body = self.bodies.get(nid)
        if body is not None:
            body.set_thumb_on(on)

    def toggle_selected_thumbnails(self) -> None:
        """Flip the selected nodes' thumbnails (all shown if any was hidden)."""
        chosen = [self.bodies[n] for n in self.scene.selected_node_ids() if n in self.bodies]
        on = not all(b.thumb_on for b in chosen)
        for body in chosen:
            self.set_node_thumbnail(body.node.node_id, on)

    def set_all_thumbnails(self, on: bool) -> None:
        self.thumbnails_on = bool(on)
        for body in self.bodies.values():
            body.relayout()
