"""One image to a ring of six views in one sampling pass (Zero123++), for lifting to 3-D.

The model loads through the model manager (``engine.models.zero123pp``, safetensors, no remote
code); the sampling is Fathom's own (``engine.diffusion.views_sampler``): the six views are
tiled into one sheet and denoised together while every self-attention layer also attends to
the input image run through the same UNet (reference attention).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from fathom.engine.context import NodeContext
from fathom.engine.errors import Problem
from fathom.engine.generation import ModelNode, load_folder_model
from fathom.engine.node import Input, Output, Param
from fathom.engine.types import Bool, Enum, Float, Image, Int, Seed, String, Views


class ImageToViews(ModelNode):
    """Turn one picture of an object into six views around it (Zero123++): azimuths 30° to
    330° in 60° steps from the picture's own view, elevations alternating 20° and −10° (v1.1:
    30° and −20°). An image with alpha is matted, centred and put on grey as the model
    expects; one without is used as it is (cut the object out first for best results). The
    views come with their cameras (the input's camera is the front, azimuth 0) for
    mesh.from_views, and as the tiled sheet the model made. Noise comes from CPU generators,
    so a seed gives the same views on any device."""

    type_id = "generate.image_to_views"
    title = "Image to Views (Zero123++)"
    category = "generate"
    thread_safe = False  # the model (and its reference bank) is shared
    families = ("zero123pp",)
    inpainting = None
    inputs = (Input("image", Image, "the object, ideally cut out (with alpha) and square"),)
    outputs = (
        Output("views", Views, "the six views with their cameras"),
        Output("sheet", Image, "the six views as the model tiles them (2 wide, 3 tall)"),
    )
    params = (
        Param(
            "model",
            String,
            "sudo-ai/zero123plus-v1.2",
            "Zero123++ folder or Hugging Face id (already downloaded: `fathom models pull ID`)",
        ),
        Param("seed", Seed, 0, "noise seed: the same seed gives the same views on any device"),
        Param("steps", Int, 28, "denoising steps (75 or more for fine detail)", min=1, max=500),
        Param("guidance", Float, 4.0, "classifier-free guidance (<= 1: off)", min=0, max=20),
        Param(
            "reference",
            Bool,
            True,
            "attend to the input through the UNet (reference attention); off leaves only the "
            "CLIP image embedding as the condition",
        ),
        Param(
            "camera_set",
            Enum,
            "v1.2",
            "the model version's fixed elevations: v1.2 20°/−10°, v1.1 30°/−20°",
            choices=("v1.2", "v1.1"),
        ),
        Param(
            "view_size",
            Int,
            320,
            "pixels per view (the model was trained at 320)",
            min=16,
            max=1024,
            step=8,
        ),
    )

    @classmethod
    def check(cls, params: dict[str, Any], ctx: NodeContext) -> list[Problem]:
        problems = super().check(params, ctx)
        size = params.get("view_size", 320)
        if isinstance(size, int) and size % 8:
            problems.append(
                Problem(
                    f"view_size {size} is not a multiple of 8 (the VAE works on 8×8 blocks)",
                    ctx.node_id,
                    "view_size",
                    f"use {max(8, size // 8 * 8)} or {size // 8 * 8 + 8}",
                )
            )
        return problems

    def run(
        self,
        ctx: NodeContext,
        image: Image,
        model: str,
        seed: int,
        steps: int,
        guidance: float,
        reference: bool,
        camera_set: str,
        view_size: int,
    ) -> dict[str, Any]:
        import torch

        from fathom.engine.diffusion import views_sampler as vs
        from fathom.engine.geometry.projection import ring_cameras
        from fathom.engine.models.zero123pp import settle

        try:
            rgb, prepared = vs.condition_image(image.data)
        except ValueError as exc:
            raise ctx.error(
                str(exc), port="image", fix="give an image whose alpha covers the object"
            ) from None
        m = self._load(ctx, model)
        try:
            vs.latent_shape(m, view_size)
        except ValueError as exc:
            factor = 2 ** (len(m.vae.config.block_out_channels) - 1)
            raise ctx.error(
                str(exc), port="view_size", fix=f"use a multiple of {factor}, e.g. 320"
            ) from None

        def on_step(i: int, total: int) -> None:
            ctx.check_cancelled()
            ctx.progress(0.05 + 0.9 * i / total, f"step {i}/{total}")

        ref_gen = torch.Generator("cpu").manual_seed(seed + 1)
        try:
            cond = vs.condition(m, rgb, guidance, reference, ref_gen)
            latents = vs.sample_views(
                m,
                cond,
                view_size,
                steps,
                guidance,
                torch.Generator("cpu").manual_seed(seed),
                ref_gen,
                on_step,
            )
            sheet = vs.decode_sheet(m, latents)
        finally:
            settle(m)
        ring = vs.RINGS[camera_set]
        cams = ring_cameras(
            list(ring.azimuths),
            list(ring.elevations),
            ring.distance,
            ring.fov,
            (view_size, view_size),
        )
        views = [Image(v) for v in vs.untile_views(sheet)]
        ctx.report(
            device=m.device,
            dtype=str(m.dtype).replace("torch.", ""),
            offload=m.offload,
            steps=steps,
            reference=reference,
            input=prepared,
            camera_set=camera_set,
        )
        return {"views": Views(views, cams), "sheet": Image(np.ascontiguousarray(sheet))}

    @staticmethod
    def _load(ctx: NodeContext, model: str) -> Any:
        from fathom.engine.models.zero123pp import EXAMPLE, KIND, loader

        return load_folder_model(
            ctx, model, KIND, loader, f"use a Zero123++ folder, e.g. {EXAMPLE}"
        )
