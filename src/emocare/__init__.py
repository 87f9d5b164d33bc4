"""EmoCare: real-time emotion recognition and care (实时识别情绪并加以关怀系统).

``create_app`` and ``socketio`` are imported on first use, not with the package: the command
line must be able to choose (and, for eventlet, monkey-patch) the server before Flask and
the models are imported, and ``emocare --help`` should not load TensorFlow.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__all__ = ["create_app", "socketio"]

__version__ = "0.1.0"

if TYPE_CHECKING:  # pragma: no cover
    from .app import create_app
    from .extensions import socketio


def __getattr__(name: str) -> Any:
    if name == "create_app":
        from .app import create_app

        return create_app
    if name == "socketio":
        from .extensions import socketio

        return socketio
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
