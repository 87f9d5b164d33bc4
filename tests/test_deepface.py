"""The DeepFace backend's real loading code, with its weights downloaded on first use, offline.

DeepFace's weights cannot be had here, so these tests check plumbing, not accuracy: one fixture
builds DeepFace's own emotion architecture with random weights and saves it as DeepFace's
weights file; a local HTTP server on 127.0.0.1 serves that file, and DeepFace's own source URLs
(``Emotion.WEIGHTS_URL``) are pointed at it, or at a port where nothing listens (offline). The
real ``DeepFace.analyze`` path then runs on what was downloaded.
"""

import hashlib
import logging
import socket

import pytest

from emocare.extensions import socketio
from emocare.live import session as session_module
from emocare.vision import EMOTIONS, build_analyzer
from emocare.vision import deepface_backend as backend
from emocare.vision.deepface_backend import BackendUnavailable, ensure_weights, weights_path
from emocare.vision.samples import place_on_canvas

from .conftest import serve_files

# DeepFace builds its Sequential model the Keras-2 way; Keras warns about it, not our code.
pytestmark = pytest.mark.filterwarnings("ignore:Do not pass an `input_shape`:UserWarning")


class Clock:
    """A clock the test moves: ``step`` seconds pass at every reading."""

    def __init__(self, step: float = 0.0):
        self.now, self.step = 1000.0, step

    def __call__(self) -> float:
        self.now += self.step
        return self.now


@pytest.fixture
def dead_url():
    """A URL on 127.0.0.1 where nothing listens: connecting is refused, as offline."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/{backend.WEIGHTS_FILE}"


@pytest.fixture
def sources(monkeypatch, tmp_path):
    """Points DeepFace's own source URLs for the emotion weights at the given list."""
    monkeypatch.setenv("DEEPFACE_HOME", str(tmp_path))  # importing deepface creates $DEEPFACE_HOME/.deepface
    from deepface import DeepFace  # noqa: F401  (first: it switches TensorFlow to tf-keras, as in the app)
    from deepface.models.demography.tf import Emotion

    def point(*urls):
        monkeypatch.setattr(Emotion, "WEIGHTS_URL", list(urls))

    return point


def test_missing_weights_fall_back_to_fer_with_a_clear_message(tmp_path, caplog, astronaut, sources, dead_url):
    sources(dead_url)
    caplog.set_level(logging.WARNING)
    analyzer = build_analyzer("deepface", deepface_home=tmp_path)
    port = dead_url.split(":")[2].split("/")[0]
    expected = (
        f"DeepFace emotion weights not found at {weights_path(tmp_path)} and not downloaded"
        f" (127.0.0.1:{port}: cannot connect): download them or place the file there"
    )
    assert analyzer.name == "fer"
    assert analyzer.notice == expected
    assert expected in caplog.text
    build_analyzer("deepface", deepface_home=tmp_path)  # said once, not on every build
    assert caplog.text.count(expected) == 1
    assert list(weights_path(tmp_path).parent.iterdir()) == []  # no partial file left behind
    [face] = analyzer.analyze(place_on_canvas(astronaut, (320, 240)))
    assert face.dominant == "happy"


@pytest.mark.parametrize("detector", ["emocare", "opencv"])
def test_deepface_runs_offline_on_its_own_architecture(random_weights_home, astronaut, detector):
    analyzer = build_analyzer("deepface", deepface_home=random_weights_home, deepface_detector=detector)
    assert analyzer.name == "deepface"
    analyzer.warm_up()
    faces = analyzer.analyze(place_on_canvas(astronaut, (640, 480)))
    assert len(faces) == 1
    [face] = faces
    assert set(face.scores) == set(EMOTIONS)
    assert sum(face.scores.values()) == pytest.approx(1.0, abs=1e-6)
    x, _, w, _ = face.box
    assert 200 < x + w / 2 < 440 and w > 60  # the portrait's face, not the whole frame


def test_deepface_finds_no_face_in_coffee(random_weights_home):
    from emocare.vision import samples

    analyzer = build_analyzer("deepface", deepface_home=random_weights_home, deepface_detector="opencv")
    assert analyzer.analyze(samples.coffee()) == []


@pytest.fixture
def weights_server(random_weights_home, tmp_path_factory):
    """An HTTP server on 127.0.0.1 serving DeepFace's weights file (its architecture, random
    weights) and a page that is not weights; yields the base URL."""
    root = tmp_path_factory.mktemp("served")
    (root / backend.WEIGHTS_FILE).write_bytes(weights_path(random_weights_home).read_bytes())
    (root / "error.h5").write_text("<html>Please sign in</html>")
    with serve_files(root) as url:
        yield url


def sha256(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_first_use_downloads_the_weights_then_analyses_with_them(
    tmp_path, caplog, monkeypatch, astronaut, random_weights_home, weights_server, sources, dead_url
):
    from deepface.modules import modeling

    # DeepFace keeps one model a process: drop the one built from the fixture's file, so that
    # this analyzer's model is loaded from the file it downloads
    cache = getattr(modeling, "cached_models", {}).get("facial_attribute", {})
    earlier = cache.get("Emotion")
    if earlier is not None:
        monkeypatch.delitem(cache, "Emotion")
    url = f"{weights_server}/{backend.WEIGHTS_FILE}"
    sources(dead_url, url)  # the first source fails, as DeepFace's order allows: the next is tried
    caplog.set_level(logging.INFO, logger="emocare.vision.deepface_backend")
    analyzer = build_analyzer("deepface", deepface_home=tmp_path)
    assert analyzer.name == "deepface" and getattr(analyzer, "notice", None) is None
    path = weights_path(tmp_path)
    assert sha256(path) == sha256(weights_path(random_weights_home))
    assert [p.name for p in path.parent.iterdir()] == [backend.WEIGHTS_FILE]  # no .part left
    size = f"{path.stat().st_size / 1e6:.1f} MB"
    log = caplog.text
    assert f"downloading DeepFace's emotion weights from {dead_url}" in log
    assert f"downloading DeepFace's emotion weights from {url}" in log
    assert all(f"DeepFace's emotion weights: {p}% (" in log for p in (25, 50, 75))
    assert f"DeepFace's emotion weights downloaded: {size} in" in log
    assert modeling.cached_models["facial_attribute"]["Emotion"] is not earlier
    [face] = analyzer.analyze(place_on_canvas(astronaut, (640, 480)))
    assert set(face.scores) == set(EMOTIONS)
    assert sum(face.scores.values()) == pytest.approx(1.0, abs=1e-6)


def test_a_failure_is_remembered_for_a_while_then_tried_again(tmp_path, weights_server, dead_url):
    clock = Clock()
    with pytest.raises(BackendUnavailable, match="cannot connect"):
        ensure_weights(tmp_path, urls=[dead_url], clock=clock)
    good = [f"{weights_server}/{backend.WEIGHTS_FILE}"]
    clock.now += backend.RETRY_AFTER_S - 1  # other worker threads do not wait again
    with pytest.raises(BackendUnavailable, match="cannot connect"):
        ensure_weights(tmp_path, urls=good, clock=clock)
    assert not weights_path(tmp_path).exists()
    clock.now += 2
    assert ensure_weights(tmp_path, urls=good, clock=clock) == weights_path(tmp_path)
    assert weights_path(tmp_path).is_file()


def test_the_wait_is_bounded(tmp_path, weights_server):
    clock = Clock(step=20.0)  # 20 s pass at every reading: the 6 MB never arrive within 120 s
    url = f"{weights_server}/{backend.WEIGHTS_FILE}"
    with pytest.raises(BackendUnavailable) as refused:
        ensure_weights(tmp_path, urls=[url, url], timeout_s=120, clock=clock)
    message = str(refused.value)
    assert "not the whole file" in message and "not tried, the 120 s were spent" in message
    assert list(weights_path(tmp_path).parent.iterdir()) == []


@pytest.mark.parametrize(("name", "reason"), [("error.h5", "is not an HDF5 weights file"), ("missing.h5", "HTTP 404")])
def test_what_is_not_weights_is_refused(tmp_path, weights_server, name, reason):
    with pytest.raises(BackendUnavailable, match=reason):
        ensure_weights(tmp_path, urls=[f"{weights_server}/{name}"], clock=Clock())
    assert list(weights_path(tmp_path).parent.iterdir()) == []


def test_a_mirror_named_in_the_environment_replaces_deepfaces_sources(tmp_path, monkeypatch, weights_server, dead_url):
    monkeypatch.setenv("EMOCARE_DEEPFACE_WEIGHTS_URLS", f"{dead_url} {weights_server}/{backend.WEIGHTS_FILE}")
    assert backend.weights_sources() == [dead_url, f"{weights_server}/{backend.WEIGHTS_FILE}"]
    assert ensure_weights(tmp_path, clock=Clock()).is_file()


def test_a_page_choosing_deepface_hears_the_download_then_analyses_with_it(
    tmp_path, monkeypatch, random_weights_home, astronaut_jpeg, sources, app
):
    from deepface.modules import modeling

    cache = getattr(modeling, "cached_models", {}).get("facial_attribute", {})
    if "Emotion" in cache:
        monkeypatch.delitem(cache, "Emotion")
    served = tmp_path / "served"
    served.mkdir()
    (served / backend.WEIGHTS_FILE).write_bytes(weights_path(random_weights_home).read_bytes())
    size = (served / backend.WEIGHTS_FILE).stat().st_size
    monkeypatch.setattr(session_module, "DOWNLOAD_REPORT_S", 0.1)
    # 256 KB every 40 ms: the 6 MB take about a second, as a slow line takes a minute
    with serve_files(served, pause_s=0.04) as base:
        sources(f"{base}/{backend.WEIGHTS_FILE}")
        page = socketio.test_client(app, flask_test_client=app.test_client())
        page.get_received()
        page.emit("configure", {"backend": "deepface"})
        statuses = [m["args"][0] for m in page.get_received() if m["name"] == "status"]
    downloads = [s["download"] for s in statuses if "download" in s]
    assert statuses[0]["state"] == "warming" and statuses[0]["requested"] == "deepface"
    assert len(downloads) >= 3 and all(s["state"] == "warming" for s in statuses[:-1])
    received = [d["received"] for d in downloads]
    assert received == sorted(received) and 0 < received[0] < size
    assert {d["total"] for d in downloads} == {size}
    assert {d["source"] for d in downloads} == {base.removeprefix("http://")}
    assert statuses[-1]["state"] == "ready" and statuses[-1]["backend"] == "deepface"
    assert statuses[-1].get("notice") is None and "download" not in statuses[-1]
    assert weights_path(app.config["DEEPFACE_HOME"]).stat().st_size == size
    page.emit("frame", {"seq": 1, "image": astronaut_jpeg})
    [result] = [m["args"][0] for m in page.get_received() if m["name"] == "result"]
    assert result["backend"] == "deepface" and len(result["faces"]) == 1
    page.disconnect()
