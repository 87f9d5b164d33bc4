"""Per-face tracks and smoothing, on real frames of the astronaut and on synthetic streams."""

import numpy as np
import pytest

from emocare.vision import build_analyzer
from emocare.vision.samples import noisy_steady_clip, place_on_canvas
from emocare.vision.smoothing import EmotionSmoother, SmoothingConfig, count_flips
from emocare.vision.tracking import FaceTracker, iou
from emocare.vision.types import EMOTIONS, Face


@pytest.fixture(scope="module")
def analyzer():
    return build_analyzer("emocare")


def scores(**given):
    rest = (1.0 - sum(given.values())) / (len(EMOTIONS) - len(given))
    return {name: given.get(name, rest) for name in EMOTIONS}


def two_faces(astronaut, shift=0):
    """The portrait twice, side by side on one 640×240 frame, shifted right by ``shift`` px."""
    one = place_on_canvas(astronaut, (320, 240), face_height=0.95)
    frame = np.full((240, 640 + 40, 3), 110, dtype=np.uint8)
    frame[:, shift : shift + 320] = one
    frame[:, shift + 320 : shift + 640] = one[:, ::-1]
    return frame[:, :640]


def test_two_faces_give_two_stable_tracks(analyzer, astronaut):
    tracker = FaceTracker()
    history = []
    for step in range(8):
        frame = two_faces(astronaut, shift=step * 4)
        tracked = tracker.update(analyzer.analyze(frame), t=step * 0.1, frame_size=(640, 240))
        assert len(tracked) == 2
        history.append({f.track_id: f.face.box[0] for f in tracked})
        assert sum(f.primary for f in tracked) == 1
        assert all(f.label == "happy" for f in tracked)
    assert all(set(h) == set(history[0]) for h in history)  # the same two ids on every frame
    left, right = sorted(history[0], key=history[0].get)
    assert all(h[left] < h[right] for h in history)  # and each id stays on its own face


def test_track_survives_a_missed_frame_and_new_face_gets_new_id():
    tracker = FaceTracker(max_misses=2)
    face = Face((100, 50, 60, 60), scores(happy=0.9))
    [first] = tracker.update([face], 0.0)
    tracker.update([], 0.1)
    [again] = tracker.update([Face((104, 52, 60, 60), scores(happy=0.9))], 0.2)
    assert again.track_id == first.track_id
    for k in range(3):
        tracker.update([], 0.3 + k / 10)
    [new] = tracker.update([face], 1.0)
    assert new.track_id != first.track_id


def test_iou():
    assert iou((0, 0, 10, 10), (0, 0, 10, 10)) == 1.0
    assert iou((0, 0, 10, 10), (20, 20, 5, 5)) == 0.0
    assert iou((0, 0, 10, 10), (5, 0, 10, 10)) == pytest.approx(50 / 150)


def test_smoothing_holds_a_label_through_noise():
    rng = np.random.default_rng(1)
    smoother = EmotionSmoother(SmoothingConfig(tau=0.5, margin=0.12))
    raw, shown = [], []
    for i in range(100):  # 10 s at 10 fps of a face hovering between sad and neutral
        sad = 0.45 + rng.normal(0, 0.08)
        frame = scores(sad=sad, neutral=0.9 - sad)
        raw.append(max(frame, key=frame.get))
        shown.append(smoother.update(frame, i / 10)[1])
    assert count_flips(raw) >= 10
    assert count_flips(shown) <= 2


def test_smoothing_follows_a_real_change_within_a_second():
    smoother = EmotionSmoother(SmoothingConfig(tau=0.5, margin=0.12))
    for i in range(20):
        smoother.update(scores(neutral=0.8), i / 10)
    changed_at = None
    for i in range(20, 40):
        if smoother.update(scores(sad=0.8), i / 10)[1] == "sad" and changed_at is None:
            changed_at = i / 10 - 2.0
    assert changed_at is not None and changed_at <= 1.0


def test_smoothing_reduces_flips_on_a_noisy_real_clip():
    """A steady clip of one face with small jitter and heavy sensor noise, through fer's model,
    whose raw label flickers on it (EmoCare's own model holds "happy" on every frame)."""
    analyzer = build_analyzer("fer")
    tracker = FaceTracker(SmoothingConfig(tau=0.5, margin=0.12))
    raw, shown = [], []
    for i, frame in enumerate(noisy_steady_clip(60)):
        tracked = tracker.update(analyzer.analyze(frame), i / 10, (320, 240))
        if tracked:
            raw.append(tracked[0].face.dominant)
            shown.append(tracked[0].label)
    assert len(raw) >= 50
    assert count_flips(raw) >= 10  # the clip really is noisy for the model
    assert count_flips(shown) <= count_flips(raw) / 5


def test_a_wrong_first_frame_does_not_decide_a_steady_face():
    """The first frame reads sad; the face is neutral by a narrow but lasting lead."""
    smoother = EmotionSmoother(SmoothingConfig())
    smoother.update(scores(sad=0.6, neutral=0.2), 0.0)
    rng = np.random.default_rng(3)
    shown = []
    for i in range(1, 50):  # 5 s at 10 fps: neutral leads sad by 0.06 on average
        neutral = 0.38 + rng.normal(0, 0.05)
        shown.append(smoother.update(scores(neutral=neutral, sad=0.32), i / 10)[1])
    assert shown[-1] == "neutral"
    assert count_flips(shown) <= 1


def test_a_passing_lead_does_not_change_the_label():
    smoother = EmotionSmoother(SmoothingConfig())
    for i in range(30):
        smoother.update(scores(neutral=0.5, sad=0.3), i / 10)
    labels = [smoother.update(scores(neutral=0.3, sad=0.45), 3 + i / 10)[1] for i in range(5)]  # half a second
    assert set(labels) == {"neutral"}
