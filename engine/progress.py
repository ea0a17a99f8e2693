"""Terminal progress for renders: a rich progress bar on a terminal, plain lines in CI logs."""

from __future__ import annotations

import os
import sys
from typing import Any, TextIO

from fathom.engine.events import Event


def use_bars(stream: TextIO | None = None) -> bool:
    stream = stream or sys.stderr
    return stream.isatty() and not os.environ.get("CI")


class PlainProgress:
    """One line per finished, cached or failed node: greppable and friendly to CI logs."""

    def __init__(self, total: int, stream: TextIO | None = None) -> None:
        self.total = total
        self.done = 0
        self.stream = stream or sys.stderr

    def __call__(self, event: Event) -> None:
        if event.kind in ("node_finished", "node_cached", "node_failed", "node_skipped"):
            self.done += 1
            word = {
                "node_finished": "done",
                "node_cached": "cached",
                "node_failed": "FAILED",
                "node_skipped": "skipped",
            }[event.kind]
            secs = f" {event.seconds:.2f}s" if event.seconds is not None else ""
            msg = f": {event.message}" if event.message and event.kind != "node_finished" else ""
            print(
                f"[{self.done}/{self.total}] {event.node} {word}{secs}{msg}",
                file=self.stream,
                flush=True,
            )
        elif event.kind == "run_finished":
            print(
                f"finished in {event.seconds:.2f}s{' (cancelled)' if event.message else ''}",
                file=self.stream,
                flush=True,
            )

    def close(self) -> None:
        pass


class BarProgress:
    """An overall bar over nodes plus a bar for each node running now (its own progress events),
    and one for each finished node whose lazy output computes while a node reads it ("depth for
    save": a depth video's frames), gone when that reader ends."""

    def __init__(self, total: int) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

        self.progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            TextColumn("{task.completed:.0f}/{task.total:.0f}"),
            TimeElapsedColumn(),
            console=Console(stderr=True),
            transient=False,
        )
        self.overall = self.progress.add_task("render", total=max(total, 1))
        self.node_tasks: dict[str, Any] = {}
        #: (producer, reader) -> the bar of the producer's lazy output read by that reader.
        self.read_tasks: dict[tuple[str, str], Any] = {}
        self.progress.start()

    def __call__(self, event: Event) -> None:
        p = self.progress
        if event.kind == "node_started" and event.node:
            self.node_tasks[event.node] = p.add_task(f"  {event.node}", total=100)
        elif event.kind == "node_progress" and event.node and event.reader:
            slot = (event.node, event.reader)
            label = _label(f"  {event.node} for {event.reader}", event.message)
            if slot not in self.read_tasks:
                self.read_tasks[slot] = p.add_task(label, total=100)
            p.update(
                self.read_tasks[slot], completed=100 * (event.progress or 0), description=label
            )
        elif event.kind == "node_progress" and event.node in self.node_tasks:
            label = _label(f"  {event.node}", event.message)
            p.update(
                self.node_tasks[event.node],
                completed=100 * (event.progress or 0),
                description=label,
            )
        elif event.kind in ("node_finished", "node_cached", "node_failed", "node_skipped"):
            task = self.node_tasks.pop(event.node, None) if event.node else None
            if task is not None:
                p.remove_task(task)
            for slot in [s for s in self.read_tasks if s[1] == event.node]:
                p.remove_task(self.read_tasks.pop(slot))
            p.advance(self.overall)
            if event.kind == "node_failed":
                p.console.print(f"[red]failed[/red] {event.node}: {event.message}")
        elif event.kind == "run_finished":  # a reader cancelled mid-read ends with no event
            for task in self.read_tasks.values():
                p.remove_task(task)
            self.read_tasks.clear()
            if event.seconds is not None:  # as the line-per-node output ends
                cancelled = " (cancelled)" if event.message else ""
                p.console.print(f"finished in {event.seconds:.2f}s{cancelled}")

    def close(self) -> None:
        self.progress.stop()


def _label(name: str, message: str | None, width: int = 60) -> str:
    """A bar's description: the node and what it is doing now ("depth: loading the model")."""
    text = f"{name}: {message}" if message else name
    return text if len(text) <= width else text[: width - 1] + "…"


def make_progress(total: int, quiet: bool = False) -> Any:
    if quiet:
        return lambda event: None
    return BarProgress(total) if use_bars() else PlainProgress(total)


class RowProgress:
    """One bar over a batch's rows on a terminal, one line per row in CI logs; messages (retries,
    cancelling) print above the bar."""

    def __init__(self, total: int, quiet: bool = False, stream: TextIO | None = None) -> None:
        self.quiet = quiet
        self.stream = stream or sys.stderr
        self.progress: Any = None
        if not quiet and use_bars(self.stream):
            from rich.console import Console
            from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

            self.progress = Progress(
                TextColumn("rows"),
                BarColumn(),
                TextColumn("{task.completed:.0f}/{task.total:.0f}"),
                TextColumn("{task.description}"),
                TimeElapsedColumn(),
                console=Console(stderr=True),
            )
            self.task = self.progress.add_task("", total=max(total, 1))
            self.progress.start()

    def __call__(self, entry: dict[str, Any], done: int, total: int) -> None:
        if self.quiet:
            return
        extra = f": {entry['errors'][0]}" if entry.get("errors") else ""
        line = (
            f"[{done}/{total}] row {entry['name']} {entry['status']} {entry['seconds']:.2f}s{extra}"
        )
        if self.progress is not None:
            self.progress.update(self.task, completed=done, description=entry["name"])
            if entry["status"] != "ok":
                self.progress.console.print(line)
        else:
            print(line, file=self.stream, flush=True)

    def log(self, text: str) -> None:
        if self.quiet:
            return
        if self.progress is not None:
            self.progress.console.print(text)
        else:
            print(text, file=self.stream, flush=True)

    def close(self) -> None:
        if self.progress is not None:
            self.progress.stop()
