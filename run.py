"""Start EmoCare: ``python run.py`` serves http://127.0.0.1:5000.

``--async-mode eventlet`` must monkey-patch the standard library before anything else imports
it, which is why the choice is read here, before the application is imported.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent / "src"))


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="EmoCare: real-time emotion recognition and care")
    parser.add_argument("--host", default=os.environ.get("EMOCARE_HOST", "127.0.0.1"))
    parser.add_argument("--port", type=int, default=int(os.environ.get("EMOCARE_PORT", "5000")))
    parser.add_argument(
        "--async-mode",
        choices=("threading", "eventlet"),
        default=os.environ.get("EMOCARE_ASYNC_MODE", "threading"),
        help="Socket.IO server mode (default threading: docs/serving.md)",
    )
    parser.add_argument("--config", default=os.environ.get("EMOCARE_CONFIG", "default"))
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    os.environ["EMOCARE_ASYNC_MODE"] = args.async_mode
    if args.async_mode == "eventlet":
        import eventlet

        eventlet.monkey_patch()

    from emocare import create_app
    from emocare.extensions import socketio

    app = create_app(args.config)
    # SIGTERM (service managers, `kill`) stops like Ctrl+C, so exit handlers write the last history
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    app.logger.info("EmoCare on http://%s:%d (%s)", args.host, args.port, socketio.async_mode)
    options = {"allow_unsafe_werkzeug": True} if socketio.async_mode == "threading" else {}
    socketio.run(app, host=args.host, port=args.port, use_reloader=False, log_output=False, **options)


if __name__ == "__main__":
    main()
