"""Writing the history from the live stream: queued, batched, off the event loop.

The Socket.IO handlers only put small tuples on a queue (microseconds). A background task
flushes the queue every ``flush_interval`` seconds in one transaction, through ``run_blocking``
(eventlet's tpool under eventlet, so SQLite never blocks the hub). With a 1 s flush and at most
one sample a second per session, a ``kill -9`` loses at most the last 2 s of samples.

When a write fails (a full disk, a locked or unreachable database) the batch stays in memory
and is retried at the next flush: the live page keeps working and nothing is dropped until
the in-memory backlog passes ``max_backlog`` operations; then the oldest samples go first,
never the rows that open sessions. An operation the database refuses for its content is
dropped alone (:meth:`HistoryStore.write_batch`), so it cannot block the rest for ever.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

from .store import HistoryStore, Sample

log = logging.getLogger(__name__)


@dataclass
class HistorySession:
    """What the writer knows of one live connection."""

    profile: str = "default"
    locale: str | None = None
    backend: str | None = None
    id: str = field(default_factory=lambda: str(uuid.uuid4()))
    opened: bool = False
    last_sample: float = float("-inf")


def _call(fn, *args):
    return fn(*args)


class HistoryWriter:
    def __init__(
        self,
        store: HistoryStore,
        flush_interval: float = 1.0,
        sample_interval: float = 1.0,
        run_blocking: Callable = _call,
        purge_interval: float = 3600.0,
        max_backlog: int = 200_000,
    ) -> None:
        self.store = store
        self.flush_interval = flush_interval
        self.sample_interval = sample_interval
        self.run_blocking = run_blocking
        self.purge_interval = purge_interval
        self.max_backlog = max_backlog
        self._queue: queue.Queue = queue.Queue()
        self._backlog: list[tuple[str, dict]] = []
        self._stop = threading.Event()
        self._flush_lock = threading.Lock()
        self._last_error_log = float("-inf")
        self._dropped_sessions: set[str] = set()
        self.written = 0
        self.refused = 0
        self.failures = 0
        #: wall-clock time of the first failed write since the last good one; None when writing works
        self.failing_since: float | None = None
        self.last_error: str | None = None

    # --- called from the live stream (cheap) ------------------------------------------------

    def _open(self, session: HistorySession, t: float) -> None:
        if not session.opened:
            session.opened = True
            self._queue.put(
                (
                    "session",
                    {
                        "id": session.id,
                        "profile": session.profile,
                        "started_at": t,
                        "locale": session.locale,
                        "backend": session.backend,
                    },
                )
            )

    def sample(self, session: HistorySession, emotion: str, confidence: float, scores: dict, t: float) -> bool:
        """Queue a mood sample unless this session had one less than ``sample_interval`` ago."""
        if t - session.last_sample < self.sample_interval:
            return False
        session.last_sample = t
        self._open(session, t)
        self._queue.put(("sample", Sample(session.id, t, emotion, confidence, scores).row()))
        return True

    def care(self, session: HistorySession, action, t: float) -> None:
        self._open(session, t)
        self._queue.put(
            (
                "care",
                {
                    "id": action.id,
                    "session_id": session.id,
                    "ts": t,
                    "kind": action.kind,
                    "emotion": action.emotion,
                    "message_id": action.message_id,
                    "music_clip": action.music_clip,
                    "exercise_id": action.exercise_id,
                },
            )
        )

    def feedback(self, action_id: str, verdict: str, t: float) -> None:
        self._queue.put(("feedback", {"id": action_id, "feedback": verdict, "feedback_ts": t}))

    def end(self, session: HistorySession, t: float) -> None:
        if session.opened:
            self._queue.put(("end", {"id": session.id, "ended_at": t}))

    # --- the background side ----------------------------------------------------------------

    def delete_profile(self, profile: str, forget_live: Callable[[], set[str]]) -> int:
        """Delete ``profile``'s history for good, even while pages of it are live.

        First everything queued is written; if that fails the error is raised and nothing has
        changed. Then, with the writer held so no flush can slip in between,
        ``forget_live()`` moves the live pages of the profile to new sessions and returns the
        ids of their old ones (whose late writes are dropped from now on), and the rows are
        deleted. Returns the sessions removed.
        """
        with self._flush_lock:
            self._flush_locked(raise_errors=True)
            self._dropped_sessions |= forget_live()
            return self.run_blocking(self.store.delete_profile, profile)

    def release_profile(self, forget_live: Callable[[], set[str]]) -> None:
        """Another process is deleting a profile: let go of its live sessions here first.

        ``forget_live()`` moves this process's live pages of the profile to new sessions; from
        then on, nothing of their old sessions is written, queued or not. Holding the writer,
        no flush is half-way when this returns, so the other process may delete the rows.
        """
        with self._flush_lock:
            self._dropped_sessions |= forget_live()

    def _keep(self, kind: str, data: dict) -> bool:
        owner = data["id"] if kind in ("session", "end") else data.get("session_id")
        return owner not in self._dropped_sessions

    def flush(self, raise_errors: bool = False) -> int:
        """Write everything queued (and any backlog) in one transaction; returns rows written.

        With ``raise_errors`` a failed write is raised after the batch is kept for retry: a
        caller that must know the history is on disk (delete) can refuse to go on.
        """
        with self._flush_lock:
            return self._flush_locked(raise_errors)

    def _flush_locked(self, raise_errors: bool) -> int:
        batch = self._backlog
        self._backlog = []
        while True:
            try:
                batch.append(self._queue.get_nowait())
            except queue.Empty:
                break
        if self._dropped_sessions:
            batch = [op for op in batch if self._keep(*op)]
        if not batch:
            return 0
        try:
            refused = self.run_blocking(self.store.write_batch, batch) or 0
        except Exception as exc:  # keep the data; try again at the next flush
            self.failures += 1
            self.failing_since = self.failing_since or time.time()
            self.last_error = str(exc).splitlines()[0][:200]
            self._backlog = self._trim(batch)
            now = time.monotonic()
            if now - self._last_error_log > 60:
                self._last_error_log = now
                log.error("writing the mood history failed (%s); %d operations kept for retry", exc, len(batch))
            if raise_errors:
                raise
            return 0
        self.refused += refused
        self.written += len(batch) - refused
        self.failing_since = self.last_error = None
        return len(batch) - refused

    def _trim(self, batch: list[tuple[str, dict]]) -> list[tuple[str, dict]]:
        """The backlog, cut to ``max_backlog`` by dropping the oldest samples first."""
        excess = len(batch) - self.max_backlog
        if excess <= 0:
            return batch
        log.error("history backlog over %d operations: dropping the %d oldest samples", self.max_backlog, excess)
        kept = []
        for op in batch:
            if excess > 0 and op[0] == "sample":
                excess -= 1
                continue
            kept.append(op)
        return kept

    def run(self) -> None:
        """The background loop: flush every interval, purge old history now and then."""
        last_purge = float("-inf")
        while not self._stop.is_set():
            self._stop.wait(self.flush_interval)
            self.flush()
            if time.monotonic() - last_purge > self.purge_interval:
                last_purge = time.monotonic()
                try:
                    removed = self.run_blocking(self.store.purge)
                    if removed:
                        log.info("retention: removed %d old sessions", removed)
                except Exception:
                    log.exception("purging old history failed")

    def health(self) -> dict:
        """For ``/healthz`` and the history page: is the history being written, and since when not."""
        return {
            "ok": self.failing_since is None,
            "failing_since": self.failing_since,
            "error": self.last_error,
            "waiting": len(self._backlog) + self._queue.qsize(),
        }

    def close(self) -> None:
        self._stop.set()
        self.flush()
