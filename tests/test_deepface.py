"""The DeepFace backend's real loading code, offline.

DeepFace cannot download its weights here, so these tests check plumbing, not accuracy: one
builds DeepFace's own emotion architecture with random weights, saves it where DeepFace looks,
and runs the real ``DeepFace.analyze`` path on it; the other checks the missing-weights message
and the fallback to fer.
"""

import logging
import os

import pytest

from emocare.vision import EMOTIONS, build_analyzer
from emocare.vision.deepface_backend import weights_path
from emocare.vision.samples import place_on_canvas

# DeepFace builds its Sequential model the Keras-2 way; Keras warns about it, not our code.
pytestmark = pytest.mark.filterwarnings("ignore:Do not pass an `input_shape`:UserWarning")


def test_missing_weights_fall_back_to_fer_with_a_clear_message(tmp_path, caplog, astronaut):
    caplog.set_level(logging.WARNING)
    analyzer = build_analyzer("deepface", deepface_home=tmp_path)
    expected = f"DeepFace emotion weights not found at {weights_path(tmp_path)}: download them or place the file there"
    assert analyzer.name == "fer"
    assert analyzer.notice == expected
    assert expected in caplog.text
    build_analyzer("deepface", deepface_home=tmp_path)  # said once, not on every build
    assert caplog.text.count(expected) == 1
    [face] = analyzer.analyze(place_on_canvas(astronaut, (320, 240)))
    assert face.dominant == "happy"


@pytest.fixture(scope="module")
def random_weights_home(tmp_path_factory):
    """DeepFace's emotion CNN, built by DeepFace's own code with random weights, saved offline."""
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
