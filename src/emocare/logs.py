"""Logging that a client cannot turn into a weapon.

Measured before: 5,000 one-byte binary messages wrote 9.2 MB of log (engineio logs each
malformed packet with a full traceback, about 1.8 KB per byte sent); two 30 s floods wrote
135 MB and 159 MB, and a full disk stops the mood history. So:

- the transport libraries' records lose their tracebacks and are rate limited: the first of a
  kind is written, the rest are counted and summed up in the next one written after
  ``interval`` seconds;
- our own "this failed" records are limited the same way (a kind is the logger and the message
  template, so one bad client or one broken model cannot flood the log either);
- a log file, if configured, is rotated with a size cap.
"""

from __future__ import annotations

import logging
import logging.handlers
import threading
import time
from pathlib import Path

#: Loggers of the libraries that log what clients send them.
TRANSPORT_LOGGERS = ("engineio.server", "socketio.server", "engineio", "socketio", "simple_websocket")
FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class RateLimit(logging.Filter):
    """Lets one record of each kind through per ``interval`` seconds; says how many it held back.

    ``strip_tracebacks`` drops ``exc_info`` (keeping the exception's one-line text): for the
    transport libraries, whose tracebacks describe a client's garbage, not our bug.
    """

    def __init__(
        self,
        interval: float = 10.0,
        strip_tracebacks: bool = False,
        min_level: int = logging.NOTSET,
        clock=time.monotonic,
    ) -> None:
        super().__init__()
        self.interval = interval
        self.min_level = min_level
        self.strip_tracebacks = strip_tracebacks
        self.clock = clock
        self._last: dict[tuple, float] = {}
        self._held: dict[tuple, int] = {}
        self._lock = threading.Lock()

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < self.min_level:
            return True
        key = (record.name, record.levelno, record.msg if isinstance(record.msg, str) else type(record.msg))
        now = self.clock()
        with self._lock:
            if now - self._last.get(key, float("-inf")) < self.interval:
                self._held[key] = self._held.get(key, 0) + 1
                return False
            self._last[key] = now
            held = self._held.pop(key, 0)
            if len(self._last) > 10_000:  # kinds are few; a client inventing new ones is bounded too
                self._last.clear()
        if self.strip_tracebacks and record.exc_info:
            error = record.exc_info[1]
            record.msg = f"{record.getMessage()} ({type(error).__name__}: {str(error)[:200]})"
            record.args = None
            record.exc_info = record.exc_text = None
        if held:
            record.msg = f"{record.getMessage()} [{held} more like this in the last {self.interval:.0f} s]"
            record.args = None
        return True


def configure(level: int = logging.INFO, log_file: str | None = None, max_bytes: int = 10_000_000) -> None:
    """The server's logging: stderr (or a rotated file), with the limits above."""
    root = logging.getLogger()
    if log_file:
        Path(log_file).parent.mkdir(parents=True, exist_ok=True)
        handler: logging.Handler = logging.handlers.RotatingFileHandler(
            log_file, maxBytes=max_bytes, backupCount=3, encoding="utf-8"
        )
    else:
        handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter(FORMAT))
    handler.addFilter(RateLimit(min_level=logging.WARNING))  # warnings and errors, ours included
    root.handlers[:] = [handler]
    root.setLevel(level)
    for name in TRANSPORT_LOGGERS:
        logger = logging.getLogger(name)
        logger.filters[:] = [RateLimit(strip_tracebacks=True)]
