"""Analysis on the device, in the real page: Debian's headless Chromium whose fake camera holds a
real face (a y4m made by ffmpeg), a real server started with ``EMOCARE_ANALYSIS=device``, and
the page running analyzer.js (onnxruntime-web, BlazeFace and EmoCare's model) itself.

What is asserted is what the person and the network see: the page goes live saying it
analyses on this device, labels the face, gets care for a lasting negative mood as fast as
in server mode and none for a calm one, calibrates, and sends **no picture**: every frame the
page sends on its WebSocket is counted (playwright's ``framesent``), none may be binary (a
frame's JPEG travels as a binary attachment) and all together stay under 200 KB while it
streams (server mode sent 1.33 MB in 25 s). A page whose WebAssembly cannot load falls back
to server analysis and says so, in Chinese here. No page may break the Content-Security-Policy.

Browser launches are slow on two cores, so each test checks several things of one page.
"""

from __future__ import annotations

import logging
import re
import time
from collections import Counter

import pytest

from bench.common import ServerProcess

from .conftest import ARTIFACTS, chromium, make_video, overlay_has_drawing, poser_read_sad, start_camera, watch_face

log = logging.getLogger(__name__)

pytestmark = [pytest.mark.browser, pytest.mark.server]

#: the issue's bar for a streaming page in device mode (server mode: 1.33 MB in 25 s)
MAX_BYTES = 200_000
STREAM_S = 25.0
#: the page's floor of analysed frames a second over long round trips (app.js MIN_FPS)
MIN_FPS = 2
#: first load of the runtime and models (7.3 MB gzipped, compiled on a busy 2-core machine)
LIVE_WITHIN_MS = 90_000

# every securitypolicyviolation event, recorded from the page's first script on
RECORD_CSP = """window.cspViolations = [];
document.addEventListener("securitypolicyviolation",
    (e) => window.cspViolations.push(e.violatedDirective + " " + e.blockedURI));"""

# every text the status line shows, in order
RECORD_STATUS = """() => {
    window.statusSeen = [];
    const el = document.getElementById("status");
    new MutationObserver(() => window.statusSeen.push(el.dataset.state + ":" + el.textContent))
        .observe(el, { childList: true, characterData: true, subtree: true, attributes: true });
}"""

# when the page emits each scores event, by the page's own clock (playwright's events reach
# Python in batches, so their arrival times cannot measure a rate)
RECORD_EMITS = """() => window.emocare.onSocket((socket) => {
    window.scoresAt = [];
    window.framesSent = [];
    socket.onAnyOutgoing((name, message) => {
        if (name !== "scores") return;
        window.scoresAt.push(performance.now());
        window.framesSent.push(message.frames.length);
    });
})"""

# a Socket.IO event's name in a text packet: 4 (message) 2 (event), then "N-" for N binary
# attachments, an optional namespace and ack id, then ["name", ...]
EVENT = re.compile(r'^42(?:\d+-)?(?:/[^,]*,)?\d*\["([^"]+)"')
BINARY_EVENT = re.compile(r'^45\d+-(?:/[^,]*,)?\d*\["([^"]+)"')


class Wire:
    """Everything the page sends to its server over Socket.IO: each WebSocket frame (text or
    binary) and each long-polling POST body, with the events' names and when they went."""

    def __init__(self, page) -> None:
        self.text_bytes = 0
        self.binary_frames = 0
        self.binary_bytes = 0
        self.polling_bytes = 0
        self.events: Counter[str] = Counter()
        page.on("websocket", lambda ws: ws.on("framesent", self._frame))
        page.on("request", self._request)

    def _frame(self, payload) -> None:
        if isinstance(payload, bytes):
            self.binary_frames += 1
            self.binary_bytes += len(payload)
            return
        self.text_bytes += len(payload.encode())
        match = EVENT.match(payload) or BINARY_EVENT.match(payload)
        if match:
            self.events[match.group(1)] += 1

    def _request(self, request) -> None:
        if "/socket.io/" in request.url and request.method == "POST":
            self.polling_bytes += len(request.post_data_buffer or b"")

    @property
    def sent(self) -> int:
        return self.text_bytes + self.binary_bytes + self.polling_bytes

    def snapshot(self) -> dict:
        return {"sent": self.sent, "binary": self.binary_frames, **self.events}


def watch(page) -> list[str]:
    """Record the page's CSP violations (event and console) and uncaught errors."""
    problems: list[str] = []
    page.add_init_script(RECORD_CSP)
    page.on("pageerror", lambda exc: problems.append(f"pageerror: {exc}"))
    page.on("console", lambda m: problems.append(m.text) if "Content Security Policy" in m.text else None)
    return problems


def assert_clean(page, problems: list[str]) -> None:
    assert page.evaluate("window.cspViolations") == []
    assert problems == []


def max_per_second(times_ms: list[float]) -> int:
    """The most events within any one second."""
    return max((sum(1 for u in times_ms if t <= u < t + 1000.0) for t in times_ms), default=0)


@pytest.fixture(scope="module")
def device_server():
    """One real server whose pages analyse on their own device by default."""
    server = ServerProcess("gunicorn", {"EMOCARE_ANALYSIS": "device"}, log_dir=ARTIFACTS)
    yield server
    server.stop()


def device_sessions(page, server) -> tuple[int, int]:
    """(sessions, of which counted as analysed on their device) on the server (/healthz)."""
    health = page.request.get(server.url + "/healthz").json()
    return health["sessions"], health["device_sessions"]


def go_live_on_device(page, url: str | None = None, server=None) -> float:
    """Start the camera (on the page at ``url``, or the page as it is); seconds until the page
    is live, analysing on this device. With ``server``: the page is counted on the device from
    its handshake on, before it has sent any scores (it is still loading its analysis)."""
    started = time.monotonic()
    if url is None:
        page.locator("#consent-check").check()
        page.locator("#start").click()
    else:
        start_camera(page, url)
    if server is not None:
        page.wait_for_function("() => window.emocare.state.socket && window.emocare.state.socket.connected")
        counted = device_sessions(page, server)
        assert page.evaluate("window.emocare.state.seq") == 0, "scores were sent before the count was read"
        assert counted == (1, 1), counted
    page.wait_for_selector('#status[data-state="live"][data-analysis="device"]', timeout=LIVE_WITHIN_MS)
    return time.monotonic() - started


def test_device_mode_goes_live_calibrates_and_sends_no_picture(device_server, expressions, tmp_path):
    """With the server's default at ``device``: counted on the device from the handshake, live
    on this device, the face labelled and boxed, the relaxed-face step done on scores alone,
    25 s of streaming with no binary frame and under 200 KB sent, at most 3 ``scores`` a
    second, four frames each; then the settings switch to server analysis (frames flow: the counting sees them),
    the choice is remembered, a page in server mode fetches none of the device's files, and
    choosing this device again stops the frames."""
    relaxed = poser_read_sad(expressions)["neutral"][0]
    with chromium(make_video(tmp_path, relaxed, "relaxed"), tmp_path / "profile") as context:
        page = context.new_page()
        problems = watch(page)
        wire = Wire(page)
        fetched: list[str] = []
        page.on("request", lambda r: fetched.append(r.url) if "/device/" in r.url else None)
        page.goto(device_server.url + "/?lang=en")
        assert page.locator("#set-analysis").input_value() == "device"  # the server's default
        assert page.locator("#consent-device").is_visible() and page.locator("#consent-server").is_hidden()
        assert "no picture of you leaves this browser" in page.locator("#consent-device").text_content()
        assert fetched == [], "the device's files are fetched only once the camera starts"
        page.evaluate(RECORD_EMITS)

        took = go_live_on_device(page, server=device_server)
        assert page.locator("#status").inner_text() == "Live · analysed on this device"
        assert any(url.endswith("/device/manifest.json") for url in fetched)
        assert any(".wasm" in url for url in fetched) and any(".onnx" in url for url in fetched)
        page.wait_for_function("() => document.getElementById('dominant').dataset.emotion !== ''", timeout=10_000)
        assert overlay_has_drawing(page), "the face's box and label are drawn over the video"
        assert page.locator("#backend").inner_text() == "Model: EmoCare, running on this device"
        assert page.locator("#backend-select").is_disabled()  # the device runs EmoCare's model
        page.wait_for_function("() => document.getElementById('stats').textContent.includes('on this device')")

        # the streaming period: calibrate on the relaxed face meanwhile, as a person would
        before = wire.snapshot()
        began = time.monotonic()
        page.wait_for_selector('#calib[data-step="offer"]', timeout=20_000)
        page.locator("#calib-start").click()
        page.wait_for_selector('#calib[data-step="done"]', timeout=20_000)
        page.locator("#settings summary").click()
        page.wait_for_selector('#calib-state[data-calibrated="true"]', timeout=5_000)
        page.wait_for_timeout(max(0.0, STREAM_S - (time.monotonic() - began)) * 1000)
        seconds = time.monotonic() - began
        after = wire.snapshot()
        sent = after["sent"] - before["sent"]
        scores = after.get("scores", 0) - before.get("scores", 0)
        stats = page.locator("#stats").inner_text()
        log.info(
            "device mode: live in %.1f s; %.1f s streamed: %d scores events, %d bytes sent, %d binary frames; %s",
            took,
            seconds,
            scores,
            sent,
            after["binary"],
            stats,
        )
        assert wire.binary_frames == 0 and wire.events["frame"] == 0, "a picture left the page"
        assert sent < MAX_BYTES, f"{sent} bytes sent in {seconds:.0f} s"
        # analysed frames four a message (fewer where this device is slow), never two sends
        # within 400 ms, so at most 3 in any second (app.js); at least the page's floor of
        # frames (MIN_FPS): how fast this device analyses is the bench's question
        frames = page.evaluate("window.framesSent")
        assert set(frames) <= {1, 2, 3, 4} and frames.count(4) >= len(frames) / 2, frames
        assert sum(frames) >= MIN_FPS * seconds, f"only {sum(frames)} frames in {seconds:.0f} s"
        assert max_per_second(page.evaluate("window.scoresAt")) <= 3
        page.screenshot(path=str(ARTIFACTS / "device-live-en.png"))

        # the care setting: analyse on the server from now on; frames flow, and are seen
        page.select_option("#set-analysis", "server")
        page.wait_for_selector('#status[data-state="live"][data-analysis="server"]', timeout=20_000)
        assert page.locator("#status").inner_text() == "Live · analysed on the server"
        page.wait_for_function("() => !document.getElementById('backend-select').disabled")
        deadline = time.monotonic() + 10
        while wire.binary_frames < 5 and time.monotonic() < deadline:
            page.wait_for_timeout(200)
        assert wire.binary_frames >= 5 and wire.events["frame"] >= 5, "server mode sends frames"
        assert device_sessions(page, device_server) == (1, 0)  # a frame takes one of the server's places
        assert page.evaluate("localStorage.getItem('emocare.analysis')") == "server"
        assert_clean(page, problems)

        # remembered: a new page starts in server mode and never asks for the device's files
        page.close()
        page = context.new_page()
        problems = watch(page)
        wire = Wire(page)
        fetched.clear()
        page.on("request", lambda r: fetched.append(r.url) if "/device/" in r.url else None)
        start_camera(page, device_server.url + "/?lang=en")
        assert page.locator("#set-analysis").input_value() == "server"
        assert page.locator("#consent-server").is_visible()
        page.wait_for_selector('#status[data-state="live"][data-analysis="server"]', timeout=20_000)
        assert fetched == []
        assert device_sessions(page, device_server) == (1, 0)  # asked for a server place

        # and back to this device while live: the pictures stop
        page.locator("#settings summary").click()
        page.select_option("#set-analysis", "device")
        page.wait_for_selector('#status[data-state="live"][data-analysis="device"]', timeout=LIVE_WITHIN_MS)
        sent_frames = wire.binary_frames
        scores = wire.events["scores"]
        page.wait_for_timeout(3_000)
        assert sent_frames > 0 and wire.binary_frames == sent_frames and wire.events["scores"] > scores
        assert device_sessions(page, device_server) == (1, 1)  # moved by its first scores
        assert_clean(page, problems)


@pytest.mark.parametrize("emotion", ["fear", "sad", "angry", "disgust", "neutral", "happy"])
def test_care_on_this_device_as_on_the_server(held_faces, device_server, tmp_path, emotion):
    """The same real faces as the server-mode care tests: a frightened, sad, angry or disgusted
    face held gets a care card within 5 s of the page showing that mood; a neutral or happy
    face none in 8 s (at most the occasional encouragement for a lasting smile). Only scores
    leave the page."""
    with watch_face(held_faces, emotion, tmp_path) as context:
        page = context.new_page()
        problems = watch(page)
        wire = Wire(page)
        go_live_on_device(page, device_server.url + "/?lang=en")
        page.wait_for_selector(f'#dominant[data-emotion="{emotion}"]', timeout=20_000)
        shown = time.monotonic()
        card = page.locator("#care")
        if emotion in ("neutral", "happy"):
            page.wait_for_timeout(8_000)
            if emotion == "neutral" or card.is_hidden():
                assert card.is_hidden()
            else:
                assert (card.get_attribute("data-kind"), card.get_attribute("data-emotion")) == ("encourage", "happy")
            assert page.locator("#dominant").get_attribute("data-emotion") == emotion
        else:
            page.wait_for_selector("#care:not([hidden])", timeout=15_000)
            waited = time.monotonic() - shown
            log.info("device mode, %s: care card %.1f s after the mood was shown", emotion, waited)
            assert card.get_attribute("data-emotion") == emotion
            assert waited <= 5.0, f"the care card came {waited:.1f} s after {emotion} was first shown"
            page.screenshot(path=str(ARTIFACTS / f"device-care-{emotion}.png"))
        assert page.locator("#status").get_attribute("data-analysis") == "device"
        log.info("device mode, %s: %d scores events, %d bytes sent", emotion, wire.events["scores"], wire.sent)
        assert wire.binary_frames == 0 and wire.events["frame"] == 0 and wire.events["scores"] > 0
        assert_clean(page, problems)


def test_a_page_whose_wasm_is_blocked_falls_back_to_the_server_and_says_so(browser, device_server):
    """The runtime's wasm cannot be fetched: the page says, in Chinese, that this device could
    not run the analysis, analyses on the server instead (frames flow, the face is read) and
    says so while live; the setting still says what the person chose."""
    page = browser.new_page()
    problems = watch(page)
    wire = Wire(page)
    page.route(re.compile(r".*\.wasm$"), lambda route: route.abort())
    page.goto(device_server.url + "/?lang=zh-CN")
    page.evaluate(RECORD_STATUS)
    assert page.locator("#set-analysis option[value=device]").text_content() == "在本机上（画面不离开此浏览器）"
    assert "不会离开这个浏览器" in page.locator("#consent-device").text_content()
    page.locator("#consent-check").check()
    page.locator("#start").click()
    page.wait_for_selector('#status[data-state="live"][data-analysis="server"]', timeout=LIVE_WITHIN_MS)
    assert page.locator("#status").inner_text() == "实时分析中 · 本机无法运行分析，改在服务器上分析"
    assert "本机分析失败" in page.locator("#backend").inner_text()
    seen = page.evaluate("window.statusSeen")
    assert any(s.startswith("loading_device:正在把分析模型加载到本机") for s in seen), seen
    page.wait_for_selector('#dominant[data-emotion="happy"]', timeout=20_000)
    assert "开心" in page.locator("#dominant").inner_text()
    assert device_sessions(page, device_server) == (1, 0)  # its frames need a server place
    assert wire.binary_frames > 0 and wire.events["scores"] == 0  # the server analyses frames
    assert page.locator("#set-analysis").input_value() == "device"
    page.screenshot(path=str(ARTIFACTS / "device-fallback-zh-CN.png"))
    assert_clean(page, problems)
