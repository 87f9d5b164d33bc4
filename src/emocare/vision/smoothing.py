"""Smoothing expression scores over time, so the label a person sees does not flicker.

Raw per-frame scores jump with lighting, pose and compression noise. Each face track keeps a
moving average of its probabilities with a time constant in seconds (so it behaves the same
at 5 or 15 fps), and a label with hysteresis.

Two measured faults of the first design are avoided (issue "Recognition you can trust"):
- *The first frame decided.* The label was set from the first frame and then needed a lead of
  ``margin`` to change, so on a steady face whose true expression leads only narrowly the
  first (often wrong) label stuck: clip accuracy fell below the plain per-frame majority's.
  Now the average weighs each of a track's first frames equally (a running mean, until the
  time constant takes over), which is the best estimate for a face that does not change.
- *Hysteresis by margin only.* Now the label also changes when another expression has led the
  average for ``dwell_s`` without a break: a narrow but lasting lead wins, a passing one
  does not; a clear lead (``margin``) still wins at once.
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
    #: A lead this large over the current label changes it at once.
    margin: float = 0.12
    #: A lead of any size held this long (seconds) changes it too.
    dwell_s: float = 2.5


class EmotionSmoother:
    """Moving average of probabilities plus a hysteresis label, for one face track."""

    def __init__(self, config: SmoothingConfig = SmoothingConfig()) -> None:
        self.config = config
        self.scores: dict[str, float] | None = None
        self.label: str | None = None
        self._last_t: float | None = None
        self._frames = 0
        self._leader: str | None = None
        self._leader_since = 0.0

    def update(self, scores: dict[str, float], t: float) -> tuple[dict[str, float], str]:
        """Fold in one frame's raw ``scores`` observed at time ``t`` (seconds)."""
        self._frames += 1
        if self.scores is None or self._last_t is None or self.config.tau <= 0:
            self.scores = {name: scores[name] for name in EMOTIONS}
        else:
            dt = max(0.0, t - self._last_t)
            # a running mean over the first frames, then the time constant's weight
            alpha = max(1.0 - math.exp(-dt / self.config.tau), 1.0 / self._frames)
            self.scores = {name: self.scores[name] + alpha * (scores[name] - self.scores[name]) for name in EMOTIONS}
        self._last_t = t
        leader = max(self.scores, key=self.scores.__getitem__)
        if leader != self._leader:
            self._leader, self._leader_since = leader, t
        if (
            self.label is None
            or self.config.tau <= 0
            or (
                leader != self.label
                and (
                    self.scores[leader] - self.scores[self.label] > self.config.margin
                    or t - self._leader_since >= self.config.dwell_s
                )
            )
        ):
            self.label = leader
        return dict(self.scores), self.label


def count_flips(labels: list[str]) -> int:
    """How many times a sequence of labels changes value."""
    return sum(1 for a, b in itertools.pairwise(labels) if a != b)
