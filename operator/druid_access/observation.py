"""How a pass reads the remote side: one bulk snapshot per target, shared, or live per object.

A resync used to cost the target a read or two per object. Here a target is read whole, in
a few requests (Druid: the authenticator's users with their credentials and the authorizer's
users, roles and group mappings, from the Coordinator's cache-sync maps; Pivot: the
connection list), and every timer pass of an object on it (its first pass, each resync)
observes through that snapshot while it is younger than the target's resync period. A pass
woken by a change (spec, Secret, a role appearing) reads its object live.

A snapshot only ever confirms that an object is in sync: when it shows anything to do (or
to refuse), the engine observes that object again, live, and plans from that, so no write
is planned from data up to a resync period old (``reconcile.Engine``). The operator's own
writes mark what they touched, and a read of a touched entry goes live until a snapshot
fetched after the write replaces it. A snapshot that cannot be read (an old Druid, a proxy
refusing Smile) leaves every read live, said once in the log until it works again.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Generic, Protocol, Self, TypeVar

from druid_access.clients.druid_wire import (
    AuthenticatorName,
    AuthenticatorUser,
    AuthorizerName,
    AuthorizerUser,
    GroupMapping,
    Role,
)
from druid_access.clients.error_types import ApiError, NotFound
from druid_access.clients.pivot_wire import PivotConnection
from druid_access.offload import in_thread

if TYPE_CHECKING:  # the clients are passed in: observing imports no HTTP library
    from druid_access.clients import CoordinatorClient, PivotClient

log = logging.getLogger("druid_access.observation")

ALL = "*"
"""In a snapshot's changes, (family, ALL): every entry of that family may have changed."""

Entry = tuple[str, str]  # (family, remote name)

# Up to this many missing roles of one object are read one by one, more through the role list.
ROLE_READS_MAX = 4


class Entries(Protocol):
    def entries(self) -> Mapping[Entry, object]:
        """Every entry with what an object on it is compared with."""
        ...

    def families_behind(self, previous: Self) -> Iterable[Entry]:
        """(family, ALL) for each family whose every entry may have changed since ``previous``."""
        ...


T = TypeVar("T")
U = TypeVar("U")
S = TypeVar("S", bound=Entries)


async def together(reads: Iterable[Awaitable[T]]) -> list[T]:
    """Reads at once; when one fails, the others are cancelled, not left to send their requests
    after the pass gave up (against a target in doubt each would wait its turn, then fail too)."""
    tasks = [asyncio.ensure_future(read) for read in reads]
    try:
        return list(await asyncio.gather(*tasks))
    except BaseException:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise


async def both(first: Awaitable[T], second: Awaitable[U]) -> tuple[T, U]:
    """``together`` for two reads of different types."""
    found: list[Any] = await together([first, second])
    return found[0], found[1]


@dataclass(frozen=True)
class DruidSnapshot:
    """A Druid cluster read whole. ``authn`` is None where passwords are not Druid's (LDAP)."""

    authn: Mapping[str, AuthenticatorUser] | None
    users: Mapping[str, AuthorizerUser]
    roles: Mapping[str, Role]
    group_mappings: Mapping[str, GroupMapping]

    def entries(self) -> Mapping[Entry, object]:
        found: dict[Entry, object] = {}
        authn = self.authn or {}
        for name in authn.keys() | self.users.keys():
            found[("user", name)] = (authn.get(name), self.users.get(name))
        for name, role in self.roles.items():
            found[("role", name)] = role
        for name, mapping in self.group_mappings.items():
            found[("groupMapping", name)] = mapping
        return found

    def families_behind(self, previous: DruidSnapshot) -> Iterable[Entry]:
        """Whole families to look at again: a role created or deleted changes which roles the
        users and group mappings wait for."""
        if self.roles.keys() != previous.roles.keys():
            return (("user", ALL), ("groupMapping", ALL))
        return ()


@dataclass(frozen=True)
class PivotSnapshot:
    connections: Mapping[str, PivotConnection]

    def entries(self) -> Mapping[Entry, object]:
        return {("connection", name): c for name, c in self.connections.items()}

    def families_behind(self, previous: PivotSnapshot) -> Iterable[Entry]:
        return ()


@dataclass(frozen=True)
class Snapshot(Generic[S]):
    data: S
    taken: float  # time.monotonic() when the fetch started
    seq: int  # the target's write sequence when the fetch started
    number: int = 0  # counts the target's snapshots, from 1


def changed_entries(previous: S, current: S) -> frozenset[Entry]:
    """The entries that differ between two snapshots (added, removed or changed)."""
    before, after = previous.entries(), current.entries()
    changed = {key for key, value in after.items() if before.get(key, _ABSENT) != value}
    changed.update(key for key in before.keys() - after.keys())
    changed.update(current.families_behind(previous))
    return frozenset(changed)


_ABSENT = object()
HISTORY = 8  # snapshots whose changes are kept, to carry a confirmation over a few of them
# Role reads kept for sharing (``SharedReads``) before the finished ones are dropped.
SHARED_MAX = 256


@dataclass
class TargetSnapshots(Generic[S]):
    """The latest snapshot of one target, fetched once at a time, and what was written since."""

    label: str
    fetch: Callable[[], Awaitable[S]]
    seq: int = 0
    touched: dict[tuple[str, str], int] = field(default_factory=dict)
    # Roles this operator created or updated since the snapshot: they exist (a deletion by the
    # operator drops the snapshot), so a pass need not list the roles to know it.
    roles_made: dict[str, int] = field(default_factory=dict)
    current: Snapshot[S] | None = None
    _fetching: asyncio.Future[Snapshot[S] | None] | None = None
    _failing: bool = False
    fetches: int = 0
    # (snapshot number, entries changed since the one before, None: unknown), newest last.
    _history: deque[tuple[int, frozenset[Entry] | None]] = field(
        default_factory=lambda: deque(maxlen=HISTORY)
    )
    _numbered: int = 0

    async def get(self, max_age: float) -> Snapshot[S] | None:
        """A snapshot younger than ``max_age`` seconds, fetched if needed; None if it fails."""
        current = self.current
        if current is not None and time.monotonic() - current.taken < max_age:
            return current
        if self._fetching is None:
            self._fetching = asyncio.ensure_future(self._fetch())
            self._fetching.add_done_callback(self._fetched)
        return await asyncio.shield(self._fetching)

    def _fetched(self, fetching: asyncio.Future[Snapshot[S] | None]) -> None:
        if self._fetching is fetching:
            self._fetching = None
        if not fetching.cancelled() and fetching.exception() is not None:  # seen by its waiters, if any
            log.debug("bulk read of %s: %s", self.label, type(fetching.exception()).__name__)

    async def _fetch(self) -> Snapshot[S] | None:
        start, seq = time.monotonic(), self.seq
        self.fetches += 1
        try:
            data = await self.fetch()
        except ApiError as error:
            if not self._failing:
                log.warning("bulk read of %s failed (%s); reading objects one by one", self.label, error)
            self._failing = True
            self.current = None
            return None
        if self._failing:
            log.info("bulk read of %s works again", self.label)
        self._failing = False
        previous = self.current
        self._numbered += 1
        changed = None
        if previous is not None and previous.number == self._numbered - 1:
            changed = await in_thread(changed_entries, previous.data, data)
        self._history.append((self._numbered, changed))
        self.current = Snapshot(data, start, seq, self._numbered)
        self.touched = {key: at for key, at in self.touched.items() if at > seq}
        self.roles_made = {name: at for name, at in self.roles_made.items() if at > seq}
        return self.current

    def touch(self, family: str, name: str) -> None:
        """A write changed this entry: read it live until a later snapshot has it."""
        self.seq += 1
        self.touched[(family, name)] = self.seq

    def invalidate(self) -> None:
        self.current = None

    def close(self) -> None:
        """Stop a fetch in flight (the operator is stopping)."""
        if self._fetching is not None:
            self._fetching.cancel()

    def role_made(self, name: str) -> None:
        self.roles_made[name] = self.seq

    def role_gone(self, name: str) -> None:
        self.roles_made.pop(name, None)

    def unchanged_since(self, number: int, entry: Entry) -> bool:
        """Is ``entry`` the same in the current snapshot as in snapshot ``number``?

        Known only while the snapshots in between are remembered and none was lost."""
        current = self.current
        if current is None or number <= 0:
            return False
        if number == current.number:
            return True
        family, _ = entry
        expected = number + 1
        for at, changed in self._history:
            if at <= number:
                continue
            if at != expected or changed is None or entry in changed or (family, ALL) in changed:
                return False
            expected += 1
        return expected == current.number + 1

    def view(self, snapshot: Snapshot[S]) -> SnapshotView[S]:
        return SnapshotView(snapshot, self)


@dataclass
class SnapshotView(Generic[S]):
    """One pass's window on a snapshot; ``used``: some read of the pass came from it."""

    snapshot: Snapshot[S]
    owner: TargetSnapshots[S]
    used: bool = False
    missed: bool = False  # some read went live: the entry was written since the snapshot

    def current(self, family: str, name: str) -> S | None:
        """The snapshot's data if the entry was not written since it was taken, else None."""
        if self.owner.touched.get((family, name), 0) > self.snapshot.seq:
            self.missed = True
            return None
        self.used = True
        return self.snapshot.data


async def absent_as_none(call: Awaitable[T], entity: str) -> T | None:
    """The call's result, or None when the server says the named ``entity`` does not exist.

    Any other NotFound (an unknown authorizer, say) still raises: it is a configuration
    error, not an absent object.
    """
    try:
        return await call
    except NotFound as error:
        if error.entity != entity:
            raise
        return None


@dataclass
class SharedReads:
    """The latest live read of each role of one target, shared by the passes running at once:
    a pass takes a read that started after the pass itself began, as fresh as one of its own
    (many new users of one role are checked with a handful of reads), else starts one."""

    _reads: dict[str, tuple[float, asyncio.Future[Role | None]]] = field(default_factory=dict)

    async def role(self, name: str, since: float, read: Callable[[], Awaitable[Role | None]]) -> Role | None:
        found = self._reads.get(name)
        if found is None or found[0] < since or _failed(found[1]):
            if len(self._reads) >= SHARED_MAX:  # only reads in flight or just done are of use
                self._reads = {n: r for n, r in self._reads.items() if not r[1].done()}
            future = asyncio.ensure_future(read())
            future.add_done_callback(_retrieve)
            found = self._reads[name] = (time.monotonic(), future)
        return await asyncio.shield(found[1])

    def forget(self, name: str) -> None:
        """The role was written or deleted: later passes read it afresh."""
        self._reads.pop(name, None)

    def close(self) -> None:
        for _, future in self._reads.values():
            future.cancel()
        self._reads.clear()


def _failed(future: asyncio.Future[Any]) -> bool:
    return future.done() and (future.cancelled() or future.exception() is not None)


def _retrieve(future: asyncio.Future[Any]) -> None:
    """Marks a failure as seen: its waiters, if any, have it raised."""
    if not future.cancelled():
        future.exception()


@dataclass(frozen=True)
class DruidReads:
    """What observation reads of a Druid cluster: from the pass's snapshot view, else live.

    Absent objects are None; any other NotFound (an unknown authorizer) still raises."""

    client: CoordinatorClient
    authenticator: AuthenticatorName
    authorizer: AuthorizerName
    view: SnapshotView[DruidSnapshot] | None = None
    # The roles this pass read live, kept for its check of what a tenant may grant (None: none kept).
    roles_read: dict[str, Role | None] | None = None
    shared: SharedReads | None = None  # the target's live role reads, shared by passes
    since: float = math.inf  # when the pass began (time.monotonic()): shares no read without ``shared``

    def _data(self, family: str, name: str) -> DruidSnapshot | None:
        return self.view.current(family, name) if self.view is not None else None

    async def authenticator_user(self, name: str) -> AuthenticatorUser | None:
        data = self._data("user", name)
        if data is not None and data.authn is not None:
            return data.authn.get(name)
        return await absent_as_none(self.client.get_authenticator_user(self.authenticator, name), "user")

    async def authorizer_user(self, name: str) -> AuthorizerUser | None:
        data = self._data("user", name)
        if data is not None:
            return data.users.get(name)
        return await absent_as_none(self.client.get_authorizer_user(self.authorizer, name), "user")

    def _snapshot_roles(self) -> frozenset[str] | None:
        """The roles of the snapshot and those this operator made since it was taken (None
        without a snapshot). They only ever confirm that a role exists: that a role is missing
        is always read live."""
        if self.view is None:
            return None
        made = self.view.owner.roles_made
        since = {n for n, at in made.items() if at > self.view.snapshot.seq}
        return frozenset(self.view.snapshot.data.roles.keys() | since)

    async def role_names(self, wanted: frozenset[str]) -> frozenset[str]:
        """The roles that exist: from the snapshot when it has every role ``wanted``, else listed."""
        known = self._snapshot_roles()
        if known is not None and wanted <= known:
            return known
        return await self.client.list_roles(self.authorizer)

    async def present_roles(self, names: frozenset[str]) -> frozenset[str]:
        """Those of ``names`` that exist: from the snapshot when it has them all; else a few read
        one by one (each read also gives what the grant check of the pass needs), more listed."""
        known = self._snapshot_roles()
        if known is not None and names <= known:
            return names
        if len(names) > ROLE_READS_MAX:
            return names & await self.client.list_roles(self.authorizer)
        ordered = sorted(names)
        found = await together(self.live_role(n) for n in ordered)
        return frozenset(n for n, role in zip(ordered, found, strict=True) if role is not None)

    async def role(self, name: str) -> Role | None:
        data = self._data("role", name)
        if data is not None:
            return data.roles.get(name)
        return await self.live_role(name)

    async def live_role(self, name: str) -> Role | None:
        """The role as read live from the Coordinator in this pass (read once per pass; a read
        another pass started after this one began serves it too)."""
        if self.roles_read is not None and name in self.roles_read:
            return self.roles_read[name]

        def read() -> Awaitable[Role | None]:
            return absent_as_none(self.client.get_role(self.authorizer, name), "role")

        role = await (self.shared.role(name, self.since, read) if self.shared is not None else read())
        if self.roles_read is not None:
            self.roles_read[name] = role
        return role

    async def group_mapping(self, name: str) -> GroupMapping | None:
        data = self._data("groupMapping", name)
        if data is not None:
            return data.group_mappings.get(name)
        return await absent_as_none(self.client.get_group_mapping(self.authorizer, name), "groupMapping")


@dataclass(frozen=True)
class PivotReads:
    client: PivotClient
    view: SnapshotView[PivotSnapshot] | None = None

    async def connection(self, name: str) -> PivotConnection | None:
        data = self.view.current("connection", name) if self.view is not None else None
        if data is not None:
            return data.connections.get(name)
        return await absent_as_none(self.client.get_connection(name), "connection")


def bulk_refused(error: ApiError) -> bool:
    """Did the target (or a proxy before it) refuse the bulk read itself, rather than fail?"""
    return error.status in (404, 405, 406, 415) or "Smile" in error.message


@dataclass(frozen=True)
class DruidTarget:
    """A cluster named on the command line (``export``, ``diff``): where and as whom to read it,
    and the ``spec.cluster`` its objects name (None: any)."""

    client: CoordinatorClient
    authenticator: AuthenticatorName
    authorizer: AuthorizerName
    cluster: str | None = None


@dataclass(frozen=True)
class PivotTarget:
    """A Pivot instance named on the command line, and the ``spec.pivot`` its objects name."""

    client: PivotClient
    pivot: str | None = None


async def read_druid(
    client: CoordinatorClient,
    authenticator: AuthenticatorName,
    authorizer: AuthorizerName,
    *,
    passwords: bool,
) -> DruidSnapshot:
    """Three requests, whatever the number of objects (two when passwords live in LDAP)."""
    authn = await client.authenticator_users(authenticator) if passwords else None
    maps = await client.authorizer_maps(authorizer, group_mappings=True)
    return DruidSnapshot(
        authn=authn, users=maps.users, roles=maps.roles, group_mappings=maps.group_mappings or {}
    )


async def read_pivot(client: PivotClient) -> PivotSnapshot:
    return PivotSnapshot({c.name: c for c in await client.list_connections()})


@dataclass(frozen=True)
class DruidRemote:
    """A Coordinator client with the authenticator and authorizer names of one cluster, and
    the snapshot the current pass observes through (None: every read is live)."""

    client: CoordinatorClient
    authenticator: AuthenticatorName
    authorizer: AuthorizerName
    view: SnapshotView[DruidSnapshot] | None = None
    # The roles the pass read live (``DruidReads.live_role``): a new dict for every pass
    # (``Targets.druid_remote``); None, as on the remote a target keeps, remembers none.
    roles_read: dict[str, Role | None] | None = field(default=None, compare=False, repr=False)
    shared: SharedReads | None = field(default=None, compare=False, repr=False)
    since: float = field(default=math.inf, compare=False, repr=False)  # when the pass began

    @property
    def reads(self) -> DruidReads:
        return DruidReads(
            self.client,
            self.authenticator,
            self.authorizer,
            self.view,
            self.roles_read,
            self.shared,
            self.since,
        )


@dataclass(frozen=True)
class PivotRemote:
    """A Pivot client, and the snapshot the current pass observes through."""

    client: PivotClient
    view: SnapshotView[PivotSnapshot] | None = None

    @property
    def reads(self) -> PivotReads:
        return PivotReads(self.client, self.view)


# The write lanes of a target, each serialised on its own (``Targets.write``): Druid's
# authenticator store, and the main one (the authorizer's store; a Pivot target).
AUTHENTICATOR_LANE = "authenticator"
LANES = ("", AUTHENTICATOR_LANE)  # in the order a write needing every lane takes them


def lane(op: object) -> str:
    """The write lane an op names (the main one if it names none)."""
    return str(getattr(op, "lane", ""))
