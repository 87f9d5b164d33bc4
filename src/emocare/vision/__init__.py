"""Recognising expressions: frame decoding, face detection, classification.

Plain Python and OpenCV; nothing here imports Flask, so it can be tested and benchmarked alone.
"""

from .frames import FrameError, FrameLimits, check_frame, decode_frame
from .service import Analyzer, VisionService
from .types import EMOTIONS, Analysis, Face

__all__ = [
    "EMOTIONS",
    "Analysis",
    "Analyzer",
    "Face",
    "FrameError",
    "FrameLimits",
    "VisionService",
    "build_analyzer",
    "check_frame",
    "decode_frame",
]


def build_analyzer(name: str = "fer", **options) -> Analyzer:
    """Create an analyzer by name. Imported lazily so that choosing one never loads another."""
    if name == "fer":
        from .fer_backend import FerAnalyzer, FerClassifier, HaarDetector

        return FerAnalyzer(
            detector=HaarDetector(
                detect_width=options.get("detect_width", 320),
                min_face=options.get("min_face", 30),
            ),
            classifier=FerClassifier(tta=options.get("tta", True)),
        )
    raise ValueError(f"Unknown analyzer {name!r}; choose 'fer'.")
