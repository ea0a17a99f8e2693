"""File nodes: load and save images and depth maps (PNG, JPEG, WebP, 16-bit PNG, EXR, .npy)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from fathom.engine.context import NodeContext
from fathom.engine.errors import FileProblem, Problem
from fathom.engine.fileio import atomic_path
from fathom.engine.imaging.codecs import (
    DEPTH_SUFFIXES,
    GRAPH_KEY,
    depth_to_png16,
    read_depth,
    read_image,
    save_target,
    write_exr,
    write_image,
)
from fathom.engine.node import Input, Node, Output, Param
from fathom.engine.types import (
    Any_,
    Bool,
    Depth,
    Enum,
    Float,
    Image,
    InputFile,
    Int,
    Mask,
    OutputFile,
    String,
)


class LoadImage(Node):
    """Read an image file: PNG (8- or 16-bit), JPEG, WebP, or EXR when the OpenEXR library is
    installed. Outputs the image in [0, 1] (16-bit scaled from 65535, EXR clipped), its alpha
    as a mask (all ones when there is none), and its size. Camera rotation tags are applied."""

    type_id = "image.load"
    title = "Load Image"
    category = "io"
    main_params = ("path",)
    outputs = (
        Output("image", Image, "pixels in [0, 1]; alpha kept when the file has it"),
        Output("mask", Mask, "the alpha channel, or all ones"),
        Output("width", Int, "width in pixels"),
        Output("height", Int, "height in pixels"),
    )
    params = (
        Param(
            "path",
            InputFile,
            "image.png",
            "image file (relative: from the graph's folder)",
            suffixes=(".png", ".jpg", ".jpeg", ".webp", ".exr", ".bmp", ".tif", ".tiff"),
        ),
    )
    opens = (".png", ".jpg", ".jpeg", ".webp", ".exr", ".bmp", ".tif", ".tiff")

    def run(self, ctx: NodeContext, path: str) -> dict[str, Any]:
        try:
            data = read_image(ctx.resolve_path(path))
        except FileProblem as exc:
            raise ctx.refuse(exc) from None
        h, w = data.shape[:2]
        mask = data[:, :, 3] if data.shape[2] == 4 else np.ones((h, w), np.float32)
        return {"image": Image(data), "mask": Mask(mask), "width": w, "height": h}


class SaveImage(Node):
    """Write an image as PNG, JPEG, WebP or EXR, atomically (a failed save leaves the old file).
    PNG can be 16-bit and carries the graph under the text key `fathom.graph`, so the picture
    reopens as the graph that made it. JPEG drops alpha; WebP quality 100 is lossless."""

    type_id = "image.save"
    title = "Save Image"
    category = "io"
    main_params = ("path", "format")
    is_output = True
    inputs = (Input("image", Image, "image to write"),)
    outputs = (Output("path", String, "the file written"),)
    params = (
        Param(
            "path",
            OutputFile,
            "image.png",
            "file to write (relative: in the run's output "
            "folder); without a suffix, the format's is added",
        ),
        Param(
            "format",
            Enum,
            "auto",
            "file format; auto follows the path's suffix",
            choices=("auto", "png", "jpeg", "webp", "exr"),
        ),
        Param(
            "quality",
            Int,
            95,
            "JPEG/WebP quality (WebP 100 = lossless); PNG ignores it",
            min=1,
            max=100,
        ),
        Param("bit_depth", Enum, "8", "bits per channel; 16 only for PNG", choices=("8", "16")),
        Param("embed_graph", Bool, True, "store the graph in the PNG (key fathom.graph)"),
    )

    @classmethod
    def check(cls, params: dict[str, Any], ctx: NodeContext) -> list[Problem]:
        try:
            save_target(params["path"], params["format"], params["bit_depth"])
        except FileProblem as exc:
            return [Problem(str(exc), ctx.node_id, exc.port, exc.fix)]
        return []

    def run(
        self,
        ctx: NodeContext,
        image: Image,
        path: str,
        format: str,
        quality: int,
        bit_depth: str,
        embed_graph: bool,
    ) -> dict[str, Any]:
        try:
            fmt, name = save_target(path, format, bit_depth)
            target = ctx.output_path(name)
            graph = ctx.options.graph_json
            text = {GRAPH_KEY: graph} if embed_graph and graph and fmt == "png" else {}
            write_image(target, image.data, fmt, quality, int(bit_depth), text)
        except FileProblem as exc:
            raise ctx.refuse(exc) from None
        except OSError as exc:
            raise ctx.error(
                f"could not write {path}: {exc}",
                port="path",
                fix="check free disk space and folder permissions",
            ) from None
        ctx.record_file(target)
        return {"path": str(target)}


class LoadDepth(Node):
    """Read a depth map. 16-bit PNG: depth = stored value / `scale` (the default 1000 reads
    millimetres as metres; 0 = no depth). EXR (float32, needs OpenEXR) and .npy keep the
    stored values as they are."""

    type_id = "depth.load"
    title = "Load Depth"
    category = "io"
    main_params = ("path", "kind")
    outputs = (Output("depth", Depth, "float32 depth; <= 0 marks no depth"),)
    params = (
        Param(
            "path",
            InputFile,
            "depth.png",
            "depth file: .png, .exr or .npy",
            suffixes=DEPTH_SUFFIXES,
        ),
        Param(
            "kind",
            Enum,
            "metric",
            "metric (metres) or relative (only ordered)",
            choices=("relative", "metric"),
        ),
        Param(
            "scale",
            Float,
            1000.0,
            "PNG only: stored units per metre (1000 = millimetres)",
            min=1e-6,
            max=1e9,
        ),
    )
    opens = (".npy",)

    def run(self, ctx: NodeContext, path: str, kind: str, scale: float) -> dict[str, Any]:
        try:
            data = read_depth(ctx.resolve_path(path), scale)
        except FileProblem as exc:
            raise ctx.refuse(exc) from None
        return {"depth": Depth(data, kind=kind)}


class SaveDepth(Node):
    """Write a depth map, atomically. .png: 16-bit, stored = round(depth × `scale`) with 0 for
    missing depth (default 1000: metres stored as millimetres, up to 65.535 m); too-far depth
    is an error, never clipped. .exr (float32, needs OpenEXR) and .npy keep full precision."""

    type_id = "depth.save"
    title = "Save Depth"
    category = "io"
    main_params = ("path",)
    is_output = True
    inputs = (Input("depth", Depth, "depth to write"),)
    outputs = (Output("path", String, "the file written"),)
    params = (
        Param(
            "path",
            OutputFile,
            "depth.png",
            "file to write: .png, .exr or .npy (relative: in the run's output folder)",
        ),
        Param(
            "scale",
            Float,
            1000.0,
            "PNG only: stored units per metre (1000 = millimetres)",
            min=1e-6,
            max=1e9,
        ),
    )

    @classmethod
    def check(cls, params: dict[str, Any], ctx: NodeContext) -> list[Problem]:
        if Path(params["path"]).suffix.lower() not in DEPTH_SUFFIXES:
            return [
                Problem(
                    "depth is saved as .png, .exr or .npy.",
                    ctx.node_id,
                    "path",
                    "end the path with .png, .exr or .npy",
                )
            ]
        return []

    def run(self, ctx: NodeContext, depth: Depth, path: str, scale: float) -> dict[str, Any]:
        target = ctx.output_path(path)
        suffix = target.suffix.lower()
        if suffix not in DEPTH_SUFFIXES:
            raise ctx.error(
                "depth is saved as .png, .exr or .npy.",
                port="path",
                fix="end the path with .png, .exr or .npy",
            )
        try:
            if suffix == ".png":
                import cv2

                ok, buf = cv2.imencode(
                    ".png", depth_to_png16(depth.data, scale, depth.kind == "relative")
                )
                if not ok:
                    raise FileProblem("OpenCV could not encode the depth PNG.", "save as .npy")
            with atomic_path(target) as tmp:
                if suffix == ".png":
                    tmp.write_bytes(buf.tobytes())
                elif suffix == ".exr":
                    write_exr(tmp, depth.data, gray_name="Z")
                else:
                    with open(tmp, "wb") as fh:
                        np.save(fh, depth.data.astype(np.float32), allow_pickle=False)
        except FileProblem as exc:
            raise ctx.refuse(exc) from None
        except OSError as exc:
            raise ctx.error(
                f"could not write {path}: {exc}",
                port="path",
                fix="check free disk space and folder permissions",
            ) from None
        ctx.record_file(target)
        return {"path": str(target)}


class PreviewShow(Node):
    """Show any value in the GUI's preview (and the terminal's run log). Outputs nothing."""

    type_id = "preview.show"
    title = "Preview"
    category = "io"
    main_params = ("label",)
    is_output = True
    # Its only effect is the preview event, which must fire on every render, cached or not.
    cacheable = False
    inputs = (Input("value", Any_, "value to show"),)
    params = (Param("label", String, "", "caption shown with the preview"),)

    def run(self, ctx: NodeContext, value: Any, label: str) -> dict[str, Any]:
        ctx.preview(value, label)
        return {}
