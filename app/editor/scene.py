"""The graph scene: node, wire, reroute, frame and comment items mirroring one Document.

The scene never edits the graph directly: user gestures (``editor.gestures``) become commands on
the document's undo stack, the model changes, and the model's events update the items. So undo,
redo, file loads and scripted edits all redraw through the same path. Run badges likewise follow
the window's run session (``app.session``), never the runner itself.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QPoint, QPointF, QRectF, Qt, QTimer, Signal
from PySide6.QtGui import QColor, QTransform
from PySide6.QtWidgets import (
    QGraphicsScene,
    QGraphicsSceneContextMenuEvent,
    QGraphicsSceneMouseEvent,
    QGraphicsSimpleTextItem,
)

from fathom.app.commands import Connect, RemoveItems, SetEntry
from fathom.app.document import ENTRY_KINDS, Document
from fathom.app.editor.comment_item import CommentItem
from fathom.app.editor.frame_item import TITLE_H, FrameItem
from fathom.app.editor.gestures import MoveDrag, WireDrag
from fathom.app.editor.layout import layered_layout
from fathom.app.editor.node_bodies import NodeBodies
from fathom.app.editor.node_body import PAD as THUMB_PAD
from fathom.app.editor.node_body import THUMB_H
from fathom.app.editor.node_item import NodeItem, PortItem, port_color
from fathom.app.editor.placement import free_offset
from fathom.app.editor.reroute_item import RerouteItem
from fathom.app.editor.thumbnail import DRAWN
from fathom.app.editor.wire_item import EdgeItem
from fathom.app.editor.wiring import connection_problem
from fathom.app.session import RunSession
from fathom.engine.graph import Edge
from fathom.engine.subgraph import is_subgraph_type
from fathom.engine.types import ALL_TYPES


class GraphScene(QGraphicsScene):
    """Items for one document; emits what the window must react to."""

    #: A wire was dropped on empty canvas: (port it started from, scene position).
    wire_dropped = Signal(object, QPointF)
    #: An automatic layout was redone for the nodes' new sizes (the view may fit again).
    relaid_out = Signal()
    #: A refused wire or another hint for the user (also drawn beside the cursor).
    hint = Signal(str)
    #: The user double-clicked a frame's title: rename that frame (its id).
    frame_rename = Signal(str)
    #: The user double-clicked a subgraph node: show its inside (the node's id).
    open_subgraph = Signal(str)
    #: The user right-clicked a node: offer its menu (node id, screen position).
    node_menu = Signal(str, QPoint)

    def __init__(self, doc: Document) -> None:
        super().__init__()
        self.doc = doc
        self.setBackgroundBrush(QColor("#1e1f22"))
        self.setItemIndexMethod(QGraphicsScene.ItemIndexMethod.BspTreeIndex)
        self.nodes: dict[str, NodeItem] = {}
        self.edges: dict[Edge, EdgeItem] = {}
        self.groups: dict[str, FrameItem] = {}
        self.comments: dict[str, CommentItem] = {}
        self.reroutes: dict[str, RerouteItem] = {}
        self._unsubscribe: Any = None
        self._unfollow: Callable[[], None] | None = None
        self._session: RunSession | None = None
        self.wires = WireDrag(self)
        self.moves = MoveDrag(self)
        #: Set by the view while it pans or zooms: wires skip antialiasing until it settles.
        self.fast_wires = False
        #: Nodes laid out automatically and where (see ``place_unpositioned``).
        self._auto_layout: dict[str, tuple[float, float] | None] = {}
        self._relayout_timer = QTimer(self)
        self._relayout_timer.setSingleShot(True)
        self._relayout_timer.setInterval(0)
        self._relayout_timer.timeout.connect(self._relayout)
        #: On-node parameters and thumbnails (``app.editor.node_bodies``).
        self.bodies = NodeBodies(self)
        self.hint_item = QGraphicsSimpleTextItem()
        self.hint_item.setBrush(QColor("#ff8a80"))
        self.hint_item.setZValue(100)
        self.hint_item.hide()
        self.addItem(self.hint_item)
        self._hint_timer = QTimer(self)
        self._hint_timer.setSingleShot(True)
        self._hint_timer.timeout.connect(self.hint_item.hide)
        doc.reset.connect(self.rebuild)
        doc.level_changed.connect(self.rebuild)  # into or out of a subgraph
        doc.level_changed.connect(self._show_session)
        doc.ui_changed.connect(self._on_ui_changed)
        self.rebuild()

    # ---- building ------------------------------------------------------------------------

    def rebuild(self) -> None:
        """Drop every item and mirror the document again (new, open, restore)."""
        if self._unsubscribe is not None:
            self._unsubscribe()
        for item in [
            *self.nodes.values(),
            *self.edges.values(),
            *self.groups.values(),
            *self.comments.values(),
            *self.reroutes.values(),
        ]:
            self.removeItem(item)
        self.bodies.clear()
        self.nodes.clear()
        self.edges.clear()
        self.groups.clear()
        self.comments.clear()
        self.reroutes.clear()
        missing = [n for n in self.doc.graph.nodes if self.doc.node_pos(n) is None]
        for nid in self.doc.graph.nodes:
            self._add_node_item(nid)
        self.place_unpositioned(missing)
        for e in self.doc.graph.edges:
            self._add_edge_item(e)
        for kind in ENTRY_KINDS:
            for entry in self.doc.entries(kind):
                self._sync_entry(kind, entry["id"])
        self._unsubscribe = self.doc.graph.subscribe(self._on_graph_event)

    def place_unpositioned(self, missing: list[str]) -> None:
        """Files made by hand or by scripts may carry no positions: lay those nodes out, once
        their items exist, so each gets the room its item really takes (on-node parameters
        included). When no node had a position (the bundled examples), or every position is
        where such a layout put it (an example saved under a new name, no node moved), the
        layout stays automatic: it follows the nodes' sizes (``node_resized``) until the user
        moves one. Positions the user chose never move by themselves."""
        self._auto_layout = {}
        if not missing:
            if self._saved_layout_is_automatic():
                self._auto_layout = {n: self.doc.node_pos(n) for n in self.nodes}
                self._relayout()  # for today's sizes (the file's had thumbnails, or none)
            return
        heights = {n: item.height for n, item in self.nodes.items()}
        layout = layered_layout(self.doc.graph, heights)
        for n in missing:
            self.doc.set_node_pos(n, layout[n], notify=False)
            self.nodes[n].setPos(*layout[n])
        if len(missing) == len(self.nodes):
            self._auto_layout = {n: self.doc.node_pos(n) for n in missing}

    def _saved_layout_is_automatic(self) -> bool:
        """Whether every node sits exactly where the automatic layout put it, for the nodes'
        sizes without thumbnails or with one on each node that can show one (saved after a
        run), and the user added no frame or comment: nobody arranged this canvas."""
        if not self.nodes or any(self.doc.entries(kind) for kind in ENTRY_KINDS):
            return False
        saved = {n: self.doc.node_pos(n) for n in self.nodes}
        bare = {n: item.height for n, item in self.nodes.items()}
        with_thumbnails = {n: self.layout_height(n) for n in self.nodes}
        for heights in (bare, with_thumbnails):
            layout = layered_layout(self.doc.graph, heights)
            if all(
                pos is not None and abs(pos[0] - layout[n][0]) + abs(pos[1] - layout[n][1]) < 0.02
                for n, pos in saved.items()
            ):
                return True
        return False

    def node_resized(self, nid: str) -> None:
        """A node grew or shrank (a run gave it a thumbnail): an automatic layout is redone,
        soon and once for many nodes, so nodes never end up on top of each other."""
        if self._auto_layout and not self._relayout_timer.isActive():
            self._relayout_timer.start()

    def _relayout(self) -> None:
        placed = self._auto_layout
        if set(placed) != set(self.doc.graph.nodes) or any(
            self.doc.node_pos(n) != pos for n, pos in placed.items()
        ):
            self._auto_layout = {}  # the user has arranged the nodes: the layout is theirs
            return
        heights = {n: item.height for n, item in self.nodes.items()}
        for n, pos in layered_layout(self.doc.graph, heights).items():
            self.doc.set_node_pos(n, pos, notify=False)
            self.nodes[n].setPos(*pos)
            placed[n] = self.doc.node_pos(n)
        self.relaid_out.emit()

    def layout_height(self, nid: str) -> float:
        """A node's height with room for the thumbnail a run will give it (``node_body``):
        laid out at today's height, nodes piled onto each other after the first run."""
        item = self.nodes[nid]
        body = self.bodies.bodies.get(nid)
        if body is None or not (self.bodies.thumbnails_on and body.thumb_on):
            return item.height
        if body.thumb_state() != "none":
            return item.height  # the thumbnail is there already
        drawn = any(
            issubclass(ALL_TYPES.get(port.type_id, type(None)), DRAWN) for port in item.ports()
        )
        return item.height + (THUMB_H + THUMB_PAD if drawn else 0.0)

    def _add_node_item(self, nid: str) -> NodeItem:
        inst = self.doc.graph.nodes[nid]
        cls = self.doc.node_class(nid)
        registry = self.doc.registry  # colours are node metadata: plugins colour their own
        if cls is not None:
            item = NodeItem(
                nid,
                self.doc.title(nid),
                inst.type,
                registry.node_color(cls),
                list(cls.inputs),
                list(cls.outputs),
            )
        else:
            title = inst.title or inst.type
            unknown = registry.category_color("unknown")
            item = NodeItem(nid, title, inst.type, unknown, [], [], False)
            item.set_status("failed", message=f"unknown node type '{inst.type}'")
        item.set_flags(inst.bypass, inst.mute)
        pos = self.doc.node_pos(nid)
        if pos is None:
            pos = (0.0, 0.0)
            self.doc.set_node_pos(nid, pos, notify=False)
        item.setPos(*pos)
        self.addItem(item)
        self.nodes[nid] = item
        self.bodies.attach(item, cls)
        return item

    def _port(self, nid: str, port: str, is_output: bool) -> PortItem:
        item = self.nodes[nid]
        ports = item.outputs if is_output else item.inputs
        if port not in ports:
            item.add_port(port, "any", is_output)  # unknown type, or a port it lacks
        return ports[port]

    def _add_edge_item(self, e: Edge) -> None:
        if e.src not in self.nodes or e.dst not in self.nodes or e in self.edges:
            return
        item = EdgeItem(
            e, self._port(e.src, e.src_port, True), self._port(e.dst, e.dst_port, False)
        )
        self.addItem(item)
        self.edges[e] = item
        item.src.node.edges.add(item)
        item.dst.node.edges.add(item)
        self._refresh_edge_points(e)

    def _remove_edge_item(self, e: Edge) -> None:
        item = self.edges.pop(e, None)
        if item is not None:
            item.src.node.edges.discard(item)
            item.dst.node.edges.discard(item)
            self.removeItem(item)

    def _refresh_edge_points(self, e: Edge) -> None:
        item = self.edges.get(e)
        if item is None:
            return
        key = [e.src, e.src_port, e.dst, e.dst_port]
        pts = [QPointF(*r["pos"]) for r in self.doc.entries("reroutes") if r.get("edge") == key]
        item.set_points(pts)

    # ---- model events --------------------------------------------------------------------------

    def _on_graph_event(self, event: str, payload: dict[str, Any]) -> None:
        self.bodies.on_graph_event(event, payload)
        if event == "node_added":
            self._add_node_item(payload["node"])
        elif event == "node_removed":
            item = self.nodes.pop(payload["node"], None)
            if item is not None:
                self.removeItem(item)
        elif event == "edge_added":
            self._add_edge_item(payload["edge"])
        elif event == "edge_removed":
            self._remove_edge_item(payload["edge"])
        elif event == "flags_changed":
            inst = self.doc.graph.nodes[payload["node"]]
            self.nodes[payload["node"]].set_flags(inst.bypass, inst.mute)

    def _on_ui_changed(self, kind: str, ident: str) -> None:
        if kind == "nodes" and ident in self.nodes:
            pos = self.doc.node_pos(ident)
            if pos is not None and (self.nodes[ident].pos() - QPointF(*pos)).manhattanLength():
                self.nodes[ident].setPos(*pos)
        elif kind == "title" and ident in self.nodes:
            self.nodes[ident].set_title(self.doc.title(ident))
        elif kind in ENTRY_KINDS:
            self._sync_entry(kind, ident)

    def _sync_entry(self, kind: str, ident: str) -> None:
        entry = self.doc.entry(kind, ident)
        items: dict[str, Any] = getattr(self, kind)
        item = items.get(ident)
        if entry is None:
            if item is not None:
                self.removeItem(items.pop(ident))
        elif kind == "groups":
            if item is None:
                item = items[ident] = FrameItem(entry)
                item.on_resized = self._frame_resized
                self.addItem(item)
            item.apply(entry)
        elif kind == "comments":
            if item is None:
                item = items[ident] = CommentItem(entry)
                item.on_edited = self._comment_edited
                self.addItem(item)
            item.apply(entry)
        elif kind == "reroutes":
            edge = Edge(*entry["edge"])
            if item is None:
                color = (
                    port_color(self.edges[edge].src.type_id)
                    if edge in self.edges
                    else QColor("#9e9e9e")
                )
                item = items[ident] = RerouteItem(ident, color)
                self.addItem(item)
            item.on_moved = None
            item.setPos(*entry["pos"])
            item.on_moved = lambda item=item, edge=edge: self._reroute_dragged(item, edge)
        if kind == "reroutes":
            for e in list(self.edges):
                self._refresh_edge_points(e)

    def _reroute_dragged(self, item: RerouteItem, edge: Edge) -> None:
        wire = self.edges.get(edge)
        if wire is None:
            return
        key = [edge.src, edge.src_port, edge.dst, edge.dst_port]
        pts = []
        for r in self.doc.entries("reroutes"):
            if r.get("edge") == key:
                ri = self.reroutes.get(r["id"])
                pts.append(ri.pos() if ri is not None else QPointF(*r["pos"]))
        wire.set_points(pts)

    # ---- run status ---------------------------------------------------------------------------

    def follow(self, session: RunSession) -> None:
        """Node badges show a run session's per-node status, until ``unfollow``."""
        self.unfollow()
        self._unfollow = session.subscribe(self._on_run_event)
        self._session = session
        self.bodies.follow(session)

    def unfollow(self) -> None:
        if self._unfollow is not None:
            self._unfollow()
            self._unfollow = None
        self._session = None
        self.bodies.unfollow()

    def _on_run_event(self, kind: str, payload: dict[str, Any]) -> None:
        if kind == "node_status":
            self.set_status(
                payload["node"], payload["status"], payload["progress"], payload["message"]
            )
        elif kind in ("run_started", "cleared"):
            self.reset_status()

    def set_status(
        self, nid: str, status: str, progress: float | None = None, message: str = ""
    ) -> None:
        # A run names inner subgraph nodes "outer/inner": show each on the node of the level
        # shown that holds it (the instance at the top, the inner node inside).
        prefix = "".join(f"{inst}/" for inst, _ in self.doc.trail)
        if not nid.startswith(prefix):
            return
        item = self.nodes.get(nid[len(prefix) :].split("/")[0])
        if item is not None and item.known:
            item.set_status(status, progress, message)

    def _show_session(self) -> None:
        """Fresh items (another level shown) take the followed session's badges."""
        session = self._session
        for nid, state in (session.nodes if session is not None else {}).items():
            self.set_status(nid, state.status, state.progress, state.message)

    def reset_status(self) -> None:
        for item in self.nodes.values():
            if item.known:
                item.set_status("idle")

    # ---- selection -----------------------------------------------------------------------------

    def selected_node_ids(self) -> list[str]:
        return [i.node_id for i in self.selectedItems() if isinstance(i, NodeItem)]

    def selected_edges(self) -> list[Edge]:
        return [i.edge for i in self.selectedItems() if isinstance(i, EdgeItem)]

    def selected_entries(self) -> list[tuple[str, str]]:
        out = []
        for i in self.selectedItems():
            if isinstance(i, FrameItem):
                out.append(("groups", i.entry_id))
            elif isinstance(i, CommentItem):
                out.append(("comments", i.entry_id))
            elif isinstance(i, RerouteItem):
                out.append(("reroutes", i.entry_id))
        return out

    def select_nodes(self, node_ids: list[str]) -> None:
        self.clearSelection()
        for n in node_ids:
            if n in self.nodes:
                self.nodes[n].setSelected(True)

    def nodes_rect(self, node_ids: list[str]) -> QRectF:
        """The scene rectangle the given nodes cover (ports included)."""
        rect = QRectF()
        for n in node_ids:
            if n in self.nodes:
                rect = rect.united(self.nodes[n].sceneBoundingRect())
        return rect

    def copy_offset(self, node_ids: list[str]) -> tuple[float, float]:
        """How far Ctrl+D moves copies of these nodes: below them, clear of every node."""
        others = [item.sceneBoundingRect() for item in self.nodes.values()]
        off = free_offset(self.nodes_rect(node_ids), others)
        return (off.x(), off.y())

    def delete_selection(self) -> bool:
        nodes, edges, entries = (
            self.selected_node_ids(),
            self.selected_edges(),
            self.selected_entries(),
        )
        if not (nodes or edges or entries):
            return False
        self.doc.undo_stack.push(RemoveItems(self.doc, nodes, edges, entries))
        return True

    # ---- wires ---------------------------------------------------------------------------------

    def port_at(self, pos: QPointF) -> PortItem | None:
        for item in self.items(pos, deviceTransform=QTransform()):
            if isinstance(item, PortItem):
                return item
        return None

    def wire_problem(self, a: PortItem | None, b: PortItem) -> str | None:
        if a is None:
            return "no wire is being dragged"
        if a.is_output == b.is_output:
            return "connect an output to an input"
        out, inp = (a, b) if a.is_output else (b, a)
        return connection_problem(self.doc, out.node_id, out.name, inp.node_id, inp.name)

    def connect_ports(self, a: PortItem, b: PortItem) -> str | None:
        """Connect two ports (either order) through the undo stack; returns why not, if not."""
        why = self.wire_problem(a, b)
        if why:
            self.hint.emit(why)
            return why
        out, inp = (a, b) if a.is_output else (b, a)
        edge = Edge(out.node_id, out.name, inp.node_id, inp.name)
        if edge not in self.doc.graph.edges:
            self.doc.undo_stack.push(Connect(self.doc, edge, multi=inp.multi))
        return None

    def show_hint(self, text: str, pos: QPointF) -> None:
        self.hint_item.setText(text)
        self.hint_item.setPos(pos + QPointF(14, 10))
        self.hint_item.show()
        self._hint_timer.start(3000)

    # ---- reroutes, frames, comments ------------------------------------------------------------

    def add_reroute(self, edge: Edge, pos: QPointF) -> str:
        """A reroute on ``edge`` at ``pos``, inserted where it keeps the wire shortest."""
        key = [edge.src, edge.src_port, edge.dst, edge.dst_port]
        same = [r for r in self.doc.entries("reroutes") if r.get("edge") == key]
        src = self.nodes[edge.src].outputs[edge.src_port].scene_center()
        dst = self.nodes[edge.dst].inputs[edge.dst_port].scene_center()
        pts = [QPointF(*r["pos"]) for r in same]

        def length(seq: list[QPointF]) -> float:
            stops = [src, *seq, dst]
            return sum((b - a).manhattanLength() for a, b in itertools.pairwise(stops))

        best = min(range(len(pts) + 1), key=lambda i: length(pts[:i] + [pos] + pts[i:]))
        entry = {
            "id": self.doc.new_entry_id("reroutes"),
            "pos": [round(pos.x(), 2), round(pos.y(), 2)],
            "edge": key,
        }
        cmd = SetEntry(self.doc, "reroutes", None, entry, "Add reroute")
        if best < len(same):
            cmd.index = self.doc.entry_index("reroutes", same[best]["id"])
        self.doc.undo_stack.push(cmd)
        return entry["id"]

    def add_frame(
        self, title: str = "Frame", around: list[str] | None = None, at: QPointF | None = None
    ) -> str:
        """A frame around the given nodes (or a default-sized one at ``at``)."""
        rect = [0.0, 0.0, 360.0, 240.0]
        if around:
            boxes = [self.nodes[n].sceneBoundingRect() for n in around if n in self.nodes]
            left = min(b.left() for b in boxes) - 30
            top = min(b.top() for b in boxes) - 50
            rect = [
                left,
                top,
                max(b.right() for b in boxes) + 30 - left,
                max(b.bottom() for b in boxes) + 30 - top,
            ]
        elif at is not None:
            rect[:2] = [at.x(), at.y()]
        entry = {
            "id": self.doc.new_entry_id("groups"),
            "title": title,
            "rect": [round(v, 2) for v in rect],
        }
        self.doc.undo_stack.push(SetEntry(self.doc, "groups", None, entry))
        return entry["id"]

    def add_comment(self, text: str, at: QPointF) -> str:
        entry = {
            "id": self.doc.new_entry_id("comments"),
            "text": text,
            "pos": [round(at.x(), 2), round(at.y(), 2)],
        }
        self.doc.undo_stack.push(SetEntry(self.doc, "comments", None, entry))
        return entry["id"]

    def _frame_resized(self, item: FrameItem, old_size: tuple[float, float]) -> None:
        old = self.doc.entry("groups", item.entry_id)
        if old is None:
            return
        new = dict(old, rect=item.rect_list())
        if new != old:
            self.doc.undo_stack.push(SetEntry(self.doc, "groups", old, new, "Resize frame"))

    def _comment_edited(self, item: CommentItem, text: str) -> None:
        old = self.doc.entry("comments", item.entry_id)
        if old is not None and old.get("text") != text:
            self.doc.undo_stack.push(SetEntry(self.doc, "comments", old, dict(old, text=text)))

    # ---- mouse: wires, moves, reroutes -----------------------------------------------------------

    def mousePressEvent(self, event: QGraphicsSceneMouseEvent) -> None:  # noqa: N802
        if event.button() == Qt.MouseButton.LeftButton:
            port = self.port_at(event.scenePos())
            if port is not None:
                self.wires.begin(port)
                event.accept()
                return
        super().mousePressEvent(event)
        if event.button() == Qt.MouseButton.LeftButton:
            self.moves.pressed(self.mouseGrabberItem())

    def mouseMoveEvent(self, event: QGraphicsSceneMouseEvent) -> None:  # noqa: N802
        if self.wires.active:
            self.wires.move(event.scenePos())
            return
        grabbed = self.mouseGrabberItem()
        before = grabbed.pos() if isinstance(grabbed, FrameItem) else None
        super().mouseMoveEvent(event)
        if before is not None:
            self.moves.carry(grabbed.pos() - before)

    def mouseReleaseEvent(self, event: QGraphicsSceneMouseEvent) -> None:  # noqa: N802
        if self.wires.active:
            self.wires.end(event.scenePos())
            return
        super().mouseReleaseEvent(event)
        self.moves.released()

    def contextMenuEvent(self, event: QGraphicsSceneContextMenuEvent) -> None:  # noqa: N802
        super().contextMenuEvent(event)  # a field on a node keeps its own menu
        if event.isAccepted():
            return
        under = self.items(event.scenePos(), deviceTransform=QTransform())
        node = next((i for i in under if isinstance(i, NodeItem)), None)
        if node is None:
            return
        if not node.isSelected():
            self.select_nodes([node.node_id])
        self.node_menu.emit(node.node_id, event.screenPos())
        event.accept()

    def mouseDoubleClickEvent(self, event: QGraphicsSceneMouseEvent) -> None:  # noqa: N802
        for item in self.items(event.scenePos(), deviceTransform=QTransform()):
            if isinstance(item, EdgeItem):
                self.add_reroute(item.edge, event.scenePos())
                event.accept()
                return
            if isinstance(item, FrameItem) and item.mapFromScene(event.scenePos()).y() < TITLE_H:
                self.frame_rename.emit(item.entry_id)
                event.accept()
                return
            if isinstance(item, NodeItem) and is_subgraph_type(
                self.doc.graph.nodes[item.node_id].type
            ):
                self.open_subgraph.emit(item.node_id)
                event.accept()
                return
        super().mouseDoubleClickEvent(event)
