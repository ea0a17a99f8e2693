"""The bar above a save node's preview: the file(s) it wrote, Open and Show in folder.

A save node's output is a path; what the user wants to see is the file behind it and to get at
it. Opening goes through QDesktopServices, so the desktop's own viewer and file manager are used.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QUrl, Signal
from PySide6.QtGui import QDesktopServices
from PySide6.QtWidgets import QComboBox, QHBoxLayout, QLabel, QPushButton, QVBoxLayout, QWidget


class WrittenBar(QWidget):
    """Lists written files; the chosen one is what Open, Show in folder and the preview use."""

    #: The user chose another of the written files: (path).
    chosen = Signal(str)
    #: Open or Show in folder could not: (message naming the full path), for the log.
    problem = Signal(str)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        rows = QVBoxLayout(self)
        rows.setContentsMargins(4, 2, 4, 2)
        rows.setSpacing(2)
        lay = QHBoxLayout()
        lay.setContentsMargins(0, 0, 0, 0)
        rows.addLayout(lay)
        self.files = QComboBox()
        # A long path must not widen the dock: the combo elides, its tooltip shows the path.
        self.files.setSizeAdjustPolicy(
            QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon
        )
        self.files.setMinimumContentsLength(16)
        self.files.currentIndexChanged.connect(self._changed)
        self.open_button = QPushButton("Open")
        self.open_button.setToolTip("open the file in the desktop's own application")
        self.open_button.clicked.connect(self.open_file)
        self.folder_button = QPushButton("Show in folder")
        self.folder_button.setToolTip("open the folder that holds the file")
        self.folder_button.clicked.connect(self.open_folder)
        # Why Open failed, on its own line: beside the buttons a narrow dock cut it short.
        self.status = QLabel()
        self.status.setWordWrap(True)
        self.status.hide()
        lay.addWidget(QLabel("Wrote"))
        lay.addWidget(self.files, 1)
        lay.addWidget(self.open_button)
        lay.addWidget(self.folder_button)
        rows.addWidget(self.status)
        self.hide()

    def set_paths(self, paths: list[str]) -> None:
        """Show these files (none: hide the bar); the first is chosen."""
        if paths != self.paths():
            self.files.blockSignals(True)
            self.files.clear()
            for p in paths:
                self.files.addItem(Path(p).name, p)  # the name shows; the path is its tooltip
            self.files.blockSignals(False)
            self.files.setToolTip(self.current())
        self._say("")
        self.setVisible(bool(paths))

    def _changed(self) -> None:
        self.files.setToolTip(self.current())
        self.chosen.emit(self.current())

    def paths(self) -> list[str]:
        return [str(self.files.itemData(i)) for i in range(self.files.count())]

    def current(self) -> str:
        return str(self.files.currentData() or "")

    def open_file(self) -> bool:
        return self._open(Path(self.current()))

    def open_folder(self) -> bool:
        return self._open(Path(self.current()).parent)

    def _open(self, path: Path) -> bool:
        if not self.current():
            return False
        if not path.exists():
            self._say(f"{path.name} is gone", f"{path.absolute()} is gone")
            return False
        ok = QDesktopServices.openUrl(QUrl.fromLocalFile(str(path.absolute())))
        if not ok:
            self._say(
                f"No application on this desktop opens {path.name}",
                f"No application on this desktop opens {path.absolute()}",
            )
        else:
            self._say("")
        return bool(ok)

    def _say(self, text: str, logged: str = "") -> None:
        """Show ``text`` under the buttons (empty: nothing); ``logged`` also goes to the log."""
        self.status.setText(text)
        self.status.setVisible(bool(text))
        if logged:
            self.problem.emit(logged)
