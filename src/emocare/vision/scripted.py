"""A scripted analyzer: a real implementation of the analyzer interface that replays moods.

It ignores the pixels and reports one face with the next scores of its script, cycling. The
care engine's end-to-end tests use it to hold a mood (say, sad) for as long as they need,
through the real Socket.IO path, which a still photo of a smiling astronaut cannot do. It is
never offered on the page.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable

import numpy as np

from .types import EMOTIONS, Face


def scores_for(label: str, confidence: float = 0.85) -> dict[str, float]:
    rest = (1.0 - confidence) / (len(EMOTIONS) - 1)
    return {name: confidence if name == label else rest for name in EMOTIONS}


class ScriptedAnalyzer:
    name = "scripted"

    def __init__(self, script: Iterable[dict[str, float] | str] = ("sad",)) -> None:
        moods = [scores_for(m) if isinstance(m, str) else dict(m) for m in script]
        if not moods:
            raise ValueError("a script needs at least one mood")
        self._moods = itertools.cycle(moods)

    def analyze(self, image: np.ndarray) -> list[Face]:
        height, width = image.shape[:2]
        side = min(width, height) // 3
        box = ((width - side) // 2, (height - side) // 3, side, side)
        return [Face(box, next(self._moods))]

    def classify_crop(self, image: np.ndarray) -> dict[str, float]:
        return next(self._moods)

    def warm_up(self) -> None:
        pass
