"""Image viewer: zoom about the cursor, pan, fit / 1:1, pixel readout and A/B split compare.

``ImageView`` is the canvas (also reused by the depth viewer and the video player, so every
preview zooms and pans the same way); ``ImagePanel`` adds the toolbar and the readout label.
Painting is a single ``drawImage`` of a cached QImage, so step previews that arrive many times a
second cost one float→uint8 conversion each.
"""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import QPointF, QRectF, Qt, Signal
from PySide6.QtGui import (
    QBrush,
    QColor,
    QImage,
    QMouseEvent,
    QPainter,
    QPaintEvent,
    QPen,
    QResizeEvent,
    QWheelEvent,
)
from PySide6.QtWidgets import QHBoxLayout, QLabel, QSlider, QToolButton, QVBoxLayout, QWidget

BACKGROUND = QColor(32, 32, 32)
MIN_SCALE, MAX_SCALE = 1 / 64, 256.0


def as_hwc(data: np.ndarray) -> np.ndarray:
    """H×W×C float32 from H×W or H×W×C, so every viewer indexes pixels one way."""
    arr = np.asarray(data, np.float32)
    return arr[:, :, None] if arr.ndim == 2 else arr


def to_rgba8(data: np.ndarray) -> np.ndarray:
    """H×W×4 uint8 for display: gray is repeated, missing alpha is opaque, NaN shows black."""
    arr = as_hwc(data)
    h, w, c = arr.shape
    rgb = np.repeat(arr, 3, axis=2) if c == 1 else arr[:, :, :3]
    out = np.empty((h, w, 4), np.uint8)
    out[:, :, :3] = (np.clip(np.nan_to_num(rgb), 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
    out[:, :, 3] = (np.clip(arr[:, :, 3], 0, 1) * 255 + 0.5).astype(np.uint8) if c == 4 else 255
    return out


def to_qimage(data: np.ndarray) -> QImage:
    """A QImage that owns its pixels (``copy``), so the numpy buffer may be freed afterwards."""
    rgba = np.ascontiguousarray(to_rgba8(data))
    h, w = rgba.shape[:2]
    return QImage(rgba.data, w, h, 4 * w, QImage.Format.Format_RGBA8888).copy()


def _checker_brush() -> QBrush:
    tile = QImage(16, 16, QImage.Format.Format_RGB32)
    tile.fill(QColor(90, 90, 90))
    p = QPainter(tile)
    p.fillRect(0, 0, 8, 8, QColor(60, 60, 60))
    p.fillRect(8, 8, 8, 8, QColor(60, 60, 60))
    p.end()
    return QBrush(tile)


class ImageView(QWidget):
    """Zoomable, pannable canvas for one image (B) and an optional pinned image (A).

    The view is a scale and the widget position of the image's top-left corner; it stays in
    "fit" mode (refits on resize) until the user zooms or pans, and a new image of the same size
    keeps the view, so repeated step previews never jump.
    """

    hovered = Signal(int, int)  # image pixel under the cursor; (-1, -1) when outside
    view_changed = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setMouseTracking(True)
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self.setMinimumSize(64, 64)
        self._data: np.ndarray | None = None
        self._qimage: QImage | None = None
        self._has_alpha = False
        self._a_data: np.ndarray | None = None
        self._a_qimage: QImage | None = None
        self._split = 0.5
        self._scale = 1.0
        self._offset = QPointF(0.0, 0.0)
        self._fit_mode = True
        self._drag_from: QPointF | None = None
        self._checker = _checker_brush()

    # ---- content

    def set_image(self, data: np.ndarray, qimage: QImage | None = None) -> None:
        """Show ``data`` (H×W or H×W×C float in [0, 1]) as image B; ``qimage``: its picture,
        when a worker thread already made it (``to_qimage(data)``)."""
        arr = as_hwc(data)
        same_size = self._data is not None and self._data.shape[:2] == arr.shape[:2]
        self._data = arr
        self._qimage = qimage if qimage is not None else to_qimage(arr)
        self._has_alpha = arr.shape[2] == 4 and bool((arr[:, :, 3] < 1).any())
        if not same_size or self._fit_mode:
            self.fit()
        self.update()

    def clear(self) -> None:
        self._data = self._qimage = None
        self._a_data = self._a_qimage = None
        self._fit_mode = True
        self.update()

    def image(self) -> np.ndarray | None:
        return self._data

    def set_compare(self, data: np.ndarray | None) -> None:
        """Pin ``data`` as image A (left of the split), or stop comparing with None."""
        self._a_data = None if data is None else as_hwc(data).copy()
        self._a_qimage = None if data is None else to_qimage(self._a_data)
        self.update()

    @property
    def comparing(self) -> bool:
        return self._a_qimage is not None

    def set_split(self, fraction: float) -> None:
        """Split position as a fraction of the image width: A left of it, B right of it."""
        self._split = float(np.clip(fraction, 0.0, 1.0))
        self.update()

    @property
    def split(self) -> float:
        return self._split

    # ---- view transform

    @property
    def scale(self) -> float:
        return self._scale

    @property
    def offset(self) -> QPointF:
        return QPointF(self._offset)

    def _image_size(self) -> tuple[int, int]:
        if self._data is None:
            return 0, 0
        return int(self._data.shape[1]), int(self._data.shape[0])

    def fit(self) -> None:
        """Whole image visible and centred; stays fitted on resize until the user zooms."""
        w, h = self._image_size()
        self._fit_mode = True
        if not w:
            return
        self._scale = float(np.clip(min(self.width() / w, self.height() / h), MIN_SCALE, MAX_SCALE))
        self._centre()

    def actual_size(self) -> None:
        """One image pixel per screen pixel, centred."""
        self._fit_mode = False
        self._scale = 1.0
        self._centre()

    def _centre(self) -> None:
        w, h = self._image_size()
        self._offset = QPointF(
            (self.width() - w * self._scale) / 2, (self.height() - h * self._scale) / 2
        )
        self.view_changed.emit()
        self.update()

    def set_view(self, scale: float, offset: QPointF) -> None:
        self._fit_mode = False
        self._scale = float(np.clip(scale, MIN_SCALE, MAX_SCALE))
        self._offset = QPointF(offset)
        self.view_changed.emit()
        self.update()

    def zoom_at(self, factor: float, pos: QPointF) -> None:
        """Scale by ``factor`` keeping the image point under ``pos`` (widget coords) fixed."""
        anchor = self.widget_to_image(pos)
        new = float(np.clip(self._scale * factor, MIN_SCALE, MAX_SCALE))
        self.set_view(new, QPointF(pos.x() - anchor.x() * new, pos.y() - anchor.y() * new))

    def widget_to_image(self, pos: QPointF) -> QPointF:
        return QPointF(
            (pos.x() - self._offset.x()) / self._scale, (pos.y() - self._offset.y()) / self._scale
        )

    def image_to_widget(self, pos: QPointF) -> QPointF:
        return QPointF(
            pos.x() * self._scale + self._offset.x(), pos.y() * self._scale + self._offset.y()
        )

    def pixel_at(self, pos: QPointF) -> tuple[int, int] | None:
        """Integer image pixel under a widget position, or None outside the image."""
        p = self.widget_to_image(pos)
        w, h = self._image_size()
        x, y = int(np.floor(p.x())), int(np.floor(p.y()))
        return (x, y) if 0 <= x < w and 0 <= y < h else None

    def value_at(self, x: int, y: int) -> tuple[str, np.ndarray] | None:
        """('A' or 'B', channel values) of the image shown at pixel (x, y)."""
        if self._data is None:
            return None
        if self._a_data is not None and x < self._split * self._data.shape[1]:
            a = self._a_data
            ax = min(int(x * a.shape[1] / self._data.shape[1]), a.shape[1] - 1)
            ay = min(int(y * a.shape[0] / self._data.shape[0]), a.shape[0] - 1)
            return "A", a[ay, ax]
        return "B", self._data[y, x]

    # ---- events

    def paintEvent(self, event: QPaintEvent) -> None:  # noqa: N802 - Qt override
        p = QPainter(self)
        p.fillRect(self.rect(), BACKGROUND)
        if self._qimage is None:
            return
        w, h = self._image_size()
        target = QRectF(self._offset.x(), self._offset.y(), w * self._scale, h * self._scale)
        # Nearest neighbour when magnified: pixel inspection needs hard pixel edges.
        p.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, self._scale < 1.0)
        if self._has_alpha:
            p.fillRect(target, self._checker)
        p.drawImage(target, self._qimage)
        if self._a_qimage is not None:
            split_x = target.left() + self._split * target.width()
            p.save()
            p.setClipRect(
                QRectF(target.left(), target.top(), split_x - target.left(), target.height())
            )
            p.fillRect(target, BACKGROUND)
            p.drawImage(target, self._a_qimage)
            p.restore()
            p.setPen(QPen(QColor(255, 210, 0), 1))
            p.drawLine(QPointF(split_x, target.top()), QPointF(split_x, target.bottom()))

    def resizeEvent(self, event: QResizeEvent) -> None:  # noqa: N802 - Qt override
        if self._fit_mode:
            self.fit()
        super().resizeEvent(event)

    def wheelEvent(self, event: QWheelEvent) -> None:  # noqa: N802 - Qt override
        steps = event.angleDelta().y() / 120.0
        if steps:
            self.zoom_at(1.25**steps, event.position())
        event.accept()

    def mousePressEvent(self, event: QMouseEvent) -> None:  # noqa: N802 - Qt override
        if event.button() in (Qt.MouseButton.LeftButton, Qt.MouseButton.MiddleButton):
            self._drag_from = event.position()
            self.setCursor(Qt.CursorShape.ClosedHandCursor)
        event.accept()

    def mouseMoveEvent(self, event: QMouseEvent) -> None:  # noqa: N802 - Qt override
        pos = event.position()
        if self._drag_from is not None:
            d = pos - self._drag_from
            self._drag_from = pos
            self.set_view(self._scale, self._offset + d)
        px = self.pixel_at(pos)
        self.hovered.emit(*(px if px is not None else (-1, -1)))

    def mouseReleaseEvent(self, event: QMouseEvent) -> None:  # noqa: N802 - Qt override
        self._drag_from = None
        self.unsetCursor()

    def mouseDoubleClickEvent(self, event: QMouseEvent) -> None:  # noqa: N802 - Qt override
        self.fit()

    def leaveEvent(self, event: object) -> None:  # noqa: N802 - Qt override
        self.hovered.emit(-1, -1)


def format_pixel(x: int, y: int, side: str, values: np.ndarray, comparing: bool) -> str:
    """Readout text: position, then R G B A (or V for one channel), three decimals."""
    v = np.asarray(values, np.float32).reshape(-1)
    names = "V" if len(v) == 1 else "RGBA"
    parts = [f"{n} {float(c):.3f}" for n, c in zip(names, v, strict=False)]
    if len(v) == 3:
        parts.append("A 1.000")
    prefix = f"{side}  " if comparing else ""
    return f"{prefix}x {x}  y {y}   " + "  ".join(parts)


def tool_button(text: str, tip: str, checkable: bool = False) -> QToolButton:
    b = QToolButton()
    b.setText(text)
    b.setToolTip(tip)
    b.setCheckable(checkable)
    b.setAutoRaise(True)
    return b


class ImagePanel(QWidget):
    """Image viewer with Fit / 1:1 / Pin A / Compare controls and a pixel readout."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.view = ImageView()
        self.fit_button = tool_button("Fit", "Fit the image to the view (double-click)")
        self.one_button = tool_button("1:1", "One image pixel per screen pixel")
        self.pin_button = tool_button("Pin A", "Keep the current image as A to compare with")
        self.compare_button = tool_button("A|B", "Split view: A left, B right", checkable=True)
        self.split_slider = QSlider(Qt.Orientation.Horizontal)
        self.split_slider.setRange(0, 1000)
        self.split_slider.setValue(500)
        self.split_slider.setToolTip("A/B split position")
        self.split_slider.setVisible(False)
        self.info = QLabel("")
        self.readout = QLabel("")
        self.readout.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)

        bar = QHBoxLayout()
        bar.setContentsMargins(2, 2, 2, 2)
        for b in (self.fit_button, self.one_button, self.pin_button, self.compare_button):
            bar.addWidget(b)
        bar.addWidget(self.split_slider, 1)
        bar.addStretch(0)
        bar.addWidget(self.info)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.setSpacing(0)
        lay.addLayout(bar)
        lay.addWidget(self.view, 1)
        lay.addWidget(self.readout)

        self.fit_button.clicked.connect(self.view.fit)
        self.one_button.clicked.connect(self.view.actual_size)
        self.pin_button.clicked.connect(self.pin_a)
        self.compare_button.toggled.connect(self._set_comparing)
        self.split_slider.valueChanged.connect(lambda v: self.view.set_split(v / 1000.0))
        self.view.hovered.connect(self._update_readout)
        self._pinned: np.ndarray | None = None

    def set_image(self, data: np.ndarray, qimage: QImage | None = None) -> None:
        self.view.set_image(data, qimage)
        arr = self.view.image()
        assert arr is not None
        self.info.setText(f"{arr.shape[1]}×{arr.shape[0]}×{arr.shape[2]}")

    def clear(self) -> None:
        self.view.clear()
        self._pinned = None
        self.compare_button.setChecked(False)
        self.info.setText("")
        self.readout.setText("")

    def pin_a(self) -> None:
        """Keep the image now shown as A, and switch the split view on."""
        current = self.view.image()
        if current is None:
            return
        self._pinned = current.copy()
        if self.compare_button.isChecked():
            self.view.set_compare(self._pinned)
        else:
            self.compare_button.setChecked(True)

    def _set_comparing(self, on: bool) -> None:
        if on and self._pinned is None:
            current = self.view.image()
            self._pinned = None if current is None else current.copy()
        self.view.set_compare(self._pinned if on else None)
        self.split_slider.setVisible(on)

    def _update_readout(self, x: int, y: int) -> None:
        hit = self.view.value_at(x, y) if x >= 0 else None
        if hit is None:
            self.readout.setText("")
            return
        side, values = hit
        self.readout.setText(format_pixel(x, y, side, values, self.view.comparing))
