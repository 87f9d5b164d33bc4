"""Many simulated pages from one process: cheap enough that the server, not the clients, is
what a serving benchmark on two cores measures.

Why not python-socketio's client, as the rest of ``bench/serving.py`` uses: each of its pages
holds two or three threads and encodes every message anew; a few hundred of them on the same
two cores as the server spend the CPU the server needs, and the bench measures its own clients.
Here every page is an asyncio task on one event loop, speaking Engine.IO 4 / Socket.IO 5 over
WebSocket with wsproto (the sans-I/O WebSocket library simple-websocket is built on), and its
messages are pre-encoded: a page's 10 messages a second cost a string concatenation each.
What the server receives is what the real page sends:

- ``server`` mode: ``frame`` events with the 320×240 JPEG as a binary attachment, one in flight,
  10 a second, as ``static/js/app.js`` sends them;
- ``device`` mode: ``scores`` events (docs/protocol.md), one in flight, 2.5 a second, each with
  the page's four analysed frames (10 a second) of one face: the box and calibrated scores the
  Python analyzer gives for the astronaut portrait in the page's 320×240 frame, what
  ``static/js/analyzer.js`` computes to the digit (tests/test_device_parity.py). The
  handshake says ``{"analysis": "device"}`` as a device-mode page's does.

Each page has its own profile cookie and sends the page's ``configure`` first, so the server
also writes its history and runs care, as for a real page.
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
import statistics
import time
from collections import Counter
from dataclasses import dataclass, field
from functools import lru_cache

from wsproto import ConnectionType, WSConnection
from wsproto.events import (
    AcceptConnection,
    BytesMessage,
    CloseConnection,
    Ping,
    RejectConnection,
    Request,
    TextMessage,
)

from emocare.vision.samples import astronaut, place_on_canvas, to_jpeg
from emocare.vision.types import EMOTIONS

from .common import percentile

log = logging.getLogger(__name__)

MODES = ("server", "device")
#: Frames the page analyses a second, in either mode.
PAGE_FPS = 10.0
#: Frames a message carries (``static/js/app.js``: FRAMES_PER_MESSAGE in device mode).
FRAMES_PER_MESSAGE = {"server": 1, "device": 4}
#: An answer later than this is counted as an error ("timeout").
ANSWER_TIMEOUT_S = 5.0


@lru_cache(maxsize=1)
def page_jpeg() -> bytes:
    """What a server-mode page sends: the portrait in a 320×240 JPEG of quality 70."""
    return to_jpeg(place_on_canvas(astronaut(), (320, 240)), 70)


@lru_cache(maxsize=1)
def scores_message() -> dict:
    """What a device-mode page sends for four such frames 100 ms apart, without its ``seq``: the
    Python analyzer's faces (the server's own, which the page's port matches exactly), as
    docs/protocol.md says."""
    import cv2
    import numpy as np

    from emocare.vision import build_analyzer

    frame = cv2.imdecode(np.frombuffer(page_jpeg(), np.uint8), cv2.IMREAD_COLOR)
    faces = build_analyzer("emocare").analyze(frame)
    if len(faces) != 1:
        raise RuntimeError(f"the portrait should show one face, the analyzer found {len(faces)}")
    height, width = frame.shape[:2]
    found = [{"box": [int(v) for v in f.box], "scores": [float(f.scores[e]) for e in EMOTIONS]} for f in faces]
    ages = [round(1000 / PAGE_FPS * k) for k in reversed(range(FRAMES_PER_MESSAGE["device"]))]
    return {"width": width, "height": height, "frames": [{"age_ms": age, "faces": found} for age in ages]}


def _encoder(mode: str):
    """``seq`` → the WebSocket messages of one page message (Engine.IO 4, Socket.IO 5)."""
    if mode == "server":
        jpeg = page_jpeg()
        head = '451-["frame",{"seq":'
        tail = ',"image":{"_placeholder":true,"num":0}}]'
        return lambda seq: (head + str(seq) + tail, jpeg)
    body = json.dumps(scores_message(), separators=(",", ":"))
    head = '42["scores",{"seq":'
    tail = "," + body[1:] + "]"
    return lambda seq: (head + str(seq) + tail,)


def message_period(mode: str) -> float:
    """Seconds between a page's messages in ``mode``."""
    return FRAMES_PER_MESSAGE[mode] / PAGE_FPS


class Refused(Exception):
    """The server refused the connection; ``code`` is its reason (``server_full``, HTTP 401…)."""

    def __init__(self, code: str) -> None:
        super().__init__(code)
        self.code = code


@dataclass
class Page:
    """One simulated page on the running event loop: connect, :meth:`run`, :meth:`close`."""

    host: str
    port: int
    mode: str
    rtts: list[float] = field(default_factory=list)
    errors: Counter = field(default_factory=Counter)
    sent: int = 0

    def __post_init__(self) -> None:
        self._encode = _encoder(self.mode)
        self._ws = WSConnection(ConnectionType.CLIENT)
        self._text: list[str] = []
        self._pending: asyncio.Future | None = None
        self._joined: asyncio.Future | None = None
        self._reader_task: asyncio.Task | None = None
        self._writer: asyncio.StreamWriter | None = None
        self.open = False

    async def connect(self) -> None:
        loop = asyncio.get_running_loop()
        reader, self._writer = await asyncio.open_connection(self.host, self.port)
        self._joined = loop.create_future()
        cookie = ("Cookie", f"emocare_profile=p-{secrets.token_hex(12)}")
        request = Request(f"{self.host}:{self.port}", "/socket.io/?EIO=4&transport=websocket", extra_headers=[cookie])
        self._writer.write(self._ws.send(request))
        self._reader_task = asyncio.create_task(self._read(reader))
        joined = await asyncio.wait_for(self._joined, 15)
        if isinstance(joined, Refused):
            raise joined
        self.open = True
        self._send('42["configure",{"locale":"en"}]')

    def _send(self, *messages) -> None:
        for message in messages:
            event = TextMessage(data=message) if isinstance(message, str) else BytesMessage(data=message)
            self._writer.write(self._ws.send(event))

    def _settle(self, future: asyncio.Future | None, value) -> None:
        if future is not None and not future.done():
            future.set_result(value)

    async def _read(self, reader: asyncio.StreamReader) -> None:
        try:
            while data := await reader.read(65536):
                self._ws.receive_data(data)
                for event in self._ws.events():
                    self._on(event)
        except (ConnectionError, OSError):
            pass
        finally:
            if self.open:
                self.errors["disconnected"] += 1
            self.open = False
            self._settle(self._joined, Refused("closed"))
            self._settle(self._pending, "disconnected")

    def _on(self, event) -> None:
        if isinstance(event, TextMessage):
            self._text.append(event.data)
            if event.message_finished:
                text, self._text = "".join(self._text), []
                self._packet(text)
        elif isinstance(event, AcceptConnection):
            # Socket.IO's namespace connection; a device-mode page says so in its handshake
            self._send('40{"analysis":"device"}' if self.mode == "device" else "40")
        elif isinstance(event, RejectConnection):
            self._settle(self._joined, Refused(f"http_{event.status_code}"))
        elif isinstance(event, Ping):
            self._writer.write(self._ws.send(event.response()))
        elif isinstance(event, CloseConnection):
            self._settle(self._joined, Refused("closed"))

    def _packet(self, text: str) -> None:
        if text.startswith('42["result"'):
            self._settle(self._pending, "result")
        elif text == "2":  # Engine.IO ping: answered, or the server closes the connection
            self._send("3")
        elif text.startswith('42["error"'):
            error = json.loads(text[2:])[1]
            self.errors[error.get("code", "?")] += 1
            if error.get("seq") is not None:
                self._settle(self._pending, "error")
        elif text.startswith("40"):
            self._settle(self._joined, True)
        elif text.startswith("44"):
            self._settle(self._joined, Refused(json.loads(text[2:]).get("data", {}).get("code", "refused")))
        elif text.startswith("41"):
            self.open = False

    async def run(self, until: float, record_from: float, phase: float) -> None:
        """Send as the page does (``message_period``), one message in flight, until the loop's
        clock reads ``until``; round trips from ``record_from`` on are kept, in ms."""
        loop = asyncio.get_running_loop()
        await asyncio.sleep(phase)  # pages are not in step with one another
        period, seq = message_period(self.mode), 0
        while self.open and loop.time() < until:
            start = loop.time()
            self._pending = loop.create_future()
            seq += 1
            self._send(*self._encode(seq))
            self.sent += 1
            try:
                answer = await asyncio.wait_for(self._pending, ANSWER_TIMEOUT_S)
            except TimeoutError:
                self.errors["timeout"] += 1
                answer = None
            if answer == "result" and start >= record_from:
                self.rtts.append((loop.time() - start) * 1000)
            await asyncio.sleep(max(0.0, period - (loop.time() - start)))

    async def close(self) -> None:
        if self._writer is None:
            return
        try:
            if self.open:
                self.open = False
                self._send("41")
                self._writer.write(self._ws.send(CloseConnection(code=1000)))
            self._writer.close()
        except (ConnectionError, OSError, RuntimeError):
            pass  # the server is gone or closed first
        if self._reader_task is not None:
            self._reader_task.cancel()


async def _loop_lag(until: float, lags: list[float], every: float = 0.02) -> None:
    """How late the event loop wakes: a loop this late is the clients' limit, not the server's."""
    loop = asyncio.get_running_loop()
    while loop.time() < until:
        start = loop.time()
        await asyncio.sleep(every)
        lags.append((loop.time() - start - every) * 1000)


async def drive(host: str, ports: list[int], mode: str, clients: int, seconds: float, warm_up: float = 1.0) -> dict:
    """``clients`` pages of ``mode`` for ``warm_up + seconds``, spread in turn over the servers
    on ``ports``: their round trips, errors, and what the simulation itself cost (the client
    process's CPU, the event loop's lateness)."""
    pages = [Page(host, ports[k % len(ports)], mode) for k in range(clients)]
    refused: Counter = Counter()
    gate = asyncio.Semaphore(32)  # connections being opened at once

    async def join(page: Page) -> None:
        async with gate:
            try:
                await page.connect()
            except Refused as exc:
                refused[exc.code] += 1
            except (TimeoutError, ConnectionError, OSError) as exc:
                refused[type(exc).__name__] += 1

    await asyncio.gather(*(join(p) for p in pages))
    live = [p for p in pages if p.open]
    loop = asyncio.get_running_loop()
    begin = loop.time()
    record_from, until = begin + warm_up, begin + warm_up + seconds
    lags: list[float] = []
    cpu0, wall0 = time.process_time(), None
    runs = [p.run(until, record_from, i / max(1, len(live)) * message_period(mode)) for i, p in enumerate(live)]
    lag_task = asyncio.create_task(_loop_lag(until, lags))

    async def measured() -> None:
        nonlocal cpu0, wall0
        await asyncio.sleep(warm_up)
        cpu0, wall0 = time.process_time(), time.perf_counter()

    await asyncio.gather(*runs, measured(), lag_task)
    wall = time.perf_counter() - wall0
    client_cores = (time.process_time() - cpu0) / wall
    await asyncio.gather(*(p.close() for p in pages))
    rtts = [r for p in live for r in p.rtts]
    errors = sum((p.errors for p in pages), Counter()) + refused
    return {
        "clients": clients,
        "connected": len(live),
        "messages": len(rtts),
        "per_second": round(len(rtts) / wall, 1),
        "rtt_p50_ms": round(statistics.median(rtts), 1) if rtts else None,
        "rtt_p95_ms": round(percentile(rtts, 0.95), 1) if rtts else None,
        "rtt_p99_ms": round(percentile(rtts, 0.99), 1) if rtts else None,
        "errors": errors.total(),
        "error_codes": dict(errors),
        "client_cores": round(client_cores, 2),
        "client_loop_lag_p95_ms": round(percentile(lags, 0.95), 1) if lags else None,
    }
