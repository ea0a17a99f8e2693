"""One editor widget per parameter kind, generated from the node's declared Param spec.

Each widget validates with ``Param.validate`` (the engine's own check) before it reports a
value, and shows the engine's message when a value is refused. File parameters get the dialog
their declared kind calls for: an open dialog filtered to ``Param.suffixes`` for a file a node
reads (``InputFile``; a folder too when ``Param.sequence``), a save dialog for one it writes
(``OutputFile``); a plain ``PathValue`` stays a generic path.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QEvent, QObject, Qt, QTimer, Signal
from PySide6.QtGui import QColor, QFocusEvent, QIcon, QKeyEvent, QKeySequence, QValidator
from PySide6.QtWidgets import (
    QAbstractScrollArea,
    QAbstractSlider,
    QAbstractSpinBox,
    QApplication,
    QCheckBox,
    QColorDialog,
    QComboBox,
    QCompleter,
    QDoubleSpinBox,
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPlainTextEdit,
    QPushButton,
    QSlider,
    QSpinBox,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from fathom.app.theme import text_style
from fathom.engine.node import Param
from fathom.engine.resources import AssetsNotFound, assets_dir
from fathom.engine.types import (
    Bool,
    Color,
    Enum,
    Float,
    InputFile,
    Int,
    OutputFile,
    PathValue,
    Seed,
)

INT32 = 2**31 - 1
SLIDER_STEPS = 1000


def to_json_value(value: Any) -> Any:
    """Parameters are stored as the JSON a graph file holds (tuples become lists)."""
    if isinstance(value, tuple):
        return [to_json_value(v) for v in value]
    return value


class _FieldGuard(QObject):
    """Keeps value fields from taking what belongs to the panel and the window.

    The wheel reaches a field only while it has focus: a wheel turn over an unfocused dropdown,
    spin box or slider goes on to the panel, which scrolls, as in Blender and Qt Creator (else
    scrolling a long inspector changes whatever passes under the pointer). Ctrl+Z and
    Ctrl+Shift+Z (Ctrl+Y) in a text or number field are the window's Undo and Redo of graph
    edits; only typing not yet applied is undone by the field itself, as a text field does."""

    def eventFilter(self, obj: QObject, event: QEvent) -> bool:  # noqa: N802 - Qt's name
        if not isinstance(obj, QWidget):
            return False
        if event.type() == QEvent.Type.Wheel and not obj.hasFocus():
            event.ignore()  # an ignored event travels on to the parents
            area = obj.parentWidget()
            while area is not None and not isinstance(area, QAbstractScrollArea):
                area = area.parentWidget()
            if area is not None:  # straight to the panel: Qt passes on only real wheel events
                QApplication.sendEvent(area.viewport(), event)
            return True
        if event.type() == QEvent.Type.ShortcutOverride and isinstance(event, QKeyEvent):
            # Not overridden, the key goes to the window's Undo/Redo actions.
            return _is_undo_key(event) and not _typing_pending(obj)
        return False


def _is_undo_key(event: QKeyEvent) -> bool:
    keys = (QKeySequence.StandardKey.Undo, QKeySequence.StandardKey.Redo)
    ctrl_y = (
        event.key() == Qt.Key.Key_Y and event.modifiers() == Qt.KeyboardModifier.ControlModifier
    )
    return ctrl_y or any(event.matches(k) for k in keys)


def _typing_pending(field: QWidget) -> bool:
    """Whether the field holds typing that is not applied yet (Enter or leaving applies it)."""
    if isinstance(field, QAbstractSpinBox):
        field = field.findChild(QLineEdit) or field
    if isinstance(field, QLineEdit):
        return field.isModified()
    if isinstance(field, QPlainTextEdit):
        return field.document().isModified()
    return False


_GUARD: list[_FieldGuard] = []


def guard_fields(root: QWidget) -> None:
    """Guard every value field under ``root`` (see ``_FieldGuard``): the wheel only while it
    has focus (and no focus from the wheel alone), the undo keys for the window."""
    if not _GUARD:
        _GUARD.append(_FieldGuard(QApplication.instance()))
    wheel = (QComboBox, QAbstractSpinBox, QAbstractSlider)
    typed = (QLineEdit, QAbstractSpinBox, QPlainTextEdit)
    for field in [root, *root.findChildren(QWidget)]:
        if isinstance(field, wheel):
            field.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        if isinstance(field, QLineEdit) and not isinstance(field.parentWidget(), QAbstractSpinBox):
            # Applied once editing finishes: Ctrl+Z then means the graph's undo.
            field.editingFinished.connect(lambda f=field: f.setModified(False))
        if isinstance(field, (*wheel, *typed)):
            field.installEventFilter(_GUARD[0])


def icon_button(name: str, tip: str) -> QToolButton:
    """A tool button drawing ``assets/icons/<name>.svg``, which ships with the app: emoji
    glyphs were empty boxes on machines without an emoji font. The tip names what it does."""
    button = QToolButton()
    button.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonIconOnly)
    try:
        path = assets_dir() / "icons" / f"{name}.svg"
    except AssetsNotFound:
        path = None
    if path is not None and path.is_file():
        button.setIcon(QIcon(str(path)))
    else:  # an install without its assets: a word still says what the button does
        button.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextOnly)
        button.setText(name)
    button.setToolTip(tip)
    return button


class ParamWidget(QWidget):
    """Base: an editor row plus a line for the engine's refusal message."""

    #: (validated value, merge): merge is True while a slider is being dragged.
    edited = Signal(object, bool)
    #: Something the user should know about an edit that went through (a clamped value).
    notice = Signal(str)

    def __init__(self, spec: Param) -> None:
        super().__init__()
        self.spec = spec
        self.row = QHBoxLayout()
        self.row.setContentsMargins(0, 0, 0, 0)
        self.error = QLabel("")
        self.error.setStyleSheet(text_style("error"))
        self.error.setWordWrap(True)
        self.error.hide()
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.setSpacing(2)
        lay.addLayout(self.row)
        lay.addWidget(self.error)
        self.setToolTip(f"{spec.name}: {spec.allowed()}" + (f"\n{spec.doc}" if spec.doc else ""))

    def offer(self, raw: Any, merge: bool = False) -> bool:
        """Validate as the engine does; report the value, or show why it is refused."""
        try:
            value = self.spec.validate(raw)
        except ValueError as exc:
            self.error.setText(f"{exc}: give {self.spec.allowed()}")
            self.error.show()
            return False
        self.error.hide()
        self.edited.emit(to_json_value(value), merge)
        return True

    def set_value(self, value: Any) -> None:
        raise NotImplementedError


class _Clamping:
    """Spin-box behaviour for typed numbers outside the range: the keystrokes are kept (Qt
    refuses them, so 150 typed into a 0-100 field silently became 15), and on commit the value
    is clamped to the nearest limit with a message saying so."""

    #: The last clamp's message, for the owner to show: "150 is above the maximum 100: ...".
    note: str = ""

    def _typed(self, text: str) -> float | None:
        box: Any = self
        value, ok = box.locale().toDouble(text.strip())
        return float(value) if ok else None

    def validate(self, text: str, pos: int) -> Any:
        box: Any = self
        value = self._typed(text)
        outside = value is not None and not box.minimum() <= value <= box.maximum()
        if outside or (text.strip() == "-" and box.minimum() >= 0):
            return QValidator.State.Intermediate, text, pos
        return super().validate(text, pos)  # type: ignore[misc]

    def fixup(self, text: str) -> str:
        box: Any = self
        value = self._typed(text)
        if value is None or box.minimum() <= value <= box.maximum():
            return super().fixup(text)  # type: ignore[misc]
        above = value > box.maximum()
        limit = box.maximum() if above else box.minimum()
        word = "is above the maximum" if above else "is below the minimum"
        self.note = f"{value:g} {word} {limit:g}: set to {limit:g}"
        return box.textFromValue(limit)


class IntField(_Clamping, QSpinBox):
    """An integer spin box that clamps typed values visibly."""


class FloatField(_Clamping, QDoubleSpinBox):
    """A decimal spin box that clamps typed values visibly."""


class NumberWidget(ParamWidget):
    """Spin box; with a slider too when the spec has both a minimum and a maximum."""

    def __init__(self, spec: Param) -> None:
        super().__init__(spec)
        self.is_int = issubclass(spec.type, Int)
        lo = spec.min if spec.min is not None else (-INT32 if self.is_int else -1e12)
        hi = spec.max if spec.max is not None else (INT32 if self.is_int else 1e12)
        if self.is_int:
            self.spin: IntField | FloatField = IntField()
            self.spin.setRange(int(max(lo, -INT32)), int(min(hi, INT32)))
            self.spin.setSingleStep(int(spec.step or 1))
        else:
            self.spin = FloatField()
            self.spin.setDecimals(4)
            self.spin.setRange(lo, hi)
            bounded = spec.min is not None and spec.max is not None
            self.spin.setSingleStep(spec.step or ((hi - lo) / 100 if bounded else 0.1))
        self.spin.setKeyboardTracking(False)
        self.spin.valueChanged.connect(lambda v: self.offer(v))
        self.spin.editingFinished.connect(self._show_clamp)
        self.slider: QSlider | None = None
        if spec.min is not None and spec.max is not None and spec.max > spec.min:
            self.slider = QSlider(Qt.Orientation.Horizontal)
            self.slider.setRange(0, SLIDER_STEPS)
            self.slider.valueChanged.connect(self._slid)
            self.row.addWidget(self.slider, 3)
        self.row.addWidget(self.spin, 2)

    def _show_clamp(self) -> None:
        """After a commit (the value, if it changed, is already offered): say what a clamp
        did, on the field and to the inspector's owner."""
        if self.spin.note:
            self.error.setText(self.spin.note)
            self.error.show()
            self.notice.emit(self.spin.note)
            self.spin.note = ""

    def _to_slider(self, v: float) -> int:
        lo, hi = float(self.spec.min), float(self.spec.max)  # type: ignore[arg-type]
        return round((v - lo) / (hi - lo) * SLIDER_STEPS)

    def _slid(self, pos: int) -> None:
        lo, hi = float(self.spec.min), float(self.spec.max)  # type: ignore[arg-type]
        v: float = lo + (hi - lo) * pos / SLIDER_STEPS
        if self.is_int:
            v = round(v)
        self.spin.blockSignals(True)
        self.spin.setValue(v)
        self.spin.blockSignals(False)
        self.offer(int(v) if self.is_int else v, merge=bool(self.slider.isSliderDown()))

    def set_value(self, value: Any) -> None:
        if value is None:
            return
        if value != self.spin.value():
            self.error.hide()  # another value (an undo): a clamp note no longer applies
        self.spin.blockSignals(True)
        self.spin.setValue(value)
        self.spin.blockSignals(False)
        if self.slider is not None:
            self.slider.blockSignals(True)
            self.slider.setValue(self._to_slider(float(value)))
            self.slider.blockSignals(False)


class SeedWidget(ParamWidget):
    """A 63-bit seed (too big for a spin box), a dice to randomize it and a lock against edits."""

    def __init__(self, spec: Param) -> None:
        super().__init__(spec)
        self.edit = QLineEdit()
        self.edit.editingFinished.connect(lambda: self.offer(self.edit.text()))
        self.dice = icon_button("dice", "randomize the seed")
        self.dice.clicked.connect(self.randomize)
        self.lock = icon_button("lock", "lock: keep this seed (no edits, no randomizing)")
        self.lock.setCheckable(True)
        self.lock.toggled.connect(self._locked)
        self.row.addWidget(self.edit, 1)
        self.row.addWidget(self.dice)
        self.row.addWidget(self.lock)

    def randomize(self) -> None:
        if not self.lock.isChecked():
            value = secrets.randbelow(2**32)
            self.edit.setText(str(value))
            self.offer(value)

    def _locked(self, on: bool) -> None:
        self.edit.setReadOnly(on)
        self.dice.setEnabled(not on)

    def set_value(self, value: Any) -> None:
        self.edit.setText("" if value is None else str(value))


class BoolWidget(ParamWidget):
    def __init__(self, spec: Param) -> None:
        super().__init__(spec)
        self.box = QCheckBox()
        self.box.toggled.connect(lambda on: self.offer(bool(on)))
        self.row.addWidget(self.box)
        self.row.addStretch(1)

    def set_value(self, value: Any) -> None:
        self.box.blockSignals(True)
        self.box.setChecked(bool(value))
        self.box.blockSignals(False)


class ChoiceWidget(ParamWidget):
    def __init__(self, spec: Param) -> None:
        super().__init__(spec)
        self.combo = QComboBox()
        self.combo.addItems([str(c) for c in spec.choices or ()])
        self.combo.currentTextChanged.connect(lambda text: self.offer(text))
        self.row.addWidget(self.combo, 1)

    def set_value(self, value: Any) -> None:
        self.combo.blockSignals(True)
        self.combo.setCurrentText(str(value))
        self.combo.blockSignals(False)


class _PromptEdit(QPlainTextEdit):
    """Multi-line text that commits when focus leaves (and after a pause in typing)."""

    def __init__(self, on_commit: Callable[[], None]) -> None:
        super().__init__()
        self.on_commit = on_commit

    def focusOutEvent(self, event: QFocusEvent) -> None:  # noqa: N802 - Qt's name
        super().focusOutEvent(event)
        self.on_commit()


class TextWidget(ParamWidget):
    """One line, or a multi-line prompt editor for ``multiline`` specs."""

    def __init__(self, spec: Param) -> None:
        super().__init__(spec)
        self._last: str | None = None
        if spec.multiline:
            self.text: QLineEdit | _PromptEdit = _PromptEdit(self._commit)
            self.text.setMinimumHeight(90)
            self._pause = QTimer(self)
            self._pause.setSingleShot(True)
            self._pause.setInterval(800)
            self._pause.timeout.connect(self._commit)
            self.text.textChanged.connect(self._pause.start)
        else:
            self.text = QLineEdit()
            self.text.editingFinished.connect(self._commit)
        self.row.addWidget(self.text, 1)

    def current_text(self) -> str:
        t = self.text
        return t.toPlainText() if isinstance(t, QPlainTextEdit) else t.text()

    def _commit(self) -> None:
        text = self.current_text()
        if isinstance(self.text, QPlainTextEdit):
            self.text.document().setModified(False)  # applied: Ctrl+Z is the graph's now
        if text != self._last:
            self._last = text
            self.offer(text)

    def set_value(self, value: Any) -> None:
        text = "" if value is None else str(value)
        self._last = text
        if self.current_text() == text:
            return
        self.text.blockSignals(True)
        if isinstance(self.text, QPlainTextEdit):
            self.text.setPlainText(text)
        else:
            self.text.setText(text)
        self.text.blockSignals(False)


PathPicker = Callable[[Param], str | None]

BROWSE_TIPS = {
    "open": "choose a file to read",
    "save": "choose where to write the file",
    "folder": "choose a folder",
}


class PathWidget(TextWidget):
    """A path field with a picker; ``pick`` is injected (a file dialog in the app). A spec
    that takes a sequence gets a second button, ``pick_folder``, for a folder of frames."""

    def __init__(
        self, spec: Param, pick: PathPicker, pick_folder: PathPicker | None = None
    ) -> None:
        super().__init__(spec)
        self.pick = pick
        self.pick_folder = pick_folder
        browse = QToolButton()
        browse.setText("…")
        browse.setToolTip(BROWSE_TIPS[dialog_kind(spec)])
        browse.clicked.connect(self.browse)
        self.row.addWidget(browse)
        self.folder_button: QToolButton | None = None
        if spec.sequence and pick_folder is not None:
            self.folder_button = icon_button(
                "folder",
                "choose a folder of frames (or type a numbered pattern like frames/%04d.png)",
            )
            self.folder_button.clicked.connect(self.browse_folder)
            self.row.addWidget(self.folder_button)

    def browse(self) -> None:
        self._chosen(self.pick(self.spec))

    def browse_folder(self) -> None:
        if self.pick_folder is not None:
            self._chosen(self.pick_folder(self.spec))

    def _chosen(self, chosen: str | None) -> None:
        if chosen:
            self.set_value(chosen)
            self.offer(chosen)


def is_folder(spec: Param) -> bool:
    """A generic path whose name or help says it is a folder."""
    words = f"{spec.name} {spec.doc}".lower()
    return "folder" in spec.name or "dir" in spec.name or words.startswith("folder")


def dialog_kind(spec: Param) -> str:
    """The dialog a path parameter gets: "open" for a file a node reads, "save" for one it
    writes; a generic path gets "folder" when named like one, else "open"."""
    if issubclass(spec.type, OutputFile):
        return "save"
    if issubclass(spec.type, InputFile):
        return "open"
    return "folder" if is_folder(spec) else "open"


def name_filter(spec: Param) -> str:
    """The file dialog's filter: the declared suffixes first, any file second."""
    if not spec.suffixes:
        return "All files (*)"
    patterns = " ".join(f"*{s}" for s in spec.suffixes)
    return f"{spec.name} files ({patterns});;All files (*)"


def choose_path(
    spec: Param, parent: QWidget | None, start: str, kind: str | None = None
) -> str | None:
    """Ask for a path with the dialog ``kind`` (default: the one the spec's kind calls for);
    None when the user cancels."""
    kind = kind or dialog_kind(spec)
    if kind == "folder":
        chosen = QFileDialog.getExistingDirectory(parent, spec.name, start)
    elif kind == "save":
        chosen, _ = QFileDialog.getSaveFileName(parent, spec.name, start, name_filter(spec))
    else:
        chosen, _ = QFileDialog.getOpenFileName(parent, spec.name, start, name_filter(spec))
    return chosen or None


class ColorWidget(ParamWidget):
    """A swatch opening the colour picker, and the hex text for typing."""

    def __init__(self, spec: Param) -> None:
        super().__init__(spec)
        self.swatch = QPushButton()
        self.swatch.setFixedWidth(44)
        self.swatch.clicked.connect(self.choose)
        self.hex = QLineEdit()
        self.hex.editingFinished.connect(lambda: self.offer(self.hex.text()))
        self.row.addWidget(self.swatch)
        self.row.addWidget(self.hex, 1)

    def choose(self) -> None:
        current = (
            QColor(self.hex.text()) if QColor.isValidColorName(self.hex.text()) else QColor("black")
        )
        picked = QColorDialog.getColor(
            current, self, self.spec.name, QColorDialog.ColorDialogOption.ShowAlphaChannel
        )
        if picked.isValid():
            self.offer(
                [
                    round(picked.redF(), 4),
                    round(picked.greenF(), 4),
                    round(picked.blueF(), 4),
                    round(picked.alphaF(), 4),
                ]
            )

    def set_value(self, value: Any) -> None:
        try:
            r, g, b, a = Color.coerce(value)
        except ValueError:
            return
        name = "#{:02x}{:02x}{:02x}".format(*(round(c * 255) for c in (r, g, b)))
        if a < 1:
            name += f"{round(a * 255):02x}"
        self.hex.setText(name)
        self.swatch.setStyleSheet(f"background: {name[:7]}; border: 1px solid #888;")


def make_widget(
    spec: Param,
    pick: PathPicker,
    suggestions: Callable[[str], list[str]] | None = None,
    pick_folder: PathPicker | None = None,
) -> ParamWidget:
    """The widget for a spec's kind; unknown kinds get a text field validated by the spec.
    A spec with ``suggest`` gets a completer over ``suggestions(spec.suggest)``."""
    widget = _make_widget(spec, pick, pick_folder)
    guard_fields(widget)
    if (
        spec.suggest
        and suggestions is not None
        and isinstance(widget, TextWidget)
        and isinstance(widget.text, QLineEdit)
    ):
        names = suggestions(spec.suggest)
        completer = QCompleter(names, widget)
        completer.setCaseSensitivity(Qt.CaseSensitivity.CaseInsensitive)
        completer.setCompletionMode(
            QCompleter.CompletionMode.UnfilteredPopupCompletion
            if len(names) <= 12
            else QCompleter.CompletionMode.PopupCompletion
        )
        widget.text.setCompleter(completer)
        widget.text.setPlaceholderText(
            ", ".join(names[:4]) + (" …" if len(names) > 4 else "") if names else "no subgraphs yet"
        )
    return widget


def _make_widget(spec: Param, pick: PathPicker, pick_folder: PathPicker | None) -> ParamWidget:
    t = spec.type
    if issubclass(t, Seed):
        return SeedWidget(spec)
    if issubclass(t, (Int, Float)):
        return NumberWidget(spec)
    if issubclass(t, Bool):
        return BoolWidget(spec)
    if spec.choices is not None or issubclass(t, Enum):
        return ChoiceWidget(spec)
    if issubclass(t, PathValue):
        return PathWidget(spec, pick, pick_folder)
    if issubclass(t, Color):
        return ColorWidget(spec)
    return TextWidget(spec)
