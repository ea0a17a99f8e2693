"""File nodes: round trips per format, embedded graph, pre-flight checks, failures, atomicity."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
from bombs import HUGE, peak_rss_mb, png_bytes
from PIL import Image as PILImage

from fathom.engine.errors import GraphInvalid, NodeError
from fathom.engine.events import Recorder
from fathom.engine.executor import Executor
from fathom.engine.graph import Graph
from fathom.engine.imaging import codecs
from fathom.engine.node import Node
from fathom.engine.types import Depth, Image
from fathom.nodes import io as nio


def load_save(src: Path, **save_params) -> Graph:
    g = Graph()
    g.add_node("image.load", "load", {"path": str(src)})
    g.add_node("image.save", "save", save_params)
    g.connect("load", "image", "save", "image")
    return g


def leftovers(folder: Path, keep: set[str]) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name not in keep)


# ---- images ---------------------------------------------------------------------------------


def test_png8_round_trip_is_exact(tmp_path, rgba8, run_graph):
    src = tmp_path / "in.png"
    PILImage.fromarray(rgba8, "RGBA").save(src)
    res = run_graph(load_save(src, path="o.png"))
    assert res.records["save"].status == "executed"
    loaded = res.values["load"]
    assert np.array_equal(loaded["image"].data, rgba8.astype(np.float32) / 255)
    assert np.array_equal(loaded["mask"].data, rgba8[:, :, 3] / np.float32(255))
    assert (loaded["width"], loaded["height"]) == (5, 4)
    out = tmp_path / "out" / "o.png"
    assert res.values["save"]["path"] == str(out)
    assert res.records["save"].files == [str(out)]
    assert np.array_equal(np.asarray(PILImage.open(out)), rgba8)


def test_rgb_mask_is_all_ones_and_gray_alpha_widens_to_rgba(tmp_path, rgba8, ctx):
    PILImage.fromarray(rgba8[:, :, :3], "RGB").save(tmp_path / "rgb.png")
    out = nio.LoadImage().run(ctx, path="rgb.png")
    assert out["image"].channels == 3 and np.all(out["mask"].data == 1.0)
    PILImage.fromarray(rgba8[:, :, :2], "LA").save(tmp_path / "la.png")
    out = nio.LoadImage().run(ctx, path="la.png")
    gray, alpha = rgba8[:, :, 0] / np.float32(255), rgba8[:, :, 1] / np.float32(255)
    assert out["image"].channels == 4
    assert np.array_equal(out["image"].data[:, :, 2], gray)
    assert np.array_equal(out["mask"].data, alpha)


def test_jpeg_round_trip_within_tolerance_and_drops_alpha(tmp_path, run_graph):
    y, x = np.mgrid[0:16, 0:16]
    smooth = np.stack([x * 16, y * 16, np.full_like(x, 128), np.full_like(x, 200)], -1)
    src = tmp_path / "in.png"
    PILImage.fromarray(smooth.astype(np.uint8), "RGBA").save(src)
    res = run_graph(load_save(src, path="o.jpg", quality=95))
    back = np.asarray(PILImage.open(tmp_path / "out" / "o.jpg"), np.float32) / 255
    assert back.shape == (16, 16, 3)
    assert np.abs(back - res.values["load"]["image"].data[:, :, :3]).mean() < 0.01


def test_webp_quality_100_is_lossless(tmp_path, rgba8, run_graph):
    src = tmp_path / "in.png"
    PILImage.fromarray(rgba8, "RGBA").save(src)
    run_graph(load_save(src, path="o.webp", quality=100))
    assert np.array_equal(np.asarray(PILImage.open(tmp_path / "out" / "o.webp")), rgba8)


def test_png16_loads_scaled_and_saves_bit_exact(tmp_path, run_graph):
    raw = np.array([[[0, 1, 257], [12345, 40000, 65535]]], np.uint16)  # 1×2 RGB
    src = tmp_path / "in16.png"
    cv2.imwrite(str(src), raw[:, :, ::-1])  # OpenCV writes BGR
    res = run_graph(load_save(src, path="o.png", bit_depth="16"))
    loaded = res.values["load"]["image"].data
    np.testing.assert_allclose(loaded, raw / 65535.0, atol=1e-7)
    back = cv2.imread(str(tmp_path / "out" / "o.png"), cv2.IMREAD_UNCHANGED)[:, :, ::-1]
    assert back.dtype == np.uint16 and np.array_equal(back, raw)


@pytest.mark.parametrize("bits", ["8", "16"])
def test_png_carries_the_graph_json(tmp_path, rgba8, registry, options, bits):
    src = tmp_path / "in.png"
    PILImage.fromarray(rgba8, "RGBA").save(src)
    doc = json.dumps({"format": "fathom.graph", "nodes": {"ünïcode": 1}})
    options.graph_json = doc
    Executor(registry).run(load_save(src, path="o.png", bit_depth=bits), options=options)
    assert PILImage.open(tmp_path / "out" / "o.png").text["fathom.graph"] == doc
    Executor(registry).run(load_save(src, path="n.png", embed_graph=False), options=options)
    assert "fathom.graph" not in PILImage.open(tmp_path / "out" / "n.png").text


@pytest.mark.parametrize("channels", [1, 3, 4])
def test_exr_round_trips_exactly(tmp_path: Path, ctx: Any, channels: int) -> None:
    """OpenEXR is a dependency: the pip OpenCV wheels read and write no EXR, so it must work."""
    assert codecs.exr_backend() is not None
    data = np.linspace(0, 1, 2 * 3 * channels, dtype=np.float32).reshape(2, 3, channels)
    out = nio.SaveImage().run(
        ctx,
        image=Image(data),
        path="o.exr",
        format="auto",
        quality=95,
        bit_depth="8",
        embed_graph=True,
    )
    assert np.array_equal(codecs.read_image(Path(out["path"])), data)
    loaded = nio.LoadImage().run(ctx, path=out["path"])
    assert np.array_equal(loaded["image"].data, data)
    assert loaded["image"].channels == channels


def test_exr_without_a_backend_is_a_clear_error(
    tmp_path: Path, ctx: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = np.linspace(0, 1, 2 * 3 * 3, dtype=np.float32).reshape(2, 3, 3)
    monkeypatch.setattr(codecs, "exr_backend", lambda: None)
    with pytest.raises(NodeError) as err:
        nio.SaveImage().run(
            ctx,
            image=Image(data),
            path="x.exr",
            format="auto",
            quality=95,
            bit_depth="8",
            embed_graph=True,
        )
    assert "port 'path'" in str(err.value) and "pip install OpenEXR" in str(err.value)
    assert not (tmp_path / "out" / "x.exr").exists()
    (tmp_path / "in.exr").write_bytes(codecs.EXR_MAGIC + bytes(60))
    with pytest.raises(NodeError, match="EXR needs the OpenEXR library"):
        nio.LoadImage().run(ctx, path="in.exr")


@pytest.mark.parametrize(
    ("node", "params"),
    [
        (nio.LoadImage, {}),
        (nio.LoadDepth, {"kind": "metric", "scale": 1000.0}),
    ],
)
def test_a_decompression_bomb_is_refused_on_the_path_port(
    tmp_path: Path, ctx: Any, node: type[Node], params: dict[str, Any]
) -> None:
    """20000×20000 16-bit grey: 780 KB on disk, 800 MB decoded plus 1.6 GB as float32."""
    (tmp_path / "bomb.png").write_bytes(png_bytes(*HUGE, 16))
    before, t0 = peak_rss_mb(), time.perf_counter()
    with pytest.raises(NodeError) as err:
        node().run(ctx, path="bomb.png", **params)
    assert time.perf_counter() - t0 < 1.0 and peak_rss_mb() - before < 200
    assert err.value.port == "path"
    assert "20000×20000" in str(err.value) and "FATHOM_MAX_IMAGE_PIXELS" in str(err.value)


# ---- pre-flight and failures ----------------------------------------------------------------


def test_missing_file_is_a_preflight_problem(tmp_path, registry, options):
    g = load_save(tmp_path / "nope.png", path="o.png")
    with pytest.raises(GraphInvalid) as err:
        Executor(registry).plan(g, options=options)
    (p,) = err.value.problems
    assert (p.node, p.port) == ("load", "path") and "does not exist" in p.message and p.fix
    assert not (tmp_path / "out").exists()


def test_unwritable_folder_and_bad_format_are_preflight_problems(tmp_path, registry, options):
    src = tmp_path / "in.png"
    PILImage.fromarray(np.zeros((2, 2, 3), np.uint8)).save(src)
    (tmp_path / "blocker").write_text("a file where a folder should be")
    g = load_save(src, path=str(tmp_path / "blocker" / "o.png"))
    g.add_node("image.save", "jpeg16", {"path": "o.jpg", "bit_depth": "16"})
    g.add_node("image.save", "mismatch", {"path": "o.jpg", "format": "png"})
    g.connect("load", "image", "jpeg16", "image")
    g.connect("load", "image", "mismatch", "image")
    with pytest.raises(GraphInvalid) as err:
        Executor(registry).plan(g, options=options)
    got = {(p.node, p.port) for p in err.value.problems}
    assert got == {("save", "path"), ("jpeg16", "bit_depth"), ("mismatch", "format")}


def test_format_without_suffix_adds_it(tmp_path, rgba8, run_graph):
    src = tmp_path / "in.png"
    PILImage.fromarray(rgba8, "RGBA").save(src)
    res = run_graph(load_save(src, path="plain", format="webp"))
    assert res.values["save"]["path"].endswith("plain.webp")


def test_corrupt_file_fails_its_branch_only(tmp_path, run_graph):
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n" + b"garbage" * 10)
    g = load_save(bad, path="o.png")
    g.add_node("image.constant", "solid", {"width": 3, "height": 2})
    g.add_node("image.save", "save2", {"path": "solid.png"})
    g.connect("solid", "image", "save2", "image")
    res = run_graph(g)
    assert res.records["load"].status == "failed"
    assert "cannot be decoded" in res.records["load"].error
    assert "port 'path'" in res.records["load"].error
    assert res.records["save"].status == "skipped"
    assert res.records["save2"].status == "executed"
    assert (tmp_path / "out" / "solid.png").exists()


def test_save_is_atomic_and_a_failed_save_keeps_the_old_file(
    tmp_path, rgba8, run_graph, monkeypatch
):
    src = tmp_path / "in.png"
    PILImage.fromarray(rgba8, "RGBA").save(src)
    run_graph(load_save(src, path="o.png"))
    out = tmp_path / "out"
    assert leftovers(out, {"o.png"}) == []
    before = (out / "o.png").read_bytes()

    def broken(tmp, *args):
        tmp.write_bytes(b"half a png")
        raise OSError("disk full")

    monkeypatch.setattr(codecs, "_write_pillow", broken)
    PILImage.fromarray(255 - rgba8, "RGBA").save(src)
    res = run_graph(load_save(src, path="o.png"))
    assert res.records["save"].status == "failed"
    assert "disk full" in res.records["save"].error
    assert (out / "o.png").read_bytes() == before
    assert leftovers(out, {"o.png"}) == []


def test_edited_file_reruns_load(tmp_path, registry, options):
    src = tmp_path / "in.png"
    PILImage.fromarray(np.zeros((2, 2, 3), np.uint8)).save(src)
    ex = Executor(registry)
    g = load_save(src, path="o.png")
    assert ex.run(g, options=options).records["load"].status == "executed"
    assert ex.run(g, options=options).records["load"].status == "cached"
    PILImage.fromarray(np.full((2, 2, 3), 255, np.uint8)).save(src)
    st = src.stat()
    os.utime(src, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    res = ex.run(g, options=options)
    assert res.records["load"].status == "executed"
    assert np.all(res.values["load"]["image"].data == 1.0)


def test_preview_emits_the_value_every_run(tmp_path, rgba8, registry, options):
    src = tmp_path / "in.png"
    PILImage.fromarray(rgba8, "RGBA").save(src)
    g = Graph()
    g.add_node("image.load", "load", {"path": "in.png"})
    g.add_node("preview.show", "show", {"label": "input"})
    g.connect("load", "image", "show", "value")
    ex = Executor(registry)
    for _ in range(2):
        rec = Recorder()
        ex.run(g, options=options, listener=rec)
        (ev,) = [e for e in rec.events if e.kind == "node_preview"]
        assert ev.node == "show" and ev.message == "input"
        assert np.array_equal(ev.value.data, rgba8 / np.float32(255))
    assert rec.kinds("load") == ["node_cached"]


# ---- depth ----------------------------------------------------------------------------------


DEPTH = np.array([[0.5, 1.234, 0.0], [np.nan, 65.0, 0.0001]], np.float32)


def save_depth(path: str, **params) -> Graph:
    g = Graph()
    g.add_node("depth.save", "save", {"path": path, **params})
    return g


def test_depth_png16_stores_millimetres(tmp_path, ctx):
    out = nio.SaveDepth().run(ctx, depth=Depth(DEPTH, kind="metric"), path="d.png", scale=1000.0)
    raw = cv2.imread(out["path"], cv2.IMREAD_UNCHANGED)
    assert raw.dtype == np.uint16
    # 0 and NaN are 'no depth' (0); a tiny real depth is kept at 1 step, not lost.
    assert raw.tolist() == [[500, 1234, 0], [0, 65000, 1]]
    back = nio.LoadDepth().run(ctx, path=out["path"], kind="metric", scale=1000.0)["depth"]
    assert back.kind == "metric"
    np.testing.assert_allclose(back.data, [[0.5, 1.234, 0], [0, 65.0, 0.001]], atol=5e-4)


def test_depth_png_scale_and_too_far_error(tmp_path, ctx):
    metric = Depth(DEPTH[:1], "metric")
    out = nio.SaveDepth().run(ctx, depth=metric, path="c.png", scale=100.0)
    assert cv2.imread(out["path"], cv2.IMREAD_UNCHANGED).tolist() == [[50, 123, 0]]
    # Relative depth's 0 is its nearest point, not a hole: written as the smallest depth.
    out = nio.SaveDepth().run(ctx, depth=Depth(DEPTH[:1]), path="r.png", scale=100.0)
    assert cv2.imread(out["path"], cv2.IMREAD_UNCHANGED).tolist() == [[50, 123, 1]]
    with pytest.raises(NodeError) as err:
        nio.SaveDepth().run(ctx, depth=Depth(DEPTH), path="far.png", scale=2000.0)
    assert "port 'scale'" in str(err.value) and ".npy" in str(err.value)
    assert not (tmp_path / "out" / "far.png").exists()


def test_depth_npy_round_trip_is_exact_through_a_graph(tmp_path, registry, options):
    g = save_depth("d.npy")
    g.add_node("depth.load", "src", {"path": "d0.npy", "kind": "relative"})
    g.connect("src", "depth", "save", "depth")
    np.save(tmp_path / "d0.npy", DEPTH)
    res = Executor(registry).run(g, options=options)
    assert res.values["src"]["depth"].kind == "relative"
    back = np.load(tmp_path / "out" / "d.npy", allow_pickle=False)
    assert back.dtype == np.float32 and np.array_equal(back, DEPTH, equal_nan=True)


def test_depth_exr_round_trips_exactly(
    tmp_path: Path, ctx: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert codecs.exr_backend() is not None
    out = nio.SaveDepth().run(ctx, depth=Depth(DEPTH), path="d.exr", scale=1000.0)
    back = nio.LoadDepth().run(ctx, path=out["path"], kind="metric", scale=1000.0)
    assert np.array_equal(back["depth"].data, DEPTH, equal_nan=True)
    monkeypatch.setattr(codecs, "exr_backend", lambda: None)
    with pytest.raises(NodeError, match="OpenEXR"):
        nio.SaveDepth().run(ctx, depth=Depth(DEPTH), path="e.exr", scale=1000.0)


def test_depth_bad_files_and_suffix(tmp_path, registry, options, ctx):
    np.save(tmp_path / "obj.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(NodeError, match="cannot be read as a .npy"):
        nio.LoadDepth().run(ctx, path="obj.npy", kind="metric", scale=1000.0)
    cv2.imwrite(
        str(tmp_path / "color.png"),
        np.dstack([np.zeros((2, 2)), np.ones((2, 2)), np.zeros((2, 2))]).astype(np.uint8),
    )
    with pytest.raises(NodeError, match="not one channel"):
        nio.LoadDepth().run(ctx, path="color.png", kind="metric", scale=1000.0)
    g = save_depth("d.tiff")
    g.add_node("depth.load", "src", {"path": "obj.npy"})
    g.connect("src", "depth", "save", "depth")
    with pytest.raises(GraphInvalid) as err:
        Executor(registry).plan(g, options=options)
    assert [(p.node, p.port) for p in err.value.problems] == [("save", "path")]
