"""The studio window the README screenshot scripts drive: a throwaway settings folder, the
theme, the window at the asked size showing one example graph; closed cleanly afterwards."""

from __future__ import annotations

import argparse
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from fathom.app.main import _app


def parse_args(doc: str, folder_help: str, argv: list[str] | None) -> argparse.Namespace:
    """The scripts' command line: the output ``folder`` and the window ``--size``."""
    p = argparse.ArgumentParser(description=doc.splitlines()[0])
    p.add_argument("folder", type=Path, help=folder_help)
    p.add_argument("--size", default="1600x1000")
    return p.parse_args(argv)


@contextmanager
def studio_window(size: str, example: str) -> Iterator[tuple[Any, Any]]:
    """(app, window): a shown MainWindow of ``size`` ("WxH") with the example graph named
    ``example`` open, on fresh settings in a temporary folder; closed (unsaved changes
    dropped) on leaving."""
    from fathom.app.files import examples
    from fathom.app.main import _wait
    from fathom.app.main_window import MainWindow
    from fathom.app.settings import Settings
    from fathom.app.theme import apply_theme

    app = _app()
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(Path(tmp) / "settings.ini")
        settings.recovery_dir = str(Path(tmp) / "recovery")
        settings.output_dir = str(Path(tmp) / "out")
        apply_theme(app, settings.theme)
        window = MainWindow(settings=settings)
        w, h = (int(v) for v in size.lower().split("x"))
        window.resize(w, h)
        window.show()
        window.files.open_example(next(g for g in examples() if g.stem == example))
        try:
            yield app, window
        finally:
            window.doc.mark_saved()
            window.close()
            _wait(app, 0.1)
