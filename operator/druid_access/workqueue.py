"""A keyed work queue: each key queued at most once, processed by one worker at a time.

The shape of client-go's workqueue, which Kubernetes controllers are built on: a key added
while it waits is not added twice; a key added while a worker holds it is queued again when
that worker is done, so the latest state is always processed and never by two workers at
once; a delayed add keeps only the earliest due time. No maintained asyncio library offers
these three together (``asyncio.Queue`` deduplicates nothing), so this is the small one the
operator needs: it holds keys, never objects, and costs nothing per key while idle.

A key can be queued ``later``: behind every key queued without it, so that background work
(the first passes of a restart's thousands of listed objects, a resync's re-checks) does not
hold up a change or a deletion a user is waiting for. Asked for again without ``later`` (a
retry coming due included), it moves up; asked for while a worker holds it, it comes back as a
key of its own.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)


class WorkQueue(Generic[K]):
    def __init__(self) -> None:
        self._ready: deque[K] = deque()
        self._later: deque[K] = deque()
        self._queued: set[K] = set()
        self._only_later: set[K] = set()  # queued, and in ``_later`` alone
        self._processing: set[K] = set()
        self._background: set[K] = set()  # held, and handed out as background work
        self._dirty: set[K] = set()  # added again while a worker held it
        self._timers: dict[K, asyncio.TimerHandle] = {}
        self._idle: dict[K, asyncio.Future[None]] = {}  # who waits for a key to be let go
        self._available = asyncio.Event()
        self._settled = asyncio.Event()  # set while no change is queued or held
        self._settled.set()

    def __len__(self) -> int:
        return len(self._queued)

    def held(self) -> list[K]:
        """The keys workers hold now."""
        return list(self._processing)

    def changes_pending(self) -> bool:
        """A key queued, or held, that is not background work (a key asked for again while a
        worker holds it counts too)."""
        return (
            len(self._queued) > len(self._only_later)
            or len(self._processing) > len(self._background)
            or bool(self._dirty)
        )

    async def settled(self) -> None:
        """Return once no change is queued or held (at once if none is)."""
        await self._settled.wait()

    def _note(self) -> None:
        if self.changes_pending():
            self._settled.clear()
        else:
            self._settled.set()

    def add(self, key: K, *, later: bool = False) -> None:
        """Queue ``key`` now (a pending delayed add of it is no longer needed); ``later``:
        behind the keys queued without it (a pending delayed add stays: when it comes due,
        the key moves up)."""
        if not later:
            self._cancel_timer(key)
        if key in self._processing:
            self._dirty.add(key)
        elif key not in self._queued:
            self._queued.add(key)
            if later:
                self._only_later.add(key)
                self._later.append(key)
            else:
                self._ready.append(key)
            self._available.set()
        elif not later and key in self._only_later:  # moves up; its entry in _later is skipped
            self._only_later.discard(key)
            self._ready.append(key)
        self._note()

    def add_after(self, key: K, delay: float) -> None:
        """Queue ``key`` in ``delay`` seconds, unless it is due sooner already (a key waiting
        as background work moves up then)."""
        if key in self._dirty or (key in self._queued and key not in self._only_later):
            return
        loop = asyncio.get_running_loop()
        due = loop.time() + delay
        timer = self._timers.get(key)
        if timer is not None:
            if timer.when() <= due:
                return
            timer.cancel()
        self._timers[key] = loop.call_at(due, self._fire, key)

    def _fire(self, key: K) -> None:
        self._timers.pop(key, None)
        self.add(key)

    def forget(self, key: K) -> None:
        """Drop whatever is pending for ``key`` (it is gone); a worker holding it finishes."""
        self._cancel_timer(key)
        self._dirty.discard(key)
        self._queued.discard(key)  # its place in line is skipped by get(): no scan of the line
        self._only_later.discard(key)
        self._note()

    async def get(self) -> K:
        """The next key; the caller holds it until ``done``."""
        while True:
            while not self._ready and not self._later:
                self._available.clear()
                await self._available.wait()
            key = self._ready.popleft() if self._ready else self._later.popleft()
            if key in self._queued:  # else forgotten, or handled from its other entry
                break
        if key in self._only_later:
            self._background.add(key)
        self._queued.discard(key)
        self._only_later.discard(key)
        self._cancel_timer(key)  # left by a later add: this pass supersedes it
        self._processing.add(key)
        self._note()
        return key

    def _cancel_timer(self, key: K) -> None:
        timer = self._timers.pop(key, None)
        if timer is not None:
            timer.cancel()

    def done(self, key: K) -> None:
        self._processing.discard(key)
        self._background.discard(key)
        waiter = self._idle.pop(key, None)
        if waiter is not None and not waiter.done():
            waiter.set_result(None)
        if key in self._dirty:
            self._dirty.discard(key)
            self.add(key)
        self._note()

    async def released(self, key: K) -> None:
        """Return once no worker holds ``key``."""
        if key not in self._processing:
            return
        waiter = self._idle.get(key)
        if waiter is None:
            waiter = self._idle[key] = asyncio.get_running_loop().create_future()
        await asyncio.shield(waiter)

    def close(self) -> None:
        for timer in self._timers.values():
            timer.cancel()
        self._timers.clear()
