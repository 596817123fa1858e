"""The pass a worker runs for one object, and the operator's running state (``App``).

``Loops`` (loops.py) decides when an object gets a pass; ``run_pass`` runs it: a deletion
(``Engine.finalize``, then the finalizer comes off) or a reconcile (``Engine.reconcile``, then
the status), and schedules the retry a failure calls for. The handlers (handlers.py) only
register kopf's watches and hand their events to ``Loops``.
"""

from __future__ import annotations

import asyncio
import logging
import time
import traceback
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from druid_access import finalizer
from druid_access.claim_index import ClaimIndex, claimant_of
from druid_access.kube import KubeError
from druid_access.loops import BACKOFF_CAP, WORKERS, Loops, ObjectKey, Record, TargetKey, backoff
from druid_access.offload import trim
from druid_access.reconcile import ClaimLookup, DeletionBlocked, Emit, Engine
from druid_access.resources import BY_KIND, KINDS
from druid_access.resources.base import AnyKind, Claim
from druid_access.resources.role import RoleKind
from druid_access.status import Outcome, Reason

log = logging.getLogger("druid_access.passes")

DEFAULT_RESYNC = 300.0
POSTPONE_SECONDS = 8.0  # how long a new object may wait, without a status, for roles made with it
LIST_RETRY_SECONDS = 1.0  # after a failed list of the objects, the next one waits this long
SWEEP_PAUSE = 30.0  # a kind is listed for deletions its watch missed at most this often
SWEEP_EVERY = 600.0  # and at least this often: a relist that names no known object goes unseen
FORGOTTEN_FOR = 600.0  # how long a watch event of an object a list found gone is ignored


@dataclass
class App:
    """The operator's running state: the engine, the queue of passes, what the watches said."""

    engine: Engine
    # Posts a Kubernetes Event for an object (kopf's, given by the handlers).
    events: Callable[[Mapping[str, Any]], Emit]
    loops: Loops = field(default_factory=Loops)
    # What the namespace watch reported: namespaces being deleted (nothing is reconciled and no Event
    # is posted there: the API server refuses new objects and their resources are on their way out),
    # and namespaces seen alive.
    terminating: set[str] = field(default_factory=set)
    alive: set[str] = field(default_factory=set)
    # The namespaces watched (None: all), where ``list_claims`` and ``sweep`` list.
    namespaces: Sequence[str] | None = None
    # Who claims which remote name, kept from the watch events (``index_claim``), once from a
    # list of every object (``list_claims``), and cleared of what a list finds gone (``sweep``).
    claimants: ClaimIndex = field(default_factory=ClaimIndex)
    listed: bool = False
    workers: int = WORKERS
    # Objects whose remote side the deletion pass finished, until their DELETED event: a stale
    # watch event that queues the deletion again only takes the finalizer off.
    finalized: set[str] = field(default_factory=set)
    _starting: asyncio.Lock = field(default_factory=asyncio.Lock)
    _listing: asyncio.Lock = field(default_factory=asyncio.Lock)
    _list_failed: float = -LIST_RETRY_SECONDS  # when the last list failed (monotonic)
    # Kinds kopf listed again, to be listed for the deletions its watch missed (``relisted``).
    _sweep_due: set[str] = field(default_factory=set)
    _sweeps: dict[str, asyncio.Task[None]] = field(default_factory=dict)
    _swept: dict[str, float] = field(default_factory=dict)  # when each kind was last (monotonic)
    # Objects a list found gone (uid -> when): a late event of theirs, queued in kopf before
    # the list, must not bring them back.
    _forgotten: dict[str, float] = field(default_factory=dict)

    async def start(self) -> None:
        """Start the workers, from a watch event, not at start-up: kopf posts Events through a
        queue it hands only to the tasks that handle objects, and the workers need it. The
        claims' key is read first, also when this replica takes over from another one, and
        every object is listed for what it claims (``list_claims``)."""
        async with self._starting:
            if self.loops.started:
                return
            try:
                await self.engine.claims.load()
                await self.list_claims()  # with the key: it tells which objects own their names
            except KubeError as error:  # both tried again by every pass until they are done
                log.warning("could not read the ownership claims: %s", error)
            self.loops.start(
                lambda record: run_pass(self, record), self.resync, self.target_period, self.workers
            )
            self._sweeps["every kind"] = asyncio.create_task(self._sweep_every())  # beside the kinds' own

    async def list_claims(self) -> None:
        """Index what every object of every kind claims, before any pass: the watch hands the
        objects over one at a time, and a pass must know an older claimant it has not handed
        over yet. (kopf's own indices gave the same guarantee.) Once: the passes that find it
        not done wait for the one list that does it, and after a failed one, for
        ``LIST_RETRY_SECONDS`` (their own retries back off)."""
        async with self._listing:
            if self.listed:
                return
            if time.monotonic() - self._list_failed < LIST_RETRY_SECONDS:
                raise KubeError("listing the objects for their claims failed a moment ago")
            try:
                with self.claimants.listing() as put:
                    for kind in KINDS:
                        async for body in self._list(kind):
                            put(body["metadata"]["uid"], claimant_of(self.engine, kind, body))
            except KubeError:
                self._list_failed = time.monotonic()
                raise
            self.listed = True

    async def _list(self, kind: AnyKind, *, metadata_only: bool = False) -> AsyncIterator[Mapping[str, Any]]:
        """Every object of ``kind`` in the watched namespaces."""
        for namespace in self.namespaces if self.namespaces is not None else (None,):
            async for body in self.engine.kube.list_objects(
                kind.info.plural, namespace, metadata_only=metadata_only
            ):
                yield body

    def gone(self, uid: str, key: ObjectKey | None = None) -> None:
        """The object is deleted: forget it, and wake the other claimants of its remote name
        (the next-oldest may own it now)."""
        record = self.loops.records.get(key) if key is not None else None
        if record is not None and record.uid == uid:  # not a newer object of the same name
            self.loops.close(record.key)
        rivals = self.claimants.rivals(uid)
        self.forget(uid)
        for rival in rivals:
            self.loops.wake(rival)

    def forgotten(self, uid: str) -> bool:
        """Whether a list found the object gone (a watch event of it is stale)."""
        return uid in self._forgotten

    def relisted(self, kind: AnyKind) -> None:
        """kopf lists ``kind`` again (its watch lost its place: a 410, or this replica resumed)
        and tells nothing of what was deleted meanwhile: list it again, and forget what is
        gone (``sweep``), once the last such list is ``SWEEP_PAUSE`` old."""
        self._sweep_due.add(kind.info.kind)
        task = self._sweeps.get(kind.info.kind)
        if task is None or task.done():
            self._sweeps[kind.info.kind] = asyncio.create_task(self._sweeping(kind))

    async def _sweep_every(self) -> None:
        """Every kind now and then: kopf's relist of a namespace whose known objects were all
        deleted meanwhile brings no event to mark it."""
        while True:
            await asyncio.sleep(SWEEP_EVERY)
            for kind in KINDS:
                self.relisted(kind)

    async def _sweeping(self, kind: AnyKind) -> None:
        attempts = 0
        while kind.info.kind in self._sweep_due:
            last = self._swept.get(kind.info.kind, -SWEEP_PAUSE)
            await asyncio.sleep(max(0.0, last + SWEEP_PAUSE - time.monotonic()))
            self._sweep_due.discard(kind.info.kind)
            try:
                await self.sweep(kind)
            except Exception as error:  # KubeError, or a bug (named, not quoted): tried again later
                attempts += 1
                said = error if isinstance(error, KubeError) else type(error).__name__
                log.warning("%s: could not list for deletions the watch missed: %s", kind.info.kind, said)
                self._sweep_due.add(kind.info.kind)
                await asyncio.sleep(backoff(attempts, 60.0))
                continue
            attempts = 0

    async def sweep(self, kind: AnyKind) -> int:
        """Forget the objects of ``kind`` that neither a list nor a watch event since the list
        began names; returns how many. A deletion no watch event told of would otherwise leave
        its object's claim (a younger claimant reported ``Conflict`` for good) and its record (a
        resync would write its remote side again, from its last body)."""
        listed: set[str] = set()
        async with self._listing:  # list_claims puts claims without telling this list
            with self.claimants.watching() as told:
                async for body in self._list(kind, metadata_only=True):
                    listed.add(body["metadata"]["uid"])
                kept = listed | told
                keys = {r.uid: r.key for r in self.loops.records.values() if r.key[0] == kind.info.kind}
                gone = (self.claimants.uids(kind.info.kind) | keys.keys()) - kept
                now = time.monotonic()
                self._swept[kind.info.kind] = now
                self._forgotten = {u: t for u, t in self._forgotten.items() if now - t < FORGOTTEN_FOR}
                for uid in gone:
                    self.gone(uid, keys.get(uid))
                    self._forgotten[uid] = now
        if gone:
            log.info("%s: %d object(s) deleted while the watch was away forgotten", kind.info.kind, len(gone))
        return len(gone)

    async def catch_up(self) -> None:
        """Before this replica becomes the active one again (``peering.follow``): what was
        deleted while it waited, its watches paused, is forgotten first, so that no pass or
        resync works from the last body of an object another replica has finalized."""
        for kind in KINDS:
            await self.sweep(kind)

    async def stop(self) -> None:
        for task in self._sweeps.values():
            task.cancel()
        await asyncio.gather(*self._sweeps.values(), return_exceptions=True)
        self._sweeps.clear()
        await self.loops.stop()

    def index_claim(self, kind: AnyKind, body: Mapping[str, Any]) -> None:
        """What the object claims now, from its latest body (a watch event's)."""
        self.claimants.put(body["metadata"]["uid"], claimant_of(self.engine, kind, body))

    def lookup(self, kind: AnyKind) -> ClaimLookup:
        return self.claimants.lookup(kind.info.kind)

    def forget(self, uid: str) -> None:
        """The object with this uid is gone: drop what is kept about it."""
        self.engine.claims.forget(uid)
        self.claimants.discard(uid)
        self.finalized.discard(uid)

    def resync_seconds(self, kind: AnyKind, target: str | None) -> float:
        cfg = self.engine.target_config(kind, target or "")
        return cfg.resync_seconds if cfg is not None else DEFAULT_RESYNC

    def roles_coming(self, cluster: str, roles: frozenset[str]) -> frozenset[str]:
        """The roles a DruidRole on ``cluster`` claims and has not had its first pass for yet."""
        lookup = self.claimants.lookup(RoleKind.info.kind)
        coming = set()
        for role in roles:
            for claimant in lookup(Claim("role", cluster, role)):
                record = self.loops.records.get((RoleKind.info.kind, claimant.namespace, claimant.name))
                if record is not None and record.passes == 0 and not record.deleting:
                    coming.add(role)
        return frozenset(coming)

    def target_period(self, target: TargetKey) -> float:
        cfg = self.engine.targets.config_of(*target)
        return cfg.resync_seconds if cfg is not None else DEFAULT_RESYNC

    async def resync(self, target: TargetKey) -> None:
        """One snapshot of the target, then a pass for each object it does not confirm.

        A target whose breaker is open is not read: its probe is, and its recovery wakes
        every object on it."""
        target_type, name = target
        targets = self.engine.targets
        if targets.config_of(target_type, name) is None:
            self.loops.resync(target, None)  # refused by admission, at no cost to any target
            return
        if targets.health(target_type, name).down:
            return
        snapshots = targets.snapshots(target_type, name)
        try:
            await targets.refresh(target_type, name)
        except Exception as error:  # the passes it queues say what is wrong, object by object
            log.debug("resync of %s %s: %s", target_type, name, type(error).__name__)
            self.loops.resync(target, None)
            return
        queued = self.loops.resync(target, snapshots if snapshots.current is not None else None)
        log.debug("resync of %s %s: %d object(s) to look at", target_type, name, queued)
        trim()  # the snapshot this one replaced is garbage now


async def _deletion_emitter(app: App, body: Mapping[str, Any]) -> Emit:
    """Events as usual, unless the namespace itself is being deleted: the API server refuses
    new objects there, and kopf would log each refused Event as an error and retry it. Asked of
    the API server only when the watch has not reported the namespace yet (just after start-up)."""
    namespace = body["metadata"]["namespace"]
    terminating = namespace in app.terminating
    if not terminating and namespace not in app.alive:
        try:
            terminating = await app.engine.kube.namespace_terminating(namespace)
        except KubeError as error:
            log.debug("namespace %s: %s; posting Events as usual", namespace, error)
    if not terminating:
        return app.events(body)

    def logged(type_: str, reason: str, message: str) -> None:
        log.info(
            "%s/%s (namespace terminating): %s: %s", namespace, body["metadata"]["name"], reason, message
        )

    return logged


def secret_changed(app: App, namespace: str, name: str) -> None:
    """Wake the resources reading a Secret (called by the watch of opted-in Secrets)."""
    woken = app.loops.wake_for_secret(namespace, name)
    if woken:
        log.info("Secret %s/%s changed: woke %d resource(s)", namespace, name, woken)


async def run_pass(app: App, record: Record) -> None:
    """One pass for one object, on a worker; schedules its retry when it failed."""
    kind = BY_KIND[record.key[0]]
    body = record.current()
    try:
        if not app.engine.claims.loaded:
            await app.engine.claims.load()
        if not app.listed:
            await app.list_claims()
        if body["metadata"].get("deletionTimestamp"):
            await _deletion_pass(app, kind, record, body)
        elif body["metadata"]["namespace"] not in app.terminating:  # else its deletion comes next
            await _reconcile_pass(app, kind, record, body)
    except KubeError as error:  # the API server is away
        if record.attempts == 0:  # once per streak, not once per retry of every object
            log.warning("%s %s/%s: %s; retrying with backoff", *record.key, error)
        record.attempts += 1
        app.loops.retry(record, backoff(record.attempts, 60.0))
    except Exception as error:  # a bug must not stop the object's passes
        # Where it failed (once per streak), without the exception's message: that could quote
        # a value.
        where = (
            "\n" + "".join(traceback.format_tb(error.__traceback__)).rstrip() if not record.attempts else ""
        )
        log.error("%s %s/%s: pass failed: %s%s", *record.key, type(error).__name__, where)
        record.attempts += 1
        app.loops.retry(record, backoff(record.attempts, 60.0))


async def _reconcile_pass(app: App, kind: AnyKind, record: Record, body: dict[str, Any]) -> None:
    meta = body["metadata"]

    async def hold(annotations: Mapping[str, str]) -> bool:
        # Once per version of the body: the watch may bring the version with our finalizer
        # only after this object's next pass has started.
        if not annotations and (finalizer.held(meta) or record.held_at == meta["resourceVersion"]):
            return True
        if not await finalizer.hold(app.engine.kube, kind.info.plural, meta, annotations):
            return False
        record.held_at = meta["resourceVersion"]
        return True

    lookup = app.lookup(kind)
    record.generation = meta.get("generation")
    live, record.live = record.live, False
    emit = app.events(body)
    # A new object may wait (without a status) for roles created with it, for a while.
    patient = time.monotonic() - record.seen < POSTPONE_SECONDS
    # A first pass and a resync observe through the target's snapshot; a change, live.
    result = await app.engine.reconcile(
        kind,
        body,
        lookup,
        emit,
        bulk=not live,
        roles_coming=app.roles_coming if patient else None,
        hold=hold,
    )
    app.loops.set_refs(record, result.refs)
    if result.postponed:  # the role's first pass wakes it
        record.live = record.live or live
        app.loops.retry(record, POSTPONE_SECONDS / 4)
        return
    record.remember(await app.engine.write_status(kind, body, result.outcome, emit=emit))
    record.confirmed = result.confirmed
    first = record.passes == 0
    record.passes += 1
    if kind.makes_roles and (first or result.outcome.changes) and result.refs.target:
        app.loops.wake_for_role(result.refs.target, result.outcome.remote_name or "")
    if result.outcome.reason.retryable:
        resync = app.resync_seconds(kind, result.refs.target)
        record.attempts += 1
        app.loops.retry(record, backoff(record.attempts - 1, min(BACKOFF_CAP, resync)))
    else:
        record.attempts = 0  # the target's resync looks at it again


async def _deletion_pass(app: App, kind: AnyKind, record: Record, body: dict[str, Any]) -> None:
    """Delete the remote side (``Engine.finalize``), then take the finalizer off. While the
    target cannot be reached, the status says why and the deletion waits, as a key in the
    queue: thousands of deletions wait at the cost of their keys."""
    meta = body["metadata"]
    if not finalizer.held(meta):
        return  # never reconciled, or released already: nothing of ours holds it
    uid = meta["uid"]
    if uid not in app.finalized:
        emit = await _deletion_emitter(app, body)
        try:
            done = await app.engine.finalize(kind, body, app.lookup(kind), emit)
        except DeletionBlocked as blocked:
            outcome = Outcome(Reason.DELETION_BLOCKED, blocked.message)
            record.remember(
                await app.engine.write_status(kind, body, outcome, deletion_blocked=blocked.message)
            )
            # A target that is down is probed on its own (its recovery wakes this): look again
            # soon, at no cost to it.
            cap = 10.0 if blocked.reason is Reason.UNREACHABLE else 60.0
            record.attempts += 1
            app.loops.retry(record, backoff(record.attempts - 1, cap))
            return
        app.finalized.add(uid)
        log.info("%s %s/%s: %s", *record.key, done)
    if not await finalizer.release(app.engine.kube, kind.info.plural, meta):
        app.loops.retry(record, 1.0)
