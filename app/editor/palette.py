"""The node palette: a search popup listing node types as a category tree, with favourites and
recently added types at the top and each type's one-line description.

Opened by Tab or a double-click on the canvas, and by dropping a wire on empty space (then it
lists only nodes with a port that wire can join). Typing ranks matches by name, category and
port type (``in:depth``, ``out:mesh``); the popup stays inside the screen it opens on.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from typing import TYPE_CHECKING

from PySide6.QtCore import QEvent, QObject, QPoint, QPointF, QRect, QSize, Qt, QTimer, Signal
from PySide6.QtGui import (
    QBrush,
    QColor,
    QFont,
    QGuiApplication,
    QIcon,
    QKeyEvent,
    QPainter,
    QPainterPath,
    QPixmap,
)
from PySide6.QtWidgets import (
    QFrame,
    QHeaderView,
    QLabel,
    QLineEdit,
    QMenu,
    QTreeWidget,
    QTreeWidgetItem,
    QTreeWidgetItemIterator,
    QVBoxLayout,
    QWidget,
)

from fathom.engine.node import Node
from fathom.engine.types import can_connect

if TYPE_CHECKING:
    from fathom.app.settings import Settings

#: Category names as the palette shows them (others are capitalised); subgraph node classes
#: carry the category "subgraph" (``engine.subgraph``).
CATEGORY_NAMES = {"io": "Input / Output", "rgbd": "RGBD", "subgraph": "Subgraphs"}
#: Up to this many matches the category tree opens fully; more, and only the sections do.
EXPAND_ALL_UP_TO = 30
#: The star column: a click there (or the context menu) toggles a favourite.
NAME, DESCRIPTION, STAR = 0, 1, 2
TYPE_ROLE = Qt.ItemDataRole.UserRole
#: Marks a section heading (the Favourites one is updated in place).
SECTION_ROLE = Qt.ItemDataRole.UserRole + 1
FAVOURITES = "favourites"
_SENTENCE_END = re.compile(r"(?<!\be\.g)(?<!\bi\.e)[.!?](?=\s|$)")
DESCRIPTION_CHARS = 110


def _accepts(cls: type[Node], src_type: str) -> bool:
    return any(can_connect(src_type, i.type.type_id) for i in cls.inputs)


def _gives(cls: type[Node], dst_type: str) -> bool:
    return any(can_connect(o.type.type_id, dst_type) for o in cls.outputs)


def _score(cls: type[Node], token: str) -> int | None:
    """Lower is better; None: the token matches nothing about this node."""
    title = (cls.title or cls.type_id).lower()
    if token.startswith("in:"):
        return 4 if any(i.type.type_id == token[3:] for i in cls.inputs) else None
    if token.startswith("out:"):
        return 4 if any(o.type.type_id == token[4:] for o in cls.outputs) else None
    if title.startswith(token):
        return 0
    if token in title:
        return 1
    if token in cls.type_id:
        return 2
    if token in cls.category.lower():
        return 3
    if any(p.type.type_id == token for p in (*cls.inputs, *cls.outputs)):
        return 4
    return None


def search_nodes(
    classes: Sequence[type[Node]], query: str, accepts: str | None = None, gives: str | None = None
) -> list[type[Node]]:
    """Node types matching every word of ``query`` (name, id, category, port type, or
    ``in:TYPE`` / ``out:TYPE``); ``accepts``/``gives`` keep only nodes a dragged wire can join."""
    tokens = query.lower().split()
    ranked: list[tuple[int, str, type[Node]]] = []
    for cls in classes:
        if accepts is not None and not _accepts(cls, accepts):
            continue
        if gives is not None and not _gives(cls, gives):
            continue
        scores = [_score(cls, t) for t in tokens]
        if any(s is None for s in scores):
            continue
        ranked.append((sum(scores), (cls.title or cls.type_id).lower(), cls))  # type: ignore[arg-type]
    ranked.sort(key=lambda r: (r[0], r[1]))
    return [r[2] for r in ranked]


def one_line(cls: type[Node]) -> str:
    """The first sentence of a node's description: enough to tell similar nodes apart."""
    text = cls.doc().split("\n\n")[0].strip()
    end = _SENTENCE_END.search(text)
    if end is not None:
        text = text[: end.end()]
    if len(text) > DESCRIPTION_CHARS:
        text = text[: DESCRIPTION_CHARS - 1].rsplit(" ", 1)[0] + "…"
    return text


def category_name(category: str) -> str:
    return CATEGORY_NAMES.get(category, category.capitalize() or "Other")


def _star_icon(filled: bool) -> QIcon:
    """A five-pointed star drawn here: no emoji font needed."""
    pix = QPixmap(32, 32)
    pix.fill(Qt.GlobalColor.transparent)
    path = QPainterPath()
    for i in range(10):
        r = 14.0 if i % 2 == 0 else 6.0
        angle = -90 + i * 36
        a = math.radians(angle)
        point = QPointF(16 + r * math.cos(a), 16 + r * math.sin(a))
        path.moveTo(point) if i == 0 else path.lineTo(point)
    path.closeSubpath()
    p = QPainter(pix)
    p.setRenderHint(QPainter.RenderHint.Antialiasing)
    p.setPen(QColor("#f4b400") if filled else QColor("#80868b"))
    p.setBrush(QColor("#f4b400") if filled else Qt.BrushStyle.NoBrush)
    p.drawPath(path)
    p.end()
    return QIcon(pix)


class NodePalette(QFrame):
    """Type to filter, arrows to move, Enter to add; Escape or a click elsewhere closes it.
    A click on a row's star (or its context menu) makes the type a favourite."""

    chosen = Signal(str)

    def __init__(self, parent: QWidget | None = None, settings: Settings | None = None) -> None:
        super().__init__(parent, Qt.WindowType.Popup | Qt.WindowType.FramelessWindowHint)
        self.setFrameShape(QFrame.Shape.StyledPanel)
        self.setMinimumSize(340, 300)
        self.resize(560, 440)
        self.settings = settings
        #: Without settings (a bare palette) favourites and recents last as long as it does.
        self._favourites: list[str] = []
        self._recent: list[str] = []
        self.classes: list[type[Node]] = []
        self.accepts: str | None = None
        self.gives: str | None = None
        self._matches: list[type[Node]] = []
        #: The favourites while the tree is filled (read from the settings once per fill).
        self._favs_now: set[str] = set()
        self._stars = (_star_icon(False), _star_icon(True))
        self.hint = QLabel("")
        self.search = QLineEdit()
        self.search.setPlaceholderText("Search nodes: name, category, port type, in:image…")
        self.tree = self._make_tree()
        self.nothing = QLabel("")
        self.nothing.setAlignment(Qt.AlignmentFlag.AlignHCenter | Qt.AlignmentFlag.AlignTop)
        self.nothing.setContentsMargins(12, 24, 12, 12)
        self.nothing.setWordWrap(True)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(6, 6, 6, 6)
        lay.addWidget(self.hint)
        lay.addWidget(self.search)
        lay.addWidget(self.tree, 1)
        lay.addWidget(self.nothing, 1)
        self.nothing.hide()
        self.search.textChanged.connect(self.refresh)
        self.search.installEventFilter(self)

    def _make_tree(self) -> QTreeWidget:
        tree = QTreeWidget()
        tree.setColumnCount(3)
        tree.setHeaderHidden(True)
        tree.setUniformRowHeights(True)
        tree.setIconSize(QSize(14, 14))
        header = tree.header()
        header.setStretchLastSection(False)
        header.setSectionResizeMode(NAME, QHeaderView.ResizeMode.Interactive)
        header.setSectionResizeMode(DESCRIPTION, QHeaderView.ResizeMode.Stretch)
        header.setSectionResizeMode(STAR, QHeaderView.ResizeMode.Fixed)
        tree.setColumnWidth(NAME, 190)
        tree.setColumnWidth(STAR, 26)
        tree.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        tree.customContextMenuRequested.connect(self._context_menu)
        tree.itemClicked.connect(self._clicked)
        tree.itemActivated.connect(lambda item, _col: self._activate(item))
        return tree

    # ---- opening -------------------------------------------------------------------------------

    def open(
        self,
        classes: Sequence[type[Node]],
        at: QPoint | None = None,
        accepts: str | None = None,
        gives: str | None = None,
    ) -> None:
        self.classes = list(classes)
        self.accepts, self.gives = accepts, gives
        if accepts:
            self.hint.setText(f"nodes that take {accepts}")
        elif gives:
            self.hint.setText(f"nodes that give {gives}")
        else:
            self.hint.setText("add a node (click a row's star to keep it at the top)")
        self.search.clear()
        self.refresh()
        if at is not None:
            self.move(self.placed_at(at))
        self.show()
        self.search.setFocus()

    def placed_at(self, at: QPoint) -> QPoint:
        """Where the popup goes for a click at ``at``: there, or moved (above the point when
        it does not fit below) so the whole popup stays on the screen's available area."""
        screen = QGuiApplication.screenAt(at) or self.screen() or QGuiApplication.primaryScreen()
        area: QRect = screen.availableGeometry()
        w, h = self.width(), self.height()
        x, y = at.x(), at.y()
        if y + h > area.bottom() + 1 and at.y() - h >= area.top():
            y = at.y() - h
        x = max(area.left(), min(x, area.right() + 1 - w))
        y = max(area.top(), min(y, area.bottom() + 1 - h))
        return QPoint(x, y)

    # ---- favourites and recent -----------------------------------------------------------------

    def favourites(self) -> list[str]:
        return self.settings.favourite_nodes() if self.settings else list(self._favourites)

    def recent(self) -> list[str]:
        return self.settings.recent_nodes() if self.settings else list(self._recent)

    def toggle_favourite(self, type_id: str) -> None:
        favs = self.favourites()
        favs = [t for t in favs if t != type_id] if type_id in favs else [*favs, type_id]
        if self.settings is not None:
            self.settings.set_favourite_nodes(favs)
        else:
            self._favourites = favs
        self._show_favourites(favs)

    def _show_favourites(self, favs: list[str]) -> None:
        """Update the stars and the Favourites section in place: the categories the user
        opened stay open and the list does not jump."""
        self._favs_now = set(favs)
        it = QTreeWidgetItemIterator(self.tree)
        while it.value() is not None:
            item = it.value()
            type_id = item.data(NAME, TYPE_ROLE)
            if type_id is not None:
                item.setIcon(STAR, self._stars[type_id in favs])
            it += 1
        if self.search.text().strip():
            return  # a ranked search list has no sections
        by_id = {c.type_id: c for c in self._matches}
        classes = [by_id[t] for t in favs if t in by_id]
        top = self.tree.topLevelItem(0)
        if top is not None and top.data(NAME, SECTION_ROLE) == FAVOURITES:
            self.tree.takeTopLevelItem(0)
        if classes:
            self._section("Favourites", classes, expanded=True, at=0, key=FAVOURITES)

    def _note_recent(self, type_id: str) -> None:
        from fathom.app.settings import MAX_RECENT_NODES

        if self.settings is not None:
            self.settings.add_recent_node(type_id)
        else:
            self._recent = [type_id, *[t for t in self._recent if t != type_id]]
            del self._recent[MAX_RECENT_NODES:]

    # ---- the list ------------------------------------------------------------------------------

    def refresh(self) -> None:
        """A ranked flat list while searching; otherwise favourites, recent, then categories."""
        query = self.search.text()
        self._favs_now = set(self.favourites())
        self._matches = search_nodes(self.classes, query, self.accepts, self.gives)
        self.tree.clear()
        self.tree.setRootIsDecorated(not query.strip())
        if query.strip():
            for cls in self._matches:
                self.tree.addTopLevelItem(self._node_item(cls))
        else:
            self._fill_sections()
        self._show_nothing(query)
        first = self._first_node_item()
        if first is not None:
            self.tree.setCurrentItem(first)

    def _fill_sections(self) -> None:
        by_id = {c.type_id: c for c in self._matches}
        favs = [by_id[t] for t in self.favourites() if t in by_id]
        recent = [by_id[t] for t in self.recent() if t in by_id]
        if favs:
            self._section("Favourites", favs, expanded=True, key=FAVOURITES)
        if recent:
            self._section("Recently added", recent, expanded=True)
        groups: dict[str, list[type[Node]]] = {}
        for cls in self._matches:
            groups.setdefault(cls.category, []).append(cls)
        expand = len(self._matches) <= EXPAND_ALL_UP_TO
        for cat in sorted(groups, key=lambda c: (c == "subgraph", category_name(c).lower())):
            self._section(category_name(cat), groups[cat], expanded=expand)

    def _section(
        self,
        title: str,
        classes: list[type[Node]],
        expanded: bool,
        at: int | None = None,
        key: str = "",
    ) -> QTreeWidgetItem:
        head = QTreeWidgetItem([f"{title}  ({len(classes)})"])
        font = QFont(head.font(NAME))
        font.setBold(True)
        head.setFont(NAME, font)
        head.setFlags(Qt.ItemFlag.ItemIsEnabled)
        head.setData(NAME, SECTION_ROLE, key)
        if key == FAVOURITES:
            head.setIcon(NAME, self._stars[True])
        if at is None:
            self.tree.addTopLevelItem(head)
        else:
            self.tree.insertTopLevelItem(at, head)
        head.setFirstColumnSpanned(True)
        for cls in classes:
            head.addChild(self._node_item(cls))
        head.setExpanded(expanded)
        return head

    def _node_item(self, cls: type[Node]) -> QTreeWidgetItem:
        item = QTreeWidgetItem([cls.title or cls.type_id, one_line(cls), ""])
        item.setData(NAME, TYPE_ROLE, cls.type_id)
        item.setForeground(DESCRIPTION, QBrush(QColor("#8a8f98")))
        item.setIcon(STAR, self._stars[cls.type_id in self._favs_now])
        ins = ", ".join(f"{i.name}:{i.type.type_id}" for i in cls.inputs)
        outs = ", ".join(f"{o.name}:{o.type.type_id}" for o in cls.outputs)
        tip = f"{cls.title or cls.type_id}  [{category_name(cls.category)}]\n"
        tip += f"{cls.type_id} ({ins}) → ({outs})\n\n{cls.doc()}"
        for col in (NAME, DESCRIPTION):
            item.setToolTip(col, tip)
        item.setToolTip(STAR, "favourite: listed at the top of the palette")
        return item

    def _show_nothing(self, query: str) -> None:
        empty = not self._matches
        if empty:
            limit = (
                f" among nodes that take {self.accepts}"
                if self.accepts
                else f" among nodes that give {self.gives}"
                if self.gives
                else ""
            )
            self.nothing.setText(
                f"Nothing matches “{query.strip()}”{limit}.\n\n"
                "Try fewer or shorter words, a category (depth, video), "
                "or a port type: in:image, out:mesh."
            )
        self.nothing.setVisible(empty)
        self.tree.setVisible(not empty)

    def _first_node_item(self) -> QTreeWidgetItem | None:
        """The first visible node row, else the first row (a closed category: Enter opens it)."""
        first = item = self.tree.topLevelItem(0)
        while item is not None and item.data(NAME, TYPE_ROLE) is None:
            item = self.tree.itemBelow(item)
        return item or first

    def results(self) -> list[str]:
        """The matching type ids, best first, each once (the sections repeat some)."""
        return [c.type_id for c in self._matches]

    def nothing_matches(self) -> bool:
        return not self._matches

    # ---- choosing ------------------------------------------------------------------------------

    def choose(self) -> None:
        item = self.tree.currentItem()
        if item is not None:
            self._activate(item)

    def _activate(self, item: QTreeWidgetItem) -> None:
        type_id = item.data(NAME, TYPE_ROLE)
        if type_id is None:  # a category: Enter opens or closes it
            item.setExpanded(not item.isExpanded())
            return
        self.hide()
        self._note_recent(type_id)
        self.chosen.emit(type_id)

    def _clicked(self, item: QTreeWidgetItem, column: int) -> None:
        type_id = item.data(NAME, TYPE_ROLE)
        if type_id is not None and column == STAR:
            # After this click's signal: the toggle may remove the very row clicked.
            QTimer.singleShot(0, lambda: self.toggle_favourite(type_id))
        elif type_id is None:
            item.setExpanded(not item.isExpanded())

    def _context_menu(self, pos: QPoint) -> None:
        item = self.tree.itemAt(pos)
        type_id = item.data(NAME, TYPE_ROLE) if item is not None else None
        if type_id is None:
            return
        menu = QMenu(self)
        favourite = type_id in self.favourites()
        toggle = menu.addAction("Remove from Favourites" if favourite else "Add to Favourites")
        add = menu.addAction("Add Node")
        picked = menu.exec(self.tree.viewport().mapToGlobal(pos))
        if picked is toggle:
            self.toggle_favourite(type_id)
        elif picked is add:
            self._activate(item)

    def _step(self, down: bool) -> None:
        """Move to the next (previous) visible row: a node, or a category Enter opens."""
        item = self.tree.currentItem()
        if item is not None:
            item = self.tree.itemBelow(item) if down else self.tree.itemAbove(item)
        if item is not None:
            self.tree.setCurrentItem(item)

    def eventFilter(self, obj: QObject, event: QEvent) -> bool:  # noqa: N802 - Qt's name
        if (
            obj is self.search
            and isinstance(event, QKeyEvent)
            and event.type() == QEvent.Type.KeyPress
        ):
            key = event.key()
            if key in (Qt.Key.Key_Down, Qt.Key.Key_Up):
                self._step(key == Qt.Key.Key_Down)
                return True
            if key in (Qt.Key.Key_Return, Qt.Key.Key_Enter):
                self.choose()
                return True
            if key == Qt.Key.Key_Escape:
                self.hide()
                return True
        return super().eventFilter(obj, event)
