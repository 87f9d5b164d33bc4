"""Spoken replies: text to a WAV file on the server, cached, served by URL, played by the page.

Engines, in the default order (:func:`default_engines`): on Linux the ``espeak-ng`` command
itself (robust under concurrency; its WAV header carries placeholder sizes, rewritten here with
:mod:`wave`), then pyttsx3; elsewhere pyttsx3 (SAPI5 on Windows, NSSpeechSynthesizer on macOS),
each rendering isolated in a short-lived process (see :mod:`.tts_worker`). Where none works,
:meth:`SpeechService.render` returns None and the page speaks with the browser's
``speechSynthesis`` instead, saying so.

Files are named by a hash of voice, rate and text, so a message is rendered once. Every file is
checked (duration, loudness) before it is served. :class:`SpeechQueue` keeps a process to one
synthesis at a time.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import wave
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)
#: Tries per rendering: pyttsx3's espeak driver now and then writes nothing (measured: a
#: worker that exited 1 on a loaded machine, then spoke at the next call), so it gets a second.
ATTEMPTS = {"pyttsx3": 2}

ESPEAK_VOICES = {"zh-CN": "cmn", "en": "en-us"}


def default_engines(platform: str = sys.platform) -> tuple[str, ...]:
    """The engines to try, in order: the espeak-ng command first on Linux, pyttsx3 elsewhere."""
    return ("espeak-ng", "pyttsx3") if platform == "linux" else ("pyttsx3", "espeak-ng")


@dataclass(frozen=True)
class Speech:
    path: Path
    engine: str
    duration_s: float


def wav_stats(path: Path) -> tuple[float, float]:
    """Duration in seconds and RMS level (0-1) of a 16-bit PCM WAV."""
    with wave.open(str(path), "rb") as wav:
        frames = wav.readframes(wav.getnframes())
        duration = wav.getnframes() / float(wav.getframerate() or 1)
        width = wav.getsampwidth()
    if width != 2 or not frames:
        return duration, 0.0
    samples = np.frombuffer(frames, dtype="<i2").astype(np.float64) / 32768.0
    return duration, float(np.sqrt(np.mean(samples**2)))


def is_valid_speech(path: Path, min_duration: float = 0.3, min_rms: float = 0.005) -> bool:
    try:
        duration, rms = wav_stats(path)
    except (OSError, EOFError, wave.Error):
        return False
    return duration >= min_duration and rms >= min_rms


def fix_espeak_wav(raw: bytes, out: Path) -> None:
    """Rewrite espeak-ng's streamed WAV (sizes 0x7FFFFFFF) as a proper file."""
    if raw[:4] != b"RIFF" or raw[8:12] != b"WAVE":
        raise ValueError("espeak-ng did not produce a WAV stream")
    pos, channels, rate, bits, data = 12, 1, 22050, 16, b""
    while pos + 8 <= len(raw):
        chunk, size = raw[pos : pos + 4], int.from_bytes(raw[pos + 4 : pos + 8], "little")
        body = pos + 8
        if chunk == b"fmt ":
            channels = int.from_bytes(raw[body + 2 : body + 4], "little")
            rate = int.from_bytes(raw[body + 4 : body + 8], "little")
            bits = int.from_bytes(raw[body + 14 : body + 16], "little")
        elif chunk == b"data":
            data = raw[body:]  # the placeholder size is wrong: take everything that follows
            break
        pos = body + size + (size & 1)
    with wave.open(str(out), "wb") as wav:
        wav.setnchannels(channels)
        wav.setsampwidth(bits // 8)
        wav.setframerate(rate)
        wav.writeframes(data[: len(data) - len(data) % (channels * bits // 8)])


class SpeechService:
    """Renders and caches speech. Thread-safe: every rendering is its own process."""

    def __init__(
        self,
        cache_dir: str | os.PathLike,
        engines: tuple[str, ...] | None = None,
        rate: int = 150,
        timeout: float = 20.0,
    ) -> None:
        self.cache_dir = Path(cache_dir)
        self.rate = rate
        self.timeout = timeout
        self.engines = tuple(e for e in (default_engines() if engines is None else engines) if self._engine_present(e))
        #: the most syntheses that ever ran at once in this process (tests check it stays at one)
        self.most_at_once = 0
        self._active = 0
        self._count_lock = threading.Lock()
        if not self.engines:
            log.warning("no speech engine found (pyttsx3 or espeak-ng): the page will use the browser's voice")

    @staticmethod
    def _engine_present(engine: str) -> bool:
        if engine == "pyttsx3":
            import importlib.util

            if importlib.util.find_spec("pyttsx3") is None:
                return False
            # on Linux pyttsx3 drives the espeak-ng library
            return (
                sys.platform != "linux"
                or shutil.which("espeak-ng") is not None
                or Path("/usr/lib/x86_64-linux-gnu/libespeak-ng.so.1").exists()
            )
        if engine == "espeak-ng":
            return shutil.which("espeak-ng") is not None
        return False

    @property
    def available(self) -> bool:
        return bool(self.engines)

    def _key(self, text: str, locale: str) -> str:
        """Text, voice and rate: what makes two renderings the same."""
        voice = ESPEAK_VOICES.get(locale, ESPEAK_VOICES["en"])
        digest = hashlib.sha256(f"{voice}|{self.rate}|{text}".encode()).hexdigest()
        return digest[:32]

    def cached(self, name: str) -> Path | None:
        """The cached file for a URL name, if it exists (names are hashes: nothing else)."""
        if len(name) != 36 or not name.endswith(".wav") or not all(c in "0123456789abcdef" for c in name[:32]):
            return None
        path = self.cache_dir / name
        return path if path.is_file() else None

    def lookup(self, text: str, locale: str) -> Speech | None:
        """The cached WAV for ``text`` in ``locale``, if it was rendered before (no rendering)."""
        path = self.cache_dir / f"{self._key(text, locale)}.wav"
        if path.is_file() and is_valid_speech(path):
            duration, _ = wav_stats(path)
            return Speech(path, "cache", duration)
        return None

    def render(self, text: str, locale: str) -> Speech | None:
        """The WAV for ``text`` in ``locale``, rendering it if needed; None when no engine works."""
        cached = self.lookup(text, locale)
        if cached is not None:
            return cached
        with self._count_lock:
            self._active += 1
            self.most_at_once = max(self.most_at_once, self._active)
        try:
            return self._synthesise(text, locale)
        finally:
            with self._count_lock:
                self._active -= 1

    def _synthesise(self, text: str, locale: str) -> Speech | None:
        path = self.cache_dir / f"{self._key(text, locale)}.wav"
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        tries = [engine for engine in self.engines for _ in range(ATTEMPTS.get(engine, 1))]
        for engine in tries:
            fd, tmp_name = tempfile.mkstemp(dir=self.cache_dir, suffix=".tmp.wav")
            os.close(fd)
            tmp = Path(tmp_name)
            try:
                if engine == "pyttsx3":
                    self._pyttsx3(text, locale, tmp)
                else:
                    self._espeak(text, locale, tmp)
                if is_valid_speech(tmp):
                    os.replace(tmp, path)  # atomic: concurrent renderings of one text are safe
                    duration, _ = wav_stats(path)
                    return Speech(path, engine, duration)
                log.warning("%s produced no usable audio for a %d-character text", engine, len(text))
            except (OSError, subprocess.SubprocessError, ValueError, wave.Error) as exc:
                log.warning("speech engine %s failed: %s", engine, exc)
            finally:
                tmp.unlink(missing_ok=True)
        return None

    def _pyttsx3(self, text: str, locale: str, out: Path) -> None:
        request = json.dumps({"text": text, "locale": locale, "rate": self.rate, "out": str(out)})
        # the worker is run by file, so it works whether or not this package is installed
        subprocess.run(
            [sys.executable, str(Path(__file__).with_name("tts_worker.py"))],
            input=request.encode(),
            capture_output=True,
            timeout=self.timeout,
            check=True,
        )

    def _espeak(self, text: str, locale: str, out: Path) -> None:
        voice = ESPEAK_VOICES.get(locale, "en-us")
        done = subprocess.run(
            ["espeak-ng", "-v", voice, "-s", str(self.rate), "--stdout", text],
            capture_output=True,
            timeout=self.timeout,
            check=True,
        )
        fix_espeak_wav(done.stdout, out)


class SpeechQueue:
    """One speech worker per process: at most one synthesis at a time, a few replies waiting.

    Measured before it existed: 40 clients in distress started 41 synthesis processes at once
    (1.95 GB). Now a reply already in the cache (or none, when no engine is installed) is the
    answer :meth:`submit` returns at once, for the caller to send after its card; any other
    waits here, one per key (the connection), so a newer card replaces its own stale
    reply, and at most ``max_pending`` wait in all (the oldest then gives up its turn). A reply
    that loses its turn, or that no engine could render, is delivered as None: the page speaks
    the card with the browser's voice instead.
    """

    def __init__(self, speech: SpeechService, max_pending: int = 4) -> None:
        self.speech = speech
        self.max_pending = max_pending
        self._pending: OrderedDict[str, tuple[str, str, Callable]] = OrderedDict()
        self._ready = threading.Condition()
        self._stopped = False
        self._running = 0
        self._worker: threading.Thread | None = None

    @property
    def available(self) -> bool:
        return self.speech.available

    def submit(
        self, key: str, text: str, locale: str, deliver: Callable[[Speech | None], None]
    ) -> tuple[bool, Speech | None]:
        """``(True, None)`` when the reply is queued (``deliver`` gets it later, on the worker);
        ``(False, answer)`` when it is known now, in which case ``deliver`` is not called."""
        cached = self.speech.lookup(text, locale)
        if cached is not None or not self.speech.available:
            return False, cached
        dropped = []
        with self._ready:
            if key in self._pending:
                dropped.append(self._pending.pop(key)[2])
            while len(self._pending) >= self.max_pending:
                dropped.append(self._pending.popitem(last=False)[1][2])
            self._pending[key] = (text, locale, deliver)
            self._start()
            self._ready.notify_all()  # the worker, and any join() waiting on the same condition
        for stale in dropped:
            stale(None)
        return True, None

    def cancel(self, key: str) -> None:
        """Forget ``key``'s waiting reply (its page has gone)."""
        with self._ready:
            self._pending.pop(key, None)

    def _start(self) -> None:
        if self._worker is None:
            self._worker = threading.Thread(target=self._run, name="emocare-speech", daemon=True)
            self._worker.start()

    def _run(self) -> None:
        while True:
            with self._ready:
                while not self._pending and not self._stopped:
                    self._ready.wait()
                if self._stopped:
                    return
                _key, (text, locale, deliver) = self._pending.popitem(last=False)
                self._running += 1
            try:
                speech = self.speech.render(text, locale)
            except Exception:  # one failed reply must not stop the worker
                log.exception("rendering a spoken reply failed")
                speech = None
            try:
                deliver(speech)
            except Exception:
                log.exception("delivering a spoken reply failed")
            finally:
                with self._ready:
                    self._running -= 1
                    self._ready.notify_all()

    def join(self, timeout: float = 30.0) -> bool:
        """Wait until no reply waits or renders (tests, and a clean stop); True if it got there."""
        with self._ready:
            return self._ready.wait_for(lambda: not self._pending and not self._running, timeout)

    def close(self) -> None:
        with self._ready:
            self._stopped = True
            self._pending.clear()
            self._ready.notify_all()


def wav_bytes_stats(data: bytes) -> tuple[float, float]:
    """Duration and RMS of WAV bytes (used by tests on served audio)."""
    with tempfile.NamedTemporaryFile(suffix=".wav") as handle:
        handle.write(data)
        handle.flush()
        return wav_stats(Path(handle.name))


__all__ = [
    "Speech",
    "SpeechQueue",
    "SpeechService",
    "fix_espeak_wav",
    "is_valid_speech",
    "wav_bytes_stats",
    "wav_stats",
]
