"""Small pictures of what each node last made, drawn on the node, so a canvas of look-alike
nodes (six "Save Image" nodes) tells them apart at a glance.

Which value a node shows comes from declared port types: its first output that is a picture
(image, mask, depth, video, RGBD, mesh, point cloud), else what its first picture input was given
(a Save node's output is only a path; what it wrote is what it was fed); a view set shows its
contact sheet and a textured mesh its texture. Depth, and one-channel video frames (a depth
video), are drawn in the turbo colour map, as the depth panel and the video player's Colour show
them. The pictures are made on the previews' worker thread (``app.preview.worker``): colourising
a depth map or rendering a mesh never runs on the GUI thread, which only wraps each small
finished array in a QImage.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from PySide6.QtCore import QObject
from PySide6.QtGui import QImage

from fathom.app.document import Document
from fathom.app.preview.image_view import to_qimage
from fathom.app.preview.video_player import shown_frame
from fathom.app.preview.worker import BackgroundRenderer
from fathom.engine.graph import Edge
from fathom.engine.types import RGBD, Depth, Image, Mask, Mesh, PointCloud, Video, Views

#: Longest side of a thumbnail in pixels (about the node's width at 100 % zoom).
THUMB_PX = 176
#: The value types a thumbnail can show.
DRAWN = (Image, Mask, Depth, Video, RGBD, Mesh, PointCloud, Views)


def _strided(data: np.ndarray, limit: int = THUMB_PX) -> np.ndarray:
    """Every n-th pixel, so the longest side is at most ``limit``: cheap, and at thumbnail
    size the aliasing it risks is not visible."""
    step = int(np.ceil(max(data.shape[:2]) / limit))
    return data[::step, ::step] if step > 1 else data


def _mesh_view(value: Mesh | PointCloud) -> np.ndarray:
    """One software render from a three-quarter view, as the mesh preview starts."""
    import math

    from fathom.engine.geometry.viewing import OrbitCamera, geometry_from_value, render_geometry

    geom = geometry_from_value(value)
    orbit = OrbitCamera(geom.center.copy(), 1.0, 30.0, 20.0)
    orbit.distance = geom.radius / math.sin(math.radians(orbit.fov) / 2) * 1.05
    return render_geometry(geom, orbit.camera(THUMB_PX, THUMB_PX * 3 // 4))


def thumbnail_array(value: Any) -> np.ndarray | None:
    """An H×W×C picture (floats in [0, 1]) of ``value`` at most THUMB_PX on a side, or None
    when the value is nothing a picture shows (numbers, text, cameras)."""
    if isinstance(value, RGBD):
        value = value.image
    if isinstance(value, Video):
        if len(value) == 0:
            return None
        frame = value.frame(len(value) // 2)  # the first is black for flow, fades, …
        # One-channel frames (a depth video) in the colour map the player's Colour shows and
        # depth thumbnails use, not grey.
        return shown_frame(_strided(frame.data), colour=True)
    if isinstance(value, Image):
        return _strided(value.data)
    if isinstance(value, Mask):
        return np.repeat(_strided(value.data)[:, :, None], 3, axis=2)
    if isinstance(value, Depth):
        from fathom.engine.imaging import depthmath

        return depthmath.colorize(
            _strided(value.data), "turbo", 2.0, 98.0, relative=value.kind == "relative"
        )
    if isinstance(value, (Mesh, PointCloud)):
        return _mesh_view(value)
    if isinstance(value, Views):  # the contact sheet, as the preview shows it (too small to label)
        from fathom.app.preview.view_sheet import sheet_array

        return sheet_array(value, labels=False, limit=THUMB_PX)
    return None


def shown_value(
    doc: Document,
    outputs: dict[str, dict[str, Any]],
    node_id: str,
    edges_in: list[Edge] | None = None,
) -> Any:
    """The value a node's thumbnail shows (see the module's docstring), or None. ``edges_in``:
    the node's incoming edges, when the caller has them at hand (else they are looked up)."""
    cls = doc.node_class(node_id)
    own = outputs.get(node_id) or {}
    names = [o.name for o in cls.outputs] if cls is not None else list(own)
    for name in names:
        if isinstance(own.get(name), DRAWN):
            return own[name]
    if edges_in is None:
        edges_in = [e for e in doc.graph.edges if e.dst == node_id]
    for edge in edges_in:
        fed = (outputs.get(edge.src) or {}).get(edge.src_port)
        if isinstance(fed, DRAWN):
            return fed
    return None


class ThumbnailMaker:
    """Makes thumbnails on a worker thread and hands each finished one to ``on_ready(node id,
    QImage or None)`` on the GUI thread. Values already drawn are not drawn again."""

    def __init__(self, on_ready: Callable[[str, QImage | None], None], parent: QObject) -> None:
        self.on_ready = on_ready
        self._worker = BackgroundRenderer(self._finished, parent)
        #: Per node, the value its current thumbnail shows (compared by identity).
        self._drawn: dict[str, Any] = {}
        #: Per node, the value still to draw; a new request replaces the node's old one.
        self._todo: dict[str, Any] = {}

    @property
    def idle(self) -> bool:
        return not self._todo and self._worker.idle

    def request(self, values: dict[str, Any]) -> None:
        """Draw these nodes' values (None clears a node's thumbnail)."""
        for nid, value in values.items():
            if value is None:
                self._todo.pop(nid, None)
                if self._drawn.pop(nid, None) is not None:
                    self.on_ready(nid, None)
            elif self._drawn.get(nid) is not value:
                self._todo[nid] = value
        if self._todo:
            # The worker runs the newest job only: each job carries everything not yet drawn.
            batch = dict(self._todo)
            self._worker.submit(lambda: self._draw(batch), batch)

    def forget(self) -> None:
        self._todo.clear()
        self._drawn.clear()

    def _draw(self, batch: dict[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for nid, value in batch.items():
            if self._worker.superseded():
                break  # a newer job holds this node too
            try:
                out[nid] = thumbnail_array(value)
            except Exception as exc:  # noqa: BLE001 - a bad value gets no picture, not a crash
                out[nid] = exc
        return out

    def _finished(self, batch: dict[str, Any], result: Any) -> None:
        if isinstance(result, Exception):
            return
        for nid, array in result.items():
            value = batch[nid]
            if self._todo.get(nid) is not value:
                continue  # asked again meanwhile, with a newer value
            del self._todo[nid]
            self._drawn[nid] = value
            ok = isinstance(array, np.ndarray)
            self.on_ready(nid, to_qimage(array) if ok else None)
