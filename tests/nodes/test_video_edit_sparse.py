"""generate.video_edit with sparse=True: runs from a graph file, keeps the source pixels outside
the edited region, equals the plain edit when the whole frame is the foreground, and explains
bad masks."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from fathom.engine import graphfile
from fathom.engine.context import RunOptions
from fathom.engine.errors import NodeError
from fathom.engine.executor import Executor
from fathom.engine.graph import Graph
from fathom.engine.node import Node, Output, Param
from fathom.engine.registry import Registry
from fathom.engine.types import Bool, Image, Int, Video

SIZE = 64


def small_object(n: int, full: bool = False) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """An 8×8 textured square moving 1 px a frame in the top-left quarter over a gradient
    (``full``: the mask is the whole frame)."""
    rng = np.random.default_rng(5)
    yy, xx = np.mgrid[0:SIZE, 0:SIZE] / SIZE
    bg = np.stack([0.2 + 0.5 * xx, 0.6 - 0.3 * yy, 0.4 + 0.2 * xx * yy], -1)
    tex = np.kron(rng.random((2, 2, 3)), np.ones((4, 4, 1)))
    frames, masks = [], []
    for i in range(n):
        f, m = bg.copy(), np.zeros((SIZE, SIZE), np.float32)
        f[8:16, 8 + i : 16 + i] = tex
        m[8:16, 8 + i : 16 + i] = 1.0
        frames.append(f.astype(np.float32))
        masks.append(np.ones_like(m) if full else m)
    return frames, masks


class SmallObject(Node):
    """Test source: the small-object clip and its masks."""

    type_id = "test.small_object"
    outputs = (Output("video", Video), Output("mask", Video))
    params = (Param("frames", Int, 5, min=0), Param("full", Bool, False))

    def run(self, ctx: Any, frames: int, full: bool) -> dict[str, Any]:
        f, m = small_object(frames, full)
        return {
            "video": Video.from_frames([Image(x) for x in f], fps=12),
            "mask": Video.from_frames([Image(x) for x in m], fps=12),
        }


REG = Registry()
REG.load_builtin()
REG.register(SmallObject)


@pytest.fixture(scope="module")
def ex() -> Executor:
    return Executor(REG)


def _params(model: Path, **kw: Any) -> dict[str, Any]:
    return {
        "model": str(model),
        "prompt": "a red cat",
        "steps": 4,
        "strength": 0.75,
        "guidance": 7.5,
        "seed": 7,
        "frames_per_batch": 2,
        **kw,
    }


def _clip(frames: int = 5, full: bool = False) -> dict[str, Video]:
    f, m = small_object(frames, full)
    return {
        "video": Video.from_frames([Image(x) for x in f], fps=12),
        "mask": Video.from_frames([Image(x) for x in m], fps=12),
    }


def test_sparse_edit_from_a_graph_file(ex: Executor, tiny_sd: Path, tmp_path: Path) -> None:
    g = Graph()
    g.add_node("test.small_object", "clip", {"frames": 5})
    g.add_node("generate.video_edit", "edit", _params(tiny_sd, sparse=True, sparse_margin=0))
    g.connect("clip", "video", "edit", "video")
    g.connect("clip", "mask", "edit", "mask")
    path = graphfile.save(g, tmp_path / "sparse_edit.json", registry=REG)
    loaded = graphfile.load(path, registry=REG)
    opts = RunOptions(output_dir=tmp_path / "out", base_dir=tmp_path, device="cpu")
    res = ex.run(loaded, targets=["edit"], options=opts)
    rec = res.records["edit"]
    assert rec.status == "executed", rec.error
    out = res.values["edit"]["video"]
    assert len(out) == 5 and out.size == (SIZE, SIZE)
    src, masks = small_object(5)
    for i in range(5):
        got = out.frame(i).data
        # The object's box (rounded out to 8 px) lies inside the top-left 32×32: everything
        # else is the source frame, pixel for pixel (to the 8-bit store's rounding).
        outside = np.ones((SIZE, SIZE), bool)
        outside[:32, :32] = False
        assert np.abs(got[outside] - src[i][outside]).max() <= 0.5 / 255 + 1e-6
        inside = masks[i] > 0.5
        assert np.abs(got[inside] - src[i][inside]).mean() > 0.02  # the object was edited
    d = rec.as_dict()["details"]
    assert d["sparse"] is True and d["whole_frame_unet_calls"] == 3  # the keyframe, 3 steps
    assert 0 < d["unet_computed"] < 0.6 and 0 < d["vae_computed"] < 0.6


@pytest.mark.parametrize("vae_every", [0, 2])
def test_whole_frame_mask_equals_the_plain_edit(
    ex: Executor, tiny_sd: Path, vae_every: int
) -> None:
    """With the whole frame as the foreground every layer computes every pixel: the sparse
    edit is the plain edit (anchor attention, flow fusion and all), also with the VAE's
    whole frame every second frame."""
    clip = _clip(4, full=True)
    plain = ex.call("generate.video_edit", clip, _params(tiny_sd))["video"]
    params = _params(tiny_sd, sparse=True, sparse_vae_every=vae_every)
    sparse = ex.call("generate.video_edit", clip, params)["video"]
    a = np.stack([f.data for f in plain])
    b = np.stack([f.data for f in sparse])
    assert np.abs(a - b).max() <= 2 / 255


def test_bad_masks_are_explained(ex: Executor, tiny_sd: Path) -> None:
    clip = _clip(3)
    empty = Video.from_frames([Image(np.zeros((SIZE, SIZE), np.float32))] * 3, fps=12)
    small = clip["mask"].map(lambda im: Image(im.data[:32]), (SIZE, 32))
    cases = [
        ({"video": clip["video"]}, {}, "mask", "needs a foreground mask"),
        ({**clip, "mask": empty}, {}, "mask", "empty"),
        ({**clip, "mask": small}, {}, "mask", "64×32"),
        (clip, {"merge_bg": 0.5}, "sparse", "merge_bg"),
        (clip, {"inversion": True}, "sparse", "inversion"),
    ]
    for inputs, extra, port, text in cases:
        with pytest.raises(NodeError) as err:
            ex.call("generate.video_edit", inputs, _params(tiny_sd, sparse=True, **extra))
        assert err.value.port == port and text in str(err.value), str(err.value)
        assert err.value.fix
