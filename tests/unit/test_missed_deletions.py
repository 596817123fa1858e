"""Deletions no watch event told of: kopf lists a kind again when its watch lost its place (a
410, or this replica resuming after another one was active) and sends no DELETED event for what
was deleted meanwhile. The operator lists again itself and forgets those objects: their claims
(a younger claimant would stay ``Conflict``) and their records (a resync would write their remote
side again from their last body)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any, cast

import pytest
from test_claim_index import watch_handler
from test_engine import USER, Env, environment

from druid_access import finalizer, passes, peering
from druid_access.claim_index import ClaimIndex
from druid_access.kube import Kube
from druid_access.loops import Record
from druid_access.reconcile import Claimant
from druid_access.resources.base import Claim

ALICE = Claim("user", "default", "alice")
OLDER = ("DruidUser", "team-b", "first")
NEWER = ("DruidUser", "team-a", "alice")
TARGET = ("cluster", "default")


@pytest.fixture
async def env() -> AsyncIterator[Env]:
    async with environment() as made:
        yield made


@pytest.fixture
def ran(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, str, str]]:
    """The passes the workers run (recorded, not run): the tests look at what is queued."""
    keys: list[tuple[str, str, str]] = []

    async def record(app: passes.App, record: Record) -> None:
        keys.append(record.key)

    monkeypatch.setattr(passes, "run_pass", record)
    monkeypatch.setattr(passes, "SWEEP_PAUSE", 0.0)
    monkeypatch.setattr(passes, "backoff", lambda attempt, cap: 0.0)
    return keys


async def _until(condition: Callable[[], bool], what: str) -> None:
    for _ in range(500):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"never: {what}")


def _uids(app: passes.App) -> list[str]:
    return sorted(c.uid for c in app.lookup(USER)(ALICE))


async def test_a_relist_forgets_what_was_deleted_while_the_watch_was_away(
    env: Env, ran: list[tuple[str, str, str]], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="druid_access.passes")
    older = env.create(USER, "first", {"name": "alice", "roles": ["readers"]}, namespace="team-b")
    newer = env.create(USER, "alice", {"roles": ["readers"]})
    app = passes.App(env.engine, events=lambda body: lambda *event: None, namespaces=["team-a", "team-b"])
    watched = watch_handler(app)
    try:
        await watched(type=None, body=newer)  # kopf's first list
        await watched(type=None, body=older)
        await _until(lambda: sorted(ran) == sorted([OLDER, NEWER]), "the first passes")
        assert _uids(app) == sorted([older["metadata"]["uid"], newer["metadata"]["uid"]])
        ran.clear()
        # The older one is deleted while the watch is away: no DELETED event. The first list of
        # the operator's own fails once: it is read again.
        env.kube.delete_object(USER.info.plural, "team-b", "first")
        env.kube.fail("list_objects", times=1)
        lists = env.kube.count("list_objects")
        await watched(type=None, body=newer)  # kopf lists again: the newer one only
        await _until(lambda: OLDER not in app.loops.records, "the older one forgotten")
        assert env.kube.count("list_objects") == lists + 3  # the failed one, then one per namespace
        assert "could not list for deletions the watch missed" in caplog.text
        assert _uids(app) == [newer["metadata"]["uid"]]
        # The newer claimant is woken: its name is free now.
        await _until(lambda: ran == [NEWER], "the newer one's pass")
        assert "DruidUser: 1 object(s) deleted while the watch was away forgotten" in caplog.text
        # A list kopf sends for the first time (a new object) is no relist.
        lists = env.kube.count("list_objects")
        third = env.create(USER, "third", {"roles": ["readers"]})
        await watched(type=None, body=third)
        await asyncio.sleep(0.05)
        assert env.kube.count("list_objects") == lists
    finally:
        await app.stop()


async def test_what_a_watch_event_tells_while_the_list_is_read_is_kept(
    env: Env, ran: list[tuple[str, str, str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    kept = env.create(USER, "alice", {"roles": ["readers"]})
    app = passes.App(env.engine, events=lambda body: lambda *event: None, namespaces=["team-a"])
    watched = watch_handler(app)
    listing = env.kube.list_objects
    made: list[dict[str, Any]] = []

    async def list_then_create(
        plural: str, namespace: str | None, *, metadata_only: bool = False
    ) -> AsyncIterator[Mapping[str, Any]]:
        async for body in listing(plural, namespace, metadata_only=metadata_only):  # before "new" exists
            yield body
        if plural == USER.info.plural and made == []:
            made.append(env.create(USER, "new", {"roles": ["readers"]}))
            await watched(type="ADDED", body=made[0])  # told while the list is being read

    try:
        await watched(type=None, body=kept)
        monkeypatch.setattr(env.kube, "list_objects", list_then_create)
        assert await app.sweep(USER) == 0
        assert set(app.loops.records) == {NEWER, ("DruidUser", "team-a", "new")}
        assert len(app.claimants) == 2
    finally:
        await app.stop()


class _NoPeers:
    """The peering object of a cluster where no other replica is active any more."""

    async def read_peering(self, name: str, namespace: str | None) -> Mapping[str, Any] | None:
        return None


async def test_a_replica_resuming_forgets_what_another_one_finalized_before_it_works_again(
    env: Env, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(peering, "POLL", 0.01)
    alice = env.create(USER, "alice", {"roles": ["readers"]})
    app = passes.App(env.engine, events=lambda body: lambda *event: None, namespaces=["team-a"])
    await app.list_claims()
    app.loops.observe(NEWER, alice, listed=True)
    app.index_claim(USER, alice)
    await passes.run_pass(app, app.loops.records[NEWER])
    assert "alice" in env.druid.users and env.held(alice)
    # Another replica becomes the active one and deletes alice: its remote side, its finalizer.
    app.loops.pause()
    env.kube.delete_object(USER.info.plural, "team-a", "alice")
    body = env.current(alice)
    await env.engine.finalize(USER, body, app.lookup(USER), lambda *event: None)
    assert await finalizer.release(env.kube, USER.info.plural, body["metadata"])
    assert "alice" not in env.druid.users
    with pytest.raises(KeyError):
        env.current(alice)
    # What this replica keeps would have it written again by the target's next resync.
    assert app.loops.resync(TARGET, None) == 1
    # This replica may resume: it lists first (the first list fails: it stays paused).
    env.kube.fail("list_objects", times=1)
    paused_while_listing: list[bool] = []

    async def catch_up() -> None:
        paused_while_listing.append(app.loops.paused)
        await app.catch_up()

    follow = asyncio.create_task(
        peering.follow(
            cast(Kube, _NoPeers()),
            app.loops,
            name="p",
            namespaces=["team-a"],
            identity="me",
            priority=1,
            catch_up=catch_up,
        )
    )
    try:
        await _until(lambda: not app.loops.paused, "resumed")
        assert paused_while_listing == [True, True]
        assert "could not catch up before resuming (still paused)" in caplog.text
        assert app.loops.records == {}
        assert len(app.claimants) == 0
        assert app.loops.resync(TARGET, None) == 0
        assert len(app.loops.queue) == 0
    finally:
        follow.cancel()
        await asyncio.gather(follow, return_exceptions=True)
        await app.stop()


async def test_a_late_event_of_an_object_a_list_found_gone_is_ignored(
    env: Env, ran: list[tuple[str, str, str]]
) -> None:
    older = env.create(USER, "first", {"name": "alice", "roles": ["readers"]}, namespace="team-b")
    newer = env.create(USER, "alice", {"roles": ["readers"]})
    app = passes.App(env.engine, events=lambda body: lambda *event: None, namespaces=["team-a", "team-b"])
    watched = watch_handler(app)
    try:
        await watched(type=None, body=older)
        await watched(type=None, body=newer)
        env.kube.delete_object(USER.info.plural, "team-b", "first")
        assert await app.sweep(USER) == 1
        await watched(type="MODIFIED", body=older)  # queued in kopf before the list
        assert OLDER not in app.loops.records
        assert _uids(app) == [newer["metadata"]["uid"]]
        await watched(type="DELETED", body=older)  # its own deletion event, late: nothing left
        assert _uids(app) == [newer["metadata"]["uid"]] and NEWER in app.loops.records
    finally:
        await app.stop()


async def test_a_deletion_event_after_a_newer_object_of_the_same_name_keeps_the_newer(env: Env) -> None:
    app = passes.App(env.engine, events=lambda body: lambda *event: None)
    meta = {"name": "alice", "namespace": "team-a", "generation": 1}
    app.loops.observe(NEWER, {"metadata": {**meta, "uid": "new"}})
    app.gone("old", NEWER)  # kopf handles each uid on its own: the old one's DELETED, late
    assert app.loops.records[NEWER].uid == "new"
    app.gone("new", NEWER)
    assert NEWER not in app.loops.records


def test_overlapping_lists_each_hear_every_watch_event() -> None:
    index = ClaimIndex()
    a = Claimant("2026-01-01T00:00:00Z", "team-a", "a", "uid-a")
    with index.watching() as first:
        with index.watching() as second:
            index.put("uid-a", (("DruidUser", "default", "a"), a))
        index.discard("uid-b")
    assert first == {"uid-a", "uid-b"} and second == {"uid-a"}
    index.put("uid-c", None)  # no list is read: nothing is kept for one
    assert index.uids("DruidUser") == {"uid-a"} and index.uids("DruidRole") == set()
