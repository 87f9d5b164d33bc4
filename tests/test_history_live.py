"""The history seen from a live page in this process: switching it off, deleting while live,
and refusing forms that another site submits."""

import contextlib

import pytest

from .conftest import close_app, form_token, make_app, page_of, stream_frames, unwritable


@pytest.fixture
def live_app(tmp_path, clock):
    app = make_app(tmp_path, ANALYZER="scripted", SCRIPTED_MOODS=["sad"], CARE_SUSTAIN_S=60.0, CLOCK=clock)
    yield app
    close_app(app)


def stream(app, sio, jpeg, seconds):
    """``seconds`` of frames at 10 fps on the app's fake clock (the history keeps one a second)."""
    stream_frames(sio, jpeg, seconds, app.config["CLOCK"])
    # what the writer's 1 s timer would have done; an unwritable store keeps what it holds
    with contextlib.suppress(Exception):
        app.extensions["emocare"].history.flush()


def live_page(app, jpeg, profile="mei", seconds=1.5):
    """A page of ``profile`` that has streamed for ``seconds``: its HTTP and Socket.IO clients."""
    client, sio = page_of(app, profile)
    sio.emit("configure", {})
    stream(app, sio, jpeg, seconds)
    return client, sio


def counts(app):
    writer = app.extensions["emocare"].history
    writer.flush()
    return writer.store.counts()


def test_history_switched_off_keeps_nothing(live_app, astronaut_jpeg):
    _, sio = page_of(live_app, "mei")
    sio.emit("configure", {"settings": {"history": False}})
    stream(live_app, sio, astronaut_jpeg, 1.5)
    assert counts(live_app) == {"sessions": 0, "samples": 0, "care_actions": 0}
    sio.emit("configure", {"settings": {"history": True}})
    stream(live_app, sio, astronaut_jpeg, 1.5)
    assert counts(live_app)["samples"] >= 1
    sio.disconnect()


def test_delete_while_the_page_is_live(live_app, astronaut_jpeg):
    client, sio = live_page(live_app, astronaut_jpeg, seconds=2.5)
    store = live_app.extensions["emocare"].history.store
    [old] = store.sessions_of("mei")
    token = form_token(client)
    assert client.post("/history/delete", data={"confirm": "yes"}).status_code == 403  # no token
    assert client.post("/history/delete", data={"confirm": "yes", "csrf_token": "0" * 32}).status_code == 403
    assert len(store.sessions_of("mei")) == 1
    assert client.post("/history/delete", data={"confirm": "yes", "csrf_token": token}).status_code == 302
    assert store.sessions_of("mei") == []
    stream(live_app, sio, astronaut_jpeg, 1.5)  # the page goes on: in a new session, the old one stays gone
    [new] = store.sessions_of("mei")
    assert new["id"] != old["id"]
    assert counts(live_app)["sessions"] == 1
    sio.disconnect()


def test_a_refused_delete_leaves_the_live_page_alone(live_app, astronaut_jpeg):
    client, sio = live_page(live_app, astronaut_jpeg)
    svc = live_app.extensions["emocare"]
    [live] = svc.live.sessions()
    history, prefs = live.history, live.care.policy.prefs
    with unwritable(svc.history.store):
        stream(live_app, sio, astronaut_jpeg, 1.5)  # queued, and now unwritable
        token = form_token(client)
        answer = client.post("/history/delete", data={"confirm": "yes", "csrf_token": token}, follow_redirects=True)
    assert answer.status_code == 200 and "refused-notice" in answer.text
    assert live.history is history and live.care.policy.prefs is prefs
    assert counts(live_app)["sessions"] == 1 and counts(live_app)["samples"] >= 2  # nothing lost
    sio.disconnect()


@pytest.mark.parametrize(
    "headers",
    [{"Sec-Fetch-Site": "cross-site"}, {"Origin": "http://evil.example"}, {"Sec-Fetch-Site": "same-site"}],
)
def test_forms_from_another_site_are_refused(client, headers):
    client.set_cookie("emocare_profile", "mei")
    token = form_token(client)  # even with the token: the browser says who sent the form
    delete, keep = {"confirm": "yes", "csrf_token": token}, {"days": "7", "csrf_token": token}
    assert client.post("/history/delete", data=delete, headers=headers).status_code == 403
    assert client.post("/history/retention", data=keep, headers=headers).status_code == 403
    same = {"Sec-Fetch-Site": "same-origin", "Origin": "http://localhost"}
    assert client.post("/history/retention", data=keep, headers=same).status_code == 302
    # our own form, whose origin the page's Referrer-Policy (no-referrer) hides
    hidden = {"Sec-Fetch-Site": "same-origin", "Origin": "null"}
    assert client.post("/history/retention", data=keep, headers=hidden).status_code == 302
    assert client.post("/history/retention", data=keep, headers={"Origin": "null"}).status_code == 403


def test_the_csrf_token_is_the_profiles_own(client):
    client.set_cookie("emocare_profile", "mei")
    mei = form_token(client)
    client.set_cookie("emocare_profile", "kai")
    kai = form_token(client)
    assert len(mei) == 32 and mei != kai
    # mei's token does not let a page change kai's history
    assert client.post("/history/retention", data={"days": "7", "csrf_token": mei}).status_code == 403
    assert client.post("/history/retention", data={"days": "7", "csrf_token": kai}).status_code == 302
    client.delete_cookie("emocare_profile")
    assert form_token(client) == ""  # no profile, no form that could change one
    assert client.post("/history/retention", data={"days": "7", "csrf_token": ""}).status_code == 403


def test_a_failing_history_is_said_on_the_health_check_and_the_history_page(live_app, astronaut_jpeg):
    client, sio = live_page(live_app, astronaut_jpeg)
    assert client.get("/healthz").json["history"]["ok"]
    store = live_app.extensions["emocare"].history.store
    with unwritable(store):
        stream(live_app, sio, astronaut_jpeg, 1.5)
        health = client.get("/healthz").json["history"]
        page = client.get("/history/?lang=en")
    assert not health["ok"] and health["failing_since"] and "full" in health["error"]
    assert page.status_code == 200 and "failing-notice" in page.text
    assert "failing-notice" not in client.get("/history/").text  # the page's flush writes it all
    assert client.get("/healthz").json["history"]["ok"]
    sio.disconnect()
