"""The `fathom` command: headless render, batch render, validation and the node listing."""

from __future__ import annotations

import argparse
import json
import signal
import sys
import time
from pathlib import Path
from typing import Any

from engine import __version__
from engine.context import CancelToken
from engine.device import DEVICE_CHOICES
from engine.errors import GraphFileError, GraphInvalid
from engine.executor import Executor
from engine.registry import default_registry

EXIT_OK, EXIT_NODE_FAILED, EXIT_INVALID, EXIT_CANCELLED = 0, 1, 2, 130


def _err(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="fathom", description="Fathom Studio headless renderer.")
    p.add_argument("--version", action="store_true", help="print versions and the device")
    sub = p.add_subparsers(dest="command")

    r = sub.add_parser("render", help="render a graph file (or a PNG that Fathom saved)")
    r.add_argument("graph", type=Path)
    r.add_argument("--set", dest="sets", action="append", default=[], metavar="NODE.PARAM=VALUE",
                   help="override a parameter (repeatable)")
    r.add_argument("--batch", type=Path, metavar="ROWS.jsonl|csv",
                   help="render one job per row of overrides")
    r.add_argument("--frames", metavar="A-B", help="frame range, inclusive")
    r.add_argument("--out", type=Path, default=Path("out"), help="output folder (default out/)")
    r.add_argument("--device", default="auto", choices=DEVICE_CHOICES)
    r.add_argument("--report", type=Path, help="write the run report (JSON) here")
    r.add_argument("--seed", type=int, default=0, help="run seed for nodes without their own")
    r.add_argument("--target", action="append", default=None, metavar="NODE",
                   help="render only what this node needs (repeatable)")
    r.add_argument("--workers", type=int, default=None,
                   help="batch worker processes (default: min(rows, CPUs, 4)); "
                        "threads for independent branches otherwise (default 1)")
    r.add_argument("--quiet", action="store_true", help="no progress output")

    v = sub.add_parser("validate", help="check a graph file without running it")
    v.add_argument("graph", type=Path)
    v.add_argument("--json", action="store_true")

    n = sub.add_parser("nodes", help="list every node type")
    n.add_argument("--json", action="store_true")
    n.add_argument("--category", help="only this category")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.version:
            return cmd_version()
        if args.command == "render":
            return cmd_render(args)
        if args.command == "validate":
            return cmd_validate(args)
        if args.command == "nodes":
            return cmd_nodes(args)
    except (GraphInvalid, GraphFileError) as exc:
        _err(str(exc))
        return EXIT_INVALID
    build_parser().print_help(sys.stderr)
    return EXIT_INVALID


def cmd_version() -> int:
    from engine.device import pick_device
    from engine.provenance import package_versions

    print(f"fathom {__version__}")
    for name, ver in package_versions().items():
        print(f"  {name} {ver}")
    try:
        print(f"  device: {pick_device('auto').as_dict()}")
    except Exception as exc:  # noqa: BLE001 - --version must always answer
        print(f"  device: unavailable ({exc})")
    return EXIT_OK


def cmd_nodes(args: argparse.Namespace) -> int:
    reg = default_registry()
    types = [c for c in reg.types() if not args.category or c.category == args.category]
    if args.json:
        from engine.types import CONVERSIONS

        print(json.dumps({"nodes": [c.describe() for c in types],
                          "conversions": [{"from": a, "to": b, "doc": d}
                                          for (a, b), (_, d) in CONVERSIONS.items()],
                          "plugin_errors": reg.load_errors}, indent=2))
        return EXIT_OK
    for cls in types:
        ins = ", ".join(f"{i.name}:{i.type.type_id}{'?' if i.optional else ''}"
                        for i in cls.inputs)
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


def cmd_validate(args: argparse.Namespace) -> int:
    from engine.graphfile import load

    ex = Executor()
    try:
        graph = load(args.graph, ex.registry)
        ex.plan(graph, check=False)
    except (GraphInvalid, GraphFileError) as exc:
        if args.json:
            probs = getattr(exc, "problems", None)
            print(json.dumps({"valid": False, "error": str(exc), "problems": [
                {"node": p.node, "port": p.port, "message": p.message, "fix": p.fix,
                 "code": p.code} for p in (probs or [])]}, indent=2))
        else:
            _err(str(exc))
        return EXIT_INVALID
    if args.json:
        print(json.dumps({"valid": True, "nodes": len(graph.nodes)}))
    else:
        print(f"{args.graph}: valid ({len(graph.nodes)} nodes, {len(graph.edges)} edges)")
    return EXIT_OK


def _install_cancel(cancel: CancelToken) -> None:
    def handler(signum: int, frame: Any) -> None:
        if cancel.cancelled:
            raise KeyboardInterrupt
        _err("cancelling after the running node (Ctrl-C again to stop at once)...")
        cancel.cancel()

    signal.signal(signal.SIGINT, handler)


def cmd_render(args: argparse.Namespace) -> int:
    from engine.render import RenderJob, parse_frames, parse_set

    try:
        sets = [parse_set(s) for s in args.sets]
        frames = parse_frames(args.frames)
    except ValueError as exc:
        _err(f"Invalid command line: {exc}")
        return EXIT_INVALID
    job = RenderJob(args.graph, args.out, sets, True, args.device, frames, args.seed,
                    args.target)
    if args.batch is not None:
        return _render_batch(args, job)
    return _render_one(args, job)


def _render_one(args: argparse.Namespace, job: Any) -> int:
    from engine.progress import make_progress
    from engine.render import build_report, execute, prepare, write_report

    started = time.time()
    ex = Executor(max_workers=max(1, args.workers or 1))
    prep = prepare(job, ex)
    if args.report is not None:
        from engine.fileio import writable_dir_problem

        why = writable_dir_problem(args.report.parent)
        if why:
            raise GraphInvalid([], f"The report cannot be written: {why}")
    cancel = CancelToken()
    _install_cancel(cancel)
    bar = make_progress(len(prep.plan.needed), args.quiet)
    try:
        result = execute(prep, ex, bar, cancel)
    finally:
        if hasattr(bar, "close"):
            bar.close()
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


def _render_batch(args: argparse.Namespace, job: Any) -> int:
    import os

    from engine.batch import BatchFileError, check_rows, read_rows, run_batch
    from engine.fileio import writable_dir_problem
    from engine.graphfile import load

    ex = Executor()
    try:
        rows = read_rows(args.batch)
    except BatchFileError as exc:
        _err(str(exc))
        return EXIT_INVALID
    load(job.graph_path, ex.registry)
    why = writable_dir_problem(job.out_dir)
    if why:
        _err(f"The batch cannot start: output folder cannot be written: {why}.")
        return EXIT_INVALID
    # Every row and the shared --set overrides are checked together, before any row runs.
    from engine.batch import Row

    check_rows(job.graph_path, [Row(-1, "--set", job.overrides, True)] + rows, ex)
    workers = args.workers or min(len(rows), os.cpu_count() or 1, 4)
    quiet = args.quiet

    def progress(entry: dict[str, Any], done: int, total: int) -> None:
        if not quiet:
            extra = f": {entry['errors'][0]}" if entry.get("errors") else ""
            _err(f"[{done}/{total}] row {entry['name']} {entry['status']} "
                 f"{entry['seconds']:.2f}s{extra}")

    manifest = run_batch(job, rows, workers, progress)
    print(job.out_dir / "manifest.json")
    if manifest["interrupted"]:
        return EXIT_CANCELLED
    bad = manifest["counts"]["failed"] + manifest["counts"]["invalid"]
    return EXIT_NODE_FAILED if bad else EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
