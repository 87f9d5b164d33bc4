"""The care engine end to end over Socket.IO: a sustained mood yields a care event whose
speech URL serves real audio. The analyzer is the scripted one (a real analyzer that replays
moods), since no photo can hold "sad" for as long as the test needs."""

import json

import pytest

from emocare.care.speech import wav_bytes_stats
from emocare.extensions import socketio

from .conftest import close_app, make_app, page_of, stream_frames


@pytest.fixture
def care_app(tmp_path, clock):
    app = make_app(tmp_path, ANALYZER="scripted", SCRIPTED_MOODS=["sad"], CARE_SUSTAIN_S=1.0, CLOCK=clock)
    yield app
    close_app(app)


def stream_until_care(app, sio, jpeg, seconds=6.0, received=None):
    """Stream at 10 fps of the app's fake clock until a care event arrives; return it and the
    time it took. Every message received on the way, and the spoken reply that follows the
    card (once the speech queue is done), are appended to ``received``."""
    clock = app.config["CLOCK"]
    started = clock()
    received = [] if received is None else received
    received += stream_frames(sio, jpeg, seconds, clock, until=lambda m: m["name"] == "care")
    app.extensions["emocare"].speech.join()
    received += sio.get_received()
    for msg in received:
        if msg["name"] == "care":
            return msg["args"][0], clock() - started
    raise AssertionError("no care event")


def test_sustained_sad_yields_care_with_real_speech(care_app, astronaut_jpeg):
    client = care_app.test_client()
    sio = socketio.test_client(care_app, flask_test_client=client)
    received = []
    care, elapsed = stream_until_care(care_app, sio, astronaut_jpeg, received=received)
    assert 1.0 <= elapsed < 1.0 + 3.0  # held 1 s (configured), answered within 3 s of that
    assert care["kind"] == "message" and care["emotion"] == "sad"
    assert any(w in care["text"].lower() for w in ("you look", "you seem", "looks like"))  # never "you are…"
    assert care["speech"] == {"url": None, "engine": "pending"}  # the card does not wait for its voice
    names = [m["name"] for m in received]
    [speech] = [m["args"][0] for m in received if m["name"] == "care_speech"]
    assert names.index("care") < names.index("care_speech")
    assert speech["id"] == care["id"] and speech["url"].startswith("/care/audio/")
    with client.get(speech["url"]) as audio:
        assert audio.status_code == 200 and audio.mimetype == "audio/wav"
        duration, rms = wav_bytes_stats(audio.data)
    assert duration > 1.0 and rms > 0.02
    sio.disconnect()


def test_chinese_and_feedback_persisted(care_app, astronaut_jpeg, tmp_path):
    _, sio = page_of(care_app, "mei")  # the profile is the handshake's cookie
    sio.emit("configure", {"locale": "zh-CN", "settings": {"voice": False}})
    care, _ = stream_until_care(care_app, sio, astronaut_jpeg)
    assert care["locale"] == "zh-CN" and any(w in care["text"] for w in ("看起来", "好像", "似乎"))
    assert care["speech"] is None  # voice switched off in the settings
    sio.emit("care_feedback", {"id": care["id"], "verdict": "helpful"})
    [ack] = [m["args"][0] for m in sio.get_received() if m["name"] == "care_feedback"]
    assert ack == {"id": care["id"], "verdict": "helpful", "ok": True}
    saved = json.loads((tmp_path / "instance" / "profiles" / "mei.json").read_text())
    assert saved["kind_weights"]["message"] > 1.0
    sio.emit("care_feedback", {"id": care["id"], "verdict": "whatever"})
    [error] = [m["args"][0] for m in sio.get_received() if m["name"] == "error"]
    assert error["code"] == "bad_feedback"
    sio.emit("care_feedback", {"id": care["id"], "verdict": "not_now"})  # one answer per card
    [error] = [m["args"][0] for m in sio.get_received() if m["name"] == "error"]
    assert error["code"] == "bad_feedback" and "already" in error["message"]
    assert json.loads((tmp_path / "instance" / "profiles" / "mei.json").read_text()) == saved
    sio.emit("configure", {"profile": "kai"})  # a page cannot name another profile
    [error] = [m["args"][0] for m in sio.get_received() if m["name"] == "error"]
    assert error["code"] == "bad_settings" and "cookie" in error["message"]
    assert care_app.extensions["emocare"].live.sessions()[0].care.profile == "mei"
    sio.disconnect()


@pytest.mark.parametrize("cookie", [None, "../../etc"])
def test_feedback_without_a_profile_is_stored_nowhere(care_app, astronaut_jpeg, tmp_path, cookie):
    _, sio = page_of(care_app, cookie)
    sio.emit("configure", {"settings": {"voice": False}})
    [configured] = [m["args"][0] for m in sio.get_received() if m["name"] == "configured"]
    assert configured["has_profile"] is False
    care, _ = stream_until_care(care_app, sio, astronaut_jpeg)
    sio.emit("care_feedback", {"id": care["id"], "verdict": "helpful"})
    assert [m["args"][0]["ok"] for m in sio.get_received() if m["name"] == "care_feedback"] == [True]
    profiles = tmp_path / "instance" / "profiles"
    assert not profiles.exists() or list(profiles.iterdir()) == []  # no shared "default" profile
    sio.disconnect()


@pytest.mark.parametrize(
    ("payload", "code"),
    [
        ({"settings": {"sensitivity": []}}, "bad_settings"),
        ({"settings": {"voice": "yes"}}, "bad_settings"),
        ({"settings": ["voice"]}, "bad_settings"),
        ({"settings": {"history": 1}}, "bad_settings"),
        ({"locale": "xx"}, "bad_settings"),
        ({"profile": 7}, "bad_settings"),
        ({"profile": "kai"}, "bad_settings"),  # the profile is the cookie, never sent
        ({"backend": []}, "bad_backend"),
        ({"backend": "tesseract"}, "bad_backend"),
        ({"settings": {"sensitivity": "high"}, "backend": "nope"}, "bad_backend"),  # all or nothing
        ("configure", "bad_settings"),
    ],
)
def test_malformed_configure_changes_nothing(care_app, payload, code):
    _, sio = page_of(care_app, "mei")
    sio.emit("configure", {"settings": {"sensitivity": "low", "cooldown_s": 120}})
    session = care_app.extensions["emocare"].live.sessions()[0]
    before = (session.care.profile, session.care.settings, session.care.policy.config, session.backend)
    sio.get_received()
    sio.emit("configure", payload)
    [error] = [m["args"][0] for m in sio.get_received() if m["name"] == "error"]
    assert error["code"] == code and error["message"]
    assert (session.care.profile, session.care.settings, session.care.policy.config, session.backend) == before
    sio.emit("frame", {"seq": 1, "image": b"not a jpeg"})  # and the session still works
    assert [m["args"][0]["code"] for m in sio.get_received() if m["name"] == "error"] == ["undecodable"]
    sio.disconnect()


def test_medium_sensitivity_means_the_server_configuration(care_app):
    sio = socketio.test_client(care_app)
    sio.emit("configure", {"settings": {"sensitivity": "medium", "voice": True}})
    [session] = care_app.extensions["emocare"].live.sessions()
    assert session.care.policy.config.sustain_s == 1.0  # CARE_SUSTAIN_S of this app, not a page constant
    assert session.care.policy.config.cooldown_s == care_app.config["CARE_COOLDOWN_S"]
    sio.emit("configure", {"settings": {"sensitivity": "low", "cooldown_s": 600}})
    assert session.care.policy.config.sustain_s > 1.0 and session.care.policy.config.cooldown_s == 600
    sio.disconnect()


def test_audio_route_serves_only_cached_hashes(client):
    assert client.get("/care/audio/../../secret.wav").status_code == 404
    assert client.get("/care/audio/" + "0" * 32 + ".wav").status_code == 404
    assert client.get("/care/music/anything.ogg").status_code == 404


def test_fifty_pages_in_distress_at_once_get_one_synthesis_at_a_time(care_app, astronaut_jpeg):
    """50 care cards in the same second of the stream: the process renders one voice at a
    time, and every card still gets its answer (a voice, or the page's own)."""
    clock = care_app.config["CLOCK"]
    pages = [socketio.test_client(care_app) for _ in range(50)]
    cards: dict[int, dict] = {}
    received: list[list[dict]] = [[] for _ in pages]
    for seq in range(40):
        for sio in pages:
            sio.emit("frame", {"seq": seq, "image": astronaut_jpeg})
        for i, sio in enumerate(pages):
            received[i] += sio.get_received()
            for m in received[i]:
                if m["name"] == "care":
                    cards.setdefault(i, m["args"][0])
        if len(cards) == len(pages):
            break
        clock.advance(0.1)
    assert len(cards) == 50
    svc = care_app.extensions["emocare"]
    assert svc.speech.join(120)
    for i, sio in enumerate(pages):
        received[i] += sio.get_received()
        [voice] = [m["args"][0] for m in received[i] if m["name"] == "care_speech"]
        names = [m["name"] for m in received[i]]
        assert names.index("care") < names.index("care_speech")  # cached or not, after its card
        assert voice["id"] == cards[i]["id"]
        assert voice["url"] is None or voice["url"].startswith("/care/audio/")
        sio.disconnect()
    assert svc.care.speech.most_at_once == 1
