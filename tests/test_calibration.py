"""A person's relaxed face as reference: the baseline, the guided step and the corrected scores,
on real faces of validation posers, through the live session (no browser: test_browser.py has
the page's flow)."""

from __future__ import annotations

import json
import math

import cv2
import numpy as np
import pytest

from emocare.care.preferences import PreferenceStore
from emocare.evaluation import scores_of
from emocare.live.calibration import Calibration, CalibrationRefused
from emocare.training.data import index
from emocare.vision import build_analyzer
from emocare.vision.emocare_backend import default_model_path
from emocare.vision.reference import Baseline, corrected
from emocare.vision.samples import coffee, to_jpeg
from emocare.vision.types import EMOTIONS

from .conftest import close_app, make_app, page_frame, poser_read_sad


@pytest.fixture
def live(tmp_path, clock):
    app = make_app(tmp_path, CLOCK=clock, CARE_SUSTAIN_S=1.0)
    yield app.extensions["emocare"]
    close_app(app)


@pytest.fixture(scope="module")
def poser(expressions) -> dict[str, list[bytes]]:
    """The poser of ``poser_read_sad``, their photos as the page sends them (320×240 JPEG)."""
    photos = poser_read_sad(expressions)
    return {label: [to_jpeg(page_frame(f)) for f in frames] for label, frames in photos.items()}


def run(session, clock, jpeg: bytes, seconds: float, fps: float = 10.0) -> list:
    events = []
    for seq in range(round(seconds * fps)):
        events += session.step(jpeg, seq, clock())
        clock.advance(1 / fps)
    return events


def test_a_baseline_keeps_numbers_only_and_refuses_damaged_ones():
    scores = np.array([[0.05, 0.02, 0.03, 0.05, 0.3, 0.05, 0.5], [0.04, 0.02, 0.02, 0.04, 0.4, 0.04, 0.44]])
    baseline = Baseline.of(scores)
    assert baseline.count == 2
    assert baseline.mean_log[EMOTIONS.index("sad")] == pytest.approx(np.log([0.3, 0.4]).mean(), abs=1e-5)
    assert Baseline.from_dict(json.loads(json.dumps(baseline.to_dict()))) == baseline
    for broken in (
        {},
        {**baseline.to_dict(), "count": 0},
        {**baseline.to_dict(), "mean_log": {**baseline.to_dict()["mean_log"], "sad": math.inf}},
        {**baseline.to_dict(), "mean_log": {**baseline.to_dict()["mean_log"], "sad": 2.0}},
    ):
        with pytest.raises(ValueError, match="not a baseline"):
            Baseline.from_dict(broken)
    # the person's mean relaxed face, all of the offset taken off, is the population's (the
    # offset is all it removes); the live path takes half of it off (reference.STRENGTH)
    population = np.log([0.02, 0.03, 0.02, 0.03, 0.05, 0.03, 0.82])
    fixed = corrected(np.exp(np.array(baseline.mean_log)), baseline.offset(population, strength=1.0))
    np.testing.assert_allclose(fixed, np.exp(population) / np.exp(population).sum(), atol=1e-6)
    np.testing.assert_allclose(baseline.offset(population), 0.5 * baseline.offset(population, strength=1.0))


def test_the_step_refuses_frames_that_cannot_make_a_baseline(poser, astronaut_frame):
    analyzer = build_analyzer("emocare")
    frames = {
        label: cv2.imdecode(np.frombuffer(jpegs[0], np.uint8), cv2.IMREAD_COLOR) for label, jpegs in poser.items()
    }

    def calibrate(frame_list) -> Calibration:
        run = Calibration(started=0.0)
        for frame in frame_list:
            run.add(analyzer.analyze(frame))
        return run

    assert calibrate([frames["neutral"]] * 20).result().count == 20
    with pytest.raises(CalibrationRefused) as refused:
        calibrate([cv2.resize(coffee(), (320, 240))] * 20).result()
    assert refused.value.code == "no_face"
    two = np.hstack([frames["neutral"], frames["neutral"]])
    with pytest.raises(CalibrationRefused) as refused:
        calibrate([two] * 20).result()
    assert refused.value.code == "several_faces"
    with pytest.raises(CalibrationRefused) as refused:  # a smile is a movement, not a face at rest
        calibrate([astronaut_frame] * 20).result()
    assert refused.value.code == "not_relaxed_happy"


def test_calibrated_relaxed_face_gets_no_care_and_the_sad_face_still_does(live, clock, poser, tmp_path):
    session = live.live.open("page-1", profile="mei")
    list(session.configure({"locale": "en"}, clock()))
    assert session.in_force()["calibrated"] is False
    relaxed, other_relaxed, sad = poser["neutral"][0], poser["neutral"][1], poser["sad"][0]

    [(name, started)] = session.calibrate({"action": "start"}, clock())
    assert (name, started["state"]) == ("calibration", "running")
    events = run(session, clock, relaxed, 5.5)
    states = [payload for name, payload in events if name == "calibration"]
    assert states[-1]["state"] == "done" and states[-1]["frames"] >= 40
    assert [s["progress"] for s in states[:-1]] == sorted(s["progress"] for s in states[:-1])
    assert session.in_force()["calibrated"] is True

    # kept with the care preferences: numbers only, for the model it was made with
    stored = PreferenceStore(tmp_path / "instance" / "profiles").load("mei").baseline
    assert set(stored) == {"mean_log", "spread", "count", "model"}
    assert stored["model"] == live.live.visions.get().model_id

    # another relaxed photo of the same person: no care for half a minute
    events = run(session, clock, other_relaxed, 30)
    assert [n for n, _ in events if n == "care"] == []
    labels = [f["label"] for n, p in events if n == "result" for f in p["faces"] if f["primary"]]
    assert labels[-1] == "neutral"
    # their sad face: a care card within five seconds
    events = run(session, clock, sad, 5)
    cards = [p for n, p in events if n == "care"]
    assert cards and cards[0]["emotion"] == "sad"


def test_calibration_answers_bad_requests_and_reset_forgets(live, clock, poser):
    session = live.live.open("page-2", profile="kai")
    list(session.configure({}, clock()))
    [(name, error)] = session.calibrate({"action": "bake"}, clock())
    assert (name, error["code"]) == ("error", "bad_calibration")
    assert session.calibrate("start", clock())[0][1]["code"] == "bad_calibration"
    session.calibrate({"action": "start"}, clock())
    run(session, clock, poser["neutral"][0], 5.5)
    assert session.in_force()["calibrated"] is True
    assert session.calibrate({"action": "reset"}, clock()) == [("calibration", {"state": "reset"})]
    assert session.in_force()["calibrated"] is False
    session.calibrate({"action": "start"}, clock())
    assert session.calibrate({"action": "cancel"}, clock()) == [("calibration", {"state": "cancelled"})]
    events = run(session, clock, poser["neutral"][0], 6)
    assert [n for n, _ in events if n == "calibration"] == []  # nothing listens any more
    assert session.in_force()["calibrated"] is False


def test_deleting_my_data_removes_the_baseline(live, clock, poser, tmp_path):
    session = live.live.open("page-3", profile="ana")
    list(session.configure({}, clock()))
    session.calibrate({"action": "start"}, clock())
    run(session, clock, poser["neutral"][0], 5.5)
    store = PreferenceStore(tmp_path / "instance" / "profiles")
    assert store.load("ana").baseline is not None
    live.live.forget_profile("ana")
    assert store.load("ana").baseline is None
    assert session.in_force()["calibrated"] is False


def test_not_how_i_feel_is_shown_in_the_settings_and_reset_with_one_click(live, clock, poser, tmp_path):
    session = live.live.open("page-4", profile="lin")
    list(session.configure({}, clock()))
    cards = [p for n, p in run(session, clock, poser["sad"][0], 5) if n == "care"]
    assert cards and cards[0]["emotion"] == "sad"
    bad = session.feedback({"id": cards[0]["id"], "verdict": "not_me", "felt": 3}, clock())
    assert bad[0][1]["code"] == "bad_feedback"
    [(name, answer)] = session.feedback({"id": cards[0]["id"], "verdict": "not_me", "felt": "neutral"}, clock())
    assert (name, answer["ok"]) == ("care_feedback", True)
    learned = session.in_force()["learned"]
    assert learned == {"sad": pytest.approx(0.1)}
    assert PreferenceStore(tmp_path / "instance" / "profiles").load("lin").threshold_boost == {"sad": 0.1}
    [*_, (name, settings)] = session.configure({"forget_learned": True}, clock())
    assert name == "configured" and settings["learned"] == {}
    assert PreferenceStore(tmp_path / "instance" / "profiles").load("lin").threshold_boost == {}
    assert session.configure({"forget_learned": "yes"}, clock()).__next__()[1]["code"] == "bad_settings"


def test_evaluate_corrects_each_image_by_its_persons_other_relaxed_faces(expressions, tmp_path):
    """``emocare evaluate --calibration``: leave-one-out by bytes, people by the pattern."""
    from emocare.cli import main

    paths, _labels, sources, is_val = index(expressions)
    chosen = [str(p) for p in paths[(sources == "jaffe") & is_val]]
    folder = tmp_path / "faces"
    for path in chosen:
        _source, label, name = path.split("/")
        (folder / label).mkdir(parents=True, exist_ok=True)
        (folder / label / name).symlink_to(expressions / path)
    lone = folder / "neutral" / "ZZ.NE1.1.jpg"  # a person with one relaxed photo: itself only
    lone.symlink_to(expressions / next(p for p in chosen if "/neutral/" in p))
    pattern = r"^([A-Z]{2})\."

    plain = evaluate_json(main, folder)
    fixed = evaluate_json(main, folder, "--calibration", str(folder / "neutral"), "--person-pattern", pattern)
    assert fixed["n"] == plain["n"] == len(chosen) + 1
    # every image of the two posers has other relaxed photos; the lone one has none but itself
    assert fixed["calibrated_images"] == len(chosen) and fixed["calibration_people"] == 3
    assert set(fixed) >= {"top1", "balanced", "per_class", "confusion"}
    assert fixed["per_class"]["neutral"] >= plain["per_class"]["neutral"]
    assert main(["evaluate", str(folder), "--calibration", str(folder / "neutral")]) == 2  # no pattern


def test_evaluate_scores_fer2013_faces_against_the_annotators_majority(expressions, tmp_path):
    from emocare.cli import main
    from emocare.training import votes

    table = expressions / votes.VOTES_FILE
    majority = votes.majority_by_name(table)
    folder = tmp_path / "faces"
    picked = {"sad": 0, "neutral": 0}
    for row in sorted(votes.read_table(table))[::97]:
        _source, label, name = row.split("/")
        if label in picked and picked[label] < 15:
            picked[label] += 1
            (folder / label).mkdir(parents=True, exist_ok=True)
            (folder / label / name).symlink_to(expressions / row)
    names = [p.name for p in folder.rglob("*.jpg")]
    plain = evaluate_json(main, folder)
    voted = evaluate_json(main, folder, "--votes", str(table))
    assert plain["n"] == 30
    assert voted["n"] == voted["scored_against_votes"] - sum(majority[n] < 0 for n in names)
    truth = np.array(voted["confusion"]).sum(axis=1)
    expected = np.bincount([majority[n] for n in names if majority[n] >= 0], minlength=len(EMOTIONS))
    assert truth.tolist() == expected.tolist()

    # how often a face of each (voted) label would start care: its top mood negative and at that
    # mood's care threshold from the model card, counted here face by face
    card = json.loads(default_model_path().with_suffix(".json").read_text())["care"]["thresholds"]
    assert voted["care"]["thresholds"] == {e: card[e] for e in ("sad", "angry", "fear", "disgust")}
    analyzer, crossed = build_analyzer("emocare"), {}
    for path in folder.rglob("*.jpg"):
        if majority[path.name] >= 0:
            scores = scores_of(analyzer, cv2.imread(str(path)))
            top = max(scores, key=scores.get)
            over = top in card and scores[top] >= card[top]
            crossed.setdefault(EMOTIONS[majority[path.name]], []).append(over)
    assert voted["care"]["negative_crossing"] == {e: round(np.mean(v), 4) for e, v in crossed.items()}
    assert voted["care"]["negative_crossing"]["sad"] > 0 and voted["care"]["negative_crossing"]["neutral"] < 0.5


def evaluate_json(main, folder, *extra) -> dict:
    import contextlib
    import io

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(["evaluate", str(folder), "--json", *extra]) == 0
    return json.loads(out.getvalue())
