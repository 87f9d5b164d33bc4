"""EmoCare's own model on real labelled faces, not one smiling portrait.

The faces are a fixed sample of the validation split (20 a class, photos first), read from
the shared folder at test time: their licences do not allow copying them into the repository.
The floors below are ones fer's bundled model does not reach on the same sample, so a
classifier stuck on one class, or fer's model standing in, fails them.
"""

from __future__ import annotations

import json
import logging
import shutil

import cv2
import numpy as np
import pytest

from emocare.evaluation import evaluate, evaluate_clips
from emocare.training.data import PHOTO_SOURCES, fixed_sample, index
from emocare.training.votes import VOTES_FILE
from emocare.vision import EMOTIONS, build_analyzer
from emocare.vision.emocare_backend import care_thresholds, default_model_path

from .conftest import SAMPLE, link_labelled

BALANCED_FLOOR = 0.60
CLASS_FLOOR = 0.40


@pytest.fixture(scope="module")
def ours(sample_dir):
    return evaluate(sample_dir, "emocare")


def test_the_sample_is_the_fixed_draw_from_validation(expressions):
    rows = [tuple(line.split("\t")) for line in SAMPLE.read_text().splitlines() if not line.startswith("#")]
    assert rows == fixed_sample(*index(expressions))
    assert len(rows) == 20 * len(EMOTIONS)


def test_our_model_clears_floors_that_fer_does_not(ours, sample_dir):
    assert ours["backend"] == "emocare" and ours["n"] == 140
    assert ours["balanced"] >= BALANCED_FLOOR, ours["per_class"]
    assert min(ours["per_class"].values()) >= CLASS_FLOOR, ours["per_class"]
    fer = evaluate(sample_dir, "fer")
    assert fer["balanced"] < BALANCED_FLOOR or min(fer["per_class"].values()) < CLASS_FLOOR, fer["per_class"]
    assert ours["balanced"] > fer["balanced"]


def test_every_emotion_is_predicted_and_photos_find_their_face(ours):
    predicted = np.array(ours["confusion"])[:, : len(EMOTIONS)].sum(axis=0)
    assert (predicted > 0).all()  # a classifier stuck on a few classes fails here
    assert ours["no_face"] <= 2


def test_photos_alone(tmp_path, validation_sample):
    """The posed and studio photos, through the detector: where fer is weakest."""
    link_labelled([(label, path) for label, path in validation_sample if path.parts[-3] in PHOTO_SOURCES], tmp_path)
    photos = evaluate(tmp_path, "emocare")
    assert photos["n"] >= 70
    assert photos["balanced"] >= BALANCED_FLOOR, photos["per_class"]


def test_scores_are_the_calibrated_probabilities_of_the_card(astronaut):
    analyzer = build_analyzer("emocare")
    card = json.loads(default_model_path().with_suffix(".json").read_text())
    calibration = card["calibration"]
    assert calibration["ece_after"] < calibration["ece_before"]
    classifier = analyzer.classifier
    crop = cv2.resize(astronaut[60:200, 160:300, 1], (64, 64), interpolation=cv2.INTER_AREA)
    logits = classifier.logits_batch(crop[None])[0]
    expected = np.exp((logits + calibration["bias"]) / calibration["temperature"])
    assert classifier.probabilities(logits[None])[0] == pytest.approx(expected / expected.sum())
    assert set(card["care"]["thresholds"]) == {"sad", "angry", "fear", "disgust"}


def test_the_other_way_of_running_is_calibrated_for_itself(sample_dir):
    """Flip averaging doubles the classifier's time; ``EMOCARE_TTA`` picks the other way, and
    it gets the calibration and care thresholds fitted for it, not the chosen way's."""
    card = json.loads(default_model_path().with_suffix(".json").read_text())
    other = not card["input"]["flip"]
    analyzer = build_analyzer("emocare", tta=other)
    assert analyzer.classifier.tta is other
    calibration = card["flip_choice"]["calibration_other"]
    assert analyzer.classifier.card.bias.tolist() == pytest.approx(calibration["bias"])
    assert analyzer.classifier.card.temperature == calibration["temperature"]
    assert care_thresholds(flip=other) == card["flip_choice"]["care_other"]["thresholds"]
    assert care_thresholds() == card["care"]["thresholds"]
    report = evaluate(sample_dir, "emocare", tta=other)
    assert report["tta"] is other
    assert report["balanced"] >= BALANCED_FLOOR, report["per_class"]
    assert min(report["per_class"].values()) >= CLASS_FLOOR, report["per_class"]


@pytest.mark.parametrize("damage", ["missing", "corrupt"])
def test_a_broken_model_file_falls_back_to_fer_naming_the_file(tmp_path, caplog, damage, astronaut):
    caplog.set_level(logging.ERROR)
    path = tmp_path / "emocare_expression.onnx"
    shutil.copy(default_model_path().with_suffix(".json"), path.with_suffix(".json"))
    if damage == "corrupt":
        path.write_bytes(default_model_path().read_bytes()[:5000])
    analyzer = build_analyzer("emocare", model_path=path)
    assert analyzer.name == "fer"
    assert str(path) in analyzer.notice and str(path) in caplog.text
    assert analyzer.analyze(astronaut)  # and it still serves


def test_steady_clips_keep_the_accuracy_of_the_per_frame_majority(named_sample_dir, expressions):
    """On 26 clips one clip is 3.8 points: one clip of slack here; the 210-clip measurement in
    docs/experiments.md has the smoothed label at least as right as the per-frame majority.
    FER2013 faces count by their ten annotators' majority (two with none are left out), as the
    model card counts them."""
    clips = evaluate_clips(named_sample_dir, "emocare", per_class=4, votes=expressions / VOTES_FILE)
    assert clips["clips"] == 26
    assert clips["top1"] >= clips["majority_top1"] - 1 / 26 - 1e-9
    # a classifier stuck on one class gets at most 5 of these 26 right; the shipped model 21,
    # the fine-tuned model it replaced 19 (against FER2013's own labels: 15 and 18 of 28)
    assert clips["top1"] >= 18 / 26 - 1e-9
    assert clips["flips_per_s"] <= 0.1


def test_the_session_computes_what_the_card_measured(validation_sample):
    """The int8 graph's fused kernels saturate on x86 without VNNI (an AVX2 EPYC: 1.5 points of
    top-1 lost, argmax changed on 7% of crops); there the session asks for kernels that do not.
    Either way its logits are those of the graph's reference semantics (every quantise step
    explicit, nothing fused)."""
    import onnxruntime as ort

    from emocare.vision.emocare_backend import network_logits, open_session
    from emocare.vision.types import CROP_MAX_SIDE

    crops = [cv2.imread(str(path), cv2.IMREAD_GRAYSCALE) for _label, path in validation_sample]
    crops = np.stack([cv2.resize(c, (64, 64)) for c in crops if max(c.shape) <= CROP_MAX_SIDE])
    assert len(crops) >= 50
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    reference = ort.InferenceSession(str(default_model_path()), options, providers=["CPUExecutionProvider"])
    expected = network_logits(reference, crops, 48, tta=False)
    got = network_logits(open_session(default_model_path()), crops, 48, tta=False)
    assert np.abs(got - expected).mean() < 0.08
    assert (got.argmax(1) == expected.argmax(1)).mean() >= 0.97


@pytest.mark.parametrize(
    ("flags", "machine", "exact"),
    [
        ({"avx2"}, "x86_64", False),
        ({"avx2", "avx512_vnni"}, "x86_64", True),
        ({"avx_vnni"}, "AMD64", True),
        (set(), "aarch64", True),
    ],
)
def test_fused_int8_only_where_it_is_exact(flags, machine, exact):
    from emocare.vision.emocare_backend import fused_int8_is_exact

    assert fused_int8_is_exact(flags, machine) is exact
