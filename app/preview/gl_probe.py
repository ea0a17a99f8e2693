"""Whether this display can draw with OpenGL, and on what: one probe shared by the 3D preview and
the 360° viewer (each imports it from here, so neither imports the other). A probe makes a
context, tens of ms, so it runs once, at start-up, not at the first 3D preview.
"""

from __future__ import annotations

import os

from PySide6.QtGui import QGuiApplication, QOffscreenSurface, QOpenGLContext

#: OpenGL renderers that rasterize on the CPU (Mesa's, under Xvfb or in a VM). Drawing a large
#: mesh there blocks the GUI thread for hundreds of ms a frame while it waits for the picture,
#: so the "auto" backend uses the software path, which renders on a worker thread.
SOFTWARE_GL = ("llvmpipe", "softpipe", "swrast", "software rasterizer")
GL_RENDERER = 0x1F01
#: The OpenGL renderer's name once probed (None: no usable OpenGL): a probe makes a context,
#: tens of ms, so it is made once (at start-up) and not again at the first 3D preview.
_probed: dict[str, str | None] = {}


def gl_available() -> bool:
    """Whether Qt can make an OpenGL context here. False on the offscreen platform (where
    ``QOpenGLWidget`` draws nothing) or with ``FATHOM_PREVIEW_GL=0``."""
    if os.environ.get("FATHOM_PREVIEW_GL", "") == "0":
        return False
    if QGuiApplication.instance() is None or QGuiApplication.platformName() in (
        "offscreen",
        "minimal",
    ):
        return False
    if "renderer" not in _probed:
        _probed["renderer"] = _probe_gl()
    return _probed["renderer"] is not None


def _probe_gl() -> str | None:
    """The renderer's name ("" if it cannot be asked), None when OpenGL is unusable here."""
    ctx = QOpenGLContext()
    if not ctx.create():
        return None
    try:
        import pyqtgraph.opengl  # noqa: F401 - probing that PyOpenGL loads
    except Exception:  # noqa: BLE001 - any import/driver failure means "use the fallback"
        return None
    surface = QOffscreenSurface()
    surface.setFormat(ctx.format())
    surface.create()
    if not ctx.makeCurrent(surface):
        return ""
    try:
        return str(ctx.functions().glGetString(GL_RENDERER) or "")
    finally:
        ctx.doneCurrent()


def gl_on_gpu() -> bool:
    """OpenGL that draws on a GPU: what the "auto" backend uses. ``FATHOM_PREVIEW_GL=1`` asks
    for OpenGL even where it rasterizes on the CPU."""
    if not gl_available():
        return False
    if os.environ.get("FATHOM_PREVIEW_GL", "") == "1":
        return True
    name = (_probed.get("renderer") or "").lower()
    return not any(s in name for s in SOFTWARE_GL)
