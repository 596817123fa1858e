"""The claims index (``claim_index``) and how the operator keeps it (``passes.App``): from every
watch event, and once at start from a list of every object, so that an object's first pass
knows an older claimant of its name that the watch has not handed over yet."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import Any, cast

import kopf
import pytest
from test_engine import ROLE, USER, Env, environment

from druid_access import finalizer, handlers, passes
from druid_access.claim_index import ClaimIndex, Key
from druid_access.kube import KubeError
from druid_access.reconcile import Claimant
from druid_access.resources import KINDS
from druid_access.resources.base import Claim
from druid_access.status import Reason, ready_condition

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
    index.put(A.uid, None)  # refused by admission now: it keeps what it claimed
    assert _claimants(index, ALICE) == [A] and len(index) == 2
    index.put(C.uid, None)  # refused from the start: it claims nothing
    assert len(index) == 2
    index.discard(A.uid)  # only its deletion frees the name
    index.discard(B.uid)
    index.discard(B.uid)  # a second deletion event changes nothing
    assert _claimants(index, ALICE) == _claimants(index, BOB) == [] and len(index) == 0


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


def watch_handler(app: passes.App) -> Callable[..., Awaitable[None]]:
    """The DruidUser event handler, as kopf registers and calls it."""
    registry = kopf.OperatorRegistry()
    handlers.register(registry, app)
    return cast(
        Callable[..., Awaitable[None]],
        next(
            h.fn
            for h in registry._watching.get_all_handlers()
            if h.selector is not None and USER.info.plural in (h.selector.plural, h.selector.any_name)
        ),
    )


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
    broken = {"spec": {"permissions": "not a list"}}
    app.index_claim(ROLE, {**allowed, **broken})  # it claimed: it keeps its claim
    assert [c.uid for c in app.lookup(ROLE)(Claim("role", "default", "shared"))] == [
        allowed["metadata"]["uid"]
    ]
    other = env.create(ROLE, "other", {"name": "shared", "permissions": []})
    app.index_claim(ROLE, {**other, **broken})  # it never did: it claims nothing
    assert len(app.claimants) == 1


async def test_a_list_that_fails_at_start_is_read_again_by_the_first_pass_before_anything_else(
    env: Env, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(passes, "LIST_RETRY_SECONDS", 0.0)
    env.create(USER, "first", {"name": "alice", "roles": ["readers"]}, namespace="team-b")
    newer = env.create(USER, "alice", {"roles": ["readers"]})
    env.kube.fail("list_objects", times=1)
    app = _app(env, ["team-a", "team-b"])
    await app.start()
    await app.loops.stop()  # the workers: this test runs the pass itself
    assert not app.listed
    assert "could not read the ownership claims" in caplog.text
    key = ("DruidUser", "team-a", "alice")
    app.loops.observe(key, newer, listed=True)
    app.index_claim(USER, newer)  # as the watch does; the older one is not handed over
    env.forget_requests()
    await passes.run_pass(app, app.loops.records[key])
    assert app.listed
    assert ready_condition(env.current(newer)["status"])["reason"] == Reason.CONFLICT.value  # type: ignore[index]
    assert env.remote_requests() == 0


async def test_a_failed_list_is_not_read_again_by_every_waiting_pass_at_once(env: Env) -> None:
    env.kube.fail("list_objects", times=1)
    app = _app(env, ["team-a"])
    with pytest.raises(KubeError):
        await app.list_claims()
    with pytest.raises(KubeError, match="failed a moment ago"):
        await app.list_claims()
    assert [call[0] for call in env.kube.calls].count("list_objects") == 1


async def test_the_watch_handler_lists_before_its_first_event_and_keeps_the_index(env: Env) -> None:
    older = env.create(USER, "first", {"name": "alice", "roles": ["readers"]}, namespace="team-b")
    newer = env.create(USER, "alice", {"roles": ["readers"]})
    app = _app(env, ["team-a", "team-b"])
    watched = watch_handler(app)
    try:
        # The watch hands the newer one over first: its claim and the older one's are known
        # before its pass can run.
        await watched(type=None, body=newer)
        assert app.loops.started and app.listed
        alice = Claim("user", "default", "alice")
        assert sorted(c.name for c in app.lookup(USER)(alice)) == ["alice", "first"]
        # The older one is deleted: its DELETED event takes it out of the index.
        gone = env.kube.delete_object(USER.info.plural, "team-b", "first")
        await watched(type="DELETED", body={**gone, "metadata": {**gone["metadata"], "finalizers": []}})
        assert [c.name for c in app.lookup(USER)(alice)] == ["alice"]
        assert older["metadata"]["uid"] not in {c.uid for c in app.lookup(USER)(alice)}
    finally:
        await app.loops.stop()


async def test_a_list_the_api_server_refuses_leaves_the_index_to_be_read_again(
    env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(passes, "LIST_RETRY_SECONDS", 0.0)
    env.create(USER, "alice", {"roles": ["readers"]})
    env.kube.fail("list_objects", times=1)
    app = _app(env, ["team-a"])
    with pytest.raises(KubeError):
        await app.list_claims()
    assert not app.listed
    await app.list_claims()
    assert app.listed and len(app.claimants) == 1
