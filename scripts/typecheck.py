"""Type-check the engine with mypy, as the installed package `fathom.engine`.

The editable install maps `fathom.engine` onto engine/ with an import hook, which mypy cannot
follow; a link tree under build/typecheck (fathom/engine -> engine/) gives mypy the same names
the code imports, so imports between engine modules are checked, not treated as unknown.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from mypy import api

ROOT = Path(__file__).resolve().parents[1]


def main() -> int:
    tree = ROOT / "build" / "typecheck" / "fathom"
    tree.mkdir(parents=True, exist_ok=True)
    link = tree / "engine"
    if not link.is_symlink():
        link.symlink_to(ROOT / "engine", target_is_directory=True)
    os.environ["MYPYPATH"] = str(tree.parent)
    out, err, status = api.run(
        ["--config-file", str(ROOT / "pyproject.toml"), "-p", "fathom.engine"]
    )
    sys.stdout.write(out.replace(f"{tree}/", "").replace("build/typecheck/fathom/", ""))
    sys.stderr.write(err)
    return status


if __name__ == "__main__":
    sys.exit(main())
