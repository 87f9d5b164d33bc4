"""Recognising expressions: frame decoding, face detection, classification.

Plain Python and OpenCV; nothing here imports Flask, so it can be tested and benchmarked alone.
"""

import logging
import os

from .frames import FrameError, FrameLimits, check_frame, decode_frame
from .service import Analyzer, VisionService
from .types import EMOTIONS, Analysis, Face

log = logging.getLogger(__name__)

__all__ = [
    "BACKENDS",
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
    "download_progress",
]


DETECTORS = ("blazeface", "blazeface-short", "blazeface-full", "haar")


def build_detector(name: str = "blazeface", **options):
    """A face detector by name (see :data:`DETECTORS`; docs in ``blazeface.py``).

    ``blazeface`` (default) is the short-range model with the full-range one as fallback, and
    fer's Haar cascade as a second opinion on faces neither is sure of;
    ``haar`` is fer's own cascade, used as well when the BlazeFace models are not installed.
    """
    from .fer_backend import HaarDetector

    if name.startswith("blazeface"):
        from .blazeface import BlazeFaceCascade, BlazeFaceDetector

        try:
            if name == "blazeface":
                return BlazeFaceCascade(confirm=HaarDetector())
            return BlazeFaceDetector(name.removeprefix("blazeface-"))
        except FileNotFoundError as exc:
            log.warning("%s; falling back to the Haar cascade", exc)
    elif name != "haar":
        raise ValueError(f"Unknown detector {name!r}; choose one of {', '.join(DETECTORS)}.")
    return HaarDetector(detect_width=options.get("detect_width", 320), min_face=options.get("min_face", 30))


_warned: set[str] = set()


def download_progress(name: str | None) -> dict | None:
    """The download that warming up analyzer ``name`` waits on, if one runs: only DeepFace
    fetches its weights on first use (``deepface_backend.download_progress``)."""
    if name != "deepface":
        return None
    from .deepface_backend import download_progress as deepface_download

    return deepface_download()


#: The analyzer backends, for config checks and the page's backend menu.
BACKENDS = ("emocare", "fer", "deepface")


def _fall_back(reason: Exception, options: dict) -> Analyzer:
    """fer's analyzer standing in for one that cannot start, saying why once per process."""
    if str(reason) not in _warned:
        _warned.add(str(reason))
        log.error("%s. Falling back to fer.", reason)
    analyzer = build_analyzer("fer", **options)
    analyzer.notice = str(reason)
    return analyzer


def build_analyzer(name: str = "emocare", **options) -> Analyzer:
    """Create an analyzer by name. Imported lazily so that choosing one never loads another.

    ``emocare`` (our trained model, the default) falls back to ``fer`` when its model file is
    missing or corrupt, and ``deepface`` when its weights are missing (no network here); the
    reason is logged once per process and carried in the fallback analyzer's ``notice``.
    """
    if name == "emocare":
        from .emocare_backend import EmoCareAnalyzer, EmoCareClassifier, ModelUnavailable

        try:
            classifier = EmoCareClassifier(options.get("model_path"), tta=options.get("tta"))
        except ModelUnavailable as exc:
            return _fall_back(exc, options)
        return EmoCareAnalyzer(build_detector(options.get("detector", "blazeface"), **options), classifier)
    if name == "deepface":
        from .deepface_backend import BackendUnavailable, DeepFaceAnalyzer

        try:
            return DeepFaceAnalyzer(
                options.get("deepface_home") or os.environ.get("DEEPFACE_HOME") or os.path.expanduser("~"),
                detector_backend=options.get("deepface_detector", "emocare"),
                detector=build_detector(options.get("detector", "blazeface"), **options),
            )
        except BackendUnavailable as exc:
            return _fall_back(exc, options)
    if name == "scripted":
        from .scripted import ScriptedAnalyzer

        return ScriptedAnalyzer(options.get("script") or ("sad",))
    if name == "fer":
        from .fer_backend import FerAnalyzer, FerClassifier

        return FerAnalyzer(
            detector=build_detector(options.get("detector", "blazeface"), **options),
            classifier=FerClassifier(tta=True if options.get("tta") is None else options["tta"]),
        )
    raise ValueError(f"Unknown analyzer {name!r}; choose one of {', '.join(BACKENDS)}.")
