"""The ``scores`` event: what a page that analyses on its own device sends instead of a frame.

Plain Python. The page found the faces and scored them itself (``static/js/analyzer.js``, the
same model and the same preprocessing as the server); the server only receives boxes and
scores, checks every field, and takes them through the same tracking, smoothing, calibration,
care and history as a frame it analysed (``LiveSession.observe``). No picture ever leaves the
device.

Every field is checked because the numbers come from a client: a score of NaN would poison
the smoothing, a box of 10^300 pixels the tracker, a thousand faces the session's time.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from ..vision.types import EMOTIONS, Face

#: At most this many faces a message (the page's detector keeps far fewer).
MAX_FACES = 8
#: Scores are probabilities: each in [0, 1], summing to 1 within this.
SUM_TOLERANCE = 1e-3
#: Frame sides a page may report (the page analyses 320×240; cameras go to 1920).
MIN_SIDE, MAX_SIDE = 16, 1920
KEYS = {"seq", "width", "height", "faces"}
FACE_KEYS = {"box", "scores"}


class ScoresError(ValueError):
    """A ``scores`` message that cannot be used; ``code`` names what was wrong."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message

    def to_dict(self) -> dict:
        return {"code": self.code, "message": self.message}


@dataclass(frozen=True)
class DeviceAnalysis:
    """One analysed frame as the page reported it."""

    faces: list[Face]
    width: int
    height: int


def _integer(value: object, low: int, high: int, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ScoresError("bad_scores", f"{name} must be an integer from {low} to {high}.")
    return value


def _number(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError
    number = float(value)
    if not math.isfinite(number):
        raise ValueError
    return number


def parse(payload: object) -> DeviceAnalysis:
    """The page's message as faces, or :class:`ScoresError` naming the first thing wrong.

    ``{"seq": 42, "width": 320, "height": 240, "faces": [{"box": [x, y, w, h],
    "scores": [7 probabilities in EMOTIONS order]}]}`` (docs/protocol.md). A box may reach
    past the frame by at most its own size (the detector's boxes do, near an edge).
    """
    if not isinstance(payload, dict) or set(payload) - KEYS or not {"width", "height", "faces"} <= set(payload):
        raise ScoresError("bad_scores", "scores takes {seq, width, height, faces}, see docs/protocol.md.")
    width = _integer(payload["width"], MIN_SIDE, MAX_SIDE, "width")
    height = _integer(payload["height"], MIN_SIDE, MAX_SIDE, "height")
    faces = payload["faces"]
    if not isinstance(faces, list):
        raise ScoresError("bad_scores", "faces must be a list.")
    if len(faces) > MAX_FACES:
        raise ScoresError("too_many_faces", f"At most {MAX_FACES} faces a message.")
    return DeviceAnalysis([_face(face, width, height) for face in faces], width, height)


def _face(face: object, width: int, height: int) -> Face:
    if not isinstance(face, dict) or set(face) != FACE_KEYS:
        raise ScoresError("bad_scores", "Each face is {box, scores}.")
    box, scores = face["box"], face["scores"]
    try:
        if not isinstance(box, list) or len(box) != 4:
            raise ValueError
        x, y, w, h = (_number(v) for v in box)
    except (TypeError, ValueError):
        raise ScoresError("bad_box", "box is [x, y, width, height], four finite numbers.") from None
    if not (1 <= w <= 2 * width and 1 <= h <= 2 * height and -w <= x <= width and -h <= y <= height):
        raise ScoresError("bad_box", "The box must have a size and lie (mostly) within the frame.")
    try:
        if not isinstance(scores, list) or len(scores) != len(EMOTIONS):
            raise ValueError
        values = [_number(v) for v in scores]
    except (TypeError, ValueError):
        raise ScoresError("bad_score_values", f"scores are {len(EMOTIONS)} finite numbers.") from None
    if any(not 0.0 <= v <= 1.0 for v in values) or abs(sum(values) - 1.0) > SUM_TOLERANCE:
        raise ScoresError("bad_score_values", "scores are probabilities: each in [0, 1], summing to 1.")
    return Face(box=(round(x), round(y), round(w), round(h)), scores=dict(zip(EMOTIONS, values, strict=True)))
