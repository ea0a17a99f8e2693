"""Generation nodes: equal to the plain diffusers pipelines, bad inputs, progress, cancel, CLI."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from cancelling import cancel_after_steps
from faults import out_of_memory

from fathom.engine.context import RunOptions
from fathom.engine.errors import GraphInvalid, NodeError
from fathom.engine.events import Recorder
from fathom.engine.executor import Executor
from fathom.engine.graph import Graph
from fathom.engine.node import Node, Output
from fathom.engine.registry import Registry
from fathom.engine.types import Image, Mask, Video

REG = Registry()
REG.load_builtin()
ROOT = Path(__file__).resolve().parents[2]
RGB = np.random.default_rng(0).random((64, 64, 3)).astype(np.float32)
MASK = np.zeros((64, 64), np.float32)
MASK[16:48, 8:40] = 1.0


class TestImage(Node):
    """Test source: a fixed random 64×64 image."""

    type_id = "test.gen_image"
    outputs = (Output("image", Image),)

    def run(self, ctx, **kw):
        return {"image": Image(RGB)}


REG.register(TestImage)


@pytest.fixture(scope="module")
def ex() -> Executor:
    """One executor (and model manager) for the module: models load once, as in the GUI."""
    return Executor(REG)


def _pipe(cls: Any, folder: Path, scheduler: str = "default") -> Any:
    from fathom.engine.diffusion.schedulers import make_scheduler

    pipe = cls.from_pretrained(folder, safety_checker=None, requires_safety_checker=False)
    pipe.scheduler = make_scheduler(pipe.scheduler, scheduler)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def _opts(tmp_path: Path, **extra: Any) -> RunOptions:
    return RunOptions(output_dir=tmp_path / "out", base_dir=tmp_path, device="cpu", extra=extra)


def _t2i_graph(model: Path, **params: Any) -> Graph:
    g = Graph()
    g.add_node(
        "generate.text_to_image",
        "gen",
        {
            "model": str(model),
            "prompt": "a red cat",
            "negative_prompt": "blurry",
            "steps": 3,
            "guidance": 7.5,
            "seed": 7,
            "width": 64,
            "height": 64,
            **params,
        },
    )
    return g


def test_text_to_image_equals_the_pipeline_and_reports_how_it_ran(
    ex: Executor, tiny_sd: Path, tmp_path: Path
) -> None:
    from diffusers import StableDiffusionPipeline

    rec = Recorder()
    res = ex.run(
        _t2i_graph(tiny_sd, batch_size=2, scheduler="euler_a"),
        targets=["gen"],
        options=_opts(tmp_path),
        listener=rec,
    )
    r = res.records["gen"]
    assert r.status == "executed", r.error
    out = res.values["gen"]
    ref = _pipe(StableDiffusionPipeline, tiny_sd, "euler_a")(
        "a red cat",
        negative_prompt="blurry",
        num_inference_steps=3,
        guidance_scale=7.5,
        width=64,
        height=64,
        num_images_per_prompt=2,
        output_type="np",
        generator=torch.Generator().manual_seed(7),
    ).images
    assert np.allclose(out["image"].data, ref[0], atol=1e-5)
    assert isinstance(out["images"], Video) and len(out["images"]) == 2
    assert np.allclose(out["images"].frame(1).data, ref[1], atol=1e-5)
    assert tuple(out["latent"].tensor.shape) == (2, 4, 8, 8)
    # The run report: device, dtype, offload, steps; and the weights' hashes.
    d = r.as_dict()["details"]
    assert d["device"] == "cpu" and d["dtype"] == "float32" and d["offload"] == "none"
    assert d["vae_upcast"] is False  # float32 needs no upcast (SDXL in float16 would)
    assert d["steps_run"] == d["steps_planned"] == 3 and d["scheduler"] == "euler_a"
    assert any(f.endswith("unet/diffusion_pytorch_model.safetensors") for f in r.model_files)
    # Progress every step; previews (the model's vae_tiny/) as often as 10% of the step time
    # allows: the first always, the rest skipped when a tiny model's step is cheaper.
    steps = [e.message for e in rec.events if e.kind == "node_progress" and "step" in e.message]
    assert steps == ["step 1/3", "step 2/3", "step 3/3"]
    previews = [e for e in rec.events if e.kind == "node_preview"]
    assert previews[0].message == "step 1/3" and len(previews) <= 3
    assert all(isinstance(p.value, Image) and p.value.data.shape[2] == 3 for p in previews)
    assert d["preview"]["mode"] in ("tiny", "linear") and d["preview"]["shown"] == len(previews)
    loads = ex.models.loads
    ex.run(_t2i_graph(tiny_sd, seed=8, steps=2), targets=["gen"], options=_opts(tmp_path))
    assert ex.models.loads == loads  # the model is shared across runs


def test_unchanged_runs_are_cached_until_the_weights_change(
    ex: Executor, tiny_sd: Path, tmp_path: Path
) -> None:
    import os

    graph = _t2i_graph(tiny_sd, steps=1, seed=123)
    assert ex.run(graph, targets=["gen"], options=_opts(tmp_path)).executed == ["gen"]
    assert ex.run(graph, targets=["gen"], options=_opts(tmp_path)).cached == ["gen"]
    weights = tiny_sd / "unet" / "diffusion_pytorch_model.safetensors"
    st = weights.stat()
    os.utime(weights, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))
    loads = ex.models.loads
    assert ex.run(graph, targets=["gen"], options=_opts(tmp_path)).executed == ["gen"]
    assert ex.models.loads == loads + 1  # and the manager reloads the changed weights


def test_a_half_precision_only_download_loads(ex: Executor, tiny_sd: Path, tmp_path: Path) -> None:
    """Hub repos offer fp16 copies (``*.fp16.safetensors``); a download that kept only those
    loads with that variant and gives the same image (these test weights are the same)."""
    import shutil

    half = tmp_path / "half"
    shutil.copytree(tiny_sd, half)
    renamed = 0
    for f in half.glob("*/*.safetensors"):
        if f.parent.name in ("unet", "vae", "text_encoder"):
            f.rename(f.with_name(f.name.replace(".safetensors", ".fp16.safetensors")))
            renamed += 1
    assert renamed == 3
    params = {"prompt": "a red boat", "steps": 2, "width": 64, "height": 64, "seed": 9}
    want = ex.call("generate.text_to_image", {}, {"model": str(tiny_sd), **params})["image"]
    got = ex.call("generate.text_to_image", {}, {"model": str(half), **params})["image"]
    assert np.array_equal(got.data, want.data)


def test_image_to_image_and_inpaint_equal_their_pipelines(
    ex: Executor, tiny_sd: Path, tiny_sd_factory: Any
) -> None:
    from diffusers import StableDiffusionImg2ImgPipeline, StableDiffusionInpaintPipeline

    image = torch.from_numpy(RGB).permute(2, 0, 1)[None].contiguous()
    common = {"prompt": "a cat", "steps": 4, "guidance": 5.0, "seed": 1}
    out = ex.call(
        "generate.image_to_image",
        {"image": Image(RGB)},
        {"model": str(tiny_sd), "strength": 0.6, **common},
    )
    ref = _pipe(StableDiffusionImg2ImgPipeline, tiny_sd)(
        "a cat",
        image=image,
        num_inference_steps=4,
        guidance_scale=5.0,
        strength=0.6,
        generator=torch.Generator().manual_seed(1),
        output_type="np",
    ).images
    assert np.allclose(out["image"].data, ref[0], atol=1e-5)

    inpaint = tiny_sd_factory(unet_in_channels=9)
    out = ex.call(
        "generate.inpaint",
        {"image": Image(RGB), "mask": Mask(MASK)},
        {"model": str(inpaint), **common},
    )
    ref = _pipe(StableDiffusionInpaintPipeline, inpaint)(
        "a cat",
        image=image,
        mask_image=MASK[None, :, :, None],
        num_inference_steps=4,
        guidance_scale=5.0,
        height=64,
        width=64,
        generator=torch.Generator().manual_seed(1),
        output_type="np",
    ).images
    assert np.allclose(out["image"].data, ref[0], atol=1e-5)


def test_text_to_rgbd_owns_the_rgb_and_depth_decode(ex: Executor, tiny_sd_factory: Any) -> None:
    from fathom.engine.generation import split_rgbd

    folder = tiny_sd_factory(vae_channels=4, ldm3d=True)
    params = {
        "model": str(folder),
        "prompt": "a room",
        "steps": 3,
        "guidance": 7.0,
        "seed": 5,
        "width": 64,
        "height": 64,
    }
    out = ex.call("generate.text_to_rgbd", {}, params)
    assert out["image"].data.shape == (64, 64, 3) and out["depth"].kind == "relative"
    assert out["rgbd"].image is out["image"]
    try:
        from diffusers import StableDiffusionLDM3DPipeline
    except ImportError:  # diffusers dropped its deprecated LDM3D pipeline: our own reference
        from fathom.engine.diffusion.loop import generate
        from fathom.engine.models.diffusion import load_components

        comps = load_components(folder, "cpu", "float32")
        res = generate(comps, "a room", steps=3, guidance=7.0, seed=5, width=64, height=64)
        decoded = res.images[0]
        rgb_ref, depth_ref = decoded[..., :3], decoded[..., 3]
    else:
        ref = _pipe(StableDiffusionLDM3DPipeline, folder)(
            "a room",
            num_inference_steps=3,
            guidance_scale=7.0,
            width=64,
            height=64,
            generator=torch.Generator().manual_seed(5),
            output_type="np",
        )
        rgb_ref, depth_ref = ref.rgb[0], ref.depth[0, ..., 0]
    assert np.allclose(out["image"].data, rgb_ref, atol=1e-5)
    assert np.allclose(out["depth"].data, 1.0 - depth_ref, atol=1e-5)  # 0 = near
    # The 6-channel variant: 16-bit depth split over two 8-bit channels.
    six = np.zeros((1, 1, 6), np.float32)
    six[..., 4], six[..., 5] = 0x12 / 255, 0x34 / 255
    assert split_rgbd(six)[1][0, 0] == pytest.approx(0x1234 / 65535)


def test_panorama_mode_wraps_the_seam_and_checks_the_aspect(
    ex: Executor, tiny_sd_factory: Any, tmp_path: Path
) -> None:
    folder = tiny_sd_factory(vae_channels=4, ldm3d=True)
    params = {
        "model": str(folder),
        "prompt": "a beach",
        "steps": 2,
        "seed": 5,
        "width": 128,
        "height": 64,
        "mode": "panorama",
    }
    pano = ex.call("generate.text_to_rgbd", {}, params)
    flat = ex.call("generate.text_to_rgbd", {}, {**params, "seamless": False})
    assert pano["image"].data.shape == (64, 128, 3)
    assert not np.allclose(pano["image"].data, flat["image"].data)
    # The wrap is undone: a perspective run afterwards matches one with wrapping never used.
    again = ex.call("generate.text_to_rgbd", {}, {**params, "seamless": False})
    assert np.array_equal(again["image"].data, flat["image"].data)
    g = Graph()
    g.add_node("generate.text_to_rgbd", "pano", {**params, "width": 96})
    with pytest.raises(GraphInvalid) as err:
        ex.plan(g, options=_opts(tmp_path))
    assert [(p.node, p.port) for p in err.value.problems] == [("pano", "width")]


def test_bad_inputs_are_explained(
    ex: Executor, tiny_sd: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FATHOM_SETTINGS", str(tmp_path / "absent.conf"))
    monkeypatch.setenv("FATHOM_MODELS", str(tmp_path / "models"))
    # A missing model: the render cannot start, and the message lists where we looked.
    with pytest.raises(GraphInvalid) as err:
        ex.plan(_t2i_graph(Path("nowhere")), options=_opts(tmp_path))
    p = err.value.problems[0]
    assert (p.node, p.port) == ("gen", "model")
    for place in (tmp_path / "nowhere", tmp_path / "models" / "nowhere.safetensors"):
        assert str(place) in p.message
    # Width not a multiple of 8: named before anything runs.
    with pytest.raises(GraphInvalid) as err:
        ex.plan(_t2i_graph(tiny_sd, width=100), options=_opts(tmp_path))
    assert [(p.port, p.fix) for p in err.value.problems] == [("width", "use 96 or 104")]
    # A pickle checkpoint is refused.
    ckpt = tmp_path / "model.ckpt"
    ckpt.write_bytes(b"never unpickled")
    from fathom.engine.models import ModelError

    with pytest.raises(ModelError, match="pickle"):
        ex.call("generate.text_to_image", {}, {"model": str(ckpt), "width": 64, "height": 64})
    # An inpaint node given a text-to-image model (a UNet that takes no mask).
    with pytest.raises(NodeError) as nerr:
        ex.call(
            "generate.inpaint",
            {"image": Image(RGB), "mask": Mask(MASK)},
            {"model": str(tiny_sd), "steps": 2},
        )
    assert nerr.value.port == "model" and "takes 4 input channels" in str(nerr.value)
    assert "inpainting checkpoint" in str(nerr.value)
    # An image whose size is no multiple of 8, unless width/height resize it.
    odd = Image(RGB[:60])
    with pytest.raises(NodeError) as nerr:
        ex.call("generate.image_to_image", {"image": odd}, {"model": str(tiny_sd), "steps": 2})
    assert nerr.value.port == "image"
    out = ex.call(
        "generate.image_to_image",
        {"image": odd},
        {"model": str(tiny_sd), "steps": 2, "width": 64, "height": 64},
    )
    assert out["image"].data.shape == (64, 64, 3)
    # An empty prompt is fine.
    out = ex.call(
        "generate.text_to_image",
        {},
        {"model": str(tiny_sd), "prompt": "", "steps": 2, "width": 64, "height": 64},
    )
    assert np.isfinite(out["image"].data).all()


def test_accelerations_switch_on_per_node_and_the_report_says_so(
    ex: Executor, tiny_sd: Path, tmp_path: Path
) -> None:
    graph = _t2i_graph(
        tiny_sd, steps=6, scheduler="ddim", token_merge=0.5, clock_period=2, adaptive_threshold=1.0
    )
    res = ex.run(graph, targets=["gen"], options=_opts(tmp_path, preview="off"))
    d = res.records["gen"].details
    assert res.records["gen"].status == "executed", res.records["gen"].error
    assert d["accelerations"] == ["TokenMerge", "Clockwork", "AdaptiveSteps"]
    assert d["stopped_early"] and d["steps_run"] < d["steps_planned"] == 6
    assert d["preview"]["mode"] == "off"
    comps = ex.models.entries()[-1].model
    assert not comps.unet._forward_hooks and not comps.unet._forward_pre_hooks  # detached


def test_a_separate_tiny_autoencoder_draws_the_previews(
    ex: Executor, tiny_sd: Path, tmp_path: Path
) -> None:
    rec = Recorder()
    opts = _opts(tmp_path, preview="tiny", preview_vae=str(tiny_sd / "vae_tiny"))
    res = ex.run(_t2i_graph(tiny_sd, steps=2, seed=5), targets=["gen"], options=opts, listener=rec)
    assert res.records["gen"].details["preview"]["mode"] in ("tiny", "linear")
    assert any(e.key[0] == "tiny-vae" for e in ex.models.entries())
    first = next(e for e in rec.events if e.kind == "node_preview")
    assert first.value.data.shape[2] == 3 and first.value.width >= 8


def test_cancelling_mid_denoise_stops_the_node(ex: Executor, tiny_sd: Path, tmp_path: Path) -> None:
    cancel, seen, listener = cancel_after_steps(2)

    res = ex.run(
        _t2i_graph(tiny_sd, steps=6, seed=99, scheduler="ddim"),
        targets=["gen"],
        options=_opts(tmp_path),
        listener=listener,
        cancel=cancel,
    )
    assert res.cancelled and res.records["gen"].status == "cancelled"
    assert seen == ["step 1/6", "step 2/6"]


def test_out_of_memory_frees_retries_with_fallbacks_then_explains(
    tiny_sd: Path, tmp_path: Path
) -> None:
    ex = Executor(REG)
    ex.call(
        "generate.text_to_image", {}, {"model": str(tiny_sd), "steps": 1, "width": 64, "height": 64}
    )
    comps = ex.models.entries()[-1].model
    comps.vae_tiling = False
    try:
        with out_of_memory(comps.unet) as fails:
            res = ex.run(_t2i_graph(tiny_sd, steps=2), targets=["gen"], options=_opts(tmp_path))
            r = res.records["gen"]
            assert r.status == "executed", r.error
            assert r.details["oom_fallback"] == "VAE tiling" and comps.vae_tiling
            fails.left = 10
            res = ex.run(
                _t2i_graph(tiny_sd, steps=2, seed=1), targets=["gen"], options=_opts(tmp_path)
            )
            err = res.records["gen"].error
            assert res.records["gen"].status == "failed"
            assert "node 'gen'" in err and "ran out of cpu memory" in err and "lower width" in err
    finally:
        comps.vae.disable_tiling()
        comps.vae_tiling = False


def test_stream_node_lines_frames_up_with_their_inputs(ex: Executor, tiny_sd: Path) -> None:
    from fathom.engine.diffusion.stream import StreamPipeline
    from fathom.engine.models.diffusion import load_components

    frames = [Image(np.roll(RGB, 8 * i, axis=1)) for i in range(3)]
    params = {
        "model": str(tiny_sd),
        "prompt": "a cat",
        "t_index_list": "1,3",
        "num_inference_steps": 4,
        "guidance": 1.0,
        "cfg_type": "none",
        "seed": 3,
    }
    out = ex.call("generate.stream", {"frames": Video.from_frames(frames, fps=12)}, params)
    video = out["video"]
    assert len(video) == 3 and video.fps == 12
    comps = load_components(tiny_sd, "cpu", "float32")
    ref = StreamPipeline(
        comps.unet,
        comps.vae,
        comps.text_encoder,
        comps.tokenizer,
        comps.scheduler,
        tiny_vae=comps.tiny_vae,
    )
    ref.prepare("a cat", "", [1, 3], 1.0, "none", 3, num_inference_steps=4)
    for i, frame in enumerate(frames):
        x = 2 * torch.from_numpy(frame.data).permute(2, 0, 1)[None].contiguous() - 1
        want = ((ref.denoise_sequential(x)[0] + 1) / 2).permute(1, 2, 0).numpy()
        assert np.allclose(video.frame(i).data, want, atol=1e-4), i


def test_the_example_graph_renders_from_the_command_line(tiny_sd: Path, tmp_path: Path) -> None:
    graph = ROOT / "assets" / "graphs" / "text_to_image.json"
    out, report = tmp_path / "out", tmp_path / "run.json"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "fathom.engine.cli",
            "render",
            str(graph),
            "--set",
            f"gen.model={tiny_sd}",
            "--set",
            "gen.width=64",
            "--set",
            "gen.height=64",
            "--set",
            "gen.steps=2",
            "--out",
            str(out),
            "--device",
            "cpu",
            "--report",
            str(report),
            "--quiet",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    assert (out / "text_to_image.png").is_file()
    rep = json.loads(report.read_text())
    gen = next(n for n in rep["nodes"] if n["node"] == "gen")
    assert gen["details"]["steps_run"] == 2 and gen["details"]["offload"] == "none"
    assert rep["device"]["dtype"] == "float32" and rep["model_files"]
