"""Run-history pruning: the budget (runs, bytes, environment overrides), oldest-first order,
pinned and newest records kept, a record's files removed, and the user's outputs (hard-linked
into records, single images and frame sequences) left whole."""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path

import pytest

from fathom.engine.history_prune import (
    DELETING,
    FileInfo,
    HistoryBudget,
    RecordUse,
    budget_from,
    clear_history,
    delete_record,
    plan_prune,
    prune_history,
    set_pinned,
)
from fathom.engine.run_history import HISTORY_DIR, REPORT_FORMAT, list_runs, record_run

GB = 2**30


def _use(name: str, *keys: tuple[int, int], pinned: bool = False) -> RecordUse:
    return RecordUse(Path(name), pinned, Counter(keys))


# ---- the pure plan -------------------------------------------------------------------------


def test_the_budget_comes_from_the_settings_unless_the_environment_overrides_it() -> None:
    assert budget_from(50, 2.0, {}) == HistoryBudget(50, 2 * GB)
    env = {"FATHOM_HISTORY_RUNS": "7", "FATHOM_HISTORY_GB": "0.5"}
    assert budget_from(50, 2.0, env) == HistoryBudget(7, GB // 2)
    assert budget_from(50, 2.0, {"FATHOM_HISTORY_GB": "0"}).max_bytes == 0  # no limit
    assert budget_from(50, 2.0, {"FATHOM_HISTORY_RUNS": "lots"}).max_runs == 50
    assert HistoryBudget(0, 0).unlimited and not HistoryBudget().unlimited


def test_the_oldest_unpinned_runs_go_first_past_the_run_count() -> None:
    records = [_use(f"r{i}") for i in (5, 4, 3, 2, 1)]  # newest first
    records[3].pinned = True  # r2
    plan = plan_prune(records, {}, HistoryBudget(max_runs=2, max_bytes=0))
    assert plan.remove == [Path("r1"), Path("r3")]  # r2 is pinned: kept, not counted
    assert plan.kept_runs == 2


def test_bytes_count_only_what_deleting_frees_and_the_newest_run_stays() -> None:
    files = {
        (1, 1): FileInfo(100, 1),  # only in r1
        (1, 2): FileInfo(300, 2),  # linked into r2 and r1 (a cached output)
        (1, 3): FileInfo(1000, 2),  # in r3, and still the user's output: frees nothing
        (1, 4): FileInfo(500, 2),  # in r4 and in pinned r5
        (1, 5): FileInfo(5000, 1),  # only in r6, the newest
    }
    records = [
        _use("r6", (1, 5)),
        _use("r5", (1, 4), pinned=True),
        _use("r4", (1, 4)),
        _use("r3", (1, 3)),
        _use("r2", (1, 2)),
        _use("r1", (1, 1), (1, 2)),
    ]
    plan = plan_prune(records, files, HistoryBudget(max_runs=0, max_bytes=5200))
    # Owned by unpinned records: 100 + 300 + 5000. Removing r1 frees 100 only (r2 still
    # links the shared file); removing r2 then frees its 300.
    assert plan.used_bytes == 5400
    assert plan.remove == [Path("r1"), Path("r2")]
    assert plan.kept_bytes == 5000
    # However small the budget, the newest record stays.
    tight = plan_prune(records, files, HistoryBudget(max_runs=0, max_bytes=1))
    assert Path("r6") not in tight.remove and Path("r5") not in tight.remove
    assert tight.remove == [Path("r1"), Path("r2"), Path("r3"), Path("r4")]
    assert plan_prune(records, files, HistoryBudget(0, 0)).remove == []


# ---- on disk -------------------------------------------------------------------------------


def _record(out: Path, outputs: list[Path], when: float) -> Path:
    report = {
        "format": REPORT_FORMAT,
        "status": "ok",
        "started_unix": when,
        "outputs": [str(p) for p in outputs],
    }
    return record_run(out, {"format": "fathom.graph", "nodes": []}, report)


def _write_outputs(out: Path, tag: str) -> tuple[Path, Path]:
    """A single file and a frame sequence folder, replaced the way saves replace them."""
    image = out / "image.png"
    tmp = out / "image.tmp"
    tmp.write_bytes(tag.encode() * 1000)
    os.replace(tmp, image)
    seq = out / "frames"
    fresh = out / "frames.new"
    fresh.mkdir()
    for i in range(3):
        (fresh / f"{i:04d}.png").write_bytes(f"{tag}{i}".encode() * 500)
    if seq.exists():
        old = out / "frames.old"
        seq.rename(old)
        fresh.rename(seq)
        for f in old.iterdir():
            f.unlink()
        old.rmdir()
    else:
        fresh.rename(seq)
    return image, seq


def test_pruning_removes_old_records_and_leaves_the_users_outputs(tmp_path: Path) -> None:
    folders = []
    for n, tag in enumerate("abcd"):
        image, seq = _write_outputs(tmp_path, tag)
        folders.append(_record(tmp_path, [image, seq], 1000.0 + n))
    set_pinned(folders[0], True)
    result = prune_history(tmp_path, HistoryBudget(max_runs=2, max_bytes=0))
    assert result.removed == [folders[1]]  # the oldest unpinned; the pinned one stays
    assert not folders[1].exists() and folders[0].exists()
    assert [e.folder for e in list_runs(tmp_path)] == [folders[3], folders[2], folders[0]]
    assert list_runs(tmp_path)[-1].pinned
    # The user's newest outputs are whole, and the kept records keep their own.
    assert (tmp_path / "image.png").read_bytes() == b"d" * 1000
    assert sorted(p.name for p in (tmp_path / "frames").iterdir()) == [
        "0000.png",
        "0001.png",
        "0002.png",
    ]
    assert (tmp_path / "frames" / "0002.png").read_bytes() == b"d2" * 500
    assert (folders[0] / "files" / "frames" / "0001.png").read_bytes() == b"a1" * 500
    assert (folders[2] / "files" / "image.png").read_bytes() == b"c" * 1000


def test_the_byte_budget_counts_replaced_outputs_not_current_ones(tmp_path: Path) -> None:
    folders = []
    for n, tag in enumerate("abc"):
        image, seq = _write_outputs(tmp_path, tag)
        folders.append(_record(tmp_path, [image, seq], 1000.0 + n))
    # a and b's outputs were replaced (only their records hold them, 4000 bytes each);
    # c's are the output folder's current files and cost the history nothing.
    result = prune_history(tmp_path, HistoryBudget(max_runs=0, max_bytes=6000))
    assert result.removed == [folders[0]]
    assert result.freed_bytes >= 4000 and result.kept_bytes < 6000
    assert (tmp_path / "image.png").read_bytes() == b"c" * 1000
    assert (tmp_path / "frames" / "0000.png").stat().st_nlink == 2  # the output, c's record


def test_deleting_is_for_records_only_and_clearing_keeps_pins(tmp_path: Path) -> None:
    image, seq = _write_outputs(tmp_path, "a")
    first = _record(tmp_path, [image, seq], 1000.0)
    second = _record(tmp_path, [image, seq], 1001.0)
    for wrong in (tmp_path, seq, tmp_path / HISTORY_DIR, first / "files"):
        with pytest.raises(ValueError):
            delete_record(wrong)
    set_pinned(first, True)
    assert not delete_record(first, unless_pinned=True)  # pruning leaves a pinned record
    assert clear_history(tmp_path) == [second]
    assert [e.folder for e in list_runs(tmp_path)] == [first]
    assert delete_record(first)  # the user may delete a pinned record
    assert list_runs(tmp_path) == []
    assert image.read_bytes() == b"a" * 1000 and len(list(seq.iterdir())) == 3
    assert image.stat().st_nlink == 1
    with pytest.raises(FileNotFoundError):
        set_pinned(first, True)


def test_a_deletion_cut_short_is_hidden_and_finished_later(tmp_path: Path) -> None:
    image, seq = _write_outputs(tmp_path, "a")
    record = _record(tmp_path, [image, seq], 1000.0)
    keep = _record(tmp_path, [image], 1001.0)
    half = record.with_name(DELETING + record.name)
    record.rename(half)  # as if the process quit during the removal
    assert [e.folder for e in list_runs(tmp_path)] == [keep]
    prune_history(tmp_path, HistoryBudget(max_runs=5, max_bytes=0))
    assert not half.exists() and keep.exists()
    assert len(list(seq.iterdir())) == 3


def test_a_record_deleted_meanwhile_does_not_stop_a_prune_or_a_clear(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The dock deletes on its worker while the recorder prunes on its own: a record that is
    gone by the time its turn comes is passed over (it used to abort the whole prune)."""
    import fathom.engine.history_prune as hp

    folders = []
    for n, tag in enumerate("abcd"):
        image, seq = _write_outputs(tmp_path, tag)
        folders.append(_record(tmp_path, [image, seq], 1000.0 + n))
    listed = hp.list_runs

    def listed_then_deleted(out: Path) -> list:
        entries = listed(out)
        delete_record(folders[0])  # the user's Delete lands between the listing and the prune
        return entries

    monkeypatch.setattr(hp, "list_runs", listed_then_deleted)
    result = prune_history(tmp_path, HistoryBudget(max_runs=1, max_bytes=0))
    assert result.removed == [folders[1], folders[2]]
    monkeypatch.setattr(hp, "list_runs", listed)
    assert [e.folder for e in list_runs(tmp_path)] == [folders[3]]
    assert not delete_record(folders[0])  # already gone: nothing to do, no error
    assert (tmp_path / "image.png").read_bytes() == b"d" * 1000


def test_a_failed_removal_never_changes_the_users_file_modes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The retry after a failed rmtree may open up the record's folders, but a file there is
    a hard link to the user's output: its mode is the output's and must stay as it was."""
    import shutil

    import fathom.engine.history_prune as hp

    image, seq = _write_outputs(tmp_path, "a")
    os.chmod(image, 0o644)
    folder = _record(tmp_path, [image, seq], 1000.0)
    real = shutil.rmtree
    calls = []

    def fails_once(path: object, *a: object, **k: object) -> None:
        calls.append(path)
        if len(calls) == 1:
            raise OSError("busy")
        real(path, *a, **k)  # type: ignore[arg-type]

    monkeypatch.setattr(hp.shutil, "rmtree", fails_once)
    assert delete_record(folder)
    assert len(calls) == 2 and not folder.exists()
    assert (image.stat().st_mode & 0o777) == 0o644
    assert image.read_bytes() == b"a" * 1000
