"""Test clips made with PyAV, each frame carrying its own index as a binary code.

Frame-exact checks (trim, concat, speed, reverse, loop, seeking) read the index back from the
decoded pixels, so they test what a user would see, through a real encoder and decoder.
The code is a row of ``BITS`` large black/white blocks across the top band of the frame; the
rest is a smooth colour that also changes with the index (so blends and fades are visible).
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import numpy as np

BITS = 10  # indices 0..1023
BAND = 16  # pixel rows the code occupies


def frame_pixels(index: int, width: int = 96, height: int = 64) -> np.ndarray:
    """uint8 H×W×3 frame showing ``index``: code blocks on top, a colour ramp below."""
    if not 0 <= index < 2**BITS:
        raise ValueError(f"index {index} does not fit in {BITS} bits")
    img = np.zeros((height, width, 3), np.uint8)
    x = np.linspace(0, 1, width, dtype=np.float32)[None, :]
    y = np.linspace(0, 1, height, dtype=np.float32)[:, None]
    img[..., 0] = (255 * (0.2 + 0.6 * x)).astype(np.uint8)
    img[..., 1] = (255 * (0.2 + 0.6 * y)).astype(np.uint8)
    img[..., 2] = int(40 + (index * 37) % 180)
    edges = np.linspace(0, width, BITS + 1).round().astype(int)
    for b in range(BITS):
        on = (index >> (BITS - 1 - b)) & 1
        img[:BAND, edges[b] : edges[b + 1]] = 255 if on else 0
    return img


def read_index(image: np.ndarray) -> int:
    """The index drawn by ``frame_pixels``; accepts uint8 or float [0, 1] frames of any size
    (the code scales with the frame, so resized frames still read)."""
    raw = np.asarray(image)
    a = raw.astype(np.float32)
    if raw.dtype != np.uint8 and a.max() <= 1.0 + 1e-6:
        a = a * 255.0
    a = a[..., :3].mean(axis=-1) if a.ndim == 3 else a
    h, w = a.shape
    band = max(1, round(BAND * h / 64))
    edges = np.linspace(0, w, BITS + 1).round().astype(int)
    value = 0
    for b in range(BITS):
        lo, hi = edges[b], edges[b + 1]
        pad = max(0, (hi - lo) // 4)
        rows = slice(band // 4, max(band // 4 + 1, 3 * band // 4))
        block = a[rows, lo + pad : max(lo + pad + 1, hi - pad)]
        value = (value << 1) | int(block.mean() > 127)
    return value


def tone(
    seconds: float, sample_rate: int = 48000, channels: int = 2, freq: float = 440.0
) -> np.ndarray:
    """float32 channels×samples sine, left and right at different pitches."""
    n = round(seconds * sample_rate)
    t = np.arange(n, dtype=np.float64) / sample_rate
    rows = [0.3 * np.sin(2 * np.pi * freq * (c + 1) * t) for c in range(channels)]
    return np.stack(rows).astype(np.float32)


def make_clip(
    path: Path,
    frames: int = 24,
    size: tuple[int, int] = (96, 64),
    fps: float = 24.0,
    codec: str = "libx264",
    gop: int = 12,
    audio: bool = False,
    sample_rate: int = 48000,
    crf: int = 12,
    first: int = 0,
) -> Path:
    """Encode ``frames`` coded frames (indices ``first``..) to ``path``; with ``audio``, a
    stereo tone exactly as long as the video. A small GOP makes seeking non-trivial."""
    import av

    w, h = size
    path = Path(path)
    with av.open(str(path), mode="w") as out:
        v = out.add_stream(codec, rate=Fraction(fps).limit_denominator(1001))
        v.width, v.height = w, h
        v.pix_fmt = "yuv420p"
        opts = {"g": str(gop)}
        if codec == "libx264":
            opts["crf"] = str(crf)
        elif codec == "libvpx-vp9":
            opts.update({"crf": str(crf), "b": "0"})
        v.options = opts
        a = None
        if audio:
            a = out.add_stream("aac", rate=sample_rate)
            a.layout = "stereo"
        for i in range(frames):
            frame = av.VideoFrame.from_ndarray(frame_pixels(first + i, w, h), format="rgb24")
            for p in v.encode(frame):
                out.mux(p)
        for p in v.encode():
            out.mux(p)
        if a is not None:
            pcm = tone(frames / fps, sample_rate)
            step = 1024
            for s in range(0, pcm.shape[1], step):
                chunk = np.ascontiguousarray(pcm[:, s : s + step])
                af = av.AudioFrame.from_ndarray(chunk, format="fltp", layout="stereo")
                af.sample_rate = sample_rate
                af.pts = s
                for p in a.encode(af):
                    out.mux(p)
            for p in a.encode():
                out.mux(p)
    return path


def decoded_indices(path: Path) -> list[int]:
    """Every frame's index, decoding the file straight through with PyAV (the ground truth)."""
    import av

    with av.open(str(path)) as c:
        return [read_index(f.to_ndarray(format="rgb24")) for f in c.decode(video=0)]


def audio_samples(path: Path) -> int:
    """Decoded audio sample count per channel (0 when the file has no audio)."""
    import av

    with av.open(str(path)) as c:
        if not c.streams.audio:
            return 0
        return sum(f.samples for f in c.decode(audio=0))
