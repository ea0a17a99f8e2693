"""`fathom live GRAPH`: run a live graph headless until Ctrl-C, N seconds, or its file ends."""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any

from fathom.engine.errors import NodeError


def add_parser(sub: Any, device_choices: tuple[str, ...]) -> None:
    """The ``live`` subcommand's arguments."""
    lv = sub.add_parser(
        "live",
        help="run a live graph (camera, screen, file or stream source) headless",
        description="Cook the graph once per captured frame until Ctrl-C, --seconds, or the "
        "end of a non-looping live.file. live.window frames are recorded to --out as "
        "<node>.mp4 (nobody can see a window headless).",
    )
    lv.add_argument("graph", type=Path, help="graph file")
    lv.add_argument("--seconds", type=float, default=None, help="stop after this many seconds")
    lv.add_argument("--out", type=Path, default=Path("out"), help="output folder (default out/)")
    lv.add_argument("--report", type=Path, help="write the session report (JSON) here")
    lv.add_argument("--device", default="auto", choices=device_choices)
    lv.add_argument("--seed", type=int, default=0, help="run seed for nodes without their own")
    lv.add_argument(
        "--set",
        dest="sets",
        action="append",
        default=[],
        metavar="NODE.PARAM=VALUE",
        help="override a parameter (repeatable)",
    )
    lv.add_argument("--quiet", action="store_true", help="no per-second status line")


def _err(text: str) -> None:
    sys.stderr.write(text.rstrip() + "\n")


def run(args: argparse.Namespace) -> int:
    """Exit codes as ``fathom render``'s: 0 ran, 2 invalid graph or a source that cannot
    open, 3 the session ended with node errors (it still ran to the end)."""
    from fathom.engine.executor import Executor
    from fathom.engine.live.session import LiveCache, LiveOptions, LiveSession
    from fathom.engine.render import RenderJob, make_output_dir, parse_set, prepare

    try:
        sets = [parse_set(s) for s in args.sets]
    except ValueError as exc:
        _err(f"Invalid command line: {exc}")
        return 2
    options = LiveOptions(seconds=args.seconds, window_dir=args.out)
    ex = Executor(cache=LiveCache(options.cache_bytes))
    job = RenderJob(args.graph, args.out, sets, True, args.device, None, args.seed, None)
    prep = prepare(job, ex)  # raises GraphInvalid, reported by main
    make_output_dir(args.out)
    options.run = prep.plan.options
    session = LiveSession(prep.graph, options, executor=ex)
    try:
        session.start()
    except NodeError as exc:
        _err(str(exc))
        return 2
    stopping = threading.Event()
    previous = _install_stop(stopping)
    try:
        _watch(session, stopping, args.quiet)
    finally:
        if previous is not None:
            signal.signal(signal.SIGINT, previous)
    report = session.stop().as_dict()
    text = json.dumps(report, indent=2)
    if args.report is not None:
        args.report.parent.mkdir(parents=True, exist_ok=True)
        args.report.write_text(text + "\n")
    sys.stdout.write(text + "\n")
    for node, entry in report["errors"].items():
        _err(f"{node}: {entry['count']} error(s); last: {entry['last']}")
    return 1 if report["errors"] else 0  # as render: 1 means a node failed


def _watch(session: Any, stopping: threading.Event, quiet: bool) -> None:
    """Wait for the end (or Ctrl-C), printing a status line about once a second."""
    last = time.perf_counter()
    while session.running and not stopping.is_set():
        session.wait(0.1)
        if not quiet and time.perf_counter() - last >= 1.0:
            last = time.perf_counter()
            s = session.stats()
            _err(
                f"in {s.frames_in}  out {s.frames_out}  dropped {s.frames_dropped}  "
                f"fps {s.fps_out:.1f}  latency {s.latency_ms['median']:.0f} ms"
            )


def _install_stop(stopping: threading.Event) -> Any:
    """Ctrl-C stops the session after the frame being cooked; a second one stops at once."""
    if threading.current_thread() is not threading.main_thread():
        return None

    def handler(signum: int, frame: Any) -> None:
        if stopping.is_set():
            raise KeyboardInterrupt
        _err("stopping after the frame being cooked (Ctrl-C again to stop at once)...")
        stopping.set()

    return signal.signal(signal.SIGINT, handler)


__all__ = ["add_parser", "run"]
