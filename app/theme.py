"""Dark (default) and light palettes on the Fusion style, which looks the same on every OS.

Both palettes are spelled out (the platform's standard light palette had grey-on-grey
placeholder text), and so are the text colours widgets set themselves (errors, warnings, help),
one set per theme: every text colour meets WCAG's 4.5:1 contrast on the background it is drawn
on, which ``text_pairs`` lists for the test. The node canvas keeps its dark look in both themes,
like Blender's and ComfyUI's.
"""

from __future__ import annotations

from PySide6.QtGui import QColor, QPalette
from PySide6.QtWidgets import QApplication

THEMES = ("dark", "light")

_ROLES = QPalette.ColorRole
PALETTES: dict[str, dict[QPalette.ColorRole, str]] = {
    "dark": {
        _ROLES.Window: "#26272b",
        _ROLES.WindowText: "#e8eaed",
        _ROLES.Base: "#1e1f22",
        _ROLES.AlternateBase: "#2b2d31",
        _ROLES.ToolTipBase: "#303134",
        _ROLES.ToolTipText: "#e8eaed",
        _ROLES.Text: "#e8eaed",
        _ROLES.Button: "#303134",
        _ROLES.ButtonText: "#e8eaed",
        _ROLES.BrightText: "#ff8a80",
        _ROLES.Highlight: "#8ab4f8",
        _ROLES.HighlightedText: "#202124",
        _ROLES.Link: "#8ab4f8",
        _ROLES.PlaceholderText: "#9aa0a6",
    },
    "light": {
        _ROLES.Window: "#f1f3f4",
        _ROLES.WindowText: "#202124",
        _ROLES.Base: "#ffffff",
        _ROLES.AlternateBase: "#f6f7f8",
        _ROLES.ToolTipBase: "#ffffff",
        _ROLES.ToolTipText: "#202124",
        _ROLES.Text: "#202124",
        _ROLES.Button: "#e8eaed",
        _ROLES.ButtonText: "#202124",
        _ROLES.BrightText: "#b3261e",
        _ROLES.Highlight: "#1a5fb4",
        _ROLES.HighlightedText: "#ffffff",
        _ROLES.Link: "#1a5fb4",
        _ROLES.PlaceholderText: "#5f6368",
    },
}
#: Disabled text: exempt from the contrast rule (WCAG 1.4.3), yet still legible.
DISABLED = {"dark": "#6f7378", "light": "#8a8f94"}

#: Text colours that widgets set themselves, by meaning.
TEXT_COLORS: dict[str, dict[str, str]] = {
    "dark": {"error": "#ff8a80", "warning": "#ffd180", "help": "#a8adb3", "ok": "#81c995"},
    "light": {"error": "#b3261e", "warning": "#8a4b00", "help": "#4f5358", "ok": "#1e6b34"},
}

#: The canvas stays dark in both themes (by design), so its text colours are fixed: named here
#: so that their contrast is checked with the themes'.
CANVAS_COLORS: dict[str, str] = {
    "node body": "#2b2d31",
    "row": "#1f2124",
    "slider fill": "#34506e",
    # Dimmer than the value, yet readable over the slider fill too (5.1:1; it was 3.2:1).
    "row name": "#c8cacd",
    "row value": "#e8eaed",
    "strip text": "#9aa0a6",
}

_current = "dark"


def apply_theme(app: QApplication, theme: str = "dark") -> None:
    global _current
    _current = theme if theme in PALETTES else "dark"
    app.setStyle("Fusion")
    p = QPalette()
    for role, color in PALETTES[_current].items():
        p.setColor(role, QColor(color))
    for r in (_ROLES.Text, _ROLES.ButtonText, _ROLES.WindowText):
        p.setColor(QPalette.ColorGroup.Disabled, r, QColor(DISABLED[_current]))
    app.setPalette(p)


def current_theme() -> str:
    return _current


def text_color(kind: str) -> str:
    """The current theme's colour for ``kind`` ("error", "warning", "help" or "ok")."""
    return TEXT_COLORS[_current][kind]


def text_style(kind: str) -> str:
    """A style sheet giving a label the current theme's ``kind`` text colour."""
    return f"color: {text_color(kind)};"


def _luminance(c: QColor) -> float:
    def lin(v: float) -> float:
        return v / 12.92 if v <= 0.04045 else ((v + 0.055) / 1.055) ** 2.4

    return 0.2126 * lin(c.redF()) + 0.7152 * lin(c.greenF()) + 0.0722 * lin(c.blueF())


def contrast_ratio(a: QColor, b: QColor) -> float:
    """WCAG 2 contrast ratio of two colours, 1 (same) to 21 (black on white)."""
    hi, lo = sorted((_luminance(a), _luminance(b)), reverse=True)
    return (hi + 0.05) / (lo + 0.05)


def text_pairs(theme: str) -> dict[str, tuple[QColor, QColor]]:
    """Every (text, background) pair the theme draws, by name: what must stay readable."""
    pal = {role: QColor(c) for role, c in PALETTES[theme].items()}
    pairs = {
        "text on base": (pal[_ROLES.Text], pal[_ROLES.Base]),
        "text on alternate base": (pal[_ROLES.Text], pal[_ROLES.AlternateBase]),
        "window text on window": (pal[_ROLES.WindowText], pal[_ROLES.Window]),
        "button text on button": (pal[_ROLES.ButtonText], pal[_ROLES.Button]),
        "tooltip": (pal[_ROLES.ToolTipText], pal[_ROLES.ToolTipBase]),
        "highlighted text": (pal[_ROLES.HighlightedText], pal[_ROLES.Highlight]),
        "link on base": (pal[_ROLES.Link], pal[_ROLES.Base]),
        "bright text on base": (pal[_ROLES.BrightText], pal[_ROLES.Base]),
        "placeholder on base": (pal[_ROLES.PlaceholderText], pal[_ROLES.Base]),
    }
    for kind, color in TEXT_COLORS[theme].items():
        for name, role in (("base", _ROLES.Base), ("window", _ROLES.Window)):
            pairs[f"{kind} on {name}"] = (QColor(color), pal[role])
    return pairs


def canvas_color(kind: str) -> QColor:
    """One of the canvas's fixed colours (the same in both themes)."""
    return QColor(CANVAS_COLORS[kind])


def canvas_text_pairs() -> dict[str, tuple[QColor, QColor]]:
    """Every (text, background) pair drawn on a node's body, by name."""
    pairs = {}
    for text in ("row name", "row value"):
        for bg in ("row", "slider fill"):
            pairs[f"{text} on {bg}"] = (canvas_color(text), canvas_color(bg))
    pairs["strip text on node body"] = (canvas_color("strip text"), canvas_color("node body"))
    return pairs
