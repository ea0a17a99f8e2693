"""A node on the canvas: header, typed coloured ports, status badge and progress bar.

Painted by hand (no child widgets) and simplified when zoomed out, so 500 nodes pan smoothly;
zoomed out, the title grows in scene units so it stays readable on screen (``text_detail``).
Header colours are node metadata (``Registry.node_color``: the node's family), given by the
scene. Bypass (amber hatch, a dashed wire through the node, a badge) and mute (grey, faded)
look unlike each other and unlike any family colour.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QPointF, QRectF, Qt
from PySide6.QtGui import (
    QBrush,
    QColor,
    QFont,
    QFontMetricsF,
    QPainter,
    QPainterPath,
    QPen,
    QTransform,
)
from PySide6.QtWidgets import QGraphicsItem, QStyleOptionGraphicsItem, QWidget

from fathom.engine.types import ALL_TYPES

if TYPE_CHECKING:
    from fathom.app.editor.wire_item import EdgeItem

NODE_W = 190.0
HEADER_H = 26.0
ROW_H = 20.0
FOOT_H = 12.0
PORT_R = 6.0

#: Font sizes in scene pixels at 100% zoom.
TITLE_PX = 13.0
PORT_PX = 11.0
#: Titles are never painted smaller than this on screen: zoomed out, their font grows.
READABLE_PX = 10.0
#: Below this zoom nodes are plain coloured blocks (the overview of a huge graph).
BLOCK_LOD = 0.25
#: Port labels show from this zoom up (they cannot grow: their rows are fixed).
PORT_LOD = 0.6
BYPASS_COLOR = "#ffb300"
MUTE_COLOR = "#5f6368"
MUTE_OPACITY = 0.5


@dataclass(frozen=True)
class TextDetail:
    """What a node paints at one zoom: blocks only, or a title ``title_px`` scene pixels tall
    (and port labels when ``port_labels``)."""

    blocks: bool
    title_px: float
    port_labels: bool


def text_detail(lod: float) -> TextDetail:
    """The level of detail at zoom ``lod``: from BLOCK_LOD up the title is painted at least
    READABLE_PX tall on screen, so a graph fitted to the window never shows blank boxes."""
    if lod < BLOCK_LOD:
        return TextDetail(True, 0.0, False)
    return TextDetail(False, max(TITLE_PX, READABLE_PX / lod), lod >= PORT_LOD)


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
        self._elided: tuple[object, str] = ("", "")
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
            resized = getattr(self.scene(), "node_resized", None)  # the layout may follow
            if resized is not None:
                resized(self.node_id)

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
        detail = text_detail(lod)
        if detail.blocks:
            self._paint_block(painter)
            return
        if self.mute:
            painter.setOpacity(MUTE_OPACITY)  # muted: the whole node fades back
        band = max(HEADER_H, detail.title_px * 1.4)
        dot = min(max(5.5, 4.0 / lod), band / 2 - 3)  # the status dot stays visible too
        self._paint_box(painter, band, dot)
        for port in self.inputs.values():
            port.paint_port(painter)
        for port in self.outputs.values():
            port.paint_port(painter)
        badge = 0.0
        if detail.port_labels:
            badge = self._paint_badge(painter, dot)
            self._paint_port_labels(painter)
        self._paint_title(painter, detail.title_px, band, NODE_W - 2 * dot - 22 - badge)
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

    def _paint_block(self, painter: QPainter) -> None:
        """Far away: a coloured block says where nodes are; text would be unreadable anyway.
        Bypass keeps its amber outline and mute its grey, so both still show in an overview."""
        body = QRectF(0, 0, NODE_W, self.height)
        pen = QPen(QColor(BYPASS_COLOR), 6) if self.bypass else Qt.PenStyle.NoPen
        painter.setPen(QPen(QColor("#fff59d"), 4) if self.isSelected() else pen)
        painter.setBrush(QColor(MUTE_COLOR) if self.mute else self.header_color)
        painter.drawRect(body)
        painter.setPen(Qt.PenStyle.NoPen)
        painter.setBrush(QColor(STATUS_COLORS.get(self.status, "#5f6368")))
        painter.drawRect(QRectF(NODE_W - 40, 0, 40, HEADER_H))

    def _paint_box(self, painter: QPainter, band: float, dot: float) -> None:
        """Body, header band (``band`` tall), outline and status dot. A bypassed node keeps
        its family colour but its body is hatched amber and a dashed wire runs through it, as
        its input now does; a muted one is grey (and faded by the caller)."""
        body = QRectF(0, 0, NODE_W, self.height)
        body_color = QColor("#2b2d31") if self.known else QColor("#4a2020")
        painter.setPen(Qt.PenStyle.NoPen)
        painter.setBrush(QColor("#202124") if self.mute else body_color)
        painter.drawRoundedRect(body, 6, 6)
        painter.fillPath(_header_path(band), QColor(MUTE_COLOR) if self.mute else self.header_color)
        if self.bypass:
            stripes = QColor(BYPASS_COLOR)
            stripes.setAlpha(120)  # port labels stay readable over it
            hatch = QBrush(stripes, Qt.BrushStyle.BDiagPattern)
            hatch.setTransform(QTransform.fromScale(2.5, 2.5))  # wide stripes, not a dither
            painter.setBrush(hatch)
            painter.drawRect(QRectF(0, band, NODE_W, self.height - band))
            ins, outs = list(self.inputs.values()), list(self.outputs.values())
            if ins and outs:
                painter.setPen(QPen(QColor(BYPASS_COLOR), 3, Qt.PenStyle.DashLine))
                painter.drawLine(ins[0].pos(), outs[0].pos())
        if self.isSelected():
            outline = QPen(QColor("#fff59d"), 2.2)
        elif self.bypass:
            outline = QPen(QColor(BYPASS_COLOR), 2.5, Qt.PenStyle.DashLine)
        else:
            outline = QPen(QColor("#111111"), 1.0)
        painter.setPen(outline)
        painter.setBrush(Qt.BrushStyle.NoBrush)
        painter.drawRoundedRect(body, 6, 6)
        # Status badge: a dot in the header, red for failures (the message is the tooltip).
        painter.setPen(QPen(QColor(15, 15, 15), 1))
        painter.setBrush(QColor(STATUS_COLORS.get(self.status, "#5f6368")))
        painter.drawEllipse(QPointF(NODE_W - dot - 8, band / 2), dot, dot)

    def _paint_badge(self, painter: QPainter, dot: float) -> float:
        """A "BYPASS" or "MUTED" pill left of the status dot; returns the width it took."""
        if not (self.bypass or self.mute):
            return 0.0
        text, color = ("BYPASS", BYPASS_COLOR) if self.bypass else ("MUTED", "#dadce0")
        style = _style()
        width = style.badge_metrics.horizontalAdvance(text) + 10
        pill = QRectF(NODE_W - 2 * dot - 14 - width, 5, width, HEADER_H - 10)
        painter.setPen(Qt.PenStyle.NoPen)
        painter.setBrush(QColor(color))
        painter.drawRoundedRect(pill, 4, 4)
        painter.setFont(style.badge_font)
        painter.setPen(QColor("#202124"))
        painter.drawText(pill, Qt.AlignmentFlag.AlignCenter, text)
        return width + 4

    def _paint_title(self, painter: QPainter, px: float, band: float, width: float) -> None:
        """The title at ``px`` scene pixels: larger than normal when zoomed out, so it stays
        readable on screen (see ``text_detail``)."""
        font, metrics = _style().title(px)
        key = (self.title, round(px), round(width))
        if self._elided[0] != key:
            text = metrics.elidedText(self.title, Qt.TextElideMode.ElideRight, width)
            self._elided = (key, text)
        painter.setFont(font)
        painter.setPen(QColor("#f1f3f4"))
        painter.drawText(
            QRectF(10, 0, width, band),
            Qt.AlignmentFlag.AlignVCenter | Qt.AlignmentFlag.AlignLeft,
            self._elided[1],
        )

    def _paint_port_labels(self, painter: QPainter) -> None:
        painter.setFont(_style().port_font)
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
    """Fonts and metrics made once (they need a running QGuiApplication, hence lazily). Sizes
    are in pixels, which are scene units: text keeps its size relative to the node."""

    def __init__(self) -> None:
        self._titles: dict[int, tuple[QFont, QFontMetricsF]] = {}
        self.title_font, self.title_metrics = self.title(TITLE_PX)
        self.port_font = QFont()
        self.port_font.setPixelSize(round(PORT_PX))
        self.port_metrics = QFontMetricsF(self.port_font)
        self.badge_font = QFont()
        self.badge_font.setPixelSize(10)
        self.badge_font.setBold(True)
        self.badge_metrics = QFontMetricsF(self.badge_font)

    def title(self, px: float) -> tuple[QFont, QFontMetricsF]:
        """The bold title font at ``px`` pixels (made once per whole size)."""
        size = max(1, round(px))
        if size not in self._titles:
            font = QFont()
            font.setPixelSize(size)
            font.setBold(True)
            self._titles[size] = (font, QFontMetricsF(font))
        return self._titles[size]


_STYLE: _Style | None = None
_HEADERS: dict[int, QPainterPath] = {}


def _style() -> _Style:
    global _STYLE
    if _STYLE is None:
        _STYLE = _Style()
    return _STYLE


def _header_path(band: float = HEADER_H) -> QPainterPath:
    """Rounded on top, square at the bottom: built once per height, shared by every node."""
    key = round(band)
    if key not in _HEADERS:
        path = QPainterPath()
        path.addRoundedRect(QRectF(0, 0, NODE_W, key), 6, 6)
        path.addRect(QRectF(0, key / 2, NODE_W, key / 2))
        _HEADERS[key] = path.simplified()
    return _HEADERS[key]
