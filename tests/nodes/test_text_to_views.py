"""generate.text_to_views on tiny random-weight models: independent views equal plain
generations (and diffusers' pipeline), joint views reduce to them at share 0 and are more
consistent than them through a sphere proxy, SDXL runs too."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from fathom.engine.context import RunOptions
from fathom.engine.diffusion.joint_views import VIEWS, view_prompts
from fathom.engine.events import Recorder
from fathom.engine.executor import Executor
from fathom.engine.geometry.consistency import reprojection_error, sphere_proxy
from fathom.engine.graph import Graph
from fathom.engine.registry import default_registry
from fathom.engine.types import Views

PARAMS: dict[str, Any] = dict(
    prompt="a red teapot", steps=3, guidance=7.5, seed=5, width=64, height=64
)


@pytest.fixture(scope="module")
def ex() -> Executor:
    """One executor for the module: the model loads once, as in the studio."""
    return Executor(default_registry())


def _run(ex: Executor, tmp_path: Path, type_id: str, model: Path, **params: Any) -> Any:
    g = Graph()
    g.add_node(type_id, "gen", {"model": str(model), **params})
    rec = Recorder()
    opts = RunOptions(output_dir=tmp_path / "out", base_dir=tmp_path, device="cpu")
    res = ex.run(g, options=opts, listener=rec)
    assert res.records["gen"].status in ("executed", "cached"), res.records["gen"].error
    return res.values["gen"], rec


def _views(ex: Executor, tmp_path: Path, model: Path, **params: Any) -> Views:
    return _run(ex, tmp_path, "generate.text_to_views", model, **{**PARAMS, **params})[0]["views"]


def _error(views: Views) -> float:
    """Consistency through the sphere proxy: the unit sphere the cameras frame (the generated
    views carry no depth, and a random depth model's output would carry no meaning)."""
    images = [im.rgb() for im in views.images]
    depths = [d.data for d in sphere_proxy(views.cameras, 1.0)]
    return reprojection_error(images, depths, views.cameras).mae


def test_independent_views_are_plain_generations(
    ex: Executor, tiny_sd: Path, tmp_path: Path
) -> None:
    from diffusers import StableDiffusionPipeline

    out, rec = _run(ex, tmp_path, "generate.text_to_views", tiny_sd, **PARAMS, joint=False)
    views = out["views"]
    assert len(views) == 6 and out["sheet"].width == 3 * 64 and out["sheet"].height == 2 * 64
    prompts = view_prompts("a red teapot")
    assert prompts[0] == "a red teapot, front view" and prompts[5].endswith("bottom view")
    for k, text in enumerate(prompts):
        plain = _run(
            ex,
            tmp_path,
            "generate.text_to_image",
            tiny_sd,
            **{**PARAMS, "prompt": text, "seed": 5 + k},
        )[0]["image"]
        assert np.array_equal(views.images[k].data, plain.data), k
    pipe = StableDiffusionPipeline.from_pretrained(
        tiny_sd, safety_checker=None, requires_safety_checker=False
    )
    pipe.set_progress_bar_config(disable=True)
    ref = pipe(
        prompts[0],
        num_inference_steps=3,
        guidance_scale=7.5,
        width=64,
        height=64,
        output_type="np",
        generator=torch.Generator().manual_seed(5),
    ).images[0]
    assert np.allclose(views.images[0].data, ref, atol=1e-5)
    # Cameras: a ring at eye level, then top and bottom; all look at the origin.
    eyes = np.array([c.pose[:3, 3] for c in views.cameras])
    assert np.allclose(eyes[:4, 1], 0) and eyes[4, 1] < 0 < eyes[5, 1]  # up is -y
    assert eyes[0, 2] < 0 and eyes[1, 0] > 0 and eyes[2, 2] > 0 and eyes[3, 0] < 0
    fwd = np.array([c.pose[:3, 2] for c in views.cameras])
    assert np.allclose(np.einsum("ij,ij->i", fwd, -eyes / np.linalg.norm(eyes, axis=1)[:, None]), 1)
    # Progress runs once from 0 to 1 over the six views.
    fr = [e.progress for e in rec.events if e.kind == "node_progress" and e.node == "gen"]
    assert fr == sorted(fr) and fr[-1] == pytest.approx(1.0)


def test_joint_views_share_zero_is_independent_and_share_makes_them_consistent(
    ex: Executor, tiny_sd: Path, tmp_path: Path
) -> None:
    indep = _views(ex, tmp_path, tiny_sd, joint=False)
    zero = _views(ex, tmp_path, tiny_sd, joint=True, share=0.0)
    for a, b in zip(indep.images, zero.images, strict=True):  # one batch vs six: same math
        assert np.allclose(a.data, b.data, atol=1e-4)
    joint = _views(ex, tmp_path, tiny_sd, joint=True, share=0.5)
    e_indep, e_joint = _error(indep), _error(joint)
    assert e_joint < 0.9 * e_indep, (e_joint, e_indep)


def test_joint_views_run_on_sdxl(ex: Executor, tiny_sdxl: Path, tmp_path: Path) -> None:
    indep = _views(ex, tmp_path, tiny_sdxl, joint=False, guidance=5.0)
    joint = _views(ex, tmp_path, tiny_sdxl, joint=True, share=0.5, guidance=5.0)
    assert len(joint) == len(VIEWS) and joint.images[0].width == 64
    assert all(np.isfinite(im.data).all() for im in joint.images)
    assert _error(joint) < _error(indep)


def test_a_refiner_or_an_odd_size_is_refused_before_the_run(
    tiny_sdxl_refiner: Path, tiny_sd: Path, tmp_path: Path
) -> None:
    from fathom.engine.context import NodeContext

    cls = default_registry().get("generate.text_to_views")
    assert cls is not None
    ctx = NodeContext("views", RunOptions(output_dir=tmp_path, base_dir=tmp_path), None)
    (problem,) = cls.preflight({**cls.defaults(), "model": str(tiny_sdxl_refiner)}, ctx)
    assert problem.port == "model" and "Text to Views runs" in problem.message and problem.fix
    (problem,) = cls.preflight({**cls.defaults(), "model": str(tiny_sd), "width": 100}, ctx)
    assert problem.port == "width" and problem.node == "views"


def test_joint_views_run_with_the_loop_accelerations(
    ex: Executor, tiny_sd: Path, tmp_path: Path
) -> None:
    """Token merging wraps the joint attention (merged tokens are shared across views) and
    Clockwork reuses the batch's features: both run inside the joint batch."""
    g = Graph()
    params = {**PARAMS, "joint": True, "token_merge": 0.5, "clock_period": 2, "seed": 9}
    g.add_node("generate.text_to_views", "gen", {"model": str(tiny_sd), **params})
    opts = RunOptions(output_dir=tmp_path / "out", base_dir=tmp_path, device="cpu")
    res = ex.run(g, options=opts)
    rec = res.records["gen"]
    assert rec.status == "executed", rec.error
    details = rec.as_dict()["details"]
    assert details["accelerations"] == ["JointAttention", "ProxySync", "TokenMerge", "Clockwork"]
    assert details["joint"] is True and len(details["prompts"]) == 6
    assert all(np.isfinite(im.data).all() for im in res.values["gen"]["views"].images)
