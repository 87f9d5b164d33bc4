"""Post-hoc calibration on validation: a per-class bias and a temperature.

Why both:
- *Bias (logit adjustment, Menon et al. 2021).* Training data is 26% happy and 2% disgust;
  a network trained on it learns those priors and under-calls rare classes. Subtracting
  ``tau · log prior`` from the logits undoes that; ``tau`` is chosen on validation for
  balanced accuracy.
- *Temperature (Guo et al. 2017).* One scalar that makes "0.7" mean right about 70% of the
  time, fitted by log-likelihood on validation. It never changes the arg-max, so it costs no
  accuracy, and the care engine's thresholds can then be read as probabilities.

Both target the same world: every expression equally likely beforehand, as the balanced
figures count (and the held-out sets are drawn). So the temperature is fitted, and the
expected calibration error (ECE) reported, with class-balanced weights; the ECE under the
validation set's own class mix is reported beside it.

- *A relaxed face's share (``fit_relaxed_shift``).* Between bias and temperature, one step
  leans back from that world toward a desk's, where most faces are relaxed: see there.

Then, on the calibrated scores, the care thresholds (``care_thresholds``).
"""

from __future__ import annotations

import itertools

import numpy as np

from ..care.policy import NEGATIVE as CARE_EMOTIONS
from ..vision.metrics import class_balanced_weights, confusion_matrix, expected_calibration_error, softmax, summary
from ..vision.types import EMOTIONS

#: How far below the best balanced accuracy a bias may be and still be chosen for calibration.
BALANCED_TOLERANCE = 0.005
#: The lifts of neutral's logit ``fit_relaxed_shift`` tries.
RELAXED_SHIFTS = np.round(np.arange(0.0, 1.01, 0.1), 2)
#: The thresholds each mood care answers (``care.policy.NEGATIVE``) may have; the largest share
#: of relaxed validation faces they may let start care: a point under the project's 10%, for the
#: faces they were not fitted on (on the 1,694 relaxed validation faces a share has a standard
#: error of 0.7 points).
CARE_THRESHOLDS = np.round(np.arange(0.3, 0.601, 0.05), 2)
CARE_RELAXED_SHARE = 0.09


def balanced(logits: np.ndarray, truth: np.ndarray) -> float:
    return summary(confusion_matrix(truth, logits.argmax(axis=1)))["balanced"] or 0.0


def fit_bias(
    logits: np.ndarray, truth: np.ndarray, groups: np.ndarray, prior: np.ndarray, weights: np.ndarray
) -> tuple[np.ndarray, float]:
    """The per-class bias ``-tau · log prior`` for balanced accuracy, then for calibration.

    The objective is the mean of the groups' balanced accuracies, so that FER2013's 4,000
    validation images do not drown the posed photos. It is flat near its top (measured: within
    half a point for tau from 0.3 to 1.0), so among the values that close to the best, the one
    whose temperature-scaled scores have the lowest calibration error wins.
    """
    scored = []
    for tau in np.round(np.arange(0.0, 1.51, 0.05), 2):
        bias = -tau * np.log(prior)
        scored.append((float(tau), groups_balanced(logits + bias, truth, groups), bias))
    best = max(score for _, score, _ in scored)

    def error(bias: np.ndarray) -> float:
        temperature = fit_temperature(logits + bias, truth, weights)
        return expected_calibration_error(softmax((logits + bias) / temperature), truth, weights=weights)

    tau, _, bias = min((c for c in scored if c[1] >= best - BALANCED_TOLERANCE), key=lambda c: error(c[2]))
    return bias, tau


def groups_balanced(logits: np.ndarray, truth: np.ndarray, groups: np.ndarray) -> float:
    """The mean of the groups' balanced accuracies (``fit_bias``'s objective)."""
    return float(np.mean([balanced(logits[groups == g], truth[groups == g]) for g in np.unique(groups)]))


def fit_relaxed_shift(logits: np.ndarray, truth: np.ndarray, groups: np.ndarray) -> float:
    """How much to lift neutral's logit above the balanced fit (``logits`` already carry the bias).

    Balanced accuracy counts every expression as equally likely. At a desk most faces are
    relaxed, and a relaxed face read as sad is care nobody asked for: the nagging people hold
    against care apps. Balanced accuracy is flat near its top, so among the lifts that keep it
    within ``BALANCED_TOLERANCE`` of no lift, the one that reads the most validation faces right
    as they come (top-1, where relaxed faces are the largest class) is taken. Measured on the
    four networks fine-tuned 4 epochs on the FER+ votes: 0.4 took FER2013's faces read as their
    annotators' majority from 81.3% to 83.3% and neutral's recall from 73% to 82%, with FER2013's
    balanced accuracy unchanged (78.3%) and the photos' 70.9% to 69.9% (docs/experiments.md).
    """
    floor = groups_balanced(logits, truth, groups) - BALANCED_TOLERANCE
    kept = []  # (top-1, shift) of the lifts within the tolerance
    for shift in RELAXED_SHIFTS:
        lifted = lift_neutral(logits, shift)
        if groups_balanced(lifted, truth, groups) >= floor:
            kept.append((float((lifted.argmax(axis=1) == truth).mean()), float(shift)))
    return max(kept, key=lambda k: k[0])[1]


def lift_neutral(logits: np.ndarray, shift: float) -> np.ndarray:
    """A copy of ``logits`` with neutral's raised by ``shift``."""
    out = logits.copy()
    out[:, EMOTIONS.index("neutral")] += shift
    return out


def fit_temperature(logits: np.ndarray, truth: np.ndarray, weights: np.ndarray) -> float:
    """The temperature minimising the weighted negative log-likelihood (golden-section search)."""

    def nll(t: float) -> float:
        probs = softmax(logits / t)
        return float(-(weights * np.log(probs[np.arange(len(truth)), truth] + 1e-12)).sum())

    low, high = 0.3, 5.0
    ratio = (5**0.5 - 1) / 2
    for _ in range(60):
        a, b = high - ratio * (high - low), low + ratio * (high - low)
        if nll(a) < nll(b):
            high = b
        else:
            low = a
    return round((low + high) / 2, 4)


def calibrate(logits: np.ndarray, truth: np.ndarray, groups: np.ndarray, prior: np.ndarray) -> dict:
    """Bias and temperature fitted on validation, with ECE before and after."""
    weights = class_balanced_weights(truth)
    bias, tau = fit_bias(logits, truth, groups, prior, weights)
    shift = fit_relaxed_shift(logits + bias, truth, groups)
    bias = bias.copy()
    bias[EMOTIONS.index("neutral")] += shift
    temperature = fit_temperature(logits + bias, truth, weights)
    raw, calibrated = softmax(logits), softmax((logits + bias) / temperature)
    return {
        "bias": [round(float(b), 5) for b in bias],
        "tau": tau,
        "relaxed_shift": shift,
        "temperature": temperature,
        "ece_before": expected_calibration_error(raw, truth, weights=weights),
        "ece_after": expected_calibration_error(calibrated, truth, weights=weights),
        "ece_before_data_mix": expected_calibration_error(raw, truth),
        "ece_after_data_mix": expected_calibration_error(calibrated, truth),
    }


def care_starts(probs: np.ndarray, thresholds: dict[str, float]) -> np.ndarray:
    """Which faces would start care's wait: top label a mood care answers, its score at that
    mood's threshold (as ``care.policy`` reads the smoothed scores)."""
    limit = np.full(len(EMOTIONS), np.inf)
    for emotion, threshold in thresholds.items():
        limit[EMOTIONS.index(emotion)] = threshold
    top = probs.argmax(axis=1)
    return probs[np.arange(len(probs)), top] >= limit[top]


def care_thresholds(
    probs: np.ndarray, truth: np.ndarray, relaxed_share: float = CARE_RELAXED_SHARE
) -> dict[str, float]:
    """The thresholds (0.3 to 0.6) that answer the most faces of the moods care answers, each
    mood counting the same, while at most ``relaxed_share`` of the relaxed faces start care.

    Why this rule: care must not nag a relaxed face, and must answer a sad, angry, frightened
    or disgusted one; both are counted on faces, the way the project's bars count them. The
    rule before it gave each mood the lowest threshold at which at most 15% of the faces the
    model calls that mood are calm. About a third of the faces a votes-trained model calls
    sad are neutral to the annotators, so sad sat at its ceiling and care missed a third of
    sad faces, to spare relaxed faces about two points (docs/experiments.md). Ties go to
    fewer relaxed faces, then to higher thresholds. If no choice keeps within the share, every
    mood gets the highest threshold.
    """
    relaxed = truth == EMOTIONS.index("neutral")
    moods = [truth == EMOTIONS.index(e) for e in CARE_EMOTIONS]
    moods = [m for m in moods if m.any()]
    best_key, best = None, (float(CARE_THRESHOLDS[-1]),) * len(CARE_EMOTIONS)
    for chosen in itertools.product(CARE_THRESHOLDS.tolist(), repeat=len(CARE_EMOTIONS)):
        started = care_starts(probs, dict(zip(CARE_EMOTIONS, chosen, strict=True)))
        unwanted = float(started[relaxed].mean()) if relaxed.any() else 0.0
        if unwanted > relaxed_share:
            continue
        key = (float(np.mean([started[m].mean() for m in moods])) if moods else 0.0, -unwanted, sum(chosen))
        if best_key is None or key > best_key:
            best_key, best = key, chosen
    return {e: float(t) for e, t in zip(CARE_EMOTIONS, best, strict=True)}
