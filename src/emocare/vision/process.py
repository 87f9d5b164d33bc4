"""A process-pool variant of :class:`~.service.VisionService`, kept for measurement.

Separate processes sidestep the GIL, but each costs its own model and interpreter and every
frame is pickled across; docs/serving.md shows why worker threads won on this machine. The
web layer can still select it with ``OFFLOAD="process"`` (threading mode only).
"""

from __future__ import annotations

import concurrent.futures
import functools
import multiprocessing

from .frames import FrameLimits, check_frame
from .service import VisionService
from .types import Analysis

_service: VisionService | None = None


def _init_worker(name: str, options: dict, limits: FrameLimits) -> None:
    global _service
    from . import build_analyzer

    _service = VisionService(functools.partial(build_analyzer, name, **options), limits)
    _service.warm_up()


def _analyze(data: bytes) -> Analysis:
    assert _service is not None, "worker not initialised"
    return _service.analyze_bytes(data)


class ProcessVisionService:
    """Same calls as ``VisionService``; the work runs in ``workers`` child processes."""

    def __init__(self, name: str, options: dict, workers: int = 2, limits: FrameLimits = FrameLimits()) -> None:
        self.limits = limits
        self._pool = concurrent.futures.ProcessPoolExecutor(
            max_workers=workers,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_init_worker,
            initargs=(name, options, limits),
        )
        self.backend = name
        self.ready = False
        self.warm_up_ms: float | None = None

    def warm_up(self) -> float:
        import time

        started = time.perf_counter()
        self._pool.submit(len, b"").result()
        self.warm_up_ms = (time.perf_counter() - started) * 1000
        self.ready = True
        return self.warm_up_ms

    def check(self, data: object) -> bytes:
        return check_frame(data, self.limits)

    def analyze_bytes(self, data: object) -> Analysis:
        return self._pool.submit(_analyze, data).result()

    def shutdown(self) -> None:
        self._pool.shutdown(cancel_futures=True)
