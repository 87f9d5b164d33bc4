"""The training command end to end on a small real set: crops, split, epochs, resume, export.

Real faces from the shared folder (the fixed validation sample, laid out as sources), one
short epoch: what is checked is the machinery, not the accuracy (test_model.py does that).
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from emocare.training import votes
from emocare.training.data import index, load
from emocare.vision import build_analyzer
from emocare.vision.types import EMOTIONS

torch = pytest.importorskip("torch", reason="training needs PyTorch (requirements-train.txt)")


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
    assert set(card["validation"]) >= {"all", "fer2013_train", "reference"}
    for key in ("bias", "temperature", "ece_before", "ece_after"):
        assert key in card["calibration"]
    assert np.array(card["validation"]["all"]["confusion"]).sum() == card["validation"]["all"]["n"]
    choice = card["flip_choice"]  # flip averaging only where it is worth its double cost
    gain = choice["balanced_with_flip"] - choice["balanced_without_flip"]
    assert card["input"]["flip"] is choice["chosen"] is (gain >= choice["min_gain"])
    chosen = "balanced_with_flip" if choice["chosen"] else "balanced_without_flip"
    assert card["validation"]["reference"]["balanced"] == choice[chosen]  # as calibration scores faces
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


def test_the_votes_say_what_ten_annotators_said(expressions):
    """The README's figures, from the file itself: majorities and their agreement with FER2013."""
    paths, labels, sources, _is_val = index(expressions)
    counts = votes.read(expressions, paths)
    has = counts[:, 0] >= 0
    assert has.sum() == 26_782 and set(sources[has].tolist()) == {"fer2013_train"}
    majority = votes.majority(counts[has])
    clear = majority >= 0
    assert clear.sum() == 23_408
    assert (majority[clear] == labels[has][clear]).mean() == pytest.approx(0.679, abs=0.001)
    # relaxed faces filed as sad: the largest disagreement
    sad, neutral = EMOTIONS.index("sad"), EMOTIONS.index("neutral")
    assert ((labels[has] == sad) & (majority == neutral)).sum() == 2_036


def test_votes_become_soft_targets_after_single_votes_are_dropped():
    rows = np.array(
        [
            [2, 0, 0, 1, 7, 0, 0, 0, 0, 0],  # neutral 2, sad 1 (dropped), anger 7
            [0, 0, 3, 0, 2, 3, 1, 0, 1, 0],  # no majority: surprise 3, anger 2, disgust 3
            [0, 0, 0, 0, 0, 0, 0, 0, 2, 8],  # not a face
            [-1] * 10,  # no votes (another source)
        ]
    )
    soft = votes.distribution(rows)
    angry, neutral = EMOTIONS.index("angry"), EMOTIONS.index("neutral")
    assert soft[0, angry] == pytest.approx(7 / 9) and soft[0, neutral] == pytest.approx(2 / 9)
    assert soft[0].sum() == pytest.approx(1.0) and soft[1].sum() == pytest.approx(1.0)
    assert np.isnan(soft[2]).all() and np.isnan(soft[3]).all()
    assert votes.majority(rows).tolist() == [angry, -1, -1, -1]
    labels = np.array([angry, angry, EMOTIONS.index("happy"), EMOTIONS.index("sad")])
    targets = votes.targets(labels, rows)
    assert targets[0] == pytest.approx(soft[0]) and targets[2].sum() == 0  # never drawn
    assert targets[3].argmax() == EMOTIONS.index("sad") and targets[3].sum() == 1  # its label
    assert votes.reference_labels(labels, rows).tolist() == [angry, -1, -1, EMOTIONS.index("sad")]


def test_fine_tuning_on_the_votes_starts_from_the_shipped_model(small_set, tmp_path):
    """Members come out of the int8 graph as float networks that agree with it, and fine-tuning
    changes only the blocks it is asked to: the first ones stay exactly as they started."""
    from emocare.training.train import Recipe, build_network, members_of, predict_logits, resolve_precision, train
    from emocare.vision.emocare_backend import default_model_path, network_logits, open_session

    shipped = default_model_path()
    recipe = Recipe(
        epochs=1,
        batch=16,
        max_lr=0.002,
        precision=resolve_precision("auto"),
        targets="votes",
        frozen_norm=True,
        frozen_blocks=2,
    )
    starts = members_of(shipped, recipe)
    assert len(starts) == json.loads(shipped.with_suffix(".json").read_text())["recipe"]["members"]
    dataset = load(small_set, tmp_path / "crops.npz")
    nets = []
    for state in starts:
        net = build_network(recipe)
        net.load_state_dict(state)
        nets.append(net)
    ours = np.mean([predict_logits(n, dataset.images, recipe.side, tta=False) for n in nets], axis=0)
    theirs = network_logits(open_session(shipped), dataset.images, recipe.side, tta=False)
    assert (ours.argmax(axis=1) == theirs.argmax(axis=1)).mean() >= 0.97  # int8 rounding aside

    card = train(small_set, tmp_path / "tuned", recipe, members=1, start=shipped, cache=tmp_path / "crops.npz")
    assert card["fine_tuned_from"]["model"] == shipped.name and card["recipe"]["targets"] == "votes"
    assert "fer2013_ferplus" in card["validation"]
    # from the shipped weights, not from scratch: far above chance after one tiny epoch
    assert card["validation_float"]["all"]["balanced"] >= 0.5
    tuned = torch.load(tmp_path / "tuned" / "member-0" / "checkpoint.pt", weights_only=False)["net"]
    first_blocks = [k for k in starts[0] if int(k.split(".")[0]) < 14]
    last_blocks = [k for k in starts[0] if int(k.split(".")[0]) >= 14 and k.endswith("weight")]
    assert all(torch.equal(tuned[k], starts[0][k]) for k in first_blocks)
    assert any(not torch.equal(tuned[k], starts[0][k]) for k in last_blocks)
