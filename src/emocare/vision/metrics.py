"""Accuracy and calibration figures shared by ``emocare evaluate``, training and the tests.

Balanced accuracy (the mean of per-class recall) is reported beside top-1 everywhere:
FER2013 is 26% happy and 1.2% disgust, so a model can gain top-1 by never saying disgust.
"""

from __future__ import annotations

import itertools

import numpy as np

from .types import EMOTIONS


def softmax(logits: np.ndarray) -> np.ndarray:
    """Probabilities from logits along the last axis (shifted by the maximum, so no overflow)."""
    shifted = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return shifted / shifted.sum(axis=-1, keepdims=True)


def confusion_matrix(truth: np.ndarray, predicted: np.ndarray, classes: int = len(EMOTIONS)) -> np.ndarray:
    """Rows: true class; columns: predicted class (an extra column where predicted == classes)."""
    matrix = np.zeros((classes, classes + 1), dtype=int)
    np.add.at(matrix, (np.asarray(truth), np.asarray(predicted)), 1)
    return matrix


def summary(matrix: np.ndarray) -> dict:
    """top-1, balanced accuracy and per-class recall of a confusion matrix (classes with data only)."""
    classes = matrix.shape[0]
    n = int(matrix.sum())
    per_class = {
        EMOTIONS[i]: round(float(matrix[i, i] / matrix[i].sum()), 4) for i in range(classes) if matrix[i].sum()
    }
    return {
        "n": n,
        "top1": round(float(np.trace(matrix[:, :classes]) / n), 4) if n else None,
        "balanced": round(float(np.mean(list(per_class.values()))), 4) if per_class else None,
        "per_class": per_class,
    }


def class_balanced_weights(truth: np.ndarray, classes: int = len(EMOTIONS)) -> np.ndarray:
    """Per-image weights that give every class the same total weight."""
    counts = np.bincount(truth, minlength=classes).astype(float)
    weights = 1.0 / counts[truth]
    return weights / weights.sum()


def expected_calibration_error(
    probs: np.ndarray, truth: np.ndarray, bins: int = 15, weights: np.ndarray | None = None
) -> float:
    """ECE of the top score: how far "70% sure" is from being right 70% of the time.

    ``weights`` re-weights the images (``class_balanced_weights``: as if every expression were
    equally common, which is how the balanced figures count).
    """
    weights = np.full(len(truth), 1.0 / len(truth)) if weights is None else weights / weights.sum()
    confidence = probs.max(axis=1)
    correct = (probs.argmax(axis=1) == truth).astype(float)
    edges = np.linspace(0, 1, bins + 1)
    error = 0.0
    for low, high in itertools.pairwise(edges):
        inside = (confidence > low) & (confidence <= high)
        mass = weights[inside].sum()
        if mass > 0:
            gap = np.average(confidence[inside], weights=weights[inside]) - np.average(
                correct[inside], weights=weights[inside]
            )
            error += mass * abs(gap)
    return round(float(error), 4)
