"""Connection caps by where a page's frames are analysed: a page that analyses on its device
costs the server no inference, so it takes one of the device places (``MAX_DEVICE_CONNECTIONS``)
instead of one of the server's (``MAX_CONNECTIONS``), which stay sized by what inference holds.

The service's accounting first (plain Python, at once), then a real server with real
Socket.IO clients: a device page that says so in its handshake, one that moves at its first
``scores``, a frame from a device page when the server's places are taken, a device page that
floods, and the sockets under the caps.
"""

from __future__ import annotations

import queue
import time

import pytest
import requests
import socketio
import websocket

from bench.pages import page_jpeg, scores_message
from emocare.live import Refused
from emocare.live.service import DEVICE, SERVER, TRANSPORT_SPARE

from .conftest import ARTIFACTS, close_app, make_app

# --- the accounting, without a server ----------------------------------------------------------


@pytest.fixture
def live(tmp_path):
    app = make_app(tmp_path, MAX_CONNECTIONS=2, MAX_DEVICE_CONNECTIONS=3, MAX_CONNECTIONS_PER_ADDRESS=10)
    yield app.extensions["emocare"].live
    close_app(app)


def refused_code(call) -> str | None:
    try:
        call()
    except Refused as refused:
        return refused.code
    return None


def test_device_pages_fill_their_own_places_then_the_servers(live):
    live.open("s1", "10.0.0.1")
    live.open("s2", "10.0.0.2")
    assert refused_code(lambda: live.open("s3", "10.0.0.3")) == "server_full"
    for n in range(3):
        live.open(f"d{n}", "10.0.0.4", analysis=DEVICE)
    assert live.counts() == {SERVER: 2, DEVICE: 3}
    # the device places are taken, and the server's: a fourth device page is refused
    assert refused_code(lambda: live.open("d3", "10.0.0.5", analysis=DEVICE)) == "server_full"
    live.close("s1")
    live.open("d3", "10.0.0.5", analysis=DEVICE)  # a device page may take a server place
    assert live.counts() == {SERVER: 2, DEVICE: 3}
    live.close("d0")
    assert live.counts() == {SERVER: 2, DEVICE: 2}
    assert refused_code(lambda: live.open("s4", "10.0.0.6")) == "server_full"  # a server page may not


def test_the_first_scores_move_a_page_and_a_frame_moves_it_back_if_there_is_room(live):
    live.open("a", "10.0.0.1")
    live.open("b", "10.0.0.1")
    live.analysing("a", DEVICE)  # its first scores
    assert live.counts() == {SERVER: 1, DEVICE: 1}
    live.open("c", "10.0.0.1")  # the place it left
    # a frame from it now: no server place is free, so it is refused and keeps its place
    assert refused_code(lambda: live.analysing("a", SERVER)) == "server_full"
    assert live.counts() == {SERVER: 2, DEVICE: 1}
    live.close("c")
    live.analysing("a", SERVER)  # room again: it moves back
    assert live.counts() == {SERVER: 2, DEVICE: 0}
    live.analysing("gone", DEVICE)  # a session already closed changes nothing
    assert live.counts() == {SERVER: 2, DEVICE: 0}


def test_a_device_claim_never_passes_the_caps_or_the_per_address_cap(live):
    live.max_per_address = 2
    live.open("d1", "10.0.0.1", analysis=DEVICE)
    live.open("d2", "10.0.0.1", analysis=DEVICE)
    assert refused_code(lambda: live.open("d3", "10.0.0.1", analysis=DEVICE)) == "too_many_connections"
    for n, address in enumerate(["10.0.0.2", "10.0.0.3", "10.0.0.4"]):
        live.open(f"x{n}", address, analysis=DEVICE)  # the last device place, then the two server ones
    assert live.counts() == {SERVER: 2, DEVICE: 3}
    assert refused_code(lambda: live.open("x9", "10.0.0.9", analysis=DEVICE)) == "server_full"


# --- a real server -----------------------------------------------------------------------------


CAPS = {"EMOCARE_MAX_CONNECTIONS": "1", "EMOCARE_MAX_DEVICE_CONNECTIONS": "2"}


@pytest.fixture(scope="module")
def server():
    from bench.common import ServerProcess

    started = ServerProcess("gunicorn", {**CAPS, "EMOCARE_MAX_CONNECTIONS_PER_ADDRESS": "10"}, log_dir=ARTIFACTS)
    yield started
    started.stop()


class Page:
    """A python-socketio client that files what it receives, by event name."""

    def __init__(self, url: str, device: bool = False) -> None:
        self.events: dict[str, queue.Queue] = {n: queue.Queue() for n in ("status", "result", "error")}
        self.sio = socketio.Client(reconnection=False)
        for name, q in self.events.items():
            self.sio.on(name, q.put)
        auth = {"analysis": "device"} if device else None
        self.sio.connect(url, auth=auth, transports=["websocket"], wait_timeout=10)

    def next(self, name: str, timeout: float = 10.0) -> dict:
        return self.events[name].get(timeout=timeout)

    def scores(self, seq: int) -> dict:
        self.sio.emit("scores", {**scores_message(), "seq": seq})
        return self.next("result")

    def close(self) -> None:
        if self.sio.connected:
            self.sio.disconnect()


def refusal(url: str, device: bool = False) -> str:
    """The code a new connection is refused with (it must be refused)."""
    reasons: list = []
    sio = socketio.Client(reconnection=False)
    sio.on("connect_error", reasons.append)
    with pytest.raises(socketio.exceptions.ConnectionError):
        sio.connect(url, auth={"analysis": "device"} if device else None, transports=["websocket"], wait_timeout=10)
    [reason] = reasons
    return reason["data"]["code"]


def socket_url(url: str) -> str:
    return url.replace("http://", "ws://") + "/socket.io/?EIO=4&transport=websocket"


def connects(url: str) -> bool:
    try:
        Page(url, device=True).close()
    except socketio.exceptions.ConnectionError:
        return False
    return True


def until(condition, timeout: float = 10.0) -> bool:
    """Wait for something the server does on its own time (a disconnect noticed)."""
    deadline = time.monotonic() + timeout
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.05)
    return condition()


@pytest.mark.server
def test_a_device_page_says_so_and_takes_a_device_place(server):
    plain = Page(server.url)  # the one server place
    assert refusal(server.url) == "server_full"
    devices = [Page(server.url, device=True) for _ in range(2)]
    health = server.health()
    assert health["sessions"] == 3 and health["device_sessions"] == 2
    result = devices[0].scores(1)
    [*_, last] = scores_message()["frames"]
    assert result["analysis"] == "device" and result["faces"][0]["box"] == last["faces"][0]["box"]
    assert refusal(server.url, device=True) == "server_full"  # device places and server place taken
    # a device page that sends a frame while the server's place is taken: told why, and let go
    devices[0].sio.emit("frame", {"seq": 2, "image": page_jpeg()})
    error = devices[0].next("error")
    assert error["code"] == "server_full" and error["seq"] == 2
    assert until(lambda: not devices[0].sio.connected)
    assert until(lambda: server.health()["device_sessions"] == 1)
    again = Page(server.url, device=True)  # its place is free again
    assert again.scores(3)["analysis"] == "device"
    for page in [plain, *devices, again]:
        page.close()
    assert until(lambda: server.health()["sessions"] == 0)


@pytest.mark.server
def test_a_page_that_did_not_say_moves_at_its_first_scores(server):
    first = Page(server.url)
    assert refusal(server.url) == "server_full"
    first.scores(1)
    assert server.health()["device_sessions"] == 1
    second = Page(server.url)  # the server place the first one left
    second.sio.emit("frame", {"seq": 1, "image": page_jpeg()})
    assert second.next("result")["seq"] == 1  # analysed here, as before
    for page in (first, second):
        page.close()
    assert until(lambda: server.health()["sessions"] == 0)


@pytest.mark.server
def test_sockets_are_capped_at_both_caps_plus_the_spare(server):
    """A socket holds a server thread from its handshake on: idle sockets that never join are
    refused (HTTP 401) past the two caps together, plus the spare that lets a refused page be
    told why."""
    url = socket_url(server.url)
    opened, refused = [], 0
    total = sum(int(v) for v in CAPS.values()) + TRANSPORT_SPARE
    for _ in range(total + 3):
        try:
            opened.append(websocket.create_connection(url, timeout=5))
        except websocket.WebSocketBadStatusException as exc:
            assert exc.status_code == 401
            refused += 1
    assert len(opened) == total and refused == 3
    for ws in opened:
        ws.close()
    assert until(lambda: connects(server.url))  # the sockets' places are given back


@pytest.mark.server
def test_a_device_page_that_floods_is_cut_off_as_a_frame_flooder_is(start_server):
    """Device places are many and cheap, but a flood of ``scores`` is refused at the same 15 a
    second as frames and cut off at the same count, and its address waits 30 s."""
    server = start_server("gunicorn", **CAPS)
    calm, flood = Page(server.url, device=True), Page(server.url, device=True)
    message = scores_message()
    for seq in range(3000):
        if not flood.sio.connected:
            break
        flood.sio.emit("scores", {**message, "seq": seq})
    assert until(lambda: not flood.sio.connected, 20)
    codes = set()
    while not flood.events["error"].empty():
        codes.add(flood.events["error"].get_nowait()["code"])
    assert "rate_limited" in codes
    assert calm.scores(1)["analysis"] == "device"  # the other page goes on
    # the address waits: refused at the transport's handshake already, with the reason
    refused = requests.get(server.url + "/socket.io/?EIO=4&transport=polling", timeout=5)
    assert refused.status_code == 401 and refused.json()["code"] == "flooding"
    calm.close()


def test_gunicorn_has_a_thread_for_every_connection_the_caps_admit(monkeypatch):
    """Each open WebSocket holds a Gunicorn thread: threads fewer than the caps would leave the
    connections past them waiting unanswered instead of refused with a reason."""
    from emocare.server import connection_threads

    monkeypatch.setenv("EMOCARE_MAX_DEVICE_CONNECTIONS", "0")
    assert connection_threads() == 60 + TRANSPORT_SPARE + 4  # the caps before analysis on the device
    monkeypatch.setenv("EMOCARE_MAX_DEVICE_CONNECTIONS", "300")
    assert connection_threads(overrides={"MAX_CONNECTIONS": 20}) == 20 + 300 + TRANSPORT_SPARE + 4
