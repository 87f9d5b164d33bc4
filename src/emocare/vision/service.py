"""The vision service: bytes in, an :class:`Analysis` out, safe to call from many threads.

Analyzers hold a tflite interpreter and an OpenCV cascade, neither of which may be shared
between threads, so each OS thread that calls :meth:`VisionService.analyze_bytes` gets its own
analyzer, built on first use from ``factory``. The callers (the web layer) run this on a small
fixed set of worker threads, so only a few analyzers ever exist.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections.abc import Callable
from typing import Protocol

import numpy as np

from .frames import FrameLimits, check_frame, decode_frame
from .types import Analysis, Face

log = logging.getLogger(__name__)


class Analyzer(Protocol):
    """Anything that turns a BGR frame into faces. Used by one thread at a time."""

    name: str

    def analyze(self, image: np.ndarray) -> list[Face]: ...

    def warm_up(self) -> None: ...


class VisionService:
    """Decodes frames and runs a per-thread analyzer on them. Knows nothing of Flask."""

    def __init__(self, factory: Callable[[], Analyzer], limits: FrameLimits = FrameLimits()):
        self._factory = factory
        self._local = threading.local()
        self.limits = limits
        self._ready = threading.Event()
        self.backend = ""
        self.notice: str | None = None
        self.warm_up_ms: float | None = None
        #: The population's relaxed face in this model's log-scores (its card's), against which
        #: a person's own is measured (``reference``); None for models without one (fer, DeepFace).
        self.relaxed_reference: np.ndarray | None = None
        #: Which model that reference belongs to: a baseline made with another model is not used.
        self.model_id: str | None = None

    @property
    def ready(self) -> bool:
        return self._ready.is_set()

    def _analyzer(self) -> Analyzer:
        analyzer = getattr(self._local, "analyzer", None)
        if analyzer is None:
            analyzer = self._factory()
            analyzer.warm_up()
            self._local.analyzer = analyzer
            self.backend = analyzer.name
            self.notice = getattr(analyzer, "notice", None)
            classifier = getattr(analyzer, "classifier", None)
            reference = getattr(getattr(classifier, "card", None), "relaxed_mean_log", None)
            if reference is not None:
                self.relaxed_reference = reference
                # the reference differs from one model (and way of running it) to another
                self.model_id = hashlib.sha256(np.asarray(reference, "<f8").tobytes()).hexdigest()[:16]
            log.debug("built a %s analyzer for thread %s", analyzer.name, threading.current_thread().name)
        return analyzer

    def warm_up(self) -> float:
        """Load the model and run it once, so the page only says "live" once it is fast."""
        started = time.perf_counter()
        self._analyzer()
        self.warm_up_ms = (time.perf_counter() - started) * 1000
        self._ready.set()
        log.info("vision backend %r warmed up in %.0f ms", self.backend, self.warm_up_ms)
        return self.warm_up_ms

    def analyze_image(self, image: np.ndarray) -> Analysis:
        started = time.perf_counter()
        faces = self._analyzer().analyze(image)
        height, width = image.shape[:2]
        return Analysis(
            faces=faces,
            width=width,
            height=height,
            server_ms=(time.perf_counter() - started) * 1000,
            backend=self.backend,
        )

    def check(self, data: object) -> bytes:
        """Refuse a bad frame from its header; cheap, so callers run it before queueing work."""
        return check_frame(data, self.limits)

    def analyze_bytes(self, data: object) -> Analysis:
        """Decode and analyse one frame; raises :class:`~.frames.FrameError` on bad input."""
        started = time.perf_counter()
        image = decode_frame(data, self.limits)
        analysis = self.analyze_image(image)
        analysis.server_ms = (time.perf_counter() - started) * 1000
        return analysis
