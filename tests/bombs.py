"""Decompression bombs for the image size limit tests: small files whose headers claim huge
images, built in a fraction of a second without ever holding the pixels in memory."""

from __future__ import annotations

import io
import struct
import zlib

from numpy.lib import format as npy

#: The size the limit must refuse by default (400 megapixels).
HUGE = (20_000, 20_000)


def zeros_zlib(row_bytes: int, rows: int) -> bytes:
    """A zlib stream of ``rows`` × ``row_bytes`` zero bytes. A full flush makes each compressed
    block independent of the ones before, so one block repeated is the whole stream: 800 MB of
    zeros compress in milliseconds instead of seconds."""
    per_block = max(1, min(rows, (4 << 20) // row_bytes))
    full, rest = divmod(rows, per_block)
    block = bytes(row_bytes * per_block)
    head = zlib.compressobj(9)
    first = head.compress(block) + head.flush(zlib.Z_FULL_FLUSH)
    again = zlib.compressobj(9, wbits=-15)  # raw deflate: the block without the zlib header
    body = again.compress(block) + again.flush(zlib.Z_FULL_FLUSH)
    tail = b""
    if rest:
        last = zlib.compressobj(9, wbits=-15)
        tail = last.compress(bytes(row_bytes * rest)) + last.flush(zlib.Z_FULL_FLUSH)
    adler = 1
    for _ in range(full):
        adler = zlib.adler32(block, adler)
    adler = zlib.adler32(bytes(row_bytes * rest), adler)
    # b"\x03\x00" is an empty final block; the stream ends with the Adler-32 of the data.
    return first + body * (full - 1) + tail + b"\x03\x00" + struct.pack(">I", adler)


def _chunk(kind: bytes, data: bytes) -> bytes:
    """A PNG chunk with its CRC, so every decoder accepts the file as well formed."""
    return (
        struct.pack(">I", len(data))
        + kind
        + data
        + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    )


def png_bytes(width: int, height: int, bits: int = 8, channels: int = 1) -> bytes:
    """A valid all-zero PNG (grey, grey+alpha, RGB or RGBA): 20000×20000 at 16 bits is ~800 KB
    on disk and 800 MB decoded (1.6 GB more as float32)."""
    color = {1: 0, 2: 4, 3: 2, 4: 6}[channels]
    ihdr = struct.pack(">IIBBBBB", width, height, bits, color, 0, 0, 0)
    row = 1 + width * channels * bits // 8  # each row starts with its filter byte
    return (
        b"\x89PNG\r\n\x1a\n"
        + _chunk(b"IHDR", ihdr)
        + _chunk(b"IDAT", zeros_zlib(row, height))
        + _chunk(b"IEND", b"")
    )


def exr_header(width: int, height: int) -> bytes:
    """A scan-line EXR header for one float channel 'Y' of width×height, with an offset table
    and no pixel data: only a decoder that trusts the header would allocate the image."""

    def attr(name: str, kind: str, value: bytes) -> bytes:
        return name.encode() + b"\0" + kind.encode() + b"\0" + struct.pack("<i", len(value)) + value

    window = struct.pack("<iiii", 0, 0, width - 1, height - 1)
    channels = b"Y\0" + struct.pack("<iB3xii", 2, 0, 1, 1) + b"\0"
    header = (
        b"\x76\x2f\x31\x01"
        + struct.pack("<I", 2)
        + attr("channels", "chlist", channels)
        + attr("compression", "compression", b"\0")
        + attr("dataWindow", "box2i", window)
        + attr("displayWindow", "box2i", window)
        + attr("lineOrder", "lineOrder", b"\0")
        + attr("pixelAspectRatio", "float", struct.pack("<f", 1.0))
        + attr("screenWindowCenter", "v2f", struct.pack("<ff", 0.0, 0.0))
        + attr("screenWindowWidth", "float", struct.pack("<f", 1.0))
        + b"\0"
    )
    return header + bytes(8 * height)  # the offset table, one entry per scan line


def npy_header(shape: tuple[int, ...], dtype: str = "<f4") -> bytes:
    """A .npy header claiming ``shape`` with no data after it."""
    buf = io.BytesIO()
    npy.write_array_header_1_0(buf, {"descr": dtype, "fortran_order": False, "shape": shape})
    return buf.getvalue()


def peak_rss_mb() -> float:
    """This process's peak resident memory so far, in MB (Linux reports kilobytes)."""
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
