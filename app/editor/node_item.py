"""A node on the canvas: header, typed coloured ports, status badge and progress bar.

Painted by hand (no child widgets) and simplified when zoomed out, so 500 nodes pan smoothly.
Header colours are node metadata (``Registry.category_color``), given by the scene.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QPointF, QRectF, Qt
from PySide6.QtGui import QBrush, QColor, QFont, QFontMetricsF, QPainter, QPainterPath, QPen
from PySide6.QtWidgets import QGraphicsItem, QStyleOptionGraphicsItem, QWidget

from fathom.engine.types import ALL_TYPES

if TYPE_CHECKING:
    from fathom.app.editor.wire_item import EdgeItem

NODE_W = 190.0
HEADER_H = 26.0
ROW_H = 20.0
FOOT_H = 12.0
PORT_R = 6.0

#: Badge colour per status; the executor's statuses plus the GUI's idle/queued/running.
STATUS_COLORS = {
    "idle": "#5f6368",
    "queued": "#42a5f5",
    "running": "#ffa726",
    "cached": "#26a69a",
    "done": "#66bb6a",
    "failed": "#ef5350",
    "skipped": "#9e9e9e",
    "cancelled": "#9e9e9e",
    "bypassed": "#ab47bc",
    "muted": "#757575",
}


def port_color(type_id: str) -> QColor:
    t = ALL_TYPES.get(type_id)
    return QColor(t.color if t is not None else "#9e9e9e")


class PortItem(QGraphicsItem):
    """One input or output; wires attach to its centre. ``highlight`` shows drag feedback."""

    def __init__(
        self,
        node: NodeItem,
        name: str,
        type_id: str,
        is_output: bool,
        multi: bool = False,
        optional: bool = False,
        doc: str = "",
    ) -> None:
        super().__init__(node)
        self.node = node
        self.name = name
        self.type_id = type_id
        self.is_output = is_output
        self.multi = multi
        self.optional = optional
        self.highlight: str | None = None  # None, "ok" or "bad"
        self._label: str | None = None
        self.color = port_color(type_id)
        extra = " · optional" if optional else ""
        extra += " · takes many wires" if multi else ""
        self.setToolTip(f"{name}: {type_id}{extra}" + (f"\n{doc}" if doc else ""))
        self.setAcceptHoverEvents(True)
        self.setCursor(Qt.CursorShape.CrossCursor)
        self.setFlag(QGraphicsItem.GraphicsItemFlag.ItemHasNoContents)

    @property
    def node_id(self) -> str:
        return self.node.node_id

    def boundingRect(self) -> QRectF:  # noqa: N802 - Qt's name
        r = PORT_R + 4
        return QRectF(-r, -r, 2 * r, 2 * r)

    def scene_center(self) -> QPointF:
        return self.scenePos()

    def label(self, width: float) -> str:
        """The name elided to ``width``, computed once."""
        if self._label is None:
            self._label = _style().port_metrics.elidedText(
                self.name, Qt.TextElideMode.ElideRight, width
            )
        return self._label

    def set_highlight(self, state: str | None) -> None:
        self.highlight = state
        self.node.update()

    def paint(
        self, painter: QPainter, option: QStyleOptionGraphicsItem, widget: QWidget | None = None
    ) -> None:
        """Ports have no contents of their own: the node paints them (see paint_port), which
        halves the paint calls on a big canvas."""

    def paint_port(self, painter: QPainter) -> None:
        r = PORT_R
        if self.highlight == "ok":
            painter.setPen(QPen(QColor("#c5e1a5"), 2.5))
            r += 2
        elif self.highlight == "bad":
            painter.setPen(QPen(QColor("#ef5350"), 2.5))
        else:
            painter.setPen(QPen(QColor(20, 20, 20), 1.2))
        painter.setBrush(self.color)
        c = self.pos()
        if self.multi:
            painter.drawRoundedRect(QRectF(c.x() - r, c.y() - r, 2 * r, 2 * r), 2.5, 2.5)
        else:
            painter.drawEllipse(c, r, r)


class NodeItem(QGraphicsItem):
    """The canvas face of one graph node; the scene keeps it in sync with the model."""

    def __init__(
        self,
        node_id: str,
        title: str,
        type_id: str,
        color: str,
        inputs: list[Any],
        outputs: list[Any],
        known: bool = True,
    ) -> None:
        super().__init__()
        self.node_id = node_id
        self.title = title
        self.type_id = type_id
        self.known = known
        self.header_color = QColor(color)
        self.status = "idle"
        self.progress: float | None = None
        self.message = ""
        self.bypass = False
        self.mute = False
        self.edges: set[EdgeItem] = set()
        self._elided = ("", "")
        self.inputs: dict[str, PortItem] = {}
        self.outputs: dict[str, PortItem] = {}
        #: Height of what sits below the ports: on-node parameters and the thumbnail
        #: (``app.editor.node_body``), which sets it through ``set_body_height``.
        self.body_h = 0.0
        rows = max(len(inputs), len(outputs), 1)
        self.height = HEADER_H + rows * ROW_H + FOOT_H
        for i, p in enumerate(inputs):
            port = PortItem(self, p.name, p.type.type_id, False, p.multi, p.optional, p.doc)
            port.setPos(0, HEADER_H + (i + 0.5) * ROW_H)
            self.inputs[p.name] = port
        for i, p in enumerate(outputs):
            port = PortItem(self, p.name, p.type.type_id, True, doc=p.doc)
            port.setPos(NODE_W, HEADER_H + (i + 0.5) * ROW_H)
            self.outputs[p.name] = port
        self.setFlags(
            QGraphicsItem.GraphicsItemFlag.ItemIsMovable
            | QGraphicsItem.GraphicsItemFlag.ItemIsSelectable
            | QGraphicsItem.GraphicsItemFlag.ItemSendsGeometryChanges
        )
        self.setZValue(1)
        self.setCacheMode(QGraphicsItem.CacheMode.DeviceCoordinateCache)
        self._update_tooltip()

    # ---- state -----------------------------------------------------------------------------

    def add_port(self, name: str, type_id: str, is_output: bool) -> PortItem:
        """Ports for a node whose type is unknown, made from the wires that reach it."""
        ports = self.outputs if is_output else self.inputs
        if name not in ports:
            port = PortItem(self, name, type_id, is_output)
            ports[name] = port
            self.prepareGeometryChange()
            self.height = self.ports_bottom() + self.body_h + FOOT_H
            port.setPos(NODE_W if is_output else 0, HEADER_H + (len(ports) - 0.5) * ROW_H)
        return ports[name]

    def ports_bottom(self) -> float:
        """Where the port rows end and the body (parameters, thumbnail) begins."""
        return HEADER_H + max(len(self.inputs), len(self.outputs), 1) * ROW_H

    def set_body_height(self, height: float) -> None:
        if height != self.body_h:
            self.prepareGeometryChange()
            self.body_h = height
            self.height = self.ports_bottom() + height + FOOT_H
            self.update()

    def set_status(self, status: str, progress: float | None = None, message: str = "") -> None:
        self.status = status
        self.progress = progress
        self.message = message
        self._update_tooltip()
        self.update()

    def set_flags(self, bypass: bool, mute: bool) -> None:
        self.bypass, self.mute = bypass, mute
        self.update()

    def set_title(self, title: str) -> None:
        self.title = title
        self._update_tooltip()
        self.update()

    def _update_tooltip(self) -> None:
        text = f"{self.title}  ({self.type_id}, id {self.node_id})\nstatus: {self.status}"
        if not self.known:
            text += "\nunknown node type: install the plugin that provides it"
        if self.message:
            text += f"\n{self.message}"
        self.setToolTip(text)

    def ports(self) -> list[PortItem]:
        return [*self.inputs.values(), *self.outputs.values()]

    # ---- geometry and painting -----------------------------------------------------------------

    def boundingRect(self) -> QRectF:  # noqa: N802 - Qt's name
        pad = PORT_R + 4  # ports (painted by the node) stick out on both sides
        return QRectF(-pad, -2, NODE_W + 2 * pad, self.height + 4)

    def itemChange(self, change: QGraphicsItem.GraphicsItemChange, value: Any) -> Any:  # noqa: N802
        if change == QGraphicsItem.GraphicsItemChange.ItemPositionHasChanged:
            for edge in self.edges:
                edge.update_path()
        return super().itemChange(change, value)

    def paint(
        self, painter: QPainter, option: QStyleOptionGraphicsItem, widget: QWidget | None = None
    ) -> None:
        lod = option.levelOfDetailFromTransform(painter.worldTransform())
        body = QRectF(0, 0, NODE_W, self.height)
        selected = self.isSelected()
        if lod < 0.35:
            # Far away: a coloured block says where nodes are; text would be unreadable anyway.
            painter.setPen(Qt.PenStyle.NoPen if not selected else QPen(QColor("#fff59d"), 4))
            painter.setBrush(self.header_color)
            painter.drawRect(body)
            painter.setBrush(QColor(STATUS_COLORS.get(self.status, "#5f6368")))
            painter.drawRect(QRectF(NODE_W - 40, 0, 40, HEADER_H))
            return
        body_color = QColor("#2b2d31") if self.known else QColor("#4a2020")
        if self.mute:
            body_color = QColor("#202124")
        painter.setPen(Qt.PenStyle.NoPen)
        painter.setBrush(body_color)
        painter.drawRoundedRect(body, 6, 6)
        hc = QColor("#7e57c2") if self.bypass else QColor(self.header_color)
        if self.mute:
            hc = hc.darker(220)
        painter.fillPath(_header_path(), hc)
        painter.setPen(QPen(QColor("#fff59d"), 2.2) if selected else QPen(QColor("#111111"), 1.0))
        painter.setBrush(Qt.BrushStyle.NoBrush)
        painter.drawRoundedRect(body, 6, 6)
        # Status badge: a dot in the header, red for failures (the message is the tooltip).
        painter.setPen(QPen(QColor(15, 15, 15), 1))
        painter.setBrush(QColor(STATUS_COLORS.get(self.status, "#5f6368")))
        painter.drawEllipse(QPointF(NODE_W - 14, HEADER_H / 2), 5.5, 5.5)
        for port in self.inputs.values():
            port.paint_port(painter)
        for port in self.outputs.values():
            port.paint_port(painter)
        if lod >= 0.6:
            self._paint_text(painter)
        if self.status == "running":
            bar = QRectF(8, self.height - FOOT_H + 2, NODE_W - 16, 5)
            painter.setPen(Qt.PenStyle.NoPen)
            painter.setBrush(QColor("#3c4043"))
            painter.drawRoundedRect(bar, 2, 2)
            frac = 0.0 if self.progress is None else max(0.0, min(1.0, self.progress))
            painter.setBrush(QBrush(QColor(STATUS_COLORS["running"])))
            painter.drawRoundedRect(
                QRectF(bar.x(), bar.y(), bar.width() * frac, bar.height()), 2, 2
            )

    def _paint_text(self, painter: QPainter) -> None:
        style = _style()
        label = (
            self.title
            + ("  [bypassed]" if self.bypass else "")
            + ("  [muted]" if self.mute else "")
        )
        if self._elided[0] != label:
            self._elided = (
                label,
                style.title_metrics.elidedText(label, Qt.TextElideMode.ElideRight, NODE_W - 34),
            )
        painter.setFont(style.title_font)
        painter.setPen(QColor("#f1f3f4") if not self.mute else QColor("#9aa0a6"))
        painter.drawText(
            QRectF(10, 0, NODE_W - 34, HEADER_H),
            Qt.AlignmentFlag.AlignVCenter | Qt.AlignmentFlag.AlignLeft,
            self._elided[1],
        )
        painter.setFont(style.port_font)
        painter.setPen(QColor("#c8cacd"))
        half = NODE_W / 2 - 14
        left = Qt.AlignmentFlag.AlignVCenter | Qt.AlignmentFlag.AlignLeft
        right = Qt.AlignmentFlag.AlignVCenter | Qt.AlignmentFlag.AlignRight
        for port in self.inputs.values():
            y = port.pos().y()
            painter.drawText(QRectF(12, y - ROW_H / 2, half, ROW_H), left, port.label(half))
        for port in self.outputs.values():
            y = port.pos().y()
            painter.drawText(
                QRectF(NODE_W / 2 + 2, y - ROW_H / 2, half, ROW_H), right, port.label(half)
            )


class _Style:
    """Fonts and metrics made once (they need a running QGuiApplication, hence lazily)."""

    def __init__(self) -> None:
        self.title_font = QFont()
        self.title_font.setPointSizeF(9.5)
        self.title_font.setBold(True)
        self.title_metrics = QFontMetricsF(self.title_font)
        self.port_font = QFont()
        self.port_font.setPointSizeF(8.5)
        self.port_metrics = QFontMetricsF(self.port_font)


_STYLE: _Style | None = None
_HEADER: QPainterPath | None = None


def _style() -> _Style:
    global _STYLE
    if _STYLE is None:
        _STYLE = _Style()
    return _STYLE


def _header_path() -> QPainterPath:
    """Rounded on top, square at the bottom: built once, shared by every node."""
    global _HEADER
    if _HEADER is None:
        path = QPainterPath()
        path.addRoundedRect(QRectF(0, 0, NODE_W, HEADER_H), 6, 6)
        path.addRect(QRectF(0, HEADER_H / 2, NODE_W, HEADER_H / 2))
        _HEADER = path.simplified()
    return _HEADER
