"""Per-target health: a circuit breaker, so that a dead target is asked by one probe, not by every object.

When the passes of ``THRESHOLD`` different objects got no answer from a target (connection
refused or reset, a timeout, a 502/503/504) and no response of any kind came from it in
between, the target is down: every pass on it answers ``Unreachable`` at once without a
request, deletions wait (``DeletionBlocked``), and resyncs coming due send nothing. A single
probe request retries the target with backoff (1 s doubling to ``PROBE_CAP``); its first
answer, or any other response meanwhile, brings the target back. Both changes are reported
through ``on_change``, which wakes every object on the target, so statuses follow within one
probe interval. One object failing again and again counts once: its own retries back off,
and it does not take its target, and the statuses of every object on it, down with it.

Before the breaker opens, a target that has not answered lately (nothing heard for
``FRESH`` seconds, or a failure since) is asked by one pass at a time: a target that died
while idle gets the observation of one object, not one per worker, and one that answers
lets every pass waiting behind the first go on together. Below the passes, every request to
the target goes through ``sending``: while the target is in doubt, requests go one at a time,
and ``PACE`` apart after one got no answer. So a target that dies is sent at most one request
a second (besides those already on their way), before the breaker opens as after, whatever mix
of passes, snapshot reads and probes asks it; a request still waiting its turn when the breaker
opens is not sent at all.

A 500 does not count: Druid answers 500 for one object's trouble (a lost compare-and-swap
race, a value it cannot store), and one object must not take its whole target down.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import datetime
import logging
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

log = logging.getLogger("druid_access.health")

# True inside a breaker's probe task: its request is the one a dead target may be sent.
_PROBING: contextvars.ContextVar[bool] = contextvars.ContextVar("druid_access_probing", default=False)

THRESHOLD = 3
FRESH = 5.0
PROBE_FIRST = 1.0
PROBE_CAP = 30.0
PACE = 1.0  # seconds between requests to a target in doubt, after one got no answer


def _probe_delay(attempt: int) -> float:
    ceiling = min(PROBE_CAP, PROBE_FIRST * 2 ** min(attempt, 16))
    return random.uniform(ceiling / 2, ceiling)


@dataclass
class TargetHealth:
    """The breaker of one target. ``probe`` raises when the target does not answer."""

    label: str
    probe: Callable[[], Awaitable[object]]
    on_change: Callable[[bool], object]  # True: back up; False: down
    down_since: datetime.datetime | None = None
    last_error: str = ""
    probes: int = 0
    heard_at: float = -FRESH  # time.monotonic() of the last response, whatever its status
    _prober: asyncio.Task[None] | None = field(default=None, repr=False)
    _lane: asyncio.Lock = field(default_factory=asyncio.Lock, repr=False)
    _failing: set[object] = field(default_factory=set, repr=False)  # who got no answer since the last one
    _wire: asyncio.Lock = field(default_factory=asyncio.Lock, repr=False)  # one request at a time in doubt
    _quiet_until: float = field(default=0.0, repr=False)  # no request before this (monotonic); 0: none missed
    _news: asyncio.Event = field(
        default_factory=asyncio.Event, repr=False
    )  # set by the next response, or as the breaker opens
    _answers: int = field(default=0, repr=False)  # responses so far

    @property
    def failures(self) -> int:
        return len(self._failing)

    @property
    def down(self) -> bool:
        return self.down_since is not None

    def message(self) -> str:
        """What the statuses say while it is down: the failure that took it down, word for word,
        so that objects which already said so are not written again."""
        return self.last_error

    def heard(self) -> None:
        """A response arrived, whatever its status (the target's client calls this for each
        one but a 502/503/504): the target is there."""
        self.heard_at = time.monotonic()
        self._answers += 1
        self._failing.clear()
        self._quiet_until = 0.0
        self._wake()
        if self.down:
            self._recover()

    @property
    def clear(self) -> bool:
        """Answering lately, and nothing unanswered since (no pass told ``unanswered``, no
        request through ``sending`` went without an answer): passes may ask it together."""
        return self.failures == 0 and not self._missed and time.monotonic() - self.heard_at < FRESH

    @property
    def _missed(self) -> bool:
        """A request through ``sending`` went unanswered since the last answer (it set a pace)."""
        return self._quiet_until > 0.0

    async def admit(self) -> bool:
        """Wait until this pass may send requests. True: it holds the single lane, and must
        call ``leave`` once its first requests are answered or failed."""
        if self.clear:
            return False
        await self._lane.acquire()
        if self.clear:  # the pass before this one was answered
            self._lane.release()
            return False
        return True

    def leave(self) -> None:
        self._lane.release()

    @contextlib.asynccontextmanager
    async def sending(self) -> AsyncIterator[bool]:
        """Around every request to the target, entered by its client as the request goes out
        (a connection slot in hand). Yields False when the request must not be sent: the
        breaker is open, and this is not its probe. While the target is clear, nothing to wait
        for; in doubt, one request at a time, and none sooner than ``PACE`` after one that got
        no answer (no response, or a 502/503/504), unless an answer arrives meanwhile."""
        held = False
        try:
            if not self.clear and not self._refusing:
                await self._wire.acquire()
                held = True
                while (
                    not self.clear
                    and not self._refusing
                    and (wait := self._quiet_until - time.monotonic()) > 0
                ):
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(wait):
                            await self._news.wait()
                if self.clear:  # answered meanwhile: the requests behind this one need not wait for it
                    self._wire.release()
                    held = False
            if self._refusing:
                yield False  # the breaker is open (it opened while this waited): not sent
                return
            answers = self._answers
            try:
                yield True
            except asyncio.CancelledError:
                raise  # given up by its caller: no sign either way
            except BaseException:
                self._missed_unless_answered(answers)
                raise
            self._missed_unless_answered(answers)
        finally:
            if held:
                self._wire.release()

    def _wake(self) -> None:
        """Requests waiting their turn look again (an answer came, or the breaker opened)."""
        self._news.set()
        self._news = asyncio.Event()

    @property
    def _refusing(self) -> bool:
        """Down, and this is not its probe: only the probe asks a dead target."""
        return self.down and not _PROBING.get()

    def _missed_unless_answered(self, answers: int) -> None:
        if self._answers == answers:  # no response to it, nor to any other request meanwhile
            self._quiet_until = time.monotonic() + PACE

    def unanswered(self, error: str, who: object = None) -> None:
        """A request got no answer (connection error, timeout, 502/503/504); ``who`` is the
        object whose pass sent it (None: counted as a new one)."""
        self._failing.add(object() if who is None else who)
        if self.down:  # the statuses keep saying what took it down
            return
        self.last_error = error
        if self.failures < THRESHOLD:
            return
        self.down_since = datetime.datetime.now(datetime.UTC)
        log.warning(
            "%s: the requests of %d objects in a row unanswered (%s); one probe request alone tries "
            "it until it answers",
            self.label,
            self.failures,
            error,
        )
        self._prober = asyncio.ensure_future(self._probe_until_answered())
        self._wake()
        self.on_change(False)

    async def _probe_until_answered(self) -> None:
        _PROBING.set(True)  # in this task's own context: its requests may ask a dead target
        attempt = 0
        while self.down:
            await asyncio.sleep(_probe_delay(attempt))
            attempt += 1
            self.probes += 1
            try:
                await self.probe()
            except Exception as error:  # any failure means: not yet
                log.debug("%s: probe %d unanswered (%s)", self.label, self.probes, type(error).__name__)
                continue
            if self.down:  # the response itself may have brought it back already
                self._recover()

    def _recover(self) -> None:
        self.down_since = None
        self._failing.clear()
        prober, self._prober = self._prober, None
        if prober is not None and prober is not asyncio.current_task():
            prober.cancel()
        log.info("%s answers again", self.label)
        self.on_change(True)

    async def close(self) -> None:
        prober, self._prober = self._prober, None
        if prober is not None:
            prober.cancel()
            await asyncio.gather(prober, return_exceptions=True)
