"""The image size limit: every decoder (Pillow, OpenCV, EXR, .npy, PyAV, animated WebP, image
sequences) reads the size its file declares and refuses a decompression bomb before allocating,
with one limit for the whole engine that FATHOM_MAX_IMAGE_PIXELS raises."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from bombs import HUGE, exr_header, npy_header, peak_rss_mb, png_bytes
from PIL import Image as PILImage
from videoclips import make_clip

from fathom.engine.errors import FileProblem, LibraryError, MediaError
from fathom.engine.imaging import codecs
from fathom.engine.media.readers import AVReader, PillowReader, open_reader

LIMIT_TEXT = "over the limit of 178,956,970 pixels"


@pytest.fixture(autouse=True)
def default_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(codecs.MAX_PIXELS_ENV, raising=False)


@pytest.fixture
def refused_quickly() -> Iterator[Callable[..., LibraryError]]:
    """``refused_quickly(error, call, *args)``: the call raises ``error`` within a second and
    the process's peak memory grows by less than 200 MB (decoding would take gigabytes)."""
    before = peak_rss_mb()

    def check(error: type[LibraryError], call: Callable[..., Any], *args: Any) -> LibraryError:
        t0 = time.perf_counter()
        with pytest.raises(error) as info:
            call(*args)
        assert time.perf_counter() - t0 < 1.0
        return info.value

    yield check
    assert peak_rss_mb() - before < 200


def says_how_to_raise(err: LibraryError, shown: str = "20000×20000") -> None:
    text = f"{err} {err.fix}"
    assert shown in text and "FATHOM_MAX_IMAGE_PIXELS" in text, text
    assert err.port == "path"


# ---- the one limit --------------------------------------------------------------------------


def test_the_default_limit_passes_8k_and_refuses_20000_squared(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    codecs.check_pixels("8k.png", 7680, 4320)
    codecs.check_pixels("pano.png", 16384, 8192)  # a 16K equirectangular panorama
    with pytest.raises(FileProblem) as err:
        codecs.check_pixels("bomb.png", *HUGE)
    assert LIMIT_TEXT in str(err.value)
    says_how_to_raise(err.value)
    assert "FATHOM_MAX_IMAGE_PIXELS=400000000" in str(err.value.fix)
    monkeypatch.setenv(codecs.MAX_PIXELS_ENV, "400000000")
    codecs.check_pixels("bomb.png", *HUGE)  # raised by the user: now allowed
    monkeypatch.setenv(codecs.MAX_PIXELS_ENV, "lots")
    with pytest.raises(MediaError, match="FATHOM_MAX_IMAGE_PIXELS=lots is not a positive"):
        codecs.check_pixels("clip.mp4", 96, 64, error=MediaError)


# ---- images and depth: PNG (Pillow and OpenCV), EXR, .npy ----------------------------------


@pytest.mark.parametrize(("bits", "channels"), [(16, 1), (16, 3), (8, 1), (8, 4)])
def test_huge_pngs_are_refused_before_decoding(
    tmp_path: Path, refused_quickly: Callable[..., LibraryError], bits: int, channels: int
) -> None:
    bomb = tmp_path / "bomb.png"
    bomb.write_bytes(png_bytes(*HUGE, bits, channels))
    assert bomb.stat().st_size * 1000 < HUGE[0] * HUGE[1] * channels * bits // 8  # a bomb
    says_how_to_raise(refused_quickly(FileProblem, codecs.read_image, bomb))
    if channels == 1:  # depth.load reads grey PNGs with OpenCV
        says_how_to_raise(refused_quickly(FileProblem, codecs.read_depth, bomb, 1000.0))


@pytest.mark.parametrize("backend", ["openexr", "opencv"])
def test_huge_exr_headers_are_refused_by_either_backend(
    tmp_path: Path,
    refused_quickly: Callable[..., LibraryError],
    monkeypatch: pytest.MonkeyPatch,
    backend: str,
) -> None:
    monkeypatch.setattr(codecs, "exr_backend", lambda: backend)
    bomb = tmp_path / "bomb.exr"
    bomb.write_bytes(exr_header(*HUGE))
    assert codecs.exr_size(bomb) == HUGE
    says_how_to_raise(refused_quickly(FileProblem, codecs.read_image, bomb))
    says_how_to_raise(refused_quickly(FileProblem, codecs.read_depth, bomb, 1.0))


def test_exr_sizes_come_from_real_headers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    if codecs.exr_backend() is None:
        pytest.skip("no EXR writer")
    codecs.write_exr(tmp_path / "a.exr", np.zeros((30, 50, 3), np.float32))
    assert codecs.exr_size(tmp_path / "a.exr") == (50, 30)
    monkeypatch.setenv(codecs.MAX_PIXELS_ENV, "1499")
    with pytest.raises(FileProblem) as err:
        codecs.read_image(tmp_path / "a.exr")
    says_how_to_raise(err.value, "50×30")
    (tmp_path / "b.exr").write_bytes(codecs.EXR_MAGIC + bytes(60))
    with pytest.raises(FileProblem, match="cannot be decoded as EXR: its header is unreadable"):
        codecs.read_image(tmp_path / "b.exr")


def test_npy_headers_claiming_huge_arrays_are_refused(
    tmp_path: Path, refused_quickly: Callable[..., LibraryError]
) -> None:
    bomb = tmp_path / "bomb.npy"
    bomb.write_bytes(npy_header(HUGE))
    says_how_to_raise(refused_quickly(FileProblem, codecs.read_depth, bomb, 1.0))
    (tmp_path / "flat.npy").write_bytes(npy_header((HUGE[0] * HUGE[1],)))
    says_how_to_raise(
        refused_quickly(FileProblem, codecs.read_depth, tmp_path / "flat.npy", 1.0),
        "400000000×1",
    )
    (tmp_path / "cube.npy").write_bytes(npy_header((10, 10, 10**9)))
    err = refused_quickly(FileProblem, codecs.read_depth, tmp_path / "cube.npy", 1.0)
    assert "not one channel of depth" in str(err)
    np.save(tmp_path / "ok.npy", np.ones((3, 4), np.float32))
    assert codecs.read_depth(tmp_path / "ok.npy", 1.0).shape == (3, 4)


@pytest.mark.parametrize("fmt", ["JPEG", "WEBP", "TIFF", "BMP"])
def test_pillow_formats_are_checked_before_loading(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fmt: str
) -> None:
    path = tmp_path / f"a.{fmt.lower()}"
    PILImage.new("RGB", (40, 30)).save(path, fmt)
    assert codecs.read_image(path).shape == (30, 40, 3)
    monkeypatch.setenv(codecs.MAX_PIXELS_ENV, "1000")
    with pytest.raises(FileProblem) as err:
        codecs.read_image(path)
    says_how_to_raise(err.value, "40×30")


def test_a_raised_limit_raises_pillows_own_check(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(PILImage, "MAX_IMAGE_PIXELS", PILImage.MAX_IMAGE_PIXELS)
    monkeypatch.setenv(codecs.MAX_PIXELS_ENV, str(10**9))
    try:
        codecs.open_pillow(Path("missing.png"))
    except FileNotFoundError:
        pass
    assert 2 * PILImage.MAX_IMAGE_PIXELS >= 10**9  # Pillow no longer refuses below the limit


# ---- video: PyAV, animated WebP, image sequences -------------------------------------------


def test_video_readers_check_the_declared_frame_size(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    clip = make_clip(tmp_path / "c.mp4", frames=3)
    webp = tmp_path / "a.webp"
    frames = [PILImage.new("RGB", (96, 64), (100 * i, 0, 0)) for i in range(3)]
    frames[0].save(webp, save_all=True, append_images=frames[1:], duration=100, lossless=True)
    assert AVReader(clip).size == (96, 64) and PillowReader(webp).length == 3
    monkeypatch.setenv(codecs.MAX_PIXELS_ENV, str(96 * 64 - 1))
    for reader, path in ((AVReader, clip), (PillowReader, webp)):
        with pytest.raises(MediaError) as err:
            reader(path)
        says_how_to_raise(err.value, "96×64")


def test_image_sequences_refuse_a_huge_frame_before_decoding_it(
    tmp_path: Path, refused_quickly: Callable[..., LibraryError]
) -> None:
    seq = tmp_path / "seq"
    seq.mkdir()
    PILImage.new("RGB", (4, 3)).save(seq / "f_000.png")
    (seq / "f_001.png").write_bytes(png_bytes(*HUGE, 16))
    reader = open_reader(seq, 24.0, codecs.read_image)
    assert reader.length == 2 and reader.image(0).shape == (3, 4, 3)
    says_how_to_raise(refused_quickly(MediaError, reader.image, 1))
    (seq / "f_000.png").write_bytes(png_bytes(*HUGE, 8))
    says_how_to_raise(refused_quickly(MediaError, open_reader, seq, 24.0, codecs.read_image))
