"""Where new nodes go: clear of the nodes already there, and inside the part of the canvas the
user is looking at. Pure geometry on scene rectangles, so it is tested without a window."""

from __future__ import annotations

from PySide6.QtCore import QPointF, QRectF

#: Space kept between a copy and its original, and between a placed node and the view's edge.
GAP = 30.0
#: How far a copy moves on when the spot below its original is taken (the canvas grid).
STEP = 25.0


def free_offset(block: QRectF, others: list[QRectF], gap: float = GAP) -> QPointF:
    """The offset that puts ``block`` (e.g. the nodes being duplicated) just below itself,
    then further down a grid step at a time, until it overlaps none of ``others``: the copy
    is plainly a copy, and it hides nothing."""
    dy = block.height() + gap
    for _ in range(1000):
        moved = block.translated(0.0, dy)
        if not any(moved.intersects(o) for o in others):
            break
        dy += STEP
    return QPointF(0.0, dy)


def clamp_into(rect: QRectF, bounds: QRectF, margin: float = GAP) -> QPointF:
    """How far to move ``rect`` so it lies inside ``bounds`` less ``margin`` (moving as little
    as possible); when it cannot fit, its top-left corner (the title) is what stays inside."""
    inner = bounds.adjusted(margin, margin, -margin, -margin)
    dx = dy = 0.0
    if rect.right() > inner.right():
        dx = inner.right() - rect.right()
    if rect.left() + dx < inner.left():
        dx = inner.left() - rect.left()
    if rect.bottom() > inner.bottom():
        dy = inner.bottom() - rect.bottom()
    if rect.top() + dy < inner.top():
        dy = inner.top() - rect.top()
    return QPointF(dx, dy)


def out_from_under(rect: QRectF, cover: QRectF, bounds: QRectF, gap: float = GAP) -> QPointF:
    """How far to move ``rect`` so ``cover`` (the minimap, in the view's bottom-right corner)
    hides none of it: left or up, whichever is the shorter move that stays inside ``bounds``."""
    if not rect.intersects(cover):
        return QPointF()
    left = QPointF(cover.left() - gap - rect.right(), 0.0)
    up = QPointF(0.0, cover.top() - gap - rect.bottom())
    fits = [m for m in (left, up) if bounds.contains(rect.translated(m))]
    return min(fits or [left, up], key=lambda m: abs(m.x()) + abs(m.y()))
