"""Per-object reconcile loops and the wake-ups that make changes reach Druid promptly.

Each resource has one loop (a kopf daemon) that reconciles, then sleeps until the next
jittered resync, a backoff delay after a retryable failure, or an earlier wake-up: its
spec changed, a Secret it reads changed, or a role it waits for was created. Waking is
in-memory and costs no Kubernetes write.
"""

from __future__ import annotations

import asyncio
import random
from collections import defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from druid_access.reconcile import RETRYABLE, Refs
from druid_access.status import Outcome

ObjectKey = tuple[str, str, str]  # (kind, namespace, name)

BACKOFF_FIRST = 1.0
BACKOFF_CAP = 120.0


def backoff(attempt: int, cap: float) -> float:
    """Exponential backoff with full jitter: 1, 2, 4 ... seconds, never above ``cap``."""
    ceiling = min(cap, BACKOFF_FIRST * (2 ** min(attempt, 16)))
    return random.uniform(ceiling / 2, ceiling)


def resync_delay(period: float) -> float:
    """The resync period with ±10 % jitter so that objects spread over time."""
    return period * random.uniform(0.9, 1.1)


@dataclass
class Loop:
    key: ObjectKey
    wake_event: asyncio.Event = field(default_factory=asyncio.Event)
    generation: int | None = None
    attempts: int = 0
    refs: Refs = field(default_factory=Refs)
    live: bool = False  # the pending wake-up brings a change to apply: observe live

    def next_delay(self, outcome: Outcome, resync: float) -> float:
        if outcome.reason in RETRYABLE:
            self.attempts += 1
            return backoff(self.attempts - 1, min(BACKOFF_CAP, resync))
        self.attempts = 0
        return resync_delay(resync)

    async def sleep(self, delay: float, stopped: Callable[[], Awaitable[object]]) -> bool:
        """Sleep until ``delay`` passes, a wake-up arrives, or ``stopped`` completes.

        True when woken by a change: the next pass has something to apply, and reads live."""
        waker = asyncio.ensure_future(self.wake_event.wait())
        stopper = asyncio.ensure_future(stopped())
        try:
            await asyncio.wait({waker, stopper}, timeout=delay, return_when=asyncio.FIRST_COMPLETED)
        finally:
            waker.cancel()
            stopper.cancel()
        live = self.wake_event.is_set() and self.live
        self.wake_event.clear()
        self.live = False
        return live


@dataclass
class Loops:
    """Every live loop, indexed by what can wake it."""

    loops: dict[ObjectKey, Loop] = field(default_factory=dict)
    _by_secret: dict[tuple[str, str], set[ObjectKey]] = field(default_factory=lambda: defaultdict(set))
    _by_role: dict[tuple[str, str], set[ObjectKey]] = field(default_factory=lambda: defaultdict(set))
    _by_target: dict[tuple[str, str], set[ObjectKey]] = field(default_factory=lambda: defaultdict(set))

    def open(self, key: ObjectKey) -> Loop:
        loop = self.loops.get(key) or Loop(key)
        self.loops[key] = loop
        return loop

    def close(self, key: ObjectKey) -> None:
        loop = self.loops.pop(key, None)
        if loop is not None:
            self._unindex(loop)

    def set_refs(self, loop: Loop, refs: Refs) -> None:
        self._unindex(loop)
        loop.refs = refs
        _, namespace, _ = loop.key
        for secret in refs.secrets:
            self._by_secret[(namespace, secret)].add(loop.key)
        if refs.target is not None:
            self._by_target[(refs.target_type, refs.target)].add(loop.key)
            for role in refs.roles:
                self._by_role[(refs.target, role)].add(loop.key)

    def _unindex(self, loop: Loop) -> None:
        _, namespace, _ = loop.key
        for secret in loop.refs.secrets:
            self._by_secret.get((namespace, secret), set()).discard(loop.key)
        if loop.refs.target is not None:
            self._by_target.get((loop.refs.target_type, loop.refs.target), set()).discard(loop.key)
            for role in loop.refs.roles:
                self._by_role.get((loop.refs.target, role), set()).discard(loop.key)

    def wake(self, key: ObjectKey, *, live: bool = True) -> bool:
        """Run the object's next pass now; ``live``: it has a change to apply (read live)."""
        loop = self.loops.get(key)
        if loop is None:
            return False
        loop.live = loop.live or live
        loop.wake_event.set()
        return True

    def wake_for_secret(self, namespace: str, name: str) -> int:
        keys = list(self._by_secret.get((namespace, name), ()))
        return sum(self.wake(key) for key in keys)

    def wake_for_role(self, target: str, role: str) -> int:
        keys = list(self._by_role.get((target, role), ()))
        return sum(self.wake(key) for key in keys)

    def wake_for_target(self, target_type: str, target: str) -> int:
        """Every object on a target, after its health changed (its snapshot serves them)."""
        keys = list(self._by_target.get((target_type, target), ()))
        return sum(self.wake(key, live=False) for key in keys)
