"""Headless rendering of graph files: the one API the CLI, batch workers and the GUI share."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fathom.engine.context import CancelToken, RunOptions
from fathom.engine.device import DeviceInfo, DeviceUnavailable, pick_device
from fathom.engine.errors import GraphInvalid, Problem, echo
from fathom.engine.events import Listener
from fathom.engine.executor import Executor, Plan, RunResult
from fathom.engine.fileio import atomic_write_text, writable_dir_problem
from fathom.engine.graph import Graph
from fathom.engine.graphfile import PATH_ECHO, dumps, graph_hash, load, to_document
from fathom.engine.provenance import package_versions

REPORT_FORMAT = "fathom.run"


@dataclass
class Override:
    node: str
    param: str
    value: Any


def parse_set(text: str) -> tuple[str, str, str]:
    """``NODE.PARAM=VALUE``; node ids contain no dots, so the first dot splits."""
    if "=" not in text:
        raise ValueError(f"--set {echo(repr(text))} needs the form NODE.PARAM=VALUE")
    target, value = text.split("=", 1)
    if "." not in target:
        raise ValueError(
            f"--set {echo(repr(text))} needs the form NODE.PARAM=VALUE "
            f"(no '.' in {echo(repr(target))})"
        )
    node, param = target.split(".", 1)
    return node, param, value


def resolve_overrides(
    graph: Graph, executor: Executor, items: list[tuple[str, str, Any]], from_text: bool
) -> tuple[list[Override], list[Problem]]:
    """Check each override against the node's declared parameters; text values are parsed by the
    parameter's kind, JSON values coerced. Every bad override is reported, none applied."""
    scope = executor.scope(graph)
    out: list[Override] = []
    problems: list[Problem] = []
    for node, param, raw in items:
        inst = graph.nodes.get(node)
        if inst is None:
            problems.append(
                Problem(
                    f"override names no node '{echo(node)}'.",
                    node,
                    param,
                    f"use one of: {echo(', '.join(graph.nodes), 200)}",
                    code="bad_override",
                )
            )
            continue
        cls = scope.get(inst.type)
        if cls is None:
            continue  # reported by validation as an unknown type
        spec = cls.param(param)
        if spec is None:
            names = ", ".join(p.name for p in cls.params) or "(none)"
            problems.append(
                Problem(
                    f"'{echo(inst.type)}' has no parameter '{echo(param)}' to override.",
                    node,
                    param,
                    f"use one of: {names}",
                    code="bad_override",
                )
            )
            continue
        try:
            value = spec.type.parse(raw) if from_text and isinstance(raw, str) else raw
            value = spec.validate(value)
        except ValueError as exc:
            problems.append(
                Problem(
                    f"override value {echo(repr(raw))} is invalid: {echo(str(exc), 200)}.",
                    node,
                    param,
                    f"give {spec.allowed()}",
                    code="bad_override",
                )
            )
            continue
        out.append(Override(node, param, value))
    return out, problems


def parse_frames(text: str | None) -> tuple[int, int] | None:
    """'A-B' inclusive, or a single frame 'A'."""
    if text is None:
        return None
    parts = text.split("-")
    try:
        if len(parts) == 1:
            a = b = int(parts[0])
        elif len(parts) == 2:
            a, b = int(parts[0]), int(parts[1])
        else:
            raise ValueError
    except ValueError:
        raise ValueError(
            f"--frames {echo(repr(text))} must look like 10-50 (inclusive) or 7"
        ) from None
    if a < 0 or b < a:
        raise ValueError(f"--frames {echo(repr(text))}: need 0 <= A <= B")
    return a, b


@dataclass
class RenderJob:
    """One render: a graph file plus what the command line or a batch row changes."""

    graph_path: Path
    out_dir: Path
    overrides: list[tuple[str, str, Any]] = field(default_factory=list)
    overrides_are_text: bool = True
    device: str = "auto"
    frames: tuple[int, int] | None = None
    seed: int = 0
    targets: list[str] | None = None


@dataclass
class Prepared:
    job: RenderJob
    graph: Graph
    document: dict[str, Any]
    plan: Plan
    device: DeviceInfo
    overrides: list[Override]


def prepare(job: RenderJob, executor: Executor) -> Prepared:
    """Everything that can be checked before anything is written; raises GraphInvalid or
    GraphFileError. The output folder is not created here."""
    graph = load(job.graph_path, executor.registry)
    overrides, problems = resolve_overrides(graph, executor, job.overrides, job.overrides_are_text)
    why = writable_dir_problem(job.out_dir)
    if why:
        problems.append(
            Problem(
                f"output folder cannot be written: {why}.",
                None,
                None,
                "choose another --out folder",
            )
        )
    try:
        device = pick_device(job.device)
    except DeviceUnavailable as exc:
        problems.append(Problem(str(exc)))
        device = DeviceInfo("cpu")
    if problems:
        raise GraphInvalid(problems, "The render cannot start")
    for o in overrides:
        graph.nodes[o.node].params[o.param] = o.value
    document = to_document(graph, executor.registry)
    options = RunOptions(
        output_dir=job.out_dir,
        base_dir=job.graph_path.parent.resolve(),
        device=device.kind if device.kind != "cuda" else device.torch_device,
        seed=job.seed,
        frames=job.frames,
        graph_json=json.dumps(document, separators=(",", ":")),
    )
    plan = executor.plan(graph, job.targets, options)
    return Prepared(job, graph, document, plan, device, overrides)


def make_output_dir(folder: Path, option: str = "--out") -> None:
    """Create an output folder before anything runs. The access check in ``prepare`` can pass
    where creating fails (on a pseudo-filesystem such as /sys, root may 'write' but not mkdir):
    that is a destination the render cannot use (GraphInvalid, exit 2), not a crash."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        why = exc.strerror or str(exc)
        what = "output folder" if option == "--out" else f"{option} folder"
        raise GraphInvalid(
            [
                Problem(
                    f"{what} {echo(str(folder), PATH_ECHO)} cannot be created: {why}.",
                    fix=f"choose another {option} folder",
                )
            ],
            "The render cannot start",
        ) from None


def execute(
    prep: Prepared,
    executor: Executor,
    listener: Listener | None = None,
    cancel: CancelToken | None = None,
) -> RunResult:
    make_output_dir(prep.job.out_dir)
    result = executor.run(prep.plan, listener=listener, cancel=cancel)
    if result.device is None:
        result.device = prep.device
    return result


def build_report(prep: Prepared, result: RunResult, started: float) -> dict[str, Any]:
    model_files: dict[str, str] = {}
    for r in result.records.values():
        model_files.update(r.model_files)
    status = "cancelled" if result.cancelled else ("failed" if result.failed else "ok")
    return {
        "format": REPORT_FORMAT,
        "version": 1,
        "status": status,
        "graph": str(prep.job.graph_path),
        "graph_hash": graph_hash(prep.document),
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(started)),
        "seconds": round(result.seconds, 6),
        "device": (result.device or prep.device).as_dict(),
        "packages": package_versions(),
        "seed": prep.job.seed,
        "frames": list(prep.job.frames) if prep.job.frames else None,
        "overrides": [{"node": o.node, "param": o.param, "value": o.value} for o in prep.overrides],
        "node_versions": {r.type: r.version for r in result.records.values()},
        "seeds": {n: r.seed for n, r in result.records.items() if r.seed is not None},
        "model_files": model_files,
        "outputs": result.files(),
        "counts": {
            s: len(result.by_status(s))
            for s in ("executed", "cached", "failed", "skipped", "muted", "bypassed", "cancelled")
        },
        "nodes": [r.as_dict() for r in result.records.values()],
    }


def write_report(path: Path, report: dict[str, Any]) -> None:
    atomic_write_text(path, json.dumps(report, indent=2, default=str) + "\n")


def save_effective_graph(path: Path, prep: Prepared) -> None:
    atomic_write_text(path, dumps(prep.document))
