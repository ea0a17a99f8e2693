"""Port types shared by every node: the data on edges, and the scalar kinds of parameters.

Each type is a real class with a stable ``type_id`` (used in graph files, the registry listing and
the GUI's port colours) and an ``nbytes`` estimate the executor's cache budget needs.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

# --------------------------------------------------------------------------------------------
# Base


class PortType:
    """Marker base: subclasses are the types a port can declare."""

    type_id: ClassVar[str] = "any"
    color: ClassVar[str] = "#9e9e9e"
    doc: ClassVar[str] = ""
    #: The viewers that can show a value of this type, the preview's choice first ("image",
    #: "depth", "video", "mesh", "360"); empty: shown as text. An output may add its own.
    viewers: ClassVar[tuple[str, ...]] = ()

    def nbytes(self) -> int:
        return 64


class Any_(PortType):  # noqa: N801 - the underscore keeps typing.Any usable beside it
    """Accepts any value; used by preview/inspection nodes."""

    type_id = "any"
    doc = "Any value (preview and inspection nodes)."


def _as_float32(array: Any, what: str) -> np.ndarray:
    arr = np.asarray(array)
    if what in ("image", "mask") and np.issubdtype(arr.dtype, np.integer):
        # uint8 pixels would silently become values up to 255 in a [0, 1] type.
        raise ValueError(
            f"{what} data must be float in [0, 1], got {arr.dtype}; "
            "divide by the type's maximum (255 for uint8) first"
        )
    if arr.dtype != np.float32:
        arr = arr.astype(np.float32)
    if not arr.flags.c_contiguous:
        arr = np.ascontiguousarray(arr)
    return arr


# --------------------------------------------------------------------------------------------
# Pixel data


@dataclass(eq=False)
class Image(PortType):
    """float32 H×W×C in [0, 1], C in {1, 3, 4}; linear 0..1 keeps every node's math unit-free."""

    viewers = ("image",)

    data: np.ndarray
    type_id: ClassVar[str] = "image"
    color: ClassVar[str] = "#64b5f6"
    doc: ClassVar[str] = "float32 H×W×C image in [0,1] (C = 1, 3 or 4)."

    def __post_init__(self) -> None:
        arr = _as_float32(self.data, "image")
        if arr.ndim == 2:
            arr = arr[:, :, None]
        if arr.ndim != 3 or arr.shape[2] not in (1, 3, 4):
            raise ValueError(f"an Image must be H×W×C with C in 1, 3, 4; got shape {arr.shape}")
        if arr.shape[0] < 1 or arr.shape[1] < 1:
            raise ValueError(f"an Image needs at least one pixel; got shape {arr.shape}")
        self.data = arr

    @property
    def height(self) -> int:
        return int(self.data.shape[0])

    @property
    def width(self) -> int:
        return int(self.data.shape[1])

    @property
    def channels(self) -> int:
        return int(self.data.shape[2])

    def rgb(self) -> np.ndarray:
        """H×W×3 view for nodes that want colour regardless of how the image was stored."""
        if self.channels == 3:
            return self.data
        if self.channels == 4:
            return self.data[:, :, :3]
        return np.repeat(self.data, 3, axis=2)

    def alpha(self) -> np.ndarray | None:
        return self.data[:, :, 3] if self.channels == 4 else None

    def gray(self) -> np.ndarray:
        """H×W plane: a one-channel image's own, else the mean of its colour channels (alpha
        ignored), so a mask stored as a grey, coloured or RGBA video frame reads the same."""
        if self.channels == 1:
            return self.data[:, :, 0]
        return self.data[:, :, :3].mean(axis=2)

    def nbytes(self) -> int:
        return int(self.data.nbytes)


@dataclass(eq=False)
class Mask(PortType):
    """float32 H×W in [0, 1]; soft masks keep feathered edges through compositing."""

    viewers = ("image",)

    data: np.ndarray
    type_id: ClassVar[str] = "mask"
    color: ClassVar[str] = "#e0e0e0"
    doc: ClassVar[str] = "float32 H×W mask in [0,1]."

    def __post_init__(self) -> None:
        arr = _as_float32(self.data, "mask")
        if arr.ndim == 3 and arr.shape[2] == 1:
            arr = arr[:, :, 0]
        if arr.ndim != 2:
            raise ValueError(f"a Mask must be H×W; got shape {arr.shape}")
        self.data = arr

    @property
    def height(self) -> int:
        return int(self.data.shape[0])

    @property
    def width(self) -> int:
        return int(self.data.shape[1])

    def nbytes(self) -> int:
        return int(self.data.nbytes)


DEPTH_KINDS = ("relative", "metric")


@dataclass(eq=False)
class Depth(PortType):
    """float32 H×W distance along the camera axis; non-finite or <= 0 marks 'no depth here'.

    ``kind`` says whether values are metric (in ``units``) or only ordered (relative), because
    back-projection needs metric depth and must refuse relative depth without near/far.
    """

    viewers = ("depth",)

    data: np.ndarray
    kind: str = "relative"
    units: str = "m"
    type_id: ClassVar[str] = "depth"
    color: ClassVar[str] = "#ffb74d"
    doc: ClassVar[str] = "float32 H×W depth, kind relative or metric, with units."

    def __post_init__(self) -> None:
        arr = _as_float32(self.data, "depth")
        if arr.ndim == 3 and arr.shape[2] == 1:
            arr = arr[:, :, 0]
        if arr.ndim != 2:
            raise ValueError(f"a Depth must be H×W; got shape {arr.shape}")
        if self.kind not in DEPTH_KINDS:
            raise ValueError(f"depth kind must be one of {DEPTH_KINDS}; got {self.kind!r}")
        self.data = arr

    @property
    def height(self) -> int:
        return int(self.data.shape[0])

    @property
    def width(self) -> int:
        return int(self.data.shape[1])

    def valid(self) -> np.ndarray:
        """Boolean H×W of usable samples: finite, and positive (metric) or not negative
        (relative depth, whose 0 is the nearest point)."""
        if self.kind == "relative":
            return np.isfinite(self.data) & (self.data >= 0)
        return np.isfinite(self.data) & (self.data > 0)

    def nbytes(self) -> int:
        return int(self.data.nbytes)


# --------------------------------------------------------------------------------------------
# Geometry


@dataclass(eq=False)
class Camera(PortType):
    """Pinhole intrinsics in pixels plus a 4×4 camera-to-world pose (OpenCV axes: x right, y down,
    z forward), so projection math never has to guess a convention."""

    fx: float
    fy: float
    cx: float
    cy: float
    width: int
    height: int
    pose: np.ndarray = field(default_factory=lambda: np.eye(4, dtype=np.float64))
    type_id: ClassVar[str] = "camera"
    color: ClassVar[str] = "#ba68c8"
    doc: ClassVar[str] = "Pinhole camera: intrinsics (pixels) and 4×4 camera-to-world pose."

    def __post_init__(self) -> None:
        pose = np.asarray(self.pose, dtype=np.float64)
        if pose.shape != (4, 4):
            raise ValueError(f"camera pose must be 4×4; got {pose.shape}")
        if self.width < 1 or self.height < 1 or self.fx <= 0 or self.fy <= 0:
            raise ValueError("camera needs positive width, height and focal lengths")
        self.pose = pose

    @classmethod
    def from_fov(
        cls, width: int, height: int, fov_y_deg: float, pose: np.ndarray | None = None
    ) -> Camera:
        """Square pixels, centred principal point: what 'field of view' means to most users."""
        if not 0 < fov_y_deg < 180:
            raise ValueError(f"field of view must be in (0, 180) degrees; got {fov_y_deg}")
        f = 0.5 * height / math.tan(math.radians(fov_y_deg) / 2)
        return cls(
            f,
            f,
            width / 2,
            height / 2,
            int(width),
            int(height),
            np.eye(4) if pose is None else pose,
        )

    @property
    def K(self) -> np.ndarray:  # noqa: N802 - the standard symbol
        return np.array([[self.fx, 0, self.cx], [0, self.fy, self.cy], [0, 0, 1]], np.float64)


class CameraPath(PortType):
    """A sequence of cameras with a frame rate: what a camera-path node makes and a renderer
    turns into a video."""

    type_id = "camera_path"
    color = "#ce93d8"
    doc = "A sequence of Cameras with an fps."

    def __init__(self, cameras: list[Camera], fps: float = 24.0) -> None:
        if not cameras:
            raise ValueError("a camera path needs at least one camera")
        if not fps > 0:
            raise ValueError(f"camera path fps must be positive; got {fps}")
        self.cameras = list(cameras)
        self.fps = float(fps)

    def __len__(self) -> int:
        return len(self.cameras)

    def nbytes(self) -> int:
        return 256 * len(self.cameras)


@dataclass(eq=False)
class RGBD(PortType):
    """Colour and depth of the same view, optionally with the camera that saw them."""

    viewers = ("mesh", "360")

    image: Image
    depth: Depth
    camera: Camera | None = None
    type_id: ClassVar[str] = "rgbd"
    color: ClassVar[str] = "#f06292"
    doc: ClassVar[str] = "An Image and a Depth of the same size, with an optional Camera."

    def __post_init__(self) -> None:
        if (self.image.height, self.image.width) != (self.depth.height, self.depth.width):
            raise ValueError(
                f"image is {self.image.width}×{self.image.height} but depth is "
                f"{self.depth.width}×{self.depth.height}; resize one to match"
            )

    def nbytes(self) -> int:
        return self.image.nbytes() + self.depth.nbytes()


@dataclass(eq=False)
class PointCloud(PortType):
    """N×3 float32 points with optional N×3 colours in [0,1] and normals."""

    viewers = ("mesh",)

    points: np.ndarray
    colors: np.ndarray | None = None
    normals: np.ndarray | None = None
    type_id: ClassVar[str] = "pointcloud"
    color: ClassVar[str] = "#4db6ac"
    doc: ClassVar[str] = "N×3 points with optional colours and normals."

    def __post_init__(self) -> None:
        pts = (
            _as_float32(self.points, "points").reshape(-1, 3)
            if np.size(self.points)
            else np.zeros((0, 3), np.float32)
        )
        self.points = pts
        for name in ("colors", "normals"):
            val = getattr(self, name)
            if val is not None:
                arr = _as_float32(val, name).reshape(-1, 3)
                if len(arr) != len(pts):
                    raise ValueError(f"{name} has {len(arr)} rows but there are {len(pts)} points")
                setattr(self, name, arr)

    def __len__(self) -> int:
        return int(len(self.points))

    def nbytes(self) -> int:
        n = self.points.nbytes
        n += self.colors.nbytes if self.colors is not None else 0
        n += self.normals.nbytes if self.normals is not None else 0
        return int(n)


@dataclass(eq=False)
class Mesh(PortType):
    """A triangle mesh backed by trimesh, so loading, saving and repair use one library."""

    viewers = ("mesh", "360")

    mesh: Any  # trimesh.Trimesh; imported lazily to keep the engine's import cheap
    type_id: ClassVar[str] = "mesh"
    color: ClassVar[str] = "#81c784"
    doc: ClassVar[str] = "Triangle mesh (trimesh) with optional vertex colours or texture."

    def __post_init__(self) -> None:
        import trimesh

        if not isinstance(self.mesh, trimesh.Trimesh):
            raise ValueError(f"a Mesh wraps a trimesh.Trimesh; got {type(self.mesh).__name__}")

    def nbytes(self) -> int:
        m = self.mesh
        return int(m.vertices.nbytes + m.faces.nbytes + 64 * 1024)


@dataclass(eq=False)
class Views(PortType):
    """Several images of one subject, each with the camera that saw it and, when known, its
    depth: what multi-view generators make and ``mesh.from_views`` lifts to 3D. One value,
    not many ports, because the views are generated jointly and mean little apart; the
    preview shows them as a contact sheet."""

    viewers = ("image",)

    images: list[Image]
    cameras: list[Camera]
    depths: list[Depth] | None = None
    type_id: ClassVar[str] = "views"
    color: ClassVar[str] = "#ce93d8"
    doc: ClassVar[str] = "Images of one subject with their cameras (and depths): a view set."

    def __post_init__(self) -> None:
        self.images, self.cameras = list(self.images), list(self.cameras)
        if not self.images:
            raise ValueError("a view set needs at least one view")
        if len(self.cameras) != len(self.images):
            raise ValueError(f"{len(self.images)} images but {len(self.cameras)} cameras")
        for i, (im, cam) in enumerate(zip(self.images, self.cameras, strict=True)):
            if (cam.width, cam.height) != (im.width, im.height):
                raise ValueError(
                    f"view {i}: camera is {cam.width}×{cam.height} but the image is "
                    f"{im.width}×{im.height}"
                )
        if self.depths is not None:
            self.depths = list(self.depths)
            if len(self.depths) != len(self.images):
                raise ValueError(f"{len(self.images)} images but {len(self.depths)} depths")
            for i, (im, d) in enumerate(zip(self.images, self.depths, strict=True)):
                if (d.width, d.height) != (im.width, im.height):
                    raise ValueError(f"view {i}: depth and image sizes differ")

    def __len__(self) -> int:
        return len(self.images)

    def rgbd(self, i: int) -> RGBD:
        """View ``i`` as an RGBD with its camera (the view set must carry depths)."""
        if self.depths is None:
            raise ValueError("these views carry no depth; estimate it first (depth.estimate)")
        return RGBD(self.images[i], self.depths[i], self.cameras[i])

    def contact_sheet(self, columns: int = 3) -> Image:
        """The views tiled in rows of ``columns`` (RGB, black where a row is short): how a
        person looks at a view set at once."""
        rgb = [im.rgb() for im in self.images]
        h = max(a.shape[0] for a in rgb)
        w = max(a.shape[1] for a in rgb)
        cols = max(1, min(columns, len(rgb)))
        rows = -(-len(rgb) // cols)
        sheet = np.zeros((rows * h, cols * w, 3), np.float32)
        for k, a in enumerate(rgb):
            r, c = divmod(k, cols)
            sheet[r * h : r * h + a.shape[0], c * w : c * w + a.shape[1]] = a
        return Image(sheet)

    def nbytes(self) -> int:
        n = sum(im.nbytes() for im in self.images)
        return n + (sum(d.nbytes() for d in self.depths) if self.depths else 0)


# --------------------------------------------------------------------------------------------
# Video: a lazy frame source


@dataclass(frozen=True)
class AudioSpan:
    """``duration`` seconds of output made from a file's first audio stream from ``start``
    (seconds into that stream), or silence when ``path`` is None.

    ``speed`` retimes (the span plays ``duration × speed`` seconds of the source, pitch kept)
    and ``reverse`` plays that source stretch backwards: so video.speed and video.reverse keep
    their sound in step with the frames."""

    path: str | None
    start: float
    duration: float
    speed: float = 1.0
    reverse: bool = False

    @property
    def source_duration(self) -> float:
        return self.duration * self.speed

    def part(self, a: float, b: float) -> AudioSpan:
        """The output stretch from ``a`` to ``b`` seconds into this span."""
        offset = (self.duration - b) if self.reverse else a
        return AudioSpan(
            self.path, self.start + offset * self.speed, b - a, self.speed, self.reverse
        )


@dataclass(frozen=True)
class AudioTrack:
    """Lazy audio that travels with a Video: a list of spans of source files and silences.

    Nothing is decoded until a file is written, so cutting and joining a long clip's sound costs
    nothing; the writer decodes each span, resamples it to ``sample_rate``/``channels`` and
    concatenates. Times are seconds, the unit frame times (index / fps) convert to exactly.
    """

    spans: tuple[AudioSpan, ...]
    sample_rate: int = 48000
    channels: int = 2

    @property
    def duration(self) -> float:
        return float(sum(s.duration for s in self.spans))

    @classmethod
    def from_file(
        cls, path: str, duration: float, sample_rate: int = 48000, channels: int = 2
    ) -> AudioTrack:
        return cls((AudioSpan(path, 0.0, max(0.0, duration)),), sample_rate, channels)

    @classmethod
    def silence(cls, duration: float, sample_rate: int = 48000, channels: int = 2) -> AudioTrack:
        return cls((AudioSpan(None, 0.0, max(0.0, duration)),), sample_rate, channels)

    def slice(self, t0: float, t1: float) -> AudioTrack:
        """The part between ``t0`` and ``t1`` seconds (clamped to the track)."""
        out: list[AudioSpan] = []
        pos = 0.0
        for s in self.spans:
            a, b = max(t0, pos), min(t1, pos + s.duration)
            if b > a:
                out.append(s.part(a - pos, b - pos))
            pos += s.duration
        return AudioTrack(tuple(out), self.sample_rate, self.channels)

    def fit(self, duration: float) -> AudioTrack:
        """Cut or pad with silence to exactly ``duration`` seconds (a video's length)."""
        if self.duration >= duration:
            return self.slice(0.0, duration)
        pad = AudioSpan(None, 0.0, duration - self.duration)
        return AudioTrack(self.spans + (pad,), self.sample_rate, self.channels)

    def retimed(self, factor: float) -> AudioTrack:
        """Played ``factor`` times as fast (same pitch): ``duration / factor`` seconds."""
        spans = tuple(
            AudioSpan(s.path, s.start, s.duration / factor, s.speed * factor, s.reverse)
            for s in self.spans
        )
        return AudioTrack(spans, self.sample_rate, self.channels)

    def reversed(self) -> AudioTrack:
        """Played backwards: the spans in reverse order, each played backwards."""
        spans = tuple(
            AudioSpan(s.path, s.start, s.duration, s.speed, not s.reverse)
            for s in reversed(self.spans)
        )
        return AudioTrack(spans, self.sample_rate, self.channels)

    @staticmethod
    def join(tracks: list[AudioTrack]) -> AudioTrack:
        """One track after another; the first track's format wins (the writer resamples)."""
        spans = tuple(s for t in tracks for s in t.spans)
        first = tracks[0] if tracks else AudioTrack(())
        return AudioTrack(spans, first.sample_rate, first.channels)


class Video(PortType):
    """A lazy sequence of frames: ``frame(i)`` decodes on demand, so a 4K hour never sits in RAM.

    A video is a frame count, an fps, a function from index to Image, and optionally the audio
    that plays with it; slicing and mapping make new lazy videos (audio cut along). Mask videos
    are Videos of one-channel Images. ``to_array`` is the explicit opt-in to materialise all.
    """

    viewers = ("video",)

    type_id = "video"
    color = "#7986cb"
    doc = "Lazy frame source with fps, length and optional audio; frames decoded on demand."

    def __init__(
        self,
        length: int,
        fps: float,
        get_frame: Callable[[int], Image],
        size: tuple[int, int] | None = None,
        source: str = "",
        audio: AudioTrack | None = None,
    ) -> None:
        if length < 0:
            raise ValueError("video length must be >= 0")
        if not fps > 0:
            raise ValueError(f"video fps must be positive; got {fps}")
        self.length = int(length)
        self.fps = float(fps)
        self._get = get_frame
        self._size = size
        self.source = source
        self.audio = audio

    def __len__(self) -> int:
        return self.length

    @property
    def duration(self) -> float:
        """Seconds: frame i shows from i / fps to (i + 1) / fps."""
        return self.length / self.fps

    @property
    def known_size(self) -> tuple[int, int] | None:
        """(width, height) when known without decoding a frame, else None."""
        return self._size

    @property
    def size(self) -> tuple[int, int]:
        """(width, height), decoding the first frame only if the source did not say."""
        if self._size is None:
            first = self.frame(0)
            self._size = (first.width, first.height)
        return self._size

    def frame(self, index: int) -> Image:
        if not 0 <= index < self.length:
            raise IndexError(f"frame {index} is outside 0..{self.length - 1}")
        return self._get(index)

    def __iter__(self) -> Iterator[Image]:
        for i in range(self.length):
            yield self._get(i)

    def slice(self, start: int, stop: int) -> Video:
        start = max(0, start)
        stop = min(self.length, stop)
        n = max(0, stop - start)
        audio = (
            None
            if self.audio is None
            else self.audio.slice(start / self.fps, (start + n) / self.fps)
        )
        return Video(n, self.fps, lambda i: self._get(start + i), self._size, self.source, audio)

    def map(self, fn: Callable[[Image], Image], size: tuple[int, int] | None = None) -> Video:
        return Video(
            self.length, self.fps, lambda i: fn(self._get(i)), size, self.source, self.audio
        )

    def with_audio(self, audio: AudioTrack | None) -> Video:
        return Video(self.length, self.fps, self._get, self._size, self.source, audio)

    def to_array(self) -> np.ndarray:
        """Every frame as one T×H×W×C array: the explicit, memory-hungry path."""
        return np.stack([f.data for f in self])

    @classmethod
    def from_frames(cls, frames: list[Image], fps: float) -> Video:
        frames = list(frames)
        size = (frames[0].width, frames[0].height) if frames else None
        return cls(len(frames), fps, frames.__getitem__, size)

    def nbytes(self) -> int:
        # Lazy: only the closure is held. Materialised sources report themselves via the size.
        return 1024


# --------------------------------------------------------------------------------------------
# Generation types (torch values; torch is imported only by the nodes that make them)


@dataclass(eq=False)
class Latent(PortType):
    """A latent tensor (B×C×h×w) with the scaling and shift its VAE expects: the VAE decodes
    ``tensor / scaling_factor + shift_factor`` (the shift is SD3's; 0 for SD 1.x and SDXL)."""

    tensor: Any
    scaling_factor: float = 1.0
    shift_factor: float = 0.0
    type_id: ClassVar[str] = "latent"
    color: ClassVar[str] = "#ff8a65"
    doc: ClassVar[str] = "Latent tensor B×C×h×w with its VAE scaling (and shift) factor."

    def nbytes(self) -> int:
        t = self.tensor
        return int(t.numel() * t.element_size()) if hasattr(t, "numel") else 64


@dataclass(eq=False)
class Conditioning(PortType):
    """Text/image embeddings a denoiser consumes, plus an optional pooled vector."""

    embeds: Any
    pooled: Any = None
    meta: dict = field(default_factory=dict)
    type_id: ClassVar[str] = "conditioning"
    color: ClassVar[str] = "#ffd54f"
    doc: ClassVar[str] = "Prompt embeddings (and pooled embeddings) for a denoiser."

    def nbytes(self) -> int:
        n = 0
        for t in (self.embeds, self.pooled):
            if hasattr(t, "numel"):
                n += t.numel() * t.element_size()
        return int(n) or 64


@dataclass(eq=False)
class ModelRef(PortType):
    """Names a model (local folder or hub id) without holding weights: the model manager loads."""

    source: str
    kind: str = "diffusers"
    variant: str | None = None
    type_id: ClassVar[str] = "model"
    color: ClassVar[str] = "#a1887f"
    doc: ClassVar[str] = "Reference to a model folder or hub id; weights live in the model manager."


@dataclass(eq=False)
class Control(PortType):
    """One ControlNet's guidance for a generation: the ControlNet model (a folder, file or
    name; the generation node loads it), its control image (a depth map, edges, a pose...),
    how strongly it steers, and the part of the denoising (start and end fractions) it acts
    in. Several Controls on one generation node add up, as diffusers' MultiControlNet does. A
    stream can follow ``video`` instead: control frame i steers output frame i."""

    model: str
    image: Image
    scale: float = 1.0
    start: float = 0.0
    end: float = 1.0
    video: Any = None  # Video | None: per-frame control images for a stream
    type_id: ClassVar[str] = "control"
    color: ClassVar[str] = "#4db6ac"
    doc: ClassVar[str] = "A ControlNet, its control image, strength and step range."

    def nbytes(self) -> int:
        return self.image.nbytes()


@dataclass(eq=False)
class ImagePrompt(PortType):
    """An IP-Adapter with its reference image: the image steers the generation like a prompt,
    with ``scale`` strength. The generation node loads the adapter (and the CLIP image encoder
    in the ``image_encoder/`` folder beside it)."""

    model: str
    image: Image
    scale: float = 1.0
    type_id: ClassVar[str] = "image_prompt"
    color: ClassVar[str] = "#9575cd"
    doc: ClassVar[str] = "An IP-Adapter and its reference image (an image as a prompt)."

    def nbytes(self) -> int:
        return self.image.nbytes()


# --------------------------------------------------------------------------------------------
# Scalars: the kinds a parameter (or a scalar port) can have.


class Scalar(PortType):
    """Scalar kinds coerce JSON values into Python values and raise ValueError with the reason."""

    python_type: ClassVar[type] = object

    @classmethod
    def coerce(cls, value: Any) -> Any:
        return value

    @classmethod
    def parse(cls, text: str) -> Any:
        """From a command-line string (``--set node.param=VALUE``)."""
        return cls.coerce(text)


class Int(Scalar):
    type_id = "int"
    color = "#90a4ae"
    python_type = int

    @classmethod
    def coerce(cls, value: Any) -> int:
        if isinstance(value, bool):
            raise ValueError(f"expected an integer, got {value!r}")
        if isinstance(value, (float, np.floating)):
            if not float(value).is_integer():
                raise ValueError(f"expected an integer, got {value!r}")
            return int(value)
        if isinstance(value, (int, np.integer)):
            return int(value)
        if isinstance(value, str):
            try:
                return int(value.strip())
            except ValueError:
                raise ValueError(f"expected an integer, got {value!r}") from None
        raise ValueError(f"expected an integer, got {value!r}")


class Seed(Int):
    type_id = "seed"
    color = "#b0bec5"

    @classmethod
    def coerce(cls, value: Any) -> int:
        v = Int.coerce(value)
        if not 0 <= v < 2**63:
            raise ValueError(f"a seed must be in 0..2^63-1; got {v}")
        return v


class Float(Scalar):
    type_id = "float"
    color = "#90a4ae"
    python_type = float

    @classmethod
    def coerce(cls, value: Any) -> float:
        if isinstance(value, (bool, np.bool_)):
            raise ValueError(f"expected a number, got {value!r}")
        try:
            out = float(value)
        except (TypeError, ValueError):
            raise ValueError(f"expected a number, got {value!r}") from None
        if not math.isfinite(out):
            raise ValueError(f"expected a finite number, got {value!r}")
        return out


class Bool(Scalar):
    type_id = "bool"
    color = "#90a4ae"
    python_type = bool

    @classmethod
    def coerce(cls, value: Any) -> bool:
        if isinstance(value, (bool, np.bool_)):
            return bool(value)
        if isinstance(value, str) and value.strip().lower() in ("true", "1", "yes", "on"):
            return True
        if isinstance(value, str) and value.strip().lower() in ("false", "0", "no", "off"):
            return False
        if isinstance(value, int) and value in (0, 1):
            return bool(value)
        raise ValueError(f"expected true or false, got {value!r}")


class String(Scalar):
    type_id = "string"
    color = "#a5d6a7"
    python_type = str

    @classmethod
    def coerce(cls, value: Any) -> str:
        if not isinstance(value, str):
            raise ValueError(f"expected text, got {value!r}")
        return value


class Enum(String):
    type_id = "enum"


class PathValue(String):
    """A file or folder path; relative paths resolve against the graph file's folder."""

    type_id = "path"


class InputFile(PathValue):
    """A file a node reads (relative: from the graph file's folder). The engine checks that it
    exists before a run and keys the cache on its size and modification time, so an edited
    file re-runs the node; the node itself only reads it."""

    type_id = "input_file"


class OutputFile(PathValue):
    """A file a node writes (relative: in the run's output folder). The engine checks before a
    run that its folder can be written, so a render never fails half-way for that."""

    type_id = "output_file"


class Color(Scalar):
    """RGBA in [0,1]; accepts '#rrggbb', '#rrggbbaa' or a list of 3–4 numbers."""

    type_id = "color"
    color = "#ef9a9a"
    python_type = tuple

    @classmethod
    def coerce(cls, value: Any) -> tuple[float, float, float, float]:
        if isinstance(value, str):
            s = value.strip().lstrip("#")
            if len(s) in (6, 8) and all(c in "0123456789abcdefABCDEF" for c in s):
                comps = [int(s[i : i + 2], 16) / 255 for i in range(0, len(s), 2)]
                if len(comps) == 3:
                    comps.append(1.0)
                return tuple(comps)  # type: ignore[return-value]
            raise ValueError(f"expected a colour like '#ff8800' or [1, 0.5, 0]; got {value!r}")
        if isinstance(value, (list, tuple)) and len(value) in (3, 4):
            comps = [Float.coerce(c) for c in value]
            if any(not 0 <= c <= 1 for c in comps):
                raise ValueError(f"colour components must be in [0, 1]; got {value!r}")
            if len(comps) == 3:
                comps.append(1.0)
            return tuple(comps)  # type: ignore[return-value]
        raise ValueError(f"expected a colour like '#ff8800' or [1, 0.5, 0]; got {value!r}")

    @classmethod
    def parse(cls, text: str) -> tuple[float, float, float, float]:
        if "," in text:
            return cls.coerce([p for p in text.split(",")])
        return cls.coerce(text)


SCALARS: tuple[type[Scalar], ...] = (
    Int,
    Seed,
    Float,
    Bool,
    String,
    Enum,
    PathValue,
    InputFile,
    OutputFile,
    Color,
)

_PORT_TYPES: tuple[type[PortType], ...] = (
    Any_,
    Image,
    Mask,
    Depth,
    RGBD,
    Camera,
    CameraPath,
    PointCloud,
    Mesh,
    Views,
    Video,
    Latent,
    Conditioning,
    ModelRef,
    Control,
    ImagePrompt,
    *SCALARS,
)
ALL_TYPES: dict[str, type[PortType]] = {t.type_id: t for t in _PORT_TYPES}


def type_by_id(type_id: str) -> type[PortType]:
    try:
        return ALL_TYPES[type_id]
    except KeyError:
        raise KeyError(
            f"unknown port type {type_id!r}; known: {', '.join(sorted(ALL_TYPES))}"
        ) from None


# --------------------------------------------------------------------------------------------
# Implicit conversions: only lossless ones, each documented here and listed by `fathom nodes`.


def _image_to_video(img: Image) -> Video:
    return Video.from_frames([img], fps=1.0)


def _camera_to_path(cam: Camera) -> CameraPath:
    return CameraPath([cam], fps=1.0)


def _mask_to_image(mask: Mask) -> Image:
    return Image(mask.data[:, :, None])


CONVERSIONS: dict[tuple[str, str], tuple[Callable[[Any], Any], str]] = {
    ("image", "video"): (_image_to_video, "an Image becomes a one-frame Video at 1 fps"),
    ("mask", "image"): (_mask_to_image, "a Mask becomes a one-channel Image"),
    ("camera", "camera_path"): (_camera_to_path, "a Camera becomes a one-camera path"),
    ("int", "float"): (float, "an int becomes a float"),
    ("seed", "int"): (int, "a seed is an int"),
    ("int", "seed"): (int, "an int is used as a seed"),
    ("enum", "string"): (str, "an enum choice is its text"),
    ("path", "string"): (str, "a path is its text"),
    ("input_file", "path"): (str, "a file to read is a path"),
    ("output_file", "path"): (str, "a file to write is a path"),
    ("input_file", "string"): (str, "a file path is its text"),
    ("output_file", "string"): (str, "a file path is its text"),
}


def can_connect(src: str, dst: str) -> bool:
    """Whether an output of type ``src`` may feed an input of type ``dst``."""
    return src == dst or dst == "any" or (src, dst) in CONVERSIONS


def convert(value: Any, src: str, dst: str) -> Any:
    if src == dst or dst == "any" or value is None:
        return value
    return CONVERSIONS[(src, dst)][0](value)


def value_nbytes(value: Any) -> int:
    """Size estimate for the cache budget; unknown objects count as small."""
    if isinstance(value, PortType):
        return value.nbytes()
    if isinstance(value, np.ndarray):
        return int(value.nbytes)
    if isinstance(value, (str, bytes)):
        return len(value) + 49
    if isinstance(value, (list, tuple)):
        return sum(value_nbytes(v) for v in value) + 56
    return 64


def coerce_path(value: str, base: Path | None) -> Path:
    p = Path(value).expanduser()
    if not p.is_absolute() and base is not None:
        p = base / p
    return p
