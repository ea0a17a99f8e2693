"""The breadcrumb above the editor while it shows a subgraph's inside ("Main › my_blur"):
where the user is, and a click back to any enclosing level."""

from __future__ import annotations

from PySide6.QtWidgets import QHBoxLayout, QLabel, QToolButton, QWidget

from fathom.app.document import Document


class Breadcrumb(QWidget):
    """Hidden at the top level; inside a subgraph, an Up button and one link per level."""

    def __init__(self, doc: Document, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.doc = doc
        self._row = QHBoxLayout(self)
        self._row.setContentsMargins(6, 2, 6, 2)
        self._row.setSpacing(2)
        #: One button per enclosing level, outermost first ("Main", ...); the current level is
        #: a label.
        self.links: list[QToolButton] = []
        doc.level_changed.connect(self.refresh)
        doc.reset.connect(self.refresh)
        self.refresh()

    def refresh(self) -> None:
        while self._row.count():
            item = self._row.takeAt(0)
            widget = item.widget()
            if widget is not None:
                widget.deleteLater()
        self.links = []
        trail = list(self.doc.trail)
        self.setVisible(bool(trail))
        if not trail:
            return
        up = QToolButton()
        up.setText("↑ Up")
        up.setToolTip("back to the enclosing graph (Esc)")
        up.clicked.connect(lambda: self.doc.go_to(trail[:-1]))
        self._row.addWidget(up)
        names = ["Main"] + [name for _, name in trail]
        for depth, name in enumerate(names[:-1]):
            link = QToolButton()
            link.setText(name)
            link.setAutoRaise(True)
            link.setToolTip(f"show {name}")
            link.clicked.connect(lambda _=False, d=depth: self.doc.go_to(trail[:d]))
            self._row.addWidget(link)
            self._row.addWidget(QLabel("›"))
            self.links.append(link)
        current = QLabel(f"<b>{names[-1]}</b>  (subgraph: edits change its definition)")
        self._row.addWidget(current)
        self._row.addStretch(1)

    def text(self) -> str:
        """What the breadcrumb reads, e.g. "Main › my_blur" (empty at the top level)."""
        return " › ".join(["Main"] + [name for _, name in self.doc.trail]) if self.doc.trail else ""
