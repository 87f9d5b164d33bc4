"""One connection's session: everything a browser tab has in flight, has seen and has chosen.

Plain Python, no Flask. The web layer turns Socket.IO messages into calls on this object and
emits the events it returns; everything in between (detect → classify → smooth → care →
history) happens here, in :meth:`LiveSession.step`.

Time is always passed in (``now``, seconds since the epoch, from the service's clock), so that
smoothing, care timing and the history can be tested without sleeping.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
from collections.abc import Generator, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from ..history import HistorySession
from ..vision import FrameError, download_progress
from ..vision.reference import Baseline, corrected_scores
from ..vision.tracking import FaceTracker, TrackedFace
from ..vision.types import Analysis, Face
from . import scores as scores_module
from .calibration import DURATION_S, Calibration, CalibrationRefused

if TYPE_CHECKING:  # pragma: no cover
    from .service import LiveService

log = logging.getLogger(__name__)

#: What a session asks the web layer to send to its page: an event name and its payload.
Event = tuple[str, dict]

BUSY_NOTICE_S = 1.0
#: How often a page waiting for a backend's download hears how far it has come, in seconds.
DOWNLOAD_REPORT_S = 0.5
#: Frames a page may send: a burst of this many, refilled at this rate a second (the page
#: sends at most 10, one in flight; 15 leaves it room for jitter). The burst is small because
#: every frame in it is analysed: a flooder's burst is paid for. The rate matters twice: it
#: is the most inference a flooder can cost, and a connection's frames are read one after
#: another at the speed of inference, so a flood is refused (and cut off) only where
#: inference runs faster than this rate: 30 was slower than eventlet's inference on a slow
#: 2-core machine (25 frames a second), whose flooders were never refused.
FRAME_BURST, FRAME_RATE = 10, 15.0
#: And bytes of frames: the page sends about 15 KB ten times a second (150 KB/s); a client
#: may send 1 MB/s, in bursts of 3 MB (three frames of the largest size accepted).
BYTE_BURST, BYTE_RATE = 3_000_000, 1_000_000.0
#: A client that has had this many frames refused in the last FLOOD_WINDOW_S is disconnected.
#: A page that keeps to one frame in flight is never refused; a flooder is cut off soon, before
#: the transport has buffered much of what it sends (measured: 300 let a raw flood buffer
#: +149 MB in the 1.6 s it took the handler to reach them).
FLOOD_LIMIT, FLOOD_WINDOW_S = 60, 10.0
#: Where a session's frames are analysed, as far as the caps are concerned: a session counts
#: as analysed on the server from its connection until it sends ``scores``.
SERVER, DEVICE = "server", "device"
#: What a frame analysed on the page says in its ``result``.
DEVICE_EXTRA = {"analysis": DEVICE}
#: The event a session returns when its connection should be closed (the web layer does it).
CLOSE = "__close__"


def last_answer_first(answers: list[Event]) -> list[Event]:
    """One answer to a message of several frames: the last frame's ``result`` (or error), then
    what any of them brought (care), the calibration's state only as the last frame left it."""
    answer = next(event for event in reversed(answers) if event[0] in ("result", "error"))
    others = [event for event in answers if event[0] not in ("result", "error", "calibration")]
    calibration = [event for event in answers if event[0] == "calibration"][-1:]
    return [answer, *calibration, *others]


@dataclass
class Counters:
    frames: int = 0
    dropped: int = 0
    errors: int = 0


@dataclass
class LiveSession:
    """The one object that holds a connection's state; made by :class:`LiveService.open`."""

    sid: str
    service: LiveService = field(repr=False)
    started: float
    tracker: FaceTracker
    #: the client's network address, for the per-address connection cap
    address: str | None = None
    #: This connection's care state (a ``CareSession``), when the app has a care engine.
    care: object | None = None
    #: The analyzer backend this page chose; None means the server's default.
    backend: str | None = None
    #: Whose session this is: the profile cookie the connection's handshake carried (issued by
    #: the server, never sent by the page's script); None for a client without one.
    profile: str | None = None
    #: This connection's place in the mood history: None until the page has configured.
    history: HistorySession | None = None
    #: False when the person switched the mood history off in the page's settings.
    keep_history: bool = True
    #: True once the page has sent its settings (``configure``): only then is anything recorded,
    #: so a person who switched the history off is never recorded for a moment first.
    configured: bool = False
    #: The relaxed-face calibration in progress, if the person started one (``calibrate``).
    calibrating: Calibration | None = None
    counters: Counters = field(default_factory=Counters)
    closed: bool = False
    _frames: TokenBucket = field(default_factory=lambda: TokenBucket(FRAME_BURST, FRAME_RATE), repr=False)
    _bytes: TokenBucket = field(default_factory=lambda: TokenBucket(BYTE_BURST, BYTE_RATE), repr=False)
    _refusals: list[float] = field(default_factory=list, repr=False)
    _last_busy_notice: float = float("-inf")
    _in_flight: bool = False
    #: When the last frame a page analysed itself was taken (``observe``).
    _observed_at: float = float("-inf")
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    #: Held while the page's ``configure`` is applied: two at once must not interleave.
    _configuring: threading.Lock = field(default_factory=threading.Lock, repr=False)

    # --- frames ------------------------------------------------------------------------------

    def step(self, frame: object, seq: int | None, now: float) -> list[Event]:
        """One camera frame through the whole pipeline; the events to send back, in order.

        A fair share per connection: at most FRAME_RATE frames and BYTE_RATE bytes a second
        (beyond, ``rate_limited`` at most once a second, and a client that keeps flooding is
        disconnected: the ``CLOSE`` event), and one frame in flight (a frame that arrives while
        the previous one is still being analysed is dropped, ``busy``), so a flood costs the
        flooder and nobody else.
        """
        refused = self._refused(frame, seq, now)
        if refused is not None:
            return refused
        if not self._try_begin():
            if self._should_notify_busy(now):
                return [("error", {"code": "busy", "seq": seq, "message": BUSY_MESSAGE})]
            return []
        ok = False
        svc = self.service
        vision = svc.visions.get(self.backend)
        try:
            vision.check(frame)  # bad frames are answered at once, not queued behind inference
            analysis = svc.offload(vision.analyze_bytes, frame)
            ok = True
        except FrameError as exc:
            return [("error", {**exc.to_dict(), "seq": seq})]
        except Exception:
            log.exception("analysing a frame failed")
            return [("error", {"code": "internal", "seq": seq, "message": "The frame could not be analysed."})]
        finally:
            self._end(ok)
        return self._follow(analysis, vision, seq, now)

    def observe(self, payload: object, now: float) -> list[Event]:
        """Boxes and scores from a page that analysed its own frames (``scores``,
        ``live.scores``: one frame or several, each with its age): no picture, and from here
        the same path as a frame the server analysed (the person's calibration, tracking,
        smoothing, history and care), within the same budget of frames a second (each frame
        of a message charged) and the same cut-off for a flood."""
        seq = payload.get("seq") if isinstance(payload, dict) else None
        refused = self._refused(b"", seq, now, scores_module.frames_in(payload))
        if refused is not None:
            return refused
        try:
            frames = scores_module.parse(payload)
        except scores_module.ScoresError as exc:
            with self._lock:  # a stream of bad messages is a flood like any other
                self.counters.errors += 1
                self._refusals.append(now)
            if self._flooding(now):
                return self._cut_off({**exc.to_dict(), "seq": seq, "message": FLOODED}, now)
            return [("error", {**exc.to_dict(), "seq": seq})]
        with self._lock:
            self.counters.frames += len(frames)
        self.service.analysing(self.sid, DEVICE)  # taken: this page costs the server no inference
        vision = self.service.visions.get("emocare")  # the model the page runs
        answers: list[Event] = []
        for device in frames:
            # each frame at the time the page analysed it: never before the session began or
            # the last frame followed, never after now (a page's clock is not trusted)
            at = min(now, max(now - device.age_s, self._observed_at, self.started))
            self._observed_at = at
            analysis = Analysis(device.faces, device.width, device.height, backend="emocare", extra=DEVICE_EXTRA)
            answers += self._follow(analysis, vision, seq, at)
        return last_answer_first(answers)

    def _follow(self, analysis: Analysis, vision, seq: int | None, now: float) -> list[Event]:
        """An analysed frame (here or on the page) through calibration, tracking, smoothing,
        history and care; the events for the page: ``result``, then any others."""
        try:
            faces, calibration = self._personal(analysis.faces, vision, now)
            tracked = self.tracker.update(faces, now, (analysis.width, analysis.height))
        except Exception:
            log.exception("following the faces of a frame failed")
            return [("error", {"code": "internal", "seq": seq, "message": "The frame could not be analysed."})]
        result = {"seq": seq, "ts": int(now * 1000), **analysis.to_dict()}
        result["faces"] = [face.to_dict() for face in tracked]
        events: list[Event] = [("result", result), *calibration]
        primary = next((face for face in tracked if face.primary), None)
        self._record(primary, analysis.backend, now)
        events += self._care(primary, now)
        return events

    def _refused(self, frame: object, seq: int | None, now: float, frames: int = 1) -> list[Event] | None:
        """The answer to a message of ``frames`` frames over this connection's budgets (or
        closed), else None."""
        if self.closed:
            return [("error", {**GONE, "seq": seq})]
        over = self._over_budget(frame, now, frames)
        if over is None:
            return None
        if self._flooding(now):
            return self._cut_off({**RATE_LIMITED, "seq": seq, "message": FLOODED}, now)
        if self._should_notify_busy(now):
            return [("error", {**RATE_LIMITED, "seq": seq, "message": over})]
        return []

    # --- the person's own relaxed face -----------------------------------------------------------

    def _personal(self, faces: list[Face], vision, now: float) -> tuple[list[Face], list[Event]]:
        """A calibration's frames collected (as the model scored them), then the faces' scores
        corrected by the person's baseline, before tracking, smoothing, care and history."""
        events: list[Event] = []
        with self._lock:
            run = self.calibrating
            if run is not None and now >= run.started:  # not a frame analysed before it began
                run.add(faces)
                if run.done(now):
                    self.calibrating = None
        if run is not None:
            if run.done(now):
                events.append(("calibration", self._finish_calibration(run, vision)))
            else:
                events.append(("calibration", {"state": "running", "progress": round(run.progress(now), 3)}))
        offset = self._offset(vision)
        if offset is None or not faces:
            return faces, events
        return [dataclasses.replace(f, scores=corrected_scores(f.scores, offset)) for f in faces], events

    def _offset(self, vision) -> np.ndarray | None:
        """How far this person's relaxed face sits from the population's, for this model."""
        stored = self.care.baseline if self.care is not None else None
        reference = vision.relaxed_reference
        if stored is None or reference is None or stored.get("model") != vision.model_id:
            return None
        return Baseline.from_dict(stored).offset(reference)

    def _finish_calibration(self, run: Calibration, vision) -> dict:
        try:
            baseline = run.result()
        except CalibrationRefused as refused:
            return {"state": "refused", "code": refused.code, "message": refused.message}
        if self.care is None or vision.model_id is None:  # switched away meanwhile
            return {"state": "refused", "code": "unsupported", "message": UNSUPPORTED}
        self.care.set_baseline({**baseline.to_dict(), "model": vision.model_id})
        return {"state": "done", "frames": baseline.count}

    def calibrate(self, payload: object, now: float) -> list[Event]:
        """``{"action": "start" | "cancel" | "reset"}``: the relaxed-face step (docs/protocol.md).

        ``start`` listens to the next ``DURATION_S`` seconds of frames (``calibration``
        events give its progress, then ``done`` or ``refused`` with a reason); ``reset``
        forgets the baseline. Kept with the care preferences, so only where care is on.
        """
        action = payload.get("action") if isinstance(payload, dict) else None
        if self.closed:
            return [("error", GONE)]
        if action not in ("start", "cancel", "reset"):
            return [("error", {"code": "bad_calibration", "message": "calibrate takes {action: start|cancel|reset}."})]
        if self.care is None:
            return [("error", {"code": "bad_calibration", "message": "Care is off on this server: nothing to keep."})]
        with self._lock:
            self.calibrating = None
        if action == "cancel":
            return [("calibration", {"state": "cancelled"})]
        if action == "reset":
            self.care.set_baseline(None)
            return [("calibration", {"state": "reset"})]
        vision = self.service.visions.get(self.backend)
        if vision.model_id is None:
            return [("calibration", {"state": "refused", "code": "unsupported", "message": UNSUPPORTED})]
        with self._lock:
            self.calibrating = Calibration(started=now)
        return [("calibration", {"state": "running", "progress": 0.0, "duration_s": DURATION_S})]

    def calibrated(self) -> bool:
        """Whether this person's baseline applies to the model now in use."""
        return self._offset(self.service.visions.get(self.backend)) is not None

    def _record(self, primary: TrackedFace | None, backend: str, now: float) -> None:
        history = self.history
        if primary is None or history is None:
            return
        if not history.opened:
            history.backend = backend  # what really ran, after any fallback
        self.service.history.sample(history, primary.label, primary.smoothed[primary.label], primary.smoothed, now)

    def _care(self, primary: TrackedFace | None, now: float) -> list[Event]:
        """The primary face's smoothed mood to this session's care policy; the card it offers.

        After the result, so care never delays the live view; the card goes out before its
        voice is rendered (by the service's speech queue), so speech never delays the card.
        A failure here is logged and the stream goes on.
        """
        care = self.care
        if care is None:
            return []
        try:
            if primary is None:
                action = care.observe(None, 0.0, now)
            else:
                action = care.observe(primary.label, primary.smoothed[primary.label], now)
            if action is None:
                return []
            card = care.render(action)
            if self.history is not None:
                self.service.history.care(self.history, action, now)
        except Exception:
            log.exception("the care step failed")
            return []
        events: list[Event] = [("care", card)]
        if card["speech"] and card["speech"]["engine"] == "pending":
            voice = self.service.speak(self.sid, card)
            if voice is not None:  # already rendered: it follows the card at once
                events.append(("care_speech", voice))
        return events

    # --- the page's choices --------------------------------------------------------------------

    def configure(self, payload: object, now: float) -> Iterator[Event]:
        """The page's choices: backend, language, care and history settings.

        A generator, because switching to a backend that is still cold says "warming" at once
        and "ready" seconds later. A malformed ``configure`` changes nothing and yields one
        ``bad_settings`` (or ``bad_backend``) error; one that is applied is answered with
        ``configured``, the settings now in force. One at a time per connection.
        """
        if self.closed:
            yield "error", GONE
            return
        if not isinstance(payload, dict):
            yield "error", {"code": "bad_settings", "message": "configure takes an object, see docs/protocol.md."}
            return
        svc = self.service
        backend = payload.get("backend")
        if "backend" in payload:
            try:
                svc.visions.check(backend)
            except ValueError as exc:
                yield "error", {"code": "bad_backend", "message": str(exc)}
                return  # before anything else of this configure is applied
        with self._configuring:
            try:
                self._configure_care(payload, now)
            except (ValueError, TypeError) as exc:
                yield "error", {"code": "bad_settings", "message": str(exc)}
                return
            except Exception:
                log.exception("applying the page's settings failed")
                yield "error", {"code": "bad_settings", "message": "The settings could not be applied."}
                return
            if "backend" in payload:
                yield from self._switch_backend(backend)
            yield "configured", self.in_force(payload)

    def in_force(self, asked: dict | None = None) -> dict:
        """The settings this connection runs with; ``clamped`` names what was asked out of range."""
        care, asked = self.care, asked or {}
        settings = {"history": self.keep_history}
        clamped = []
        if care is not None:
            chosen = care.settings
            settings.update(
                voice=chosen.voice, music=chosen.music, sensitivity=chosen.sensitivity, cooldown_s=chosen.cooldown_s
            )
            wanted = (asked.get("settings") or {}).get("cooldown_s")
            if wanted is not None and wanted != chosen.cooldown_s:
                clamped.append("cooldown_s")
        return {
            "backend": self.backend or self.service.visions.default,
            "locale": care.locale if care is not None else self.service.default_locale,
            "has_profile": self.profile is not None,
            "calibrated": self.calibrated(),
            "learned": care.learned(self.service.clock()) if care is not None else {},
            "settings": settings,
            "clamped": clamped,
        }

    def _configure_care(self, payload: dict, now: float) -> None:
        locale, settings = payload.get("locale"), payload.get("settings")
        if locale is not None and locale not in self.service.languages:
            raise ValueError(f"locale must be one of {', '.join(self.service.languages)}")
        if "profile" in payload:
            raise ValueError("profile is not sent: the server reads it from the emocare_profile cookie")
        if settings is not None and not isinstance(settings, dict):
            raise ValueError("settings must be an object")
        keep = (settings or {}).get("history", self.keep_history)
        if not isinstance(keep, bool):
            raise ValueError("setting 'history' must be true or false")
        forget = payload.get("forget_learned", False)
        if not isinstance(forget, bool):
            raise ValueError("forget_learned must be true or false")
        if self.care is not None and (locale or settings is not None):
            self.care.configure(locale=locale, settings=settings)
        if forget and self.care is not None:
            self.care.forget_learned()
        self.keep_history = keep
        self.configured = True
        self._follow_profile(now)

    def _follow_profile(self, now: float) -> None:
        """Keep the history session in step with the page: on or off, its profile and language.

        Nothing is recorded for a connection without a profile (it would belong to no one, or
        to a shared "default"), nor before the page has sent its settings.
        """
        history, care, writer = self.history, self.care, self.service.history
        if not self.keep_history or not self.configured or self.profile is None:
            if history is not None:
                writer.end(history, now)
                self.history = None
            return
        if history is None:
            self.history = history = HistorySession(profile=self.profile, backend=self.backend)
        if care is not None:
            history.locale = care.locale

    def _switch_backend(self, backend: str) -> Iterator[Event]:
        """Switch this session's analyzer (already validated), once it has warmed up.

        A backend that fails to load leaves the session on the one it had.
        """
        svc = self.service
        vision = svc.visions.get(backend)
        if not vision.ready:
            yield "status", svc.status(backend)  # "warming": DeepFace takes seconds
            failure = yield from self._warm_up(backend, vision)
            if failure is not None:
                log.error("warming up the %s backend failed", backend, exc_info=failure)
                yield (
                    "status",
                    {
                        **svc.status(self.backend),
                        "state": "error",
                        "code": "backend_failed",
                        "requested": backend,
                        "message": f"The {backend} model failed to load; still using the previous one.",
                    },
                )
                return
        self.backend = backend
        yield "status", svc.status(backend)

    def _warm_up(self, backend: str, vision) -> Generator[Event, None, Exception | None]:
        """Warm ``vision`` up on an inference worker; meanwhile, say how far a download it waits
        on has come (DeepFace fetches its weights on first use: 6 MB, a minute on a slow line),
        every ``DOWNLOAD_REPORT_S``. Returns the exception warming up raised, or None.

        The waiting is a thread's (a green thread under eventlet) so that this generator can
        hand the web layer the progress while the worker downloads.
        """
        done, failures = threading.Event(), []

        def warm_up() -> None:
            try:
                self.service.offload(vision.warm_up)
            except Exception as exc:  # reported by the caller, to this page
                failures.append(exc)
            finally:
                done.set()

        threading.Thread(target=warm_up, name=f"emocare-warm-{backend}", daemon=True).start()
        shown = None
        while not done.wait(DOWNLOAD_REPORT_S):
            progress = download_progress(backend)
            if progress is not None and progress != shown:
                shown = progress
                yield "status", {**self.service.status(backend), "download": progress}
        return failures[0] if failures else None

    def feedback(self, payload: object, now: float) -> list[Event]:
        """``{"id": "care-12", "verdict": "helpful" | "not_now" | "not_me"}`` for a care card, once;
        with "not_me", optionally ``"felt"``: the expression the person feels instead."""
        payload = payload if isinstance(payload, dict) else {}
        try:
            if self.closed or self.care is None:
                raise KeyError("care is off")
            felt = payload.get("felt")
            if felt is not None and not isinstance(felt, str):
                raise ValueError("felt must be the name of an expression")
            action = self.care.feedback(str(payload.get("id")), payload.get("verdict"), now, felt)
        except (KeyError, ValueError, TypeError) as exc:
            return [("error", {"code": "bad_feedback", "message": str(exc).strip("'\"")})]
        if self.history is not None:
            self.service.history.feedback(action.id, payload["verdict"], now)
        return [("care_feedback", {"id": action.id, "verdict": payload["verdict"], "ok": True})]

    def unreadable(self, reason: str, now: float) -> list[Event]:
        """A message the transport could not parse (malformed JSON, an integer of more than 100
        digits, an unknown packet type): told ``bad_request`` at most once a second, and
        counted like a refused frame, so a client that keeps sending them is disconnected."""
        with self._lock:
            self.counters.errors += 1
            self._refusals.append(now)
        if self._flooding(now):
            return self._cut_off({"code": "bad_request", "message": GARBAGE_FLOOD}, now)
        if self._should_notify_busy(now):
            message = f"The message could not be read ({reason[:80]}); see docs/protocol.md."
            return [("error", {"code": "bad_request", "message": message})]
        return []

    # --- the profile's data deleted, the connection closed ----------------------------------

    def forget(self, profile: str) -> str | None:
        """The person deleted ``profile``'s data: go on with nothing learned, in a new history
        session; returns the id of the session left behind (its late writes are dropped)."""
        if self.care is not None and self.care.profile == profile:
            self.care.forget()
        old = self.history
        if old is None or old.profile != profile:
            return None
        self.history = HistorySession(profile=profile, locale=old.locale, backend=old.backend)
        return old.id

    def end(self, now: float) -> None:
        self.closed = True
        if self.history is not None:
            self.service.history.end(self.history, now)
            self.history = None

    # --- a fair share: the rate of frames, one in flight ----------------------------------------

    def _over_budget(self, frame: object, now: float, frames: int = 1) -> str | None:
        """None if the message fits this connection's budgets (frames and bytes a second), which
        it is charged to; otherwise the reason, and the refusal counts toward a flood."""
        size = len(frame) if isinstance(frame, (bytes, bytearray, memoryview)) else 0
        with self._lock:
            if not self._frames.can_take(frames, now):
                reason = RATE_LIMITED["message"]
            elif not self._bytes.can_take(size, now):
                reason = BYTES_LIMITED
            else:
                self._frames.take(frames)
                self._bytes.take(size)
                return None
            self.counters.dropped += 1
            self._refusals.append(now)
            return reason

    def _cut_off(self, error: dict, now: float) -> list[Event]:
        """A flooder: told why, its connection closed, its address paused by the service."""
        self.service.pause(self.address, now)
        return [("error", error), (CLOSE, {})]

    def _flooding(self, now: float) -> bool:
        with self._lock:
            self._refusals = [t for t in self._refusals if now - t < FLOOD_WINDOW_S]
            return len(self._refusals) >= FLOOD_LIMIT

    def _try_begin(self) -> bool:
        with self._lock:
            if self._in_flight:
                self.counters.dropped += 1
                return False
            self._in_flight = True
            return True

    def _end(self, ok: bool) -> None:
        with self._lock:
            self._in_flight = False
            if ok:
                self.counters.frames += 1
            else:
                self.counters.errors += 1

    def _should_notify_busy(self, now: float) -> bool:
        with self._lock:
            if now - self._last_busy_notice >= BUSY_NOTICE_S:
                self._last_busy_notice = now
                return True
            return False


GONE = {"code": "no_session", "message": "This connection is closed: reload the page."}
RATE_LIMITED = {"code": "rate_limited", "message": f"More than {FRAME_RATE:.0f} frames a second: frames are dropped."}
BYTES_LIMITED = f"More than {BYTE_RATE:,.0f} bytes of frames a second: frames are dropped."
FLOODED = "Frames kept coming far faster than allowed: the connection is closed for 30 s."
GARBAGE_FLOOD = "Unreadable messages kept coming: the connection is closed for 30 s."
BUSY_MESSAGE = "One frame at a time: wait for the previous result."
UNSUPPORTED = "Only EmoCare's own model can be calibrated: choose it in the settings."


@dataclass
class TokenBucket:
    """``capacity`` tokens at once, refilled at ``rate`` a second; time is passed in."""

    capacity: float
    rate: float
    refilled: float | None = None

    def __post_init__(self) -> None:
        self.tokens = float(self.capacity)

    def can_take(self, amount: float, now: float) -> bool:
        """Refill to ``now``; can ``amount`` be taken? (More than the capacity is charged as the
        capacity: one oversized frame is refused for its size elsewhere, not for ever here.)"""
        if self.refilled is not None:
            self.tokens = min(self.capacity, self.tokens + (now - self.refilled) * self.rate)
        self.refilled = now
        return self.tokens >= min(amount, self.capacity)

    def take(self, amount: float) -> None:
        self.tokens = max(0.0, self.tokens - min(amount, self.capacity))
