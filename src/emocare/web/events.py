"""Socket.IO handlers. Thin on purpose: vision, tracking and care live in plain services.

The protocol (names and payloads, both directions) is documented in docs/protocol.md.
"""

from __future__ import annotations

import logging
import time

from flask import current_app, request, url_for
from flask_socketio import emit

from ..extensions import socketio
from ..history import HistorySession
from ..vision import FrameError
from . import services, status_payload

log = logging.getLogger(__name__)


@socketio.on("connect")
def on_connect(auth=None):
    services(current_app).live.open(request.sid)
    emit("status", status_payload(current_app))


@socketio.on("disconnect")
def on_disconnect(reason=None):
    svc = services(current_app)
    session = svc.live.close(request.sid)
    if session and session.history is not None:
        svc.history.end(session.history, time.time())
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
        tracked = session.track(analysis)  # still inside the client's single in-flight slot
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
    payload["faces"] = [face.to_dict() for face in tracked]
    emit("result", payload)
    primary = next((face for face in tracked if face.primary), None)
    if primary is not None and session.history is not None:
        confidence = primary.smoothed[primary.label]
        svc.history.sample(session.history, primary.label, confidence, primary.smoothed, time.time())
    _care_step(svc, session, primary)


def _care_step(svc, session, primary) -> None:
    """Feed the primary face's smoothed mood to this session's care policy; send what it offers.

    After the result, so care never delays the live view; a failure here is logged and the
    stream goes on.
    """
    care = session.care
    if care is None:
        return
    t = time.monotonic()
    try:
        if primary is None:
            action = care.observe(None, 0.0, t)
        else:
            action = care.observe(primary.label, primary.smoothed[primary.label], t)
        if action is not None:
            emit("care", care.render(action, lambda name: url_for("care.audio", name=name)))
            if session.history is not None:
                svc.history.care(session.history, action, time.time())
    except Exception:
        log.exception("the care step failed")


@socketio.on("configure")
def on_configure(payload=None):
    """The page's choices for its own session: backend, language, profile, care settings."""
    svc = services(current_app)
    payload = payload if isinstance(payload, dict) else {}
    session = svc.live.get(request.sid)
    if session.care is not None and any(k in payload for k in ("locale", "profile", "settings")):
        locale = payload.get("locale")
        try:
            session.care.configure(
                locale=locale if locale in current_app.config["LANGUAGES"] else None,
                profile=payload.get("profile") if isinstance(payload.get("profile"), str) else None,
                settings=payload.get("settings") if isinstance(payload.get("settings"), dict) else None,
            )
        except ValueError as exc:
            emit("error", {"code": "bad_settings", "message": str(exc)})
            return
        _follow_profile(svc, session)
    if "backend" not in payload:
        return
    backend = payload.get("backend")
    try:
        vision = svc.visions.get(backend)
    except ValueError as exc:
        emit("error", {"code": "bad_backend", "message": str(exc)})
        return
    session.backend = backend
    if not vision.ready:
        emit("status", status_payload(current_app, backend))  # "warming": DeepFace takes seconds
        try:
            svc.offload(vision.warm_up)
        except Exception:
            log.exception("warming up the %s backend failed", backend)
            emit("status", {"state": "error", "message": f"The {backend} model failed to load."})
            return
    emit("status", status_payload(current_app, backend))


@socketio.on("care_feedback")
def on_care_feedback(payload=None):
    """``{"id": "care-12", "verdict": "helpful" | "not_now" | "not_me"}`` for a care card."""
    session = services(current_app).live.get(request.sid)
    payload = payload if isinstance(payload, dict) else {}
    try:
        if session.care is None:
            raise KeyError("care is off")
        action = session.care.feedback(str(payload.get("id")), payload.get("verdict"), time.monotonic())
    except (KeyError, ValueError) as exc:
        emit("error", {"code": "bad_feedback", "message": str(exc).strip("'\"")})
        return
    services(current_app).history.feedback(action.id, payload["verdict"], time.time())
    emit("care_feedback", {"id": action.id, "verdict": payload["verdict"], "ok": True})


def _follow_profile(svc, session) -> None:
    """Keep the history session's profile and language in step with the care session's."""
    history, care = session.history, session.care
    if history is None:
        return
    if history.opened and history.profile != care.profile:
        svc.history.end(history, time.time())  # a new profile starts a new history session
        session.history = history = HistorySession(profile=care.profile)
    history.profile, history.locale, history.backend = care.profile, care.locale, session.backend


def _unpack(payload) -> tuple[int | None, object]:
    if isinstance(payload, dict):
        seq = payload.get("seq")
        return (seq if isinstance(seq, int) else None), payload.get("image")
    return None, payload
