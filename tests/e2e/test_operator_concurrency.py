"""200 DruidUsers applied at once against a REAL Druid Coordinator: all Synced, nothing failed.

The Coordinator stores each basic-security map as one blob updated with compare-and-swap and gives
up after 5 lost races: 200 unserialised user creations lose ~half of them with 500
"concurrent update contention" (``bench/contention.py`` measures it). The operator serialises its
writes per target, so here every user must reach Synced with no reconcile ending in a failure
reason, exactly 4 Druid writes per user (no write repeated after a failure), no Warning Event, no
contention in the operator's or the Coordinator's log, and every user complete on the Coordinator
(both stores, password verifying by PBKDF2, the role). Then all 200 are deleted at once.

Own Druid, own operator, own namespace (``realdruid-load``); the wait is bounded and fails fast
(with the users' status messages) as soon as the operator's metrics count a failed reconcile.
"""

from __future__ import annotations

import asyncio
import collections
import json
import re
import time
from collections.abc import Iterator
from typing import Any

import pytest
from pydantic import SecretStr

from druid_access.clients import AuthenticatorName, AuthorizerName, CoordinatorClient, HttpOptions
from druid_access.passwords import verify_password
from druid_access.testing.controlplane import ControlPlane
from druid_access.testing.druid import DruidCoordinator
from druid_access.testing.environment import (
    OPERATOR_NAMESPACE,
    OperatorProcess,
    apply,
    free_port,
    install,
    ready_condition,
    secret,
    wait_reason,
)

pytestmark = pytest.mark.contract

USERS = 200
NS = "realdruid-load"
ADMIN_PW = "realdruid-load-admin-pw"
ADMIN_SECRET = "druid-admin-realdruid-load"
ROLE = "load-readers"
RESYNC = 60.0  # resyncs are not what is measured; the first passes are
SYNC_TIMEOUT = 300.0
AUTHN = AuthenticatorName("basic")
AUTHZ = AuthorizerName("basic")
OPTIONS = HttpOptions(connect_timeout=5.0, read_timeout=60.0, write_timeout=60.0, pool_timeout=60.0)
FAILURES = (
    "ServerError",
    "Rejected",
    "ConcurrentChange",
    "Unreachable",
    "Unauthorized",
    "Forbidden",
    "KubernetesError",
)


def user(i: int) -> str:
    return f"load-{i:03d}"


def password(i: int) -> str:
    return f"load-pässword-{i:03d}"


@pytest.fixture(scope="module")
def druid(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DruidCoordinator]:
    coordinator = DruidCoordinator(tmp_path_factory.mktemp("realdruid-load-druid"), admin_password=ADMIN_PW)
    coordinator.start()
    try:
        yield coordinator
    finally:
        coordinator.stop()


@pytest.fixture(scope="module")
def operator(
    controlplane: ControlPlane, druid: DruidCoordinator, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[OperatorProcess]:
    cp = controlplane
    install(cp, admin_user="admin", admin_password=ADMIN_PW, pivot_token="unused-realdruid-load")
    apply(cp, secret(ADMIN_SECRET, {"username": "admin", "password": ADMIN_PW}, OPERATOR_NAMESPACE))
    cp.kubectl("create", "namespace", NS)
    config = {
        "namespace": OPERATOR_NAMESPACE,
        "clusters": {
            "default": {
                "coordinatorUrl": druid.url,
                "adminSecret": {"name": ADMIN_SECRET},
                "resyncSeconds": RESYNC,
                "timeoutSeconds": 10,
            }
        },
        "pivots": {},
    }
    proc = OperatorProcess(
        config=config,
        kubeconfig=cp.operator_kubeconfig,
        workdir=tmp_path_factory.mktemp("realdruid-load-operator"),
        namespaces=[NS],
        metrics_port=free_port(),
    )
    proc.start()
    try:
        yield proc
    finally:
        _release(cp)
        code = proc.stop()
    assert code == 0, proc.log()[-3000:]


def _release(cp: ControlPlane) -> None:
    """Delete what is left while the operator runs; bounded: if the operator cannot finish within
    two minutes (the test failed), strip the finalizers so no later module sees these objects."""
    cp.kubectl("delete", "druidusers,druidroles", "--all", "-n", NS, "--wait=false", check=False)
    deadline = time.monotonic() + 120
    left: list[str] = []
    while time.monotonic() < deadline:
        left = cp.kubectl("get", "druidusers,druidroles", "-n", NS, "-o", "name", check=False).stdout.split()
        if not left:
            return
        time.sleep(2)
    for name in left:
        patch = '{"metadata":{"finalizers":null}}'
        cp.kubectl("patch", name, "-n", NS, "--type=merge", "-p", patch, check=False)


def _doc(kind: str, name: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "druidaccess.io/v1alpha1",
        "kind": kind,
        "metadata": {"name": name, "namespace": NS},
        "spec": spec,
    }


def _metric(text: str, name: str) -> dict[tuple[str, str], float]:
    pattern = re.compile(rf'^{name}\{{kind="([^"]+)",(?:reason|operation)="([^"]+)"\}} (\S+)$', re.M)
    return {(kind, label): float(value) for kind, label, value in pattern.findall(text)}


def _failed_reconciles(metrics: str) -> dict[tuple[str, str], float]:
    counts = _metric(metrics, "druid_access_reconciles_total")
    return {key: v for key, v in counts.items() if key[1] in FAILURES and v > 0}


def _users_status(cp: ControlPlane) -> tuple[int, collections.Counter[str]]:
    """(users Synced for their current generation, Counter of 'reason: message')."""
    items = json.loads(cp.kubectl("get", "druidusers", "-n", NS, "-o", "json").stdout)["items"]
    synced = 0
    summary: collections.Counter[str] = collections.Counter()
    for obj in items:
        ready = ready_condition(obj)
        if ready is None:
            summary["no status yet"] += 1
            continue
        summary[f"{ready.get('reason')}: {ready.get('message')}"] += 1
        current = (obj.get("status") or {}).get("observedGeneration") == obj["metadata"]["generation"]
        synced += int(ready.get("reason") == "Synced" and current)
    return synced, summary


async def _remote_state(url: str) -> tuple[frozenset[str], frozenset[str], int, int, list[bool]]:
    """authn users, authz users, users whose password verifies, users with the role, 5 logins."""
    async with CoordinatorClient(url, username="admin", password=SecretStr(ADMIN_PW), options=OPTIONS) as c:
        authn = await c.list_authenticator_users(AUTHN)
        authz = await c.list_authorizer_users(AUTHZ)
        verified = with_role = 0
        for i in range(USERS):
            if user(i) in authn:
                stored = (await c.get_authenticator_user(AUTHN, user(i))).credentials
                verified += int(stored is not None and verify_password(password(i), stored))
            if user(i) in authz:
                with_role += int(ROLE in (await c.get_authorizer_user(AUTHZ, user(i))).roles)
        logins = [await c.check_login(user(i), SecretStr(password(i))) for i in (0, 57, 123, 199, 100)]
        return authn, authz, verified, with_role, logins


@pytest.mark.timeout(900)
def test_200_users_at_once_all_synced_without_a_failed_write(
    controlplane: ControlPlane, druid: DruidCoordinator, operator: OperatorProcess
) -> None:
    cp = controlplane
    apply(
        cp,
        _doc(
            "DruidRole",
            ROLE,
            {"permissions": [{"resource": {"type": "STATE", "name": "STATE"}, "action": "READ"}]},
        ),
    )
    wait_reason(cp, "druidrole", NS, ROLE, "Synced")

    docs: list[dict[str, Any]] = [
        secret(f"{user(i)}-pw", {"password": password(i)}, NS) for i in range(USERS)
    ]
    for i in range(USERS):
        ref = {"secretKeyRef": {"name": f"{user(i)}-pw", "key": "password"}}
        docs.append(_doc("DruidUser", user(i), {"roles": [ROLE], "password": ref}))
    started = time.monotonic()
    cp.kubectl(
        "create",
        "-f",
        "-",
        input=json.dumps({"apiVersion": "v1", "kind": "List", "items": docs}),
        timeout=300,
    )
    created = time.monotonic() - started

    # Bounded wait; fail at once (with what the users say) when a reconcile has failed.
    deadline = started + SYNC_TIMEOUT
    synced, summary = 0, collections.Counter[str]()
    while True:
        synced, summary = _users_status(cp)
        failed = _failed_reconciles(operator.metrics())
        if synced == USERS or failed or time.monotonic() > deadline:
            break
        time.sleep(2.0)
    elapsed = time.monotonic() - started
    figures = f"{synced}/{USERS} Synced after {elapsed:.1f} s (kubectl create {created:.1f} s)"
    print(f"\n{figures}")
    assert failed == {}, f"{figures}; failed reconciles {failed}; users' Ready: {summary.most_common(5)}"
    assert synced == USERS, f"{figures}; users' Ready: {summary.most_common(5)}"

    # Every reconcile of a user ended Synced and the operator wrote exactly 4 times per user:
    # no write failed and was repeated.
    metrics = operator.metrics()
    reconciles = {
        why: v
        for (kind, why), v in _metric(metrics, "druid_access_reconciles_total").items()
        if kind == "DruidUser"
    }
    assert set(reconciles) == {"Synced"}, reconciles
    writes = {
        op: v
        for (kind, op), v in _metric(metrics, "druid_access_remote_writes_total").items()
        if kind == "DruidUser"
    }
    assert writes == {
        "CreatedAuthenticatorUser": USERS,
        "SetPassword": USERS,
        "CreatedAuthorizerUser": USERS,
        "AssignedRole": USERS,
    }, writes

    events = json.loads(cp.kubectl("get", "events", "-n", NS, "-o", "json").stdout)["items"]
    bad = [
        (e["reason"], e.get("message"))
        for e in events
        if e.get("type") == "Warning" or e["reason"] in FAILURES
    ]
    assert bad == [], bad[:5]
    log = operator.log()
    for text in ("concurrent update contention", "reconcile failed", "Traceback"):
        assert text not in log, text
    assert "concurrent update contention" not in druid.log_path.read_text(errors="replace")

    authn, authz, verified, with_role, logins = asyncio.run(_remote_state(druid.url))
    expected = {user(i) for i in range(USERS)}
    assert expected <= authn and expected <= authz
    assert (verified, with_role) == (USERS, USERS)
    assert logins == [True] * 5

    # All 200 deleted at once: the finalizers remove them from both stores, serialised too.
    started = time.monotonic()
    cp.kubectl("delete", "druidusers", "--all", "-n", NS, "--timeout=300s", timeout=320)
    print(f"deleted {USERS} DruidUsers in {time.monotonic() - started:.1f} s")
    authn, authz, _, _, _ = asyncio.run(_remote_state(druid.url))
    assert not expected & authn and not expected & authz
    assert (
        _metric(operator.metrics(), "druid_access_remote_writes_total").get(("DruidUser", "Deleted")) == USERS
    )


def test_the_next_claimant_takes_over_as_soon_as_the_owner_is_gone(
    controlplane: ControlPlane, druid: DruidCoordinator, operator: OperatorProcess
) -> None:
    """Two DruidRoles claim one Druid role; deleting the owner hands the role to the other at
    once, not at its next resync (a minute away here)."""
    cp, remote = controlplane, "load-claimed"
    spec = {
        "name": remote,
        "permissions": [{"resource": {"type": "STATE", "name": "STATE"}, "action": "READ"}],
    }
    apply(cp, _role_doc("claim-older", spec))
    wait_reason(cp, "druidrole", NS, "claim-older", "Synced", timeout=60)
    time.sleep(1.1)  # creationTimestamp counts seconds: the newer one must be strictly newer
    apply(cp, _role_doc("claim-newer", spec))
    wait_reason(cp, "druidrole", NS, "claim-newer", "Conflict", timeout=60)
    time.sleep(1.0)  # past the newer one's first pass: only a wake-up can bring it back now
    deleted = time.monotonic()
    cp.kubectl("delete", "druidrole", "claim-older", "-n", NS)
    taken = wait_reason(cp, "druidrole", NS, "claim-newer", "Synced", timeout=RESYNC / 3)
    assert taken["status"]["owned"] is True
    assert time.monotonic() - deleted < RESYNC / 3
    cp.kubectl("delete", "druidrole", "claim-newer", "-n", NS)


def _role_doc(name: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "druidaccess.io/v1alpha1",
        "kind": "DruidRole",
        "metadata": {"name": name, "namespace": NS},
        "spec": spec,
    }
