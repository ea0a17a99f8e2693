"""Downloading a Hugging Face model: only the files its loader reads, resumably, with progress.

A hub repository usually holds several copies of one model: both precisions of every part
(``model.safetensors`` and ``model.fp16.safetensors``), pickle and other frameworks' weights
(``.bin``, Flax, ONNX, OpenVINO), and for a diffusers pipeline single-file checkpoints at the
top beside the diffusers folders (``svd_xt.safetensors``). ``select_files`` — a pure function of
the repository's file list, tested on recorded lists — keeps the configurations and tokenizers,
and of the weights one precision of each part its pipeline loads. ``pull_model`` lists the
repository, reads its ``model_index.json`` when it has one, and downloads that selection with
``huggingface_hub`` (which resumes an interrupted file where it stopped on the next pull).
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fathom.engine.errors import Cancelled
from fathom.engine.models.locate import (
    ModelError,
    loaded_components,
    looks_like_hub_id,
    model_folders,
    safetensors_files,
)

#: Configuration and tokenizer files: always fetched (they are small, and every loader needs
#: them; a single-file checkpoint needs only these, ``--configs-only``).
CONFIG_SUFFIXES = (".json", ".txt", ".model", ".yaml", ".yml")
#: Weights Fathom never loads: pickle (it can run code), other frameworks, other runtimes.
FOREIGN_WEIGHT_SUFFIXES = (
    ".bin",
    ".ckpt",
    ".pt",
    ".pth",
    ".pkl",
    ".msgpack",
    ".h5",
    ".onnx",
    ".onnx_data",
    ".ot",
    ".tflite",
    ".mlmodel",
    ".gguf",
)
#: When a part ships only precision variants and none was asked for (or the one asked for is
#: missing): the first of these that is there, else the alphabetically first.
VARIANT_PREFERENCE = ("fp32", "fp16", "bf16")
#: Pipeline parts listed without an index to say which are loaded: the ones never loaded.
NEVER_LOADED = ("safety_checker", "feature_extractor")

# ``stem[.variant][-00001-of-00002].safetensors``; a variant starts with a letter, so a version
# in a file name (``sd_xl_base_1.0.safetensors``) is part of the stem.
_WEIGHT = re.compile(
    r"^(?P<stem>.+?)(?:\.(?P<variant>[A-Za-z][A-Za-z0-9_]*))?(?P<shard>-\d{5}-of-\d{5})?"
    r"\.safetensors$"
)
# ``stem.safetensors.index[.variant].json``: which shards make one sharded weight file.
_WEIGHT_INDEX = re.compile(
    r"^(?P<stem>.+)\.safetensors\.index(?:\.(?P<variant>[A-Za-z][A-Za-z0-9_]*))?\.json$"
)
_FOREIGN_INDEX = re.compile(r"\.(bin|pt|pth|ckpt|msgpack|h5)\.index(\.[^.]+)?\.json$")


@dataclass(frozen=True)
class _Weight:
    path: str
    group: tuple[str, str]  # (folder, stem): one part's weights, in any precision and shard
    variant: str | None


def _weight(path: str) -> _Weight | None:
    folder, name = posixpath.split(path)
    for pattern in (_WEIGHT, _WEIGHT_INDEX):
        m = pattern.match(name)
        if m:
            return _Weight(path, (folder, m["stem"]), m["variant"])
    return None


def _is_config(path: str) -> bool:
    name = posixpath.basename(path)
    return (
        name.lower().endswith(CONFIG_SUFFIXES)
        and not _WEIGHT_INDEX.match(name)
        and not _FOREIGN_INDEX.search(name)
    )


def _is_foreign_weight(path: str) -> bool:
    return path.lower().endswith(FOREIGN_WEIGHT_SUFFIXES) or ".mlpackage/" in path


def _choose_variant(present: set[str | None], wanted: str | None) -> str | None:
    """The precision of one part to fetch: the one asked for where the part has it, else the
    plain one, else the preferred variant that is there."""
    if wanted in present:
        return wanted
    if None in present:
        return None
    named = sorted(v for v in present if v is not None)
    return next((v for v in VARIANT_PREFERENCE if v in present), named[0])


def _top(path: str) -> str:
    return path.split("/", 1)[0] if "/" in path else ""


def _pipeline_parts(repo_files: list[str], index: dict[str, Any] | None) -> set[str] | None:
    """The folders whose weights a diffusers pipeline loads; None when the repository is not
    a pipeline (no ``model_index.json`` at its top). Without the index's contents: every
    folder holding a configuration, but the safety checker and its feature extractor."""
    if "model_index.json" not in repo_files:
        return None
    if index is not None:
        return set(loaded_components(index))
    configured = {_top(f) for f in repo_files if _is_config(f) and "/" in f}
    return configured - set(NEVER_LOADED)


def _named_folders(index: dict[str, Any] | None) -> set[str] | None:
    """The folders a pipeline's index names (loaded or not): their configurations describe
    the pipeline. Other folders (ONNX, OpenVINO exports, spare autoencoders) are not its."""
    if index is None:
        return None
    return {n for n, spec in index.items() if isinstance(spec, list)} | set(
        loaded_components(index)
    )


def select_files(
    repo_files: list[str],
    variant: str | None = None,
    index: dict[str, Any] | None = None,
    configs_only: bool = False,
) -> list[str]:
    """The files of a hub repository a pull fetches, sorted.

    Configurations and tokenizers always (a pipeline's: its top folder's and those of the
    folders its ``index`` names); of the weights, only ``.safetensors``, and of each part
    (a folder and file stem, every shard of it) one precision: ``variant`` where the part
    has it, else the plain files, else the variant there is. For a diffusers pipeline (a
    ``model_index.json`` at the top; ``index`` is its contents) only the parts its loader
    reads: no single-file copies at the top, no safety checker, no folders it does not name.
    Pure: a function of the names alone.
    """
    parts = _pipeline_parts(repo_files, index)
    named = _named_folders(index) if parts is not None else None
    out = []
    for f in repo_files:
        if _is_config(f) and (named is None or _top(f) in named or "/" not in f):
            out.append(f)
    if configs_only:
        return sorted(set(out))
    groups: dict[tuple[str, str], list[_Weight]] = {}
    for f in repo_files:
        w = _weight(f)
        if w is None or (parts is not None and (_top(f) not in parts or "/" not in f)):
            continue
        groups.setdefault(w.group, []).append(w)
    for members in groups.values():
        present = {w.variant for w in members if w.path.endswith(".safetensors")}
        if present:  # (an index without its shards names nothing to fetch)
            chosen = _choose_variant(present, variant)
            out += [w.path for w in members if w.variant == chosen]
    return sorted(set(out))


def pickle_only_parts(
    repo_files: list[str], selected: list[str], index: dict[str, Any] | None = None
) -> list[str]:
    """The parts (folders; "" the top) a pull would leave without weights because the
    repository ships them only as pickle or other frameworks' files: their loader would fail
    after the download, so the pull refuses before it."""
    parts = _pipeline_parts(repo_files, index)
    have = {posixpath.dirname(f) for f in selected if f.endswith(".safetensors")}
    foreign = {posixpath.dirname(f) for f in repo_files if _is_foreign_weight(f)}
    if parts is None:  # one model (or a set of files): some safetensors weights are enough
        return [] if have else sorted(foreign)
    return sorted(f for f in foreign if f in parts and f not in have)


# ---- the download --------------------------------------------------------------------------------


@dataclass(frozen=True)
class PullProgress:
    """How far a pull is: files finished of those it fetches, and bytes written of those
    known so far (a file's size is known once its download starts)."""

    files_done: int
    files_total: int
    bytes_done: int
    bytes_total: int

    @property
    def fraction(self) -> float | None:
        if self.bytes_total > 0:
            return min(1.0, self.bytes_done / self.bytes_total)
        if self.files_total > 0:
            return self.files_done / self.files_total
        return None


ProgressFn = Callable[[PullProgress], None]


@dataclass
class PullPlan:
    """What a pull of ``repo_id`` fetches, and where it puts it."""

    repo_id: str
    revision: str | None
    files: list[str]
    cache_dir: Path | None


OFFLINE = "cannot download {id}: this machine is offline or cannot reach the Hugging Face hub"


@contextmanager
def _hub_errors(repo_id: str) -> Iterator[None]:
    """Hub failures as ModelErrors that say what to do; a cancel passes through."""
    from huggingface_hub import errors as hub_errors

    offline = OFFLINE.format(id=repo_id)
    try:
        yield
    except (
        hub_errors.RepositoryNotFoundError,
        hub_errors.RevisionNotFoundError,
        hub_errors.GatedRepoError,
    ) as exc:
        raise ModelError(
            f"cannot download {repo_id}: {type(exc).__name__}: {str(exc).splitlines()[0]}. "
            "Fix: check the id (org/name) on huggingface.co; a gated model needs you to accept "
            "its licence there and `hf auth login` here."
        ) from exc
    except (hub_errors.LocalEntryNotFoundError, hub_errors.HfHubHTTPError, OSError) as exc:
        raise ModelError(
            f"{offline} ({type(exc).__name__}: {str(exc).splitlines()[0]}). "
            "Fix: check the connection (and a proxy or HF_ENDPOINT), then pull again: what "
            "was downloaded is kept and the rest resumes."
        ) from exc
    except Cancelled:
        raise
    except Exception as exc:
        name = type(exc).__name__
        if "Connect" in name or "Timeout" in name or "Network" in name:
            raise ModelError(
                f"{offline} ({name}). Fix: check the connection, then pull again."
            ) from exc
        raise


def plan_pull(
    repo_id: str,
    revision: str | None = None,
    variant: str | None = None,
    configs_only: bool = False,
) -> PullPlan:
    """List the repository and choose its files (``select_files``); a pipeline's
    ``model_index.json`` is fetched first, since it says which parts are loaded. ModelError
    when offline, not found, or when a part exists only as pickle weights."""
    from huggingface_hub import constants, list_repo_files, snapshot_download

    if not looks_like_hub_id(repo_id):
        raise ModelError(
            f"{repo_id!r} is not a Hugging Face id. Fix: give one like 'org/name' (the part "
            "of its huggingface.co address after the host)."
        )
    if constants.HF_HUB_OFFLINE:
        raise ModelError(
            f"{OFFLINE.format(id=repo_id)} (HF_HUB_OFFLINE is set). Fix: connect to the "
            "internet and unset HF_HUB_OFFLINE, or copy the model folder here and point the "
            "node at it."
        )
    folders = model_folders()
    cache_dir = folders[0] if folders else None
    cache = str(cache_dir) if cache_dir else None
    with _hub_errors(repo_id):
        repo_files = list(list_repo_files(repo_id, revision=revision))
        index = None
        if "model_index.json" in repo_files:
            import json

            top = snapshot_download(
                repo_id, revision=revision, cache_dir=cache, allow_patterns=["model_index.json"]
            )
            index = json.loads((Path(top) / "model_index.json").read_text("utf-8"))
    files = select_files(repo_files, variant, index, configs_only)
    bad = [] if configs_only else pickle_only_parts(repo_files, files, index)
    if bad:
        where = ", ".join(f"{b}/" if b else "the top folder" for b in bad)
        raise ModelError(
            f"{repo_id} ships the weights in {where} only as pickle or other frameworks' "
            "files: Fathom loads .safetensors only, because loading a pickle file can run any "
            "code it contains. Fix: choose a repository that ships .safetensors weights, or "
            "convert this one on a machine where you trust it (diffusers' "
            "save_pretrained(..., safe_serialization=True))."
        )
    return PullPlan(repo_id, revision, files, cache_dir)


def _progress_bar_class(progress: ProgressFn | None, cancelled: Callable[[], bool] | None) -> Any:
    """A tqdm class for ``snapshot_download`` that draws nothing and reports its counts to
    ``progress`` (from the download threads), and raises Cancelled in whichever thread
    updates it once ``cancelled()`` says so: downloads stop at their next chunk, their
    partial files stay for the next pull to resume."""
    from tqdm.std import tqdm

    class _Sink:
        def write(self, _text: str) -> None:
            pass

        def flush(self) -> None:
            pass

    state = {"files": 0, "files_total": 0}
    byte_bars: list[Any] = []

    class Bar(tqdm):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            kwargs.pop("name", None)
            # The hub's bars: files finished; bytes written; bytes received (left out: a
            # deduplicating transfer receives fewer bytes than it writes).
            if kwargs.get("unit") != "B":
                self._role = "files"
            else:
                self._role = "received" if "Downloading" in str(kwargs.get("desc")) else "bytes"
            kwargs["file"] = _Sink()
            super().__init__(*args, **kwargs)
            if self._role == "bytes":
                byte_bars.append(self)
            elif self._role == "files" and kwargs.get("total"):
                state["files_total"] = int(kwargs["total"])

        def update(self, n: float | None = 1) -> bool | None:
            if cancelled is not None and cancelled():
                raise Cancelled("the download was cancelled")
            out = super().update(n)
            if self._role == "files":
                state["files"] += int(n or 0)
            if progress is not None and self._role != "received":
                progress(
                    PullProgress(
                        state["files"],
                        state["files_total"],
                        int(sum(b.n for b in byte_bars)),
                        int(sum(b.total or 0 for b in byte_bars)),
                    )
                )
            return out

    return Bar


def pull_model(
    repo_id: str,
    revision: str | None = None,
    configs_only: bool = False,
    variant: str | None = None,
    progress: ProgressFn | None = None,
    cancelled: Callable[[], bool] | None = None,
) -> Path:
    """Download a hub model into the first models folder (the Hugging Face cache when none is
    set): its configurations and, unless ``configs_only``, one precision of the safetensors
    weights its pipeline loads (``variant``, e.g. "fp16", per part where there is one). An
    interrupted pull resumes: huggingface_hub keeps partial files and completes them. With
    neither ``progress`` nor ``cancelled`` the hub draws its own progress bars; with them,
    progress goes to ``progress`` and ``cancelled()`` stops the download (Cancelled)."""
    plan = plan_pull(repo_id, revision, variant, configs_only)
    return fetch(plan, progress, cancelled, configs_only)


def fetch(
    plan: PullPlan,
    progress: ProgressFn | None = None,
    cancelled: Callable[[], bool] | None = None,
    configs_only: bool = False,
) -> Path:
    """Download the files a plan chose (``pull_model`` without the listing); the snapshot
    folder. Files already complete are not fetched again."""
    from huggingface_hub import snapshot_download

    extra: dict[str, Any] = {}
    if progress is not None or cancelled is not None:
        extra["tqdm_class"] = _progress_bar_class(progress, cancelled)
    with _hub_errors(plan.repo_id):
        path = snapshot_download(
            plan.repo_id,
            revision=plan.revision,
            cache_dir=str(plan.cache_dir) if plan.cache_dir else None,
            allow_patterns=plan.files,
            **extra,
        )
    out = Path(path)
    if not configs_only:
        safetensors_files(out)  # says so now if the repo holds no safetensors weights
    return out
