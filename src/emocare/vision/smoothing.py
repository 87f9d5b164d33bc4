"""Smoothing expression scores over time, so the label a person sees does not flicker.

Raw per-frame scores jump with lighting, pose and compression noise. Each face track keeps an
exponential moving average of its probabilities, with a time constant in seconds (so it
behaves the same at 5 or 15 fps), and a label with hysteresis: the shown label changes only
when another expression leads it by ``margin`` in the smoothed scores.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

from .types import EMOTIONS


@dataclass(frozen=True)
class SmoothingConfig:
    #: Time constant of the moving average, seconds; 0 turns smoothing off.
    tau: float = 0.5
    #: How far another expression must lead the current label before the label changes.
    margin: float = 0.12


class EmotionSmoother:
    """EMA of probabilities plus a hysteresis label, for one face track."""

    def __init__(self, config: SmoothingConfig = SmoothingConfig()) -> None:
        self.config = config
        self.scores: dict[str, float] | None = None
        self.label: str | None = None
        self._last_t: float | None = None

    def update(self, scores: dict[str, float], t: float) -> tuple[dict[str, float], str]:
        """Fold in one frame's raw ``scores`` observed at time ``t`` (seconds)."""
        if self.scores is None or self._last_t is None or self.config.tau <= 0:
            self.scores = {name: scores[name] for name in EMOTIONS}
        else:
            dt = max(0.0, t - self._last_t)
            alpha = 1.0 - math.exp(-dt / self.config.tau)
            self.scores = {name: self.scores[name] + alpha * (scores[name] - self.scores[name]) for name in EMOTIONS}
        self._last_t = t
        leader = max(self.scores, key=self.scores.__getitem__)
        if (
            self.label is None
            or self.config.tau <= 0
            or (leader != self.label and self.scores[leader] - self.scores[self.label] > self.config.margin)
        ):
            self.label = leader
        return dict(self.scores), self.label


def count_flips(labels: list[str]) -> int:
    """How many times a sequence of labels changes value."""
    return sum(1 for a, b in itertools.pairwise(labels) if a != b)
