"""Socket.IO handlers: they only translate. Each finds the connection's session, calls it with
the payload and the service's clock, and emits the events it returns; the work itself is in
:mod:`emocare.live` (plain Python).

The protocol (names and payloads, both directions) is documented in docs/protocol.md.
"""

from __future__ import annotations

import logging

from flask import current_app, request
from flask_socketio import emit

from ..extensions import socketio
from ..live.session import GONE
from . import services

log = logging.getLogger(__name__)


def _emit_all(events) -> None:
    for name, payload in events:
        emit(name, payload)


def _session():
    live = services(current_app).live
    return live, live.get(request.sid)


@socketio.on("connect")
def on_connect(auth=None):
    live = services(current_app).live
    live.open(request.sid)
    emit("status", live.status())


@socketio.on("disconnect")
def on_disconnect(reason=None):
    session = services(current_app).live.close(request.sid)
    if session is not None:
        c = session.counters
        log.info("client left after %d frames (%d dropped, %d errors)", c.frames, c.dropped, c.errors)


@socketio.on("frame")
def on_frame(payload=None):
    """One camera frame: ``{"seq": int, "image": <binary JPEG>}`` or the bare bytes."""
    seq, image = _unpack(payload)
    live, session = _session()
    if session is None:
        emit("error", {**GONE, "seq": seq})
        return
    _emit_all(session.step(image, seq, live.clock()))


@socketio.on("configure")
def on_configure(payload=None):
    live, session = _session()
    _emit_all([("error", GONE)] if session is None else session.configure(payload, live.clock()))


@socketio.on("care_feedback")
def on_care_feedback(payload=None):
    live, session = _session()
    _emit_all([("error", GONE)] if session is None else session.feedback(payload, live.clock()))


def _unpack(payload) -> tuple[int | None, object]:
    if isinstance(payload, dict):
        seq = payload.get("seq")
        return (seq if isinstance(seq, int) else None), payload.get("image")
    return None, payload
