"""The generation nodes run the model families they declare, detected from the model, and
refuse others before the run, naming both; an SDXL model renders through the same node as an
SD 1.5 one, equal to diffusers' SDXL pipeline."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from fathom.engine.context import NodeContext, RunOptions
from fathom.engine.errors import GraphInvalid
from fathom.engine.executor import Executor
from fathom.engine.graph import Graph
from fathom.engine.registry import default_registry


@pytest.fixture(scope="module")
def ex() -> Executor:
    return Executor(default_registry())


def _opts(tmp_path: Path) -> RunOptions:
    return RunOptions(output_dir=tmp_path / "out", base_dir=tmp_path, device="cpu")


def _node(type_id: str, model: Path, **params: object) -> Graph:
    g = Graph()
    g.add_node(type_id, "gen", {"model": str(model), **params})
    return g


def test_text_to_image_runs_an_sdxl_model_as_diffusers_does(
    ex: Executor, tiny_sdxl: Path, tmp_path: Path
) -> None:
    from diffusers import StableDiffusionXLPipeline

    params = dict(prompt="a lighthouse", steps=3, guidance=5.0, seed=11, width=64, height=64)
    res = ex.run(_node("generate.text_to_image", tiny_sdxl, **params), options=_opts(tmp_path))
    assert res.records["gen"].status == "executed", res.records["gen"].error
    pipe = StableDiffusionXLPipeline.from_pretrained(tiny_sdxl)
    pipe.set_progress_bar_config(disable=True)
    ref = pipe(
        "a lighthouse",
        num_inference_steps=3,
        guidance_scale=5.0,
        width=64,
        height=64,
        output_type="np",
        generator=torch.Generator().manual_seed(11),
    ).images[0]
    assert np.abs(res.values["gen"]["image"].data - ref).max() <= 2 / 255


@pytest.mark.parametrize(
    ("type_id", "model", "says"),
    [
        ("generate.inpaint", "tiny_sdxl", "is SDXL model; Inpaint runs Stable Diffusion 1.x or"),
        ("generate.image_to_video", "tiny_sd", "Image to Video (SVD) runs Stable Video Diffusion"),
        ("generate.text_to_rgbd", "tiny_sdxl", "runs LDM3D (RGB + depth) models"),
        ("generate.stream", "tiny_sdxl_refiner", "Stream (real-time img2img) runs Stable"),
        ("generate.inpaint", "tiny_sd", "is not an inpainting model; Inpaint needs an inpainting"),
    ],
)
def test_a_model_of_another_family_is_refused_before_the_run_naming_both(
    ex: Executor,
    request: pytest.FixtureRequest,
    tmp_path: Path,
    type_id: str,
    model: str,
    says: str,
) -> None:
    folder = request.getfixturevalue(model)
    cls = default_registry().get(type_id)
    assert cls is not None
    ctx = NodeContext("gen", _opts(tmp_path), None)
    problems = cls.preflight({**cls.defaults(), "model": str(folder)}, ctx)
    (problem,) = [p for p in problems if p.port == "model"]
    assert says in problem.message and problem.node == "gen" and problem.fix


def test_the_render_stops_before_loading_a_model_of_another_family(
    ex: Executor, tiny_sdxl: Path, tmp_path: Path
) -> None:
    g = _node("generate.text_to_rgbd", tiny_sdxl, prompt="a room")
    with pytest.raises(GraphInvalid, match="is SDXL model"):
        ex.run(g, options=_opts(tmp_path))


def test_a_one_step_turbo_model_runs_as_diffusers_runs_it(
    ex: Executor, tiny_sdxl_turbo: Path, tmp_path: Path
) -> None:
    from diffusers import StableDiffusionXLPipeline

    from fathom.engine.models.families import identify

    assert identify(tiny_sdxl_turbo).one_step
    params = dict(prompt="a fox", steps=1, guidance=0.0, seed=5, width=64, height=64)
    res = ex.run(
        _node("generate.text_to_image", tiny_sdxl_turbo, **params), options=_opts(tmp_path)
    )
    assert res.records["gen"].status == "executed", res.records["gen"].error
    pipe = StableDiffusionXLPipeline.from_pretrained(tiny_sdxl_turbo)
    pipe.set_progress_bar_config(disable=True)
    ref = pipe(
        "a fox",
        num_inference_steps=1,
        guidance_scale=0.0,
        width=64,
        height=64,
        output_type="np",
        generator=torch.Generator().manual_seed(5),
    ).images[0]
    assert np.abs(res.values["gen"]["image"].data - ref).max() <= 2 / 255
    assert res.records["gen"].as_dict()["details"]["steps_run"] == 1


def test_the_sdxl_refiner_is_a_second_pass_equal_to_diffusers(
    ex: Executor, tiny_sdxl: Path, tiny_sdxl_refiner: Path, tmp_path: Path
) -> None:
    from diffusers import StableDiffusionXLImg2ImgPipeline, StableDiffusionXLPipeline

    g = Graph()
    base = dict(
        prompt="a fox", negative_prompt="blur", steps=3, guidance=5.0, seed=8, width=64, height=64
    )
    g.add_node("generate.text_to_image", "base", {"model": str(tiny_sdxl), **base})
    refine = {**base, "strength": 0.3, "steps": 4, "width": 0, "height": 0}
    g.add_node("generate.image_to_image", "refine", {"model": str(tiny_sdxl_refiner), **refine})
    g.connect("base", "image", "refine", "image")
    res = ex.run(g, options=_opts(tmp_path))
    assert res.records["refine"].status == "executed", res.records["refine"].error
    kw = dict(
        negative_prompt="blur",
        guidance_scale=5.0,
        output_type="np",
        generator=torch.Generator().manual_seed(8),
    )
    p1 = StableDiffusionXLPipeline.from_pretrained(tiny_sdxl)
    p1.set_progress_bar_config(disable=True)
    first = p1("a fox", num_inference_steps=3, width=64, height=64, **kw).images
    p2 = StableDiffusionXLImg2ImgPipeline.from_pretrained(tiny_sdxl_refiner)
    p2.set_progress_bar_config(disable=True)
    kw["generator"] = torch.Generator().manual_seed(8)
    image = torch.from_numpy(first).permute(0, 3, 1, 2).contiguous()
    ref = p2("a fox", image=image, strength=0.3, num_inference_steps=4, **kw).images[0]
    assert np.abs(res.values["refine"]["image"].data - ref).max() <= 2 / 255
    cls = default_registry().get("generate.text_to_image")
    problems = cls.preflight(  # type: ignore[union-attr]
        {**cls.defaults(), "model": str(tiny_sdxl_refiner)},  # type: ignore[union-attr]
        NodeContext("gen", _opts(tmp_path), None),
    )
    assert any("is SDXL refiner model" in p.message for p in problems)
