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

GONE = {"code": "no_session", "message": "This connection is closed: reload the page."}


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
    if session is None:
        emit("error", {**GONE, "seq": seq})
        return
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
    history = session.history
    if primary is not None and history is not None:
        if not history.opened:
            history.backend = analysis.backend  # what really ran, after any fallback
        confidence = primary.smoothed[primary.label]
        svc.history.sample(history, primary.label, confidence, primary.smoothed, time.time())
    _care_step(svc, session, primary)


def _care_step(svc, session, primary) -> None:
    """Feed the primary face's smoothed mood to this session's care policy; send what it offers.

    After the result, so care never delays the live view; the card goes out before its voice
    is rendered, so speech never delays the card. A failure here is logged and the stream
    goes on.
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
        if action is None:
            return
        card = care.render(action)
        emit("care", card)
        if session.history is not None:
            svc.history.care(session.history, action, time.time())
    except Exception:
        log.exception("the care step failed")
        return
    if card["speech"] and card["speech"]["engine"] == "pending":
        try:
            speech = care.speech_for(card["text"], card["locale"], lambda name: url_for("care.audio", name=name))
        except Exception:  # the card promised a voice: the page speaks it itself
            log.exception("rendering a spoken reply failed")
            speech = {"url": None, "engine": "browser"}
        emit("care_speech", {"id": card["id"], **speech})


@socketio.on("configure")
def on_configure(payload=None):
    """The page's choices for its own session: backend, language, profile, care and history settings.

    One ``configure`` at a time per connection; a malformed one changes nothing and gets a
    ``bad_settings`` error.
    """
    svc = services(current_app)
    session = svc.live.get(request.sid)
    if session is None:
        emit("error", GONE)
        return
    if not isinstance(payload, dict):
        emit("error", {"code": "bad_settings", "message": "configure takes an object, see docs/protocol.md."})
        return
    backend = payload.get("backend")
    if "backend" in payload:
        try:
            svc.visions.check(backend)
        except ValueError as exc:
            emit("error", {"code": "bad_backend", "message": str(exc)})
            return  # before anything else of this configure is applied
    with session.configuring:
        try:
            _configure_care(svc, session, payload)
        except (ValueError, TypeError) as exc:
            emit("error", {"code": "bad_settings", "message": str(exc)})
            return
        except Exception:
            log.exception("applying the page's settings failed")
            emit("error", {"code": "bad_settings", "message": "The settings could not be applied."})
            return
        if "backend" in payload:
            _configure_backend(svc, session, backend)


def _configure_care(svc, session, payload: dict) -> None:
    locale, profile, settings = payload.get("locale"), payload.get("profile"), payload.get("settings")
    if locale is not None and locale not in current_app.config["LANGUAGES"]:
        raise ValueError(f"locale must be one of {', '.join(current_app.config['LANGUAGES'])}")
    if profile is not None and not isinstance(profile, str):
        raise ValueError("profile must be a string")
    if settings is not None and not isinstance(settings, dict):
        raise ValueError("settings must be an object")
    keep = (settings or {}).get("history", session.keep_history)
    if not isinstance(keep, bool):
        raise ValueError("setting 'history' must be true or false")
    if session.care is not None and (locale or profile or settings is not None):
        session.care.configure(locale=locale, profile=profile, settings=settings)
    session.keep_history = keep
    _follow_profile(svc, session)


def _follow_profile(svc, session) -> None:
    """Keep the history session in step with the page: on or off, its profile and language."""
    history, care = session.history, session.care
    if not session.keep_history:
        if history is not None:
            svc.history.end(history, time.time())
            session.history = None
        return
    profile = care.profile if care is not None else "default"
    if history is None or (history.opened and history.profile != profile):
        if history is not None:
            svc.history.end(history, time.time())  # a new profile starts a new history session
        session.history = history = HistorySession(profile=profile, backend=session.backend)
    history.profile = profile
    if care is not None:
        history.locale = care.locale


def _configure_backend(svc, session, backend) -> None:
    """Switch this session's analyzer (already validated), once it has warmed up.

    A backend that fails to load leaves the session on the one it had.
    """
    vision = svc.visions.get(backend)
    if not vision.ready:
        emit("status", status_payload(current_app, backend))  # "warming": DeepFace takes seconds
        try:
            svc.offload(vision.warm_up)
        except Exception:
            log.exception("warming up the %s backend failed", backend)
            emit(
                "status",
                {
                    **status_payload(current_app, session.backend),
                    "state": "error",
                    "requested": backend,
                    "message": f"The {backend} model failed to load; still using the previous one.",
                },
            )
            return
    session.backend = backend
    emit("status", status_payload(current_app, backend))


@socketio.on("care_feedback")
def on_care_feedback(payload=None):
    """``{"id": "care-12", "verdict": "helpful" | "not_now" | "not_me"}`` for a care card, once."""
    svc = services(current_app)
    session = svc.live.get(request.sid)
    payload = payload if isinstance(payload, dict) else {}
    try:
        if session is None or session.care is None:
            raise KeyError("care is off")
        action = session.care.feedback(str(payload.get("id")), payload.get("verdict"), time.monotonic())
    except (KeyError, ValueError, TypeError) as exc:
        emit("error", {"code": "bad_feedback", "message": str(exc).strip("'\"")})
        return
    if session.history is not None:
        svc.history.feedback(action.id, payload["verdict"], time.time())
    emit("care_feedback", {"id": action.id, "verdict": payload["verdict"], "ok": True})


def _unpack(payload) -> tuple[int | None, object]:
    if isinstance(payload, dict):
        seq = payload.get("seq")
        return (seq if isinstance(seq, int) else None), payload.get("image")
    return None, payload
