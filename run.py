"""Start EmoCare from a checkout: ``python run.py`` is ``emocare serve`` (http://127.0.0.1:5000).

Options are the command's: ``python run.py --dev``, ``--server eventlet``, ``--port 8000``; see
``emocare serve --help`` and docs/serving.md.

Any Python may start it: one that is not 3.11, 3.12 or 3.13, or that lacks EmoCare's packages,
hands over to the checkout's ``.venv`` (made by ``make run``) when there is one, and otherwise
stops with one sentence saying what to install.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
SUPPORTED = ((3, 11), (3, 12), (3, 13))


def _ready() -> bool:
    """This interpreter is a supported version and has the packages installed."""
    if sys.version_info[:2] not in SUPPORTED:
        return False
    try:
        import flask  # noqa: F401  (the lock's first package)
    except ImportError:
        return False
    return True


def _venv_python() -> Path | None:
    for candidate in (HERE / ".venv" / "bin" / "python", HERE / ".venv" / "Scripts" / "python.exe"):
        if candidate.is_file() and Path(sys.prefix).resolve() != (HERE / ".venv").resolve():
            return candidate
    return None


def main() -> int:
    if not _ready():
        venv = _venv_python()
        if venv is None:
            version = "{}.{}".format(*sys.version_info[:2])
            if sys.version_info[:2] not in SUPPORTED:
                problem = f"EmoCare needs Python 3.11, 3.12 or 3.13, not {version}"
            else:
                problem = f"This Python {version} lacks EmoCare's packages"
            sys.stderr.write(
                f"{problem}: run `make run`, which finds a supported Python and installs them into .venv,"
                " or install requirements.txt into one as the README says.\n"
            )
            return 1
        argv = [str(venv), str(Path(__file__).resolve()), *sys.argv[1:]]
        if os.name == "posix":
            os.execv(argv[0], argv)
        return subprocess.call(argv)

    # a checkout that was never installed (make installs it) still runs
    sys.path.insert(0, str(HERE / "src"))
    from emocare.cli import main as emocare

    return emocare(["serve", *sys.argv[1:]])


if __name__ == "__main__":
    sys.exit(main())
