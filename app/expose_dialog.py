"""The "Expose Parameters" dialog: which parameters of a node inside a subgraph show on the
subgraph node, and under what names."""

from __future__ import annotations

from dataclasses import dataclass

from PySide6.QtWidgets import (
    QCheckBox,
    QDialog,
    QDialogButtonBox,
    QGridLayout,
    QLabel,
    QLineEdit,
    QVBoxLayout,
    QWidget,
)


@dataclass(frozen=True)
class ExposeRow:
    """One parameter: its name, the name it is exposed as (None: hidden), a name to offer."""

    param: str
    exposed: str | None
    suggestion: str


class ExposeDialog(QDialog):
    """A tick and a name per parameter; the answer lists every row (name, or None: hidden)."""

    def __init__(self, title: str, rows: list[ExposeRow], parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle(f"Expose Parameters of {title}")
        grid = QGridLayout()
        grid.addWidget(QLabel("Parameter"), 0, 0)
        grid.addWidget(QLabel("Name on the subgraph node"), 0, 1)
        self.rows: list[tuple[str, QCheckBox, QLineEdit]] = []
        for i, row in enumerate(rows, start=1):
            box = QCheckBox(row.param)
            box.setChecked(row.exposed is not None)
            name = QLineEdit(row.exposed or row.suggestion)
            name.setEnabled(box.isChecked())
            box.toggled.connect(name.setEnabled)
            grid.addWidget(box, i, 0)
            grid.addWidget(name, i, 1)
            self.rows.append((row.param, box, name))
        buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel
        )
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        lay = QVBoxLayout(self)
        lay.addLayout(grid)
        lay.addWidget(buttons)

    def choice(self) -> dict[str, str | None]:
        return {p: name.text().strip() if box.isChecked() else None for p, box, name in self.rows}
