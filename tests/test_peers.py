"""Server processes telling one another that a profile is forgotten, over a real Redis."""

from __future__ import annotations

import threading
import time

from emocare.live.peers import RedisPeers


def listening(url: str, released: list[str]) -> RedisPeers:
    peers = RedisPeers(url, timeout_s=2.0)
    threading.Thread(target=peers.listen, args=(released.append,), daemon=True).start()
    return peers


def release_when_heard(asker: RedisPeers, expected: int, within_s: float = 8.0) -> int:
    """Ask until ``expected`` peers answer (a listener subscribes a moment after it starts)."""
    deadline = time.monotonic() + within_s
    while True:
        answered = asker.release("mei")
        if answered >= expected or time.monotonic() > deadline:
            return answered
        time.sleep(0.2)


def test_every_other_process_lets_go_and_answers(redis_server):
    heard_by = {name: [] for name in "abc"}
    peers = {name: listening(redis_server.url, heard_by[name]) for name in "abc"}
    try:
        assert release_when_heard(peers["a"], expected=2) == 2
        assert "mei" in heard_by["b"] and "mei" in heard_by["c"]
        assert heard_by["a"] == []  # its own request is not its business
    finally:
        for p in peers.values():
            p.close()


def test_a_restarted_redis_is_subscribed_to_again(redis_server):
    heard: list[str] = []
    asker, listener = RedisPeers(redis_server.url, timeout_s=2.0), listening(redis_server.url, heard)
    try:
        assert release_when_heard(asker, expected=1) == 1
        redis_server.stop()
        redis_server.start()  # the same port, empty
        heard.clear()
        assert release_when_heard(asker, expected=1, within_s=15.0) == 1
        assert heard and heard[-1] == "mei"
    finally:
        asker.close()
        listener.close()
