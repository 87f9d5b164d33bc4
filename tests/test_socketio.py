"""The Socket.IO protocol through Flask-SocketIO's test client (handlers run synchronously)."""

import pytest

from emocare.extensions import socketio
from emocare.vision import EMOTIONS


def events(client, name):
    return [msg["args"][0] for msg in client.get_received() if msg["name"] == name]


def test_connect_says_the_model_is_ready(socketio_client):
    [status] = events(socketio_client, "status")
    assert status["state"] == "ready"
    assert status["backend"] == "emocare"
    assert status["async_mode"] == "threading"


def test_a_real_jpeg_gives_seven_scores(socketio_client, astronaut_jpeg):
    socketio_client.get_received()
    socketio_client.emit("frame", {"seq": 7, "image": astronaut_jpeg})
    [result] = events(socketio_client, "result")
    assert result["seq"] == 7
    assert result["frame"] == {"width": 320, "height": 240}
    assert isinstance(result["ts"], int) and result["server_ms"] > 0
    [face] = result["faces"]
    assert set(face["scores"]) == set(EMOTIONS)
    assert sum(face["scores"].values()) == pytest.approx(1.0, abs=0.01)
    assert face["dominant"] == "happy"
    assert len(face["box"]) == 4


def test_bare_bytes_are_accepted(socketio_client, astronaut_jpeg):
    socketio_client.get_received()
    socketio_client.emit("frame", astronaut_jpeg)
    [result] = events(socketio_client, "result")
    assert result["seq"] is None and len(result["faces"]) == 1


def test_no_face_gives_an_empty_list(socketio_client, no_face_jpeg):
    socketio_client.get_received()
    socketio_client.emit("frame", {"seq": 1, "image": no_face_jpeg})
    [result] = events(socketio_client, "result")
    assert result["faces"] == []


@pytest.mark.parametrize(
    ("payload", "code"),
    [
        ({"seq": 3, "image": b"garbage, not a jpeg"}, "undecodable"),
        ({"seq": 3, "image": b""}, "empty"),
        ({"seq": 3, "image": "aGVsbG8="}, "bad_type"),
        ({"seq": 3}, "bad_type"),
    ],
)
def test_garbage_gets_an_error_to_that_client_only(app, client, socketio_client, astronaut_jpeg, payload, code):
    other = socketio.test_client(app, flask_test_client=client)
    other.get_received()
    socketio_client.get_received()

    socketio_client.emit("frame", payload)
    [error] = events(socketio_client, "error")
    assert error["code"] == code
    assert error["message"]
    assert other.get_received() == []  # nothing leaked to the other client

    other.emit("frame", {"seq": 1, "image": astronaut_jpeg})
    [result] = events(other, "result")
    assert result["faces"][0]["dominant"] == "happy"
    # and the client that sent garbage keeps working too
    socketio_client.emit("frame", {"seq": 4, "image": astronaut_jpeg})
    assert events(socketio_client, "result")[0]["seq"] == 4
    other.disconnect()


def test_an_oversized_frame_is_refused_with_the_limit(app, socketio_client):
    limit = app.config["MAX_FRAME_BYTES"]
    socketio_client.get_received()
    socketio_client.emit("frame", {"seq": 9, "image": b"\xff" * (limit + 1)})
    [error] = events(socketio_client, "error")
    assert error["code"] == "too_large"
    assert f"{limit:,}" in error["message"]


def test_a_session_can_choose_deepface_and_falls_back_with_a_notice(app, client, socketio_client, astronaut_jpeg):
    other = socketio.test_client(app, flask_test_client=client)
    socketio_client.get_received()
    other.get_received()

    socketio_client.emit("configure", {"backend": "deepface"})
    status = events(socketio_client, "status")[-1]
    assert status["state"] == "ready"
    assert status["requested"] == "deepface"
    assert status["backend"] == "fer"  # no weights offline: fer stands in, and says why
    assert "DeepFace emotion weights not found at" in status["notice"]
    assert app.config["DEEPFACE_HOME"] in status["notice"]

    socketio_client.emit("frame", {"seq": 1, "image": astronaut_jpeg})
    [result] = events(socketio_client, "result")
    assert result["backend"] == "fer" and result["faces"][0]["label"] == "happy"
    assert other.get_received() == []  # the other session was not touched
    other.disconnect()


def test_an_unknown_backend_is_refused(socketio_client):
    socketio_client.get_received()
    socketio_client.emit("configure", {"backend": "crystal-ball"})
    [error] = events(socketio_client, "error")
    assert error["code"] == "bad_backend" and "fer" in error["message"]
