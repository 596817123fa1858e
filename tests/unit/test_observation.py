"""Snapshots: fetched once at a time, shared while young, and never trusted for what was written since."""

from __future__ import annotations

import asyncio
import logging
import time

import pytest

from druid_access.clients import Unavailable
from druid_access.observation import TargetSnapshots


class Data(int):
    """A snapshot that is a number: its one entry changes with every fetch."""

    def entries(self) -> dict[tuple[str, str], object]:
        return {("user", "x"): int(self)}

    def families_behind(self, previous: Data) -> tuple[tuple[str, str], ...]:
        return ()


class Fetcher:
    def __init__(self) -> None:
        self.calls = 0
        self.fail = False
        self.gate: asyncio.Event | None = None

    async def __call__(self) -> Data:
        self.calls += 1
        if self.gate is not None:
            await self.gate.wait()
        if self.fail:
            raise Unavailable("ConnectError: refused", target="coordinator", method="GET", path="/x")
        return Data(self.calls)


async def test_one_fetch_serves_every_pass_while_younger_than_max_age() -> None:
    fetch = Fetcher()
    snapshots = TargetSnapshots("Druid cluster 'x'", fetch)
    fetch.gate = asyncio.Event()
    waiting = [asyncio.ensure_future(snapshots.get(60.0)) for _ in range(50)]
    await asyncio.sleep(0)
    fetch.gate.set()
    got = await asyncio.gather(*waiting)
    assert fetch.calls == 1 and {s.data for s in got if s is not None} == {1}
    assert (await snapshots.get(60.0)) is got[0]
    again = await snapshots.get(0.0)  # too old for this caller: fetched anew
    assert again is not None and again.data == 2 and fetch.calls == 2


async def test_what_was_written_since_the_fetch_started_is_read_live() -> None:
    fetch = Fetcher()
    snapshots = TargetSnapshots("Druid cluster 'x'", fetch)
    snapshots.touch("user", "before")  # written before the fetch: the snapshot has it
    fetch.gate = asyncio.Event()
    pending = asyncio.ensure_future(snapshots.get(60.0))
    for _ in range(3):  # the fetch starts and its request is on its way
        await asyncio.sleep(0)
    assert fetch.calls == 1
    snapshots.touch("user", "during")  # written while the fetch ran: perhaps not in it
    fetch.gate.set()
    snapshot = await pending
    assert snapshot is not None
    snapshots.touch("role", "after")
    view = snapshots.view(snapshot)
    assert view.current("user", "during") is None
    assert view.current("role", "after") is None
    assert not view.used  # every read so far went live: no need to read them again
    assert view.current("user", "before") == 1
    assert view.current("role", "untouched") == 1
    assert view.used
    newer = await snapshots.get(0.0)
    assert newer is not None and snapshots.view(newer).current("role", "after") == 2


async def test_a_failed_bulk_read_means_live_reads_said_once(caplog: pytest.LogCaptureFixture) -> None:
    fetch = Fetcher()
    fetch.fail = True
    snapshots = TargetSnapshots("Druid cluster 'x'", fetch)
    with caplog.at_level(logging.INFO, logger="druid_access.observation"):
        assert await snapshots.get(0.0) is None
        assert await snapshots.get(0.0) is None
        fetch.fail = False
        assert await snapshots.get(0.0) is not None
    messages = [r.getMessage() for r in caplog.records]
    assert len([m for m in messages if "reading objects one by one" in m]) == 1, messages
    assert any("works again" in m for m in messages), messages


async def test_an_entry_is_known_unchanged_only_over_remembered_snapshots() -> None:
    fetch = Fetcher()
    snapshots = TargetSnapshots("Druid cluster 'x'", fetch)
    first = await snapshots.get(0.0)
    assert first is not None
    assert snapshots.unchanged_since(first.number, ("user", "x"))
    assert not snapshots.unchanged_since(0, ("user", "x"))  # never confirmed
    await snapshots.get(0.0)  # the entry changes with every fetch
    assert not snapshots.unchanged_since(first.number, ("user", "x"))
    assert snapshots.unchanged_since(first.number, ("user", "y"))
    snapshots.invalidate()
    third = await snapshots.get(0.0)
    assert third is not None
    # Nothing is known of what changed across a lost snapshot.
    assert not snapshots.unchanged_since(third.number - 1, ("user", "y"))


async def test_roles_made_since_the_snapshot_are_known_without_listing_them() -> None:
    from druid_access.clients import AuthenticatorName, AuthorizerName
    from druid_access.observation import DruidReads, DruidSnapshot

    class Lister:
        calls = 0

        async def list_roles(self, authorizer: str) -> frozenset[str]:
            self.calls += 1
            return frozenset({"old", "new"})

    async def fetch() -> DruidSnapshot:
        return DruidSnapshot(authn={}, users={}, roles={"old": None}, group_mappings={})  # type: ignore[dict-item]

    snapshots: TargetSnapshots[DruidSnapshot] = TargetSnapshots("Druid cluster 'x'", fetch)
    snapshot = await snapshots.get(60.0)
    assert snapshot is not None
    lister = Lister()
    reads = DruidReads(lister, AuthenticatorName("basic"), AuthorizerName("basic"), snapshots.view(snapshot))  # type: ignore[arg-type]
    assert await reads.role_names(frozenset({"old"})) == frozenset({"old"})
    assert await reads.role_names(frozenset({"new"})) == frozenset({"old", "new"})
    assert lister.calls == 1  # "new" is not in the snapshot: listed
    snapshots.touch("role", "new")
    snapshots.role_made("new")  # this operator created it since the snapshot
    assert await reads.role_names(frozenset({"new"})) == frozenset({"old", "new"})
    assert lister.calls == 1
    snapshots.role_gone("new")  # and deleted it
    await reads.role_names(frozenset({"new"}))
    assert lister.calls == 2


def test_a_role_created_or_deleted_changes_every_user_and_group_mapping() -> None:
    from druid_access.observation import ALL, DruidSnapshot, changed_entries

    before = DruidSnapshot(authn={}, users={}, roles={"a": None}, group_mappings={})  # type: ignore[dict-item]
    same = DruidSnapshot(authn={}, users={}, roles={"a": None}, group_mappings={})  # type: ignore[dict-item]
    more = DruidSnapshot(authn={}, users={}, roles={"a": None, "b": None}, group_mappings={})  # type: ignore[dict-item]
    assert changed_entries(before, same) == frozenset()
    assert changed_entries(before, more) == {("role", "b"), ("user", ALL), ("groupMapping", ALL)}


async def test_a_few_missing_roles_are_read_one_by_one_and_the_grant_check_reuses_the_reads() -> None:
    from druid_access.clients import AuthenticatorName, AuthorizerName, NotFound, Permission, Role
    from druid_access.observation import ROLE_READS_MAX
    from druid_access.resources.base import DruidRemote
    from druid_access.resources.role import security_administering

    admin = Permission(resource_type="CONFIG", resource_name="security", action="WRITE")
    roles = {f"r{i}": Role(name=f"r{i}") for i in range(ROLE_READS_MAX + 2)} | {
        "sec": Role(name="sec", permissions=frozenset({admin}))
    }

    class Client:
        def __init__(self) -> None:
            self.gets: list[str] = []
            self.lists = 0

        async def get_role(self, authorizer: str, name: str) -> Role:
            self.gets.append(name)
            if name not in roles:
                raise NotFound("no such role", target="coordinator", method="GET", path="/r", entity="role")
            return roles[name]

        async def list_roles(self, authorizer: str) -> frozenset[str]:
            self.lists += 1
            return frozenset(roles)

    client = Client()
    # One pass's remote, as Targets.druid_remote gives each pass: with a dict of its own.
    remote = DruidRemote(client, AuthenticatorName("basic"), AuthorizerName("basic"), roles_read={})  # type: ignore[arg-type]
    assert await remote.reads.present_roles(frozenset({"r0", "sec", "gone"})) == {"r0", "sec"}
    assert sorted(client.gets) == ["gone", "r0", "sec"] and client.lists == 0
    # The grant check of the same pass reads nothing again, and still finds the risky role.
    risky = await security_administering(remote, ["r0", "sec"])
    assert len(risky) == 1 and "'sec'" in risky[0]
    assert sorted(client.gets) == ["gone", "r0", "sec"]
    # Another pass reads afresh; so does every use of a remote without a dict (a target's own).
    again = DruidRemote(client, AuthenticatorName("basic"), AuthorizerName("basic"), roles_read={})  # type: ignore[arg-type]
    await security_administering(again, ["sec"])
    assert client.gets.count("sec") == 2
    kept = DruidRemote(client, AuthenticatorName("basic"), AuthorizerName("basic"))  # type: ignore[arg-type]
    await security_administering(kept, ["sec"])
    await security_administering(kept, ["sec"])
    assert client.gets.count("sec") == 4
    # More missing roles than a few: one list instead of a read each.
    many = frozenset(f"r{i}" for i in range(ROLE_READS_MAX + 2)) | {"gone"}
    assert await again.reads.present_roles(many) == many - {"gone"}
    assert client.lists == 1 and client.gets.count("r1") == 0


async def test_every_pass_gets_its_own_record_of_the_roles_it_read() -> None:
    from druid_access.clients import AuthenticatorName, AuthorizerName
    from druid_access.config import parse
    from druid_access.resources.base import DruidRemote
    from druid_access.targets import Targets

    config = parse(
        {
            "namespace": "ops",
            "clusters": {"c": {"coordinatorUrl": "http://127.0.0.1:1", "adminSecret": {"name": "admin"}}},
        }
    )
    targets = Targets(config, kube=None)  # type: ignore[arg-type]
    kept = DruidRemote(None, AuthenticatorName("basic"), AuthorizerName("basic"))  # type: ignore[arg-type]

    async def druid(name: str) -> DruidRemote:
        return kept

    targets.druid = druid  # type: ignore[method-assign]
    first, second = await targets.druid_remote("c"), await targets.druid_remote("c")
    assert first.roles_read == {} and second.roles_read == {}
    assert first.roles_read is not second.roles_read and kept.roles_read is None


async def test_roles_in_the_snapshot_confirm_without_a_read_and_a_missing_one_is_read_live() -> None:
    from druid_access.clients import AuthenticatorName, AuthorizerName, NotFound, Role
    from druid_access.observation import DruidReads, DruidSnapshot

    class Client:
        gets: list[str] = []

        async def get_role(self, authorizer: str, name: str) -> Role:
            self.gets.append(name)
            if name != "made":
                raise NotFound("no such role", target="coordinator", method="GET", path="/r", entity="role")
            return Role(name=name)

    async def fetch() -> DruidSnapshot:
        return DruidSnapshot(authn={}, users={}, roles={"old": Role(name="old")}, group_mappings={})

    snapshots: TargetSnapshots[DruidSnapshot] = TargetSnapshots("Druid cluster 'x'", fetch)
    snapshot = await snapshots.get(60.0)
    assert snapshot is not None
    client = Client()
    view = snapshots.view(snapshot)
    reads = DruidReads(client, AuthenticatorName("basic"), AuthorizerName("basic"), view, {})  # type: ignore[arg-type]
    assert await reads.present_roles(frozenset({"old"})) == {"old"}
    snapshots.touch("role", "made")
    snapshots.role_made("made")  # created by this operator since the snapshot
    assert await reads.present_roles(frozenset({"old", "made"})) == {"old", "made"}
    assert client.gets == []
    # Missing from the snapshot: read live, and the view is not marked as used for it.
    assert await reads.present_roles(frozenset({"gone"})) == frozenset()
    assert client.gets == ["gone"] and not view.used


async def test_a_live_role_read_is_shared_only_with_passes_begun_before_it_started() -> None:
    from druid_access.clients import Role
    from druid_access.observation import SharedReads

    shared, gate, reads = SharedReads(), asyncio.Event(), []

    async def read() -> Role:
        reads.append(len(reads))
        await gate.wait()
        return Role(name=f"r{len(reads)}")

    begun = time.monotonic()  # passes that began before the read starts
    waiting = [asyncio.ensure_future(shared.role("r", begun, read)) for _ in range(20)]
    await asyncio.sleep(0)
    gate.set()
    assert {role.name for role in await asyncio.gather(*waiting) if role} == {"r1"} and len(reads) == 1
    # A pass that began after that read started reads again, as fresh as a read of its own.
    later = time.monotonic() + 1e-6
    role = await shared.role("r", later, read)
    assert role is not None and role.name == "r2" and len(reads) == 2
    # A write of the role by the operator forgets it: the next pass reads again.
    shared.forget("r")
    assert (await shared.role("r", begun, read)) is not None and len(reads) == 3


async def test_a_failed_shared_read_fails_its_waiters_and_is_not_reused() -> None:
    from druid_access.clients import Role
    from druid_access.observation import SharedReads

    shared, calls = SharedReads(), []

    async def read() -> Role:
        calls.append(1)
        if len(calls) == 1:
            raise Unavailable("ConnectError: refused", target="coordinator", method="GET", path="/r")
        return Role(name="r")

    begun = time.monotonic()
    with pytest.raises(Unavailable):
        await shared.role("r", begun, read)
    assert (await shared.role("r", begun, read)) == Role(name="r") and len(calls) == 2


async def test_the_two_stores_of_a_cluster_are_written_in_parallel_lanes() -> None:
    from druid_access.config import parse
    from druid_access.resources.base import AUTHENTICATOR_LANE
    from druid_access.targets import Targets

    config = parse(
        {
            "namespace": "ops",
            "clusters": {"c": {"coordinatorUrl": "http://127.0.0.1:1", "adminSecret": {"name": "admin"}}},
        }
    )
    targets = Targets(config, kube=None)  # type: ignore[arg-type]
    order: list[str] = []
    release = asyncio.Event()

    async def write(lane: str | None, label: str) -> None:
        async def batch() -> None:
            order.append(f"{label} in")
            await release.wait()
            order.append(f"{label} out")

        await targets.write("cluster", "c", lane, batch)

    tasks = [
        asyncio.ensure_future(write("", "authz-1")),
        asyncio.ensure_future(write(AUTHENTICATOR_LANE, "authn-1")),
        asyncio.ensure_future(write("", "authz-2")),
        asyncio.ensure_future(write(None, "delete")),  # a deletion takes every lane
    ]
    for _ in range(5):
        await asyncio.sleep(0)
    # One writer per lane at a time, the two lanes at once; the deletion waits for both.
    assert order == ["authz-1 in", "authn-1 in"]
    release.set()
    await asyncio.gather(*tasks)
    assert order.index("authz-2 in") > order.index("authz-1 out")
    assert order.index("delete in") > max(order.index("authz-1 out"), order.index("authn-1 out"))
    assert order.index("delete in") > order.index("authz-2 out") or order.index("authz-2 in") > order.index(
        "delete out"
    )
    await targets.close()
