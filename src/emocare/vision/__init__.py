"""Recognising expressions: frame decoding, face detection, classification.

Plain Python and OpenCV; nothing here imports Flask, so it can be tested and benchmarked alone.
"""

import logging

from .frames import FrameError, FrameLimits, check_frame, decode_frame
from .service import Analyzer, VisionService
from .types import EMOTIONS, Analysis, Face

log = logging.getLogger(__name__)

__all__ = [
    "EMOTIONS",
    "Analysis",
    "Analyzer",
    "Face",
    "FrameError",
    "FrameLimits",
    "VisionService",
    "build_analyzer",
    "build_detector",
    "check_frame",
    "decode_frame",
]


def build_detector(name: str = "blazeface", **options):
    """A face detector by name: ``blazeface`` (default, fast) or ``haar`` (fer's own)."""
    from .fer_backend import HaarDetector

    if name == "blazeface":
        from .blazeface import BlazeFaceDetector

        try:
            return BlazeFaceDetector()
        except FileNotFoundError as exc:
            log.warning("%s; falling back to the Haar cascade", exc)
    elif name != "haar":
        raise ValueError(f"Unknown detector {name!r}; choose 'blazeface' or 'haar'.")
    return HaarDetector(detect_width=options.get("detect_width", 320), min_face=options.get("min_face", 30))


def build_analyzer(name: str = "fer", **options) -> Analyzer:
    """Create an analyzer by name. Imported lazily so that choosing one never loads another."""
    if name == "fer":
        from .fer_backend import FerAnalyzer, FerClassifier

        return FerAnalyzer(
            detector=build_detector(options.get("detector", "blazeface"), **options),
            classifier=FerClassifier(tta=options.get("tta", True)),
        )
    raise ValueError(f"Unknown analyzer {name!r}; choose 'fer'.")
