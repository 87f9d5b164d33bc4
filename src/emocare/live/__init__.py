"""The live stream: one session per connection and the service that owns them.

Plain Python, no Flask: the Socket.IO handlers translate messages into calls on a
:class:`LiveSession` (found through the :class:`LiveService`) and emit what comes back.
"""

from .service import LiveService, Refused, ServerInfo
from .session import Event, LiveSession

__all__ = ["Event", "LiveService", "LiveSession", "Refused", "ServerInfo"]
