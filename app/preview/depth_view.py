"""Depth viewer: a colour map between a near and a far distance chosen on a range slider.

Colours come from the engine's own colour maps (``engine.imaging.depthmath``), so the preview
matches what the depth-colorize node writes; the readout shows the raw value under the cursor
(metres for metric depth), not the colour.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from PySide6.QtCore import QPointF, QRectF, Signal
from PySide6.QtGui import QColor, QMouseEvent, QPainter, QPaintEvent, QPen
from PySide6.QtWidgets import QComboBox, QHBoxLayout, QLabel, QVBoxLayout, QWidget

from fathom.app.preview.image_view import ImageView, tool_button
from fathom.engine.imaging import depthmath
from fathom.engine.types import Depth

SLIDER_STEPS = 1000


@lru_cache(maxsize=8)
def colormap_lut(cmap: str) -> np.ndarray:
    """256×3 lookup table taken from the engine's colour map (index 0 = far, 255 = near)."""
    ramp = np.linspace(1.0, 2.0, 256, dtype=np.float32)[None]
    return depthmath.colorize(ramp, cmap, 0.0, 100.0, near_is_bright=False)[0]


def colorize_range(
    depth: np.ndarray, near: float, far: float, cmap: str = "turbo", relative: bool = False
) -> np.ndarray:
    """H×W×3 colours: ``near`` gets the bright end, ``far`` the dark end, values beyond either
    are clamped to it; invalid samples (NaN; <= 0 metric, < 0 relative) are black."""
    ok = depthmath.valid_mask(depth, relative)
    span = far - near if far > near else 1e-6
    t = np.clip((np.nan_to_num(depth, nan=far) - near) / span, 0.0, 1.0)
    idx = np.rint((1.0 - t) * 255).astype(np.int64)
    out = colormap_lut(cmap)[idx]
    out[~ok] = 0.0
    return out.astype(np.float32)


class RangeSlider(QWidget):
    """Two handles on one groove (Qt has no range slider); integer positions 0..SLIDER_STEPS."""

    range_changed = Signal(int, int)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._low, self._high = 0, SLIDER_STEPS
        self._active: int | None = None  # 0 low handle, 1 high handle
        self.setMinimumHeight(22)
        self.setMinimumWidth(120)

    def values(self) -> tuple[int, int]:
        return self._low, self._high

    def set_values(self, low: int, high: int) -> None:
        low = int(np.clip(low, 0, SLIDER_STEPS))
        high = int(np.clip(high, 0, SLIDER_STEPS))
        low, high = min(low, high), max(low, high)
        if (low, high) != (self._low, self._high):
            self._low, self._high = low, high
            self.update()
            self.range_changed.emit(low, high)

    def _x(self, v: int) -> float:
        return 8 + (self.width() - 16) * v / SLIDER_STEPS

    def _value(self, x: float) -> int:
        return round((x - 8) / max(1, self.width() - 16) * SLIDER_STEPS)

    def paintEvent(self, event: QPaintEvent) -> None:  # noqa: N802 - Qt override
        p = QPainter(self)
        p.setRenderHint(QPainter.RenderHint.Antialiasing)
        mid = self.height() / 2
        p.setPen(QPen(QColor(90, 90, 90), 4))
        p.drawLine(QPointF(8, mid), QPointF(self.width() - 8, mid))
        p.setPen(QPen(QColor(80, 160, 255), 4))
        p.drawLine(QPointF(self._x(self._low), mid), QPointF(self._x(self._high), mid))
        p.setPen(QPen(QColor(20, 20, 20), 1))
        p.setBrush(QColor(230, 230, 230))
        for v in (self._low, self._high):
            p.drawEllipse(QRectF(self._x(v) - 6, mid - 6, 12, 12))

    def mousePressEvent(self, event: QMouseEvent) -> None:  # noqa: N802 - Qt override
        x = event.position().x()
        self._active = 0 if abs(x - self._x(self._low)) <= abs(x - self._x(self._high)) else 1
        self.mouseMoveEvent(event)

    def mouseMoveEvent(self, event: QMouseEvent) -> None:  # noqa: N802 - Qt override
        if self._active is None:
            return
        v = self._value(event.position().x())
        if self._active == 0:
            self.set_values(min(v, self._high), self._high)
        else:
            self.set_values(self._low, max(v, self._low))

    def mouseReleaseEvent(self, event: QMouseEvent) -> None:  # noqa: N802 - Qt override
        self._active = None


class DepthPanel(QWidget):
    """Colour-mapped depth with a near/far range slider, colour-map choice and a readout."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.view = ImageView()
        self.cmap = QComboBox()
        self.cmap.addItems(list(depthmath.COLORMAPS))
        self.cmap.setToolTip("Colour map (near is bright/red)")
        self.range_slider = RangeSlider()
        self.range_slider.setToolTip("Near / far distance of the colour ramp")
        self.range_label = QLabel("")
        self.auto_button = tool_button("Auto", "Range from the 2nd to the 98th percentile")
        self.fit_button = tool_button("Fit", "Fit the image to the view")
        self.readout = QLabel("")

        bar = QHBoxLayout()
        bar.setContentsMargins(2, 2, 2, 2)
        bar.addWidget(self.fit_button)
        bar.addWidget(self.cmap)
        bar.addWidget(self.range_slider, 1)
        bar.addWidget(self.auto_button)
        bar.addWidget(self.range_label)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.setSpacing(0)
        lay.addLayout(bar)
        lay.addWidget(self.view, 1)
        lay.addWidget(self.readout)

        self._depth: Depth | None = None
        self._lo, self._hi = 0.0, 1.0  # slider ends, in depth units
        self.range_slider.range_changed.connect(lambda *_: self._recolour())
        self.cmap.currentTextChanged.connect(lambda *_: self._recolour())
        self.auto_button.clicked.connect(self.auto_range)
        self.fit_button.clicked.connect(self.view.fit)
        self.view.hovered.connect(self._update_readout)

    def set_depth(self, depth: Depth) -> None:
        """Show ``depth``; a new depth of the same value range keeps the chosen near/far."""
        ok = depth.valid()
        lo, hi = (
            (float(depth.data[ok].min()), float(depth.data[ok].max())) if ok.any() else (0.0, 1.0)
        )
        first = self._depth is None or (lo, hi) != (self._lo, self._hi)
        self._depth = depth
        self._lo, self._hi = lo, hi if hi > lo else lo + 1.0
        if first:
            self.auto_range()
        else:
            self._recolour()

    def clear(self) -> None:
        self._depth = None
        self.view.clear()
        self.readout.setText("")

    def auto_range(self) -> None:
        if self._depth is None:
            return
        d = self._depth.data[self._depth.valid()]
        near, far = np.percentile(d, [2, 98]) if len(d) else (self._lo, self._hi)
        self.set_near_far(float(near), float(far))

    def _to_slider(self, v: float) -> int:
        return round((v - self._lo) / (self._hi - self._lo) * SLIDER_STEPS)

    def _from_slider(self, s: int) -> float:
        return self._lo + (self._hi - self._lo) * s / SLIDER_STEPS

    def set_near_far(self, near: float, far: float) -> None:
        self.range_slider.blockSignals(True)
        self.range_slider.set_values(self._to_slider(near), self._to_slider(far))
        self.range_slider.blockSignals(False)
        self._recolour()

    def near_far(self) -> tuple[float, float]:
        low, high = self.range_slider.values()
        return self._from_slider(low), self._from_slider(high)

    def _recolour(self) -> None:
        if self._depth is None:
            return
        near, far = self.near_far()
        relative = self._depth.kind == "relative"
        self.view.set_image(
            colorize_range(self._depth.data, near, far, self.cmap.currentText(), relative)
        )
        u = self._depth.units if self._depth.kind == "metric" else ""
        self.range_label.setText(f"{near:.3g}–{far:.3g} {u}".rstrip())

    def _update_readout(self, x: int, y: int) -> None:
        if self._depth is None or x < 0:
            self.readout.setText("")
            return
        self.readout.setText(format_depth(x, y, float(self._depth.data[y, x]), self._depth))


def format_depth(x: int, y: int, value: float, depth: Depth | None = None) -> str:
    """Readout text: the raw depth at (x, y) with its unit, or 'no depth' for invalid samples.
    Without ``depth`` (a depth video's frames say neither metres nor relative) no unit, and 0
    counts as depth (relative depth's nearest point; metric models give no zeros)."""
    relative = depth is None or depth.kind == "relative"
    if not depthmath.valid_mask(np.float32(value), relative):
        return f"x {x}  y {y}   no depth"
    unit = "" if depth is None else depth.units if depth.kind == "metric" else "(relative)"
    return f"x {x}  y {y}   depth {value:.3f} {unit}".rstrip()
