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

import time
from collections import Counter
from pathlib import Path

import cv2
import numpy as np

from .vision import EMOTIONS, build_analyzer
from .vision.metrics import confusion_matrix, summary
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


def evaluate(directory: Path, backend: str = "emocare", tta: bool | None = None, **options) -> dict:
    """Accuracy of ``backend`` on DIR/<label>/<images>; every image counts, no face is wrong."""
    analyzer = build_analyzer(backend, tta=tta, **options)
    truth, predicted, times = [], [], []
    for label_index, path in labelled_images(directory):
        image = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if image is None:
            continue
        started = time.perf_counter()
        scores = scores_of(analyzer, image)
        times.append((time.perf_counter() - started) * 1000)
        truth.append(label_index)
        predicted.append(len(EMOTIONS) if scores is None else EMOTIONS.index(max(scores, key=scores.get)))
    matrix = confusion_matrix(np.array(truth, int), np.array(predicted, int))
    return _report(analyzer, matrix, ms_per_image=round(float(np.mean(times)), 2) if times else None)


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
    **options,
) -> dict:
    """Clip accuracy of the smoothed label against the per-frame majority, and label flips."""
    analyzer = build_analyzer(backend, **options)
    rng = np.random.default_rng(seed)
    truth, smoothed, majority, flips = [], [], [], []
    for label_index, path in labelled_images(directory, per_class):
        image = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if image is None:
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
