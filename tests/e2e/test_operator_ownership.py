"""Ownership, deletion and guard rails of the operator, end to end.

A real kube-apiserver, the fake Coordinator and fake Pivot, and ``druid-access run`` as a
subprocess under the operator's restricted identity. Every claim is checked on the fakes'
state and request logs and on the Kubernetes objects and Events.

- A. ownership: a pre-existing remote object is refused (AlreadyExists) or adopted; an
  object the operator created survives a SIGKILL between the remote create and the status
  write; of two resources claiming one remote name the older owns it and the newer waits
  with Conflict, taking over on its own once the older is gone.
- B. deletion: Delete removes, Retain leaves; a removed target releases the finalizer
  with a TargetRemoved warning; an unreachable target blocks deletion (DeletionBlocked)
  until it recovers, then the deletion completes by itself.
- C. guard rails: protected principals, namespaces a target does not allow, and
  ``suspend: true`` all cost the remote side no request at all.

The main operator watches ``owned-a``, ``owned-b`` and ``guard`` and allows ``owned-*``;
the tests that stop, kill or reconfigure an operator use namespaces of their own with
operators of their own, so they never disturb the main one.
"""

from __future__ import annotations

import copy
import json
import re
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any, Literal

import pytest

from druid_access.claims import ANNOTATION
from druid_access.finalizer import FINALIZER
from druid_access.passwords import verify_password
from druid_access.testing.controlplane import ControlPlane
from druid_access.testing.environment import (
    FakesInThread,
    OperatorProcess,
    apply,
    install,
    operator_config,
    purge,
    ready_condition,
    secret,
    wait_for,
    wait_reason,
)
from druid_access.testing.fake_coordinator import GroupMapping
from druid_access.testing.fake_coordinator import Permission as FakePermission
from druid_access.testing.faults import Fault, RequestRecord

NS_A = "owned-a"
NS_B = "owned-b"
NS_GUARD = "guard"
NS_CRASH = "owned-crash"
NS_GONE = "owned-gone"
MAIN_NAMESPACES = (NS_A, NS_B, NS_GUARD)
ALL_NAMESPACES = (NS_A, NS_B, NS_GUARD, NS_CRASH, NS_GONE)
ALLOWED = ("owned-*",)
ADMIN_PW = "admin-pw-ownership"
TOKEN = "pivot-token-ownership"
RESYNC = 2.0
# Long enough for two resyncs (2 s each, +10 % jitter) of every object.
SETTLE = 2 * RESYNC * 1.1 + 0.3
ROLES_PATH = "/druid-ext/basic-security/authorization/db/basic/roles"
CONNECTIONS_PATH = "/api/v1/connections"

Server = Literal["coordinator", "pivot"]
Spawn = Callable[[dict[str, Any], Sequence[str]], OperatorProcess]


# --------------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def fakes() -> Iterator[FakesInThread]:
    with FakesInThread(admin_password=ADMIN_PW, pivot_token=TOKEN, credential_iterations=1000) as f:
        yield f


@pytest.fixture(scope="module")
def cluster(controlplane: ControlPlane) -> Iterator[ControlPlane]:
    """CRDs, RBAC, credentials and this module's namespaces; the module's CRs purged afterwards."""
    cp = controlplane
    install(cp, admin_user="admin", admin_password=ADMIN_PW, pivot_token=TOKEN)
    apply(cp, [{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}} for ns in ALL_NAMESPACES])
    yield cp
    # Operators are stopped by now (they depend on this fixture): drop the finalizers so
    # nothing of this module is left for another module's operator to pick up.
    purge(cp, ALL_NAMESPACES)


@pytest.fixture(scope="module")
def operator(
    cluster: ControlPlane, fakes: FakesInThread, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[OperatorProcess]:
    proc = OperatorProcess(
        config=operator_config(
            fakes, resync_seconds=RESYNC, allowed_namespaces=ALLOWED, adoption_namespaces=ALLOWED
        ),
        kubeconfig=cluster.operator_kubeconfig,
        workdir=tmp_path_factory.mktemp("operator-main"),
        namespaces=MAIN_NAMESPACES,
    )
    proc.start()
    yield proc
    code = proc.stop()
    assert code == 0, proc.log()[-3000:]


@pytest.fixture
def spawn(cluster: ControlPlane, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Spawn]:
    """Start extra operator processes (own config, own namespaces); all stopped at teardown."""
    started: list[OperatorProcess] = []

    def start(config: dict[str, Any], namespaces: Sequence[str]) -> OperatorProcess:
        proc = OperatorProcess(
            config=config,
            kubeconfig=cluster.operator_kubeconfig,
            workdir=tmp_path_factory.mktemp("operator-extra"),
            namespaces=tuple(namespaces),
        )
        started.append(proc)
        proc.start()
        return proc

    yield start
    for proc in started:
        proc.stop()


# ---------------------------------------------------------------------------------- helpers


def _doc(kind: str, namespace: str, name: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "druidaccess.io/v1alpha1",
        "kind": kind,
        "metadata": {"name": name, "namespace": namespace},
        "spec": spec,
    }


def _perm(type_: str, name: str, action: str) -> dict[str, Any]:
    return {"resource": {"type": type_, "name": name}, "action": action}


def _perm_set(permissions: Sequence[dict[str, Any]] | Sequence[FakePermission]) -> set[tuple[Any, ...]]:
    out: set[tuple[Any, ...]] = set()
    for p in permissions:
        if isinstance(p, FakePermission):
            out.add((p.type, p.name, p.action))
        else:
            out.add((p["resource"]["type"], p["resource"]["name"], p["action"]))
    return out


def _get(cp: ControlPlane, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
    result = cp.kubectl("get", kind, name, "-n", namespace, "-o", "json", check=False)
    if result.returncode != 0:
        if "NotFound" in result.stderr or "not found" in result.stderr:
            return None
        raise RuntimeError(f"kubectl get {kind} {namespace}/{name} failed: {result.stderr}")
    obj: dict[str, Any] = json.loads(result.stdout)
    return obj


def _condition(obj: dict[str, Any], type_: str) -> dict[str, Any] | None:
    for condition in (obj.get("status") or {}).get("conditions") or []:
        if condition.get("type") == type_:
            return dict(condition)
    return None


def _events(cp: ControlPlane, namespace: str, name: str) -> list[dict[str, Any]]:
    result = cp.kubectl(
        "get", "events", "-n", namespace, "--field-selector", f"involvedObject.name={name}", "-o", "json"
    )
    items: list[dict[str, Any]] = json.loads(result.stdout)["items"]
    return items


def _wait_event(
    cp: ControlPlane, namespace: str, name: str, reason: str, *, type_: str = "Normal", timeout: float = 30
) -> dict[str, Any]:
    def find() -> dict[str, Any] | None:
        for event in _events(cp, namespace, name):
            if event.get("reason") == reason and event.get("type") == type_:
                return event
        return None

    return wait_for(find, timeout=timeout, what=f"a {type_} Event {reason} for {namespace}/{name}")


def _wait_gone(cp: ControlPlane, kind: str, namespace: str, name: str, *, timeout: float = 60) -> None:
    wait_for(
        lambda: _get(cp, kind, namespace, name) is None,
        timeout=timeout,
        what=f"{kind} {namespace}/{name} to be gone",
    )


def _records(fakes: FakesInThread, server: Server) -> list[RequestRecord]:
    fake = fakes.coordinator if server == "coordinator" else fakes.pivot
    return fakes.call(lambda: fake.requests.records)


def _mark(fakes: FakesInThread, server: Server) -> int:
    return len(_records(fakes, server))


def _since(
    fakes: FakesInThread,
    server: Server,
    mark: int,
    path: str,
    *,
    writes: bool = False,
    method: str | None = None,
) -> list[RequestRecord]:
    """Requests received after ``mark`` whose decoded path contains a match of ``path``."""
    pattern = re.compile(path)
    return [
        r
        for r in _records(fakes, server)[mark:]
        if pattern.search(r.path)
        and (not writes or r.method not in ("GET", "HEAD", "OPTIONS"))
        and (method is None or r.method == method)
    ]


def _describe(records: Sequence[RequestRecord]) -> list[str]:
    return [f"{r.method} {r.path} -> {r.status}" for r in records]


def _changing(records: Sequence[RequestRecord]) -> list[RequestRecord]:
    """The writes but refused creates: a new user or role is created without reading it first on
    a Coordinator that answered just now, and Druid refuses (400) the create of a taken name."""
    return [r for r in records if not (r.method == "POST" and r.status == 400)]


# ------------------------------------------------------------------------------ A. ownership


def _seed(fakes: FakesInThread, prefix: str) -> None:
    """A user (password + roles), a role (permissions), a group mapping and a Pivot connection
    created behind the operator's back, named ``<prefix>-user`` etc."""
    coord, pivot = fakes.coordinator, fakes.pivot

    def seed() -> None:
        coord.add_role(f"{prefix}-legacy", [FakePermission("STATE", "STATE", "READ")])
        coord.add_role(f"{prefix}-role", [FakePermission("DATASOURCE", "old.*", "READ")])
        coord.add_user(f"{prefix}-user", password=f"{prefix}-old-pw", roles=[f"{prefix}-legacy"])
        coord.group_mappings[f"{prefix}-mapping"] = GroupMapping("cn=old,ou=groups", {f"{prefix}-legacy"})
        pivot.connections[f"{prefix}-conn"] = {
            "name": f"{prefix}-conn",
            "type": "druid",
            "queryHosts": ["old-broker:8082"],
            "title": "Old",
        }

    fakes.call(seed)


def _state(fakes: FakesInThread, prefix: str) -> dict[str, Any]:
    coord, pivot = fakes.coordinator, fakes.pivot

    def read() -> dict[str, Any]:
        return copy.deepcopy(
            {
                "credentials": coord.credentials.get(f"{prefix}-user"),
                "authz_user": coord.users.get(f"{prefix}-user"),
                "role": coord.roles.get(f"{prefix}-role"),
                "mapping": coord.group_mappings.get(f"{prefix}-mapping"),
                "connection": pivot.connections.get(f"{prefix}-conn"),
            }
        )

    return fakes.call(read)


def _claiming_docs(namespace: str, prefix: str, extra: dict[str, Any]) -> list[dict[str, Any]]:
    """CRs whose specs all differ from what ``_seed`` created."""
    return [
        secret(f"{prefix}-user-pw", {"password": f"{prefix}-new-pw"}, namespace),
        _doc(
            "DruidRole",
            namespace,
            f"{prefix}-role",
            {
                **extra,
                "permissions": [_perm("DATASOURCE", "new.*", "READ"), _perm("DATASOURCE", "new.*", "WRITE")],
            },
        ),
        _doc(
            "DruidUser",
            namespace,
            f"{prefix}-user",
            {
                **extra,
                "roles": [f"{prefix}-role"],
                "password": {"secretKeyRef": {"name": f"{prefix}-user-pw", "key": "password"}},
            },
        ),
        _doc(
            "DruidGroupMapping",
            namespace,
            f"{prefix}-mapping",
            {**extra, "groupPattern": "cn=new,ou=groups", "roles": [f"{prefix}-role"]},
        ),
        _doc(
            "DruidConnection",
            namespace,
            f"{prefix}-conn",
            {**extra, "queryHosts": ["new-broker:8082"], "title": "New"},
        ),
    ]


def _kinds(prefix: str) -> list[tuple[str, str]]:
    return [
        ("druiduser", f"{prefix}-user"),
        ("druidgroupmapping", f"{prefix}-mapping"),
        ("druidconnection", f"{prefix}-conn"),
        ("druidrole", f"{prefix}-role"),
    ]


def test_refuse_leaves_preexisting_objects_untouched(
    cluster: ControlPlane, fakes: FakesInThread, operator: OperatorProcess
) -> None:
    cp, prefix = cluster, "refuse"
    _seed(fakes, prefix)
    before = _state(fakes, prefix)
    coord_mark, pivot_mark = _mark(fakes, "coordinator"), _mark(fakes, "pivot")
    docs = _claiming_docs(NS_A, prefix, {})  # adoptionPolicy defaults to Refuse
    # A tenant forging the operator's ownership claim on its objects gains nothing: the seal is
    # an HMAC under a key only the operator reads.
    for doc in docs:
        if doc["kind"] != "Secret":
            doc["metadata"].setdefault("annotations", {})[ANNOTATION] = "0" * 64
    apply(cp, docs)

    for kind, name in _kinds(prefix):
        obj = wait_reason(cp, kind, NS_A, name, "AlreadyExists")
        assert obj["status"]["owned"] is False, (kind, obj["status"])
        ready = ready_condition(obj)
        assert ready is not None and ready["status"] == "False"
        assert "adoptionPolicy" in ready["message"], ready["message"]
    time.sleep(SETTLE)  # resyncs look again and still must not touch anything

    touching = rf"/(users|roles|groupMappings)/{prefix}-"
    reads = _since(fakes, "coordinator", coord_mark, touching, method="GET")
    assert len(reads) >= 6, "the operator must have looked at the objects (and again on resync)"
    assert _changing(_since(fakes, "coordinator", coord_mark, touching, writes=True)) == []
    assert _since(fakes, "pivot", pivot_mark, f"{prefix}-conn", method="GET"), "the connection was read"
    pivot_writes = _since(fakes, "pivot", pivot_mark, rf"{CONNECTIONS_PATH}(/{prefix}-conn)?$", writes=True)
    assert pivot_writes == [], _describe(pivot_writes)
    assert _state(fakes, prefix) == before

    # Deleting the refusing resources leaves the remote objects where they were.
    for kind, name in _kinds(prefix):
        cp.kubectl("delete", kind, name, "-n", NS_A, "--timeout=60s")
    writes = _changing(_since(fakes, "coordinator", coord_mark, touching, writes=True))
    assert writes == [], _describe(writes)
    pivot_writes = _since(fakes, "pivot", pivot_mark, rf"{CONNECTIONS_PATH}(/{prefix}-conn)?$", writes=True)
    assert pivot_writes == [], _describe(pivot_writes)
    after = _state(fakes, prefix)
    assert after == before
    assert all(value is not None for value in after.values())


def test_adopt_takes_over_and_deletes_with_the_resource(
    cluster: ControlPlane, fakes: FakesInThread, operator: OperatorProcess
) -> None:
    cp, prefix = cluster, "adopt"
    _seed(fakes, prefix)
    apply(cp, _claiming_docs(NS_A, prefix, {"adoptionPolicy": "Adopt"}))

    for kind, name in _kinds(prefix):
        obj = wait_reason(cp, kind, NS_A, name, "Synced")
        assert obj["status"]["owned"] is True, (kind, obj["status"])
        _wait_event(cp, NS_A, name, "Adopted")

    coord, pivot = fakes.coordinator, fakes.pivot
    state = _state(fakes, prefix)
    assert state["credentials"] is not None
    assert verify_password(f"{prefix}-new-pw", state["credentials"])
    assert state["authz_user"] == {f"{prefix}-role"}
    assert _perm_set(state["role"]) == {("DATASOURCE", "new.*", "READ"), ("DATASOURCE", "new.*", "WRITE")}
    assert state["mapping"].group_pattern == "cn=new,ou=groups"
    assert state["mapping"].roles == {f"{prefix}-role"}
    assert state["connection"]["queryHosts"] == ["new-broker:8082"]
    assert state["connection"]["title"] == "New"

    for kind, name in _kinds(prefix):
        cp.kubectl("delete", kind, name, "-n", NS_A, "--timeout=60s")

    def remaining() -> dict[str, bool]:
        return {
            "authn user": f"{prefix}-user" in coord.credentials,
            "authz user": f"{prefix}-user" in coord.users,
            "role": f"{prefix}-role" in coord.roles,
            "mapping": f"{prefix}-mapping" in coord.group_mappings,
            "connection": f"{prefix}-conn" in pivot.connections,
            "unmanaged role": f"{prefix}-legacy" in coord.roles,
        }

    assert fakes.call(remaining) == {
        "authn user": False,
        "authz user": False,
        "role": False,
        "mapping": False,
        "connection": False,
        "unmanaged role": True,  # never claimed by anything: left alone
    }


def test_object_created_before_a_crash_is_not_mistaken_for_preexisting(
    cluster: ControlPlane, fakes: FakesInThread, spawn: Spawn
) -> None:
    cp, coord, name = cluster, fakes.coordinator, "crash-role"
    config = operator_config(
        fakes, resync_seconds=RESYNC, allowed_namespaces=ALLOWED, adoption_namespaces=ALLOWED
    )
    # Under Adopt a new object is read first, and claimed before its create. (Under Refuse, on
    # a Coordinator that answered just now, a new object's creates go before the claim, and a
    # crash in between leaves an unclaimed role reported as AlreadyExists, never taken over:
    # tests/unit/test_engine.py, the section "new objects: created before they are claimed".)
    first = spawn(config, [NS_CRASH])
    mark = _mark(fakes, "coordinator")
    slow_create = fakes.call(
        lambda: coord.faults.add(
            Fault(method="POST", path=rf"/authorization/db/basic/roles/{name}$", latency=4, times=1)
        )
    )
    permissions = [_perm("DATASOURCE", "crash.*", "READ"), _perm("STATE", "STATE", "READ")]
    apply(cp, _doc("DruidRole", NS_CRASH, name, {"permissions": permissions, "adoptionPolicy": "Adopt"}))

    # The create request has reached the Coordinator and is being held. The request log
    # records a request when it completes, so arrival is read from the fault's counter,
    # which counts on arrival. Kill the operator before it learns the outcome.
    wait_for(lambda: fakes.call(lambda: slow_create.fired) >= 1, timeout=30, what="the create to arrive")
    first.kill()
    # The Coordinator completes the create on its own.
    wait_for(lambda: fakes.call(lambda: name in coord.roles), timeout=15, what="the role to be created")
    creates = _since(fakes, "coordinator", mark, rf"{ROLES_PATH}/{name}$", method="POST")
    assert len(creates) == 1, _describe(creates)
    assert _since(fakes, "coordinator", mark, rf"/roles/{name}/permissions", writes=True) == []
    assert fakes.call(lambda: list(coord.roles[name])) == [], "the operator died before setting permissions"
    # What survives the crash: the finalizer and the sealed claim, written together before the create.
    crashed = _get(cp, "druidrole", NS_CRASH, name)
    assert crashed is not None and crashed["metadata"]["finalizers"] == [FINALIZER]
    assert re.fullmatch(r"[0-9a-f]{64}", crashed["metadata"]["annotations"][ANNOTATION])
    assert not crashed.get("status", {}).get("owned")

    spawn(config, [NS_CRASH])
    seen: list[str] = []

    def synced() -> dict[str, Any] | None:
        obj = _get(cp, "druidrole", NS_CRASH, name)
        ready = ready_condition(obj) if obj else None
        if obj is None or ready is None:
            return None
        seen.append(str(ready.get("reason")))
        # Fail at once rather than time out: the crash must not make the object look foreign.
        assert ready.get("reason") != "AlreadyExists", ready
        current = obj["status"].get("observedGeneration") == obj["metadata"]["generation"]
        return obj if ready.get("reason") == "Synced" and current else None

    obj = wait_for(synced, timeout=60, interval=0.1, what=f"druidrole {NS_CRASH}/{name} to be Synced")
    assert "AlreadyExists" not in seen, seen
    assert obj["status"]["owned"] is True
    assert fakes.call(lambda: _perm_set(coord.roles[name])) == _perm_set(permissions)
    creates = _since(fakes, "coordinator", mark, rf"{ROLES_PATH}/{name}$", method="POST")
    assert len(creates) == 1, "the restarted operator must not create the role again"

    # It is this resource's object: deleting the resource deletes it.
    cp.kubectl("delete", "druidrole", name, "-n", NS_CRASH, "--timeout=60s")
    assert fakes.call(lambda: name not in coord.roles)


def _ensure_newer(cp: ControlPlane, kind: str, namespace: str, name: str) -> None:
    """creationTimestamp has one-second resolution: let a second pass so the next object is
    strictly newer than ``name``."""
    obj = _get(cp, kind, namespace, name)
    assert obj is not None
    created = obj["metadata"]["creationTimestamp"]
    wait_for(
        lambda: time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()) > created,
        timeout=5,
        interval=0.05,
        what="the next second",
    )


def test_older_claimant_owns_newer_conflicts_then_takes_over(
    cluster: ControlPlane, fakes: FakesInThread, operator: OperatorProcess
) -> None:
    cp, coord, pivot = cluster, fakes.coordinator, fakes.pivot
    remote_role, remote_conn = "shared-role", "shared-conn"
    older_perms = [_perm("DATASOURCE", "older.*", "READ")]
    newer_perms = [_perm("DATASOURCE", "newer.*", "READ"), _perm("STATE", "STATE", "READ")]
    # Role: the older claimant in owned-b, the newer in owned-a (namespace order would pick
    # the wrong one, age must win); the older is deleted with deletionPolicy Delete.
    # Connection: both in owned-a under different names; the older one Retains.
    apply(
        cp,
        [
            _doc("DruidRole", NS_B, "claim-role", {"name": remote_role, "permissions": older_perms}),
            _doc(
                "DruidConnection",
                NS_A,
                "conn-first",
                {
                    "name": remote_conn,
                    "queryHosts": ["first:8082"],
                    "title": "First",
                    "deletionPolicy": "Retain",
                },
            ),
        ],
    )
    wait_reason(cp, "druidrole", NS_B, "claim-role", "Synced")
    wait_reason(cp, "druidconnection", NS_A, "conn-first", "Synced")
    _ensure_newer(cp, "druidrole", NS_B, "claim-role")
    _ensure_newer(cp, "druidconnection", NS_A, "conn-first")
    coord_mark, pivot_mark = _mark(fakes, "coordinator"), _mark(fakes, "pivot")
    apply(
        cp,
        [
            _doc("DruidRole", NS_A, "claim-role", {"name": remote_role, "permissions": newer_perms}),
            _doc(
                "DruidConnection",
                NS_A,
                "conn-second",
                {
                    "name": remote_conn,
                    "queryHosts": ["second:8082"],
                    "title": "Second",
                    "adoptionPolicy": "Adopt",
                },
            ),
        ],
    )

    newer_role = wait_reason(cp, "druidrole", NS_A, "claim-role", "Conflict")
    message = ready_condition(newer_role)["message"]  # type: ignore[index]
    assert f"{NS_B}/claim-role" in message, message
    assert newer_role["status"].get("owned") is not True
    newer_conn = wait_reason(cp, "druidconnection", NS_A, "conn-second", "Conflict")
    message = ready_condition(newer_conn)["message"]  # type: ignore[index]
    assert f"{NS_A}/conn-first" in message, message
    assert newer_conn["status"].get("owned") is not True
    time.sleep(SETTLE)

    writes = _since(fakes, "coordinator", coord_mark, rf"/roles/{remote_role}(/|$)", writes=True)
    assert writes == [], _describe(writes)
    pivot_writes = _since(fakes, "pivot", pivot_mark, rf"{CONNECTIONS_PATH}(/{remote_conn})?$", writes=True)
    assert pivot_writes == [], _describe(pivot_writes)
    assert fakes.call(lambda: _perm_set(coord.roles[remote_role])) == _perm_set(older_perms)
    assert fakes.call(lambda: pivot.connections[remote_conn]["title"]) == "First"
    for kind, name in (("druidrole", "claim-role"), ("druidconnection", "conn-second")):
        obj = _get(cp, kind, NS_A, name)
        assert obj is not None and ready_condition(obj)["reason"] == "Conflict"  # type: ignore[index]
    assert ready_condition(_get(cp, "druidrole", NS_B, "claim-role"))["reason"] == "Synced"  # type: ignore[arg-type,index]

    # The older claimants go; the newer ones take over by themselves.
    cp.kubectl("delete", "druidrole", "claim-role", "-n", NS_B, "--timeout=60s")
    cp.kubectl("delete", "druidconnection", "conn-first", "-n", NS_A, "--timeout=60s")
    taken_role = wait_reason(cp, "druidrole", NS_A, "claim-role", "Synced", timeout=30)
    assert taken_role["status"]["owned"] is True
    assert fakes.call(lambda: _perm_set(coord.roles[remote_role])) == _perm_set(newer_perms)
    creates = _since(fakes, "coordinator", coord_mark, rf"{ROLES_PATH}/{remote_role}$", method="POST")
    assert len(creates) == 1, "the older one's Delete removed the role; the newer one created it anew"
    taken_conn = wait_reason(cp, "druidconnection", NS_A, "conn-second", "Synced", timeout=30)
    assert taken_conn["status"]["owned"] is True
    connection = fakes.call(lambda: copy.deepcopy(pivot.connections[remote_conn]))
    assert connection["queryHosts"] == ["second:8082"] and connection["title"] == "Second"
    _wait_event(cp, NS_A, "conn-second", "Adopted")

    cp.kubectl("delete", "druidrole", "claim-role", "-n", NS_A, "--timeout=60s")
    cp.kubectl("delete", "druidconnection", "conn-second", "-n", NS_A, "--timeout=60s")
    assert fakes.call(lambda: remote_role not in coord.roles and remote_conn not in pivot.connections)


# ------------------------------------------------------------------------------- B. deletion


def _user_docs(namespace: str, name: str, password: str, extra: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        secret(f"{name}-pw", {"password": password}, namespace),
        _doc(
            "DruidUser",
            namespace,
            name,
            {**extra, "password": {"secretKeyRef": {"name": f"{name}-pw", "key": "password"}}},
        ),
    ]


def test_a_name_taken_while_the_user_is_being_created_is_left_to_its_maker(
    cluster: ControlPlane, fakes: FakesInThread, operator: OperatorProcess
) -> None:
    """Someone makes the authorizer user while the operator creates the authenticator user:
    the operator deletes the authenticator user it made, owns and claims nothing, and then
    refuses the name like any pre-existing one. (A pass that read first had claimed the name
    and set the password before the authorizer's create: it records that it owns nothing, and
    takes back its claim. One that created without reading, on a Coordinator that answered just
    now, sends both creates before the claim and the password.)"""
    cp, coord, name = cluster, fakes.coordinator, "raced-user"
    authn_path = f"/druid-ext/basic-security/authentication/db/basic/users/{name}"
    mark = _mark(fakes, "coordinator")
    slow_create = fakes.call(
        lambda: coord.faults.add(
            Fault(method="POST", path=rf"/authentication/db/basic/users/{name}$", latency=3, times=1)
        )
    )
    apply(cp, _user_docs(NS_A, name, "raced-user-pw-1", {}))
    wait_for(lambda: fakes.call(lambda: slow_create.fired) >= 1, timeout=30, what="the create to arrive")
    fakes.call(lambda: coord.users.__setitem__(name, {"hand-made"}))  # the other writer

    obj = wait_reason(cp, "druiduser", NS_A, name, "AlreadyExists")
    assert obj["status"]["owned"] is False
    assert ANNOTATION not in (obj["metadata"].get("annotations") or {})
    assert fakes.call(lambda: (name in coord.credentials, coord.users.get(name))) == (False, {"hand-made"})
    writes = _describe(_since(fakes, "coordinator", mark, rf"/users/{name}(/|$)", writes=True))
    authz_create = f"POST /druid-ext/basic-security/authorization/db/basic/users/{name} -> 400"
    read_first = [f"POST {authn_path}/credentials -> 200"] if len(writes) == 4 else []
    assert writes == [
        f"POST {authn_path} -> 200",
        *read_first,
        authz_create,
        f"DELETE {authn_path} -> 200",
    ], writes
    cp.kubectl("delete", "druiduser", name, "-n", NS_A, "--timeout=60s")
    assert fakes.call(lambda: coord.users.get(name)) == {"hand-made"}, "not the operator's to delete"


def test_a_claim_is_taken_back_when_the_first_write_is_refused(
    cluster: ControlPlane, fakes: FakesInThread, operator: OperatorProcess
) -> None:
    """A create the target refuses (403 here) made nothing: the object does not stay marked
    as the owner of a name someone else may take meanwhile; it claims it afresh once it works."""
    cp, coord, name = cluster, fakes.coordinator, "refused-role"
    refusal = fakes.call(
        lambda: coord.faults.add(
            Fault(method="POST", path=rf"{ROLES_PATH}/{name}$", status=403, body={"error": "Unauthorized"})
        )
    )
    apply(cp, _doc("DruidRole", NS_A, name, {"permissions": [_perm("STATE", "STATE", "READ")]}))

    def refused() -> dict[str, Any] | None:
        obj = _get(cp, "druidrole", NS_A, name)
        ready = ready_condition(obj) if obj else None
        if obj is None or ready is None or ready.get("reason") != "Forbidden":
            return None
        unclaimed = ANNOTATION not in (obj["metadata"].get("annotations") or {})
        return obj if obj["status"].get("owned") is False and unclaimed else None

    wait_for(refused, timeout=30, what=f"druidrole {NS_A}/{name}: Forbidden, owned false, no claim")
    assert fakes.call(lambda: name in coord.roles) is False
    fakes.call(lambda: coord.faults.remove(refusal))
    obj = wait_reason(cp, "druidrole", NS_A, name, "Synced", timeout=60)
    assert obj["status"]["owned"] is True
    assert re.fullmatch(r"[0-9a-f]{64}", obj["metadata"]["annotations"][ANNOTATION])
    cp.kubectl("delete", "druidrole", name, "-n", NS_A, "--timeout=60s")
    assert fakes.call(lambda: name in coord.roles) is False


def test_deletion_policy_delete_removes_user_from_both_stores(
    cluster: ControlPlane, fakes: FakesInThread, operator: OperatorProcess
) -> None:
    cp, coord, name = cluster, fakes.coordinator, "del-user"
    apply(cp, _user_docs(NS_A, name, "del-user-pw-1", {"deletionPolicy": "Delete"}))
    wait_reason(cp, "druiduser", NS_A, name, "Synced")
    assert fakes.call(lambda: name in coord.credentials and name in coord.users)
    mark = _mark(fakes, "coordinator")

    cp.kubectl("delete", "druiduser", name, "-n", NS_A, "--timeout=60s")
    assert fakes.call(lambda: name in coord.credentials) is False, "still in the authenticator"
    assert fakes.call(lambda: name in coord.users) is False, "still in the authorizer"
    deletes = {r.path for r in _since(fakes, "coordinator", mark, rf"/users/{name}$", method="DELETE")}
    assert deletes == {
        f"/druid-ext/basic-security/authentication/db/basic/users/{name}",
        f"/druid-ext/basic-security/authorization/db/basic/users/{name}",
    }


def test_deletion_keeps_another_controllers_finalizer(
    cluster: ControlPlane, fakes: FakesInThread, operator: OperatorProcess
) -> None:
    """The operator's finalizer is put on before the object owns anything remote and taken off
    after the remote delete; a finalizer of another controller, added meanwhile, stays, and holds the object."""
    cp, coord, name = cluster, fakes.coordinator, "shared-user"
    other = "example.com/backup"
    apply(cp, _user_docs(NS_A, name, "shared-user-pw-1", {"deletionPolicy": "Delete"}))
    obj = wait_reason(cp, "druiduser", NS_A, name, "Synced")
    assert obj["metadata"]["finalizers"] == [FINALIZER]
    # Taken off by someone (or lost in a replace): the operator puts it back.
    cp.kubectl(
        "patch", "druiduser", name, "-n", NS_A, "--type=merge", "-p", '{"metadata":{"finalizers":null}}'
    )
    wait_for(
        lambda: (
            (_get(cp, "druiduser", NS_A, name) or {}).get("metadata", {}).get("finalizers") == [FINALIZER]
        ),
        timeout=30,
        what="the finalizer to be put back",
    )
    cp.kubectl(
        "patch",
        "druiduser",
        name,
        "-n",
        NS_A,
        "--type=json",
        "-p",
        json.dumps([{"op": "add", "path": "/metadata/finalizers/-", "value": other}]),
    )
    cp.kubectl("delete", "druiduser", name, "-n", NS_A, "--wait=false")

    def released() -> dict[str, Any] | None:
        found = _get(cp, "druiduser", NS_A, name)
        return found if found is not None and found["metadata"].get("finalizers") == [other] else None

    held = wait_for(released, timeout=30, what="the operator's finalizer to come off")
    assert held["metadata"].get("deletionTimestamp")
    assert fakes.call(lambda: name not in coord.credentials and name not in coord.users)
    cp.kubectl(
        "patch", "druiduser", name, "-n", NS_A, "--type=merge", "-p", '{"metadata":{"finalizers":null}}'
    )
    _wait_gone(cp, "druiduser", NS_A, name, timeout=30)


def test_deletion_policy_retain_leaves_user(
    cluster: ControlPlane, fakes: FakesInThread, operator: OperatorProcess
) -> None:
    cp, coord, name = cluster, fakes.coordinator, "keep-user"
    apply(cp, _user_docs(NS_A, name, "keep-user-pw-1", {"deletionPolicy": "Retain"}))
    wait_reason(cp, "druiduser", NS_A, name, "Synced")
    mark = _mark(fakes, "coordinator")

    cp.kubectl("delete", "druiduser", name, "-n", NS_A, "--timeout=60s")
    assert _since(fakes, "coordinator", mark, rf"/users/{name}(/|$)", writes=True) == []
    credentials = fakes.call(lambda: coord.credentials.get(name))
    assert credentials is not None and verify_password("keep-user-pw-1", credentials)
    assert fakes.call(lambda: name in coord.users)


def test_deletion_is_released_when_the_target_is_removed_from_the_configuration(
    cluster: ControlPlane, fakes: FakesInThread, spawn: Spawn
) -> None:
    cp, coord, pivot = cluster, fakes.coordinator, fakes.pivot
    with_targets = operator_config(
        fakes, resync_seconds=RESYNC, allowed_namespaces=ALLOWED, adoption_namespaces=ALLOWED
    )
    with_targets["clusters"]["second"] = copy.deepcopy(with_targets["clusters"]["default"])
    first = spawn(with_targets, [NS_GONE])
    apply(
        cp,
        [
            _doc("DruidRole", NS_GONE, "gone-role", {"cluster": "second", "permissions": []}),
            _doc("DruidConnection", NS_GONE, "gone-conn", {"queryHosts": ["broker:8082"]}),
        ],
    )
    for kind, name in (("druidrole", "gone-role"), ("druidconnection", "gone-conn")):
        assert wait_reason(cp, kind, NS_GONE, name, "Synced")["status"]["owned"] is True
    assert fakes.call(lambda: "gone-role" in coord.roles and "gone-conn" in pivot.connections)
    assert first.stop() == 0

    without = operator_config(
        fakes, resync_seconds=RESYNC, allowed_namespaces=ALLOWED, adoption_namespaces=ALLOWED
    )
    without["pivots"] = {}  # cluster "second" and Pivot "default" are gone
    spawn(without, [NS_GONE])
    wait_reason(cp, "druidrole", NS_GONE, "gone-role", "TargetNotFound")
    wait_reason(cp, "druidconnection", NS_GONE, "gone-conn", "TargetNotFound")
    coord_mark, pivot_mark = _mark(fakes, "coordinator"), _mark(fakes, "pivot")

    for kind, name in (("druidrole", "gone-role"), ("druidconnection", "gone-conn")):
        cp.kubectl("delete", kind, name, "-n", NS_GONE, "--wait=false")
    for kind, name in (("druidrole", "gone-role"), ("druidconnection", "gone-conn")):
        _wait_gone(cp, kind, NS_GONE, name, timeout=30)
        event = _wait_event(cp, NS_GONE, name, "TargetRemoved", type_="Warning")
        assert "no longer configured" in event["message"], event["message"]
    # Released, not deleted: nothing could reach the remote objects.
    assert _since(fakes, "coordinator", coord_mark, "gone-role") == []
    assert _since(fakes, "pivot", pivot_mark, "gone-conn") == []
    assert fakes.call(lambda: "gone-role" in coord.roles and "gone-conn" in pivot.connections)


def test_deletion_blocks_while_unreachable_and_completes_on_recovery(
    cluster: ControlPlane, fakes: FakesInThread, operator: OperatorProcess
) -> None:
    cp, coord, pivot = cluster, fakes.coordinator, fakes.pivot
    apply(
        cp,
        [
            _doc("DruidRole", NS_A, "blocked-role", {"permissions": [_perm("STATE", "STATE", "READ")]}),
            _doc("DruidConnection", NS_A, "blocked-conn", {"queryHosts": ["broker:8082"]}),
        ],
    )
    wait_reason(cp, "druidrole", NS_A, "blocked-role", "Synced")
    wait_reason(cp, "druidconnection", NS_A, "blocked-conn", "Synced")
    coord_mark, pivot_mark = _mark(fakes, "coordinator"), _mark(fakes, "pivot")
    role_fault = fakes.call(
        lambda: coord.faults.add(
            Fault(
                method="DELETE",
                path=r"/roles/blocked-role$",
                status=503,
                body={"error": "coordinator in maintenance"},
            )
        )
    )
    conn_fault = fakes.call(
        lambda: pivot.faults.add(Fault(method="DELETE", path=r"/connections/blocked-conn$", reset=True))
    )
    cp.kubectl("delete", "druidrole", "blocked-role", "-n", NS_A, "--wait=false")
    cp.kubectl("delete", "druidconnection", "blocked-conn", "-n", NS_A, "--wait=false")

    for kind, name, why in (
        ("druidrole", "blocked-role", "coordinator in maintenance"),
        ("druidconnection", "blocked-conn", "unreachable"),
    ):

        def blocked(kind: str = kind, name: str = name) -> dict[str, Any] | None:
            obj = _get(cp, kind, NS_A, name)
            condition = _condition(obj, "DeletionBlocked") if obj else None
            return condition if condition and condition.get("status") == "True" else None

        condition = wait_for(blocked, timeout=30, what=f"{kind} {name} to report DeletionBlocked")
        assert "unreachable" in condition["message"], condition
        assert why in condition["message"], condition
    # Retried, and still blocked: the resources and the remote objects are all still there.
    wait_for(
        lambda: (
            len(_since(fakes, "coordinator", coord_mark, r"/roles/blocked-role$", method="DELETE")) >= 2
            and len(_since(fakes, "pivot", pivot_mark, r"/connections/blocked-conn$", method="DELETE")) >= 2
        ),
        timeout=30,
        what="the deletions to be retried",
    )
    for kind, name in (("druidrole", "blocked-role"), ("druidconnection", "blocked-conn")):
        obj = _get(cp, kind, NS_A, name)
        assert obj is not None and obj["metadata"].get("deletionTimestamp"), f"{kind} {name} went too early"
    assert fakes.call(lambda: "blocked-role" in coord.roles and "blocked-conn" in pivot.connections)

    fakes.call(lambda: coord.faults.remove(role_fault))
    fakes.call(lambda: pivot.faults.remove(conn_fault))
    _wait_gone(cp, "druidrole", NS_A, "blocked-role", timeout=60)
    _wait_gone(cp, "druidconnection", NS_A, "blocked-conn", timeout=60)
    assert fakes.call(lambda: "blocked-role" not in coord.roles and "blocked-conn" not in pivot.connections)


# ---------------------------------------------------------------------------- C. guard rails


def test_protected_principals_are_never_touched(
    cluster: ControlPlane, fakes: FakesInThread, operator: OperatorProcess
) -> None:
    cp, coord = cluster, fakes.coordinator
    before = fakes.call(
        lambda: copy.deepcopy((coord.credentials["admin"], coord.users["admin"], coord.roles["admin"]))
    )
    apply(
        cp,
        [
            secret("admin-takeover", {"password": "not-the-admin-password"}, NS_A),
            _doc(
                "DruidUser",
                NS_A,
                "admin",
                {
                    "roles": [],
                    "adoptionPolicy": "Adopt",
                    "password": {"secretKeyRef": {"name": "admin-takeover", "key": "password"}},
                },
            ),
            _doc(
                "DruidRole",
                NS_A,
                "admin",
                {"adoptionPolicy": "Adopt", "permissions": [_perm("STATE", "STATE", "READ")]},
            ),
        ],
    )
    for kind in ("druiduser", "druidrole"):
        obj = wait_reason(cp, kind, NS_A, "admin", "Protected")
        assert obj["status"].get("owned") is not True
    time.sleep(SETTLE)
    cp.kubectl("delete", "druiduser", "admin", "-n", NS_A, "--timeout=60s")
    cp.kubectl("delete", "druidrole", "admin", "-n", NS_A, "--timeout=60s")

    touching = [
        _describe(_since(fakes, "coordinator", 0, p)) for p in (r"/users/admin(/|$)", r"/roles/admin(/|$)")
    ]
    assert touching == [[], []]
    assert (
        fakes.call(lambda: (coord.credentials["admin"], coord.users["admin"], coord.roles["admin"])) == before
    )
    admin_credentials = before[0]
    assert admin_credentials is not None and verify_password(ADMIN_PW, admin_credentials)


def test_namespace_not_allowed_makes_no_remote_call(
    cluster: ControlPlane, fakes: FakesInThread, operator: OperatorProcess
) -> None:
    cp, coord, pivot = cluster, fakes.coordinator, fakes.pivot
    coord_mark, pivot_mark = _mark(fakes, "coordinator"), _mark(fakes, "pivot")
    apply(
        cp,
        [
            _doc("DruidRole", NS_GUARD, "outsider-role", {"permissions": [_perm("STATE", "STATE", "READ")]}),
            # The Secret does not exist: tenancy is decided before anything is read.
            _doc(
                "DruidUser",
                NS_GUARD,
                "outsider-user",
                {"password": {"secretKeyRef": {"name": "missing", "key": "password"}}},
            ),
            _doc("DruidConnection", NS_GUARD, "outsider-conn", {"queryHosts": ["broker:8082"]}),
        ],
    )
    for kind, name in (
        ("druidrole", "outsider-role"),
        ("druiduser", "outsider-user"),
        ("druidconnection", "outsider-conn"),
    ):
        obj = wait_reason(cp, kind, NS_GUARD, name, "NamespaceNotAllowed")
        assert NS_GUARD in ready_condition(obj)["message"]  # type: ignore[index]
        assert not obj["metadata"].get("finalizers")  # it owns nothing: its deletion waits for nobody
    time.sleep(SETTLE)

    coord_hits = _since(fakes, "coordinator", coord_mark, "outsider")
    pivot_hits = _since(fakes, "pivot", pivot_mark, "outsider")
    assert coord_hits == [] and pivot_hits == [], _describe(coord_hits + pivot_hits)
    # The create of a Pivot connection names it only in the body: no create at all.
    assert _since(fakes, "pivot", pivot_mark, rf"{CONNECTIONS_PATH}$", method="POST") == []
    assert fakes.call(
        lambda: (
            "outsider-role" not in coord.roles
            and "outsider-user" not in coord.users
            and "outsider-user" not in coord.credentials
            and "outsider-conn" not in pivot.connections
        )
    )
    for kind, name in (
        ("druidrole", "outsider-role"),
        ("druiduser", "outsider-user"),
        ("druidconnection", "outsider-conn"),
    ):
        cp.kubectl("delete", kind, name, "-n", NS_GUARD, "--timeout=60s")
    assert _since(fakes, "coordinator", coord_mark, "outsider") == []
    assert _since(fakes, "pivot", pivot_mark, "outsider") == []


def test_suspend_stops_all_remote_calls_until_resumed(
    cluster: ControlPlane, fakes: FakesInThread, operator: OperatorProcess
) -> None:
    cp, coord, pivot = cluster, fakes.coordinator, fakes.pivot
    permissions = [_perm("DATASOURCE", "susp.*", "READ")]
    apply(
        cp,
        [
            _doc("DruidRole", NS_A, "susp-role", {"permissions": permissions}),
            _doc("DruidConnection", NS_A, "susp-conn", {"queryHosts": ["broker:8082"], "title": "Managed"}),
        ],
    )
    wait_reason(cp, "druidrole", NS_A, "susp-role", "Synced")
    wait_reason(cp, "druidconnection", NS_A, "susp-conn", "Synced")
    for kind in ("druidrole", "druidconnection"):
        name = "susp-role" if kind == "druidrole" else "susp-conn"
        cp.kubectl("patch", kind, name, "-n", NS_A, "--type=merge", "-p", '{"spec":{"suspend":true}}')
        wait_reason(cp, kind, NS_A, name, "Suspended")
    coord_mark, pivot_mark = _mark(fakes, "coordinator"), _mark(fakes, "pivot")

    def tamper() -> None:
        coord.roles["susp-role"] = [FakePermission("DATASOURCE", "tampered.*", "WRITE")]
        pivot.connections["susp-conn"]["title"] = "Tampered"

    fakes.call(tamper)
    time.sleep(SETTLE)
    coord_hits = _since(fakes, "coordinator", coord_mark, r"/roles/susp-role(/|$)")
    pivot_hits = _since(fakes, "pivot", pivot_mark, r"susp-conn")
    assert coord_hits == [] and pivot_hits == [], _describe(coord_hits + pivot_hits)
    assert fakes.call(lambda: _perm_set(coord.roles["susp-role"])) == {("DATASOURCE", "tampered.*", "WRITE")}
    assert fakes.call(lambda: pivot.connections["susp-conn"]["title"]) == "Tampered"
    for kind, name in (("druidrole", "susp-role"), ("druidconnection", "susp-conn")):
        obj = _get(cp, kind, NS_A, name)
        assert obj is not None and ready_condition(obj)["reason"] == "Suspended"  # type: ignore[index]

    for kind, name in (("druidrole", "susp-role"), ("druidconnection", "susp-conn")):
        cp.kubectl("patch", kind, name, "-n", NS_A, "--type=merge", "-p", '{"spec":{"suspend":false}}')
    wait_reason(cp, "druidrole", NS_A, "susp-role", "Synced")
    wait_reason(cp, "druidconnection", NS_A, "susp-conn", "Synced")
    wait_for(
        lambda: fakes.call(lambda: _perm_set(coord.roles["susp-role"])) == _perm_set(permissions),
        timeout=15,
        what="the role's permissions to be corrected",
    )
    wait_for(
        lambda: fakes.call(lambda: pivot.connections["susp-conn"]["title"]) == "Managed",
        timeout=15,
        what="the connection's title to be corrected",
    )
    cp.kubectl("delete", "druidrole", "susp-role", "-n", NS_A, "--timeout=60s")
    cp.kubectl("delete", "druidconnection", "susp-conn", "-n", NS_A, "--timeout=60s")
