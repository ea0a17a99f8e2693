"""Adaptive steps: stop denoising once the predicted clean image stops changing.

Each scheduler step predicts the clean sample x̂₀. Late in a schedule x̂₀ barely moves between
steps, and the remaining steps only polish what is already decided. :class:`AdaptiveSteps`
measures the relative change ``‖x̂₀ᵢ − x̂₀ᵢ₋₁‖ / ‖x̂₀ᵢ₋₁‖`` and asks the loop to stop once it falls
below ``threshold`` (the loop then returns the last x̂₀). ``threshold=0`` never stops: the full
schedule runs.

How many steps a prompt needs can also be guessed before sampling, through the
:class:`StepPredictor` interface: :class:`HeuristicStepPredictor` (a documented rule of thumb)
or :class:`RegressionStepPredictor` (a ridge regression fitted to logged runs — records of the
prompt, settings and the step at which adaptive stopping fired).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch


def relative_change(new: torch.Tensor, old: torch.Tensor) -> float:
    """‖new − old‖ / ‖old‖ over the whole batch (0 when both are zero)."""
    den = float(old.float().norm())
    num = float((new.float() - old.float()).norm())
    return num / den if den > 0 else (0.0 if num == 0 else math.inf)


class AdaptiveSteps:
    """Early stop on a converged x̂₀ prediction (an accel for the denoising loop).

    threshold: stop when the relative change of x̂₀ between consecutive steps is below this
        (0 disables stopping).
    min_steps: never stop before this many steps have run.
    patience: the change must stay below the threshold for this many consecutive steps.
    """

    def __init__(self, threshold: float = 0.02, min_steps: int = 2, patience: int = 1) -> None:
        if threshold < 0:
            raise ValueError(f"adaptive threshold must be >= 0, got {threshold}")
        self.threshold = float(threshold)
        self.min_steps = max(1, int(min_steps))
        self.patience = max(1, int(patience))
        self.reset()

    def reset(self) -> None:
        self._prev: torch.Tensor | None = None
        self._calm = 0
        self.steps_run = 0
        self.stopped_at: int | None = None
        self.changes: list[float] = []

    def attach(self, components: Any) -> None:
        self.reset()

    def detach(self) -> None:
        self._prev = None

    def after_step(
        self, step_index: int, t: Any, latents: torch.Tensor, pred_x0: torch.Tensor | None
    ) -> bool:
        """True when the loop should stop after this step (and return ``pred_x0``)."""
        self.steps_run = step_index + 1
        if pred_x0 is None:
            return False
        stop = False
        if self._prev is not None:
            change = relative_change(pred_x0, self._prev)
            self.changes.append(change)
            self._calm = self._calm + 1 if change < self.threshold else 0
            stop = self._calm >= self.patience and self.steps_run >= self.min_steps
        self._prev = pred_x0.detach().clone()
        if stop:
            self.stopped_at = self.steps_run
        return stop

    # plain diffusers pipelines ----------------------------------------------
    def diffusers_callback(self, pipe: Any) -> Any:
        """Use with a diffusers pipeline whose scheduler reports ``pred_original_sample`` (DDIM,
        DDPM, Euler, LCM...): returns ``callback_on_step_end``. On a stop the callback hands the
        pipeline x̂₀ as its latents and sets its interrupt flag, so the remaining steps are
        skipped and the image decodes from x̂₀."""
        self.reset()
        scheduler = pipe.scheduler
        original = scheduler.step
        seen: dict[str, torch.Tensor | None] = {"x0": None}

        def step(*args: Any, **kwargs: Any) -> Any:
            out = original(*args, **kwargs)
            if isinstance(out, tuple):  # return_dict=False: (prev_sample, x0 estimate, ...)
                x0 = out[1] if len(out) > 1 else None
            else:
                x0 = getattr(out, "pred_original_sample", None)
                if x0 is None:
                    x0 = getattr(out, "denoised", None)
            seen["x0"] = x0
            return out

        scheduler.step = step

        def restore() -> None:
            scheduler.__dict__.pop("step", None)  # the class's own step shows again

        def callback(p: Any, i: int, t: Any, kwargs: dict) -> dict:
            x0 = seen["x0"]
            stop = self.after_step(i, t, kwargs["latents"], x0) and x0 is not None
            if stop or i + 1 >= len(scheduler.timesteps):
                restore()
            if stop:
                p._interrupt = True
                return {"latents": x0}
            return {}

        self._restore = restore
        return callback

    def restore(self) -> None:
        """Undo :meth:`diffusers_callback`'s scheduler hook (safe to call twice)."""
        fn = getattr(self, "_restore", None)
        if fn is not None:
            fn()


# --------------------------------------------------------------------------- step predictors


class StepPredictor(Protocol):
    """Guesses how many denoising steps a prompt needs under the given settings."""

    def predict(
        self, prompt: str, *, steps: int, guidance: float = 7.5, width: int = 512, height: int = 512
    ) -> int: ...


DETAIL_WORDS = (
    "detailed",
    "intricate",
    "highly",
    "texture",
    "hair",
    "fur",
    "text",
    "sharp",
    "8k",
    "4k",
    "photorealistic",
    "realistic",
    "crowd",
    "ornate",
    "fine",
)


def prompt_features(
    prompt: str, guidance: float = 7.5, width: int = 512, height: int = 512
) -> np.ndarray:
    """Numeric features of a prompt and its settings (the regressor's inputs)."""
    words = re.findall(r"[\w']+", prompt.lower())
    n_words = len(words)
    detail = sum(w in DETAIL_WORDS for w in words)
    commas = prompt.count(",")
    return np.array(
        [
            1.0,
            math.log1p(n_words),
            detail,
            math.log1p(commas),
            guidance / 10.0,
            math.log2(max(width * height, 1) / (512 * 512)),
        ],
        dtype=np.float64,
    )


class HeuristicStepPredictor:
    """Rule of thumb: a short, plain prompt settles early; detail words, long comma-separated
    prompts, high guidance and large images settle late.

    fraction = base + 0.08·ln(1 + words) + 0.06·detail words + 0.04·ln(1 + commas)
               + 0.02·(guidance − 7.5) + 0.05·log2(pixels / 512²), clipped to [floor, 1];
    steps = ceil(fraction · requested steps), at least ``min_steps``.
    """

    def __init__(self, base: float = 0.45, floor: float = 0.4, min_steps: int = 2) -> None:
        self.base, self.floor, self.min_steps = base, floor, min_steps

    def predict(
        self, prompt: str, *, steps: int, guidance: float = 7.5, width: int = 512, height: int = 512
    ) -> int:
        f = prompt_features(prompt, guidance, width, height)
        fraction = (
            self.base
            + 0.08 * f[1]
            + 0.06 * f[2]
            + 0.04 * f[3]
            + 0.02 * (guidance - 7.5)
            + 0.05 * f[5]
        )
        fraction = min(1.0, max(self.floor, fraction))
        return max(self.min_steps, min(steps, math.ceil(fraction * steps)))


class RegressionStepPredictor:
    """Ridge regression from :func:`prompt_features` to the fraction of steps that ran.

    Fit it on logged runs: dicts with ``prompt``, ``steps`` (requested), ``steps_run``, and
    optionally ``guidance``, ``width``, ``height`` — what a run report records.
    """

    def __init__(
        self, weights: Sequence[float] | None = None, l2: float = 1e-2, min_steps: int = 2
    ) -> None:
        self.weights = None if weights is None else np.asarray(weights, dtype=np.float64)
        self.l2 = l2
        self.min_steps = min_steps

    @staticmethod
    def _xy(records: Iterable[dict[str, Any]]) -> tuple[np.ndarray, np.ndarray]:
        xs, ys = [], []
        for r in records:
            xs.append(
                prompt_features(
                    r["prompt"], r.get("guidance", 7.5), r.get("width", 512), r.get("height", 512)
                )
            )
            ys.append(r["steps_run"] / max(r["steps"], 1))
        if not xs:
            raise ValueError("no logged runs to fit the step predictor on")
        return np.stack(xs), np.asarray(ys)

    def fit(self, records: Iterable[dict[str, Any]]) -> RegressionStepPredictor:
        x, y = self._xy(records)
        reg = self.l2 * np.eye(x.shape[1])
        reg[0, 0] = 0.0  # no penalty on the intercept
        self.weights = np.linalg.solve(x.T @ x + reg, x.T @ y)
        return self

    def predict(
        self, prompt: str, *, steps: int, guidance: float = 7.5, width: int = 512, height: int = 512
    ) -> int:
        if self.weights is None:
            raise RuntimeError("the step predictor has not been fitted (call fit() or load())")
        fraction = float(prompt_features(prompt, guidance, width, height) @ self.weights)
        fraction = min(1.0, max(0.0, fraction))
        return max(self.min_steps, min(steps, math.ceil(fraction * steps)))

    def save(self, path: str | Path) -> None:
        if self.weights is None:
            raise RuntimeError("nothing to save: the step predictor has not been fitted")
        Path(path).write_text(
            json.dumps(
                {
                    "kind": "fathom.step_predictor.ridge",
                    "version": 1,
                    "weights": self.weights.tolist(),
                    "l2": self.l2,
                    "min_steps": self.min_steps,
                }
            ),
            encoding="utf-8",
        )

    @classmethod
    def load(cls, path: str | Path) -> RegressionStepPredictor:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
        if data.get("kind") != "fathom.step_predictor.ridge":
            raise ValueError(f"{path} is not a Fathom step predictor file")
        return cls(data["weights"], data["l2"], data["min_steps"])
