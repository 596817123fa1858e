"""The operator on the real control plane against the fakes: drift, passwords, dependencies.

One operator process serves the module. Its configuration has two Druid clusters and two
Pivot instances, all pointing at the same fakes: ``default`` resyncs every 2 s (drift tests
need resyncs), ``slow`` every hour, so anything that reaches a ``slow`` object within
seconds arrived through a watch or a wake-up, not through a resync.
"""

from __future__ import annotations

import base64
import json
import re
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from druid_access.passwords import StoredCredentials, verify_password
from druid_access.testing.controlplane import ControlPlane
from druid_access.testing.environment import (
    FakesInThread,
    OperatorProcess,
    apply,
    install,
    kubectl_json,
    operator_config,
    secret,
    wait_for,
    wait_reason,
)
from druid_access.testing.fake_coordinator import AUTHN, AUTHZ, Permission

DRIFT = "drift"
PASSWORDS = "passwords"
DEPS = "deps"
NAMESPACES = (DRIFT, PASSWORDS, DEPS)
ADMIN_PW = "admin-pw-drift-passwords"
TOKEN = "pivot-token-drift-passwords"
SLOW = "slow"  # cluster and Pivot with a one-hour resync
FAST_RESYNC = 2.0
BROKER_URL = "https://druid-broker.example:8282"
ROUTER_URL = "https://druid-router.example:9088"
SLOW_RESYNC = 3600.0
DRIFT_MESSAGE = "drift on the remote side"
NON_ASCII_PW = "pässwörd-日本-1"


# ------------------------------------------------------------------------------------ fixtures


@pytest.fixture(scope="module")
def fakes() -> Iterator[FakesInThread]:
    with FakesInThread(admin_password=ADMIN_PW, pivot_token=TOKEN, credential_iterations=1000) as f:
        yield f


@pytest.fixture(scope="module")
def operator(
    controlplane: ControlPlane, fakes: FakesInThread, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[OperatorProcess]:
    cp = controlplane
    install(cp, admin_user="admin", admin_password=ADMIN_PW, pivot_token=TOKEN)
    for ns in NAMESPACES:
        cp.kubectl("create", "namespace", ns)
    config = operator_config(fakes, resync_seconds=FAST_RESYNC)
    config["clusters"][SLOW] = {
        **config["clusters"]["default"],
        "resyncSeconds": SLOW_RESYNC,
        "brokerUrl": BROKER_URL,
        "routerUrl": ROUTER_URL,
    }
    config["pivots"][SLOW] = {**config["pivots"]["default"], "resyncSeconds": SLOW_RESYNC}
    proc = OperatorProcess(
        config=config,
        kubeconfig=cp.operator_kubeconfig,
        workdir=tmp_path_factory.mktemp("operator-drift"),
        namespaces=NAMESPACES,
    )
    proc.start()
    try:
        yield proc
    finally:
        # Release every finalizer while the operator still runs, so nothing is left hanging
        # for later modules of the session.
        for ns in NAMESPACES:
            cp.kubectl(
                "delete",
                "druidusers,druidroles,druidgroupmappings,druidconnections",
                "--all",
                "-n",
                ns,
                "--timeout=60s",
                check=False,
            )
        code = proc.stop()
    assert code == 0, proc.log()[-3000:]


# ------------------------------------------------------------------------------------- helpers


def _doc(kind: str, ns: str, name: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "druidaccess.io/v1alpha1",
        "kind": kind,
        "metadata": {"name": name, "namespace": ns},
        "spec": spec,
    }


def _perm(type_: str, name: str, action: str) -> dict[str, Any]:
    return {"resource": {"type": type_, "name": name}, "action": action}


def _ref(name: str, key: str) -> dict[str, str]:
    return {"name": name, "key": key}


def _get(cp: ControlPlane, kind: str, ns: str, name: str) -> dict[str, Any]:
    obj: dict[str, Any] = kubectl_json(cp, "get", kind, name, "-n", ns)
    return obj


def _condition(obj: dict[str, Any], type_: str) -> dict[str, Any] | None:
    for condition in (obj.get("status") or {}).get("conditions") or []:
        if condition.get("type") == type_:
            return dict(condition)
    return None


def _drift_count(obj: dict[str, Any]) -> int:
    return int((obj.get("status") or {}).get("driftCount") or 0)


def _wait_obj(
    cp: ControlPlane,
    kind: str,
    ns: str,
    name: str,
    check: Callable[[dict[str, Any]], bool],
    *,
    what: str,
    timeout: float = 30.0,
) -> dict[str, Any]:
    def probe() -> dict[str, Any] | None:
        obj = _get(cp, kind, ns, name)
        return obj if check(obj) else None

    return wait_for(probe, timeout=timeout, what=f"{kind} {ns}/{name}: {what}")


def _wait_drift_corrected(cp: ControlPlane, kind: str, ns: str, name: str, before: int) -> dict[str, Any]:
    """driftCount went up and Ready is back to Synced (message 'drift corrected' or 'in sync')."""

    def corrected(obj: dict[str, Any]) -> bool:
        ready = _condition(obj, "Ready")
        return (
            _drift_count(obj) > before
            and ready is not None
            and ready["status"] == "True"
            and ready["reason"] == "Synced"
            and ready["message"] in ("drift corrected", "in sync")
        )

    return _wait_obj(cp, kind, ns, name, corrected, what="drift counted and corrected")


def _events(cp: ControlPlane, ns: str, kind: str, name: str) -> list[dict[str, Any]]:
    selector = f"involvedObject.kind={kind},involvedObject.name={name}"
    items: list[dict[str, Any]] = kubectl_json(cp, "get", "events", "-n", ns, "--field-selector", selector)[
        "items"
    ]
    return items


def _wait_events(
    cp: ControlPlane, ns: str, kind: str, name: str, reasons: set[str], *, containing: str = ""
) -> list[dict[str, Any]]:
    """Wait until Normal Events with every reason in ``reasons`` (and ``containing`` in the
    message) were recorded for the object."""

    def probe() -> list[dict[str, Any]] | None:
        events = [
            e
            for e in _events(cp, ns, kind, name)
            if e.get("type") == "Normal" and containing in (e.get("message") or "")
        ]
        return events if reasons <= {e["reason"] for e in events} else None

    return wait_for(probe, timeout=20, what=f"events {sorted(reasons)} on {kind} {ns}/{name}")


def _snapshot(fakes: FakesInThread, fn: Callable[[], Any]) -> Any:
    """Read fake state on the fakes' loop (never iterate a dict another thread mutates)."""
    return fakes.call(fn)


def _user_roles(fakes: FakesInThread, user: str) -> set[str] | None:
    roles = _snapshot(fakes, lambda: fakes.coordinator.users.get(user))
    return set(roles) if roles is not None else None


def _credentials(fakes: FakesInThread, user: str) -> StoredCredentials | None:
    stored: StoredCredentials | None = _snapshot(fakes, lambda: fakes.coordinator.credentials.get(user))
    return stored


def _verifies(fakes: FakesInThread, user: str, password: str) -> bool:
    stored = _credentials(fakes, user)
    return stored is not None and verify_password(password, stored)


def _permissions(fakes: FakesInThread, role: str) -> set[tuple[str | None, str, str | None]] | None:
    perms = _snapshot(fakes, lambda: list(fakes.coordinator.roles.get(role) or []) or None)
    if perms is None:
        return None
    return {(p.type, p.name, p.action) for p in perms}


def _connection(fakes: FakesInThread, name: str) -> dict[str, Any] | None:
    conn = _snapshot(fakes, lambda: fakes.pivot.connections.get(name))
    return json.loads(json.dumps(conn)) if conn is not None else None


def _druid_admin(fakes: FakesInThread, method: str, path: str) -> None:
    """A request to the fake Coordinator as its admin, as someone with curl would send it."""
    response = httpx.request(method, fakes.coordinator.url + path, auth=("admin", ADMIN_PW), timeout=10)
    assert response.status_code == 200, response.text


def _paths(name: str) -> str:
    """A regex matching every Coordinator path about the user/role/mapping ``name``."""
    return rf"/(users|roles|groupMappings)/{re.escape(name)}(/|$)"


def _credential_posts(fakes: FakesInThread, user: str) -> int:
    return fakes.coordinator.requests.count("POST", rf"{AUTHN}/db/basic/users/{re.escape(user)}/credentials$")


def _authn_reads(fakes: FakesInThread, user: str) -> int:
    return fakes.coordinator.requests.count("GET", rf"{AUTHN}/db/basic/users/{re.escape(user)}$")


# ----------------------------------------------------------------------------------- A: drift


def test_role_permission_drift_is_corrected(
    controlplane: ControlPlane, fakes: FakesInThread, operator: OperatorProcess
) -> None:
    cp = controlplane
    wanted = [_perm("DATASOURCE", "wiki.*", "READ"), _perm("STATE", "STATE", "READ")]
    apply(cp, _doc("DruidRole", DRIFT, "perm-role", {"permissions": wanted}))
    before = _drift_count(wait_reason(cp, "druidrole", DRIFT, "perm-role", "Synced"))
    expected = {("DATASOURCE", "wiki.*", "READ"), ("STATE", "STATE", "READ")}
    assert _permissions(fakes, "perm-role") == expected

    # Someone replaces the permission list behind the operator's back.
    fakes.call(lambda: fakes.coordinator.add_role("perm-role", [Permission("CONFIG", ".*", "WRITE")]))
    wait_for(lambda: _permissions(fakes, "perm-role") == expected, timeout=20, what="permissions restored")
    _wait_drift_corrected(cp, "druidrole", DRIFT, "perm-role", before)
    _wait_events(cp, DRIFT, "DruidRole", "perm-role", {"SetPermissions"}, containing=DRIFT_MESSAGE)


def test_user_role_assignment_drift_is_corrected(
    controlplane: ControlPlane, fakes: FakesInThread, operator: OperatorProcess
) -> None:
    cp = controlplane
    apply(
        cp,
        [
            _doc("DruidRole", DRIFT, "a2-reader", {"permissions": [_perm("STATE", "STATE", "READ")]}),
            _doc("DruidRole", DRIFT, "a2-writer", {"permissions": [_perm("STATE", "STATE", "WRITE")]}),
            _doc("DruidUser", DRIFT, "assignee", {"roles": ["a2-reader", "a2-writer"]}),
        ],
    )
    before = _drift_count(wait_reason(cp, "druiduser", DRIFT, "assignee", "Synced"))
    assert _user_roles(fakes, "assignee") == {"a2-reader", "a2-writer"}

    def tamper() -> None:
        fakes.coordinator.add_role("intruder", [Permission("CONFIG", ".*", "WRITE")])
        fakes.coordinator.users["assignee"] = {"a2-reader", "intruder"}

    fakes.call(tamper)
    wait_for(
        lambda: _user_roles(fakes, "assignee") == {"a2-reader", "a2-writer"},
        timeout=20,
        what="role assignments restored",
    )
    _wait_drift_corrected(cp, "druiduser", DRIFT, "assignee", before)
    # One Event per pass, named after its first write, saying every write of the pass.
    events = _wait_events(cp, DRIFT, "DruidUser", "assignee", {"AssignedRole"}, containing=DRIFT_MESSAGE)
    messages = " | ".join(e["message"] for e in events)
    assert "'intruder'" in messages and "'a2-writer'" in messages, messages


def test_deleted_remote_objects_are_recreated(
    controlplane: ControlPlane, fakes: FakesInThread, operator: OperatorProcess
) -> None:
    cp = controlplane
    apply(cp, secret("victim-pw", {"password": "victim-secret-1"}, DRIFT))
    apply(
        cp,
        [
            _doc("DruidRole", DRIFT, "victim-role", {"permissions": [_perm("DATASOURCE", "v.*", "READ")]}),
            _doc(
                "DruidUser",
                DRIFT,
                "victim",
                {"roles": ["victim-role"], "password": {"secretKeyRef": _ref("victim-pw", "password")}},
            ),
            _doc(
                "DruidGroupMapping",
                DRIFT,
                "victim-map",
                {"groupPattern": "cn=victims", "roles": ["victim-role"]},
            ),
            _doc("DruidConnection", DRIFT, "victim-conn", {"queryHosts": ["broker:8082"], "title": "Victim"}),
        ],
    )
    objects = (
        ("druidrole", "DruidRole", "victim-role"),
        ("druiduser", "DruidUser", "victim"),
        ("druidgroupmapping", "DruidGroupMapping", "victim-map"),
        ("druidconnection", "DruidConnection", "victim-conn"),
    )
    before = {name: _drift_count(wait_reason(cp, kind, DRIFT, name, "Synced")) for kind, _, name in objects}
    original_conn = _connection(fakes, "victim-conn")
    assert original_conn is not None

    # The role goes through Druid's own DELETE (which also strips it from users and mappings);
    # the rest vanish from the fakes' state.
    _druid_admin(fakes, "DELETE", f"{AUTHZ}/db/basic/roles/victim-role")

    def wipe() -> None:
        del fakes.coordinator.credentials["victim"]
        del fakes.coordinator.users["victim"]
        del fakes.coordinator.group_mappings["victim-map"]
        del fakes.pivot.connections["victim-conn"]

    fakes.call(wipe)

    def restored() -> bool:
        mapping = _snapshot(fakes, lambda: fakes.coordinator.group_mappings.get("victim-map"))
        return (
            _permissions(fakes, "victim-role") == {("DATASOURCE", "v.*", "READ")}
            and _user_roles(fakes, "victim") == {"victim-role"}
            and _verifies(fakes, "victim", "victim-secret-1")
            and mapping is not None
            and mapping.group_pattern == "cn=victims"
            and set(mapping.roles) == {"victim-role"}
            and _connection(fakes, "victim-conn") == original_conn
        )

    wait_for(restored, timeout=30, what="every deleted remote object re-created")
    for kind, _, name in objects:
        _wait_drift_corrected(cp, kind, DRIFT, name, before[name])
    _wait_events(cp, DRIFT, "DruidRole", "victim-role", {"CreatedRole"}, containing="permission(s) on role")
    _wait_events(
        cp, DRIFT, "DruidUser", "victim", {"CreatedAuthenticatorUser"}, containing="set the password"
    )
    _wait_events(cp, DRIFT, "DruidUser", "victim", {"CreatedAuthenticatorUser"}, containing=DRIFT_MESSAGE)
    _wait_events(
        cp, DRIFT, "DruidGroupMapping", "victim-map", {"CreatedGroupMapping"}, containing=DRIFT_MESSAGE
    )
    _wait_events(cp, DRIFT, "DruidConnection", "victim-conn", {"CreatedConnection"}, containing=DRIFT_MESSAGE)


def test_connection_field_drift_is_corrected(
    controlplane: ControlPlane, fakes: FakesInThread, operator: OperatorProcess
) -> None:
    cp = controlplane
    apply(
        cp,
        _doc(
            "DruidConnection",
            DRIFT,
            "titled",
            {"queryHosts": ["broker:8082"], "title": "Right", "timeout": 30000},
        ),
    )
    before = _drift_count(wait_reason(cp, "druidconnection", DRIFT, "titled", "Synced"))

    def retitle() -> None:
        fakes.pivot.connections["titled"]["title"] = "Wrong"

    fakes.call(retitle)
    wait_for(
        lambda: (_connection(fakes, "titled") or {}).get("title") == "Right",
        timeout=20,
        what="title restored",
    )
    conn = _connection(fakes, "titled")
    assert conn is not None and conn["timeout"] == 30000 and conn["queryHosts"] == ["broker:8082"]
    _wait_drift_corrected(cp, "druidconnection", DRIFT, "titled", before)
    events = _wait_events(
        cp, DRIFT, "DruidConnection", "titled", {"UpdatedConnection"}, containing=DRIFT_MESSAGE
    )
    assert any("(title)" in e["message"] for e in events if e["reason"] == "UpdatedConnection"), events


def test_report_policy_records_drift_and_writes_nothing(
    controlplane: ControlPlane, fakes: FakesInThread, operator: OperatorProcess
) -> None:
    cp = controlplane
    apply(
        cp,
        [
            _doc(
                "DruidRole",
                DRIFT,
                "reported",
                {
                    "driftPolicy": "Report",
                    "permissions": [_perm("DATASOURCE", "wiki.*", "READ"), _perm("STATE", "STATE", "READ")],
                },
            ),
            _doc(
                "DruidConnection",
                DRIFT,
                "reported-conn",
                {"driftPolicy": "Report", "queryHosts": ["broker:8082"], "title": "Original"},
            ),
        ],
    )
    wait_reason(cp, "druidrole", DRIFT, "reported", "Synced")
    wait_reason(cp, "druidconnection", DRIFT, "reported-conn", "Synced")

    started = time.time()

    def tamper() -> None:
        fakes.coordinator.add_role(
            "reported", [Permission("STATE", "STATE", "READ"), Permission("CONFIG", "x", "WRITE")]
        )
        fakes.pivot.connections["reported-conn"]["title"] = "Changed by hand"

    fakes.call(tamper)
    role = wait_reason(cp, "druidrole", DRIFT, "reported", "Drifted", timeout=20)
    conn = wait_reason(cp, "druidconnection", DRIFT, "reported-conn", "Drifted", timeout=20)

    ready = _condition(role, "Ready")
    drifted = _condition(role, "Drifted")
    assert ready is not None and ready["status"] == "False"
    assert drifted is not None and drifted["status"] == "True", role["status"]
    assert "permissions (" in drifted["message"], drifted
    assert "missing READ DATASOURCE/wiki.*" in drifted["message"], drifted
    assert "extra WRITE CONFIG/x" in drifted["message"], drifted
    conn_drifted = _condition(conn, "Drifted")
    assert conn_drifted is not None and conn_drifted["status"] == "True", conn["status"]
    assert "title" in conn_drifted["message"], conn_drifted

    # Several more resyncs: still reported, counted once, and nothing written anywhere.
    reads = fakes.coordinator.requests.count("GET", _paths("reported"))
    wait_for(
        lambda: fakes.coordinator.requests.count("GET", _paths("reported")) >= reads + 2,
        timeout=15,
        what="two more resyncs of the reported role",
    )
    role_writes = [
        r
        for r in fakes.coordinator.requests.writes()
        if r.timestamp >= started and re.search(_paths("reported"), r.path)
    ]
    conn_writes = [
        r for r in fakes.pivot.requests.writes() if r.timestamp >= started and "reported-conn" in r.path
    ]
    assert role_writes == [] and conn_writes == []
    assert _permissions(fakes, "reported") == {("STATE", "STATE", "READ"), ("CONFIG", "x", "WRITE")}
    assert (_connection(fakes, "reported-conn") or {}).get("title") == "Changed by hand"
    for kind, name in (("druidrole", "reported"), ("druidconnection", "reported-conn")):
        obj = _get(cp, kind, DRIFT, name)
        assert (_condition(obj, "Ready") or {}).get("reason") == "Drifted"
        assert _drift_count(obj) == 1, f"{kind} {name}: drift must be counted once, not per resync"


# ------------------------------------------------------------------------------- B: passwords


def test_password_from_secret_is_stored_as_pbkdf2(
    controlplane: ControlPlane, fakes: FakesInThread, operator: OperatorProcess
) -> None:
    cp = controlplane
    apply(cp, secret("erin-pw", {"password": "erin-secret-1"}, PASSWORDS))
    apply(
        cp,
        _doc(
            "DruidUser",
            PASSWORDS,
            "erin",
            {"name": "erin@corp.example", "password": {"secretKeyRef": _ref("erin-pw", "password")}},
        ),
    )
    obj = wait_reason(cp, "druiduser", PASSWORDS, "erin", "Synced")
    stored = _credentials(fakes, "erin@corp.example")
    assert stored is not None
    assert verify_password("erin-secret-1", stored)
    assert not verify_password("erin-secret-2", stored)
    assert obj["status"]["secretVersion"].startswith("erin-pw@")
    assert "erin-secret-1" not in json.dumps(obj["status"])


def test_generated_password_secret_is_owned_and_used(
    controlplane: ControlPlane, fakes: FakesInThread, operator: OperatorProcess
) -> None:
    cp = controlplane
    apply(
        cp,
        _doc(
            "DruidUser",
            PASSWORDS,
            "gina",
            {"password": {"secretKeyRef": _ref("gina-generated", "pw"), "generate": True}},
        ),
    )
    user = wait_reason(cp, "druiduser", PASSWORDS, "gina", "Synced")
    generated = _get(cp, "secret", PASSWORDS, "gina-generated")
    value = base64.b64decode(generated["data"]["pw"]).decode("utf-8")
    assert len(value) >= 16
    owners = generated["metadata"].get("ownerReferences") or []
    assert len(owners) == 1, owners
    owner = owners[0]
    assert owner["kind"] == "DruidUser" and owner["apiVersion"] == "druidaccess.io/v1alpha1"
    assert owner["name"] == "gina" and owner["uid"] == user["metadata"]["uid"]
    assert owner.get("controller") is True
    assert _verifies(fakes, "gina", value)
    assert value not in operator.log()


def test_a_generated_secret_holds_what_an_application_mounts_and_the_status_names_it(
    controlplane: ControlPlane, fakes: FakesInThread, operator: OperatorProcess
) -> None:
    """username (the remote name), password, and the cluster's URLs when its configuration gives
    them, like a Kafka user's Secret; status.secret names the Secret of every user with a password."""
    cp = controlplane
    generated = {"password": {"secretKeyRef": _ref("app-one-pw", "password"), "generate": True}}
    apply(cp, _doc("DruidUser", PASSWORDS, "app-one", {"cluster": SLOW, "name": "app.one@apps", **generated}))
    plain = {"password": {"secretKeyRef": _ref("app-two-pw", "password"), "generate": True}}
    apply(cp, _doc("DruidUser", PASSWORDS, "app-two", plain))  # the default cluster gives no URL
    one = wait_reason(cp, "druiduser", PASSWORDS, "app-one", "Synced")
    two = wait_reason(cp, "druiduser", PASSWORDS, "app-two", "Synced")

    data = {
        k: base64.b64decode(v).decode()
        for k, v in _get(cp, "secret", PASSWORDS, "app-one-pw")["data"].items()
    }
    assert set(data) == {"username", "password", "brokerUrl", "routerUrl"}
    assert data["username"] == "app.one@apps"
    assert (data["brokerUrl"], data["routerUrl"]) == (BROKER_URL, ROUTER_URL)
    assert _verifies(fakes, "app.one@apps", data["password"])
    assert one["status"]["secret"] == "app-one-pw"
    data = {
        k: base64.b64decode(v).decode()
        for k, v in _get(cp, "secret", PASSWORDS, "app-two-pw")["data"].items()
    }
    assert set(data) == {"username", "password"} and data["username"] == "app-two"
    assert _verifies(fakes, "app-two", data["password"])
    assert two["status"]["secret"] == "app-two-pw"
    # A Secret the user made is named too, and the operator writes nothing into it.
    apply(cp, secret("app-three-own", {"password": "app-three-secret-1"}, PASSWORDS))
    apply(
        cp,
        _doc(
            "DruidUser",
            PASSWORDS,
            "app-three",
            {"password": {"secretKeyRef": _ref("app-three-own", "password")}},
        ),
    )
    three = wait_reason(cp, "druiduser", PASSWORDS, "app-three", "Synced")
    assert three["status"]["secret"] == "app-three-own"
    assert set(_get(cp, "secret", PASSWORDS, "app-three-own")["data"]) == {"password"}
    # A user without a password has no Secret to name.
    apply(cp, _doc("DruidUser", PASSWORDS, "app-four", {}))
    assert "secret" not in wait_reason(cp, "druiduser", PASSWORDS, "app-four", "Synced")["status"]


def test_secret_change_reaches_druid_through_the_watch(
    controlplane: ControlPlane, fakes: FakesInThread, operator: OperatorProcess
) -> None:
    cp = controlplane
    apply(cp, secret("hank-pw", {"password": "hank-secret-1"}, PASSWORDS))
    apply(
        cp,
        _doc(
            "DruidUser",
            PASSWORDS,
            "hank",
            {"cluster": SLOW, "password": {"secretKeyRef": _ref("hank-pw", "password")}},
        ),
    )
    wait_reason(cp, "druiduser", PASSWORDS, "hank", "Synced")
    assert _verifies(fakes, "hank", "hank-secret-1")

    apply(cp, secret("hank-pw", {"password": "hank-secret-2"}, PASSWORDS))
    changed = time.monotonic()
    # The cluster resyncs hourly: only the Secret watch can bring this within seconds.
    wait_for(lambda: _verifies(fakes, "hank", "hank-secret-2"), timeout=10, what="the new password in Druid")
    assert time.monotonic() - changed < 10
    assert not _verifies(fakes, "hank", "hank-secret-1")
    rv = _get(cp, "secret", PASSWORDS, "hank-pw")["metadata"]["resourceVersion"]
    _wait_obj(
        cp,
        "druiduser",
        PASSWORDS,
        "hank",
        lambda o: o["status"].get("secretVersion") == f"hank-pw@{rv}",
        what="secretVersion of the new Secret",
        timeout=10,
    )
    _wait_events(cp, PASSWORDS, "DruidUser", "hank", {"SetPassword"})


def test_secret_rotation_is_applied_and_not_counted_as_drift(
    controlplane: ControlPlane, fakes: FakesInThread, operator: OperatorProcess
) -> None:
    """A new Secret value is a change of the desired state, not drift on the remote side:
    it is applied under either drift policy, and driftCount does not move."""
    cp = controlplane
    apply(
        cp,
        [
            secret("kim-pw", {"password": "kim-secret-1"}, PASSWORDS),
            secret("lou-pw", {"password": "lou-secret-1"}, PASSWORDS),
        ],
    )
    users = {"kim": "Correct", "lou": "Report"}
    apply(
        cp,
        [
            _doc(
                "DruidUser",
                PASSWORDS,
                user,
                {
                    "cluster": SLOW,
                    "driftPolicy": policy,
                    "password": {"secretKeyRef": _ref(f"{user}-pw", "password")},
                },
            )
            for user, policy in users.items()
        ],
    )
    for user in users:
        wait_reason(cp, "druiduser", PASSWORDS, user, "Synced")
        assert _verifies(fakes, user, f"{user}-secret-1")

    apply(cp, [secret(f"{user}-pw", {"password": f"{user}-secret-2"}, PASSWORDS) for user in users])
    problems = [
        problem for user, policy in users.items() for problem in _rotation_problems(cp, fakes, user, policy)
    ]
    assert problems == [], "\n".join(problems)


def _rotation_problems(cp: ControlPlane, fakes: FakesInThread, user: str, policy: str) -> list[str]:
    """What is wrong with how the rotation of ``user``'s password Secret was handled."""
    who = f"{user} (driftPolicy {policy})"
    try:
        wait_for(lambda: _verifies(fakes, user, f"{user}-secret-2"), timeout=10, what="rotated password")
    except TimeoutError:
        obj = _get(cp, "druiduser", PASSWORDS, user)
        return [f"{who}: the rotated password did not reach Druid; status {obj['status']}"]
    rv = _get(cp, "secret", PASSWORDS, f"{user}-pw")["metadata"]["resourceVersion"]
    obj = _wait_obj(
        cp,
        "druiduser",
        PASSWORDS,
        user,
        lambda o: o["status"].get("secretVersion") == f"{user}-pw@{rv}",
        what="the rotated Secret applied",
        timeout=10,
    )
    problems = []
    if (_condition(obj, "Ready") or {}).get("reason") != "Synced" or _condition(obj, "Drifted") is not None:
        problems.append(f"{who}: not Synced after the rotation: {obj['status']['conditions']}")
    if _drift_count(obj) != 0:
        problems.append(f"{who}: the rotation was counted as drift (driftCount {_drift_count(obj)})")
    events = _wait_events(cp, PASSWORDS, "DruidUser", user, {"SetPassword"})
    for event in events:
        if event["reason"] == "SetPassword" and DRIFT_MESSAGE in event["message"]:
            problems.append(f"{who}: the rotation's Event calls it drift: {event['message']!r}")
    return problems


def test_matching_credential_is_never_rewritten(
    controlplane: ControlPlane, fakes: FakesInThread, operator: OperatorProcess
) -> None:
    cp = controlplane
    apply(
        cp,
        [
            secret("ivy-pw", {"password": NON_ASCII_PW}, PASSWORDS),
            secret("ivy-slow-pw", {"password": NON_ASCII_PW}, PASSWORDS),
        ],
    )
    apply(
        cp,
        [
            _doc("DruidUser", PASSWORDS, "ivy", {"password": {"secretKeyRef": _ref("ivy-pw", "password")}}),
            _doc(
                "DruidUser",
                PASSWORDS,
                "ivy-slow",
                {"cluster": SLOW, "password": {"secretKeyRef": _ref("ivy-slow-pw", "password")}},
            ),
        ],
    )
    wait_reason(cp, "druiduser", PASSWORDS, "ivy", "Synced")
    slow = wait_reason(cp, "druiduser", PASSWORDS, "ivy-slow", "Synced")
    stored = {u: _credentials(fakes, u) for u in ("ivy", "ivy-slow")}
    for user, creds in stored.items():
        assert creds is not None and verify_password(NON_ASCII_PW, creds), user
    posts = {u: _credential_posts(fakes, u) for u in stored}
    assert posts == {"ivy": 1, "ivy-slow": 1}

    # (a) resyncs of the fast cluster read the credentials (all at once) and leave them alone.
    def bulk_reads() -> int:
        return fakes.coordinator.requests.count("GET", rf"{AUTHN}/db/basic/cachedSerializedUserMap$")

    reads = bulk_reads()
    wait_for(lambda: bulk_reads() >= reads + 2, timeout=15, what="two resyncs of ivy")

    # (b) an unrelated change of the Secret wakes the slow user (no resync for an hour).
    slow_reads = _authn_reads(fakes, "ivy-slow")
    apply(cp, secret("ivy-slow-pw", {"password": NON_ASCII_PW, "note": "rotated-nothing"}, PASSWORDS))
    rv = _get(cp, "secret", PASSWORDS, "ivy-slow-pw")["metadata"]["resourceVersion"]
    assert slow["status"]["secretVersion"] != f"ivy-slow-pw@{rv}"
    _wait_obj(
        cp,
        "druiduser",
        PASSWORDS,
        "ivy-slow",
        lambda o: o["status"].get("secretVersion") == f"ivy-slow-pw@{rv}",
        what="a reconcile after the Secret change",
        timeout=10,
    )
    assert _authn_reads(fakes, "ivy-slow") > slow_reads, "the wake-up must have read the credential"

    assert {u: _credential_posts(fakes, u) for u in stored} == posts, "a matching credential was re-POSTed"
    assert {u: _credentials(fakes, u) for u in stored} == stored, "the stored salt/hash changed"
    for user in stored:
        assert wait_reason(cp, "druiduser", PASSWORDS, user, "Synced")["status"]["conditions"]


def test_user_without_password_is_authorization_only(
    controlplane: ControlPlane, fakes: FakesInThread, operator: OperatorProcess
) -> None:
    cp = controlplane
    apply(
        cp,
        [
            _doc("DruidRole", PASSWORDS, "ldap-readers", {"permissions": [_perm("STATE", "STATE", "READ")]}),
            _doc(
                "DruidUser", PASSWORDS, "ldap-user", {"name": "uid=jo,ou=people", "roles": ["ldap-readers"]}
            ),
        ],
    )
    wait_reason(cp, "druiduser", PASSWORDS, "ldap-user", "Synced")
    assert _user_roles(fakes, "uid=jo,ou=people") == {"ldap-readers"}
    assert _snapshot(fakes, lambda: "uid=jo,ou=people" not in fakes.coordinator.credentials)
    assert fakes.coordinator.requests.count(path=rf"^{AUTHN}/db/basic/users/uid=jo") == 0


def test_connection_secret_fields_reach_pivot(
    controlplane: ControlPlane, fakes: FakesInThread, operator: OperatorProcess
) -> None:
    cp = controlplane
    material = {
        "password": "db-secret-1",
        "ca.crt": "-----BEGIN CERTIFICATE-----\nCA\n-----END CERTIFICATE-----\n",
        "tls.crt": "-----BEGIN CERTIFICATE-----\nCLIENT\n-----END CERTIFICATE-----\n",
        "tls.key": "-----BEGIN PRIVATE KEY-----\nKEY\n-----END PRIVATE KEY-----\n",
        "socks": "socks-secret-1",
    }
    apply(cp, secret("conn-material", material, PASSWORDS))
    apply(
        cp,
        _doc(
            "DruidConnection",
            PASSWORDS,
            "secure",
            {
                "pivot": SLOW,
                "queryHosts": ["broker.example:8282"],
                "defaultDbAuthToken": {
                    "username": "pivot-reader",
                    "passwordSecretRef": _ref("conn-material", "password"),
                },
                "protocol": "tls",
                "tls": {
                    "ca": _ref("conn-material", "ca.crt"),
                    "cert": _ref("conn-material", "tls.crt"),
                    "key": _ref("conn-material", "tls.key"),
                },
                "socks": {
                    "host": "socks.example:1080",
                    "username": "proxy-user",
                    "passwordSecretRef": _ref("conn-material", "socks"),
                },
            },
        ),
    )
    obj = wait_reason(cp, "druidconnection", PASSWORDS, "secure", "Synced")
    conn = _connection(fakes, "secure")
    assert conn is not None
    assert conn["protocol"] == "tls"
    assert conn["defaultDbAuthToken"] == {
        "type": "basic-auth",
        "username": "pivot-reader",
        "password": "db-secret-1",
    }
    assert (conn["ca"], conn["cert"], conn["key"]) == (
        material["ca.crt"],
        material["tls.crt"],
        material["tls.key"],
    )
    assert (conn["sockHost"], conn["sockUsername"], conn["sockPassword"]) == (
        "socks.example:1080",
        "proxy-user",
        "socks-secret-1",
    )
    status_text = json.dumps(obj["status"])
    assert "db-secret-1" not in status_text and "socks-secret-1" not in status_text

    # A password rotation reaches Pivot through the watch (this Pivot resyncs hourly).
    apply(cp, secret("conn-material", {**material, "password": "db-secret-2"}, PASSWORDS))
    wait_for(
        lambda: (
            ((_connection(fakes, "secure") or {}).get("defaultDbAuthToken") or {}).get("password")
            == "db-secret-2"
        ),
        timeout=10,
        what="the rotated password in Pivot",
    )
    conn = _connection(fakes, "secure")
    assert (
        conn is not None and conn["sockPassword"] == "socks-secret-1" and conn["key"] == material["tls.key"]
    )
    events = _wait_events(cp, PASSWORDS, "DruidConnection", "secure", {"UpdatedConnection"})
    assert all("db-secret" not in e["message"] for e in events)


# ---------------------------------------------------------------------------- C: dependencies


def _quiet_window(
    cp: ControlPlane, fakes: FakesInThread, kind: str, name: str, remote: str, seconds: float = 5.0
) -> int:
    """Watch the waiting object for ``seconds``: returns the fake's requests about ``remote``;
    asserts that it wrote nothing remote and that its status was not rewritten."""
    version = _get(cp, kind, DEPS, name)["metadata"]["resourceVersion"]
    started = time.time()
    before = fakes.coordinator.requests.count(path=_paths(remote))
    time.sleep(seconds)
    requests = fakes.coordinator.requests.count(path=_paths(remote)) - before
    writes = [
        r
        for r in fakes.coordinator.requests.writes()
        if r.timestamp >= started and re.search(_paths(remote), r.path)
    ]
    assert writes == [], f"{kind} {name} wrote while waiting: {writes}"
    assert _get(cp, kind, DEPS, name)["metadata"]["resourceVersion"] == version, (
        f"{kind} {name} was rewritten while waiting"
    )
    return requests


def test_user_and_mapping_wait_for_a_missing_role(
    controlplane: ControlPlane, fakes: FakesInThread, operator: OperatorProcess
) -> None:
    cp = controlplane
    apply(cp, secret("waiter-pw", {"password": "waiter-secret-1"}, DEPS))
    apply(
        cp,
        [
            _doc(
                "DruidUser",
                DEPS,
                "waiter",
                {
                    "cluster": SLOW,
                    "roles": ["late-role"],
                    "password": {"secretKeyRef": _ref("waiter-pw", "password")},
                },
            ),
            _doc(
                "DruidGroupMapping",
                DEPS,
                "late-map",
                {"cluster": SLOW, "groupPattern": "cn=late", "roles": ["late-role"]},
            ),
        ],
    )
    for kind, name in (("druiduser", "waiter"), ("druidgroupmapping", "late-map")):
        obj = wait_reason(cp, kind, DEPS, name, "RoleNotFound", timeout=30)
        ready = _condition(obj, "Ready")
        assert ready is not None and ready["status"] == "False"
        assert "late-role" in ready["message"], ready

    # Backoff, not a busy loop: a handful of reads in 5 s, no writes, no status churn.
    requests = _quiet_window(cp, fakes, "druiduser", "waiter", "waiter")
    assert requests < 10, f"{requests} requests about the waiting user in 5 s"
    # Everything else already converged while waiting.
    assert _verifies(fakes, "waiter", "waiter-secret-1")
    assert _user_roles(fakes, "waiter") == set()

    apply(
        cp,
        _doc(
            "DruidRole",
            DEPS,
            "late-role",
            {"cluster": SLOW, "permissions": [_perm("STATE", "STATE", "READ")]},
        ),
    )
    # Neither dependant is touched: the role's creation wakes them (their cluster resyncs hourly).
    wait_reason(cp, "druiduser", DEPS, "waiter", "Synced", timeout=30)
    wait_reason(cp, "druidgroupmapping", DEPS, "late-map", "Synced", timeout=30)
    assert _user_roles(fakes, "waiter") == {"late-role"}
    mapping = _snapshot(fakes, lambda: fakes.coordinator.group_mappings.get("late-map"))
    assert mapping is not None and set(mapping.roles) == {"late-role"}
    for kind, name in (("druiduser", "waiter"), ("druidgroupmapping", "late-map")):
        assert _get(cp, kind, DEPS, name)["metadata"]["generation"] == 1


def test_user_waits_for_its_password_secret(
    controlplane: ControlPlane, fakes: FakesInThread, operator: OperatorProcess
) -> None:
    cp = controlplane
    apply(
        cp,
        _doc(
            "DruidUser",
            DEPS,
            "patient",
            {"cluster": SLOW, "password": {"secretKeyRef": _ref("patient-pw", "password")}},
        ),
    )
    obj = wait_reason(cp, "druiduser", DEPS, "patient", "SecretNotFound", timeout=30)
    ready = _condition(obj, "Ready")
    assert ready is not None and "patient-pw" in ready["message"], ready
    requests = _quiet_window(cp, fakes, "druiduser", "patient", "patient")
    assert requests < 10, f"{requests} requests about the waiting user in 5 s"
    assert _snapshot(fakes, lambda: "patient" not in fakes.coordinator.credentials)
    assert cp.kubectl("get", "secret", "patient-pw", "-n", DEPS, check=False).returncode != 0, (
        "generate is false: the operator must not create the Secret"
    )

    apply(cp, secret("patient-pw", {"password": "patient-secret-1"}, DEPS))
    wait_reason(cp, "druiduser", DEPS, "patient", "Synced", timeout=15)
    assert _verifies(fakes, "patient", "patient-secret-1")
