"""Flask extensions, created once here and bound to an app in ``create_app`` with ``init_app``."""

from flask_socketio import SocketIO

socketio = SocketIO()
