"""The Makefile's choice of Python (scripts/find-python.sh) and run.py's hand-over, run for real.

The PATH each run sees is built in a temporary folder: the interpreter running these tests,
a pyenv-style shim that exists and refuses (as pyenv's do for a version not selected), and,
for the "none supported" case, a command that answers as Python 3.10 would.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
FIND = ROOT / "scripts" / "find-python.sh"
VERSION = "{}.{}".format(*sys.version_info[:2])

SHIM = """#!/bin/sh
echo "pyenv: $(basename "$0"): command not found" >&2
exit 127
"""
PY310 = """#!/bin/sh
echo "3.10 $0"
"""

pytestmark = pytest.mark.skipif(shutil.which("bash") is None, reason="the Makefile's scripts are bash")


def make_path(tmp_path: Path, **commands: str | Path) -> str:
    """A PATH with the given commands (a script's text, or an interpreter to link) and the few
    tools the script uses, nothing else: no other Python of this machine can leak in."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("bash", "readlink", "dirname", "cat"):
        (bin_dir / tool).symlink_to(shutil.which(tool))
    for name, what in commands.items():
        target = bin_dir / name
        if isinstance(what, Path):
            target.symlink_to(what)
        else:
            target.write_text(what)
            target.chmod(0o755)
    return str(bin_dir)


def find(path: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [shutil.which("bash"), str(FIND), *args],
        env={"PATH": path, "HOME": os.environ.get("HOME", "/")},
        capture_output=True,
        text=True,
        timeout=60,
    )


def runs_as(python: str) -> str:
    return subprocess.run(
        [python, "-c", "import sys; print('{}.{}'.format(*sys.version_info[:2]))"], capture_output=True, text=True
    ).stdout.strip()


def test_a_refusing_shim_is_passed_over_for_a_python_that_runs(tmp_path):
    path = make_path(tmp_path, **{"python3.11": SHIM, "python3.12": SHIM, "python3": Path(sys.executable)})
    result = find(path)
    assert result.returncode == 0, result.stderr
    chosen = result.stdout.strip()
    assert Path(chosen).name == "python3" and runs_as(chosen) == VERSION  # not the shims
    assert result.stderr == f"Using Python {VERSION} ({chosen})\n"


def test_no_supported_python_gets_one_sentence(tmp_path):
    path = make_path(tmp_path, **{"python3.11": SHIM, "python3": PY310})
    result = find(path)
    assert result.returncode == 1 and result.stdout == ""
    [line] = result.stderr.splitlines()
    assert line.startswith("EmoCare needs Python 3.11, 3.12 or 3.13 and found none that runs here: install one")
    assert "sudo apt install python3 python3-venv" in line and "make PYTHON=" in line


def test_python_names_the_interpreter(tmp_path):
    path = make_path(tmp_path, **{"python3.11": SHIM, "python3": PY310})
    chosen = find(path, sys.executable)
    assert chosen.returncode == 0 and runs_as(chosen.stdout.strip()) == VERSION
    refused = find(path, "python3.11")
    assert refused.returncode == 1
    assert refused.stderr.startswith("PYTHON=python3.11 does not run here, and EmoCare needs Python 3.11, 3.12 or 3.13")
    old = find(path, "python3")
    assert old.returncode == 1 and old.stderr.startswith("PYTHON=python3 is Python 3.10, but EmoCare needs")
    version = find(path, "3.10")
    assert version.returncode == 1 and "not a version EmoCare runs on" in version.stderr


def test_python_names_a_version(tmp_path):
    path = make_path(tmp_path, **{f"python{VERSION}": Path(sys.executable)})
    result = find(path, VERSION)
    assert result.returncode == 0 and runs_as(result.stdout.strip()) == VERSION
    other = "3.13" if VERSION != "3.13" else "3.12"
    missing = find(path, other)
    assert missing.returncode == 1 and missing.stderr.startswith(f"PYTHON={other}: no Python {other} runs here")


def test_run_py_without_the_packages_says_what_to_do(tmp_path):
    shutil.copy(ROOT / "run.py", tmp_path / "run.py")  # a checkout with no .venv
    result = subprocess.run([sys.executable, "-S", str(tmp_path / "run.py")], capture_output=True, text=True)
    assert result.returncode == 1
    assert result.stderr == (
        f"This Python {VERSION} lacks EmoCare's packages: run `make run`, which finds a supported Python and"
        " installs them into .venv, or install requirements.txt into one as the README says.\n"
    )


@pytest.mark.skipif(not (ROOT / ".venv" / "bin" / "python").is_file(), reason="needs the checkout's .venv (make)")
def test_run_py_hands_over_to_the_checkouts_venv():
    # -S: no site-packages, so this interpreter lacks Flask, as a bare system Python would
    result = subprocess.run(
        [sys.executable, "-S", str(ROOT / "run.py"), "--help"], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("usage: emocare serve")
