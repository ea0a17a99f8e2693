"""The `fathom` command: headless render, batch render, validation and the node listing."""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any

from fathom.engine.context import CancelToken, RunOptions
from fathom.engine.device import DEVICE_CHOICES
from fathom.engine.errors import GraphFileError, GraphInvalid, Problem
from fathom.engine.executor import Executor
from fathom.engine.registry import default_registry

EXIT_OK, EXIT_NODE_FAILED, EXIT_INVALID, EXIT_CANCELLED = 0, 1, 2, 130


def _err(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="fathom", description="Fathom Studio headless renderer.")
    p.add_argument("--version", action="store_true", help="print versions and the device")
    sub = p.add_subparsers(dest="command")

    r = sub.add_parser("render", help="render a graph file (or a PNG that Fathom saved)")
    r.add_argument("graph", type=Path, nargs="?", help="graph file (or use --example NAME)")
    r.add_argument(
        "--example",
        metavar="NAME",
        help="render a bundled example graph instead (see `fathom examples`)",
    )
    r.add_argument(
        "--set",
        dest="sets",
        action="append",
        default=[],
        metavar="NODE.PARAM=VALUE",
        help="override a parameter (repeatable)",
    )
    r.add_argument(
        "--batch", type=Path, metavar="ROWS.jsonl|csv", help="render one job per row of overrides"
    )
    r.add_argument("--frames", metavar="A-B", help="frame range, inclusive")
    r.add_argument("--out", type=Path, default=Path("out"), help="output folder (default out/)")
    r.add_argument("--device", default="auto", choices=DEVICE_CHOICES)
    r.add_argument("--report", type=Path, help="write the run report (JSON) here")
    r.add_argument("--seed", type=int, default=0, help="run seed for nodes without their own")
    r.add_argument(
        "--target",
        action="append",
        default=None,
        metavar="NODE",
        help="render only what this node needs (repeatable)",
    )
    r.add_argument(
        "--workers",
        type=int,
        default=None,
        help="batch worker processes (default: min(rows, CPUs, 4)); "
        "threads for independent branches otherwise (default 1)",
    )
    r.add_argument("--quiet", action="store_true", help="no progress output")
    r.add_argument(
        "--cluster",
        metavar="auto|local|ray://HOST:PORT",
        help="run the --batch rows on a Ray cluster (needs fathom-studio[cluster]): "
        "auto = RAY_ADDRESS or a cluster started on this machine, else a local "
        "one; local = a new local instance; ray://HOST:PORT = a remote head",
    )

    v = sub.add_parser(
        "validate",
        help="check a graph file without running it: the checks `render` makes before it starts",
    )
    v.add_argument("graph", type=Path, nargs="?", help="graph file (or use --example NAME)")
    v.add_argument("--example", metavar="NAME", help="check a bundled example graph instead")
    v.add_argument(
        "--no-file-checks",
        action="store_true",
        help="skip the checks of file parameters (input files exist, output folders are "
        "writable): for a graph whose media are not in place yet",
    )
    v.add_argument("--json", action="store_true")

    n = sub.add_parser("nodes", help="list every node type")
    n.add_argument("--json", action="store_true")
    n.add_argument("--category", help="only this category")

    sub.add_parser("examples", help="list the bundled example graphs")

    from fathom.engine.live.command import add_parser as add_live_parser

    add_live_parser(sub, DEVICE_CHOICES)
    _models_parser(sub)
    _distill_parser(sub)
    from fathom.engine.models.svd_prune_cli import add_parser as add_prune_svd_parser

    add_prune_svd_parser(sub, DEVICE_CHOICES)
    return p


def _distill_parser(sub: Any) -> None:
    """``fathom distill TEACHER CLIPS... --out STUDENT`` (engine.accel.delta)."""
    d = sub.add_parser(
        "distill",
        help="train a Delta-Distillation student for a depth or segmentation model from your "
        "clips (video.depth / video.segment temporal 'delta' use it)",
    )
    d.add_argument("teacher", type=Path, help="the model folder (Depth Anything / DPT, SegFormer)")
    d.add_argument("clips", type=Path, nargs="+", help="video files to learn from")
    d.add_argument("--out", type=Path, required=True, help="student folder to write")
    d.add_argument("--steps", type=int, default=300, help="training steps (default 300)")
    d.add_argument("--hidden", type=int, default=32, help="student channels (default 32)")
    d.add_argument("--max-frames", type=int, default=64, help="frames read per clip (default 64)")
    d.add_argument(
        "--held-out", type=float, default=0.2, help="share of each clip held out (default 0.2)"
    )
    d.add_argument("--device", default="auto", choices=DEVICE_CHOICES)


def _models_parser(sub: Any) -> None:
    """``fathom models list`` and ``fathom models pull``."""
    m = sub.add_parser("models", help="list local models or download one")
    msub = m.add_subparsers(dest="models_command")
    ml = msub.add_parser(
        "list",
        help="models available locally (family, kind, size, where found), and where Fathom looked",
    )
    ml.add_argument(
        "--json", action="store_true", help="the documented JSON (fathom.models, version 1)"
    )
    mp = msub.add_parser(
        "pull",
        help="download a Hugging Face model: its configs and one precision of the safetensors "
        "weights its pipeline loads; an interrupted pull resumes when run again",
    )
    mp.add_argument("id", help="a Hugging Face id (org/name)")
    mp.add_argument("--revision", help="branch, tag or commit")
    mp.add_argument(
        "--variant",
        metavar="fp16|bf16|...",
        help="fetch this precision of each part that has it (the plain one for the others); "
        "default: the plain (full-precision) files",
    )
    mp.add_argument(
        "--configs-only",
        action="store_true",
        help="only the configuration files (what a single-file checkpoint needs)",
    )
    mp.add_argument(
        "--dry-run", action="store_true", help="list the files a pull would fetch; fetch none"
    )


def hush_libraries() -> None:
    """No third-party progress bars or advisory warnings: ``--quiet`` promises no progress
    output, and a CI log wants one plain line per node, not carriage-return bars. Environment
    settings are read when transformers and huggingface_hub import; diffusers' loading bar
    has only its switch."""
    os.environ["HF_HUB_DISABLE_PROGRESS_BARS"] = "1"
    os.environ["TRANSFORMERS_VERBOSITY"] = "error"
    os.environ["DIFFUSERS_VERBOSITY"] = "error"
    os.environ["TRANSFORMERS_NO_ADVISORY_WARNINGS"] = "1"
    try:
        from diffusers.utils import logging as diffusers_logging
    except ImportError:
        return
    diffusers_logging.disable_progress_bar()
    diffusers_logging.set_verbosity_error()


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from fathom.engine.allocator import keep_freed_memory

    keep_freed_memory()  # frames' activations reuse freed memory: no page faults per frame
    if getattr(args, "quiet", False) or not sys.stderr.isatty():
        hush_libraries()
    try:
        if args.version:
            return cmd_version()
        if args.command == "render":
            return cmd_render(args)
        if args.command == "validate":
            return cmd_validate(args)
        if args.command == "nodes":
            return cmd_nodes(args)
        if args.command == "models" and args.models_command:
            return cmd_models(args)
        if args.command == "examples":
            return cmd_examples()
        if args.command == "distill":
            return cmd_distill(args)
        if args.command == "prune-svd":
            from fathom.engine.models.svd_prune_cli import run as cmd_prune_svd

            return cmd_prune_svd(args)
        if args.command == "rank-svd":
            from fathom.engine.models.svd_prune_cli import run_rank as cmd_rank_svd

            return cmd_rank_svd(args)
        if args.command == "live":
            from fathom.engine.live.command import run as cmd_live

            return cmd_live(args)
    except (GraphInvalid, GraphFileError) as exc:
        _err(str(exc))
        return EXIT_INVALID
    build_parser().print_help(sys.stderr)
    return EXIT_INVALID


def cmd_distill(args: argparse.Namespace) -> int:
    from fathom.engine.accel.delta import StudentError, distill
    from fathom.engine.device import pick_device

    cancel = CancelToken()
    previous = _install_cancel(cancel)
    try:
        report = distill(
            args.teacher,
            args.clips,
            args.out,
            steps=args.steps,
            hidden=args.hidden,
            held_out=args.held_out,
            max_frames=args.max_frames,
            device=pick_device(args.device).torch_device,
            log=lambda line: print(line, flush=True),
            cancelled=lambda: cancel.cancelled,
        )
    except StudentError as exc:
        _err(f"fathom distill: {exc}\n  fix: {exc.fix}")
        return EXIT_INVALID
    except KeyboardInterrupt:
        _err("fathom distill: cancelled; nothing was written")
        return EXIT_CANCELLED
    finally:
        if previous is not None:
            signal.signal(signal.SIGINT, previous)
    print(
        f"wrote {report.out}: held-out error {report.held_out_error:.5g}, "
        f"{report.relative:.3f} of copying the previous frame's features "
        f"({report.train_pairs} training pairs, {report.held_out_pairs} held out, "
        f"{report.seconds:.1f} s)"
    )
    return EXIT_OK


def cmd_version() -> int:
    from fathom.engine.buildinfo import version_lines

    for line in version_lines():
        print(line)
    return EXIT_OK


def cmd_examples() -> int:
    from fathom.engine.resources import example_graphs

    for name, path in example_graphs().items():
        print(f"{name:24} {path}")
    return EXIT_OK


def _graph_arg(args: argparse.Namespace) -> bool:
    """Fills args.graph from --example; False (after saying why) when neither or both given."""
    if args.example is not None:
        from fathom.engine.resources import AssetsNotFound, example_graph

        if args.graph is not None:
            _err("Invalid command line: give a GRAPH file or --example NAME, not both.")
            return False
        try:
            args.graph = example_graph(args.example)
        except AssetsNotFound as exc:
            _err(f"Invalid command line: {exc}")
            return False
    if args.graph is None:
        _err("Invalid command line: give a GRAPH file (or --example NAME; see `fathom examples`).")
        return False
    return True


def cmd_nodes(args: argparse.Namespace) -> int:
    reg = default_registry()
    types = [c for c in reg.types() if not args.category or c.category == args.category]
    if args.json:
        from fathom.engine.types import CONVERSIONS

        print(
            json.dumps(
                {
                    "nodes": [c.describe() for c in types],
                    "conversions": [
                        {"from": a, "to": b, "doc": d} for (a, b), (_, d) in CONVERSIONS.items()
                    ],
                    "plugin_errors": reg.load_errors,
                },
                indent=2,
            )
        )
        return EXIT_OK
    for cls in types:
        ins = ", ".join(f"{i.name}:{i.type.type_id}{'?' if i.optional else ''}" for i in cls.inputs)
        outs = ", ".join(f"{o.name}:{o.type.type_id}" for o in cls.outputs)
        print(f"{cls.type_id:28} [{cls.category}] ({ins}) -> ({outs})")
        doc = cls.doc().splitlines()[0] if cls.doc() else ""
        if doc:
            print(f"    {doc}")
        for prm in cls.params:
            print(f"    - {prm.name} = {prm.default!r}  ({prm.allowed()}) {prm.doc}")
    for msg in reg.load_errors:
        _err(msg)
    return EXIT_OK


def cmd_models(args: argparse.Namespace) -> int:
    from fathom.engine.models.catalog import catalog_document, list_models
    from fathom.engine.models.locate import ModelError

    if args.models_command == "pull":
        try:
            return _pull(args)
        except ModelError as exc:
            _err(str(exc))
            return EXIT_INVALID
    entries, places = list_models()
    if args.json:
        print(json.dumps(catalog_document(entries, places), indent=2))
        return EXIT_OK
    _print_models(entries, places)
    return EXIT_OK


def _pull(args: argparse.Namespace) -> int:
    """``fathom models pull``: say what will come and where, then fetch it with the hub's
    progress bars (a second run resumes an interrupted one)."""
    from fathom.engine.models.pull import fetch, plan_pull

    plan = plan_pull(args.id, args.revision, args.variant, args.configs_only)
    if args.dry_run:
        for f in plan.files:
            print(f)
        return EXIT_OK
    where = plan.cache_dir or "the Hugging Face cache"
    _err(
        f"fetching {len(plan.files)} files of {args.id} into {where} "
        f"({args.variant or 'plain'} precision; an interrupted pull resumes when run again)"
    )
    print(fetch(plan, configs_only=args.configs_only))
    return EXIT_OK


def _print_models(entries: list[Any], places: list[Any]) -> None:
    """The models grouped by where they were found: name, family, kind, size, and a problem
    where one stops it loading; then every place looked in."""
    from fathom.engine.models.catalog import human_size

    by_folder: dict[str, list[Any]] = {}
    for e in entries:
        by_folder.setdefault(f"{e.folder}  [{e.source}]", []).append(e)
    for folder, group in by_folder.items():
        print(folder)
        for e in group:
            name = f"{e.subfolder}/{e.name}" if e.subfolder else e.name
            print(f"  {name:44} {e.label:48} {human_size(e.size_bytes):>8}")
            if e.problem:
                print(f"      ! {e.problem}")
    if not entries:
        print("no models found")
    print("looked in:")
    for place in places:
        print(f"  {place}")
        for kind, sub in place.addon_folders:
            print(f"    {sub} ({kind})")
    if len(places) == 1:
        print("  (add models folders with FATHOM_MODELS or the GUI's Models folder setting)")


def cmd_validate(args: argparse.Namespace) -> int:
    """The same checks ``render`` makes before it starts (graph, parameters, each needed node's
    pre-flight check, input files), so "valid" means the render will start; exit 0 or 2."""
    from fathom.engine.graphfile import load

    if not _graph_arg(args):
        return EXIT_INVALID
    ex = Executor()
    options = RunOptions(base_dir=args.graph.parent.resolve(), check_files=not args.no_file_checks)
    try:
        graph = load(args.graph, ex.registry)
        ex.plan(graph, options=options, check=True)
    except (GraphInvalid, GraphFileError) as exc:
        if args.json:
            print(json.dumps(_invalid_json(exc), indent=2))
        else:
            _err(str(exc))
        return EXIT_INVALID
    if args.json:
        print(json.dumps({"valid": True, "nodes": len(graph.nodes)}))
    else:
        print(f"{args.graph}: valid ({len(graph.nodes)} nodes, {len(graph.edges)} edges)")
    return EXIT_OK


def _invalid_json(exc: GraphInvalid | GraphFileError) -> dict[str, Any]:
    """``validate --json`` for a refused graph: the text render prints, and each problem."""
    return {
        "valid": False,
        "error": str(exc),
        "problems": [
            {"node": p.node, "port": p.port, "message": p.message, "fix": p.fix, "code": p.code}
            for p in getattr(exc, "problems", [])
        ],
    }


def _install_cancel(cancel: CancelToken) -> Any:
    """Ctrl-C cancels cooperatively. Returns the handler to restore afterwards (``main`` may be
    called in-process), or None off the main thread, where Python cannot catch signals."""
    if threading.current_thread() is not threading.main_thread():
        return None

    def handler(signum: int, frame: Any) -> None:
        if cancel.cancelled:
            raise KeyboardInterrupt
        _err("cancelling: the running node stops at its next check (Ctrl-C again: at once)...")
        cancel.cancel()

    return signal.signal(signal.SIGINT, handler)


def cmd_render(args: argparse.Namespace) -> int:
    from fathom.engine.render import RenderJob, parse_frames, parse_set

    if not _graph_arg(args):
        return EXIT_INVALID
    if args.cluster is not None and args.batch is None:
        _err("Invalid command line: --cluster runs --batch rows; add --batch ROWS.jsonl|csv.")
        return EXIT_INVALID
    try:
        sets = [parse_set(s) for s in args.sets]
        frames = parse_frames(args.frames)
    except ValueError as exc:
        _err(f"Invalid command line: {exc}")
        return EXIT_INVALID
    job = RenderJob(args.graph, args.out, sets, True, args.device, frames, args.seed, args.target)
    if args.batch is not None:
        return _render_batch(args, job)
    return _render_one(args, job)


def _render_one(args: argparse.Namespace, job: Any) -> int:
    from fathom.engine.progress import make_progress
    from fathom.engine.render import (
        build_report,
        execute,
        make_output_dir,
        prepare,
        write_report,
    )

    started = time.time()
    ex = Executor(max_workers=max(1, args.workers or 1))
    prep = prepare(job, ex)
    if args.report is not None:
        from fathom.engine.fileio import writable_dir_problem

        why = writable_dir_problem(args.report.parent)
        if why:
            raise GraphInvalid(
                [
                    Problem(
                        f"the report cannot be written: {why}.", fix="choose another --report path"
                    )
                ],
                "The render cannot start",
            )
        make_output_dir(args.report.parent, "--report")
    make_output_dir(job.out_dir)
    cancel = CancelToken()
    previous = _install_cancel(cancel)
    bar = make_progress(len(prep.plan.needed), args.quiet)
    try:
        result = execute(prep, ex, bar, cancel)
    finally:
        if hasattr(bar, "close"):
            bar.close()
        if previous is not None:
            signal.signal(signal.SIGINT, previous)
    report = build_report(prep, result, started)
    if args.report is not None:
        write_report(args.report, report)
    for path in report["outputs"]:
        print(path)
    for r in report["nodes"]:
        if r["status"] == "failed":
            _err(r["error"])
    if result.cancelled:
        return EXIT_CANCELLED
    return EXIT_NODE_FAILED if result.failed else EXIT_OK


def _typed_overrides(job: Any, ex: Executor) -> Any:
    """Parse the shared ``--set`` values once, by each parameter's kind, so they mean the same
    next to JSONL rows (typed values) as next to CSV rows (text)."""
    from dataclasses import replace

    from fathom.engine.graphfile import load
    from fathom.engine.render import resolve_overrides

    graph = load(job.graph_path, ex.registry)
    typed, problems = resolve_overrides(graph, ex, job.overrides, True)
    if problems:
        raise GraphInvalid(problems, "The batch cannot start")
    return replace(
        job, overrides=[(o.node, o.param, o.value) for o in typed], overrides_are_text=False
    )


def _render_batch(args: argparse.Namespace, job: Any) -> int:
    import os

    from fathom.engine.batch import BatchFileError, check_rows, read_rows, run_batch
    from fathom.engine.render import make_output_dir

    ex = Executor()
    try:
        rows = read_rows(args.batch)
    except BatchFileError as exc:
        _err(str(exc))
        return EXIT_INVALID
    job = _typed_overrides(job, ex)
    check_rows(job, rows, ex)
    if args.cluster is not None:  # the cluster is checked first: no folder for a dead address
        return _render_cluster(args, job, rows)
    make_output_dir(job.out_dir)
    workers = args.workers or min(len(rows), os.cpu_count() or 1, 4)
    quiet = args.quiet

    def progress(entry: dict[str, Any], done: int, total: int) -> None:
        if not quiet:
            extra = f": {entry['errors'][0]}" if entry.get("errors") else ""
            _err(
                f"[{done}/{total}] row {entry['name']} {entry['status']} "
                f"{entry['seconds']:.2f}s{extra}"
            )

    manifest = run_batch(job, rows, workers, progress)
    print(job.out_dir / "manifest.json")
    if manifest["interrupted"]:
        return EXIT_CANCELLED
    bad = manifest["counts"]["failed"] + manifest["counts"]["invalid"]
    return EXIT_NODE_FAILED if bad else EXIT_OK


def _render_cluster(args: argparse.Namespace, job: Any, rows: list[Any]) -> int:
    import contextlib

    from fathom.engine.distributed import ClusterUnavailable, connect, run_batch_ray
    from fathom.engine.progress import RowProgress
    from fathom.engine.render import make_output_dir

    with contextlib.ExitStack() as stack:
        try:  # an unreachable cluster is found here, before any row runs or folder is made
            ray = stack.enter_context(connect(args.cluster))
        except ClusterUnavailable as exc:
            _err(f"The batch cannot start: {exc}")
            return EXIT_INVALID
        make_output_dir(job.out_dir)
        bar = RowProgress(len(rows), args.quiet)
        try:
            manifest = run_batch_ray(
                ray, job, rows, progress=bar, log=bar.log, max_workers=args.workers
            )
        finally:
            bar.close()
    print(job.out_dir / "manifest.json")
    if manifest["interrupted"]:
        return EXIT_CANCELLED
    bad = manifest["counts"]["failed"] + manifest["counts"]["invalid"]
    return EXIT_NODE_FAILED if bad else EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
