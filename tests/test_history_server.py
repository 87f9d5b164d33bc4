"""The history through a real server: it survives a restart and a kill -9, many sessions
write at once without loss, and the pages, exports and delete work over HTTP."""

from __future__ import annotations

import itertools
import sqlite3
import threading
import time

import pytest
import requests

from .conftest import form_token, stream

pytestmark = pytest.mark.server


def samples_in(db, profile: str) -> list[float]:
    with sqlite3.connect(db) as conn:
        rows = conn.execute(
            "SELECT s.ts FROM samples s JOIN sessions x ON x.id = s.session_id WHERE x.profile = ? ORDER BY s.ts",
            (profile,),
        )
        return [r[0] for r in rows]


@pytest.fixture
def instance(tmp_path):
    return tmp_path / "instance"


def server_env(instance):
    return {"EMOCARE_ANALYZER": "scripted", "EMOCARE_INSTANCE_PATH": str(instance)}


def test_history_survives_a_restart(start_server, instance, astronaut_jpeg):
    first = start_server("gunicorn", **server_env(instance))
    results, _ = stream(first.url, "restart-me", 3.0, astronaut_jpeg)
    assert results >= 20
    first.stop()  # SIGTERM: the writer's last batch goes to disk before the process ends
    second = start_server("gunicorn", **server_env(instance))
    cookies = {"emocare_profile": "restart-me"}
    export = requests.get(second.url + "/history/export.json", cookies=cookies, timeout=10).json()
    assert len(export["sessions"]) == 1 and export["sessions"][0]["ended_at"] is not None
    assert 2 <= len(export["samples"]) <= 4  # one a second, at most
    page = requests.get(second.url + "/history/", cookies=cookies, timeout=10)
    assert page.status_code == 200 and export["sessions"][0]["id"] in page.text
    assert "chart.umd.min.js" in page.text


def test_kill_9_loses_at_most_two_seconds_and_the_next_start_ends_the_session(start_server, instance, astronaut_jpeg):
    server = start_server("gunicorn", **server_env(instance))
    outcome = {}
    streaming = threading.Thread(target=lambda: outcome.update(done=stream(server.url, "kill-me", 8.0, astronaut_jpeg)))
    streaming.start()
    time.sleep(5.0)  # five seconds into the page's stream, the server dies
    server.kill_9()
    streaming.join()
    results, last_result = outcome["done"]
    assert results >= 30
    stored = samples_in(instance / "history.sqlite3", "kill-me")
    assert len(stored) >= 3
    assert stored[-1] >= last_result - 2.0, f"lost {last_result - stored[-1]:.1f} s of history"
    with sqlite3.connect(instance / "history.sqlite3") as conn:
        [(ended,)] = conn.execute("SELECT ended_at FROM sessions WHERE profile = 'kill-me'").fetchall()
    assert ended is None  # cut off: nobody could end it
    again = start_server("gunicorn", **server_env(instance))  # the next start ends what was cut off
    assert requests.get(again.url + "/healthz", timeout=10).json()["history"]["ok"]
    with sqlite3.connect(instance / "history.sqlite3") as conn:
        [(ended,)] = conn.execute("SELECT ended_at FROM sessions WHERE profile = 'kill-me'").fetchall()
    assert ended == pytest.approx(stored[-1])


@pytest.mark.parametrize("server_kind", ["gunicorn", "eventlet"])
def test_concurrent_sessions_lose_nothing(start_server, instance, astronaut_jpeg, server_kind):
    server = start_server(server_kind, **server_env(instance))
    outcomes = {}

    def run(i):
        outcomes[i] = stream(server.url, f"crowd-{i}", 4.0, astronaut_jpeg)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    server.stop()  # a clean stop writes what is still queued
    log = server.log_tail(200_000)
    for i in range(6):
        results, _ = outcomes[i]
        assert results >= 20
        stored = samples_in(instance / "history.sqlite3", f"crowd-{i}")
        assert 3 <= len(stored) <= 5
        assert all(b - a >= 0.99 for a, b in itertools.pairwise(stored))  # ≤ 1 a second
    assert "database is locked" not in log and "history failed" not in log


def test_delete_over_http(start_server, instance, astronaut_jpeg):
    server = start_server("gunicorn", **server_env(instance))
    stream(server.url, "forget-me", 2.5, astronaut_jpeg)
    stream(server.url, "keep-me", 2.5, astronaut_jpeg)
    browser = requests.Session()
    browser.cookies.set("emocare_profile", "forget-me")
    token = form_token(browser, server.url + "/history/")
    assert browser.post(server.url + "/history/delete", data={"csrf_token": token}, timeout=10).status_code == 400
    assert browser.post(server.url + "/history/delete", data={"confirm": "yes"}, timeout=10).status_code == 403
    done = browser.post(server.url + "/history/delete", data={"confirm": "yes", "csrf_token": token}, timeout=10)
    cookies = {"emocare_profile": "forget-me"}
    assert done.status_code == 200 and "deleted-notice" in done.text
    assert requests.get(server.url + "/history/export.json", cookies=cookies, timeout=10).json()["samples"] == []
    assert samples_in(instance / "history.sqlite3", "forget-me") == []
    assert len(samples_in(instance / "history.sqlite3", "keep-me")) >= 2
    csv_text = requests.get(server.url + "/history/export.csv", cookies={"emocare_profile": "keep-me"}, timeout=10).text
    assert csv_text.splitlines()[0].startswith("session_id,time_utc,ts,emotion")
