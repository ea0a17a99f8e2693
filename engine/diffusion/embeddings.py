"""Textual-inversion embeddings by name in the prompt, as A1111 and ComfyUI users write them:
a word of the prompt that names an embedding file (its file name without the suffix, found in
the models folders' ``embeddings/``) brings that embedding in. Files load once per version
into the shared tokenizer and text encoder through diffusers' loader (new tokens only: every
other prompt encodes as before); a multi-vector embedding's word expands to all its tokens, as
diffusers' pipelines expand it.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path
from typing import Any

from fathom.engine.diffusion.lora import LOCK, pipeline_view
from fathom.engine.errors import LibraryError


def find(folders: list[Path]) -> dict[str, Path]:
    """Embedding files by trigger word: each folder's ``*.safetensors`` (the first folder that
    has a name wins)."""
    out: dict[str, Path] = {}
    for folder in folders:
        if folder.is_dir():
            for f in sorted(folder.glob("*.safetensors")):
                out.setdefault(f.stem, f)
    return out


def triggers(text: str, names: list[str]) -> list[str]:
    """The embedding names that appear in ``text`` as whole words."""
    return [n for n in names if re.search(rf"(?<![\w-]){re.escape(n)}(?![\w-])", text)]


def _version(path: Path) -> str:
    st = path.stat()
    return hashlib.sha1(f"{path.resolve()}|{st.st_size}|{st.st_mtime_ns}".encode()).hexdigest()


def _loaded(components: Any) -> dict[str, str]:
    table: dict[str, str] | None = components.__dict__.get("_embeddings")
    if table is None:
        table = components.__dict__["_embeddings"] = {}
    return table


def load(components: Any, name: str, path: Path) -> None:
    """Bring embedding ``name`` into the model's tokenizer(s) and text encoder(s) once per
    file version (SDXL files carry one part per encoder: ``clip_l`` and ``clip_g``)."""
    from safetensors.torch import load_file

    table = _loaded(components)
    version = _version(path)
    if table.get(name) == version:
        return
    if name in table:
        raise LibraryError(
            f"the embedding file {path.name} changed while its model was loaded",
            "free the model (or restart) to load the new version",
            "prompt",
        )
    state = load_file(str(path))
    with LOCK:
        view = pipeline_view(components)
        try:
            if "clip_l" in state and getattr(components, "text_encoder_2", None) is not None:
                view.load_textual_inversion(
                    state["clip_l"],
                    token=name,
                    text_encoder=components.text_encoder,
                    tokenizer=components.tokenizer,
                )
                view.load_textual_inversion(
                    state["clip_g"],
                    token=name,
                    text_encoder=components.text_encoder_2,
                    tokenizer=components.tokenizer_2,
                )
            else:
                view.load_textual_inversion(str(path), token=name)
        except Exception as exc:  # diffusers raises ValueError/KeyError/RuntimeError here
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]
            raise LibraryError(
                f"the embedding {path.name} does not fit this model: {first}",
                "use an embedding trained for this model's family",
                "prompt",
            ) from exc
    table[name] = version
    components.__dict__.get("_prompts", {}).clear()  # words may now encode differently


def expand(prompt: str, tokenizer: Any) -> str:
    """Each multi-vector embedding word replaced by all its tokens (``name name_1 ...``), as
    diffusers' pipelines do before tokenising; prompts without one come back unchanged."""
    added = getattr(tokenizer, "added_tokens_encoder", {})
    if not added:
        return prompt
    for token in set(tokenizer.tokenize(prompt)):
        if token in added and f"{token}_1" in added:
            parts, i = [token], 1
            while f"{token}_{i}" in added:
                parts.append(f"{token}_{i}")
                i += 1
            prompt = prompt.replace(token, " ".join(parts))
    return prompt
