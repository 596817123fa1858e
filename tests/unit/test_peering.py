"""kopf's peering rule, as this operator reads it to pause its own loops."""

from __future__ import annotations

import asyncio
import datetime

from druid_access.loops import Loops
from druid_access.peering import outranked

NOW = datetime.datetime(2026, 11, 27, 12, 0, tzinfo=datetime.UTC)


def _peer(priority: int, seen_ago: float, lifetime: int = 60) -> dict[str, object]:
    seen = NOW - datetime.timedelta(seconds=seen_ago)
    return {"priority": priority, "lastseen": seen.isoformat(), "lifetime": lifetime}


def test_a_live_peer_with_a_higher_or_equal_priority_outranks() -> None:
    status = {"me": _peer(50, 1), "higher": _peer(90, 5), "equal": _peer(50, 5), "lower": _peer(10, 1)}
    assert outranked(status, "me", 50, NOW) == ["equal", "higher"]


def test_expired_peers_and_oneself_do_not() -> None:
    status = {"me": _peer(50, 1), "gone": _peer(90, 61), "short": _peer(90, 11, lifetime=10)}
    assert outranked(status, "me", 50, NOW) == []
    assert outranked(None, "me", 50, NOW) == []


def test_entries_kopf_would_not_write_are_ignored() -> None:
    naive = (NOW - datetime.timedelta(seconds=1)).replace(tzinfo=None).isoformat()
    status = {
        "no-lastseen": {"priority": 90},
        "bad-priority": {**_peer(0, 1), "priority": "high"},
        "not-a-mapping": "x",
        "naive-time": {"priority": 90, "lastseen": naive},  # kopf writes UTC
    }
    assert outranked(status, "me", 50, NOW) == ["naive-time"]


async def test_paused_loops_start_no_pass_until_resumed() -> None:
    loops = Loops()
    ran: list[str] = []

    async def run_pass(record: object) -> None:
        ran.append("pass")

    async def resync(target: object) -> None:
        ran.append("resync")

    loops.pause()
    loops.start(run_pass, resync, lambda target: 60.0, workers=2)
    try:
        loops.observe(
            ("DruidRole", "ns", "r"), {"metadata": {"name": "r", "namespace": "ns", "generation": 1}}
        )
        await asyncio.sleep(0.05)
        assert ran == [] and loops.paused
        loops.resume()
        for _ in range(100):
            if ran:
                break
            await asyncio.sleep(0.01)
        assert ran == ["pass"]
    finally:
        await loops.stop()
