"""EmoCare: real-time emotion recognition and care (实时识别情绪并加以关怀系统)."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path

from flask import Flask

from .config import Config, configs
from .extensions import socketio

__all__ = ["Config", "create_app", "socketio"]

__version__ = "0.1.0"

#: The repository root, which holds ``templates/`` and ``static/`` next to ``src/``.
ROOT = Path(__file__).resolve().parents[2]

log = logging.getLogger(__name__)


def create_app(config: str | type[Config] | Mapping | None = None, **overrides) -> Flask:
    """Application factory.

    ``config`` is a name from :data:`emocare.config.configs`, a ``Config`` subclass, or a
    mapping of overrides applied on top of the default configuration; keyword ``overrides``
    are applied last (``create_app("testing", ANALYZER="scripted")``).
    """
    app = Flask(
        __name__,
        template_folder=str(ROOT / "templates"),
        static_folder=str(ROOT / "static"),
        instance_path=str(ROOT / "instance"),
        instance_relative_config=True,
    )
    if config is None or isinstance(config, Mapping):
        app.config.from_object(configs["default"])
        if config:
            app.config.from_mapping(config)
    elif isinstance(config, str):
        app.config.from_object(configs[config])
    else:
        app.config.from_object(config)
    app.config.update(overrides)
    if app.config.get("INSTANCE_PATH"):
        app.instance_path = str(app.config["INSTANCE_PATH"])

    if not app.testing and not app.debug:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")

    from .web import init_web

    init_web(app)
    return app
