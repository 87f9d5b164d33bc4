"""Per-connection live state: what each browser tab has in flight and has seen.

Plain Python, no Flask: the Socket.IO handlers look a session up here by its sid.
"""

from .session import LiveHub, LiveSession

__all__ = ["LiveHub", "LiveSession"]
