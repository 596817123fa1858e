"""The operator's whole lifecycle against a REAL Apache Druid Coordinator (not the fakes).

One ZooKeeper + Druid Coordinator (``druid_access.testing.druid``) and one operator process
(``druid-access run`` under the restricted ``operator.kubeconfig``, namespace ``realdruid`` only)
serve the module. Every assertion on the remote side reads the real Coordinator's API as its
admin: users in both stores, role assignments, permissions, group mappings, and the stored
PBKDF2 credentials (checked locally with ``verify_password``). Logins are real HTTP Basic logins
of the managed user against the Coordinator.

The tests run in file order and share the objects they create (a lifecycle):
create -> update -> drift on the real API -> password rotation -> delete. ``-x`` stops at the
first broken step.

The module runs once per supported Druid version (27.0.0, then 37.0.0): the module-scoped ``druid``
fixture is parametrized, so the operator and every test follow it. Between the two runs the operator's
teardown deletes the managed objects and the namespace's events (the local control plane has no namespace
controller, so the namespace itself is kept and reused).
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable, Iterator
from typing import Any, TypeVar

import httpx
import pytest
from pydantic import SecretStr

from druid_access.clients import (
    AuthenticatorName,
    AuthorizerName,
    CoordinatorClient,
    GroupMapping,
    HttpOptions,
    NotFound,
    Permission,
)
from druid_access.passwords import verify_password
from druid_access.testing.controlplane import ControlPlane
from druid_access.testing.druid import DruidCoordinator
from druid_access.testing.environment import (
    OperatorProcess,
    apply,
    kubectl_json,
    operator_on_real_druid,
    secret,
    wait_for,
    wait_reason,
)

pytestmark = pytest.mark.contract

T = TypeVar("T")

NS = "realdruid"
ADMIN_PW = "realdruid-Adm1n-pw #ä"
ADMIN_SECRET = "druid-admin-realdruid"  # not install()'s shared "druid-admin": other modules rewrite it
RESYNC = 3.0
AUTHN = AuthenticatorName("basic")
AUTHZ = AuthorizerName("basic")
OPTIONS = HttpOptions(connect_timeout=5.0, read_timeout=30.0, write_timeout=30.0, pool_timeout=5.0)
DRIFT_MESSAGE = "drift on the remote side"
FAILURE_REASONS = ("ServerError", "Rejected", "ConcurrentChange")

# A user name with '@' (percent-encoded in every path) and non-ASCII passwords (PBKDF2 over UTF-8).
ALICE = "alice@corp.example"
ALICE_PW_1 = "pässwörd-日本-✓-😀 one"
ALICE_PW_2 = "ünïcödé-Ωmega-🔑-two"
BOB = "bob.realdruid"
BOB_PW = "bob-ascii-password-1"
READERS = "rd-readers"
WRITERS = "rd-writers"
MAPPING = "rd-analysts"


def _perm(type_: str, name: str, action: str) -> dict[str, Any]:
    return {"resource": {"type": type_, "name": name}, "action": action}


def _p(type_: str, name: str, action: str) -> Permission:
    return Permission(resource_type=type_, resource_name=name, action=action)


READERS_V1 = [_perm("DATASOURCE", "wiki.*", "READ"), _perm("STATE", "STATE", "READ")]
READERS_V2 = [*READERS_V1, _perm("DATASOURCE", "wiki.*", "WRITE")]
WRITERS_PERMS = [_perm("DATASOURCE", "edits", "WRITE")]


# ------------------------------------------------------------------------------------ fixtures


@pytest.fixture(scope="module")
def druid(druid_version: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[DruidCoordinator]:
    with DruidCoordinator(
        tmp_path_factory.mktemp(f"realdruid-druid-{druid_version}"),
        admin_password=ADMIN_PW,
        version=druid_version,
    ) as coordinator:
        yield coordinator


@pytest.fixture(scope="module")
def operator(
    controlplane: ControlPlane, druid: DruidCoordinator, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[OperatorProcess]:
    cluster = {"coordinatorUrl": druid.url, "resyncSeconds": RESYNC, "timeoutSeconds": 10}
    with operator_on_real_druid(
        controlplane,
        clusters={"default": cluster},
        namespace=NS,
        admin_secret=ADMIN_SECRET,
        admin_password=ADMIN_PW,
        workdir=tmp_path_factory.mktemp("realdruid-operator"),
    ) as proc:
        yield proc


# ------------------------------------------------------------------------------------- helpers


def on_druid(druid: DruidCoordinator, call: Callable[[CoordinatorClient], Awaitable[T]]) -> T:
    """Run ``call`` with a fresh admin client of the real Coordinator (tests here are synchronous)."""

    async def run() -> T:
        async with CoordinatorClient(
            druid.url, username="admin", password=SecretStr(ADMIN_PW), options=OPTIONS
        ) as client:
            return await call(client)

    return asyncio.run(run())


async def _absent(awaitable: Awaitable[T]) -> T | None:
    try:
        return await awaitable
    except NotFound:
        return None


def authn_verifies(druid: DruidCoordinator, user: str, password: str) -> bool:
    """The authenticator has ``user`` and its stored PBKDF2 credential matches ``password``."""
    stored = on_druid(druid, lambda c: _absent(c.get_authenticator_user(AUTHN, user)))
    return (
        stored is not None
        and stored.credentials is not None
        and verify_password(password, stored.credentials)
    )


def user_roles(druid: DruidCoordinator, user: str) -> frozenset[str] | None:
    found = on_druid(druid, lambda c: _absent(c.get_authorizer_user(AUTHZ, user)))
    return found.roles if found is not None else None


def role_permissions(druid: DruidCoordinator, role: str) -> frozenset[Permission] | None:
    found = on_druid(druid, lambda c: _absent(c.get_role(AUTHZ, role)))
    return found.permissions if found is not None else None


def group_mapping(druid: DruidCoordinator, name: str) -> GroupMapping | None:
    return on_druid(druid, lambda c: _absent(c.get_group_mapping(AUTHZ, name)))


def perms(spec: list[dict[str, Any]]) -> frozenset[Permission]:
    return frozenset(_p(p["resource"]["type"], p["resource"]["name"], p["action"]) for p in spec)


def can_login(druid: DruidCoordinator, user: str, password: str) -> bool:
    """A real HTTP Basic login of ``user`` (``check_login``: 401 -> False; 200/403 -> True)."""
    return on_druid(druid, lambda c: c.check_login(user, SecretStr(password)))


def status_as(druid: DruidCoordinator, user: str, password: str) -> int:
    """HTTP status of ``GET /status`` as ``user``: 200 needs a valid login AND STATE READ via a role."""
    response = httpx.get(f"{druid.url}/status", auth=(user, password), timeout=10)
    return response.status_code


def _doc(kind: str, name: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "druidaccess.io/v1alpha1",
        "kind": kind,
        "metadata": {"name": name, "namespace": NS},
        "spec": spec,
    }


def _get(cp: ControlPlane, kind: str, name: str) -> dict[str, Any]:
    obj: dict[str, Any] = kubectl_json(cp, "get", kind, name, "-n", NS)
    return obj


def _ready(obj: dict[str, Any]) -> dict[str, Any]:
    for condition in (obj.get("status") or {}).get("conditions") or []:
        if condition.get("type") == "Ready":
            return dict(condition)
    raise AssertionError(f"no Ready condition in {obj.get('status')}")


def _drift_count(obj: dict[str, Any]) -> int:
    return int((obj.get("status") or {}).get("driftCount") or 0)


def _events(cp: ControlPlane, kind: str, name: str) -> list[dict[str, Any]]:
    selector = f"involvedObject.kind={kind},involvedObject.name={name}"
    items: list[dict[str, Any]] = kubectl_json(cp, "get", "events", "-n", NS, "--field-selector", selector)[
        "items"
    ]
    return items


def wait_events(
    cp: ControlPlane,
    kind: str,
    name: str,
    reasons: set[str],
    *,
    containing: str = "",
    writes: frozenset[str] | set[str] = frozenset(),
) -> list[dict[str, Any]]:
    """Wait for Normal Events with all ``reasons`` (and ``containing`` in their message) that
    between them say every one of ``writes`` (a pass posts one Event, named after its first
    write, that says all of them)."""

    def probe() -> list[dict[str, Any]] | None:
        events = [
            e
            for e in _events(cp, kind, name)
            if e.get("type") == "Normal" and containing in (e.get("message") or "")
        ]
        said = " | ".join(e.get("message") or "" for e in events)
        if reasons <= {e["reason"] for e in events} and all(w in said for w in writes):
            return events
        return None

    return wait_for(probe, timeout=30, what=f"events {sorted(reasons)} on {kind} {NS}/{name}")


def wait_drift_corrected(cp: ControlPlane, kind: str, name: str, before: int) -> dict[str, Any]:
    """driftCount went up and Ready is Synced again."""

    def probe() -> dict[str, Any] | None:
        obj = _get(cp, kind, name)
        ready = _ready(obj)
        ok = _drift_count(obj) > before and ready["status"] == "True" and ready["reason"] == "Synced"
        return obj if ok else None

    return wait_for(probe, timeout=30, what=f"{kind} {NS}/{name}: drift counted and corrected")


def no_failure_events(cp: ControlPlane) -> None:
    items = kubectl_json(cp, "get", "events", "-n", NS)["items"]
    bad = [
        (e["reason"], e.get("message"))
        for e in items
        if e.get("type") == "Warning" or e["reason"] in FAILURE_REASONS
    ]
    assert bad == [], bad


# ----------------------------------------------------------------------------------- lifecycle


def test_create_reaches_the_real_coordinator(
    controlplane: ControlPlane, druid: DruidCoordinator, operator: OperatorProcess
) -> None:
    cp = controlplane
    apply(
        cp,
        [
            secret("alice-pw", {"password": ALICE_PW_1}, NS),
            secret("bob-pw", {"password": BOB_PW}, NS),
        ],
    )
    apply(
        cp,
        [
            _doc("DruidRole", READERS, {"permissions": READERS_V1}),
            _doc(
                "DruidUser",
                "alice",
                {
                    "name": ALICE,
                    "roles": [READERS],
                    "password": {"secretKeyRef": {"name": "alice-pw", "key": "password"}},
                },
            ),
            _doc(
                "DruidUser",
                "bob",
                {
                    "name": BOB,
                    "roles": [READERS],
                    "password": {"secretKeyRef": {"name": "bob-pw", "key": "password"}},
                },
            ),
            _doc("DruidGroupMapping", MAPPING, {"groupPattern": "cn=analysts,ou=groups", "roles": [READERS]}),
        ],
    )
    for kind, name, remote in (
        ("druidrole", READERS, READERS),
        ("druiduser", "alice", ALICE),
        ("druiduser", "bob", BOB),
        ("druidgroupmapping", MAPPING, MAPPING),
    ):
        obj = wait_reason(cp, kind, NS, name, "Synced")
        assert obj["status"]["owned"] is True
        assert obj["status"]["remoteName"] == remote
        assert _ready(obj)["status"] == "True"

    # The real Coordinator's state, read back as its admin.
    assert role_permissions(druid, READERS) == perms(READERS_V1)
    assert user_roles(druid, ALICE) == frozenset({READERS})
    assert user_roles(druid, BOB) == frozenset({READERS})
    assert authn_verifies(druid, ALICE, ALICE_PW_1)
    assert authn_verifies(druid, BOB, BOB_PW)
    assert not authn_verifies(druid, ALICE, ALICE_PW_2)
    mapping = group_mapping(druid, MAPPING)
    assert mapping is not None
    assert (mapping.group_pattern, mapping.roles) == ("cn=analysts,ou=groups", frozenset({READERS}))
    full = on_druid(druid, lambda c: c.get_user_full(AUTHZ, ALICE))
    assert full.permissions == perms(READERS_V1)

    # The managed users really log in with their Secrets' passwords; the role's STATE READ
    # makes /status answer 200 (a login alone would be 403); a wrong password is a 401.
    assert can_login(druid, ALICE, ALICE_PW_1)
    assert can_login(druid, BOB, BOB_PW)
    assert status_as(druid, ALICE, ALICE_PW_1) == 200
    assert status_as(druid, ALICE, ALICE_PW_1 + "x") == 401
    assert not can_login(druid, ALICE, ALICE_PW_2)

    # One Event per pass that wrote, named after its first write, saying every write of the pass.
    wait_events(cp, "DruidRole", READERS, {"CreatedRole"}, containing="permission(s) on role")
    wait_events(cp, "DruidRole", READERS, {"CreatedRole"}, containing="new resource")
    # The role was applied together with the users, so a user's first pass may have found it
    # missing (RoleNotFound, then woken when it appeared): only the creations are sure to say
    # "new resource".
    events = wait_events(cp, "DruidUser", "alice", {"CreatedAuthenticatorUser"})
    created = [e["message"] for e in events if e["reason"] == "CreatedAuthenticatorUser"]
    assert len(created) == 1, created
    # A pass that read first sends the password right after the authenticator user; one that
    # created without reading (the Coordinator answered just now) sends both creates first.
    assert created[0].startswith(
        (
            f"created authenticator user {ALICE!r}; set the password of {ALICE!r}; "
            f"created authorizer user {ALICE!r}",
            f"created authenticator user {ALICE!r}; created authorizer user {ALICE!r}; "
            f"set the password of {ALICE!r}",
        )
    ), created
    assert created[0].endswith(" (new resource)"), created
    messages = " | ".join(e["message"] for e in events)
    assert f"assigned role {READERS!r} to {ALICE!r}" in messages, messages
    assert all(ALICE_PW_1 not in (e.get("message") or "") for e in events)
    wait_events(cp, "DruidGroupMapping", MAPPING, {"CreatedGroupMapping"}, containing="new resource")


def test_update_reaches_the_real_coordinator(
    controlplane: ControlPlane, druid: DruidCoordinator, operator: OperatorProcess
) -> None:
    cp = controlplane
    # The new role first, so that the users' and mapping's first pass on the new spec can assign it.
    apply(cp, _doc("DruidRole", WRITERS, {"permissions": WRITERS_PERMS}))
    wait_reason(cp, "druidrole", NS, WRITERS, "Synced")
    apply(
        cp,
        [
            _doc("DruidRole", READERS, {"permissions": READERS_V2}),
            _doc(
                "DruidUser",
                "alice",
                {
                    "name": ALICE,
                    "roles": [READERS, WRITERS],
                    "password": {"secretKeyRef": {"name": "alice-pw", "key": "password"}},
                },
            ),
            # A changed pattern: Druid has no update, so the operator deletes and re-creates.
            _doc("DruidGroupMapping", MAPPING, {"groupPattern": "cn=analysts,ou=people", "roles": [WRITERS]}),
        ],
    )
    wait_for(
        lambda: role_permissions(druid, READERS) == perms(READERS_V2), timeout=30, what="new permissions"
    )
    wait_for(
        lambda: user_roles(druid, ALICE) == frozenset({READERS, WRITERS}), timeout=30, what="second role"
    )
    for kind, name in (("druidrole", READERS), ("druiduser", "alice"), ("druidgroupmapping", MAPPING)):
        obj = wait_reason(cp, kind, NS, name, "Synced")
        assert obj["status"]["observedGeneration"] == obj["metadata"]["generation"] == 2
    assert role_permissions(druid, WRITERS) == perms(WRITERS_PERMS)
    mapping = group_mapping(druid, MAPPING)
    assert mapping is not None
    assert (mapping.group_pattern, mapping.roles) == ("cn=analysts,ou=people", frozenset({WRITERS}))
    # The password did not change, so it was not rewritten: the old credential still verifies.
    assert authn_verifies(druid, ALICE, ALICE_PW_1)
    assert can_login(druid, ALICE, ALICE_PW_1)

    wait_events(cp, "DruidRole", READERS, {"SetPermissions"}, containing="spec changed (generation 2)")
    wait_events(cp, "DruidUser", "alice", {"AssignedRole"}, containing="spec changed (generation 2)")
    wait_events(
        cp,
        "DruidGroupMapping",
        MAPPING,
        {"DeletedGroupMapping"},
        containing="spec changed (generation 2)",
        writes={"deleted group mapping", "created group mapping"},
    )


def test_drift_made_through_the_real_api_is_corrected(
    controlplane: ControlPlane, druid: DruidCoordinator, operator: OperatorProcess
) -> None:
    cp = controlplane
    before = {
        (kind, name): _drift_count(_get(cp, kind, name))
        for kind, name in (
            ("druidrole", READERS),
            ("druiduser", "alice"),
            ("druiduser", "bob"),
            ("druidgroupmapping", MAPPING),
        )
    }

    async def tamper(c: CoordinatorClient) -> None:
        # Replace a role's permissions, unassign a role, set a password behind the operator's
        # back, delete a user from both stores, and strip a group mapping's role.
        # (Not a security permission: while the role held one, re-assigning it to bob from this
        # unprivileged namespace would rightly be NotPermitted.)
        await c.set_permissions(AUTHZ, READERS, [_p("DATASOURCE", ".*", "WRITE")])
        await c.unassign_role(AUTHZ, user=ALICE, role=WRITERS)
        await c.set_password(AUTHN, ALICE, SecretStr("intruder-password"))
        await c.delete_authenticator_user(AUTHN, BOB)
        await c.delete_authorizer_user(AUTHZ, BOB)
        await c.unassign_group_mapping_role(AUTHZ, group_mapping=MAPPING, role=WRITERS)

    on_druid(druid, tamper)
    # (No assertion on the tampered state itself: a resync may already be repairing it.)

    # The next resync (every 3 s) puts everything back on the real Coordinator.
    wait_for(lambda: role_permissions(druid, READERS) == perms(READERS_V2), timeout=30, what="permissions")
    wait_for(
        lambda: user_roles(druid, ALICE) == frozenset({READERS, WRITERS}), timeout=30, what="alice's roles"
    )
    wait_for(lambda: authn_verifies(druid, ALICE, ALICE_PW_1), timeout=30, what="alice's password")
    wait_for(lambda: authn_verifies(druid, BOB, BOB_PW), timeout=30, what="bob re-created")
    wait_for(lambda: user_roles(druid, BOB) == frozenset({READERS}), timeout=30, what="bob's role")

    def mapping_restored() -> bool:
        mapping = group_mapping(druid, MAPPING)
        return mapping is not None and mapping.roles == frozenset({WRITERS})

    wait_for(mapping_restored, timeout=30, what="the mapping's role")
    for (kind, name), count in before.items():
        wait_drift_corrected(cp, kind, name, count)

    assert can_login(druid, ALICE, ALICE_PW_1)
    assert not can_login(druid, ALICE, "intruder-password")
    assert can_login(druid, BOB, BOB_PW)
    assert status_as(druid, BOB, BOB_PW) == 200

    wait_events(cp, "DruidRole", READERS, {"SetPermissions"}, containing=DRIFT_MESSAGE)
    wait_events(
        cp,
        "DruidUser",
        "alice",
        set(),
        containing=DRIFT_MESSAGE,
        writes={"set the password", "assigned role"},
    )
    wait_events(
        cp,
        "DruidUser",
        "bob",
        {"CreatedAuthenticatorUser"},
        containing=DRIFT_MESSAGE,
        writes={"set the password", "created authorizer user", "assigned role"},
    )
    wait_events(cp, "DruidGroupMapping", MAPPING, {"AssignedRole"}, containing=DRIFT_MESSAGE)


def test_password_rotation_on_the_real_coordinator(
    controlplane: ControlPlane, druid: DruidCoordinator, operator: OperatorProcess
) -> None:
    cp = controlplane
    old_version = _get(cp, "druiduser", "alice")["status"]["secretVersion"]
    apply(cp, secret("alice-pw", {"password": ALICE_PW_2}, NS))
    wait_for(lambda: authn_verifies(druid, ALICE, ALICE_PW_2), timeout=30, what="the rotated password")

    def rotated() -> dict[str, Any] | None:
        obj = _get(cp, "druiduser", "alice")
        synced = _ready(obj)["reason"] == "Synced"
        return obj if synced and obj["status"].get("secretVersion") != old_version else None

    wait_for(rotated, timeout=30, what="alice's status to record the new Secret version")
    # The new password logs in, the old one is refused (401), on the real server.
    assert can_login(druid, ALICE, ALICE_PW_2)
    assert not can_login(druid, ALICE, ALICE_PW_1)
    assert status_as(druid, ALICE, ALICE_PW_2) == 200
    assert status_as(druid, ALICE, ALICE_PW_1) == 401
    # A rotation is a change of the desired state, not drift.
    events = wait_events(cp, "DruidUser", "alice", {"SetPassword"}, containing="referenced Secret changed")
    assert all(ALICE_PW_2 not in (e.get("message") or "") for e in events)
    # bob's Secret did not change: his password is untouched.
    assert can_login(druid, BOB, BOB_PW)


def test_no_reconcile_failed_against_the_real_coordinator(
    controlplane: ControlPlane, operator: OperatorProcess
) -> None:
    metrics = operator.metrics()
    failed = re.findall(
        r'^druid_access_reconciles_total\{kind="(\w+)",reason="(ServerError|Rejected|ConcurrentChange)"\} ([1-9]\S*)$',
        metrics,
        re.M,
    )
    assert failed == [], failed
    no_failure_events(controlplane)
    log = operator.log()
    assert "concurrent update contention" not in log
    assert "reconcile failed" not in log
    for secret_value in (ADMIN_PW, ALICE_PW_1, ALICE_PW_2, BOB_PW):
        assert secret_value not in log


def test_delete_removes_everything_from_the_real_coordinator(
    controlplane: ControlPlane, druid: DruidCoordinator, operator: OperatorProcess
) -> None:
    cp = controlplane
    for kind, name in (
        ("druiduser", "alice"),
        ("druiduser", "bob"),
        ("druidgroupmapping", MAPPING),
        ("druidrole", READERS),
        ("druidrole", WRITERS),
    ):
        cp.kubectl("delete", kind, name, "-n", NS, "--timeout=60s")

    async def remaining(c: CoordinatorClient) -> tuple[frozenset[str], ...]:
        return (
            await c.list_authenticator_users(AUTHN),
            await c.list_authorizer_users(AUTHZ),
            await c.list_roles(AUTHZ),
            await c.list_group_mappings(AUTHZ),
        )

    authn_users, authz_users, roles, mappings = on_druid(druid, remaining)
    assert not {ALICE, BOB} & authn_users
    assert not {ALICE, BOB} & authz_users
    assert not {READERS, WRITERS} & roles
    assert MAPPING not in mappings
    # Druid's own principals were never touched.
    assert {"admin", "druid_system"} <= authn_users
    assert {"admin", "druid_system"} <= roles
    assert not can_login(druid, ALICE, ALICE_PW_2)
    assert not can_login(druid, BOB, BOB_PW)
    log = operator.log()
    for text in (
        f"deleted user {ALICE!r}",
        f"deleted user {BOB!r}",
        f"deleted groupMapping {MAPPING!r}",
        f"deleted role {READERS!r}",
    ):
        assert text in log, text
