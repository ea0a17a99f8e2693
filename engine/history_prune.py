"""Keeping the run history within a budget: pinning, deleting and pruning records.

Every run adds a record (``engine.run_history``); without a limit the history grows for ever.
The budget keeps the newest ``max_runs`` unpinned records and at most ``max_bytes`` of the disk
they alone hold; pruning removes the oldest unpinned records until both hold. A pinned record
(its ``pinned`` file) is never pruned and does not count against the budget; the newest record
is never pruned either, so the run just made is always there.

Sizes are what deleting would free: a record's ``files/`` are hard links, often to the very
files in the output folder, so a file counts only where every link to it is in records being
measured (not the user's output, not a pinned record). Deleting a record removes the record's
own links and copies and nothing else: the output folder's files keep their data.

A record is deleted by renaming it to ``.deleting-<name>`` first (listings skip names starting
with "."), so it leaves the History at once and a removal cut short leaves no half record;
the next prune finishes such leftovers. No Qt here: the studio calls these on a worker.
"""

from __future__ import annotations

import os
import shutil
import stat
import threading
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from fathom.engine.run_history import HISTORY_DIR, PIN_FILE, HistoryEntry, list_runs

RUNS_ENV = "FATHOM_HISTORY_RUNS"
GB_ENV = "FATHOM_HISTORY_GB"
#: Unpinned runs kept by default (the History dock lists up to 500).
DEFAULT_MAX_RUNS = 200
#: Disk the unpinned records may hold by default (GB): a few long depth sequences.
DEFAULT_MAX_GB = 20.0
#: Prefix of a record being deleted.
DELETING = ".deleting-"

#: A file by identity: (device, inode).
FileKey = tuple[int, int]


@dataclass(frozen=True)
class HistoryBudget:
    """How much history to keep: 0 for either means no limit of that kind."""

    max_runs: int = DEFAULT_MAX_RUNS
    max_bytes: int = int(DEFAULT_MAX_GB * 2**30)

    @property
    def unlimited(self) -> bool:
        return self.max_runs <= 0 and self.max_bytes <= 0


def budget_from(
    max_runs: int, max_gb: float, env: Mapping[str, str] | None = None
) -> HistoryBudget:
    """The budget the settings give, unless ``FATHOM_HISTORY_RUNS`` or ``FATHOM_HISTORY_GB``
    overrides it (0: no limit); a value that is not a number is refused with a warning."""
    from fathom.engine.envvars import env_number

    runs = env_number(RUNS_ENV, max(0, max_runs), "history runs kept", env=env)
    gb = env_number(GB_ENV, max(0.0, max_gb), "gigabytes of history kept", env=env)
    return HistoryBudget(int(runs), int(gb * 2**30))


# ---- pins and deletion ---------------------------------------------------------------------


def set_pinned(folder: Path, on: bool) -> None:
    """Pin (keep whatever the budget) or unpin a record (OSError when it is gone)."""
    _check_record(folder)
    pin = folder / PIN_FILE
    with _CHANGING:  # not halfway through a prune that already chose this record
        if on:
            pin.touch()
        else:
            pin.unlink(missing_ok=True)


#: Pruning (the recorder's worker) and the History dock's pin, delete and clear (its own
#: worker) change the same folders: one at a time, so neither finds the other's half-done work.
_CHANGING = threading.RLock()


def _check_record(folder: Path) -> None:
    """Refuse anything but a record folder directly inside a history folder: deleting follows
    a path, and a wrong one must never reach the user's files."""
    if folder.parent.name != HISTORY_DIR or folder.name.startswith(".") or folder.is_symlink():
        raise ValueError(f"{folder} is not a run record")


def _remove_tree(folder: Path) -> None:
    """Remove a folder of links and copies. ``shutil.rmtree`` unlinks entries and never
    follows a link, so a linked frame's other names (the user's output) keep its data. When it
    fails, the record's folders are made writable and it is tried again; a file's mode is
    changed only on Windows (where a read-only file cannot be deleted) and only for a file
    with no other name: a hard link shares its mode with the user's output file."""
    try:
        shutil.rmtree(folder)
        return
    except FileNotFoundError:
        return
    except OSError:
        pass
    for root, dirs, files in os.walk(folder):
        for name in dirs:
            path = os.path.join(root, name)
            if not os.path.islink(path):
                os.chmod(path, stat.S_IWRITE | stat.S_IREAD | stat.S_IEXEC)
        for name in files if os.name == "nt" else ():
            path = os.path.join(root, name)
            if not os.path.islink(path) and os.stat(path).st_nlink == 1:
                os.chmod(path, stat.S_IWRITE | stat.S_IREAD)
    shutil.rmtree(folder)


def delete_record(folder: Path, *, unless_pinned: bool = False) -> bool:
    """Delete one run record: its graph, report and kept outputs, never the outputs
    themselves. With ``unless_pinned`` (pruning), a record pinned meanwhile is left alone:
    it is renamed out of sight first and renamed back if a pin turns up. True if deleted;
    False when it was pinned, or is already gone (another deletion got there first)."""
    _check_record(folder)
    with _CHANGING:
        if not folder.is_dir():
            return False
        if unless_pinned and (folder / PIN_FILE).exists():
            return False
        trash = folder.with_name(DELETING + folder.name)
        try:
            folder.rename(trash)
        except FileNotFoundError:
            return False  # deleted by another process meanwhile
        if unless_pinned and (trash / PIN_FILE).exists():
            trash.rename(folder)  # pinned between the look and the rename
            return False
        _remove_tree(trash)
        return True


def clear_history(output_dir: str | os.PathLike[str], keep_pinned: bool = True) -> list[Path]:
    """Delete every record under ``output_dir`` (pinned ones too unless ``keep_pinned``);
    the records deleted."""
    removed = []
    with _CHANGING:
        for entry in list_runs(output_dir):
            if keep_pinned and entry.pinned:
                continue
            if delete_record(entry.folder, unless_pinned=keep_pinned):
                removed.append(entry.folder)
        _sweep(Path(output_dir) / HISTORY_DIR)
    return removed


def _sweep(root: Path) -> None:
    """Finish deletions an earlier process did not (it quit or failed halfway)."""
    try:
        leftovers = [p for p in root.iterdir() if p.name.startswith(DELETING) and p.is_dir()]
    except OSError:
        return
    for path in leftovers:
        try:
            _remove_tree(path)
        except OSError:
            pass  # tried again next time


# ---- measuring and pruning -----------------------------------------------------------------


@dataclass
class RecordUse:
    """One record as pruning sees it: its files by identity, how many links it holds to each."""

    folder: Path
    pinned: bool
    links: Counter[FileKey] = field(default_factory=Counter)


@dataclass(frozen=True)
class FileInfo:
    size: int
    nlink: int


@dataclass(frozen=True)
class PrunePlan:
    """What pruning removes (oldest first), and the unpinned records' bytes before and after."""

    remove: list[Path]
    used_bytes: int
    kept_bytes: int
    kept_runs: int

    @property
    def freed_bytes(self) -> int:
        return self.used_bytes - self.kept_bytes


def measure(folder: Path, pinned: bool, files: dict[FileKey, FileInfo]) -> RecordUse:
    """The files of one record (adds each to ``files``); symbolic links are not followed."""
    use = RecordUse(folder, pinned)
    for root, _, names in os.walk(folder):
        for name in names:
            try:
                st = os.lstat(os.path.join(root, name))
            except OSError:
                continue
            key = (st.st_dev, st.st_ino)
            files[key] = FileInfo(st.st_size, st.st_nlink)
            use.links[key] += 1
    return use


def plan_prune(
    records: list[RecordUse], files: Mapping[FileKey, FileInfo], budget: HistoryBudget
) -> PrunePlan:
    """Which records to delete, oldest unpinned first, so that at most ``max_runs`` unpinned
    records remain and they alone hold at most ``max_bytes``. ``records`` are newest first.
    A file counts only while all its links are in unpinned records: one the output folder or
    a pinned record also holds frees nothing when those records go. Pure: reads no disk."""
    unpinned = [r for r in records if not r.pinned]
    held: Counter[FileKey] = Counter()
    for r in unpinned:
        held.update(r.links)
    owned = {k for k, n in held.items() if k in files and files[k].nlink <= n}
    used = sum(files[k].size for k in owned)
    kept_bytes, remove = used, []
    kept = len(unpinned)
    for r in reversed(unpinned[1:]):  # oldest first; the newest is always kept
        over_runs = budget.max_runs > 0 and kept > budget.max_runs
        over_bytes = budget.max_bytes > 0 and kept_bytes > budget.max_bytes
        if not (over_runs or over_bytes):
            break
        remove.append(r.folder)
        kept -= 1
        for key, n in r.links.items():
            held[key] -= n
            if held[key] <= 0 and key in owned:
                kept_bytes -= files[key].size
    return PrunePlan(remove, used, kept_bytes, kept)


@dataclass(frozen=True)
class PruneResult:
    removed: list[Path]
    freed_bytes: int
    kept_runs: int
    kept_bytes: int


def prune_history(output_dir: str | os.PathLike[str], budget: HistoryBudget) -> PruneResult:
    """Delete the oldest unpinned records under ``output_dir`` past the budget (see
    ``plan_prune``); slow for a long history of frame sequences, so call it on a worker."""
    with _CHANGING:  # the plan holds only while nobody else deletes or pins
        return _prune(output_dir, budget)


def _prune(output_dir: str | os.PathLike[str], budget: HistoryBudget) -> PruneResult:
    root = Path(output_dir) / HISTORY_DIR
    _sweep(root)
    if budget.unlimited:
        return PruneResult([], 0, 0, 0)
    entries: list[HistoryEntry] = list_runs(output_dir)
    files: dict[FileKey, FileInfo] = {}
    if budget.max_bytes > 0:
        records = [measure(e.folder, e.pinned, files) for e in entries]
    else:  # counting runs needs no sizes
        records = [RecordUse(e.folder, e.pinned) for e in entries]
    plan = plan_prune(records, files, budget)
    removed = [f for f in plan.remove if delete_record(f, unless_pinned=True)]
    if len(removed) == len(plan.remove):
        return PruneResult(removed, plan.freed_bytes, plan.kept_runs, plan.kept_bytes)
    # Pinned or deleted meanwhile: the plan's sums no longer hold; say only what is sure.
    kept = plan.kept_runs + len(plan.remove) - len(removed)
    return PruneResult(removed, 0, kept, plan.used_bytes)
