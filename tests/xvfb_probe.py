"""Running a small GUI probe script under its own Xvfb display (OpenGL needs a real X server,
not Qt's offscreen platform) and reading back the JSON it prints last."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]


def run_under_xvfb(script: Path, first_display: int) -> Any:
    """Run ``script`` with this Python under ``xvfb-run`` (the repository importable) and return
    the JSON of its last stdout line; fails the test if it exits non-zero. Each caller picks
    its own ``first_display``: two ``xvfb-run -a`` started together (pytest -n 2) can race for
    the same display number."""
    env = {k: v for k, v in os.environ.items() if k != "QT_QPA_PLATFORM"}
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")])
    first = str(first_display + os.getpid() % 100)
    proc = subprocess.run(
        ["xvfb-run", "-a", "-n", first, sys.executable, str(script)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])
