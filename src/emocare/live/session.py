"""Live sessions and the one-frame-in-flight rule.

The browser sends its next frame only when the previous result arrives. A client that ignores
that (a bug, or a flood) must not queue work for itself or slow anyone else: a frame that
arrives while one is in flight for the same client is dropped and counted.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

from ..vision.smoothing import SmoothingConfig
from ..vision.tracking import FaceTracker, TrackedFace
from ..vision.types import Analysis


@dataclass
class LiveSession:
    sid: str
    started: float = field(default_factory=time.time)
    frames: int = 0
    dropped: int = 0
    errors: int = 0
    last_busy_notice: float = 0.0
    #: The analyzer backend this page chose; None means the server's default.
    backend: str | None = None
    #: This connection's care state (a ``CareSession``), when the app has a care engine.
    care: object | None = None
    #: This connection's place in the mood history (a ``HistorySession``).
    history: object | None = None
    #: False when the person switched the mood history off in the page's settings.
    keep_history: bool = True
    tracker: FaceTracker = field(default_factory=FaceTracker)
    #: Held while the page's ``configure`` is applied: two at once must not interleave.
    configuring: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _in_flight: bool = False
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def try_begin(self) -> bool:
        """Claim the client's single in-flight slot; False means drop this frame."""
        with self._lock:
            if self._in_flight:
                self.dropped += 1
                return False
            self._in_flight = True
            return True

    def end(self, ok: bool = True) -> None:
        with self._lock:
            self._in_flight = False
            if ok:
                self.frames += 1
            else:
                self.errors += 1

    def track(self, analysis: Analysis, t: float | None = None) -> list[TrackedFace]:
        """Give each face of a new frame its track id and smoothed mood (one frame at a time)."""
        return self.tracker.update(
            analysis.faces, time.monotonic() if t is None else t, (analysis.width, analysis.height)
        )

    def should_notify_busy(self, interval: float = 1.0) -> bool:
        """Tell a flooding client at most once per ``interval`` seconds, not once per frame."""
        now = time.monotonic()
        with self._lock:
            if now - self.last_busy_notice >= interval:
                self.last_busy_notice = now
                return True
            return False


class LiveHub:
    """All open sessions, by Socket.IO sid."""

    def __init__(self, smoothing: SmoothingConfig = SmoothingConfig(), care_factory=None, history_factory=None) -> None:
        self.smoothing = smoothing
        self.care_factory = care_factory
        self.history_factory = history_factory
        self._sessions: dict[str, LiveSession] = {}
        self._lock = threading.Lock()

    def open(self, sid: str) -> LiveSession:
        with self._lock:
            session = self._sessions[sid] = self._new(sid)
            return session

    def _new(self, sid: str) -> LiveSession:
        care = self.care_factory() if self.care_factory else None
        history = self.history_factory() if self.history_factory else None
        return LiveSession(sid, tracker=FaceTracker(self.smoothing), care=care, history=history)

    def get(self, sid: str) -> LiveSession | None:
        """The open session of ``sid``; None once it has disconnected (never a new one)."""
        with self._lock:
            return self._sessions.get(sid)

    def sessions(self) -> list[LiveSession]:
        with self._lock:
            return list(self._sessions.values())

    def close(self, sid: str) -> LiveSession | None:
        with self._lock:
            return self._sessions.pop(sid, None)

    def __len__(self) -> int:
        with self._lock:
            return len(self._sessions)
