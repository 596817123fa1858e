"""kopf registrations, and nothing else.

Per kind, an event handler that keeps the claims index (``claim_index``: which resource
claims which remote name) and hands each watch event to ``Loops`` (which queues a pass when the
object is new, its spec changes, its deletion starts, or it owns a remote object and lost its
finalizer; the other wake-ups are listed in loops.py). kopf watches; the passes, deletions
included, run on ``Loops``' bounded pool of workers (``passes.run_pass``), not on a task per
object, and keep the operator's finalizer themselves (``finalizer``). Secrets are watched by
``secret_store`` (label-selected, which kopf cannot do server-side), which wakes the objects
reading them through ``passes.secret_changed``.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from typing import Any, cast

import kopf

from druid_access import finalizer
from druid_access.loops import ObjectKey
from druid_access.models import GROUP, VERSION
from druid_access.passes import App
from druid_access.reconcile import Emit
from druid_access.resources import KINDS
from druid_access.resources.base import AnyKind

PREFIX = GROUP


def post_event(body: Mapping[str, Any]) -> Emit:
    """Kopf's Event poster for one object (``App.events``)."""

    def emit(type_: str, reason: str, message: str) -> None:
        kopf.event(cast(kopf.Body, body), type=type_, reason=reason, message=message)

    return emit


def _key(kind: AnyKind, body: Mapping[str, Any]) -> ObjectKey:
    meta = body["metadata"]
    return (kind.info.kind, meta["namespace"], meta["name"])


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
        await app.stop()

    @kopf.on.event("", "v1", "namespaces", registry=registry)
    async def namespace_changed(type: str | None, body: kopf.Body, **_: Any) -> None:
        name = body["metadata"]["name"]
        app.terminating.discard(name)
        app.alive.discard(name)
        if type == "DELETED":
            return
        (app.terminating if body["metadata"].get("deletionTimestamp") else app.alive).add(name)


def _register_kind(registry: kopf.OperatorRegistry, app: App, kind: AnyKind) -> None:
    @kopf.on.event(GROUP, VERSION, kind.info.plural, registry=registry)
    async def watched(type: str | None, body: kopf.Body, **_: Any) -> None:
        if not app.loops.started:
            await app.start()  # lists every object's claim first
        key, uid = _key(kind, body), body["metadata"]["uid"]
        if type == "DELETED":
            app.gone(uid, key)
            return
        if app.forgotten(uid):  # a list found it gone: this event is older than that
            return
        if type is None and key in app.loops.records:  # kopf lists again: deletions meanwhile untold
            app.relisted(kind)
        app.index_claim(kind, body)
        replaced = app.loops.observe(key, body, listed=type is None)
        if replaced is not None:
            app.forget(replaced)
