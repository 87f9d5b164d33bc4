"""The DeepFace backend: DeepFace's own emotion model through the real ``DeepFace.analyze`` path.

DeepFace downloads its weights (``facial_expression_model_weights.h5``, about 6 MB) on first use
into ``$DEEPFACE_HOME/.deepface/weights``. Where that cannot happen (no network), this backend
refuses to start with a message saying where to put the file, and ``build_analyzer`` falls back
to fer; nothing crashes. TensorFlow is imported only here, only when this backend is chosen.

Faces are found with EmoCare's own detector by default (``detector_backend="emocare"``: each
crop then goes through ``DeepFace.analyze(detector_backend="skip")``, about 20 ms a face); any
of DeepFace's detectors can be named instead (``opencv``, ``retinaface``, …), at their cost.
"""

from __future__ import annotations

import logging
import os
import threading
from pathlib import Path

import numpy as np

from .types import EMOTIONS, Face

log = logging.getLogger(__name__)

WEIGHTS_FILE = "facial_expression_model_weights.h5"

# Keras models are not safe to call from several threads at once; DeepFace caches one model
# per process, so every call goes through this lock.
_lock = threading.Lock()


class BackendUnavailable(RuntimeError):
    """The backend cannot run here; the message tells a person what to do."""


def weights_path(deepface_home: str | os.PathLike) -> Path:
    return Path(deepface_home) / ".deepface" / "weights" / WEIGHTS_FILE


class DeepFaceAnalyzer:
    name = "deepface"

    def __init__(self, deepface_home: str | os.PathLike, detector_backend: str = "emocare", detector=None) -> None:
        path = weights_path(deepface_home)
        if not path.is_file():
            raise BackendUnavailable(
                f"DeepFace emotion weights not found at {path}: download them or place the file there"
            )
        # deepface reads DEEPFACE_HOME when it resolves paths; set it before the first import.
        os.environ["DEEPFACE_HOME"] = str(deepface_home)
        from deepface import DeepFace
        from deepface.modules import modeling

        with _lock:
            modeling.build_model(task="facial_attribute", model_name="Emotion")
        self._deepface = DeepFace
        self.detector_backend = detector_backend
        self.detector = detector
        if detector_backend == "emocare" and detector is None:
            from . import build_detector

            self.detector = build_detector()

    def _analyze(self, image: np.ndarray, backend: str) -> list[dict]:
        with _lock:
            return self._deepface.analyze(
                image, actions=["emotion"], detector_backend=backend, enforce_detection=False, silent=True
            )

    @staticmethod
    def _scores(result: dict) -> dict[str, float]:
        raw = np.array([float(result["emotion"][name]) for name in EMOTIONS])
        return dict(zip(EMOTIONS, map(float, raw / max(raw.sum(), 1e-9)), strict=True))

    def analyze(self, image: np.ndarray) -> list[Face]:
        if self.detector_backend == "emocare":
            faces = []
            height, width = image.shape[:2]
            for x, y, w, h in self.detector.detect(image):
                x1, y1 = max(0, x), max(0, y)
                x2, y2 = min(width, x + w), min(height, y + h)
                if x2 - x1 < 8 or y2 - y1 < 8:
                    continue
                [result] = self._analyze(image[y1:y2, x1:x2], "skip")[:1]
                faces.append(Face((x, y, w, h), self._scores(result)))
            return faces
        faces = []
        for result in self._analyze(image, self.detector_backend):
            # with enforce_detection=False DeepFace returns the whole frame when no face was
            # found, with face_confidence 0: that is not a face.
            if float(result.get("face_confidence") or 0) <= 0:
                continue
            region = result["region"]
            faces.append(Face((region["x"], region["y"], region["w"], region["h"]), self._scores(result)))
        return faces

    def classify_crop(self, image: np.ndarray) -> dict[str, float]:
        """Scores for an image that is already a face crop (DeepFace with detector "skip")."""
        if image.ndim == 2:
            image = np.repeat(image[:, :, None], 3, axis=2)
        return self._scores(self._analyze(image, "skip")[0])

    def warm_up(self) -> None:
        self._analyze(np.full((48, 48, 3), 128, dtype=np.uint8), "skip")
