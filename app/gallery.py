"""The Gallery dock: the images and videos the current graph's runs wrote, newest first, as
thumbnails; a click shows one in the preview dock, a double-click opens the file.

It lists from the run history (``engine.run_history.gallery``), so every run's own output shows,
even where runs wrote the same file name. Listing, thumbnails and decoding for the preview all
run on worker threads through the engine's readers, which refuse size bombs.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, QUrl, Signal
from PySide6.QtGui import QDesktopServices
from PySide6.QtWidgets import QDockWidget, QLabel, QVBoxLayout, QWidget

from fathom.app.jobs import JobQueue
from fathom.app.thumbnails import ThumbnailGrid, Thumbnails
from fathom.engine.imaging.codecs import read_image
from fathom.engine.run_history import HistoryEntry, gallery, list_runs, media_kind
from fathom.engine.types import Image

#: Most past runs read to fill the gallery (the newest ones).
GALLERY_RUNS = 200


def load_file(path: Path) -> Any:
    """An output file as the value the preview dock shows (runs on a worker)."""
    if media_kind(path) == "video":
        from fathom.engine.media.readers import FileVideo, open_reader

        return FileVideo(open_reader(path, 24.0, read_image), source=str(path))
    return Image(read_image(path))


class FileOpener(QObject):
    """Shows output files in the preview dock (decoded off the GUI thread) or opens them in
    the system's viewer."""

    #: A file could not be shown or opened (the reason, for the log).
    error = Signal(str)

    def __init__(self, show_value: Callable[[Any, str], None], parent: QObject) -> None:
        super().__init__(parent)
        self.show_value = show_value
        self.jobs = JobQueue(self, "open-output")
        #: Opens a file outside the studio; tests replace it.
        self.launch: Callable[[Path], bool] = lambda p: QDesktopServices.openUrl(
            QUrl.fromLocalFile(str(p))
        )

    def show(self, path: Path) -> None:
        self.jobs.drop_pending()  # the newest click wins
        self.jobs.submit(
            lambda: load_file(path),
            lambda value: self.show_value(value, path.name),
            lambda why: self.error.emit(f"{path.name} cannot be shown: {why}"),
        )

    def open_external(self, path: Path) -> None:
        if not path.exists():
            self.error.emit(f"{path} no longer exists")
        elif not self.launch(path):
            self.error.emit(f"No application opened {path}")

    def close(self) -> None:
        self.jobs.stop()


class GalleryPanel(QDockWidget):
    """Thumbnails of what the current graph's runs wrote; ``refresh`` after each run."""

    def __init__(
        self,
        output_dir: Callable[[], Path],
        graph_path: Callable[[], str | None],
        opener: FileOpener,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__("Gallery", parent)
        self.setObjectName("gallery")
        self.output_dir = output_dir
        self.graph_path = graph_path
        self.opener = opener
        self.thumbnails = Thumbnails(self)
        self.jobs = JobQueue(self, "gallery-list")
        self.grid = ThumbnailGrid(self.thumbnails, icon=160)
        self.status = QLabel("No outputs yet: run the graph")
        body = QWidget()
        layout = QVBoxLayout(body)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addWidget(self.status)
        layout.addWidget(self.grid)
        self.setWidget(body)
        self.grid.chosen.connect(opener.show)
        self.grid.activated.connect(opener.open_external)
        self._listing = 0

    def refresh(self) -> None:
        """List again (on the worker); the grid changes when the list is read."""
        self._listing += 1
        ticket = self._listing
        folder, graph = self.output_dir(), self.graph_path()
        self.jobs.submit(
            lambda: gallery(list_runs(folder, GALLERY_RUNS), graph),
            lambda files: self._show(files, ticket),
            lambda why: self.status.setText(f"The run history cannot be read: {why}"),
        )

    def _show(self, files: list[tuple[Path, HistoryEntry]], ticket: int) -> None:
        if ticket != self._listing:
            return  # a newer listing is on its way
        self.grid.set_files([(p, f"{p}\n{entry.summary()}") for p, entry in files])
        n = len(files)
        self.status.setText(
            f"{n} output{'s' if n != 1 else ''} of this graph's runs, newest first"
            if n
            else "No images or videos from this graph's runs yet"
        )

    def close_panel(self) -> None:
        self.jobs.stop()
        self.thumbnails.stop()
