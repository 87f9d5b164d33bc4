"""A strict protocol: every malformed event gets one clear error, and nothing else changes
(docs/protocol.md); a valid ``configure`` is acknowledged with the settings in force."""

from __future__ import annotations

import logging

import pytest

from .conftest import page_of


@pytest.fixture
def page(app, caplog):
    _, sio = page_of(app, "kai")
    sio.get_received()
    caplog.set_level(logging.WARNING)
    yield sio
    if sio.is_connected():
        sio.disconnect()
    assert not [r for r in caplog.records if r.exc_info], "an answer must not need a traceback"


def answers(sio, name: str | None = None) -> list[dict]:
    return [m["args"][0] for m in sio.get_received() if name is None or m["name"] == name]


@pytest.mark.parametrize("event", ["frame", "configure", "care_feedback"])
def test_extra_arguments_get_bad_request(page, event, astronaut_jpeg):
    page.emit(event, {"seq": 1, "image": astronaut_jpeg}, {"more": 1}, 3)
    [error] = answers(page, "error")
    assert error["code"] == "bad_request" and event in error["message"]
    page.emit("frame", {"seq": 2, "image": astronaut_jpeg})  # and the session goes on
    assert [r["seq"] for r in answers(page, "result")] == [2]


@pytest.mark.parametrize("seq", [2**70, True, -1, 1.5, "7", [1]])
def test_a_seq_that_is_no_frame_number_is_refused(page, seq, astronaut_jpeg):
    page.emit("frame", {"seq": seq, "image": astronaut_jpeg})
    [error] = answers(page)
    assert error["code"] == "bad_seq"


@pytest.mark.parametrize("seq", [0, 2**53 - 1, None])
def test_valid_seqs_are_echoed(page, seq, astronaut_jpeg):
    page.emit("frame", {"seq": seq, "image": astronaut_jpeg})
    [result] = answers(page, "result")
    assert result["seq"] == seq


def test_a_valid_configure_is_answered_with_what_is_in_force(page):
    page.emit("configure", {"locale": "zh-CN", "settings": {"voice": False, "cooldown_s": 1e9}})
    [configured] = answers(page, "configured")
    assert configured["has_profile"] is True and configured["locale"] == "zh-CN"
    assert "kai" not in str(configured)  # the id stays in its HttpOnly cookie
    assert configured["settings"]["voice"] is False and configured["settings"]["history"] is True
    assert configured["settings"]["cooldown_s"] == 3600 and configured["clamped"] == ["cooldown_s"]
    page.emit("configure", {"settings": {"cooldown_s": 120}})
    [configured] = answers(page, "configured")
    assert configured["settings"]["cooldown_s"] == 120 and configured["clamped"] == []


@pytest.mark.parametrize("cooldown", [float("nan"), float("inf"), -float("inf")])
def test_numbers_that_are_not_finite_are_refused(page, cooldown):
    page.emit("configure", {"settings": {"cooldown_s": cooldown}})
    [error] = answers(page)
    assert error["code"] == "bad_settings" and "cooldown_s" in error["message"]


def test_client_sent_connect_and_disconnect_are_ignored(app, page, astronaut_jpeg):
    live = app.extensions["emocare"].live
    page.emit("configure", {})
    [session] = live.sessions()
    history = session.history
    page.emit("connect", {"token": "x"})
    assert live.sessions() == [session] and session.history is history  # no second session
    page.emit("disconnect")
    assert live.sessions() == [session] and not session.closed
    page.get_received()
    page.emit("frame", {"seq": 5, "image": astronaut_jpeg})
    [result] = answers(page, "result")
    assert result["seq"] == 5
