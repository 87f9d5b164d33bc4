"""Accuracy on labelled folders: per image, and on steady clips through the live smoothing.

``DIR/<label>/<image>`` is the only layout needed, so any set can be checked the same way:
the validation split (``python -m emocare split``), a folder of your own photos, a held-out
set. Images no larger than ``CROP_MAX_SIDE`` are taken as face crops (FER2013, CK+); larger
ones go through the detector, and a photo whose face is not found counts as wrong.

*Steady clips* answer a different question: does the label the page shows settle on the
right expression? Each image becomes a 5-second clip at 10 fps on a 320×240 frame, with a
few pixels of jitter, sensor noise and the page's JPEG compression, run frame by frame
through detection, classification and the face tracker's smoothing. The clip counts as right
when the label shown at its end is right; the per-frame majority is reported beside it.
"""

from __future__ import annotations

import hashlib
import re
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from .care.policy import NEGATIVE, PolicyConfig
from .training import votes as votes_module
from .vision import EMOTIONS, build_analyzer
from .vision.metrics import confusion_matrix, summary
from .vision.reference import Baseline, corrected_scores
from .vision.samples import camera_frame, jittered
from .vision.smoothing import SmoothingConfig, count_flips
from .vision.tracking import FaceTracker
from .vision.types import CROP_MAX_SIDE

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".gif", ".tif", ".tiff"}


def labelled_images(directory: Path, per_class: int | None = None):
    """(label index, path) for DIR/<label>/<image>, sorted; at most ``per_class`` a label.

    The ``per_class`` chosen are spread evenly over the sorted names, not the first ones: in a
    folder that mixes sources (``emocare split``'s ``all``), names sort by source, and the first
    thirty would all be CK+ frames.
    """
    for index, label in enumerate(EMOTIONS):
        folder = directory / label
        if not folder.is_dir():
            continue
        paths = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if per_class is not None and len(paths) > per_class:
            paths = [paths[k * len(paths) // per_class] for k in range(per_class)]
        for path in paths:
            yield index, path


def scores_of(analyzer, image: np.ndarray) -> dict[str, float] | None:
    """The scores of the image's largest face (of the whole image, if it is a face crop)."""
    if max(image.shape[:2]) <= CROP_MAX_SIDE:
        return analyzer.classify_crop(image)
    faces = analyzer.analyze(image)
    return max(faces, key=lambda f: f.area).scores if faces else None


def _report(analyzer, matrix: np.ndarray, **extra) -> dict:
    classifier = getattr(analyzer, "classifier", None)
    return {
        "backend": analyzer.name,
        "tta": getattr(classifier, "tta", None),  # what really ran (None: not a flip-able model)
        **summary(matrix),
        "no_face": int(matrix[:, -1].sum()),
        "labels": list(EMOTIONS),
        "confusion": matrix.tolist(),
        **extra,
    }


def evaluate(
    directory: Path,
    backend: str = "emocare",
    tta: bool | None = None,
    calibration: Path | None = None,
    person_pattern: str | None = None,
    votes: Path | None = None,
    **options,
) -> dict:
    """Accuracy of ``backend`` on DIR/<label>/<images>; every image counts, no face is wrong.

    ``calibration``: a folder of relaxed faces; an image whose person (the first group of
    ``person_pattern`` on its file name) has some there is scored corrected by that person's
    baseline (``vision.reference``), made of their calibration images other than itself
    (compared by bytes). ``votes``: a file of FER+ votes (``training.votes``); an image it
    names (by file name) is scored against the ten annotators' majority instead of its
    folder, and left out where they reach none.
    """
    analyzer = build_analyzer(backend, tta=tta, **options)
    references = None
    if calibration is not None:
        references = PersonalReferences.collect(analyzer, calibration, person_pattern)
    majority = {} if votes is None else votes_module.majority_by_name(votes)
    truth, predicted, confidence, times, corrected, voted = [], [], [], [], 0, 0
    for label_index, path in labelled_images(directory):
        voted += path.name in majority
        data = path.read_bytes()
        image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
        if image is None:
            continue
        label_index = majority.get(path.name, label_index)
        if label_index < 0:  # the annotators reach no majority on it
            continue
        started = time.perf_counter()
        scores = scores_of(analyzer, image)
        times.append((time.perf_counter() - started) * 1000)
        if scores is not None and references is not None:
            fixed = references.correct(path.name, data, scores)
            corrected += fixed is not None
            scores = fixed or scores
        truth.append(label_index)
        predicted.append(len(EMOTIONS) if scores is None else EMOTIONS.index(max(scores, key=scores.get)))
        confidence.append(0.0 if scores is None else max(scores.values()))
    matrix = confusion_matrix(np.array(truth, int), np.array(predicted, int))
    extra = {} if references is None else {"calibrated_images": corrected, "calibration_people": references.people}
    if votes is not None:
        extra["scored_against_votes"] = voted
    extra["care"] = care_crossing(analyzer, truth, predicted, confidence)
    return _report(analyzer, matrix, ms_per_image=round(float(np.mean(times)), 2) if times else None, **extra)


def care_crossing(analyzer, truth: list[int], predicted: list[int], confidence: list[float]) -> dict:
    """How often a face of each label would count as a negative mood for care: its top label
    sad, angry, fear or disgust and its score at that mood's care threshold (the model card's,
    as the live care uses them, with no sensitivity shift). Care itself also waits for the mood
    to last (``CarePolicy``); on faces this is the share that would start that wait."""
    card = getattr(getattr(analyzer, "classifier", None), "card", None)
    config = PolicyConfig(thresholds=getattr(card, "care_thresholds", None) or {})
    thresholds = {e: config.threshold_for(e) for e in NEGATIVE}
    faces, crossed = Counter(truth), Counter()
    for label, top, score in zip(truth, predicted, confidence, strict=True):
        mood = EMOTIONS[top] if top < len(EMOTIONS) else None
        crossed[label] += mood in thresholds and score >= thresholds[mood]
    shares = {e: round(crossed[i] / faces[i], 4) for i, e in enumerate(EMOTIONS) if faces[i]}
    return {"thresholds": thresholds, "negative_crossing": shares}


@dataclass
class PersonalReferences:
    """Each person's relaxed faces as the model scored them, by the bytes of each image."""

    pattern: re.Pattern
    population: np.ndarray
    #: person -> [(SHA-256 of the image's bytes, its scores in EMOTIONS order)]
    faces: dict[str, list[tuple[str, np.ndarray]]]

    @property
    def people(self) -> int:
        return len(self.faces)

    @classmethod
    def collect(cls, analyzer, folder: Path, pattern: str | None) -> PersonalReferences:
        if not pattern:
            raise ValueError("--calibration needs --person-pattern: which part of a file name names the person")
        compiled = re.compile(pattern)
        if compiled.groups < 1:
            raise ValueError(f"--person-pattern {pattern!r} has no group: its first group names the person")
        card = getattr(getattr(analyzer, "classifier", None), "card", None)
        population = getattr(card, "relaxed_mean_log", None)
        if population is None:
            raise ValueError(f"{analyzer.name}: its model card has no relaxed reference (EmoCare's model has)")
        if not folder.is_dir():
            raise ValueError(f"{folder} is not a folder of relaxed faces")
        faces: dict[str, list[tuple[str, np.ndarray]]] = {}
        for path in sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES):
            person = cls._person(compiled, path.name)
            data = path.read_bytes()
            image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
            scores = None if person is None or image is None else scores_of(analyzer, image)
            if scores is not None:
                row = np.array([scores[e] for e in EMOTIONS])
                faces.setdefault(person, []).append((hashlib.sha256(data).hexdigest(), row))
        return cls(compiled, population, faces)

    @staticmethod
    def _person(pattern: re.Pattern, name: str) -> str | None:
        match = pattern.search(name)
        return match.group(1) if match else None

    def correct(self, name: str, data: bytes, scores: dict[str, float]) -> dict[str, float] | None:
        """The scores corrected by the person's other relaxed faces; None where they have none."""
        person = self._person(self.pattern, name)
        digest = hashlib.sha256(data).hexdigest()
        others = [row for d, row in self.faces.get(person, []) if d != digest] if person is not None else []
        if not others:
            return None
        return corrected_scores(scores, Baseline.of(np.stack(others)).offset(self.population))


def steady_clip(image: np.ndarray, rng: np.random.Generator, seconds: float = 5.0, fps: float = 10.0):
    """A webcam-like clip of one still face: jitter, noise and JPEG, as the page sends it."""
    base = camera_frame(image, (320, 240)).astype(np.float32)
    return jittered(base, rng, round(seconds * fps), noise=6, jpeg_quality=70)


def evaluate_clips(
    directory: Path,
    backend: str = "emocare",
    per_class: int | None = None,
    smoothing: SmoothingConfig = SmoothingConfig(),
    seconds: float = 5.0,
    fps: float = 10.0,
    seed: int = 0,
    votes: Path | None = None,
    **options,
) -> dict:
    """Clip accuracy of the smoothed label against the per-frame majority, and label flips.

    ``votes``: as in ``evaluate``, an image the FER+ file names is scored against its ten
    annotators' majority, and left out where they reach none."""
    analyzer = build_analyzer(backend, **options)
    rng = np.random.default_rng(seed)
    annotators = {} if votes is None else votes_module.majority_by_name(votes)
    truth, smoothed, majority, flips = [], [], [], []
    for label_index, path in labelled_images(directory, per_class):
        label_index = annotators.get(path.name, label_index)
        image = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if image is None or label_index < 0:
            continue
        tracker = FaceTracker(smoothing)
        raw, shown = [], []
        for k, frame in enumerate(steady_clip(image, rng, seconds, fps)):
            tracked = tracker.update(analyzer.analyze(frame), k / fps, (frame.shape[1], frame.shape[0]))
            primary = next((f for f in tracked if f.primary), None)
            if primary is not None:
                raw.append(primary.face.dominant)
                shown.append(primary.label)
        truth.append(label_index)
        none = len(EMOTIONS)
        smoothed.append(EMOTIONS.index(shown[-1]) if shown else none)
        majority.append(EMOTIONS.index(Counter(raw).most_common(1)[0][0]) if raw else none)
        flips.append(count_flips(shown))
    truth_array = np.array(truth, int)
    shown_matrix = confusion_matrix(truth_array, np.array(smoothed, int))
    majority_report = summary(confusion_matrix(truth_array, np.array(majority, int)))
    return _report(
        analyzer,
        shown_matrix,
        clips=len(truth),
        seconds=seconds,
        majority_top1=majority_report["top1"],
        majority_balanced=majority_report["balanced"],
        flips_per_s=round(float(np.mean(flips)) / seconds, 3) if flips else None,
    )
