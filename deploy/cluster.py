"""A cluster on one machine: N EmoCare processes on one PostgreSQL and one Redis, behind nginx.

``make cluster N=2`` (``python -m deploy.cluster --servers 2``) starts, from Debian's packages
and in ``instance/cluster/``: PostgreSQL (the history and care preferences), Redis
(Flask-SocketIO's message queue, and the processes' word to one another when a profile is
forgotten), N Gunicorn servers on local ports, and nginx on https://localhost:8443 with a
self-signed certificate. Ctrl+C (or SIGTERM) stops them all, servers first, so that each
writes its last history. The tests and ``bench/serving.py --cluster N`` use :class:`Cluster`.

Several machines are the same parts spread out: docs/deploy.md.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import signal
import sys
import threading
from pathlib import Path

import requests

from .services import Nginx, Postgres, Redis, ServerProcess

log = logging.getLogger(__name__)

ROOT = Path(__file__).resolve().parents[1]


class Cluster:
    """Start and stop the parts in order; ``url`` is nginx's HTTPS address."""

    def __init__(
        self,
        folder: Path,
        servers: int = 2,
        https_port: int = 8443,
        host: str = "127.0.0.1",
        env: dict | None = None,
        nginx_options: dict | None = None,
    ) -> None:
        self.folder = Path(folder)
        self.count = servers
        self.env = env or {}
        self.postgres = Postgres(self.folder / "postgres")
        self.redis = Redis(self.folder / "redis")
        self.servers: list[ServerProcess] = []
        #: what every server process is started with (made by :meth:`start`)
        self.server_env: dict[str, str] = {}
        self.nginx: Nginx | None = None
        self.https_port = https_port
        self.host = host
        self.nginx_options = nginx_options or {}

    @property
    def url(self) -> str:
        return f"https://localhost:{self.https_port}"

    def start(self) -> Cluster:
        self.folder.mkdir(parents=True, exist_ok=True)
        try:
            database = self.postgres.start()
            queue = self.redis.start()
            self.server_env = {
                "EMOCARE_DATABASE_URL": database,
                "EMOCARE_MESSAGE_QUEUE": queue,
                # nginx is the one hop in front: the client's address is its X-Forwarded-For
                "EMOCARE_PROXY_HOPS": "1",
                # the others' sessions are live: only close what has been idle a minute
                "EMOCARE_HISTORY_CLOSE_IDLE_S": "60",
                # one instance folder, so one secret key: a cookie signed by one process is
                # valid on all
                "EMOCARE_INSTANCE_PATH": str(self.folder / "instance"),
                **self.env,
            }
            for _ in range(self.count):
                self.add_server()
            self.nginx = Nginx(
                self.folder / "nginx",
                [s.port for s in self.servers],
                https_port=self.https_port,
                host=self.host,
                **self.nginx_options,
            )
            self.nginx.start()
        except BaseException:
            self.stop()
            raise
        return self

    def add_server(self, port: int | None = None) -> ServerProcess:
        """One more server process, set up as the others (``port``: where nginx expects one,
        after a failure)."""
        server = ServerProcess("gunicorn", self.server_env, log_dir=self.folder / "logs", port=port)
        self.servers.append(server)
        return server

    @property
    def local_url(self) -> str:
        """nginx without TLS, on the loopback only: for the bench's and tests' Python clients."""
        return f"http://127.0.0.1:{self.nginx.local_port}"

    @property
    def certificate(self) -> Path:
        """nginx's self-signed certificate: what a client of this cluster trusts."""
        return self.folder / "nginx" / "tls" / "cert.pem"

    def health(self) -> dict:
        """``/healthz`` through nginx, its certificate checked."""
        return requests.get(self.url + "/healthz", timeout=5, verify=str(self.certificate)).json()

    def stop(self) -> None:
        if self.nginx is not None:
            self.nginx.stop()
        for server in self.servers:
            server.stop()
        self.redis.stop()
        self.postgres.stop()

    def __enter__(self) -> Cluster:
        return self.start()

    def __exit__(self, *_exc) -> None:
        self.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m deploy.cluster", description=__doc__.split("\n\n")[0])
    parser.add_argument("--servers", type=int, default=2, help="EmoCare server processes (each with its own model)")
    parser.add_argument("--port", type=int, default=8443, help="nginx's HTTPS port")
    parser.add_argument("--host", default="127.0.0.1", help="where nginx listens (0.0.0.0: every interface)")
    parser.add_argument("--dir", default=str(ROOT / "instance" / "cluster"), help="data, logs and certificate")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    stopping = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stopping.set())
    cluster = Cluster(Path(args.dir), servers=args.servers, https_port=args.port, host=args.host)
    cluster.start()
    ports = ", ".join(str(s.port) for s in cluster.servers)
    print(f"EmoCare cluster: {cluster.url} (nginx) -> {args.servers} servers on {ports}", flush=True)
    print(f"  PostgreSQL {cluster.postgres.url()}  Redis {cluster.redis.url}  logs {cluster.folder}", flush=True)
    print("  Ctrl+C stops it.", flush=True)
    with contextlib.suppress(KeyboardInterrupt):
        stopping.wait()
    cluster.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
