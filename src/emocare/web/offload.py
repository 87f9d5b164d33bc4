"""Running blocking inference without stalling the Socket.IO loop.

Measured (docs/serving.md): analysing inline in an eventlet handler made a ping sent every
50 ms wait 195 ms at the median with five clients streaming (6 ms with one). Under
``threading`` each event already has its own thread, but models are per thread, so work
goes to a small fixed pool of worker threads that each keep one analyzer. Under
``eventlet`` the same role is played by eventlet's ``tpool`` (real OS threads the hub can
wait on without blocking).
"""

from __future__ import annotations

import concurrent.futures
import logging
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")
log = logging.getLogger(__name__)


class Offloader:
    """``offloader(fn, *args)`` runs ``fn`` on a worker and returns its result (or raises)."""

    def __init__(self, async_mode: str, workers: int = 2, kind: str = "thread") -> None:
        self.kind = kind
        self._executor: concurrent.futures.ThreadPoolExecutor | None = None
        if kind in ("inline", "process"):
            # "process": the service itself hands work to child processes; the waiting is
            # done by the handler's own thread.
            self._run = call_inline
        elif async_mode == "eventlet":
            from eventlet import tpool

            self._run = tpool.execute
            self.kind = "tpool"
        elif kind == "thread":
            self._executor = concurrent.futures.ThreadPoolExecutor(
                max_workers=workers, thread_name_prefix="emocare-infer"
            )
            self._run = self._submit
        else:
            raise ValueError(f"Unknown OFFLOAD {kind!r}: use 'thread', 'process' or 'inline'.")
        log.info("inference offload: %s (%s mode, %d workers)", self.kind, async_mode, workers)

    def _submit(self, fn: Callable[..., T], *args) -> T:
        assert self._executor is not None
        return self._executor.submit(fn, *args).result()

    def __call__(self, fn: Callable[..., T], *args) -> T:
        return self._run(fn, *args)

    def shutdown(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)


def call_inline(fn: Callable[..., T], *args) -> T:
    return fn(*args)
