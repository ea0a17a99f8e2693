"""FrameStore's spill file: its size as the output cache counts it, and its removal, which
must never raise from a finaliser (Windows refuses to delete a file another handle holds)
and must also happen when the process exits with stores still alive."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import fathom.engine.media.framestore as framestore
from fathom.engine.media.framestore import FrameStore, remove_spill


def test_spilled_bytes_are_what_the_file_holds(tmp_path: Path) -> None:
    store = FrameStore(5, 3, 3, folder=tmp_path)
    assert store.spilled_nbytes() == 0
    for _ in range(4):
        store.append(np.zeros((3, 5, 3), np.uint8))
    assert store.spilled_nbytes() == store.path.stat().st_size == 4 * 5 * 3 * 3


def test_a_refused_delete_is_retried_at_exit_instead_of_raising(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "fathom-frames-held.raw"
    path.write_bytes(b"x")
    retried: list[Path] = []

    def refuse(self: Path, missing_ok: bool = False) -> None:
        raise PermissionError("the file is being used by another process")

    monkeypatch.setattr(Path, "unlink", refuse)
    monkeypatch.setattr(framestore.atexit, "register", lambda fn, p: retried.append(p))
    remove_spill(path)  # no exception
    assert retried == [path] and path.exists()


def test_stores_still_alive_at_exit_leave_no_file(tmp_path: Path) -> None:
    code = (
        "import numpy as np\n"
        "from fathom.engine.cache import OutputCache\n"
        "from fathom.engine.media.framestore import FrameStore\n"
        f"s = FrameStore(4, 4, 3, folder={str(tmp_path)!r})\n"
        "s.append(np.zeros((4, 4, 3), np.uint8))\n"
        "c = OutputCache()\n"
        "c.put('k', {'v': s.video(10.0)})\n"
        "print(s.path)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert Path(out.stdout.strip()).parent == tmp_path
    assert list(tmp_path.iterdir()) == []
