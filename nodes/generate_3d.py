"""Text and image to 3D with Shap-E: a vertex-coloured mesh and a turntable video of it.

The model loads through the model manager (``engine.models.shap_e``); the prior's denoising
and the mesh decode run in ``engine.diffusion.shap_e``, which follows diffusers' Shap-E
pipelines step for step (so the mesh equals theirs for the same seed) while reporting each
step and stopping on cancel. The turntable is drawn by the studio's own renderer
(``engine.geometry.scene``) at Shap-E's preview framing.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import numpy as np

from fathom.engine.context import NodeContext
from fathom.engine.errors import LibraryError
from fathom.engine.generation import (
    ModelNode,
    guidance_param,
    load_folder_model,
)
from fathom.engine.node import Input, Output, Param
from fathom.engine.types import Bool, Enum, Float, Image, Int, Mesh, Seed, String, Video

AXES = ("studio", "shap-e")
OUTPUTS = (
    Output("mesh", Mesh, "the object, with vertex colours from the decoder's colour channels"),
    Output(
        "turntable",
        Video,
        "the mesh rendered all around (turntable off: the front view, one frame)",
    ),
)


def common_params(model: str, guidance: float) -> tuple[Param, ...]:
    """Model, sampling, mesh and turntable parameters both nodes take."""
    return (
        Param(
            "model",
            String,
            model,
            "Shap-E diffusers folder or Hugging Face id (already downloaded: "
            "`fathom models pull ID`)",
            suggest="models",
        ),
        Param("seed", Seed, 0, "noise seed: the same seed gives the same object on any device"),
        Param("steps", Int, 64, "denoising steps (Shap-E's default: 64)", min=1, max=1000),
        guidance_param(guidance),
        Param(
            "grid_size",
            Int,
            128,
            "mesh resolution: the marching-cubes grid per side over the object's box "
            "(diffusers' pipeline: 128, about 1 GB while decoding; 256: about 8 GB)",
            min=16,
            max=256,
        ),
        Param(
            "axes",
            Enum,
            "studio",
            "studio: the studio's frame (up is -y, front toward -z); shap-e: the model's own "
            "(z up, front toward -y), vertex for vertex diffusers' mesh",
            choices=AXES,
        ),
        Param("turntable", Bool, True, "render the turntable video (off: one front view)"),
        Param("frames", Int, 24, "turntable frames, evenly all around", min=1, max=720),
        Param(
            "frame_size",
            Int,
            256,
            "turntable frame width and height in pixels (the renderer's resolution)",
            min=16,
            max=4096,
        ),
        Param("fps", Float, 12.0, "turntable frames per second", min=1, max=120),
    )


class _ShapENode(ModelNode):
    """What both Shap-E nodes share: loading, sampling, decoding, the turntable."""

    category = "generate"
    thread_safe = False  # the model (and its renderer's weights, set per object) is shared
    inpainting = None
    outputs = OUTPUTS
    image_input = False

    def _load(self, ctx: NodeContext, model: str) -> Any:
        from fathom.engine.models.shap_e import IMAGE_EXAMPLE, KIND, TEXT_EXAMPLE, loader

        example = IMAGE_EXAMPLE if self.image_input else TEXT_EXAMPLE
        m = load_folder_model(ctx, model, KIND, loader, f"use a Shap-E folder, e.g. {example}")
        if m.image != self.image_input:
            want, got = ("an image", "a text") if self.image_input else ("a text", "an image")
            raise ctx.error(
                f"{model} is {got}-to-3D Shap-E model; this node needs {want}-to-3D one",
                port="model",
                fix=f"use {example}",
            )
        return m

    def _object(self, ctx: NodeContext, m: Any, cond: Any, p: dict[str, Any]) -> Mesh:
        """Denoise (progress per model call, cancel between them) and decode the mesh."""
        import torch
        import trimesh

        from fathom.engine.diffusion import shap_e
        from fathom.engine.models.memory import is_oom

        def on_step(i: int, n: int) -> None:
            ctx.check_cancelled()
            ctx.progress(0.05 + 0.75 * (i + 1) / n, f"step {i + 1}/{n}")

        try:
            with torch.inference_mode():
                gen = torch.Generator("cpu").manual_seed(p["seed"])
                latent = shap_e.sample(
                    m.pipe, cond, p["steps"], p["guidance"], gen, m.device, on_step
                )
                ctx.progress(0.8, f"decoding the mesh on a {p['grid_size']}³ grid")
                decoded = shap_e.decode_mesh(m.pipe, latent, m.device, p["grid_size"])
        except LibraryError as exc:
            raise ctx.refuse(exc) from None
        except Exception as exc:
            if not is_oom(exc):
                raise
            raise ctx.error(
                f"ran out of {m.device} memory making the object on a {p['grid_size']}³ grid",
                port="grid_size",
                fix="lower grid_size (128 needs about 1 GB while decoding) or free memory",
            ) from None
        finally:
            m.pipe.maybe_free_model_hooks()
        verts = decoded.vertices
        if p["axes"] == "studio":
            verts = shap_e.to_studio_axes(verts)
        mesh = trimesh.Trimesh(
            verts, decoded.faces, vertex_colors=shap_e.color_bytes(decoded.colors), process=False
        )
        ctx.report(
            device=m.device,
            dtype=str(m.dtype).replace("torch.", ""),
            offload=m.offload,
            steps=p["steps"],
            vertices=len(mesh.vertices),
            faces=len(mesh.faces),
        )
        return Mesh(mesh)

    def _outputs(self, ctx: NodeContext, m: Any, cond: Any, p: dict[str, Any]) -> dict[str, Any]:
        mesh = self._object(ctx, m, cond, p)
        draw = frame_renderer(ctx, mesh, p, p["frames"] if p["turntable"] else 1)
        size = (p["frame_size"], p["frame_size"])
        if not p["turntable"]:  # the front view, drawn only when something looks at it
            front = functools.cache(draw)
            return {"mesh": mesh, "turntable": Video(1, p["fps"], front, size, "shap-e")}
        images: list[Image] = []
        for k in range(p["frames"]):
            ctx.check_cancelled()
            images.append(draw(k))
            ctx.progress(0.85 + 0.15 * (k + 1) / p["frames"], f"turntable frame {k + 1}")
            if k == 0:
                ctx.preview(images[0], "turntable")
        return {"mesh": mesh, "turntable": Video(len(images), p["fps"], images.__getitem__, size)}


def frame_renderer(
    ctx: NodeContext, mesh: Mesh, p: dict[str, Any], frames: int
) -> Callable[[int], Image]:
    """Frame k of ``frames`` around the mesh, lit from the camera, on white (Shap-E's preview
    background), drawn by the studio's renderer on the run's GPU or the CPU."""
    from fathom.engine.diffusion.shap_e import shade, to_studio_axes, turntable_cameras
    from fathom.engine.geometry import scene

    tm = mesh.mesh
    verts = np.asarray(tm.vertices, np.float32)
    normals = np.asarray(tm.vertex_normals, np.float32)
    if p["axes"] != "studio":
        verts, normals = to_studio_axes(verts), to_studio_axes(normals)
    colors = np.asarray(tm.visual.vertex_colors, np.float32)[:, :3] / 255.0
    faces = np.asarray(tm.faces, np.int64)
    device = ctx.device.torch_device if ctx.device.kind == "cuda" else "cpu"
    cams = turntable_cameras(frames, p["frame_size"])

    def draw(k: int) -> Image:
        sc = scene.RenderScene(verts, faces, shade(colors, normals, cams[k]))
        out, _ = scene.render(sc, cams[k], "auto", device, (1.0, 1.0, 1.0))
        return Image(np.ascontiguousarray(out.image, np.float32))

    return draw


class TextTo3D(_ShapENode):
    """Make a 3D object from a prompt with Shap-E (diffusers' Shap-E text pipeline, step for
    step): a vertex-coloured mesh and a turntable video. Needs a Shap-E text-to-3D folder
    (openai/shap-e): about 1.3 GB in half precision on a GPU, 2.7 GB in float32 on CPU, plus
    about 1 GB while decoding the mesh at grid_size 128."""

    type_id = "generate.text_to_3d"
    title = "Text to 3D (Shap-E)"
    families = ("shap-e",)
    params = (
        Param("prompt", String, "", "the object to make", multiline=True),
        *common_params("openai/shap-e", 15.0),
    )

    def run(self, ctx: NodeContext, prompt: str, model: str, **p: Any) -> dict[str, Any]:
        import torch

        from fathom.engine.diffusion.shap_e import encode_text

        if not prompt.strip():
            raise ctx.error(
                "the prompt is empty", port="prompt", fix="describe the object, e.g. 'a red chair'"
            )
        m = self._load(ctx, model)
        with torch.inference_mode():
            cond = encode_text(m.pipe, prompt, m.device, p["guidance"] > 1.0)
        return self._outputs(ctx, m, cond, p)


class ImageTo3D(_ShapENode):
    """Make a 3D object from one picture of it with Shap-E (diffusers' Shap-E image pipeline,
    step for step): a vertex-coloured mesh and a turntable video. Needs a Shap-E image-to-3D
    folder (openai/shap-e-img2img): about 1.7 GB in half precision on a GPU, 3.4 GB in float32
    on CPU, plus about 1 GB while decoding at grid_size 128. Works best on one object on a
    plain background."""

    type_id = "generate.image_to_3d"
    title = "Image to 3D (Shap-E)"
    families = ("shap-e-image",)
    image_input = True
    inputs = (Input("image", Image, "a picture of the object"),)
    params = common_params("openai/shap-e-img2img", 3.0)

    def run(self, ctx: NodeContext, image: Image, model: str, **p: Any) -> dict[str, Any]:
        import torch
        from PIL import Image as PILImage

        from fathom.engine.diffusion.shap_e import encode_image

        if image.width < 2 or image.height < 2:
            raise ctx.error(
                f"the image is {image.width}×{image.height}: too small to see an object",
                port="image",
                fix="connect a picture of the object (at least a few pixels each way)",
            )
        rgb8 = (np.clip(image.rgb(), 0.0, 1.0) * 255.0).round().astype(np.uint8)
        m = self._load(ctx, model)
        with torch.inference_mode():
            cond = encode_image(m.pipe, PILImage.fromarray(rgb8), m.device, p["guidance"] > 1.0)
        return self._outputs(ctx, m, cond, p)
