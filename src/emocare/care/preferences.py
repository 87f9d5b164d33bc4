"""What a person's feedback taught the care engine, kept per profile across sessions.

Feedback on a care card ("helpful", "not now", "that's not how I feel") changes weights per
action kind and per message, and how readily each emotion triggers care. A profile is a
nickname-like id chosen by the page; nothing here identifies a person or holds an image.
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
import tempfile
import threading
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ..vision.reference import Baseline

log = logging.getLogger(__name__)

PROFILE_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
WEIGHT_MIN, WEIGHT_MAX = 0.1, 5.0
#: "That's not how I feel" asks for clearer signs of that mood before care answers it: at most
#: this much more confidence, halving every ``BOOST_HALF_LIFE_S`` (a week) after the last
#: answer, so that what a person said once fades rather than mutes a mood for ever.
BOOST_MAX, BOOST_HALF_LIFE_S = 0.3, 7 * 24 * 3600.0


def checked_profile(profile: str) -> str:
    """The profile id, if it is one: it names a file or a row, so nothing else gets through."""
    if not PROFILE_RE.match(profile):
        raise ValueError("A profile id is 1-64 letters, digits, '-' or '_'.")
    return profile


def _clamp(value: float, low: float, high: float) -> float:
    return max(low, min(high, value))


@dataclass
class Preferences:
    kind_weights: dict[str, float] = field(default_factory=dict)
    message_weights: dict[str, float] = field(default_factory=dict)
    #: Extra confidence an emotion needs before it triggers care (raised by "not how I feel"),
    #: as it was at ``boost_at`` (seconds since the epoch); it fades from there (``boost``).
    threshold_boost: dict[str, float] = field(default_factory=dict)
    boost_at: dict[str, float] = field(default_factory=dict)
    feedback_count: int = 0
    #: The person's relaxed face as the model saw it when they calibrated: mean log-scores with
    #: their spread and the number of frames (``vision.reference.Baseline.to_dict``), plus
    #: ``model``, the model it was measured with. Never a picture. None until they calibrate.
    baseline: dict | None = None

    def kind_weight(self, kind: str) -> float:
        return self.kind_weights.get(kind, 1.0)

    def message_weight(self, message_id: str) -> float:
        return self.message_weights.get(message_id, 1.0)

    def scale_kind(self, kind: str, factor: float) -> None:
        self.kind_weights[kind] = _clamp(self.kind_weight(kind) * factor, WEIGHT_MIN, WEIGHT_MAX)

    def scale_message(self, message_id: str, factor: float) -> None:
        self.message_weights[message_id] = _clamp(self.message_weight(message_id) * factor, WEIGHT_MIN, WEIGHT_MAX)

    def boost(self, emotion: str, now: float) -> float:
        """The extra confidence ``emotion`` needs now: what was learned, faded since."""
        amount = self.threshold_boost.get(emotion, 0.0)
        since = max(0.0, now - self.boost_at.get(emotion, now))
        return amount * 0.5 ** (since / BOOST_HALF_LIFE_S)

    def boost_threshold(self, emotion: str, amount: float, now: float) -> None:
        self.threshold_boost[emotion] = _clamp(self.boost(emotion, now) + amount, 0.0, BOOST_MAX)
        self.boost_at[emotion] = now

    def learned(self, now: float) -> dict[str, float]:
        """What "not how I feel" has taught, by emotion, as it stands now (for the settings)."""
        return {e: round(b, 3) for e in sorted(self.threshold_boost) if (b := self.boost(e, now)) >= 0.005}

    def forget_learned(self) -> None:
        self.threshold_boost.clear()
        self.boost_at.clear()


def _weights(value) -> dict[str, float]:
    """Finite numbers only: a hand-edited file with 1e999 or a huge integer is skipped, not fatal."""
    if not isinstance(value, dict):
        raise TypeError("weights must be an object")
    weights = {}
    for key, raw in value.items():
        if isinstance(raw, int | float) and not isinstance(raw, bool):
            try:
                number = float(raw)
            except OverflowError:
                continue
            if math.isfinite(number):
                weights[str(key)] = number
    return weights


def from_json(data) -> Preferences:
    """Preferences from a parsed file, refusing anything but the shapes :meth:`save` writes."""
    if not isinstance(data, dict):
        raise TypeError("a preferences file holds one object")
    count = data.get("feedback_count", 0)
    return Preferences(
        kind_weights=_weights(data.get("kind_weights", {})),
        message_weights=_weights(data.get("message_weights", {})),
        threshold_boost={k: _clamp(v, 0.0, BOOST_MAX) for k, v in _weights(data.get("threshold_boost", {})).items()},
        boost_at=_weights(data.get("boost_at", {})),
        feedback_count=count if isinstance(count, int) and not isinstance(count, bool) else 0,
        baseline=_baseline(data.get("baseline")),
    )


def _baseline(value) -> dict | None:
    """A stored baseline as :class:`Baseline` checks it, or None (a damaged one is dropped)."""
    if value is None:
        return None
    try:
        model = value["model"]
        if not isinstance(model, str) or not model:
            raise ValueError("no model named")
        return {**Baseline.from_dict(value).to_dict(), "model": model}
    except (KeyError, TypeError, ValueError) as exc:
        log.warning("a stored baseline was dropped: %s", exc)
        return None


class PreferenceStore:
    """Preferences as one small JSON file per profile, written atomically."""

    def __init__(self, folder: str | os.PathLike) -> None:
        self.folder = Path(folder)
        self._lock = threading.Lock()

    def _path(self, profile: str) -> Path:
        return self.folder / f"{checked_profile(profile)}.json"

    def load(self, profile: str) -> Preferences:
        path = self._path(profile)
        try:
            return from_json(json.loads(path.read_text(encoding="utf-8")))
        except FileNotFoundError:
            return Preferences()
        except (OSError, ValueError, TypeError, AttributeError) as exc:
            log.warning("preferences for %s unreadable (%s); starting fresh", profile, exc)
            return Preferences()

    def delete(self, profile: str) -> None:
        """Forget what this profile's feedback taught (part of "delete all my data")."""
        self._path(profile).unlink(missing_ok=True)

    def save(self, profile: str, prefs: Preferences) -> None:
        path = self._path(profile)
        with self._lock:
            self.folder.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=self.folder, prefix=f".{profile}.", suffix=".tmp")
            try:
                with os.fdopen(fd, "w", encoding="utf-8") as handle:
                    json.dump(asdict(prefs), handle, indent=1, sort_keys=True)
                os.replace(tmp, path)
            except OSError:
                # a full disk must not take the session down: the weights live on in memory
                log.exception("could not save preferences for %s", profile)
                Path(tmp).unlink(missing_ok=True)
