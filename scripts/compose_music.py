#!/usr/bin/env python3
"""Compose, render and encode EmoCare's music clips, and write their manifest.

Why this exists: EmoCare offers a short piece of music when someone has looked sad,
angry or afraid for a while. Finding recordings that (a) follow music therapy's *iso
principle* (meet the listener where they are, then move gently toward calm or warmth),
(b) are short, soft and consistent in loudness, and (c) carry a licence that lets us ship
them, is hard. So the clips are composed here, as data, and rendered with a free General
MIDI soundfont. Everything is deterministic: the same script gives the same files.

This file is only the composer and the synthesis pipeline. The music itself is data beside
it, in ``scripts/music/`` (JSON, so a piece can be read and changed without reading code):
``pieces/<id>.json`` holds one piece each, ``catalogue.json`` their order, ``vocabulary.json``
the arpeggio patterns and melody rhythms every piece picks from, and ``instruments.json`` the
General MIDI instrument names.

Pipeline, per piece:

1. The piece is *data* (``pieces/<id>.json``): keys and chord progressions per section, a
   tempo curve and an "energy" curve over bars, and a list of instrument tracks, each with
   a role (pad, bass, arpeggio, melody, drone, pulse, sparkle...) and the rules that role
   follows. The curves are what make a clip *move*: a calming clip's energy falls, so its
   arpeggios slow from eighths to half notes, its melody thins out and its velocities drop
   while the tempo decelerates; a comforting clip's key turns from minor to the relative
   major and its energy rises a little.
2. The composer turns that into notes with a seeded ``random.Random`` (voice-led chords,
   rule-based melody with motifs and phrase contours) and writes a Standard MIDI File by
   hand with ``struct`` (standard library only).
3. FluidSynth renders the MIDI to WAV with the FluidR3 GM soundfont.
4. ffmpeg adds the fades, normalises loudness (two-pass ``loudnorm``, linear gain, to
   -20 LUFS with true peaks at most -2 dBTP) and encodes Ogg Vorbis in bit-exact mode, so
   reruns give identical bytes.
5. The clip is measured (ffprobe duration) and the manifest ``music.json`` is written.
6. Every clip is verified: it decodes, lasts 20-90 s, is not silent, peaks below -1 dBFS,
   and the folder stays small.

Needs Debian's ``fluidsynth``, ``fluid-soundfont-gm`` and ``ffmpeg``; see ``docs/music.md``.
Run ``python3 scripts/compose_music.py`` from anywhere; ``--help`` lists the options
(``--out-dir`` and ``--manifest`` write somewhere other than the repository, e.g. to compare a
change's output with the committed clips).
"""

from __future__ import annotations

import argparse
import array
import hashlib
import itertools
import json
import logging
import math
import random
import re
import shutil
import struct
import subprocess
import sys
import tempfile
import wave
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

log = logging.getLogger("compose_music")

ROOT = Path(__file__).resolve().parents[1]
#: Where the clips and their manifest go by default (``--out-dir``, ``--manifest``).
OUT_DIR = ROOT / "static" / "music"
MANIFEST = ROOT / "src" / "emocare" / "care" / "content" / "music.json"
SOUNDFONT = Path("/usr/share/sounds/sf2/FluidR3_GM.sf2")
#: The pieces and the vocabulary they share (see the module docstring).
DATA_DIR = Path(__file__).resolve().parent / "music"
#: A piece, or one of its tracks, as the composer uses it: the JSON object from the data
#: files, with pitches turned into MIDI numbers (see "The data files" below).
Piece = dict[str, Any]
Spec = dict[str, Any]

#: MIDI ticks per quarter note.
TPB = 480
SAMPLE_RATE = 44100
#: FluidSynth master gain: low enough that the densest bar never clips the 16-bit WAV.
SYNTH_GAIN = 1.0
#: Loudness target. Soft music at -20 LUFS sits comfortably under speech at typical levels.
TARGET_LUFS = -20.0
TARGET_TP = -2.0
BITRATE = "64k"
FADE_IN_S = 2.0
FADE_OUT_S = 5.0
#: Limits the verification enforces (the brief: 20-90 s, < 1 MB each, about 6 MB in all).
MIN_S, MAX_S = 20.0, 90.0
MAX_CLIP_BYTES = 1_000_000
MAX_FOLDER_BYTES = 6_000_000

# --------------------------------------------------------------------------------------
# Music theory
# --------------------------------------------------------------------------------------

NOTE_PC = {
    "C": 0,
    "C#": 1,
    "Db": 1,
    "D": 2,
    "D#": 3,
    "Eb": 3,
    "E": 4,
    "F": 5,
    "F#": 6,
    "Gb": 6,
    "G": 7,
    "G#": 8,
    "Ab": 8,
    "A": 9,
    "A#": 10,
    "Bb": 10,
    "B": 11,
}
SHARP_NAMES = ["C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B"]
FLAT_NAMES = ["C", "Db", "D", "Eb", "E", "F", "Gb", "G", "Ab", "A", "Bb", "B"]
MODES = {
    "major": [0, 2, 4, 5, 7, 9, 11],
    "minor": [0, 2, 3, 5, 7, 8, 10],
    "dorian": [0, 2, 3, 5, 7, 9, 10],
    "mixolydian": [0, 2, 4, 5, 7, 9, 10],
}
#: Where each mode's "relative major" tonic lies, to decide between sharps and flats.
MODE_TO_MAJOR = {"major": 0, "minor": 3, "dorian": 10, "mixolydian": 5}
ROMAN = {"i": 0, "ii": 1, "iii": 2, "iv": 3, "v": 4, "vi": 5, "vii": 6}
CHORD_RE = re.compile(
    r"^(?P<acc>[b#]?)(?P<num>VII|vii|III|iii|IV|iv|VI|vi|II|ii|V|v|I|i)(?P<dim>°?)"
    r"(?P<ext>(?:maj7|7|add9|sus2|sus4|6)*)(?:/(?P<inv>[357]))?$"
)
# The General MIDI instrument names (GM_NAMES), the arpeggio patterns (ARP_PATTERNS) and the
# melody rhythms (RHYTHMS, ENDINGS) are data: see "The data files" below.


def note(name: str) -> int:
    """MIDI number of a note name such as ``"A2"`` or ``"Eb4"`` (C4 = 60)."""
    m = re.fullmatch(r"([A-G][#b]?)(-?\d)", name)
    if not m:
        raise ValueError(f"bad note name {name!r}")
    return NOTE_PC[m[1]] + 12 * (int(m[2]) + 1)


@dataclass(frozen=True)
class Key:
    tonic: int
    mode: str

    @property
    def scale(self) -> list[int]:
        return MODES[self.mode]

    def pc_name(self, pc: int) -> str:
        major = (self.tonic + MODE_TO_MAJOR[self.mode]) % 12
        return (FLAT_NAMES if major in (5, 10, 3, 8, 1, 6) else SHARP_NAMES)[pc % 12]

    @property
    def name(self) -> str:
        return f"{self.pc_name(self.tonic)} {self.mode}"


@dataclass(frozen=True)
class Chord:
    """A chord in a key. ``tones`` pairs each interval above the root with the number of
    scale steps it lies above the root (third = 2, fifth = 4...), which is what lets the
    melody know which scale note a chromatic chord tone replaces (G# for G over E major
    in A minor, Db for D over B-flat minor in F major)."""

    key: Key
    root: int
    degree: int
    tones: tuple[tuple[int, int], ...]
    bass: int
    symbol: str
    name: str

    @property
    def pcs(self) -> list[int]:
        return [(self.root + i) % 12 for i, _ in self.tones]


def parse_chord(symbol: str, key: Key) -> Chord:
    """A Roman-numeral chord: case gives the quality (``IV`` major, ``ii`` minor, ``vii°``
    diminished), ``b``/``#`` alter the root, suffixes ``7 maj7 6 add9 sus2 sus4`` add or
    replace tones, and ``/3 /5 /7`` put that tone in the bass."""
    m = CHORD_RE.match(symbol)
    if not m:
        raise ValueError(f"bad chord symbol {symbol!r}")
    degree = ROMAN[m["num"].lower()]
    acc = {"": 0, "b": -1, "#": 1}[m["acc"]]
    root = (key.tonic + key.scale[degree] + acc) % 12
    if m["dim"]:
        tones, quality = [(0, 0), (3, 2), (6, 4)], "dim"
    elif m["num"].isupper():
        tones, quality = [(0, 0), (4, 2), (7, 4)], ""
    else:
        tones, quality = [(0, 0), (3, 2), (7, 4)], "m"
    exts = re.findall(r"maj7|7|add9|sus2|sus4|6", m["ext"] or "")
    for ext in exts:
        if ext == "7":
            tones.append((10, 6))
        elif ext == "maj7":
            tones.append((11, 6))
        elif ext == "6":
            tones.append((9, 5))
        elif ext == "add9":
            tones.append((2, 1))
        elif ext == "sus2":
            tones[1], quality = (2, 1), ""
        elif ext == "sus4":
            tones[1], quality = (5, 3), ""
    bass = root
    if m["inv"]:
        wanted = {"3": 2, "5": 4, "7": 6}[m["inv"]]
        bass = next((root + i) % 12 for i, d in tones if d == wanted)
    name = key.pc_name(root) + quality + "".join(exts)
    if bass != root:
        name += "/" + key.pc_name(bass)
    return Chord(key, root, degree, tuple(tones), bass, symbol, name)


def melody_scale(chord: Chord, pentatonic: bool = False) -> set[int]:
    """Pitch classes a melody may use over ``chord``: the key's scale with each chord tone
    substituted for the scale note of the same letter (so the raised leading tone over V
    in minor, or the borrowed minor sixth over iv in major, is used and its diatonic
    neighbour is not). ``pentatonic`` drops the two "leaning" degrees unless they are
    chord tones: simpler, more predictable lines for grounding pieces."""
    key = chord.key
    pcs = [(key.tonic + s) % 12 for s in key.scale]
    for interval, steps in chord.tones:
        pcs[(chord.degree + steps) % 7] = (chord.root + interval) % 12
    if pentatonic:
        drop = (3, 6) if key.mode in ("major", "mixolydian") else (1, 5)
        chord_pcs = set(chord.pcs)
        pcs = [pc for i, pc in enumerate(pcs) if i not in drop or pc in chord_pcs]
    return set(pcs)


def voicings(chord: Chord, n: int, lo: int, hi: int) -> Iterator[tuple[int, ...]]:
    """Every n-note voicing of ``chord`` within [lo, hi] that keeps root, third and any
    seventh or added tone, has no seconds between neighbouring voices and no gap wider
    than an octave."""
    pcs = chord.pcs
    required = [pcs[0], pcs[1], *pcs[3:]]
    required = set(required[:n])
    notes = [p for p in range(lo, hi + 1) if p % 12 in set(pcs)]
    for combo in itertools.combinations(notes, n):
        gaps = [b - a for a, b in itertools.pairwise(combo)]
        if any(g < 3 for g in gaps) or any(g > 12 for g in gaps):
            continue
        if not required <= {p % 12 for p in combo}:
            continue
        yield combo


def lead(
    prev: tuple[int, ...] | None, chord: Chord, n: int, lo: int, hi: int, bass_first: bool = False
) -> tuple[int, ...]:
    """The voicing of ``chord`` closest to ``prev`` (smallest total motion, no parallel
    fifths or octaves, not drifting from the middle of the range): classic voice leading,
    which is what keeps sustained pads smooth instead of jumping around."""
    center = (lo + hi) / 2
    best, best_cost = None, math.inf
    for v in voicings(chord, n, lo, hi):
        cost = 0.3 * abs(sum(v) / n - center)
        if prev is not None and len(prev) == n:
            cost += sum(abs(a - b) for a, b in zip(v, prev, strict=False))
            for i, j in itertools.combinations(range(n), 2):
                before, after = (prev[j] - prev[i]) % 12, (v[j] - v[i]) % 12
                if before == after and after in (0, 7) and v[i] != prev[i]:
                    cost += 3
        if bass_first and v[0] % 12 != chord.bass:
            cost += 4
        if cost < best_cost:
            best, best_cost = v, cost
    if best is None:
        raise ValueError(f"no {n}-note voicing of {chord.name} in {lo}..{hi}")
    return best


def lowest(pc: int, lo: int) -> int:
    """The lowest pitch of pitch class ``pc`` at or above ``lo``."""
    return lo + (pc - lo) % 12


# --------------------------------------------------------------------------------------
# Curves and the score
# --------------------------------------------------------------------------------------


class Curve:
    """A value over bars, eased (cosine) between breakpoints so that tempo and energy
    change smoothly, with no audible corners."""

    def __init__(self, points: list[tuple[float, float]] | list[list[float]]) -> None:
        self.points = sorted(points)

    def __call__(self, bar: float) -> float:
        pts = self.points
        if bar <= pts[0][0]:
            return pts[0][1]
        for (x0, y0), (x1, y1) in itertools.pairwise(pts):
            if bar <= x1:
                t = (bar - x0) / (x1 - x0) if x1 > x0 else 1.0
                return y0 + (y1 - y0) * (0.5 - 0.5 * math.cos(math.pi * t))
        return pts[-1][1]


@dataclass
class Segment:
    start: float  # in beats
    dur: float
    chord: Chord
    bar: int


class Score:
    """The harmonic timeline (chord segments in beats) plus the tempo and energy curves."""

    def __init__(self, piece: Piece) -> None:
        self.bpb = piece["meter"]
        self.segments: list[Segment] = []
        self.section_starts: list[int] = []
        bar = 0
        for section in piece["sections"]:
            key = Key(NOTE_PC[section["key"]], section["mode"])
            self.section_starts.append(bar)
            for entry in section["bars"]:
                parts = entry.split()
                if len(parts) == 1:
                    durs = [self.bpb]
                elif self.bpb == 3 and len(parts) == 2:
                    durs = [2, 1]
                else:
                    durs = [self.bpb / len(parts)] * len(parts)
                pos = bar * self.bpb
                for sym, d in zip(parts, durs, strict=False):
                    self.segments.append(Segment(pos, d, parse_chord(sym, key), bar))
                    pos += d
                bar += 1
        self.bars = bar
        self.total = bar * self.bpb
        self.tempo = Curve(piece["tempo"])
        self.energy_curve = Curve(piece["energy"])

    def energy(self, beat: float) -> float:
        return self.energy_curve(beat / self.bpb)

    def bpm(self, beat: float) -> float:
        return self.tempo(beat / self.bpb)

    def segment_at(self, beat: float) -> Segment:
        for seg in self.segments:
            if seg.start <= beat < seg.start + seg.dur - 1e-9:
                return seg
        return self.segments[-1]

    def segments_in(self, bar0: int, bar1: int) -> list[Segment]:
        return [s for s in self.segments if bar0 <= s.bar < bar1]

    def seconds(self, beats: float) -> float:
        """Real time of ``beats`` beats under the tempo curve (tempo changes every beat,
        exactly as the MIDI tempo map does)."""
        total, b = 0.0, 0
        while b < beats:
            step = min(1.0, beats - b)
            total += step * 60.0 / self.bpm(b)
            b += 1
        return total


# --------------------------------------------------------------------------------------
# Tracks and the roles that fill them
# --------------------------------------------------------------------------------------


@dataclass
class Track:
    name: str
    channel: int
    program: int
    spec: Spec
    notes: list[tuple[int, int, int, int]] = field(default_factory=list)  # (start_tick, end_tick, pitch, velocity)
    ccs: list[tuple[int, int, int]] = field(default_factory=list)  # (tick, controller, value)

    def add(self, start: float, dur: float, pitch: int, vel: float, jitter: int = 0) -> None:
        """Add a note at ``start`` beats lasting ``dur`` beats; ``jitter`` ticks of timing
        looseness (never before zero) keep the sequenced parts from sounding mechanical."""
        t0 = max(0, round(start * TPB) + jitter)
        t1 = max(t0 + 1, round((start + dur) * TPB))
        self.notes.append((t0, t1, int(pitch), int(max(1, min(110, round(vel))))))


def vel_of(spec: Spec, energy: float, default: tuple[float, float] = (35, 70)) -> float:
    lo, hi = spec.get("vel", default)
    return lo + (hi - lo) * energy


def active_bars(score: Score, spec: Spec) -> tuple[int, int]:
    b0, b1 = spec.get("bars", (0, score.bars))
    return b0, min(b1, score.bars)


def role_pad(score: Score, spec: Spec, rng: random.Random, track: Track) -> None:
    """Sustained, voice-led chords. Common tones are tied across chord changes instead of
    re-struck (unless ``restrike``), the way a string section or a choir would sing it."""
    lo, hi = spec["range"]
    n = spec.get("voices", 4)
    b0, b1 = active_bars(score, spec)
    prev, sounding = None, {}  # pitch -> (start beat, velocity)
    for seg in score.segments_in(b0, b1):
        v = lead(prev, seg.chord, n, lo, hi)
        vel = vel_of(spec, score.energy(seg.start), (30, 55))
        for p in list(sounding):
            if p not in v or spec.get("restrike"):
                start, pv = sounding.pop(p)
                track.add(start, seg.start - start, p, pv)
        for p in v:
            if p not in sounding:
                sounding[p] = (seg.start, vel + rng.uniform(-2, 2))
        prev = v
    end = b1 * score.bpb
    for p, (start, pv) in sounding.items():
        track.add(start, end - start, p, pv)


def role_bass(score: Score, spec: Spec, rng: random.Random, track: Track) -> None:
    """The bass line: the chord's bass note (or the key's tonic as a pedal), in a pattern
    chosen by the energy at that moment: ``eighths``/``pulse`` when there is drive,
    ``half`` (root then fifth) in between, ``whole`` when things are settling."""
    lo, hi = spec["range"]
    b0, b1 = active_bars(score, spec)
    prev = None
    for seg in score.segments_in(b0, b1):
        e = score.energy(seg.start)
        pattern = next(p for threshold, p in spec["patterns"] if e >= threshold)
        if seg.bar == score.bars - 1:
            pattern = "whole"
        pc = seg.chord.key.tonic if spec.get("pedal") else seg.chord.bass
        options = [p for p in range(lo, hi + 1) if p % 12 == pc]
        root = min(options, key=lambda p: (abs(p - prev) if prev else abs(p - (lo + 7)), p))
        prev = root
        fifth = root + 7 if root + 7 <= hi else root - 5
        step = {"whole": seg.dur, "half": 2.0, "pulse": 1.0, "eighths": 0.5}[pattern]
        t, i = 0.0, 0
        while t < seg.dur - 1e-9:
            d = min(step, seg.dur - t)
            pitch = fifth if pattern == "half" and i % 2 == 1 else root
            accent = 4 if t == 0 else 0
            vel = vel_of(spec, e, (35, 60)) + accent + rng.uniform(-2, 2)
            track.add(
                seg.start + t, d * spec.get("legato", 0.95), pitch, vel, jitter=0 if t == 0 else rng.randint(-4, 4)
            )
            t += step
            i += 1


def role_arp(score: Score, spec: Spec, rng: random.Random, track: Track) -> None:
    """Broken chords over a voice-led voicing. The note rate comes from the energy curve
    (``subdiv`` maps energy thresholds to beats per note), so a calming piece's
    arpeggios slow down by themselves, and a comforting piece's gain motion at the end.
    Notes ring for ``ring`` steps, like a harp or a sustain pedal. The last bar is one
    slow rolled chord left to ring."""
    lo, hi = spec["range"]
    n = spec.get("voices", 4)
    pattern = ARP_PATTERNS[spec.get("pattern", "up")]
    b0, b1 = active_bars(score, spec)
    prev = None
    for seg in score.segments_in(b0, b1):
        v = lead(prev, seg.chord, n, lo, hi, bass_first=True)
        prev = v
        bass = v[0] - ((v[0] - seg.chord.bass) % 12 or 12)  # the chord's bass, below the voicing
        e = score.energy(seg.start)
        if seg.bar == score.bars - 1 and b1 == score.bars:
            for i, p in enumerate((bass, *v)):
                track.add(seg.start + i * 0.25, seg.dur - i * 0.25, p, vel_of(spec, e) - 4 + i)
            continue
        step = next(s for threshold, s in spec["subdiv"] if e >= threshold)
        k, t = 0, 0.0
        while t < seg.dur - 1e-6:
            idx = pattern[k % len(pattern)]
            pitch = bass if idx < 0 else v[idx % n] + 12 * (idx // n)
            ring = min(step * spec.get("ring", 2), seg.dur - t + step * 0.5)
            pos = seg.start + t
            beat_in_bar = pos - seg.bar * score.bpb
            accent = 5 if abs(beat_in_bar) < 1e-6 else (2 if abs(beat_in_bar % 1) < 1e-6 else 0)
            vel = vel_of(spec, score.energy(pos)) + accent + rng.uniform(-3, 3)
            track.add(pos, ring, pitch, vel, jitter=0 if k == 0 else rng.randint(-5, 5))
            k += 1
            t += step


def role_comp(score: Score, spec: Spec, rng: random.Random, track: Track) -> None:
    """Block-chord accompaniment in a fixed per-bar pattern, e.g. a waltz guitar: bass
    note on one, chord on two and three. ``pattern`` lists (beat, voice indices, length);
    index -1 is the bass note."""
    lo, hi = spec["range"]
    n = spec.get("voices", 4)
    b0, b1 = active_bars(score, spec)
    prev = None
    for seg in score.segments_in(b0, b1):
        v = lead(prev, seg.chord, n, lo, hi, bass_first=True)
        prev = v
        bass = lowest(seg.chord.bass, spec.get("bass_lo", lo - 12))
        last = seg.bar == score.bars - 1 and b1 == score.bars
        for beat, indices, length in spec["pattern"]:
            if beat >= seg.dur - 1e-9 or (last and beat > 0):
                continue
            pos = seg.start + beat
            e = score.energy(pos)
            for i, idx in enumerate(indices):
                pitch = bass if idx < 0 else v[idx % n]
                dur = seg.dur if last else length
                vel = vel_of(spec, e) + (4 if beat == 0 else -3) + rng.uniform(-2, 2)
                # a guitar strums: the notes of a chord arrive a few ticks apart
                track.add(pos, dur, pitch, vel, jitter=i * 12 + rng.randint(0, 4))


def role_drone(score: Score, spec: Spec, rng: random.Random, track: Track) -> None:
    """Long held notes on the key's tonic and fifth (``intervals``), re-struck every
    ``every`` bars and at each key change: a floor that does not move."""
    lo = spec["range"][0]
    b0, b1 = active_bars(score, spec)
    every = spec.get("every", score.bars)
    starts = sorted({b for b in range(b0, b1, every)} | {s for s in score.section_starts if b0 <= s < b1})
    for a, b in zip(starts, [*starts[1:], b1], strict=False):
        key = score.segment_at(a * score.bpb).chord.key
        base = lowest(key.tonic, lo)
        for i, interval in enumerate(spec.get("intervals", [0, 7])):
            vel = vel_of(spec, score.energy(a * score.bpb), (40, 55))
            track.add(a * score.bpb, (b - a) * score.bpb, base + interval, vel - 3 * i)


def role_pulse(score: Score, spec: Spec, rng: random.Random, track: Track) -> None:
    """A steady, predictable pulse (one note every ``step`` beats), on the key's tonic,
    the chord root, or alternating root and fifth. Its velocity does not follow the energy
    curve: its job is to be the same every time, like a slow heartbeat."""
    lo, hi = spec["range"]
    b0, b1 = active_bars(score, spec)
    step = spec.get("step", 1.0)
    mode = spec.get("pitch", "root5")
    v_lo, v_hi = spec.get("vel", (42, 50))
    k, pos = 0, b0 * score.bpb
    while pos < b1 * score.bpb - 1e-9:
        seg = score.segment_at(pos)
        pc = seg.chord.key.tonic if mode.startswith("tonic") else seg.chord.root
        base = lowest(pc, lo)
        pitch = base
        if mode.endswith("5") and k % 2 == 1:
            pitch = base + 7 if base + 7 <= hi else base - 5
        on_one = abs((pos / score.bpb) - round(pos / score.bpb)) < 1e-6
        vel = (v_hi if on_one else v_lo) + rng.uniform(-1.5, 1.5)
        track.add(pos, step * spec.get("legato", 0.9), pitch, vel)
        k += 1
        pos += step


def role_sparkle(score: Score, spec: Spec, rng: random.Random, track: Track) -> None:
    """Occasional soft high notes on chord tones (celesta, music box, vibraphone), a
    little light that appears as a comforting piece brightens."""
    lo, hi = spec["range"]
    b0, b1 = active_bars(score, spec)
    last = None
    for bar in range(b0, b1):
        for beat in range(score.bpb):
            if rng.random() >= spec.get("p", 0.3):
                continue
            pos = bar * score.bpb + beat + (0.5 if rng.random() < 0.3 else 0.0)
            chord = score.segment_at(pos).chord
            cands = [p for p in range(lo, hi + 1) if p % 12 in chord.pcs and p != last]
            if last is not None:
                near = [p for p in cands if abs(p - last) <= 7]
                cands = near or cands
            last = rng.choice(cands)
            track.add(pos, 2.0, last, vel_of(spec, score.energy(pos), (28, 42)) + rng.uniform(-3, 3))


# Phrase contours, t in [0, 1] -> height relative to the register's centre (in units of
# the melody's ``amp``).
CONTOURS = {
    "arch": lambda t: math.sin(math.pi * t) - 0.35,
    "rise": lambda t: 0.8 * t - 0.4,
    "fall": lambda t: 0.45 - 0.9 * t,
    "wave": lambda t: 0.45 * math.sin(2 * math.pi * t),
    "late-arch": lambda t: math.sin(math.pi * min(1.0, t * 1.4)) * (1 - 0.5 * t) - 0.3,
}


LEVELS = ["sparse", "medium", "active"]
#: How a note is split when a phrase comes back busier: keep to simple, on-beat values.
SPLITS = {4: [2, 2], 3: [2, 1], 2: [1, 1], 1.5: [1, 0.5], 1: [0.5, 0.5]}


def vary_rhythm(rhythm: list[list[float]], steps: int) -> list[list[float]]:
    """The same phrase rhythm with more motion (``steps`` > 0: the longest note of each
    inner bar is split in two) or less (``steps`` < 0: the two shortest neighbouring notes
    are merged). A repeated phrase keeps its rhythmic identity while the density follows
    the energy curve. The phrase's last bar (its cadence) is left alone."""
    out = [list(bar) for bar in rhythm]
    for bar in out[:-1]:
        for _ in range(abs(steps)):
            notes = [i for i, d in enumerate(bar) if d > 0]
            if steps > 0:
                i = max(notes, key=lambda k: (bar[k], -k))
                if bar[i] >= 1:
                    bar[i : i + 1] = SPLITS.get(bar[i], [bar[i] / 2, bar[i] / 2])
            else:
                pairs = [(bar[k] + bar[k + 1], k) for k in range(len(bar) - 1) if bar[k] > 0 and bar[k + 1] > 0]
                if pairs:
                    _, k = min(pairs)
                    bar[k : k + 2] = [bar[k] + bar[k + 1]]
    return out


def role_melody(score: Score, spec: Spec, rng: random.Random, track: Track) -> None:
    """A melody built phrase by phrase (``phrase_bars`` long, following a ``plan`` such as
    "abac"). A phrase's first occurrence follows a contour (arch, rise, fall...); a repeated
    letter reuses its rhythm (made busier or calmer if the energy has changed) and is
    pulled toward the *same melodic shape*, relative to the register's centre at that
    point, so it comes back recognisably, transposed if the centre has moved, and bent to
    fit the new chords. That repetition is what makes it sound like a tune.

    Each note is chosen greedily from the scale by a cost that encodes the usual rules:
    follow the contour or the remembered shape, prefer steps, recover from a leap by a
    step the other way, avoid tritone and large leaps and long repeats, put chord tones on
    strong beats and long notes, resolve a non-chord tone by step, end each phrase on a
    chord tone and the last phrase on the tonic. A seeded bit of noise breaks ties."""
    lo, hi = spec["range"]
    b0, b1 = active_bars(score, spec)
    pb = spec.get("phrase_bars", 2)
    plan = spec.get("plan", "abac")
    amp = spec.get("amp", 10)
    center = Curve(spec["center"])
    density = spec.get("density", [(0.5, "active"), (0.24, "medium"), (0, "sparse")])
    contours = spec.get("contours", ["arch", "rise", "fall", "late-arch", "wave"])
    pentatonic = spec.get("pentatonic", False)
    bpb = score.bpb
    motifs: dict[str, dict[str, Any]] = {}
    prev, prev_step, prev_nct = None, 0, False
    phrases = [(b, min(b + pb, b1)) for b in range(b0, b1, pb)]
    for n_phrase, (p0, p1) in enumerate(phrases):
        label = plan[n_phrase % len(plan)]
        final = n_phrase == len(phrases) - 1 and b1 == score.bars
        level = next(lv for th, lv in density if score.energy(p0 * bpb) >= th)
        motif = motifs.get(label)
        if motif is None or motif["bars"] != p1 - p0:
            rhythm = [rng.choice(RHYTHMS[bpb][level]) for _ in range(p1 - p0 - 1)]
            rhythm.append(rng.choice(ENDINGS[bpb][level]))
            motif = {
                "bars": p1 - p0,
                "rhythm": rhythm,
                "level": level,
                "contour": rng.choice(contours),
                "seed": rng.randrange(1 << 30),
                "shape": None,
            }
            motifs[label] = motif
        rhythm = vary_rhythm(motif["rhythm"], LEVELS.index(level) - LEVELS.index(motif["level"]))
        contour = motif["contour"]
        shape = motif["shape"]
        if final:
            rhythm = [*rhythm[:-1], [bpb]]
            if shape is None and contour in ("rise", "wave"):
                contour = "fall"
        noise = random.Random(motif["seed"])
        events = []
        for i, bar_rhythm in enumerate(rhythm):
            pos = (p0 + i) * bpb
            for d in bar_rhythm:
                if d > 0:
                    events.append((pos, d))
                pos += abs(d)
        span = (p1 - p0) * bpb
        played = []
        for j, (pos, dur) in enumerate(events):
            chord = score.segment_at(pos).chord
            chord_pcs = set(chord.pcs)
            scale = melody_scale(chord, pentatonic) | chord_pcs
            rel = pos - p0 * bpb
            t = rel / span
            here = center(pos / bpb)
            if shape:
                offset = next(o for r, o in reversed(shape) if r <= rel + 1e-6) if rel >= shape[0][0] else shape[0][1]
                target, weight = here + offset, 0.8
            else:
                target, weight = here + amp * CONTOURS[contour](t), 0.55
            beat_in_bar = pos - (pos // bpb) * bpb
            strong = beat_in_bar < 1e-6 or (bpb == 4 and abs(beat_in_bar - 2) < 1e-6)
            long_note = dur >= 1.5
            is_last = j == len(events) - 1
            later = [s.chord for s in score.segments if pos < s.start < pos + dur]
            best, best_cost = None, math.inf
            for p in range(lo, hi + 1):
                if p % 12 not in scale:
                    continue
                cost = weight * abs(p - target)
                is_ct = p % 12 in chord_pcs
                if prev is not None:
                    iv = p - prev
                    a = abs(iv)
                    cost += {
                        0: 2.0,
                        1: 0,
                        2: 0,
                        3: 0.5,
                        4: 0.7,
                        5: 1.4,
                        6: 8,
                        7: 2.2,
                        8: 4,
                        9: 4.5,
                        10: 9,
                        11: 9,
                        12: 5,
                    }.get(a, 12)
                    if abs(prev_step) >= 5:
                        if iv * prev_step > 0:
                            cost += 3
                        elif 0 < a <= 2:
                            cost -= 0.8
                    if prev_nct and a > 2:
                        cost += 4
                    if a == 0 and prev_step == 0:
                        cost += 3
                if not is_ct:
                    cost += 7 if (strong or long_note) else (2.0 if dur >= 1 else 0.6)
                for c in later:
                    if p % 12 not in c.pcs:
                        cost += 3
                if is_last:
                    if not is_ct:
                        cost += 10
                    if final and p % 12 != chord.key.tonic:
                        cost += 30
                    if p % 12 == chord.root:
                        cost -= 0.5
                cost += noise.random() * spec.get("noise", 1.3)
                if cost < best_cost:
                    best, best_cost = p, cost
            if prev is not None:
                prev_step = best - prev
            prev, prev_nct = best, best % 12 not in chord_pcs
            played.append((rel, best - here))
            e = score.energy(pos)
            vel = (
                vel_of(spec, e, (45, 75))
                + 6 * CONTOURS[contour](t)
                + (3 if beat_in_bar < 1e-6 else 0)
                - (5 if is_last else 0)
                + noise.uniform(-2, 2)
            )
            track.add(pos, dur * spec.get("legato", 0.96), best, vel, jitter=0 if pos == 0 else rng.randint(-6, 6))
        if motif["shape"] is None and played:
            motif["shape"] = played


ROLES: dict[str, Callable[[Score, Spec, random.Random, Track], None]] = {
    "pad": role_pad,
    "bass": role_bass,
    "arp": role_arp,
    "comp": role_comp,
    "drone": role_drone,
    "pulse": role_pulse,
    "sparkle": role_sparkle,
    "melody": role_melody,
}


def expression(score: Score, spec: Spec, beat: float) -> int:
    """CC11 (expression) at ``beat``: swells in a breathing rhythm if ``swell`` (period in
    bars) is set, and fades a part in or out over ``ramp_in``/``ramp_out`` bars when it
    enters or leaves mid-piece, so the texture thickens or thins without a bump."""
    value = spec.get("expr", 110)
    if spec.get("swell"):
        period = spec["swell"] * score.bpb
        lo, hi = spec.get("swell_range", (78, 118))
        value = lo + (hi - lo) * (0.5 - 0.5 * math.cos(2 * math.pi * beat / period))
    b0, b1 = active_bars(score, spec)
    bar = beat / score.bpb
    if spec.get("ramp_in"):
        value *= 0.3 + 0.7 * min(1.0, max(0.0, (bar - b0) / spec["ramp_in"]))
    if spec.get("ramp_out"):
        value *= 0.3 + 0.7 * min(1.0, max(0.0, (b1 - bar) / spec["ramp_out"]))
    return int(max(0, min(127, round(value))))


def compose(piece: Piece) -> tuple[Score, list[Track]]:
    """All tracks of ``piece`` as notes and controller events, from its seed."""
    score = Score(piece)
    tracks = []
    channels = [c for c in range(16) if c != 9]  # channel 10 is percussion in GM
    for i, spec in enumerate(piece["tracks"]):
        track = Track(spec.get("name", GM_NAMES[spec["program"]]), channels[i], spec["program"], spec)
        rng = random.Random(piece["seed"] * 1000 + i)
        ROLES[spec["role"]](score, spec, rng, track)
        b0, b1 = active_bars(score, spec)
        step = 0.25 if spec.get("swell") else 0.5
        last = None
        beat = b0 * score.bpb
        while spec.get("swell") or spec.get("ramp_in") or spec.get("ramp_out"):
            value = expression(score, spec, beat)
            if value != last:
                track.ccs.append((round(beat * TPB), 11, value))
                last = value
            beat += step
            if beat > b1 * score.bpb:
                break
        tracks.append(track)
    # Let whatever sounds at the end ring on into the fade-out.
    tail = piece.get("tail_beats", 3) * TPB
    end = score.total * TPB
    for track in tracks:
        track.notes = [(s, e + tail if e >= end - TPB // 4 else e, p, v) for s, e, p, v in track.notes]
    return score, tracks


# --------------------------------------------------------------------------------------
# Standard MIDI File writer
# --------------------------------------------------------------------------------------


def vlq(value: int) -> bytes:
    """MIDI variable-length quantity."""
    out = [value & 0x7F]
    value >>= 7
    while value:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    return bytes(reversed(out))


def chunk(kind: bytes, data: bytes) -> bytes:
    return kind + struct.pack(">I", len(data)) + data


def encode_track(events: list[tuple[int, int, bytes]], end_tick: int) -> bytes:
    """``events`` are (tick, order, message); order breaks ties so that note-offs come
    before note-ons and set-up messages before both."""
    data = bytearray()
    now = 0
    for tick, _, message in sorted(events, key=lambda e: (e[0], e[1])):
        data += vlq(tick - now) + message
        now = tick
    data += vlq(max(0, end_tick - now)) + b"\xff\x2f\x00"
    return chunk(b"MTrk", bytes(data))


def meta(kind: int, payload: bytes) -> bytes:
    return bytes([0xFF, kind]) + vlq(len(payload)) + payload


def midi_bytes(piece: Piece, score: Score, tracks: list[Track]) -> tuple[bytes, int]:
    """A format-1 SMF: a conductor track with the tempo map (one tempo event per beat,
    following the tempo curve), then one track per instrument. Returns the bytes and the
    last tick."""
    tail = piece.get("tail_beats", 3) + 2  # room for the reverb to die away
    end_tick = (score.total + tail) * TPB
    conductor = [(0, 0, meta(0x03, piece["id"].encode())), (0, 0, meta(0x58, bytes([score.bpb, 2, 24, 8])))]
    for beat in range(score.total + tail):
        usec = round(60_000_000 / score.bpm(min(beat, score.total - 1)))
        conductor.append((beat * TPB, 1, meta(0x51, struct.pack(">I", usec)[1:])))
    chunks = [encode_track(conductor, end_tick)]
    for track in tracks:
        ch, spec = track.channel, track.spec
        events = [
            (0, 0, meta(0x03, track.name.encode())),
            (0, 1, bytes([0xC0 | ch, track.program])),
            (0, 1, bytes([0xB0 | ch, 7, spec.get("volume", 90)])),
            (0, 1, bytes([0xB0 | ch, 10, spec.get("pan", 64)])),
            (0, 1, bytes([0xB0 | ch, 91, spec.get("reverb", 70)])),
            (0, 1, bytes([0xB0 | ch, 93, spec.get("chorus", 10)])),
            (0, 1, bytes([0xB0 | ch, 11, spec.get("expr", 110)])),
        ]
        for tick, ctrl, value in track.ccs:
            events.append((tick, 2, bytes([0xB0 | ch, ctrl, value])))
        # The same pitch must not overlap itself on one channel: the earlier note's
        # note-off would cut the later one short. Trim the earlier note instead.
        by_pitch: dict[int, list] = {}
        for n in sorted(track.notes):
            by_pitch.setdefault(n[2], []).append(list(n))
        for notes in by_pitch.values():
            for a, b in itertools.pairwise(notes):
                if a[1] > b[0] - 10:
                    a[1] = max(a[0] + 1, b[0] - 10)
            for s, e, p, v in notes:
                events.append((s, 4, bytes([0x90 | ch, p, v])))
                events.append((e, 3, bytes([0x80 | ch, p, 0])))
        chunks.append(encode_track(events, end_tick))
    header = chunk(b"MThd", struct.pack(">HHH", 1, len(chunks), TPB))
    return header + b"".join(chunks), end_tick


# --------------------------------------------------------------------------------------
# Rendering and encoding
# --------------------------------------------------------------------------------------


def run(cmd: list[Any], **kw: Any) -> subprocess.CompletedProcess[str]:
    log.debug("$ %s", " ".join(map(str, cmd)))
    result = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, **kw)
    if result.returncode != 0:
        raise RuntimeError(f"{cmd[0]} failed ({result.returncode}):\n{result.stderr[-2000:]}")
    return result


def render_wav(mid: Path, wav: Path) -> None:
    """MIDI -> 44.1 kHz 16-bit stereo WAV with FluidSynth, non-interactively. A slightly
    larger, softer reverb room than the default gives the sampled instruments a shared
    space."""
    run(
        [
            "fluidsynth",
            "-ni",
            "-q",
            "-F",
            wav,
            "-T",
            "wav",
            "-O",
            "s16",
            "-r",
            SAMPLE_RATE,
            "-g",
            SYNTH_GAIN,
            "-R",
            "1",
            "-C",
            "1",
            "-o",
            "synth.reverb.room-size=0.6",
            "-o",
            "synth.reverb.damp=0.4",
            "-o",
            "synth.reverb.width=0.9",
            "-o",
            "synth.reverb.level=0.6",
            SOUNDFONT,
            mid,
        ]
    )


def wav_stats(wav: Path) -> tuple[float, float]:
    """How long a 16-bit WAV really sounds, and its peak (dBFS, to catch clipping at the
    synth). FluidSynth keeps rendering a few seconds of silence after the last voice
    dies; the clip is cut 0.3 s after the last sample above -60 dBFS."""
    with wave.open(str(wav), "rb") as w:
        rate, channels = w.getframerate(), w.getnchannels()
        data = array.array("h", w.readframes(w.getnframes()))
    if not data:
        raise RuntimeError(f"{wav.name}: FluidSynth rendered no audio")
    peak = max(max(data), -min(data))
    floor = 32768 * 10 ** (-60 / 20)
    last = len(data) - 1
    while last > 0 and abs(data[last]) < floor:
        last -= 1
    sounding = min(len(data), last + int(0.3 * rate) * channels) / channels / rate
    return sounding, 20 * math.log10(max(peak, 1) / 32768)


def encode_ogg(wav: Path, ogg: Path, duration: float) -> dict:
    """Trim to ``duration`` s, fade, normalise loudness (two-pass, linear) and encode
    Vorbis. Bit-exact flags fix the Ogg stream serial number and drop the encoder tag, so
    reruns give identical files."""
    fades = (
        f"atrim=end={duration:.3f},afade=t=in:st=0:d={FADE_IN_S}:curve=qsin,"
        f"afade=t=out:st={duration - FADE_OUT_S:.3f}:d={FADE_OUT_S}:curve=qsin"
    )
    norm = f"loudnorm=I={TARGET_LUFS}:TP={TARGET_TP}:LRA=20"
    first = run(
        ["ffmpeg", "-hide_banner", "-nostats", "-i", wav, "-af", f"{fades},{norm}:print_format=json", "-f", "null", "-"]
    )
    measured = json.loads(re.findall(r"\{[^{}]*\}", first.stderr)[-1])
    second = (
        f"{fades},{norm}:measured_I={measured['input_i']}:measured_TP={measured['input_tp']}"
        f":measured_LRA={measured['input_lra']}:measured_thresh={measured['input_thresh']}"
        f":offset={measured['target_offset']}:linear=true:print_format=json,"
        f"aresample={SAMPLE_RATE}"
    )
    result = run(
        [
            "ffmpeg",
            "-hide_banner",
            "-nostats",
            "-y",
            "-i",
            wav,
            "-af",
            second,
            "-ac",
            "2",
            "-c:a",
            "libvorbis",
            "-b:a",
            BITRATE,
            "-map_metadata",
            "-1",
            "-fflags",
            "+bitexact",
            "-flags:a",
            "+bitexact",
            ogg,
        ]
    )
    stats = json.loads(re.findall(r"\{[^{}]*\}", result.stderr)[-1])
    if stats.get("normalization_type") != "linear":
        log.warning("%s: loudnorm fell back to %s normalisation", ogg.name, stats.get("normalization_type"))
    return stats


def probe_duration(path: Path) -> float:
    out = run(
        [
            "ffprobe",
            "-v",
            "error",
            "-show_entries",
            "format=duration",
            "-of",
            "default=noprint_wrappers=1:nokey=1",
            path,
        ]
    )
    return float(out.stdout.strip())


# --------------------------------------------------------------------------------------
# Describing and verifying
# --------------------------------------------------------------------------------------


def keys_of(score: Score) -> list[Key]:
    keys = []
    for seg in score.segments:
        if not keys or keys[-1] != seg.chord.key:
            keys.append(seg.chord.key)
    return keys


def tempo_summary(score: Score) -> str:
    """Tempo in words for the doc table: start→turning point→end, or "66, rit. 62" when
    it holds steady until a closing ritardando."""
    first, last = score.tempo(0), score.tempo(score.bars)
    if all(abs(score.tempo(b) - first) < 1.5 for b in range(score.bars - 1)):
        return f"{first:.0f}" if abs(last - first) < 1 else f"{first:.0f}, rit. {last:.0f}"
    values = [y for _, y in score.tempo.points]
    peak = max(values)
    if peak > max(first, last) + 1:
        return f"{first:.0f}→{peak:.0f}→{last:.0f}"
    return f"{first:.0f}→{last:.0f}"


def describe(piece: Piece, score: Score, tracks: list[Track]) -> None:
    """Log the structure once per clip, since no one can listen in CI: keys, meter, the
    tempo and energy curves sampled every few bars, and the chords bar by bar."""
    keys = " → ".join(k.name for k in keys_of(score))
    log.info(
        "%s (%s): %s, %d/4, %d bars, ~%.1f s of music",
        piece["id"],
        piece["category"],
        keys,
        score.bpb,
        score.bars,
        score.seconds(score.total),
    )
    marks = sorted(set(range(0, score.bars, 4)) | {score.bars - 1, score.bars})
    log.info("  tempo  %s", ", ".join(f"bar {b + 1}: {score.tempo(b):.0f}" for b in marks))
    log.info("  energy %s", ", ".join(f"bar {b + 1}: {score.energy_curve(b):.2f}" for b in marks))
    bars: dict[int, list[str]] = {}
    for seg in score.segments:
        bars.setdefault(seg.bar, []).append(seg.chord.name)
    line = ""
    for b in range(score.bars):
        line += ("‖ " if b in score.section_starts and b else "| ") + " ".join(bars[b]) + " "
    log.info("  chords %s|", line)
    log.info(
        "  parts  %s",
        "; ".join(
            f"{t.name} ({t.spec['role']}, bars {active_bars(score, t.spec)[0] + 1}-"
            f"{active_bars(score, t.spec)[1]}, {len(t.notes)} notes)"
            for t in tracks
        ),
    )


def verify(paths: list[Path]) -> list[dict]:
    """Decode every clip fully, and check length, loudness and size. Returns one result
    per clip; raises if a clip fails."""
    results, failures = [], []
    for path in paths:
        decode = subprocess.run(
            ["ffmpeg", "-v", "error", "-i", str(path), "-f", "null", "-"], capture_output=True, text=True
        )
        meter = run(
            [
                "ffmpeg",
                "-hide_banner",
                "-nostats",
                "-i",
                path,
                "-af",
                "volumedetect,ebur128=peak=true",
                "-f",
                "null",
                "-",
            ]
        ).stderr
        mean = float(re.findall(r"mean_volume: (-?[\d.]+) dB", meter)[-1])
        peak = float(re.findall(r"max_volume: (-?[\d.]+) dB", meter)[-1])
        lufs = float(re.findall(r"I:\s+(-?[\d.]+) LUFS", meter)[-1])
        result = {
            "file": path.name,
            "duration_s": round(probe_duration(path), 1),
            "bytes": path.stat().st_size,
            "mean_db": mean,
            "peak_db": peak,
            "lufs": lufs,
        }
        problems = []
        if decode.returncode or decode.stderr.strip():
            problems.append(f"decode errors: {decode.stderr.strip()[:200]}")
        if not MIN_S <= result["duration_s"] <= MAX_S:
            problems.append(f"duration {result['duration_s']} s outside {MIN_S}-{MAX_S}")
        if mean < -45:
            problems.append(f"nearly silent (mean {mean} dB)")
        if peak > -1.0:
            problems.append(f"peak {peak} dBFS above -1")
        if result["bytes"] > MAX_CLIP_BYTES:
            problems.append(f"{result['bytes']} bytes, over {MAX_CLIP_BYTES}")
        log.info(
            "verify %-16s %5.1f s %7.1f kB  mean %6.1f dB  peak %5.1f dBFS  %5.1f LUFS  %s",
            path.name,
            result["duration_s"],
            result["bytes"] / 1000,
            mean,
            peak,
            lufs,
            "ok" if not problems else "FAIL: " + "; ".join(problems),
        )
        failures += [f"{path.name}: {p}" for p in problems]
        results.append(result)
    total = sum(r["bytes"] for r in results)
    log.info("verify total %.2f MB in %d clips", total / 1e6, len(results))
    if total > MAX_FOLDER_BYTES:
        failures.append(f"folder holds {total} bytes, over {MAX_FOLDER_BYTES}")
    if failures:
        raise SystemExit("verification failed:\n  " + "\n  ".join(failures))
    return results


def markdown_table(pieces: list[Piece], durations: dict[str, float]) -> str:
    """The clip table for docs/music.md (``--table``), so the doc can be refreshed from
    the same data."""
    rows = [
        "| id | category | key | meter | tempo (bpm) | instruments | duration | "
        "valence start→end | arousal start→end |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for piece in pieces:
        score = Score(piece)
        keys = " → ".join(k.name for k in keys_of(score))
        instruments = ", ".join(instrument_names(piece))
        s, e = piece["start"], piece["end"]
        rows.append(
            f"| {piece['id']} | {piece['category']} | {keys} | {score.bpb}/4 | "
            f"{tempo_summary(score)} | {instruments} | "
            f"{durations.get(piece['id'], 0):.1f} s | {s['valence']}→{e['valence']} | {s['arousal']}→{e['arousal']} |"
        )
    return "\n".join(rows)


def instrument_names(piece: Piece) -> list[str]:
    """The piece's instruments in track order, each once (for the manifest and the docs)."""
    names = []
    for spec in piece["tracks"]:
        name = GM_NAMES[spec["program"]]
        if name not in names:
            names.append(name)
    return names


# --------------------------------------------------------------------------------------
# The data files
# --------------------------------------------------------------------------------------
# JSON has no comments, so the files explain themselves in "why" and "notes" strings,
# which the composer ignores. Everything else is checked here, at start, so that a typo
# in a hand-edited file (an option name the roles would silently ignore, a rhythm that
# does not fill its bar) stops the script with the file's name instead of quietly
# changing the music.

#: Fields that explain the data to people; allowed anywhere a key list is checked.
PROSE_KEYS = {"why", "notes"}
AXES = ("valence", "arousal")
#: A piece's fields: what the manifest says about the clip, and what the composer makes it
#: from. ``tail_beats`` (beats left to ring after the last bar, default 3) is optional.
CLIP_KEYS = {"id", "category", "title", "mood_tags", "start", "end"}
MUSIC_KEYS = {"seed", "meter", "sections", "tempo", "energy", "tracks"}
OPTIONAL_PIECE_KEYS = {"tail_beats"}
SECTION_KEYS = {"key", "mode", "bars"}
#: The options each role reads (see the role_* functions), and those every track has
#: (``compose``, ``expression``, ``midi_bytes``). Only their union is enforced: an option a
#: track's role does not read is harmless, a misspelt one is not.
TRACK_OPTIONS = {
    "every track": {"role", "program", "name", "bars", "range", "vel", "volume", "pan", "reverb", "chorus", "expr"},
    "expression": {"ramp_in", "ramp_out", "swell", "swell_range"},
    "pad": {"voices", "restrike"},
    "bass": {"patterns", "pedal", "legato"},
    "arp": {"voices", "pattern", "subdiv", "ring"},
    "comp": {"voices", "bass_lo", "pattern"},
    "drone": {"every", "intervals"},
    "pulse": {"step", "pitch", "legato"},
    "sparkle": {"p"},
    "melody": {"phrase_bars", "plan", "amp", "center", "density", "contours", "pentatonic", "noise", "legato"},
}
TRACK_KEYS = set().union(*TRACK_OPTIONS.values())


class DataError(ValueError):
    """A data file is missing or malformed; the message names the file."""


class Vocabulary(NamedTuple):
    """What every piece picks from. ``rhythms`` and ``endings`` are keyed by meter (beats
    per bar), then by density level."""

    arp_patterns: dict[str, list[int]]
    rhythms: dict[int, dict[str, list[list[float]]]]
    endings: dict[int, dict[str, list[list[float]]]]


def read_json(path: Path) -> Any:
    """A data file's contents; a missing or unparsable file is a DataError naming it."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise DataError(f"{path}: {exc}") from exc


def check_keys(where: str, obj: dict, allowed: Iterable[str], required: Iterable[str] = ()) -> None:
    """Unknown keys are errors: a misspelt option would otherwise be ignored without a word."""
    unknown = set(obj) - set(allowed) - PROSE_KEYS
    missing = set(required) - set(obj)
    if unknown:
        raise DataError(f"{where}: unknown keys {sorted(unknown)}")
    if missing:
        raise DataError(f"{where}: missing keys {sorted(missing)}")


def load_instruments(data_dir: Path = DATA_DIR) -> dict[int, str]:
    """General MIDI program number -> the instrument's name, as the manifest lists it."""
    path = data_dir / "instruments.json"
    return {int(program): name for program, name in read_json(path)["programs"].items()}


def load_vocabulary(data_dir: Path = DATA_DIR) -> Vocabulary:
    """The arpeggio patterns and the melody rhythms. A rhythm bar whose durations (rests
    count by their length) do not add up to the meter would push every later note off the
    beat, so that is checked."""
    path = data_dir / "vocabulary.json"
    data = read_json(path)
    tables = ("arp_patterns", "rhythms", "endings")
    check_keys(str(path), data, tables, tables)
    bars_by_meter = {}
    for table in ("rhythms", "endings"):
        by_meter = {int(meter): levels for meter, levels in data[table].items()}
        for meter, levels in by_meter.items():
            check_keys(f"{path}: {table}[{meter}]", levels, LEVELS, LEVELS)
            for level, bars in levels.items():
                for bar in bars:
                    if sum(abs(d) for d in bar) != meter:
                        raise DataError(f"{path}: {table}[{meter}][{level}] {bar} does not fill a bar of {meter}")
        bars_by_meter[table] = by_meter
    return Vocabulary(data["arp_patterns"], bars_by_meter["rhythms"], bars_by_meter["endings"])


def pitch(value: str | int) -> int:
    """A pitch from the data: a note name (``"F#3"``) or already a MIDI number."""
    return value if isinstance(value, int) else note(value)


def load_piece(path: Path, instruments: dict[int, str], vocabulary: Vocabulary) -> Piece:
    """One piece, checked against the instrument table and the vocabulary, with its
    pitches (written as note names for people) turned into the MIDI numbers the composer
    works with."""
    piece = read_json(path)
    check_keys(str(path), piece, CLIP_KEYS | MUSIC_KEYS | OPTIONAL_PIECE_KEYS, CLIP_KEYS | MUSIC_KEYS)
    if piece["id"] != path.stem:
        raise DataError(f"{path}: id {piece['id']!r} does not match the file name")
    for point in ("start", "end"):
        check_keys(f"{path}: {point}", piece[point], AXES, AXES)
        if not all(0 <= v <= 1 for v in piece[point].values()):
            raise DataError(f"{path}: {point} {piece[point]} outside [0, 1]")
    for i, section in enumerate(piece["sections"]):
        check_keys(f"{path}: section {i + 1}", section, SECTION_KEYS, SECTION_KEYS)
        if section["key"] not in NOTE_PC or section["mode"] not in MODES:
            raise DataError(f"{path}: section {i + 1}: unknown key {section['key']!r} or mode {section['mode']!r}")
    for i, spec in enumerate(piece["tracks"]):
        where = f"{path}: track {i + 1}"
        check_keys(where, spec, TRACK_KEYS, {"role", "program"})
        if spec["role"] not in ROLES:
            raise DataError(f"{where}: unknown role {spec['role']!r}; known: {', '.join(ROLES)}")
        if spec["program"] not in instruments:
            raise DataError(f"{where}: program {spec['program']} is not in instruments.json")
        if spec["role"] == "arp" and spec.get("pattern", "up") not in vocabulary.arp_patterns:
            raise DataError(f"{where}: unknown arpeggio pattern {spec['pattern']!r}")
        unknown_contours = set(spec.get("contours", ())) - set(CONTOURS)
        if unknown_contours:
            raise DataError(f"{where}: unknown contours {sorted(unknown_contours)}")
        try:
            if "range" in spec:
                spec["range"] = [pitch(p) for p in spec["range"]]
            if "bass_lo" in spec:
                spec["bass_lo"] = pitch(spec["bass_lo"])
            if "center" in spec:
                spec["center"] = [[bar, pitch(p)] for bar, p in spec["center"]]
        except ValueError as exc:
            raise DataError(f"{where}: {exc}") from exc
    return piece


def load_pieces(data_dir: Path = DATA_DIR) -> list[Piece]:
    """Every piece, in the catalogue's order (the order of the renders and of the
    manifest). A piece file the catalogue does not list is an error, not silently left
    out of the app."""
    instruments, vocabulary = load_instruments(data_dir), load_vocabulary(data_dir)
    path = data_dir / "catalogue.json"
    ids = read_json(path)["pieces"]
    if len(set(ids)) != len(ids):
        raise DataError(f"{path}: clip ids must be unique")
    unlisted = sorted(p.name for p in (data_dir / "pieces").glob("*.json") if p.stem not in ids)
    if unlisted:
        raise DataError(f"{path}: does not list {', '.join(unlisted)}")
    return [load_piece(data_dir / "pieces" / f"{i}.json", instruments, vocabulary) for i in ids]


GM_NAMES = load_instruments()
ARP_PATTERNS, RHYTHMS, ENDINGS = load_vocabulary()
#: Each piece is data. ``start``/``end`` are where the clip begins and where it leaves the
#: listener (valence and arousal in [0, 1]), used by the app for iso-principle matching.
#: Roles and their options are documented in the role_* functions above.
PIECES = load_pieces()


# --------------------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------------------


def shown(path: Path) -> str:
    """``path`` for the log: relative to the repository when it is inside it."""
    try:
        return str(path.resolve().relative_to(ROOT))
    except ValueError:
        return str(path)


def manifest_entry(piece: Piece, duration: float) -> dict[str, Any]:
    """The piece's entry in music.json. The keys are listed one by one, not copied from
    the piece, so that the data files' own fields never leak into the app's manifest and
    the manifest's layout does not depend on the order of keys in a data file."""
    s, e = piece["start"], piece["end"]
    return {
        "id": piece["id"],
        "file": f"{piece['id']}.ogg",
        "category": piece["category"],
        "title": piece["title"],
        "mood_tags": piece["mood_tags"],
        "start": {"valence": s["valence"], "arousal": s["arousal"]},
        "end": {"valence": e["valence"], "arousal": e["arousal"]},
        "duration_s": round(duration, 1),
        "instruments": instrument_names(piece),
        "license": "CC0-1.0",
    }


def check_tools() -> None:
    missing = [t for t in ("fluidsynth", "ffmpeg", "ffprobe") if not shutil.which(t)]
    if missing or not SOUNDFONT.exists():
        raise SystemExit(
            f"missing {', '.join(missing) or SOUNDFONT}: apt-get install -y fluidsynth fluid-soundfont-gm ffmpeg"
        )


def build(pieces: list[Piece], out_dir: Path, midi_dir: Path | None) -> dict[str, float]:
    """Compose, render and encode ``pieces`` into ``out_dir``; returns measured durations."""
    out_dir.mkdir(parents=True, exist_ok=True)
    durations = {}
    with tempfile.TemporaryDirectory(prefix="emocare-music-") as tmp:
        tmp = Path(tmp)
        for piece in pieces:
            score, tracks = compose(piece)
            describe(piece, score, tracks)
            data, _ = midi_bytes(piece, score, tracks)
            mid = tmp / f"{piece['id']}.mid"
            mid.write_bytes(data)
            if midi_dir:
                midi_dir.mkdir(parents=True, exist_ok=True)
                (midi_dir / mid.name).write_bytes(data)
            wav = tmp / f"{piece['id']}.wav"
            render_wav(mid, wav)
            seconds, peak = wav_stats(wav)
            if peak > -0.1:
                log.warning("%s: the synth output reaches %.2f dBFS and may clip; lower SYNTH_GAIN", piece["id"], peak)
            ogg = out_dir / f"{piece['id']}.ogg"
            stats = encode_ogg(wav, ogg, seconds)
            durations[piece["id"]] = probe_duration(ogg)
            log.info(
                "  rendered %.1f s, synth peak %.1f dBFS, input %s LUFS -> %s LUFS; %s (%.0f kB, sha256 %s)",
                seconds,
                peak,
                stats["input_i"],
                stats["output_i"],
                shown(ogg),
                ogg.stat().st_size / 1000,
                hashlib.sha256(ogg.read_bytes()).hexdigest()[:12],
            )
    return durations


def write_manifest(pieces: list[Piece], durations: dict[str, float], path: Path) -> None:
    """music.json, in the catalogue's order."""
    clips = [manifest_entry(p, durations[p["id"]]) for p in pieces]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"version": 1, "clips": clips}, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    log.info("wrote %s (%d clips)", shown(path), len(clips))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--only", nargs="+", metavar="ID", help="render only these clips (the manifest is rewritten only on a full run)"
    )
    parser.add_argument("--midi-dir", type=Path, help="also keep the MIDI files here")
    parser.add_argument(
        "--out-dir", type=Path, default=OUT_DIR, help=f"write (or verify) the clips here (default: {shown(OUT_DIR)})"
    )
    parser.add_argument(
        "--manifest", type=Path, default=MANIFEST, help=f"write the manifest here (default: {shown(MANIFEST)})"
    )
    parser.add_argument("--verify", action="store_true", help="only verify the existing clips")
    parser.add_argument(
        "--table", action="store_true", help="print the clip table for docs/music.md from the current files"
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log the commands too")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, format="%(levelname)s %(message)s")

    out_dir: Path = args.out_dir
    ids = [p["id"] for p in PIECES]
    if args.table:
        sys.stdout.write(markdown_table(PIECES, {i: probe_duration(out_dir / f"{i}.ogg") for i in ids}) + "\n")
        return 0
    check_tools()
    if not args.verify:
        pieces = [p for p in PIECES if not args.only or p["id"] in args.only]
        if args.only and len(pieces) != len(args.only):
            raise SystemExit(f"unknown clip id in {args.only}; known: {', '.join(ids)}")
        durations = build(pieces, out_dir, args.midi_dir)
        if not args.only:
            write_manifest(PIECES, durations, args.manifest)
        stale = sorted(p.name for p in out_dir.glob("*.ogg") if p.stem not in ids)
        if stale:
            log.warning("files in %s that no piece makes: %s", shown(out_dir), stale)
    verify([out_dir / f"{i}.ogg" for i in ids if not args.only or i in args.only])
    return 0


if __name__ == "__main__":
    sys.exit(main())
