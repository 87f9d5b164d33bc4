"""Only answer requests addressed to a host name this server is known by.

A page on another site can make a browser send requests to 127.0.0.1:5000 under its own name
(DNS rebinding): the ``Host`` and ``Origin`` headers then both carry the attacker's name, so an
origin check that compares them passes, and the camera stream and the history export would
answer. Checking ``Host`` against an allow-list refuses those requests, for the pages and for
Socket.IO alike (the middleware sits outside both).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from flask import Flask

log = logging.getLogger(__name__)

#: Always trusted: the names a browser on this machine uses.
LOCAL_HOSTS = ("localhost", "127.0.0.1", "::1")


def hostname(host: str) -> str:
    """The name in a ``Host`` header, without its port (``[::1]:5000`` → ``::1``)."""
    host = host.strip().lower()
    if host.startswith("["):
        return host[1 : host.find("]")] if "]" in host else host
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def host_is_trusted(host: str, trusted: Iterable[str]) -> bool:
    """Exact names, or every subdomain of a name written with a leading dot (``.example.org``)."""
    name = hostname(host)
    for allowed in trusted:
        allowed = allowed.strip().lower()
        if name == allowed or (allowed.startswith(".") and (name == allowed[1:] or name.endswith(allowed))):
            return True
    return False


class TrustedHosts:
    """WSGI middleware: 400 for a request whose ``Host`` is not in the allow-list."""

    def __init__(self, app, hosts: Iterable[str]) -> None:
        self.app = app
        self.hosts = [*LOCAL_HOSTS, *hosts]
        self._refused: set[str] = set()

    def __call__(self, environ, start_response):
        host = environ.get("HTTP_HOST") or environ.get("SERVER_NAME", "")
        if host_is_trusted(host, self.hosts):
            return self.app(environ, start_response)
        if host not in self._refused and len(self._refused) < 100:  # say it once per name
            self._refused.add(host)
            log.warning("refused a request for host %r (not in TRUSTED_HOSTS)", host[:100])
        body = b"Unknown host: add it to EMOCARE_TRUSTED_HOSTS to serve it.\n"
        start_response(
            "400 Bad Request", [("Content-Type", "text/plain; charset=utf-8"), ("Content-Length", str(len(body)))]
        )
        return [body]


def init_app(app: Flask) -> None:
    """Wrap the whole application (Socket.IO included): call after ``socketio.init_app``."""
    trusted = [*app.config["TRUSTED_HOSTS"], *([app.config["SERVE_HOST"]] if app.config.get("SERVE_HOST") else [])]
    app.wsgi_app = TrustedHosts(app.wsgi_app, trusted)
