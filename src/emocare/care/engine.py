"""The care engine: a policy per session, turned into what the page shows and plays.

Plain Python, no Flask. The web layer feeds it the primary face's smoothed mood once per frame
(:meth:`CareSession.observe`) and sends what :meth:`CareSession.render` returns as the
``care`` Socket.IO event (docs/protocol.md).
"""

from __future__ import annotations

import dataclasses
import logging
import random
import threading
from dataclasses import dataclass

from .content import CareContent, helplines, localized
from .music import MusicCatalogue
from .policy import CareAction, CarePolicy, PolicyConfig
from .preferences import PreferenceStore
from .speech import SpeechService

log = logging.getLogger(__name__)

#: "sensitivity" setting → how long and how clearly a mood must show before care.
SENSITIVITY = {"low": (5.0, 0.6), "medium": (3.0, 0.5), "high": (2.0, 0.4)}


@dataclass
class CareSettings:
    """What the person chose on the page (persisted there, sent with ``configure``)."""

    voice: bool = True
    music: bool = True
    sensitivity: str = "medium"
    cooldown_s: float = 30.0

    @classmethod
    def from_dict(cls, data: dict, base: CareSettings | None = None) -> CareSettings:
        settings = dataclasses.replace(base or cls())
        if isinstance(data.get("voice"), bool):
            settings.voice = data["voice"]
        if isinstance(data.get("music"), bool):
            settings.music = data["music"]
        if data.get("sensitivity") in SENSITIVITY:
            settings.sensitivity = data["sensitivity"]
        cooldown = data.get("cooldown_s")
        if isinstance(cooldown, int | float) and not isinstance(cooldown, bool):
            settings.cooldown_s = float(min(3600, max(10, cooldown)))
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

    def session(self, profile: str = "default", locale: str = "en") -> CareSession:
        rng = random.Random(self._seed)
        policy = CarePolicy(self.content, self.store.load(profile), self.config, rng)
        return CareSession(self, policy, profile, locale)


class CareSession:
    def __init__(self, engine: CareEngine, policy: CarePolicy, profile: str, locale: str) -> None:
        self.engine = engine
        self.policy = policy
        self.profile = profile
        self.locale = locale
        self.settings = CareSettings(cooldown_s=engine.config.cooldown_s)
        self._recent_clips: list[str] = []
        self._lock = threading.Lock()

    def configure(self, locale: str | None = None, profile: str | None = None, settings: dict | None = None) -> None:
        """Apply the page's choices. ``profile`` reloads that profile's learned preferences."""
        with self._lock:
            if locale:
                self.locale = locale
            if profile and profile != self.profile:
                self.policy.prefs = self.engine.store.load(profile)  # raises ValueError if malformed
                self.profile = profile
            if settings is not None:
                self.settings = CareSettings.from_dict(settings, self.settings)
            sustain, threshold = SENSITIVITY[self.settings.sensitivity]
            self.policy.config = dataclasses.replace(
                self.policy.config, sustain_s=sustain, threshold=threshold, cooldown_s=self.settings.cooldown_s
            )
            self.policy.disabled = set() if self.settings.music else {"music"}

    def observe(self, label: str | None, confidence: float, t: float) -> CareAction | None:
        return self.policy.observe(label, confidence, t)

    def feedback(self, action_id: str, verdict: str, t: float) -> CareAction:
        action = self.policy.feedback(action_id, verdict, t)
        self.engine.store.save(self.profile, self.policy.prefs)
        return action

    def render(self, action: CareAction, audio_url) -> dict:
        """The ``care`` event for ``action``: text in the session's language, speech, extras.

        ``audio_url(name)`` makes the URL of a cached speech file; rendering speech can take
        a second, so callers run this off the event loop.
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
            speech = engine.speech.render(text, locale) if engine.speech.available else None
            payload["speech"] = (
                {"url": audio_url(speech.path.name), "engine": speech.engine, "duration_s": round(speech.duration_s, 2)}
                if speech
                else {"url": None, "engine": "browser"}
            )
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
            payload["help"] = {"disclaimer": disclaimer, "lines": lines[:4]}
        return payload


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
