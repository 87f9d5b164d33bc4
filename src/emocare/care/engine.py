"""The care engine: a policy per session, turned into what the page shows and plays.

Plain Python, no Flask. The web layer feeds it the primary face's smoothed mood once per frame
(:meth:`CareSession.observe`) and sends what :meth:`CareSession.render` returns as the
``care`` Socket.IO event (docs/protocol.md).
"""

from __future__ import annotations

import dataclasses
import logging
import math
import random
import threading
from dataclasses import dataclass

from .content import CareContent, helplines, localized
from .music import MusicCatalogue
from .policy import CareAction, CarePolicy, PolicyConfig
from .preferences import Preferences, PreferenceStore
from .speech import SpeechService

log = logging.getLogger(__name__)

#: "sensitivity" setting → how much longer (s) and how much more clearly a mood must show
#: before care, relative to the server's configuration ("medium" is exactly that).
SENSITIVITY = {"low": (2.0, 0.1), "medium": (0.0, 0.0), "high": (-1.0, -0.1)}


@dataclass
class CareSettings:
    """What the person chose on the page (persisted there, sent with ``configure``)."""

    voice: bool = True
    music: bool = True
    sensitivity: str = "medium"
    #: None: the server's configured cooldown
    cooldown_s: float | None = None

    @classmethod
    def from_dict(cls, data: dict, base: CareSettings | None = None) -> CareSettings:
        """Apply the known, well-typed fields of ``data``; raise ValueError on a wrong type."""
        settings = dataclasses.replace(base or cls())
        for name in ("voice", "music"):
            if name in data:
                if not isinstance(data[name], bool):
                    raise ValueError(f"setting {name!r} must be true or false")
                setattr(settings, name, data[name])
        if "sensitivity" in data:
            if not isinstance(data["sensitivity"], str) or data["sensitivity"] not in SENSITIVITY:
                raise ValueError(f"sensitivity must be one of {', '.join(SENSITIVITY)}")
            settings.sensitivity = data["sensitivity"]
        if "cooldown_s" in data:
            cooldown = data["cooldown_s"]
            if cooldown is not None and (
                isinstance(cooldown, bool) or not isinstance(cooldown, int | float) or not math.isfinite(cooldown)
            ):
                raise ValueError("cooldown_s must be a number of seconds")
            settings.cooldown_s = None if cooldown is None else float(min(3600, max(10, cooldown)))
        return settings


class CareEngine:
    """Shared parts (content, music, speech, preference files) and a factory of sessions."""

    def __init__(
        self,
        content: CareContent,
        music: MusicCatalogue,
        speech: SpeechService,
        store: PreferenceStore,
        config: PolicyConfig = PolicyConfig(),
        seed: int | None = None,
    ) -> None:
        self.content = content
        self.music = music
        self.speech = speech
        self.store = store
        self.config = config
        self._seed = seed

    def session(self, profile: str | None = None, locale: str = "en") -> CareSession:
        """A page's care state; ``profile`` None: what its feedback teaches lasts as long as the
        connection and is stored nowhere (there is no shared profile to write it into)."""
        rng = random.Random(self._seed)
        prefs = self.store.load(profile) if profile is not None else Preferences()
        policy = CarePolicy(self.content, prefs, self.config, rng)
        return CareSession(self, policy, profile, locale)


class CareSession:
    def __init__(self, engine: CareEngine, policy: CarePolicy, profile: str | None, locale: str) -> None:
        self.engine = engine
        self.policy = policy
        self.profile = profile
        self.locale = locale
        self.settings = CareSettings()
        self._recent_clips: list[str] = []
        self._lock = threading.Lock()

    def configure(self, locale: str | None = None, settings: dict | None = None) -> None:
        """Apply the page's choices (the profile is fixed when the session is made).

        Raises ValueError, changing nothing, if a setting is malformed.
        """
        with self._lock:
            # everything that can be refused is checked before anything changes
            new_settings = self.settings if settings is None else CareSettings.from_dict(settings, self.settings)
            if locale:
                self.locale = locale
            self.settings = new_settings
            base = self.engine.config
            longer, clearer = SENSITIVITY[self.settings.sensitivity]
            cooldown = base.cooldown_s if self.settings.cooldown_s is None else self.settings.cooldown_s
            self.policy.config = dataclasses.replace(
                self.policy.config,
                sustain_s=max(1.0, base.sustain_s + longer),
                threshold_shift=clearer,
                cooldown_s=cooldown,
            )
            self.policy.disabled = set() if self.settings.music else {"music"}

    def observe(self, label: str | None, confidence: float, t: float) -> CareAction | None:
        return self.policy.observe(label, confidence, t)

    def forget(self) -> None:
        """The person deleted their data: what feedback taught this session is gone too."""
        with self._lock:
            self.policy.prefs = Preferences()

    def learned(self, t: float) -> dict[str, float]:
        """What "not how I feel" taught, by emotion, as it stands at ``t`` (the settings show it)."""
        return self.policy.prefs.learned(t)

    def forget_learned(self) -> None:
        """The settings' one-click reset of what "not how I feel" taught."""
        with self._lock:
            self.policy.prefs.forget_learned()
        if self.profile is not None:
            self.engine.store.save(self.profile, self.policy.prefs)

    @property
    def baseline(self) -> dict | None:
        """The person's relaxed-face baseline (``Preferences.baseline``), if they calibrated."""
        return self.policy.prefs.baseline

    def set_baseline(self, baseline: dict | None) -> None:
        """Keep (or, with None, forget) the baseline, with the profile's preferences."""
        with self._lock:
            self.policy.prefs.baseline = baseline
        if self.profile is not None:
            self.engine.store.save(self.profile, self.policy.prefs)

    def feedback(self, action_id: str, verdict: str, t: float, felt: str | None = None) -> CareAction:
        action = self.policy.feedback(action_id, verdict, t, felt)
        if self.profile is not None:
            self.engine.store.save(self.profile, self.policy.prefs)
        return action

    def render(self, action: CareAction) -> dict:
        """The ``care`` event for ``action``: text in the session's language, extras.

        Its voice is only announced here (``"engine": "pending"``) and comes later from the
        speech queue (``LiveService.speak``), so the card never waits for speech.
        """
        engine, locale = self.engine, self.locale
        text = engine.content.text(action.message_id, locale)
        payload = {
            "id": action.id,
            "kind": action.kind,
            "emotion": action.emotion,
            "level": action.level,
            "message_id": action.message_id,
            "text": text,
            "locale": locale,
            "speech": None,
            "music": None,
            "exercise": None,
            "help": None,
        }
        if self.settings.voice:
            payload["speech"] = {"url": None, "engine": "pending" if engine.speech.available else "browser"}
        if action.kind == "music":
            prefs = self.policy.prefs
            clip = engine.music.pick(
                action.emotion, action.music_target, self._recent_clips, prefs.message_weight, self.policy.rng
            )
            if clip is not None:
                action.music_clip = clip.id  # so feedback on this card also weighs the clip
                self._recent_clips = [*self._recent_clips[-2:], clip.id]
                payload["music"] = clip.to_dict(locale)
        if action.exercise_id:
            payload["exercise"] = localize_exercise(engine.content.exercise_by_id[action.exercise_id], locale)
        if action.kind == "help":
            disclaimer, lines = helplines(locale)
            payload["help"] = {"disclaimer": disclaimer, "lines": help_card_lines(lines)}
        return payload


def help_card_lines(lines: list[dict], listed: int = 3) -> list[dict]:
    """The first ``listed`` helplines, plus every emergency number and the directory of lines.

    A card has little room, but it must never leave out where to turn in an emergency, nor
    the directory that covers the countries the list does not.
    """
    return [line for i, line in enumerate(lines) if i < listed or line.get("emergency") or line.get("directory")]


def localize_exercise(exercise: dict, locale: str) -> dict:
    """An exercise with every text in ``locale``, ready for the page's animation."""
    out = {"id": exercise["id"], "kind": exercise["kind"], "name": localized(exercise["name"], locale)}
    out["intro"] = localized(exercise.get("intro", {"en": ""}), locale)
    out["outro"] = localized(exercise.get("outro", {"en": ""}), locale)
    if "phases" in exercise:
        out["cycles"] = exercise.get("cycles", 4)
        out["phases"] = [
            {"action": p["action"], "seconds": p["seconds"], "text": localized(p["text"], locale)}
            for p in exercise["phases"]
        ]
    if "steps" in exercise:
        out["steps"] = [
            {"count": s.get("count"), "seconds": s["seconds"], "text": localized(s["text"], locale)}
            for s in exercise["steps"]
        ]
    return out
