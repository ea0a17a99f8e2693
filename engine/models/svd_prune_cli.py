"""The ``fathom prune-svd`` and ``fathom rank-svd`` commands (engine.models.svd_prune does the
work).

Kept apart from the pruning so that building the CLI's parser imports no torch.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any


def add_parser(sub: Any, devices: tuple[str, ...]) -> None:
    """``fathom prune-svd MODEL --out DIR --keep 0.5 --calib IMAGE`` and ``fathom rank-svd
    MODEL --calib IMAGE``."""
    p = sub.add_parser(
        "prune-svd",
        help="prune a Stable Video Diffusion UNet's channels (calibrated on an image) into a "
        "new, smaller model folder that generate.image_to_video loads like any other",
    )
    p.add_argument("model", type=Path, help="the SVD model folder")
    p.add_argument("--out", type=Path, required=True, help="the new model folder to write")
    p.add_argument("--keep", type=float, default=0.5, help="share of channels kept (0.5)")
    _calibration_args(p, devices)
    r = sub.add_parser(
        "rank-svd",
        help="rank a Stable Video Diffusion model's temporal blocks (calibrated on an image) "
        "and save the ranking in the model folder: generate.image_to_video's skip_temporal "
        "then needs no calibration run of its own",
    )
    r.add_argument("model", type=Path, help="the SVD model folder (the ranking is saved there)")
    _calibration_args(r, devices)


def _calibration_args(p: Any, devices: tuple[str, ...]) -> None:
    p.add_argument("--calib", type=Path, required=True, help="calibration image (PNG, JPEG)")
    p.add_argument("--width", type=int, default=512, help="calibration width (512)")
    p.add_argument("--height", type=int, default=288, help="calibration height (288)")
    p.add_argument("--frames", type=int, default=0, help="calibration frames (model's own)")
    p.add_argument("--steps", type=int, default=2, help="calibration denoising steps (2)")
    p.add_argument("--device", default="auto", choices=devices)


def run(args: Any) -> int:
    """The ``prune-svd`` command: 0 when written, 2 on a bad request."""

    def work(image: Any, **calibration: Any) -> None:
        from fathom.engine.models.svd_prune import prune_svd

        report = prune_svd(args.model, args.out, args.keep, image, **calibration)
        for line in report.lines():
            _say(line)

    return _calibrated("prune-svd", args, work)


def run_rank(args: Any) -> int:
    """The ``rank-svd`` command: 0 when saved, 2 on a bad request."""
    from fathom.engine.fileio import writable_dir_problem

    folder = Path(args.model)
    problem = None if folder.is_dir() else f"{folder} is not a model folder"
    fix = "give the SVD model's folder"
    if problem is None:
        problem, fix = writable_dir_problem(folder), "copy the model to a folder you can write to"
    if problem:  # before loading anything: a refusal must not cost a calibration run
        sys.stderr.write(f"fathom rank-svd: {problem}; {fix}\n")
        return 2

    def work(image: Any, **calibration: Any) -> None:
        from fathom.engine.models.svd_prune import rank_svd

        rank_svd(args.model, image, **calibration)

    return _calibrated("rank-svd", args, work)


def calibration_problem(args: Any) -> str | None:
    """What is wrong with the calibration numbers, said before anything loads."""
    for name in ("width", "height"):
        value = getattr(args, name)
        if value <= 0 or value % 8:
            return f"--{name} {value} is not a positive multiple of 8 (the model's latents are 1/8)"
    if args.steps < 1:
        return f"--steps {args.steps}: calibrate on at least 1 denoising step"
    if args.frames < 0:
        return f"--frames {args.frames}: give a number of frames, or 0 for the model's own"
    return None


def _calibrated(command: str, args: Any, work: Callable[..., Any]) -> int:
    """Read the calibration image and call ``work(image, width=..., ...)``; 2 (said on stderr)
    when the numbers or the image are unusable or the request cannot be met."""
    problem = calibration_problem(args)
    if problem:
        sys.stderr.write(f"fathom {command}: {problem}\n")
        return 2
    from PIL import Image as PILImage

    from fathom.engine.device import pick_device
    from fathom.engine.models.locate import ModelError
    from fathom.engine.models.svd_prune import PruneError

    try:
        image = PILImage.open(args.calib).convert("RGB")
    except OSError as exc:
        sys.stderr.write(f"fathom {command}: cannot read {args.calib}: {exc}\n")
        return 2
    try:
        work(
            image,
            width=args.width,
            height=args.height,
            frames=args.frames,
            steps=args.steps,
            device=pick_device(args.device).torch_device,
            log=_say,
        )
    except (PruneError, ModelError) as exc:
        sys.stderr.write(f"fathom {command}: {exc}\n")
        return 2
    return 0


def _say(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()
