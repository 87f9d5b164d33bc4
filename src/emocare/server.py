"""Serving the app: a production server by default, Werkzeug's only when asked for.

Measured with ``bench/serving.py`` (docs/serving.md), the default is Gunicorn's threaded
worker (``gthread``) in Flask-SocketIO's ``threading`` mode, WebSocket through
simple-websocket: one process (Socket.IO needs all of a client's requests on the process that
holds its session; several processes are the cluster deployment's business), one thread per
connection. The other choices:

- ``eventlet``: eventlet's own WSGI server, which Flask-SocketIO runs in production too; kept
  because the project card asks for eventlet. It must monkey-patch the standard library
  before anything else imports it, which is why the command line calls :func:`serve` before
  the app is imported.
- ``dev``: Werkzeug's development server (``--dev``), which its authors say is not for
  production: for debugging only.
"""

from __future__ import annotations

import logging
import signal
import sys
from collections.abc import Callable, Mapping

log = logging.getLogger(__name__)

SERVERS = ("gunicorn", "eventlet", "dev")
#: Gunicorn threads beyond the connection caps: page loads, ``/device/`` downloads, health
#: checks. Each open WebSocket holds a thread for its lifetime, so the threads must cover
#: every connection the caps admit, or connections past them would wait unanswered.
HTTP_THREADS = 4


def threads_for(settings: Mapping) -> int:
    """Gunicorn threads for these caps: ``MAX_CONNECTIONS + MAX_DEVICE_CONNECTIONS``, plus the
    sockets a refused client may keep open to be told why (``TRANSPORT_SPARE``), plus
    ``HTTP_THREADS``. With the caps before analysis on the device (60 and none): 66, where a
    fixed 64 left two spare sockets and two page requests to share two threads."""
    from .live.service import TRANSPORT_SPARE

    caps = int(settings["MAX_CONNECTIONS"]) + int(settings["MAX_DEVICE_CONNECTIONS"])
    return caps + TRANSPORT_SPARE + HTTP_THREADS


def connection_threads(config: str = "default", overrides: Mapping | None = None) -> int:
    """:func:`threads_for` the caps this configuration ends up with: its class, the instance
    folder's config.py, the environment and ``overrides``, layered as ``create_app`` does."""
    from flask import Flask

    from .app import load_config

    probe = Flask("emocare-config")
    load_config(probe, config, overrides or {})
    return threads_for(probe.config)


def serve(
    host: str = "127.0.0.1",
    port: int = 5000,
    server: str = "gunicorn",
    config: str = "default",
    threads: int | None = None,
    overrides: Mapping | None = None,
) -> None:
    """Make the app and serve it until stopped (Ctrl+C or SIGTERM, which write the last history).

    ``threads`` (Gunicorn's): None sizes them from the connection caps (:func:`connection_threads`).
    """
    if server not in SERVERS:
        raise ValueError(f"server must be one of {', '.join(SERVERS)}")
    if server == "eventlet":
        import eventlet

        eventlet.monkey_patch()
    settings = {**(overrides or {}), "ASYNC_MODE": "eventlet" if server == "eventlet" else "threading"}
    if host not in ("0.0.0.0", "::", ""):  # a named address: pages reached by it are ours
        settings["SERVE_HOST"] = host

    def make_app():
        from .app import create_app

        return create_app(config, **settings)

    if server == "gunicorn":
        _serve_gunicorn(make_app, host, port, threads or connection_threads(config, settings))
        return
    from .extensions import socketio

    app = make_app()
    # SIGTERM (service managers, `kill`) stops like Ctrl+C, so exit handlers write the last history
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    log.info("EmoCare on http://%s:%d (%s server)", host, port, server)
    options = {"allow_unsafe_werkzeug": True} if server == "dev" else {}
    socketio.run(app, host=host, port=port, use_reloader=False, log_output=server == "dev", **options)


def _serve_gunicorn(make_app: Callable, host: str, port: int, threads: int) -> None:
    from gunicorn.app.base import BaseApplication

    class Application(BaseApplication):
        """Gunicorn run from Python: the app is made in the worker, after the fork, so that
        its threads (history writer, inference pool) live in the process that serves."""

        def load_config(self) -> None:
            settings = {
                "bind": f"{host}:{port}",
                "workers": 1,
                "worker_class": "gthread",
                "threads": threads,
                # gthread's own bound on open connections (1000 by default): never below the threads
                "worker_connections": max(1000, threads),
                # a WebSocket stays open as long as the page; gthread's timeout is for idle workers
                "timeout": 120,
                "graceful_timeout": 5,
                "keepalive": 5,
                "accesslog": None,
                # no gunicornc control socket in $HOME: one app process per server, nothing to steer
                "control_socket_disable": True,
                "worker_exit": _close_history,
            }
            for key, value in settings.items():
                self.cfg.set(key, value)

        def load(self):
            app = make_app()
            log.info("EmoCare on http://%s:%d (gunicorn, %d threads)", host, port, threads)
            needed = threads_for(app.config)
            if threads < needed:  # an explicit --threads below the caps
                log.warning(
                    "%d threads are fewer than the connection caps need (%d): give --threads %d or lower the caps",
                    threads,
                    needed,
                    needed,
                )
            return app

    Application().run()


def _close_history(_server, worker) -> None:
    """Gunicorn's worker_exit hook: write what the history writer still holds."""
    app = getattr(worker, "wsgi", None)
    services = getattr(app, "extensions", {}).get("emocare") if app is not None else None
    if services is not None:
        services.history.close()
