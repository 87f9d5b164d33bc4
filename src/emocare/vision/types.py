"""Plain data types shared by every analyzer backend.

Kept free of OpenCV and model code so the web layer, the care engine and the tests can
use them without loading a model.
"""

from __future__ import annotations

from dataclasses import dataclass, field

#: Images no larger than this on their longer side are face crops already (FER2013, CK+): they
#: are classified whole, never searched for a face, in evaluation as in training.
CROP_MAX_SIDE = 64

#: The seven expressions, in the order of the FER-2013 label set that both fer and DeepFace use.
EMOTIONS: tuple[str, ...] = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")


@dataclass(frozen=True)
class Face:
    """One face found in one frame.

    ``box`` is ``(x, y, w, h)`` in pixels of the frame that was analysed; ``scores`` maps each
    of :data:`EMOTIONS` to a probability and sums to about 1.
    """

    box: tuple[int, int, int, int]
    scores: dict[str, float]

    @property
    def dominant(self) -> str:
        """The expression with the highest score."""
        return max(self.scores, key=self.scores.__getitem__)

    @property
    def area(self) -> int:
        return self.box[2] * self.box[3]

    def to_dict(self) -> dict:
        """JSON-ready form used by the Socket.IO protocol (see docs/protocol.md)."""
        dominant = self.dominant
        return {
            "box": list(self.box),
            "scores": {name: round(self.scores[name], 4) for name in EMOTIONS},
            "dominant": dominant,
            "confidence": round(self.scores[dominant], 4),
        }


@dataclass
class Analysis:
    """What one frame produced: the faces plus the frame size and how long it took."""

    faces: list[Face]
    width: int
    height: int
    server_ms: float = 0.0
    backend: str = ""
    extra: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {
            "faces": [face.to_dict() for face in self.faces],
            "frame": {"width": self.width, "height": self.height},
            "server_ms": round(self.server_ms, 2),
            "backend": self.backend,
            **self.extra,
        }
