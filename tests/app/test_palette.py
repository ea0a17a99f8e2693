"""The node palette as a user meets it: it stays on screen, lists categories with one-line
descriptions, says when nothing matches, keeps favourites and recent nodes, lists the subgraph
library."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from PySide6.QtCore import QPoint, Qt
from PySide6.QtGui import QGuiApplication
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QTreeWidgetItemIterator

from fathom.app.editor.palette import DESCRIPTION, NAME, STAR, TYPE_ROLE, one_line
from fathom.app.settings import Settings
from fathom.engine.graph import Graph
from fathom.engine.graphfile import save_subgraph
from fathom.engine.node import Node
from fathom.engine.subgraph import make_subgraph


def test_palette_opened_near_the_bottom_right_stays_on_screen(qtbot: Any, window: Any) -> None:
    screen = QGuiApplication.primaryScreen().availableGeometry()
    pal = window.palette
    pal.open(window.editing.node_classes(), QPoint(screen.right() - 20, screen.bottom() - 10))
    qtbot.waitExposed(pal)
    assert pal.isVisible()
    assert screen.contains(pal.frameGeometry()), (pal.frameGeometry(), screen)
    pal.hide()


def test_palette_opened_near_the_bottom_right_stays_near_the_point(window: Any) -> None:
    """Moved only as far as it must: its bottom-right corner is the screen's."""
    screen = QGuiApplication.primaryScreen().availableGeometry()
    pal = window.palette
    at = QPoint(screen.right() - 20, screen.bottom() - 10)
    pal.open(window.editing.node_classes(), at)
    assert pal.frameGeometry().right() == screen.right()
    assert pal.frameGeometry().bottom() <= at.y()  # opened above the point: no room below
    pal.hide()


def node_rows(pal: Any) -> list[tuple[str, str, str]]:
    """(section, type id, description) of every node row in the tree, top to bottom."""
    out = []
    for i in range(pal.tree.topLevelItemCount()):
        head = pal.tree.topLevelItem(i)
        for j in range(head.childCount()):
            child = head.child(j)
            out.append((head.text(NAME), child.data(NAME, TYPE_ROLE), child.text(DESCRIPTION)))
    return out


def open_with_tab(qtbot: Any, window: Any) -> Any:
    window.view.setFocus()
    QTest.keyClick(window.view, Qt.Key.Key_Tab)
    assert window.palette.isVisible()
    return window.palette


def test_palette_is_a_category_tree_with_one_line_descriptions(
    qtbot: Any, window: Any, test_registry: Any
) -> None:
    pal = open_with_tab(qtbot, window)
    heads = [pal.tree.topLevelItem(i).text(NAME) for i in range(pal.tree.topLevelItemCount())]
    assert any(h.startswith("Image  (") for h in heads) and any(
        h.startswith("Depth") for h in heads
    )
    rows = {tid: (section, desc) for section, tid, desc in node_rows(pal)}
    adjust = test_registry.get("image.adjust")
    section, desc = rows["image.adjust"]
    assert section.startswith("Image")
    first_sentence = adjust.doc().split(". ")[0] + "."
    assert desc == one_line(adjust) and desc.startswith(first_sentence[:40])
    assert len(desc) <= 110 and "\n" not in desc
    # Categories start closed: Enter opens one, Down reaches its first node, Enter adds it.
    head = pal.tree.currentItem()
    assert head.data(NAME, TYPE_ROLE) is None and not head.isExpanded()
    qtbot.keyClick(pal.search, Qt.Key.Key_Return)
    assert head.isExpanded() and window.doc.graph.nodes == {}
    qtbot.keyClick(pal.search, Qt.Key.Key_Down)
    first = head.child(0).data(NAME, TYPE_ROLE)
    assert pal.tree.currentItem().data(NAME, TYPE_ROLE) == first
    qtbot.keyClick(pal.search, Qt.Key.Key_Return)
    assert [n.type for n in window.doc.graph.nodes.values()] == [first]


def test_one_line_is_the_first_sentence() -> None:
    class N(Node):
        """Blur an image, e.g. to hide noise. Then more text that is not shown.

        A second paragraph."""

        type_id = "t.n"

    assert one_line(N) == "Blur an image, e.g. to hide noise."


def test_a_search_that_finds_nothing_says_so(qtbot: Any, window: Any) -> None:
    pal = open_with_tab(qtbot, window)
    assert not pal.nothing.isVisible() and pal.tree.isVisible()
    qtbot.keyClicks(pal.search, "zzzqx")
    assert pal.results() == [] and pal.nothing.isVisible() and not pal.tree.isVisible()
    assert "Nothing matches" in pal.nothing.text() and "zzzqx" in pal.nothing.text()
    qtbot.keyClick(pal.search, Qt.Key.Key_Return)  # nothing to add: nothing happens
    assert window.doc.graph.nodes == {}
    for _ in range(5):
        qtbot.keyClick(pal.search, Qt.Key.Key_Backspace)
    assert pal.results() and pal.tree.isVisible() and not pal.nothing.isVisible()


def test_search_syntax_still_ranks_a_flat_list(qtbot: Any, window: Any) -> None:
    pal = open_with_tab(qtbot, window)
    qtbot.keyClicks(pal.search, "out:mesh")
    assert pal.results() and pal.tree.topLevelItemCount() == len(pal.results())
    assert pal.tree.currentItem().data(NAME, TYPE_ROLE) == pal.results()[0]


def click_star(pal: Any, type_id: str) -> None:
    it = QTreeWidgetItemIterator(pal.tree)
    while it.value() is not None:
        item = it.value()
        parent = item.parent()
        if item.data(NAME, TYPE_ROLE) == type_id and (parent is None or parent.isExpanded()):
            pal.tree.scrollToItem(item)
            rect = pal.tree.visualItemRect(item)
            x = pal.tree.header().sectionViewportPosition(STAR) + 8
            QTest.mouseClick(
                pal.tree.viewport(),
                Qt.MouseButton.LeftButton,
                Qt.KeyboardModifier.NoModifier,
                QPoint(x, rect.center().y()),
            )
            return
        it += 1
    raise AssertionError(f"{type_id} is not listed")


def test_a_starred_node_is_a_favourite_at_the_top_and_is_remembered(
    qtbot: Any, window: Any, settings: Any
) -> None:
    pal = open_with_tab(qtbot, window)
    qtbot.keyClicks(pal.search, "invert")
    click_star(pal, "image.invert")
    qtbot.waitUntil(lambda: settings.favourite_nodes() == ["image.invert"])
    assert Settings(settings.path()).favourite_nodes() == ["image.invert"]  # on disk
    pal.hide()
    pal = open_with_tab(qtbot, window)
    assert pal.tree.topLevelItem(0).text(NAME).startswith("Favourites")
    assert node_rows(pal)[0][1] == "image.invert"
    assert pal.tree.currentItem().data(NAME, TYPE_ROLE) == "image.invert"
    click_star(pal, "image.invert")  # again, in the Favourites section: no longer one
    qtbot.waitUntil(lambda: settings.favourite_nodes() == [])
    assert not pal.tree.topLevelItem(0).text(NAME).startswith("Favourites")
    pal.hide()


def test_starring_keeps_the_opened_category_open(qtbot: Any, window: Any, settings: Any) -> None:
    pal = open_with_tab(qtbot, window)
    heads = [pal.tree.topLevelItem(i) for i in range(pal.tree.topLevelItemCount())]
    (image,) = [h for h in heads if h.text(NAME).startswith("Image  (")]
    image.setExpanded(True)
    click_star(pal, "image.adjust")
    qtbot.waitUntil(lambda: settings.favourite_nodes() == ["image.adjust"])
    assert pal.tree.topLevelItem(0).text(NAME).startswith("Favourites")
    assert image.isExpanded()  # the same heading, still open
    rows = [pal.tree.topLevelItem(0).child(0)]
    rows += [image.child(i) for i in range(image.childCount())]
    filled = pal._stars[True].cacheKey()
    for row in rows:  # a filled star on every row of the favourite, an outline on the others
        is_fav = row.data(NAME, TYPE_ROLE) == "image.adjust"
        assert (row.icon(STAR).cacheKey() == filled) == is_fav
    pal.hide()


def test_recently_added_nodes_come_first(qtbot: Any, window: Any, settings: Any) -> None:
    for query in ("invert", "adjust"):
        pal = open_with_tab(qtbot, window)
        qtbot.keyClicks(pal.search, query)
        qtbot.keyClick(pal.search, Qt.Key.Key_Return)
    assert settings.recent_nodes() == ["image.adjust", "image.invert"]
    pal = open_with_tab(qtbot, window)
    assert pal.tree.topLevelItem(0).text(NAME).startswith("Recently added")
    assert [r[1] for r in node_rows(pal)[:2]] == ["image.adjust", "image.invert"]
    pal.hide()
    for i in range(12):
        settings.add_recent_node(f"t.{i}")
    assert len(settings.recent_nodes()) == 8


@pytest.fixture
def library(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, test_registry: Any) -> Path:
    """A subgraph library folder holding 'twice' (the studio reads it when it starts)."""
    g = Graph()
    g.add_node("math.binary", "n1", {"a": 1.0, "b": 2.0})
    g.add_node("math.binary", "n2", {"op": "mul", "b": 2.0})
    g.connect("n1", "value", "n2", "a")
    make_subgraph(g, ["n1", "n2"], "twice")
    lib = tmp_path / "subgraphs"
    save_subgraph(g.subgraphs["twice"], lib, test_registry)
    monkeypatch.setenv("FATHOM_SUBGRAPH_PATH", str(lib))
    return lib


@pytest.fixture
def lib_window(library: Path, window: Any) -> Any:
    return window


def test_the_library_folders_subgraphs_are_in_the_palette(qtbot: Any, lib_window: Any) -> None:
    window = lib_window
    pal = open_with_tab(qtbot, window)
    sections = {tid: section for section, tid, _ in node_rows(pal)}
    assert sections["subgraph.twice"].startswith("Subgraphs")
    qtbot.keyClicks(pal.search, "twice")
    qtbot.keyClick(pal.search, Qt.Key.Key_Return)
    (inst,) = window.doc.graph.nodes.values()
    assert inst.type == "subgraph.twice"
    assert window.doc.node_class(inst.id) is not None  # it resolves: ports, params, a run
