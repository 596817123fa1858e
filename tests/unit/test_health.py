"""The per-target breaker: when it opens, what it sends while open, and how it closes."""

from __future__ import annotations

import asyncio
import itertools

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
    health.heard()  # an answer in between starts the count again
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


async def test_any_response_closes_it_and_stops_the_probe() -> None:
    changes: list[bool] = []
    probe = Probe()
    health = TargetHealth("Druid cluster 'x'", probe, changes.append)
    for _ in range(THRESHOLD):
        health.unanswered("reset")
    health.heard()  # a pass in flight when it opened was answered
    assert not health.down and changes == [False, True]
    calls = probe.calls
    await asyncio.sleep(0.05)
    assert probe.calls == calls


class Passes:
    """Passes on one target as the engine runs them: admitted, one request, the outcome told."""

    def __init__(self, health: TargetHealth, *, answers: bool) -> None:
        self.health = health
        self.answers = answers
        self.in_flight = 0
        self.most_in_flight = 0
        self.requests = 0
        self.unreachable = 0

    async def one(self) -> None:
        lane = await self.health.admit()
        try:
            if self.health.down:
                self.unreachable += 1
                return
            self.requests += 1
            self.in_flight += 1
            self.most_in_flight = max(self.most_in_flight, self.in_flight)
            await asyncio.sleep(0.01)
            self.in_flight -= 1
            if self.answers:
                self.health.heard()  # the client reports every response
        finally:
            if lane:
                self.health.leave()
        if not self.answers:
            self.health.unanswered("connection reset")


async def test_a_target_dead_since_it_was_last_heard_gets_one_request_per_pass_in_turn() -> None:
    health = TargetHealth("Druid cluster 'x'", Probe(), lambda up: None)
    passes = Passes(health, answers=False)
    await asyncio.gather(*(passes.one() for _ in range(16)))
    # 16 workers at once, as after a batch of new objects: one request at a time until the
    # breaker opens, then none.
    assert passes.most_in_flight == 1
    assert passes.requests == THRESHOLD
    assert passes.unreachable == 16 - THRESHOLD
    assert health.down
    await health.close()


async def test_once_the_first_pass_is_answered_the_others_go_together() -> None:
    health = TargetHealth("Druid cluster 'x'", Probe(), lambda up: None)
    passes = Passes(health, answers=True)
    first = asyncio.ensure_future(passes.one())
    rest = [asyncio.ensure_future(passes.one()) for _ in range(15)]
    await asyncio.sleep(0.005)
    assert passes.in_flight == 1  # not heard lately: the first goes alone
    await asyncio.gather(first, *rest)
    assert passes.requests == 16 and passes.most_in_flight == 15
    # Heard lately and nothing failed since: no waiting at all.
    assert health.clear
    assert await health.admit() is False


async def test_a_failure_puts_the_next_passes_in_the_lane_again() -> None:
    health = TargetHealth("Druid cluster 'x'", Probe(), lambda up: None)
    health.heard()
    assert health.clear
    health.unanswered("timeout")
    assert not health.clear
    assert await health.admit() is True
    waiting = asyncio.ensure_future(health.admit())
    await asyncio.sleep(0.01)
    assert not waiting.done()  # behind the one in the lane
    health.heard()
    health.leave()
    assert await waiting is False  # answered meanwhile: it goes without the lane


async def test_one_object_failing_again_and_again_counts_once() -> None:
    changes: list[bool] = []
    health = TargetHealth("Druid cluster 'x'", Probe(), changes.append)
    for _ in range(THRESHOLD * 3):  # its own retries: they back off on their own
        health.unanswered("ReadTimeout", "uid-1")
    assert not health.down and health.failures == 1
    for uid in ("uid-2", "uid-3"):
        health.unanswered("ReadTimeout", uid)
    assert health.down and changes == [False]  # three objects in a row: the target is down
    await health.close()


class Wire:
    """Requests as the target's client sends them: each enters ``sending``; the clock of each
    arrival is kept. ``answers`` says whether the target responds."""

    def __init__(self, health: TargetHealth, *, answers: bool) -> None:
        self.health = health
        self.answers = answers
        self.sent: list[float] = []
        self.in_flight = 0
        self.most_in_flight = 0
        self.refused = 0

    async def request(self) -> None:
        async with self.health.sending() as go:
            if not go:  # the breaker opened while it waited: not sent
                self.refused += 1
                return
            self.sent.append(asyncio.get_running_loop().time())
            self.in_flight += 1
            self.most_in_flight = max(self.most_in_flight, self.in_flight)
            await asyncio.sleep(0.005)
            self.in_flight -= 1
            if self.answers:
                self.health.heard()
                return
        self.health.unanswered("connection reset")


@pytest.fixture
def short_pace(monkeypatch: pytest.MonkeyPatch) -> float:
    monkeypatch.setattr(health_module, "PACE", 0.1)
    return 0.1


async def test_requests_to_a_target_in_doubt_go_one_at_a_time_and_a_pace_apart_after_a_failure(
    short_pace: float,
) -> None:
    health = TargetHealth("Druid cluster 'x'", Probe(), lambda up: None)
    wire = Wire(health, answers=False)
    await asyncio.gather(*(wire.request() for _ in range(THRESHOLD + 1)))
    assert wire.most_in_flight == 1
    # THRESHOLD unanswered (each counted as another object's) opened the breaker: the last
    # one was not sent.
    assert len(wire.sent) == THRESHOLD and wire.refused == 1
    gaps = [later - earlier for earlier, later in itertools.pairwise(wire.sent)]
    assert min(gaps) >= short_pace * 0.95  # a lower bound: a slow machine only widens it
    await health.close()


async def test_a_target_that_answers_is_not_paced(short_pace: float) -> None:
    health = TargetHealth("Druid cluster 'x'", Probe(), lambda up: None)
    wire = Wire(health, answers=True)
    await wire.request()  # not heard lately: it goes alone, and is answered
    assert health.clear
    await asyncio.gather(*(wire.request() for _ in range(8)))
    assert wire.most_in_flight == 8  # clear: all together, none waits


async def test_an_answer_ends_the_wait_of_the_next_request(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(health_module, "PACE", 3600.0)  # without the answer it would wait an hour
    health = TargetHealth("Druid cluster 'x'", Probe(), lambda up: None)
    failing = Wire(health, answers=False)
    await failing.request()  # unanswered: the next waits a pace
    waiting = asyncio.ensure_future(failing.request())
    await asyncio.sleep(0.01)
    assert len(failing.sent) == 1
    health.heard()  # a response from elsewhere (a request sent while it was clear)
    await asyncio.wait_for(waiting, 10)
    assert len(failing.sent) == 2
    await health.close()


async def test_a_dead_target_gets_no_two_requests_within_a_pace_until_the_breaker_opens_and_after(
    short_pace: float, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Passes in the lane, and the probe once it opens, all go through the same wire."""
    wire: Wire
    probe_sent: list[float] = []

    async def probe() -> None:
        async with health.sending() as go:
            assert go  # the probe asks a dead target
            probe_sent.append(asyncio.get_running_loop().time())
        raise ConnectionError("still down")

    health = TargetHealth("Druid cluster 'x'", probe, lambda up: None)
    monkeypatch.setattr(health_module, "_probe_delay", lambda attempt: 0.0)
    wire = Wire(health, answers=False)

    async def one_pass(uid: int) -> None:
        lane = await health.admit()
        try:
            if health.down:
                return
            async with health.sending() as go:
                assert go
                wire.sent.append(asyncio.get_running_loop().time())
        finally:
            if lane:
                health.leave()
        health.unanswered("connection reset", uid)

    await asyncio.gather(*(one_pass(uid) for uid in range(16)))
    assert health.down and len(wire.sent) == THRESHOLD
    for _ in range(1000):  # until the probe has been sent twice (10 s at most)
        if len(probe_sent) >= 2:
            break
        await asyncio.sleep(0.01)
    assert len(probe_sent) >= 2
    times = sorted(wire.sent + probe_sent)
    assert min(b - a for a, b in itertools.pairwise(times)) >= short_pace * 0.95
    await health.close()


async def test_once_a_request_in_doubt_is_answered_those_queued_behind_it_go_together() -> None:
    health = TargetHealth("Druid cluster 'x'", Probe(), lambda up: None)
    wire = Wire(health, answers=True)
    await asyncio.gather(*(wire.request() for _ in range(8)))
    # The first went alone (not heard lately); its answer let the seven queued behind it go
    # without waiting for one another.
    assert len(wire.sent) == 8
    assert wire.most_in_flight > 1


async def test_a_request_without_an_answer_puts_the_target_in_doubt_at_once(short_pace: float) -> None:
    """Before any pass has told the breaker: the next requests already go one at a time and
    a pace apart."""
    health = TargetHealth("Druid cluster 'x'", Probe(), lambda up: None)
    health.heard()
    assert health.clear
    async with health.sending() as go:
        assert go  # sent; no response came
    assert not health.clear and health.failures == 0
    sent: list[float] = []

    async def unanswered_request() -> None:
        async with health.sending() as go:
            assert go
            sent.append(asyncio.get_running_loop().time())

    await asyncio.gather(*(unanswered_request() for _ in range(3)))
    gaps = [later - earlier for earlier, later in itertools.pairwise(sent)]
    assert min(gaps) >= short_pace * 0.95
    health.heard()
    assert health.clear


async def test_requests_waiting_their_turn_when_the_breaker_opens_are_not_sent_but_the_probe_is(
    short_pace: float, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(health_module, "_probe_delay", lambda attempt: 0.0)
    probes: list[bool] = []

    async def probe() -> None:
        async with health.sending() as go:
            probes.append(go)
        raise ConnectionError("still down")

    health = TargetHealth("Druid cluster 'x'", probe, lambda up: None)
    wire = Wire(health, answers=False)
    # Requests that got past their passes' checks while the target was clear, now queued.
    await asyncio.gather(*(wire.request() for _ in range(THRESHOLD + 3)))
    assert health.down
    assert len(wire.sent) == THRESHOLD and wire.refused == 3  # refused at their turn, unsent
    for _ in range(1000):
        if probes:
            break
        await asyncio.sleep(0.01)
    assert probes and all(probes)
    await health.close()


async def test_a_request_given_up_by_its_caller_says_nothing_of_the_target() -> None:
    health = TargetHealth("Druid cluster 'x'", Probe(), lambda up: None)
    health.heard()
    started = asyncio.Event()

    async def slow_request() -> None:
        async with health.sending() as go:
            assert go
            started.set()
            await asyncio.sleep(3600)

    request = asyncio.ensure_future(slow_request())
    await started.wait()
    request.cancel()  # as ``together`` cancels a pass's other read
    await asyncio.gather(request, return_exceptions=True)
    assert health.clear
