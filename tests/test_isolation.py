"""Cross-origin isolation (``CROSS_ORIGIN_ISOLATION``): off by default, and when on, the pages
are isolated and nothing they load is refused.

Isolation (COOP ``same-origin``, always sent, with COEP ``require-corp``) is what lets
onnxruntime-web run two wasm threads; ``require-corp`` refuses any subresource of another
origin that does not opt in, so the browser test loads every page and the analysis on the
device under it, and fails on any console error or failed request.
"""

from __future__ import annotations

import base64

import cv2
import pytest

from bench.common import ServerProcess
from emocare.vision import samples

from .conftest import ARTIFACTS, chromium, close_app, make_app

COEP = "Cross-Origin-Embedder-Policy"


@pytest.mark.parametrize("isolated", [False, True])
def test_coep_is_sent_only_when_configured(tmp_path, isolated):
    app = make_app(tmp_path, CROSS_ORIGIN_ISOLATION=isolated)
    try:
        client = app.test_client()
        manifest = client.get("/device/manifest.json").get_json()
        for url in [
            "/",
            "/history/",
            "/static/js/app.js",
            manifest["runtime"]["module"],
            manifest["classifier"]["card"],
        ]:
            response = client.get(url)
            response.close()  # a static file's handle
            assert response.status_code == 200, url
            assert response.headers["Cross-Origin-Opener-Policy"] == "same-origin"
            if isolated:
                assert response.headers[COEP] == "require-corp", url
                assert response.headers["Cross-Origin-Resource-Policy"] == "same-origin", url
            else:
                assert COEP not in response.headers, url
    finally:
        close_app(app)


ANALYSE = """async ([w, h, b64]) => {
    const m = await import('/static/js/analyzer.js');
    const analyzer = await m.loadAnalyzer({ threads: 2 });
    const data = Uint8ClampedArray.from(atob(b64), (c) => c.charCodeAt(0));
    const boxes = await analyzer.detect(m.rgbFromRGBA(data, w, h), w, h);
    return { isolated: self.crossOriginIsolated, faces: boxes.length };
}"""


@pytest.mark.browser
@pytest.mark.server
def test_isolated_pages_load_everything_and_analyse_on_two_threads(fake_camera, tmp_path):
    server = ServerProcess("gunicorn", {"EMOCARE_CROSS_ORIGIN_ISOLATION": "true"}, log_dir=ARTIFACTS)
    problems: list[str] = []
    try:
        with chromium(fake_camera, tmp_path / "profile") as context:
            context.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
            context.on("requestfailed", lambda r: problems.append(f"{r.url} failed: {r.failure}"))
            context.on("response", lambda r: problems.append(f"{r.url}: {r.status}") if r.status >= 400 else None)
            page = context.new_page()
            for path in ["/history/", "/help", "/?lang=en"]:
                page.goto(server.url + path)
                page.wait_for_load_state("networkidle")
            assert page.evaluate("self.crossOriginIsolated") is True
            # the live page goes on streaming as before
            page.locator("#consent-check").check()
            page.locator("#start").click()
            page.wait_for_function("() => document.getElementById('stats').textContent.includes('fps')", timeout=20_000)
            assert page.locator("#status").get_attribute("data-state") == "live"
            # and its analysis on the device starts its runtime on two threads, and finds the face
            frame = samples.camera_frame(samples.astronaut(), (320, 240))
            rgba = base64.b64encode(cv2.cvtColor(frame, cv2.COLOR_BGR2RGBA).tobytes()).decode()
            assert page.evaluate(ANALYSE, [320, 240, rgba]) == {"isolated": True, "faces": 1}
    finally:
        server.stop()
    assert problems == [], problems
