"""Image nodes: the numpy math against hand-computed values, and the nodes inside real graphs."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image as PILImage

from fathom.engine.graph import Graph
from fathom.nodes import image as nim
from fathom.nodes import io as nio


def ramp(h: int, w: int, c: int = 3) -> np.ndarray:
    return (np.arange(h * w * c, dtype=np.float32).reshape(h, w, c) / (h * w * c)).copy()


# ---- resize ---------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", nim.RESIZE_MODES)
@pytest.mark.parametrize("channels", [1, 3, 4])
def test_resize_gives_exact_size_and_keeps_constants(mode, channels):
    flat = np.full((6, 9, channels), 0.4, np.float32)
    for w, h in ((4, 3), (20, 11), (1, 1)):
        out = nim.resize(flat, w, h, mode)
        assert out.shape == (h, w, channels) and out.dtype == np.float32
        np.testing.assert_allclose(out, 0.4, atol=1e-6)


def test_resize_nearest_repeats_and_area_averages():
    img = np.array([[0.0, 1.0], [0.5, 0.25]], np.float32)[:, :, None]
    up = nim.resize(img, 4, 4, "nearest")[:, :, 0]
    assert np.array_equal(up, np.kron(img[:, :, 0], np.ones((2, 2), np.float32)))
    down = nim.resize(np.kron(img, np.ones((2, 2, 1), np.float32)) + 0.0, 2, 2, "area")
    np.testing.assert_allclose(down, img, atol=1e-6)


def test_resize_bicubic_stays_in_unit_range():
    hard = np.zeros((8, 8, 1), np.float32)
    hard[:, 4:] = 1.0  # a hard edge makes cubic and lanczos kernels overshoot
    for mode in ("bicubic", "lanczos"):
        out = nim.resize(hard, 21, 21, mode)
        assert out.min() >= 0.0 and out.max() <= 1.0


def test_resize_fit_and_fill_keep_aspect():
    img = ramp(20, 40)
    assert nim.resize(img, 10, 10, keep_aspect="fit").shape == (5, 10, 3)
    assert nim.resize(img, 10, 10, keep_aspect="stretch").shape == (10, 10, 3)
    assert nim.resize(img, 10, 10, keep_aspect="fill").shape == (10, 10, 3)
    # fill at scale 1 is a pure centre crop: 4 wide × 2 tall into 2×2 keeps columns 1..2.
    small = ramp(2, 4, 1)
    assert np.array_equal(nim.resize(small, 2, 2, keep_aspect="fill"), small[:, 1:3])


# ---- crop, pad ------------------------------------------------------------------------------


def test_crop_values_and_bounds_errors():
    img = ramp(4, 6)
    assert np.array_equal(nim.crop(img, 2, 1, 3, 2), img[1:3, 2:5])
    for args, port in (
        ((6, 0, 1, 1), "x"),
        ((0, 4, 1, 1), "y"),
        ((4, 0, 3, 1), "width"),
        ((0, 2, 1, 3), "height"),
    ):
        with pytest.raises(nim.BadInput) as err:
            nim.crop(img, *args)
        assert err.value.port == port and err.value.fix


def test_crop_out_of_bounds_in_a_graph_names_the_port(run_graph):
    g = Graph()
    g.add_node("image.constant", "solid", {"width": 8, "height": 8})
    g.add_node("image.crop", "crop", {"x": 4, "y": 0, "width": 6, "height": 2})
    g.connect("solid", "image", "crop", "image")
    rec = run_graph(g).records["crop"]
    assert rec.status == "failed"
    assert "node 'crop', port 'width'" in rec.error and "at most 4" in rec.error


def test_pad_modes():
    row = np.array([[0.1, 0.2, 0.3]], np.float32)[:, :, None]
    edge = nim.pad(row, 0, 0, 2, 1, "edge")[0, :, 0]
    np.testing.assert_allclose(edge, [0.1, 0.1, 0.1, 0.2, 0.3, 0.3])
    refl = nim.pad(row, 0, 0, 1, 1, "reflect")[0, :, 0]
    np.testing.assert_allclose(refl, [0.2, 0.1, 0.2, 0.3, 0.2])
    img = ramp(2, 2, 4)
    out = nim.pad(img, 1, 2, 3, 0, "constant", (1.0, 0.5, 0.0, 0.25))
    assert out.shape == (5, 5, 4)
    assert np.array_equal(out[1:3, 3:5], img)
    np.testing.assert_allclose(out[0, 0], [1.0, 0.5, 0.0, 0.25])
    gray = nim.pad(np.zeros((1, 1, 1), np.float32), 1, 0, 0, 0, "constant", (1.0, 1.0, 1.0, 1))
    np.testing.assert_allclose(gray[0, 0, 0], 1.0, atol=1e-6)  # luma weights sum to 1


# ---- adjust ---------------------------------------------------------------------------------


def test_adjust_defaults_are_exact_identity(rgba8):
    img = rgba8.astype(np.float32) / 255
    assert np.array_equal(nim.adjust(img), img)
    assert np.array_equal(nim.adjust(img[:, :, :1]), img[:, :, :1])


def test_adjust_each_control_against_hand_values():
    px = np.array([[[0.25, 0.5, 0.75, 0.6]]], np.float32)
    np.testing.assert_allclose(
        nim.adjust(px, brightness=0.1)[0, 0], [0.35, 0.6, 0.85, 0.6], atol=1e-6
    )
    np.testing.assert_allclose(nim.adjust(px, contrast=2.0)[0, 0], [0.0, 0.5, 1.0, 0.6], atol=1e-6)
    np.testing.assert_allclose(
        nim.adjust(px, gamma=2.0)[0, 0], [0.5, 0.5**0.5, 0.75**0.5, 0.6], atol=1e-6
    )
    luma = 0.2126 * 0.25 + 0.7152 * 0.5 + 0.0722 * 0.75
    np.testing.assert_allclose(nim.adjust(px, saturation=0.0)[0, 0], [luma] * 3 + [0.6], atol=1e-6)
    red = np.array([[[1.0, 0.0, 0.0]]], np.float32)
    np.testing.assert_allclose(nim.adjust(red, hue=120.0)[0, 0], [0, 1, 0], atol=1e-5)
    np.testing.assert_allclose(nim.adjust(red, hue=-120.0)[0, 0], [0, 0, 1], atol=1e-5)


# ---- blend ----------------------------------------------------------------------------------

# base 0.25 and overlay 0.5, worked by hand from each mode's formula.
BLEND_EXPECT = {
    "normal": 0.5,
    "multiply": 0.125,
    "screen": 0.625,
    "add": 0.75,
    "overlay": 0.25,
    "difference": 0.25,
}


@pytest.mark.parametrize("mode", sorted(BLEND_EXPECT))
def test_blend_modes_against_hand_values(mode):
    base = np.full((2, 2, 3), 0.25, np.float32)
    over = np.full((2, 2, 3), 0.5, np.float32)
    want = BLEND_EXPECT[mode]
    np.testing.assert_allclose(nim.blend(base, over, mode), want, atol=1e-6)
    half = 0.25 + (want - 0.25) * 0.5
    np.testing.assert_allclose(nim.blend(base, over, mode, opacity=0.5), half, atol=1e-6)


def test_blend_overlay_mode_bright_branch_mask_and_alphas():
    b = np.full((1, 2, 3), 0.75, np.float32)
    o = np.full((1, 2, 3), 0.5, np.float32)
    np.testing.assert_allclose(nim.blend(b, o, "overlay"), 1 - 2 * 0.25 * 0.5, atol=1e-6)
    mask = np.array([[0.0, 1.0]], np.float32)
    out = nim.blend(b, o, "normal", mask=mask)
    np.testing.assert_allclose(out[0, :, 0], [0.75, 0.5], atol=1e-6)
    base_a = np.concatenate([b, np.full((1, 2, 1), 0.3, np.float32)], axis=2)
    over_a = np.concatenate([o, np.full((1, 2, 1), 0.5, np.float32)], axis=2)
    out = nim.blend(base_a, over_a, "normal")
    np.testing.assert_allclose(out[0, 0], [0.625, 0.625, 0.625, 0.3], atol=1e-6)
    gray = nim.blend(np.full((1, 2, 1), 0.25, np.float32), o, "multiply")
    assert gray.shape == (1, 2, 3)
    np.testing.assert_allclose(gray, 0.125, atol=1e-6)


def test_blend_size_mismatch_in_a_graph_says_resize(run_graph):
    g = Graph()
    g.add_node("image.constant", "a", {"width": 4, "height": 4})
    g.add_node("image.constant", "b", {"width": 5, "height": 4})
    g.add_node("image.blend", "mix", {"mode": "screen"})
    g.connect("a", "image", "mix", "base")
    g.connect("b", "image", "mix", "overlay")
    rec = run_graph(g).records["mix"]
    assert rec.status == "failed"
    assert "port 'overlay'" in rec.error and "resize" in rec.error


# ---- masks, constants, values ---------------------------------------------------------------


def test_threshold_hard_soft_invert_and_channels():
    v = np.array([[0.2, 0.45, 0.5, 0.8]], np.float32)[:, :, None]
    assert nim.threshold_mask(v, 0.5).tolist() == [[0, 0, 1, 1]]
    assert nim.threshold_mask(v, 0.5, invert=True).tolist() == [[1, 1, 0, 0]]
    np.testing.assert_allclose(
        nim.threshold_mask(v, 0.5, softness=0.2), [[0, 0.25, 0.5, 1]], atol=1e-6
    )
    px = np.array([[[0.9, 0.1, 0.4, 0.7]]], np.float32)
    got = {c: nim.threshold_mask(px, 0.5, channel=c)[0, 0] for c in ("r", "g", "b", "alpha")}
    assert got == {"r": 1, "g": 0, "b": 0, "alpha": 1}
    assert nim.threshold_mask(px, 0.5)[0, 0] == 0  # luminance 0.29
    with pytest.raises(nim.BadInput) as err:
        nim.threshold_mask(px[:, :, :3], 0.5, channel="alpha")
    assert err.value.port == "channel"


def test_constant_invert_and_mask_conversions_in_a_graph(run_graph):
    g = Graph()
    g.add_node(
        "image.constant",
        "solid",
        {"width": 3, "height": 2, "color": [0.2, 0.4, 1.0, 0.5], "channels": "rgba"},
    )
    g.add_node("image.invert", "neg", {})
    g.add_node("image.to_mask", "alpha", {"channel": "alpha"})
    g.add_node("mask.to_image", "show", {})
    g.add_node("mask.threshold", "cut", {"threshold": 0.5, "channel": "b"})
    g.connect("solid", "image", "neg", "image")
    g.connect("neg", "image", "alpha", "image")
    g.connect("alpha", "mask", "show", "mask")
    g.connect("neg", "image", "cut", "image")
    res = run_graph(g, targets=["show", "cut"])
    neg = res.values["neg"]["image"].data
    np.testing.assert_allclose(neg[0, 0], [0.8, 0.6, 0.0, 0.5], atol=1e-6)
    assert np.all(res.values["alpha"]["mask"].data == 0.5)
    assert res.values["show"]["image"].data.shape == (2, 3, 3)
    assert np.all(res.values["cut"]["mask"].data == 0.0)  # inverted blue is 0 < 0.5
    gray = nim.constant(2, 2, (1.0, 0.0, 0.0, 1.0), "gray")
    np.testing.assert_allclose(gray, 0.2126, atol=1e-6)


def test_value_nodes_in_a_graph(run_graph):
    g = Graph()
    g.add_node("value.int", "i", {"value": 7})
    g.add_node("value.float", "f", {"value": 0.5})
    g.add_node("value.string", "s", {"value": "a prompt"})
    res = run_graph(g)
    assert [res.values[n]["value"] for n in "ifs"] == [7, 0.5, "a prompt"]


def test_chain_load_adjust_resize_blend_save(tmp_path, rgba8, run_graph):
    PILImage.fromarray(rgba8, "RGBA").save(tmp_path / "in.png")
    g = Graph()
    g.add_node("image.load", "load", {"path": "in.png"})
    g.add_node("image.adjust", "adj", {})
    g.add_node("image.resize", "big", {"width": 10, "height": 8, "mode": "nearest"})
    g.add_node("image.constant", "bg", {"width": 10, "height": 8, "color": "#ffffff"})
    g.add_node("image.blend", "mix", {"mode": "multiply"})
    g.add_node("image.save", "save", {"path": "chain.png"})
    g.connect("load", "image", "adj", "image")
    g.connect("adj", "image", "big", "image")
    g.connect("bg", "image", "mix", "base")
    g.connect("big", "image", "mix", "overlay")
    g.connect("mix", "image", "save", "image")
    res = run_graph(g)
    assert res.ok and res.records["save"].status == "executed"
    # White × overlay at overlay alpha: each output pixel is 1 + (c − 1)·a.
    src = rgba8.astype(np.float32) / 255
    up = np.kron(src, np.ones((2, 2, 1), np.float32))
    want = 1 + (up[:, :, :3] - 1) * up[:, :, 3:]
    got = nio.read_image(tmp_path / "out" / "chain.png")
    np.testing.assert_allclose(got, want, atol=0.5 / 255 + 1e-6)


def test_every_node_here_declares_its_help():
    for module in (nim, nio):
        for cls in vars(module).values():
            if (
                isinstance(cls, type)
                and getattr(cls, "type_id", "")
                and cls.__module__ == module.__name__
            ):
                assert cls.doc() and cls.title and cls.category, cls.type_id
                assert not cls.declaration_problems(), cls.type_id
                assert all(p.doc for p in (*cls.inputs, *cls.outputs, *cls.params)), cls.type_id
