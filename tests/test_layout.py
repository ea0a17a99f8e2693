"""The layout rules the code holds to, checked on the source: no function over 100 lines (in
the packages, benchmarks and tests), and every module opens with a docstring saying what it
holds."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("engine", "nodes", "app")
#: The function-length rule holds for the benchmarks and the tests too.
SOURCES = (*PACKAGES, "bench", "tests", "scripts")
MAX_LINES = 100


def _modules() -> list[Path]:
    return sorted(p for pkg in PACKAGES for p in (ROOT / pkg).rglob("*.py"))


@pytest.mark.parametrize("package", SOURCES)
def test_no_function_is_over_a_hundred_lines(package: str) -> None:
    long = []
    for path in sorted((ROOT / package).rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text("utf-8"))):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                length = (node.end_lineno or node.lineno) - node.lineno + 1
                if length > MAX_LINES:
                    long.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.name} ({length})")
    assert not long, "functions over 100 lines:\n" + "\n".join(long)


def test_every_module_opens_with_a_docstring() -> None:
    bare = [
        str(p.relative_to(ROOT))
        for p in _modules()
        if not ast.get_docstring(ast.parse(p.read_text("utf-8")))
    ]
    assert not bare, bare


def test_every_subpackage_is_listed_for_the_wheel() -> None:
    """pyproject.toml names the packages one by one (the folders map onto ``fathom.*``), so a new
    folder left off the list installs nowhere and only a wheel install would notice."""
    import tomllib

    listed = set(
        tomllib.loads((ROOT / "pyproject.toml").read_text("utf-8"))["tool"]["setuptools"][
            "packages"
        ]
    )
    found = {
        "fathom." + ".".join(init.parent.relative_to(ROOT).parts)
        for top in ("engine", "nodes", "app")
        for init in (ROOT / top).rglob("__init__.py")
    }
    assert found <= listed, f"add to [tool.setuptools] packages: {sorted(found - listed)}"
