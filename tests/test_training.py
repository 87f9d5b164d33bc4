"""The training command end to end on a small real set: crops, split, epochs, resume, export.

Real faces from the shared folder (the fixed validation sample, laid out as sources), one
short epoch: what is checked is the machinery, not the accuracy (test_model.py does that).
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from emocare.training.data import index, load
from emocare.vision import build_analyzer

torch = pytest.importorskip("torch", reason="training needs PyTorch (requirements-train.txt)")


@pytest.fixture(scope="module")
def small_set(tmp_path_factory, validation_sample):
    root = tmp_path_factory.mktemp("faces")
    for label, path in validation_sample:
        source = path.parts[-3]
        (root / source / label).mkdir(parents=True, exist_ok=True)
        (root / source / label / path.name).symlink_to(path)
    return root


def test_the_split_keeps_subjects_and_copies_on_one_side(expressions):
    paths, _labels, sources, is_val = index(expressions)
    for source, subject_of in (("ckplus", lambda n: n.split("_")[0]), ("jaffe", lambda n: n.split(".")[0])):
        mask = sources == source
        sides: dict[str, set] = {}
        for path, val in zip(paths[mask], is_val[mask], strict=True):
            sides.setdefault(subject_of(path.rsplit("/", 1)[-1]), set()).add(bool(val))
        assert all(len(s) == 1 for s in sides.values()), f"a {source} subject is on both sides"
        assert any(True in s for s in sides.values()) and any(False in s for s in sides.values())
    share = is_val.mean()
    assert 0.12 < share < 0.2


def test_train_resume_and_export(small_set, tmp_path, astronaut):
    from emocare.training.train import Recipe, resolve_precision, train

    recipe = Recipe(epochs=1, batch=16, precision=resolve_precision("auto"), live_share=0.5)
    out = tmp_path / "run"
    card = train(small_set, out, recipe, members=1)
    assert (out / "member-0" / "checkpoint.pt").is_file()
    [line] = (out / "member-0" / "progress.jsonl").read_text().splitlines()
    assert json.loads(line)["epoch"] == 1
    assert set(card["validation"]) >= {"all", "fer2013_train"}
    for key in ("bias", "temperature", "ece_before", "ece_after"):
        assert key in card["calibration"]
    assert np.array(card["validation"]["all"]["confusion"]).sum() == card["validation"]["all"]["n"]
    choice = card["flip_choice"]  # flip averaging only where it is worth its double cost
    gain = choice["balanced_with_flip"] - choice["balanced_without_flip"]
    assert card["input"]["flip"] is choice["chosen"] is (gain >= choice["min_gain"])
    chosen = "balanced_with_flip" if choice["chosen"] else "balanced_without_flip"
    assert card["validation"]["all"]["balanced"] == choice[chosen]
    # the way not chosen is calibrated for itself too (EMOCARE_TTA picks it)
    assert set(choice["calibration_other"]) >= {"bias", "temperature"}
    assert set(choice["care_other"]["thresholds"]) == set(card["care"]["thresholds"])

    again = train(small_set, out, recipe, members=1)  # resumes: nothing left to train
    assert len((out / "member-0" / "progress.jsonl").read_text().splitlines()) == 1
    assert again["validation"] == card["validation"]

    analyzer = build_analyzer("emocare", model_path=out / "emocare_expression.onnx")
    assert analyzer.name == "emocare" and analyzer.classifier.tta is card["input"]["flip"]
    [face] = analyzer.analyze(astronaut)
    assert sum(face.scores.values()) == pytest.approx(1.0)


def test_crops_are_cached_and_framed_like_the_live_path(small_set, tmp_path):
    cache = tmp_path / "crops.npz"
    first = load(small_set, cache)
    assert cache.is_file()
    assert first.images.shape[1:] == (64, 64)
    assert set(first.framing.tolist()) <= {"crop", "face", "whole"}
    assert (first.framing[np.isin(first.sources, ["jaffe", "muxspace"])] == "face").mean() > 0.9
    assert (load(small_set, cache).images == first.images).all()


def test_face_crops_also_come_framed_as_a_camera_sees_them(small_set, tmp_path):
    """A crop held up to the camera is re-framed by the detector: its live variant differs
    from the crop, while photos (framed by the detector already) keep their one crop."""
    dataset = load(small_set, tmp_path / "crops.npz")
    assert dataset.live.shape == dataset.images.shape
    photos = dataset.framing != "crop"
    assert (dataset.live[photos] == dataset.images[photos]).all()
    crops = ~photos
    changed = (dataset.live[crops] != dataset.images[crops]).any(axis=(1, 2))
    assert changed.mean() > 0.8  # found and re-framed (where no face is found, the crop stays)
    difference = np.abs(dataset.live[crops].astype(int) - dataset.images[crops]).mean(axis=(1, 2))
    assert np.median(difference[changed]) > 3  # not a copy: another framing of the same face


def test_an_ensemble_grows_by_a_member_without_training_the_others_again(small_set, tmp_path, astronaut):
    import onnxruntime as ort

    from emocare.training.train import Recipe, combine_graphs, resolve_precision, train

    recipe = Recipe(epochs=1, batch=16, precision=resolve_precision("auto"))
    first = train(small_set, tmp_path / "first", recipe, members=1)
    model = tmp_path / "first" / "emocare_expression.onnx"

    out = tmp_path / "grown"
    card = train(small_set, out, recipe, members=2, extend=model)
    assert not (out / "member-0").exists() and (out / "member-1" / "checkpoint.pt").is_file()
    assert card["recipe"]["members"] == 2 and card["recipe"]["seed"] == recipe.seed
    assert card["extended_from"]["validation"] == first["validation"]
    assert len(card["validation_members_float"]) == 2
    [face] = build_analyzer("emocare", model_path=out / "emocare_expression.onnx").analyze(astronaut)
    assert sum(face.scores.values()) == pytest.approx(1.0)

    # the grown graph is the old one, unchanged, beside the new member: each weighs a half
    crops = np.random.default_rng(0).uniform(-1, 1, (5, 1, 48, 48)).astype(np.float32)

    def logits(path):
        return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"face": crops})[0]

    weighted = tmp_path / "weighted.onnx"
    combine_graphs([(model, 0.25), (out / "emocare_expression.onnx", 0.75)], weighted)
    np.testing.assert_allclose(
        logits(weighted), 0.25 * logits(model) + 0.75 * logits(out / "emocare_expression.onnx"), atol=1e-4
    )
    assert not np.allclose(logits(out / "emocare_expression.onnx"), logits(model), atol=1e-3)

    with pytest.raises(ValueError, match="another recipe"):
        train(small_set, tmp_path / "other", Recipe(epochs=2, batch=16), members=2, extend=model)
    with pytest.raises(ValueError, match="holds 1 member"):
        train(small_set, tmp_path / "none", recipe, members=1, extend=model)


def test_one_network_learns_from_the_shipped_model_as_teacher(small_set, tmp_path):
    import hashlib

    from emocare.training.train import Recipe, distillation_loss, resolve_precision, teacher_logits, train
    from emocare.vision.emocare_backend import default_model_path, network_logits, open_session

    teacher = default_model_path()
    before = hashlib.sha256(teacher.read_bytes()).hexdigest()
    recipe = Recipe(epochs=1, batch=16, precision=resolve_precision("auto"), distil=0.7)
    card = train(small_set, tmp_path / "student", recipe, members=1, teacher=teacher)
    taught = card["distilled_from"]
    assert taught["sha256"] == before == hashlib.sha256(teacher.read_bytes()).hexdigest()
    assert taught["members"] == json.loads(teacher.with_suffix(".json").read_text())["recipe"]["members"]
    assert card["recipe"]["distil"] == 0.7 and card["recipe"]["members"] == 1
    assert (tmp_path / "student" / "member-0" / "checkpoint.pt").is_file()

    # what the student learns from: the teacher's flip-averaged logits for each crop as it is
    crops = load(small_set, tmp_path / "student" / "crops.npz").images[:7]
    expected = network_logits(open_session(teacher), crops, taught_side(teacher), tta=True)
    np.testing.assert_allclose(teacher_logits(teacher, crops), expected, rtol=1e-5, atol=1e-5)

    # the taught part of the loss: nothing when the student agrees, more the more it does not
    scores = torch.tensor(expected, dtype=torch.float32)
    assert distillation_loss(scores, scores, 2.0).item() == pytest.approx(0.0, abs=1e-6)
    assert distillation_loss(scores.flip(1), scores, 2.0) > distillation_loss(scores * 0.8, scores, 2.0) > 0

    with pytest.raises(ValueError, match="go together"):
        train(small_set, tmp_path / "no-share", Recipe(epochs=1, batch=16), members=1, teacher=teacher)


def taught_side(model) -> int:
    return int(json.loads(model.with_suffix(".json").read_text())["input"]["side"])
