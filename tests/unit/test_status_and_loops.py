"""Status building (writes only on change) and the loop's backoff/resync timing."""

from __future__ import annotations

import asyncio

from druid_access.loops import BACKOFF_CAP, Loop, Loops, backoff, resync_delay
from druid_access.reconcile import Refs
from druid_access.status import Outcome, Reason, StatusBuilder, status_patch


def test_first_status_and_unchanged_second_pass() -> None:
    synced = Outcome(Reason.SYNCED, "in sync", remote_name="bob", owned=True, changes=("created",))
    first = StatusBuilder({}, 1, timestamp="2026-01-01T00:00:00Z").build(synced)
    assert first["observedGeneration"] == 1
    assert first["conditions"][0]["type"] == "Ready"
    assert first["conditions"][0]["status"] == "True"
    assert first["owned"] is True
    quiet = Outcome(Reason.SYNCED, "in sync", remote_name="bob", owned=True)
    second = StatusBuilder(first, 1, timestamp="2026-01-01T00:05:00Z").build(quiet)
    assert status_patch(first, second) is None, "an unchanged pass must not write"
    assert second["conditions"][0]["lastTransitionTime"] == "2026-01-01T00:00:00Z"


def test_transition_time_moves_only_when_status_changes() -> None:
    first = StatusBuilder({}, 1, timestamp="t1").build(Outcome(Reason.ROLE_NOT_FOUND, "waiting for r"))
    second = StatusBuilder(first, 1, timestamp="t2").build(Outcome(Reason.SECRET_NOT_FOUND, "no secret"))
    assert second["conditions"][0]["lastTransitionTime"] == "t1"  # still False
    patch = status_patch(first, second)
    assert patch is not None and patch["conditions"][0]["reason"] == "SecretNotFound"
    third = StatusBuilder(second, 1, timestamp="t3").build(Outcome(Reason.SYNCED, "in sync"))
    assert third["conditions"][0]["lastTransitionTime"] == "t3"


def test_drift_condition_and_counter() -> None:
    outcome = Outcome(Reason.DRIFTED, "differs", drift=("title",), drift_detected=True)
    status = StatusBuilder({"driftCount": 2}, 3, timestamp="t").build(outcome)
    assert status["driftCount"] == 3
    drifted = [c for c in status["conditions"] if c["type"] == "Drifted"]
    assert drifted[0]["message"] == "remote differs in: title"


def test_backoff_grows_and_is_capped() -> None:
    assert 0.5 <= backoff(0, 100) <= 1
    assert 4 <= backoff(3, 100) <= 8
    assert backoff(30, 60) <= 60


def test_next_delay_uses_backoff_for_retryable_and_resync_otherwise() -> None:
    loop = Loop(("DruidUser", "ns", "a"))
    delays = [loop.next_delay(Outcome(Reason.UNREACHABLE, "x"), 300) for _ in range(5)]
    assert delays[-1] > delays[0]
    assert max(delays) <= BACKOFF_CAP
    synced = loop.next_delay(Outcome(Reason.SYNCED, "ok"), 300)
    assert 270 <= synced <= 330
    assert loop.attempts == 0
    assert 9 <= resync_delay(10) <= 11


async def test_wake_ups_by_secret_and_role() -> None:
    loops = Loops()
    user = loops.open(("DruidUser", "ns", "bob"))
    loops.set_refs(user, Refs(target="default", secrets=frozenset({"bob-pw"}), roles=frozenset({"reader"})))
    assert loops.wake_for_secret("ns", "bob-pw") == 1
    assert loops.wake_for_secret("other", "bob-pw") == 0
    assert loops.wake_for_role("default", "reader") == 1

    async def stopped() -> None:
        await asyncio.sleep(60)

    await asyncio.wait_for(user.sleep(60, stopped), timeout=5)  # returns at once: woken
    loops.close(user.key)
    assert loops.wake_for_secret("ns", "bob-pw") == 0
