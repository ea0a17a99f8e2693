"""Opens node outputs in the 360° viewer: what it shows of a node (the panorama the node is fed,
a mesh, an RGBD panorama or photo) and the one viewer window a main window keeps.

Which outputs the viewer takes comes from node metadata (an output's viewers include "360"),
never from node type ids, so a plugin's outputs open here too. The preview dock's 3D panel
reaches this through a signal, so neither viewer module imports the other.
"""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import QObject, Signal
from PySide6.QtWidgets import QWidget

from fathom.app.document import Document
from fathom.app.runner import Task
from fathom.app.session import RunSession
from fathom.app.viewer360 import Viewer360
from fathom.engine.geometry.meshing import rgbd_mesh
from fathom.engine.graph import Graph
from fathom.engine.types import RGBD, Camera, Depth, Image, Mesh, PortType

#: A photo's RGBD is meshed as the RGBD → mesh node does with its defaults: this vertical field
#: of view when the RGBD has no camera, and this largest relative depth spread in a triangle.
PHOTO_FOV = 60.0
PHOTO_CUT = 0.05


def shows_in_360(value: Any) -> bool:
    return isinstance(value, PortType) and "360" in type(value).viewers


def is_equirect(image: Image) -> bool:
    """2:1 within a pixel: what the viewer accepts as an equirectangular panorama."""
    return abs(image.width - 2 * image.height) <= 1


def fed_panorama(
    graph: Graph, outputs: dict[str, dict[str, Any]], node_id: str
) -> tuple[Image, Depth] | None:
    """The equirectangular colour + distance pair wired into a node, if its inputs hold one.

    The viewer meshes such a pair itself, at a coarse and a fine grid and with a backdrop that
    fills cracks, which walks better than the single mesh a node made of it."""
    fed = [outputs.get(e.src, {}).get(e.src_port) for e in graph.incoming(node_id)]
    image = next((v for v in fed if isinstance(v, Image)), None)
    depth = next((v for v in fed if isinstance(v, Depth)), None)
    if image is None or depth is None or not is_equirect(image):
        return None
    if (image.height, image.width) != (depth.height, depth.width):
        return None
    return image, depth


def photo_mesh(rgbd: RGBD) -> Mesh:
    """A photo's RGBD as a mesh to walk around in, cut at depth jumps."""
    if rgbd.depth.kind != "metric":
        raise ValueError("the depth is relative, so it has no scale: make it metric first")
    h, w = rgbd.image.height, rgbd.image.width
    cam = rgbd.camera or Camera.from_fov(w, h, PHOTO_FOV)
    mesh = rgbd_mesh(rgbd, cam, PHOTO_CUT, 1, "vertex")
    if len(mesh.faces) == 0:
        raise ValueError("no triangle survived: the depth is too sparse")
    return Mesh(mesh)


class Viewer360Opener(QObject):
    """Shows node outputs in one lazily made 360° viewer window."""

    #: A notice for the status bar: (text, milliseconds).
    notice = Signal(str, int)
    #: Making what the viewer shows failed (on a worker): the message.
    error = Signal(str)

    def __init__(self, doc: Document, session: RunSession, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.doc = doc
        self.session = session
        self.viewer: Viewer360 | None = None
        self._tasks: list[Task] = []

    def viewer_window(self) -> Viewer360:
        if self.viewer is None:
            self.viewer = Viewer360()
            self.viewer.setWindowTitle("360° viewer — Fathom Studio")
            self.viewer.resize(1000, 640)
        return self.viewer

    def ports(self, node_id: str) -> list[str]:
        """The node's outputs the 360° viewer shows, by their declared viewers."""
        cls = self.doc.node_class(node_id)
        return [o.name for o in cls.outputs if "360" in o.shown_in()] if cls is not None else []

    def open(self, node_id: str, port: str | None = None) -> bool:
        """Open the viewer on what a node fed (a panorama) or made (``port``, else its first
        output the viewer shows)."""
        values = self.session.outputs.get(node_id, {})
        if node_id not in self.doc.graph.nodes or not values:
            self.notice.emit("Run the graph first: this node has no output yet", 5000)
            return False
        ports = self.ports(node_id)
        pano = fed_panorama(self.doc.graph, self.session.outputs, node_id) if ports else None
        if pano is not None:
            viewer = self.viewer_window()
            viewer.show_panorama(*pano)
            return _raise(viewer)
        if port not in ports:
            port = next((p for p in ports if values.get(p) is not None), None)
        value = values.get(port) if port is not None else None
        if value is None:  # outputs typed "any" declare no viewers: their values may
            value = next((v for v in values.values() if shows_in_360(v)), None)
        return self.show_value(value)

    def show_value(self, value: Any) -> bool:
        """A mesh as it is; an RGBD as a panorama when 2:1, else meshed first. The viewer shows
        "Loading…" while its scene is made on a worker: the GUI never waits for it."""
        if not isinstance(value, (Mesh, RGBD)):
            self.notice.emit("No panorama, mesh or RGBD output to show", 5000)
            return False
        viewer = self.viewer_window()
        if isinstance(value, Mesh):
            viewer.show_mesh(value)
        elif is_equirect(value.image):
            viewer.show_panorama(value.image, value.depth)
        else:
            self._mesh_off_thread(value, viewer)
        return _raise(viewer)

    def _mesh_off_thread(self, rgbd: RGBD, viewer: Any) -> None:
        """Meshing a photo takes long enough to stall the GUI: it runs on a worker."""
        task = Task(lambda: photo_mesh(rgbd), self)
        task.succeeded.connect(viewer.show_mesh)
        task.failed.connect(lambda msg: self.error.emit(f"360° viewer: {msg}"))
        task.finished.connect(lambda: self._tasks.remove(task))
        self._tasks.append(task)
        task.start()

    def close(self) -> None:
        """Wait for meshing workers (a running QThread must not be destroyed) and close."""
        for task in list(self._tasks):
            task.wait(5000)
        if self.viewer is not None:
            self.viewer.close()


def _raise(viewer: QWidget) -> bool:
    viewer.show()
    viewer.raise_()
    return True
