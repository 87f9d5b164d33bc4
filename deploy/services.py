"""PostgreSQL, Redis, nginx and EmoCare servers as child processes, no container.

The cluster (``python -m deploy.cluster``) and the tests start the real servers this way:
from the Debian packages (``postgresql``, ``redis-server``, ``nginx``), each on a free local
port, with its data, sockets and logs in one folder that is removed with it. Nothing of the
system's own instances (``/var/lib/postgresql``, the ``redis-server`` service) is touched.

:class:`ServerProcess` is ``run.py`` on a port, waited for until its model is warm: the tests,
the benchmarks and the cluster start EmoCare that way.

PostgreSQL refuses to run as root; as root, its programs run as the ``postgres`` user the
package creates, on a folder handed to that user.
"""

from __future__ import annotations

import contextlib
import glob
import logging
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import requests

log = logging.getLogger(__name__)

ROOT = Path(__file__).resolve().parents[1]


class ServiceError(RuntimeError):
    """A service is not installed or did not start; the message says which and how to fix it."""


def wait_for_port(port: int, timeout: float = 20.0, host: str = "127.0.0.1") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=0.5):
            return
        time.sleep(0.05)
    raise ServiceError(f"nothing listens on {host}:{port} after {timeout:.0f} s")


def end_process(process: subprocess.Popen | None, sig: int = signal.SIGTERM, timeout: float = 10.0) -> None:
    """Ask a child process to stop with ``sig``; kill it if it has not after ``timeout`` s."""
    if process is None or process.poll() is not None:
        return
    process.send_signal(sig)
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def _program(name: str, package: str, candidates: list[str] = ()) -> str:
    found = shutil.which(name) or next((c for c in candidates if os.access(c, os.X_OK)), None)
    if found is None:
        raise ServiceError(f"{name} not found: apt-get install -y {package} (make system-deps-cluster)")
    return found


class Postgres:
    """A PostgreSQL server of its own: ``initdb`` into ``folder``, trust for local TCP only."""

    USER = "emocare"

    def __init__(self, folder: Path, port: int | None = None) -> None:
        self.folder = Path(folder)
        self.data = self.folder / "data"
        self.log = self.folder / "log"
        self.port = port or free_port()
        versions = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(p.split("/")[-2]))
        self.bin = Path(versions[-1]) if versions else None
        self._as = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []

    def _run(self, program: str, *args: str) -> subprocess.CompletedProcess:
        if self.bin is None:
            raise ServiceError("PostgreSQL not found: apt-get install -y postgresql (make system-deps-cluster)")
        return subprocess.run([*self._as, str(self.bin / program), *args], capture_output=True, text=True, check=False)

    def url(self, database: str = "emocare") -> str:
        return f"postgresql+psycopg://{self.USER}@127.0.0.1:{self.port}/{database}"

    def start(self) -> str:
        """Make the cluster if it is not there, start it, and return the URL of its database."""
        self.folder.mkdir(parents=True, exist_ok=True)
        if self._as:
            entry = pwd.getpwnam("postgres")
            os.chown(self.folder, entry.pw_uid, entry.pw_gid)
        if not (self.data / "PG_VERSION").is_file():
            made = self._run("initdb", "-D", str(self.data), "-U", self.USER, "--auth=trust", "-E", "UTF8", "--no-sync")
            if made.returncode:
                raise ServiceError(f"initdb failed: {made.stderr.strip()}")
        options = f"-p {self.port} -k {self.folder} -c listen_addresses=127.0.0.1 -c fsync=on"
        started = self._run("pg_ctl", "start", "-w", "-D", str(self.data), "-l", str(self.log), "-o", options)
        if started.returncode:
            raise ServiceError(f"PostgreSQL did not start: {started.stderr.strip()} (see {self.log})")
        self.create_database("emocare")
        return self.url()

    def create_database(self, name: str) -> str:
        import psycopg

        with psycopg.connect(f"host=127.0.0.1 port={self.port} user={self.USER} dbname=postgres", autocommit=True) as c:
            if not c.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone():
                c.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def restart(self) -> None:
        # -l again: without it the new server would write to pg_ctl's output, our pipe, for ever
        done = self._run("pg_ctl", "restart", "-w", "-m", "fast", "-D", str(self.data), "-l", str(self.log))
        if done.returncode:
            raise ServiceError(f"PostgreSQL did not restart: {done.stderr.strip()}")

    def stop(self) -> None:
        if (self.data / "postmaster.pid").is_file():
            self._run("pg_ctl", "stop", "-w", "-m", "fast", "-D", str(self.data))


class Redis:
    """A Redis server of its own on a local port, nothing saved to disk (it only relays)."""

    def __init__(self, folder: Path, port: int | None = None) -> None:
        self.folder = Path(folder)
        self.port = port or free_port()
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> str:
        program = _program("redis-server", "redis-server")
        self.folder.mkdir(parents=True, exist_ok=True)
        args = [program, "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.folder)]
        args += ["--save", "", "--appendonly", "no", "--logfile", str(self.folder / "log")]
        self.process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for_port(self.port)
        return self.url

    def stop(self) -> None:
        end_process(self.process)


def self_signed_certificate(folder: Path, names: tuple[str, ...] = ("localhost", "127.0.0.1")) -> tuple[Path, Path]:
    """A certificate and key for ``names`` (made once, kept): browsers give a page the camera
    only on localhost or over HTTPS, and a cluster is reached through nginx over HTTPS."""
    folder.mkdir(parents=True, exist_ok=True)
    cert, key = folder / "cert.pem", folder / "key.pem"
    if cert.is_file() and key.is_file():
        return cert, key
    alt = ",".join(f"IP:{n}" if n.replace(".", "").isdigit() else f"DNS:{n}" for n in names)
    openssl = _program("openssl", "openssl")
    subject = ["-subj", f"/CN={names[0]}", "-addext", f"subjectAltName={alt}"]
    made = subprocess.run(
        [
            openssl,
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "825",
            "-keyout",
            str(key),
            "-out",
            str(cert),
            *subject,
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    if made.returncode:
        raise ServiceError(f"openssl could not make a certificate: {made.stderr.strip()}")
    key.chmod(0o600)
    return cert, key


class Nginx:
    """nginx in front of the server processes, from ``deploy/nginx.conf`` with the blanks filled."""

    TEMPLATE = Path(__file__).with_name("nginx.conf")

    def __init__(
        self,
        folder: Path,
        upstreams: list[int],
        https_port: int = 8443,
        http_port: int | None = None,
        host: str = "127.0.0.1",
        connections_per_address: int = 20,
        request_rate: int = 50,
    ) -> None:
        self.folder = Path(folder)
        self.upstreams = upstreams
        self.https_port = https_port
        self.http_port = http_port or free_port()
        #: plain HTTP on 127.0.0.1, proxied like HTTPS: for local clients that are not browsers
        self.local_port = free_port()
        self.host = host
        self.limits = {"CONNECTIONS_PER_ADDRESS": connections_per_address, "REQUEST_RATE": request_rate}
        self.process: subprocess.Popen | None = None

    def config(self, cert: Path, key: Path) -> str:
        servers = "\n".join(f"        server 127.0.0.1:{port} max_fails=1 fail_timeout=5s;" for port in self.upstreams)
        values = {
            "DIR": str(self.folder),
            "USER": "user nobody nogroup;" if os.geteuid() == 0 else "",
            "MIME_TYPES": "/etc/nginx/mime.types",
            "SERVERS": servers,
            "HOST": self.host,
            "HTTP_PORT": self.http_port,
            "HTTPS_PORT": self.https_port,
            "LOCAL_PORT": self.local_port,
            "CERT": str(cert),
            "KEY": str(key),
            "REQUEST_BURST": 4 * int(self.limits["REQUEST_RATE"]),
            **self.limits,
        }
        text = self.TEMPLATE.read_text(encoding="utf-8")
        for name, value in values.items():
            text = text.replace(f"@{name}@", str(value))
        return text

    def start(self) -> None:
        program = _program("nginx", "nginx", ["/usr/sbin/nginx"])
        cert, key = self_signed_certificate(self.folder / "tls")
        for name in ("body", "proxy", "fastcgi", "uwsgi", "scgi"):
            (self.folder / "tmp" / name).mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:  # the workers run as nobody, and buffer large bodies in tmp/
            entry = pwd.getpwnam("nobody")
            for path in (self.folder / "tmp", *(self.folder / "tmp").iterdir()):
                os.chown(path, entry.pw_uid, entry.pw_gid)
        conf = self.folder / "nginx.conf"
        conf.write_text(self.config(cert, key), encoding="utf-8")
        checked = subprocess.run(
            [program, "-t", "-q", "-p", str(self.folder), "-c", str(conf)], capture_output=True, text=True, check=False
        )
        if checked.returncode:
            raise ServiceError(f"nginx refuses {conf}: {checked.stderr.strip()}")
        with (self.folder / "stderr.log").open("wb") as stderr:
            self.process = subprocess.Popen(
                [program, "-p", str(self.folder), "-c", str(conf), "-g", "daemon off;"],
                stdout=subprocess.DEVNULL,
                stderr=stderr,
            )
        wait_for_port(self.https_port, host=self.host)

    def stop(self) -> None:
        end_process(self.process, signal.SIGQUIT)  # graceful: open connections are let finish


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def proc_status(pid: int, key: str) -> int:
    """A number from /proc/PID/status (``VmRSS`` in kB, ``Threads``); 0 once the process is gone."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0
    return next((int(line.split()[1]) for line in status.splitlines() if line.startswith(key + ":")), 0)


class ServerProcess:
    """``python run.py`` in a subprocess on a free port, waited for until the model is warm.

    ``server`` is one of ``emocare serve``'s: "gunicorn" (the default), "eventlet" or "dev"
    (Werkzeug's development server).
    """

    def __init__(
        self,
        server: str = "gunicorn",
        env: dict | None = None,
        log_dir: Path | None = None,
        port: int | None = None,
        args: tuple[str, ...] = (),
    ) -> None:
        self.server = server
        self.env = dict(env or {})
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        log_dir = log_dir or ROOT / "tests" / "artifacts"
        log_dir.mkdir(parents=True, exist_ok=True)
        self.log_path = log_dir / f"server-{server}-{self.port}.log"
        self._log = self.log_path.open("wb")
        choice = ["--dev"] if server == "dev" else ["--server", server]
        self.proc = subprocess.Popen(
            [sys.executable, str(ROOT / "run.py"), "--port", str(self.port), *choice, *args],
            cwd=ROOT,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env={
                **os.environ,
                "PYTHONUNBUFFERED": "1",
                "EMOCARE_INSTANCE_PATH": str(log_dir / f"instance-{self.port}"),
                **self.env,
            },
        )
        try:
            self.wait_ready()
        except Exception:
            self.stop()
            raise

    def log_tail(self, chars: int = 3000) -> str:
        return self.log_path.read_text(errors="replace")[-chars:]

    def health(self, timeout: float = 5.0) -> dict:
        """This process's ``/healthz``, asked directly (in a cluster: not through nginx)."""
        return requests.get(self.url + "/healthz", timeout=timeout).json()

    def wait_ready(self, timeout: float = 60) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}:\n{self.log_tail()}")
            try:
                status = self.health(timeout=2)
                if status["state"] == "ready":
                    return status
            except requests.RequestException:
                pass
            time.sleep(0.2)
        raise TimeoutError(f"server not ready in {timeout}s:\n{self.log_tail()}")

    def pids(self) -> list[int]:
        """The server's processes: the one started and its children (Gunicorn's worker, speech
        synthesis, inference processes), from /proc."""
        found, todo = [], [self.proc.pid]
        while todo:
            pid = todo.pop()
            found.append(pid)
            # a child is listed under the thread that started it
            for task in Path(f"/proc/{pid}/task").glob("*"):
                try:
                    todo += map(int, (task / "children").read_text().split())
                except OSError:
                    continue
        return found

    def rss(self) -> int:
        """Resident memory of all the server's processes, in bytes."""
        return sum(proc_status(pid, "VmRSS") * 1024 for pid in self.pids())

    def threads(self) -> int:
        """Threads of all the server's processes."""
        return sum(proc_status(pid, "Threads") for pid in self.pids())

    def cpu_seconds(self) -> float:
        """User and system CPU time of all the server's processes so far (``/proc/PID/stat``)."""
        ticks = 0
        for pid in self.pids():
            try:
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            ticks += int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15 of stat)
        return ticks / os.sysconf("SC_CLK_TCK")

    def kill_9(self) -> None:
        """SIGKILL the server and its Gunicorn worker (the process that holds the sessions) at
        once: a master killed alone leaves its worker to notice and stop cleanly."""
        for pid in reversed(self.pids()):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        self.proc.wait(10)
        self._log.close()

    def stop(self) -> None:
        end_process(self.proc)
        self._log.close()
