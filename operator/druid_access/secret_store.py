"""The Secrets resources refer to, read only when they opt in, kept current by a watch.

A Secret is read for a resource only when it carries ``druidaccess.io/allow: "true"``:
otherwise anyone allowed to create a DruidConnection could have any Secret of the
namespace shipped to Pivot, where it can be read back. The list and watch select on the
label server-side, so the operator never receives another Secret; a reference that is not
in the cache is read with the same selector (and the Secret's name), and only when that
finds nothing is its metadata looked at, to tell a missing Secret (SecretNotFound) from one
that has not opted in (SecretNotAllowed).

The watch also wakes the resources that read a Secret when it changes, appears, or leaves
the selection (deleted or unlabelled).

``CredentialStore`` keeps the operator's own credential Secrets (each cluster's adminSecret,
each Pivot's tokenSecret) the same way, watched by name in the operator's namespace, so a
reconcile never reads them from the API server.
"""

from __future__ import annotations

import asyncio
import contextlib
import fnmatch
import logging
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from druid_access.kube import (
    KubeApi,
    SecretData,
    SecretEvent,
    SecretNotAllowed,
    SecretSelection,
    WatchExpired,
)

log = logging.getLogger("druid_access.secrets")

OnChange = Callable[[str, str], object]
"""(namespace, name) of a Secret whose content or opt-in changed."""

# The server ends each watch after this long; the next one resumes from the last version.
WATCH_SECONDS = 300
RETRY_CAP = 30.0
LIST_WAIT = 5.0


@dataclass
class SecretStore:
    """Opted-in Secrets of the watched namespaces.

    ``namespaces`` are the operator's ``--namespace`` values (kopf's globs allowed), or None
    for every namespace. Exact names are watched one by one (what namespaced RBAC allows);
    globs need a cluster-wide watch, filtered here.
    """

    kube: KubeApi
    namespaces: Sequence[str] | None
    _cache: dict[tuple[str, str], SecretData] = field(default_factory=dict)
    # Set while a selection's list is in the cache: until then (start-up, after a failed
    # watch) a read waits a little for it rather than asking the API server per Secret.
    _listed: dict[SecretSelection, asyncio.Event] = field(default_factory=dict)

    async def get(self, namespace: str, name: str) -> SecretData | None:
        """The Secret if it exists and opted in; None if it does not exist.

        Raises ``SecretNotAllowed`` for a Secret without the label, whose value is never read:
        outside the cache it is read through a request the API server filters by name and
        label, and only an empty answer is looked into (metadata only) to tell why.
        """
        cached = self._cache.get((namespace, name)) or await self._after_listing(namespace, name)
        if cached is not None:
            return cached
        secret = await self.kube.read_allowed_secret(namespace, name)
        if secret is not None:
            return secret
        labels = await self.kube.secret_labels(namespace, name)
        if labels is None:
            return None
        raise SecretNotAllowed(namespace, name)

    def _selections(self) -> list[SecretSelection]:
        if self.namespaces is None or any(_is_glob(ns) for ns in self.namespaces):
            return [SecretSelection(None)]
        return [SecretSelection(ns) for ns in self.namespaces]

    def _watched(self, namespace: str) -> bool:
        if self.namespaces is None:
            return True
        return any(fnmatch.fnmatchcase(namespace, pattern) for pattern in self.namespaces)

    async def _after_listing(self, namespace: str, name: str) -> SecretData | None:
        """The cached Secret once the list covering it is in (at most ``LIST_WAIT`` seconds)."""
        for selection, listed in self._listed.items():
            if selection.covers(namespace, name) and not listed.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(listed.wait(), LIST_WAIT)
                return self._cache.get((namespace, name))
        return None

    async def run(self, on_change: OnChange) -> None:
        """Watch every selection until cancelled; each lists again after an error or expiry."""
        selections = self._selections()
        self._listed = {selection: asyncio.Event() for selection in selections}
        await asyncio.gather(*(self._watch(selection, on_change) for selection in selections))

    async def _watch(self, scope: SecretSelection, on_change: OnChange) -> None:
        failures = 0
        while True:
            try:
                items, version = await self.kube.list_secrets(scope)
                self._replace(scope, [s for s in items if self._watched(s.namespace)], on_change)
                self._listed[scope].set()
                while True:
                    async for event in self.kube.watch_secrets(scope, version, WATCH_SECONDS):
                        version = event.secret.resource_version or version
                        if event.bookmark or not self._watched(event.secret.namespace):
                            continue
                        self._apply(event, on_change)
                    failures = 0  # a watch ran its course: the connection is healthy
            except WatchExpired:
                failures += 1  # list again, after a pause if it keeps happening
            except Exception as error:  # the API server restarting must not end the watch
                failures += 1
                log.warning("watching %s failed (%s); listing again", scope, type(error).__name__)
            # Until the next list succeeds, reads bypass the cache: it may be stale.
            self._forget(scope)
            await asyncio.sleep(random.uniform(0.5, 1.0) * min(RETRY_CAP, 2.0 ** (failures - 1)))

    def _apply(self, event: SecretEvent, on_change: OnChange) -> None:
        secret = event.secret
        key = (secret.namespace, secret.name)
        if event.deleted:
            self._cache.pop(key, None)
        else:
            self._cache[key] = secret
        on_change(*key)

    def _forget(self, scope: SecretSelection) -> None:
        self._listed[scope].clear()
        for key in [key for key in self._cache if scope.covers(*key)]:
            del self._cache[key]

    def _replace(self, scope: SecretSelection, items: Sequence[SecretData], on_change: OnChange) -> None:
        """Take a fresh list as the truth for the selection; wake for whatever differs."""
        fresh = {(s.namespace, s.name): s for s in items}
        stale = [key for key in self._cache if scope.covers(*key)]
        for key in stale:
            if key not in fresh:
                del self._cache[key]
                on_change(*key)
        for key, secret in fresh.items():
            previous = self._cache.get(key)
            self._cache[key] = secret
            if previous is None or previous.resource_version != secret.resource_version:
                on_change(*key)


def _is_glob(namespace: str) -> bool:
    return any(char in namespace for char in "*?[")


@dataclass
class CredentialStore(SecretStore):
    """The operator's credential Secrets ``names``, in its own namespace, watched by name.

    They carry no opt-in label (they are the operator's, not a tenant's). Until the watch
    has listed a Secret, or after it failed, a read goes to the API server.
    """

    names: Sequence[str] = ()

    def _selections(self) -> list[SecretSelection]:
        namespace = (self.namespaces or [""])[0]
        return [SecretSelection(namespace, name, opted_in=False) for name in sorted(set(self.names))]

    async def get(self, namespace: str, name: str) -> SecretData | None:
        cached = self._cache.get((namespace, name)) or await self._after_listing(namespace, name)
        return cached if cached is not None else await self.kube.read_secret(namespace, name)
