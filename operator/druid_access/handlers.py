"""kopf registrations, and nothing else: each handler hands over to ``Engine`` or ``Loops``.

Per kind: an index of claims (which resource claims which remote name; kopf fills every
index before any handler runs, so the oldest claimant is known from the first pass), a
daemon running the object's reconcile loop, an event handler that wakes the loop when
the spec changes, and a deletion handler behind the finalizer. Secrets are watched by
``secret_store`` (label-selected, which kopf cannot do server-side), which wakes the loops
through ``secret_changed``.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import kopf

from druid_access.kube import KubeError
from druid_access.loops import Loops, ObjectKey, backoff
from druid_access.models import GROUP, VERSION
from druid_access.reconcile import (
    AnyKind,
    Claimant,
    ClaimLookup,
    DeletionBlocked,
    Emit,
    Engine,
    admission,
)
from druid_access.resources.base import Claim
from druid_access.resources.connection import ConnectionKind
from druid_access.resources.group_mapping import GroupMappingKind
from druid_access.resources.role import RoleKind
from druid_access.resources.user import UserKind
from druid_access.status import Outcome, Reason

log = logging.getLogger("druid_access.handlers")

KINDS: tuple[AnyKind, ...] = (UserKind(), RoleKind(), GroupMappingKind(), ConnectionKind())
PREFIX = GROUP
FINALIZER = f"{GROUP}/finalizer"
DEFAULT_RESYNC = 300.0


@dataclass
class App:
    engine: Engine
    loops: Loops = field(default_factory=Loops)
    # What the namespace watch reported: namespaces being deleted (nothing is reconciled and no Event
    # is posted there: the API server refuses new objects and their resources are on their way out),
    # and namespaces seen alive.
    terminating: set[str] = field(default_factory=set)
    alive: set[str] = field(default_factory=set)

    def resync_seconds(self, kind: AnyKind, target: str | None) -> float:
        cfg = self.engine.target_config(kind, target or "")
        return cfg.resync_seconds if cfg is not None else DEFAULT_RESYNC


def _key(kind: AnyKind, body: Mapping[str, Any]) -> ObjectKey:
    meta = body["metadata"]
    return (kind.info.kind, meta["namespace"], meta["name"])


def _emitter(body: kopf.Body) -> Emit:
    def emit(type_: str, reason: str, message: str) -> None:
        kopf.event(body, type=type_, reason=reason, message=message)

    return emit


async def _deletion_emitter(app: App, body: kopf.Body) -> Emit:
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


def _snapshot(body: Mapping[str, Any]) -> dict[str, Any]:
    return copy.deepcopy(dict(body))


class _NoDiffBase(kopf.DiffBaseStorage):
    """No record of the last handled spec: kopf keeps one (an annotation, one more write per
    object) only to tell creations from updates for on.create/on.update handlers, and this
    operator has none (its loops compare the spec with the remote side themselves)."""

    def fetch(self, *, body: kopf.Body) -> kopf.BodyEssence | None:
        return None

    def store(self, *, body: kopf.Body, patch: kopf.Patch, essence: kopf.BodyEssence) -> None:
        return None


def configure(settings: kopf.OperatorSettings) -> None:
    """Keep kopf's bookkeeping under our group and its writes to objects to a minimum."""
    settings.persistence.finalizer = FINALIZER
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=PREFIX)
    settings.persistence.diffbase_storage = _NoDiffBase()
    settings.posting.level = logging.INFO
    settings.watching.server_timeout = 300
    settings.watching.client_timeout = 330


def register(registry: kopf.OperatorRegistry, app: App) -> None:
    for kind in KINDS:
        _register_kind(registry, app, kind)

    @kopf.on.event("", "v1", "namespaces", registry=registry)
    def namespace_changed(type: str | None, body: kopf.Body, **_: Any) -> None:
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
    def claims(body: kopf.Body, **_: Any) -> dict[tuple[str, str], Claimant] | None:
        try:
            spec = kind.spec_model(body.get("spec") or {})
        except ValueError:
            return None
        meta = body["metadata"]
        target = app.engine.target_config(kind, kind.target_name(spec))
        owned = (body.get("status") or {}).get("owned") is True
        if admission(kind, spec, meta, target, owned=owned) is not None:
            return None  # a resource refused on its target cannot claim a name there
        claimant = Claimant(
            created=meta.get("creationTimestamp") or "",
            namespace=meta["namespace"],
            name=meta["name"],
            uid=meta["uid"],
        )
        return {(kind.target_name(spec), kind.remote_name(spec, meta["name"])): claimant}

    @kopf.daemon(*resource, id=f"loop_{plural}", registry=registry, cancellation_timeout=10.0)
    async def loop(body: kopf.Body, stopped: kopf.DaemonStopped, **kwargs: Any) -> None:
        await _run_loop(app, kind, body, stopped, _lookup(kwargs[index_id]))

    @kopf.on.event(*resource, registry=registry)
    def spec_changed(type: str | None, body: kopf.Body, **kwargs: Any) -> None:
        if type == "DELETED":
            # Gone for good, and gone from the claims index (kopf updates indices before it
            # calls handlers): the next-oldest claimant may own the remote name now.
            for claimant in _claimants_of(kind, body, _lookup(kwargs[index_id])):
                app.loops.wake((kind.info.kind, claimant.namespace, claimant.name))
            return
        key = _key(kind, body)
        current = app.loops.loops.get(key)
        if current is not None and current.generation != body["metadata"].get("generation"):
            app.loops.wake(key)

    @kopf.on.delete(*resource, id=f"delete_{plural}", registry=registry)
    async def delete(body: kopf.Body, retry: int, **kwargs: Any) -> None:
        snapshot = _snapshot(body)
        lookup = _lookup(kwargs[index_id])
        emit = await _deletion_emitter(app, body)
        try:
            done = await app.engine.finalize(kind, snapshot, lookup, emit)
        except DeletionBlocked as blocked:
            outcome = Outcome(Reason.DELETION_BLOCKED, blocked.message)
            await app.engine.write_status(kind, snapshot, outcome, deletion_blocked=blocked.message)
            # A target that is down is probed on its own: look again soon, at no cost to it.
            cap = 10.0 if blocked.reason is Reason.UNREACHABLE else 60.0
            raise kopf.TemporaryError(blocked.message, delay=backoff(retry, cap)) from None
        log.info(
            "%s %s/%s: %s",
            kind.info.kind,
            snapshot["metadata"]["namespace"],
            snapshot["metadata"]["name"],
            done,
        )


def _claimants_of(kind: AnyKind, body: Mapping[str, Any], lookup: ClaimLookup) -> list[Claimant]:
    try:
        spec = kind.spec_model(body.get("spec") or {})
    except ValueError:
        return []
    claim = Claim(kind.family, kind.target_name(spec), kind.remote_name(spec, body["metadata"]["name"]))
    return [c for c in lookup(claim) if c.uid != body["metadata"]["uid"]]


async def _run_loop(
    app: App, kind: AnyKind, body: kopf.Body, stopped: kopf.DaemonStopped, lookup: ClaimLookup
) -> None:
    key = _key(kind, body)
    loop = app.loops.open(key)
    # We are the only writer of this status: what we last wrote is newer than a live body
    # whose watch event has not arrived yet.
    written: dict[str, Any] | None = None
    woken = False  # the first pass and every resync observe through the target's snapshot
    try:
        while not stopped:
            snapshot = _snapshot(body)
            if snapshot["metadata"].get("deletionTimestamp"):
                return
            if snapshot["metadata"]["namespace"] in app.terminating:
                await loop.sleep(app.resync_seconds(kind, None), stopped.wait)  # the deletion comes
                continue
            if written is not None:
                snapshot["status"] = written
            loop.generation = snapshot["metadata"].get("generation")
            try:
                result = await app.engine.reconcile(kind, snapshot, lookup, _emitter(body), bulk=not woken)
                app.loops.set_refs(loop, result.refs)
                written = await app.engine.write_status(kind, snapshot, result.outcome, emit=_emitter(body))
            except KubeError as error:  # the status could not be written: the API server is away
                if loop.attempts == 0:  # once per streak, not once per retry of every object
                    log.warning("%s %s/%s: %s; retrying with backoff", *key, error)
                loop.attempts += 1
                woken = await loop.sleep(backoff(loop.attempts, 60.0), stopped.wait)
                continue
            except Exception as error:  # a bug must not end the loop
                log.error("%s %s/%s: reconcile failed: %s", *key, type(error).__name__)
                loop.attempts += 1
                woken = await loop.sleep(backoff(loop.attempts, 60.0), stopped.wait)
                continue
            if kind.family == "role" and result.outcome.changes and result.refs.target:
                app.loops.wake_for_role(result.refs.target, result.outcome.remote_name or "")
            delay = loop.next_delay(result.outcome, app.resync_seconds(kind, result.refs.target))
            woken = await loop.sleep(delay, stopped.wait)
    finally:
        app.loops.close(key)
