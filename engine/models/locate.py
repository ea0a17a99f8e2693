"""Where models live: the models folders and resolving a model reference.

A model reference (a node's ``model`` parameter) resolves, in order, to

1. a path that exists: a diffusers/transformers folder or a single ``.safetensors`` file;
2. ``NAME``, ``NAME.safetensors`` or a hub cache entry inside each models folder;
3. a hub id (``org/name``) already in the Hugging Face cache.

Nothing downloads here: ``engine.models.pull`` (``fathom models pull``) is the only way in from
the net, and ``engine.models.catalog`` (``fathom models list``) lists what is here.
The models folders are ``FATHOM_MODELS`` (``os.pathsep``-separated) and the GUI's "Models
folder" setting, read from its settings file without Qt (``FATHOM_SETTINGS`` overrides the
path).
"""

from __future__ import annotations

import configparser
import os
from pathlib import Path
from typing import Any

from fathom.engine.errors import FathomError

PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl")


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
        f"if it is a Hugging Face id, download it with `fathom models pull {source}`; if it is "
        "a folder, check the path (a relative one is read from the graph's folder)"
        if looks_like_hub_id(source)
        else "give the path of a model folder or .safetensors file (a relative one is read "
        "from the graph's folder)"
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


def locate_kind(source: str, kind: str, base_dir: Path | None = None) -> Path:
    """The model a node's parameter of ``kind`` names, as the node's pre-flight check finds
    it, so the studio's missing-models dialog asks the very same question: a ControlNet by
    path or by name in ``controlnet/``, else as any model reference (a folder, a hub id in
    the cache); an IP-Adapter, LoRA or embedding only as a file (``locate_addon``); any
    other kind with ``locate_model``. ModelError lists every place tried."""
    if kind not in ADDON_FOLDERS:
        return locate_model(source, base_dir)
    if kind != "controlnet":
        return locate_addon(source, kind, base_dir)
    try:
        return locate_addon(source, kind, base_dir)
    except ModelError as exc:
        by_name = exc
    try:
        return locate_model(source, base_dir)
    except ModelError:
        if looks_like_hub_id(source) or not source.strip():
            raise  # its message says how to download it (or that none was given)
        raise by_name from None  # its message names the controlnet/ subfolders


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


def loaded_components(index: dict[str, Any]) -> list[str]:
    """The folders of a diffusers pipeline (its ``model_index.json``) whose weights Fathom
    loads: image pipelines here skip the safety checker and any IP-adapter image encoder,
    while Stable Video Diffusion and Shap-E image-to-3D are conditioned through theirs;
    Fathom's own addition beside a pipeline, a tiny autoencoder for previews, counts too."""
    cls = str(index.get("_class_name", ""))
    encoded = "VideoDiffusion" in cls or cls == "ShapEImg2ImgPipeline"
    skip = {"safety_checker", "feature_extractor"} | (set() if encoded else {"image_encoder"})
    parts = [
        n
        for n, spec in index.items()
        if isinstance(spec, list) and n not in skip and not n.startswith("_")
    ]
    return sorted(parts + [n for n in TINY_VAE_FOLDERS if n not in index])


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
    for name in loaded_components(index):
        if not (path / name).is_dir():
            continue
        files = sorted((path / name).glob("*.safetensors"))
        found += [f for f in files if _plain(f.name)] or files
    return found
