"""The relaxed-face step on the live page, in a real browser: Debian's Chromium whose fake camera
plays a validation poser's photo, the real server and model. The server's side of the step is
tested in test_calibration.py; here, what the person sees and does: the offer once after
consent, the progress, the outcome in their language, and what the baseline does afterwards
for the same person (the same browser profile, so the same profile cookie)."""

from __future__ import annotations

import time

import pytest

from bench.common import ServerProcess

from .conftest import ARTIFACTS, chromium, make_video, poser_read_sad, start_camera

pytestmark = [pytest.mark.browser, pytest.mark.server]

# every care card and every primary face's scores the page receives, recorded in the page
RECORD = """() => window.emocare.onSocket((socket) => {
    window.cards = [];
    window.scores = [];
    socket.on("care", (card) => window.cards.push(card.emotion + ":" + card.kind));
    socket.on("result", (msg) => {
        const face = (msg.faces || []).find((f) => f.primary);
        if (face) window.scores.push(face.scores);
    });
})"""


@pytest.fixture(scope="module")
def poser(expressions) -> dict[str, list]:
    """The poser of ``poser_read_sad``: their photos framed as a 640×480 webcam shows them."""
    return poser_read_sad(expressions)


@pytest.fixture(scope="module")
def server():
    """One real server with default settings and the bundled model."""
    server = ServerProcess("gunicorn", {}, log_dir=ARTIFACTS)
    yield server
    server.stop()


def progress_values(page) -> list[int]:
    return page.evaluate("window.progressSeen")


def test_calibrating_on_a_relaxed_face_keeps_care_for_the_sad_one(poser, server, tmp_path):
    """The issue's "done when", in the page: calibrated on one relaxed photo of a person, another
    relaxed photo of theirs gets no care for 30 s, and their sad face a card within 5 s."""
    profile = tmp_path / "profile"  # one browser profile throughout: the same cookie, the same person
    relaxed, other_relaxed, sad = poser["neutral"][0], poser["neutral"][1], poser["sad"][0]
    errors: list[str] = []

    with chromium(make_video(tmp_path, relaxed, "relaxed"), profile) as context:
        page = context.new_page()
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        start_camera(page, server.url + "/?lang=en")
        # offered once the camera is live, never forced: the frames go on meanwhile
        page.wait_for_selector('#calib[data-step="offer"]', timeout=30_000)
        assert page.locator("#calib-start").inner_text() == "Calibrate (5 s)"
        assert page.locator("#calib-later").inner_text() == "Not now"
        assert "never a picture" in page.locator("#calib-why").inner_text()
        assert page.locator("#calib-state").text_content() == "Not calibrated."
        seq = page.evaluate("window.emocare.state.seq")
        page.wait_for_function(f"() => window.emocare.state.seq > {seq + 5}", timeout=10_000)
        page.evaluate(
            """() => {
                window.progressSeen = [];
                const bar = document.getElementById("calib-progress");
                new MutationObserver(() => window.progressSeen.push(bar.value)).observe(bar, { attributes: true });
            }"""
        )
        page.locator("#calib-start").click()
        assert page.locator("#calib").get_attribute("data-step") == "running"
        assert page.locator("#calib-live").get_attribute("aria-live") == "polite"
        page.wait_for_function("() => document.getElementById('calib-message').textContent.length > 0")
        assert page.locator("#calib-message").inner_text() == "Look at the camera with a relaxed face"
        assert page.locator("#calib-cancel").is_visible() and page.locator("#calib-start").is_hidden()
        page.wait_for_function("() => document.getElementById('calib-progress').value >= 30", timeout=10_000)
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "calibration-step-en.png"))
        page.wait_for_selector('#calib[data-step="done"]', timeout=15_000)
        page.wait_for_function("() => document.getElementById('calib-message').textContent.startsWith('Thank you.')")
        seen = progress_values(page)
        assert len(seen) >= 8 and seen == sorted(seen) and seen[-1] == 100  # driven by the server's frames
        assert page.locator("#calib-state").text_content() == "Calibrated to your relaxed face."
        assert page.evaluate("localStorage.getItem('emocare.calibration')") == "done"
        page.locator("#settings summary").click()
        assert page.locator("#calib-again").inner_text() == "Calibrate again"
        assert page.locator("#calib-forget").is_visible()
        page.locator("#calib-settings").screenshot(path=str(ARTIFACTS / "calibration-settings-en.png"))

    # the same person, another relaxed photo, a new browser session: no offer, no care for 30 s
    with chromium(make_video(tmp_path, other_relaxed, "other-relaxed"), profile) as context:
        page = context.new_page()
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        start_camera(page, server.url + "/?lang=en")
        page.evaluate(RECORD)  # attached to the page's socket as soon as it connects
        page.wait_for_function(
            "() => document.getElementById('calib-state').dataset.calibrated === 'true'", timeout=30_000
        )
        page.wait_for_selector('#dominant[data-emotion="neutral"]', timeout=20_000)
        page.wait_for_timeout(30_000)
        assert page.evaluate("window.cards") == []
        assert page.locator("#care").is_hidden()
        assert page.locator("#calib").is_hidden()  # done: never offered again unasked
        assert page.locator("#dominant").get_attribute("data-emotion") == "neutral"
        assert len(page.evaluate("window.scores")) >= 60

    # their sad face: a care card within five seconds of the page first showing it
    with chromium(make_video(tmp_path, sad, "sad"), profile) as context:
        page = context.new_page()
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        start_camera(page, server.url + "/?lang=en")
        page.wait_for_function(
            "() => document.getElementById('calib-state').dataset.calibrated === 'true'", timeout=30_000
        )
        page.wait_for_selector('#dominant[data-emotion="sad"]', timeout=20_000)
        shown = time.monotonic()
        page.wait_for_selector("#care:not([hidden])", timeout=15_000)
        waited = time.monotonic() - shown
        assert page.locator("#care").get_attribute("data-emotion") == "sad"
        assert waited <= 5.0, f"the care card came {waited:.1f} s after sad was first shown"
        # and the calibration can be forgotten from the settings
        page.locator("#settings summary").click()
        page.locator("#calib-forget").click()
        page.wait_for_function("() => document.getElementById('calib-state').dataset.calibrated === 'false'")
        assert "forgotten" in page.locator("#calib-state").inner_text()
        assert page.locator("#calib-forget").is_hidden()
        assert page.locator("#calib-again").inner_text() == "Calibrate (5 s)"
    assert errors == []


def test_the_step_in_chinese_offered_once_refused_with_its_reason_and_cancelled(browser, server):
    """The astronaut's held smile, in zh-CN: "not now" is remembered, the settings start the step
    anyway, the smile is refused with its reason in Chinese, and Cancel stops listening."""
    page = browser.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    start_camera(page, server.url + "/?lang=zh-CN")
    page.wait_for_selector('#calib[data-step="offer"]', timeout=30_000)
    assert page.locator("#calib-title").inner_text() == "按你的面孔校准"
    assert "从不保存图像" in page.locator("#calib-why").inner_text()
    assert page.locator("#calib-start").inner_text() == "校准（5 秒）"
    assert page.locator("#calib-later").inner_text() == "现在不用"
    page.screenshot(path=str(ARTIFACTS / "calibration-offer-zh-CN.png"))
    page.locator("#calib-later").click()
    assert page.locator("#calib").is_hidden()
    assert page.evaluate("localStorage.getItem('emocare.calibration')") == "declined"

    # the camera again: not offered again unasked
    page.locator("#stop").click()
    page.locator("#start").click()
    seq = page.evaluate("window.emocare.state.seq")
    page.wait_for_function(f"() => window.emocare.state.seq > {seq + 10}", timeout=20_000)
    assert page.locator("#calib").is_hidden()

    # but the settings offer it at any time
    page.locator("#settings summary").click()
    assert page.locator("#calib-settings legend").inner_text() == "你放松时的面孔"
    assert page.locator("#calib-state").inner_text() == "尚未校准。"
    assert page.locator("#calib-forget").is_hidden()  # nothing to forget
    page.locator("#calib-again").click()
    page.wait_for_function("() => document.getElementById('calib-message').textContent === '请放松表情，看着摄像头'")
    assert page.locator("#calib-cancel").inner_text() == "取消"
    page.wait_for_function("() => document.getElementById('calib-progress').value >= 30", timeout=10_000)
    assert "还剩" in page.locator("#calib-left").inner_text()
    page.screenshot(path=str(ARTIFACTS / "calibration-step-zh-CN.png"))
    page.wait_for_selector('#calib[data-step="refused"]', timeout=15_000)
    page.wait_for_function("() => document.getElementById('calib-message').textContent.length > 0")
    message = page.locator("#calib-message").inner_text()
    assert message.startswith("你刚才是在微笑吗？"), message  # a question: how the face looked, not how they are
    assert page.locator("#calib-retry").inner_text() == "再试一次"
    page.screenshot(path=str(ARTIFACTS / "calibration-refused-zh-CN.png"))
    assert page.locator("#calib-state").inner_text() == "尚未校准。"

    # Try again, then Cancel: the step stops listening and nothing comes of it
    page.locator("#calib-retry").click()
    page.wait_for_function("() => document.getElementById('calib-progress').value > 0", timeout=10_000)
    page.locator("#calib-cancel").click()
    assert page.locator("#calib").is_hidden()
    page.wait_for_timeout(7_000)  # past the 5 s the step would have listened
    assert page.locator("#calib").is_hidden()
    assert page.locator("#calib-state").inner_text() == "尚未校准。"
    assert page.locator("#status").get_attribute("data-state") == "live"  # the stream went on throughout
    assert errors == []


def test_delete_all_my_data_forgets_the_calibration_and_the_step_is_offered_again(poser, server, tmp_path):
    with chromium(make_video(tmp_path, poser["neutral"][0], "relaxed"), tmp_path / "profile") as context:
        page = context.new_page()
        start_camera(page, server.url + "/?lang=en")
        page.wait_for_selector('#calib[data-step="offer"]', timeout=30_000)
        page.locator("#calib-start").click()
        page.wait_for_selector('#calib[data-step="done"]', timeout=15_000)
        assert page.locator("#calib-state").get_attribute("data-calibrated") == "true"
        page.locator("#stop").click()

        page.goto(server.url + "/history/?lang=en")
        page.on("dialog", lambda dialog: dialog.accept())
        page.locator("#delete-all").click()
        page.wait_for_selector("#deleted-notice", timeout=10_000)
        assert page.evaluate("localStorage.getItem('emocare.calibration')") is None

        start_camera(page, server.url + "/?lang=en")
        page.wait_for_selector('#calib[data-step="offer"]', timeout=30_000)  # as to someone new
        assert page.locator("#calib-state").text_content() == "Not calibrated."
