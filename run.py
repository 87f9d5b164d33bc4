"""Start EmoCare from a checkout: ``python run.py`` is ``emocare serve`` (http://127.0.0.1:5000).

Options are the command's: ``python run.py --dev``, ``--server eventlet``, ``--port 8000``; see
``emocare serve --help`` and docs/serving.md.
"""

from __future__ import annotations

import sys
from pathlib import Path

# a checkout that was never installed (make installs it) still runs
sys.path.insert(0, str(Path(__file__).resolve().parent / "src"))

from emocare.cli import main

if __name__ == "__main__":
    sys.exit(main(["serve", *sys.argv[1:]]))
