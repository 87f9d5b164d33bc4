"""Analysis on the device: the page's JavaScript port against the Python analyzer it copies.

static/js/analyzer.js re-writes the server's detection, crop geometry, calibration and flip
choice for onnxruntime-web. What it computes is checked here where it will run: Debian's
headless Chromium, on the live page of a real server (so its Content-Security-Policy and the
files the server offers are the real ones), on the fixed validation sample of labelled faces
placed in 320×240 camera frames. Each frame's pixels go to the page exactly (as RGBA), so
what is compared is the analysis, not two JPEG decoders. Also: the assets are served as the
page needs them, and BlazeFace's ONNX is made again, byte for byte, on a fresh clone.
"""

from __future__ import annotations

import base64
import gzip
import importlib.util
import logging
import statistics
import subprocess
import sys

import cv2
import numpy as np
import pytest

from bench.common import ServerProcess
from emocare.vision import EMOTIONS, build_analyzer
from emocare.vision.blazeface import BlazeFaceCascade, BlazeFaceDetector
from emocare.vision.emocare_backend import EmoCareAnalyzer, EmoCareClassifier
from emocare.vision.samples import camera_frame, face_free, scene

from .conftest import ARTIFACTS, ROOT, chromium

log = logging.getLogger(__name__)

#: the page's frame size (app.js FRAME_WIDTH) for the validation faces
FRAME = (320, 240)
AGREEMENT = 0.99
MAX_SCORE_DIFF = 0.01


# --- the files the page fetches ----------------------------------------------------------------


def test_the_device_assets_are_served_cached_and_compressed(client):
    """The manifest names content-addressed URLs; each is served with a year-long immutable
    cache, gzip-compressed when asked, and a stale digest is gone rather than served."""
    response = client.get("/device/manifest.json")
    assert response.status_code == 200 and response.headers["Cache-Control"] == "no-cache"
    manifest = response.get_json()
    urls = [
        manifest["classifier"]["model"],
        manifest["classifier"]["card"],
        manifest["detector"]["short"],
        manifest["detector"]["full"],
        manifest["runtime"]["module"],
        manifest["runtime"]["wasm_path"] + "ort-wasm-simd-threaded.wasm",
    ]
    card = client.get(manifest["classifier"]["card"]).get_json()
    assert card["labels"] == list(EMOTIONS)
    for url in urls:
        plain = client.get(url)
        packed = client.get(url, headers={"Accept-Encoding": "gzip, deflate, br"})
        assert plain.status_code == packed.status_code == 200, url
        assert packed.headers["Content-Encoding"] == "gzip" and "Content-Encoding" not in plain.headers
        assert gzip.decompress(packed.data) == plain.data
        assert plain.headers["Cache-Control"] == "public, max-age=31536000, immutable"
    wasm = client.get(urls[-1])
    assert wasm.mimetype == "application/wasm" and wasm.data[:4] == b"\0asm"
    assert client.get(urls[-2]).mimetype == "text/javascript"
    stale = manifest["classifier"]["model"].rsplit(".", 2)
    assert client.get(f"{stale[0]}.0000000000000000.{stale[2]}").status_code == 404
    assert client.get("/device/runtime/1.30.0/VERSION").status_code == 404


@pytest.mark.server
def test_blazeface_onnx_is_made_again_on_a_fresh_clone(tmp_path):
    """scripts/blazeface_onnx.py, run in a clean clone whose ONNX files were deleted, makes
    exactly the committed files from the wheel's tflite (tf2onnx: make test installs it)."""
    if importlib.util.find_spec("tf2onnx") is None:  # imported by the script alone: it loads TensorFlow
        pytest.fail("tf2onnx is not installed: `make test` installs it (pip install --no-deps tf2onnx==1.17.0)")
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "--quiet", str(ROOT), str(clone)], check=True)
    models = clone / "src" / "emocare" / "vision" / "models"
    for name in ("blazeface_short_range.onnx", "blazeface_full_range.onnx"):
        (models / name).unlink()
    subprocess.run([sys.executable, "scripts/blazeface_onnx.py"], cwd=clone, check=True, capture_output=True)
    changed = subprocess.run(
        ["git", "status", "--porcelain", "--", str(models)], cwd=clone, check=True, capture_output=True, text=True
    )
    assert changed.stdout == "", f"the conversion made other files than the committed ones:\n{changed.stdout}"


# --- parity in the browser ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def frames(validation_sample) -> list[tuple[str, str, np.ndarray]]:
    """(label, name, 320×240 BGR frame) for every face of the fixed sample, framed by a webcam."""
    out = []
    for label, path in validation_sample:
        image = cv2.imread(str(path))
        assert image is not None, path
        frame = cv2.resize(camera_frame(image), FRAME, interpolation=cv2.INTER_AREA)
        out.append((label, f"{path.parts[-3]}/{path.name}", frame))
    return out


@pytest.fixture(scope="module")
def device_server():
    server = ServerProcess("gunicorn", {}, log_dir=ARTIFACTS)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def device_page(device_server, tmp_path_factory, fake_camera):
    """The live page of a real server, with the analyzer loaded twice: as the card chose
    (flip off) and the other way (flip averaging, with the card's calibration for it)."""
    with chromium(fake_camera, tmp_path_factory.mktemp("profile")) as context:
        page = context.new_page()
        problems: list[str] = []
        page.on("pageerror", lambda exc: problems.append(str(exc)))
        page.on("console", lambda m: problems.append(m.text) if "Content Security Policy" in m.text else None)
        page.goto(device_server.url + "/?lang=en")
        page.evaluate(
            """async () => {
                const m = await import('/static/js/analyzer.js');
                window.analyzers = {
                    card: await m.loadAnalyzer(),
                    flip: await m.loadAnalyzer({ flip: true }),
                };
            }"""
        )
        yield page, problems


#: (source width, height, channels) → (destination width, height): every path of
#: cv2.resize(INTER_AREA) the page takes: integer and fractional shrinking, uneven crops, and
#: the bilinear emulation when a small face's crop is enlarged to 64 px
RESIZES = [
    ((320, 240, 3), (128, 96)),
    ((640, 480, 3), (128, 96)),
    ((640, 480, 3), (192, 144)),
    ((320, 240, 3), (192, 144)),
    ((121, 120, 1), (64, 64)),
    ((64, 64, 1), (48, 48)),
    ((65, 64, 1), (64, 64)),
    ((64, 63, 1), (64, 64)),
    ((50, 51, 1), (64, 64)),
    ((30, 30, 1), (64, 64)),
]


def test_the_page_resizes_greys_and_crops_as_opencv_does(device_page, frames):
    """The building blocks, pixel for pixel: INTER_AREA on every path, BGR→grey, and
    square_crop (margins, rounding, padding with the bottom rows' mean where the box leaves
    the frame), on a real camera frame."""
    from emocare.vision.fer_backend import square_crop

    page, _problems = device_page
    frame = frames[0][2]
    rgba = cv2.cvtColor(frame, cv2.COLOR_BGR2RGBA)
    gray = cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)
    run = """async ([fn, args]) => {
        const m = await import('/static/js/analyzer.js');
        const bytes = (b64) => Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
        const out = fn === 'resize' ? m.resizeArea(bytes(args[0]), ...args.slice(1))
            : fn === 'gray' ? m.grayFromRGBA(bytes(args[0]), ...args.slice(1))
            : m.squareCrop(bytes(args[0]), ...args.slice(1)).data;
        let text = '';
        for (const v of out) text += String.fromCharCode(v);
        return btoa(text);
    }"""

    def js(fn, image, *args):
        return np.frombuffer(
            base64.b64decode(page.evaluate(run, [fn, [base64.b64encode(image.tobytes()).decode(), *args]])), np.uint8
        )

    assert np.array_equal(js("gray", rgba, *FRAME), gray.ravel())
    for (w, h, channels), (dw, dh) in RESIZES:
        source = cv2.resize(frame, (w, h), interpolation=cv2.INTER_AREA)
        source = source if channels == 3 else cv2.cvtColor(source, cv2.COLOR_BGR2GRAY)
        want = cv2.resize(source, (dw, dh), interpolation=cv2.INTER_AREA)
        assert np.array_equal(js("resize", source, w, h, channels, dw, dh), want.ravel()), (w, h, channels, dw, dh)
    for box in [(100, 50, 77, 77), (-20, -5, 90, 90), (250, 180, 100, 100), (0, 0, 320, 240), (133, 71, 57, 57)]:
        want = square_crop(gray, box, 0.1)
        assert np.array_equal(js("crop", gray, *FRAME, list(box), 0.1), want.ravel()), box


def browser_analyze(page, frame: np.ndarray, which: str) -> tuple[list[dict], float]:
    rgba = cv2.cvtColor(frame, cv2.COLOR_BGR2RGBA)
    return page.evaluate(
        """async ([which, w, h, b64]) => {
            const bytes = Uint8ClampedArray.from(atob(b64), (c) => c.charCodeAt(0));
            const start = performance.now();
            const faces = await window.analyzers[which].analyze({ data: bytes, width: w, height: h });
            return [faces, performance.now() - start];
        }""",
        [which, frame.shape[1], frame.shape[0], base64.b64encode(rgba.tobytes()).decode()],
    )


def compare(python_faces, browser_faces) -> tuple[bool, bool, float]:
    """(same boxes, same top label for every face, largest score difference) for one frame;
    a frame where one side finds a face the other does not agrees on nothing."""
    if len(python_faces) != len(browser_faces):
        return False, False, 1.0
    pairs = list(zip(python_faces, browser_faces, strict=True))
    same_boxes = all(tuple(p.box) == tuple(b["box"]) for p, b in pairs)
    same_top = all(p.dominant == max(b["scores"], key=b["scores"].get) for p, b in pairs)
    diff = max((abs(p.scores[e] - b["scores"][e]) for p, b in pairs for e in EMOTIONS), default=0.0)
    return same_boxes, same_top, diff


@pytest.mark.browser
@pytest.mark.server
@pytest.mark.parametrize("which", ["card", "flip"])
def test_the_page_analyses_faces_as_the_server_does(device_page, frames, which):
    """Argmax agreement ≥ 99% and no score more than 0.01 apart, over the fixed validation
    sample, between analyzer.js in Chromium and the Python analyzer (BlazeFace cascade and
    EmoCare's model; with and without flip averaging)."""
    page, problems = device_page
    # the server's analyzer without its Haar second opinion, which the page does not have;
    # the default one (with it) is compared as well, and must agree as often
    flip = None if which == "card" else True
    port = EmoCareAnalyzer(BlazeFaceCascade(confirm=None), EmoCareClassifier(tta=flip))
    default = build_analyzer("emocare", tta=flip)
    agree = agree_default = boxes = 0
    diffs, times, found = [], [], 0
    for _label, name, frame in frames:
        browser_faces, ms = browser_analyze(page, frame, which)
        times.append(ms)
        same_boxes, same_top, diff = compare(port.analyze(frame), browser_faces)
        agree += same_top
        boxes += same_boxes
        agree_default += compare(default.analyze(frame), browser_faces)[1]
        found += bool(browser_faces)
        diffs.append((diff, name))
    n = len(frames)
    worst = max(diffs)
    log.info(
        "%s: %d frames, faces in %d, same boxes %d, same top label %d (default analyzer %d), "
        "largest score difference %.2g (%s), page %.1f ms a frame p50",
        which,
        n,
        found,
        boxes,
        agree,
        agree_default,
        worst[0],
        worst[1],
        statistics.median(times),
    )
    assert problems == []
    assert found >= 0.95 * n, f"the page found faces in only {found} of {n} frames"
    assert agree >= AGREEMENT * n, f"same top label on {agree} of {n} frames"
    assert agree_default >= AGREEMENT * n, f"same top label as the default analyzer on {agree_default} of {n}"
    assert worst[0] <= MAX_SCORE_DIFF, f"scores differ by {worst[0]:.4f} on {worst[1]}"


def scenes() -> list[tuple[str, np.ndarray]]:
    """Frames that take the other paths: faces too small for the short-range model (the
    full-range one then runs; crops enlarged to 64 px), two faces in one batch, 640×480
    frames (integer-scale shrinking), boxes leaving the frame, and pictures with no face."""
    out = []
    for width, height in ((320, 240), (640, 480)):
        for faces in (1, 2):
            for share in (0.08, 0.1, 0.15, 0.3, 0.8):
                out.append((f"{width}x{height} {faces} face(s) at {share}", scene(share, (width, height), faces)))
    for name, picture in face_free().items():
        out.append((name, cv2.resize(picture, FRAME, interpolation=cv2.INTER_AREA)))
    return out


@pytest.mark.browser
@pytest.mark.server
def test_far_near_two_and_no_faces_are_analysed_as_the_server_does(device_page):
    page, problems = device_page
    port = EmoCareAnalyzer(BlazeFaceCascade(confirm=None), EmoCareClassifier())
    short = BlazeFaceDetector("short")
    full_range = two = none = 0
    for name, frame in scenes():
        python_faces = port.analyze(frame)
        browser_faces, _ms = browser_analyze(page, frame, "card")
        same_boxes, same_top, diff = compare(python_faces, browser_faces)
        assert same_boxes and same_top and diff <= MAX_SCORE_DIFF, (name, python_faces, browser_faces)
        full_range += bool(python_faces) and not short.detect(frame)
        two += len(python_faces) == 2
        none += not python_faces
    log.info("scenes: %d found by the full-range model, %d with two faces, %d with none", full_range, two, none)
    assert full_range >= 4 and two >= 4 and none >= 10
    assert problems == []
