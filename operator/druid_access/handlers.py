"""kopf registrations, and the pass a worker runs for one object.

Per kind: an index of claims (which resource claims which remote name; kopf fills every
index before any handler runs, so the oldest claimant is known from the first pass), and
an event handler that hands each watch event to ``Loops`` (which queues a pass when the
object is new, its spec changes or its deletion starts). kopf watches; the passes, deletions
included, run on ``Loops``' bounded pool of workers, not on a task per object, and keep the
operator's finalizer themselves (``finalizer``). Secrets are watched by ``secret_store``
(label-selected, which kopf cannot do server-side), which wakes the objects reading them
through ``secret_changed``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, cast

import kopf

from druid_access import finalizer
from druid_access.claims import ClaimKeyMissing
from druid_access.kube import KubeError
from druid_access.loops import BACKOFF_CAP, WORKERS, Loops, ObjectKey, Record, TargetKey, backoff
from druid_access.models import GROUP, VERSION
from druid_access.offload import trim
from druid_access.reconcile import (
    Claimant,
    ClaimLookup,
    DeletionBlocked,
    Emit,
    Engine,
    admission,
)
from druid_access.resources import BY_KIND, KINDS
from druid_access.resources.base import AnyKind, Claim
from druid_access.resources.role import RoleKind
from druid_access.status import Outcome, Reason

log = logging.getLogger("druid_access.handlers")

PREFIX = GROUP
DEFAULT_RESYNC = 300.0
POSTPONE_SECONDS = 8.0  # how long a new object may wait, without a status, for roles made with it


@dataclass
class App:
    engine: Engine
    loops: Loops = field(default_factory=Loops)
    # What the namespace watch reported: namespaces being deleted (nothing is reconciled and no Event
    # is posted there: the API server refuses new objects and their resources are on their way out),
    # and namespaces seen alive.
    terminating: set[str] = field(default_factory=set)
    alive: set[str] = field(default_factory=set)
    # Each kind's claims index (the same object on every call), as the watch hands it over.
    lookups: dict[str, ClaimLookup] = field(default_factory=dict)
    workers: int = WORKERS
    # Objects whose remote side the deletion pass finished, until their DELETED event: a stale
    # watch event that queues the deletion again only takes the finalizer off.
    finalized: set[str] = field(default_factory=set)
    _starting: asyncio.Lock = field(default_factory=asyncio.Lock)

    async def start(self) -> None:
        """Start the workers, from a watch event, not at start-up: kopf posts Events through a
        queue it hands only to the tasks that handle objects, and the workers need it. The
        claims are read first, also when this replica takes over from another one."""
        async with self._starting:
            if self.loops.started:
                return
            try:
                await self.engine.claims.load()
            except KubeError as error:  # tried again by every pass until it is read
                log.warning("could not read the key of the ownership claims: %s", error)
            self.loops.start(
                lambda record: run_pass(self, record), self.resync, self.target_period, self.workers
            )

    def resync_seconds(self, kind: AnyKind, target: str | None) -> float:
        cfg = self.engine.target_config(kind, target or "")
        return cfg.resync_seconds if cfg is not None else DEFAULT_RESYNC

    def roles_coming(self, cluster: str, roles: frozenset[str]) -> frozenset[str]:
        """The roles a DruidRole on ``cluster`` claims and has not had its first pass for yet."""
        lookup = self.lookups.get(RoleKind.info.kind)
        if lookup is None:
            return frozenset()
        coming = set()
        for role in roles:
            for claimant in lookup(Claim("role", cluster, role)):
                record = self.loops.records.get((RoleKind.info.kind, claimant.namespace, claimant.name))
                if record is not None and record.passes == 0 and not record.deleting:
                    coming.add(role)
        return frozenset(coming)

    def target_period(self, target: TargetKey) -> float:
        target_type, name = target
        targets = self.engine.targets
        cfg = targets.cluster_config(name) if target_type == "cluster" else targets.pivot_config(name)
        return cfg.resync_seconds if cfg is not None else DEFAULT_RESYNC

    async def resync(self, target: TargetKey) -> None:
        """One snapshot of the target, then a pass for each object it does not confirm.

        A target whose breaker is open is not read: its probe is, and its recovery wakes
        every object on it."""
        target_type, name = target
        targets = self.engine.targets
        configured = (targets.cluster_config if target_type == "cluster" else targets.pivot_config)(name)
        if configured is None:
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


def _key(kind: AnyKind, body: Mapping[str, Any]) -> ObjectKey:
    meta = body["metadata"]
    return (kind.info.kind, meta["namespace"], meta["name"])


def _emitter(body: Mapping[str, Any]) -> Emit:
    def emit(type_: str, reason: str, message: str) -> None:
        kopf.event(cast(kopf.Body, body), type=type_, reason=reason, message=message)

    return emit


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
        return _emitter(body)

    def logged(type_: str, reason: str, message: str) -> None:
        log.info(
            "%s/%s (namespace terminating): %s: %s", namespace, body["metadata"]["name"], reason, message
        )

    return logged


def _lookup(index: Any) -> ClaimLookup:
    def lookup(claim: Claim) -> list[Claimant]:
        return list(index.get((claim.target, claim.remote_name), []))

    return lookup


class _NoDiffBase(kopf.DiffBaseStorage):
    """No record of the last handled spec: kopf keeps one (an annotation, one more write per
    object) only to tell creations from updates for on.create/on.update handlers, and this
    operator has none (its loops compare the spec with the remote side themselves). Nor does
    it build one: kopf would deep-copy every body of every watch event to compare it with none
    (a few percent of the operator's CPU while thousands of objects converge)."""

    def build(self, *, body: kopf.Body, extra_fields: Iterable[Any] | None = None) -> kopf.BodyEssence:
        return kopf.BodyEssence()

    def fetch(self, *, body: kopf.Body) -> kopf.BodyEssence | None:
        return None

    def store(self, *, body: kopf.Body, patch: kopf.Patch, essence: kopf.BodyEssence) -> None:
        return None


def configure(settings: kopf.OperatorSettings) -> None:
    """Keep kopf's bookkeeping under our group and its writes to objects to a minimum."""
    settings.persistence.finalizer = finalizer.KOPF_FINALIZER
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=PREFIX)
    settings.persistence.diffbase_storage = _NoDiffBase()
    settings.posting.level = logging.INFO
    settings.watching.server_timeout = 300
    settings.watching.client_timeout = 330


def register(registry: kopf.OperatorRegistry, app: App) -> None:
    # Every handler here is a coroutine: kopf runs plain functions on a thread pool, and these
    # touch the queue, which lives on the event loop (and cost too little to hand to a thread).
    for kind in KINDS:
        _register_kind(registry, app, kind)

    @kopf.on.cleanup(registry=registry)
    async def stop_workers(**_: Any) -> None:
        await app.loops.stop()

    @kopf.on.event("", "v1", "namespaces", registry=registry)
    async def namespace_changed(type: str | None, body: kopf.Body, **_: Any) -> None:
        name = body["metadata"]["name"]
        app.terminating.discard(name)
        app.alive.discard(name)
        if type == "DELETED":
            return
        (app.terminating if body["metadata"].get("deletionTimestamp") else app.alive).add(name)


def secret_changed(app: App, namespace: str, name: str) -> None:
    """Wake the resources reading a Secret (called by the watch of opted-in Secrets)."""
    woken = app.loops.wake_for_secret(namespace, name)
    if woken:
        log.info("Secret %s/%s changed: woke %d resource(s)", namespace, name, woken)


def _register_kind(registry: kopf.OperatorRegistry, app: App, kind: AnyKind) -> None:
    plural = kind.info.plural
    index_id = f"claims_{plural}"
    resource = (GROUP, VERSION, plural)

    @kopf.index(*resource, id=index_id, registry=registry)
    async def claims(body: kopf.Body, **_: Any) -> dict[tuple[str, str], Claimant] | None:
        try:
            spec = kind.spec_model(body.get("spec") or {})
        except ValueError:
            return None
        meta = body["metadata"]
        target = app.engine.target_config(kind, kind.target_name(spec))
        try:
            owned = app.engine.owned(body)
        except ClaimKeyMissing:  # indexed again with every watch event of the object
            owned = False
        if admission(kind, spec, meta, target, owned=owned) is not None:
            return None  # a resource refused on its target cannot claim a name there
        claimant = Claimant(
            created=meta.get("creationTimestamp") or "",
            namespace=meta["namespace"],
            name=meta["name"],
            uid=meta["uid"],
        )
        return {(kind.target_name(spec), kind.remote_name(spec, meta["name"])): claimant}

    @kopf.on.event(*resource, registry=registry)
    async def watched(type: str | None, body: kopf.Body, **kwargs: Any) -> None:
        lookup = app.lookups.setdefault(kind.info.kind, _lookup(kwargs[index_id]))
        if not app.loops.started:
            await app.start()
        key = _key(kind, body)
        if type == "DELETED":
            app.loops.close(key)
            _forget(app, body["metadata"]["uid"])
            # Gone for good, and gone from the claims index (kopf updates indices before it
            # calls handlers): the next-oldest claimant may own the remote name now.
            for claimant in _claimants_of(kind, body, lookup):
                app.loops.wake((kind.info.kind, claimant.namespace, claimant.name))
            return
        replaced = app.loops.observe(key, body, listed=type is None)
        if replaced is not None:
            _forget(app, replaced)


def _forget(app: App, uid: str) -> None:
    app.engine.claims.forget(uid)
    app.finalized.discard(uid)


def _claimants_of(kind: AnyKind, body: Mapping[str, Any], lookup: ClaimLookup) -> list[Claimant]:
    try:
        spec = kind.spec_model(body.get("spec") or {})
    except ValueError:
        return []
    claim = Claim(kind.family, kind.target_name(spec), kind.remote_name(spec, body["metadata"]["name"]))
    return [c for c in lookup(claim) if c.uid != body["metadata"]["uid"]]


async def run_pass(app: App, record: Record) -> None:
    """One pass for one object, on a worker; schedules its retry when it failed."""
    kind = BY_KIND[record.key[0]]
    body = record.current()
    try:
        if not app.engine.claims.loaded:
            await app.engine.claims.load()
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
        log.error("%s %s/%s: pass failed: %s", *record.key, type(error).__name__)
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

    lookup = app.lookups[kind.info.kind]
    record.generation = meta.get("generation")
    live, record.live = record.live, False
    emit = _emitter(body)
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
    if kind.family == "role" and (first or result.outcome.changes) and result.refs.target:
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
            done = await app.engine.finalize(kind, body, app.lookups[kind.info.kind], emit)
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
