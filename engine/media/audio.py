"""Audio: decode a lazy AudioTrack as a stream of float32 channels×n chunks, and retime it."""

from __future__ import annotations

from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path

import numpy as np

from fathom.engine.errors import MediaError
from fathom.engine.media.readers import av_errors
from fathom.engine.media.timing import sample_bounds
from fathom.engine.types import AudioTrack


def channel_layout(channels: int) -> str:
    return {1: "mono", 2: "stereo"}.get(channels, f"{channels}c")


def first_audio(path: Path) -> tuple[int, int] | None:
    """(sample rate, channels) of a file's first audio stream, or None."""
    import av

    try:
        with av.open(str(path)) as c:
            if not c.streams.audio:
                return None
            a = c.streams.audio[0]
            return int(a.rate or a.sample_rate or 48000), int(a.channels or 2)
    except av_errors():
        return None


def _file_samples(
    path: str, start: float, count: int, rate: int, channels: int, chunk: int
) -> Iterator[np.ndarray]:
    """``count`` samples of ``path``'s first audio stream from ``start`` seconds, resampled;
    silence fills what the file lacks, so a span always has its exact length."""
    import av

    layout = channel_layout(channels)
    sent = 0
    with av.open(path) as c:
        if not c.streams.audio:
            raise MediaError(
                f"{Path(path).name} has no audio stream",
                "take audio from a file that has sound, or choose no audio",
            )
        s = c.streams.audio[0]
        tb = Fraction(s.time_base or Fraction(1, rate))
        if start > 0:
            # Seek 0.1 s early: an AAC/Opus decoder needs a frame of warm-up after a seek (its
            # first samples are garbage, a click at every cut); the extra is skipped below.
            c.seek(int(max(0.0, start - 0.1) / tb), stream=s, backward=True, any_frame=False)
        res = av.AudioResampler(format="fltp", layout=layout, rate=rate)
        origin: float | None = None
        skip = 0
        pending: list[np.ndarray] = []

        def resampled() -> Iterator[np.ndarray]:
            nonlocal origin
            for frame in c.decode(s):
                if origin is None:
                    origin = float(frame.pts * tb) if frame.pts is not None else 0.0
                for out in res.resample(frame):
                    yield out.to_ndarray()
            for out in res.resample(None):
                yield out.to_ndarray()

        started = False
        for arr in resampled():
            if not started:
                started = True
                skip = round((start - (origin or 0.0)) * rate)
                if skip < 0:  # the stream starts after ``start``: lead with silence
                    pending.append(np.zeros((channels, min(-skip, count)), np.float32))
                    skip = 0
            if skip:
                cut = min(skip, arr.shape[1])
                arr, skip = arr[:, cut:], skip - cut
            pending.append(arr)
            have = sum(p.shape[1] for p in pending)
            if have >= chunk or sent + have >= count:
                block = np.concatenate(pending, axis=1)[:, : count - sent]
                pending = []
                sent += block.shape[1]
                if block.shape[1]:
                    yield block
                if sent >= count:
                    return
        if pending:
            block = np.concatenate(pending, axis=1)[:, : count - sent]
            sent += block.shape[1]
            yield block
    while sent < count:
        n = min(chunk, count - sent)
        sent += n
        yield np.zeros((channels, n), np.float32)


def audio_chunks(
    track: AudioTrack, rate: int | None = None, channels: int | None = None, chunk: int = 4096
) -> Iterator[np.ndarray]:
    """The whole track as float32 channels×n chunks at ``rate``/``channels`` (default: the
    track's), exactly round(duration × rate) samples in all."""
    rate = rate or track.sample_rate
    channels = channels or track.channels
    bounds = sample_bounds([s.duration for s in track.spans], rate)
    for span, (a, b) in zip(track.spans, bounds, strict=True):
        count = b - a
        if count <= 0:
            continue
        if span.path is None:
            for k in range(0, count, chunk):
                yield np.zeros((channels, min(chunk, count - k)), np.float32)
        elif span.speed == 1.0 and not span.reverse:
            yield from _file_samples(span.path, span.start, count, rate, channels, chunk)
        else:
            # Retimed or reversed: the span's source stretch in memory (reversal needs all of
            # it; a clip's worth of float audio is small next to its frames).
            n_src = max(1, round(span.source_duration * rate))
            parts = list(_file_samples(span.path, span.start, n_src, rate, channels, chunk))
            pcm = (
                np.concatenate(parts, axis=1) if parts else np.zeros((channels, n_src), np.float32)
            )
            if span.reverse:
                pcm = pcm[:, ::-1]
            if span.speed != 1.0:
                pcm = time_stretch(pcm, rate, span.speed)
            pcm = _fit_samples(pcm, count)
            for k in range(0, count, chunk):
                yield np.ascontiguousarray(pcm[:, k : k + chunk])


def _fit_samples(pcm: np.ndarray, count: int) -> np.ndarray:
    if pcm.shape[1] >= count:
        return pcm[:, :count]
    return np.concatenate([pcm, np.zeros((pcm.shape[0], count - pcm.shape[1]), pcm.dtype)], 1)


def _tempo_chain(factor: float) -> list[float]:
    """FFmpeg's atempo takes 0.5..100 per instance: split slower factors into a chain."""
    steps = []
    while factor < 0.5:
        steps.append(0.5)
        factor /= 0.5
    while factor > 100.0:
        steps.append(100.0)
        factor /= 100.0
    return [*steps, factor]


def time_stretch(pcm: np.ndarray, rate: int, factor: float) -> np.ndarray:
    """float32 channels×n audio played ``factor`` times as fast with its pitch kept (FFmpeg's
    atempo, a waveform-similarity overlap-add): about n / factor samples come back."""
    import av
    import av.filter

    channels = pcm.shape[0]
    layout = channel_layout(channels)
    graph = av.filter.Graph()
    node = graph.add_abuffer(
        format="fltp", sample_rate=rate, layout=layout, time_base=Fraction(1, rate)
    )
    for f in _tempo_chain(factor):
        nxt = graph.add("atempo", f"{f:.6f}")
        node.link_to(nxt)
        node = nxt
    fmt = graph.add("aformat", f"sample_fmts=fltp:channel_layouts={layout}")
    node.link_to(fmt)
    sink = graph.add("abuffersink")
    fmt.link_to(sink)
    graph.configure()
    out: list[np.ndarray] = []

    def drain() -> None:
        while True:
            try:
                frame = graph.pull()
            except (BlockingIOError, EOFError):
                return
            out.append(frame.to_ndarray().reshape(channels, -1))

    step = 4096
    for k in range(0, pcm.shape[1], step):
        frame = av.AudioFrame.from_ndarray(
            np.ascontiguousarray(pcm[:, k : k + step]), format="fltp", layout=layout
        )
        frame.sample_rate, frame.pts, frame.time_base = rate, k, Fraction(1, rate)
        graph.push(frame)
        drain()
    graph.push(None)
    drain()
    return np.concatenate(out, axis=1) if out else np.zeros((channels, 0), np.float32)


def decode_audio(
    track: AudioTrack, rate: int | None = None, channels: int | None = None
) -> np.ndarray:
    """The whole track in memory (channels×samples): for tests and short clips."""
    ch = channels or track.channels
    parts = list(audio_chunks(track, rate, channels))
    return np.concatenate(parts, axis=1) if parts else np.zeros((ch, 0), np.float32)
