"""Where models live: the models folders, resolving a model reference, listing and pulling.

A model reference (a node's ``model`` parameter) resolves, in order, to

1. a path that exists: a diffusers/transformers folder or a single ``.safetensors`` file;
2. ``NAME``, ``NAME.safetensors`` or a hub cache entry inside each models folder;
3. a hub id (``org/name``) already in the Hugging Face cache.

Nothing downloads here; ``pull_model`` (``fathom models pull``) is the only way in from the net.
The models folders are ``FATHOM_MODELS`` (``os.pathsep``-separated) and the GUI's "Models
folder" setting, read from its settings file without Qt (``FATHOM_SETTINGS`` overrides the
path).
"""

from __future__ import annotations

import configparser
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fathom.engine.errors import FathomError

PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl")
#: Everything but pickle weights and other frameworks' files: what ``pull_model`` fetches.
PULL_IGNORE = [
    "*.bin",
    "*.ckpt",
    "*.pt",
    "*.pth",
    "*.pkl",
    "*.msgpack",
    "*.h5",
    "*.onnx",
    "*.onnx_data",
    "*.ot",
    "*.tflite",
    "*.mlmodel",
    "*.mlpackage/*",
    "*.gguf",
]
CONFIG_PATTERNS = ["*.json", "*.txt", "*.model", "*.yaml"]


class ModelError(FathomError):
    """A model cannot be found or loaded; the message says where we looked and what to do."""


CONVERT_HINT = (
    'Fix: convert it once, on a machine where you trust the file, e.g. `python -c "from '
    "diffusers import StableDiffusionPipeline as P; P.from_single_file('model.ckpt')"
    ".save_pretrained('model', safe_serialization=True)\"`, and point the node at the new folder."
)


# ---- settings ---------------------------------------------------------------------------------


def settings_file() -> Path:
    """The GUI's settings file (QSettings' INI file on Linux); read here without Qt."""
    env = os.environ.get("FATHOM_SETTINGS")
    if env:
        return Path(env).expanduser()
    base = os.environ.get("XDG_CONFIG_HOME", os.path.expanduser("~/.config"))
    return Path(base) / "Fathom" / "Fathom Studio.conf"


def read_settings() -> dict[str, str]:
    """The [General] keys of the settings file; an unreadable file counts as empty."""
    parser = configparser.ConfigParser(interpolation=None)
    try:
        parser.read(settings_file(), encoding="utf-8")
    except (OSError, configparser.Error):
        return {}
    if not parser.has_section("General"):
        return {}
    return {k: v.strip().strip('"') for k, v in parser.items("General")}


def model_folder_sources() -> list[tuple[Path, str]]:
    """(folder, where the setting came from): FATHOM_MODELS entries, then the settings file's."""
    out: list[tuple[Path, str]] = []
    env = os.environ.get("FATHOM_MODELS", "")
    out += [(Path(p).expanduser(), "FATHOM_MODELS") for p in env.split(os.pathsep) if p.strip()]
    setting = read_settings().get("models_dir", "")
    if setting:
        out.append((Path(setting).expanduser(), "Models folder setting"))
    seen: set[str] = set()
    unique = []
    for p, origin in out:
        if str(p) not in seen:
            seen.add(str(p))
            unique.append((p, origin))
    return unique


def model_folders() -> list[Path]:
    """The models folders, in search order (existing or not)."""
    return [p for p, _ in model_folder_sources()]


def hub_cache() -> Path:
    from huggingface_hub import constants

    return Path(constants.HF_HUB_CACHE)


def looks_like_hub_id(source: str) -> bool:
    parts = source.split("/")
    return (
        len(parts) == 2
        and all(parts)
        and "\\" not in source
        and not source.startswith((".", "~"))
        and not source.endswith(".safetensors")
    )


# ---- resolving --------------------------------------------------------------------------------


def _from_hub_cache(source: str, cache_dir: Path | None) -> Path | None:
    try:
        from huggingface_hub import snapshot_download

        return Path(
            snapshot_download(
                source, local_files_only=True, cache_dir=str(cache_dir) if cache_dir else None
            )
        )
    except Exception:  # noqa: BLE001 - any hub failure means 'not available offline'
        return None


def locate_model(source: str, base_dir: Path | None = None) -> Path:
    """The folder or file a model reference names; ModelError lists every place tried."""
    if not source or not source.strip():
        raise ModelError(
            "no model was given. Fix: set the node's model to a folder, a "
            ".safetensors file or a Hugging Face id."
        )
    tried: list[str] = []
    p = Path(source).expanduser()
    candidates = (
        [p] if p.is_absolute() else (([base_dir / p] if base_dir is not None else []) + [p])
    )
    for folder in model_folders():
        if not p.is_absolute():
            candidates += [folder / p, folder / (source + ".safetensors")]
    for c in candidates:
        if str(c) in tried:
            continue
        tried.append(str(c))
        if c.exists():
            return c
    if looks_like_hub_id(source):
        for folder in model_folders():
            tried.append(f"{folder} (as a Hugging Face cache)")
            hit = _from_hub_cache(source, folder)
            if hit is not None:
                return hit
        tried.append(f"{hub_cache()} (the Hugging Face cache)")
        hit = _from_hub_cache(source, None)
        if hit is not None:
            return hit
    places = "\n".join(f"    {t}" for t in tried)
    fix = (
        f"download it with `fathom models pull {source}`"
        if looks_like_hub_id(source)
        else "give the path of a model folder or .safetensors file"
    )
    raise ModelError(
        f"model {source!r} was not found. Looked in:\n{places}\n  Fix: {fix}, or "
        "put it in a models folder (FATHOM_MODELS or the Models folder setting)."
    )


#: Subfolders of a models folder where add-on weights of a kind are looked up by name (the
#: names ComfyUI and A1111 folders use, so an artist's existing folder works as it is).
ADDON_FOLDERS = {
    "lora": ("loras", "lora", "Lora", "LoRA"),
    "embedding": ("embeddings", "embedding"),
    "controlnet": ("controlnet", "ControlNet"),
    "ip-adapter": ("ipadapter", "ip_adapter", "IP-Adapter"),
}


def locate_addon(source: str, kind: str, base_dir: Path | None = None) -> Path:
    """A LoRA, embedding, ControlNet or IP-Adapter file by path, or by name in the models
    folders (their ``loras/`` etc. subfolder first); ModelError lists every place tried."""
    p = Path(source).expanduser()
    names = [source] if source.endswith(".safetensors") else [source + ".safetensors", source]
    candidates = [p] if p.is_absolute() else ([base_dir / p] if base_dir is not None else [])
    for folder in model_folders():
        for sub in ADDON_FOLDERS.get(kind, ()):
            candidates += [folder / sub / n for n in names]
        candidates += [folder / n for n in names]
    for c in candidates:
        if c.is_file() or (kind == "controlnet" and (c / "config.json").is_file()):
            if c.suffix.lower() in PICKLE_SUFFIXES:
                safetensors_files(c)  # raises, with the conversion hint
            return c
    places = "\n".join(f"    {c}" for c in dict.fromkeys(map(str, candidates)))
    where = ADDON_FOLDERS.get(kind, ("",))[0]
    raise ModelError(
        f"{kind} {source!r} was not found. Looked in:\n{places}\n  Fix: give the path of "
        f"its .safetensors file, or put it in a models folder's {where}/ subfolder."
    )


def safetensors_files(path: Path) -> list[Path]:
    """The weight files of a model folder or file; refuses pickle-only checkpoints."""
    if path.is_file():
        if path.suffix.lower() in PICKLE_SUFFIXES:
            raise ModelError(
                f"{path.name} is a pickle checkpoint: Fathom loads .safetensors only, because "
                f"loading a pickle file can run any code it contains. {CONVERT_HINT}"
            )
        if path.suffix.lower() != ".safetensors":
            raise ModelError(
                f"{path} is not a .safetensors file; Fathom loads safetensors weights only."
            )
        return [path]
    found = _pipeline_weights(path) or sorted(path.rglob("*.safetensors"))
    if not found:
        pickles = [p for p in path.rglob("*") if p.suffix.lower() in PICKLE_SUFFIXES]
        if pickles:
            raise ModelError(
                f"{path} holds only pickle-based weights ({pickles[0].name}): Fathom loads "
                f".safetensors only, because loading a pickle file can run any code it "
                f"contains. {CONVERT_HINT}"
            )
        raise ModelError(f"{path} holds no .safetensors weights.")
    return found


TINY_VAE_FOLDERS = ("vae_tiny", "tiny_vae", "taesd")  # where a preview autoencoder may sit


def _plain(name: str) -> bool:
    """``model.safetensors``, not ``model.fp16.safetensors`` (sharded names have no extra dot)."""
    return name.count(".") == 1


def weights_variant(folder: Path) -> str | None:
    """The precision variant a component folder's loader must ask for: None where plain
    weights are there (``model.safetensors``), else the variant its files carry
    (``model.fp16.safetensors``, ``model.fp16-00001-of-00002.safetensors`` → "fp16"), for a
    download that kept only the half-precision copy."""
    names = [f.name for f in folder.glob("*.safetensors")]
    if not names or any(_plain(n) for n in names):
        return None
    return sorted(n.split(".")[-2].split("-")[0] for n in names)[0]


def _pipeline_weights(path: Path) -> list[Path]:
    """In a diffusers folder, the files its pipeline loads: each component's own weights, and
    of those the plain ones where a precision variant sits beside them
    (``diffusion_pytorch_model.fp16.safetensors``). Hub repos also ship single-file
    checkpoints at the top and both precisions of every part: hashing those and counting
    them in the memory estimate would triple both for nothing. [] when it is not one."""
    import json

    try:
        index = json.loads((path / "model_index.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return []
    if not isinstance(index, dict):
        return []
    found: list[Path] = []
    # Image pipelines here skip the safety checker and any IP-adapter image encoder; Stable
    # Video Diffusion is conditioned through its image encoder.
    video = "VideoDiffusion" in str(index.get("_class_name", ""))
    skip = {"safety_checker", "feature_extractor"} | (set() if video else {"image_encoder"})
    # Fathom's own additions beside a pipeline: a tiny autoencoder for previews.
    parts = [
        n
        for n, spec in index.items()
        if isinstance(spec, list) and n not in skip and not n.startswith("_")
    ] + [n for n in TINY_VAE_FOLDERS if n not in index]
    for name in sorted(parts):
        if not (path / name).is_dir():
            continue
        files = sorted((path / name).glob("*.safetensors"))
        found += [f for f in files if _plain(f.name)] or files
    return found


# ---- listing ----------------------------------------------------------------------------------


@dataclass
class ModelEntry:
    name: str
    path: str
    kind: str
    size_bytes: int
    where: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "path": self.path,
            "kind": self.kind,
            "size_bytes": self.size_bytes,
            "where": self.where,
        }


def model_kind(path: Path) -> str:
    """A short description of what a model folder or file holds."""
    import json

    if path.is_file():
        return "checkpoint file" if path.suffix == ".safetensors" else "pickle file (refused)"
    index = path / "model_index.json"
    if index.is_file():
        try:
            return "diffusers " + str(json.loads(index.read_text("utf-8")).get("_class_name"))
        except (OSError, ValueError):
            return "diffusers (unreadable model_index.json)"
    cfg = path / "config.json"
    if cfg.is_file():
        try:
            data = json.loads(cfg.read_text("utf-8"))
            name = (
                data.get("_class_name")
                or ",".join(data.get("architectures") or [])
                or data.get("model_type", "")
            )
            return f"model {name}".strip()
        except (OSError, ValueError):
            return "model (unreadable config.json)"
    return "folder"


def _size(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def list_models() -> tuple[list[ModelEntry], list[str]]:
    """Every model found locally, and the places looked in (existing or not)."""
    entries: list[ModelEntry] = []
    places: list[str] = []
    caches: list[tuple[Path, str]] = []
    for folder, origin in model_folder_sources():
        places.append(f"{folder} ({origin}{'' if folder.is_dir() else ', missing'})")
        caches.append((folder, str(folder)))
        if not folder.is_dir():
            continue
        for child in sorted(folder.iterdir()):
            if child.name.startswith((".", "_", "models--", "datasets--", "spaces--")):
                continue
            if child.is_file() and child.suffix not in (".safetensors", *PICKLE_SUFFIXES):
                continue
            kind = model_kind(child)
            if child.is_dir() and not any(child.rglob("*.safetensors")):
                if kind == "folder":
                    continue
                kind += " (configuration only)"
            entries.append(
                ModelEntry(
                    child.stem if child.is_file() else child.name,
                    str(child),
                    kind,
                    _size(child),
                    str(folder),
                )
            )
    caches.append((hub_cache(), "Hugging Face cache"))
    places.append(f"{hub_cache()} (Hugging Face cache)")
    for folder, where in caches:
        if not folder.is_dir():
            continue
        try:
            from huggingface_hub import scan_cache_dir

            info = scan_cache_dir(folder)
        except Exception:  # noqa: BLE001 - a folder that is not a hub cache has no hub models
            continue
        for repo in sorted(info.repos, key=lambda r: r.repo_id):
            if repo.repo_type != "model":
                continue
            revs = sorted(repo.revisions, key=lambda r: r.last_modified, reverse=True)
            snap = Path(revs[0].snapshot_path) if revs else Path(repo.repo_path)
            entries.append(
                ModelEntry(repo.repo_id, str(snap), model_kind(snap), int(repo.size_on_disk), where)
            )
    return entries, places


# ---- pulling ----------------------------------------------------------------------------------


def pull_model(repo_id: str, revision: str | None = None, configs_only: bool = False) -> Path:
    """Download a hub model (safetensors and configs only) into the first models folder, or
    the Hugging Face cache when none is set; ModelError when offline or not found."""
    from huggingface_hub import constants, snapshot_download
    from huggingface_hub import errors as hub_errors

    if not looks_like_hub_id(repo_id):
        raise ModelError(f"{repo_id!r} is not a Hugging Face id (like 'org/name').")
    folders = model_folders()
    cache_dir = folders[0] if folders else None
    offline_msg = (
        f"cannot download {repo_id}: this machine is offline or cannot reach the Hugging Face hub"
    )
    if constants.HF_HUB_OFFLINE:
        raise ModelError(
            f"{offline_msg} (HF_HUB_OFFLINE is set). Fix: connect to the "
            "internet and unset HF_HUB_OFFLINE, or copy the model folder here and "
            "point the node at it."
        )
    try:
        path = snapshot_download(
            repo_id,
            revision=revision,
            cache_dir=str(cache_dir) if cache_dir else None,
            allow_patterns=CONFIG_PATTERNS if configs_only else None,
            ignore_patterns=None if configs_only else PULL_IGNORE,
        )
    except (
        hub_errors.RepositoryNotFoundError,
        hub_errors.RevisionNotFoundError,
        hub_errors.GatedRepoError,
    ) as exc:
        raise ModelError(
            f"cannot download {repo_id}: {type(exc).__name__}: {str(exc).splitlines()[0]}"
        ) from exc
    except (hub_errors.LocalEntryNotFoundError, hub_errors.HfHubHTTPError, OSError) as exc:
        raise ModelError(
            f"{offline_msg} ({type(exc).__name__}: {str(exc).splitlines()[0]}). "
            "Fix: check the connection (and a proxy or HF_ENDPOINT), then try "
            "again."
        ) from exc
    except Exception as exc:
        name = type(exc).__name__
        if "Connect" in name or "Timeout" in name or "Network" in name:
            raise ModelError(
                f"{offline_msg} ({name}). Fix: check the connection, then try again."
            ) from exc
        raise
    out = Path(path)
    if not configs_only:
        safetensors_files(out)  # says so now if the repo holds no safetensors weights
    return out
