"""Render one spoken reply with pyttsx3, in a process of its own.

pyttsx3 is the cross-platform engine (SAPI5 on Windows, NSSpeechSynthesizer on macOS,
espeak-ng on Linux), used through its public API only. It is fragile inside a server
(measured: six threads at once crashed the process with a double free; under eventlet one
file in three was silently never written; it prints on every call), so
:mod:`emocare.care.speech` runs each rendering here, in a fresh process it can time out and
kill. Reads ``{"text", "locale", "rate", "out"}`` as JSON on stdin; exits 0 once the WAV is
written, non-zero otherwise.

On Linux the ``espeak-ng`` command comes first (``SpeechService``'s default order): pyttsx3
2.99's espeak driver returns before long texts are finished and sometimes drops their end, and
that is not ours to patch. The file is checked for length and loudness either way.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import sys

VOICE_HINTS = {
    "zh-CN": ("cmn", "zh", "mandarin", "chinese", "huihui", "ting-ting", "tingting"),
    "en": ("en-us", "en_us", "en-gb", "english", "en"),
}


def pick_voice(voices, locale: str):
    """The first installed voice whose id, name or languages match the locale's hints."""
    for hint in VOICE_HINTS.get(locale, VOICE_HINTS["en"]):
        for voice in voices:
            haystack = " ".join([voice.id, voice.name or "", *map(str, voice.languages or [])]).lower()
            if hint in haystack and "latn" not in haystack:
                return voice
    return None


def render(text: str, locale: str, rate: int, out: str) -> bool:
    import pyttsx3

    engine = pyttsx3.init()
    voice = pick_voice(engine.getProperty("voices"), locale)
    if voice is not None:
        engine.setProperty("voice", voice.id)
    engine.setProperty("rate", rate)
    engine.save_to_file(text, out)
    engine.runAndWait()
    return os.path.isfile(out) and os.path.getsize(out) > 44  # more than a WAV header


def main() -> int:
    request = json.load(sys.stdin)
    with contextlib.redirect_stdout(io.StringIO()):  # pyttsx3 prints "Audio saved to …"
        ok = render(request["text"], request["locale"], int(request.get("rate", 150)), request["out"])
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
