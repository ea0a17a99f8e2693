"""The engine and node library work without Qt: every module imports and `fathom nodes` runs
in a process where importing PySide6 (or pyqtgraph) raises ImportError."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

NO_QT = textwrap.dedent("""
    import importlib, io, pkgutil, sys
    from contextlib import redirect_stdout

    BLOCKED = ("PySide6", "shiboken6", "pyqtgraph", "PyQt5", "PyQt6", "PySide2")

    class BlockQt:
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in BLOCKED:
                raise ImportError(f"{name} is blocked: engine/ and nodes/ must not need Qt")
            return None

    sys.meta_path.insert(0, BlockQt())
    from fathom import engine, nodes

    failed, count = [], 0
    for pkg in (engine, nodes):
        for info in pkgutil.walk_packages(pkg.__path__, pkg.__name__ + "."):
            count += 1
            try:
                importlib.import_module(info.name)
            except Exception as exc:
                failed.append(f"{info.name}: {type(exc).__name__}: {exc}")
    from fathom.engine.cli import main
    out = io.StringIO()
    with redirect_stdout(out):
        rc = main(["nodes"])
    qt = sorted(m for m in sys.modules if m.split(".")[0] in BLOCKED)
    print(f"modules={count} rc={rc} listed={out.getvalue().count(chr(10))} qt={qt}")
    for f in failed:
        print("FAILED", f)
""")


def test_engine_and_nodes_import_and_list_without_qt() -> None:
    proc = subprocess.run(
        [sys.executable, "-c", NO_QT], cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = proc.stdout.strip().splitlines()
    failures = [line for line in lines if line.startswith("FAILED")]
    assert not failures, "\n".join(failures)
    summary = next(line for line in lines if line.startswith("modules="))
    fields = dict(part.split("=", 1) for part in summary.split(" "))
    assert int(fields["modules"]) >= 20
    assert fields["rc"] == "0" and int(fields["listed"]) >= 40
    assert fields["qt"] == "[]"


def test_the_command_line_never_imports_the_app() -> None:
    code = (
        "import sys; from fathom.engine.cli import main; main(['nodes', '--json']); "
        "app = [m for m in sys.modules if m.split('.')[:2] == ['fathom', 'app']]; "
        "print('APP' if app else 'NOAPP', file=sys.stderr)"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0 and proc.stderr.strip().endswith("NOAPP"), proc.stderr
