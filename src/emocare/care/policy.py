"""When to care, and how: a plain-Python policy over a stream of smoothed moods.

Input: the primary face's smoothed label, its confidence and the time, once per analysed
frame. Output: now and then a :class:`CareAction`. The rules, from the issue and from what
drives people away from such tools (repetition, nagging, wrong assumptions):

- a negative mood (sad, angry, fear, disgust) held for ``sustain_s`` above a confidence
  threshold triggers care at once (well within 3 s of the trigger);
- after an action, nothing for ``cooldown_s``; "not now" snoozes for ``snooze_s``; past the
  offer of help the pause doubles with each further card of the episode, and an episode
  holds at most ``max_per_episode`` cards: care that goes on and on is nagging;
- while distress lasts, care escalates: a message, then music or a breathing exercise, then a
  gentle offer of human help (once per episode), then it varies, never the same kind twice in
  a row when another fits;
- happy gets occasional encouragement, neutral at most a rare check-in;
- no message is repeated within the last ``recent_messages`` shown;
- feedback changes what comes next, through :class:`~.preferences.Preferences`.
"""

from __future__ import annotations

import random
import threading
import uuid
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field

from ..vision.types import EMOTIONS
from .content import CareContent
from .preferences import Preferences

NEGATIVE = ("sad", "angry", "fear", "disgust")
FEEDBACK = ("helpful", "not_now", "not_me")
#: Which exercises fit which moods: breathing slows arousal (angry, fear), per the issue.
BREATHING_FOR = ("angry", "fear")
#: Which music intro target fits a mood (iso principle: start near it, move toward calm).
MUSIC_TARGET = {"sad": "comfort", "angry": "calm", "fear": "calm", "disgust": "focus", "happy": "uplift"}


@dataclass(frozen=True)
class PolicyConfig:
    sustain_s: float = 3.0
    #: How clear a mood must be (its smoothed score) before it counts, unless ``thresholds``
    #: names the emotion.
    threshold: float = 0.5
    #: Per-emotion thresholds. A model is surer of some expressions than others: a frightened
    #: face is often half read as surprise, so its score rarely reaches a happy face's. The
    #: default model's card carries thresholds fitted on validation (docs/model-card.md).
    thresholds: Mapping[str, float] = field(default_factory=dict)
    #: The person's sensitivity setting, added to every threshold (negative: care sooner).
    threshold_shift: float = 0.0
    cooldown_s: float = 30.0
    snooze_s: float = 600.0
    recent_messages: int = 10
    #: A distress episode ends after this long without a confident negative mood.
    episode_gap_s: float = 180.0
    #: Cards per distress episode, at most; after the offer of help, pauses double.
    max_per_episode: int = 6
    #: How much longer each pause gets after the offer of help (1: never longer).
    backoff: float = 2.0
    positive_sustain_s: float = 5.0
    positive_cooldown_s: float = 600.0
    positive_chance: float = 0.5
    neutral_checkin_s: float = 1800.0
    checkin_cooldown_s: float = 3600.0
    #: A mood shown this long is answered whatever feedback taught (``CarePolicy.observe``).
    lasting_s: float = 120.0

    def threshold_for(self, emotion: str) -> float:
        """The confidence at which a mood counts, before what feedback taught."""
        base = self.thresholds.get(emotion, self.threshold)
        return min(0.9, max(0.2, base + self.threshold_shift))


@dataclass
class CareAction:
    """One thing the engine offers. ``kind``: message, music, breathing, help, encourage, checkin."""

    kind: str
    emotion: str
    message_id: str
    t: float
    level: int = 0
    exercise_id: str | None = None
    music_target: str | None = None
    music_clip: str | None = None
    #: the person's answer to this card, once given (one answer per card)
    feedback: str | None = None
    #: unique across sessions and restarts: the history stores actions by this id
    id: str = field(default_factory=lambda: f"care-{uuid.uuid4().hex[:16]}")


class CarePolicy:
    """The care policy of one session. Thread-safe; time is passed in, never read."""

    def __init__(
        self,
        content: CareContent,
        prefs: Preferences | None = None,
        config: PolicyConfig = PolicyConfig(),
        rng: random.Random | None = None,
    ) -> None:
        self.content = content
        self.prefs = prefs or Preferences()
        self.config = config
        self.rng = rng or random.Random()
        self.recent: deque[str] = deque(maxlen=config.recent_messages)
        #: Action kinds the person switched off (for example "music" in the settings).
        self.disabled: set[str] = set()
        self.history: deque[CareAction] = deque(maxlen=100)  # the cards feedback can still answer
        self._lock = threading.Lock()
        self._run_label: str | None = None
        self._run_start = 0.0
        self._last_action_t = float("-inf")
        self._last_kind: str | None = None
        self._snoozed_until = float("-inf")
        self._episode_level = 0
        self._episode_last_t = float("-inf")
        self._episode_helped = False
        self._last_encourage_t = float("-inf")
        self._last_checkin_t = float("-inf")

    # --- the stream ------------------------------------------------------------------------

    def threshold_for(self, emotion: str) -> float:
        """The confidence at which a mood counts, before what feedback taught (``learned_for``)."""
        return self.config.threshold_for(emotion)

    def learned_for(self, emotion: str, t: float) -> float:
        """The extra confidence "that's not how I feel" asks of ``emotion`` now (fading)."""
        return self.prefs.boost(emotion, t)

    def observe(self, label: str | None, confidence: float, t: float) -> CareAction | None:
        """Fold in one smoothed mood; return an action when one is due.

        What feedback taught asks for a clearer mood before care answers it, but only for the
        first ``lasting_s``: a mood that has shown that long is answered whatever was learned,
        so that no number of "not how I feel" can silence a person who stays sad.
        """
        with self._lock:
            if label is None or confidence < self.threshold_for(label):
                self._run_label = None
                return None
            if label != self._run_label:
                self._run_label, self._run_start = label, t
            held = t - self._run_start
            if confidence < self.threshold_for(label) + self.learned_for(label, t) and held < self.config.lasting_s:
                return None
            if label in NEGATIVE:
                # the episode lasts while the mood shows, not only while cards are shown:
                # with a long cooldown, escalation must still happen
                if t - self._episode_last_t > self.config.episode_gap_s:
                    self._episode_level, self._episode_helped = 0, False
                self._episode_last_t = t
            pause = self._pause() if label in NEGATIVE else self.config.cooldown_s
            if t < self._snoozed_until or t - self._last_action_t < pause:
                return None
            if label in NEGATIVE and held >= self.config.sustain_s:
                if self._episode_level >= self.config.max_per_episode:
                    return None
                kind, level = self._negative_kind(label)
                action = self._act(kind, label, t, level)
                if action is not None:  # only care that was really offered moves the episode on
                    self._episode_level = level + 1
                    self._episode_helped = self._episode_helped or kind == "help"
                return action
            if (
                label == "happy"
                and held >= self.config.positive_sustain_s
                and t - self._last_encourage_t >= self.config.positive_cooldown_s
            ):
                self._last_encourage_t = t  # one roll per cooldown: "occasional", not every time
                return self._act("encourage", label, t) if self.rng.random() < self.config.positive_chance else None
            if (
                label == "neutral"
                and held >= self.config.neutral_checkin_s
                and t - self._last_checkin_t >= self.config.checkin_cooldown_s
            ):
                self._last_checkin_t = t
                return self._act("checkin", label, t)
            return None

    # --- choosing --------------------------------------------------------------------------

    def _pause(self) -> float:
        """The cooldown in a distress episode, longer with each card past the offer of help.

        Only negative moods wait this long: a smile after a long episode gets the plain cooldown.
        """
        return self.config.cooldown_s * self.config.backoff ** max(0, self._episode_level - 3)

    def _negative_kind(self, emotion: str) -> tuple[str, int]:
        level = self._episode_level
        if level == 0:
            return "message", level
        if level == 1:
            soothing = self._soothing_kinds(emotion)
            return self._best(soothing, default=soothing[0]), level
        if level == 2 and not self._episode_helped:
            return "help", level
        options = [k for k in ("message", *self._soothing_kinds(emotion)) if k != self._last_kind] or ["message"]
        return self._best(options, default=self.rng.choice(options)), level

    def _soothing_kinds(self, emotion: str) -> list[str]:
        kinds = ["breathing", "music"] if emotion in BREATHING_FOR else ["music"]
        return [k for k in kinds if k not in self.disabled] or ["message"]

    def _best(self, kinds: list[str], default: str) -> str:
        """The kind with the highest learned weight; the default while weights are equal."""
        weights = {k: self.prefs.kind_weight(k) for k in kinds}
        top = max(weights.values())
        leaders = [k for k, w in weights.items() if w == top]
        return default if default in leaders else leaders[0]

    def _act(self, kind: str, emotion: str, t: float, level: int = 0) -> CareAction | None:
        message, extra = self._message_for(kind, emotion, opener=kind == "message" and level == 0)
        if message is None:
            return None
        action = CareAction(kind, emotion, message["id"], t, level=level, **extra)
        self.recent.append(message["id"])
        self.history.append(action)
        self._last_action_t = t
        self._last_kind = kind
        return action

    def _message_for(self, kind: str, emotion: str, opener: bool = False) -> tuple[dict | None, dict]:
        content, extra = self.content, {}
        if kind == "message":
            found = content.candidates(["comfort", "checkin"], emotion) if emotion == "surprise" else []
            found = found or content.candidates(["comfort"], emotion)
            if opener:
                # the first word of an episode names the mood tentatively and invites correction
                found = [m for m in found if m.get("opener")] or found
        elif kind == "music":
            target = MUSIC_TARGET.get(emotion, "calm")
            extra["music_target"] = target
            found = content.candidates(["music_intro"], target=target) or content.candidates(["music_intro"])
        elif kind == "breathing":
            exercises = content.exercises_for(emotion)
            if not exercises:
                return None, extra
            exercise = self.rng.choice(exercises)
            extra["exercise_id"] = exercise["id"]
            intros = content.candidates(["breathing_intro"])
            found = [m for m in intros if m.get("exercise_kind") in (exercise["kind"], "any")] or intros
        elif kind == "help":
            found = content.candidates(["help_offer"])
        elif kind == "encourage":
            found = content.candidates(["encourage"], emotion)
        else:
            found = content.candidates(["checkin"], emotion)
        return content.pick(found, list(self.recent), self.prefs.message_weight, self.rng), extra

    # --- feedback --------------------------------------------------------------------------

    def feedback(self, action_id: str, verdict: str, t: float, felt: str | None = None) -> CareAction:
        """Learn from a person's answer to a care card; raises KeyError/ValueError if unknown.

        ``felt``: with "not_me", the expression the person says they feel instead (optional).
        """
        if verdict not in FEEDBACK:
            raise ValueError(f"feedback must be one of {', '.join(FEEDBACK)}")
        if felt is not None and (verdict != "not_me" or felt not in EMOTIONS):
            raise ValueError(f"felt goes with not_me and is one of {', '.join(EMOTIONS)}")
        with self._lock:
            action = next((a for a in reversed(self.history) if a.id == action_id), None)
            if action is None:
                raise KeyError(f"no care action {action_id!r} in this session")
            if action.feedback is not None:
                raise ValueError(f"care action {action_id!r} was already answered")
            if felt == action.emotion:
                raise ValueError(f"felt names the card's own emotion ({felt}): that is not 'not how I feel'")
            action.feedback = verdict
            prefs = self.prefs
            prefs.feedback_count += 1
            if verdict == "helpful":
                prefs.scale_kind(action.kind, 1.3)
                prefs.scale_message(action.message_id, 1.3)
                if action.music_clip:
                    prefs.scale_message(action.music_clip, 1.3)
            elif verdict == "not_now":
                prefs.scale_kind(action.kind, 0.7)
                if action.music_clip:
                    prefs.scale_message(action.music_clip, 0.8)
                self._snoozed_until = t + self.config.snooze_s
            else:  # "that's not how I feel": the face was misread; ask for more before acting
                prefs.scale_message(action.message_id, 0.7)
                # a calm person misread learns more than a distressed one whose mood was misnamed
                prefs.boost_threshold(action.emotion, 0.05 if felt in NEGATIVE else 0.1, t)
                self._episode_level, self._episode_helped = 0, False
                self._run_label = None
            return action
