"""Back-pressure for the threading WebSocket transport: a client cannot make the server read ahead.

Why: simple-websocket reads each connection on a thread of its own, as fast as bytes arrive,
and queues every message for Engine.IO without a bound. A raw WebSocket flood (thousands of
frames a second) was read and buffered faster than our handlers could refuse it: under the
GIL that reading thread starved the handler that counts refusals, so the flooder was cut off
only after about 8,600 frames, and every other client's round trip tripled meanwhile
(docs/security.md). Here the reading thread waits while a few messages are queued and
unread: the rest of a flood stays in the kernel's socket buffers and then in the sender's,
whose writes block, and the handler meets the flood at its own pace, refuses it and cuts it off.

Only the ``threading`` mode needs it; eventlet's WebSocket reads a message when it is asked for one.
"""

from __future__ import annotations

import threading

import simple_websocket
from engineio.async_drivers._websocket_wsgi import SimpleWebSocketWSGI

#: Messages read and not yet taken before the reading thread waits. A page has one frame in
#: flight and a few small events; more than this is a client sending faster than it is served.
MAX_QUEUED = 8
#: How long the reading thread waits for the queue to drain before it looks again.
DRAIN_WAIT_S = 1.0


class BoundedServer(simple_websocket.Server):
    """simple-websocket's server whose reading thread stops while ``MAX_QUEUED`` messages wait."""

    def __init__(self, environ, **kwargs) -> None:
        self._drained = threading.Event()  # before the reading thread starts, in the base class
        super().__init__(environ, **kwargs)

    def _handle_events(self) -> bool:
        keep_going = super()._handle_events()
        while keep_going and self.connected and len(self.input_buffer) >= MAX_QUEUED:
            self._drained.wait(DRAIN_WAIT_S)
            self._drained.clear()
        return keep_going

    def receive(self, timeout=None):
        try:
            return super().receive(timeout)
        finally:
            self._drained.set()

    def close(self, reason=None, message=None) -> None:
        try:
            super().close(reason, message)
        finally:
            self._drained.set()  # the reading thread sees ``connected`` is false and ends


class BoundedWebSocketWSGI(SimpleWebSocketWSGI):
    """Engine.IO's threading WebSocket adapter, on :class:`BoundedServer`."""

    def __call__(self, environ, start_response):
        self.ws = BoundedServer(environ, **self.server_args)
        ret = self.app(self)
        if self.ws.mode == "gunicorn":
            raise StopIteration()
        if self.ws.mode == "werkzeug":
            raise ConnectionError()
        return ret


def bound_reading(eio_server, async_mode: str) -> None:
    """Put Engine.IO's WebSocket transport on :class:`BoundedServer` (threading mode only)."""
    if async_mode == "threading":
        # the driver table is the module's own dict, shared by every server: this one gets a copy
        eio_server._async = {**eio_server._async, "websocket": BoundedWebSocketWSGI}
