"""The fast half of the attack suite (bench/attack.py) against a real server: the scan bomb,
every malformed event, garbage packets, a foreign Host, the security headers; and the raw
flood, for its bounds (not its timing). The python-socketio flood, the idle sockets, speech
for 40 pages and kill -9 are the bench's long half (docs/security.md)."""

from __future__ import annotations

import re

import pytest

from bench import attack

pytestmark = pytest.mark.server


def test_the_fast_attacks_each_get_a_clear_answer():
    rows = attack.main(["--quick", "--json"])
    assert [r["attack"] for r in rows] == list(attack.FAST)
    failed = [
        (r["attack"], r["answer"], r["seconds"], r["worst_during_ms"], r["log_bytes"]) for r in rows if not r["ok"]
    ]
    assert not failed
    bomb = next(r for r in rows if r["attack"] == "scan_bomb")
    assert bomb["answer"] == "too_complex" and bomb["seconds"] < 1.0


def test_a_raw_flood_is_cut_off_before_the_transport_reads_far_ahead():
    """10 s of frames as fast as a raw WebSocket sends them, reconnecting when cut off. Before
    the transport's back-pressure (web/transport.py) the server read 8,598 frames of the first
    connection before it could cut it off, and others' p95 tripled (docs/security.md).

    What the sender counts as sent includes what waits, unread, in the kernel's socket buffers
    until the connection is shut down: up to 1,100 frames with Debian's default buffers, 4,000
    on a machine with a 32 MB receive buffer. The server may take 2,000 more than those."""
    (row,) = attack.main(["--only", "raw_flood", "--json"])
    assert row["answer"].startswith("cut off"), row
    taken = int(re.search(r"median ([\d,]+)", row["answer"]).group(1).replace(",", ""))
    buffered = int(re.search(r"hold up to ([\d,]+)", row["answer"]).group(1).replace(",", ""))
    assert taken <= 2000 + buffered, row
    assert row["rss_peak_mb"] - row["rss_before_mb"] <= 150, row
