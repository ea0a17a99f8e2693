"""On-node text stays readable: the canvas is dark in both themes by design, so the rows' fixed
colours must meet WCAG contrast (4.5:1) against every background they are drawn on, the slider
fill included; and the light theme keeps the Find Node bar and the breadcrumb readable."""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import QRectF
from PySide6.QtGui import QColor, QPalette
from PySide6.QtWidgets import QApplication

from fathom.app.theme import apply_theme, canvas_text_pairs, contrast_ratio, text_pairs

ROLES = QPalette.ColorRole


class RecordingPainter:
    """Stands in for QPainter: records which brushes fill and which pens write text."""

    def __init__(self) -> None:
        self.brushes: list[QColor] = []
        self.text_pens: list[QColor] = []
        self._pen: Any = None

    def setPen(self, pen: Any) -> None:  # noqa: N802 - QPainter's name
        self._pen = pen

    def setBrush(self, brush: Any) -> None:  # noqa: N802
        self.brushes.append(QColor(brush))

    def drawText(self, *args: Any) -> None:  # noqa: N802
        self.text_pens.append(QColor(self._pen))

    def __getattr__(self, name: str) -> Any:
        return lambda *args, **kwargs: None


def test_row_text_is_readable_on_the_row_and_on_its_slider_fill(window: Any, add: Any) -> None:
    """A ranged number at its maximum: name and value are both drawn over the slider fill."""
    nid = add("test.slow", seconds=120.0)  # 0-120: a full slider
    body = window.scene.bodies.bodies[nid]
    spec = next(s for s in body.specs if s.name == "seconds")
    painter = RecordingPainter()
    body._paint_row(painter, spec, QRectF(0, 0, 200, 20))
    assert len(painter.brushes) == 2 and len(painter.text_pens) == 2  # row, fill; name, value
    for pen in painter.text_pens:
        for brush in painter.brushes:
            ratio = contrast_ratio(pen, brush)
            assert ratio >= 4.5, (pen.name(), brush.name(), round(ratio, 2))


def test_every_canvas_text_colour_meets_wcag_contrast() -> None:
    """The canvas's fixed text colours, named in the theme module, are the same in both themes."""
    pairs = canvas_text_pairs()
    assert "row name on slider fill" in pairs
    for what, (fg, bg) in pairs.items():
        assert contrast_ratio(fg, bg) >= 4.5, (what, fg.name(), bg.name())


def test_light_theme_keeps_find_bar_and_breadcrumb_readable(window: Any) -> None:
    """They are widgets over or beside the dark canvas, drawn with the theme's palette."""
    app = QApplication.instance()
    apply_theme(app, "light")
    QApplication.processEvents()  # palette changes reach hidden widgets through events
    try:
        find = window.find_node
        widgets = [(find.field, ROLES.Text, ROLES.Base), (find.count, ROLES.WindowText, None)]
        widgets += [(window.breadcrumb, ROLES.WindowText, ROLES.Window)]
        for widget, fg_role, bg_role in widgets:
            widget.ensurePolished()
            pal = widget.palette()
            # The find bar fills its own background with the palette's Window colour.
            bg = pal.color(bg_role) if bg_role is not None else find.palette().color(ROLES.Window)
            ratio = contrast_ratio(pal.color(fg_role), bg)
            assert ratio >= 4.5, (type(widget).__name__, round(ratio, 2))
            assert bg.lightness() > 128  # the light theme really applied to them
        assert all(contrast_ratio(f, b) >= 4.5 for f, b in text_pairs("light").values())
    finally:
        apply_theme(app, "dark")
