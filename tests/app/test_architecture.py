"""The GUI layer keeps the architecture rules: it reads node metadata instead of naming node
types, never imports the node library, keeps its viewers apart and its functions short, and
its run-session model needs no Qt."""

from __future__ import annotations

import ast
import io
import re
import subprocess
import sys
import textwrap
import tokenize
from pathlib import Path

from fathom.engine.registry import default_registry

ROOT = Path(__file__).resolve().parents[2]
APP = ROOT / "app"
MAX_FUNCTION_LINES = 100


def app_sources() -> dict[Path, str]:
    return {p: p.read_text("utf-8") for p in sorted(APP.rglob("*.py"))}


def strings_and_comments(source: str) -> list[tuple[int, str]]:
    """(line, text) of every string literal (docstrings too) and comment: a node type id can
    only be named there (in code, ``video.frame(i)`` is a method call, not an id)."""
    kinds = {tokenize.STRING, tokenize.COMMENT}
    kinds.add(getattr(tokenize, "FSTRING_MIDDLE", tokenize.STRING))  # f-string text on 3.12+
    out = []
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        if tok.type in kinds:
            out.append((tok.start[0], tok.string))
    return out


def test_app_names_no_registered_node_type_id() -> None:
    registry = default_registry()
    ids = {cls.type_id for cls in registry.types()}
    ids |= {old for cls in registry.types() for old in cls.legacy_ids}
    assert len(ids) > 40 and "image.load" in ids  # the check below has something to find
    pattern = re.compile(
        r"(?<![\w.])(" + "|".join(re.escape(i) for i in sorted(ids, key=len, reverse=True)) + r")"
        r"(?![\w])"
    )
    found = [
        f"{path.relative_to(ROOT)}:{line}: {match.group(1)}"
        for path, source in app_sources().items()
        for line, text in strings_and_comments(source)
        for match in pattern.finditer(text)
    ]
    assert not found, "app/ names node types; read node metadata instead:\n" + "\n".join(found)


def test_the_check_finds_a_node_id_where_one_is_named() -> None:
    """The grep above is not vacuous: a planted id in a string and in a comment is found."""
    source = 'LOADER = "image.load"  # like mesh.load\ntrimesh.load(x)\n'
    texts = [t for _, t in strings_and_comments(source)]
    assert any("image.load" in t for t in texts) and any("mesh.load" in t for t in texts)
    assert not any("trimesh" in t for t in texts)


def imported_modules(source: str) -> set[str]:
    """Every module an import statement names, anywhere in the file (lazy imports too)."""
    out = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            out.add(node.module)
            out |= {f"{node.module}.{a.name}" for a in node.names}
    return out


def test_app_never_imports_the_node_library() -> None:
    bad = [
        f"{path.relative_to(ROOT)}: {name}"
        for path, source in app_sources().items()
        for name in imported_modules(source)
        if name == "fathom.nodes" or name.startswith("fathom.nodes.")
    ]
    assert not bad, "\n".join(bad)


def test_the_mesh_preview_and_the_360_viewer_do_not_import_each_other() -> None:
    mesh_view = imported_modules((APP / "preview" / "mesh_view.py").read_text("utf-8"))
    viewer360 = imported_modules((APP / "viewer360.py").read_text("utf-8"))
    assert not any(m.startswith("fathom.app.viewer360") for m in mesh_view)
    assert not any(m.startswith("fathom.app.preview.mesh_view") for m in viewer360)


def test_no_function_in_app_is_over_100_lines() -> None:
    long = [
        f"{path.relative_to(ROOT)}:{node.lineno} {node.name} ({n} lines)"
        for path, source in app_sources().items()
        for node in ast.walk(ast.parse(source))
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
        and (n := node.end_lineno - node.lineno + 1) > MAX_FUNCTION_LINES
    ]
    assert not long, "\n".join(long)


NO_QT_SESSION = textwrap.dedent("""
    import sys

    BLOCKED = ("PySide6", "shiboken6", "pyqtgraph", "PyQt5", "PyQt6", "PySide2")

    class BlockQt:
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in BLOCKED:
                raise ImportError(f"{name} is blocked: app.session must not need Qt")
            return None

    sys.meta_path.insert(0, BlockQt())
    from fathom.app.session import RunOutcome, RunSession
    from fathom.engine.events import Event

    session = RunSession()
    seen = []
    session.subscribe(lambda kind, payload: seen.append(kind))
    session.started()
    session.handle(Event("node_started", "a"))
    session.handle(Event("node_failed", "a", message="boom", seconds=0.5))
    session.finished(RunOutcome(error="could not plan"))
    qt = sorted(m for m in sys.modules if m.split(".")[0] in BLOCKED)
    print("status", session.status("a").status, session.status("a").seconds)
    print("events", ",".join(seen))
    print("qt", qt)
""")


def test_the_run_session_imports_and_runs_without_qt() -> None:
    proc = subprocess.run(
        [sys.executable, "-c", NO_QT_SESSION], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = dict(line.split(" ", 1) for line in proc.stdout.strip().splitlines())
    assert lines["status"] == "failed 0.5"
    assert lines["events"] == "run_started,node_status,node_status,log,log,run_finished"
    assert lines["qt"] == "[]"
