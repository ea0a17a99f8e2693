"""Configurations for single-file checkpoints: which diffusers configuration a ``.safetensors``
file in the original (LDM, A1111, civitai) layout is built with, found without the network.

A checkpoint file holds weights only; diffusers' single-file loader builds the pipeline from a
diffusers configuration folder (architectures, scheduler, tokenizers). Fathom ships those small
JSON files for the families its loop runs, in ``configs/<name>/`` (see ``SHIPPED``), so such a
file loads offline. The one part it cannot ship is the CLIP BPE vocabulary (``vocab.json`` and
``merges.txt``, 1.5 MB, the same for every tokenizer of SD 1.x, SD 2.x and SDXL): it is looked
for on disk (``find_tokenizer_files``) and, when absent, the error names the one command that
fetches it. The shipped files and the vocabulary are put together once into a content-addressed
folder under Fathom's cache (``FATHOM_CACHE_DIR``), which is what the loader is given; what the
file itself shows patches that copy (an inpainting UNet's 9 input channels, a ``v_pred``
marker's prediction type). The shipped files are the published ones but for what Fathom never
loads: no safety checker or feature extractor, no watermarker.

The vocabulary is looked for beside the checkpoint (``NAME.config/`` or its ``tokenizer/``),
in each models folder (its model folders' ``tokenizer/``, and hub downloads ``fathom models
pull`` put there), then in the Hugging Face cache (the CLIP and Stable Diffusion repositories
in ``TOKENIZER_REPOS``); only CLIP's own 49408-entry vocabulary is taken.

Resolution order for a checkpoint ``NAME.safetensors``:

1. a diffusers configuration folder beside it (``NAME.config/`` or ``NAME/`` holding
   ``model_index.json``), used as it is;
2. the shipped configuration for the family the tensor names and shapes show (SD 2.x:
   v-prediction 768 or epsilon 512-base, told from the file, see ``choose_config``), or the one
   named by a hint: a text file ``NAME.config`` holding a shipped name (``sd-turbo``,
   ``sdxl-turbo``: distilled models whose weights look like their bases);
3. for other single-file kinds diffusers knows (Playground, upscalers, instruct-pix2pix), that
   model's own configuration in a models folder or the Hugging Face cache, as before.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import struct
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fathom.engine.models.families import MAX_HEADER, TITLES, hint_for, identify
from fathom.engine.models.locate import (
    ModelError,
    hub_cache,
    locate_model,
    model_folders,
    safetensors_files,
)

log = logging.getLogger("fathom.models")

#: Where the shipped configurations live (package data).
CONFIG_ROOT = Path(__file__).parent / "configs"


@dataclass(frozen=True)
class Shipped:
    """A shipped configuration: its folder under ``configs/``, the hub model whose published
    configuration it is, and the family (``families.TITLES``) whose checkpoints it builds."""

    name: str
    repo: str
    family: str
    title: str


SHIPPED = {
    s.name: s
    for s in (
        Shipped("sd15", "stable-diffusion-v1-5/stable-diffusion-v1-5", "sd1", "SD 1.5"),
        Shipped("sd21", "stabilityai/stable-diffusion-2-1", "sd2", "SD 2.1 (768, v-prediction)"),
        Shipped("sd21-base", "stabilityai/stable-diffusion-2-1-base", "sd2", "SD 2.1-base (512)"),
        Shipped("sd-turbo", "stabilityai/sd-turbo", "sd2", "SD-Turbo"),
        Shipped("sdxl-base", "stabilityai/stable-diffusion-xl-base-1.0", "sdxl", "SDXL base 1.0"),
        Shipped("sdxl-turbo", "stabilityai/sdxl-turbo", "sdxl", "SDXL-Turbo"),
        Shipped(
            "sdxl-refiner",
            "stabilityai/stable-diffusion-xl-refiner-1.0",
            "sdxl-refiner",
            "SDXL refiner 1.0",
        ),
    )
}
#: diffusers' single-file model types (``infer_diffusers_model_type``) Fathom has a shipped
#: configuration for; SD 2.x ("v2") is settled by ``_sd2_choice``. Inpainting types take their
#: base's configuration with a 9-channel UNet input.
MODEL_TYPES = {
    "v1": "sd15",
    "inpainting": "sd15",
    "inpainting_v2": "sd21-base",
    "xl_base": "sdxl-base",
    "xl_inpaint": "sdxl-base",
    "xl_refiner": "sdxl-refiner",
}

#: The tokenizer files no configuration can carry, and the command that fetches them once.
TOKENIZER_FILES = ("vocab.json", "merges.txt")
TOKENIZER_REPO = "openai/clip-vit-large-patch14"
PULL_TOKENIZER = f"fathom models pull {TOKENIZER_REPO} --configs-only"
#: Hub repositories whose cached snapshot holds the CLIP vocabulary (at its top, as the CLIP
#: repositories keep it, or in a tokenizer folder, as the Stable Diffusion ones do), in the
#: order they are looked at.
TOKENIZER_REPOS = (
    TOKENIZER_REPO,
    "laion/CLIP-ViT-bigG-14-laion2B-39B-b160k",
    *(s.repo for s in SHIPPED.values()),
    "runwayml/stable-diffusion-v1-5",
    "CompVis/stable-diffusion-v1-4",
    "stabilityai/stable-diffusion-2",
    "stabilityai/stable-diffusion-2-base",
)
TOKENIZER_FOLDERS = ("", "tokenizer", "tokenizer_2")
#: The CLIP vocabulary's size (every text encoder of these families embeds 49408 tokens).
CLIP_VOCAB_SIZE = 49408
#: ComfyUI's test for SD 2.x v-prediction: the spread of one LayerNorm bias in the last output
#: block is above 0.09 in the 768-v models and below it in the 512 epsilon ones.
V_PROBE = "model.diffusion_model.output_blocks.11.1.transformer_blocks.0.norm1.bias"
V_PROBE_STD = 0.09


@dataclass(frozen=True)
class Choice:
    """The shipped configuration a checkpoint is built with, what the file changes in it
    (``patches``: file → keys), and why it was chosen (for the log and errors)."""

    name: str
    reason: str
    patches: dict[str, dict[str, Any]] = field(default_factory=dict)


@dataclass(frozen=True)
class Header:
    """A safetensors header: tensor entries (dtype, shape, data_offsets), the free-form
    ``__metadata__`` strings, and where the tensor data starts in the file."""

    tensors: dict[str, Any]
    metadata: dict[str, str]
    data_start: int


def read_header(path: Path) -> Header:
    """The header of a .safetensors file, read without loading a tensor."""
    with open(path, "rb") as fh:
        raw = fh.read(8)
        if len(raw) != 8:
            raise ModelError(f"{path.name} is not a safetensors file (it is too short).")
        (size,) = struct.unpack("<Q", raw)
        if size > MAX_HEADER:
            raise ModelError(f"{path.name}: its safetensors header claims {size} bytes.")
        try:
            header = json.loads(fh.read(size))
        except ValueError:
            raise ModelError(f"{path.name} is not a safetensors file (bad header).") from None
    if not isinstance(header, dict):
        raise ModelError(f"{path.name} is not a safetensors file (bad header).")
    meta = header.pop("__metadata__", None)
    metadata = {str(k): str(v) for k, v in meta.items()} if isinstance(meta, dict) else {}
    return Header(header, metadata, 8 + size)


# ---- choosing the configuration ----------------------------------------------------------------


class _Shape:
    """A tensor stand-in carrying only a shape: diffusers' model-type inference reads no more
    than shapes for these families, so it runs on the header instead of 2-7 GB of weights."""

    def __init__(self, shape: list[int]) -> None:
        self.shape = tuple(int(n) for n in shape)


def diffusers_model_type(tensors: dict[str, Any]) -> str | None:
    """diffusers' name for the checkpoint's kind ("v1", "v2", "xl_base", "inpainting", ...),
    from tensor names and shapes; None when its inference needs more than shapes."""
    from diffusers.loaders.single_file_utils import infer_diffusers_model_type

    shapes = {
        k: _Shape(list(v.get("shape", []))) for k, v in tensors.items() if isinstance(v, dict)
    }
    try:
        return str(infer_diffusers_model_type(shapes))
    except Exception:  # noqa: BLE001 - a branch that reads tensor values: no shipped match
        return None


def read_tensor(path: Path, header: Header, name: str) -> Any:
    """One small tensor's values as a float32 numpy array (F16, BF16, F32, F64), read straight
    from the file; None when it is absent, of another dtype, or past the end of the file."""
    import numpy as np

    entry = header.tensors.get(name)
    if not isinstance(entry, dict):
        return None
    start, end = (int(n) for n in entry.get("data_offsets", (0, 0)))
    dtypes = {"F16": np.float16, "BF16": np.uint16, "F32": np.float32, "F64": np.float64}
    dtype = dtypes.get(str(entry.get("dtype")))
    if dtype is None or end <= start:
        return None
    with open(path, "rb") as fh:
        fh.seek(header.data_start + start)
        raw = fh.read(end - start)
    if len(raw) != end - start:
        return None
    values = np.frombuffer(raw, dtype=dtype)
    if entry.get("dtype") == "BF16":  # bfloat16 is the top half of a float32
        return (values.astype(np.uint32) << 16).view(np.float32)
    return values.astype(np.float32)


def _declared_prediction(header: Header) -> str | None:
    """'v' or 'epsilon' where the file says so: a ``v_pred`` marker tensor (as NoobAI-style
    v-prediction files carry), or the Stability ModelSpec metadata (``modelspec.prediction_type``
    or a ``modelspec.architecture`` such as ``stable-diffusion-v2-768-v``)."""
    if "v_pred" in header.tensors:
        return "v"
    declared = header.metadata.get("modelspec.prediction_type", "").strip().lower()
    if declared in ("v", "v_prediction", "v-prediction"):
        return "v"
    if declared in ("epsilon", "eps"):
        return "epsilon"
    arch = header.metadata.get("modelspec.architecture", "").strip().lower()
    if arch.endswith("-v"):
        return "v"
    if arch.startswith("stable-diffusion-v2-512"):
        return "epsilon"
    return None


def _sd2_choice(path: Path, header: Header) -> Choice:
    """SD 2.x 768-v and 512-base share one architecture; they differ in what the UNet predicts.
    The file's own declaration decides, else the weights (ComfyUI's test on one LayerNorm bias),
    else diffusers' default for SD 2.x checkpoints, the 768-v model."""
    declared = _declared_prediction(header)
    if declared is not None:
        name = "sd21" if declared == "v" else "sd21-base"
        return Choice(name, f"the file declares {declared}-prediction")
    probe = read_tensor(path, header, V_PROBE)
    if probe is not None and probe.size:
        std = float(probe.std())
        name = "sd21" if std > V_PROBE_STD else "sd21-base"
        return Choice(name, f"{V_PROBE} spreads {std:.3f} (v-prediction above {V_PROBE_STD})")
    return Choice("sd21", f"{V_PROBE} could not be read: diffusers' default for SD 2.x")


def _hinted(path: Path, family: str, hint: str) -> Choice:
    by_repo = {s.repo.lower(): s.name for s in SHIPPED.values()}
    name = by_repo.get(hint.lower(), hint.lower())
    fits = sorted(s.name for s in SHIPPED.values() if s.family == family)
    if name not in SHIPPED:
        raise ModelError(
            f"{path.name}: its configuration hint {hint!r} names no configuration Fathom ships. "
            f"Fix: write one of {', '.join(fits)} in {path.with_suffix('.config').name}."
        )
    if SHIPPED[name].family != family:
        raise ModelError(
            f"{path.name} is a checkpoint of the {TITLES.get(family, family)} family, but its "
            f"configuration hint names {SHIPPED[name].title}, of the "
            f"{TITLES.get(SHIPPED[name].family)} family. Fix: write one of {', '.join(fits)} "
            f"in {path.with_suffix('.config').name}."
        )
    return Choice(name, f"named by the hint {hint!r}")


def choose_config(
    path: Path, header: Header, family: str, hint: str | None = None
) -> Choice | None:
    """The shipped configuration for a checkpoint of ``family`` (``families.identify``), or
    None when Fathom ships none for its kind. ``hint`` (a shipped name or its hub id) picks one
    of the family's configurations the weights cannot choose between (the Turbo models)."""
    model_type = diffusers_model_type(header.tensors)
    if hint:
        choice = _hinted(path, family, hint)
    elif model_type == "v2":
        choice = _sd2_choice(path, header)
    elif model_type in MODEL_TYPES:
        choice = Choice(MODEL_TYPES[model_type], f"diffusers reads it as '{model_type}'")
    else:
        return None
    if SHIPPED[choice.name].family != family:
        return None
    patches: dict[str, dict[str, Any]] = {}
    conv_in = header.tensors.get("model.diffusion_model.input_blocks.0.0.weight", {})
    channels = list(conv_in.get("shape", [0, 4]))[1:2]
    if channels and channels != [4]:  # inpainting: latents, mask and masked image
        patches["unet/config.json"] = {"in_channels": int(channels[0])}
    if _declared_prediction(header) == "v" and choice.name != "sd21":
        patches["scheduler/scheduler_config.json"] = {"prediction_type": "v_prediction"}
    return Choice(choice.name, choice.reason, patches)


# ---- finding the tokenizer files ---------------------------------------------------------------


def is_clip_vocabulary(folder: Path) -> bool:
    """True when ``folder`` holds the full CLIP BPE vocabulary: a test model's tiny vocabulary or
    another tokenizer's (Qwen's folders also hold a vocab.json and merges.txt) would silently
    turn prompts into the wrong tokens, so both files must be there and the vocabulary must be
    CLIP's 49408 entries with its start and end tokens."""
    if not all((folder / f).is_file() for f in TOKENIZER_FILES):
        return False
    try:
        vocab = json.loads((folder / "vocab.json").read_text("utf-8"))
    except (OSError, ValueError):
        return False
    return (
        isinstance(vocab, dict)
        and len(vocab) == CLIP_VOCAB_SIZE
        and "<|startoftext|>" in vocab
        and "<|endoftext|>" in vocab
    )


def _hub_snapshots(cache: Path, repo: str) -> list[Path]:
    """A hub cache's snapshot folders of ``repo``, newest first (any revision: a pull with
    ``--revision`` keeps its files under another ref)."""
    snapshots = cache / ("models--" + repo.replace("/", "--")) / "snapshots"
    try:
        found = [p for p in snapshots.iterdir() if p.is_dir()]
    except OSError:
        return []
    return sorted(found, key=lambda p: p.stat().st_mtime, reverse=True)


def _hub_candidates(cache: Path) -> list[Path]:
    out: list[Path] = []
    for repo in TOKENIZER_REPOS:
        for snap in _hub_snapshots(cache, repo):
            out += [snap / sub if sub else snap for sub in TOKENIZER_FOLDERS]
    return out


def _folder_candidates(folder: Path) -> list[Path]:
    """In a models folder: the folder itself, its tokenizer folders, and those of each model
    folder in it (any Stable Diffusion diffusers folder carries the vocabulary)."""
    out = [folder, folder / "tokenizer"]
    try:
        children = sorted(p for p in folder.iterdir() if p.is_dir())
    except OSError:
        return out
    for child in children:
        if not child.name.startswith((".", "models--", "datasets--", "spaces--")):
            out += [child, child / "tokenizer", child / "tokenizer_2"]
    return out


def tokenizer_places(checkpoint: Path) -> list[tuple[str, list[Path]]]:
    """Where the tokenizer files are looked for, in order: (description, candidate folders)."""
    side = checkpoint.with_suffix(".config")
    places = [(f"{side}", [side, side / "tokenizer", side / "tokenizer_2"])]
    for folder in model_folders():
        places.append(
            (
                f"{folder} (its model folders and hub downloads)",
                _folder_candidates(folder) + _hub_candidates(folder),
            )
        )
    places.append((f"{hub_cache()} (the Hugging Face cache)", _hub_candidates(hub_cache())))
    return places


def find_tokenizer_files(checkpoint: Path) -> Path | None:
    """The first folder holding the CLIP ``vocab.json`` and ``merges.txt``: beside the
    checkpoint (``NAME.config/``), in the models folders, then in the Hugging Face cache."""
    for _, candidates in tokenizer_places(checkpoint):
        for folder in candidates:
            if is_clip_vocabulary(folder):
                return folder
    return None


def missing_tokenizer(checkpoint: Path, choice: Choice) -> ModelError:
    """The error for a checkpoint whose configuration is here but whose vocabulary is not."""
    places = "\n".join(f"    {where}" for where, _ in tokenizer_places(checkpoint))
    return ModelError(
        f"{checkpoint.name} is a single-file {SHIPPED[choice.name].title} checkpoint. Fathom "
        f"ships its configuration, but not the CLIP tokenizer files {' and '.join(TOKENIZER_FILES)}"
        f" (1.5 MB), which are not on this machine. Looked in:\n{places}\n"
        f"  Fix: run `{PULL_TOKENIZER}` once (needs the internet), or copy "
        f"{' and '.join(TOKENIZER_FILES)} from any Stable Diffusion model's tokenizer/ folder "
        f"into {checkpoint.with_suffix('.config')}/tokenizer/."
    )


# ---- putting the configuration together --------------------------------------------------------


def cache_root() -> Path:
    """Fathom's cache folder (the one provenance's hash cache uses)."""
    base = os.environ.get("FATHOM_CACHE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")), "fathom"
    )
    return Path(base)


def config_files(choice: Choice, vocabulary: Path) -> dict[str, bytes]:
    """The files of the configuration folder for ``choice``: the shipped JSON with the
    checkpoint's patches applied, and the vocabulary in each tokenizer folder."""
    src = CONFIG_ROOT / choice.name
    files: dict[str, bytes] = {}
    for f in sorted(src.rglob("*.json")):
        rel = f.relative_to(src).as_posix()
        data = f.read_bytes()
        if rel in choice.patches:
            patched = {**json.loads(data), **choice.patches[rel]}
            data = (json.dumps(patched, indent=2, sort_keys=True) + "\n").encode("utf-8")
        files[rel] = data
    for tokenizer in ("tokenizer", "tokenizer_2"):
        if (src / tokenizer).is_dir():
            for name in TOKENIZER_FILES:
                files[f"{tokenizer}/{name}"] = (vocabulary / name).read_bytes()
    return files


def _write_folder(root: Path, name: str, files: dict[str, bytes]) -> Path:
    """Write ``files`` to ``root/name`` unless it is there: written into a temporary folder and
    renamed, so a reader (another process loading the same model) never sees half of it."""
    target = root / name
    if (target / "model_index.json").is_file():
        return target
    root.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".partial-", dir=root))
    try:
        for rel, data in files.items():
            (tmp / rel).parent.mkdir(parents=True, exist_ok=True)
            (tmp / rel).write_bytes(data)
        os.rename(tmp, target)
    except OSError:
        if not (target / "model_index.json").is_file():
            raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def assemble(choice: Choice, vocabulary: Path) -> Path:
    """The configuration folder for ``choice`` in Fathom's cache, named by its content (so a
    changed shipped file or vocabulary gives a new folder, never a stale one); in the system's
    temporary folder when the cache cannot be written."""
    files = config_files(choice, vocabulary)
    digest = hashlib.sha256()
    for rel in sorted(files):
        digest.update(rel.encode("utf-8") + b"\0" + hashlib.sha256(files[rel]).digest())
    name = f"{choice.name}-{digest.hexdigest()[:16]}"
    try:
        return _write_folder(cache_root() / "single-file-configs", name, files)
    except OSError as exc:
        log.warning("cannot write to %s (%s); using a temporary folder", cache_root(), exc)
        return _write_folder(
            Path(tempfile.gettempdir()) / "fathom-single-file-configs", name, files
        )


# ---- the whole resolution ----------------------------------------------------------------------


def side_config(path: Path) -> Path | None:
    """A diffusers configuration folder beside the checkpoint: ``NAME.config/`` or ``NAME/``."""
    for side in (path.with_suffix(".config"), path.parent / path.stem):
        if (side / "model_index.json").is_file():
            return side
    return None


def _hub_config(path: Path, model_type: str | None) -> Path:
    """Kinds Fathom ships no configuration for: the model diffusers builds them from, when its
    configuration was pulled into a models folder or the Hugging Face cache."""
    from diffusers.loaders.single_file_utils import DIFFUSERS_DEFAULT_PIPELINE_PATHS

    spec = DIFFUSERS_DEFAULT_PIPELINE_PATHS.get(model_type or "", {})
    repo = spec.get("pretrained_model_name_or_path")
    if not repo:
        raise ModelError(
            f"{path.name}: diffusers cannot tell which model it is a checkpoint of. Fix: put "
            f"that model's diffusers configuration folder at {path.with_suffix('.config')}."
        )
    try:
        return locate_model(repo)
    except ModelError:
        raise ModelError(
            f"{path.name} is a single-file '{model_type}' checkpoint; building it needs that model "
            f"family's diffusers configuration ({repo}), which is not on this machine. Fix: run "
            f"`fathom models pull {repo} --configs-only` once (a few MB, needs the internet), "
            f"or put a diffusers config folder at {path.with_suffix('.config')}."
        ) from None


def single_file_config(path: Path, family: str | None = None, hint: str | None = None) -> Path:
    """The diffusers configuration folder the checkpoint at ``path`` is built with, in the
    order the module docstring gives; ModelError naming what is missing and the command that
    fetches it. ``family`` is ``families.identify``'s (read from the file when not given);
    ``hint`` overrides a ``NAME.config`` hint file."""
    safetensors_files(path)  # a pickle checkpoint (.ckpt) is refused, with how to convert it
    side = side_config(path)
    if side is not None:
        return side
    header = read_header(path)
    family = family or identify(path).family
    choice = choose_config(path, header, family, hint or hint_for(path))
    if choice is None:
        return _hub_config(path, diffusers_model_type(header.tensors))
    vocabulary = find_tokenizer_files(path)
    if vocabulary is None:
        raise missing_tokenizer(path, choice)
    folder = assemble(choice, vocabulary)
    log.info(
        "%s: configuration %s (%s; tokenizer from %s) in %s",
        path.name,
        choice.name,
        choice.reason,
        vocabulary,
        folder,
    )
    return folder
