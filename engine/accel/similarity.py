"""Stochastic similarity filter: skip frames that barely differ from the last processed one.

From StreamDiffusion (Kodaira et al., 2023, section 3.4): the cosine similarity ``s`` between the
new input and the last processed input sets a skip probability
``p = max(0, 1 - (1 - s) / (1 - threshold))``; a frame is skipped with probability ``p`` (its
output is the previous output). Drawing at random instead of cutting at the threshold keeps a
slowly drifting video from freezing; ``max_skip`` bounds how many frames in a row can be skipped.
"""

from __future__ import annotations

import random

import torch


def cosine_similarity(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a.reshape(-1).double(), b.reshape(-1).double()
    den = (a.norm() * b.norm()).clamp_min(1e-12)
    return float((a @ b) / den)


def skip_probability(similarity: float, threshold: float) -> float:
    if threshold >= 1.0:
        return 0.0
    return max(0.0, 1.0 - (1.0 - similarity) / (1.0 - threshold))


class SimilarityFilter:
    """Decides per frame whether to process it (True) or reuse the previous output (False).

    threshold: similarity at which a frame starts having a chance to be skipped (0.98 in the
        paper); 1 disables skipping.
    max_skip: after this many consecutive skips the next frame is always processed.
    seed: the filter's own random stream, so runs repeat.
    """

    def __init__(self, threshold: float = 0.98, max_skip: int = 10, seed: int = 0) -> None:
        if not 0.0 <= threshold <= 1.0:
            raise ValueError(f"similarity threshold must be in [0, 1], got {threshold}")
        self.threshold = threshold
        self.max_skip = max_skip
        self._rng = random.Random(seed)
        self._seed = seed
        self._last: torch.Tensor | None = None
        self.skipped_in_a_row = 0
        self.skipped = 0
        self.processed = 0
        self.last_similarity: float | None = None

    def reset(self) -> None:
        self._rng = random.Random(self._seed)
        self._last = None
        self.skipped_in_a_row = self.skipped = self.processed = 0
        self.last_similarity = None

    def __call__(self, frame: torch.Tensor) -> bool:
        """True: process this frame. False: skip it (reuse the previous output)."""
        if self._last is None or self._last.shape != frame.shape:
            return self._take(frame)
        sim = cosine_similarity(self._last, frame)
        self.last_similarity = sim
        if self.skipped_in_a_row >= self.max_skip:
            return self._take(frame)
        if self._rng.random() < skip_probability(sim, self.threshold):
            self.skipped_in_a_row += 1
            self.skipped += 1
            return False
        return self._take(frame)

    def _take(self, frame: torch.Tensor) -> bool:
        self._last = frame.detach().clone()
        self.skipped_in_a_row = 0
        self.processed += 1
        return True
