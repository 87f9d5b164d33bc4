"""scripts/debian-deps.sh waits for a busy package manager instead of failing at once.

The locks are taken the way apt and dpkg take them (fcntl, from another process); the script is
run for real. One test installs Debian's tiny ``hello`` package behind a held dpkg lock (root
and the Debian registry needed) and removes it again.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "debian-deps.sh"

pytestmark = pytest.mark.skipif(
    shutil.which("dpkg-query") is None or os.geteuid() != 0, reason="needs a Debian-like system, as root"
)

HOLD = """
import fcntl, sys
f = open(sys.argv[1], "a")
fcntl.lockf(f, fcntl.LOCK_EX)  # what apt and dpkg do
print("held", flush=True)
sys.stdin.read()  # until the test closes stdin
"""


class Holder:
    """Another process holding an fcntl lock on ``path`` until :meth:`release`."""

    def __init__(self, path: Path):
        self.proc = subprocess.Popen(
            [sys.executable, "-c", HOLD, str(path)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        assert self.proc.stdout.readline() == "held\n"

    def release(self) -> None:
        self.proc.stdin.close()
        self.proc.wait(timeout=10)
        self.proc.stdout.close()


def installed(package: str) -> bool:
    status = subprocess.run(["dpkg-query", "-W", "-f=${Status}", package], capture_output=True, text=True)
    return "install ok installed" in status.stdout


def run(*packages: str, env: dict[str, str]) -> subprocess.Popen:
    return subprocess.Popen(
        [str(SCRIPT), *packages], env={**os.environ, **env}, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def test_gives_up_after_the_bound_naming_who_holds_the_lock(tmp_path):
    lock = tmp_path / "lock-frontend"
    holder = Holder(lock)
    try:
        started = time.monotonic()
        proc = run("emocare-no-such-package", env={"EMOCARE_APT_LOCKS": str(lock), "EMOCARE_APT_WAIT": "2"})
        out, err = proc.communicate(timeout=30)
        took = time.monotonic() - started
    finally:
        holder.release()
    assert proc.returncode == 1
    assert f"process {holder.proc.pid} (python" in err
    assert "still busy after 2 s" in err and str(lock) in err
    assert "sudo apt-get install -y emocare-no-such-package" in err
    assert "Installing" not in out  # apt-get was never run
    assert 2 <= took < 10


def test_waits_for_a_held_dpkg_lock_then_installs():
    package = "hello"
    if installed(package):
        pytest.skip(f"{package} is installed already; this test installs it and removes it again")
    holder = Holder(Path("/var/lib/dpkg/lock-frontend"))
    try:
        proc = run(package, env={"EMOCARE_APT_WAIT": "300", "EMOCARE_APT_POLL": "0.2"})
        waiting = proc.stderr.readline()
        assert waiting.startswith(f"Waiting for the package manager to finish before installing {package}:")
        assert f"process {holder.proc.pid} (python" in waiting and "/var/lib/dpkg/lock-frontend" in waiting
        assert proc.poll() is None and not installed(package)  # still waiting, nothing done
    finally:
        holder.release()
    try:
        out, err = proc.communicate(timeout=600)
        assert proc.returncode == 0, err
        assert "The package manager is free after" in err
        assert f"Installing Debian packages: {package}" in out
        assert installed(package)
    finally:
        subprocess.run(["dpkg", "--purge", package], capture_output=True, check=False)
