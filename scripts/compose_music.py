#!/usr/bin/env python3
"""Compose, render and encode EmoCare's music clips, and write their manifest.

Why this exists: EmoCare offers a short piece of music when someone has looked sad,
angry or afraid for a while. Finding recordings that (a) follow music therapy's *iso
principle* (meet the listener where they are, then move gently toward calm or warmth),
(b) are short, soft and consistent in loudness, and (c) carry a licence that lets us ship
them, is hard. So the clips are composed here, as data, and rendered with a free General
MIDI soundfont. Everything is deterministic: the same script gives the same files.

Pipeline, per piece:

1. The piece is *data* (``PIECES`` below): keys and chord progressions per section, a
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
Run ``python3 scripts/compose_music.py`` from anywhere; ``--help`` lists the options.
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
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger("compose_music")

ROOT = Path(__file__).resolve().parents[1]
OUT_DIR = ROOT / "static" / "music"
MANIFEST = ROOT / "src" / "emocare" / "care" / "content" / "music.json"
SOUNDFONT = Path("/usr/share/sounds/sf2/FluidR3_GM.sf2")

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

GM_NAMES = {
    0: "Acoustic grand piano",
    4: "Electric piano",
    8: "Celesta",
    10: "Music box",
    11: "Vibraphone",
    12: "Marimba",
    24: "Nylon-string guitar",
    25: "Steel-string guitar",
    32: "Acoustic bass",
    35: "Fretless bass",
    40: "Violin",
    41: "Viola",
    42: "Cello",
    43: "Contrabass",
    44: "Tremolo strings",
    45: "Pizzicato strings",
    46: "Harp",
    48: "String ensemble",
    49: "Slow strings",
    52: "Choir aahs",
    53: "Voice oohs",
    60: "French horn",
    68: "Oboe",
    69: "English horn",
    71: "Clarinet",
    73: "Flute",
    75: "Pan flute",
    79: "Ocarina",
    88: "New-age pad",
    89: "Warm pad",
}


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


def voicings(chord: Chord, n: int, lo: int, hi: int):
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

    def __init__(self, points: list[tuple[float, float]]):
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

    def __init__(self, piece: dict):
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
    spec: dict
    notes: list = field(default_factory=list)  # (start_tick, end_tick, pitch, velocity)
    ccs: list = field(default_factory=list)  # (tick, controller, value)

    def add(self, start: float, dur: float, pitch: int, vel: float, jitter: int = 0):
        """Add a note at ``start`` beats lasting ``dur`` beats; ``jitter`` ticks of timing
        looseness (never before zero) keep the sequenced parts from sounding mechanical."""
        t0 = max(0, round(start * TPB) + jitter)
        t1 = max(t0 + 1, round((start + dur) * TPB))
        self.notes.append((t0, t1, int(pitch), int(max(1, min(110, round(vel))))))


def vel_of(spec: dict, energy: float, default=(35, 70)) -> float:
    lo, hi = spec.get("vel", default)
    return lo + (hi - lo) * energy


def active_bars(score: Score, spec: dict) -> tuple[int, int]:
    b0, b1 = spec.get("bars", (0, score.bars))
    return b0, min(b1, score.bars)


def role_pad(score, spec, rng, track):
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


def role_bass(score, spec, rng, track):
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


ARP_PATTERNS = {
    "up": [0, 1, 2, 3],
    "updown": [0, 1, 2, 3, 2, 1],
    "alberti": [0, 2, 1, 2],
    "pick": [-1, 2, 1, 3, -1, 2, 1, 3],
    "harp": [-1, 0, 1, 2, 3, 2, 1, 0],
    "wave": [0, 1, 2, 3, 4, 3, 2, 1],
}


def role_arp(score, spec, rng, track):
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


def role_comp(score, spec, rng, track):
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


def role_drone(score, spec, rng, track):
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


def role_pulse(score, spec, rng, track):
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


def role_sparkle(score, spec, rng, track):
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


# Rhythm vocabularies for melodies: one bar each, durations in beats, negative = rest.
RHYTHMS = {
    4: {
        "sparse": [[2, 2], [3, 1], [2, 1, 1], [-1, 1, 2], [1.5, 0.5, 2]],
        "medium": [[1, 1, 2], [2, 1, 1], [1.5, 0.5, 2], [1, 1, 1, 1], [-1, 1, 1, 1], [3, 1], [2, 2]],
        "active": [
            [1, 0.5, 0.5, 1, 1],
            [0.5, 0.5, 1, 2],
            [1, 1, 0.5, 0.5, 1],
            [1.5, 0.5, 1, 1],
            [1, 1, 1, 1],
            [0.5, 0.5, 0.5, 0.5, 2],
        ],
    },
    3: {
        "sparse": [[2, 1], [-1, 2], [1, 2], [1.5, 0.5, 1]],
        "medium": [[1, 1, 1], [2, 1], [1.5, 0.5, 1], [1, 2]],
        "active": [[1, 0.5, 0.5, 1], [0.5, 0.5, 1, 1], [1.5, 0.5, 1], [1, 1, 0.5, 0.5]],
    },
}
# Phrase-ending bars: a long note, often followed by a breath.
ENDINGS = {
    4: {
        "sparse": [[4], [3, -1], [2, -2]],
        "medium": [[2, 2], [1, 1, 2], [3, -1]],
        "active": [[1, 1, 2], [1.5, 0.5, 2], [2, 2]],
    },
    3: {"sparse": [[3], [2, -1]], "medium": [[2, -1], [1, 2], [3]], "active": [[1, 2], [2, 1]]},
}
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


def role_melody(score, spec, rng, track):
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
    motifs: dict = {}
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


ROLES = {
    "pad": role_pad,
    "bass": role_bass,
    "arp": role_arp,
    "comp": role_comp,
    "drone": role_drone,
    "pulse": role_pulse,
    "sparkle": role_sparkle,
    "melody": role_melody,
}


def expression(score: Score, spec: dict, beat: float) -> int:
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


def compose(piece: dict) -> tuple[Score, list[Track]]:
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


def midi_bytes(piece: dict, score: Score, tracks: list[Track]) -> tuple[bytes, int]:
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


def run(cmd: list, **kw) -> subprocess.CompletedProcess:
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


def describe(piece: dict, score: Score, tracks: list[Track]) -> None:
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


def markdown_table(pieces: list[dict], durations: dict[str, float]) -> str:
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
            f"{durations.get(piece['id'], 0):.1f} s | {s[0]}→{e[0]} | {s[1]}→{e[1]} |"
        )
    return "\n".join(rows)


def instrument_names(piece: dict) -> list[str]:
    names = []
    for spec in piece["tracks"]:
        name = GM_NAMES[spec["program"]]
        if name not in names:
            names.append(name)
    return names


# --------------------------------------------------------------------------------------
# The pieces
# --------------------------------------------------------------------------------------
# Each piece is data. ``start``/``end`` are (valence, arousal) in [0, 1]: where the clip
# begins and where it leaves the listener, used by the app for iso-principle matching.
# Roles and their options are documented in the role_* functions above. Ranges are MIDI
# note numbers, written with note() for readability.

R = note  # short alias for the tables below

PIECES: list[dict] = [
    # ---- comforting: for sadness. Slow, low, minor; turns to the relative major, the
    # melody moves up an octave to a brighter instrument and gains a little motion.
    {
        "id": "comforting-1",
        "category": "comforting",
        "seed": 11,
        "title": {"en": "After the Rain", "zh-CN": "雨后"},
        "mood_tags": ["sad"],
        "start": (0.2, 0.25),
        "end": (0.6, 0.35),
        "meter": 4,
        "sections": [
            {"key": "A", "mode": "minor", "bars": ["i", "VI", "iv", "V", "i", "VI", "iv7", "V7"]},
            {"key": "C", "mode": "major", "bars": ["IV", "V", "iii", "vi", "ii7", "Vsus4 V", "I", "I"]},
        ],
        "tempo": [(0, 58), (8, 61), (14, 68), (16, 62)],
        "energy": [(0, 0.18), (8, 0.3), (13, 0.55), (16, 0.4)],
        "tracks": [
            {
                "role": "arp",
                "program": 0,
                "range": (R("A2"), R("E5")),
                "pattern": "up",
                "subdiv": [(0.4, 0.5), (0, 1.0)],
                "ring": 4,
                "vel": (30, 58),
                "pan": 48,
                "volume": 88,
            },
            {
                "role": "pad",
                "program": 48,
                "range": (R("E3"), R("D5")),
                "voices": 4,
                "vel": (30, 52),
                "volume": 64,
                "pan": 80,
            },
            {
                "role": "bass",
                "program": 43,
                "range": (R("E1"), R("A2")),
                "patterns": [(0, "whole")],
                "vel": (38, 55),
                "volume": 72,
            },
            {
                "role": "melody",
                "program": 42,
                "bars": (0, 8),
                "range": (R("C3"), R("G4")),
                "center": [(0, R("G3")), (8, R("C4"))],
                "plan": "abab",
                "amp": 7,
                "vel": (50, 72),
                "legato": 1.0,
                "volume": 100,
                "reverb": 80,
            },
            {
                "role": "melody",
                "program": 73,
                "bars": (8, 16),
                "range": (R("G4"), R("D6")),
                "center": [(8, R("C5")), (16, R("E5"))],
                "plan": "abac",
                "amp": 8,
                "vel": (45, 70),
                "volume": 92,
                "reverb": 85,
            },
            {
                "role": "sparkle",
                "program": 8,
                "bars": (12, 16),
                "range": (R("C5"), R("G6")),
                "p": 0.4,
                "vel": (30, 44),
                "pan": 90,
                "volume": 70,
                "reverb": 100,
            },
        ],
    },
    {
        "id": "comforting-2",
        "category": "comforting",
        "seed": 23,
        "title": {"en": "A Warm Cup", "zh-CN": "一杯温茶"},
        "mood_tags": ["sad"],
        "start": (0.15, 0.2),
        "end": (0.55, 0.35),
        "meter": 3,
        "sections": [
            {"key": "D", "mode": "minor", "bars": ["i", "iv", "VII", "III", "VI", "iv", "V", "i", "VI", "VII"]},
            {"key": "F", "mode": "major", "bars": ["I", "V/3", "vi", "iii", "IV", "I/3", "ii7", "V7", "I", "I"]},
        ],
        "tempo": [(0, 56), (10, 60), (18, 66), (20, 60)],
        "energy": [(0, 0.2), (10, 0.3), (17, 0.58), (20, 0.4)],
        "tracks": [
            {
                "role": "arp",
                "program": 46,
                "range": (R("D3"), R("F5")),
                "pattern": "updown",
                "voices": 4,
                "subdiv": [(0.42, 0.5), (0, 1.0)],
                "ring": 3,
                "vel": (32, 60),
                "pan": 40,
                "volume": 96,
            },
            {
                "role": "pad",
                "program": 89,
                "range": (R("F3"), R("C5")),
                "voices": 3,
                "vel": (30, 48),
                "volume": 62,
                "pan": 76,
            },
            {
                "role": "bass",
                "program": 42,
                "range": (R("C2"), R("E3")),
                "patterns": [(0, "whole")],
                "vel": (36, 52),
                "volume": 74,
            },
            {
                "role": "melody",
                "program": 69,
                "bars": (0, 10),
                "range": (R("A3"), R("D5")),
                "center": [(0, R("D4")), (10, R("F4"))],
                "plan": "abac",
                "amp": 7,
                "vel": (48, 68),
                "volume": 96,
            },
            {
                "role": "melody",
                "program": 71,
                "bars": (10, 20),
                "range": (R("C4"), R("A5")),
                "center": [(10, R("A4")), (20, R("C5"))],
                "plan": "aabc",
                "amp": 8,
                "vel": (46, 70),
                "volume": 96,
            },
            {
                "role": "sparkle",
                "program": 11,
                "bars": (14, 20),
                "range": (R("F5"), R("C7")),
                "p": 0.4,
                "vel": (28, 40),
                "pan": 88,
                "volume": 66,
                "reverb": 100,
            },
        ],
    },
    {
        "id": "comforting-3",
        "category": "comforting",
        "seed": 37,
        "title": {"en": "Slow Light", "zh-CN": "光慢慢亮起来"},
        "mood_tags": ["sad"],
        "start": (0.25, 0.3),
        "end": (0.6, 0.4),
        "meter": 4,
        "sections": [
            {"key": "E", "mode": "minor", "bars": ["i", "iv", "VI", "VII", "i", "VI", "iv", "VII"]},
            {"key": "G", "mode": "major", "bars": ["I", "vi", "IV", "V", "I/3", "IV", "Vsus4 V", "I"]},
        ],
        "tempo": [(0, 63), (8, 66), (14, 72), (16, 66)],
        "energy": [(0, 0.2), (8, 0.32), (14, 0.55), (16, 0.42)],
        "tracks": [
            {
                "role": "arp",
                "program": 24,
                "range": (R("E3"), R("E5")),
                "pattern": "pick",
                "voices": 4,
                "subdiv": [(0.36, 0.5), (0, 1.0)],
                "ring": 3,
                "vel": (36, 62),
                "pan": 52,
                "volume": 100,
                "bass_lo": R("E2"),
            },
            {
                "role": "pad",
                "program": 52,
                "range": (R("G3"), R("D5")),
                "voices": 3,
                "vel": (28, 45),
                "volume": 56,
                "pan": 72,
            },
            {
                "role": "pad",
                "program": 49,
                "bars": (8, 16),
                "range": (R("D4"), R("G5")),
                "voices": 3,
                "vel": (28, 46),
                "volume": 58,
                "pan": 88,
                "ramp_in": 2,
            },
            {
                "role": "bass",
                "program": 32,
                "range": (R("E1"), R("G2")),
                "patterns": [(0.42, "half"), (0, "whole")],
                "vel": (40, 56),
                "volume": 80,
            },
            {
                "role": "melody",
                "program": 41,
                "bars": (0, 8),
                "range": (R("C3"), R("A4")),
                "center": [(0, R("G3")), (8, R("B3"))],
                "plan": "abac",
                "amp": 7,
                "vel": (48, 70),
                "legato": 1.0,
                "volume": 98,
            },
            {
                "role": "melody",
                "program": 79,
                "bars": (8, 16),
                "range": (R("G4"), R("D6")),
                "center": [(8, R("B4")), (16, R("D5"))],
                "plan": "abab",
                "amp": 8,
                "vel": (45, 66),
                "volume": 90,
                "reverb": 90,
            },
        ],
    },
    # ---- calming: for anger and fear. Starts with some motion (faster tempo, eighth-note
    # figures, fuller texture), then decelerates; parts drop out, notes lengthen, the
    # dynamics fall, and the harmony settles from minor (or restless) into major.
    {
        "id": "calming-1",
        "category": "calming",
        "seed": 41,
        "title": {"en": "Letting the Wave Pass", "zh-CN": "让浪过去"},
        "mood_tags": ["angry", "fear"],
        "start": (0.3, 0.75),
        "end": (0.6, 0.2),
        "meter": 4,
        "sections": [
            {"key": "B", "mode": "minor", "bars": ["i", "VI", "III", "VII", "i", "VI", "iv", "V"]},
            {"key": "D", "mode": "major", "bars": ["I", "V/3", "vi", "iii", "IV", "I/3", "ii7", "V", "I", "I"]},
        ],
        "tempo": [(0, 96), (6, 88), (12, 70), (16, 62), (18, 58)],
        "energy": [(0, 0.75), (6, 0.6), (12, 0.3), (18, 0.1)],
        "tracks": [
            {
                "role": "arp",
                "program": 0,
                "range": (R("B2"), R("F#5")),
                "pattern": "updown",
                "subdiv": [(0.55, 0.5), (0.28, 1.0), (0, 2.0)],
                "ring": 2,
                "vel": (28, 64),
                "pan": 46,
                "volume": 90,
            },
            {
                "role": "bass",
                "program": 45,
                "bars": (0, 8),
                "range": (R("B1"), R("D3")),
                "patterns": [(0, "eighths")],
                "vel": (34, 60),
                "volume": 82,
                "legato": 0.6,
                "ramp_out": 3,
            },
            {
                "role": "pad",
                "program": 48,
                "range": (R("F#3"), R("D5")),
                "voices": 4,
                "vel": (30, 56),
                "volume": 66,
                "pan": 82,
            },
            {
                "role": "bass",
                "program": 43,
                "bars": (6, 18),
                "range": (R("D1"), R("F#2")),
                "patterns": [(0.35, "half"), (0, "whole")],
                "vel": (32, 52),
                "volume": 76,
                "ramp_in": 2,
            },
            {
                "role": "melody",
                "program": 71,
                "range": (R("G3"), R("G5")),
                "center": [(0, R("A4")), (18, R("E4"))],
                "plan": "abac",
                "amp": 7,
                "vel": (40, 72),
                "volume": 96,
            },
            {
                "role": "pad",
                "program": 89,
                "bars": (10, 18),
                "range": (R("D3"), R("A4")),
                "voices": 3,
                "vel": (26, 40),
                "volume": 60,
                "ramp_in": 3,
                "pan": 56,
            },
        ],
    },
    {
        "id": "calming-2",
        "category": "calming",
        "seed": 53,
        "title": {"en": "Evening Tide", "zh-CN": "晚潮"},
        "mood_tags": ["fear", "angry", "surprise"],
        "start": (0.25, 0.7),
        "end": (0.55, 0.2),
        "meter": 4,
        "sections": [
            {"key": "C", "mode": "minor", "bars": ["i", "iv", "VII", "III", "VI", "iv", "V", "VII"]},
            {"key": "Eb", "mode": "major", "bars": ["I", "vi", "IV", "V", "I/3", "IV", "Vsus4 V", "I", "I"]},
        ],
        "tempo": [(0, 90), (8, 78), (13, 64), (17, 56)],
        "energy": [(0, 0.8), (8, 0.5), (13, 0.25), (17, 0.1)],
        "tracks": [
            {
                "role": "arp",
                "program": 46,
                "range": (R("C3"), R("G5")),
                "pattern": "harp",
                "subdiv": [(0.62, 1 / 3), (0.38, 0.5), (0.2, 1.0), (0, 2.0)],
                "ring": 3,
                "vel": (28, 60),
                "pan": 42,
                "volume": 96,
            },
            {
                "role": "pad",
                "program": 44,
                "bars": (0, 8),
                "range": (R("G3"), R("D5")),
                "voices": 4,
                "vel": (34, 52),
                "volume": 60,
                "pan": 84,
                "ramp_out": 3,
            },
            {
                "role": "pad",
                "program": 49,
                "bars": (6, 17),
                "range": (R("G3"), R("Eb5")),
                "voices": 4,
                "vel": (30, 48),
                "volume": 64,
                "pan": 80,
                "ramp_in": 2,
            },
            {
                "role": "bass",
                "program": 42,
                "range": (R("C2"), R("Eb3")),
                "patterns": [(0.55, "pulse"), (0.3, "half"), (0, "whole")],
                "vel": (32, 56),
                "volume": 76,
            },
            {
                "role": "melody",
                "program": 73,
                "bars": (0, 8),
                "range": (R("G4"), R("C6")),
                "center": [(0, R("Eb5")), (8, R("C5"))],
                "plan": "abab",
                "amp": 7,
                "vel": (44, 68),
                "volume": 88,
            },
            {
                "role": "melody",
                "program": 60,
                "bars": (8, 17),
                "range": (R("Bb2"), R("Eb4")),
                "center": [(8, R("G3")), (17, R("Eb3"))],
                "plan": "aabc",
                "amp": 6,
                "density": [(0.45, "medium"), (0, "sparse")],
                "vel": (38, 58),
                "volume": 90,
            },
        ],
    },
    {
        "id": "calming-3",
        "category": "calming",
        "seed": 67,
        "title": {"en": "Soft Landing", "zh-CN": "轻轻落地"},
        "mood_tags": ["angry", "surprise"],
        "start": (0.4, 0.8),
        "end": (0.6, 0.25),
        "meter": 4,
        "sections": [
            {
                "key": "F",
                "mode": "major",
                "bars": ["vi", "IV", "I", "V", "vi", "IV", "ii", "V", "IV", "I/3", "ii7", "I", "IV", "iv", "I", "I"],
            },
        ],
        "tempo": [(0, 100), (6, 90), (11, 72), (16, 60)],
        "energy": [(0, 0.8), (6, 0.6), (11, 0.3), (16, 0.1)],
        "tracks": [
            {
                "role": "arp",
                "program": 4,
                "range": (R("F3"), R("A5")),
                "pattern": "alberti",
                "voices": 3,
                "subdiv": [(0.55, 0.5), (0.3, 1.0), (0, 2.0)],
                "ring": 2,
                "vel": (30, 62),
                "pan": 50,
                "volume": 92,
                "chorus": 30,
            },
            {
                "role": "pulse",
                "program": 12,
                "bars": (0, 6),
                "range": (R("F3"), R("C5")),
                "step": 0.5,
                "pitch": "root5",
                "vel": (36, 44),
                "volume": 74,
                "pan": 78,
                "ramp_out": 3,
            },
            {
                "role": "bass",
                "program": 35,
                "range": (R("C1"), R("D2")),
                "patterns": [(0.55, "pulse"), (0.3, "half"), (0, "whole")],
                "vel": (34, 58),
                "volume": 84,
            },
            {
                "role": "melody",
                "program": 40,
                "range": (R("D4"), R("C6")),
                "center": [(0, R("C5")), (16, R("A4"))],
                "plan": "aabc",
                "amp": 7,
                "vel": (42, 68),
                "legato": 1.0,
                "volume": 86,
                "reverb": 85,
            },
            {
                "role": "pad",
                "program": 88,
                "bars": (4, 16),
                "range": (R("A3"), R("F5")),
                "voices": 3,
                "vel": (26, 42),
                "volume": 60,
                "pan": 70,
                "ramp_in": 3,
            },
        ],
    },
    # ---- grounding: for fear and disgust. Constant tempo, a drone on the tonic and fifth,
    # a steady low pulse, repeating four-bar harmony over a pedal, and a simple pentatonic
    # tune: nothing unexpected.
    {
        "id": "grounding-1",
        "category": "grounding",
        "seed": 71,
        "title": {"en": "Steady Ground", "zh-CN": "脚踏实地"},
        "mood_tags": ["fear", "disgust"],
        "start": (0.35, 0.5),
        "end": (0.5, 0.35),
        "meter": 4,
        "sections": [
            {"key": "D", "mode": "major", "bars": ["I", "IV", "I", "V"] * 3 + ["I", "IV", "V", "I"]},
        ],
        "tempo": [(0, 66), (14, 66), (16, 62)],
        "energy": [(0, 0.4), (16, 0.3)],
        "tracks": [
            {
                "role": "drone",
                "program": 49,
                "range": (R("D2"), R("A2")),
                "every": 8,
                "vel": (46, 50),
                "volume": 72,
                "swell": 4,
                "swell_range": (90, 115),
            },
            {
                "role": "pulse",
                "program": 25,
                "range": (R("A2"), R("A3")),
                "step": 1.0,
                "pitch": "tonic5",
                "vel": (40, 48),
                "volume": 80,
                "pan": 44,
                "legato": 0.85,
            },
            {
                "role": "pad",
                "program": 89,
                "range": (R("F#3"), R("D5")),
                "voices": 3,
                "vel": (30, 40),
                "volume": 58,
                "pan": 80,
            },
            {
                "role": "melody",
                "program": 75,
                "bars": (2, 16),
                "range": (R("A4"), R("D6")),
                "center": [(2, R("E5")), (16, R("D5"))],
                "plan": "aaba",
                "amp": 5,
                "pentatonic": True,
                "density": [(0.36, "medium"), (0, "sparse")],
                "vel": (46, 58),
                "volume": 86,
                "reverb": 90,
                "noise": 0.8,
            },
        ],
    },
    {
        "id": "grounding-2",
        "category": "grounding",
        "seed": 83,
        "title": {"en": "Breathing Room", "zh-CN": "呼吸的空间"},
        "mood_tags": ["fear", "disgust", "angry"],
        "start": (0.3, 0.45),
        "end": (0.45, 0.3),
        "meter": 4,
        # A dorian over an A pedal: two-bar cycles, and the pads swell and fall over those
        # two bars (8 s at 60 bpm), a slow breathing pace.
        "sections": [
            {"key": "A", "mode": "dorian", "bars": ["i", "IV", "i", "VII"] * 3 + ["i", "IV", "i", "i"]},
        ],
        "tempo": [(0, 60), (14, 60), (16, 56)],
        "energy": [(0, 0.35), (16, 0.25)],
        "tracks": [
            {
                "role": "drone",
                "program": 89,
                "range": (R("A1"), R("E2")),
                "every": 4,
                "vel": (50, 54),
                "volume": 78,
                "swell": 2,
                "swell_range": (84, 118),
            },
            {
                "role": "pad",
                "program": 53,
                "range": (R("E3"), R("C5")),
                "voices": 3,
                "vel": (32, 40),
                "volume": 62,
                "pan": 76,
                "swell": 2,
                "swell_range": (70, 118),
            },
            {
                "role": "pulse",
                "program": 46,
                "range": (R("A2"), R("E3")),
                "step": 2.0,
                "pitch": "tonic5",
                "vel": (44, 50),
                "volume": 84,
                "pan": 50,
                "legato": 1.0,
            },
            {
                "role": "melody",
                "program": 42,
                "bars": (4, 16),
                "range": (R("A2"), R("E4")),
                "center": [(4, R("A3")), (16, R("E3"))],
                "plan": "abab",
                "amp": 5,
                "pentatonic": True,
                "density": [(0, "sparse")],
                "vel": (46, 60),
                "legato": 1.0,
                "volume": 92,
            },
        ],
    },
    # ---- uplifting: for neutral and happy moments, or as the last step after comfort.
    # Gentle major, mid tempo, warm; the texture fills out a little as it goes.
    {
        "id": "uplifting-1",
        "category": "uplifting",
        "seed": 97,
        "title": {"en": "Open Window", "zh-CN": "推开窗"},
        "mood_tags": ["neutral", "happy"],
        "start": (0.5, 0.4),
        "end": (0.8, 0.55),
        "meter": 3,
        "sections": [
            {
                "key": "G",
                "mode": "major",
                "bars": [
                    "I",
                    "V/3",
                    "vi",
                    "iii",
                    "IV",
                    "I/3",
                    "ii",
                    "V",
                    "I",
                    "V/3",
                    "vi",
                    "iii",
                    "IV",
                    "I/3",
                    "IV",
                    "V7",
                    "IV",
                    "V",
                    "iii",
                    "vi",
                    "ii7",
                    "V",
                    "I",
                    "I",
                ],
            },
        ],
        "tempo": [(0, 92), (20, 96), (24, 88)],
        "energy": [(0, 0.4), (16, 0.6), (22, 0.6), (24, 0.45)],
        "tracks": [
            {
                "role": "comp",
                "program": 24,
                "range": (R("G3"), R("E5")),
                "voices": 3,
                "bass_lo": R("E2"),
                "pattern": [(0, [-1], 2.8), (1, [0, 1, 2], 0.85), (2, [0, 1, 2], 0.85)],
                "vel": (40, 60),
                "volume": 96,
                "pan": 50,
            },
            {
                "role": "bass",
                "program": 32,
                "range": (R("E1"), R("D2")),
                "patterns": [(0, "whole")],
                "vel": (38, 50),
                "volume": 68,
            },
            {
                "role": "pad",
                "program": 48,
                "bars": (8, 24),
                "range": (R("B3"), R("G5")),
                "voices": 3,
                "vel": (28, 44),
                "volume": 58,
                "pan": 84,
                "ramp_in": 3,
            },
            {
                "role": "melody",
                "program": 73,
                "range": (R("D5"), R("E6")),
                "phrase_bars": 4,
                "center": [(0, R("G5")), (24, R("B5"))],
                "plan": "abac",
                "amp": 6,
                "density": [(0.5, "active"), (0, "medium")],
                "vel": (48, 68),
                "volume": 90,
            },
            {
                "role": "sparkle",
                "program": 10,
                "bars": (16, 24),
                "range": (R("G5"), R("D7")),
                "p": 0.2,
                "vel": (28, 40),
                "pan": 92,
                "volume": 62,
                "reverb": 100,
            },
        ],
    },
    {
        "id": "uplifting-2",
        "category": "uplifting",
        "seed": 101,
        "title": {"en": "Little Steps", "zh-CN": "小步向前"},
        "mood_tags": ["happy", "neutral"],
        "start": (0.55, 0.45),
        "end": (0.8, 0.55),
        "meter": 4,
        "sections": [
            {
                "key": "A",
                "mode": "major",
                "bars": [
                    "I",
                    "I",
                    "I",
                    "iii",
                    "IV",
                    "V",
                    "I",
                    "vi",
                    "ii7",
                    "V",
                    "IV",
                    "V",
                    "iii",
                    "vi",
                    "ii7",
                    "Vsus4 V",
                    "IV",
                    "I",
                ],
            },
        ],
        "tempo": [(0, 82), (16, 86), (18, 78)],
        "energy": [(0, 0.4), (12, 0.62), (18, 0.45)],
        "tracks": [
            {
                "role": "arp",
                "program": 0,
                "range": (R("A3"), R("E5")),
                "pattern": "alberti",
                "voices": 3,
                "subdiv": [(0, 0.5)],
                "ring": 2,
                "vel": (36, 58),
                "pan": 50,
                "volume": 90,
            },
            {
                "role": "bass",
                "program": 32,
                "range": (R("E1"), R("D2")),
                "patterns": [(0.5, "half"), (0, "whole")],
                "vel": (40, 56),
                "volume": 76,
            },
            {
                "role": "pad",
                "program": 48,
                "bars": (4, 18),
                "range": (R("C#4"), R("A5")),
                "voices": 3,
                "vel": (28, 44),
                "volume": 56,
                "pan": 82,
                "ramp_in": 2,
            },
            {
                "role": "melody",
                "program": 68,
                "bars": (2, 18),
                "range": (R("E4"), R("E6")),
                "center": [(2, R("C#5")), (18, R("E5"))],
                "plan": "abac",
                "amp": 7,
                "density": [(0.5, "active"), (0, "medium")],
                "vel": (46, 66),
                "volume": 86,
            },
            {
                "role": "sparkle",
                "program": 8,
                "bars": (10, 18),
                "range": (R("A5"), R("E7")),
                "p": 0.22,
                "vel": (30, 42),
                "pan": 92,
                "volume": 66,
                "reverb": 100,
            },
        ],
    },
]


# --------------------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------------------


def manifest_entry(piece: dict, duration: float) -> dict:
    s, e = piece["start"], piece["end"]
    return {
        "id": piece["id"],
        "file": f"{piece['id']}.ogg",
        "category": piece["category"],
        "title": piece["title"],
        "mood_tags": piece["mood_tags"],
        "start": {"valence": s[0], "arousal": s[1]},
        "end": {"valence": e[0], "arousal": e[1]},
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


def build(pieces: list[dict], midi_dir: Path | None) -> dict[str, float]:
    """Compose, render and encode ``pieces`` into OUT_DIR; returns measured durations."""
    OUT_DIR.mkdir(parents=True, exist_ok=True)
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
            ogg = OUT_DIR / f"{piece['id']}.ogg"
            stats = encode_ogg(wav, ogg, seconds)
            durations[piece["id"]] = probe_duration(ogg)
            log.info(
                "  rendered %.1f s, synth peak %.1f dBFS, input %s LUFS -> %s LUFS; %s (%.0f kB, sha256 %s)",
                seconds,
                peak,
                stats["input_i"],
                stats["output_i"],
                ogg.relative_to(ROOT),
                ogg.stat().st_size / 1000,
                hashlib.sha256(ogg.read_bytes()).hexdigest()[:12],
            )
    return durations


def write_manifest(durations: dict[str, float]) -> None:
    clips = [manifest_entry(p, durations[p["id"]]) for p in PIECES]
    MANIFEST.write_text(
        json.dumps({"version": 1, "clips": clips}, ensure_ascii=False, indent=2) + "\n", encoding="utf-8"
    )
    log.info("wrote %s (%d clips)", MANIFEST.relative_to(ROOT), len(clips))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--only", nargs="+", metavar="ID", help="render only these clips (the manifest is rewritten only on a full run)"
    )
    parser.add_argument("--midi-dir", type=Path, help="also keep the MIDI files here")
    parser.add_argument("--verify", action="store_true", help="only verify the existing clips")
    parser.add_argument(
        "--table", action="store_true", help="print the clip table for docs/music.md from the current files"
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log the commands too")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, format="%(levelname)s %(message)s")

    ids = [p["id"] for p in PIECES]
    assert len(set(ids)) == len(ids), "clip ids must be unique"
    if args.table:
        sys.stdout.write(markdown_table(PIECES, {i: probe_duration(OUT_DIR / f"{i}.ogg") for i in ids}) + "\n")
        return 0
    check_tools()
    if not args.verify:
        pieces = [p for p in PIECES if not args.only or p["id"] in args.only]
        if args.only and len(pieces) != len(args.only):
            raise SystemExit(f"unknown clip id in {args.only}; known: {', '.join(ids)}")
        durations = build(pieces, args.midi_dir)
        if not args.only:
            write_manifest(durations)
        stale = sorted(p.name for p in OUT_DIR.glob("*.ogg") if p.stem not in ids)
        if stale:
            log.warning("files in %s that no piece makes: %s", OUT_DIR.relative_to(ROOT), stale)
    verify([OUT_DIR / f"{i}.ogg" for i in ids if not args.only or i in args.only])
    return 0


if __name__ == "__main__":
    sys.exit(main())
