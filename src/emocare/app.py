"""The application factory, and where each setting comes from.

Configuration is layered the Flask way, each layer over the one before:

1. a class from :data:`emocare.config.configs` (defaults only);
2. ``config.py`` in the instance folder, if there is one (a deployment's own settings);
3. the environment: ``EMOCARE_<NAME>`` (``app.config.from_prefixed_env``), and the
   conventional ``DATABASE_URL`` unless ``EMOCARE_DATABASE_URL`` is set;
4. the overrides passed to :func:`create_app` (the tests' and the command line's).

All of it happens when an app is made, never at import, and nothing is written back to the
environment.
"""

from __future__ import annotations

import logging
import os
import secrets
from collections.abc import Mapping
from pathlib import Path

from flask import Flask

from . import logs
from .config import Config, configs

#: The repository root, which holds ``templates/`` and ``static/`` next to ``src/``.
ROOT = Path(__file__).resolve().parents[2]
ENV_PREFIX = "EMOCARE"
SECRET_KEY_FILE = "secret_key"

log = logging.getLogger(__name__)


def create_app(config: str | type[Config] | Mapping | None = None, **overrides) -> Flask:
    """Application factory.

    ``config`` is a name from :data:`emocare.config.configs`, a ``Config`` subclass, or a
    mapping of overrides applied on top of the default configuration; keyword ``overrides``
    are applied last (``create_app("testing", ANALYZER="scripted")``).
    """
    app = Flask(
        __name__.rpartition(".")[0],
        template_folder=str(ROOT / "templates"),
        static_folder=str(ROOT / "static"),
        instance_path=str(ROOT / "instance"),
        instance_relative_config=True,
    )
    load_config(app, config, overrides)
    ensure_secret_key(app)

    if not app.testing and not app.debug:
        logs.configure(log_file=app.config["LOG_FILE"])

    from .web import init_web

    init_web(app)
    return app


def load_config(app: Flask, config: str | type[Config] | Mapping | None, overrides: Mapping) -> None:
    """Apply the four layers described in the module docstring to ``app.config``."""
    extra = dict(config) if isinstance(config, Mapping) else {}
    base = configs["default"] if config is None or isinstance(config, Mapping) else config
    app.config.from_object(configs[base] if isinstance(base, str) else base)
    layers = {**extra, **overrides}

    def environment() -> None:
        if "DATABASE_URL" in os.environ and f"{ENV_PREFIX}_DATABASE_URL" not in os.environ:
            app.config["DATABASE_URL"] = os.environ["DATABASE_URL"]
        app.config.from_prefixed_env(ENV_PREFIX)

    # the instance folder may itself be configured, so find it before reading its config.py
    environment()
    app.config.update(layers)
    if app.config.get("INSTANCE_PATH"):
        app.instance_path = str(app.config["INSTANCE_PATH"])
    instance_config = Path(app.instance_path) / "config.py"  # absolute: the folder may have moved
    if app.config.from_pyfile(instance_config, silent=True):
        log.info("read %s", instance_config)
        environment()
        app.config.update(layers)


def ensure_secret_key(app: Flask) -> None:
    """Use the configured secret key, or the one kept in the instance folder (made once).

    A key made anew at each start would sign the cookies of the last run invalid; one in the
    instance folder, readable only by its owner, survives restarts and stays out of the code.
    """
    if app.config.get("SECRET_KEY"):
        return
    path = Path(app.instance_path) / SECRET_KEY_FILE
    try:
        app.config["SECRET_KEY"] = path.read_text(encoding="ascii").strip()
    except FileNotFoundError:
        path.parent.mkdir(parents=True, exist_ok=True)
        key = secrets.token_hex(32)
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w", encoding="ascii") as handle:
            handle.write(key + "\n")
        app.config["SECRET_KEY"] = key
        log.info("made a new secret key in %s", path)
    if not app.config["SECRET_KEY"]:
        raise RuntimeError(f"{path} is empty: delete it to have a new secret key made")
