"""Depth nodes: estimation through the model manager with a tiny random model, and the tools."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from object_models import build_tiny_depth

from fathom.engine.context import RunOptions
from fathom.engine.errors import NodeError
from fathom.engine.executor import Executor
from fathom.engine.graph import Graph
from fathom.engine.imaging import depthmath
from fathom.engine.node import Node, Output
from fathom.engine.registry import Registry
from fathom.engine.types import Depth, Image

REG = Registry()
REG.load_builtin()
EX = Executor(REG)


class ConstImage(Node):
    """Test source: a fixed random image."""

    type_id = "test.image"
    outputs = (Output("image", Image),)

    def run(self, ctx, **kw):
        return {"image": Image(np.random.default_rng(0).random((40, 60, 3)))}


REG.register(ConstImage)


@pytest.fixture(scope="module")
def tiny_depth_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random-weight Depth Anything saved like a real checkpoint (safetensors + configs)."""
    return build_tiny_depth(tmp_path_factory.mktemp("depth_model"))


def run_node(type_id: str, inputs: dict, params: dict | None = None) -> dict:
    return EX.call(type_id, inputs, params)


def test_estimate_depth_loads_a_safetensors_checkpoint_and_matches_a_direct_run(
    tiny_depth_model: Path,
) -> None:
    import torch
    from transformers import AutoImageProcessor, AutoModelForDepthEstimation

    rgb = np.random.default_rng(0).random((40, 60, 3)).astype(np.float32)
    rgb = Image(rgb).data
    ex = Executor(REG)
    g = Graph()
    g.add_node("depth.estimate", "n", {"model": str(tiny_depth_model)})
    g.add_node("test.image", "img")
    g.connect("img", "image", "n", "image")
    res = ex.run(g, targets=["n"], options=RunOptions(device="cpu"))
    assert res.records["n"].status == "executed", res.records["n"].error
    d = res.values["n"]["depth"]
    assert d.kind == "relative" and d.data.shape == (40, 60)
    assert np.nanmin(d.data) == pytest.approx(0) and np.nanmax(d.data) == pytest.approx(1)
    # Same numbers as calling transformers directly: 1 − normalised predicted disparity.
    proc = AutoImageProcessor.from_pretrained(tiny_depth_model)
    net = AutoModelForDepthEstimation.from_pretrained(tiny_depth_model).eval()
    with torch.inference_mode():
        x = proc(images=(rgb * 255).astype(np.uint8), return_tensors="pt")
        pred = net(**x).predicted_depth[:, None]
        pred = torch.nn.functional.interpolate(
            pred, size=(40, 60), mode="bicubic", align_corners=False
        )[0, 0].numpy()
    assert np.allclose(d.data, 1 - depthmath.normalize(pred, positive_only=False), atol=1e-5)
    # The weights' hash is recorded for the run report.
    files = res.records["n"].model_files
    assert len(files) == 1 and next(iter(files)).endswith("model.safetensors")


def test_estimate_depth_refuses_pickle_weights_and_missing_models(
    tmp_path: Path, tiny_depth_model: Path
) -> None:
    from fathom.engine.errors import GraphInvalid

    bad = tmp_path / "pickled"
    bad.mkdir()
    (bad / "pytorch_model.bin").write_bytes(b"not really")
    (bad / "config.json").write_text("{}")
    from fathom.engine.models import ModelError

    with pytest.raises(ModelError, match="safetensors"):
        run_node("depth.estimate", {"image": Image(np.zeros((8, 8, 3)))}, {"model": str(bad)})
    g = Graph()
    g.add_node("depth.estimate", "n", {"model": str(tmp_path / "nope")})
    g.add_node("test.image", "img")
    g.connect("img", "image", "n", "image")
    with pytest.raises(GraphInvalid) as err:
        Executor(REG).plan(g, options=RunOptions(device="cpu"))
    assert err.value.problems[0].node == "n" and err.value.problems[0].port == "model"


def test_to_metric_inverse_mapping_is_linear_in_disparity() -> None:
    rel = np.array([[0.0, 0.5, 1.0, np.nan]], np.float32)
    res = run_node(
        "depth.to_metric",
        {"depth": Depth(rel, "relative")},
        {"near": 1.0, "far": 4.0, "mapping": "inverse"},
    )
    z = res["depth"].data
    assert z[0, 0] == pytest.approx(1.0) and z[0, 2] == pytest.approx(4.0)
    assert 1 / z[0, 1] == pytest.approx((1 / 1.0 + 1 / 4.0) / 2)
    assert np.isnan(z[0, 3])
    lin = depthmath.relative_to_metric(rel, 1.0, 4.0, "linear")
    assert lin[0, 1] == pytest.approx(2.5)
    with pytest.raises(NodeError, match="already metric") as err:
        run_node("depth.to_metric", {"depth": Depth(np.ones((2, 2)), "metric")})
    assert err.value.node == "node" and err.value.port == "depth"


def test_fill_holes_closes_every_hole_and_keeps_valid_samples() -> None:
    d = np.full((32, 32), 2.0, np.float32)
    d[10:20, 10:20] = np.nan
    d[0, 0] = -1
    d[5, 5] = 0
    d[25:, :] = 3.0
    res = run_node("depth.fill_holes", {"depth": Depth(d, "metric")})
    out, mask = res["depth"].data, res["mask"].data
    assert np.isfinite(out).all() and (out > 0).all()
    ok = depthmath.valid_mask(d)
    assert np.array_equal(out[ok], d[ok])
    assert np.array_equal(mask > 0.5, ~ok)
    assert out[10:20, 10:20].min() >= 2.0 - 1e-6 and out[10:20, 10:20].max() <= 3.0


def test_smoothing_keeps_a_depth_edge_and_removes_noise() -> None:
    rng = np.random.default_rng(1)
    d = np.where(np.arange(64)[None, :] < 32, 1.0, 3.0) * np.ones((64, 64))
    noisy = (d + rng.normal(0, 0.01, d.shape)).astype(np.float32)
    noisy[3, 3] = np.nan
    for method in ("bilateral", "guided"):
        res = run_node(
            "depth.smooth",
            {"depth": Depth(noisy, "metric")},
            {"method": method, "radius": 3, "sigma": 0.05},
        )
        out = res["depth"].data
        assert np.isnan(out[3, 3])  # holes stay holes
        inner = np.s_[8:56, 8:24]
        assert np.nanstd(out[inner]) < 0.5 * np.nanstd(noisy[inner])
        assert np.abs(out[:, 36:] - 3.0).max() < 0.05 and np.abs(out[5:, :28] - 1).max() < 0.05


def test_normalize_invert_colorize_and_normals() -> None:
    d = np.linspace(1, 5, 64, dtype=np.float32).reshape(8, 8)
    n = run_node("depth.normalize", {"depth": Depth(d, "metric")})["depth"]
    assert n.kind == "relative" and n.data.min() == 0 and n.data.max() == 1
    inv = run_node("depth.invert", {"depth": n})["depth"].data
    assert np.allclose(inv, 1 - n.data)
    rec = run_node("depth.invert", {"depth": Depth(d, "metric")}, {"mode": "reciprocal"})
    assert np.allclose(rec["depth"].data, 1 / d)
    img = run_node(
        "depth.colorize",
        {"depth": Depth(d, "metric")},
        {"colormap": "gray", "low_percentile": 0, "high_percentile": 100},
    )
    g = img["image"].data
    assert g[0, 0, 0] == pytest.approx(1.0) and g[-1, -1, 0] == pytest.approx(0.0)
    nm = run_node("depth.normals", {"depth": Depth(np.full((16, 16), 2.0), "metric")})
    assert np.allclose(nm["normals"].data[2:-2, 2:-2], [0.5, 0.5, 0.0], atol=1e-6)


@pytest.fixture(scope="module")
def tiny_marigold(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random-weight Marigold depth pipeline saved as a diffusers folder."""
    import json

    import torch
    from diffusers import AutoencoderKL, DDIMScheduler, MarigoldDepthPipeline, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    d = tmp_path_factory.mktemp("marigold")
    vocab = {"<|startoftext|>": 0, "<|endoftext|>": 1, "!": 2, "a</w>": 3, "a": 4}
    (d / "vocab.json").write_text(json.dumps(vocab))
    (d / "merges.txt").write_text("#version: 0.2\n")
    tok = CLIPTokenizer(str(d / "vocab.json"), str(d / "merges.txt"), model_max_length=77)
    torch.manual_seed(0)
    unet = UNet2DConditionModel(
        block_out_channels=(8, 16),
        layers_per_block=1,
        sample_size=8,
        in_channels=8,
        out_channels=4,
        cross_attention_dim=16,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        norm_num_groups=4,
        attention_head_dim=2,
    )
    vae = AutoencoderKL(
        block_out_channels=(8, 16),
        latent_channels=4,
        norm_num_groups=4,
        down_block_types=("DownEncoderBlock2D",) * 2,
        up_block_types=("UpDecoderBlock2D",) * 2,
    )
    te = CLIPTextModel(
        CLIPTextConfig(
            hidden_size=16,
            intermediate_size=32,
            num_attention_heads=2,
            num_hidden_layers=2,
            vocab_size=5,
            bos_token_id=0,
            eos_token_id=1,
            pad_token_id=1,
            projection_dim=16,
        )
    )
    sch = DDIMScheduler(
        prediction_type="v_prediction",
        timestep_spacing="trailing",
        beta_schedule="scaled_linear",
        clip_sample=False,
        set_alpha_to_one=False,
    )
    pipe = MarigoldDepthPipeline(
        unet=unet,
        vae=vae,
        scheduler=sch,
        text_encoder=te,
        tokenizer=tok,
        prediction_type="depth",
        scale_invariant=True,
        shift_invariant=True,
    )
    pipe.save_pretrained(d / "model")
    return d / "model"


def test_marigold_backend_matches_the_diffusers_pipeline(tiny_marigold: Path) -> None:
    import torch
    from diffusers import MarigoldDepthPipeline
    from PIL import Image as PILImage

    rgb = Image(np.random.default_rng(0).random((40, 60, 3))).data
    params = {"model": str(tiny_marigold), "backend": "marigold", "steps": 2, "seed": 7}
    d = run_node("depth.estimate", {"image": Image(rgb)}, params)["depth"]
    assert d.kind == "relative" and d.data.shape == (40, 60)
    pipe = MarigoldDepthPipeline.from_pretrained(tiny_marigold, use_safetensors=True)
    ref = pipe(
        PILImage.fromarray((rgb * 255).astype(np.uint8)),
        num_inference_steps=2,
        ensemble_size=1,
        processing_resolution=60,
        generator=torch.Generator().manual_seed(7),
    ).prediction[0, ..., 0]
    assert np.allclose(d.data, ref, atol=1e-5)
