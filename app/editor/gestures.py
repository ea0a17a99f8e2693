"""Mouse gestures on the graph scene: dragging a wire from a port, and moving items (a frame
carries what sits inside it), each ending in one undoable command.

They hold only the state of a gesture in progress; the scene feeds them its mouse events and
keeps mirroring the document, which is where every change shows up.
"""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QPointF
from PySide6.QtWidgets import QGraphicsItem

from fathom.app.commands import Move, RemoveItems
from fathom.app.document import ENTRY_KINDS
from fathom.app.editor.frame_item import FrameItem
from fathom.app.editor.node_item import PortItem
from fathom.app.editor.wire_item import DragWire
from fathom.engine.graph import Edge

if TYPE_CHECKING:
    from fathom.app.editor.scene import GraphScene


class WireDrag:
    """A wire dragged from a port: highlights where it may land, then connects, refuses (with
    a hint), disconnects, or asks the scene to offer the palette. Grabbing a connected input
    picks up its wire instead of starting a new one."""

    def __init__(self, scene: GraphScene) -> None:
        self.scene = scene
        self.wire: DragWire | None = None
        self.start: PortItem | None = None
        self.detached: Edge | None = None
        self.hover: PortItem | None = None

    @property
    def active(self) -> bool:
        return self.wire is not None

    def begin(self, port: PortItem) -> None:
        scene = self.scene
        self.detached = None
        if not port.is_output:
            edge = next(
                (
                    e
                    for e in scene.doc.graph.edges
                    if e.dst == port.node_id and e.dst_port == port.name
                ),
                None,
            )
            if edge is not None and not port.multi:
                self.detached = edge
                scene.edges[edge].hide()
                port = scene.nodes[edge.src].outputs[edge.src_port]
        self.start = port
        self.wire = DragWire(port)
        scene.addItem(self.wire)

    def move(self, pos: QPointF) -> None:
        if self.wire is None:
            return
        scene = self.scene
        self.wire.update_end(pos)
        target = scene.port_at(pos)
        if self.hover is not None and self.hover is not target:
            self.hover.set_highlight(None)
            self.hover = None
        if target is not None and target is not self.start:
            why = scene.wire_problem(self.start, target)
            target.set_highlight("bad" if why else "ok")
            self.hover = target
            if why:
                scene.show_hint(why, pos)
            else:
                scene.hint_item.hide()

    def _finish(self) -> tuple[PortItem | None, Edge | None]:
        """Remove the live wire and highlights; returns (start port, detached edge)."""
        start, detached = self.start, self.detached
        if self.wire is not None:
            self.scene.removeItem(self.wire)
        self.wire = None
        self.start = None
        self.detached = None
        if self.hover is not None:
            self.hover.set_highlight(None)
            self.hover = None
        if detached is not None and detached in self.scene.edges:
            self.scene.edges[detached].show()
        return start, detached

    def end(self, pos: QPointF) -> str | None:
        """Finish at ``pos``: connect, refuse (returns why), or offer the palette."""
        if self.wire is None or self.start is None:
            return None
        scene, stack = self.scene, self.scene.doc.undo_stack
        start, detached = self._finish()
        assert start is not None
        target = scene.port_at(pos)
        if target is None:
            if detached is not None:
                stack.push(RemoveItems(scene.doc, edges=[detached], text="Disconnect"))
            else:
                scene.wire_dropped.emit(start, pos)
            return None
        if target is start or (
            detached is not None
            and target.node_id == detached.dst
            and target.name == detached.dst_port
        ):
            return None
        why = scene.wire_problem(start, target)
        if why:
            scene.show_hint(why, pos)
            scene.hint.emit(why)
            return why
        if detached is not None:
            stack.beginMacro("Move wire")
            stack.push(RemoveItems(scene.doc, edges=[detached]))
        scene.connect_ports(start, target)
        if detached is not None:
            stack.endMacro()
        return None


class MoveDrag:
    """Items moved with the mouse become one undoable Move when the button is released; a
    dragged frame carries the nodes, comments and reroutes inside it."""

    def __init__(self, scene: GraphScene) -> None:
        self.scene = scene
        self.before: dict[tuple[str, str], Any] | None = None
        self.carried: list[QGraphicsItem] = []

    def pressed(self, grabbed: QGraphicsItem | None) -> None:
        scene = self.scene
        self.before = self.positions()
        self.carried = []
        if isinstance(grabbed, FrameItem) and not grabbed.resizing:
            area = grabbed.scene_rect()
            self.carried = [
                i
                for i in [*scene.nodes.values(), *scene.comments.values(), *scene.reroutes.values()]
                if area.contains(i.sceneBoundingRect().center()) and not i.isSelected()
            ]

    def carry(self, delta: QPointF) -> None:
        for item in self.carried:
            item.moveBy(delta.x(), delta.y())

    def released(self) -> None:
        if self.before is not None:
            self.commit(self.before)
        self.before = None
        self.carried = []

    def positions(self) -> dict[tuple[str, str], Any]:
        scene = self.scene
        out: dict[tuple[str, str], Any] = {}
        for nid, item in scene.nodes.items():
            out[("nodes", nid)] = (item.pos().x(), item.pos().y())
        for kind in ENTRY_KINDS:
            for ident, item in getattr(scene, kind).items():
                out[(kind, ident)] = (item.pos().x(), item.pos().y())
        return out

    def commit(self, before: dict[tuple[str, str], Any]) -> None:
        """Turn what the mouse moved into one undoable Move."""
        doc = self.scene.doc
        after = self.positions()
        nodes: dict[str, Any] = {}
        entries = []
        for key, old in before.items():
            new = after.get(key)
            if new is None or (abs(new[0] - old[0]) < 0.01 and abs(new[1] - old[1]) < 0.01):
                continue
            kind, ident = key
            if kind == "nodes":
                nodes[ident] = (old, new)
                continue
            entry = doc.entry(kind, ident)
            if entry is None:
                continue
            moved = copy.deepcopy(entry)
            if kind == "groups":
                moved["rect"] = [round(new[0], 2), round(new[1], 2), *entry["rect"][2:]]
            else:
                moved["pos"] = [round(new[0], 2), round(new[1], 2)]
            entries.append((kind, entry, moved))
        if nodes or entries:
            doc.undo_stack.push(Move(doc, nodes, entries))
