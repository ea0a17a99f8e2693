"""Control nodes: Canny edges and depth as control images (known answers), and a ControlNet
wired into the text-to-image node renders as diffusers' ControlNet pipeline does."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from fathom.engine.context import NodeContext, RunOptions
from fathom.engine.errors import GraphInvalid
from fathom.engine.executor import Executor
from fathom.engine.graph import Graph
from fathom.engine.imaging.depthmath import control_image
from fathom.engine.imaging.ops import edges
from fathom.engine.node import Node, Output
from fathom.engine.registry import Registry
from fathom.engine.types import Image

SQUARE = np.zeros((64, 64, 3), np.float32)
SQUARE[16:48, 16:48] = 1.0


class Square(Node):
    """Test source: a white square on black."""

    type_id = "test.square"
    outputs = (Output("image", Image),)

    def run(self, ctx: NodeContext) -> dict[str, Any]:
        return {"image": Image(SQUARE)}


REG = Registry()
REG.load_builtin()
REG.register(Square)


def test_edges_of_a_square_lie_on_its_border() -> None:
    e = edges(SQUARE, 0.2, 0.6)[:, :, 0] > 0
    assert e.any()
    ys, xs = np.nonzero(e)
    on_border = (np.minimum(abs(ys - 16), abs(ys - 47)) <= 1) | (
        np.minimum(abs(xs - 16), abs(xs - 47)) <= 1
    )
    assert on_border.all() and not e[30:34, 30:34].any() and not e[:8].any()


def test_depth_control_images_are_near_bright() -> None:
    metric = np.array([[1.0, 2.0, 4.0, 0.0]], np.float32)  # 0: no depth
    img = control_image(metric, metric=True)[:, :, 0]
    assert img[0, 0] > img[0, 1] > img[0, 2] and img[0, 3] == 0.0
    relative = np.array([[0.0, 0.5, 1.0]], np.float32)  # 0 nearest
    rel = control_image(relative, metric=False)[:, :, 0]
    assert rel[0, 0] > rel[0, 1] > rel[0, 2]


@pytest.fixture(scope="module")
def controlnet_folder(tiny_sd: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from diffusers import UNet2DConditionModel

    unet = UNet2DConditionModel.from_pretrained(tiny_sd / "unet")
    net = _random_controlnet(unet)
    folder = tmp_path_factory.mktemp("controlnet") / "canny"
    net.save_pretrained(folder, safe_serialization=True)
    return folder


def _random_controlnet(unet: Any) -> Any:
    from diffusers import ControlNetModel

    net = ControlNetModel.from_unet(unet)
    gen = torch.Generator().manual_seed(11)
    with torch.no_grad():
        for p in net.parameters():
            p.add_(torch.randn(p.shape, generator=gen) * 0.05)
    return net.eval()


def test_a_controlnet_node_steers_text_to_image_as_diffusers_does(
    tiny_sd: Path, controlnet_folder: Path, tmp_path: Path
) -> None:
    from diffusers import ControlNetModel, StableDiffusionControlNetPipeline

    g = Graph()
    g.add_node("test.square", "src")
    g.add_node("image.edges", "edges", {"low": 0.2, "high": 0.6})
    g.add_node("generate.controlnet", "cn", {"model": str(controlnet_folder), "scale": 0.7})
    params = dict(prompt="a box", negative_prompt="", steps=3, seed=2, width=64, height=64)
    g.add_node("generate.text_to_image", "gen", {"model": str(tiny_sd), **params})
    g.connect("src", "image", "edges", "image")
    g.connect("edges", "image", "cn", "image")
    g.connect("cn", "control", "gen", "control", multi=True)
    res = Executor(REG).run(
        g, options=RunOptions(base_dir=tmp_path, output_dir=tmp_path, device="cpu")
    )
    assert res.records["gen"].status == "executed", res.records["gen"].error
    hint = torch.from_numpy(edges(SQUARE, 0.2, 0.6)).permute(2, 0, 1)[None]
    pipe = StableDiffusionControlNetPipeline.from_pretrained(
        tiny_sd,
        controlnet=ControlNetModel.from_pretrained(controlnet_folder),
        safety_checker=None,
        requires_safety_checker=False,
    )
    pipe.set_progress_bar_config(disable=True)
    ref = pipe(
        "a box",
        image=hint,
        controlnet_conditioning_scale=0.7,
        num_inference_steps=3,
        width=64,
        height=64,
        output_type="np",
        generator=torch.Generator().manual_seed(2),
    ).images[0]
    assert np.abs(res.values["gen"]["image"].data - ref).max() <= 2 / 255


def test_a_controlnet_node_refuses_a_model_that_is_no_controlnet_and_an_empty_range(
    tiny_sd: Path, tmp_path: Path
) -> None:
    cls = REG.get("generate.controlnet")
    assert cls is not None
    ctx = NodeContext("cn", RunOptions(base_dir=tmp_path), None)
    (bad,) = cls.preflight({**cls.defaults(), "model": str(tiny_sd)}, ctx)
    assert bad.port == "model" and "not a ControlNet" in bad.message
    # The empty range is a declared constraint, found by validation before any check runs.
    (empty,) = cls.check_values("cn", {**cls.defaults(), "start": 0.8, "end": 0.2})
    assert empty.port == "start" and "never act" in empty.message
    g = Graph()
    g.add_node("test.square", "src")
    g.add_node("generate.controlnet", "cn", {"model": str(tiny_sd)})
    g.connect("src", "image", "cn", "image")
    with pytest.raises(GraphInvalid, match="not a ControlNet"):
        Executor(REG).plan(g, options=RunOptions(base_dir=tmp_path))


def test_an_ip_adapter_node_steers_text_to_image_as_diffusers_does(
    tiny_sd: Path, ip_adapter_factory: Any, tmp_path: Path
) -> None:
    from diffusers import StableDiffusionPipeline
    from PIL import Image as PILImage
    from transformers import CLIPVisionModelWithProjection

    adapter = ip_adapter_factory(tiny_sd, seed=5)
    g = Graph()
    g.add_node("test.square", "src")
    g.add_node("generate.ip_adapter", "ip", {"model": str(adapter), "scale": 0.8})
    params = dict(prompt="a box", negative_prompt="", steps=3, seed=2, width=64, height=64)
    g.add_node("generate.text_to_image", "gen", {"model": str(tiny_sd), **params})
    g.connect("src", "image", "ip", "image")
    g.connect("ip", "image_prompt", "gen", "image_prompt", multi=True)
    opts = RunOptions(base_dir=tmp_path, output_dir=tmp_path, device="cpu")
    res = Executor(REG).run(g, options=opts)
    assert res.records["gen"].status == "executed", res.records["gen"].error
    encoder = CLIPVisionModelWithProjection.from_pretrained(adapter.parent / "image_encoder")
    pipe = StableDiffusionPipeline.from_pretrained(
        tiny_sd, image_encoder=encoder, safety_checker=None, requires_safety_checker=False
    )
    pipe.set_progress_bar_config(disable=True)
    pipe.load_ip_adapter(
        str(adapter.parent), subfolder="", weight_name=adapter.name, image_encoder_folder=None
    )
    pipe.set_ip_adapter_scale(0.8)
    ref = pipe(
        "a box",
        ip_adapter_image=PILImage.fromarray((SQUARE * 255).astype(np.uint8)),
        num_inference_steps=3,
        width=64,
        height=64,
        output_type="np",
        generator=torch.Generator().manual_seed(2),
    ).images[0]
    assert np.abs(res.values["gen"]["image"].data - ref).max() <= 2 / 255
    (info,) = [
        p
        for p in REG.get("generate.ip_adapter").preflight(
            {"model": str(tiny_sd / "unet" / "diffusion_pytorch_model.safetensors"), "scale": 1.0},
            NodeContext("ip", opts, None),
        )
    ]
    assert info.port == "model" and "not an IP-Adapter" in info.message


def test_the_stream_node_follows_a_control_video_frame_by_frame(
    tiny_sd: Path, controlnet_folder: Path, tmp_path: Path
) -> None:
    from diffusers import ControlNetModel

    from fathom.engine.diffusion.stream import StreamPipeline
    from fathom.engine.models.diffusion import load_components
    from fathom.engine.types import Control, Video

    rng = np.random.default_rng(4)
    frames = [Image(rng.random((64, 64, 3)).astype(np.float32)) for _ in range(3)]
    hints = [Image(edges(f.data, 0.2, 0.6)) for f in frames]
    control = Control(
        str(controlnet_folder), hints[0], 0.9, 0.0, 1.0, Video.from_frames(hints, fps=12)
    )
    params = {
        "model": str(tiny_sd),
        "prompt": "a cat",
        "t_index_list": "1,3",
        "num_inference_steps": 4,
        "guidance": 1.0,
        "cfg_type": "none",
        "seed": 3,
    }
    ex = Executor(REG)
    out = ex.call(
        "generate.stream",
        {"frames": Video.from_frames(frames, fps=12), "control": [control]},
        params,
        RunOptions(base_dir=tmp_path, output_dir=tmp_path, device="cpu"),
    )["video"]
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
    ref.set_controls([(ControlNetModel.from_pretrained(controlnet_folder).eval(), 0.9, 0.0, 1.0)])
    for i, (frame, hint) in enumerate(zip(frames, hints, strict=True)):
        x = 2 * torch.from_numpy(frame.data).permute(2, 0, 1)[None].contiguous() - 1
        h = torch.from_numpy(hint.data).permute(2, 0, 1)[None].contiguous()
        want = ((ref.denoise_sequential(x, [h])[0] + 1) / 2).permute(1, 2, 0).numpy()
        assert np.allclose(out.frame(i).data, want, atol=1e-4), i
