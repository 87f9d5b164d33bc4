"""Helpers shared by the benchmarks and the tests: a real server in a subprocess."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parents[1]


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

    def __init__(self, server: str = "gunicorn", env: dict | None = None, log_dir: Path | None = None) -> None:
        self.server = server
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        log_dir = log_dir or ROOT / "tests" / "artifacts"
        log_dir.mkdir(parents=True, exist_ok=True)
        self.log_path = log_dir / f"server-{server}-{self.port}.log"
        self._log = self.log_path.open("wb")
        choice = ["--dev"] if server == "dev" else ["--server", server]
        self.proc = subprocess.Popen(
            [sys.executable, str(ROOT / "run.py"), "--port", str(self.port), *choice],
            cwd=ROOT,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env={
                **os.environ,
                "PYTHONUNBUFFERED": "1",
                "EMOCARE_INSTANCE_PATH": str(log_dir / f"instance-{self.port}"),
                **(env or {}),
            },
        )
        try:
            self.wait_ready()
        except Exception:
            self.stop()
            raise

    def log_tail(self, chars: int = 3000) -> str:
        return self.log_path.read_text(errors="replace")[-chars:]

    def wait_ready(self, timeout: float = 60) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}:\n{self.log_tail()}")
            try:
                status = requests.get(self.url + "/healthz", timeout=2).json()
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

    def kill_9(self) -> None:
        """SIGKILL the server and its Gunicorn worker (the process that holds the sessions) at
        once: a master killed alone leaves its worker to notice and stop cleanly."""
        for pid in reversed(self.pids()):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        self.proc.wait(10)
        self._log.close()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()
