"""The models on this machine: each one's family, kind, size and where it was found.

``list_models`` looks in every models folder (its top level, and its add-on subfolders
``loras/``, ``embeddings/``, ``controlnet/``, ``ipadapter/``: ``locate.ADDON_FOLDERS``) and in
the Hugging Face caches (a models folder's own ``models--org--name`` entries, then the user's
cache). What a model is comes from its files (``families.identify``), never from its name.
``fathom models list --json`` prints this shape (version 1; fields are only ever added):

.. code-block:: text

    {"format": "fathom.models", "version": 1,
     "models": [{
        "name": "sd15",                  # how it is shown
        "reference": "sd15",             # what a node's parameter (or a LoRA line) takes
        "path": "/models/sd15",
        "family": "sd1", "family_title": "Stable Diffusion 1.x",   # families.TITLES
        "kind": "pipeline",     # single file, lora, controlnet, ip-adapter, embedding,
                                # depth, segmentation; folder or file when unrecognised
        "architecture": "StableDiffusionPipeline",   # pipeline or model class ("" unknown)
        "inpainting": false, "one_step": false,
        "cross_attention_dim": 768,      # text-feature width (UNet models, LoRAs), or null
        "size_bytes": 2132856622,
        "source": "models folder",       # or "hub cache"
        "folder": "/models",             # the models folder or hub cache it is in
        "subfolder": "",                 # add-on subfolder it is in: "loras", ...
        "problem": "",                   # why it cannot be used as it is, or ""
        "model_type": ""}],              # a transformers folder's config model_type, or ""
     "looked_in": [{"path": "/models", "origin": "FATHOM_MODELS", "exists": true,
                    "addon_folders": [{"kind": "lora", "path": "/models/loras"}]}]}
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from fathom.engine.models.families import (
    TITLES,
    ModelInfo,
    identify,
    lora_cross_dim,
    model_cross_dim,
    safetensors_header,
    transformers_model_type,
)
from fathom.engine.models.locate import (
    ADDON_FOLDERS,
    PICKLE_SUFFIXES,
    ModelError,
    hub_cache,
    locate_addon,
    locate_model,
    model_folder_sources,
)

FORMAT = "fathom.models"
VERSION = 1
MODELS_FOLDER, HUB_CACHE = "models folder", "hub cache"
#: Kinds that add to a model rather than being one: a node's ``model`` never takes them.
ADDON_KINDS = ("lora", "controlnet", "ip-adapter", "embedding")
#: How a kind reads in a label ("SDXL ControlNet"), where its plain name is not how it is written.
KIND_TITLES = {"lora": "LoRA", "controlnet": "ControlNet", "ip-adapter": "IP-Adapter"}
#: Names in a models folder that are not models (hub cache entries are listed as the cache's).
SKIPPED_PREFIXES = (".", "_", "models--", "datasets--", "spaces--")


@dataclass(frozen=True)
class ModelEntry:
    """One model found on this machine (the module docstring documents each field)."""

    name: str
    reference: str
    path: str
    family: str
    kind: str
    size_bytes: int
    source: str
    folder: str
    subfolder: str = ""
    architecture: str = ""
    inpainting: bool = False
    one_step: bool = False
    cross_attention_dim: int | None = None
    problem: str = ""
    #: A transformers model folder's ``model_type`` ("depth_anything", "dpt"; "" otherwise):
    #: some modes of a node run only some types (``Node.mode_models``).
    model_type: str = ""

    @property
    def family_title(self) -> str:
        return TITLES.get(self.family, self.family)

    @property
    def label(self) -> str:
        """'SDXL pipeline', 'SDXL ControlNet', 'Stable Diffusion 1.x pipeline (inpainting)': for
        lists."""
        family = "unknown family" if self.family == "unknown" else self.family_title
        traits = [
            t for t, on in (("inpainting", self.inpainting), ("one-step", self.one_step)) if on
        ]
        kind = "model" if self.kind == self.family else self.kind  # "depth estimation model"
        kind = KIND_TITLES.get(kind, kind)
        return f"{family} {kind}" + (f" ({', '.join(traits)})" if traits else "")

    @property
    def usable(self) -> bool:
        return not self.problem

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["family_title"] = self.family_title
        return d


@dataclass(frozen=True)
class Place:
    """A place looked in: a models folder (and its add-on subfolders) or a hub cache."""

    path: Path
    origin: str
    exists: bool
    addon_folders: list[tuple[str, Path]] = field(default_factory=list)

    def __str__(self) -> str:
        return f"{self.path} ({self.origin}{'' if self.exists else ', missing'})"

    def as_dict(self) -> dict[str, Any]:
        return {
            "path": str(self.path),
            "origin": self.origin,
            "exists": self.exists,
            "addon_folders": [{"kind": k, "path": str(p)} for k, p in self.addon_folders],
        }


def fits(entry: ModelEntry, families: tuple[str, ...], inpainting: bool | None = None) -> bool:
    """Whether a node that runs ``families`` (empty: any) takes ``entry`` as its model:
    usable, not an add-on, of one of those families and, where the node says, an
    inpainting model or not one (the checks ``generation.family_problems`` makes)."""
    if not entry.usable or entry.kind in ADDON_KINDS:
        return False
    if entry.kind in ("folder", "file") and entry.family == "unknown":
        return False
    if families and entry.family not in families:
        return False
    return inpainting is None or entry.inpainting == inpainting


def lora_fits(lora: ModelEntry, model: ModelEntry | None) -> bool:
    """Whether a LoRA fits a model: the same text-feature width where both are known (what
    the pre-flight check compares), else the same family where both are known; a LoRA whose
    fit cannot be told is offered (the check before the run has the last word)."""
    if lora.kind != "lora" or not lora.usable:
        return False
    if model is None:
        return True
    if lora.cross_attention_dim is not None and model.cross_attention_dim is not None:
        return lora.cross_attention_dim == model.cross_attention_dim
    if "unknown" not in (lora.family, model.family):
        return lora.family == model.family
    return True


# ---- describing one model ------------------------------------------------------------------------


def _size(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def _architecture(path: Path) -> str:
    """The pipeline or model class a folder's index or config names ("" for a file)."""
    if not path.is_dir():
        return ""
    for name in ("model_index.json", "config.json"):
        try:
            data = json.loads((path / name).read_text("utf-8"))
        except (OSError, ValueError):
            continue
        if isinstance(data, dict):
            archs = data.get("architectures") or []
            return str(data.get("_class_name") or ",".join(map(str, archs)))
    return ""


def _cross_dim(path: Path, info: ModelInfo) -> int | None:
    try:
        if info.kind == "lora":
            return lora_cross_dim(safetensors_header(path))
        if info.kind in ("pipeline", "single file"):
            return model_cross_dim(path)
    except (ModelError, OSError, ValueError):
        return None
    return None


#: Where an IP-Adapter's CLIP image encoder sits, beside the adapter file (the h94/IP-Adapter
#: layout, which the IP-Adapter node's check requires): without it the adapter cannot run.
IMAGE_ENCODER = Path("image_encoder") / "config.json"


def _problem(path: Path, info: ModelInfo) -> str:
    if path.is_file():
        if path.suffix.lower() in PICKLE_SUFFIXES:
            return "a pickle checkpoint: Fathom loads .safetensors only (convert it once)"
        if info.kind == "ip-adapter" and not (path.parent / IMAGE_ENCODER).is_file():
            return "no image_encoder/ folder beside it: the CLIP image encoder it needs"
        return ""
    if not any(path.rglob("*.safetensors")):
        return "configuration only: it holds no .safetensors weights"
    return ""


def describe(
    path: Path,
    reference: str,
    source: str,
    folder: Path,
    subfolder: str = "",
    size: int = -1,
    name: str | None = None,
) -> ModelEntry:
    """The entry for one model folder or file (``size`` when already known; ``name``, how it
    is shown, defaults to its reference)."""
    try:
        info = identify(path)
        problem = _problem(path, info)
    except (ModelError, OSError) as exc:
        info, problem = ModelInfo("unknown", "file"), str(exc).splitlines()[0]
    return ModelEntry(
        name=name or reference,
        reference=reference,
        path=str(path),
        family=info.family,
        kind=info.kind,
        size_bytes=size if size >= 0 else _size(path),
        source=source,
        folder=str(folder),
        subfolder=subfolder,
        architecture=_architecture(path),
        inpainting=info.inpainting,
        one_step=info.one_step,
        cross_attention_dim=_cross_dim(path, info),
        problem=problem,
        model_type=transformers_model_type(path) or "",
    )


# ---- listing -------------------------------------------------------------------------------------


def _is_model_file(path: Path) -> bool:
    return path.is_file() and path.suffix.lower() in (".safetensors", *PICKLE_SUFFIXES)


def _addon_subfolders(folder: Path) -> list[tuple[str, Path]]:
    """(kind, subfolder) for each add-on subfolder there, once each (a case-insensitive disk
    shows ``loras`` and ``Lora`` as one folder)."""
    out: list[tuple[str, Path]] = []
    seen: set[Path] = set()
    for kind, names in ADDON_FOLDERS.items():
        for name in names:
            sub = folder / name
            if sub.is_dir() and sub.resolve() not in seen:
                seen.add(sub.resolve())
                out.append((kind, sub))
    return out


def _top_level(folder: Path) -> list[ModelEntry]:
    """The models directly in a models folder: folders that hold a model, and files."""
    addon_names = {n for names in ADDON_FOLDERS.values() for n in names}
    out = []
    for child in sorted(folder.iterdir()):
        if child.name.startswith(SKIPPED_PREFIXES) or child.name in addon_names:
            continue
        if child.is_file() and not _is_model_file(child):
            continue
        entry = describe(
            child, child.stem if child.is_file() else child.name, MODELS_FOLDER, folder
        )
        if child.is_dir() and entry.kind == "folder" and not any(child.rglob("*.safetensors")):
            continue  # not a model: a folder of something else
        out.append(entry)
    return out


def _addons(folder: Path, kind: str, sub: Path) -> list[ModelEntry]:
    """The files (and, for ControlNets, diffusers folders) in one add-on subfolder, at any
    depth: ``loras/sdxl/ink.safetensors`` is the LoRA ``sdxl/ink``."""
    out = []
    for item in sorted(sub.rglob("*")):
        model_dir = kind == "controlnet" and item.is_dir() and (item / "config.json").is_file()
        if not (_is_model_file(item) or model_dir):
            continue
        rel = item.relative_to(sub)
        inner = [p for p in rel.parents if p != Path(".")]
        if any(p.name.startswith(".") for p in inner):
            continue
        if any((sub / p / "config.json").is_file() for p in inner):
            continue  # a part of a model folder (a ControlNet's weights, an image encoder)
        ref = (rel.with_suffix("") if item.is_file() else rel).as_posix()
        if item.suffix.lower() != ".safetensors" and item.is_file():
            ref = rel.as_posix()
        out.append(describe(item, ref, MODELS_FOLDER, folder, sub.name))
    return out


def _hub_entries(folder: Path, source: str) -> list[ModelEntry]:
    """The model repositories of a Hugging Face cache, newest revision of each."""
    try:
        from huggingface_hub import scan_cache_dir

        info = scan_cache_dir(folder)
    except Exception:  # noqa: BLE001 - a folder that is not a hub cache has no hub models
        return []
    out = []
    for repo in sorted(info.repos, key=lambda r: r.repo_id):
        if repo.repo_type != "model":
            continue
        revs = sorted(repo.revisions, key=lambda r: r.last_modified, reverse=True)
        snap = Path(revs[0].snapshot_path) if revs else Path(repo.repo_path)
        entry = describe(snap, repo.repo_id, source, folder, size=int(repo.size_on_disk))
        out += _loose_files(entry, snap) if entry.kind == "folder" else [entry]
    return out


#: At most this many weight files are read below the top of an unrecognised hub repository.
MAX_NESTED_FILES = 64


def _loose_files(entry: ModelEntry, snap: Path) -> list[ModelEntry]:
    """A hub repository that is no diffusers or transformers folder (a LoRA, an embedding):
    each top-level weight file is a model, referred to by its path (add-on parameters take
    paths, not hub ids). Where the top holds none, the add-ons in its subfolders are listed
    (h94/IP-Adapter keeps its adapters in ``models/`` and ``sdxl_models/``), and nothing else
    there: an image encoder there is a part of an adapter, not a model to choose."""
    files = sorted(f for f in snap.glob("*.safetensors") if f.is_file())
    nested = not files
    if nested:
        files = sorted(f for f in snap.rglob("*.safetensors") if f.is_file())
        files = files[:MAX_NESTED_FILES]
    out = []
    for f in files:
        name = f"{entry.name}/{f.relative_to(snap).as_posix()}"
        found = describe(f, str(f), HUB_CACHE, Path(entry.folder), name=name)
        if not nested or found.kind in ADDON_KINDS:
            out.append(found)
    return out or [entry]


def _replace(entry: ModelEntry, **changes: Any) -> ModelEntry:
    from dataclasses import replace

    return replace(entry, **changes)


def _resolves_to(entry: ModelEntry) -> bool:
    """Whether the entry's reference finds this very model (an earlier models folder may hold
    one of the same name; then the entry is referred to by its path)."""
    try:
        if entry.kind in ADDON_KINDS and entry.subfolder:
            found = locate_addon(entry.reference, entry.kind)
        else:
            found = locate_model(entry.reference)
    except ModelError:
        return False
    return Path(found).resolve() == Path(entry.path).resolve()


def list_models() -> tuple[list[ModelEntry], list[Place]]:
    """Every model found locally, and the places looked in (existing or not)."""
    entries: list[ModelEntry] = []
    places: list[Place] = []
    caches: list[tuple[Path, str]] = []
    for folder, origin in model_folder_sources():
        exists = folder.is_dir()
        subs = _addon_subfolders(folder) if exists else []
        places.append(Place(folder, origin, exists, subs))
        caches.append((folder, MODELS_FOLDER))
        if exists:
            entries += _top_level(folder)
            for kind, sub in subs:
                entries += _addons(folder, kind, sub)
    cache = hub_cache()
    places.append(Place(cache, "Hugging Face cache", cache.is_dir()))
    caches.append((cache, "Hugging Face cache"))
    seen: set[Path] = set()
    for folder, _ in caches:
        if folder.is_dir() and folder.resolve() not in seen:
            seen.add(folder.resolve())
            entries += _hub_entries(folder, HUB_CACHE)
    return [e if _resolves_to(e) else _replace(e, reference=e.path) for e in entries], places


def catalog_document(entries: list[ModelEntry], places: list[Place]) -> dict[str, Any]:
    """The ``fathom models list --json`` document (the module docstring shows its shape)."""
    return {
        "format": FORMAT,
        "version": VERSION,
        "models": [e.as_dict() for e in entries],
        "looked_in": [p.as_dict() for p in places],
    }


def human_size(size: int) -> str:
    """2.1 GB, 320 MB, 12 kB: sizes as a person reads them."""
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if size >= scale:
            return (
                f"{size / scale:.1f} {unit}" if size < 10 * scale else f"{size / scale:.0f} {unit}"
            )
    return f"{size} B"
