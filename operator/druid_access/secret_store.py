"""The Secrets resources refer to, read only when they opt in, kept current by a watch.

A Secret is read for a resource only when it carries ``druidaccess.io/allow: "true"``:
otherwise anyone allowed to create a DruidConnection could have any Secret of the
namespace shipped to Pivot, where it can be read back. The list and watch select on the
label server-side, so the operator never receives another Secret; a reference that is not
in the cache is looked at through the Secret's metadata alone, to tell a missing Secret
(SecretNotFound) from one that has not opted in (SecretNotAllowed).

The watch also wakes the resources that read a Secret when it changes, appears, or leaves
the selection (deleted or unlabelled).
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from druid_access.kube import ALLOW_LABEL, Kube, SecretData, SecretNotAllowed, WatchExpired

log = logging.getLogger("druid_access.secrets")

OnChange = Callable[[str, str], object]
"""(namespace, name) of a Secret whose content or opt-in changed."""

# The server ends each watch after this long; the next one resumes from the last version.
WATCH_SECONDS = 300
RETRY_CAP = 30.0


@dataclass
class SecretStore:
    """Opted-in Secrets of the watched namespaces (``None``: all namespaces)."""

    kube: Kube
    namespaces: Sequence[str] | None
    _cache: dict[tuple[str, str], SecretData] = field(default_factory=dict)

    async def get(self, namespace: str, name: str) -> SecretData | None:
        """The Secret if it exists and opted in; None if it does not exist.

        Raises ``SecretNotAllowed`` for a Secret without the label, whose value is never read.
        """
        cached = self._cache.get((namespace, name))
        if cached is not None:
            return cached
        labels = await self.kube.secret_labels(namespace, name)
        if labels is None:
            return None
        if labels.get(ALLOW_LABEL) != "true":
            raise SecretNotAllowed(namespace, name)
        return await self.kube.read_secret(namespace, name)

    async def run(self, on_change: OnChange) -> None:
        """Watch every scope until cancelled; each scope re-lists after an error or expiry."""
        scopes: Sequence[str | None] = self.namespaces if self.namespaces is not None else [None]
        await asyncio.gather(*(self._watch(scope, on_change) for scope in scopes))

    async def _watch(self, scope: str | None, on_change: OnChange) -> None:
        failures = 0
        while True:
            try:
                items, version = await self.kube.list_allowed_secrets(scope)
                self._replace(scope, items, on_change)
                failures = 0
                while True:
                    async for event in self.kube.watch_allowed_secrets(scope, version, WATCH_SECONDS):
                        secret = event.secret
                        version = secret.resource_version or version
                        key = (secret.namespace, secret.name)
                        if event.deleted:
                            self._cache.pop(key, None)
                        else:
                            self._cache[key] = secret
                        on_change(*key)
            except WatchExpired:
                continue  # list again from now
            except Exception as error:  # the API server restarting must not end the watch
                failures += 1
                delay = random.uniform(0.5, 1.0) * min(RETRY_CAP, 2.0**failures)
                log.warning(
                    "watching Secrets labelled %s=true in %s failed (%s); retrying in %.0f s",
                    ALLOW_LABEL,
                    scope or "all namespaces",
                    type(error).__name__,
                    delay,
                )
                await asyncio.sleep(delay)

    def _replace(self, scope: str | None, items: Sequence[SecretData], on_change: OnChange) -> None:
        """Take a fresh list as the truth for the scope; wake for whatever differs."""
        fresh = {(s.namespace, s.name): s for s in items}
        stale = [key for key in self._cache if scope is None or key[0] == scope]
        for key in stale:
            if key not in fresh:
                del self._cache[key]
                on_change(*key)
        for key, secret in fresh.items():
            previous = self._cache.get(key)
            self._cache[key] = secret
            if previous is None or previous.resource_version != secret.resource_version:
                on_change(*key)
