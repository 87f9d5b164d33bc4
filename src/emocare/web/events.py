"""Socket.IO handlers. Thin on purpose: decode, analyse and track live in plain services.

The protocol (names and payloads, both directions) is documented in docs/protocol.md.
"""

from __future__ import annotations

import logging
import time

from flask import current_app, request
from flask_socketio import emit

from ..extensions import socketio
from ..vision import FrameError
from . import services, status_payload

log = logging.getLogger(__name__)


@socketio.on("connect")
def on_connect(auth=None):
    services(current_app).live.open(request.sid)
    emit("status", status_payload(current_app))


@socketio.on("disconnect")
def on_disconnect(reason=None):
    session = services(current_app).live.close(request.sid)
    if session:
        log.info("client left after %d frames (%d dropped, %d errors)", session.frames, session.dropped, session.errors)


@socketio.on("frame")
def on_frame(payload=None):
    """One camera frame: ``{"seq": int, "image": <binary JPEG>}`` or the bare bytes."""
    svc = services(current_app)
    seq, image = _unpack(payload)
    session = svc.live.get(request.sid)
    if not session.try_begin():
        if session.should_notify_busy():
            emit("error", {"code": "busy", "seq": seq, "message": "One frame at a time: wait for the previous result."})
        return
    ok = False
    vision = svc.visions.get(session.backend)
    try:
        vision.check(image)  # bad frames are answered at once, not queued behind inference
        analysis = svc.offload(vision.analyze_bytes, image)
        ok = True
    except FrameError as exc:
        emit("error", {**exc.to_dict(), "seq": seq})
        return
    except Exception:
        log.exception("analysing a frame failed")
        emit("error", {"code": "internal", "seq": seq, "message": "The frame could not be analysed."})
        return
    finally:
        session.end(ok)
    payload = {"seq": seq, "ts": int(time.time() * 1000), **analysis.to_dict()}
    payload["faces"] = [face.to_dict() for face in session.track(analysis)]
    emit("result", payload)


@socketio.on("configure")
def on_configure(payload=None):
    """The page chose settings for its own session: ``{"backend": "fer" | "deepface"}``."""
    svc = services(current_app)
    backend = payload.get("backend") if isinstance(payload, dict) else None
    try:
        vision = svc.visions.get(backend)
    except ValueError as exc:
        emit("error", {"code": "bad_backend", "message": str(exc)})
        return
    svc.live.get(request.sid).backend = backend
    if not vision.ready:
        emit("status", status_payload(current_app, backend))  # "warming": DeepFace takes seconds
        try:
            svc.offload(vision.warm_up)
        except Exception:
            log.exception("warming up the %s backend failed", backend)
            emit("status", {"state": "error", "message": f"The {backend} model failed to load."})
            return
    emit("status", status_payload(current_app, backend))


def _unpack(payload) -> tuple[int | None, object]:
    if isinstance(payload, dict):
        seq = payload.get("seq")
        return (seq if isinstance(seq, int) else None), payload.get("image")
    return None, payload
