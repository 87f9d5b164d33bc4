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

#: At most this many faces a frame (the page's detector keeps far fewer).
MAX_FACES = 8
#: Scores are probabilities: each in [0, 1], summing to 1 within this.
SUM_TOLERANCE = 1e-3
#: Frame sides a page may report (the page analyses 320×240; cameras go to 1920).
MIN_SIDE, MAX_SIDE = 16, 1920
#: A message may carry several analysed frames, oldest first, each with its age: the page
#: analyses ten frames a second and sends them two at a time (why: docs/device.md, *The
#: loop*). At most this many a message, none older than MAX_AGE_MS.
MAX_FRAMES, MAX_AGE_MS = 4, 2000
KEYS = {"seq", "width", "height", "faces", "frames"}
FRAME_KEYS = {"age_ms", "faces"}
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
    #: how long before the message the page analysed it, in seconds
    age_s: float = 0.0


def _integer(value: object, low: int, high: int, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ScoresError("bad_scores", f"{name} must be an integer from {low} to {high}.")
    return value


def _number(value: object) -> float:
    """A finite float, or ValueError / TypeError (an integer too large for a float included)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError
    try:
        number = float(value)
    except OverflowError:
        raise ValueError from None
    if not math.isfinite(number):
        raise ValueError
    return number


def frames_in(payload: object) -> int:
    """How many frames a message says it carries, before it is read (what the rate budget
    charges it): at most MAX_FRAMES, at least 1."""
    frames = payload.get("frames") if isinstance(payload, dict) else None
    return min(len(frames), MAX_FRAMES) if isinstance(frames, list) and frames else 1


def parse(payload: object) -> list[DeviceAnalysis]:
    """The page's message as its frames' faces, oldest first, or :class:`ScoresError` naming
    the first thing wrong.

    One frame: ``{"seq": 42, "width": 320, "height": 240, "faces": [{"box": [x, y, w, h],
    "scores": [7 probabilities in EMOTIONS order]}]}``; several: ``"frames": [{"age_ms": 100,
    "faces": [...]}, {"age_ms": 0, "faces": [...]}]`` in place of ``faces``, ages not growing
    (docs/protocol.md). A box may reach past the frame by at most its own size (the
    detector's boxes do, near an edge).
    """
    if (
        not isinstance(payload, dict)
        or set(payload) - KEYS
        or not {"width", "height"} <= set(payload)
        or ("faces" in payload) == ("frames" in payload)
    ):
        raise ScoresError("bad_scores", "scores takes {seq, width, height} and faces or frames, see docs/protocol.md.")
    width = _integer(payload["width"], MIN_SIDE, MAX_SIDE, "width")
    height = _integer(payload["height"], MIN_SIDE, MAX_SIDE, "height")
    if "faces" in payload:
        return [DeviceAnalysis(_faces(payload["faces"], width, height), width, height)]
    frames = payload["frames"]
    if not isinstance(frames, list) or not frames:
        raise ScoresError("bad_frames", "frames must be a list of at least one {age_ms, faces}.")
    if len(frames) > MAX_FRAMES:
        raise ScoresError("too_many_frames", f"At most {MAX_FRAMES} frames a message.")
    parsed, previous = [], float(MAX_AGE_MS)
    for frame in frames:
        if not isinstance(frame, dict) or set(frame) != FRAME_KEYS:
            raise ScoresError("bad_frames", "Each frame is {age_ms, faces}.")
        try:
            age = _number(frame["age_ms"])
        except (TypeError, ValueError):
            age = -1.0
        if not 0 <= age <= previous:
            raise ScoresError(
                "bad_frames", f"age_ms is from 0 to {MAX_AGE_MS}, oldest frame first (no age above the one before)."
            )
        previous = age
        parsed.append(DeviceAnalysis(_faces(frame["faces"], width, height), width, height, age / 1000))
    return parsed


def _faces(faces: object, width: int, height: int) -> list[Face]:
    if not isinstance(faces, list):
        raise ScoresError("bad_scores", "faces must be a list.")
    if len(faces) > MAX_FACES:
        raise ScoresError("too_many_faces", f"At most {MAX_FACES} faces a frame.")
    return [_face(face, width, height) for face in faces]


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
