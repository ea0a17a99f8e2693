"""Main parameters and a thumbnail on the node itself: a canvas shows its settings and results
at a glance, as ComfyUI and Blender users expect; the inspector keeps the full set.

Which parameters show is node metadata (``Node.main_specs``), never a node id. Rows are painted,
not widgets, so a 500-node canvas stays cheap to draw and pan. A click on a row opens that
parameter's own editor from ``app.param_widgets`` (the inspector's widgets, validated by the
engine's ``Param.validate``) over the row; a drag along a ranged number slides it; a click on a
switch flips it; a click on a choice lists the choices. Every change is one ``SetParam`` on the
undo stack (a slide too), so the inspector, undo and live mode see it as any other edit.
Rows hide when zoomed out too far to read them; the thumbnail stays longer.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QEvent, QObject, QPointF, QRectF, Qt, QTimer
from PySide6.QtGui import QColor, QFont, QFontMetricsF, QImage, QKeyEvent, QPainter, QPen
from PySide6.QtWidgets import (
    QAbstractSpinBox,
    QApplication,
    QGraphicsItem,
    QGraphicsProxyWidget,
    QGraphicsSceneMouseEvent,
    QLineEdit,
    QMenu,
    QPlainTextEdit,
    QStyleOptionGraphicsItem,
    QWidget,
)

from fathom.app.editor.node_item import NODE_W
from fathom.app.theme import canvas_color
from fathom.engine.node import Param
from fathom.engine.types import Bool, Float, Int, Seed

if TYPE_CHECKING:
    from fathom.app.editor.node_bodies import NodeBodies
    from fathom.app.editor.node_item import NodeItem

PARAM_H = 20.0
PAD = 4.0
MARGIN = 8.0
#: Height of the thumbnail area, and of the strip that offers a hidden thumbnail back.
THUMB_H = 112.0
STRIP_H = 14.0
#: Below this zoom rows are unreadable (hidden); the thumbnail still says something.
ROWS_LOD = 0.45
THUMB_LOD = 0.2
#: Pixels the mouse moves before a press on a ranged number becomes a slide.
DRAG_START = 3.0


def is_ranged(spec: Param) -> bool:
    """Numbers with both limits slide along their row (a seed is a number, not a slider)."""
    return (
        issubclass(spec.type, (Int, Float))
        and not issubclass(spec.type, Seed)
        and spec.min is not None
        and spec.max is not None
        and spec.max > spec.min
    )


def value_text(spec: Param, value: Any) -> str:
    """A value as a row shows it: one line, floats short."""
    if value is None:
        return "—"
    if issubclass(spec.type, Bool):
        return "on" if value else "off"
    if isinstance(value, float):
        return f"{value:.4g}"
    text = str(value).replace("\n", " ⏎ ")
    return text if text else "(empty)"


class _Fonts:
    """Made once, lazily (fonts need a running QGuiApplication)."""

    def __init__(self) -> None:
        self.font = QFont()
        self.font.setPointSizeF(8.0)
        self.metrics = QFontMetricsF(self.font)


_FONTS: _Fonts | None = None


def _fonts() -> _Fonts:
    global _FONTS
    if _FONTS is None:
        _FONTS = _Fonts()
    return _FONTS


class NodeBody(QGraphicsItem):
    """The part of a node below its ports: its main parameters' rows and its thumbnail."""

    def __init__(self, node: NodeItem, specs: tuple[Param, ...], host: NodeBodies) -> None:
        super().__init__(node)
        self.node = node
        self.specs = specs
        self.host = host
        self.values: dict[str, Any] = {}
        self.thumb: QImage | None = None
        #: This node's own choice (its editor entry's "thumbnail"); the View menu's is global.
        self.thumb_on = True
        self.editor: QGraphicsProxyWidget | None = None
        self._press: tuple[Param, QPointF] | None = None
        self._sliding: Any = None  # the SetParam a slide merges into
        self._elided: dict[str, tuple[str, str]] = {}
        self.setCacheMode(QGraphicsItem.CacheMode.DeviceCoordinateCache)
        self.setAcceptedMouseButtons(Qt.MouseButton.LeftButton)
        self.relayout()

    # ---- geometry -----------------------------------------------------------------------------

    @property
    def rows_h(self) -> float:
        return len(self.specs) * PARAM_H + (PAD if self.specs else 0.0)

    def thumb_state(self) -> str:
        """ "shown", "strip" (hidden here, a strip offers it back) or "none"."""
        if self.thumb is None or not self.host.thumbnails_on:
            return "none"
        return "shown" if self.thumb_on else "strip"

    def height(self) -> float:
        extra = {"shown": THUMB_H + PAD, "strip": STRIP_H, "none": 0.0}[self.thumb_state()]
        return self.rows_h + extra

    def relayout(self) -> None:
        """Sit under the ports and tell the node how tall the body is."""
        self.prepareGeometryChange()
        self.setPos(0, self.node.ports_bottom())
        self.node.set_body_height(self.height())
        self.update()

    def boundingRect(self) -> QRectF:  # noqa: N802 - Qt's name
        return QRectF(0, 0, NODE_W, self.height())

    def row_rect(self, index: int) -> QRectF:
        return QRectF(MARGIN, PAD / 2 + index * PARAM_H + 1, NODE_W - 2 * MARGIN, PARAM_H - 2)

    def thumb_rect(self) -> QRectF:
        top = self.rows_h
        if self.thumb_state() == "strip":
            return QRectF(MARGIN, top, NODE_W - 2 * MARGIN, STRIP_H)
        return QRectF(MARGIN, top + PAD / 2, NODE_W - 2 * MARGIN, THUMB_H)

    def spec_at(self, pos: QPointF) -> Param | None:
        for i, spec in enumerate(self.specs):
            if self.row_rect(i).contains(pos):
                return spec
        return None

    # ---- state ----------------------------------------------------------------------------

    def set_value(self, name: str, value: Any) -> None:
        self.values[name] = value
        self._elided.pop(name, None)
        self.update()

    def set_thumbnail(self, image: QImage | None) -> None:
        self.thumb = image
        self.relayout()

    def set_thumb_on(self, on: bool) -> None:
        self.thumb_on = on
        self.relayout()

    # ---- painting ---------------------------------------------------------------------------

    def paint(
        self, painter: QPainter, option: QStyleOptionGraphicsItem, widget: QWidget | None = None
    ) -> None:
        lod = option.levelOfDetailFromTransform(painter.worldTransform())
        if lod >= ROWS_LOD:
            for i, spec in enumerate(self.specs):
                self._paint_row(painter, spec, self.row_rect(i))
        state = self.thumb_state()
        if state == "shown" and self.thumb is not None and lod >= THUMB_LOD:
            self._paint_thumb(painter, self.thumb_rect(), self.thumb)
        elif state == "strip" and lod >= ROWS_LOD:
            painter.setFont(_fonts().font)
            painter.setPen(canvas_color("strip text"))
            painter.drawText(self.thumb_rect(), Qt.AlignmentFlag.AlignCenter, "▸ show thumbnail")

    def _paint_row(self, painter: QPainter, spec: Param, rect: QRectF) -> None:
        value = self.values.get(spec.name, spec.default)
        painter.setPen(Qt.PenStyle.NoPen)
        painter.setBrush(canvas_color("row"))
        painter.drawRoundedRect(rect, 3, 3)
        if is_ranged(spec) and isinstance(value, (int, float)):
            lo, hi = float(spec.min), float(spec.max)  # type: ignore[arg-type]
            frac = max(0.0, min(1.0, (float(value) - lo) / (hi - lo)))
            painter.setBrush(canvas_color("slider fill"))
            painter.drawRoundedRect(
                QRectF(rect.x(), rect.y(), rect.width() * frac, rect.height()), 3, 3
            )
        fonts = _fonts()
        painter.setFont(fonts.font)
        text_rect = rect.adjusted(6, 0, -6, 0)
        half = text_rect.width() / 2
        name, shown = self._elided_pair(spec, value, half)
        painter.setPen(canvas_color("row name"))
        painter.drawText(
            text_rect, Qt.AlignmentFlag.AlignVCenter | Qt.AlignmentFlag.AlignLeft, name
        )
        painter.setPen(canvas_color("row value"))
        painter.drawText(
            text_rect, Qt.AlignmentFlag.AlignVCenter | Qt.AlignmentFlag.AlignRight, shown
        )

    def _elided_pair(self, spec: Param, value: Any, half: float) -> tuple[str, str]:
        """The name and the value, elided to fit side by side; computed once per value."""
        cached = self._elided.get(spec.name)
        if cached is None:
            metrics = _fonts().metrics
            name = metrics.elidedText(spec.name, Qt.TextElideMode.ElideRight, half - 4)
            room = 2 * half - metrics.horizontalAdvance(name) - 10
            shown = metrics.elidedText(value_text(spec, value), Qt.TextElideMode.ElideRight, room)
            cached = self._elided[spec.name] = (name, shown)
        return cached

    @staticmethod
    def _paint_thumb(painter: QPainter, rect: QRectF, image: QImage) -> None:
        painter.setPen(Qt.PenStyle.NoPen)
        painter.setBrush(QColor("#151618"))
        painter.drawRoundedRect(rect, 3, 3)
        scale = min(rect.width() / image.width(), rect.height() / image.height())
        w, h = image.width() * scale, image.height() * scale
        target = QRectF(rect.center().x() - w / 2, rect.center().y() - h / 2, w, h)
        painter.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, True)
        painter.drawImage(target, image)
        # The small "hide" mark in the corner: the per-node toggle.
        painter.setPen(QPen(QColor("#c8cacd"), 1.2))
        corner = QRectF(rect.right() - 13, rect.top() + 3, 10, 10)
        painter.setBrush(QColor(0, 0, 0, 140))
        painter.drawRoundedRect(corner, 2, 2)
        painter.drawLine(corner.topLeft() + QPointF(3, 3), corner.bottomRight() - QPointF(3, 3))
        painter.drawLine(corner.topRight() + QPointF(-3, 3), corner.bottomLeft() + QPointF(3, -3))

    def hide_mark(self) -> QRectF:
        r = self.thumb_rect()
        return QRectF(r.right() - 16, r.top(), 16, 16)

    # ---- mouse ---------------------------------------------------------------------------------

    def mousePressEvent(self, event: QGraphicsSceneMouseEvent) -> None:  # noqa: N802
        pos = event.pos()
        state = self.thumb_state()
        if state == "strip" and self.thumb_rect().contains(pos):
            self.host.set_node_thumbnail(self.node.node_id, True)
            event.accept()
            return
        if state == "shown" and self.hide_mark().contains(pos):
            self.host.set_node_thumbnail(self.node.node_id, False)
            event.accept()
            return
        spec = self.spec_at(pos)
        if spec is None or not self._readable():
            event.ignore()  # the node moves and selects as usual
            return
        self.host.select(self.node.node_id, event.modifiers())
        self._press = (spec, pos)
        self._sliding = None
        event.accept()

    def mouseMoveEvent(self, event: QGraphicsSceneMouseEvent) -> None:  # noqa: N802
        if self._press is None:
            return
        spec, start = self._press
        if not is_ranged(spec):
            return
        if self._sliding is None and abs(event.pos().x() - start.x()) < DRAG_START:
            return
        rect = self.row_rect(self.specs.index(spec))
        frac = max(0.0, min(1.0, (event.pos().x() - rect.x()) / rect.width()))
        lo, hi = float(spec.min), float(spec.max)  # type: ignore[arg-type]
        value: float = lo + (hi - lo) * frac
        if spec.step:
            value = lo + round((value - lo) / spec.step) * spec.step
        raw = round(value) if issubclass(spec.type, Int) else round(value, 6)
        cmd = self.host.commit(self.node.node_id, spec, raw, merge=True)
        if self._sliding is None:
            self._sliding = cmd or True

    def mouseReleaseEvent(self, event: QGraphicsSceneMouseEvent) -> None:  # noqa: N802
        press, sliding = self._press, self._sliding
        self._press = self._sliding = None
        if press is None:
            return
        if sliding is not None:
            # The slide was one undo step; the next slide of this row is another one.
            if hasattr(sliding, "merge"):
                sliding.merge = False
            return
        spec = press[0]
        if issubclass(spec.type, Bool):
            self.host.commit(self.node.node_id, spec, not self.values.get(spec.name, spec.default))
        elif spec.choices:
            self.host.offer_choices(self, spec, event.screenPos())
        else:
            self.host.open_editor(self, spec)

    def _readable(self) -> bool:
        views = self.scene().views() if self.scene() is not None else []
        return not views or views[0].transform().m11() >= ROWS_LOD


class EditorKeys(QObject):
    """Keys in an on-node editor: Enter closes it, Escape closes it without keeping the text,
    and plain keys are the field's, never the canvas's shortcuts (Return opens a subgraph
    there, Delete deletes nodes, F fits the view)."""

    def __init__(self, host: NodeBodies) -> None:
        super().__init__()
        self.host = host

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:  # noqa: N802 - Qt's name
        if not isinstance(event, QKeyEvent):
            return False
        plain = not event.modifiers() & ~(
            Qt.KeyboardModifier.ShiftModifier | Qt.KeyboardModifier.KeypadModifier
        )
        enter = event.key() in (Qt.Key.Key_Return, Qt.Key.Key_Enter)
        if event.type() == QEvent.Type.ShortcutOverride and (plain or enter):
            event.accept()  # the key goes to the field as a key press
            return True
        if event.type() != QEvent.Type.KeyPress:
            return False
        if event.key() == Qt.Key.Key_Escape:
            self.host.close_editor(keep=False)
            return True
        multi = isinstance(watched, QPlainTextEdit)
        if enter and (not multi or event.modifiers() & Qt.KeyboardModifier.ControlModifier):
            QTimer.singleShot(0, self.host.close_editor)
        return False


def focus_target(widget: QWidget) -> QWidget | None:
    """The field to type in, in an editor made by ``make_widget``."""
    for kind in (QAbstractSpinBox, QLineEdit, QPlainTextEdit):
        found = widget.findChildren(kind)
        if found:
            return found[0]
    return None


def menu_for(spec: Param, current: Any) -> QMenu:
    menu = QMenu()
    for choice in spec.choices or ():
        action = menu.addAction(str(choice))
        action.setCheckable(True)
        action.setChecked(str(choice) == str(current))
        action.setData(choice)
    return menu


def editor_has_focus(proxy: QGraphicsProxyWidget | None) -> bool:
    """Whether typing goes to this on-node editor: its item has the scene's focus and the
    canvas has the application's (an embedded widget is never the application's focus)."""
    scene = proxy.scene() if proxy is not None else None
    if proxy is None or scene is None or not proxy.hasFocus():
        return False
    return QApplication.focusWidget() in [v for v in scene.views()]


def wants_wheel(item: QGraphicsItem | None) -> bool:
    """The wheel turns an on-node field only while that field has focus; else it zooms the
    canvas, so scrolling over a node never changes a value by accident."""
    return isinstance(item, QGraphicsProxyWidget) and editor_has_focus(item)
