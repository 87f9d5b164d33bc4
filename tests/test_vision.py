"""Both shipped analyzers on real frames: EmoCare's model (the default) and fer's, on a
public-domain face. Accuracy over all seven expressions is in test_model.py."""

import threading
from pathlib import Path

import cv2
import numpy as np
import pytest

from emocare.vision import EMOTIONS, FrameError, VisionService, build_analyzer, samples
from emocare.vision.samples import camera_frame, place_on_canvas, to_jpeg


@pytest.fixture(scope="module", params=["emocare", "fer"])
def analyzer(request):
    a = build_analyzer(request.param)
    a.warm_up()
    assert a.name == request.param
    return a


@pytest.mark.parametrize("size", [(320, 240), (640, 480)])
def test_astronaut_is_one_happy_face(analyzer, astronaut, size):
    faces = analyzer.analyze(place_on_canvas(astronaut, size))
    assert len(faces) == 1
    face = faces[0]
    assert face.dominant == "happy"
    assert face.scores["happy"] > 0.6
    assert set(face.scores) == set(EMOTIONS)
    assert sum(face.scores.values()) == pytest.approx(1.0, abs=1e-3)
    x, _, w, _ = face.box
    # the face sits in the upper middle of the centred portrait
    assert size[0] * 0.25 < x + w / 2 < size[0] * 0.75
    assert w > size[1] * 0.15


def test_no_face_in_a_photo_of_coffee(analyzer, no_face_jpeg):
    service = VisionService(lambda: analyzer)
    assert service.analyze_bytes(no_face_jpeg).faces == []


def test_corrupt_buffer_is_a_clear_error(analyzer, astronaut_jpeg):
    service = VisionService(lambda: analyzer)
    corrupt = astronaut_jpeg[:10] + b"\x00garbage" * 50
    with pytest.raises(FrameError) as err:
        service.analyze_bytes(corrupt)
    assert err.value.code == "undecodable"


def test_service_reports_time_and_size(astronaut_jpeg):
    service = VisionService(build_analyzer)
    service.warm_up()
    assert service.ready and service.backend == "emocare"
    result = service.analyze_bytes(astronaut_jpeg).to_dict()
    assert result["frame"] == {"width": 320, "height": 240}
    assert result["server_ms"] > 0
    assert result["faces"][0]["dominant"] == "happy"


def test_threads_get_their_own_analyzer_and_agree(astronaut, no_face_jpeg):
    """fer's own wrapper shares one interpreter; ours must give equal answers from 4 threads."""
    service = VisionService(build_analyzer)
    frames = [to_jpeg(place_on_canvas(astronaut, (320, 240))), no_face_jpeg]
    expected = [len(service.analyze_bytes(f).faces) for f in frames]
    happy = service.analyze_bytes(frames[0]).faces[0].scores["happy"]
    results, errors = [], []

    def work():
        try:
            for i in range(40):
                analysis = service.analyze_bytes(frames[i % 2])
                score = analysis.faces[0].scores["happy"] if analysis.faces else None
                results.append((i % 2, len(analysis.faces), score))
        except Exception as exc:  # pragma: no cover - the assertion below reports it
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    assert len(results) == 160
    for kind, count, score in results:
        assert count == expected[kind]
        if score is not None:
            assert score == pytest.approx(happy, abs=1e-6)


@pytest.mark.parametrize(
    "variant",
    [
        pytest.param(lambda f: f[:, ::-1], id="flipped"),
        pytest.param(lambda f: (f * 0.45).astype(np.uint8), id="darkened"),
        pytest.param(
            lambda f: cv2.warpAffine(f, cv2.getRotationMatrix2D((160, 120), 12, 1.0), (320, 240)), id="rotated"
        ),
    ],
)
def test_astronaut_variants_stay_happy(analyzer, astronaut, variant):
    frame = np.ascontiguousarray(variant(place_on_canvas(astronaut, (320, 240))))
    [face] = analyzer.analyze(frame)
    assert face.dominant == "happy"


WEAK_FACES = Path(__file__).parent / "data" / "weak_faces.txt"


@pytest.fixture(scope="module")
def detectors():
    """The default detector, and the same BlazeFace models without the second opinion."""
    from emocare.vision import build_detector
    from emocare.vision.blazeface import BlazeFaceCascade

    return build_detector("blazeface"), BlazeFaceCascade()


def test_weak_faces_count_where_the_haar_cascade_agrees(expressions, detectors):
    """30 FER2013 validation crops that BlazeFace scores under 0.5 in a camera frame: alone it
    finds none; with fer's Haar cascade agreeing on the place, some (6 of the 30 when measured,
    71 of all 210 such crops), each where the face is."""
    confirmed, alone = detectors
    paths = [line for line in WEAK_FACES.read_text().splitlines() if line and not line.startswith("#")]
    found = 0
    for path in paths:
        frame = camera_frame(cv2.imread(str(expressions / path), cv2.IMREAD_COLOR), (320, 240))
        assert alone.detect(frame) == []
        boxes = confirmed.detect(frame)
        for x, y, w, h in boxes:
            assert abs(x + w / 2 - 160) < w / 2 and abs(y + h / 2 - 120) < h / 2
        found += bool(boxes)
    assert len(paths) == 30
    assert found >= 4


def test_the_second_opinion_finds_no_face_in_face_free_pictures(detectors):
    confirmed, alone = detectors
    pictures = samples.face_free()
    assert len(pictures) >= 15
    for name, picture in pictures.items():
        for frame in (camera_frame(picture, (320, 240)), camera_frame(cv2.resize(picture, (320, 240)), (320, 240))):
            assert len(confirmed.detect(frame)) <= len(alone.detect(frame)), name
