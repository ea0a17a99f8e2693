"""Prompt syntax as A1111 and ComfyUI users write it: emphasis weights and prompts longer than
the text encoder's 77 tokens (torch is imported only to apply weights).

- ``(words:1.3)`` weights words by 1.3; ``(words)`` by 1.1 and ``[words]`` by 1/1.1; they nest
  and multiply. ``\\(`` and ``\\)`` are literal brackets. ``BREAK`` starts a new chunk.
- A prompt is tokenised without its start and end tokens and cut into chunks of 75 tokens; each
  chunk is encoded on its own as ``<start> 75 tokens <end>`` (padded to 77) and the chunks'
  embeddings are joined along the tokens, so nothing is cut off (the negative prompt is padded
  with empty chunks to the same length). Weights scale each token's embedding; the chunk is
  then rescaled to keep its mean, as A1111 does, so emphasis shifts attention without changing
  the overall magnitude.
- A prompt with no weights that fits in one chunk encodes exactly as the plain tokenizer call
  diffusers makes, so results stay equal to diffusers' pipelines.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

#: (…) multiplies by this, […] divides by it: A1111's and ComfyUI's emphasis step.
EMPHASIS = 1.1
CHUNK = 75  # tokens of text per chunk: 77 with the start and end tokens
#: The most chunks a prompt may have (1200 tokens); beyond that the rest is cut and reported.
MAX_CHUNKS = 16

_TOKEN = re.compile(
    r"\\\(|\\\)|\\\[|\\]|\\\\|\\|\(|\[|:\s*([+-]?[.\d]+)\s*\)|\)|]|\bBREAK\b"
    r"|(?:(?!\bBREAK\b)[^\\()\[\]:])+|:"
)


@dataclass(frozen=True)
class Segment:
    """A run of prompt text with one weight; ``text`` None marks a BREAK."""

    text: str | None
    weight: float


def parse(prompt: str) -> list[Segment]:
    """The prompt as weighted text runs. Unbalanced brackets are closed at the end (as in
    A1111), so any text parses."""
    out: list[tuple[str | None, float]] = []
    stack: list[tuple[str, int]] = []  # bracket kind, index into out where it opened

    def scale(start: int, factor: float) -> None:
        for i in range(start, len(out)):
            text, w = out[i]
            out[i] = (text, w * factor)

    for m in _TOKEN.finditer(prompt):
        tok, explicit = m.group(0), m.group(1)
        if tok in ("(", "["):
            stack.append((tok, len(out)))
        elif explicit is not None and stack and stack[-1][0] == "(":
            scale(stack.pop()[1], float(explicit))
        elif tok == ")" and stack and stack[-1][0] == "(":
            scale(stack.pop()[1], EMPHASIS)
        elif tok == "]" and stack and stack[-1][0] == "[":
            scale(stack.pop()[1], 1 / EMPHASIS)
        elif tok == "BREAK":
            out.append((None, 1.0))
        elif tok.startswith("\\") and len(tok) == 2:
            out.append((tok[1], 1.0))
        else:
            out.append((tok, 1.0))
    for kind, start in reversed(stack):
        scale(start, EMPHASIS if kind == "(" else 1 / EMPHASIS)
    return _merge(out)


def _merge(parts: list[tuple[str | None, float]]) -> list[Segment]:
    merged: list[Segment] = []
    for text, w in parts:
        if text is not None and merged and merged[-1].text is not None and merged[-1].weight == w:
            merged[-1] = Segment(merged[-1].text + text, w)
        elif text is None or text:
            merged.append(Segment(text, w))
    return merged


def is_plain(prompt: str) -> bool:
    """No emphasis, escapes or BREAK: the plain tokenizer call encodes it (when it fits)."""
    return not any(c in prompt for c in "()[]\\") and "BREAK" not in prompt


@dataclass
class Chunks:
    """A tokenised prompt: chunks of token ids (start, text, end, padding: 77 each) with a
    weight per position, and the number of text tokens cut off past ``MAX_CHUNKS``."""

    ids: list[list[int]]
    weights: list[list[float]]
    cut: int = 0

    def padded_to(self, n: int, empty: Chunks) -> Chunks:
        """This prompt padded with empty chunks to ``n`` chunks (a negative prompt must have
        as many as its positive, or the two halves of a CFG batch differ in length)."""
        extra = n - len(self.ids)
        return Chunks(
            self.ids + empty.ids[:1] * extra, self.weights + empty.weights[:1] * extra, self.cut
        )


def tokenize(tokenizer: Any, prompt: str) -> Chunks:
    """Weighted chunks of ``prompt`` for one tokenizer (its start, end and pad ids)."""
    length = int(tokenizer.model_max_length)
    text_len = length - 2
    bos, eos = tokenizer.bos_token_id, tokenizer.eos_token_id
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else eos
    pieces: list[list[tuple[int, float]]] = [[]]
    for seg in parse(prompt):
        if seg.text is None:
            pieces.append([])
            continue
        ids = tokenizer(seg.text, add_special_tokens=False).input_ids
        pieces[-1].extend((i, seg.weight) for i in ids)
    chunks: list[list[tuple[int, float]]] = []
    for piece in pieces:
        chunks += [piece[i : i + text_len] for i in range(0, max(len(piece), 1), text_len)]
    cut = sum(len(c) for c in chunks[MAX_CHUNKS:])
    out = Chunks([], [], cut)
    for chunk in chunks[:MAX_CHUNKS]:
        ids = [bos, *(i for i, _ in chunk), eos]
        weights = [1.0, *(w for _, w in chunk), 1.0]
        out.ids.append(ids + [pad] * (length - len(ids)))
        out.weights.append(weights + [1.0] * (length - len(weights)))
    return out


def apply_weights(hidden: torch.Tensor, weights: list[float]) -> torch.Tensor:
    """Scale each token's embedding by its weight, then rescale so the chunk keeps its mean
    (A1111's emphasis): 1×77×D in, 1×77×D out; all-1 weights leave it untouched."""
    if all(w == 1.0 for w in weights):
        return hidden
    import torch

    w = torch.tensor(weights, dtype=hidden.dtype, device=hidden.device)[None, :, None]
    before = hidden.float().mean()
    scaled = hidden * w
    return scaled * (before / scaled.float().mean()).to(hidden.dtype)
