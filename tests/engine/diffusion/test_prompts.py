"""Prompt syntax: A1111/ComfyUI emphasis, BREAK, escapes; prompts past 77 tokens in chunks,
nothing cut silently; a weighted prompt renders as diffusers does from the same embeddings."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from fathom.engine.diffusion.loop import generate
from fathom.engine.diffusion.prompts import MAX_CHUNKS, parse, tokenize
from fathom.engine.diffusion.schedulers import make_scheduler
from fathom.engine.models.diffusion import load_components


@pytest.fixture(scope="module")
def comps(tiny_sd: Path) -> Any:
    return load_components(tiny_sd, "cpu", "float32")


@pytest.mark.parametrize(
    ("prompt", "expected"),
    [
        ("a (cat:1.3) on a mat", [("a ", 1.0), ("cat", 1.3), (" on a mat", 1.0)]),
        ("a (cat) [dog]", [("a ", 1.0), ("cat", 1.1), (" ", 1.0), ("dog", 1 / 1.1)]),
        ("((cat))", [("cat", 1.21)]),
        ("(a (b:2) c)", [("a ", 1.1), ("b", 2.2), (" c", 1.1)]),
        (r"\(literal\)", [("(literal)", 1.0)]),
        ("(open to the end", [("open to the end", 1.1)]),
        ("a BREAK b", [("a ", 1.0), (None, 1.0), (" b", 1.0)]),
        ("ratio 16:9", [("ratio 16:9", 1.0)]),
    ],
)
def test_emphasis_syntax_parses_as_a1111_writes_it(
    prompt: str, expected: list[tuple[str | None, float]]
) -> None:
    got = [(s.text, s.weight) for s in parse(prompt)]
    assert [t for t, _ in got] == [t for t, _ in expected]
    assert [w for _, w in got] == pytest.approx([w for _, w in expected])


def test_long_prompts_are_chunked_and_nothing_is_cut_below_the_limit(comps: Any) -> None:
    words = " ".join(f"w{i}" for i in range(150))
    chunks = tokenize(comps.tokenizer, words)
    n_tokens = len(comps.tokenizer(words, add_special_tokens=False).input_ids)
    assert len(chunks.ids) == -(-n_tokens // 75) and chunks.cut == 0
    assert all(len(ids) == 77 for ids in chunks.ids)
    bos, eos = comps.tokenizer.bos_token_id, comps.tokenizer.eos_token_id
    assert all(ids[0] == bos and eos in ids[1:] for ids in chunks.ids)
    kept = [t for ids in chunks.ids for t in ids[1:76] if t not in (bos, eos)]
    assert kept == comps.tokenizer(words, add_special_tokens=False).input_ids
    huge = " ".join(f"w{i}" for i in range(2000))
    assert tokenize(comps.tokenizer, huge).cut > 0
    assert len(tokenize(comps.tokenizer, huge).ids) == MAX_CHUNKS


def test_a_plain_prompt_encodes_as_the_plain_tokenizer_call(comps: Any) -> None:
    tokens = comps.tokenizer(
        "a red cat", padding="max_length", max_length=77, truncation=True, return_tensors="pt"
    )
    plain = comps.text_encoder(tokens.input_ids)[0]
    assert torch.equal(comps.encode_prompt("a red cat"), plain)


def _hand_weighted(comps: Any, pieces: list[tuple[str, float]]) -> torch.Tensor:
    """The embeddings A1111 would use, built here from the tokenizer and encoder directly."""
    tok = comps.tokenizer
    ids, weights = [tok.bos_token_id], [1.0]
    for text, w in pieces:
        piece = tok(text, add_special_tokens=False).input_ids
        ids += piece
        weights += [w] * len(piece)
    ids.append(tok.eos_token_id)
    weights.append(1.0)
    ids += [tok.pad_token_id] * (77 - len(ids))
    weights += [1.0] * (77 - len(weights))
    z = comps.text_encoder(torch.tensor([ids]))[0]
    mean = z.mean()
    z = z * torch.tensor(weights)[None, :, None]
    return z * (mean / z.mean())


def test_a_weighted_prompt_renders_as_diffusers_does_from_the_same_embeddings(comps: Any) -> None:
    from diffusers import StableDiffusionPipeline

    ours = generate(comps, "a (red:1.4) cat", "[blurry]", steps=3, seed=4, width=64, height=64)
    with torch.no_grad():
        pos = _hand_weighted(comps, [("a ", 1.0), ("red", 1.4), (" cat", 1.0)])
        neg = _hand_weighted(comps, [("blurry", 1 / 1.1)])
    pipe = StableDiffusionPipeline(
        unet=comps.unet,
        vae=comps.vae,
        text_encoder=comps.text_encoder,
        tokenizer=comps.tokenizer,
        scheduler=make_scheduler(comps.scheduler, "default"),
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
    pipe.set_progress_bar_config(disable=True)
    ref = pipe(
        prompt_embeds=pos,
        negative_prompt_embeds=neg,
        num_inference_steps=3,
        width=64,
        height=64,
        output_type="np",
        generator=torch.Generator().manual_seed(4),
    ).images
    assert np.abs(ours.images - ref).max() <= 2 / 255
    plain = generate(comps, "a red cat", "blurry", steps=3, seed=4, width=64, height=64)
    assert np.abs(ours.images - plain.images).max() > 1e-3  # the weights did something


def test_a_long_prompt_runs_with_a_short_negative_and_reports_its_chunks(comps: Any) -> None:
    long = ", ".join(["a lighthouse on a cliff at dusk with gulls"] * 12)
    out = generate(comps, long, "blurry", steps=2, seed=1, width=64, height=64)
    assert out.prompt_chunks >= 2 and out.prompt_cut == 0
    assert out.images.shape == (1, 64, 64, 3) and np.isfinite(out.images).all()


def test_sdxl_prompts_chunk_through_both_encoders(tiny_sdxl: Path) -> None:
    xl = load_components(tiny_sdxl, "cpu", "float32")
    long = " ".join(f"w{i}" for i in range(120))
    n = -(-len(xl.tokenizer_2(long, add_special_tokens=False).input_ids) // 75)
    enc = xl.encode(long)
    assert n > 1 and enc.chunks == n and enc.embeds.shape[-1] == 64 and enc.pooled is not None
    assert torch.equal(enc.pooled, xl.encode(long).pooled)  # cached
    out = generate(xl, long, "", steps=2, seed=1, width=64, height=64)
    assert np.isfinite(out.images).all() and out.prompt_chunks == n
