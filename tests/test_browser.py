"""The whole path in a real browser: Debian's Chromium, a fake camera playing the astronaut
portrait, the real server on 127.0.0.1, and the page rendering "happy" from live frames."""

from __future__ import annotations

import re
import time

import pytest

from bench.common import ServerProcess

from .conftest import ARTIFACTS, overlay_has_drawing, serve_files, start_camera, watch_face

pytestmark = [pytest.mark.browser, pytest.mark.server]


def test_live_page_shows_happy(browser, start_server):
    server = start_server("gunicorn")
    page = browser.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    start_camera(page, server.url + "/?lang=en")

    page.wait_for_selector('#dominant[data-emotion="happy"]', timeout=20_000)
    page.wait_for_function("() => document.getElementById('stats').textContent.includes('fps')", timeout=10_000)
    assert page.locator("#status").get_attribute("data-state") == "live"
    assert "happy" in page.locator("#dominant").inner_text()
    happy_bar = page.locator('.bar[data-emotion="happy"]')
    assert "top" in (happy_bar.get_attribute("class") or "")
    assert int(happy_bar.locator(".bar-value").inner_text().rstrip("%")) >= 50
    assert overlay_has_drawing(page), "a face box should be drawn over the video"
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "live-en.png"))

    page.locator("#stop").click()
    assert page.locator("#status").get_attribute("data-state") == "stopped"
    assert not overlay_has_drawing(page)
    assert errors == []


def test_choosing_deepface_offline_says_why_and_keeps_working(browser, start_server, tmp_path):
    server = start_server("gunicorn", EMOCARE_DEEPFACE_HOME=str(tmp_path / "deepface"))
    page = browser.new_page()
    start_camera(page, server.url + "/?lang=en")
    page.wait_for_selector('#dominant[data-emotion="happy"]', timeout=20_000)
    assert page.locator("#backend").get_attribute("data-backend") == "emocare"
    page.select_option("#backend-select", "deepface")
    page.wait_for_function(
        "() => document.getElementById('backend').textContent.includes('DeepFace emotion weights not found')",
        timeout=20_000,
    )
    page.evaluate("document.getElementById('dominant').dataset.emotion = ''")
    page.wait_for_selector('#dominant[data-emotion="happy"]', timeout=20_000)  # frames still flow
    assert page.locator("#status").get_attribute("data-state") == "live"


def test_choosing_deepface_online_shows_the_download_then_analyses_with_it(
    browser, start_server, tmp_path, random_weights_home
):
    from emocare.vision.deepface_backend import WEIGHTS_FILE, weights_path

    served = tmp_path / "served"
    served.mkdir()
    (served / WEIGHTS_FILE).write_bytes(weights_path(random_weights_home).read_bytes())
    # 256 KB every 150 ms: the 6 MB take about 4 s, long enough for the status line to be read
    with serve_files(served, pause_s=0.15) as base:
        server = start_server(
            "gunicorn",
            EMOCARE_DEEPFACE_HOME=str(tmp_path / "deepface"),
            EMOCARE_DEEPFACE_WEIGHTS_URLS=f"{base}/{WEIGHTS_FILE}",
        )
        page = browser.new_page()
        start_camera(page, server.url + "/?lang=en")
        page.wait_for_selector('#dominant[data-emotion="happy"]', timeout=20_000)
        page.evaluate(
            """() => { window.statusTexts = [];
            new MutationObserver(() => window.statusTexts.push(document.getElementById('status').textContent))
              .observe(document.getElementById('status'), {childList: true, characterData: true, subtree: true}); }"""
        )
        page.select_option("#backend-select", "deepface")
        page.wait_for_function(
            """() => { const texts = window.statusTexts;
            return texts.length > 1 && texts[texts.length - 1].startsWith('Live')
              && document.getElementById('backend').dataset.backend === 'deepface'; }""",
            timeout=60_000,
        )
    texts = page.evaluate("window.statusTexts")
    progress = [t for t in texts if t.startswith("Downloading the model's weights: ")]
    assert progress, texts
    assert all(re.fullmatch(r"Downloading the model's weights: \d+% \([\d.]+ of [\d.]+ MB\)…", t) for t in progress)
    assert page.locator("#status").get_attribute("data-state") == "live"
    assert "not found" not in page.locator("#backend").inner_text()
    page.evaluate("document.getElementById('dominant').dataset.emotion = ''")
    page.wait_for_selector("#dominant[data-emotion]:not([data-emotion=''])", timeout=20_000)  # DeepFace's reading


def test_live_page_in_chinese(browser, start_server):
    server = start_server("gunicorn")
    page = browser.new_page()
    start_camera(page, server.url + "/?lang=zh-CN")
    page.wait_for_selector('#dominant[data-emotion="happy"]', timeout=20_000)
    assert "开心" in page.locator("#dominant").inner_text()
    assert page.locator("#start").inner_text() == "开启摄像头"
    page.screenshot(path=str(ARTIFACTS / "live-zh-CN.png"))


def test_care_card_speaks_offers_music_and_takes_feedback(browser, start_server):
    """A scripted sad mood (the server replays it) brings the care card, its voice and music."""
    server = start_server("gunicorn", EMOCARE_ANALYZER="scripted")
    page = browser.new_page()
    page.goto(server.url + "/?lang=en")
    page.evaluate("localStorage.setItem('emocare.settings', JSON.stringify({sensitivity: 'high', cooldown_s: 10}))")
    start_camera(page, server.url + "/?lang=en")
    page.wait_for_selector("#care:not([hidden])", timeout=20_000)
    assert page.locator("#care").get_attribute("data-kind") == "message"
    assert page.locator("#care-live").get_attribute("aria-live") == "polite"
    page.wait_for_function("() => document.getElementById('care-text').textContent.length > 10")
    text = page.locator("#care-text").inner_text()
    assert any(w in text.lower() for w in ("you look", "you seem", "looks like"))
    # the card comes first; its voice follows in a care_speech event
    page.wait_for_function("() => document.getElementById('speech-audio').getAttribute('src')", timeout=10_000)
    source = page.locator("#speech-audio").get_attribute("src")
    assert source and source.startswith("/care/audio/")
    audio = page.request.get(server.url + source)
    assert audio.ok and audio.body()[:4] == b"RIFF" and len(audio.body()) > 20_000
    page.screenshot(path=str(ARTIFACTS / "care-message.png"))

    # 10 s later the sad mood still holds: the next step is music, never started by itself
    page.wait_for_selector('#care[data-kind="music"]', timeout=25_000)
    music = page.locator("#music-audio")
    assert music.get_attribute("src").startswith("/static/music/")
    assert page.evaluate("document.getElementById('music-audio').paused")
    page.screenshot(path=str(ARTIFACTS / "care-music.png"))
    page.locator('#care-feedback button[data-verdict="helpful"]').click()
    assert page.locator('#care-feedback button[data-verdict="not_now"]').is_disabled()  # one answer per card
    page.wait_for_selector('#care[data-feedback="helpful"]', timeout=5_000)
    assert "Thank you" in page.locator("#care-text").inner_text()


def test_breathing_guide_for_a_lasting_fearful_look(browser, start_server):
    server = start_server("gunicorn", EMOCARE_ANALYZER="scripted", EMOCARE_SCRIPTED_MOODS="fear")
    page = browser.new_page()
    page.goto(server.url + "/?lang=zh-CN")
    page.evaluate(
        "localStorage.setItem('emocare.settings', JSON.stringify({sensitivity: 'high', cooldown_s: 10, voice: false}))"
    )
    start_camera(page, server.url + "/?lang=zh-CN")
    page.wait_for_selector('#care[data-kind="breathing"]', timeout=30_000)
    assert page.locator("#care-speech").is_hidden()  # voice switched off in the settings
    assert page.locator("#exercise-name").inner_text()
    page.locator("#exercise-start").click()
    if page.locator("#care-exercise").get_attribute("data-kind") == "breathing":
        page.wait_for_selector('#breath-circle[data-phase="inhale"]', timeout=5_000)
        assert "吸气" in page.locator("#breath-text").inner_text()
        assert "第 1 轮" in page.locator("#breath-text").inner_text()
    else:  # the 5-4-3-2-1 grounding exercise: steps with a countdown, no circle
        assert page.locator("#breath-circle").is_hidden()
        assert "五" in page.locator("#breath-text").inner_text()
    page.wait_for_function("() => Number(document.getElementById('breath-count').textContent) > 0")
    page.wait_for_timeout(1500)
    page.screenshot(path=str(ARTIFACTS / "care-breathing-zh-CN.png"))
    # the fear goes on and the next card (the offer of help) is due after 10 s: it must wait
    # until the person has finished the exercise, never cut it off
    page.wait_for_timeout(12_000)
    assert page.locator("#care").get_attribute("data-kind") == "breathing"
    assert page.locator("#exercise-stop").is_visible()
    page.locator("#exercise-stop").click()
    assert page.locator("#exercise-start").is_visible()
    page.wait_for_selector('#care[data-kind="help"]', timeout=10_000)
    assert page.locator("#help-lines li").count() >= 3


def test_history_page_after_a_session(browser, start_server, tmp_path):
    """A session on the live page shows up on the history page, charted, and can be deleted."""
    server = start_server("gunicorn", EMOCARE_ANALYZER="scripted", EMOCARE_SCRIPTED_MOODS="sad,sad,neutral")
    page = browser.new_page()
    start_camera(page, server.url + "/?lang=en")
    page.wait_for_selector('#dominant[data-emotion="sad"]', timeout=20_000)
    page.wait_for_timeout(4000)
    page.locator("#stop").click()
    # the profile the history is filed under: issued by the server, out of the page's reach
    [cookie] = [c for c in browser.cookies() if c["name"] == "emocare_profile"]
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict" and cookie["value"].startswith("p-")
    assert "emocare_profile" not in page.evaluate("() => document.cookie")
    assert page.evaluate("() => localStorage.getItem('emocare.profile')") is None
    page.locator("#history-link").click()
    page.wait_for_selector("#sessions .session-button", timeout=10_000)
    page.wait_for_function("() => Number(document.getElementById('timeline').dataset.samples) >= 3", timeout=10_000)
    assert float(page.locator("#summary-today").get_attribute("data-seconds")) >= 3
    assert "sad" in page.locator("#summary-today .shares").inner_text()
    page.screenshot(path=str(ARTIFACTS / "history-en.png"), full_page=True)
    page.goto(server.url + "/history/?lang=zh-CN")
    assert "你的情绪记录" in page.locator("h1").inner_text()
    page.on("dialog", lambda dialog: dialog.accept())
    page.locator("#delete-all").click()
    page.wait_for_selector("#deleted-notice", timeout=10_000)
    assert page.locator("#history-empty").is_visible()


# --- care for each lasting mood, from real faces of the validation split --------------------


@pytest.fixture(scope="module")
def care_server():
    """One real server, default settings and the bundled model, for the per-mood tests."""
    server = ServerProcess("gunicorn", {}, log_dir=ARTIFACTS)
    yield server
    server.stop()


@pytest.mark.parametrize("emotion", ["fear", "sad", "angry", "disgust"])
def test_a_lasting_negative_mood_gets_care_within_five_seconds(held_faces, care_server, tmp_path, emotion):
    with watch_face(held_faces, emotion, tmp_path) as context:
        page = context.new_page()
        start_camera(page, care_server.url + "/?lang=en")
        page.wait_for_selector(f'#dominant[data-emotion="{emotion}"]', timeout=20_000)
        shown = time.monotonic()
        page.wait_for_selector("#care:not([hidden])", timeout=15_000)
        waited = time.monotonic() - shown
        assert page.locator("#care").get_attribute("data-emotion") == emotion
        assert waited <= 5.0, f"the care card came {waited:.1f} s after {emotion} was first shown"
        page.screenshot(path=str(ARTIFACTS / f"care-{emotion}.png"))


@pytest.mark.parametrize("emotion", ["neutral", "happy"])
def test_a_steady_calm_face_gets_no_care(held_faces, care_server, tmp_path, emotion):
    """No comfort for a calm face: at most, for a lasting smile, the occasional encouragement."""
    with watch_face(held_faces, emotion, tmp_path) as context:
        page = context.new_page()
        start_camera(page, care_server.url + "/?lang=en")
        page.wait_for_selector(f'#dominant[data-emotion="{emotion}"]', timeout=20_000)
        page.wait_for_timeout(8_000)
        card = page.locator("#care")
        if emotion == "neutral" or card.is_hidden():
            assert card.is_hidden()
        else:
            assert (card.get_attribute("data-kind"), card.get_attribute("data-emotion")) == ("encourage", "happy")
        assert page.locator("#dominant").get_attribute("data-emotion") == emotion


def test_not_how_i_feel_asks_how_you_feel_and_the_settings_say_what_it_taught(browser, start_server):
    """ "That's not how I feel" offers an optional "I feel …" (never the card's own mood); the
    settings then say in plain words what was learned, and one click forgets it."""
    server = start_server("gunicorn", EMOCARE_ANALYZER="scripted")
    page = browser.new_page()
    start_camera(page, server.url + "/?lang=en")
    page.wait_for_selector("#care:not([hidden])", timeout=20_000)
    emotion = page.locator("#care").get_attribute("data-emotion")
    page.locator('#care-feedback button[data-verdict="not_me"]').click()
    page.wait_for_selector("#care-felt:not([hidden])")
    assert page.locator(f'#care-felt button[data-felt="{emotion}"]').is_hidden()
    page.locator('#care-felt button[data-felt="neutral"]').click()
    page.wait_for_selector('#care[data-feedback="not_me"]', timeout=5_000)
    page.locator("#settings summary").click()
    page.wait_for_selector(f'#learned-list li[data-emotion="{emotion}"]', timeout=5_000)
    said = page.locator("#learned-list li").inner_text()
    assert "EmoCare has learned" in said and "a little" in said
    assert page.locator("#learned-lasting").is_visible()
    page.locator("#learned-settings").screenshot(path=str(ARTIFACTS / "learned-settings.png"))
    page.locator("#learned-reset").click()
    page.wait_for_selector("#learned-none:not([hidden])", timeout=5_000)
    assert page.locator("#learned-list li").count() == 0
