"""The studio's view of the models on this machine: listed and downloaded off the GUI thread.

``ModelCatalog`` lists the models (``engine.models.catalog.list_models``: it reads every models
folder and hub cache, too slow for the GUI thread) on a worker and keeps the answer for every
model picker and the missing-models dialog. ``download`` runs ``pull`` (the engine's
``pull_model``; an attribute, so tests inject a fake) on a thread of its own, with progress and
cancel. The threads never touch a Qt object: a GUI-thread timer reads their state and emits
the signals, as ``app.preview.worker`` does for previews.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, QTimer, Signal

from fathom.app.preview.worker import BackgroundRenderer
from fathom.engine.errors import Cancelled
from fathom.engine.models.catalog import (
    HUB_CACHE,
    ModelEntry,
    Place,
    describe,
    fits,
    list_models,
    lora_fits,
)
from fathom.engine.models.locate import ModelError
from fathom.engine.models.pull import PullProgress, pull_model

#: How often running downloads are looked at (ms): a bar moves smoothly at this rate.
POLL_MS = 50
#: A list older than this (s) is refreshed when a picker opens: files may have been copied in.
STALE_S = 30.0


#: The states of a download that still has a thread working.
ACTIVE_STATES = ("running", "cancelling")


@dataclass
class Download:
    """One model being downloaded: its state ("running", "cancelling", "cancelled", "failed",
    "done"), progress, the error's text, the folder it went to."""

    repo_id: str
    state: str = "running"
    progress: PullProgress | None = None
    message: str = ""
    path: Path | None = None
    cancel_event: threading.Event = field(default_factory=threading.Event)
    version: int = 0

    @property
    def active(self) -> bool:
        return self.state in ACTIVE_STATES


class ModelCatalog(QObject):
    """The models found here (``entries``; None until the first listing ends) and the
    downloads under way, shared by one window's pickers and dialogs."""

    #: A listing ended: ``entries`` changed.
    changed = Signal()
    #: A download's progress or state changed: its hub id.
    download_changed = Signal(str)

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.entries: list[ModelEntry] | None = None
        self.places: list[Place] = []
        self.error = ""
        #: Injected in tests: what lists the models, what downloads one.
        self.list_models: Callable[[], tuple[list[ModelEntry], list[Place]]] = list_models
        self.pull: Callable[..., Path] = pull_model
        self.downloads: dict[str, Download] = {}
        self._lock = threading.Lock()
        self._seen: dict[str, int] = {}
        self._lister = BackgroundRenderer(self._listed, self)
        self._listing = False
        self._listed_at = 0.0
        self._timer = QTimer(self)
        self._timer.setInterval(POLL_MS)
        self._timer.timeout.connect(self._poll)

    # ---- the list ------------------------------------------------------------------------------

    @property
    def loading(self) -> bool:
        return self._listing

    def refresh(self) -> None:
        """List again (after a download, a settings change, or when the user asks)."""
        self._listing = True
        self._lister.submit(lambda: self.list_models(), "list")

    def ensure(self, max_age: float | None = None) -> None:
        """List the first time a picker needs the list (and again when it is older than
        ``max_age`` seconds: the picker shows the old list until the new one is in)."""
        stale = max_age is not None and time.monotonic() - self._listed_at > max_age
        if (self.entries is None or stale) and not self._listing:
            self.refresh()

    def _listed(self, _tag: Any, result: Any) -> None:
        self._listing = False
        self._listed_at = time.monotonic()
        if isinstance(result, BaseException):
            self.error = f"{type(result).__name__}: {result}"
            self.entries = self.entries or []
        else:
            self.error = ""
            self.entries, self.places = result
        self.changed.emit()

    def fitting(self, families: tuple[str, ...], inpainting: bool | None) -> list[ModelEntry]:
        return [e for e in self.entries or [] if fits(e, families, inpainting)]

    def find(self, value: str, base_dir: Path | None = None, kind: str = "") -> ModelEntry | None:
        """The listed model a parameter's value names (by reference or by path); of ``kind``
        first where one is asked for (``depth`` may name a model folder and a ControlNet in
        ``controlnet/``: a ControlNet parameter means the latter)."""
        if not value:
            return None
        hits = [e for e in self.entries or [] if value in (e.reference, e.path)]
        if not hits:
            path = Path(value).expanduser()
            if base_dir is not None and not path.is_absolute():
                path = base_dir / path
            if path.exists():
                resolved = str(path.resolve())
                hits = [e for e in self.entries or [] if e.path == resolved]
        return next((e for e in hits if e.kind == kind), hits[0] if hits else None)

    def of_kind(self, kind: str) -> list[ModelEntry]:
        """The listed models of one kind ("controlnet", "ip-adapter"), usable or not."""
        return [e for e in self.entries or [] if e.kind == kind]

    def describe_value(self, value: str, base_dir: Path, kind: str = "") -> ModelEntry | None:
        """What a parameter's value is: a listed model (of ``kind`` first), or a file or
        folder on disk (read now: identifying one reads a config or a file header, not the
        weights)."""
        hit = self.find(value, base_dir, kind)
        if hit is not None or not value:
            return hit
        path = Path(value).expanduser()
        path = path if path.is_absolute() else base_dir / path
        if not path.exists():
            return None
        return describe(path, value, "chosen path", path.parent, size=0)

    def loras(self, model: ModelEntry | None) -> list[ModelEntry]:
        """The LoRAs that fit ``model`` (all of them when the model is not known)."""
        return [e for e in self.entries or [] if lora_fits(e, model)]

    # ---- downloads -----------------------------------------------------------------------------

    def download(self, repo_id: str) -> Download:
        """Start downloading a hub model (or return the download already under way)."""
        current = self.downloads.get(repo_id)
        if current is not None and current.active:
            return current
        job = Download(repo_id)
        self.downloads[repo_id] = job
        threading.Thread(
            target=self._download, args=(job,), name="model-download", daemon=True
        ).start()
        self._timer.start()
        self.download_changed.emit(repo_id)
        return job

    def cancel(self, repo_id: str) -> None:
        job = self.downloads.get(repo_id)
        if job is not None and job.state == "running":
            job.cancel_event.set()
            self._update(job, state="cancelling")
            self.download_changed.emit(repo_id)

    def _update(self, job: Download, **changes: Any) -> None:
        with self._lock:
            for k, v in changes.items():
                setattr(job, k, v)
            job.version += 1

    def _download(self, job: Download) -> None:
        """The download thread: runs ``pull`` and records how it ended (never touches Qt)."""
        try:
            path = self.pull(
                job.repo_id,
                progress=lambda p: self._update(job, progress=p),
                cancelled=job.cancel_event.is_set,
            )
        except Cancelled:
            self._update(job, state="cancelled", message="cancelled")
        except ModelError as exc:
            self._update(job, state="failed", message=str(exc))
        except Exception as exc:  # noqa: BLE001 - shown beside the model, never raised
            self._update(job, state="failed", message=f"{type(exc).__name__}: {exc}")
        else:
            self._update(job, state="done", path=Path(path))

    def _poll(self) -> None:
        """GUI thread: announce the downloads that moved; list again when one finished."""
        with self._lock:  # one consistent look: a change after it is caught next time
            seen = [(r, j.version, j.state) for r, j in self.downloads.items()]
        finished = False
        for repo_id, version, state in seen:
            if self._seen.get(repo_id) != version:
                self._seen[repo_id] = version
                finished = finished or state == "done"
                self.download_changed.emit(repo_id)
        if finished:
            self.refresh()
        if not any(state in ("running", "cancelling") for _, _, state in seen):
            self._timer.stop()


def source_text(entry: ModelEntry) -> str:
    """Where a model was found, as a user reads it."""
    if entry.source == HUB_CACHE:
        return "Hugging Face cache"
    return f"{entry.subfolder}/ in models folder" if entry.subfolder else "models folder"
