"""What one server process must tell the others: a profile is being forgotten.

"Delete all my data" is pressed on one process while pages of the same profile may be live
on others (a cluster: several processes behind nginx, docs/deploy.md). Before the rows go,
each of those processes must let go of its live history sessions of the profile (new sessions,
nothing learned, late writes of the old ones dropped), or a late batch would write some of the
deleted data back. So the deleting process asks every peer over Redis and waits until each
has answered (or a few seconds have passed), then deletes.

One process needs none of this: :class:`LocalPeers` has no one to ask. Plain Python and
redis-py, no Flask.
"""

from __future__ import annotations

import json
import logging
import threading
import uuid
from collections.abc import Callable

log = logging.getLogger(__name__)

CHANNEL = "emocare:peers"
#: How long the deleting process waits for its peers' answers before it deletes anyway.
RELEASE_TIMEOUT_S = 3.0


class LocalPeers:
    """A process alone: nobody else holds sessions."""

    def release(self, profile: str) -> int:
        return 0

    def listen(self, on_release: Callable[[str], None]) -> None:
        return None

    def close(self) -> None:
        return None


class RedisPeers:
    """The server processes that share a Redis: publish a release, collect the answers.

    Each request names a list that the peers push their answer to, so the asker counts answers
    with a blocking pop instead of polling; the list expires on its own.
    """

    def __init__(self, url: str, timeout_s: float = RELEASE_TIMEOUT_S) -> None:
        import redis

        self._redis = redis.Redis.from_url(url, socket_timeout=timeout_s + 2, health_check_interval=30)
        self.timeout_s = timeout_s
        #: this process, so that it skips its own requests
        self.id = uuid.uuid4().hex
        self._pubsub = None
        self._closed = False
        self._stop = threading.Event()
        #: 1 while subscribed: this process then hears its own requests, and does not count them
        self._listening = 0

    def release(self, profile: str) -> int:
        """Ask every other process to let go of ``profile``'s live sessions; returns how many
        answered in time (a peer that did not is logged: it may write a late second back)."""
        answers = f"{CHANNEL}:answers:{uuid.uuid4().hex}"
        listeners = self._redis.publish(CHANNEL, json.dumps({"profile": profile, "answers": answers, "from": self.id}))
        expected = max(0, listeners - self._listening)  # this process hears its own request too
        answered = 0
        while answered < expected and self._redis.blpop([answers], timeout=self.timeout_s) is not None:
            answered += 1
        if answered < expected:
            log.warning("%d of %d server processes did not confirm forgetting a profile", expected - answered, expected)
        return answered

    def listen(self, on_release: Callable[[str], None]) -> None:
        """Serve the others' requests until :meth:`close`: run this on a background task.
        A lost Redis (restarted, unreachable) is subscribed to again, every few seconds."""
        import redis

        while not self._closed:
            try:
                self._pubsub = self._redis.pubsub(ignore_subscribe_messages=True)
                self._pubsub.subscribe(CHANNEL)
                self._listening = 1
                for message in self._pubsub.listen():
                    self._answer(message, on_release)
            except (redis.RedisError, OSError, ValueError, AttributeError) as exc:
                # what redis-py raises when the server goes, or when close() pulls the socket
                self._listening = 0
                if self._closed:
                    return
                log.warning("lost Redis for forget requests (%s); subscribing again in 2 s", exc)
                self._stop.wait(2.0)

    def _answer(self, message: dict, on_release: Callable[[str], None]) -> None:
        try:
            request = json.loads(message["data"])
            if request.get("from") == self.id:
                return
            on_release(str(request["profile"]))
            with self._redis.pipeline() as pipe:
                pipe.rpush(request["answers"], self.id).expire(request["answers"], 60).execute()
        except Exception:  # one bad request must not stop the listener
            log.exception("a request from another server process failed")

    def close(self) -> None:
        self._closed = True
        self._stop.set()
        if self._pubsub is not None:
            self._pubsub.close()
        self._redis.close()


def make_peers(url: str | None) -> LocalPeers | RedisPeers:
    return RedisPeers(url) if url else LocalPeers()
