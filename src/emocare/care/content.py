"""Loading the care content (messages, exercises, help lines) from the JSON files in ``content/``.

Content is data, written for this project and edited without touching code; see
``content/README.md`` for the schemas and the writing rules.
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

CONTENT = Path(__file__).with_name("content")


@lru_cache(maxsize=8)
def load(name: str) -> dict:
    """One content file, parsed (``messages``, ``exercises`` or ``helplines``)."""
    return json.loads((CONTENT / f"{name}.json").read_text(encoding="utf-8"))


def helplines(locale: str) -> tuple[str, list[dict]]:
    """The disclaimer and the help resources for ``locale``, falling back to English."""
    data = load("helplines")
    disclaimer = data["disclaimer"].get(locale) or data["disclaimer"]["en"]
    return disclaimer, data["locales"].get(locale) or data["locales"]["en"]
