"""Following faces across frames, so each person keeps one id and one smoothed mood.

Matching is greedy on box overlap (IoU), falling back to centre distance for fast moves; a
track survives a few frames without a match (a blink of the detector) before it is dropped.
The primary face, the one whose mood drives care, is the largest and most central.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

from .smoothing import EmotionSmoother, SmoothingConfig
from .types import Face

Box = tuple[int, int, int, int]


def iou(a: Box, b: Box) -> float:
    ax2, ay2, bx2, by2 = a[0] + a[2], a[1] + a[3], b[0] + b[2], b[1] + b[3]
    iw = max(0, min(ax2, bx2) - max(a[0], b[0]))
    ih = max(0, min(ay2, by2) - max(a[1], b[1]))
    inter = iw * ih
    union = a[2] * a[3] + b[2] * b[3] - inter
    return inter / union if union > 0 else 0.0


def centre_distance(a: Box, b: Box) -> float:
    """Distance between centres, in units of the larger box's side."""
    dx = (a[0] + a[2] / 2) - (b[0] + b[2] / 2)
    dy = (a[1] + a[3] / 2) - (b[1] + b[3] / 2)
    return (dx * dx + dy * dy) ** 0.5 / max(a[2], a[3], b[2], b[3], 1)


@dataclass
class Track:
    id: int
    box: Box
    smoother: EmotionSmoother
    misses: int = 0
    age: int = 0


@dataclass
class TrackedFace:
    """A face of this frame, with its track id and smoothed state."""

    face: Face
    track_id: int
    smoothed: dict[str, float]
    label: str
    primary: bool = False
    extra: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {
            **self.face.to_dict(),
            "track_id": self.track_id,
            "smoothed": {name: round(value, 4) for name, value in self.smoothed.items()},
            "label": self.label,
            "primary": self.primary,
        }


class FaceTracker:
    """Per-connection tracker: call :meth:`update` once per analysed frame."""

    def __init__(
        self,
        smoothing: SmoothingConfig = SmoothingConfig(),
        min_iou: float = 0.3,
        max_centre_distance: float = 0.6,
        max_misses: int = 5,
    ) -> None:
        self.smoothing = smoothing
        self.min_iou = min_iou
        self.max_centre_distance = max_centre_distance
        self.max_misses = max_misses
        self.tracks: list[Track] = []
        self._ids = itertools.count(1)

    def _match(self, faces: list[Face]) -> dict[int, Track]:
        pairs = []
        for fi, face in enumerate(faces):
            for track in self.tracks:
                overlap = iou(face.box, track.box)
                distance = centre_distance(face.box, track.box)
                if overlap >= self.min_iou or distance <= self.max_centre_distance:
                    pairs.append((overlap, -distance, fi, track))
        pairs.sort(key=lambda p: (p[0], p[1]), reverse=True)
        matched: dict[int, Track] = {}
        used: set[int] = set()
        for _, _, fi, track in pairs:
            if fi not in matched and track.id not in used:
                matched[fi] = track
                used.add(track.id)
        return matched

    def update(self, faces: list[Face], t: float, frame_size: tuple[int, int] | None = None) -> list[TrackedFace]:
        matched = self._match(faces)
        seen: set[int] = set()
        out = []
        for fi, face in enumerate(faces):
            track = matched.get(fi)
            if track is None:
                track = Track(next(self._ids), face.box, EmotionSmoother(self.smoothing))
                self.tracks.append(track)
            track.box, track.misses = face.box, 0
            track.age += 1
            seen.add(track.id)
            smoothed, label = track.smoother.update(face.scores, t)
            out.append(TrackedFace(face, track.id, smoothed, label))
        for track in self.tracks:
            if track.id not in seen:
                track.misses += 1
        self.tracks = [tr for tr in self.tracks if tr.misses <= self.max_misses]
        if out:
            primary_of(out, frame_size).primary = True
        return out


def primary_of(faces: list[TrackedFace], frame_size: tuple[int, int] | None) -> TrackedFace:
    """The largest face, discounted by its distance from the centre of the frame."""
    if frame_size is None:
        return max(faces, key=lambda f: f.face.area)
    width, height = frame_size

    def weight(f: TrackedFace) -> float:
        x, y, w, h = f.face.box
        dx = (x + w / 2 - width / 2) / width
        dy = (y + h / 2 - height / 2) / height
        return f.face.area * (1.0 - min(0.9, (dx * dx + dy * dy) ** 0.5))

    return max(faces, key=weight)
