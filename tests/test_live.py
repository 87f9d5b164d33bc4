"""The live service without the web layer: one session's ``step`` runs detect → classify →
smooth → care → history, on the stream's own (fake) clock; nothing here imports Flask."""

from __future__ import annotations

import subprocess
import sys

import pytest

from .conftest import close_app, make_app


def test_the_live_service_imports_no_web_framework():
    probe = (
        "import sys, emocare.live, emocare.live.service, emocare.live.session\n"
        "web = {'flask', 'flask_socketio', 'socketio', 'engineio', 'werkzeug'}\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in web))"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


@pytest.fixture
def live(tmp_path, clock):
    app = make_app(tmp_path, CLOCK=clock, CARE_SUSTAIN_S=1.0)
    yield app.extensions["emocare"]
    close_app(app)


def names(events):
    return [name for name, _ in events]


def test_step_runs_the_pipeline_on_a_real_face(live, clock, astronaut_jpeg):
    session = live.live.open("page-1", profile="mei")
    list(session.configure({"locale": "en"}, clock()))
    results = []
    for seq in range(30):  # three seconds at 10 fps
        events = session.step(astronaut_jpeg, seq, clock())
        assert names(events) == ["result"]  # a steady smile: no care card
        results.append(events[0][1])
        clock.advance(0.1)
    assert [r["seq"] for r in results] == list(range(30))
    face = results[-1]["faces"][0]
    assert face["label"] == "happy" and face["primary"]
    assert results[-1]["ts"] == int((clock() - 0.1) * 1000)  # the stream's clock, not the wall's
    live.live.close("page-1")
    live.history.flush()
    [stored] = live.history.store.sessions_of("mei")
    assert stored["ended_at"] is not None
    assert 3 <= len(live.history.store.export("mei")["samples"]) <= 4  # one a second of the stream


def test_nothing_is_recorded_before_the_page_configures_nor_without_a_profile(live, clock, astronaut_jpeg):
    session, anonymous = live.live.open("page-2", profile="kai"), live.live.open("page-3")
    for page in (session, anonymous):
        for seq in range(20):
            page.step(astronaut_jpeg, seq, clock())
            clock.advance(0.1)
    live.history.flush()
    assert live.history.store.counts()["sessions"] == 0  # the page's settings may say "no history"
    for page in (session, anonymous):
        list(page.configure({}, clock()))
        for seq in range(20):
            page.step(astronaut_jpeg, seq, clock())
            clock.advance(0.1)
    live.history.flush()
    assert [s["profile"] for s in live.history.store.sessions_of("kai")] == ["kai"]
    assert live.history.store.counts()["sessions"] == 1  # none for the page without a profile


def test_one_frame_in_flight_and_a_closed_session_answers_gone(live, clock, astronaut_jpeg):
    session = live.live.open("page-3")
    assert session._try_begin()  # a frame is being analysed
    [(name, busy)] = session.step(astronaut_jpeg, 7, clock())
    assert name == "error" and busy["code"] == "busy" and busy["seq"] == 7
    assert session.step(astronaut_jpeg, 8, clock()) == []  # told once a second, not per frame
    session._end(True)
    assert names(session.step(astronaut_jpeg, 9, clock())) == ["result"]
    live.live.close("page-3")
    [(name, gone)] = session.step(astronaut_jpeg, 10, clock())
    assert gone["code"] == "no_session"


def test_connections_are_capped_per_address_and_in_all(live):
    from emocare.live import Refused

    service = live.live
    service.max_connections, service.max_per_address = 4, 2
    service.open("a1", "10.0.0.1")
    service.open("a2", "10.0.0.1")
    with pytest.raises(Refused) as refused:
        service.open("a3", "10.0.0.1")
    assert refused.value.code == "too_many_connections"
    service.open("b1", "10.0.0.2")
    service.open("b2", "10.0.0.2")
    with pytest.raises(Refused) as refused:
        service.open("c1", "10.0.0.3")
    assert refused.value.code == "server_full"
    service.close("a1")  # a closed tab frees its place
    service.open("a3", "10.0.0.1")
    assert len(service) == 4


def test_a_connection_has_a_byte_budget(live, clock, astronaut_jpeg):
    from emocare.live.session import BYTE_BURST, BYTE_RATE

    session = live.live.open("heavy")
    big = astronaut_jpeg + bytes(900_000 - len(astronaut_jpeg))  # a real JPEG, padded: decodes
    assert len(big) * 3 <= BYTE_BURST < len(big) * 4
    answered = [session.step(big, k, clock()) for k in range(3)]  # three at once: the burst
    assert all(names(a) == ["result"] for a in answered)
    [(name, error)] = session.step(big, 3, clock())  # far under the frame rate, over the bytes
    assert name == "error" and error["code"] == "rate_limited" and "bytes" in error["message"]
    assert names(session.step(astronaut_jpeg, 4, clock())) == ["result"]  # a small frame still fits
    clock.advance(len(big) / BYTE_RATE)  # a second's worth of bytes comes back
    assert names(session.step(big, 5, clock())) == ["result"]
    assert session.counters.dropped == 1


def test_a_flood_is_rate_limited_then_disconnected(live, clock, astronaut_jpeg):
    from emocare.live import Refused
    from emocare.live.service import FLOODER_PAUSE_S
    from emocare.live.session import CLOSE, FLOOD_LIMIT, FRAME_BURST

    session = live.live.open("flood", "10.0.0.9")
    answered = [session.step(astronaut_jpeg, k, clock()) for k in range(FRAME_BURST)]
    assert all(names(a) == ["result"] for a in answered)  # a burst is fine
    [(name, error)] = session.step(astronaut_jpeg, 99, clock())  # the same instant: over the rate
    assert name == "error" and error["code"] == "rate_limited" and error["seq"] == 99
    assert session.step(astronaut_jpeg, 100, clock()) == []  # told once a second, not per frame
    clock.advance(0.1)  # three frames' worth of tokens come back
    assert names(session.step(astronaut_jpeg, 101, clock())) == ["result"]
    for k in range(FLOOD_LIMIT):  # a client that keeps flooding
        events = session.step(astronaut_jpeg, 200 + k, clock())
    assert names(events)[-1] == CLOSE and events[0][1]["code"] == "rate_limited"
    # cut off, it may not come straight back from its address (others may)
    with pytest.raises(Refused) as refused:
        live.live.open("flood-again", "10.0.0.9")
    assert refused.value.code == "flooding"
    with pytest.raises(Refused):
        live.live.admit_transport("eio-1", "10.0.0.9")
    live.live.open("someone-else", "10.0.0.8")
    clock.advance(FLOODER_PAUSE_S + 0.1)
    live.live.open("flood-again", "10.0.0.9")  # paused, not banned
