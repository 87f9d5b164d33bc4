"""Render one spoken reply with pyttsx3, in a process of its own.

pyttsx3 is fragile inside a server (measured: six threads at once crashed the process with a
double free; under eventlet one file in three was silently never written; it prints on every
call), so :mod:`emocare.care.speech` runs each rendering here, in a fresh process it can time
out and kill. Reads ``{"text", "locale", "rate", "out"}`` as JSON on stdin; exits 0 once the
WAV is written, non-zero otherwise.

On Linux, pyttsx3 2.99's espeak driver also loses audio: its ``runAndWait`` returns before a
long text is finished, and its callback drops the samples that arrive with the end-of-message
event (seconds of speech, at random; measured here). So pyttsx3 still chooses the voice and
rate and drives the synthesis, but the samples are collected here, from the driver's own
callback, and the file is written once espeak reports the end of the message.

The espeak driver also races on its settings: espeak runs in asynchronous mode, where the
driver's own start-up rate (200) is queued behind the caller's and a voice change is applied
at once; once in a while (seen in CI, never on demand) a reply came out at 200 words a minute
instead of the rate asked for. So the settings are applied with espeak's queue drained before
and after, and the rate espeak reports is checked before synthesis starts.
"""

from __future__ import annotations

import contextlib
import ctypes
import io
import json
import os
import sys
import threading
import wave

WAIT_S = 20.0
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


class _EspeakCapture:
    """Collects every sample the espeak driver receives, and notices the end of the message."""

    def __init__(self) -> None:
        from pyttsx3.drivers import _espeak, espeak

        self.samples = bytearray()
        self.done = threading.Event()
        original = espeak.EspeakDriver._onSynth
        end, last = _espeak.EVENT_MSG_TERMINATED, _espeak.EVENT_LIST_TERMINATED
        capture = self

        def on_synth(driver, wav, numsamples, events):
            if driver._speaking and numsamples > 0:
                capture.samples += ctypes.string_at(wav, numsamples * ctypes.sizeof(ctypes.c_short))
            i = 0
            while events[i].type != last:
                if events[i].type == end:
                    capture.done.set()
                i += 1
            return original(driver, wav, 0, events)

        espeak.EspeakDriver._onSynth = on_synth

    def write(self, out: str, rate: int = 22050) -> None:
        with wave.open(out, "wb") as wav:
            wav.setnchannels(1)
            wav.setsampwidth(2)
            wav.setframerate(rate)
            wav.writeframes(bytes(self.samples))


def _settle_espeak(voice_id: str | None, rate: int) -> None:
    """Apply voice and rate to espeak directly, with its command queue drained around them."""
    from pyttsx3.drivers import _espeak, espeak

    _espeak.Synchronize()  # the driver's start-up settings (rate 200) are applied by now
    if voice_id is not None:
        espeak.EspeakDriver.setProperty("voice", voice_id)
    espeak.EspeakDriver.setProperty("rate", rate)
    _espeak.Synchronize()
    if _espeak.GetParameter(_espeak.RATE) != rate:
        raise RuntimeError(f"espeak kept rate {_espeak.GetParameter(_espeak.RATE)} instead of {rate}")


def render(text: str, locale: str, rate: int, out: str) -> bool:
    import pyttsx3

    capture = _EspeakCapture() if sys.platform == "linux" else None
    engine = pyttsx3.init()
    voice = pick_voice(engine.getProperty("voices"), locale)
    if capture is not None:
        _settle_espeak(voice.id if voice is not None else None, rate)
    elif voice is not None:
        engine.setProperty("voice", voice.id)
    engine.setProperty("rate", rate)
    if capture is None:  # SAPI5 / NSSpeechSynthesizer write complete files themselves
        engine.save_to_file(text, out)
        engine.runAndWait()
        return True
    engine.save_to_file(text, out + ".pyttsx3.wav")  # its own, possibly truncated, copy
    engine.runAndWait()
    if not capture.done.wait(WAIT_S):
        return False
    capture.write(out)
    with contextlib.suppress(OSError):
        os.remove(out + ".pyttsx3.wav")
    return True


def main() -> int:
    request = json.load(sys.stdin)
    with contextlib.redirect_stdout(io.StringIO()):  # pyttsx3 prints "Audio saved to …"
        ok = render(request["text"], request["locale"], int(request.get("rate", 150)), request["out"])
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
