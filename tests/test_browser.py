"""The whole path in a real browser: Debian's Chromium, a fake camera playing the astronaut
portrait, the real server on 127.0.0.1, and the page rendering "happy" from live frames."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from .conftest import ARTIFACTS

pytestmark = [pytest.mark.browser, pytest.mark.server]

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


@pytest.fixture
def browser(fake_camera: Path, tmp_path: Path):
    if not Path(CHROMIUM).exists():
        pytest.fail("Debian's chromium is required (apt-get install -y chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        context = pw.chromium.launch_persistent_context(
            str(tmp_path / "profile"),
            executable_path=CHROMIUM,
            headless=True,
            viewport={"width": 1200, "height": 800},
            args=[
                "--use-fake-ui-for-media-stream",
                "--use-fake-device-for-media-stream",
                f"--use-file-for-fake-video-capture={fake_camera}",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
            ],
        )
        yield context
        context.close()


def overlay_has_drawing(page) -> bool:
    return page.evaluate(
        """() => {
            const c = document.getElementById('overlay');
            if (!c.width || !c.height) return false;
            const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
            for (let i = 3; i < d.length; i += 4) if (d[i] > 0) return true;
            return false;
        }"""
    )


def start_camera(page, url: str) -> None:
    page.goto(url)
    start = page.locator("#start")
    assert start.is_disabled(), "the camera must not start before consent"
    page.locator("#consent-check").check()
    start.click()


def test_live_page_shows_happy(browser, start_server):
    server = start_server("threading")
    page = browser.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    start_camera(page, server.url + "/?lang=en")

    page.wait_for_selector('#dominant[data-emotion="happy"]', timeout=20_000)
    page.wait_for_function("document.getElementById('stats').textContent.includes('fps')", timeout=10_000)
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
    server = start_server("threading", EMOCARE_DEEPFACE_HOME=str(tmp_path / "deepface"))
    page = browser.new_page()
    start_camera(page, server.url + "/?lang=en")
    page.wait_for_selector('#dominant[data-emotion="happy"]', timeout=20_000)
    assert page.locator("#backend").get_attribute("data-backend") == "fer"
    page.select_option("#backend-select", "deepface")
    page.wait_for_function(
        "document.getElementById('backend').textContent.includes('DeepFace emotion weights not found')",
        timeout=20_000,
    )
    page.evaluate("document.getElementById('dominant').dataset.emotion = ''")
    page.wait_for_selector('#dominant[data-emotion="happy"]', timeout=20_000)  # frames still flow
    assert page.locator("#status").get_attribute("data-state") == "live"


def test_live_page_in_chinese(browser, start_server):
    server = start_server("threading")
    page = browser.new_page()
    start_camera(page, server.url + "/?lang=zh-CN")
    page.wait_for_selector('#dominant[data-emotion="happy"]', timeout=20_000)
    assert "开心" in page.locator("#dominant").inner_text()
    assert page.locator("#start").inner_text() == "开启摄像头"
    page.screenshot(path=str(ARTIFACTS / "live-zh-CN.png"))
