"""The care content (messages, exercises, help lines), loaded from the JSON files in ``content/``.

Content is data, written for this project and edited without touching code; see
``content/README.md`` for the schemas and the writing rules. Every message exists in each
locale; :meth:`CareContent.text` falls back to English if one is ever missing.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterable
from functools import lru_cache
from pathlib import Path

CONTENT = Path(__file__).with_name("content")
LOCALES = ("en", "zh-CN")


@lru_cache(maxsize=8)
def load(name: str) -> dict:
    """One content file, parsed (``messages``, ``exercises``, ``helplines`` or ``music``)."""
    return json.loads((CONTENT / f"{name}.json").read_text(encoding="utf-8"))


def helplines(locale: str) -> tuple[str, list[dict]]:
    """The disclaimer and the help resources for ``locale``, falling back to English."""
    data = load("helplines")
    disclaimer = data["disclaimer"].get(locale) or data["disclaimer"]["en"]
    return disclaimer, data["locales"].get(locale) or data["locales"]["en"]


def localized(value: dict, locale: str) -> str:
    return value.get(locale) or value.get("en") or next(iter(value.values()))


class CareContent:
    """Messages and exercises, indexed for the policy's choices."""

    def __init__(self, messages: list[dict] | None = None, exercises: list[dict] | None = None) -> None:
        self.messages = messages if messages is not None else load("messages")["messages"]
        self.exercises = exercises if exercises is not None else load("exercises")["exercises"]
        self.by_id = {m["id"]: m for m in self.messages}
        self.exercise_by_id = {e["id"]: e for e in self.exercises}

    def candidates(self, kinds: Iterable[str], emotion: str | None = None, **match) -> list[dict]:
        """Messages of one of ``kinds`` for ``emotion`` (or for "any"), matching extra fields."""
        kinds = set(kinds)
        found = []
        for message in self.messages:
            if message["kind"] not in kinds:
                continue
            if emotion is not None and message.get("emotion") not in (emotion, "any"):
                continue
            if any(message.get(key) != value for key, value in match.items()):
                continue
            found.append(message)
        return found

    @staticmethod
    def pick(candidates: list[dict], recent: list[str], weight, rng: random.Random) -> dict | None:
        """A weighted random choice that avoids the ``recent`` message ids while it can.

        If every candidate was used recently, the one used longest ago is taken, so nothing
        repeats sooner than it must.
        """
        if not candidates:
            return None
        fresh = [m for m in candidates if m["id"] not in recent]
        if not fresh:
            return min(candidates, key=lambda m: recent.index(m["id"]) if m["id"] in recent else -1)
        weights = [max(weight(m["id"]), 1e-6) for m in fresh]
        return rng.choices(fresh, weights=weights, k=1)[0]

    def exercises_for(self, emotion: str) -> list[dict]:
        return [e for e in self.exercises if emotion in e.get("suited_for", [])]

    def text(self, message_id: str, locale: str) -> str:
        return localized(self.by_id[message_id]["text"], locale)
