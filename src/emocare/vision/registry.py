"""One vision service per analyzer backend, created on first use and shared by all sessions.

A page may switch its own session from fer to DeepFace; the other sessions keep theirs. The
services are built lazily because DeepFace imports TensorFlow (seconds, hundreds of MB): nobody
pays for a backend nobody chose.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from . import BACKENDS


class VisionRegistry:
    def __init__(self, make_service: Callable[[str], object], default: str) -> None:
        # a default outside BACKENDS (the tests' "scripted" analyzer) is allowed, not offered
        self.allowed = BACKENDS if default in BACKENDS else (*BACKENDS, default)
        self._make = make_service
        self.default = default
        self._services: dict[str, object] = {}
        self._lock = threading.Lock()

    def check(self, name: object) -> str:
        """The backend ``name`` stands for (None: the default); ValueError if it is not one."""
        if name is None:
            return self.default
        if not isinstance(name, str) or name not in self.allowed:
            raise ValueError(f"Unknown analyzer {name!r}; choose one of {', '.join(BACKENDS)}.")
        return name

    def get(self, name: str | None = None):
        """The service for backend ``name`` (the default when None); raises ValueError if unknown."""
        name = self.check(name)
        with self._lock:
            service = self._services.get(name)
            if service is None:
                service = self._services[name] = self._make(name)
            return service

    def shutdown(self) -> None:
        with self._lock:
            for service in self._services.values():
                if hasattr(service, "shutdown"):
                    service.shutdown()
