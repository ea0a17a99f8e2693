"""Thumbnails of output files (images and the first frame of videos) for the run history and
the gallery, decoded on a worker thread through the engine's readers, which refuse size bombs.

The worker makes a small uint8 array (no Qt there); the GUI thread turns it into a pixmap, which
for a 160-pixel thumbnail takes well under a millisecond. Finished thumbnails are kept by path,
size and modification time, so re-listing a folder decodes nothing twice.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
from PySide6.QtCore import QObject, QSize, Qt, Signal
from PySide6.QtGui import QIcon, QImage, QPixmap
from PySide6.QtWidgets import QListWidget, QListWidgetItem, QWidget

from fathom.app.jobs import JobQueue
from fathom.engine.imaging.codecs import check_image_file, open_pillow, read_image
from fathom.engine.run_history import media_kind

SIZE = 160
#: Thumbnails kept in memory per list (each at most 160×160 RGBA, about 100 kB).
MAX_CACHED = 500
PATH_ROLE = Qt.ItemDataRole.UserRole

Key = tuple[str, int, int]


def _fit(arr: np.ndarray, size: int) -> np.ndarray:
    import cv2

    h, w = arr.shape[:2]
    scale = size / max(h, w)
    if scale >= 1:
        return arr
    dsize = (max(1, round(w * scale)), max(1, round(h * scale)))
    out = cv2.resize(arr, dsize, interpolation=cv2.INTER_AREA)
    return out if out.ndim == arr.ndim else out[:, :, None]


def _pillow_thumbnail(path: Path, size: int) -> np.ndarray | None:
    """8-bit files shrunk while they decode (Pillow's draft and reduce): a fraction of the
    time and memory of a full decode. None for what Pillow cannot shrink faithfully (EXR,
    16-bit or float grey), which then goes through ``read_image``."""
    if path.suffix.lower() == ".exr":
        return None
    check_image_file(path)  # PNG and EXR sizes from their headers, others by Pillow's open
    with open_pillow(path) as im:
        if im.mode.startswith(("I", "F")):
            return None
        im.draft("RGB", (size, size))
        im.thumbnail((size, size))
        alpha = "A" in im.mode or "transparency" in im.info
        return np.ascontiguousarray(np.asarray(im.convert("RGBA" if alpha else "RGB")))


def thumbnail_array(path: Path, size: int = SIZE) -> np.ndarray:
    """uint8 H×W×3 (or ×4) no larger than ``size`` on its long side; runs on a worker."""
    if media_kind(path) == "video":
        from fathom.engine.media.readers import AVReader

        reader = AVReader(path)
        try:
            w, h = reader.size
            scale = min(1.0, size / max(w, h))
            frame = reader.array(0, (max(1, round(w * scale)), max(1, round(h * scale))))
        finally:
            reader.close()
        return np.ascontiguousarray(frame)
    small = _pillow_thumbnail(path, size)
    if small is not None:
        return small
    data = _fit(read_image(path), size)
    if data.shape[2] == 1:
        data = np.repeat(data, 3, axis=2)
    return np.ascontiguousarray(np.round(np.clip(data, 0, 1) * 255).astype(np.uint8))


def to_pixmap(arr: np.ndarray) -> QPixmap:
    h, w, c = arr.shape
    fmt = QImage.Format.Format_RGBA8888 if c == 4 else QImage.Format.Format_RGB888
    return QPixmap.fromImage(QImage(arr.data, w, h, w * c, fmt).copy())


def file_key(path: Path) -> Key | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (str(path), st.st_size, st.st_mtime_ns)


class Thumbnails:
    """Asks the worker for thumbnails and remembers them; ``get`` calls back on the GUI thread
    with a pixmap, or with None and the reason when the file cannot be decoded."""

    def __init__(self, parent: QObject) -> None:
        self.jobs = JobQueue(parent, "thumbnails")
        self._cache: dict[Key, QPixmap] = {}

    def cached(self, path: Path) -> QPixmap | None:
        key = file_key(path)
        return self._cache.get(key) if key is not None else None

    def get(self, path: Path, done: Callable[[QPixmap | None, str], None]) -> None:
        key = file_key(path)
        if key is None:
            done(None, f"{path.name} is missing")
            return
        if key in self._cache:
            done(self._cache[key], "")
            return

        def ready(arr: Any) -> None:
            pixmap = to_pixmap(arr)
            self._cache[key] = pixmap
            while len(self._cache) > MAX_CACHED:  # the oldest go first
                del self._cache[next(iter(self._cache))]
            done(pixmap, "")

        self.jobs.submit(lambda: thumbnail_array(path), ready, lambda why: done(None, why))

    def drop_pending(self) -> None:
        self.jobs.drop_pending()

    def stop(self) -> None:
        self.jobs.stop()


class ThumbnailGrid(QListWidget):
    """Files as a grid of thumbnails with their names; a click and a double-click each say
    which file. Thumbnails fill in as the worker makes them; the list never waits for them."""

    chosen = Signal(object)
    activated = Signal(object)

    def __init__(
        self, thumbnails: Thumbnails, icon: int = 128, parent: QWidget | None = None
    ) -> None:
        super().__init__(parent)
        self.thumbnails = thumbnails
        self.setViewMode(QListWidget.ViewMode.IconMode)
        self.setIconSize(QSize(icon, icon))
        self.setGridSize(QSize(icon + 24, icon + 40))
        self.setResizeMode(QListWidget.ResizeMode.Adjust)
        self.setMovement(QListWidget.Movement.Static)
        self.setWordWrap(True)
        self._generation = 0
        self.itemClicked.connect(lambda it: self.chosen.emit(Path(it.data(PATH_ROLE))))
        self.itemActivated.connect(lambda it: self.activated.emit(Path(it.data(PATH_ROLE))))

    def set_files(self, files: list[tuple[Path, str]]) -> None:
        """(path, tooltip) pairs, in the order shown."""
        self.thumbnails.drop_pending()
        self._generation += 1
        generation = self._generation
        self.clear()
        for path, tip in files:
            item = QListWidgetItem(path.name)
            item.setData(PATH_ROLE, str(path))
            item.setToolTip(tip)
            item.setTextAlignment(Qt.AlignmentFlag.AlignHCenter | Qt.AlignmentFlag.AlignTop)
            self.addItem(item)
            if media_kind(path) is not None:  # meshes and reports show their name only
                self.thumbnails.get(path, partial(self._fill, item, generation))
        self.scrollToTop()

    def paths(self) -> list[Path]:
        return [Path(self.item(i).data(PATH_ROLE)) for i in range(self.count())]

    def _fill(self, item: QListWidgetItem, gen: int, pixmap: QPixmap | None, why: str) -> None:
        if gen != self._generation:
            return  # the list was replaced; this item is gone
        if pixmap is not None:
            item.setIcon(QIcon(pixmap))
        else:
            item.setToolTip(f"{item.toolTip()}\nno thumbnail: {why}".strip())
