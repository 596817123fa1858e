"""Which objects need a pass, and when: a keyed work queue served by a bounded pool of workers.

Nothing here runs per object while it is idle. An object is queued when its watch event
brings a new spec (or it is first seen, its deletion starts, or it lost its finalizer), a
Secret it reads changes, a role it waits for is created, its target's health changes, a retry
of a failure comes due, or its target's resync finds something to look at. The resync is one
timer per target: it reads the target whole (``observation``) and queues only the objects
that snapshot does not confirm in sync (an object is confirmed when its last pass found it in
sync from a snapshot, and its entry has not changed in any snapshot since). A key is queued
once however often it is asked for, and never handled by two workers at once (``workqueue``).
Background work (the first passes of objects a start or restart lists, a resync's re-checks,
the passes after a health change) waits behind changes and deletions.

What each record keeps is small on purpose: the latest body from the watch as compact JSON,
the status this operator last wrote, what the object depends on (``Refs``), and its retry
count.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import time
from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from dataclasses import dataclass, field
from typing import Any

from druid_access.finalizer import FINALIZER
from druid_access.observation import TargetSnapshots
from druid_access.refs import Refs
from druid_access.status import ready_condition
from druid_access.workqueue import WorkQueue

log = logging.getLogger("druid_access.loops")

ObjectKey = tuple[str, str, str]  # (kind, namespace, name)
TargetKey = tuple[str, str]  # (target type, name)

BACKOFF_FIRST = 1.0
BACKOFF_CAP = 120.0
# A pass spends most of its time waiting (reads, the write of its finalizer and ownership
# claim, the target's write lanes, status patch): many passes wait at once, and the target's
# serialised writes stay fed. Requests per target are bounded by its client.
WORKERS = 64
STOP_GRACE = 10.0  # seconds a pass in flight may take to finish when the operator stops
# A resync coming due while changes are queued or applied waits for them, this long at most:
# its re-checks (a password verified once per user written, a snapshot decoded) would take the
# CPU the changes need, and every object a change touches is read live anyway.
RESYNC_DEFER_MAX = 300.0


def backoff(attempt: int, cap: float) -> float:
    """Exponential backoff with full jitter: 1, 2, 4 ... seconds, never above ``cap``."""
    ceiling = min(cap, BACKOFF_FIRST * (2 ** min(attempt, 16)))
    return random.uniform(ceiling / 2, ceiling)


def resync_delay(period: float) -> float:
    """The resync period with ±10 % jitter so that targets do not fall due together."""
    return period * random.uniform(0.9, 1.1)


_LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"


def _compact(body: Mapping[str, Any], *, status: bool) -> bytes:
    """The body as compact JSON without what no pass reads: managedFields, kubectl's copy of
    the whole object, and the status when this operator has written a newer one."""
    meta = {k: v for k, v in body["metadata"].items() if k != "managedFields"}
    annotations = meta.get("annotations")
    if annotations and _LAST_APPLIED in annotations:
        meta["annotations"] = {k: v for k, v in annotations.items() if k != _LAST_APPLIED}
    kept = {k: v for k, v in body.items() if k != "status" or status}
    return json.dumps({**kept, "metadata": meta}, separators=(",", ":")).encode()


def _lost_finalizer(body: Mapping[str, Any], record: Record) -> bool:
    """An object that owns its remote object without the finalizer (removed by someone, or
    replaced whole): its deletion would not wait for the remote delete."""
    if FINALIZER in (body["metadata"].get("finalizers") or ()):
        return False
    status = json.loads(record.written) if record.written is not None else body.get("status") or {}
    return status.get("owned") is True


@dataclass(slots=True)
class Record:
    key: ObjectKey
    body: bytes  # the latest body from the watch (without managedFields)
    generation: int | None  # the generation the latest pass started from
    written: bytes | None = None  # the status this operator last wrote: newer than the body's
    attempts: int = 0
    refs: Refs = field(default_factory=Refs)
    live: bool = False  # the pending pass brings a change to apply: observe live
    confirmed: int = 0  # the target snapshot that last confirmed it in sync (0: none)
    deleting: bool = False  # its deletion started: its passes are deletion passes
    held_at: str | None = None  # the version of the body this operator put its finalizer on
    passes: int = 0  # passes completed (with a status written)
    seen: float = field(default_factory=time.monotonic)  # when the watch first reported it
    uid: str = ""
    reason: str | None = None  # the Ready reason of the latest status (for the objects gauge)

    def current(self) -> dict[str, Any]:
        """The body to reconcile: the watch's, with the status this operator last wrote."""
        body: dict[str, Any] = json.loads(self.body)
        if self.written is not None:
            body["status"] = json.loads(self.written)
        return body

    def remember(self, status: Mapping[str, Any]) -> None:
        self.written = json.dumps(status, separators=(",", ":")).encode()
        self.reason = ready_reason(status)


def ready_reason(status: Mapping[str, Any] | None) -> str | None:
    reason = (ready_condition(status) or {}).get("reason")
    return reason if isinstance(reason, str) else None


Pass = Callable[[Record], Awaitable[None]]


@dataclass
class Loops:
    """Every object the watch reported, indexed by what can wake it, and the queue."""

    records: dict[ObjectKey, Record] = field(default_factory=dict)
    queue: WorkQueue[ObjectKey] = field(default_factory=WorkQueue)
    _by_secret: dict[tuple[str, str], set[ObjectKey]] = field(default_factory=lambda: defaultdict(set))
    _by_role: dict[tuple[str, str], set[ObjectKey]] = field(default_factory=lambda: defaultdict(set))
    _by_target: dict[TargetKey, set[ObjectKey]] = field(default_factory=lambda: defaultdict(set))
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)
    _resync: tuple[Callable[[TargetKey], Coroutine[Any, Any, None]], Callable[[TargetKey], float]] | None = (
        None
    )
    _resyncing: dict[TargetKey, asyncio.Task[None]] = field(default_factory=dict)
    # Cleared while another replica is the active one: workers and resyncs wait (kopf pauses
    # its own watches then, but knows nothing of these tasks).
    _active: asyncio.Event = field(default_factory=asyncio.Event)

    def __post_init__(self) -> None:
        self._active.set()

    @property
    def started(self) -> bool:
        return bool(self._tasks)

    @property
    def paused(self) -> bool:
        return not self._active.is_set()

    def pause(self) -> None:
        """No new pass or resync starts (passes in flight finish) until ``resume``."""
        self._active.clear()

    def resume(self) -> None:
        self._active.set()

    # -- what the watch reports ------------------------------------------------------------

    def observe(self, key: ObjectKey, body: Mapping[str, Any], *, listed: bool = False) -> str | None:
        """A watch event: keep the body; queue a pass if the object is new, its spec changed
        or its deletion started. Returns the uid of an object of the same name whose deletion
        the watch never reported (a relist found another one): it is forgotten.

        ``listed``: reported by a listing (a start or restart), not as a change: its first pass
        is background work, queued behind changes and deletions."""
        uid = body["metadata"].get("uid") or ""
        generation = body["metadata"].get("generation")
        deleting = bool(body["metadata"].get("deletionTimestamp"))
        record = self.records.get(key)
        replaced = None
        if record is not None and record.uid != uid:
            replaced = record.uid
            self.close(key)
            record = None
        if record is None:
            self.records[key] = Record(
                key,
                _compact(body, status=True),
                generation,
                deleting=deleting,
                uid=uid,
                reason=ready_reason(body.get("status")),
            )
            # Its first pass observes through the target's snapshot.
            self.queue.add(key, later=listed and not deleting)
            return replaced
        record.body = _compact(body, status=record.written is None)
        if record.written is None:
            record.reason = ready_reason(body.get("status"))
        if deleting and not record.deleting:
            record.deleting = True
            record.attempts = 0
            self.queue.add(key)  # after a pass in flight, never beside it
        elif record.generation != generation:
            self.wake(key)
        elif not deleting and _lost_finalizer(body, record):
            self.wake(key, live=False)  # someone took it off: the pass puts it back
        return None

    def by_reason(self) -> Counter[tuple[str, str]]:
        """How many objects of each kind have each Ready reason (none yet: "Pending"). Called
        from the metrics server's thread: the records are copied in one step, under the GIL."""
        records = list(self.records.values())
        return Counter((record.key[0], record.reason or "Pending") for record in records)

    def close(self, key: ObjectKey) -> None:
        """The object is gone: forget it."""
        record = self.records.pop(key, None)
        self.queue.forget(key)
        if record is not None:
            self._unindex(record)

    # -- indexes ---------------------------------------------------------------------------

    def set_refs(self, record: Record, refs: Refs) -> None:
        if refs == record.refs:
            return
        self._unindex(record)
        record.refs = refs
        _, namespace, _ = record.key
        for secret in refs.secrets:
            self._by_secret[(namespace, secret)].add(record.key)
        if refs.target is not None:
            target = (refs.target_type, refs.target)
            self._by_target[target].add(record.key)
            self._resync_task(target)
            for role in refs.roles:
                self._by_role[(refs.target, role)].add(record.key)

    def _unindex(self, record: Record) -> None:
        _, namespace, _ = record.key
        refs = record.refs
        for secret in refs.secrets:
            self._by_secret.get((namespace, secret), set()).discard(record.key)
        if refs.target is not None:
            self._by_target.get((refs.target_type, refs.target), set()).discard(record.key)
            for role in refs.roles:
                self._by_role.get((refs.target, role), set()).discard(record.key)

    # -- wake-ups --------------------------------------------------------------------------

    def wake(self, key: ObjectKey, *, live: bool = True, later: bool = False) -> bool:
        """Queue the object's next pass now; ``live``: it has a change to apply (read live);
        ``later``: a re-check, queued behind changes and deletions."""
        record = self.records.get(key)
        if record is None:
            return False
        record.live = record.live or live
        self.queue.add(key, later=later)
        return True

    def retry(self, record: Record, delay: float) -> None:
        if record.key in self.records:
            self.queue.add_after(record.key, delay)

    def wake_for_secret(self, namespace: str, name: str) -> int:
        keys = list(self._by_secret.get((namespace, name), ()))
        return sum(self.wake(key) for key in keys)

    def wake_for_role(self, target: str, role: str) -> int:
        """The objects waiting for a role that now exists. Through the snapshot: it confirms
        them only in sync, and that the role exists is read live when the snapshot lacks it."""
        keys = list(self._by_role.get((target, role), ()))
        return sum(self.wake(key, live=False) for key in keys)

    def wake_for_target(self, target_type: str, target: str) -> int:
        """Every object on a target, after its health changed (its snapshot serves them)."""
        keys = list(self._by_target.get((target_type, target), ()))
        records = [self.records.get(key) for key in keys]
        # A waiting deletion resumes first; the others only tell their status.
        return sum(self.wake(r.key, live=False, later=not r.deleting) for r in records if r is not None)

    # -- the per-target resync -------------------------------------------------------------

    def resync(self, target: TargetKey, snapshots: TargetSnapshots[Any] | None) -> int:
        """Queue the target's objects that its current snapshot does not confirm in sync.

        ``snapshots`` None (no snapshot: a target not configured, or its bulk read failed):
        every object of the target gets a pass."""
        queued = 0
        current = snapshots.current if snapshots is not None else None
        for key in list(self._by_target.get(target, ())):
            record = self.records.get(key)
            if record is None or record.deleting:
                continue
            entry = record.refs.entry
            if (
                snapshots is not None
                and current is not None
                and entry is not None
                and snapshots.unchanged_since(record.confirmed, entry)
            ):
                record.confirmed = current.number
                continue
            queued += self.wake(key, live=False, later=True)
        return queued

    # -- running ---------------------------------------------------------------------------

    def start(
        self,
        run_pass: Pass,
        resync_target: Callable[[TargetKey], Coroutine[Any, Any, None]],
        period: Callable[[TargetKey], float],
        workers: int = WORKERS,
    ) -> None:
        """Start the workers and the resync timer (inside the operator's event loop)."""
        for _ in range(workers):
            self._tasks.append(asyncio.create_task(self._work(run_pass)))
        self._resync = (resync_target, period)
        for target in list(self._by_target):
            self._resync_task(target)

    async def stop(self) -> None:
        """Let passes in flight finish (within ``STOP_GRACE``), then stop every task."""
        self.queue.close()
        held = [asyncio.ensure_future(self.queue.released(key)) for key in self.queue.held()]
        if held:
            await asyncio.wait(held, timeout=STOP_GRACE)
        tasks = [*self._tasks, *self._resyncing.values()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, *held, return_exceptions=True)
        self._tasks.clear()
        self._resyncing.clear()

    async def _work(self, run_pass: Pass) -> None:
        while True:
            key = await self.queue.get()
            try:
                await self._active.wait()  # held meanwhile: it stays queued once, not lost
                record = self.records.get(key)
                if record is not None:
                    await run_pass(record)
            except Exception:  # a bug must not end a worker
                log.exception("%s %s/%s: pass failed", *key)
            finally:
                self.queue.done(key)

    async def _ready_to_resync(self) -> None:
        """Return once the operator is active and no change is queued or applied (the latter
        ``RESYNC_DEFER_MAX`` at most; a pause meanwhile starts the wait again)."""
        while True:
            await self._active.wait()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(RESYNC_DEFER_MAX):  # not wait_for: it can swallow a cancel on 3.11
                    await self.queue.settled()
            if self._active.is_set():
                return

    def _resync_task(self, target: TargetKey) -> None:
        if self._resync is None or target in self._resyncing:
            return
        resync_target, period = self._resync
        self._resyncing[target] = asyncio.create_task(self._resync_timer(target, resync_target, period))

    async def _resync_timer(
        self,
        target: TargetKey,
        resync_target: Callable[[TargetKey], Coroutine[Any, Any, None]],
        period: Callable[[TargetKey], float],
    ) -> None:
        """One target, once per its resync period: one snapshot, then the objects it does not
        confirm. A timer per target (there are few), so a slow target delays no other."""
        while True:
            await asyncio.sleep(resync_delay(period(target)))
            await self._ready_to_resync()
            if not self._by_target.get(target):
                continue
            try:
                await resync_target(target)
            except Exception:  # a bug must not end the target's resyncs
                log.exception("resync of %s %s failed", *target)
