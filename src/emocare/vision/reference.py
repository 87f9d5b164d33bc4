"""A person's relaxed face as the model sees it, and scores corrected by it.

Why: a face at rest is not expressionless to a classifier. Brows, mouth corners and the
light of one room make one person's relaxed face read a little sad to the model, and
another's a little angry, every time. The model cannot tell that from a mood; the person's
own relaxed face can. Measured with the shipped model on posed colour photos of about thirty
people (docs/model-card.md): subtracting, from each photo's log-scores, how far the same
person's other relaxed photos sit from the population's relaxed photos lifted balanced
accuracy from 65.2% to 69.1%, neutral recall from 89% to 98%, fear from 36% to 48%.

So a baseline keeps, per expression, the mean log-score over a few seconds of the person's
relaxed face (with the spread and the number of frames, never a picture), and a corrected
score is ``softmax(log p - strength · (baseline - population))``, where the population's
relaxed mean comes from the model card (``calibration.relaxed_mean_log``: validation photos
of relaxed faces). There, with the first model, half the offset gained about half as much.
The model trained on the FER+ votes is surer of itself, and reads some relaxed faces as a
little sad (13% to 19% for one JAFFE poser, under 1% for the population): taking all of the
offset off then erased sad on our JAFFE validation (sad recall 50% → 0%, balanced 73.3% →
61.4%), while half of it kept sad (50%, balanced 71.0%) and still lifted neutral on the pooled
JAFFE and muxspace people (84% → 91%; 93% with all of it). So the strength is ½.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .metrics import softmax
from .types import EMOTIONS

#: How much of the person's offset from the population is taken off (1: all of it).
STRENGTH = 0.5
#: Scores are floored before their logarithm: a calibrated score of exactly 0 would make the
#: baseline -inf, and 1e-4 is far below anything the care engine reads.
FLOOR = 1e-4
#: The most a baseline may move one expression's log-score: a baseline that far from the
#: population is a frame that was not a relaxed face, not a face that looks so at rest.
MAX_OFFSET = 3.0


def log_scores(probabilities: np.ndarray) -> np.ndarray:
    """Natural logarithms of scores (…×7), floored at ``FLOOR``."""
    return np.log(np.clip(np.asarray(probabilities, dtype=np.float64), FLOOR, 1.0))


@dataclass(frozen=True)
class Baseline:
    """The mean and spread of a relaxed face's log-scores over ``count`` frames (or photos)."""

    mean_log: tuple[float, ...]
    spread: tuple[float, ...]
    count: int

    @classmethod
    def of(cls, probabilities: np.ndarray) -> Baseline:
        """The baseline of scores (N×7, one row a frame)."""
        logs = log_scores(np.atleast_2d(probabilities))
        if logs.shape[1] != len(EMOTIONS) or not len(logs):
            raise ValueError(f"a baseline needs N×{len(EMOTIONS)} scores, not {logs.shape}")
        return cls(
            mean_log=tuple(round(float(v), 5) for v in logs.mean(axis=0)),
            spread=tuple(round(float(v), 5) for v in logs.std(axis=0)),
            count=len(logs),
        )

    def to_dict(self) -> dict:
        return {
            "mean_log": dict(zip(EMOTIONS, self.mean_log, strict=True)),
            "spread": dict(zip(EMOTIONS, self.spread, strict=True)),
            "count": self.count,
        }

    @classmethod
    def from_dict(cls, data: dict) -> Baseline:
        """A stored baseline, checked: every expression, finite numbers, log-scores ≤ 0."""
        try:
            mean = tuple(float(data["mean_log"][e]) for e in EMOTIONS)
            spread = tuple(float(data["spread"][e]) for e in EMOTIONS)
            count = int(data["count"])
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"not a baseline: {exc}") from exc
        if count < 1 or not all(math.isfinite(v) for v in mean + spread):
            raise ValueError("not a baseline: counts and scores must be finite and positive")
        if any(v > 0 or v < math.log(FLOOR) - 1e-6 for v in mean) or any(v < 0 for v in spread):
            raise ValueError("not a baseline: mean log-scores lie in [log 1e-4, 0], spreads ≥ 0")
        return cls(mean, spread, count)

    def offset(self, population: np.ndarray, strength: float = STRENGTH) -> np.ndarray:
        """How far this face at rest sits from the population's, per expression (bounded)."""
        raw = np.asarray(self.mean_log) - np.asarray(population, dtype=np.float64)
        return strength * np.clip(raw, -MAX_OFFSET, MAX_OFFSET)


def corrected(probabilities: np.ndarray, offset: np.ndarray) -> np.ndarray:
    """Scores (…×7) with a person's offset taken off their log-scores, summing to 1 again."""
    return softmax(log_scores(probabilities) - np.asarray(offset, dtype=np.float64))


def corrected_scores(scores: dict[str, float], offset: np.ndarray) -> dict[str, float]:
    """:func:`corrected` for one face's scores by name, as the live path holds them."""
    fixed = corrected(np.array([scores[e] for e in EMOTIONS]), offset)
    return {e: float(v) for e, v in zip(EMOTIONS, fixed, strict=True)}
