"""Calibration's lift for relaxed faces, on the shipped model's own logits for real faces."""

from __future__ import annotations

import json

import numpy as np
import pytest

from emocare.training.calibrate import (
    BALANCED_TOLERANCE,
    CARE_EMOTIONS,
    CARE_RELAXED_SHARE,
    CARE_THRESHOLDS,
    RELAXED_SHIFTS,
    care_starts,
    care_thresholds,
    fit_relaxed_shift,
    groups_balanced,
    lift_neutral,
)
from emocare.training.data import load
from emocare.vision.emocare_backend import default_model_path, network_logits, open_session
from emocare.vision.metrics import softmax
from emocare.vision.types import EMOTIONS

NEUTRAL = EMOTIONS.index("neutral")


@pytest.fixture(scope="module")
def scored(small_set):
    """The fixed validation sample (140 faces, 20 a class) as the shipped model's logits plus its
    bias with the card's lift taken off, their labels, and the calibration's two groups."""
    faces = load(small_set)
    model = default_model_path()
    card = json.loads(model.with_suffix(".json").read_text())
    calibration = card["calibration"]
    bias = np.array(calibration["bias"])
    bias[NEUTRAL] -= calibration["relaxed_shift"]
    logits = network_logits(open_session(model), faces.images, card["input"]["side"], tta=card["input"]["flip"])
    groups = np.where(faces.sources == "fer2013_train", "fer2013", "photos")
    return logits + bias, faces.labels, groups


def test_the_lift_reads_the_most_faces_right_within_the_balanced_tolerance(scored):
    logits, truth, groups = scored
    shift = fit_relaxed_shift(logits, truth, groups)
    assert shift in RELAXED_SHIFTS
    floor = groups_balanced(logits, truth, groups) - BALANCED_TOLERANCE
    assert groups_balanced(lift_neutral(logits, shift), truth, groups) >= floor

    def top1(s: float) -> float:
        return float((lift_neutral(logits, s).argmax(axis=1) == truth).mean())

    admissible = [s for s in RELAXED_SHIFTS if groups_balanced(lift_neutral(logits, s), truth, groups) >= floor]
    assert top1(shift) == max(top1(s) for s in admissible) >= top1(0.0)
    # a lift only ever moves faces to neutral: none of its faces is lost
    before, after = logits.argmax(axis=1), lift_neutral(logits, shift).argmax(axis=1)
    assert np.all(after[before == NEUTRAL] == NEUTRAL)


def test_care_thresholds_answer_the_most_negative_faces_the_relaxed_budget_allows(scored):
    logits, truth, _ = scored
    calibration = json.loads(default_model_path().with_suffix(".json").read_text())["calibration"]
    probs = softmax(lift_neutral(logits, calibration["relaxed_shift"]) / calibration["temperature"])

    def rates(thresholds: dict[str, float]) -> tuple[float, float]:
        started = care_starts(probs, thresholds)
        kept = np.mean([started[truth == EMOTIONS.index(e)].mean() for e in CARE_EMOTIONS])
        return float(started[truth == NEUTRAL].mean()), float(kept)

    thresholds = care_thresholds(probs, truth)
    assert set(thresholds) == set(CARE_EMOTIONS) and set(thresholds.values()) <= set(CARE_THRESHOLDS.tolist())
    unwanted, kept = rates(thresholds)
    assert unwanted <= CARE_RELAXED_SHARE
    assert kept >= rates(dict.fromkeys(CARE_EMOTIONS, float(CARE_THRESHOLDS[-1])))[1]
    for emotion in CARE_EMOTIONS:  # one step lower breaks the budget or answers no more faces
        lower = CARE_THRESHOLDS[thresholds[emotion] > CARE_THRESHOLDS]
        if len(lower):
            u, k = rates({**thresholds, emotion: float(lower[-1])})
            assert u > CARE_RELAXED_SHARE or k <= kept
    # with no budget as many faces as the lowest thresholds answer; with none, relaxed faces spared
    lowest = dict.fromkeys(CARE_EMOTIONS, float(CARE_THRESHOLDS[0]))
    assert rates(care_thresholds(probs, truth, relaxed_share=1.0))[1] == rates(lowest)[1]
    spared = care_thresholds(probs, truth, relaxed_share=0.0)
    assert rates(spared)[0] == 0.0 or set(spared.values()) == {float(CARE_THRESHOLDS[-1])}
