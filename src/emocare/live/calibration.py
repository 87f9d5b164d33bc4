"""The guided "look at the camera with a relaxed face" step: a few seconds of scores in, a
person's baseline out (``vision.reference.Baseline``), or a clear reason why not.

Plain Python, time passed in. The frames are the page's ordinary camera frames, analysed as
any other; only their scores are kept (never a picture), and only until the step ends.

Why these refusals: a baseline is taken off every later score, so one made of the wrong
frames would do harm for as long as it is kept.
- *No face most of the time*: too few frames to say what the face looks like at rest.
- *Several faces*: whose baseline would it be?
- *Not relaxed*: a smile or an open-mouthed surprise is a clear, visible movement, not how a
  face looks at rest; a baseline made of it would read the person's real smiles as neutral.
  Sad, angry or fearful readings are *not* refused: a relaxed face that reads a little sad to
  the model is exactly what the baseline is for.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..vision.reference import Baseline
from ..vision.types import EMOTIONS, Face

#: How long the step listens; the page shows its progress.
DURATION_S = 5.0
#: Frames with exactly one face needed, as a share of the frames seen and in number.
MIN_FACE_SHARE, MIN_FRAMES = 0.6, 8
#: Share of frames with several faces above which the step is refused.
MAX_SEVERAL_SHARE = 0.2
#: A mean score above which a visible expression was held rather than a relaxed face.
NOT_RELAXED = {"happy": 0.5, "surprise": 0.5}


class CalibrationRefused(Exception):
    """Why frames could not make a baseline; ``code`` names the reason for the page."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass
class Calibration:
    """One run of the step: frames are added as they are analysed, then ``result``."""

    started: float
    duration_s: float = DURATION_S
    frames: int = 0
    several: int = 0
    rows: list[list[float]] = field(default_factory=list)

    def add(self, faces: list[Face]) -> None:
        self.frames += 1
        if len(faces) > 1:
            self.several += 1
        elif faces:
            self.rows.append([faces[0].scores[e] for e in EMOTIONS])

    def progress(self, now: float) -> float:
        return max(0.0, min(1.0, (now - self.started) / self.duration_s))

    def done(self, now: float) -> bool:
        return now - self.started >= self.duration_s

    def result(self) -> Baseline:
        """The baseline of the frames seen, or :class:`CalibrationRefused`."""
        if self.frames and self.several / self.frames > MAX_SEVERAL_SHARE:
            raise CalibrationRefused(
                "several_faces", "More than one face was in view: calibrate with only your face in the picture."
            )
        if len(self.rows) < MIN_FRAMES or len(self.rows) < MIN_FACE_SHARE * self.frames:
            raise CalibrationRefused(
                "no_face", "Your face was not found most of the time: face the camera in good light and try again."
            )
        mean = np.asarray(self.rows).mean(axis=0)
        for emotion, limit in NOT_RELAXED.items():
            if mean[EMOTIONS.index(emotion)] > limit:
                raise CalibrationRefused(
                    f"not_relaxed_{emotion}",
                    f"Your face looked {emotion} rather than relaxed: let it rest and try again.",
                )
        return Baseline.of(np.asarray(self.rows))
