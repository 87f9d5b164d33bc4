"""The live page against what real cameras and links do: a hidden tab, several cameras, a
camera that goes away, a slow round trip, a HiDPI screen, a screen reader, the other language.

Debian's headless Chromium gives every page the visibility "visible" whatever is done to it
(tried here: another tab brought to the front, ``Page.setWebLifecycleState``,
``Browser.setWindowBounds`` minimised, focus emulation), so hiding is emulated in the page:
``document.hidden`` and ``visibilityState`` overridden and ``visibilitychange`` dispatched, the
events a real tab switch delivers. The camera is taken away for real: the DevTools protocol's
``Browser.setPermission`` withdraws the page's camera permission, and Chromium ends the track.
"""

from __future__ import annotations

import itertools
import json
import re
from pathlib import Path

import pytest

from .conftest import ARTIFACTS, chromium, start_camera

pytestmark = [pytest.mark.browser, pytest.mark.server]

ROOT = Path(__file__).resolve().parents[1]

SET_VISIBILITY = """(hidden) => {
    Object.defineProperty(document, "hidden", { configurable: true, get: () => hidden });
    const state = hidden ? "hidden" : "visible";
    Object.defineProperty(document, "visibilityState", { configurable: true, get: () => state });
    document.dispatchEvent(new Event("visibilitychange"));
}"""


@pytest.fixture
def server(start_server):
    return start_server("gunicorn")


@pytest.fixture
def page(browser, server):
    page = browser.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    start_camera(page, server.url + "/?lang=en")
    page.wait_for_selector('#status[data-state="live"]', timeout=20_000)
    yield page
    assert errors == []


def sent(page) -> int:
    return page.evaluate("window.emocare.state.seq")


def test_a_hidden_tab_sends_nothing_and_resumes_on_return(page):
    page.evaluate(SET_VISIBILITY, True)
    assert page.locator("#status").get_attribute("data-state") == "paused"
    before = sent(page)
    page.wait_for_timeout(1500)  # at 10 fps, 15 frames would have gone
    assert sent(page) - before <= 1  # at most the one already being encoded
    page.evaluate(SET_VISIBILITY, False)
    page.wait_for_function(f"() => window.emocare.state.seq > {before + 5}", timeout=10_000)
    assert page.locator("#status").get_attribute("data-state") == "live"


def test_the_camera_picker_lists_cameras_and_is_remembered(page, server):
    options = page.locator("#camera-select option")
    assert options.count() >= 1
    assert "astronaut.y4m" in options.first.inner_text()  # the fake device's own label
    chosen = options.first.get_attribute("value")
    page.evaluate(
        "s => { s.value = s.options[0].value; s.dispatchEvent(new Event('change')); }",
        page.locator("#camera-select").element_handle(),
    )
    assert page.evaluate("localStorage.getItem('emocare.camera')") == chosen
    before = sent(page)
    page.wait_for_function(f"() => window.emocare.state.seq > {before + 3}", timeout=10_000)  # the new stream flows
    again = page.context.new_page()
    start_camera(again, server.url + "/?lang=en")
    again.wait_for_selector('#status[data-state="live"]', timeout=20_000)
    assert again.evaluate("window.emocare.state.stream.getVideoTracks()[0].getSettings().deviceId") == chosen
    assert again.locator("#camera-select").input_value() == chosen


def camera_permission(page, server, setting: str) -> None:
    cdp = page.context.new_cdp_session(page)
    cdp.send("Browser.setPermission", {"permission": {"name": "camera"}, "setting": setting, "origin": server.url})


def test_a_camera_that_goes_away_is_said_and_can_be_restarted(page, server):
    camera_permission(page, server, "denied")  # Chromium ends the live track
    lost = page.locator("#camera-lost")
    lost.wait_for(state="visible", timeout=5_000)
    page.wait_for_function("() => document.getElementById('camera-lost-text').textContent.includes('permission')")
    assert page.locator("#status").get_attribute("data-state") == "camera_lost"
    assert page.evaluate("window.emocare.state.stream") is None
    before = sent(page)
    page.wait_for_timeout(1000)
    assert sent(page) == before
    camera_permission(page, server, "granted")
    page.locator("#camera-restart").click()
    page.wait_for_selector('#status[data-state="live"]', timeout=20_000)
    assert not lost.is_visible()
    page.wait_for_function(f"() => window.emocare.state.seq > {before + 3}", timeout=10_000)


def test_the_frame_rate_follows_the_round_trip(page):
    interval = "rtts => window.emocare.frameInterval(rtts.map(rtt => ({ rtt })))"
    assert page.evaluate(interval, [20, 25, 30]) == pytest.approx(100)  # fast: the full 10 fps
    assert page.evaluate(interval, [300, 320, 310, 290]) == pytest.approx(465)  # 1.5 round trips
    assert page.evaluate(interval, [2000, 2100, 1900]) == pytest.approx(500)  # never below 2 fps
    # and on the real stream: a link that takes 250 ms more to carry each frame (CDP's network
    # emulation does not reach WebSockets, so the page's own emit is delayed) slows the page's
    # rate below one frame per round trip, leaving the link room
    page.evaluate(
        """() => {
            const socket = window.emocare.state.socket;
            const emit = socket.emit.bind(socket);
            socket.emit = (name, ...args) =>
                name === "frame" ? setTimeout(() => emit(name, ...args), 250) : emit(name, ...args);
        }"""
    )
    page.wait_for_timeout(5000)
    recent = page.evaluate("window.emocare.state.rtts.slice(-8)")
    median_rtt = sorted(r["rtt"] for r in recent)[len(recent) // 2]
    median_gap = sorted(b["at"] - a["at"] for a, b in itertools.pairwise(recent))[len(recent) // 2 - 1]
    assert median_rtt > 250
    assert median_gap >= 1.25 * median_rtt  # one frame per round trip would give 1.0


def test_boxes_are_drawn_at_the_device_pixel_ratio(fake_camera, tmp_path, server):
    with chromium(fake_camera, tmp_path / "hidpi", device_scale_factor=2) as context:
        page = context.new_page()
        start_camera(page, server.url + "/?lang=en")
        page.wait_for_selector('#dominant[data-emotion="happy"]', timeout=20_000)
        size = page.evaluate(
            "(() => { const c = document.getElementById('overlay');"
            " return [c.width, c.height, c.clientWidth, c.clientHeight]; })()"
        )
        assert size[0] == round(size[2] * 2) and size[1] == round(size[3] * 2)
        page.screenshot(path=str(ARTIFACTS / "live-hidpi.png"))


def test_the_status_is_announced_only_when_its_meaning_changes(page):
    assert page.locator("#status").get_attribute("role") == "status"  # a polite live region
    page.evaluate(
        """() => {
            window.statusWrites = 0;
            new MutationObserver((m) => { window.statusWrites += m.length; })
                .observe(document.getElementById("status"), { childList: true, characterData: true, subtree: true });
        }"""
    )
    before = sent(page)
    page.wait_for_function(f"() => window.emocare.state.seq > {before + 20}", timeout=15_000)  # 20 results
    assert page.evaluate("window.statusWrites") == 0  # still "Live": nothing new to announce


def error_codes_in_the_server() -> set[str]:
    source = "\n".join(p.read_text() for p in (ROOT / "src" / "emocare").rglob("*.py"))
    raised = r'\b(?:FrameError|ScoresError|Refused)\(\s*"([a-z_]+)"'  # the exceptions that carry a code
    codes = set(re.findall(r'"code": "([a-z_]+)"', source)) | set(re.findall(raised, source))
    # the scan works, for each way a code is written
    assert {"busy", "too_large", "undecodable", "no_session", "bad_settings", "flooding", "server_full"} <= codes
    return codes


@pytest.mark.parametrize("lang", ["en", "zh-CN"])
def test_every_server_error_code_has_its_text(lang):
    strings = json.loads((ROOT / "src" / "emocare" / "web" / "translations" / f"{lang}.json").read_text())
    missing = sorted(code for code in error_codes_in_the_server() if f"error.{code}" not in strings)
    assert missing == []


def test_server_errors_are_shown_in_chinese(browser, server):
    page = browser.new_page()
    start_camera(page, server.url + "/?lang=zh-CN")
    page.wait_for_selector('#status[data-state="live"]', timeout=20_000)
    page.evaluate("window.emocare.state.socket.emit('care_feedback', {id: 'care-999', verdict: 'helpful'})")
    page.wait_for_function("() => document.getElementById('backend').textContent.includes('关怀卡片')", timeout=10_000)
    assert "care" not in page.locator("#backend").inner_text().lower()  # not the server's English
