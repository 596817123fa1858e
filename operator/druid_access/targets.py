"""Clients for the configured targets, built from their credential Secrets and cached.

The credential Secrets are kept by a watch (``CredentialStore``), not read per reconcile.
A client is rebuilt when its Secret's resourceVersion or its CA bundle file changes, so
rotating the operator's own Druid password or Pivot token, or a CA (a mounted Secret is
updated in place), needs no restart. Writes to one store of a target are serialised in a
lane (``write``, ``lanes.Lane``): the Coordinator keeps each store (the authenticator's
users; the authorizer's users, roles and group mappings) as one value updated with
compare-and-swap and gives up after five lost races, so concurrent writers to a store would
fail each other. The two stores are written in parallel lanes; reads stay concurrent.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Generic, TypeVar

from druid_access.clients import (
    AuthenticatorName,
    AuthorizerName,
    CoordinatorClient,
    HttpOptions,
    PivotClient,
)
from druid_access.config import ClusterConfig, OperatorConfig, PivotConfig
from druid_access.health import TargetHealth
from druid_access.kube import KubeApi, SecretData, SecretMissing
from druid_access.lanes import Lane
from druid_access.observation import (
    LANES,
    DruidRemote,
    PivotRemote,
    SharedReads,
    SnapshotView,
    TargetSnapshots,
    read_druid,
    read_pivot,
)
from druid_access.secret_store import CredentialStore

C = TypeVar("C")
T = TypeVar("T")

# Passes reading one target live at once (``Targets.reading``). Objects created together all
# need a live read before their first write; unbounded, 64 passes read at once and the write
# lanes waited for every one of those reads (over 3 s before the first write of 200 users on
# a real Druid 27, which checks the caller's password with PBKDF2 on every request). A few at a
# time, in their order, the first passes write while the next ones read, and the write lanes
# do not wait for a connection behind dozens of reads (the client has 10). At least the
# breaker's THRESHOLD: against a target that stopped answering, the passes holding a turn time
# out and open the breaker, and the ones queued behind them then fail at once.
LIVE_READERS = 4

log = logging.getLogger("druid_access.targets")


@dataclass
class _Cached(Generic[C]):
    version: str  # of the credential Secret and the CA bundle it was built from
    client: C
    close: Callable[[C], Awaitable[None]]


@dataclass
class Target:
    """One Druid cluster or Pivot instance as the operator keeps it: its configuration (None:
    not configured), how messages name it, its breaker, the snapshots of its remote side, its
    write lanes, the passes reading it live, the role reads its passes share (a
    cluster), and its client."""

    type: str  # "cluster" or "pivot"
    name: str
    config: ClusterConfig | PivotConfig | None
    label: str
    health: TargetHealth
    snapshots: TargetSnapshots[Any]
    lanes: dict[str, Lane] = field(default_factory=lambda: {lane: Lane() for lane in LANES})
    readers: asyncio.Semaphore = field(default_factory=lambda: asyncio.Semaphore(LIVE_READERS))
    shared: SharedReads = field(default_factory=SharedReads)
    client: _Cached[Any] | None = None

    async def close(self) -> None:
        for lane in self.lanes.values():
            await lane.close()
        self.snapshots.close()
        self.shared.close()
        await self.health.close()
        if self.client is not None:
            await self.client.close(self.client.client)
            self.client = None


@dataclass
class Targets:
    """The configured targets, each a ``Target`` made when first asked for; the passes name
    one by (target type, name)."""

    config: OperatorConfig
    kube: KubeApi
    _targets: dict[tuple[str, str], Target] = field(default_factory=dict)
    # Told (target type, name, up?) when a target goes down or comes back.
    on_health_change: Callable[[str, str, bool], object] = lambda *_: None
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

    def config_of(self, target_type: str, name: str) -> ClusterConfig | PivotConfig | None:
        """The configuration of a target (None: not configured)."""
        return (self.config.clusters if target_type == "cluster" else self.config.pivots).get(name)

    async def remote(
        self, target_type: str, name: str, *, max_age: float | None = None
    ) -> DruidRemote | PivotRemote:
        """The target's remote; with ``max_age``, observing through a snapshot at most that old."""
        if target_type == "cluster":
            return await self.druid_remote(name, max_age=max_age)
        return await self.pivot_remote(name, max_age=max_age)

    def cluster_config(self, name: str) -> ClusterConfig | None:
        return self.config.clusters.get(name)

    def pivot_config(self, name: str) -> PivotConfig | None:
        return self.config.pivots.get(name)

    def target(self, target_type: str, name: str) -> Target:
        key = (target_type, name)
        found = self._targets.get(key)
        if found is None:
            read = self._read_druid if target_type == "cluster" else self._read_pivot
            text = label(target_type, name)
            found = Target(
                target_type,
                name,
                self.config_of(target_type, name),
                text,
                TargetHealth(
                    text,
                    probe=lambda: self._probe(target_type, name),
                    on_change=lambda up: self.on_health_change(target_type, name, up),
                ),
                TargetSnapshots(text, lambda: read(name)),
            )
            self._targets[key] = found
        return found

    def reading(self, target_type: str, name: str) -> asyncio.Semaphore:
        """Held by a pass while it reads the target live (``LIVE_READERS`` at once)."""
        return self.target(target_type, name).readers

    async def write(
        self, target_type: str, name: str, lane: str | None, batch: Callable[[], Awaitable[T]]
    ) -> T:
        """Run ``batch`` (writes to the target) in its turn in the target's write ``lane``;
        None: in every lane at once (each lane's turn taken in one order, the batch run in the
        last one while the others wait for it)."""
        lanes = self.target(target_type, name).lanes
        if lane is not None:
            return await lanes[lane].run(batch)

        async def nested(rest: tuple[str, ...]) -> T:
            if not rest:
                return await batch()
            return await lanes[rest[0]].run(lambda: nested(rest[1:]))

        return await nested(LANES)

    async def _cached(
        self,
        target: Target,
        secret_name: str,
        ca_bundle: Path | None,
        build: Callable[[SecretData], C],
        close: Callable[[C], Awaitable[None]],
    ) -> C:
        """A target's client, rebuilt (and the old one closed) when its credential Secret or
        its CA bundle changed."""
        secret = await self._secret(secret_name)
        version = f"{secret.resource_version}/{_file_stamp(ca_bundle)}"
        cached: _Cached[C] | None = target.client
        if cached is not None and cached.version == version:
            return cached.client
        client = build(secret)
        if cached is not None:
            await close(cached.client)
        target.client = _Cached(version, client, close)
        return client

    async def druid(self, name: str) -> DruidRemote:
        cfg = self.config.clusters[name]
        ref = cfg.admin_secret

        def build(secret: SecretData) -> DruidRemote:
            client = CoordinatorClient(
                cfg.coordinator_url,
                username=secret.value(ref.username_key).get_secret_value(),
                password=secret.value(ref.password_key),
                options=_options(cfg.timeout_seconds, cfg.ca_bundle, cfg.leader_hosts),
                on_answer=self.health("cluster", name).heard,
                gate=self.health("cluster", name).sending,
            )
            return DruidRemote(client, AuthenticatorName(cfg.authenticator), AuthorizerName(cfg.authorizer))

        return await self._cached(
            self.target("cluster", name),
            ref.name,
            cfg.ca_bundle,
            build,
            lambda remote: remote.client.aclose(),
        )

    async def pivot(self, name: str) -> PivotClient:
        cfg = self.config.pivots[name]

        def build(secret: SecretData) -> PivotClient:
            return PivotClient(
                cfg.url,
                token=secret.value(cfg.token_secret.key),
                options=_options(cfg.timeout_seconds, cfg.ca_bundle),
                on_answer=self.health("pivot", name).heard,
                gate=self.health("pivot", name).sending,
            )

        return await self._cached(
            self.target("pivot", name), cfg.token_secret.name, cfg.ca_bundle, build, PivotClient.aclose
        )

    async def druid_remote(self, name: str, *, max_age: float | None = None) -> DruidRemote:
        """The cluster's remote; with ``max_age``, observing through a snapshot at most that old."""
        since = time.monotonic()
        view = await self._view("cluster", name, max_age)
        shared = self.target("cluster", name).shared
        return replace(await self.druid(name), view=view, roles_read={}, shared=shared, since=since)

    async def pivot_remote(self, name: str, *, max_age: float | None = None) -> PivotRemote:
        return PivotRemote(await self.pivot(name), view=await self._view("pivot", name, max_age))

    async def _view(self, target_type: str, name: str, max_age: float | None) -> SnapshotView[Any] | None:
        if max_age is None:
            return None
        snapshots = self.snapshots(target_type, name)
        snapshot = await snapshots.get(max_age)
        return snapshots.view(snapshot) if snapshot is not None else None

    def snapshots(self, target_type: str, name: str) -> TargetSnapshots[Any]:
        return self.target(target_type, name).snapshots

    async def warm_up(self) -> None:
        """Read every configured target whole, at start-up: the first passes find their
        snapshot ready instead of waiting for kopf to list every object first. A target that
        cannot be read now is read again by the passes (and says why in their status)."""

        async def one(target_type: str, name: str) -> None:
            try:
                await self.refresh(target_type, name)
            except Exception as error:
                log.debug("reading %s at start-up: %s", label(target_type, name), type(error).__name__)

        await asyncio.gather(
            *(one("cluster", name) for name in self.config.clusters),
            *(one("pivot", name) for name in self.config.pivots),
        )

    async def refresh(self, target_type: str, name: str) -> None:
        """Read the target whole now (a resync), unless a read of it is already under way."""
        await self.snapshots(target_type, name).get(0.0)

    def up(self) -> list[tuple[str, str, bool]]:
        """(target type, name, answering?) of every configured target: down while its breaker is open."""
        configured = [("cluster", n) for n in self.config.clusters] + [
            ("pivot", n) for n in self.config.pivots
        ]
        # Called from the metrics server's thread: reads the breakers, never makes one.
        made = dict(self._targets)

        def answering(kind: str, name: str) -> bool:
            target = made.get((kind, name))
            return target is None or not target.health.down

        return [(kind, name, answering(kind, name)) for kind, name in configured]

    def health(self, target_type: str, name: str) -> TargetHealth:
        return self.target(target_type, name).health

    async def _probe(self, target_type: str, name: str) -> None:
        """One cheap request the target answers when it is up (no object is read or written)."""
        if target_type == "cluster":
            await (await self.druid(name)).client.health()
        else:
            await (await self.pivot(name)).list_connections()

    def touched(
        self, target_type: str, name: str, family: str, remote_name: str, *, deleted: bool = False
    ) -> None:
        """A write changed ``remote_name``: later passes read it live until a newer snapshot.

        A deleted role leaves every user that held it: the snapshot is dropped."""
        target = self.target(target_type, name)
        snapshots = target.snapshots
        snapshots.touch(family, remote_name)
        if family == "role":
            target.shared.forget(remote_name)
        if family == "role" and deleted:
            snapshots.role_gone(remote_name)
            snapshots.invalidate()

    def written(self, target_type: str, name: str, family: str, remote_name: str) -> None:
        """A write to ``remote_name`` succeeded: a role written exists."""
        if family == "role":
            self.snapshots(target_type, name).role_made(remote_name)

    async def _read_druid(self, name: str) -> Any:
        remote = await self.druid(name)
        passwords = self.config.clusters[name].credentials_validator != "ldap"
        return await read_druid(remote.client, remote.authenticator, remote.authorizer, passwords=passwords)

    async def _read_pivot(self, name: str) -> Any:
        return await read_pivot(await self.pivot(name))

    async def close(self) -> None:
        for target in self._targets.values():
            await target.close()


def label(target_type: str, name: str) -> str:
    """How messages name a target."""
    return f"Druid cluster {name!r}" if target_type == "cluster" else f"Pivot instance {name!r}"


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
