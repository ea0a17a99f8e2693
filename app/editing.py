"""Canvas edits of one window: the node palette, adding nodes, clipboard, frames, comments,
renaming, bypass/mute and auto layout, each one undoable command on the document's stack."""

from __future__ import annotations

from PySide6.QtCore import QObject, QPointF, Signal
from PySide6.QtWidgets import QApplication, QInputDialog, QWidget

from fathom.app.commands import AddNodes, Connect, Move, SetEntry, SetFlags, SetTitle
from fathom.app.document import Document
from fathom.app.editor.clipboard import paste_command, selection_text
from fathom.app.editor.layout import layered_layout
from fathom.app.editor.node_item import PortItem
from fathom.app.editor.palette import NodePalette
from fathom.app.editor.placement import clamp_into, out_from_under
from fathom.app.editor.scene import GraphScene
from fathom.app.editor.view import GraphView
from fathom.app.param_widgets import to_json_value
from fathom.engine.errors import GraphFileError
from fathom.engine.graph import Edge, NodeInstance
from fathom.engine.node import Node
from fathom.engine.subgraph import PREFIX
from fathom.engine.types import can_connect


class Editing(QObject):
    """What the Edit menu, the palette and canvas gestures do to the document."""

    #: A notice for the status bar: (text, milliseconds).
    notice = Signal(str, int)

    def __init__(
        self,
        doc: Document,
        scene: GraphScene,
        view: GraphView,
        palette: NodePalette,
        widget: QWidget,
    ) -> None:
        super().__init__(widget)
        self.doc = doc
        self.scene = scene
        self.view = view
        self.palette = palette
        #: Parent of the rename dialogs.
        self.widget = widget
        self._palette_at = QPointF()
        self._palette_wire: PortItem | None = None
        scene.wire_dropped.connect(self._wire_dropped)
        scene.frame_rename.connect(self.rename_frame)
        view.palette_requested.connect(self.open_palette)
        palette.chosen.connect(self._palette_chosen)

    # ---- adding nodes ------------------------------------------------------------------------

    def node_classes(self) -> list[type[Node]]:
        """Every registered type, then the graph's own subgraphs and the library folder's
        (offered like nodes; a library file that cannot be read is named in the status bar)."""
        scope = self.doc.scope()
        subs: list[type[Node]] = []
        for name in self.doc.subgraph_names():
            try:
                cls = scope.get(f"{PREFIX}{name}")
            except GraphFileError as exc:
                self.notice.emit(f"Subgraph library: {str(exc).splitlines()[0]}", 8000)
                continue
            if cls is not None:
                subs.append(cls)
        return [*self.doc.registry.types(), *subs]

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
        at, wire = self._palette_at, self._palette_wire
        self._palette_wire = None
        self.add_node(type_id, (at.x(), at.y()), wire, in_view=True)

    def add_node(
        self,
        type_id: str,
        pos: tuple[float, float],
        wire: PortItem | None = None,
        in_view: bool = False,
    ) -> str:
        """Add a node with its parameters' defaults written out (so a later change of a
        default never changes this graph's result); connect it to ``wire`` when given.
        ``in_view``: then move it (in the same undo step) wholly into the visible canvas."""
        cls = self.doc.scope().get(type_id)
        if cls is None:
            raise KeyError(f"unknown node type {type_id!r}")
        nid = self.doc.graph.new_id(type_id)
        params = {p.name: to_json_value(p.default) for p in cls.params}
        inst = NodeInstance(nid, type_id, params)
        ui = {nid: {"pos": [round(float(pos[0]), 2), round(float(pos[1]), 2)]}}
        stack = self.doc.undo_stack
        edge = _wire_edge(wire, nid, cls) if wire is not None else None
        if edge is not None or in_view:
            stack.beginMacro(f"Add {cls.title}" + (" and connect" if edge is not None else ""))
        stack.push(AddNodes(self.doc, [inst], [], ui))
        if edge is not None:
            dst_cls = self.doc.node_class(edge.dst)
            inp = dst_cls.input(edge.dst_port) if dst_cls is not None else None
            stack.push(Connect(self.doc, edge, multi=bool(inp and inp.multi)))
        if in_view:
            self._place_in_view(nid, QPointF(*pos), edge)
        if edge is not None or in_view:
            stack.endMacro()
        self.scene.select_nodes([nid])
        return nid

    def _place_in_view(self, nid: str, at: QPointF, edge: Edge | None) -> None:
        """Move a new node so the port its wire joins sits where the wire was dropped, then
        so the whole node is on screen (a node dropped near the view's edge used to hang off
        it). The node's real size is known only once its item exists, hence a move."""
        item = self.scene.nodes[nid]
        target = item.pos()
        if edge is not None:
            ports, name = (
                (item.inputs, edge.dst_port) if edge.dst == nid else (item.outputs, edge.src_port)
            )
            port = ports.get(name)
            if port is not None:
                target = at - port.pos()
        rect = item.sceneBoundingRect().translated(target - item.pos())
        target += clamp_into(rect, self.view.visible_rect())
        minimap = self.view.minimap
        if minimap.isVisible():  # a node under the minimap would be added out of sight
            corner = minimap.geometry().translated(-self.view.viewport().pos())
            cover = self.view.mapToScene(corner).boundingRect()
            rect = item.sceneBoundingRect().translated(target - item.pos())
            target += out_from_under(rect, cover, self.view.visible_rect(), 10.0)
        old, new = self.doc.node_pos(nid), (round(target.x(), 2), round(target.y(), 2))
        if old is not None and old != new:
            self.doc.undo_stack.push(Move(self.doc, {nid: (old, new)}, text="Place node"))

    # ---- selection and clipboard -------------------------------------------------------------

    def select_all(self) -> None:
        for item in self.scene.items():
            if item.flags() & item.GraphicsItemFlag.ItemIsSelectable:
                item.setSelected(True)

    def copy(self) -> None:
        ids = self.scene.selected_node_ids()
        if ids:
            QApplication.clipboard().setText(selection_text(self.doc, ids))
            self.notice.emit(f"Copied {len(ids)} node(s)", 3000)

    def paste(self, text: str | None = None) -> list[str]:
        text = QApplication.clipboard().text() if text is None else text
        try:
            cmd = paste_command(self.doc, text, at=_tuple(self.view.cursor_scene_pos()))
        except GraphFileError:
            self.notice.emit("The clipboard holds no Fathom graph", 4000)
            return []
        self.doc.undo_stack.push(cmd)
        ids = [n.id for n in cmd.nodes]
        self.scene.select_nodes(ids)
        return ids

    def duplicate(self) -> list[str]:
        ids = self.scene.selected_node_ids()
        if not ids:
            return []
        # Below the originals and clear of every node: a copy a few pixels off hid both.
        offset = self.scene.copy_offset(ids)
        cmd = paste_command(self.doc, selection_text(self.doc, ids), offset=offset)
        cmd.setText(f"Duplicate {len(ids)} node(s)")
        self.doc.undo_stack.push(cmd)
        new = [n.id for n in cmd.nodes]
        self.scene.select_nodes(new)
        self.view.show_rect(self.scene.nodes_rect(new))
        return new

    def focus_node(self, node_id: str) -> None:
        """Select and centre a node (inner subgraph ids select their outer node)."""
        node_id = node_id.split("/")[0]
        if node_id in self.scene.nodes:
            self.scene.select_nodes([node_id])
            self.view.centerOn(self.scene.nodes[node_id])

    # ---- frames, comments, titles, flags, layout ---------------------------------------------

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
                self.widget, "Rename node", "Title", text=self.doc.title(ids[0])
            )
            if ok:
                self.doc.undo_stack.push(SetTitle(self.doc, ids[0], text.strip()))
        elif frames:
            self.rename_frame(frames[0])

    def rename_frame(self, group_id: str) -> None:
        old = self.doc.entry("groups", group_id)
        if old is None:
            return
        text, ok = QInputDialog.getText(
            self.widget, "Rename frame", "Title", text=old.get("title", "")
        )
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
        heights = {n: self.scene.layout_height(n) for n in ids}
        layout = layered_layout(sub, heights, origin)
        moves = {
            n: (self.doc.node_pos(n), p) for n, p in layout.items() if self.doc.node_pos(n) != p
        }
        if moves:
            self.doc.undo_stack.push(Move(self.doc, moves, text="Auto layout"))


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
