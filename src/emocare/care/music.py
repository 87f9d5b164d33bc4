"""The music catalogue: clips made for this project plus any the person adds, chosen by the
iso principle of music therapy.

Iso principle: begin with music that matches the listener's present mood, then move it toward
calm or positive. Every clip says where it starts and where it ends on two axes, valence
(unpleasant 0 … pleasant 1) and arousal (calm 0 … energetic 1). For a mood, the catalogue picks
a clip whose start lies near that mood and whose end is calmer or more positive, never the
reverse ("metal for angry" is what the field's peers do, and what this avoids).

Bundled clips are listed in ``content/music.json`` and served from ``static/music``. A person
adds their own by dropping audio files and a ``manifest.json`` of the same schema into the
instance folder's ``music/``; they are served from ``/care/music/<file>``.
"""

from __future__ import annotations

import json
import logging
import math
import random
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from .content import CONTENT, localized

log = logging.getLogger(__name__)

AUDIO_SUFFIXES = {".ogg", ".oga", ".opus", ".mp3", ".m4a", ".wav", ".flac", ".webm"}
#: Where each expression sits as (valence, arousal), from the circumplex model of affect.
MOOD_POINTS = {
    "sad": (0.2, 0.3),
    "angry": (0.2, 0.85),
    "fear": (0.2, 0.75),
    "disgust": (0.25, 0.55),
    "surprise": (0.55, 0.75),
    "neutral": (0.5, 0.4),
    "happy": (0.8, 0.6),
}
#: The music-intro message targets (content/messages.json) and the clip categories they mean.
TARGET_CATEGORY = {"comfort": "comforting", "calm": "calming", "focus": "grounding", "uplift": "uplifting"}


@dataclass(frozen=True)
class Clip:
    id: str
    url: str
    category: str
    title: dict
    start: tuple[float, float]
    end: tuple[float, float]
    duration_s: float
    mood_tags: tuple[str, ...] = ()
    source: str = "bundled"
    license: str = ""
    extra: dict = field(default_factory=dict, compare=False)

    def to_dict(self, locale: str) -> dict:
        return {
            "id": self.id,
            "url": self.url,
            "title": localized(self.title, locale) if self.title else self.id,
            "category": self.category,
            "duration_s": self.duration_s,
            "source": self.source,
        }


def _point(value, default=(0.5, 0.5)) -> tuple[float, float]:
    if not isinstance(value, dict):
        return default
    return (float(value.get("valence", default[0])), float(value.get("arousal", default[1])))


def _clips_from(manifest: Path, url_prefix: str, folder: Path, source: str) -> list[Clip]:
    try:
        data = json.loads(manifest.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return []
    except (OSError, ValueError) as exc:
        log.warning("music manifest %s unreadable: %s", manifest, exc)
        return []
    clips = []
    for entry in data.get("clips", []):
        try:
            file = Path(entry["file"]).name  # a manifest can name files, never paths
            if Path(file).suffix.lower() not in AUDIO_SUFFIXES or not (folder / file).is_file():
                raise ValueError(f"missing or not audio: {file}")
            title = entry.get("title") or {"en": Path(file).stem}
            clips.append(
                Clip(
                    id=f"{source}:{entry.get('id') or Path(file).stem}",
                    url=url_prefix + file,
                    category=entry.get("category", "calming"),
                    title=title if isinstance(title, dict) else {"en": str(title)},
                    start=_point(entry.get("start")),
                    end=_point(entry.get("end"), _point(entry.get("start"))),
                    duration_s=float(entry.get("duration_s") or 0),
                    mood_tags=tuple(entry.get("mood_tags", [])),
                    source=source,
                    license=entry.get("license", ""),
                )
            )
        except (KeyError, TypeError, ValueError) as exc:
            log.warning("skipping a clip in %s: %s", manifest, exc)
    return clips


class MusicCatalogue:
    def __init__(
        self,
        static_dir: Path,
        user_dir: Path | None = None,
        manifest: Path = CONTENT / "music.json",
    ) -> None:
        self.static_dir = static_dir
        self.user_dir = user_dir
        self.manifest = manifest
        self.clips: list[Clip] = []
        self._user_stamp: float | None = None
        self.reload()

    def _stamp(self) -> float | None:
        try:
            return (self.user_dir / "manifest.json").stat().st_mtime if self.user_dir else None
        except OSError:
            return None

    def refresh(self) -> None:
        """Reload if the person's manifest changed, so added clips count without a restart."""
        if self._stamp() != self._user_stamp:
            self.reload()

    def reload(self) -> None:
        """Read the bundled and the user's manifests again."""
        self._user_stamp = self._stamp()
        clips = _clips_from(self.manifest, "/static/music/", self.static_dir / "music", "bundled")
        if self.user_dir is not None:
            clips += _clips_from(self.user_dir / "manifest.json", "/care/music/", self.user_dir, "user")
        self.clips = clips

    def user_file(self, name: str) -> Path | None:
        """A file of the user's music folder, by bare name, if it is a listed audio file."""
        if self.user_dir is None or Path(name).name != name:
            return None
        self.refresh()
        if not any(c.source == "user" and c.url.endswith("/" + name) for c in self.clips):
            return None
        path = self.user_dir / name
        return path if path.is_file() else None

    def pick(
        self,
        emotion: str,
        target: str | None = None,
        avoid: Iterable[str] = (),
        weight: Callable[[str], float] = lambda _id: 1.0,
        rng: random.Random | None = None,
    ) -> Clip | None:
        """The clip that best starts near ``emotion`` and ends calmer or brighter."""
        self.refresh()
        rng = rng or random.Random()
        mood = MOOD_POINTS.get(emotion, MOOD_POINTS["neutral"])
        category = TARGET_CATEGORY.get(target or "")
        avoid = set(avoid)
        scored = []
        for clip in self.clips:
            moves_well = clip.end[0] >= clip.start[0] - 0.05 and (
                clip.end[1] <= clip.start[1] + 0.05 or emotion in ("sad", "neutral", "happy")
            )
            if not moves_well:
                continue  # never lead someone toward a worse place
            cost = math.dist(clip.start, mood)
            if category and clip.category != category:
                cost += 0.3
            if clip.id in avoid:
                cost += 1.0
            if emotion in clip.mood_tags:
                cost *= 0.7
            # positive, so that a learned weight (feedback) scales it the right way
            cost = (cost + 0.05) / max(weight(clip.id), 1e-3)
            scored.append((cost + rng.random() * 0.05, clip))
        return min(scored, key=lambda pair: pair[0])[1] if scored else None
