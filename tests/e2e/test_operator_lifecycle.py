"""The operator on the real control plane against the fakes: create, update, in-sync, delete."""

from __future__ import annotations

import re
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from druid_access.testing.controlplane import ControlPlane
from druid_access.testing.environment import (
    FakesInThread,
    OperatorProcess,
    apply,
    free_port,
    install,
    json_documents,
    kubectl_json,
    operator_config,
    secret,
    wait_for,
    wait_reason,
)
from druid_access.testing.faults import Fault

NS = "lifecycle"
ADMIN_PW = "admin-pw-lifecycle"
TOKEN = "pivot-token-lifecycle"


@pytest.fixture(scope="module")
def fakes() -> Iterator[FakesInThread]:
    with FakesInThread(admin_password=ADMIN_PW, pivot_token=TOKEN, credential_iterations=1000) as f:
        yield f


@pytest.fixture(scope="module")
def operator(
    controlplane: ControlPlane, fakes: FakesInThread, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[OperatorProcess]:
    install(controlplane, admin_user="admin", admin_password=ADMIN_PW, pivot_token=TOKEN)
    controlplane.kubectl("create", "namespace", NS)
    proc = OperatorProcess(
        config=operator_config(fakes, resync_seconds=2.0),
        kubeconfig=controlplane.operator_kubeconfig,
        workdir=tmp_path_factory.mktemp("operator"),
        namespaces=[NS],  # other modules' resources (even same remote names) stay out of view
        metrics_port=free_port(),
    )
    proc.start()
    yield proc
    code = proc.stop()
    assert code == 0, proc.log()[-3000:]


def _doc(kind: str, name: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "druidaccess.io/v1alpha1",
        "kind": kind,
        "metadata": {"name": name, "namespace": NS},
        "spec": spec,
    }


def _events(cp: ControlPlane, name: str) -> list[dict[str, Any]]:
    items = kubectl_json(cp, "get", "events", "-n", NS, "--field-selector", f"involvedObject.name={name}")[
        "items"
    ]
    return list(items)


def test_role_user_mapping_connection_lifecycle(
    controlplane: ControlPlane, fakes: FakesInThread, operator: OperatorProcess
) -> None:
    cp = controlplane
    apply(cp, secret("carol-pw", {"password": "carol-secret-1"}, NS))
    apply(
        cp,
        [
            _doc(
                "DruidRole",
                "readers",
                {"permissions": [{"resource": {"type": "DATASOURCE", "name": "wiki.*"}, "action": "READ"}]},
            ),
            _doc(
                "DruidUser",
                "carol",
                {
                    "name": "carol@corp.example",
                    "roles": ["readers"],
                    "password": {"secretKeyRef": {"name": "carol-pw", "key": "password"}},
                },
            ),
            _doc("DruidGroupMapping", "analysts", {"groupPattern": "cn=analysts", "roles": ["readers"]}),
            _doc(
                "DruidConnection",
                "main",
                {
                    "queryHosts": ["broker:8082"],
                    "title": "Main",
                    "defaultDbAuthToken": {
                        "username": "carol@corp.example",
                        "passwordSecretRef": {"name": "carol-pw", "key": "password"},
                    },
                },
            ),
        ],
    )
    for kind, name in (
        ("druidrole", "readers"),
        ("druiduser", "carol"),
        ("druidgroupmapping", "analysts"),
        ("druidconnection", "main"),
    ):
        obj = wait_reason(cp, kind, NS, name, "Synced")
        assert obj["status"]["owned"] is True
    coord = fakes.coordinator
    assert [p.resource_action() for p in coord.roles["readers"]] == [
        {"resource": {"name": "wiki.*", "type": "DATASOURCE"}, "action": "READ"}
    ]
    assert coord.users["carol@corp.example"] == {"readers"}
    assert coord.credentials["carol@corp.example"] is not None
    assert coord.group_mappings["analysts"].roles == ["readers"] or set(
        coord.group_mappings["analysts"].roles
    ) == {"readers"}
    assert fakes.pivot.connections["main"]["title"] == "Main"
    assert fakes.pivot.connections["main"]["defaultDbAuthToken"]["password"] == "carol-secret-1"
    # One Event per pass that wrote (named after its first write), saying every write of the pass.
    events = [e for e in _events(cp, "carol") if e["type"] == "Normal" and e["reason"] != "RoleNotFound"]
    assert "CreatedAuthenticatorUser" in {e["reason"] for e in events}, events
    messages = " | ".join(e["message"] for e in events)
    for write in (
        "created authenticator user",
        "set the password",
        "created authorizer user",
        "assigned role",
    ):
        assert write in messages, messages
    assert len(events) <= 2, messages  # the role may have come after the user's first pass

    # Update: new permission and a changed title reach the remote side.
    apply(
        cp,
        _doc(
            "DruidRole",
            "readers",
            {
                "permissions": [
                    {"resource": {"type": "DATASOURCE", "name": "wiki.*"}, "action": "READ"},
                    {"resource": {"type": "STATE", "name": "STATE"}, "action": "READ"},
                ]
            },
        ),
    )
    cp.kubectl(
        "patch", "druidconnection", "main", "-n", NS, "--type=merge", "-p", '{"spec":{"title":"Main v2"}}'
    )
    wait_for(lambda: len(coord.roles["readers"]) == 2, timeout=30, what="the new permission")
    wait_for(lambda: fakes.pivot.connections["main"]["title"] == "Main v2", timeout=30, what="the new title")
    role = wait_reason(cp, "druidrole", NS, "readers", "Synced")
    assert role["status"]["observedGeneration"] == role["metadata"]["generation"] == 2

    # Delete: the remote objects go, from both stores for the user.
    for kind, name in (
        ("druiduser", "carol"),
        ("druidgroupmapping", "analysts"),
        ("druidconnection", "main"),
        ("druidrole", "readers"),
    ):
        cp.kubectl("delete", kind, name, "-n", NS, "--timeout=60s")
    assert "carol@corp.example" not in coord.users
    assert "carol@corp.example" not in coord.credentials
    assert "analysts" not in coord.group_mappings
    assert "readers" not in coord.roles
    assert "main" not in fakes.pivot.connections


def test_in_sync_costs_no_write(
    controlplane: ControlPlane, fakes: FakesInThread, operator: OperatorProcess
) -> None:
    cp = controlplane
    apply(cp, secret("dave-pw", {"password": "dave-secret-1"}, NS))
    apply(
        cp,
        [
            _doc(
                "DruidRole",
                "quiet",
                {"permissions": [{"resource": {"type": "STATE", "name": "STATE"}, "action": "READ"}]},
            ),
            _doc(
                "DruidUser",
                "dave",
                {"roles": ["quiet"], "password": {"secretKeyRef": {"name": "dave-pw", "key": "password"}}},
            ),
            _doc("DruidConnection", "quiet", {"queryHosts": ["broker:8082"]}),
        ],
    )
    before = {}
    for kind, name in (("druidrole", "quiet"), ("druiduser", "dave"), ("druidconnection", "quiet")):
        before[kind] = wait_reason(cp, kind, NS, name, "Synced")["metadata"]["resourceVersion"]
    # An object's own writes are read back live until a snapshot taken after them (at most two
    # periods); from then on the snapshot alone confirms it.
    time.sleep(2 * 2.0 * 1.1 + 0.3)
    fakes.coordinator.requests.clear()
    fakes.pivot.requests.clear()
    time.sleep(7)  # more than three resync periods (2 s)
    # Resyncs read each target whole (Druid: its cache-sync maps; Pivot: the connection list),
    # and never an object one by one while the snapshot confirms it is in sync.
    bulk = fakes.coordinator.requests.count(method="GET", path="/cachedSerializedUserMap$")
    listed = fakes.pivot.requests.count(method="GET", path="/api/v1/connections$")
    # A snapshot serves every pass while younger than one period: one read at least every two.
    assert bulk >= 3 * 2 and listed >= 2, "resyncs must have read the targets"
    assert fakes.coordinator.requests.count(path="/users/dave") == 0
    assert fakes.coordinator.requests.count(path="/roles/quiet") == 0
    assert fakes.pivot.requests.count(path="/connections/quiet") == 0
    assert fakes.coordinator.requests.writes() == []
    assert fakes.coordinator.requests.count(method="GET", path=r"/authorization/db/basic/roles$") == 0
    assert fakes.pivot.requests.writes() == []
    for kind, name in (("druidrole", "quiet"), ("druiduser", "dave"), ("druidconnection", "quiet")):
        after = kubectl_json(cp, "get", kind, name, "-n", NS)["metadata"]["resourceVersion"]
        assert after == before[kind], f"{kind} was written while in sync"


def test_a_resync_reads_each_target_whole_whatever_the_number_of_objects(
    controlplane: ControlPlane, fakes: FakesInThread, operator: OperatorProcess
) -> None:
    """Counts, not times: 40 users and their role in sync cost the Coordinator the same few bulk
    reads per resync period as one object would, and no read of any single object."""
    cp, users = controlplane, [f"many-{i:02d}" for i in range(40)]
    role = {"permissions": [{"resource": {"type": "STATE", "name": "STATE"}, "action": "READ"}]}
    docs: list[dict[str, Any]] = [_doc("DruidRole", "many", role)]
    for user in users:
        docs.append(secret(f"{user}-pw", {"password": f"{user}-secret"}, NS))
        password = {"secretKeyRef": {"name": f"{user}-pw", "key": "password"}}
        docs.append(_doc("DruidUser", user, {"roles": ["many"], "password": password}))
    apply(cp, docs)
    for user in users:
        wait_reason(cp, "druiduser", NS, user, "Synced", timeout=60)
    time.sleep(2 * 2.0 * 1.1 + 0.3)  # past the live read-backs of their own writes
    fakes.coordinator.requests.clear()
    time.sleep(3 * 2.0 + 0.5)  # three resync periods and their jitter
    requests = fakes.coordinator.requests
    per_object = requests.filter("GET", r"/(users|roles)/many")
    assert per_object == [], [r.path for r in per_object][:5]
    bulk = requests.count("GET", "/cachedSerialized")
    # 3 bulk requests per snapshot (authenticator users, authorizer users, group mappings) and
    # one snapshot per period (two at most, when the spread of the resyncs straddles its age).
    assert 3 * 2 <= bulk <= 3 * 2 * 4, bulk
    assert requests.writes() == []
    apply_deletes = ["druiduser/" + u for u in users] + ["druidrole/many"]
    cp.kubectl("delete", "-n", NS, "--wait=false", *apply_deletes)


def test_a_user_made_with_its_role_waits_for_it_and_writes_once(
    controlplane: ControlPlane, fakes: FakesInThread, operator: OperatorProcess, tmp_path: Path
) -> None:
    """A DruidUser applied together with the DruidRole it names does not go through
    RoleNotFound while the role is being created: its pass waits (no read, no write, no status)
    for the role's first pass, then writes everything at once: one status, one Event. The
    object itself is written twice by the operator: its finalizer and that status (the
    ownership claim goes on with the finalizer)."""
    cp = controlplane
    watch_out, watch_log = tmp_path / "watch.json", tmp_path / "watch.log"
    with watch_out.open("w") as out, watch_log.open("w") as err:
        watcher = subprocess.Popen(
            [
                str(cp.binaries.kubectl),
                f"--kubeconfig={cp.admin_kubeconfig}",
                "-v=6",  # logs its requests: the watch is open once its GET ...watch=true is
                *("get", "druidusers", "-n", NS, "--field-selector=metadata.name=patient"),
                *("--watch", "--output-watch-events", "-o", "json"),
            ],
            stdout=out,
            stderr=err,
        )
    wait_for(lambda: "watch=true" in watch_log.read_text(), timeout=15, what="kubectl's watch to open")
    fault = fakes.call(
        lambda: fakes.coordinator.faults.add(Fault(method="POST", path=r"/roles/slow-role$", latency=2.0))
    )
    try:
        role = {"permissions": [{"resource": {"type": "STATE", "name": "STATE"}, "action": "READ"}]}
        apply(cp, _doc("DruidRole", "slow-role", role))
        # The role's first pass has begun: its create has reached the Coordinator (the fault
        # counts on arrival) and takes 2 s from about now.
        wait_for(lambda: fakes.call(lambda: fault.fired) >= 1, timeout=30, what="the role's create to arrive")
        apply(
            cp,
            [
                secret("patient-pw", {"password": "patient-secret"}, NS),
                _doc(
                    "DruidUser",
                    "patient",
                    {
                        "roles": ["slow-role"],
                        "password": {"secretKeyRef": {"name": "patient-pw", "key": "password"}},
                    },
                ),
            ],
        )
        obj = wait_reason(cp, "druiduser", NS, "patient", "Synced", timeout=30)
        wait_for(
            lambda: obj["metadata"]["resourceVersion"] in watch_out.read_text(), timeout=10, what="the watch"
        )
    finally:
        fakes.call(lambda: fakes.coordinator.faults.remove(fault))
        watcher.terminate()
        watcher.wait(timeout=10)
    seen = [(event["type"], event["object"]) for event in json_documents(watch_out.read_text())]
    assert [(t, bool(o["metadata"].get("finalizers")), bool(o.get("status"))) for t, o in seen] == [
        ("ADDED", False, False),
        ("MODIFIED", True, False),  # the finalizer and the claim
        ("MODIFIED", True, True),  # the one status
    ], [(t, o["metadata"]["resourceVersion"]) for t, o in seen]
    assert fakes.call(lambda: fakes.coordinator.users["patient"]) == {"slow-role"}
    events = _events(cp, "patient")
    assert [e["reason"] for e in events] == ["CreatedAuthenticatorUser"], events
    assert "assigned role 'slow-role'" in events[0]["message"]
    assert obj["status"]["conditions"][0]["lastTransitionTime"]
    cp.kubectl("delete", "-n", NS, "--wait=false", "druiduser/patient", "druidrole/slow-role")


def test_operator_log_says_what_changed(operator: OperatorProcess) -> None:
    log = operator.log()
    assert "created role 'readers' (new resource)" in log
    assert "deleted user 'carol@corp.example'" in log


def test_config_file_holds_no_credentials(operator: OperatorProcess) -> None:
    written = Path(operator.config_path).read_text()
    assert ADMIN_PW not in written
    assert TOKEN not in written


def test_health_and_metrics_endpoints(operator: OperatorProcess) -> None:
    with urllib.request.urlopen(f"http://127.0.0.1:{operator.health_port}/healthz", timeout=5) as response:
        assert response.status == 200
    metrics = operator.metrics()
    writes = re.findall(
        r'^druid_access_remote_writes_total\{kind="DruidRole",operation="CreatedRole"\} (\S+)$', metrics, re.M
    )
    assert writes and float(writes[0]) >= 2  # readers and quiet
    assert re.search(
        r'^druid_access_reconciles_total\{kind="DruidUser",reason="Synced"\} [1-9]', metrics, re.M
    )
