"""The live service: every open connection's session, and the pipeline parts they share.

Plain Python, no Flask or Socket.IO: the web layer gives it a ``deliver(sid, event, payload)``
callable for what arrives later than the call that caused it (a spoken reply, rendered by the
speech queue), and otherwise emits what the sessions' methods return. Forgetting a profile goes
through here too, so that a deployment of several processes has one place to route it.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from ..care.speech import Speech, SpeechQueue
from ..history import HistoryWriter
from ..vision.registry import VisionRegistry
from ..vision.smoothing import SmoothingConfig
from ..vision.tracking import FaceTracker
from .peers import LocalPeers, RedisPeers
from .session import DEVICE, SERVER, LiveSession

log = logging.getLogger(__name__)

#: Transport connections allowed beyond the session caps, so that a browser over a cap still
#: opens its socket and is told why (``connect_error``) instead of getting a bare HTTP 401.
TRANSPORT_SPARE = 2
#: An address whose connection was cut off for flooding may not connect again for this long:
#: a flooder that reconnects at once would otherwise get a fresh allowance each time (measured:
#: reconnecting, it kept others' p95 at four times its quiet value).
FLOODER_PAUSE_S = 30.0

Deliver = Callable[[str, str, dict], None]

SERVER_FULL = "The server has as many connections as it can take; try again later."


class Refused(Exception):
    """A connection the server will not take; ``code`` and ``message`` go to the client."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code, self.message = code, message


@dataclass(frozen=True)
class ServerInfo:
    """What the page is told about the server besides the model (the ``status`` event)."""

    async_mode: str
    max_frame_bytes: int
    backends: tuple[str, ...]


class LiveService:
    """Opens, finds and closes sessions; shares the vision, care, history and speech parts."""

    def __init__(
        self,
        visions: VisionRegistry,
        offload: Callable,
        history: HistoryWriter,
        care=None,
        smoothing: SmoothingConfig = SmoothingConfig(),
        speech: SpeechQueue | None = None,
        info: ServerInfo | None = None,
        languages: tuple[str, ...] = ("en", "zh-CN"),
        default_locale: str = "en",
        audio_url: Callable[[str], str] = lambda name: f"/care/audio/{name}",
        deliver: Deliver | None = None,
        clock: Callable[[], float] = time.time,
        max_connections: int = 60,
        max_per_address: int = 10,
        max_device: int = 0,
        peers: LocalPeers | RedisPeers | None = None,
    ) -> None:
        self.visions = visions
        self.offload = offload
        self.history = history
        self.care = care
        self.smoothing = smoothing
        self.speech = speech
        self.info = info or ServerInfo("threading", 1_000_000, ())
        self.languages = languages
        self.default_locale = default_locale
        self.audio_url = audio_url
        self.deliver = deliver
        #: seconds since the epoch; tests pass a clock they advance by hand
        self.clock = clock
        #: sessions that may send frames (every session until its first ``scores``): each may
        #: keep an inference worker busy, so this is sized by what inference holds
        self.max_connections = max_connections
        self.max_per_address = max_per_address
        #: more sessions whose pages analyse on their own device: they cost no inference, only
        #: tracking, care and history, so far more of them fit (docs/deploy.md, *Sizing*)
        self.max_device = max_device
        #: the other server processes (a cluster), told when a profile is forgotten
        self.peers = peers or LocalPeers()
        self._sessions: dict[str, LiveSession] = {}
        #: the sessions counted under ``max_device`` (they sent ``scores``, and no frame since)
        self._device: set[str] = set()
        #: open transport connections (Engine.IO sockets) and their addresses, sessions or not
        self._transports: dict[str, str | None] = {}
        #: addresses cut off for flooding, and until when they are refused
        self._paused: dict[str, float] = {}
        self._lock = threading.Lock()

    # --- sessions -----------------------------------------------------------------------------

    def open(
        self, sid: str, address: str | None = None, profile: str | None = None, analysis: str = SERVER
    ) -> LiveSession:
        """A new connection's session, of ``profile`` (the handshake's cookie; None: nothing is
        recorded or learned); :class:`Refused` when the server or its address is full.

        ``analysis`` is what the page said in its handshake: ``DEVICE`` takes one of the device
        places if one is free (a claim that costs nothing to make: a frame from it needs a server
        place, :meth:`analysing`), anything else one of the server's. The caps are checked and
        the session counted under one lock, so that connections arriving together cannot all
        slip under them.
        """
        care = self.care.session(profile, locale=self.default_locale) if self.care is not None else None
        session = LiveSession(
            sid, self, self.clock(), FaceTracker(self.smoothing), care=care, address=address, profile=profile
        )
        with self._lock:
            self._refuse(address, [s.address for s in self._sessions.values()], spare=0)
            if analysis == DEVICE and len(self._device) < self.max_device:
                self._device.add(sid)
            elif self._on_server() >= self.max_connections:
                raise Refused("server_full", SERVER_FULL)
            self._sessions[sid] = session
        return session

    def analysing(self, sid: str, where: str) -> None:
        """Count ``sid`` where its latest message was analysed: ``DEVICE`` for ``scores``,
        ``SERVER`` for a frame; :class:`Refused` (``server_full``) for a frame from a session
        counted on the device while the server's own places are all taken.

        A page that analyses on its device and did not say so in its handshake moves out of the
        server's places at its first ``scores``, if there is room among the device places
        (otherwise it keeps the place it has: nothing is refused). A frame moves a session
        counted on the device back, and needs a free server place then.
        """
        with self._lock:
            if sid not in self._sessions:
                return
            if where == DEVICE:
                if sid not in self._device and len(self._device) < self.max_device:
                    self._device.add(sid)
            elif sid in self._device:
                if self._on_server() >= self.max_connections:
                    raise Refused("server_full", SERVER_FULL)
                self._device.discard(sid)

    def counts(self) -> dict[str, int]:
        """Open sessions by where they are counted (``/healthz``)."""
        with self._lock:
            return {SERVER: self._on_server(), DEVICE: len(self._device)}

    def _on_server(self) -> int:
        """Sessions counted in the server's places (under ``_lock``): all but the device's."""
        return len(self._sessions) - len(self._device)

    def admit_transport(self, key: str, address: str | None) -> None:
        """Count a new transport connection; :class:`Refused` over the caps (plus TRANSPORT_SPARE).

        A socket holds a server thread from its handshake on, before it asks for a session, so
        a client that opens sockets and never joins (or is refused and stays) must be capped
        here too. The spare lets a browser's eleventh tab still be told why at the session.
        """
        with self._lock:
            self._refuse(address, list(self._transports.values()), spare=TRANSPORT_SPARE)
            self._transports[key] = address

    def _refuse(self, address: str | None, open_addresses: list[str | None], spare: int) -> None:
        """Under the lock: :class:`Refused` if ``address`` is paused for flooding, or one more
        connection (of those open, by address) would pass the caps plus ``spare``."""
        wait = self._paused.get(address or "", 0.0) - self.clock()
        if wait > 0:
            raise Refused("flooding", f"Cut off for flooding: connect again in {wait:.0f} s.")
        self._paused.pop(address or "", None)
        if len(open_addresses) >= self.max_connections + self.max_device + spare:
            raise Refused("server_full", SERVER_FULL)
        if address is not None and open_addresses.count(address) >= self.max_per_address + spare:
            raise Refused("too_many_connections", "Too many connections from this address; close another tab.")

    def pause(self, address: str | None, now: float) -> None:
        """Refuse ``address``'s new connections for FLOODER_PAUSE_S: its connection was cut off
        for flooding. (Behind a proxy every client shares its address: see docs/security.md.)"""
        if address is not None:
            with self._lock:
                self._paused[address] = now + FLOODER_PAUSE_S

    def release_transport(self, key: str) -> None:
        with self._lock:
            self._transports.pop(key, None)

    def get(self, sid: str) -> LiveSession | None:
        """The open session of ``sid``; None once it has disconnected (never a new one)."""
        with self._lock:
            return self._sessions.get(sid)

    def sessions(self) -> list[LiveSession]:
        with self._lock:
            return list(self._sessions.values())

    def close(self, sid: str) -> LiveSession | None:
        """End ``sid``'s session: its history session is closed, its queued voice dropped."""
        with self._lock:
            session = self._sessions.pop(sid, None)
            self._device.discard(sid)
        if session is not None:
            session.end(self.clock())
            if self.speech is not None:
                self.speech.cancel(sid)
        return session

    def __len__(self) -> int:
        with self._lock:
            return len(self._sessions)

    # --- what concerns every session ------------------------------------------------------------

    def forget_profile(self, profile: str) -> int:
        """Delete ``profile``'s history and learned preferences, even while pages of it are live.

        Its live pages go on in new history sessions with nothing learned; what they still send
        for the old sessions is dropped. Raises (changing nothing) if the queued history
        cannot be written first. Returns the history sessions removed. With other server
        processes (a cluster) they are asked first to let go of the profile's pages there
        (``peers``): those pages start new history sessions even if the delete then fails.
        """

        self.peers.release(profile)  # the other processes let go of their pages of it first
        removed = self.history.delete_profile(profile, self._forget_live(profile))
        if self.care is not None:
            self.care.store.delete(profile)
        return removed

    def release_profile(self, profile: str) -> None:
        """Another process is deleting ``profile``'s data: its pages here go on with nothing
        learned, in new history sessions, and nothing more of the old ones is written."""
        self.history.release_profile(self._forget_live(profile))

    def _forget_live(self, profile: str) -> Callable[[], set[str]]:
        def forget_live() -> set[str]:
            return {old for old in (s.forget(profile) for s in self.sessions()) if old is not None}

        return forget_live

    def status(self, backend: str | None = None) -> dict:
        """What the page shows about the model: for the default backend, or a session's choice."""
        vision = self.visions.get(backend)
        requested = backend or self.visions.default
        return {
            "state": "ready" if vision.ready else "warming",
            "backend": vision.backend or requested,
            "requested": requested,
            "backends": list(self.info.backends),
            "async_mode": self.info.async_mode,
            "warm_up_ms": None if vision.warm_up_ms is None else round(vision.warm_up_ms),
            "notice": getattr(vision, "notice", None),
            "max_frame_bytes": self.info.max_frame_bytes,
            "speech": "server" if self.speech is not None and self.speech.available else "browser",
        }

    def speak(self, sid: str, card: dict) -> dict | None:
        """Give ``card`` its voice, as a ``care_speech`` payload: returned when it is known at
        once (cached), for the caller to send right after the card; otherwise None, and it is
        delivered later through the speech queue."""
        if self.speech is None or self.deliver is None:
            return None

        def done(speech: Speech | None) -> None:
            if self.get(sid) is not None:
                self.deliver(sid, "care_speech", self._voice(card["id"], speech))

        queued, answer = self.speech.submit(sid, card["text"], card["locale"], done)
        return None if queued else self._voice(card["id"], answer)

    def _voice(self, card_id: str, speech: Speech | None) -> dict:
        if speech is None:  # no engine worked, or a newer card took this one's turn
            return {"id": card_id, "url": None, "engine": "browser"}
        return {
            "id": card_id,
            "url": self.audio_url(speech.path.name),
            "engine": speech.engine,
            "duration_s": round(speech.duration_s, 2),
        }
