"""Image and depth codecs: PNG (8/16-bit, text chunks), JPEG, WebP, EXR and .npy, read and
written safely."""

from __future__ import annotations

import importlib.util
import os
import struct
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from fathom.engine.errors import FileProblem, LibraryError, echo
from fathom.engine.fileio import atomic_path

#: PNG text key that carries the graph document, so a saved image can be reopened as its graph.
GRAPH_KEY = "fathom.graph"


PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


EXR_MAGIC = b"\x76\x2f\x31\x01"


IMAGE_SUFFIXES = {".png": "png", ".jpg": "jpeg", ".jpeg": "jpeg", ".webp": "webp", ".exr": "exr"}


FORMAT_SUFFIX = {"png": ".png", "jpeg": ".jpg", "webp": ".webp", "exr": ".exr"}


DEPTH_SUFFIXES = (".png", ".exr", ".npy")


EXR_FIX = (
    "install the OpenEXR library (`pip install OpenEXR`), or use an OpenCV build with "
    "OpenEXR; otherwise save as 16-bit PNG or .npy"
)


#: Environment variable that sets the largest image (in pixels) any decoder here will allocate.
MAX_PIXELS_ENV = "FATHOM_MAX_IMAGE_PIXELS"

#: Pillow's own decompression-bomb error threshold (2 × its ``MAX_IMAGE_PIXELS``), about 179
#: megapixels: an 8K frame (33 MP) loads, a 20000×20000 one (400 MP, under 1 MB as a PNG of
#: zeros, 1.6 GB as float32) is refused.
DEFAULT_MAX_PIXELS = 178_956_970

#: What a refusal raises: FileProblem here, MediaError in the media readers.
ErrorType = Callable[..., LibraryError]


def max_image_pixels(error: ErrorType = FileProblem) -> int:
    """The engine's one image size limit: ``FATHOM_MAX_IMAGE_PIXELS`` when set, else the default.
    Read on every call, so a user can raise it without restarting the GUI's worker."""
    raw = os.environ.get(MAX_PIXELS_ENV, "").strip()
    if not raw:
        return DEFAULT_MAX_PIXELS
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if value <= 0:
        raise error(
            f"{MAX_PIXELS_ENV}={echo(raw)} is not a positive whole number of pixels.",
            f"set {MAX_PIXELS_ENV} to a number such as {DEFAULT_MAX_PIXELS * 2}, or unset it",
            port="path",
        )
    return value


def check_pixels(name: str, width: int, height: int, error: ErrorType = FileProblem) -> None:
    """Refuse an image whose header claims more pixels than the limit, before any decoder
    allocates it: a few hundred kilobytes of compressed zeros can claim gigabytes."""
    limit = max_image_pixels(error)
    pixels = max(0, int(width)) * max(0, int(height))
    if pixels > limit:
        raise error(
            f"{name} is {width}×{height} = {pixels:,} pixels, over the limit of {limit:,} pixels "
            "that guards against decompression bombs.",
            f"if the file is genuine, raise the limit with the environment variable "
            f"{MAX_PIXELS_ENV} (e.g. {MAX_PIXELS_ENV}={pixels}); otherwise use a smaller image",
            port="path",
        )


def png_size(head: bytes) -> tuple[int, int] | None:
    """Width and height from a PNG's IHDR chunk (the first 24 bytes), None when not a PNG."""
    if not head.startswith(PNG_SIGNATURE) or len(head) < 24 or head[12:16] != b"IHDR":
        return None
    width, height = struct.unpack(">II", head[16:24])
    return int(width), int(height)


def exr_size(path: Path, error: ErrorType = FileProblem) -> tuple[int, int]:
    """Width and height of an EXR's largest part, from the data windows in its header; no pixel
    data is read. ``error`` when the header is malformed (no decoder could read the file)."""
    try:
        with open(path, "rb") as fh:
            windows = _exr_windows(fh)
    except (OSError, ValueError, struct.error) as exc:
        raise error(
            f"{path.name} cannot be decoded as EXR: its header is unreadable ({exc}).",
            "check that the file is complete, or re-export it",
            port="path",
        ) from None
    sizes = [(x1 - x0 + 1, y1 - y0 + 1) for x0, y0, x1, y1 in windows]
    return max(sizes, key=lambda s: max(0, s[0]) * max(0, s[1]))


def _exr_windows(fh: BinaryIO) -> list[tuple[int, int, int, int]]:
    """The dataWindow box of every part: attributes are ``name\\0 type\\0 size value``, a header
    ends with an empty name, and a multi-part file's header list with an empty header."""
    if fh.read(4) != EXR_MAGIC:
        raise ValueError("not an OpenEXR file")
    (flags,) = struct.unpack("<I", fh.read(4))
    multipart = bool(flags & 0x1000)
    windows: list[tuple[int, int, int, int]] = []
    window = None
    for _ in range(100_000):  # a bound on attributes, so a garbage file cannot spin
        name = _cstring(fh)
        if not name:  # end of one header
            if window is None:
                break  # the empty header that ends a multi-part list (or a header without one)
            windows.append(window)
            window = None
            if not multipart:
                break
            continue
        kind = _cstring(fh)
        (size,) = struct.unpack("<i", fh.read(4))
        if size < 0:
            raise ValueError(f"attribute {name!r} has a negative size")
        if name == "dataWindow" and kind == "box2i" and size == 16:
            window = struct.unpack("<iiii", fh.read(16))
        else:
            fh.seek(size, os.SEEK_CUR)
    if not windows:
        raise ValueError("no dataWindow")
    return windows


def _cstring(fh: BinaryIO) -> str:
    """A NUL-terminated header name (at most 255 bytes in EXR's long-name mode)."""
    out = bytearray()
    while len(out) <= 256:
        c = fh.read(1)
        if not c:
            raise ValueError("the header ends early")
        if c == b"\0":
            return out.decode("latin-1")
        out += c
    raise ValueError("a header name is too long")


def check_image_file(path: Path, error: ErrorType = FileProblem) -> None:
    """Refuse ``path`` unless its header names a size within the limit: PNG and EXR headers are
    read here, other formats by Pillow's lazy open; no pixel is decoded. A header nothing
    recognises is refused too, since its size cannot be known before decoding."""
    head = _head(path)
    size = png_size(head)
    if size is None and head.startswith(EXR_MAGIC):
        size = exr_size(path, error)
    if size is not None:
        check_pixels(path.name, *size, error=error)
        return
    try:
        open_pillow(path, error).close()
    except LibraryError:
        raise
    except Exception as exc:  # noqa: BLE001 - Pillow raises many types on files it does not know
        raise error(
            f"{path.name} cannot be decoded as an image ({exc}).",
            "check that the file is complete and is a PNG, JPEG, WebP, TIFF or EXR",
            port="path",
        ) from None


def open_pillow(path: Path, error: ErrorType = FileProblem) -> Any:
    """``PIL.Image.open`` (lazy: the header only) with the engine's limit checked on its size
    before anything is decoded. Pillow's own bomb check is kept, raised to the engine's limit
    when a user raised that, so one number decides for every decoder."""
    from PIL import Image as PILImage

    limit = max_image_pixels(error)
    if PILImage.MAX_IMAGE_PIXELS is not None and 2 * PILImage.MAX_IMAGE_PIXELS < limit:
        PILImage.MAX_IMAGE_PIXELS = limit // 2 + 1
    try:
        im = PILImage.open(path)
    except PILImage.DecompressionBombError:
        raise error(
            f"{path.name} has more than the limit of {limit:,} pixels that guards against "
            "decompression bombs.",
            f"if the file is genuine, raise the limit with the environment variable "
            f"{MAX_PIXELS_ENV}; otherwise use a smaller image",
            port="path",
        ) from None
    try:
        check_pixels(path.name, *im.size, error=error)
    except LibraryError:
        im.close()
        raise
    return im


def exr_backend() -> str | None:
    """'opencv', 'openexr' or None. The pip OpenCV 5 wheels ship without OpenEXR."""
    # OpenCV reads EXR only when this is set before its first EXR call.
    os.environ.setdefault("OPENCV_IO_ENABLE_OPENEXR", "1")
    import cv2

    if cv2.haveImageWriter("probe.exr"):
        return "opencv"
    if importlib.util.find_spec("OpenEXR") is not None:
        return "openexr"
    return None


def _need_exr() -> str:
    backend = exr_backend()
    if backend is None:
        raise FileProblem("EXR needs the OpenEXR library, which is not installed.", EXR_FIX)
    return backend


def read_exr(path: Path) -> np.ndarray:
    """float32 H×W or H×W×C (RGB order), values as stored. The header's size is checked first:
    both backends allocate every pixel of every channel when they open the file."""
    backend = _need_exr()
    check_pixels(path.name, *exr_size(path))
    if backend == "opencv":
        import cv2

        arr = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
        if arr is None:
            raise FileProblem(f"{path.name} cannot be decoded as EXR.", "check the file")
        return _swap_rb(arr.astype(np.float32))
    import OpenEXR

    try:
        with OpenEXR.File(str(path)) as f:
            chans = {k: np.asarray(v.pixels, np.float32) for k, v in f.channels().items()}
    except Exception as exc:  # noqa: BLE001 - the binding raises RuntimeError and others
        raise FileProblem(
            f"{path.name} cannot be decoded as EXR: {exc}", "check the file"
        ) from None
    for name in ("RGBA", "RGB", "Z", "Y", "R", "depth"):
        if name in chans:
            return chans[name]
    return next(iter(chans.values()))


def write_exr(path: Path, arr: np.ndarray, gray_name: str = "Y") -> None:
    """float32, ZIP-compressed; one-channel data is stored under ``gray_name`` (Z for depth)."""
    arr = np.ascontiguousarray(arr, np.float32)
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[:, :, 0]
    if _need_exr() == "opencv":
        import cv2

        if not cv2.imwrite(str(path), _swap_rb(arr)):
            raise FileProblem(f"OpenCV could not write {path.name}.", "check the folder")
        return
    import OpenEXR

    name = gray_name if arr.ndim == 2 else ("RGB" if arr.shape[2] == 3 else "RGBA")
    header = {"compression": OpenEXR.ZIP_COMPRESSION, "type": OpenEXR.scanlineimage}
    with OpenEXR.File(header, {name: arr}) as f:
        f.write(str(path))


def _swap_rb(arr: np.ndarray) -> np.ndarray:
    """OpenCV keeps BGR(A); everything here is RGB(A)."""
    if arr.ndim == 3 and arr.shape[2] in (3, 4):
        return np.ascontiguousarray(arr[:, :, [2, 1, 0, 3][: arr.shape[2]]])
    return arr


def _head(path: Path) -> bytes:
    with open(path, "rb") as fh:
        return fh.read(32)


def read_image(path: Path) -> np.ndarray:
    """Decode any supported file to float32 H×W×C in [0, 1] (C = 1, 3 or 4). Every path checks
    the size in the file's header against ``max_image_pixels`` before it decodes a pixel."""
    head = _head(path)
    size = png_size(head)
    if size is not None:  # Pillow's bomb check would fire first, without the engine's message
        check_pixels(path.name, *size)
    if head.startswith(EXR_MAGIC) or path.suffix.lower() == ".exr":
        arr = np.nan_to_num(read_exr(path), nan=0.0, posinf=1.0, neginf=0.0)
        # Image is defined on [0, 1]; HDR values above 1 are clipped here, on purpose.
        arr = np.clip(arr, 0.0, 1.0)
    elif head.startswith(PNG_SIGNATURE) and len(head) > 24 and head[24] == 16:
        arr = _read_png16(path)
    else:
        arr = _read_pillow(path)
    if arr.ndim == 2:
        arr = arr[:, :, None]
    if arr.shape[2] == 2:  # gray + alpha: widen to RGBA, which every node understands
        arr = np.concatenate([np.repeat(arr[:, :, :1], 3, axis=2), arr[:, :, 1:]], axis=2)
    return np.ascontiguousarray(arr, np.float32)


def _read_png16(path: Path) -> np.ndarray:
    """OpenCV decodes 16-bit colour, which Pillow cannot; ``read_image`` checked the IHDR size."""
    import cv2

    raw = cv2.imdecode(np.fromfile(path, np.uint8), cv2.IMREAD_UNCHANGED)
    if raw is None:
        raise FileProblem(
            f"{path.name} cannot be decoded as a 16-bit PNG.",
            "check that the file is complete, or re-export it",
        )
    return _swap_rb(raw.astype(np.float32) / 65535.0)


def _read_pillow(path: Path) -> np.ndarray:
    """Pillow decodes everything but 16-bit colour PNG and EXR; the size is checked first."""
    try:
        with open_pillow(path) as im:
            return _pillow_pixels(im)
    except LibraryError:
        raise
    except Exception as exc:  # noqa: BLE001 - Pillow raises many types on bad files
        raise FileProblem(
            f"{path.name} cannot be decoded as an image ({exc}).",
            "check that the file is complete and is a PNG, JPEG, WebP or EXR",
        ) from None


def _pillow_pixels(im: Any) -> np.ndarray:
    """An opened, size-checked Pillow image as float32 in [0, 1], EXIF orientation applied."""
    from PIL import ImageOps

    im.load()
    im = ImageOps.exif_transpose(im)
    mode = im.mode
    if mode.startswith("I;16"):
        return np.asarray(im, np.uint16).astype(np.float32) / 65535.0
    if mode in ("I", "F"):
        return np.clip(np.asarray(im, np.float32) / (65535.0 if mode == "I" else 1.0), 0.0, 1.0)
    transparent = "A" in mode or "transparency" in im.info
    if mode in ("1", "L") and not transparent:
        im = im.convert("L")
    elif transparent:
        im = im.convert("RGBA")
    else:
        im = im.convert("RGB")
    return np.asarray(im, np.uint8).astype(np.float32) / 255.0


def to_uint(data: np.ndarray, bits: int) -> np.ndarray:
    """Round [0, 1] floats to 8- or 16-bit integers, so a load/save round trip is exact."""
    top = 255 if bits == 8 else 65535
    return np.round(np.clip(data, 0.0, 1.0) * top).astype(np.uint8 if bits == 8 else np.uint16)


def png_text_chunk(key: str, text: str) -> bytes:
    """A compressed iTXt chunk (UTF-8), what Pillow's ``add_itxt(zip=True)`` writes."""
    body = key.encode("latin-1") + b"\0\x01\x00" + b"\0" + b"\0" + zlib.compress(text.encode())
    return (
        struct.pack(">I", len(body))
        + b"iTXt"
        + body
        + struct.pack(">I", zlib.crc32(b"iTXt" + body) & 0xFFFFFFFF)
    )


def png_with_text(png: bytes, text: dict[str, str]) -> bytes:
    """Insert text chunks just before IEND (the last 12 bytes of every PNG)."""
    chunks = b"".join(png_text_chunk(k, v) for k, v in text.items())
    return png[:-12] + chunks + png[-12:]


def encode_png16(data: np.ndarray, text: dict[str, str]) -> bytes:
    """Pillow cannot write 16-bit colour PNGs, so OpenCV encodes and the text goes in by hand."""
    import cv2

    ok, buf = cv2.imencode(".png", _swap_rb(to_uint(data, 16)))
    if not ok:
        raise FileProblem(
            "OpenCV could not encode the 16-bit PNG.", "save as 8-bit", port="bit_depth"
        )
    return png_with_text(buf.tobytes(), text)


def write_image(
    target: Path,
    data: np.ndarray,
    fmt: str,
    quality: int = 95,
    bits: int = 8,
    text: dict[str, str] | None = None,
) -> None:
    """Encode ``data`` (H×W×C in [0,1]) atomically: the old file survives any failure."""
    text = text or {}
    with atomic_path(target) as tmp:
        if fmt == "exr":
            write_exr(tmp, data)
        elif fmt == "png" and bits == 16:
            tmp.write_bytes(encode_png16(data, text))
        else:
            _write_pillow(tmp, data, fmt, quality, text)


def _write_pillow(
    tmp: Path, data: np.ndarray, fmt: str, quality: int, text: dict[str, str]
) -> None:
    from PIL import Image as PILImage
    from PIL import PngImagePlugin

    arr = to_uint(data, 8)
    if arr.shape[2] == 1:
        im = PILImage.fromarray(arr[:, :, 0], "L")
    else:
        im = PILImage.fromarray(arr, "RGB" if arr.shape[2] == 3 else "RGBA")
    if fmt == "png":
        info = PngImagePlugin.PngInfo()
        for key, value in text.items():
            info.add_itxt(key, value, zip=True)
        im.save(tmp, "PNG", pnginfo=info)
    elif fmt == "jpeg":
        # JPEG has no alpha channel; the alpha is dropped (documented on the node).
        im = im.convert("L") if im.mode == "L" else im.convert("RGB")
        im.save(tmp, "JPEG", quality=quality)
    else:
        im = im if im.mode in ("RGB", "RGBA") else im.convert("RGB")
        im.save(tmp, "WEBP", quality=quality, lossless=quality == 100)


def save_target(path: str, fmt: str, bits: str) -> tuple[str, str]:
    """(format, path with suffix) for a save, or FileProblem naming the parameter to change."""
    suffix = Path(path).suffix.lower()
    known = ", ".join(sorted(IMAGE_SUFFIXES))
    if fmt == "auto":
        if suffix not in IMAGE_SUFFIXES:
            raise FileProblem(
                f"cannot tell the format from {path!r}.",
                f"end the path with one of {known}, or set `format`",
            )
        fmt = IMAGE_SUFFIXES[suffix]
    elif not suffix:
        path += FORMAT_SUFFIX[fmt]
    elif IMAGE_SUFFIXES.get(suffix) != fmt:
        raise FileProblem(
            f"format {fmt} does not match the file name {Path(path).name!r}.",
            f"set `format` to auto, or end the path with {FORMAT_SUFFIX[fmt]}",
            port="format",
        )
    if bits == "16" and fmt != "png":
        raise FileProblem(
            f"16-bit output is only possible for PNG, not {fmt}.",
            "set `bit_depth` to 8, or save as PNG",
            port="bit_depth",
        )
    return fmt, path


def depth_to_png16(depth: np.ndarray, scale: float, relative: bool = False) -> np.ndarray:
    """uint16 = round(depth × scale); 0 means 'no depth'. With scale 1000, metres become mm.
    Relative depth's 0 (the nearest point) is depth: it is written as 1, not as a hole."""
    valid = np.isfinite(depth) & ((depth >= 0) if relative else (depth > 0))
    scaled = np.where(valid, depth, 0.0).astype(np.float64) * scale
    top = float(scaled.max(initial=0.0))
    if top > 65535.5:
        far = top / scale
        raise FileProblem(
            f"the farthest depth {far:g} × scale {scale:g} = {top:g} exceeds 65535, the 16-bit "
            "PNG limit.",
            f"lower `scale` to at most {65535 / far:g}, or save as .exr or .npy",
            port="scale",
        )
    out = np.round(scaled).astype(np.uint16)
    out[valid & (out == 0)] = 1  # a real depth must not read back as 'no depth'
    return out


def _npy_shape(path: Path) -> tuple[int, ...]:
    """The shape in a .npy file's header, read without its data."""
    from numpy.lib import format as npy

    with open(path, "rb") as fh:
        version = npy.read_magic(fh)
        # Version 3.0 differs from 2.0 only in the header's text encoding (UTF-8 field names).
        read = npy.read_array_header_1_0 if version == (1, 0) else npy.read_array_header_2_0
        shape, _fortran, _dtype = read(fh)
    return tuple(int(n) for n in shape)


def _read_npy(path: Path) -> np.ndarray:
    """A .npy array, its header's shape checked against the limit before the data is read."""
    try:
        shape = _npy_shape(path)
    except Exception as exc:  # noqa: BLE001 - numpy raises ValueError/OSError/EOFError
        raise _npy_problem(path, exc) from None
    if len(shape) > 3 or (len(shape) == 3 and shape[2] > 4):
        raise FileProblem(
            f"{path.name} holds shape {echo(shape)}, not one channel of depth.",
            "save depth as a single-channel (grayscale) file",
        )
    height, width = shape[:2] if len(shape) >= 2 else (1, int(np.prod(shape)))
    check_pixels(path.name, width, height)
    try:
        return np.load(path, allow_pickle=False)
    except Exception as exc:  # noqa: BLE001 - numpy raises ValueError/OSError/EOFError
        raise _npy_problem(path, exc) from None


def _npy_problem(path: Path, exc: Exception) -> FileProblem:
    """The header and the data fail the same ways (not .npy, object arrays, cut short)."""
    return FileProblem(
        f"{path.name} cannot be read as a .npy array ({exc}).",
        "save it with numpy.save as a float array",
    )


def read_depth(path: Path, scale: float) -> np.ndarray:
    """float32 H×W from a 16-bit (or 8-bit) PNG divided by ``scale``, an EXR, or a .npy; each
    file's header size is checked against the limit before its pixels are decoded."""
    suffix = path.suffix.lower()
    if suffix == ".npy":
        arr = _read_npy(path)
    elif suffix == ".exr" or _head(path).startswith(EXR_MAGIC):
        arr = read_exr(path)
    else:
        import cv2

        check_image_file(path)
        raw = cv2.imdecode(np.fromfile(path, np.uint8), cv2.IMREAD_UNCHANGED)
        if raw is None:
            raise FileProblem(
                f"{path.name} cannot be decoded as a depth PNG.",
                "check that the file is complete, or re-export it",
            )
        arr = raw.astype(np.float32) / scale
    if arr.ndim == 3 and (arr.shape[2] == 1 or np.array_equal(arr[..., 0], arr[..., 1])):
        arr = arr[..., 0]
    if arr.ndim != 2 or not np.issubdtype(arr.dtype, np.number):
        raise FileProblem(
            f"{path.name} holds shape {arr.shape}, not one channel of depth.",
            "save depth as a single-channel (grayscale) file",
        )
    return arr.astype(np.float32)
