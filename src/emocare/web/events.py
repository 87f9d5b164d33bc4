"""Socket.IO handlers: they only translate. Each finds the connection's session, calls it with
the payload and the service's clock, and emits the events it returns; the work itself is in
:mod:`emocare.live` (plain Python).

The protocol (names and payloads, both directions) is documented in docs/protocol.md.
"""

from __future__ import annotations

import contextlib
import logging
import socket

from flask import current_app, request
from flask_socketio import ConnectionRefusedError as RefuseConnection
from flask_socketio import emit as _emit

from ..extensions import socketio
from ..live import Refused
from ..live.service import DEVICE, SERVER
from ..live.session import CLOSE, GONE
from . import profile as profile_cookie
from . import services
from .transport import bound_reading

log = logging.getLogger(__name__)

#: ``seq`` is echoed back in answers; JavaScript counts exactly up to 2**53 - 1.
MAX_SEQ = 2**53 - 1
#: The answer to a ``frame`` or ``scores`` whose ``seq`` is no frame number.
BAD_SEQ = {"code": "bad_seq", "message": f"seq must be an integer from 0 to {MAX_SEQ}."}


def emit(event: str, payload) -> None:
    """Answer the connection being handled: it is on this process, so with a message queue
    (several processes, docs/deploy.md) the answer still goes straight to it, not via Redis."""
    _emit(event, payload, ignore_queue=True)


def _emit_all(events) -> None:
    """Emit a session's events, then, under eventlet, yield once: there a connection's events are
    handled in order on its own green thread, and a flood of refused frames never waits on I/O,
    so without the yield the writer that sends these answers (and a disconnect) would not run
    until the flood stopped.

    Under threading the interpreter switches threads by itself, and the yield
    (``time.sleep(0)``) only gave the GIL away once more per event: with many device-mode pages
    (small ``scores`` messages, the process's one core of Python its limit) that extra hand-off
    cost about a fifth of what one process serves (docs/deploy.md, *Sizing*)."""
    _send(events, request.sid, emit)
    if socketio.async_mode != "threading":
        socketio.sleep(0)


def _send(events, sid: str, emit_one) -> None:
    """Send a session's events to ``sid`` with ``emit_one(name, payload)``, in order; a
    ``CLOSE`` among them ends the connection there (a client that floods)."""
    for name, payload in events:
        if name == CLOSE:
            _close(sid)
            break
        emit_one(name, payload)


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
    # a page that analyses on its device says so in its handshake (``auth``): it is counted
    # under the device cap from the start; anything else is counted as analysed here
    analysis = auth.get("analysis") if isinstance(auth, dict) else None
    try:
        # the profile cookie comes with the handshake: the page's script never sees or sends it
        cookie = profile_cookie.from_cookies(request.cookies)
        live.open(request.sid, request.remote_addr, cookie, DEVICE if analysis == DEVICE else SERVER)
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
        emit("error", BAD_SEQ)
        return
    live, session = _session()
    if session is None:
        emit("error", {**GONE, "seq": seq})
        return
    try:
        live.analysing(request.sid, SERVER)
    except Refused as refused:  # counted on the device, and no server place is free for it
        _emit_all([("error", {"code": refused.code, "seq": seq, "message": refused.message}), (CLOSE, {})])
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


@socketio.on("scores")
def on_scores(payload=None, *extra):
    """A page that analysed its own frames: ``{"seq", "width", "height", "faces": [{"box",
    "scores"}]}`` or ``"frames": [{"age_ms", "faces"}]`` in place of ``faces``, boxes and scores
    only (docs/protocol.md)."""
    if _extra("scores", extra):
        return
    seq = _seq_of(payload)
    if seq is _BAD_SEQ:
        emit("error", BAD_SEQ)
        return
    live, session = _session()
    if session is None:
        emit("error", {**GONE, "seq": seq})
        return
    _emit_all(session.observe(payload, live.clock()))


@socketio.on("calibrate")
def on_calibrate(payload=None, *extra):
    """The relaxed-face step: ``{"action": "start" | "cancel" | "reset"}``."""
    if _extra("calibrate", extra):
        return
    live, session = _session()
    _emit_all([("error", GONE)] if session is None else session.calibrate(payload, live.clock()))


_BAD_SEQ = object()


def _unpack(payload) -> tuple[object, object]:
    """``(seq, image)``; ``seq`` is None when absent and ``_BAD_SEQ`` when it is no frame number."""
    if not isinstance(payload, dict):
        return None, payload
    seq = _seq_of(payload)
    return seq, None if seq is _BAD_SEQ else payload.get("image")


def _seq_of(payload) -> object:
    """A message's ``seq``: None when absent, ``_BAD_SEQ`` when it is no frame number."""
    seq = payload.get("seq") if isinstance(payload, dict) else None
    if seq is not None and (isinstance(seq, bool) or not isinstance(seq, int) or not 0 <= seq <= MAX_SEQ):
        return _BAD_SEQ
    return seq


def guard_transport(app) -> None:
    """What the transport does before and around our handlers, made safe for hostile clients.

    - **Caps at the socket, not only the session.** A WebSocket holds a server thread from its
      handshake on; a client that opens sockets and never joins the namespace (or is refused
      and stays) would otherwise exhaust the threads (measured before: 200 idle sockets made
      every new connection wait). :meth:`LiveService.admit_transport` counts them.
    - **Unparsable messages answered.** python-socketio decodes a packet before any handler of
      ours runs; one it cannot decode (malformed JSON, an integer of more than 100 digits such
      as ``cooldown_s: 10**400``, an unknown packet type) raises ValueError there, which
      Engine.IO logs and drops: the client never learns why. Its session now says
      ``bad_request`` (at most once a second), and a client that keeps at it is disconnected.
    - **No reading ahead.** The WebSocket transport reads a connection only while few of its
      messages wait for us (``transport.py``), so a flood meets our limits at our pace.
    """
    server = socketio.server
    bound_reading(server.eio, socketio.async_mode)
    handlers = server.eio.handlers
    on_connect, on_message, on_disconnect = handlers["connect"], handlers["message"], handlers["disconnect"]
    live = services(app).live

    def connect(eio_sid, environ):
        try:
            live.admit_transport(eio_sid, environ.get("REMOTE_ADDR"))
        except Refused as refused:
            return {"code": refused.code, "message": refused.message}  # HTTP 401 with this body
        return on_connect(eio_sid, environ)

    def message(eio_sid, data):
        if eio_sid not in server.eio.sockets:
            # closed (a flooder cut off): what its socket had buffered is dropped unread
            return None
        try:
            return on_message(eio_sid, data)
        except ValueError as exc:  # JSON errors and bad packet types are ValueErrors
            sid = server.manager.sid_from_eio_sid(eio_sid, "/")
            session = live.get(sid) if sid is not None else None
            if session is not None:
                events = session.unreadable(str(exc), live.clock())
                _send(events, sid, lambda name, payload: server.emit(name, payload, to=sid, ignore_queue=True))
            raise

    def disconnect(eio_sid, *reason):
        live.release_transport(eio_sid)
        return on_disconnect(eio_sid, *reason)

    server.eio.on("connect", connect)
    server.eio.on("message", message)
    server.eio.on("disconnect", disconnect)


def _close(sid: str) -> None:
    """End a connection for good: its session, its socket and the TCP connection under it.

    Ending the session alone leaves the socket open, and a raw client goes on sending into it
    (measured: 105,861 frames in the 10 s after it was "disconnected"); closing the WebSocket
    is not enough either, as long as the client keeps sending and never reads the close. So the
    TCP connection is shut down, through the socket the WSGI server put in the environ.
    """
    server = socketio.server
    eio_sid = server.manager.eio_sid_from_sid(sid, "/")
    environ = server.get_environ(sid) or {}
    server.disconnect(sid)
    if eio_sid is not None:
        server.eio.disconnect(eio_sid)
    sockets = _raw_sockets(environ)
    if sockets:
        socketio.start_background_task(_shut_down, sockets)


def _shut_down(sockets: list, after_s: float = 0.5) -> None:
    """Shut the TCP connections down a moment later: long enough for the last answers (why it
    was cut off) to reach the client before the reset that unread data causes discards them."""
    socketio.sleep(after_s)
    for raw in sockets:
        with contextlib.suppress(OSError):
            raw.shutdown(socket.SHUT_RDWR)


def _raw_sockets(environ: dict) -> list:
    """The client's TCP socket under Gunicorn, Werkzeug or eventlet (whichever is serving)."""
    found = [environ[key] for key in ("gunicorn.socket", "werkzeug.socket") if key in environ]
    get_socket = getattr(environ.get("eventlet.input"), "get_socket", None)
    if get_socket is not None:
        with contextlib.suppress(Exception):
            found.append(get_socket())
    return [s for s in found if hasattr(s, "shutdown")]
