"""The 360° viewer's OpenGL canvas: the panorama's depth-displaced sphere drawn by the GPU.

The torch rasterizer takes most of a second for a sharp 1280×720 frame on a CPU, so walking
with it shows a trail of stale, blurry frames. Here the scene (vertices + UVs, triangle indices
and the equirectangular texture, packed on the loader's worker thread by ``pack_scene``) goes
to the GPU once; each frame is then one draw call with a new view matrix, made on the GUI
thread when Qt repaints, so what is shown is always the view of that moment. The depth scale is
a shader uniform: changing it re-uploads nothing.

A still view's full mesh can take longer to draw than the GUI thread may be busy (Mesa's
llvmpipe: ~0.15 µs per triangle on the calling thread, several times that on a loaded 2-core
machine). So a full mesh over ``CHUNK_TRIANGLES`` is drawn progressively: the coarse frame stays
on screen while slices of the full mesh go into an offscreen framebuffer, one slice per event-
loop turn (each sized to take about ``CHUNK_MS``), and the finished frame is shown at once.
Any change of view abandons it.

It runs on any OpenGL 2.1 context (GLSL 1.20), hardware or Mesa's llvmpipe. Where Qt cannot
make a context (the offscreen platform) the viewer uses its software canvas instead; if the
shaders fail here, ``failed`` asks the viewer to switch to it.
"""

from __future__ import annotations

import ctypes
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtOpenGLWidgets import QOpenGLWidget
from PySide6.QtWidgets import QLabel

from fathom.engine.geometry.scene import RenderScene
from fathom.engine.geometry.viewing import gl_view_projection

if TYPE_CHECKING:
    from fathom.app.viewer360 import Viewer360

#: Largest texture side uploaded (every desktop GPU and llvmpipe take 8192).
MAX_TEXTURE = 8192
FLOATS = 8  # per vertex: position (3), uv (2), colour (3)
#: A full mesh with more triangles than this is drawn progressively (see the module's notes):
#: above a panorama's coarse mesh (2·192·96), which is drawn whole while moving.
CHUNK_TRIANGLES = 40_000
#: The first slice, before a rate is measured: small, as the first draw of a scene also pays
#: for llvmpipe compiling its shader variant (a 60k-triangle first slice took ~50 ms here).
FIRST_SLICE = 8_000
#: Aimed-for time of one slice of a progressive draw, on the GUI thread.
CHUNK_MS = 20.0

VERTEX_SHADER = """
#version 120
attribute vec3 position;
attribute vec2 uv;
attribute vec3 colour;
uniform mat4 mvp;
uniform float scale;
varying vec2 v_uv;
varying vec3 v_colour;
void main() {
    v_uv = vec2(uv.x, 1.0 - uv.y);  // uv origin bottom-left; texture rows uploaded top first
    v_colour = colour;
    gl_Position = mvp * vec4(position * scale, 1.0);
}
"""

FRAGMENT_SHADER = """
#version 120
uniform sampler2D tex;
uniform float textured;
varying vec2 v_uv;
varying vec3 v_colour;
void main() {
    vec3 c = textured > 0.5 ? texture2D(tex, v_uv).rgb : v_colour;
    gl_FragColor = vec4(c, 1.0);
}
"""

ATTRIBUTES = (("position", 3, 0), ("uv", 2, 3), ("colour", 3, 5))


@dataclass
class PackedScene:
    """A render scene as the GPU takes it: interleaved vertices (V×8 float32), triangle indices
    (F·3 uint32), the RGB8 texture's mipmap levels, largest first (None: vertex colours), and
    the farthest vertex distance."""

    vertices: np.ndarray
    indices: np.ndarray
    texture: list[np.ndarray] | None
    extent: float


def mipmaps(rgb: np.ndarray) -> list[np.ndarray]:
    """The texture and its halvings down to 1×1 (area-averaged). Made here on the CPU rather
    than by ``glGenerateMipmap``, whose first call costs Mesa's software renderer ~200 ms on
    the GUI thread, and which OpenGL 2.1 lacks."""
    import cv2

    levels = [rgb]
    while max(levels[-1].shape[:2]) > 1:
        h, w = levels[-1].shape[:2]
        size = (max(1, w // 2), max(1, h // 2))
        levels.append(
            np.ascontiguousarray(cv2.resize(levels[-1], size, interpolation=cv2.INTER_AREA))
        )
    return levels


def pack_scene(scene: RenderScene) -> PackedScene:
    """Interleave and convert a scene for upload (pure numpy: runs on a worker thread)."""
    v = np.asarray(scene.vertices, np.float32)
    out = np.zeros((len(v), FLOATS), np.float32)
    out[:, :3] = v
    texture = None
    if scene.texture is not None and scene.uv is not None:
        out[:, 3:5] = scene.uv
        tex = np.asarray(scene.texture[..., :3])
        side = max(tex.shape[:2])
        if side > MAX_TEXTURE:
            import cv2

            f = MAX_TEXTURE / side
            tex = cv2.resize(tex, None, fx=f, fy=f, interpolation=cv2.INTER_AREA)
        texture = mipmaps(np.ascontiguousarray((np.clip(tex, 0, 1) * 255).round().astype(np.uint8)))
    elif scene.colors is not None:
        out[:, 5:8] = scene.colors
    else:
        out[:, 5:8] = 0.8
    faces = np.zeros((0, 3)) if scene.faces is None else scene.faces
    norms = np.linalg.norm(v, axis=1) if len(v) else np.ones(1)
    extent = float(np.nanmax(norms)) if np.isfinite(norms).any() else 1.0
    return PackedScene(out, np.ascontiguousarray(faces, np.uint32).reshape(-1), texture, extent)


@dataclass
class _Uploaded:
    vbo: int
    ibo: int
    count: int
    texture: int  # 0: vertex colours
    extent: float


@dataclass
class _Refinement:
    """A progressive draw of the full mesh: for which view (``key``), into which framebuffer,
    and how many triangles are in it so far."""

    key: tuple[Any, ...]
    mvp: np.ndarray
    done: int = 0


def chunk_size(triangles_per_ms: float | None, budget_ms: float | None = None) -> int:
    """Triangles for the next slice of a progressive draw: as many as take ``budget_ms``
    (``CHUNK_MS``) at the rate measured so far (the first slice: ``FIRST_SLICE``)."""
    budget_ms = CHUNK_MS if budget_ms is None else budget_ms
    if not triangles_per_ms or triangles_per_ms <= 0:
        return FIRST_SLICE
    return int(np.clip(triangles_per_ms * budget_ms, 5_000, 4 * CHUNK_TRIANGLES))


class GLCanvas(QOpenGLWidget):
    """Draws the viewer's scene from its camera on each repaint; mouse input goes to the viewer
    (the same handlers as the software canvas)."""

    #: The OpenGL setup failed (the message): the viewer switches to its software canvas.
    failed = Signal(str)

    def __init__(self, viewer: Viewer360, input_handler: Any) -> None:
        super().__init__(viewer)
        self._viewer = viewer
        self._input = input_handler
        self.renderer_name = ""
        self.frames_drawn = 0
        self.slices_drawn = 0  # of progressive full-mesh draws (tests)
        self.shown_detail = ""  # of the frame on screen: "full" or "preview"
        #: Wait for each frame to be finished (benchmarks: a frame's time is then its own).
        self.finish_frames = False
        self._program = 0
        self._locations: dict[str, int] = {}
        self._pending: dict[str, PackedScene] | None = None
        self._scenes: dict[str, _Uploaded] = {}
        self._broken = ""
        self._refine: _Refinement | None = None
        self._refined: tuple[Any, ...] | None = None  # the view the offscreen frame shows
        self._fbo: tuple[int, int, int, int, int] | None = None  # fbo, colour, depth, w, h
        self._rate: float | None = None  # triangles per ms measured in slices
        self._slice = QTimer(self)
        # One shot, restarted after each slice: every other timer that fell due during a slice
        # runs before the next one (a repeating timer's next turn is reckoned from before the
        # slice and can come first, two slices then holding the thread at once).
        self._slice.setSingleShot(True)
        self._slice.setInterval(1)
        self._slice.timeout.connect(self._draw_slice)
        self._note = QLabel(self)
        self._note.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self._note.setStyleSheet("color: rgb(160, 160, 160); background: transparent;")
        self._note.setAttribute(Qt.WidgetAttribute.WA_TransparentForMouseEvents)
        self._note.hide()
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self.setMinimumSize(160, 90)
        self.setCursor(Qt.CursorShape.OpenHandCursor)

    # ---- content

    def set_scenes(self, scenes: dict[str, PackedScene]) -> None:
        """Show these scenes (by detail: "full", "preview"); uploaded at the next frame."""
        self._pending = dict(scenes)
        self.shown_detail = ""
        self.update()

    def clear(self) -> None:
        self._pending = {}
        self.shown_detail = ""
        self.update()

    @property
    def has_scene(self) -> bool:
        return bool(self._scenes) or bool(self._pending)

    @property
    def refining(self) -> bool:
        """A progressive draw of the full mesh is under way (the coarse frame is shown)."""
        return self._refine is not None

    # ---- OpenGL

    def initializeGL(self) -> None:  # noqa: N802 - Qt override
        from OpenGL import GL

        try:
            self._program = _link(VERTEX_SHADER, FRAGMENT_SHADER)
        except RuntimeError as exc:
            self._broken = str(exc)
            self.failed.emit(self._broken)
            return
        for name in ("mvp", "scale", "tex", "textured"):
            self._locations[name] = GL.glGetUniformLocation(self._program, name)
        for name, _, _ in ATTRIBUTES:
            self._locations[name] = GL.glGetAttribLocation(self._program, name)
        vendor, renderer = (GL.glGetString(k) for k in (GL.GL_VENDOR, GL.GL_RENDERER))
        self.renderer_name = " / ".join(
            s.decode() if isinstance(s, bytes) else str(s) for s in (vendor, renderer)
        )
        ctx = self.context()
        if ctx is not None:
            ctx.aboutToBeDestroyed.connect(self._release_all)
            ctx.aboutToBeDestroyed.connect(self._stop_refining)
            ctx.aboutToBeDestroyed.connect(self._release_offscreen)

    def paintGL(self) -> None:  # noqa: N802 - Qt override
        from OpenGL import GL

        dpr = self.devicePixelRatioF()
        w, h = max(1, round(self.width() * dpr)), max(1, round(self.height() * dpr))
        GL.glViewport(0, 0, w, h)
        GL.glClearColor(0.0, 0.0, 0.0, 1.0)
        GL.glClear(GL.GL_COLOR_BUFFER_BIT | GL.GL_DEPTH_BUFFER_BIT)
        if self._broken:
            return
        if self._pending is not None:
            self._upload(self._pending)
            self._pending = None
            self._refined = None
        detail = self._viewer.detail()
        sc = self._scenes.get(detail) or self._scenes.get("full")
        if sc is None:
            self._draw_message()
            return
        if self._note.isVisible():
            self._note.hide()
        t0 = time.perf_counter()
        self.shown_detail = "preview"
        if detail == "full" and sc.count // 3 > CHUNK_TRIANGLES:
            self._show_full_progressively(sc, w, h)
        else:
            self._stop_refining()
            self._draw(sc, w, h, self._mvp(sc, w, h), mipmapped=detail == "full")
            self.shown_detail = detail
        if self.finish_frames:
            GL.glFinish()
        self.frames_drawn += 1
        self._viewer.frame_drawn(time.perf_counter() - t0)

    def _mvp(self, sc: _Uploaded, w: int, h: int) -> np.ndarray:
        """The view-projection of the viewer's camera for ``sc`` on a ``w``×``h`` target."""
        v = self._viewer
        far = 4.0 * sc.extent * v.depth_scale + float(np.linalg.norm(v.position))
        near = max(1e-4, 0.2 * v.margin, far * 1e-5)
        return gl_view_projection(v.camera(w, h), near, far).astype(np.float32)

    def _show_full_progressively(self, sc: _Uploaded, w: int, h: int) -> None:
        """The finished offscreen frame of this view if there is one; else the coarse mesh,
        with the full one's slices started (see the module's notes)."""
        mvp = self._mvp(sc, w, h)
        key = (mvp.tobytes(), float(self._viewer.depth_scale), w, h, sc.vbo)
        if self._refined == key and self._fbo is not None:
            self._blit(w, h)
            self.shown_detail = "full"
            return
        coarse = self._scenes.get("preview") or sc
        self._draw(coarse, w, h, self._mvp(coarse, w, h), mipmapped=False)
        if self._refine is None or self._refine.key != key:
            self._refine = _Refinement(key, mvp)
            self._slice.start()

    def _stop_refining(self) -> None:
        self._refine = None
        self._slice.stop()

    def _draw_slice(self) -> None:
        """One slice of the progressive draw into the offscreen framebuffer; when the last is
        in, a repaint shows the frame."""
        from OpenGL import GL

        r, sc = self._refine, self._scenes.get("full")
        if r is None or sc is None or self._broken:
            self._stop_refining()
            return
        w, h = r.key[2], r.key[3]
        self.makeCurrent()
        try:
            fbo = self._offscreen(w, h)
            GL.glBindFramebuffer(GL.GL_FRAMEBUFFER, fbo)
            GL.glViewport(0, 0, w, h)
            if r.done == 0:
                GL.glClearColor(0.0, 0.0, 0.0, 1.0)
                GL.glClear(GL.GL_COLOR_BUFFER_BIT | GL.GL_DEPTH_BUFFER_BIT)
            n = min(chunk_size(self._rate), sc.count // 3 - r.done)
            t0 = time.perf_counter()
            self._draw(sc, w, h, r.mvp, mipmapped=True, first=r.done, triangles=n)
            GL.glFlush()  # start this slice now (glFinish would wait for it: seconds on llvmpipe)
            ms = 1000 * (time.perf_counter() - t0)
            rate = n / max(ms, 1e-3)
            self._rate = rate if self._rate is None else 0.5 * (self._rate + rate)
            r.done += n
            self.slices_drawn += 1
            GL.glBindFramebuffer(GL.GL_FRAMEBUFFER, self.defaultFramebufferObject())
        finally:
            self.doneCurrent()
        if r.done >= sc.count // 3:
            self._refined = r.key
            self._stop_refining()
            self.update()
        else:
            self._slice.start()

    def _offscreen(self, w: int, h: int) -> int:
        """The offscreen framebuffer (colour + depth renderbuffers), made at ``w``×``h``."""
        from OpenGL import GL

        if self._fbo is not None and self._fbo[3:] == (w, h):
            return self._fbo[0]
        self._release_offscreen()
        fbo = int(GL.glGenFramebuffers(1))
        colour, depth = (int(b) for b in GL.glGenRenderbuffers(2))
        GL.glBindFramebuffer(GL.GL_FRAMEBUFFER, fbo)
        for rb, fmt, attach in (
            (colour, GL.GL_RGBA8, GL.GL_COLOR_ATTACHMENT0),
            (depth, GL.GL_DEPTH_COMPONENT24, GL.GL_DEPTH_ATTACHMENT),
        ):
            GL.glBindRenderbuffer(GL.GL_RENDERBUFFER, rb)
            GL.glRenderbufferStorage(GL.GL_RENDERBUFFER, fmt, w, h)
            GL.glFramebufferRenderbuffer(GL.GL_FRAMEBUFFER, attach, GL.GL_RENDERBUFFER, rb)
        GL.glBindRenderbuffer(GL.GL_RENDERBUFFER, 0)
        self._fbo = (fbo, colour, depth, w, h)
        return fbo

    def _blit(self, w: int, h: int) -> None:
        from OpenGL import GL

        assert self._fbo is not None
        target = self.defaultFramebufferObject()
        GL.glBindFramebuffer(GL.GL_READ_FRAMEBUFFER, self._fbo[0])
        GL.glBindFramebuffer(GL.GL_DRAW_FRAMEBUFFER, target)
        GL.glBlitFramebuffer(0, 0, w, h, 0, 0, w, h, GL.GL_COLOR_BUFFER_BIT, GL.GL_NEAREST)
        GL.glBindFramebuffer(GL.GL_FRAMEBUFFER, target)

    def _release_offscreen(self) -> None:
        from OpenGL import GL

        if self._fbo is None:
            return
        fbo, colour, depth, _, _ = self._fbo
        GL.glDeleteFramebuffers(1, np.array([fbo], np.uint32))
        GL.glDeleteRenderbuffers(2, np.array([colour, depth], np.uint32))
        self._fbo = None
        self._refined = None

    def _draw(
        self,
        sc: _Uploaded,
        w: int,
        h: int,
        mvp: np.ndarray,
        mipmapped: bool,
        first: int = 0,
        triangles: int | None = None,
    ) -> None:
        """One draw call of ``sc`` (its triangles ``first`` to ``first + triangles``, all by
        default) through ``mvp``; ``mipmapped``: trilinear texture filtering (sharper far
        away, ~12 % dearer on llvmpipe: used once still)."""
        from OpenGL import GL

        scale = self._viewer.depth_scale
        count = sc.count - 3 * first if triangles is None else 3 * triangles
        GL.glEnable(GL.GL_DEPTH_TEST)
        GL.glDisable(GL.GL_CULL_FACE)
        GL.glUseProgram(self._program)
        loc = self._locations
        GL.glUniformMatrix4fv(loc["mvp"], 1, GL.GL_TRUE, mvp)
        GL.glUniform1f(loc["scale"], float(scale))
        GL.glUniform1f(loc["textured"], 1.0 if sc.texture else 0.0)
        GL.glUniform1i(loc["tex"], 0)
        GL.glActiveTexture(GL.GL_TEXTURE0)
        GL.glBindTexture(GL.GL_TEXTURE_2D, sc.texture)
        if sc.texture:
            minify = GL.GL_LINEAR_MIPMAP_LINEAR if mipmapped else GL.GL_LINEAR
            GL.glTexParameteri(GL.GL_TEXTURE_2D, GL.GL_TEXTURE_MIN_FILTER, minify)
        GL.glBindBuffer(GL.GL_ARRAY_BUFFER, sc.vbo)
        stride = FLOATS * 4
        for name, size, offset in ATTRIBUTES:
            if loc[name] < 0:  # optimised away (e.g. colours of a textured-only shader)
                continue
            GL.glEnableVertexAttribArray(loc[name])
            GL.glVertexAttribPointer(
                loc[name], size, GL.GL_FLOAT, GL.GL_FALSE, stride, ctypes.c_void_p(4 * offset)
            )
        GL.glBindBuffer(GL.GL_ELEMENT_ARRAY_BUFFER, sc.ibo)
        offset = ctypes.c_void_p(4 * 3 * first)  # uint32 indices, 3 per triangle
        GL.glDrawElements(GL.GL_TRIANGLES, count, GL.GL_UNSIGNED_INT, offset)
        for name, _, _ in ATTRIBUTES:
            if loc[name] >= 0:
                GL.glDisableVertexAttribArray(loc[name])
        GL.glBindBuffer(GL.GL_ELEMENT_ARRAY_BUFFER, 0)
        GL.glBindBuffer(GL.GL_ARRAY_BUFFER, 0)
        GL.glBindTexture(GL.GL_TEXTURE_2D, 0)
        GL.glUseProgram(0)

    def _draw_message(self) -> None:
        """The viewer's note ("Loading…") over the black canvas: a label, not a QPainter on
        this widget, whose first use sets up Qt's OpenGL paint engine (~30 ms on llvmpipe)."""
        self._note.setText(self._viewer.message or "No panorama loaded")
        self._note.setGeometry(self.rect())
        self._note.show()

    def _upload(self, scenes: dict[str, PackedScene]) -> None:
        from OpenGL import GL

        self._release_all()
        self._stop_refining()
        textures: dict[int, int] = {}  # one upload for the texture the scenes share
        for kind, packed in scenes.items():
            vbo, ibo = (int(b) for b in GL.glGenBuffers(2))
            GL.glBindBuffer(GL.GL_ARRAY_BUFFER, vbo)
            GL.glBufferData(
                GL.GL_ARRAY_BUFFER, packed.vertices.nbytes, packed.vertices, GL.GL_STATIC_DRAW
            )
            GL.glBindBuffer(GL.GL_ELEMENT_ARRAY_BUFFER, ibo)
            GL.glBufferData(
                GL.GL_ELEMENT_ARRAY_BUFFER, packed.indices.nbytes, packed.indices, GL.GL_STATIC_DRAW
            )
            tex = 0
            if packed.texture is not None:
                key = id(packed.texture)
                tex = textures.get(key) or _texture(packed.texture)
                textures[key] = tex
            self._scenes[kind] = _Uploaded(vbo, ibo, len(packed.indices), tex, packed.extent)
        GL.glBindBuffer(GL.GL_ARRAY_BUFFER, 0)
        GL.glBindBuffer(GL.GL_ELEMENT_ARRAY_BUFFER, 0)

    def _release_all(self) -> None:
        from OpenGL import GL

        if not self._scenes:
            return
        textures = {s.texture for s in self._scenes.values() if s.texture}
        for s in self._scenes.values():
            GL.glDeleteBuffers(2, np.array([s.vbo, s.ibo], np.uint32))
        if textures:
            GL.glDeleteTextures(np.array(sorted(textures), np.uint32))
        self._scenes = {}

    # ---- input: the same handlers as the software canvas

    def mousePressEvent(self, event: Any) -> None:  # noqa: N802 - Qt override
        self._input.press(self, event)

    def mouseMoveEvent(self, event: Any) -> None:  # noqa: N802 - Qt override
        self._input.move(event)

    def mouseReleaseEvent(self, event: Any) -> None:  # noqa: N802 - Qt override
        self._input.release(self)

    def wheelEvent(self, event: Any) -> None:  # noqa: N802 - Qt override
        self._input.wheel(event)

    def focusOutEvent(self, event: Any) -> None:  # noqa: N802 - Qt override
        super().focusOutEvent(event)
        self._viewer.release_keys()


def _texture(levels: list[np.ndarray]) -> int:
    """Upload H×W×3 uint8 mipmap levels as a linearly filtered, edge-clamped texture."""
    from OpenGL import GL

    tex = int(GL.glGenTextures(1))
    GL.glBindTexture(GL.GL_TEXTURE_2D, tex)
    GL.glPixelStorei(GL.GL_UNPACK_ALIGNMENT, 1)
    for i, rgb in enumerate(levels):
        h, w = rgb.shape[:2]
        GL.glTexImage2D(
            GL.GL_TEXTURE_2D, i, GL.GL_RGB8, w, h, 0, GL.GL_RGB, GL.GL_UNSIGNED_BYTE, rgb
        )
    GL.glTexParameteri(GL.GL_TEXTURE_2D, GL.GL_TEXTURE_MAX_LEVEL, len(levels) - 1)
    GL.glTexParameteri(GL.GL_TEXTURE_2D, GL.GL_TEXTURE_MIN_FILTER, GL.GL_LINEAR_MIPMAP_LINEAR)
    GL.glTexParameteri(GL.GL_TEXTURE_2D, GL.GL_TEXTURE_MAG_FILTER, GL.GL_LINEAR)
    for wrap in (GL.GL_TEXTURE_WRAP_S, GL.GL_TEXTURE_WRAP_T):
        GL.glTexParameteri(GL.GL_TEXTURE_2D, wrap, GL.GL_CLAMP_TO_EDGE)
    GL.glBindTexture(GL.GL_TEXTURE_2D, 0)
    return tex


def _link(vertex: str, fragment: str) -> int:
    """Compile and link a shader program; RuntimeError with the driver's log if either fails."""
    from OpenGL import GL

    program = GL.glCreateProgram()
    for kind, src in ((GL.GL_VERTEX_SHADER, vertex), (GL.GL_FRAGMENT_SHADER, fragment)):
        shader = GL.glCreateShader(kind)
        GL.glShaderSource(shader, src)
        GL.glCompileShader(shader)
        if not GL.glGetShaderiv(shader, GL.GL_COMPILE_STATUS):
            log = GL.glGetShaderInfoLog(shader)
            raise RuntimeError(f"OpenGL shader did not compile: {_text(log)}")
        GL.glAttachShader(program, shader)
        GL.glDeleteShader(shader)  # freed with the program
    for i, (name, _, _) in enumerate(ATTRIBUTES):
        GL.glBindAttribLocation(program, i, name)  # "position" at 0: required by some drivers
    GL.glLinkProgram(program)
    if not GL.glGetProgramiv(program, GL.GL_LINK_STATUS):
        raise RuntimeError(f"OpenGL shaders did not link: {_text(GL.glGetProgramInfoLog(program))}")
    return int(program)


def _text(log: Any) -> str:
    return (log.decode(errors="replace") if isinstance(log, bytes) else str(log)).strip()


def import_array_handlers() -> None:
    """Import PyOpenGL (with GL) and the array handlers it loads on first use of each kind of
    array (numpy, ctypes, strings): before a window shows. Loaded at the first frames, they
    held the GUI thread's interpreter lock while the viewer opened."""
    import importlib

    from OpenGL import GL  # noqa: F401

    for name in ("numpymodule", "ctypesarrays", "ctypesparameters", "ctypespointers", "strings"):
        try:
            importlib.import_module(f"OpenGL.arrays.{name}")
        except ImportError:  # a handler this PyOpenGL does not ship: loaded on demand if ever
            continue
