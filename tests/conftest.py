"""Shared fixtures: the app (flaskr style), real face images, real servers, a fake camera."""

from __future__ import annotations

import contextlib
import functools
import http.server
import os
import re
import shutil
import sqlite3
import subprocess
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest
import socketio

from bench.common import ServerProcess
from deploy.services import Postgres, Redis
from emocare import create_app
from emocare.extensions import socketio as _socketio
from emocare.vision import samples
from emocare.vision.samples import place_on_canvas, to_jpeg

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT / "tests" / "artifacts"
#: The shared labelled faces (never copied into the repository: their licences forbid it).
EXPRESSIONS = Path(os.environ.get("EMOCARE_DATA") or ROOT.parent / "shared" / "datasets" / "expressions")
SAMPLE = ROOT / "tests" / "data" / "validation_sample.tsv"


# --- the Flask app ---------------------------------------------------------------------------


def make_app(tmp_path, **overrides):
    """A testing app whose instance folder (speech cache, preferences) is a temporary one."""
    app = create_app("testing", INSTANCE_PATH=str(tmp_path / "instance"), **overrides)
    # DeepFace's folder is empty here, as on any machine that cannot download its weights
    app.config["DEEPFACE_HOME"] = str(tmp_path / "deepface")
    return app


class FakeClock:
    """The live stream's clock, advanced by hand: timing tests run at once, without sleeping."""

    def __init__(self, start: float = 1_800_000_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def stream_frames(sio, jpeg, seconds: float, clock: FakeClock, fps: float = 10.0, until=None) -> list[dict]:
    """Be a page streaming ``jpeg`` for ``seconds`` of the fake clock; the messages received.

    Stops early, after the message for which ``until(message)`` is true.
    """
    received = []
    for seq in range(round(seconds * fps)):
        sio.emit("frame", {"seq": seq, "image": jpeg})
        batch = sio.get_received()
        received += batch
        if until is not None and any(until(m) for m in batch):
            break
        clock.advance(1 / fps)
    return received


def close_app(app) -> None:
    """Stop an app's background work: the inference pool and the history writer."""
    services = app.extensions["emocare"]
    services.offload.shutdown()
    services.speech.close()
    services.history.close()
    services.history.store.engine.dispose()


@pytest.fixture
def app(tmp_path):
    app = make_app(tmp_path)
    yield app
    close_app(app)


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def socketio_client(app, client):
    sio = _socketio.test_client(app, flask_test_client=client)
    yield sio
    if sio.is_connected():
        sio.disconnect()


def page_of(app, profile: str | None = "mei"):
    """A browser's HTTP and Socket.IO clients; ``profile``: the cookie the server would have
    issued (None: a client without one). The handshake carries the HTTP client's cookies."""
    client = app.test_client()
    if profile is not None:
        client.set_cookie("emocare_profile", profile)
    return client, _socketio.test_client(app, flask_test_client=client)


def form_token(client, url: str = "/history/") -> str:
    """The CSRF token the history page puts in its forms, as a browser would submit it
    (``client``: a Flask test client, or a ``requests`` session with the server's ``url``)."""
    page = client.get(url).text
    match = re.search(r'name="csrf_token" value="([0-9a-f]*)"', page)
    assert match, "the history page has no CSRF token in its forms"
    return match.group(1)


@contextlib.contextmanager
def unwritable(store, error: str = "database or disk is full") -> Iterator[None]:
    """Every history write fails, as SQLite's do on a full disk, until the block ends."""

    def refuse(batch):
        raise sqlite3.OperationalError(error)

    store.write_batch = refuse
    try:
        yield
    finally:
        del store.write_batch  # the store's own method again


# --- real images -----------------------------------------------------------------------------


@pytest.fixture(scope="session")
def astronaut() -> np.ndarray:
    """Eileen Collins' NASA portrait (public domain, ships inside scikit-image), as BGR."""
    return samples.astronaut()


@pytest.fixture(scope="session")
def astronaut_frame(astronaut) -> np.ndarray:
    """The portrait on a 320×240 frame, as the browser sends it."""
    return place_on_canvas(astronaut, (320, 240))


@pytest.fixture(scope="session")
def astronaut_jpeg(astronaut_frame) -> bytes:
    return to_jpeg(astronaut_frame)


@pytest.fixture(scope="session")
def no_face_jpeg() -> bytes:
    """A real photograph with no face in it (a coffee cup, from scikit-image)."""
    return to_jpeg(cv2.resize(samples.coffee(), (320, 240)))


@pytest.fixture(scope="session")
def expressions() -> Path:
    """The shared labelled faces; CI always has them beside the clone."""
    if not EXPRESSIONS.is_dir():
        message = f"the shared labelled faces are not at {EXPRESSIONS} (set EMOCARE_DATA)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return EXPRESSIONS


@pytest.fixture(scope="session")
def validation_sample(expressions) -> list[tuple[str, Path]]:
    """The fixed labelled sample of validation: 20 faces a class, 12 of them photos where any."""
    rows = [line.split("\t") for line in SAMPLE.read_text().splitlines() if line and not line.startswith("#")]
    return [(label, expressions / path) for label, path in rows]


@pytest.fixture(scope="session")
def sample_dir(tmp_path_factory, validation_sample) -> Path:
    """The sample as ``<label>/<image>`` links, the layout ``emocare evaluate`` reads."""
    return link_labelled(validation_sample, tmp_path_factory.mktemp("sample"))


@pytest.fixture(scope="session")
def named_sample_dir(tmp_path_factory, validation_sample) -> Path:
    """The sample as ``<label>/<image>`` links under the images' own names, by which the FER+
    votes know them (``emocare evaluate --votes``)."""
    root = tmp_path_factory.mktemp("named-sample")
    for label, path in validation_sample:
        (root / label).mkdir(exist_ok=True)
        (root / label / path.name).symlink_to(path)
    return root


@pytest.fixture(scope="session")
def small_set(tmp_path_factory, validation_sample, expressions) -> Path:
    """The sample laid out as the shared folder is, ``<source>/<label>/<image>`` links, with the
    FER+ votes beside them: a small real set for ``emocare train`` and the data loader."""
    from emocare.training import votes

    root = tmp_path_factory.mktemp("faces")
    for label, path in validation_sample:
        source = path.parts[-3]
        (root / source / label).mkdir(parents=True, exist_ok=True)
        (root / source / label / path.name).symlink_to(path)
    (root / votes.VOTES_FILE).symlink_to(expressions / votes.VOTES_FILE)
    return root


def page_frame(frame: np.ndarray) -> np.ndarray:
    """A 640×480 camera frame at the 320×240 the page sends."""
    return cv2.resize(frame, (320, 240), interpolation=cv2.INTER_AREA)


def read_as_labelled(validation_sample) -> dict[str, tuple[np.ndarray, object]]:
    """Per emotion, the first photo of the fixed validation sample (FER2013 crops aside) that
    the model reads as that emotion at the page's size: its 640×480 camera frame and that face."""
    from emocare.vision import build_analyzer

    analyzer = build_analyzer("emocare")
    chosen: dict[str, tuple[np.ndarray, object]] = {}
    for label, path in validation_sample:
        image = cv2.imread(str(path))
        if label in chosen or path.parts[-3] == "fer2013_train" or image is None:
            continue
        frame = samples.camera_frame(image)
        faces = analyzer.analyze(page_frame(frame))
        if len(faces) == 1 and faces[0].dominant == label:
            chosen[label] = (frame, faces[0])
    return chosen


def poser_read_sad(expressions: Path) -> dict[str, list[np.ndarray]]:
    """A JAFFE validation poser whose sad photos the model reads as sad at the page's size:
    their photos by label, as 640×480 camera frames, so that a relaxed face and a sad one of
    the same person can be told apart after calibrating on the first."""
    from emocare.training.data import index
    from emocare.vision import build_analyzer

    paths, _labels, sources, is_val = index(expressions)
    analyzer = build_analyzer("emocare")
    by_poser: dict[str, dict[str, list[np.ndarray]]] = {}
    for path in sorted(str(p) for p in paths[(sources == "jaffe") & is_val]):
        _source, label, name = path.split("/")
        frame = samples.camera_frame(cv2.imread(str(expressions / path)))
        by_poser.setdefault(name.split(".")[0], {}).setdefault(label, []).append(frame)
    for photos in by_poser.values():
        sad = [analyzer.analyze(page_frame(f)) for f in photos.get("sad", [])]
        if len(photos.get("neutral", [])) >= 2 and sad and all(len(s) == 1 and s[0].dominant == "sad" for s in sad):
            return photos
    pytest.fail("no JAFFE validation poser whose sad photos read as sad")


def link_labelled(rows, root: Path) -> Path:
    """Link (label, path) rows into ``root/<label>/<source>-<file>``; returns ``root``."""
    for label, path in rows:
        (root / label).mkdir(exist_ok=True)
        (root / label / f"{path.parts[-3]}-{path.name}").symlink_to(path)
    return root


def make_video(folder: Path, still: np.ndarray, name: str, seconds: int = 3) -> Path:
    """A y4m video of one still frame, made with ffmpeg, for Chromium's fake camera."""
    ffmpeg = shutil.which("ffmpeg")
    if ffmpeg is None:
        pytest.fail("ffmpeg is required for the browser test (apt-get install -y ffmpeg)")
    image = folder / f"{name}.png"
    cv2.imwrite(str(image), still)
    video = folder / f"{name}.y4m"
    command = [ffmpeg, "-loglevel", "error", "-y", "-loop", "1", "-i", str(image), "-t", str(seconds), "-r", "15"]
    subprocess.run([*command, "-pix_fmt", "yuv420p", str(video)], check=True)
    return video


# --- real servers ----------------------------------------------------------------------------


@pytest.fixture
def start_server() -> Iterator[Callable[..., ServerProcess]]:
    started: list[ServerProcess] = []

    def _start(kind: str = "gunicorn", **env) -> ServerProcess:
        server = ServerProcess(kind, env, log_dir=ARTIFACTS)
        started.append(server)
        return server

    yield _start
    for server in started:
        server.stop()


def stream(url: str, profile: str, seconds: float, jpeg: bytes) -> tuple[int, float]:
    """Be a live page for ``seconds`` (or until the server goes away): returns the results
    received and when the last came. ``url`` may be nginx's HTTPS one (self-signed)."""
    sio = socketio.Client(reconnection=False, ssl_verify=False)
    got = threading.Event()
    last = [0.0]
    count = [0]

    def on_result(_msg):
        count[0] += 1
        last[0] = time.time()
        got.set()

    sio.on("result", on_result)
    # the cookie the server issued to this page (POST /profile) comes with the handshake
    sio.connect(url, headers={"Cookie": f"emocare_profile={profile}"}, transports=["websocket"], wait_timeout=10)
    sio.emit("configure", {"locale": "en"})
    end = time.monotonic() + seconds
    seq = 0
    while time.monotonic() < end and sio.connected:
        got.clear()
        seq += 1
        try:
            sio.emit("frame", {"seq": seq, "image": jpeg})
        except socketio.exceptions.SocketIOError:  # the server died under the page
            break
        got.wait(2)
        time.sleep(0.08)
    sio.disconnect()
    return count[0], last[0]


# --- real PostgreSQL and Redis ---------------------------------------------------------------


@pytest.fixture(scope="session")
def postgres() -> Iterator[Postgres]:
    """A PostgreSQL server of the tests' own (Debian's package, ``make system-deps-test``).

    Its folder is made outside pytest's private temporary folder, which the ``postgres``
    user the server runs as (when the tests run as root) could not enter.
    """
    folder = Path(tempfile.mkdtemp(prefix="emocare-pg-"))
    folder.chmod(0o755)
    server = Postgres(folder)
    server.start()
    yield server
    server.stop()
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory) -> Iterator[Redis]:
    server = Redis(tmp_path_factory.mktemp("redis"))
    server.start()
    yield server
    server.stop()


def fresh_database(postgres: Postgres) -> str:
    """The URL of a new, empty database on the tests' PostgreSQL: each test its own."""
    return postgres.create_database(f"test_{uuid.uuid4().hex[:12]}")


# --- a fake camera for the browser -----------------------------------------------------------


@pytest.fixture(scope="session")
def fake_camera(tmp_path_factory, astronaut) -> Path:
    """A few seconds of y4m video of the astronaut portrait, made with ffmpeg, for Chromium."""
    still = place_on_canvas(astronaut, (640, 480), face_height=0.9)
    return make_video(tmp_path_factory.mktemp("camera"), still, "astronaut")


# --- Debian's Chromium with the fake camera ----------------------------------------------------

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


@contextlib.contextmanager
def chromium(camera: Path, profile: Path, **options):
    """Debian's Chromium, headless, whose webcam plays ``camera`` (a y4m video); ``options``
    go to Playwright's ``launch_persistent_context`` (``device_scale_factor=2``)."""
    if not Path(CHROMIUM).exists():
        pytest.fail("Debian's chromium is required (apt-get install -y chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        context = pw.chromium.launch_persistent_context(
            str(profile),
            executable_path=CHROMIUM,
            headless=True,
            viewport={"width": 1200, "height": 800},
            **options,
            args=[
                "--use-fake-ui-for-media-stream",
                "--use-fake-device-for-media-stream",
                f"--use-file-for-fake-video-capture={camera}",
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


@pytest.fixture
def browser(fake_camera: Path, tmp_path: Path):
    """Chromium with the fake camera; every page it opens must run without breaking the
    server's Content-Security-Policy (a violation is a console error, not an exception)."""
    with chromium(fake_camera, tmp_path / "profile") as context:
        violations: list[str] = []
        context.on("console", lambda m: violations.append(m.text) if "Content Security Policy" in m.text else None)
        yield context
        assert violations == [], violations


def start_camera(page, url: str) -> None:
    page.goto(url)
    start = page.locator("#start")
    assert start.is_disabled(), "the camera must not start before consent"
    page.locator("#consent-check").check()
    start.click()


def overlay_has_drawing(page) -> bool:
    """Whether anything (a face's box, its label) is drawn over the video."""
    return page.evaluate(
        """() => {
            const c = document.getElementById('overlay');
            if (!c.width || !c.height) return false;
            const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
            for (let i = 3; i < d.length; i += 4) if (d[i] > 0) return true;
            return false;
        }"""
    )


# --- a real face held in front of the fake camera ----------------------------------------------


@pytest.fixture(scope="session")
def held_faces(validation_sample) -> dict[str, np.ndarray]:
    """Per emotion, the first photo of the fixed validation sample that the model reads as
    that emotion on a camera frame (the recognition floors are tested in test_model.py;
    the browser tests ask what the page does with each mood, in either analysis mode)."""
    return {label: frame for label, (frame, _face) in read_as_labelled(validation_sample).items()}


def watch_face(held_faces: dict[str, np.ndarray], emotion: str, tmp_path: Path):
    """Chromium whose camera holds the face ``held_faces`` has for ``emotion``."""
    if emotion not in held_faces:
        pytest.fail(f"no {emotion} photo in the validation sample is read as {emotion}")
    camera = make_video(tmp_path, held_faces[emotion], emotion)
    return chromium(camera, tmp_path / "profile")


# --- DeepFace's weights, served ----------------------------------------------------------------


@pytest.fixture(scope="session")
def random_weights_home(tmp_path_factory) -> Path:
    """DeepFace's emotion CNN, built by DeepFace's own code with random weights, saved offline
    where DeepFace looks for it under this home: its weights cannot be had here."""
    from emocare.vision.deepface_backend import weights_path

    home = tmp_path_factory.mktemp("deepface_home")
    path = weights_path(home)
    path.parent.mkdir(parents=True)
    os.environ["DEEPFACE_HOME"] = str(home)  # importing deepface creates $DEEPFACE_HOME/.deepface
    from deepface import DeepFace  # noqa: F401  (first: it switches TensorFlow to tf-keras, as in the app)
    from deepface.commons import weight_utils
    from deepface.models.demography.tf import Emotion

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("DEEPFACE_HOME", str(home))
        mp.setattr(weight_utils, "download_weights_if_necessary", lambda **_: str(path))
        mp.setattr(weight_utils, "load_model_weights", lambda model, weight_file: model)
        model = Emotion.load_model()
    model.save_weights(str(path))
    return home


class _Files(http.server.SimpleHTTPRequestHandler):
    """A folder over HTTP, each file sent in 256 KB pieces ``pause_s`` apart (a slow line)."""

    pause_s = 0.0

    def copyfile(self, source, outputfile):
        try:
            while piece := source.read(256 * 1024):
                outputfile.write(piece)
                outputfile.flush()
                time.sleep(self.pause_s)
        except ConnectionError:  # the client gave up (a bounded wait): nothing to report
            pass

    def log_message(self, *args):  # the test's output is pytest's, not the server's
        pass


@contextlib.contextmanager
def serve_files(folder: Path, pause_s: float = 0.0) -> Iterator[str]:
    """An HTTP server on 127.0.0.1 serving ``folder``; yields its base URL."""
    handler = type("Files", (_Files,), {"pause_s": pause_s})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(handler, directory=str(folder)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
