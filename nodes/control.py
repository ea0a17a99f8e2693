"""Control nodes: a ControlNet with its control image, strength and step range, for the
generation nodes' ``control`` input (several chain into one generation)."""

from __future__ import annotations

from typing import Any

from fathom.engine.context import NodeContext
from fathom.engine.errors import Problem
from fathom.engine.node import Input, Node, Output, Param
from fathom.engine.types import Control, Float, Image, String


class ControlNet(Node):
    """Steer a generation with a ControlNet: the control image (a depth map from
    depth.control_image, edges from image.edges, a pose image...) is followed with `scale`
    strength from `start` to `end` of the denoising. Connect the output to a generation node's
    control input; several ControlNets on one node add up. The ControlNet must be made for the
    generation model's family (SD 1.5 or SDXL); it loads when the generation runs."""

    type_id = "generate.controlnet"
    title = "ControlNet"
    category = "generate"
    inputs = (Input("image", Image, "the control image (resized to the output size)"),)
    outputs = (Output("control", Control, "for a generation node's control input"),)
    params = (
        Param(
            "model",
            String,
            "lllyasviel/sd-controlnet-depth",
            "ControlNet folder, .safetensors file, Hugging Face id or a name in the models "
            "folders' controlnet/",
        ),
        Param("scale", Float, 1.0, "how strongly it steers", min=0, max=2, step=0.05),
        Param("start", Float, 0.0, "fraction of the steps where it starts", min=0, max=1),
        Param("end", Float, 1.0, "fraction of the steps where it stops", min=0, max=1),
    )

    @classmethod
    def check(cls, params: dict[str, Any], ctx: NodeContext) -> list[Problem]:
        from fathom.engine.models.families import identify
        from fathom.engine.models.locate import ModelError, locate_addon, locate_model

        if params["start"] >= params["end"]:
            return [
                Problem(
                    f"start {params['start']:g} is not before end {params['end']:g}, so the "
                    "ControlNet would never act.",
                    ctx.node_id,
                    "start",
                    "set start below end",
                )
            ]
        try:
            try:
                path = locate_addon(params["model"], "controlnet", ctx.options.base_dir)
            except ModelError:
                path = locate_model(params["model"], ctx.options.base_dir)
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
        self, ctx: NodeContext, image: Image, model: str, scale: float, start: float, end: float
    ) -> dict[str, Any]:
        from fathom.engine.models.locate import ModelError, locate_addon

        try:
            source = str(locate_addon(model, "controlnet", ctx.options.base_dir))
        except ModelError:
            source = str(ctx.resolve_path(model)) if ctx.resolve_path(model).exists() else model
        return {"control": Control(source, image, scale, start, end)}
