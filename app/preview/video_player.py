"""Video player for lazy ``Video`` values: play/pause, scrub, step ±1, frame counter.

Frames are decoded on demand through ``Video.frame(i)`` (a rendered orbit or a long clip never
sits in memory whole); a few recent frames are kept so stepping back and forth is instant.
Frames are decoded on a worker thread: a frame of a generated or mapped video can take seconds,
and the window must stay responsive meanwhile. Playback follows the wall clock at the video's
fps and the latest request wins, so a slow source drops frames instead of playing in slow motion.
The readout under the picture gives the frame's own value at the pixel under the cursor: the
image panel's channel values, or, for a depth frame (coloured or grey), the depth panel's
depth (the colour is only how it is drawn).
"""

from __future__ import annotations

import time
from collections import OrderedDict

import numpy as np
from PySide6.QtCore import Qt, QTimer
from PySide6.QtGui import QKeyEvent
from PySide6.QtWidgets import QHBoxLayout, QLabel, QSlider, QVBoxLayout, QWidget

from fathom.app.preview.depth_view import format_depth
from fathom.app.preview.image_view import ImageView, format_pixel, tool_button
from fathom.app.preview.worker import BackgroundRenderer
from fathom.engine.imaging.depthmath import colorize
from fathom.engine.types import Video

CACHED_FRAMES = 16


def depth_like(data: np.ndarray) -> bool:
    """Whether a frame is one channel of depth rather than a mask: one channel, and not only
    0s and 1s (a mask reads best as it is, white on black)."""
    if data.ndim != 3 or data.shape[2] != 1:
        return False
    return not bool(((data == 0) | (data == 1)).all())


def shown_frame(data: np.ndarray, colour: bool) -> np.ndarray:
    """A decoded frame as the player shows it: a depth frame (``depth_like``) through the
    turbo colour map when ``colour`` (near red, as the depth panel shows depth), else as it is.
    Runs on the decoding thread: a colour map over a large frame costs tens of ms."""
    if colour and depth_like(data):
        # Relative depth's nearest point is 0: valid, not black (metric models give no zeros).
        return colorize(np.asarray(data[:, :, 0], np.float32), "turbo", relative=True)
    return data


def _decode(video: Video, index: int, colour: bool) -> tuple[np.ndarray, np.ndarray]:
    """(the frame's own data, what the player shows of it); on the decoding thread."""
    data = video.frame(index).data
    return data, shown_frame(data, colour)


class VideoPlayer(QWidget):
    """Shows one frame of a lazy video at a time, with transport controls."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.view = ImageView()
        self.play_button = tool_button("Play", "Play / pause (Space)", checkable=True)
        self.back_button = tool_button("◀|", "Previous frame (Left)")
        self.next_button = tool_button("|▶", "Next frame (Right)")
        self.colour_button = tool_button(
            "Colour", "Depth frames in the turbo colour map (off: grey)", checkable=True
        )
        # On, as depth images and node thumbnails show depth; shown once a depth frame arrives.
        self.colour_button.setChecked(True)
        self.colour_button.setVisible(False)
        self.slider = QSlider(Qt.Orientation.Horizontal)
        self.slider.setToolTip("Scrub")
        self.counter = QLabel("0 / 0")
        self.status = QLabel("")
        self.status.setToolTip("Frame decoding state, audio")
        self.readout = QLabel("")
        self.readout.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.loop = True

        bar = QHBoxLayout()
        bar.setContentsMargins(2, 2, 2, 2)
        for w in (self.play_button, self.back_button, self.next_button):
            bar.addWidget(w)
        bar.addWidget(self.slider, 1)
        bar.addWidget(self.colour_button)
        bar.addWidget(self.counter)
        bar.addSpacing(6)
        bar.addWidget(self.status)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.setSpacing(0)
        lay.addWidget(self.view, 1)
        lay.addLayout(bar)
        lay.addWidget(self.readout)

        self._video: Video | None = None
        self._index = 0
        #: Recent frames: (the frame's own data, what is shown of it).
        self._cache: OrderedDict[int, tuple[np.ndarray, np.ndarray]] = OrderedDict()
        self._raw: np.ndarray | None = None  # the shown frame's own data (for the readout)
        self._depth_frame = False
        self._hover = (-1, -1)  # the pixel under the cursor
        self._timer = QTimer(self)
        self._timer.setTimerType(Qt.TimerType.PreciseTimer)
        self._timer.timeout.connect(self._tick)
        self._play_start = (0.0, 0)  # wall clock, frame index when play was pressed
        self._shown = -1  # the frame on screen (``_index`` is the one asked for)
        self._requested = -1  # the frame last handed to the worker
        self._audio_text = ""
        self._generation = 0  # bumps per video, so late frames of an old one are dropped
        self._worker = BackgroundRenderer(self._decoded, self)

        self.play_button.toggled.connect(self._set_playing)
        self.back_button.clicked.connect(lambda: self.step(-1))
        self.next_button.clicked.connect(lambda: self.step(1))
        self.slider.valueChanged.connect(self._scrubbed)
        self.colour_button.toggled.connect(self._recolour)
        self.view.hovered.connect(self._update_readout)

    # ---- content

    def set_video(self, video: Video) -> None:
        """Show frame 0 of ``video`` (decoding only that frame)."""
        self.pause()
        self._video = video
        self._generation += 1
        self._cache.clear()
        self.slider.blockSignals(True)
        self.slider.setRange(0, max(0, len(video) - 1))
        self.slider.setValue(0)
        self.slider.blockSignals(False)
        self._index = self._shown = self._requested = -1
        self._audio_text = "♪" if getattr(video, "audio", None) is not None else ""
        # Shown again when this video's first depth frame arrives; the choice stays for the
        # next videos (grey chosen for one depth video stays grey for the next).
        self.colour_button.setVisible(False)
        self.status.setText(self._audio_text)
        if len(video):
            self.set_frame(0)
        else:
            self._clear_view()
            self.counter.setText("0 / 0")

    def clear(self) -> None:
        self.pause()
        self._video = None
        self._generation += 1
        self._cache.clear()
        self._index = self._shown = self._requested = -1
        self._clear_view()
        self.counter.setText("0 / 0")
        self.status.setText("")

    def _clear_view(self) -> None:
        self._raw = None
        self.view.clear()
        self.readout.setText("")

    @property
    def video(self) -> Video | None:
        return self._video

    @property
    def current(self) -> int:
        return self._index

    @property
    def playing(self) -> bool:
        return self._timer.isActive()

    @property
    def idle(self) -> bool:
        """No frame is being decoded and the asked-for one is on screen (tests wait on it)."""
        return self._worker.idle and self._shown == self._index

    def set_frame(self, index: int) -> None:
        """Ask for frame ``index`` (clamped): counter and slider follow at once, the picture
        when the worker has decoded it (at once when it is cached)."""
        if self._video is None or not len(self._video):
            return
        index = int(np.clip(index, 0, len(self._video) - 1))
        self._index = index
        self.counter.setText(f"{index + 1} / {len(self._video)}")
        if self.slider.value() != index:
            self.slider.blockSignals(True)
            self.slider.setValue(index)
            self.slider.blockSignals(False)
        if index == self._shown:
            return
        if index in self._cache:
            self._cache.move_to_end(index)
            self._show(index, *self._cache[index])
            return
        if index == self._requested:
            return  # already being decoded
        video, gen, colour = self._video, self._generation, self.colour_button.isChecked()
        self._requested = index
        self.status.setText("decoding…")
        self._worker.submit(lambda: _decode(video, index, colour), (gen, index))

    def _recolour(self) -> None:
        """The colour map was switched (it stays on for the next videos): decode again."""
        self._generation += 1
        self._cache.clear()
        index, self._shown, self._requested = self._index, -1, -1
        self.set_frame(index)

    def _decoded(self, tag: tuple[int, int], result: object) -> None:
        gen, index = tag
        if gen != self._generation:
            return  # a frame of a video no longer shown
        if index == self._requested:
            self._requested = -1
        if isinstance(result, Exception):
            self.status.setText(f"frame {index + 1}: {result}")
            self.status.setToolTip(f"{type(result).__name__}: {result}")
            return
        assert isinstance(result, tuple)
        raw, data = result
        # Coloured, it is depth; grey, a sample of its pixels tells (cheap on this thread).
        if data is not raw or depth_like(raw[::8, ::8]):
            self.colour_button.setVisible(True)
        self._cache[index] = (raw, data)
        while len(self._cache) > CACHED_FRAMES:
            self._cache.popitem(last=False)
        if index == self._index:
            self._show(index, raw, data)

    def _show(self, index: int, raw: np.ndarray, data: np.ndarray) -> None:
        self._shown = index
        self._raw = raw
        # Depth (drawn through the colour map, or grey with Colour off): the readout says depth.
        self._depth_frame = data is not raw or depth_like(raw[::8, ::8])
        self.view.set_image(data)
        self.status.setText(self._audio_text)
        self._update_readout(*self._hover)  # the new frame's value under a still cursor

    def _update_readout(self, x: int, y: int) -> None:
        """The shown frame's own value at pixel (x, y); empty off the picture."""
        self._hover = (x, y)
        raw = self._raw
        if raw is None or not (0 <= y < raw.shape[0] and 0 <= x < raw.shape[1]):
            self.readout.setText("")
        elif self._depth_frame:
            self.readout.setText(format_depth(x, y, float(raw[y, x, 0])))
        else:
            self.readout.setText(format_pixel(x, y, "", raw[y, x], False))

    def step(self, delta: int) -> None:
        """Pause and move ``delta`` frames (wrapping, as editors' frame-step keys do)."""
        if self._video is None or not len(self._video):
            return
        self.pause()
        self.set_frame((self._index + delta) % len(self._video))

    # ---- playback

    def play(self) -> None:
        self.play_button.setChecked(True)

    def pause(self) -> None:
        self.play_button.setChecked(False)

    def _set_playing(self, on: bool) -> None:
        if on and self._video is not None and len(self._video) > 1:
            start = 0 if self._index >= len(self._video) - 1 and not self.loop else self._index
            self._play_start = (time.perf_counter(), max(0, start))
            self._timer.start(max(1, round(1000.0 / self._video.fps)))
            self.play_button.setText("Pause")
        else:
            self._timer.stop()
            self.play_button.setText("Play")
            if on:
                self.play_button.setChecked(False)

    def _tick(self) -> None:
        if self._video is None:
            return
        t0, f0 = self._play_start
        target = f0 + int((time.perf_counter() - t0) * self._video.fps)
        n = len(self._video)
        if target >= n and not self.loop:
            self.set_frame(n - 1)
            self.pause()
            return
        self.set_frame(target % n)

    def _scrubbed(self, value: int) -> None:
        if self.playing:
            self._play_start = (time.perf_counter(), value)
        self.set_frame(value)

    def keyPressEvent(self, event: QKeyEvent) -> None:  # noqa: N802 - Qt override
        key = event.key()
        if key == Qt.Key.Key_Space:
            self.play_button.toggle()
        elif key == Qt.Key.Key_Left:
            self.step(-1)
        elif key == Qt.Key.Key_Right:
            self.step(1)
        else:
            super().keyPressEvent(event)
