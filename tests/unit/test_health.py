"""The per-target breaker: when it opens, what it sends while open, and how it closes."""

from __future__ import annotations

import asyncio

import pytest

from druid_access import health as health_module
from druid_access.health import THRESHOLD, TargetHealth


class Probe:
    def __init__(self) -> None:
        self.calls = 0
        self.up = False

    async def __call__(self) -> None:
        self.calls += 1
        if not self.up:
            raise ConnectionError("still down")


@pytest.fixture(autouse=True)
def fast_probes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(health_module, "_probe_delay", lambda attempt: 0.01)


async def test_opens_after_consecutive_unanswered_requests_only() -> None:
    changes: list[bool] = []
    probe = Probe()
    health = TargetHealth("Druid cluster 'x'", probe, changes.append)
    for _ in range(THRESHOLD - 1):
        health.unanswered("connection refused")
    health.answered()  # an answer in between starts the count again
    for _ in range(THRESHOLD - 1):
        health.unanswered("connection refused")
    assert not health.down and changes == []
    health.unanswered("connection refused")
    assert health.down and changes == [False]
    assert health.message() == "connection refused"  # statuses that said so are not rewritten
    await health.close()


async def test_one_probe_at_a_time_until_the_target_answers() -> None:
    changes: list[bool] = []
    probe = Probe()
    health = TargetHealth("Pivot instance 'p'", probe, changes.append)
    for _ in range(THRESHOLD * 3):  # more failures while down start no second prober
        health.unanswered("timeout")
    await asyncio.sleep(0.1)
    assert health.down and probe.calls >= 2
    assert health.last_error == "timeout"
    probe.up = True
    for _ in range(100):
        if not health.down:
            break
        await asyncio.sleep(0.01)
    assert not health.down and changes == [False, True]
    calls = probe.calls
    await asyncio.sleep(0.05)
    assert probe.calls == calls, "the probe goes on after the target came back"


async def test_an_answered_pass_closes_it_and_stops_the_probe() -> None:
    changes: list[bool] = []
    probe = Probe()
    health = TargetHealth("Druid cluster 'x'", probe, changes.append)
    for _ in range(THRESHOLD):
        health.unanswered("reset")
    health.answered()
    assert not health.down and changes == [False, True]
    calls = probe.calls
    await asyncio.sleep(0.05)
    assert probe.calls == calls
