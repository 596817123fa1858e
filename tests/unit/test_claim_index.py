"""The claims index (``claim_index``) and how the operator keeps it (``passes.App``): from every
watch event, and once at start from a list of every object, so that an object's first pass
knows an older claimant of its name that the watch has not handed over yet."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from typing import Any

import pytest
from test_engine import ROLE, USER, Env, environment

from druid_access import finalizer, passes
from druid_access.claim_index import ClaimIndex, Key
from druid_access.kube import KubeError
from druid_access.reconcile import Claimant
from druid_access.resources import KINDS
from druid_access.resources.base import Claim
from druid_access.status import Reason

ALICE: Key = ("DruidUser", "default", "alice")
BOB: Key = ("DruidUser", "default", "bob")
A, B, C = (Claimant(f"2026-01-01T00:00:0{i}Z", "team-a", n, f"uid-{n}") for i, n in enumerate("abc"))


def _claimants(index: ClaimIndex, key: Key) -> list[Claimant]:
    kind, target, name = key
    return sorted(index.lookup(kind)(Claim("user", target, name)))


def test_the_index_holds_what_each_object_claims_now() -> None:
    index = ClaimIndex()
    index.put(A.uid, (ALICE, A))
    index.put(B.uid, (ALICE, B))
    assert _claimants(index, ALICE) == [A, B]
    assert index.lookup("DruidRole")(Claim("role", "default", "alice")) == []  # per kind
    index.put(B.uid, (BOB, B))  # its spec names another user now
    assert _claimants(index, ALICE) == [A] and _claimants(index, BOB) == [B]
    index.put(A.uid, None)  # refused by admission now: it claims nothing
    assert _claimants(index, ALICE) == [] and len(index) == 1
    index.discard(B.uid)
    index.discard(B.uid)  # a second deletion event changes nothing
    assert _claimants(index, BOB) == [] and len(index) == 0


def test_a_list_does_not_undo_what_a_watch_event_said_while_it_was_read() -> None:
    index = ClaimIndex()
    index.put(C.uid, (ALICE, C))
    with index.listing() as listed:
        index.put(A.uid, (BOB, A))  # an event: A names bob now
        index.discard(C.uid)  # an event: C is gone
        listed(A.uid, (ALICE, A))  # the list, read before those events
        listed(C.uid, (ALICE, C))
        listed(B.uid, (ALICE, B))
    assert _claimants(index, ALICE) == [B]
    assert _claimants(index, BOB) == [A]
    index.put(A.uid, (ALICE, A))  # after the list, every event counts again
    assert _claimants(index, ALICE) == [A, B]


@pytest.fixture
async def env() -> AsyncIterator[Env]:
    async with environment() as made:
        yield made


def _app(env: Env, namespaces: list[str] | None) -> passes.App:
    return passes.App(env.engine, events=lambda body: lambda *event: None, namespaces=namespaces)


async def _reason(env: Env, app: passes.App, obj: Mapping[str, Any]) -> tuple[Reason, str]:
    """A pass on a DruidUser with the app's claims index, as ``passes`` runs it."""
    body = env.current(obj)

    async def hold(annotations: Mapping[str, str]) -> bool:
        return await finalizer.hold(env.kube, USER.info.plural, body["metadata"], annotations)

    done = await env.engine.reconcile(USER, body, app.lookup(USER), lambda *event: None, hold=hold)
    return done.outcome.reason, done.outcome.message


async def test_the_first_pass_knows_an_older_claimant_the_watch_has_not_handed_over(env: Env) -> None:
    older = env.create(USER, "first", {"name": "alice", "roles": ["readers"]}, namespace="team-b")
    newer = env.create(USER, "alice", {"roles": ["readers"]})
    app = _app(env, ["team-a", "team-b"])
    await app.start()
    try:
        assert app.listed
        listed = [call for call in env.kube.calls if call[0] == "list_objects"]
        assert listed == [
            ("list_objects", kind.info.plural, namespace)
            for kind in KINDS
            for namespace in ("team-a", "team-b")
        ]
        # The watch hands the newer object over first; its pass runs before the older's.
        app.index_claim(USER, newer)
        env.forget_requests()
        reason, message = await _reason(env, app, newer)
        assert reason is Reason.CONFLICT and "team-b/first" in message
        assert env.remote_requests() == 0
        assert "alice" not in env.druid.users
        # Once the older one is gone (its deletion event), the name is free.
        app.forget(older["metadata"]["uid"])
        assert (await _reason(env, app, newer))[0] is Reason.SYNCED
    finally:
        await app.loops.stop()


async def test_an_object_refused_on_its_target_or_unparsable_claims_nothing(env: Env) -> None:
    refused = env.create(ROLE, "shared", {"permissions": []}, namespace="elsewhere")  # not allowed there
    allowed = env.create(ROLE, "shared", {"permissions": []})
    app = _app(env, None)
    await app.list_claims()
    assert [call for call in env.kube.calls if call[0] == "list_objects"] == [
        ("list_objects", kind.info.plural, "") for kind in KINDS
    ]
    claimants = app.lookup(ROLE)(Claim("role", "default", "shared"))
    assert [c.uid for c in claimants] == [allowed["metadata"]["uid"]]
    assert refused["metadata"]["uid"] not in {c.uid for c in claimants}
    broken = {**allowed, "spec": {"permissions": "not a list"}}
    app.index_claim(ROLE, broken)
    assert app.lookup(ROLE)(Claim("role", "default", "shared")) == []


async def test_a_list_that_fails_at_start_is_read_again_by_the_first_pass_before_anything_else(
    env: Env, caplog: pytest.LogCaptureFixture
) -> None:
    obj = env.create(USER, "alice", {"roles": ["readers"]})
    env.kube.fail("list_objects", times=1)
    app = _app(env, ["team-a"])
    await app.start()
    await app.loops.stop()  # the workers: this test runs the pass itself
    assert not app.listed
    assert "could not list the objects for their claims" in caplog.text
    key = ("DruidUser", "team-a", "alice")
    app.loops.observe(key, obj, listed=True)
    env.forget_requests()
    await passes.run_pass(app, app.loops.records[key])
    assert app.listed
    assert [c.uid for c in app.lookup(USER)(Claim("user", "default", "alice"))] == [obj["metadata"]["uid"]]
    assert env.druid.users.get("alice") == {"readers"}


async def test_a_list_the_api_server_refuses_leaves_the_index_to_be_read_again(env: Env) -> None:
    env.create(USER, "alice", {"roles": ["readers"]})
    env.kube.fail("list_objects", times=1)
    app = _app(env, ["team-a"])
    with pytest.raises(KubeError):
        await app.list_claims()
    assert not app.listed
    await app.list_claims()
    assert app.listed and len(app.claimants) == 1
