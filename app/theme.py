"""Dark (default) and light palettes on the Fusion style, which looks the same on every OS."""

from __future__ import annotations

from PySide6.QtGui import QColor, QPalette
from PySide6.QtWidgets import QApplication


def apply_theme(app: QApplication, theme: str = "dark") -> None:
    app.setStyle("Fusion")
    if theme != "dark":
        app.setPalette(app.style().standardPalette())
        return
    p = QPalette()
    role = QPalette.ColorRole
    p.setColor(role.Window, QColor("#26272b"))
    p.setColor(role.WindowText, QColor("#e8eaed"))
    p.setColor(role.Base, QColor("#1e1f22"))
    p.setColor(role.AlternateBase, QColor("#2b2d31"))
    p.setColor(role.ToolTipBase, QColor("#303134"))
    p.setColor(role.ToolTipText, QColor("#e8eaed"))
    p.setColor(role.Text, QColor("#e8eaed"))
    p.setColor(role.Button, QColor("#303134"))
    p.setColor(role.ButtonText, QColor("#e8eaed"))
    p.setColor(role.BrightText, QColor("#ff8a80"))
    p.setColor(role.Highlight, QColor("#8ab4f8"))
    p.setColor(role.HighlightedText, QColor("#202124"))
    p.setColor(role.Link, QColor("#8ab4f8"))
    p.setColor(role.PlaceholderText, QColor("#80868b"))
    for r in (role.Text, role.ButtonText, role.WindowText):
        p.setColor(QPalette.ColorGroup.Disabled, r, QColor("#6f7378"))
    app.setPalette(p)
