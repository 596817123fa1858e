"""Clients for the configured targets, built from their credential Secrets and cached.

The credential Secrets are kept by a watch (``CredentialStore``), not read per reconcile.
A client is rebuilt when its Secret's resourceVersion or its CA bundle file changes, so
rotating the operator's own Druid password or Pivot token, or a CA (a mounted Secret is
updated in place), needs no restart. Writes to one Druid cluster are
serialised by a lock: the Coordinator stores each map as one blob updated with
compare-and-swap and gives up after five lost races (Druid's CAS retry limit), so concurrent writers
would fail each other; reads stay concurrent.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from pathlib import Path
from typing import Generic, TypeVar

from druid_access.clients import (
    AuthenticatorName,
    AuthorizerName,
    CoordinatorClient,
    HttpOptions,
    PivotClient,
)
from druid_access.config import ClusterConfig, OperatorConfig, PivotConfig
from druid_access.kube import Kube, SecretData, SecretMissing
from druid_access.resources.base import DruidRemote
from druid_access.secret_store import CredentialStore

C = TypeVar("C")


@dataclass
class _Cached(Generic[C]):
    version: str
    client: C


@dataclass
class Targets:
    config: OperatorConfig
    kube: Kube
    _druid: dict[str, _Cached[DruidRemote]] = field(default_factory=dict)
    _pivot: dict[str, _Cached[PivotClient]] = field(default_factory=dict)
    _locks: dict[str, asyncio.Lock] = field(default_factory=dict)
    credentials: CredentialStore = field(init=False)

    def __post_init__(self) -> None:
        names = [c.admin_secret.name for c in self.config.clusters.values()]
        names += [p.token_secret.name for p in self.config.pivots.values()]
        self.credentials = CredentialStore(self.kube, [self.config.namespace], names=names)

    async def _secret(self, name: str) -> SecretData:
        secret = await self.credentials.get(self.config.namespace, name)
        if secret is None:
            raise SecretMissing(self.config.namespace, name)
        return secret

    def cluster_config(self, name: str) -> ClusterConfig | None:
        return self.config.clusters.get(name)

    def pivot_config(self, name: str) -> PivotConfig | None:
        return self.config.pivots.get(name)

    def write_lock(self, key: str) -> asyncio.Lock:
        return self._locks.setdefault(key, asyncio.Lock())

    async def druid(self, name: str) -> DruidRemote:
        cfg = self.config.clusters[name]
        ref = cfg.admin_secret
        secret = await self._secret(ref.name)
        version = f"{secret.resource_version}/{_file_stamp(cfg.ca_bundle)}"
        cached = self._druid.get(name)
        if cached is not None and cached.version == version:
            return cached.client
        for key in (ref.username_key, ref.password_key):
            if key not in secret.values:
                raise SecretMissing(self.config.namespace, ref.name, key)
        client = CoordinatorClient(
            cfg.coordinator_url,
            username=secret.values[ref.username_key].get_secret_value(),
            password=secret.values[ref.password_key],
            options=_options(cfg.timeout_seconds, cfg.ca_bundle, cfg.leader_hosts),
        )
        remote = DruidRemote(client, AuthenticatorName(cfg.authenticator), AuthorizerName(cfg.authorizer))
        if cached is not None:
            await cached.client.client.aclose()
        self._druid[name] = _Cached(version, remote)
        return remote

    async def pivot(self, name: str) -> PivotClient:
        cfg = self.config.pivots[name]
        ref = cfg.token_secret
        secret = await self._secret(ref.name)
        version = f"{secret.resource_version}/{_file_stamp(cfg.ca_bundle)}"
        cached = self._pivot.get(name)
        if cached is not None and cached.version == version:
            return cached.client
        if ref.key not in secret.values:
            raise SecretMissing(self.config.namespace, ref.name, ref.key)
        client = PivotClient(
            cfg.url, token=secret.values[ref.key], options=_options(cfg.timeout_seconds, cfg.ca_bundle)
        )
        if cached is not None:
            await cached.client.aclose()
        self._pivot[name] = _Cached(version, client)
        return client

    async def close(self) -> None:
        for druid in self._druid.values():
            await druid.client.client.aclose()
        for pivot in self._pivot.values():
            await pivot.client.aclose()
        self._druid.clear()
        self._pivot.clear()


def _file_stamp(path: Path | None) -> str:
    """What changes when a file is replaced (a kubelet swaps a mounted Secret's symlink)."""
    if path is None:
        return "-"
    try:
        stat = path.stat()
    except OSError:
        return "missing"
    return f"{stat.st_mtime_ns}:{stat.st_size}:{stat.st_ino}"


def _options(timeout: float, ca_bundle: object, redirect_hosts: tuple[str, ...] = ()) -> HttpOptions:
    return HttpOptions(
        connect_timeout=min(timeout, 5.0),
        read_timeout=timeout,
        write_timeout=timeout,
        # How long a request may queue for one of the connections: hundreds of resources
        # reconciled at once (start-up, a resync) queue far longer than one request lasts.
        pool_timeout=max(60.0, 6 * timeout),
        ca_file=str(ca_bundle) if ca_bundle else None,
        redirect_hosts=redirect_hosts,
    )
