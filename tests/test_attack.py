"""The fast half of the attack suite (bench/attack.py) against a real server: the scan bomb,
every malformed event, garbage packets, a foreign Host, the security headers. The floods, the
idle sockets, speech for 40 pages and kill -9 are the bench's long half (docs/security.md)."""

from __future__ import annotations

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
