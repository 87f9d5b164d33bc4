"""``python -m emocare``: see :mod:`emocare.cli`."""

import sys

from .cli import main

sys.exit(main())
