"""The log limits: one record of a kind per interval, a count of the rest, no client tracebacks."""

from __future__ import annotations

import logging

from emocare.logs import RateLimit


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def record(msg: str = "message handler error", exc: Exception | None = None) -> logging.LogRecord:
    exc_info = (type(exc), exc, None) if exc else None
    return logging.LogRecord("engineio.server", logging.ERROR, __file__, 1, msg, None, exc_info)


def test_one_record_of_a_kind_per_interval_then_a_count():
    clock = Clock()
    limit = RateLimit(interval=10, clock=clock)
    assert limit.filter(record())
    assert not any(limit.filter(record()) for _ in range(499))
    assert limit.filter(record("another kind"))  # kinds are limited apart
    clock.now = 10.5
    summary = record()
    assert limit.filter(summary) and "[499 more like this in the last 10 s]" in summary.getMessage()


def test_transport_tracebacks_become_one_line():
    limit = RateLimit(strip_tracebacks=True)
    garbage = record(exc=ValueError("invalid literal for int() with base 10: b'\\x00'"))
    assert limit.filter(garbage)
    assert garbage.exc_info is None and "ValueError: invalid literal" in garbage.getMessage()


def test_info_records_pass_when_only_warnings_are_limited():
    limit = RateLimit(min_level=logging.WARNING, clock=Clock())
    info = logging.LogRecord("emocare", logging.INFO, __file__, 1, "client left", None, None)
    assert all(limit.filter(info) for _ in range(5))
