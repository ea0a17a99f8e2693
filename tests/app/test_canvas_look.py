"""How the canvas looks: titles readable at the zoom a graph opens at, category colours that
tell families apart, unmistakable bypass and mute, and theme colours that meet WCAG contrast."""

from __future__ import annotations

import itertools
from typing import Any

from PySide6.QtCore import QRectF, Qt
from PySide6.QtGui import QColor, QImage, QPainter
from PySide6.QtTest import QTest

from fathom.app.editor.node_item import HEADER_H, NODE_W, text_detail
from fathom.app.editor.view import OPEN_MIN_ZOOM
from fathom.app.theme import THEMES, contrast_ratio, text_pairs
from fathom.engine.registry import CATEGORY_COLORS, node_family
from fathom.engine.resources import example_graphs

DEMO = "depthfusion_demo"


def _open(qtbot: Any, window: Any, name: str) -> None:
    assert window.files.open(example_graphs()[name], ask=False)
    qtbot.wait(50)


def _bright_pixels(image: QImage, rect: QRectF) -> int:
    """Pixels of the light title text colour inside ``rect`` (headers are dark)."""
    count = 0
    r = rect.toAlignedRect().intersected(image.rect())
    for y in range(r.top(), r.bottom()):
        for x in range(r.left(), r.right()):
            c = image.pixelColor(x, y)
            count += c.red() > 190 and c.green() > 190 and c.blue() > 190
    return count


def test_every_example_opens_with_readable_titles(qtbot: Any, window: Any) -> None:
    """At the default window size every bundled example opens at a zoom where node titles are
    painted at least 9 px tall, and the title's pixels are really on screen."""
    for name in example_graphs():
        _open(qtbot, window, name)
        zoom = window.view.zoom()
        detail = text_detail(zoom)
        assert not detail.blocks, (name, zoom)
        assert detail.title_px * zoom >= 9.0, (name, zoom)
    _open(qtbot, window, DEMO)
    shot = window.view.viewport().grab().toImage()
    shown = 0
    for item in window.scene.nodes.values():
        top_left = window.view.mapFromScene(item.scenePos())
        zoom = window.view.zoom()
        header = QRectF(top_left.x() + 4, top_left.y() + 2, (NODE_W - 40) * zoom, HEADER_H * zoom)
        if shot.rect().contains(header.toAlignedRect()):
            shown += _bright_pixels(shot, header) >= 12
    assert shown >= 10  # titles are drawn on the nodes in view


def _lab(c: QColor) -> tuple[float, float, float]:
    def lin(v: float) -> float:
        return v / 12.92 if v <= 0.04045 else ((v + 0.055) / 1.055) ** 2.4

    r, g, b = lin(c.redF()), lin(c.greenF()), lin(c.blueF())
    x = (0.4124 * r + 0.3576 * g + 0.1805 * b) / 0.95047
    y = 0.2126 * r + 0.7152 * g + 0.0722 * b
    z = (0.0193 * r + 0.1192 * g + 0.9505 * b) / 1.08883

    def f(t: float) -> float:
        return t ** (1 / 3) if t > 0.008856 else 7.787 * t + 16 / 116

    return 116 * f(y) - 16, 500 * (f(x) - f(y)), 200 * (f(y) - f(z))


def _delta_e(a: QColor, b: QColor) -> float:
    return float(sum((p - q) ** 2 for p, q in zip(_lab(a), _lab(b), strict=True)) ** 0.5)


def test_category_colours_tell_the_families_of_each_example_apart(qtbot: Any, window: Any) -> None:
    """Each node's header is its family's colour (from registry metadata), and in every example
    the families present differ clearly (CIE76 delta E >= 20), the video demo included."""
    for name in example_graphs():
        _open(qtbot, window, name)
        colours: dict[str, QColor] = {}
        for nid, item in window.scene.nodes.items():
            cls = window.doc.node_class(nid)
            assert cls is not None
            family = node_family(cls)
            assert item.header_color.name() == window.registry.node_color(cls), (name, nid)
            colours.setdefault(family, item.header_color)
        if name == "video_edit_demo":
            assert {"load", "save", "video"} <= set(colours)
        for (fa, ca), (fb, cb) in itertools.combinations(colours.items(), 2):
            assert _delta_e(ca, cb) >= 20, (name, fa, fb)


def test_title_text_is_readable_on_every_header_colour() -> None:
    for family, colour in CATEGORY_COLORS.items():
        assert contrast_ratio(QColor("#f1f3f4"), QColor(colour)) >= 4.5, family


def _render(window: Any, nid: str) -> QImage:
    item = window.scene.nodes[nid]
    rect = item.sceneBoundingRect()
    image = QImage(int(rect.width()), int(rect.height()), QImage.Format.Format_RGB32)
    image.fill(QColor("#1e1f22"))
    painter = QPainter(image)
    window.scene.render(painter, QRectF(image.rect()), rect)
    painter.end()
    return image


def _difference(a: QImage, b: QImage) -> float:
    """Mean absolute difference per channel (0..255)."""
    total = 0
    for y in range(0, a.height(), 2):
        for x in range(0, a.width(), 2):
            p, q = a.pixelColor(x, y), b.pixelColor(x, y)
            total += abs(p.red() - q.red()) + abs(p.green() - q.green()) + abs(p.blue() - q.blue())
    return total / (3 * ((a.height() + 1) // 2) * ((a.width() + 1) // 2))


def test_bypass_and_mute_are_unmistakable_and_distinct(qtbot: Any, window: Any, add: Any) -> None:
    """Ctrl+B and Ctrl+E change a node's look clearly, and differently, even for a node whose
    header is purple (the colour bypass used to be)."""
    for type_id in ("view.render", "image.invert"):
        nid = add(type_id, 0, 0)
        window.view.centerOn(window.scene.nodes[nid])
        window.scene.select_nodes([])
        normal = _render(window, nid)
        window.scene.select_nodes([nid])
        QTest.keyClick(window.view, Qt.Key.Key_B, Qt.KeyboardModifier.ControlModifier)
        assert window.doc.graph.nodes[nid].bypass
        window.scene.select_nodes([])
        bypassed = _render(window, nid)
        window.scene.select_nodes([nid])
        QTest.keyClick(window.view, Qt.Key.Key_B, Qt.KeyboardModifier.ControlModifier)
        QTest.keyClick(window.view, Qt.Key.Key_E, Qt.KeyboardModifier.ControlModifier)
        assert window.doc.graph.nodes[nid].mute
        window.scene.select_nodes([])
        muted = _render(window, nid)
        assert _difference(normal, bypassed) >= 12, type_id
        assert _difference(normal, muted) >= 12, type_id
        assert _difference(bypassed, muted) >= 12, type_id
        window.doc.undo_stack.undo()


def test_theme_text_colours_meet_wcag_contrast() -> None:
    """Every text colour of both themes (palette text, errors, warnings, help) has a contrast
    ratio of at least 4.5 on the background it is drawn on."""
    for theme in THEMES:
        pairs = text_pairs(theme)
        assert {"error on base", "help on window", "placeholder on base"} <= set(pairs)
        for what, (fg, bg) in pairs.items():
            assert contrast_ratio(fg, bg) >= 4.5, (theme, what, fg.name(), bg.name())


def _big_graph(path: Any, registry: Any, count: int) -> Any:
    from fathom.engine.graph import Edge, Graph, NodeInstance
    from fathom.engine.graphfile import dumps, to_document

    graph = Graph()
    graph.nodes = {f"n{i}": NodeInstance(f"n{i}", "image.invert", {}) for i in range(count)}
    graph.edges = [Edge(f"n{i}", "image", f"n{i + 1}", "image") for i in range(count - 1)]
    path.write_text(dumps(to_document(graph, registry)))
    return path


def test_a_graph_too_big_to_fit_opens_readable_at_its_start(
    qtbot: Any, window: Any, tmp_path: Any
) -> None:
    """Forty nodes in a chain would fit only at a zoom where nodes are blank blocks: the graph
    opens at a readable zoom instead, showing where its flow starts."""
    path = _big_graph(tmp_path / "chain.json", window.registry, 40)
    assert window.files.open(path, ask=False)
    qtbot.wait(50)
    zoom = window.view.zoom()
    detail = text_detail(zoom)
    assert not detail.blocks and detail.title_px * zoom >= 9.0
    first = window.scene.nodes["n0"].sceneBoundingRect()
    assert window.view.visible_rect().contains(first)
    # F still fits everything, however small.
    window.menus.fit_action.trigger()
    last = window.scene.nodes["n39"].sceneBoundingRect()
    assert window.view.visible_rect().contains(last) and window.view.zoom() < zoom


def test_the_fit_follows_the_view_size_until_the_user_moves_the_view(
    qtbot: Any, window: Any
) -> None:
    """Docks settling or the window resizing right after a graph opens must not clip the
    right-most node; once the user has zoomed, resizing leaves the view alone."""
    _open(qtbot, window, DEMO)

    def all_shown() -> bool:
        shown = window.view.visible_rect()
        return all(shown.contains(i.sceneBoundingRect()) for i in window.scene.nodes.values())

    assert all_shown()
    window.resize(1300, 860)
    qtbot.wait(50)
    # Fitted again: everything shows, unless that needs a zoom below the readable floor.
    assert all_shown() or abs(window.view.zoom() - OPEN_MIN_ZOOM) < 1e-6
    assert window.view.zoom() >= OPEN_MIN_ZOOM - 1e-6
    window.view.zoom_by(1.5)
    zoom = window.view.zoom()
    window.resize(1500, 920)
    qtbot.wait(50)
    assert window.view.zoom() == zoom


def test_labels_the_inspector_colours_are_readable_in_the_light_theme(
    qtbot: Any, window: Any, add: Any
) -> None:
    """Help text and error lines set their own colours: in the light theme they must still
    have 4.5:1 contrast on the panel (the dark theme's salmon and grey had about 2.3)."""
    import re

    from PySide6.QtWidgets import QApplication, QLabel

    from fathom.app.theme import apply_theme

    app = QApplication.instance()
    apply_theme(app, "light")
    try:
        nid = add("image.invert", 0, 0)
        window.scene.select_nodes([nid])
        qtbot.wait(20)
        background = window.inspector.palette().window().color()
        assert background.name() == "#f1f3f4"
        coloured = [
            label
            for label in window.inspector.findChildren(QLabel)
            if "color:" in label.styleSheet()
        ]
        assert coloured  # the node's help text at least
        for label in coloured:
            colour = QColor(re.search(r"color:\s*(#[0-9a-fA-F]{6})", label.styleSheet())[1])
            assert contrast_ratio(colour, background) >= 4.5, (label.text(), colour.name())
    finally:
        apply_theme(app, "dark")
