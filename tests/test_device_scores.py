"""The ``scores`` event: a page that analysed its own frame sends boxes and scores, never a
picture, and the server takes them through the same session path as a frame (calibration,
tracking, smoothing, history, care); every field of it is checked. The scores sent here are
the Python analyzer's on real validation faces: what the page's port computes to the digit
(tests/test_device_parity.py)."""

from __future__ import annotations

import math

import pytest

from emocare.live import scores
from emocare.vision.types import EMOTIONS

from .conftest import close_app, make_app, page_of, read_as_labelled


@pytest.fixture
def device_app(tmp_path, clock):
    app = make_app(tmp_path, CLOCK=clock, CARE_SUSTAIN_S=1.0)
    yield app
    close_app(app)


@pytest.fixture(scope="module")
def analysed(validation_sample) -> dict[str, dict]:
    """Per mood, the message a page would send for the first validation photo read as it."""
    return {
        label: {
            "width": 320,
            "height": 240,
            "faces": [{"box": list(face.box), "scores": [face.scores[e] for e in EMOTIONS]}],
        }
        for label, (_frame, face) in read_as_labelled(validation_sample).items()
    }


def send(sio, message: dict, seconds: float, clock, fps: float = 10.0) -> list[dict]:
    received = []
    for seq in range(round(seconds * fps)):
        sio.emit("scores", {**message, "seq": seq})
        received += sio.get_received()
        clock.advance(1 / fps)
    return received


def send_pairs(sio, message: dict, seconds: float, clock) -> list[dict]:
    """As the page sends: ten frames a second analysed, two a message (the older 100 ms old)."""
    received = []
    for seq in range(round(seconds * 5)):
        clock.advance(0.1)
        sio.emit("scores", {**frames_of(message, 100, 0), "seq": seq})
        received += sio.get_received()
        clock.advance(0.1)
    return received


def named(received, name):
    return [m["args"][0] for m in received if m["name"] == name]


@pytest.mark.parametrize("in_pairs", [False, True])
def test_scores_from_the_page_get_results_care_and_history(device_app, clock, analysed, in_pairs):
    """One frame a message, or the page's way, two: the same frames, the same care and history,
    one answer a message (its last frame's)."""
    sender, messages = (send_pairs, 25) if in_pairs else (send, 50)
    _client, sio = page_of(device_app, "mei")
    sio.emit("configure", {"locale": "en"})
    sio.get_received()
    received = sender(sio, analysed["sad"], 5, clock)
    results = named(received, "result")
    assert [r["seq"] for r in results] == list(range(messages))
    assert results[-1]["analysis"] == "device" and results[-1]["faces"][0]["label"] == "sad"
    [card, *_] = named(received, "care")
    assert card["emotion"] == "sad"
    services = device_app.extensions["emocare"]
    [session] = services.live.sessions()
    assert session.counters.frames == 50
    sio.disconnect()
    services.history.flush()
    samples = services.history.store.export("mei")["samples"]
    assert len(samples) >= 4 and {s["emotion"] for s in samples} == {"sad"}
    # a calm face, sent the same way, gets no card
    _client, calm = page_of(device_app, "kai")
    calm.get_received()
    assert named(sender(calm, analysed["neutral"], 8, clock), "care") == []


def frames_of(message: dict, *ages: int) -> dict:
    """The page's ``message`` as several frames of its faces, of these ages (ms), oldest first."""
    frames = [{"age_ms": age, "faces": message["faces"]} for age in ages]
    return {"width": message["width"], "height": message["height"], "frames": frames}


def test_each_frame_is_followed_when_it_was_analysed_but_never_earlier(device_app, clock, analysed):
    """A frame's time is the server's clock less its age; a page's clock may lie, so never
    before the session began or the frame followed last."""
    _client, sio = page_of(device_app, "mei")
    sio.get_received()
    opened = clock.now
    clock.advance(1.0)
    sio.emit("scores", {**frames_of(analysed["sad"], 2000), "seq": 1})  # older than the session
    [result] = named(sio.get_received(), "result")
    assert result["ts"] == int(opened * 1000)
    clock.advance(1.0)
    sio.emit("scores", {**frames_of(analysed["sad"], 300), "seq": 2})
    [result] = named(sio.get_received(), "result")
    assert result["ts"] == int((clock.now - 0.3) * 1000)
    followed = result["ts"]
    clock.advance(0.1)
    sio.emit("scores", {**frames_of(analysed["sad"], 1500), "seq": 3})  # before the last one
    [result] = named(sio.get_received(), "result")
    assert result["ts"] == followed


def test_every_frame_of_a_message_is_charged_to_the_budget(device_app, analysed):
    """Frames, not messages, are counted: four a message exhaust the burst of 10 at the third."""
    _client, sio = page_of(device_app, "mei")
    sio.get_received()
    answers = []
    for seq in range(3):  # the fake clock stands still: no refill
        sio.emit("scores", {**frames_of(analysed["happy"], 300, 200, 100, 0), "seq": seq})
        answers += [(m["name"], m["args"][0].get("code")) for m in sio.get_received()]
    assert answers == [("result", None), ("result", None), ("error", "rate_limited")]


@pytest.mark.parametrize("in_pairs", [False, True])
def test_the_relaxed_face_step_works_on_scores_too(device_app, clock, analysed, in_pairs):
    _client, sio = page_of(device_app, "lin")
    sio.emit("configure", {})
    sio.emit("calibrate", {"action": "start"})
    sio.get_received()
    sender = send_pairs if in_pairs else send
    states = named(sender(sio, analysed["neutral"], 5.5, clock), "calibration")
    assert states[-1]["state"] == "done"
    assert [s["state"] for s in states].count("done") == 1
    sio.emit("configure", {})
    [settings] = named(sio.get_received(), "configured")
    assert settings["calibrated"] is True


def face(**changes) -> dict:
    base = {"box": [100, 60, 90, 90], "scores": [0.1, 0.05, 0.05, 0.1, 0.5, 0.1, 0.1]}
    return {**base, **changes}


@pytest.mark.parametrize(
    ("message", "code"),
    [
        ("not an object", "bad_scores"),
        ({"width": 320, "height": 240}, "bad_scores"),
        ({"width": 320, "height": 240, "faces": [], "image": b"\xff\xd8"}, "bad_scores"),
        ({"width": 10**9, "height": 240, "faces": []}, "bad_scores"),
        ({"width": 320.5, "height": 240, "faces": []}, "bad_scores"),
        ({"width": 320, "height": 240, "faces": "x"}, "bad_scores"),
        ({"width": 320, "height": 240, "faces": [face()] * 9}, "too_many_faces"),
        ({"width": 320, "height": 240, "faces": [{"box": [1, 2, 3, 4]}]}, "bad_scores"),
        ({"width": 320, "height": 240, "faces": [face(box=[1, 2, 3])]}, "bad_box"),
        ({"width": 320, "height": 240, "faces": [face(box=[0, 0, 0, 50])]}, "bad_box"),
        ({"width": 320, "height": 240, "faces": [face(box=[5000, 0, 50, 50])]}, "bad_box"),
        ({"width": 320, "height": 240, "faces": [face(box=[1, 2, "3", 4])]}, "bad_box"),
        ({"width": 320, "height": 240, "faces": [face(scores=[0.5] * 7)]}, "bad_score_values"),
        ({"width": 320, "height": 240, "faces": [face(scores=[1.0] + [0.0] * 5)]}, "bad_score_values"),
        ({"width": 320, "height": 240, "faces": [face(scores=[-0.1, 1.1] + [0.0] * 5)]}, "bad_score_values"),
        ({"width": 320, "height": 240, "faces": [face(scores=[True] + [0.0] * 6)]}, "bad_score_values"),
        ({"width": 320, "height": 240, "faces": [], "frames": []}, "bad_scores"),
        ({"width": 320, "height": 240, "frames": []}, "bad_frames"),
        ({"width": 320, "height": 240, "frames": {"age_ms": 0, "faces": []}}, "bad_frames"),
        ({"width": 320, "height": 240, "frames": [{"age_ms": 0, "faces": []}] * 5}, "too_many_frames"),
        ({"width": 320, "height": 240, "frames": [{"age_ms": 0}]}, "bad_frames"),
        ({"width": 320, "height": 240, "frames": [{"age_ms": -1, "faces": []}]}, "bad_frames"),
        ({"width": 320, "height": 240, "frames": [{"age_ms": 10**6, "faces": []}]}, "bad_frames"),
        ({"width": 320, "height": 240, "frames": [{"age_ms": "0", "faces": []}]}, "bad_frames"),
        (
            {"width": 320, "height": 240, "frames": [{"age_ms": 0, "faces": []}, {"age_ms": 9, "faces": []}]},
            "bad_frames",
        ),
        ({"width": 320, "height": 240, "frames": [{"age_ms": 0, "faces": [face(box=[1, 2, 3])]}]}, "bad_box"),
        ({"width": 320, "height": 240, "frames": [{"age_ms": 0, "faces": [face()] * 9}]}, "too_many_faces"),
    ],
)
def test_a_bad_scores_message_gets_one_clear_error_to_that_page_only(device_app, analysed, message, code):
    _client, sio = page_of(device_app, "mei")
    _other_client, other = page_of(device_app, "kai")
    sio.get_received()
    other.get_received()
    sio.emit("scores", message)
    received = sio.get_received()
    assert [(m["name"], m["args"][0]["code"]) for m in received] == [("error", code)]
    assert received[0]["args"][0]["message"]
    other.emit("scores", {**analysed["happy"], "seq": 1})
    [result] = named(other.get_received(), "result")
    assert result["faces"][0]["label"] == "happy"


@pytest.mark.parametrize(
    ("message", "code"),
    [
        ({"width": 320, "height": 240, "frames": [{"age_ms": 10**400, "faces": []}]}, "bad_frames"),
        ({"width": 320, "height": 240, "faces": [face(box=[10**400, 0, 50, 50])]}, "bad_box"),
    ],
)
def test_numbers_too_large_for_a_float_are_refused_by_name(message, code):
    """The transport refuses integers of over 100 digits before they reach ``parse``
    (tests/test_attack.py); ``parse`` names them too, rather than raising OverflowError."""
    with pytest.raises(scores.ScoresError) as refused:
        scores.parse(message)
    assert refused.value.code == code


def test_non_finite_numbers_never_reach_the_smoothing(device_app, analysed):
    """JSON has no NaN, but a client's encoder may send one: it is refused, not averaged."""
    _client, sio = page_of(device_app, "mei")
    sio.get_received()
    for value in (math.nan, math.inf):
        bad = {"width": 320, "height": 240, "faces": [face(scores=[value] + [0.0] * 6)]}
        sio.emit("scores", bad)
        [error] = named(sio.get_received(), "error")
        assert error["code"] == "bad_score_values"
    sio.emit("scores", {**analysed["sad"], "seq": 2})
    [result] = named(sio.get_received(), "result")
    assert all(math.isfinite(v) for v in result["faces"][0]["scores"].values())


def test_a_flood_of_scores_is_cut_off_like_a_flood_of_frames(device_app, analysed):
    _client, sio = page_of(device_app, "mei")
    sio.get_received()
    for seq in range(200):  # the fake clock stands still: 200 messages in no time
        sio.emit("scores", {**analysed["happy"], "seq": seq})
        if not sio.is_connected():
            break
    assert not sio.is_connected()
