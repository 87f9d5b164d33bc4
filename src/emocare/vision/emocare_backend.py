"""EmoCare's own expression model: the default classifier, run with onnxruntime.

Trained by ``python -m emocare train`` on the shared labelled faces (docs/model-card.md), it
ships in ``vision/models/`` as ONNX beside its model card, a JSON file holding the input
geometry, the labels and the calibration fitted on validation (a per-class bias and a
temperature). Neither PyTorch nor TensorFlow is imported on this path.

The crop is made exactly as for training: ``square_crop`` around the detector's box, resized
to the stored crop side (64 px), then to the network's input. Where the card says so
(``input.flip``, chosen by measurement when the model is exported), the mirror image is
classified in the same batch and the logits averaged (flip test-time augmentation).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import cv2
import numpy as np

from .fer_backend import Detector, FerAnalyzer, square_crop
from .metrics import softmax
from .types import EMOTIONS, Face

log = logging.getLogger(__name__)

#: Side of the crops the model was trained on, before the resize to its input.
CROP_SIDE = 64
#: How much the detector's box is grown on each side for the crop (``square_crop``).
CROP_MARGIN = 0.1
MODEL_FILE = "emocare_expression.onnx"


def to_crop_side(crop: np.ndarray) -> np.ndarray:
    """A grey face crop of any size at ``CROP_SIDE``, resized as the training crops were."""
    return cv2.resize(crop, (CROP_SIDE, CROP_SIDE), interpolation=cv2.INTER_AREA)


def model_crop(gray: np.ndarray, box: tuple[int, int, int, int], margin: float = CROP_MARGIN) -> np.ndarray:
    """The crop the network sees for a detected face: the one geometry of training and run time."""
    return to_crop_side(square_crop(gray, box, margin))


class ModelUnavailable(RuntimeError):
    """The model file is missing or unreadable; the message names the file."""


def default_model_path() -> Path:
    return Path(str(resources.files("emocare.vision") / "models" / MODEL_FILE))


@dataclass(frozen=True)
class ModelCard:
    side: int
    labels: tuple[str, ...]
    bias: np.ndarray
    temperature: float
    margin: float
    #: per-emotion care thresholds fitted on validation (see docs/model-card.md)
    care_thresholds: dict[str, float]
    #: whether the calibration was fitted with flip averaging (and so the model runs with it)
    flip: bool = True
    #: the mean log-scores of relaxed faces on validation photos: what a person's own relaxed
    #: face is compared with (``reference.Baseline.offset``); None on a card without it
    relaxed_mean_log: np.ndarray | None = None

    @classmethod
    def read(cls, path: Path, flip: bool | None = None) -> ModelCard:
        """The card at ``path``; ``flip`` asks for the other way of running than the card's
        choice, with its own calibration and care thresholds where the card has them (flip
        averaging doubles the classifier's time: on a slow CPU the single pass, calibrated
        for itself, is the fast choice)."""
        try:
            card = json.loads(path.read_text(encoding="utf-8"))
            chosen = bool(card["input"].get("flip", True))
            calibration, care = card.get("calibration", {}), card.get("care", {})
            other = card.get("flip_choice", {})
            if flip is not None and flip != chosen and "calibration_other" in other:
                calibration, care = other["calibration_other"], other["care_other"]
            labels = tuple(card["labels"])
            if labels != EMOTIONS:
                raise ValueError(f"labels {labels} are not {EMOTIONS}")
            return cls(
                side=int(card["input"]["side"]),
                labels=labels,
                bias=np.array(calibration.get("bias", [0.0] * len(EMOTIONS)), dtype=np.float64),
                temperature=float(calibration.get("temperature", 1.0)),
                margin=float(card["input"].get("margin", CROP_MARGIN)),
                care_thresholds={k: float(v) for k, v in care.get("thresholds", {}).items()},
                flip=chosen if flip is None else flip,
                relaxed_mean_log=(
                    np.array(calibration["relaxed_mean_log"], dtype=np.float64)
                    if "relaxed_mean_log" in calibration
                    else None
                ),
            )
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise ModelUnavailable(f"EmoCare model card {path} is missing or unreadable: {exc}") from exc


def care_thresholds(model_path: str | Path | None = None, flip: bool | None = None) -> dict[str, float]:
    """Per-emotion care thresholds from the model card, for the way the model runs; none when
    it cannot be read (the vision service then says why, once, as it falls back to fer)."""
    try:
        return ModelCard.read(Path(model_path or default_model_path()).with_suffix(".json"), flip).care_thresholds
    except ModelUnavailable:
        return {}


def cpu_flags() -> set[str]:
    """This CPU's feature flags, from Linux's /proc/cpuinfo (empty where it cannot be read)."""
    try:
        text = Path("/proc/cpuinfo").read_text(encoding="ascii", errors="replace")
    except OSError:
        return set()
    return {flag for line in text.splitlines() if line.startswith("flags") for flag in line.split(":", 1)[1].split()}


def fused_int8_is_exact(flags: set[str] | None = None, machine: str | None = None) -> bool:
    """Whether onnxruntime's fused int8 kernels compute what the model card measured.

    On x86 without VNNI they do not: their u8×s8 products go through 16-bit sums that saturate,
    and the shipped graph scored 69.2% top-1 on validation on a 2-core AVX2 EPYC against the
    card's 70.7% (FER2013 66.6% against 68.2%). There :func:`open_session` asks onnxruntime for
    its u8×u8 kernels (``session.x64quantprecision``), which do not saturate: the card's
    figures, at 14.1 ms a face against 13.5 ms (unfused: 18.5 ms).
    """
    import platform

    machine = (machine or platform.machine()).lower()
    if machine not in ("x86_64", "amd64", "i386", "i686", "x86"):
        return True
    flags = cpu_flags() if flags is None else flags
    return bool(flags & {"avx512_vnni", "avx_vnni", "amx_int8"})


def open_session(path: Path):
    """An onnxruntime session on one thread: parallelism comes from one session per worker.

    Where the int8 kernels would saturate (:func:`fused_int8_is_exact`), onnxruntime rewrites
    the weights to unsigned and uses kernels that do not: the scores care acts on are calibrated
    on the card's figures, and the fast kernels' drift would move them.
    """
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    if not fused_int8_is_exact():
        options.add_session_config_entry("session.x64quantprecision", "1")
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def network_logits(session, crops: np.ndarray, side: int, tta: bool = True) -> np.ndarray:
    """Logits of the network for N×64×64 grey crops, averaged with their mirror images.

    The one preprocessing path: the live classifier and the training's calibration both
    call it, so the shipped model is calibrated on exactly what it computes at run time.
    """
    faces = np.stack([cv2.resize(c, (side, side), interpolation=cv2.INTER_AREA) for c in crops])
    batch = (faces.astype(np.float32) / 127.5 - 1.0)[:, np.newaxis]
    if tta:
        batch = np.concatenate([batch, batch[:, :, :, ::-1]])
    name = session.get_inputs()[0].name
    logits = session.run(None, {name: np.ascontiguousarray(batch)})[0].astype(np.float64)
    if tta:
        logits = (logits[: len(crops)] + logits[len(crops) :]) / 2
    return logits


class EmoCareClassifier:
    """The trained network on grey face crops. One instance per thread (one ORT session each)."""

    def __init__(self, model_path: Path | None = None, tta: bool | None = None) -> None:
        path = Path(model_path or default_model_path())
        if not path.is_file():
            raise ModelUnavailable(f"EmoCare model {path} not found")
        #: the file this classifier runs (the bench reports it)
        self.path = path
        self.card = ModelCard.read(path.with_suffix(".json"), tta)
        try:
            self._session = open_session(path)
        except Exception as exc:  # onnxruntime raises its own types for missing and corrupt files
            raise ModelUnavailable(f"EmoCare model {path} is missing or unreadable: {exc}") from exc
        #: None: as the card chose; the other way round uses the card's calibration for it
        self.tta = self.card.flip
        self.margin = self.card.margin

    def logits_batch(self, crops: np.ndarray) -> np.ndarray:
        """Raw logits for N crops already at ``CROP_SIDE`` (N×64×64 uint8), flip-averaged if ``tta``."""
        return network_logits(self._session, crops, self.card.side, self.tta)

    def probabilities(self, logits: np.ndarray) -> np.ndarray:
        """Calibrated probabilities: the card's bias and temperature, then softmax."""
        return softmax((logits + self.card.bias) / self.card.temperature)

    def classify_crop(self, crop: np.ndarray) -> np.ndarray:
        """Calibrated probabilities for a grey face crop of any size."""
        return self.probabilities(self.logits_batch(to_crop_side(crop)[np.newaxis]))[0]


class EmoCareAnalyzer(FerAnalyzer):
    """Frame in, faces out: a detector plus EmoCare's network, all faces of a frame in one
    batch. Crop classification and warm-up are fer's analyzer's. Not thread-safe by design."""

    name = "emocare"

    def __init__(self, detector: Detector | None = None, classifier: EmoCareClassifier | None = None) -> None:
        super().__init__(detector, classifier or EmoCareClassifier())

    def analyze(self, image: np.ndarray) -> list[Face]:
        if image.ndim == 2:
            image = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
        gray = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
        boxes = self.detector.detect(image, gray)
        if not boxes:
            return []
        crops = np.stack([model_crop(gray, box, self.classifier.margin) for box in boxes])
        probs = self.classifier.probabilities(self.classifier.logits_batch(crops))
        return [
            Face(box=box, scores=dict(zip(EMOTIONS, map(float, p), strict=True)))
            for box, p in zip(boxes, probs, strict=True)
        ]
