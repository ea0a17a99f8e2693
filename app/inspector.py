"""The inspector: the selected node's title, help, flags, parameters and outputs.

Parameter widgets are generated from the node's declared specs (``app.param_widgets``); every
change becomes an undoable command, and undo/redo flows back into the widgets through the
graph's events. The "Open in 360° viewer" button is offered from output metadata (an output
whose viewers include "360"), never from node type ids.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QPoint, Qt, QTimer, Signal
from PySide6.QtWidgets import (
    QApplication,
    QCheckBox,
    QComboBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QScrollArea,
    QVBoxLayout,
    QWidget,
)

from fathom.app.commands import SetFlags, SetParam, SetTitle
from fathom.app.document import Document, relative_to
from fathom.app.model_catalog import ModelCatalog
from fathom.app.model_picker import LoraPicker, ModelPicker, model_role
from fathom.app.param_checks import param_problems, problems_text
from fathom.app.param_widgets import (
    ParamWidget,
    SeedWidget,
    choose_path,
    guard_fields,
    make_widget,
)
from fathom.app.theme import text_style
from fathom.engine.node import Node, Param


class Inspector(QWidget):
    """Edits one node at a time; ``set_node(None)`` shows a hint instead."""

    #: Show this node's output in the preview dock: (node id, output name).
    show_output = Signal(str, str)
    #: Open the 360° viewer on this node: (node id, output name).
    open_360 = Signal(str, str)
    #: A notice for the status bar: (text, milliseconds).
    notice = Signal(str, int)
    #: A node's parameters were checked: (node id, its problems' text; empty when none).
    params_checked = Signal(str, str)
    #: A parameter's name was right-clicked: (node id, parameter, screen position).
    param_menu = Signal(str, str, QPoint)

    def __init__(
        self, doc: Document, parent: QWidget | None = None, models: ModelCatalog | None = None
    ) -> None:
        super().__init__(parent)
        self.doc = doc
        #: The models on this machine, for model parameters' pickers.
        self.models = models if models is not None else ModelCatalog(self)
        self.node_id: str | None = None
        self.widgets: dict[str, ParamWidget] = {}
        #: The "Open in 360° viewer" button, when the node has something that viewer shows.
        self.open360: QPushButton | None = None
        self.pick_path: Callable[[Param], str | None] = self._dialog_pick
        #: The output a node's preview shows, as last chosen (the window asks its previews).
        self.output_of: Callable[[str], str | None] = lambda node_id: None
        #: For parameters that take a sequence: a folder of frames.
        self.pick_folder: Callable[[Param], str | None] = self._dialog_pick_folder
        #: For model parameters: a model file ("open") or folder ("folder").
        self.pick_model_path: Callable[[Param, str], str | None] = self._dialog_pick
        #: What the node's own pre-flight check found at a node of the level shown, by its id
        #: there (the window points this at its live checks); the banner shows it when the
        #: values themselves have no problem, as a run would refuse on it then.
        self.checked_problems: Callable[[str], str] = lambda node_id: ""
        self._unsubscribe: Any = None
        self._body = QWidget()
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setWidget(self._body)
        self._scroll = scroll
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        #: The selected node's parameter problems (values that constrain each other), above
        #: the scrolling part so they stay in sight while the user edits.
        self.param_problems = QLabel()
        self.param_problems.setWordWrap(True)
        self.param_problems.setStyleSheet(f"{text_style('error')} padding: 4px;")
        self.param_problems.hide()
        lay.addWidget(self.param_problems)
        lay.addWidget(scroll)
        self._form_host = QVBoxLayout(self._body)
        doc.reset.connect(self._resubscribe)
        doc.level_changed.connect(self._resubscribe)  # into or out of a subgraph
        doc.ui_changed.connect(self._on_ui_changed)
        self._resubscribe()

    # ---- model hookup ----------------------------------------------------------------------

    def _resubscribe(self) -> None:
        if self._unsubscribe is not None:
            self._unsubscribe()
        self._unsubscribe = self.doc.graph.subscribe(self._on_graph_event)
        self.set_node(None)
        for nid in self.doc.graph.nodes:  # a graph opened with values that cannot run
            self._check(nid)

    def _check(self, node_id: str) -> None:
        """Validate the node's parameters together, as a run would before it starts."""
        text = problems_text(param_problems(self.doc, node_id))
        self.params_checked.emit(node_id, text)
        if node_id == self.node_id:
            self._show_problems(text or self.checked_problems(node_id))

    def refresh_problems(self) -> None:
        """Show the selected node's problems again (a pre-flight check's result came back)."""
        nid = self.node_id
        if nid is not None and nid in self.doc.graph.nodes:
            self._show_problems(self._problems(nid))

    def _problems(self, node_id: str) -> str:
        return problems_text(param_problems(self.doc, node_id)) or self.checked_problems(node_id)

    def _show_problems(self, text: str) -> None:
        appears = bool(text) and self.param_problems.isHidden()
        self.param_problems.setText(text)
        self.param_problems.setVisible(bool(text))
        if appears:  # it takes room from the scrolling part: keep the field in use in sight
            QTimer.singleShot(0, self, self._keep_focus_in_view)

    def _keep_focus_in_view(self) -> None:
        field = QApplication.focusWidget()
        if field is not None and self._body.isAncestorOf(field):
            self.layout().activate()  # the scrolling part's new height, before measuring
            # The whole field, not its text cursor (what ensureWidgetVisible keeps in view).
            mid = field.mapTo(self._body, field.rect().center())
            self._scroll.ensureVisible(mid.x(), mid.y(), 0, field.height() // 2 + 8)

    def _on_graph_event(self, event: str, payload: dict[str, Any]) -> None:
        if event in ("param_changed", "node_added"):
            self._check(payload["node"])
        if payload.get("node") != self.node_id or self.node_id is None:
            return
        if event == "param_changed" and payload["param"] in self.widgets:
            self.widgets[payload["param"]].set_value(payload["value"])
            self._mode_changed(payload["param"])
        elif event == "flags_changed":
            inst = self.doc.graph.nodes[self.node_id]
            for box, on in ((self.bypass, inst.bypass), (self.mute, inst.mute)):
                box.blockSignals(True)
                box.setChecked(on)
                box.blockSignals(False)
        elif event == "node_removed":
            self.set_node(None)

    def _on_ui_changed(self, kind: str, ident: str) -> None:
        if kind == "title" and ident == self.node_id:
            self.title.setText(self.doc.graph.nodes[ident].title or "")

    # ---- building -----------------------------------------------------------------------------

    def _clear(self) -> None:
        while self._form_host.count():
            item = self._form_host.takeAt(0)
            widget = item.widget()
            if widget is not None:
                widget.hide()  # gone now, not when the event loop gets to deleting it
                widget.setParent(None)
                widget.deleteLater()
        self.widgets = {}
        self.open360 = None

    def set_node(self, node_id: str | None) -> None:
        self._clear()
        self.node_id = node_id if node_id in self.doc.graph.nodes else None
        text = self._problems(self.node_id) if self.node_id else ""
        self.param_problems.setText(text)
        self.param_problems.setStyleSheet(f"{text_style('error')} padding: 4px;")  # theme's
        self.param_problems.setVisible(bool(text))
        if self.node_id is None:
            hint = QLabel(
                "Select a node to edit its parameters.\n\nTab or double-click on the "
                "canvas adds a node; drag from a port to connect."
            )
            hint.setWordWrap(True)
            hint.setAlignment(Qt.AlignmentFlag.AlignTop)
            self._form_host.addWidget(hint)
            return
        nid = self.node_id
        inst = self.doc.graph.nodes[nid]
        cls = self.doc.node_class(nid)
        head = QWidget()
        form = QFormLayout(head)
        self.title = QLineEdit(inst.title or "")
        self.title.setPlaceholderText(self.doc.title(nid))
        self.title.editingFinished.connect(self._rename)
        form.addRow("Title", self.title)
        form.addRow(
            "Node",
            QLabel(f"{nid}  ·  {inst.type}" + (f" v{cls.version}" if cls is not None else "")),
        )
        flags = QHBoxLayout()
        self.bypass = QCheckBox("Bypass")
        self.bypass.setChecked(inst.bypass)
        self.bypass.setToolTip("pass inputs through to same-typed outputs")
        self.bypass.toggled.connect(lambda on: self._flag(bypass=on))
        self.mute = QCheckBox("Mute")
        self.mute.setChecked(inst.mute)
        self.mute.setToolTip("skip this node and everything that needs it")
        self.mute.toggled.connect(lambda on: self._flag(mute=on))
        flags.addWidget(self.bypass)
        flags.addWidget(self.mute)
        flags.addStretch(1)
        form.addRow("", _wrap(flags))
        self._form_host.addWidget(head)
        if cls is None:
            missing = QLabel(
                f"Unknown node type '{inst.type}': install the plugin that "
                "provides it. Its parameters are kept as they are."
            )
            missing.setWordWrap(True)
            self._form_host.addWidget(missing)
            self._form_host.addStretch(1)
            return
        if cls.doc():
            help_text = QLabel(cls.doc())
            help_text.setWordWrap(True)
            help_text.setStyleSheet(text_style("help"))
            self._form_host.addWidget(help_text)
        params = QWidget()
        pform = QFormLayout(params)
        locked = self.doc.graph.ui.get("nodes", {}).get(nid, {}).get("locked", [])
        for spec in cls.params:
            widget = self._param_widget(cls, spec, nid)
            widget.set_value(inst.params.get(spec.name, spec.default))
            widget.edited.connect(
                lambda value, merge, name=spec.name: self._edited(name, value, merge)
            )
            widget.notice.connect(lambda text: self.notice.emit(text, 8000))
            if isinstance(widget, SeedWidget):
                widget.lock.setChecked(spec.name in locked)
                widget.lock.toggled.connect(lambda on, name=spec.name: self._lock(name, on))
            label = QLabel(spec.name)
            label.setToolTip(spec.doc)
            label.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
            label.customContextMenuRequested.connect(
                lambda at, name=spec.name, lab=label: self.param_menu.emit(
                    nid, name, lab.mapToGlobal(at)
                )
            )
            pform.addRow(label, widget)
            self.widgets[spec.name] = widget
        self._form_host.addWidget(params)
        if cls.outputs:
            self._form_host.addWidget(self._outputs_row(cls))
        self._form_host.addStretch(1)
        guard_fields(self._body)  # the title, model pickers and the output choice too

    def _param_widget(self, cls: type[Node], spec: Param, nid: str) -> ParamWidget:
        """The editor for one parameter: a model picker where the node's declarations say
        the parameter names a model (or its LoRA lines), else the widget of its kind."""
        role = model_role(cls, spec)
        if role == "model":
            return ModelPicker(
                spec,
                self.models,
                tuple(getattr(cls, "families", ())),
                getattr(cls, "inpainting", None),
                lambda s, kind: self.pick_model_path(s, kind),
                lambda: self.doc.base_dir,
                cls,
                lambda: str(self._param_value(nid, cls, cls.mode_param) or ""),
            )
        if role == "loras":
            return LoraPicker(
                spec, self.models, lambda: self._model_value(nid, cls), lambda: self.doc.base_dir
            )
        return make_widget(
            spec, lambda s: self.pick_path(s), self._suggestions, lambda s: self.pick_folder(s)
        )

    def _param_value(self, nid: str, cls: type[Node], name: str) -> Any:
        """The node's parameter ``name`` now (its default when unset); None if there is none."""
        inst = self.doc.graph.nodes.get(nid)
        spec = next((p for p in cls.params if p.name == name), None)
        if inst is None or spec is None:
            return None
        return inst.params.get(name, spec.default)

    def _mode_changed(self, name: str) -> None:
        """The selected node's mode parameter changed: its model pickers say what fits now."""
        cls = self.doc.node_class(self.node_id) if self.node_id is not None else None
        if cls is None or not cls.mode_models or name != cls.mode_param:
            return
        for widget in self.widgets.values():
            if isinstance(widget, ModelPicker):
                widget.mode_changed()

    def _model_value(self, nid: str, cls: type[Node]) -> str:
        """The node's current model (for the LoRAs that fit it)."""
        inst = self.doc.graph.nodes.get(nid)
        spec = next((p for p in cls.params if model_role(cls, p) == "model"), None)
        if inst is None or spec is None:
            return ""
        return str(inst.params.get(spec.name, spec.default) or "")

    def _suggestions(self, kind: str) -> list[str]:
        return self.doc.subgraph_names() if kind == "subgraphs" else []

    def _outputs_row(self, cls: type[Node]) -> QWidget:
        """Output choice and Preview on one line, the 360° button under them: one line for
        all of it asked for more width than a docked inspector has (a sideways scroll bar)."""
        row = QWidget()
        column = QVBoxLayout(row)
        column.setContentsMargins(0, 8, 0, 0)
        lay = QHBoxLayout()
        lay.setContentsMargins(0, 0, 0, 0)
        column.addLayout(lay)
        self.output_choice = QComboBox()
        self.output_choice.setSizeAdjustPolicy(
            QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon
        )
        self.output_choice.setMinimumContentsLength(10)
        for o in cls.outputs:
            self.output_choice.addItem(f"{o.name} ({o.type.type_id})", o.name)
        chosen = self.output_choice.findData(self.output_of(self.node_id or ""))
        self.output_choice.setCurrentIndex(max(chosen, 0))
        # Choosing an output shows it at once; Preview shows it again (e.g. after a run).
        self.output_choice.currentIndexChanged.connect(
            lambda _: self.show_output.emit(self.node_id or "", self.output_choice.currentData())
        )
        show = QPushButton("Preview")
        show.setToolTip("show this output in the preview dock")
        show.clicked.connect(
            lambda: self.show_output.emit(self.node_id or "", self.output_choice.currentData())
        )
        lay.addWidget(QLabel("Output"))
        lay.addWidget(self.output_choice, 1)
        lay.addWidget(show)
        if any("360" in o.shown_in() for o in cls.outputs):
            self.open360 = QPushButton("Open in 360° viewer")
            self.open360.clicked.connect(
                lambda: self.open_360.emit(self.node_id or "", self.output_choice.currentData())
            )
            column.addWidget(self.open360, 0, Qt.AlignmentFlag.AlignLeft)
        return row

    # ---- edits -> commands ---------------------------------------------------------------------

    def _edited(self, name: str, value: Any, merge: bool) -> None:
        nid = self.node_id
        if nid is None:
            return
        current = self.doc.graph.nodes[nid].params
        if name in current and current[name] == value:
            return
        self.doc.undo_stack.push(SetParam(self.doc, nid, name, value, merge))

    def _flag(self, bypass: bool | None = None, mute: bool | None = None) -> None:
        if self.node_id is not None:
            self.doc.undo_stack.push(SetFlags(self.doc, self.node_id, bypass, mute))

    def _rename(self) -> None:
        nid = self.node_id
        if nid is not None and (self.title.text() or None) != self.doc.graph.nodes[nid].title:
            self.doc.undo_stack.push(SetTitle(self.doc, nid, self.title.text()))

    def _lock(self, name: str, on: bool) -> None:
        """Seed locks are editor data: they guard against edits, they change no result."""
        entry = self.doc.graph.ui.setdefault("nodes", {}).setdefault(self.node_id, {})
        locked = [n for n in entry.get("locked", []) if n != name] + ([name] if on else [])
        if locked:
            entry["locked"] = locked
        else:
            entry.pop("locked", None)

    def _dialog_pick(self, spec: Param, kind: str | None = None) -> str | None:
        """The dialog the parameter's kind calls for; the answer relative to the graph."""
        chosen = choose_path(spec, self, str(self.doc.base_dir), kind)
        return relative_to(chosen, self.doc.base_dir) if chosen else None

    def _dialog_pick_folder(self, spec: Param) -> str | None:
        return self._dialog_pick(spec, "folder")


def _wrap(layout: QHBoxLayout) -> QWidget:
    w = QWidget()
    layout.setContentsMargins(0, 0, 0, 0)
    w.setLayout(layout)
    return w
