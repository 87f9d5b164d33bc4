"""The web layer: page routes, Socket.IO events and the wiring of services into the app."""

from __future__ import annotations

import atexit
import functools
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path

from flask import Flask
from werkzeug.middleware.proxy_fix import ProxyFix

from ..care.content import CareContent
from ..care.engine import CareEngine
from ..care.music import MusicCatalogue
from ..care.policy import PolicyConfig
from ..care.preferences import PreferenceStore
from ..care.speech import SpeechQueue, SpeechService
from ..extensions import socketio
from ..history import HistoryStore, HistoryWriter
from ..history.preferences import DatabasePreferenceStore
from ..live import LiveService, ServerInfo
from ..live.peers import make_peers
from ..vision import BACKENDS, FrameLimits, VisionService, build_analyzer
from ..vision.emocare_backend import care_thresholds
from ..vision.registry import VisionRegistry
from ..vision.smoothing import SmoothingConfig
from . import headers, hosts, i18n, profile
from .offload import Offloader, call_inline

log = logging.getLogger(__name__)


@dataclass
class Services:
    """The plain-Python services one app uses, kept in ``app.extensions['emocare']``."""

    visions: VisionRegistry
    offload: Offloader
    live: LiveService
    care: CareEngine
    history: HistoryWriter

    @property
    def speech(self) -> SpeechQueue:
        """The process's speech queue (the live service's: one, not a second copy)."""
        return self.live.speech

    @property
    def vision(self) -> VisionService:
        """The service of the configured (default) backend."""
        return self.visions.get()


def _script(moods):
    return [m.strip() for m in moods.split(",") if m.strip()] if isinstance(moods, str) else moods


def _build_vision(app: Flask, backend: str):
    options = {
        "detector": app.config["DETECTOR"],
        "detect_width": app.config["DETECT_WIDTH"],
        "min_face": app.config["MIN_FACE"],
        "tta": app.config["TTA"],
        "deepface_home": app.config["DEEPFACE_HOME"] or os.path.join(app.instance_path, "deepface"),
        "deepface_detector": app.config["DEEPFACE_DETECTOR"],
        "model_path": app.config["MODEL_PATH"],
        "script": _script(app.config.get("SCRIPTED_MOODS")),
    }
    limits = FrameLimits(app.config["MAX_FRAME_BYTES"], app.config["MAX_FRAME_SIDE"])
    if app.config["OFFLOAD"] == "process":
        from ..vision.process import ProcessVisionService

        return ProcessVisionService(backend, options, app.config["INFERENCE_WORKERS"], limits)
    return VisionService(functools.partial(build_analyzer, backend, **options), limits)


def _build_care(app: Flask, history: HistoryStore) -> CareEngine:
    """Care preferences go where the history goes once a database is configured: several
    processes share it, not one another's instance folders."""
    instance = Path(app.instance_path)
    if app.config["DATABASE_URL"]:
        preferences = DatabasePreferenceStore(history.engine)
    else:
        preferences = PreferenceStore(instance / "profiles")
    chosen = app.config["SPEECH_ENGINES"]
    engines = None if chosen is None else tuple(e.strip() for e in str(chosen).split(",") if e.strip())
    return CareEngine(
        CareContent(),
        MusicCatalogue(Path(app.static_folder), instance / "music"),
        SpeechService(instance / "tts_cache", engines=engines, rate=app.config["SPEECH_RATE"]),
        preferences,
        PolicyConfig(
            sustain_s=app.config["CARE_SUSTAIN_S"],
            threshold=app.config["CARE_THRESHOLD"],
            thresholds=care_thresholds(app.config["MODEL_PATH"], app.config["TTA"]),  # fitted on validation
            cooldown_s=app.config["CARE_COOLDOWN_S"],
        ),
    )


def _build_history(app: Flask, async_mode: str) -> HistoryWriter:
    url = app.config["DATABASE_URL"]
    if not url:
        Path(app.instance_path).mkdir(parents=True, exist_ok=True)
        url = "sqlite:///" + str(Path(app.instance_path) / "history.sqlite3")
    store = HistoryStore(url, app.config["HISTORY_RETENTION_DAYS"])
    try:
        store.close_dangling(app.config["HISTORY_CLOSE_IDLE_S"])  # left without an end by a crash
    except Exception:  # a read-only or full disk must not stop the app from starting
        log.exception("closing the sessions left open by an earlier stop failed")
    if async_mode == "eventlet":
        from eventlet import tpool

        run_blocking = tpool.execute
    else:
        run_blocking = call_inline
    return HistoryWriter(store, flush_interval=app.config["HISTORY_FLUSH_S"], run_blocking=run_blocking)


def services(app: Flask) -> Services:
    return app.extensions["emocare"]


#: Where frames are analysed (config ``ANALYSIS``): on the server, or in the page itself.
ANALYSIS_MODES = ("server", "device")


def init_web(app: Flask) -> None:
    # Handlers must be registered before the first init_app: Flask-SocketIO only remembers
    # (and re-binds to later apps) the handlers that were declared while it had no server.
    from . import events
    from .care import bp as care_bp
    from .device import bp as device_bp
    from .history import bp as history_bp
    from .main import bp as main_bp

    if app.config["ANALYSIS"] not in ANALYSIS_MODES:
        raise ValueError(f"ANALYSIS must be one of {', '.join(ANALYSIS_MODES)}, not {app.config['ANALYSIS']!r}")
    socketio.init_app(
        app,
        message_queue=app.config["MESSAGE_QUEUE"],
        async_mode=app.config["ASYNC_MODE"],
        max_http_buffer_size=app.config["SOCKETIO_MAX_BUFFER"],
        async_handlers=app.config["ASYNC_HANDLERS"],
    )
    async_mode = socketio.async_mode
    history = _build_history(app, async_mode)
    care = _build_care(app, history.store)
    visions = VisionRegistry(functools.partial(_build_vision, app), app.config["ANALYZER"])
    offload = Offloader(async_mode, app.config["INFERENCE_WORKERS"], app.config["OFFLOAD"])
    speech = SpeechQueue(care.speech)
    peers = make_peers(app.config["MESSAGE_QUEUE"])
    live = LiveService(
        visions,
        offload,
        history,
        care=care,
        smoothing=SmoothingConfig(
            app.config["SMOOTHING_TAU"], app.config["SMOOTHING_MARGIN"], app.config["SMOOTHING_DWELL_S"]
        ),
        speech=speech,
        info=ServerInfo(async_mode, app.config["MAX_FRAME_BYTES"], BACKENDS),
        languages=tuple(app.config["LANGUAGES"]),
        default_locale=app.config["DEFAULT_LANGUAGE"],
        audio_url=lambda name: f"{care_bp.url_prefix}/audio/{name}",
        # a session's connection is on this process: its answers need not go round the queue
        deliver=lambda sid, event, payload: socketio.emit(event, payload, to=sid, ignore_queue=True),
        clock=app.config.get("CLOCK") or time.time,
        max_connections=app.config["MAX_CONNECTIONS"],
        max_per_address=app.config["MAX_CONNECTIONS_PER_ADDRESS"],
        max_device=app.config["MAX_DEVICE_CONNECTIONS"],
        peers=peers,
    )
    app.extensions["emocare"] = Services(visions, offload, live, care, history)
    events.guard_transport(app)
    socketio.start_background_task(history.run)
    socketio.start_background_task(peers.listen, live.release_profile)
    atexit.register(history.close)  # a clean stop (Ctrl+C, SIGTERM via run.py) writes the rest
    atexit.register(speech.close)
    atexit.register(peers.close)
    i18n.init_app(app)
    headers.init_app(app)
    profile.init_app(app)
    hosts.init_app(app)  # outside Socket.IO's middleware too
    hops = int(app.config["PROXY_HOPS"])
    if hops:  # outermost: every layer inside, Socket.IO's too, sees the client's own address
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops, x_host=hops)
    app.register_blueprint(main_bp)
    app.register_blueprint(care_bp)
    app.register_blueprint(history_bp)
    app.register_blueprint(device_bp)

    mode = app.config["WARM_UP"]
    if mode == "sync":
        warm_up(app)
    elif mode == "background":
        socketio.start_background_task(warm_up, app)


def warm_up(app: Flask) -> None:
    """Load and run the model on an inference worker, then tell every open page it is live."""
    svc = services(app)
    try:
        svc.offload(svc.vision.warm_up)
    except Exception:  # the page must learn the model is unusable instead of waiting forever
        log.exception("warming up the vision backend failed")
        failed = {"state": "error", "code": "model_failed", "message": "The emotion model failed to load."}
        socketio.emit("status", failed, ignore_queue=True)  # this process's model, its own pages
        return
    socketio.emit("status", status_payload(app), ignore_queue=True)


def status_payload(app: Flask, backend: str | None = None) -> dict:
    """What the page shows about the model: for the default backend, or a session's choice."""
    return services(app).live.status(backend)
