"""A real server (``python run.py``) of each kind ``emocare serve`` offers, driven by real
Socket.IO clients.

Gunicorn (the default), eventlet and Werkzeug's ``--dev`` server must pass the same tests: one
client's garbage, oversized frames or flood of frames gets that client an error and never stops
another client from being served.
"""

from __future__ import annotations

import contextlib
import queue
import time

import pytest
import socketio

from bench.attack import events_until, raw_socket, websocket_url
from emocare.live.session import FRAME_BURST

pytestmark = pytest.mark.server

#: every server ``emocare serve`` offers: the production default, eventlet, and --dev
SERVERS = ["gunicorn", "eventlet", "dev"]


class Recorder:
    """A python-socketio client that files every event it receives into a queue per name."""

    def __init__(self, url: str) -> None:
        self.queues: dict[str, queue.Queue] = {name: queue.Queue() for name in ("status", "result", "error")}
        self.sio = socketio.Client(reconnection=False)
        for name, q in self.queues.items():
            self.sio.on(name, q.put)
        self.sio.connect(url, transports=["websocket"], wait_timeout=10)

    def next(self, name: str, timeout: float = 10.0) -> dict:
        return self.queues[name].get(timeout=timeout)

    def drain(self, name: str) -> list[dict]:
        items = []
        while True:
            try:
                items.append(self.queues[name].get_nowait())
            except queue.Empty:
                return items

    def round_trip(self, image: bytes, seq: int) -> dict:
        self.sio.emit("frame", {"seq": seq, "image": image})
        return self.next("result")

    def close(self) -> None:
        self.sio.disconnect()


@pytest.fixture(params=SERVERS)
def server(request, start_server):
    return start_server(request.param)


@pytest.fixture
def clients(server):
    made: list[Recorder] = []

    def make() -> Recorder:
        made.append(Recorder(server.url))
        return made[-1]

    yield make
    for c in made:
        c.close()


def test_status_and_results(server, clients, astronaut_jpeg):
    a = clients()
    status = a.next("status")
    assert status["state"] == "ready"
    assert status["async_mode"] == ("eventlet" if server.server == "eventlet" else "threading")
    for seq in range(5):
        result = a.round_trip(astronaut_jpeg, seq)
        assert result["seq"] == seq
        assert result["faces"][0]["dominant"] == "happy"


def test_bad_input_errors_go_to_the_sender_only(clients, astronaut_jpeg):
    good, bad = clients(), clients()
    bad.sio.emit("frame", {"seq": 1, "image": b"\x00" * 1000})
    assert bad.next("error")["code"] == "undecodable"
    bad.sio.emit("frame", {"seq": 2, "image": b"\xff" * 2_000_000})
    error = bad.next("error")
    assert error["code"] == "too_large" and error["seq"] == 2
    assert good.round_trip(astronaut_jpeg, 1)["faces"][0]["dominant"] == "happy"
    assert good.drain("error") == []
    # the client that misbehaved is still served
    assert bad.round_trip(astronaut_jpeg, 3)["seq"] == 3


def test_a_flood_costs_only_the_flooder(clients, astronaut_jpeg):
    """40 frames at once: the connection's events are handled one after another (its own
    thread), so they wait for each other, not for anyone else; the calm client's frames go
    through one by one meanwhile, and the flooder is served again afterwards."""
    calm, flood = clients(), clients()
    for seq in range(40):
        flood.sio.emit("frame", {"seq": seq, "image": astronaut_jpeg})
    for seq in range(10):
        assert calm.round_trip(astronaut_jpeg, seq)["seq"] == seq
    answered = set()
    deadline = time.monotonic() + 10
    while len(answered) < 40 and time.monotonic() < deadline:
        try:
            answered.add(flood.next("result", timeout=0.5)["seq"])
        except queue.Empty:
            answered |= {e.get("seq") for e in flood.drain("error")}
    answered |= {e.get("seq") for e in flood.drain("error")}
    # the burst is analysed, each frame answered once; beyond it frames are refused (told once)
    assert answered <= set(range(40)) and len(answered) >= FRAME_BURST
    assert flood.round_trip(astronaut_jpeg, 99)["seq"] == 99


def test_a_message_over_the_transport_limit_drops_only_that_client(clients, astronaut_jpeg):
    calm, huge = clients(), clients()
    huge.sio.emit("frame", {"seq": 1, "image": b"\xff" * 6_000_000})
    deadline = time.monotonic() + 10
    while huge.sio.connected and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not huge.sio.connected
    assert calm.round_trip(astronaut_jpeg, 1)["faces"][0]["dominant"] == "happy"


def test_a_missing_model_file_is_named_at_start_and_fer_serves(start_server, tmp_path, astronaut_jpeg):
    missing = tmp_path / "emocare_expression.onnx"
    server = start_server("gunicorn", EMOCARE_MODEL_PATH=str(missing))
    status = server.wait_ready()
    assert status["backend"] == "fer" and str(missing) in status["notice"]
    assert f"EmoCare model {missing} not found" in server.log_tail(20_000)
    client = Recorder(server.url)
    try:
        result = client.round_trip(astronaut_jpeg, 1)
        assert result["backend"] == "fer" and result["faces"][0]["label"] == "happy"
    finally:
        client.close()


def test_garbage_packets_barely_touch_the_log(server, clients, astronaut_jpeg):
    """2,000 malformed binary packets (each once logged with a full traceback, 1.8 KB of log
    per byte sent): a line or two now, the sender is cut off, and everyone else is served."""
    import websocket

    calm = clients()  # connected before: the garbage's address (this one) is paused after it
    before = server.log_path.stat().st_size
    raw = websocket.create_connection(websocket_url(server.url))
    raw.recv()  # the handshake
    raw.send("40")  # join the default namespace
    with contextlib.suppress(OSError, websocket.WebSocketException):  # cut off on the way
        for _ in range(2000):
            raw.send_binary(b"\x00")
    raw.close()
    assert calm.round_trip(astronaut_jpeg, 1)["seq"] == 1
    grown = server.log_path.stat().st_size - before
    assert grown < 20_000, server.log_tail(2000)


def test_a_message_the_transport_cannot_parse_is_answered(server, clients, astronaut_jpeg):
    """``cooldown_s: 10**400`` or broken JSON never reach a handler (the transport refuses
    integers of more than 100 digits): the sender is told, in well under a second."""
    raw = raw_socket(server.url)
    events_until(raw, "status", 5)
    for packet in ['42["configure",{"settings":{"cooldown_s":1' + "0" * 400 + "}}]", '42["configure",{']:
        raw.send(packet)
        error, took = events_until(raw, "error", 1.0)
        assert error is not None and error["code"] == "bad_request" and took < 1.0
        time.sleep(1.0)  # told at most once a second
    raw.close()
    assert clients().round_trip(astronaut_jpeg, 1)["seq"] == 1


def test_connections_over_the_cap_are_refused_with_a_reason(start_server):
    server = start_server("gunicorn", EMOCARE_MAX_CONNECTIONS_PER_ADDRESS="3")
    pages = [Recorder(server.url) for _ in range(3)]
    extra = socketio.Client(reconnection=False)
    reasons = []
    extra.on("connect_error", reasons.append)
    with pytest.raises(socketio.exceptions.ConnectionError):
        extra.connect(server.url, transports=["websocket"], wait_timeout=10)
    [reason] = reasons
    assert reason["data"]["code"] == "too_many_connections" and "Too many" in reason["message"]
    # sockets that never join hold a server thread each: they are capped too (spare of 2)
    import websocket

    idle, refused = [], 0
    for _ in range(6):
        try:
            idle.append(websocket.create_connection(websocket_url(server.url), timeout=5))
        except websocket.WebSocketBadStatusException as exc:
            refused += 1
            assert exc.status_code == 401
    assert len(idle) == 2 and refused == 4  # 3 pages + 2 spare sockets; the refused client left
    for ws in idle:
        ws.close()
    time.sleep(0.5)
    pages[0].close()
    time.sleep(0.5)  # the server notices the closed socket
    again = Recorder(server.url)
    assert again.next("status")["state"] == "ready"
    for page in [*pages[1:], again]:
        page.close()


def test_a_client_that_keeps_flooding_is_told_then_disconnected(clients, no_face_jpeg):
    calm, flood = clients(), clients()
    for seq in range(3000):  # far over 15 a second, for as long as it takes to send them
        if not flood.sio.connected:
            break
        flood.sio.emit("frame", {"seq": seq, "image": no_face_jpeg})
    # the server reads a connection's frames one after another, at the speed of inference, and
    # refuses those over its budget (15 a second): where inference is not much faster (eventlet
    # on a slow 2-core machine: 25 a second), the 60 refusals of a flood take seconds to add up
    deadline = time.monotonic() + 20
    while flood.sio.connected and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not flood.sio.connected
    codes = {e["code"] for e in flood.drain("error")}
    assert "rate_limited" in codes
    assert calm.round_trip(no_face_jpeg, 1)["seq"] == 1  # everyone else goes on
