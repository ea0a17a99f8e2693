"""generate.novel_view: a new view of an object from one or more input views (Zero123 + VaLID).

Why a node of its own: novel-view models are conditioned on images and cameras, not prompts.
The node gathers the inputs (images with cameras, RGBDs, a view set), works out the target
camera (a connected Camera, or the first input's camera moved by elevation/azimuth/distance
about the object at the origin) and hands them to ``engine.diffusion.novel_view``, which
tokenises each view with its relative pose, pools the tokens to a fixed count, renders the
inputs' geometry where they carry depth and lets the model fill the rest.
"""

from __future__ import annotations

from typing import Any

from fathom.engine.context import NodeContext
from fathom.engine.generation import ModelNode, model_source
from fathom.engine.geometry.projection import orbit_pose
from fathom.engine.node import Input, Output, Param
from fathom.engine.types import RGBD, Bool, Camera, Float, Image, Int, Mask, Seed, String, Views

ZERO123 = "bennyguo/zero123-xl-diffusers"
#: The camera given to one input image that comes without one (Zero123 renders objects at
#: about this distance; only the relative pose reaches the model).
REFERENCE_DISTANCE = 2.0
REFERENCE_FOV = 40.0


class NovelView(ModelNode):
    """A new view of an object, Zero123-style: the input's CLIP embedding and the target's
    pose relative to it condition the denoiser, and the input's latents are concatenated with
    the noise. Several inputs (images with cameras, RGBDs or a view set) are each tokenised
    with their own relative pose and pooled into a fixed number of tokens, so each target view
    costs the same however many inputs there are. Inputs with metric depth are rendered into
    the target first and the model fills only what none of them saw. Cameras follow the
    studio's orbit convention: the object at the origin, azimuth 0 in front (-z), up is -y."""

    type_id = "generate.novel_view"
    title = "Novel View (Zero123)"
    category = "generate"
    thread_safe = False  # the model is shared
    families = ("zero123",)
    inpainting = None
    inputs = (
        Input("image", Image, "input view(s); several need `cameras`", optional=True, multi=True),
        Input("cameras", Camera, "the camera of each `image`, in order", optional=True, multi=True),
        Input("rgbd", RGBD, "input view(s) with depth and camera", optional=True, multi=True),
        Input("views", Views, "a view set (with depths when known)", optional=True),
        Input("camera", Camera, "the target camera (else elevation/azimuth/distance)", True),
    )
    outputs = (
        Output("image", Image, "the target view"),
        Output("camera", Camera, "the target camera"),
        Output("mask", Mask, "1 where the model made the pixels (no input's geometry reached)"),
    )
    params = (
        Param("model", String, ZERO123, "Zero123-family folder or Hugging Face id (downloaded)"),
        Param("elevation", Float, 0.0, "degrees above the first input's camera", min=-89, max=89),
        Param(
            "azimuth",
            Float,
            30.0,
            "degrees around the object from the first input",
            min=-360,
            max=360,
        ),
        Param("distance", Float, 0.0, "change of distance to the object", min=-100, max=100),
        Param("steps", Int, 50, "denoising steps", min=1, max=500),
        Param("guidance", Float, 3.0, "classifier-free guidance (<= 1: off)", min=0, max=20),
        Param("seed", Seed, 0, "noise seed: the same seed gives the same view on any device"),
        Param(
            "tokens", Int, 4, "conditioning tokens the input views are pooled into", min=1, max=64
        ),
        Param("use_depth", Bool, True, "render inputs with depth first; the model fills holes"),
    )

    def run(
        self,
        ctx: NodeContext,
        model: str,
        elevation: float,
        azimuth: float,
        distance: float,
        steps: int,
        guidance: float,
        seed: int,
        tokens: int,
        use_depth: bool,
        image: list[Image] | None = None,
        cameras: list[Camera] | None = None,
        rgbd: list[RGBD] | None = None,
        views: Views | None = None,
        camera: Camera | None = None,
    ) -> dict[str, Any]:
        from fathom.engine.diffusion import novel_view as nv

        inputs = gather_inputs(ctx, image or [], cameras or [], rgbd or [], views)
        target = camera or self._target(ctx, inputs[0].camera, elevation, azimuth, distance)
        for port, v in (("width", target.width), ("height", target.height)):
            if v % 8:
                raise ctx.error(
                    f"the target camera's {port} {v} is not a multiple of 8 (the VAE works on "
                    "8×8 blocks)",
                    port="camera" if camera is not None else "image",
                    fix="resize the input (Zero123 was trained at 256×256) or the camera",
                )
        m = self._load(ctx, model)
        ctx.progress(0.05, "encoding the input views")

        def on_step(i: int, n: int) -> None:
            ctx.check_cancelled()
            ctx.progress(0.05 + 0.9 * i / n, f"step {i}/{n}")

        s = nv.Sampling(target.width, target.height, steps, guidance, seed)
        try:
            rgb, made = nv.novel_view(m, inputs, target, s, tokens, use_depth, on_step)
        except ValueError as exc:  # relative depth cannot be rendered from another camera
            raise ctx.error(
                str(exc),
                port="rgbd" if rgbd else "views",
                fix="convert the depth to metric (depth.to_metric), or set use_depth off",
            ) from None
        ctx.report(device=m.device, inputs=len(inputs), tokens=tokens, steps=steps)
        return {"image": Image(rgb), "camera": target, "mask": Mask(made)}

    @staticmethod
    def _target(
        ctx: NodeContext, ref: Camera, elevation: float, azimuth: float, distance: float
    ) -> Camera:
        from fathom.engine.diffusion.novel_view import target_pose

        try:
            pose = target_pose(ref.pose, elevation, azimuth, distance)
        except ValueError as exc:
            raise ctx.error(
                str(exc), port="distance", fix="raise distance (it is relative to the input's)"
            ) from None
        return Camera(ref.fx, ref.fy, ref.cx, ref.cy, ref.width, ref.height, pose)

    @staticmethod
    def _load(ctx: NodeContext, model: str) -> Any:
        from fathom.engine.models import ModelError
        from fathom.engine.models.zero123 import EXAMPLE, KIND, loader

        ctx.check_cancelled()
        ctx.progress(0.0, "loading model")
        try:
            return ctx.load_model(
                KIND, model_source(ctx, model), loader(ctx.device.torch_device, ctx.device.dtype)
            )
        except ModelError as exc:
            raise ctx.error(
                str(exc), port="model", fix=f"use a Zero123-family folder, e.g. {EXAMPLE}"
            ) from None


def gather_inputs(
    ctx: NodeContext,
    images: list[Image],
    cameras: list[Camera],
    rgbds: list[RGBD],
    views: Views | None,
) -> list[Any]:
    """Every input view with its camera (and depth), in port order: image, rgbd, views."""
    from fathom.engine.diffusion.novel_view import InputView

    total = len(images) + len(rgbds) + (len(views) if views is not None else 0)
    if total == 0:
        raise ctx.error(
            "no input view", port="image", fix="connect an image, an rgbd or a views input"
        )
    if cameras and len(cameras) != len(images):
        raise ctx.error(
            f"{len(images)} images but {len(cameras)} cameras",
            port="cameras",
            fix="connect one camera per image, in the same order",
        )
    out = []
    for k, im in enumerate(images):
        if cameras:
            cam = cameras[k]
        elif total == 1:
            cam = Camera.from_fov(im.width, im.height, REFERENCE_FOV)
            cam.pose = orbit_pose(0.0, 0.0, REFERENCE_DISTANCE)
        else:
            raise ctx.error(
                "several input views need their cameras",
                port="cameras",
                fix="connect a camera per image, or use rgbd or views inputs",
            )
        out.append(InputView(im, cam))
    for k, r in enumerate(rgbds):
        if r.camera is None:
            raise ctx.error(
                f"rgbd input {k + 1} carries no camera",
                port="rgbd",
                fix="connect a camera to its rgbd.make node so its pose is known",
            )
        out.append(InputView(r.image, r.camera, r.depth))
    if views is not None:
        depths = views.depths or [None] * len(views)
        out += [
            InputView(i, c, d) for i, c, d in zip(views.images, views.cameras, depths, strict=True)
        ]
    return out
