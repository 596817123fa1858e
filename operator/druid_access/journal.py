"""Ownership claims not yet recorded in a resource's status, kept in one ConfigMap.

Before its first remote create, a resource must be known as the creator even if the operator
dies before the status saying ``owned: true`` is written; otherwise the next pass would take
the object it made for a pre-existing one. The claim is the resource's uid in the ConfigMap
``NAME`` in the operator's namespace, where tenants cannot write (a tenant could forge an
annotation on its own object and skip the adoption rules). Claims made while a write is in
flight are written together by the next one (group commit), so applying many objects at once
costs a few ConfigMap writes, not one per object: a claim that comes while others are being
made waits ``LINGER`` for more before it is written. A claim is dropped, lazily and in groups,
once the status holds it or the resource is gone.
"""

from __future__ import annotations

import asyncio
import logging
import time

from druid_access.kube import Kube, KubeError

log = logging.getLogger("druid_access.journal")

NAME = "druid-access-claims"
# Drops wait this long for company before they are written; losing them costs nothing.
DROP_DELAY = 2.0
# A claim made within this long of the one before (objects applied together) waits this long
# for company before it is written; a claim after a quiet spell is written at once.
LINGER = 0.25


class ClaimJournal:
    def __init__(self, kube: Kube, namespace: str) -> None:
        self._kube = kube
        self._namespace = namespace
        self._held: set[str] = set()  # committed claims
        self._adds: dict[str, str] = {}  # uid -> "Kind namespace/name", waiting for a write
        self._drops: set[str] = set()
        self._lock = asyncio.Lock()  # one write at a time; who waits for it joins the next one
        self._dropper: asyncio.TimerHandle | None = None
        self._dropping: asyncio.Task[None] | None = None  # held, so the task is not collected mid-write
        self.writes = 0
        self._last_claim = -LINGER

    def holds(self, uid: str) -> bool:
        return uid in self._held

    async def load(self) -> None:
        """Read the claims (at start, and when this replica becomes the active one)."""
        data = await self._kube.read_config_map(self._namespace, NAME)
        self._held = set(data or ())
        if self._held:
            log.info(
                "%d ownership claim(s) not yet in a status, from %s/%s",
                len(self._held),
                self._namespace,
                NAME,
            )

    async def claim(self, uid: str, what: str) -> None:
        """Record the claim durably; returns once a write holding it has succeeded."""
        if uid in self._held:
            return
        self._drops.discard(uid)
        self._adds[uid] = what
        now = time.monotonic()
        burst, self._last_claim = now - self._last_claim < LINGER, now
        if burst:
            await asyncio.sleep(LINGER)
        async with self._lock:
            if uid in self._held:
                return  # the write of the one before us took ours too
            try:
                await self._write()
            except KubeError:
                self._adds.pop(uid, None)  # not made: nothing may be created on it
                raise
            if uid not in self._held:  # forgotten while it waited: the resource is gone
                raise KubeError(f"the ownership claim of {what} was withdrawn before it was written")

    async def release(self, uid: str) -> None:
        """Withdraw a claim now (the create found the name taken: the object is someone else's)."""
        self._adds.pop(uid, None)
        if uid not in self._held:
            return
        self._drops.add(uid)
        async with self._lock:
            if uid in self._drops:
                await self._write()

    def forget(self, uid: str) -> None:
        """The status holds the claim now, or the resource is gone: drop it at leisure."""
        self._adds.pop(uid, None)
        if uid not in self._held or uid in self._drops:
            return
        self._drops.add(uid)
        if self._dropper is None:
            self._dropper = asyncio.get_running_loop().call_later(DROP_DELAY, self._drop_later)

    def _drop_later(self) -> None:
        self._dropper = None
        self._dropping = asyncio.get_running_loop().create_task(self._write_drops())

    async def _write_drops(self) -> None:
        async with self._lock:
            if not self._drops:
                return
            try:
                await self._write()
            except KubeError as error:  # kept, and tried again with the next write
                log.warning("could not drop recorded ownership claims: %s", error)

    async def _write(self) -> None:
        adds, drops = dict(self._adds), set(self._drops)
        await self._kube.patch_config_map(self._namespace, NAME, {**adds, **dict.fromkeys(drops)})
        self.writes += 1
        self._held |= adds.keys()
        self._held -= drops
        for uid in adds:
            if self._adds.get(uid) == adds[uid]:
                del self._adds[uid]
        self._drops -= drops
