"""Spoken replies: text to a WAV file on the server, cached, served by URL, played by the page.

Engines, in order: pyttsx3 (espeak-ng on Linux, SAPI5 on Windows, NSSpeechSynthesizer on
macOS), each rendering isolated in a short-lived process (see :mod:`.tts_worker`), then the
``espeak-ng`` command directly (robust under concurrency; its WAV header carries placeholder
sizes, rewritten here with :mod:`wave`). Where neither works, :meth:`SpeechService.render`
returns None and the page speaks with the browser's ``speechSynthesis`` instead, saying so.

Files are named by a hash of engine, voice, rate and text, so a message is rendered once.
Every file is checked (duration, loudness) before it is served.
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
import wave
from dataclasses import dataclass
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

ESPEAK_VOICES = {"zh-CN": "cmn", "en": "en-us"}


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
        engines: tuple[str, ...] = ("pyttsx3", "espeak-ng"),
        rate: int = 150,
        timeout: float = 20.0,
    ) -> None:
        self.cache_dir = Path(cache_dir)
        self.rate = rate
        self.timeout = timeout
        self.engines = tuple(e for e in engines if self._engine_present(e))
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
        digest = hashlib.sha256(f"{locale}|{self.rate}|{text}".encode()).hexdigest()
        return digest[:32]

    def cached(self, name: str) -> Path | None:
        """The cached file for a URL name, if it exists (names are hashes: nothing else)."""
        if len(name) != 36 or not name.endswith(".wav") or not all(c in "0123456789abcdef" for c in name[:32]):
            return None
        path = self.cache_dir / name
        return path if path.is_file() else None

    def render(self, text: str, locale: str) -> Speech | None:
        """The WAV for ``text`` in ``locale``, rendering it if needed; None when no engine works."""
        path = self.cache_dir / f"{self._key(text, locale)}.wav"
        if path.is_file() and is_valid_speech(path):
            duration, _ = wav_stats(path)
            return Speech(path, "cache", duration)
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        for engine in self.engines:
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
        src = str(Path(__file__).resolve().parents[2])
        env = {**os.environ, "PYTHONPATH": src + os.pathsep + os.environ.get("PYTHONPATH", "")}
        subprocess.run(
            [sys.executable, "-m", "emocare.care.tts_worker"],
            input=request.encode(),
            capture_output=True,
            timeout=self.timeout,
            check=True,
            env=env,
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


def wav_bytes_stats(data: bytes) -> tuple[float, float]:
    """Duration and RMS of WAV bytes (used by tests on served audio)."""
    with tempfile.NamedTemporaryFile(suffix=".wav") as handle:
        handle.write(data)
        handle.flush()
        return wav_stats(Path(handle.name))


__all__ = ["Speech", "SpeechService", "fix_espeak_wav", "is_valid_speech", "wav_bytes_stats", "wav_stats"]
