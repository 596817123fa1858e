"""Per-target health: a circuit breaker, so that a dead target is asked by one probe, not by every object.

After ``THRESHOLD`` consecutive passes on a target that got no answer from it (connection
refused or reset, a timeout, a 502/503/504) and no pass in between that did, the target is
down: every pass on it answers ``Unreachable`` at once without a request, deletions wait
(``DeletionBlocked``), and resyncs coming due send nothing. A single probe request retries
the target with backoff (1 s doubling to ``PROBE_CAP``); its first answer, or any pass
answered meanwhile, brings the target back. Both changes are reported through ``on_change``,
which wakes every object on the target, so statuses follow within one probe interval.

A 500 does not count: Druid answers 500 for one object's trouble (a lost compare-and-swap
race, a value it cannot store), and one object must not take its whole target down.
"""

from __future__ import annotations

import asyncio
import datetime
import logging
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

log = logging.getLogger("druid_access.health")

THRESHOLD = 3
PROBE_FIRST = 1.0
PROBE_CAP = 30.0


def _probe_delay(attempt: int) -> float:
    ceiling = min(PROBE_CAP, PROBE_FIRST * 2 ** min(attempt, 16))
    return random.uniform(ceiling / 2, ceiling)


@dataclass
class TargetHealth:
    """The breaker of one target. ``probe`` raises when the target does not answer."""

    label: str
    probe: Callable[[], Awaitable[object]]
    on_change: Callable[[bool], object]  # True: back up; False: down
    failures: int = 0
    down_since: datetime.datetime | None = None
    last_error: str = ""
    probes: int = 0
    _prober: asyncio.Task[None] | None = field(default=None, repr=False)

    @property
    def down(self) -> bool:
        return self.down_since is not None

    def message(self) -> str:
        """What the statuses say while it is down: the failure that took it down, word for word,
        so that objects which already said so are not written again."""
        return self.last_error

    def answered(self) -> None:
        """A request got an answer (any status): the target is there."""
        self.failures = 0
        if self.down:
            self._recover()

    def unanswered(self, error: str) -> None:
        """A request got no answer (connection error, timeout, 502/503/504)."""
        self.failures += 1
        self.last_error = error
        if self.down or self.failures < THRESHOLD:
            return
        self.down_since = datetime.datetime.now(datetime.UTC)
        log.warning(
            "%s: %d requests in a row unanswered (%s); one probe request alone tries it until it answers",
            self.label,
            self.failures,
            error,
        )
        self._prober = asyncio.ensure_future(self._probe_until_answered())
        self.on_change(False)

    async def _probe_until_answered(self) -> None:
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
            self._recover()

    def _recover(self) -> None:
        self.down_since = None
        self.failures = 0
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
