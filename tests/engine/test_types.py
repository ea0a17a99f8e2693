"""Port types: shape/dtype checks, camera math, colour parsing, conversions, node declarations."""

from __future__ import annotations

import math

import numpy as np
import pytest

from fathom.engine.node import Input, Node, Output, Param
from fathom.engine.registry import Registry, RegistryError
from fathom.engine.types import (
    RGBD,
    Bool,
    Camera,
    Color,
    Depth,
    Enum,
    Float,
    Image,
    Int,
    Mask,
    PointCloud,
    Seed,
    String,
    Video,
    can_connect,
    convert,
    type_by_id,
    value_nbytes,
)

# ---- pixel types ---------------------------------------------------------------------------


def test_image_is_float32_hwc_and_gray_gains_a_channel() -> None:
    img = Image(np.linspace(0, 1, 6, dtype=np.float64).reshape(2, 3))
    assert img.data.dtype == np.float32 and img.data.shape == (2, 3, 1)
    assert (img.height, img.width, img.channels) == (2, 3, 1)
    assert img.rgb().shape == (2, 3, 3) and np.array_equal(img.rgb()[..., 2], img.data[..., 0])
    assert img.alpha() is None
    assert img.nbytes() == 2 * 3 * 4


def test_image_rgba_splits_alpha() -> None:
    data = np.random.default_rng(0).random((4, 5, 4)).astype(np.float32)
    img = Image(data)
    assert np.array_equal(img.alpha(), data[..., 3])
    assert np.array_equal(img.rgb(), data[..., :3])


@pytest.mark.parametrize("shape", [(2, 2, 2), (2, 2, 5), (2,), (1, 2, 2, 3)])
def test_image_rejects_wrong_channel_counts(shape: tuple[int, ...]) -> None:
    with pytest.raises(ValueError, match=r"H×W×C with C in 1, 3, 4"):
        Image(np.zeros(shape, np.float32))


def test_image_rejects_empty_and_integer_pixels() -> None:
    with pytest.raises(ValueError, match="at least one pixel"):
        Image(np.zeros((0, 4, 3), np.float32))
    with pytest.raises(ValueError, match="divide by the type's maximum"):
        Image(np.zeros((2, 2, 3), np.uint8))
    with pytest.raises(ValueError, match="float in \\[0, 1\\], got int64"):
        Mask(np.zeros((2, 2), np.int64))


def test_mask_squeezes_one_channel_and_accepts_bool() -> None:
    m = Mask(np.ones((3, 4, 1), bool))
    assert m.data.shape == (3, 4) and m.data.dtype == np.float32 and m.data.sum() == 12
    with pytest.raises(ValueError, match="H×W"):
        Mask(np.zeros((3, 4, 3), np.float32))


def test_depth_checks_kind_shape_and_marks_invalid_samples() -> None:
    d = Depth(np.array([[1.0, 0.0], [np.nan, -2.0]]), kind="metric", units="mm")
    assert d.data.dtype == np.float32 and (d.kind, d.units) == ("metric", "mm")
    assert d.valid().tolist() == [[True, False], [False, False]]
    with pytest.raises(ValueError, match="relative"):
        Depth(np.ones((2, 2)), kind="absolute")
    with pytest.raises(ValueError, match="H×W"):
        Depth(np.ones((2, 2, 3)))


def test_rgbd_and_pointcloud_refuse_mismatched_sizes() -> None:
    with pytest.raises(ValueError, match="resize one to match"):
        RGBD(Image(np.zeros((4, 4, 3), np.float32)), Depth(np.ones((4, 5))))
    with pytest.raises(ValueError, match="colors has 2 rows but there are 3 points"):
        PointCloud(np.zeros((3, 3)), colors=np.zeros((2, 3)))
    pc = PointCloud(np.zeros((3, 3)), colors=np.ones((3, 3)))
    assert len(pc) == 3 and pc.nbytes() == 2 * 3 * 3 * 4


# ---- camera --------------------------------------------------------------------------------


def test_camera_from_fov_math() -> None:
    cam = Camera.from_fov(640, 480, 90.0)
    assert cam.fy == pytest.approx(240.0) and cam.fx == pytest.approx(240.0)
    assert (cam.cx, cam.cy, cam.width, cam.height) == (320.0, 240.0, 640, 480)
    cam60 = Camera.from_fov(100, 200, 60.0)
    assert cam60.fy == pytest.approx(100 / math.tan(math.radians(30)))
    assert np.allclose(cam60.K, [[cam60.fx, 0, 50], [0, cam60.fy, 100], [0, 0, 1]])
    assert np.array_equal(cam60.pose, np.eye(4))


@pytest.mark.parametrize("fov", [0.0, 180.0, -10.0])
def test_camera_refuses_impossible_fields_of_view(fov: float) -> None:
    with pytest.raises(ValueError, match=r"\(0, 180\)"):
        Camera.from_fov(64, 48, fov)


def test_camera_checks_pose_and_focal() -> None:
    with pytest.raises(ValueError, match="4×4"):
        Camera(100, 100, 50, 50, 100, 100, pose=np.eye(3))
    with pytest.raises(ValueError, match="positive"):
        Camera(0, 100, 50, 50, 100, 100)


# ---- scalars -------------------------------------------------------------------------------


def test_color_parsing() -> None:
    assert Color.coerce("#ff8000") == pytest.approx((1.0, 128 / 255, 0.0, 1.0))
    assert Color.coerce("#00ff0080") == pytest.approx((0.0, 1.0, 0.0, 128 / 255))
    assert Color.coerce([1, 0.5, 0]) == (1.0, 0.5, 0.0, 1.0)
    assert Color.parse("0.25,0.5,0.75") == (0.25, 0.5, 0.75, 1.0)
    assert Color.parse("#000000") == (0.0, 0.0, 0.0, 1.0)
    for bad in ("#ggg000", "red", [1, 2], [1.5, 0, 0], 7):
        with pytest.raises(ValueError, match="colour"):
            Color.coerce(bad)


def test_int_float_bool_seed_coercion() -> None:
    assert Int.coerce(3.0) == 3 and Int.coerce(" 7 ") == 7 and Int.coerce(np.int64(4)) == 4
    assert type(Int.coerce(np.int32(2))) is int
    for bad in (3.5, True, "x", None):
        with pytest.raises(ValueError, match="expected an integer"):
            Int.coerce(bad)
    assert Float.coerce("2.5") == 2.5 and Float.coerce(np.float32(0.5)) == 0.5
    for bad in (float("inf"), True, "nan", "abc"):
        with pytest.raises(ValueError):
            Float.coerce(bad)
    assert Bool.parse("yes") is True and Bool.parse("OFF") is False
    assert Bool.coerce(np.bool_(True)) is True
    with pytest.raises(ValueError, match="true or false"):
        Bool.coerce(2)
    assert Seed.coerce(2**63 - 1) == 2**63 - 1
    with pytest.raises(ValueError, match="seed"):
        Seed.coerce(-1)
    with pytest.raises(ValueError, match="expected text"):
        String.coerce(5)


def test_param_validate_ranges_choices_and_optional() -> None:
    p = Param("strength", Float, 0.5, min=0.0, max=1.0)
    assert p.validate("0.25") == 0.25
    with pytest.raises(ValueError, match="above the maximum 1.0"):
        p.validate(1.5)
    with pytest.raises(ValueError, match="below the minimum 0.0"):
        p.validate(-0.1)
    with pytest.raises(ValueError, match="a value is required"):
        p.validate(None)
    assert p.allowed() == "a float in [0, 1]"
    e = Param("mode", Enum, "a", choices=("a", "b"))
    with pytest.raises(ValueError, match="'c' is not one of: a, b"):
        e.validate("c")
    assert e.allowed() == "one of: a, b"
    assert Param("x", Int, None, optional=True).validate(None) is None


# ---- conversions ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("src", "dst", "ok"),
    [
        ("image", "video", True),
        ("int", "float", True),
        ("mask", "image", True),
        ("image", "image", True),
        ("depth", "any", True),
        ("float", "int", False),
        ("video", "image", False),
        ("image", "mask", False),
        ("string", "float", False),
        ("depth", "image", False),
        ("rgbd", "image", False),
    ],
)
def test_can_connect_allows_only_lossless_conversions(src: str, dst: str, ok: bool) -> None:
    assert can_connect(src, dst) is ok


def test_conversions_produce_the_documented_values() -> None:
    img = Image(np.full((2, 3, 3), 0.25, np.float32))
    video = convert(img, "image", "video")
    assert isinstance(video, Video) and len(video) == 1 and video.size == (3, 2)
    assert video.frame(0) is img
    out = convert(3, "int", "float")
    assert out == 3.0 and isinstance(out, float)
    as_img = convert(Mask(np.ones((2, 2))), "mask", "image")
    assert isinstance(as_img, Image) and as_img.channels == 1
    assert convert(None, "image", "video") is None


def test_video_decodes_frames_on_demand_only() -> None:
    decoded: list[int] = []

    def frame(i: int) -> Image:
        decoded.append(i)
        return Image(np.full((2, 2, 3), i / 10, np.float32))

    video = Video(10, 24.0, frame, size=(2, 2))
    assert len(video) == 10 and decoded == []
    part = video.slice(3, 6)
    assert len(part) == 3 and decoded == []
    assert part.frame(1).data[0, 0, 0] == pytest.approx(0.4) and decoded == [4]
    doubled = part.map(lambda im: Image(im.data * 2))
    assert doubled.to_array().shape == (3, 2, 2, 3) and decoded == [4, 3, 4, 5]
    with pytest.raises(IndexError, match="outside 0..2"):
        part.frame(3)
    with pytest.raises(ValueError, match="fps"):
        Video(1, 0, frame)


def test_type_lookup_and_sizes() -> None:
    assert type_by_id("image") is Image
    with pytest.raises(KeyError, match="unknown port type 'imagez'"):
        type_by_id("imagez")
    assert value_nbytes(np.zeros(10, np.float64)) == 80
    assert value_nbytes(Image(np.zeros((4, 4, 3), np.float32))) == 192


# ---- node declarations ---------------------------------------------------------------------


def test_bad_node_declarations_are_refused_at_registration() -> None:
    class Bad(Node):
        type_id = "Bad Node"
        inputs = (Input("x", Float),)
        outputs = (Output("y", Float),)
        params = (
            Param("x", Float, 0.0),
            Param("k", Float, 5.0, max=1.0),
            Param("m", String, "a", choices=("a",)),
        )

        def run(self, ctx, x, k, m):
            return {}

    problems = Bad.declaration_problems()
    assert len(problems) == 4
    assert any("dotted lowercase" in p for p in problems)
    assert any("share names ['x']" in p for p in problems)
    assert any("k: default is invalid" in p for p in problems)
    assert any("choices need the enum type" in p for p in problems)
    with pytest.raises(RegistryError, match="dotted lowercase"):
        Registry().register(Bad)


def test_audio_tracks_cut_join_retime_and_reverse_by_seconds() -> None:
    from fathom.engine.types import AudioSpan, AudioTrack

    a = AudioTrack.from_file("a.wav", 10.0)
    joined = AudioTrack.join([a.slice(2, 5), AudioTrack.silence(1), a.slice(9, 20)])
    assert joined.duration == pytest.approx(5.0)
    assert [(s.path, s.start, s.duration) for s in joined.spans] == [
        ("a.wav", 2.0, 3.0),
        (None, 0.0, 1.0),
        ("a.wav", 9.0, 1.0),
    ]
    assert joined.fit(7).duration == pytest.approx(7) and joined.fit(2).duration == 2
    fast = a.slice(2, 6).retimed(2.0)  # 4 s of source in 2 s
    assert fast.duration == pytest.approx(2.0) and fast.spans[0].source_duration == 4.0
    # second 1..2 of the fast track is source seconds 4..6
    assert fast.slice(1, 2).spans[0] == AudioSpan("a.wav", 4.0, 1.0, 2.0, False)
    back = a.slice(2, 6).reversed()
    # the first second played backwards is the source's last second (5..6)
    assert back.slice(0, 1).spans[0] == AudioSpan("a.wav", 5.0, 1.0, 1.0, True)
    assert back.reversed().spans == a.slice(2, 6).spans


def test_gray_reads_a_mask_frame_however_it_was_stored() -> None:
    plane = np.linspace(0, 1, 12, dtype=np.float32).reshape(3, 4)
    assert np.array_equal(Image(plane).gray(), plane)
    grey_rgb = Image(np.repeat(plane[:, :, None], 3, axis=2))
    assert np.allclose(grey_rgb.gray(), plane)
    rgba = np.concatenate(
        [np.repeat(plane[:, :, None], 3, axis=2), np.zeros((3, 4, 1), np.float32)], axis=2
    )
    assert np.allclose(Image(rgba).gray(), plane)  # alpha does not dim the mask
    red = np.zeros((3, 4, 3), np.float32)
    red[..., 0] = 0.9
    assert np.allclose(Image(red).gray(), 0.3)
