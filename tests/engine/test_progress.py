"""Terminal progress: the bar of a finished node whose lazy output a node downstream reads."""

from __future__ import annotations

from fathom.engine.events import Event
from fathom.engine.progress import BarProgress


def descriptions(bar: BarProgress) -> list[str]:
    return [t.description for t in bar.progress.tasks]


def test_a_lazy_outputs_work_has_a_bar_until_its_reader_ends() -> None:
    bar = BarProgress(2)
    try:
        bar(Event("node_started", "depth"))
        bar(Event("node_progress", "depth", 0.0, "loading the depth model"))
        assert descriptions(bar)[-1] == "  depth: loading the depth model"
        bar(Event("node_finished", "depth", seconds=0.1))
        bar(Event("node_started", "save"))
        bar(Event("node_progress", "depth", 0.25, "depth frame 1/4", reader="save"))
        bar(Event("node_progress", "save", 0.25, "frame 1/4"))
        assert descriptions(bar) == [
            "render",
            "  save: frame 1/4",
            "  depth for save: depth frame 1/4",
        ]
        task = bar.read_tasks["depth", "save"]
        assert next(t for t in bar.progress.tasks if t.id == task).completed == 25
        bar(Event("node_finished", "save", seconds=0.2))
        assert descriptions(bar) == ["render"] and not bar.read_tasks
        # A reader cancelled mid-read sends no event: the run's end takes its bars away.
        bar(Event("node_progress", "depth", 0.5, "depth frame 2/4", reader="save"))
        with bar.progress.console.capture() as said:
            bar(Event("run_finished", seconds=1.0, message="cancelled"))
        assert descriptions(bar) == ["render"]
        assert said.get().strip() == "finished in 1.00s (cancelled)"
    finally:
        bar.close()
