"""Text to six views of one object (HexaGen3D's hexa-view, training-free): the node.

The six views (front, right, back, left, top, bottom) come from any Stable Diffusion 1.x, 2.x
or SDXL model through the studio's own loop. Jointly, they are one batch with self-attention
shared across views, starting noise laid out on a proxy sphere, latents synchronised through
that sphere and camera-aware prompts (``engine.diffusion.joint_views``); with ``joint`` off
they are six plain text-to-image runs (view k: its prompt and seed + k), the baseline the
joint run is measured against (``engine.geometry.consistency``).
"""

from __future__ import annotations

from typing import Any

from fathom.engine.context import NodeContext
from fathom.engine.generation import (
    ACCEL_PARAMS,
    SD15,
    ModelNode,
    accelerations,
    load_diffusion,
    prompt_params,
    run_generation,
    sampling_params,
)
from fathom.engine.node import Output, Param
from fathom.engine.types import Bool, Float, Image, Views


class _ViewProgress:
    """The node context with progress scaled to one view's share of the run (independent
    views run one by one); everything else is the node's own context."""

    def __init__(self, ctx: NodeContext, index: int, count: int) -> None:
        self._ctx, self._index, self._count = ctx, index, count

    def progress(self, fraction: float, message: str = "") -> None:
        done = (self._index + fraction) / self._count
        self._ctx.progress(done, f"view {self._index + 1}/{self._count}: {message}")

    def __getattr__(self, name: str) -> Any:
        return getattr(self._ctx, name)


class TextToViews(ModelNode):
    """Six views of one object from a prompt: front, right, back, left (a ring at eye level)
    and top and bottom, each with its camera (looking at the origin; the object fits a unit
    sphere). Joint (the default): the six are denoised as one batch whose self-attention spans
    all views, from noise laid out on a proxy sphere, with latents pulled together where they
    see the same point of it and per-view prompts ("<prompt>, front view", …), so they show
    the same object; `share` sets how strongly (0: independent, 1: strongest).
    Joint off: six separate generations (view k with seed + k), each equal to Text to Image.
    Any Stable Diffusion 1.x, 2.x or SDXL model; the joint run holds six images (twelve with
    guidance) in one batch, so it needs about six times one image's activation memory."""

    type_id = "generate.text_to_views"
    title = "Text to Views"
    category = "generate"
    main_params = ("prompt", "joint", "share", "seed")
    thread_safe = False  # the model (and the attention patched onto it) is shared
    outputs = (
        Output("views", Views, "the six views with their cameras"),
        Output("sheet", Image, "the views as a contact sheet (3 × 2)"),
    )
    params = (
        *prompt_params(SD15),
        *[p for p in sampling_params(256, 64) if p.name != "batch_size"],
        Param("joint", Bool, True, "generate the views together (off: one by one)"),
        Param(
            "share",
            Float,
            0.5,
            "joint: how strongly the views share noise and attention (0: not at all)",
            min=0,
            max=1,
            step=0.05,
        ),
        Param("fov", Float, 30.0, "the cameras' vertical field of view (degrees)", min=5, max=90),
        *ACCEL_PARAMS,
    )

    def run(
        self,
        ctx: NodeContext,
        model: str,
        prompt: str,
        negative_prompt: str,
        loras: str,
        steps: int,
        guidance: float,
        seed: int,
        width: int,
        height: int,
        scheduler: str,
        joint: bool,
        share: float,
        fov: float,
        **accel: Any,
    ) -> dict[str, Any]:
        from fathom.engine.diffusion import joint_views as jv

        comps = load_diffusion(ctx, model)
        prompts = jv.view_prompts(prompt)
        cameras = jv.view_cameras(width, height, fov)
        common = dict(
            negative_prompt=negative_prompt,
            loras=loras,
            steps=steps,
            guidance=guidance,
            width=width,
            height=height,
            scheduler=scheduler,
            batch_size=1,
        )
        if joint:
            f = comps.vae_scale_factor
            shape = (1, comps.latent_channels, height // f, width // f)
            dtype = comps.unet.dtype
            res = run_generation(
                ctx,
                comps,
                prompt=prompts,
                seed=seed,
                latents=jv.shared_noise(shape, seed, cameras, share, dtype),
                accel=[
                    jv.JointAttention(len(prompts), share),
                    jv.ProxySync(cameras, share),
                    *accelerations(ctx, seed, steps, **accel),
                ],
                **common,
            )
            rgb = list(res.images)
        else:
            rgb = []
            seeds = jv.view_seeds(seed, len(prompts))
            for k, (text, s) in enumerate(zip(prompts, seeds, strict=True)):
                res = run_generation(
                    _ViewProgress(ctx, k, len(prompts)),
                    comps,
                    prompt=text,
                    seed=s,
                    accel=accelerations(ctx, s, steps, **accel),
                    **common,
                )
                rgb.append(res.images[0])
        ctx.report(joint=joint, share=share if joint else 0.0, prompts=prompts)
        views = Views([Image(a[:, :, :3]) for a in rgb], cameras)
        return {"views": views, "sheet": views.contact_sheet(3)}
