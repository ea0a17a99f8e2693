"""generate.text_to_3d and generate.image_to_3d: the mesh equals diffusers' Shap-E pipelines
on tiny random models saved like a user's folder; wrong families and bad inputs are refused
with the port and the fix; the turntable has its frames and shows the object turning."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from cancelling import cancel_after_steps
from faults import out_of_memory
from shap_e_models import build_tiny_shap_e, build_tiny_shap_e_img

from fathom.engine.context import RunOptions
from fathom.engine.diffusion.shap_e import color_bytes, to_studio_axes
from fathom.engine.errors import GraphInvalid, NodeError
from fathom.engine.events import Recorder
from fathom.engine.executor import Executor
from fathom.engine.graph import Graph
from fathom.engine.node import Node, Output
from fathom.engine.registry import Registry
from fathom.engine.types import Image, Mesh, Video

RGB = np.random.default_rng(5).random((40, 56, 3)).astype(np.float32)
PROMPT = "a red chair"
#: The pipelines decode on a 128³ grid (seconds on CPU even for a tiny model): the text test
#: compares at that grid; the image test tells the pipeline's renderer the node's coarser grid.
EQUAL = {"steps": 3, "seed": 7, "guidance": 3.0, "grid_size": 128, "turntable": False}
GRID = {"text": 128, "image": 48}
QUICK = {"steps": 2, "seed": 3, "guidance": 3.0, "grid_size": 32, "frames": 6, "frame_size": 48}


class ShapEImage(Node):
    """Test source: a fixed random 56×40 image."""

    type_id = "test.shap_e_image"
    outputs = (Output("image", Image),)

    def run(self, ctx, **kw):
        return {"image": Image(RGB)}


REG = Registry()
REG.load_builtin()
REG.register(ShapEImage)


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("shap_e")
    return {"text": build_tiny_shap_e(root), "image": build_tiny_shap_e_img(root)}


@pytest.fixture(scope="module")
def ex() -> Executor:
    """One executor (and model manager): each model loads once for the module."""
    return Executor(REG)


def _opts(tmp_path: Path) -> RunOptions:
    return RunOptions(output_dir=tmp_path / "out", base_dir=tmp_path, device="cpu")


def _pil() -> Any:
    from PIL import Image as PILImage

    return PILImage.fromarray((RGB * 255.0).round().astype(np.uint8))


def _reference(kind: str, folder: Path) -> Any:
    """The plain diffusers pipeline's mesh for the folder, at EQUAL's settings (its renderer
    decoding at GRID[kind], its default 128 for text)."""
    import functools

    from diffusers import ShapEImg2ImgPipeline, ShapEPipeline

    cls = ShapEImg2ImgPipeline if kind == "image" else ShapEPipeline
    pipe = cls.from_pretrained(folder, use_safetensors=True)
    pipe.set_progress_bar_config(disable=True)
    if GRID[kind] != 128:
        renderer = pipe.shap_e_renderer
        renderer.decode_to_mesh = functools.partial(renderer.decode_to_mesh, grid_size=GRID[kind])
    cond = _pil() if kind == "image" else PROMPT
    return pipe(
        cond,
        num_inference_steps=EQUAL["steps"],
        guidance_scale=EQUAL["guidance"],
        generator=torch.Generator("cpu").manual_seed(EQUAL["seed"]),
        output_type="mesh",
    ).images[0]


@pytest.mark.parametrize("kind", ["text", "image"])
def test_mesh_equals_the_diffusers_pipeline(
    kind: str, models: dict[str, Path], ex: Executor, tmp_path: Path
) -> None:
    """Vertices, faces and colours equal the pipeline's, in Shap-E's axes and (an exact
    quarter turn) in the studio's; runs from a graph with progress per model call."""
    ref = _reference(kind, models[kind])
    verts = ref.verts.numpy()
    faces = ref.faces.numpy()
    colors = color_bytes(np.stack([ref.vertex_channels[c].numpy() for c in "RGB"], 1))
    assert len(faces) > 100  # a real surface, not an empty grid
    g = Graph()
    if kind == "image":
        g.add_node("test.shap_e_image", "img", {})
        params = {"model": str(models[kind]), **EQUAL, "grid_size": GRID[kind]}
        g.add_node("generate.image_to_3d", "gen", params)
        g.connect("img", "image", "gen", "image")
    else:
        params = {"model": str(models[kind]), "prompt": PROMPT, **EQUAL}
        g.add_node("generate.text_to_3d", "gen", {**params, "axes": "shap-e"})
    rec = Recorder()
    res = ex.run(g, targets=["gen"], options=_opts(tmp_path), listener=rec)
    assert res.records["gen"].status == "executed", res.records["gen"].error
    mesh = res.values["gen"]["mesh"].mesh
    want = verts if kind == "text" else to_studio_axes(verts)
    assert np.array_equal(np.asarray(mesh.vertices, np.float32), want)
    assert np.array_equal(np.asarray(mesh.faces), faces)
    assert np.array_equal(np.asarray(mesh.visual.vertex_colors)[:, :3], colors)
    steps = [e.message for e in rec.events if e.kind == "node_progress" and "step" in e.message]
    assert steps == [f"step {i}/5" for i in range(1, 6)]  # Heun: 2 × 3 - 1 model calls
    front = res.values["gen"]["turntable"]  # turntable off: the front view, drawn on demand
    assert len(front) == 1 and front.frame(0).data.std() > 0.01
    files = res.records["gen"].model_files  # hashed into the run report and the cache key
    encoder = "image_encoder/model.safetensors" if kind == "image" else "text_encoder/model"
    assert any(encoder in f for f in files) and any("shap_e_renderer/" in f for f in files)


def test_studio_axes_are_an_exact_quarter_turn() -> None:
    """(x, y, z) -> (x, -z, y): up (+z) becomes -y, the front (-y) faces the camera on -z,
    lengths and handedness kept."""
    v = np.array([[0.0, 0.0, 1.0], [0.0, -1.0, 0.0], [0.3, 0.2, -0.7]], np.float32)
    s = to_studio_axes(v)
    assert np.array_equal(s[0], [0, -1, 0]) and np.array_equal(s[1], [0, 0, -1])
    basis = to_studio_axes(np.eye(3))
    assert np.isclose(np.linalg.det(basis), 1.0)
    assert np.allclose(np.linalg.norm(s, axis=1), np.linalg.norm(v, axis=1))


def test_turntable_has_its_frames_and_turns(models: dict[str, Path], ex: Executor) -> None:
    out = ex.call(
        "generate.text_to_3d", {}, {"model": str(models["text"]), "prompt": PROMPT, **QUICK}
    )
    video = out["turntable"]
    assert isinstance(video, Video) and len(video) == 6 and video.size == (48, 48)
    frames = np.stack([f.data for f in video])
    assert frames.shape == (6, 48, 48, 3)
    assert frames.std() > 0.01  # not a blank frame
    assert np.abs(frames[0] - frames[1]).mean() > 1e-3  # the view changes as it turns
    assert (frames[0] < 0.99).any(axis=-1).mean() > 0.05  # the object covers the frame centre
    assert isinstance(out["mesh"], Mesh) and len(out["mesh"].mesh.faces) > 100


def test_seed_and_prompt_change_the_object(models: dict[str, Path], ex: Executor) -> None:
    base = {"model": str(models["text"]), "turntable": False, **QUICK}

    def verts(**kw: Any) -> np.ndarray:
        out = ex.call("generate.text_to_3d", {}, {**base, "prompt": PROMPT, **kw})
        return np.asarray(out["mesh"].mesh.vertices)

    a = verts()
    assert np.array_equal(a, verts())  # deterministic
    assert a.shape != verts(seed=4).shape or not np.array_equal(a, verts(seed=4))
    assert a.shape != verts(prompt="a boat").shape or not np.array_equal(a, verts(prompt="a boat"))


def test_a_half_precision_only_download_loads(
    models: dict[str, Path], ex: Executor, tmp_path: Path
) -> None:
    """openai/shap-e keeps its safetensors as the fp16 variant only: such a folder loads (the
    variant is found) and makes the same object as the plain one."""
    from diffusers import ShapEPipeline

    fp16 = tmp_path / "fp16-only"
    pipe = ShapEPipeline.from_pretrained(models["text"], use_safetensors=True)
    pipe.save_pretrained(fp16, safe_serialization=True, variant="fp16")
    assert not list(fp16.glob("prior/*[!6].safetensors"))
    params = {"prompt": PROMPT, "turntable": False, **QUICK}
    got = ex.call("generate.text_to_3d", {}, {"model": str(fp16), **params})["mesh"].mesh
    want = ex.call("generate.text_to_3d", {}, {"model": str(models["text"]), **params})["mesh"]
    assert np.array_equal(got.vertices, want.mesh.vertices)


def test_wrong_family_is_refused_before_the_run(
    models: dict[str, Path], ex: Executor, tmp_path: Path
) -> None:
    """Each node names both families in the plan; a direct call names the port and the fix."""
    g = Graph()
    g.add_node("test.shap_e_image", "img", {})
    g.add_node("generate.image_to_3d", "gen", {"model": str(models["text"]), **QUICK})
    g.connect("img", "image", "gen", "image")
    with pytest.raises(GraphInvalid) as err:
        ex.plan(g, options=_opts(tmp_path))
    (problem,) = err.value.problems
    assert problem.port == "model"
    assert "Shap-E (text to 3D)" in problem.message and "Shap-E (image to 3D)" in problem.message
    g2 = Graph()
    g2.add_node("generate.text_to_3d", "gen", {"model": str(models["image"]), "prompt": "x"})
    with pytest.raises(GraphInvalid) as err:
        ex.plan(g2, options=_opts(tmp_path))
    assert [p.port for p in err.value.problems] == ["model"]
    assert "Shap-E (image to 3D)" in err.value.problems[0].message
    with pytest.raises(NodeError) as nerr:
        ex.call("generate.text_to_3d", {}, {"model": str(models["image"]), "prompt": "x", **QUICK})
    assert nerr.value.port == "model" and "openai/shap-e" in (nerr.value.fix or "")


def test_bad_inputs_name_the_port_and_the_fix(
    models: dict[str, Path], ex: Executor, tiny_sd: Path, tmp_path: Path
) -> None:
    with pytest.raises(NodeError) as nerr:
        ex.call("generate.text_to_3d", {}, {"model": str(models["text"]), "prompt": "  "})
    assert nerr.value.port == "prompt" and nerr.value.fix
    with pytest.raises(NodeError) as nerr:
        ex.call(
            "generate.image_to_3d",
            {"image": Image(np.zeros((1, 1, 3), np.float32))},
            {"model": str(models["image"])},
        )
    assert nerr.value.port == "image" and nerr.value.fix
    with pytest.raises(NodeError) as nerr:  # a Stable Diffusion folder is no Shap-E model
        ex.call("generate.text_to_3d", {}, {"model": str(tiny_sd), "prompt": "x"})
    assert nerr.value.port == "model" and "not Shap-E" in str(nerr.value)
    g = Graph()
    g.add_node("generate.text_to_3d", "gen", {"model": str(tiny_sd), "prompt": "x"})
    with pytest.raises(GraphInvalid) as err:
        ex.plan(g, options=_opts(tmp_path))
    assert "Stable Diffusion 1.x" in err.value.problems[0].message


def test_out_of_memory_while_decoding_names_the_grid(models: dict[str, Path]) -> None:
    ex = Executor(REG)  # its own manager: the fault goes into its copy of the model
    params = {"model": str(models["text"]), "prompt": PROMPT, **QUICK, "turntable": False}
    ex.call("generate.text_to_3d", {}, params)
    decoder = ex.models.entries()[-1].model.pipe.shap_e_renderer.mesh_decoder
    with out_of_memory(decoder), pytest.raises(NodeError) as nerr:
        ex.call("generate.text_to_3d", {}, params)
    assert nerr.value.port == "grid_size" and "lower grid_size" in (nerr.value.fix or "")


def test_cancel_stops_between_steps(models: dict[str, Path], tmp_path: Path) -> None:
    cancel, seen, listener = cancel_after_steps(1)

    g = Graph()
    g.add_node(
        "generate.text_to_3d", "gen", {"model": str(models["text"]), "prompt": PROMPT, **QUICK}
    )
    ex = Executor(REG)
    res = ex.run(g, targets=["gen"], options=_opts(tmp_path), listener=listener, cancel=cancel)
    assert res.records["gen"].status == "cancelled"
    assert seen == ["step 1/3"]


@pytest.mark.realweights
def test_real_shap_e_makes_an_object(ex: Executor) -> None:
    """With openai/shap-e downloaded (`fathom models pull openai/shap-e`): a prompt becomes a
    closed-looking coloured object that fills the turntable's frame centre."""
    params = {"model": "openai/shap-e", "prompt": "a red chair", "frames": 4, "frame_size": 128}
    out = ex.call("generate.text_to_3d", {}, {**params, "steps": 32, "grid_size": 96})
    mesh = out["mesh"].mesh
    assert len(mesh.faces) > 1000
    assert np.abs(mesh.vertices).max() <= 1.0 + 1e-6  # inside Shap-E's [-1, 1]³ box
    frame = out["turntable"].frame(0).data
    assert (frame[48:80, 48:80] < 0.99).any(axis=-1).mean() > 0.5
