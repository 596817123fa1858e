"""Errors from Druid and Pivot, end to end: a specific reason and message in status, backoff, recovery.

Every case runs against the real operator process (restricted RBAC identity) and the fakes:

- 401 (wrong admin password / Pivot token) -> Unauthorized, recovers when the Secret is fixed;
- 403 (an admin user without CONFIG/security) -> Forbidden, recovers when the user gets a role;
- 400 with a message (injected on the permissions POST) -> Rejected, with the server's message,
  not retried until the spec changes;
- 500 (injected) -> ServerError;
- a timeout (latency longer than the cluster's timeoutSeconds) -> Unreachable;
- a refused connection (closed 127.0.0.1 port) -> Unreachable, recovers when something listens.

For each, the operator stays up, and the retries against the fake are spaced by a growing
backoff (the gaps between attempts grow; a handful of attempts over the window, not a busy loop).

The last test runs a whole lifecycle with canary secret values in namespace ``canary`` and then
searches the operator's log, every Event, every custom resource and the fakes' request log for
them (and for their base64 forms). The module's admin password and Pivot token are canaries too,
so the log of all the error cases above is searched as well.
"""

from __future__ import annotations

import base64
import itertools
import math
import time
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest

from druid_access.health import FRESH, THRESHOLD
from druid_access.passwords import verify_password
from druid_access.testing.controlplane import ControlPlane
from druid_access.testing.environment import (
    ADMIN_SECRET,
    OPERATOR_NAMESPACE,
    FakesInThread,
    OperatorProcess,
    apply,
    free_port,
    install,
    kubectl_json,
    operator_config,
    ready_condition,
    secret,
    wait_for,
    wait_reason,
)
from druid_access.testing.fake_coordinator import FakeCoordinator
from druid_access.testing.faults import FakeServer, Fault

NS = "errors"
CANARY_NS = "canary"

# Secret values. Every one of them is a canary: none may ever show up outside a Secret.
ADMIN_PW = "canary-admin-5d2c8"
TOKEN = "canary-token-e41b7"
WRONG_ADMIN_PW = "canary-wrong-401-d3b2a"
WRONG_TOKEN = "canary-wrongtok-401-77c1e"
WEAK_USER = "weakling"
WEAK_PW = "canary-weak-6a1f0"
USER_PW = "canary-userpw-0c9e3"
CANARY_PW = "canary-pw-7f3a9"
CANARY_PW_ROTATED = "canary-pw-rotated-c3d44"
CANARY_TLS_KEY = "canary-tlskey-4e9d1"
CANARY_PASSPHRASE = "canary-passphrase-b7c20"
CANARY_SOCKS_PW = "canary-socks-0a6f3"
CANARY_WRONG_ADMIN = "canary-wrongadmin-91c4e"
CANARY_WRONG_TOKEN = "canary-wrongtoken-2f8a7"

# Per-case admin Secrets in the operator's namespace, so one case never disturbs another.
UNAUTH_ADMIN = "errors-unauth-admin"
UNAUTH_TOKEN = "errors-unauth-token"
WEAK_ADMIN = "errors-weak-admin"
CANARY_ADMIN = "canary-admin"
CANARY_TOKEN = "canary-pivot-token"

# Long enough that a failing object is retried by backoff, never by the periodic resync.
RESYNC = 30.0
SLOW_TIMEOUT = 1.0
FAULT_LATENCY = 2.5
# Requests closer together than this belong to one reconcile attempt (observe runs GETs in parallel).
ATTEMPT_GAP = 0.3
REJECT_MESSAGE = "Cannot set permissions of role [err-400]: refused by security policy (fault 7311)"
SERVER_ERROR_TEXT = "java.lang.IllegalStateException: boom-500-fault"
PIVOT_ERROR_TEXT = "pivot exploded while reading connection (fault 4502)"

# --------------------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def fakes() -> Iterator[FakesInThread]:
    with FakesInThread(admin_password=ADMIN_PW, pivot_token=TOKEN, credential_iterations=1000) as f:
        yield f


@pytest.fixture(scope="module")
def closed_port() -> int:
    """A 127.0.0.1 port nothing listens on (until the refused-connection case opens it)."""
    return free_port()


def _cluster(url: str, admin_secret: str, *, timeout: float = 5.0) -> dict[str, Any]:
    return {
        "coordinatorUrl": url,
        "adminSecret": {"name": admin_secret},
        "allowedNamespaces": [NS, CANARY_NS],
        "resyncSeconds": RESYNC,
        "timeoutSeconds": timeout,
    }


def _pivot(url: str, token_secret: str) -> dict[str, Any]:
    return {
        "url": url,
        "tokenSecret": {"name": token_secret},
        "allowedNamespaces": [NS, CANARY_NS],
        "resyncSeconds": RESYNC,
        "timeoutSeconds": 5,
    }


@pytest.fixture(scope="module")
def operator(
    controlplane: ControlPlane,
    fakes: FakesInThread,
    closed_port: int,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[OperatorProcess]:
    cp = controlplane
    install(cp, admin_user="admin", admin_password=ADMIN_PW, pivot_token=TOKEN)
    for ns in (NS, CANARY_NS):
        cp.kubectl("create", "namespace", ns)
    fakes.call(lambda: fakes.coordinator.add_user(WEAK_USER, password=WEAK_PW))
    apply(
        cp,
        [
            secret(UNAUTH_ADMIN, {"username": "admin", "password": ADMIN_PW}, OPERATOR_NAMESPACE),
            secret(UNAUTH_TOKEN, {"token": TOKEN}, OPERATOR_NAMESPACE),
            secret(WEAK_ADMIN, {"username": WEAK_USER, "password": WEAK_PW}, OPERATOR_NAMESPACE),
            secret(CANARY_ADMIN, {"username": "admin", "password": ADMIN_PW}, OPERATOR_NAMESPACE),
            secret(CANARY_TOKEN, {"token": TOKEN}, OPERATOR_NAMESPACE),
            secret("user-pw", {"password": USER_PW}, NS),
        ],
    )
    config = operator_config(fakes, resync_seconds=RESYNC, allowed_namespaces=(NS, CANARY_NS))
    url = fakes.coordinator.url
    config["clusters"].update(
        {
            "unauth": _cluster(url, UNAUTH_ADMIN),
            "weak": _cluster(url, WEAK_ADMIN),
            "slow": _cluster(url, ADMIN_SECRET, timeout=SLOW_TIMEOUT),
            "closed": _cluster(f"http://127.0.0.1:{closed_port}", ADMIN_SECRET, timeout=2.0),
            "canary": _cluster(url, CANARY_ADMIN),
        }
    )
    config["pivots"].update(
        {"unauth": _pivot(fakes.pivot.url, UNAUTH_TOKEN), "canary": _pivot(fakes.pivot.url, CANARY_TOKEN)}
    )
    proc = OperatorProcess(
        config=config,
        kubeconfig=cp.operator_kubeconfig,
        workdir=tmp_path_factory.mktemp("operator-errors"),
    )
    proc.start()
    try:
        yield proc
    finally:
        _cleanup(cp, fakes, proc)


def _cleanup(cp: ControlPlane, fakes: FakesInThread, proc: OperatorProcess) -> None:
    """Clear every fault, restore every credential and delete our objects before stopping."""
    fakes.call(fakes.coordinator.faults.clear)
    fakes.call(fakes.pivot.faults.clear)
    fakes.call(lambda: fakes.coordinator.users.setdefault(WEAK_USER, set()).add("admin"))
    apply(
        cp,
        [
            secret(UNAUTH_ADMIN, {"username": "admin", "password": ADMIN_PW}, OPERATOR_NAMESPACE),
            secret(UNAUTH_TOKEN, {"token": TOKEN}, OPERATOR_NAMESPACE),
            secret(CANARY_ADMIN, {"username": "admin", "password": ADMIN_PW}, OPERATOR_NAMESPACE),
            secret(CANARY_TOKEN, {"token": TOKEN}, OPERATOR_NAMESPACE),
        ],
    )
    for ns in (NS, CANARY_NS):
        cp.kubectl("delete", "druid", "--all", "-n", ns, "--timeout=60s", check=False)
    code = proc.stop()
    # Nothing may stay behind with our finalizer for the operators of later modules.
    for ns in (NS, CANARY_NS):
        for item in kubectl_json(cp, "get", "druid", "-n", ns)["items"]:
            cp.kubectl(
                "patch",
                item["kind"].lower(),
                item["metadata"]["name"],
                "-n",
                ns,
                "--type=merge",
                "-p",
                '{"metadata":{"finalizers":null}}',
                check=False,
            )
    assert code == 0, proc.log()[-3000:]


# ---------------------------------------------------------------------------------------- helpers


def _doc(kind: str, name: str, spec: dict[str, Any], namespace: str = NS) -> dict[str, Any]:
    return {
        "apiVersion": "druidaccess.io/v1alpha1",
        "kind": kind,
        "metadata": {"name": name, "namespace": namespace},
        "spec": spec,
    }


def _user(name: str, cluster: str) -> dict[str, Any]:
    return _doc(
        "DruidUser",
        name,
        {"cluster": cluster, "password": {"secretKeyRef": {"name": "user-pw", "key": "password"}}},
    )


def _message(obj: dict[str, Any]) -> str:
    ready = ready_condition(obj)
    assert ready is not None, obj.get("status")
    assert ready["status"] == "False", ready
    return str(ready["message"])


def _attempts(server: FakeServer, path: str, since: float) -> list[float]:
    """Start times of the reconcile attempts that reached ``server`` on ``path`` since ``since``."""
    times = sorted(r.timestamp for r in server.requests.filter(path=path) if r.timestamp >= since)
    starts: list[float] = []
    previous = -math.inf
    for t in times:
        if t - previous > ATTEMPT_GAP:
            starts.append(t)
        previous = t
    return starts


def assert_backs_off(server: FakeServer, path: str, since: float, what: str, *, timeout: float = 25) -> None:
    """The retries of one failing object come with growing gaps, far fewer than a busy loop's."""

    def four() -> list[float] | None:
        starts = _attempts(server, path, since)
        return starts if len(starts) >= 4 else None

    starts = wait_for(four, timeout=timeout, interval=0.2, what=f"four attempts at {what}")
    window = starts[3] - starts[0]
    gaps = [b - a for a, b in itertools.pairwise(starts[:4])]
    requests = [
        r for r in server.requests.filter(path=path) if starts[0] <= r.timestamp <= starts[3] + ATTEMPT_GAP
    ]
    detail = f"{what}: attempt gaps {[round(g, 2) for g in gaps]}, {len(requests)} requests in {window:.1f}s"
    # Exponential backoff: each gap at least (about) the previous one, the third clearly longer than
    # the first. A busy loop would have sent hundreds of requests in this window, not a dozen.
    assert gaps[1] >= 0.9 * gaps[0] and gaps[2] >= 0.9 * gaps[1], detail
    assert gaps[2] >= 1.3 * gaps[0], detail
    assert window >= 2.0, detail
    assert len(requests) <= 4 * 3, detail


def assert_alive(proc: OperatorProcess) -> None:
    """The same operator process is still running and healthy: never crashed nor restarted."""
    with urllib.request.urlopen(f"http://127.0.0.1:{proc.health_port}/healthz", timeout=5) as response:
        assert response.status == 200
    log = proc.log()
    assert log.count("starting:") == 1, "the operator restarted"
    assert "Traceback" not in log, log[-3000:]


def _delete(cp: ControlPlane, kind: str, name: str, namespace: str = NS) -> None:
    cp.kubectl("delete", kind, name, "-n", namespace, "--timeout=60s")


# ------------------------------------------------------------------------------------ error cases


def test_401_unauthorized_then_fixed_secret_recovers(
    controlplane: ControlPlane, fakes: FakesInThread, operator: OperatorProcess
) -> None:
    cp = controlplane
    apply(
        cp,
        [
            secret(UNAUTH_ADMIN, {"username": "admin", "password": WRONG_ADMIN_PW}, OPERATOR_NAMESPACE),
            secret(UNAUTH_TOKEN, {"token": WRONG_TOKEN}, OPERATOR_NAMESPACE),
        ],
    )
    since = time.time()
    apply(
        cp,
        [
            _user("err-401", "unauth"),
            _doc("DruidConnection", "err-401-conn", {"pivot": "unauth", "queryHosts": ["broker:8082"]}),
        ],
    )
    user = wait_reason(cp, "druiduser", NS, "err-401", "Unauthorized", timeout=30)
    assert _message(user) == "Druid refused the operator's credentials (401)"
    conn = wait_reason(cp, "druidconnection", NS, "err-401-conn", "Unauthorized", timeout=30)
    assert _message(conn) == "Pivot refused the operator's credentials (401)"
    assert {r.status for r in fakes.coordinator.requests.filter(path=r"/users/err-401$")} == {401}
    assert {r.status for r in fakes.pivot.requests.filter(path=r"/connections/err-401-conn$")} == {401}

    assert_backs_off(fakes.coordinator, r"/users/err-401$", since, "Druid 401")
    assert_backs_off(fakes.pivot, r"/connections/err-401-conn$", since, "Pivot 401")
    assert_alive(operator)
    assert "err-401" not in fakes.coordinator.users
    # The failure is announced once (a Warning Event and a log line), not on every retry.
    warnings = [
        e
        for e in kubectl_json(
            cp, "get", "events", "-n", NS, "--field-selector", "involvedObject.name=err-401"
        )["items"]
        if e["type"] == "Warning" and e["reason"] == "Unauthorized"
    ]
    assert len(warnings) == 1, warnings
    assert warnings[0].get("count", 1) == 1
    assert operator.log().count("DruidUser errors/err-401: Unauthorized: Druid refused") == 1

    # Fix the Secrets only: the operator picks the new credentials up without a restart.
    apply(
        cp,
        [
            secret(UNAUTH_ADMIN, {"username": "admin", "password": ADMIN_PW}, OPERATOR_NAMESPACE),
            secret(UNAUTH_TOKEN, {"token": TOKEN}, OPERATOR_NAMESPACE),
        ],
    )
    wait_reason(cp, "druiduser", NS, "err-401", "Synced", timeout=40)
    wait_reason(cp, "druidconnection", NS, "err-401-conn", "Synced", timeout=40)
    assert "err-401" in fakes.coordinator.users
    assert "err-401-conn" in fakes.pivot.connections
    assert_alive(operator)
    _delete(cp, "druiduser", "err-401")
    _delete(cp, "druidconnection", "err-401-conn")


def test_403_forbidden_then_granted_recovers(
    controlplane: ControlPlane, fakes: FakesInThread, operator: OperatorProcess
) -> None:
    cp = controlplane
    since = time.time()
    apply(cp, _doc("DruidGroupMapping", "err-403", {"cluster": "weak", "groupPattern": "cn=x"}))
    obj = wait_reason(cp, "druidgroupmapping", NS, "err-403", "Forbidden", timeout=30)
    message = _message(obj)
    assert message.startswith("Druid denied the operator's account (403)"), message
    assert "Allowed:false" in message, message
    records = fakes.coordinator.requests.filter(path=r"/groupMappings/err-403$")
    assert records and {(r.status, r.user) for r in records} == {(403, WEAK_USER)}

    assert_backs_off(fakes.coordinator, r"/groupMappings/err-403$", since, "Druid 403")
    assert_alive(operator)
    assert "err-403" not in fakes.coordinator.group_mappings

    fakes.call(lambda: fakes.coordinator.users[WEAK_USER].add("admin"))
    try:
        wait_reason(cp, "druidgroupmapping", NS, "err-403", "Synced", timeout=40)
        assert fakes.coordinator.group_mappings["err-403"].group_pattern == "cn=x"
        assert_alive(operator)
        _delete(cp, "druidgroupmapping", "err-403")
    finally:
        fakes.call(lambda: fakes.coordinator.users[WEAK_USER].discard("admin"))


def test_400_rejected_with_the_servers_message(
    controlplane: ControlPlane, fakes: FakesInThread, operator: OperatorProcess
) -> None:
    cp = controlplane
    fault = fakes.call(
        lambda: fakes.coordinator.faults.add(
            Fault(
                method="POST", path=r"/roles/err-400/permissions$", status=400, body={"error": REJECT_MESSAGE}
            )
        )
    )
    since = time.time()
    apply(
        cp,
        _doc(
            "DruidRole",
            "err-400",
            {"permissions": [{"resource": {"type": "DATASOURCE", "name": "wiki.*"}, "action": "READ"}]},
        ),
    )
    obj = wait_reason(cp, "druidrole", NS, "err-400", "Rejected", timeout=30)
    assert _message(obj) == (
        f"Druid rejected a request (400): {REJECT_MESSAGE}; "
        "not retried until the spec or a referenced Secret changes"
    )
    # An invalid request stays invalid: no retry (a backoff would have made 3 more by now).
    time.sleep(8)
    assert len(_attempts(fakes.coordinator, r"/roles/err-400/permissions$", since)) == 1
    assert_alive(operator)
    assert fakes.coordinator.roles["err-400"] == []  # created, but the permissions never went in

    fakes.call(lambda: fakes.coordinator.faults.remove(fault))
    spec = {"permissions": [{"resource": {"type": "DATASOURCE", "name": "wiki.*"}, "action": "WRITE"}]}
    apply(cp, _doc("DruidRole", "err-400", spec))  # a changed spec is tried again
    wait_reason(cp, "druidrole", NS, "err-400", "Synced", timeout=40)
    assert [p.resource_action() for p in fakes.coordinator.roles["err-400"]] == [
        {"resource": {"name": "wiki.*", "type": "DATASOURCE"}, "action": "WRITE"}
    ]
    assert_alive(operator)
    _delete(cp, "druidrole", "err-400")


def test_500_server_error(
    controlplane: ControlPlane, fakes: FakesInThread, operator: OperatorProcess
) -> None:
    cp = controlplane
    page = f"<html><body><h2>HTTP ERROR 500 {SERVER_ERROR_TEXT}</h2></body></html>"
    druid_fault = fakes.call(
        lambda: fakes.coordinator.faults.add(
            Fault(path=r"/users/err-500$", status=500, body=page, content_type="text/html")
        )
    )
    pivot_fault = fakes.call(
        lambda: fakes.pivot.faults.add(
            Fault(path=r"/connections/err-500-conn$", status=500, body={"error": PIVOT_ERROR_TEXT})
        )
    )
    since = time.time()
    apply(
        cp,
        [
            _user("err-500", "default"),
            _doc("DruidConnection", "err-500-conn", {"queryHosts": ["broker:8082"]}),
        ],
    )
    user = wait_reason(cp, "druiduser", NS, "err-500", "ServerError", timeout=30)
    assert _message(user) == f"Druid failed (500): HTTP ERROR 500 {SERVER_ERROR_TEXT}"
    conn = wait_reason(cp, "druidconnection", NS, "err-500-conn", "ServerError", timeout=30)
    assert _message(conn) == f"Pivot failed (500): {PIVOT_ERROR_TEXT}"

    assert_backs_off(fakes.coordinator, r"/users/err-500$", since, "Druid 500")
    assert_backs_off(fakes.pivot, r"/connections/err-500-conn$", since, "Pivot 500")
    assert_alive(operator)

    fakes.call(lambda: fakes.coordinator.faults.remove(druid_fault))
    fakes.call(lambda: fakes.pivot.faults.remove(pivot_fault))
    wait_reason(cp, "druiduser", NS, "err-500", "Synced", timeout=40)
    wait_reason(cp, "druidconnection", NS, "err-500-conn", "Synced", timeout=40)
    assert "err-500" in fakes.coordinator.users
    assert "err-500-conn" in fakes.pivot.connections
    assert_alive(operator)
    _delete(cp, "druiduser", "err-500")
    _delete(cp, "druidconnection", "err-500-conn")


def test_timeout_is_unreachable(
    controlplane: ControlPlane, fakes: FakesInThread, operator: OperatorProcess
) -> None:
    cp = controlplane
    fault = fakes.call(
        lambda: fakes.coordinator.faults.add(Fault(path=r"/users/err-timeout$", latency=FAULT_LATENCY))
    )
    since = time.time()
    apply(cp, _user("err-timeout", "slow"))
    obj = wait_reason(cp, "druiduser", NS, "err-timeout", "Unreachable", timeout=30)
    message = _message(obj)
    assert message.startswith("Druid is unreachable: ReadTimeout"), message

    # Each attempt costs timeoutSeconds plus the backoff; the delayed requests are logged when
    # the fake finishes them, so allow for the latency in the wait.
    assert_backs_off(fakes.coordinator, r"/users/err-timeout$", since, "Druid timeout", timeout=40)
    assert_alive(operator)
    assert "err-timeout" not in fakes.coordinator.users

    fakes.call(lambda: fakes.coordinator.faults.remove(fault))
    wait_reason(cp, "druiduser", NS, "err-timeout", "Synced", timeout=40)
    assert "err-timeout" in fakes.coordinator.users
    assert_alive(operator)
    _delete(cp, "druiduser", "err-timeout")


def test_refused_connection_is_unreachable_and_recovers(
    controlplane: ControlPlane, fakes: FakesInThread, operator: OperatorProcess, closed_port: int
) -> None:
    cp = controlplane
    apply(
        cp,
        _doc(
            "DruidRole",
            "err-refused",
            {
                "cluster": "closed",
                "permissions": [{"resource": {"type": "STATE", "name": "STATE"}, "action": "READ"}],
            },
        ),
    )
    obj = wait_reason(cp, "druidrole", NS, "err-refused", "Unreachable", timeout=30)
    message = _message(obj)
    assert message.startswith("Druid is unreachable: ConnectError"), message
    # Nothing listens, so the fake cannot count these attempts; a few seconds of retrying must
    # leave the operator healthy and the status unchanged (no status write per attempt).
    version = obj["metadata"]["resourceVersion"]
    time.sleep(4)
    assert_alive(operator)
    again = kubectl_json(cp, "get", "druidrole", "err-refused", "-n", NS)
    assert again["metadata"]["resourceVersion"] == version, "a failing retry rewrote an unchanged status"

    # The fault clears: a Coordinator starts listening on that very port.
    late = FakesInThread(admin_password=ADMIN_PW, pivot_token=TOKEN, credential_iterations=1000)
    late.coordinator = FakeCoordinator(admin_password=ADMIN_PW, credential_iterations=1000, port=closed_port)
    with late:
        wait_reason(cp, "druidrole", NS, "err-refused", "Synced", timeout=40)
        assert [p.resource_action() for p in late.coordinator.roles["err-refused"]] == [
            {"resource": {"name": "STATE", "type": "STATE"}, "action": "READ"}
        ]
        assert_alive(operator)
        _delete(cp, "druidrole", "err-refused")
        assert "err-refused" not in late.coordinator.roles


# ------------------------------------------------------------------------------------ a dead target

DEAD = [f"dead-{i:02d}" for i in range(12)]
STATE_READ = {"permissions": [{"resource": {"type": "STATE", "name": "STATE"}, "action": "READ"}]}


def _reason(cp: ControlPlane, name: str) -> str | None:
    obj = kubectl_json(cp, "get", "druidrole", name, "-n", NS)
    ready = ready_condition(obj)
    return None if ready is None else str(ready["reason"])


def test_a_dead_target_is_probed_alone_and_every_status_follows(
    controlplane: ControlPlane, fakes: FakesInThread, operator: OperatorProcess
) -> None:
    """Counts on the wire: once three requests in a row went unanswered, the Coordinator gets
    nothing but one probe with backoff; every object says Unreachable long before its resync
    (30 s), a new object says so without a request, a deletion waits, and all resume after."""
    cp = controlplane
    apply(cp, [_doc("DruidRole", name, STATE_READ) for name in DEAD])
    for name in DEAD:
        wait_reason(cp, "druidrole", NS, name, "Synced", timeout=60)
    fault = fakes.call(lambda: fakes.coordinator.faults.add(Fault(path="", reset=True)))
    try:
        # Three spec changes wake three objects, whose live reads go unanswered: the breaker opens.
        changed = {"permissions": [{"resource": {"type": "STATE", "name": "STATE"}, "action": "WRITE"}]}
        apply(cp, [_doc("DruidRole", name, changed) for name in DEAD[:3]])
        opened = time.monotonic()
        wait_for(
            lambda: all(_reason(cp, name) == "Unreachable" for name in DEAD) or None,
            timeout=15,
            what="every object on the dead target to say Unreachable",
        )
        assert time.monotonic() - opened < RESYNC / 2, "statuses waited for their resyncs"

        since = time.time()
        apply(cp, _doc("DruidRole", "dead-new", STATE_READ))
        wait_reason(cp, "druidrole", NS, "dead-new", "Unreachable", timeout=10)
        cp.kubectl("delete", "druidrole", DEAD[-1], "-n", NS, "--wait=false")
        wait_for(
            lambda: _reason(cp, DEAD[-1]) == "DeletionBlocked" or None,
            timeout=15,
            what="the deletion to wait",
        )
        time.sleep(6)
        sent = [r for r in fakes.coordinator.requests.records if r.timestamp >= since]
        assert all((r.method, r.path) == ("GET", "/status/health") for r in sent), [r.path for r in sent][:5]
        assert len(sent) <= 1 + (time.time() - since), len(sent)  # at most about one a second
        assert "dead-new" not in fakes.coordinator.roles
    finally:
        fakes.call(lambda: fakes.coordinator.faults.remove(fault))
    for name in [*DEAD[:-1], "dead-new"]:
        wait_reason(cp, "druidrole", NS, name, "Synced", timeout=60)
    wait_for(lambda: DEAD[-1] not in fakes.coordinator.roles or None, timeout=60, what="the deletion")
    assert_alive(operator)
    cp.kubectl("delete", "druidrole", *DEAD[:-1], "dead-new", "-n", NS, "--timeout=60s")


def test_a_target_that_died_while_idle_is_asked_by_one_pass_at_a_time(
    controlplane: ControlPlane, fakes: FakesInThread, operator: OperatorProcess
) -> None:
    """16 objects applied at once to a target that died since it was last heard from: the
    workers do not all send their reads together; one pass at a time asks, so the breaker
    opens after THRESHOLD passes' requests, and the rest say Unreachable without a request."""
    cp = controlplane
    names = [f"idle-dead-{i:02d}" for i in range(16)]
    # Not heard from for FRESH seconds: the last request the fake answered is that long ago.
    wait_for(
        lambda: (
            time.time() - max((r.timestamp for r in fakes.coordinator.requests.records), default=0)
            > FRESH + 0.5
            or None
        ),
        timeout=60,
        interval=0.2,
        what="the target to be idle",
    )
    fault = fakes.call(lambda: fakes.coordinator.faults.add(Fault(path="", reset=True)))
    since = time.time()
    try:
        apply(cp, [_doc("DruidRole", name, STATE_READ) for name in names])
        for name in names:
            wait_reason(cp, "druidrole", NS, name, "Unreachable", timeout=30)
        sent = [r for r in fakes.coordinator.requests.records if r.timestamp >= since]
    finally:
        fakes.call(lambda: fakes.coordinator.faults.remove(fault))
    # A new role's pass reads the role (a snapshot read, not per object, may come due too).
    per_object = [r for r in sent if "cachedSerialized" not in r.path and r.path != "/status/health"]
    assert len(per_object) <= THRESHOLD, [(r.method, r.path) for r in per_object]
    for name in names:
        wait_reason(cp, "druidrole", NS, name, "Synced", timeout=60)
    assert_alive(operator)
    cp.kubectl("delete", "druidrole", *names, "-n", NS, "--timeout=60s")


# ----------------------------------------------------------------------------------- secret canary


def _b64(value: str) -> str:
    return base64.b64encode(value.encode("utf-8")).decode("ascii")


def _statuses(cp: ControlPlane) -> str:
    return cp.kubectl("get", "druid", "-A", "-o", "json").stdout


def test_no_secret_value_leaks_anywhere(
    controlplane: ControlPlane, fakes: FakesInThread, operator: OperatorProcess
) -> None:
    cp = controlplane
    ns = CANARY_NS
    snapshots: list[str] = []

    def ref(name: str, key: str) -> dict[str, str]:
        return {"name": name, "key": key}

    apply(
        cp,
        [
            secret("alice-pw", {"password": CANARY_PW}, ns),
            secret(
                "conn-tls",
                {
                    "ca": "-----BEGIN CERTIFICATE-----\nMIIBcanaryCA\n-----END CERTIFICATE-----\n",
                    "cert": "-----BEGIN CERTIFICATE-----\nMIIBcanaryCert\n-----END CERTIFICATE-----\n",
                    "key": f"-----BEGIN PRIVATE KEY-----\n{CANARY_TLS_KEY}\n-----END PRIVATE KEY-----\n",
                    "passphrase": CANARY_PASSPHRASE,
                },
                ns,
            ),
            secret("conn-socks", {"password": CANARY_SOCKS_PW}, ns),
        ],
    )
    role_spec: dict[str, Any] = {
        "cluster": "canary",
        "permissions": [{"resource": {"type": "DATASOURCE", "name": "canary.*"}, "action": "READ"}],
    }
    conn_spec: dict[str, Any] = {
        "pivot": "canary",
        "queryHosts": ["broker:8082"],
        "title": "Canary",
        "defaultDbAuthToken": {"username": "alice", "passwordSecretRef": ref("alice-pw", "password")},
        "protocol": "tls",
        "tls": {
            "ca": ref("conn-tls", "ca"),
            "cert": ref("conn-tls", "cert"),
            "key": ref("conn-tls", "key"),
            "passphrase": ref("conn-tls", "passphrase"),
        },
        "socks": {
            "host": "socks.example:1080",
            "username": "proxy",
            "passwordSecretRef": ref("conn-socks", "password"),
        },
    }
    apply(
        cp,
        [
            _doc("DruidRole", "canary-readers", role_spec, ns),
            _doc(
                "DruidUser",
                "alice",
                {
                    "cluster": "canary",
                    "roles": ["canary-readers"],
                    "password": {"secretKeyRef": ref("alice-pw", "password")},
                },
                ns,
            ),
            _doc(
                "DruidUser",
                "bob",
                {
                    "cluster": "canary",
                    "roles": ["canary-readers"],
                    "password": {"secretKeyRef": ref("bob-pw", "password"), "generate": True},
                },
                ns,
            ),
            _doc(
                "DruidGroupMapping",
                "canary-analysts",
                {"cluster": "canary", "groupPattern": "cn=analysts", "roles": ["canary-readers"]},
                ns,
            ),
            _doc("DruidConnection", "canary-conn", conn_spec, ns),
        ],
    )
    objects = (
        ("druidrole", "canary-readers"),
        ("druiduser", "alice"),
        ("druiduser", "bob"),
        ("druidgroupmapping", "canary-analysts"),
        ("druidconnection", "canary-conn"),
    )
    for kind, name in objects:
        wait_reason(cp, kind, ns, name, "Synced", timeout=60)
    snapshots.append(_statuses(cp))

    coord, pivot = fakes.coordinator, fakes.pivot
    generated_b64 = kubectl_json(cp, "get", "secret", "bob-pw", "-n", ns)["data"]["password"]
    generated = base64.b64decode(generated_b64).decode("utf-8")
    assert len(generated) >= 16
    # The canaries really went where they belong.
    alice_creds, bob_creds = coord.credentials["alice"], coord.credentials["bob"]
    assert alice_creds is not None and verify_password(CANARY_PW, alice_creds)
    assert bob_creds is not None and verify_password(generated, bob_creds)
    stored = pivot.connections["canary-conn"]
    token = stored["defaultDbAuthToken"]
    assert isinstance(token, dict) and token["password"] == CANARY_PW
    assert CANARY_TLS_KEY in str(stored["key"])
    assert stored["passphrase"] == CANARY_PASSPHRASE
    assert stored["sockPassword"] == CANARY_SOCKS_PW

    # Rotation: the new password reaches Druid (user) and Pivot (connection) through the watch.
    apply(cp, secret("alice-pw", {"password": CANARY_PW_ROTATED}, ns))

    def rotated() -> bool:
        creds = coord.credentials.get("alice")
        token = pivot.connections["canary-conn"]["defaultDbAuthToken"]
        return (
            creds is not None
            and verify_password(CANARY_PW_ROTATED, creds)
            and isinstance(token, dict)
            and token.get("password") == CANARY_PW_ROTATED
        )

    wait_for(rotated, timeout=30, what="the rotated password in Druid and Pivot")
    wait_reason(cp, "druiduser", ns, "alice", "Synced", timeout=30)
    snapshots.append(_statuses(cp))

    # An error case: wrong admin password and Pivot token (themselves canaries) -> 401s.
    apply(
        cp,
        [
            secret(CANARY_ADMIN, {"username": "admin", "password": CANARY_WRONG_ADMIN}, OPERATOR_NAMESPACE),
            secret(CANARY_TOKEN, {"token": CANARY_WRONG_TOKEN}, OPERATOR_NAMESPACE),
        ],
    )
    role_spec["permissions"].append({"resource": {"type": "STATE", "name": "STATE"}, "action": "READ"})
    apply(cp, _doc("DruidRole", "canary-readers", role_spec, ns))
    cp.kubectl(
        "patch", "druidconnection", "canary-conn", "-n", ns, "--type=merge", "-p", '{"spec":{"title":"C2"}}'
    )
    wait_reason(cp, "druidrole", ns, "canary-readers", "Unauthorized", timeout=30)
    wait_reason(cp, "druidconnection", ns, "canary-conn", "Unauthorized", timeout=30)
    snapshots.append(_statuses(cp))
    apply(
        cp,
        [
            secret(CANARY_ADMIN, {"username": "admin", "password": ADMIN_PW}, OPERATOR_NAMESPACE),
            secret(CANARY_TOKEN, {"token": TOKEN}, OPERATOR_NAMESPACE),
        ],
    )
    wait_reason(cp, "druidrole", ns, "canary-readers", "Synced", timeout=40)
    wait_reason(cp, "druidconnection", ns, "canary-conn", "Synced", timeout=40)
    assert len(coord.roles["canary-readers"]) == 2
    assert pivot.connections["canary-conn"]["title"] == "C2"
    snapshots.append(_statuses(cp))

    # Deletion.
    for kind, name in objects[::-1]:
        cp.kubectl("delete", kind, name, "-n", ns, "--timeout=60s")
    assert not {"alice", "bob"} & set(coord.users)
    assert "canary-readers" not in coord.roles
    assert "canary-analysts" not in coord.group_mappings
    assert "canary-conn" not in pivot.connections

    # The search.
    canaries = {
        "admin password": ADMIN_PW,
        "Pivot token": TOKEN,
        "user password": CANARY_PW,
        "rotated user password": CANARY_PW_ROTATED,
        "generated password": generated,
        "TLS key": CANARY_TLS_KEY,
        "TLS passphrase": CANARY_PASSPHRASE,
        "SOCKS password": CANARY_SOCKS_PW,
        "wrong admin password": CANARY_WRONG_ADMIN,
        "wrong Pivot token": CANARY_WRONG_TOKEN,
        "401-case admin password": WRONG_ADMIN_PW,
        "401-case Pivot token": WRONG_TOKEN,
        "403-case admin password": WEAK_PW,
        "error-case user password": USER_PW,
    }
    corpora = {
        "operator log": operator.log(),
        "events": cp.kubectl("get", "events", "-A", "-o", "json").stdout,
        "events.k8s.io": cp.kubectl("get", "events.events.k8s.io", "-A", "-o", "json").stdout,
        "custom resources": "\n".join(snapshots),
        "fake request log": repr(coord.requests.records) + repr(pivot.requests.records),
    }
    assert "set the password of" in corpora["events"]  # the corpora are real: the lifecycle is in there
    assert "alice" in corpora["operator log"]
    leaks = [
        f"{label}{' (base64)' if form != value else ''} in {where}"
        for label, value in canaries.items()
        for form in (value, _b64(value))
        for where, text in corpora.items()
        if form in text
    ]
    assert leaks == []
