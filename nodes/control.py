"""Control nodes: a ControlNet with its control image, strength and step range, for the
generation nodes' ``control`` input, and an IP-Adapter with its reference image (an image as
a prompt) for their ``image_prompt`` input; several of each chain into one generation."""

from __future__ import annotations

from typing import Any

from fathom.engine.context import NodeContext
from fathom.engine.errors import Problem
from fathom.engine.node import Input, Node, Ordered, Output, Param
from fathom.engine.types import Control, Float, Image, ImagePrompt, String, Video


class ControlNet(Node):
    """Steer a generation with a ControlNet: the control image (a depth map from
    depth.control_image, edges from image.edges, a pose image...) is followed with `scale`
    strength from `start` to `end` of the denoising. Connect the output to a generation node's
    control input; several ControlNets on one node add up. For generate.stream, connect control
    frames to `video` (e.g. video.map running image.edges on the input clip): each output frame
    follows its own. The ControlNet must be made for the generation model's family (SD 1.5 or
    SDXL); it loads when the generation runs."""

    type_id = "generate.controlnet"
    title = "ControlNet"
    category = "generate"
    inputs = (
        Input("image", Image, "the control image (resized to the output size)", optional=True),
        Input(
            "video",
            Video,
            "control frames for a stream: frame i steers output frame i",
            optional=True,
        ),
    )
    outputs = (Output("control", Control, "for a generation node's control input"),)
    params = (
        Param(
            "model",
            String,
            "lllyasviel/sd-controlnet-depth",
            "ControlNet folder, .safetensors file, Hugging Face id or a name in the models "
            "folders' controlnet/",
            suggest="controlnet",
        ),
        Param("scale", Float, 1.0, "how strongly it steers", min=0, max=2, step=0.05),
        Param("start", Float, 0.0, "fraction of the steps where it starts", min=0, max=1),
        Param("end", Float, 1.0, "fraction of the steps where it stops", min=0, max=1),
    )
    constraints = (Ordered("start", "end", why="the ControlNet would never act"),)

    @classmethod
    def check(cls, params: dict[str, Any], ctx: NodeContext) -> list[Problem]:
        from fathom.engine.models.families import identify
        from fathom.engine.models.locate import ModelError, locate_kind

        try:
            path = locate_kind(params["model"], "controlnet", ctx.options.base_dir)
            info = identify(path)
        except ModelError as exc:
            return [Problem(str(exc), ctx.node_id, "model")]
        if info.kind != "controlnet":
            return [
                Problem(
                    f"{path.name} is {info.title} {info.kind}, not a ControlNet.",
                    ctx.node_id,
                    "model",
                    "choose a ControlNet folder or file",
                )
            ]
        return []

    def run(
        self,
        ctx: NodeContext,
        model: str,
        scale: float,
        start: float,
        end: float,
        image: Image | None = None,
        video: Video | None = None,
    ) -> dict[str, Any]:
        from fathom.engine.models.locate import ModelError, locate_addon

        if image is None and (video is None or len(video) == 0):
            raise ctx.error(
                "no control image", port="image", fix="connect a control image (or video)"
            )
        still = image if image is not None else video.frame(0)  # type: ignore[union-attr]
        try:
            source = str(locate_addon(model, "controlnet", ctx.options.base_dir))
        except ModelError:
            source = str(ctx.resolve_path(model)) if ctx.resolve_path(model).exists() else model
        return {"control": Control(source, still, scale, start, end, video)}


class IPAdapter(Node):
    """Use an image as a prompt with an IP-Adapter: the reference image's CLIP embedding steers
    the generation with `scale` strength, beside the text prompt. The adapter file is looked up
    as given or in the models folders' ipadapter/; its CLIP image encoder sits in the
    image_encoder/ folder beside it (the h94/IP-Adapter layout). The adapter must be made for
    the generation model's family (SD 1.5 or SDXL)."""

    type_id = "generate.ip_adapter"
    title = "IP-Adapter (image prompt)"
    category = "generate"
    inputs = (Input("image", Image, "the reference image"),)
    outputs = (Output("image_prompt", ImagePrompt, "for a generation node's image_prompt input"),)
    params = (
        Param(
            "model",
            String,
            "ip-adapter_sd15",
            "IP-Adapter .safetensors file or a name in the models folders' ipadapter/",
            suggest="ip-adapter",
        ),
        Param("scale", Float, 0.6, "how strongly the image steers", min=0, max=2, step=0.05),
    )

    @classmethod
    def check(cls, params: dict[str, Any], ctx: NodeContext) -> list[Problem]:
        from fathom.engine.models.families import identify
        from fathom.engine.models.locate import ModelError, locate_kind

        try:
            path = locate_kind(params["model"], "ip-adapter", ctx.options.base_dir)
            info = identify(path)
        except ModelError as exc:
            return [Problem(str(exc), ctx.node_id, "model")]
        if info.kind != "ip-adapter":
            return [
                Problem(
                    f"{path.name} is {info.title} {info.kind}, not an IP-Adapter.",
                    ctx.node_id,
                    "model",
                    "choose an IP-Adapter .safetensors file",
                )
            ]
        if not (path.parent / "image_encoder" / "config.json").is_file():
            return [
                Problem(
                    f"{path.name} has no image_encoder/ folder beside it.",
                    ctx.node_id,
                    "model",
                    "put the adapter's CLIP image encoder folder beside it, as the "
                    "h94/IP-Adapter repositories do",
                )
            ]
        return []

    def run(self, ctx: NodeContext, image: Image, model: str, scale: float) -> dict[str, Any]:
        from fathom.engine.models.locate import ModelError, locate_addon

        try:
            path = locate_addon(model, "ip-adapter", ctx.options.base_dir)
        except ModelError as exc:
            raise ctx.error(str(exc), port="model") from None
        return {"image_prompt": ImagePrompt(str(path), image, scale)}
