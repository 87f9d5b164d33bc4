"""Socket.IO handlers: they only translate. Each finds the connection's session, calls it with
the payload and the service's clock, and emits the events it returns; the work itself is in
:mod:`emocare.live` (plain Python).

The protocol (names and payloads, both directions) is documented in docs/protocol.md.
"""

from __future__ import annotations

import logging

from flask import current_app, request
from flask_socketio import ConnectionRefusedError as RefuseConnection
from flask_socketio import disconnect, emit

from ..extensions import socketio
from ..live import Refused
from ..live.session import CLOSE, GONE
from . import profile as profile_cookie
from . import services

log = logging.getLogger(__name__)

#: ``seq`` is echoed back in answers; JavaScript counts exactly up to 2**53 - 1.
MAX_SEQ = 2**53 - 1


def _emit_all(events) -> None:
    """Emit a session's events, then yield once. Under eventlet a connection's events are handled
    in order on its own green thread, and a flood of refused frames never waits on I/O: without
    the yield, the writer that sends these answers (and a disconnect) would not run until the
    flood stopped. Under threading it is ``time.sleep(0)``."""
    for name, payload in events:
        if name == CLOSE:  # the session asks for its connection to end (a client that floods)
            disconnect()
            break
        emit(name, payload)
    socketio.sleep(0)


def _session():
    live = services(current_app).live
    return live, live.get(request.sid)


def _extra(event: str, extra: tuple) -> bool:
    """Answer an event that came with more arguments than it takes; True if it did."""
    if extra:
        emit("error", {"code": "bad_request", "message": f"{event} takes one argument, not {1 + len(extra)}."})
    return bool(extra)


@socketio.on("connect")
def on_connect(auth=None):
    live = services(current_app).live
    if live.get(request.sid) is not None:
        return  # a client emitted an event named "connect": not a connection, ignored
    try:
        # the profile cookie comes with the handshake: the page's script never sees or sends it
        live.open(request.sid, request.remote_addr, profile_cookie.from_cookies(request.cookies))
    except Refused as refused:  # the client's connect_error carries the reason
        raise RefuseConnection(refused.message, {"code": refused.code, "message": refused.message}) from None
    emit("status", live.status())


@socketio.on("disconnect")
def on_disconnect(reason=None, *extra):
    if socketio.server.manager.is_connected(request.sid, "/"):
        return  # a client emitted "disconnect" (a real one is already being taken down): ignored
    session = services(current_app).live.close(request.sid)
    if session is not None:
        c = session.counters
        log.info("client left after %d frames (%d dropped, %d errors)", c.frames, c.dropped, c.errors)


@socketio.on("frame")
def on_frame(payload=None, *extra):
    """One camera frame: ``{"seq": int, "image": <binary JPEG>}`` or the bare bytes."""
    if _extra("frame", extra):
        return
    seq, image = _unpack(payload)
    if seq is _BAD_SEQ:
        emit("error", {"code": "bad_seq", "message": f"seq must be an integer from 0 to {MAX_SEQ}."})
        return
    live, session = _session()
    if session is None:
        emit("error", {**GONE, "seq": seq})
        return
    _emit_all(session.step(image, seq, live.clock()))


@socketio.on("configure")
def on_configure(payload=None, *extra):
    if _extra("configure", extra):
        return
    live, session = _session()
    _emit_all([("error", GONE)] if session is None else session.configure(payload, live.clock()))


@socketio.on("care_feedback")
def on_care_feedback(payload=None, *extra):
    if _extra("care_feedback", extra):
        return
    live, session = _session()
    _emit_all([("error", GONE)] if session is None else session.feedback(payload, live.clock()))


_BAD_SEQ = object()


def _unpack(payload) -> tuple[object, object]:
    """``(seq, image)``; ``seq`` is None when absent and ``_BAD_SEQ`` when it is no frame number."""
    if not isinstance(payload, dict):
        return None, payload
    seq = payload.get("seq")
    if seq is not None and (isinstance(seq, bool) or not isinstance(seq, int) or not 0 <= seq <= MAX_SEQ):
        return _BAD_SEQ, None
    return seq, payload.get("image")
