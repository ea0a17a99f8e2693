"""Frame timing and naming: presentation order, frame rates, durations, image-sequence names."""

from __future__ import annotations

import bisect
import re
from collections.abc import Sequence
from fractions import Fraction
from pathlib import Path
from typing import Any

SEQUENCE_SUFFIXES = (".png", ".exr", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp")


_PATTERN = re.compile(r"%(0?)(\d*)d")


def presentation_index(pts: Sequence[int]) -> list[int]:
    """Packet timestamps (decode order) to the sorted presentation timestamps, duplicates
    dropped: entry i is the timestamp of frame i."""
    return sorted(set(pts))


def keyframe_before(keyframes: Sequence[int], index: int) -> int:
    """The last keyframe index at or before ``index`` (0 if none is marked)."""
    k = bisect.bisect_right(keyframes, index) - 1
    return keyframes[k] if k >= 0 else 0


def average_fps(pts: Sequence[int], time_base: Fraction, declared: float | None) -> float:
    """Frames per second over the whole clip: frame i shows at about i / fps even when the
    spacing varies. A declared average within 1% wins, so 30000/1001 stays exact."""
    n = len(pts)
    measured = None
    if n > 1 and pts[-1] > pts[0]:
        measured = (n - 1) / float((pts[-1] - pts[0]) * time_base)
    if (
        declared
        and declared > 0
        and (measured is None or abs(declared - measured) <= 0.01 * measured)
    ):
        return float(declared)
    return float(measured or declared or 24.0)


def declared_seconds(
    duration: int | None, time_base: Fraction, metadata: dict[str, str]
) -> float | None:
    """The stream length the file's header claims (Matroska keeps it as a DURATION tag)."""
    if duration:
        return float(duration * time_base)
    tag = metadata.get("DURATION") or metadata.get("duration")
    m = re.fullmatch(r"(\d+):(\d+):(\d+(?:\.\d*)?)", tag or "")
    if m is None:
        return None
    return int(m.group(1)) * 3600 + int(m.group(2)) * 60 + float(m.group(3))


def truncated(declared: float | None, held: float, frames: int) -> bool:
    """Whether packets cover clearly less than the header's duration: a cut download. Two
    average frames and 2% of slack absorb last-frame durations a demuxer does not know."""
    if not declared or frames < 2:
        return False
    per_frame = held / max(1, frames - 1)
    return declared - held > 2 * per_frame + 0.02 * declared


def sample_bounds(track_spans: Sequence[float], rate: int) -> list[tuple[int, int]]:
    """Sample ranges of consecutive spans (seconds), rounded on the running total so joined
    spans never drift by a sample per cut."""
    out, t = [], 0.0
    for d in track_spans:
        a, b = round(t * rate), round((t + d) * rate)
        out.append((a, b))
        t += d
    return out


def sequence_pattern(text: str) -> re.Pattern[str] | None:
    """A printf (``%04d``) or glob (``*``) file-name pattern as a regex with one number group,
    or None when ``text`` names a single file."""
    name = Path(text).name
    if _PATTERN.search(name):
        parts = _PATTERN.split(name)
        rx = ""
        for k in range(0, len(parts), 3):
            rx += re.escape(parts[k])
            if k + 2 < len(parts):
                width = parts[k + 2]
                rx += rf"(\d{{{width},}})" if parts[k + 1] == "0" and width else r"(\d+)"
        return re.compile(rx + r"\Z")
    if "*" in name or "?" in name:
        rx = re.escape(name).replace(r"\*", ".*").replace(r"\?", ".")
        return re.compile(rx + r"\Z")
    return None


def _natural_key(name: str) -> tuple[Any, ...]:
    return tuple(int(t) if t.isdigit() else t for t in re.split(r"(\d+)", name))


def list_sequence(path: Path) -> list[Path]:
    """The image files of a folder, or matching a pattern, in frame order."""
    if path.is_dir():
        files = [
            p
            for p in path.iterdir()
            if p.suffix.lower() in SEQUENCE_SUFFIXES and not p.name.startswith(".")
        ]
    else:
        rx = sequence_pattern(str(path))
        if rx is None or not path.parent.is_dir():
            return []
        files = [p for p in path.parent.iterdir() if rx.match(p.name)]
    return sorted(files, key=lambda p: _natural_key(p.name))


def sequence_name(pattern: str, index: int) -> str:
    """The file name for frame ``index`` from a printf pattern (``%04d`` → 0007)."""
    return _PATTERN.sub(lambda m: f"{index:{m.group(1)}{m.group(2)}d}", Path(pattern).name)
