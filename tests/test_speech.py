"""Spoken replies: real engines, real WAV files, checked for length and loudness."""

import concurrent.futures
import shutil

import pytest

from emocare.care.speech import SpeechService, wav_stats

pytestmark = pytest.mark.skipif(
    shutil.which("espeak-ng") is None, reason="no speech engine: espeak-ng is not installed (apt-get install espeak-ng)"
)


@pytest.fixture
def speech(tmp_path):
    return SpeechService(tmp_path / "tts")


@pytest.mark.parametrize(
    ("text", "locale", "min_seconds"),
    [
        ("You look a little down right now. Is that right?", "en", 1.5),
        ("你看起来有点低落，是这样吗？要是我看错了，直接告诉我就好。", "zh-CN", 2.5),
    ],
)
def test_renders_real_non_silent_speech(speech, text, locale, min_seconds):
    result = speech.render(text, locale)
    assert result is not None and result.engine == "pyttsx3"
    duration, rms = wav_stats(result.path)
    assert duration >= min_seconds
    assert rms > 0.02
    again = speech.render(text, locale)
    assert again.path == result.path and again.engine == "cache"


def test_pyttsx3_keeps_the_whole_utterance(tmp_path):
    """pyttsx3 2.99 dropped the last chunk at random; our worker must give espeak-ng's full length."""
    text = "你看起来有点低落，是这样吗？要是我看错了，直接告诉我就好。"
    direct = SpeechService(tmp_path / "a", engines=("espeak-ng",)).render(text, "zh-CN")
    for i in range(3):
        via = SpeechService(tmp_path / f"b{i}", engines=("pyttsx3",)).render(text, "zh-CN")
        assert via.engine == "pyttsx3"
        assert via.duration_s == pytest.approx(direct.duration_s, rel=0.05)


def test_espeak_fallback_writes_a_proper_header(tmp_path):
    speech = SpeechService(tmp_path / "tts", engines=("espeak-ng",))
    result = speech.render("Breathe in slowly.", "en")
    assert result.engine == "espeak-ng"
    duration, rms = wav_stats(result.path)
    assert 0.5 < duration < 5 and rms > 0.02


def test_twenty_in_a_row_and_five_at_once(speech):
    in_a_row = [speech.render(f"Message number {i} for you.", "en") for i in range(20)]
    assert all(r is not None and wav_stats(r.path)[1] > 0.02 for r in in_a_row)
    assert len({r.path for r in in_a_row}) == 20

    texts = [f"你好，这是第{i}条消息。" if i % 2 else f"Concurrent message {i}." for i in range(5)]
    with concurrent.futures.ThreadPoolExecutor(5) as pool:
        results = list(pool.map(lambda t: speech.render(t, "zh-CN" if "消息" in t else "en"), texts))
    assert all(r is not None for r in results)
    for r in results:
        duration, rms = wav_stats(r.path)
        assert duration > 0.5 and rms > 0.02


def test_no_engine_means_none_and_the_page_speaks_instead(tmp_path):
    speech = SpeechService(tmp_path / "tts", engines=())
    assert not speech.available
    assert speech.render("hello", "en") is None


def test_cache_names_are_hashes_only(speech):
    result = speech.render("Hello there.", "en")
    assert speech.cached(result.path.name) == result.path
    assert speech.cached("../../etc/passwd") is None
    assert speech.cached("x" * 32 + ".wav") is None
