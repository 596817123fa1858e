"""The e2e suite against a real (kind) cluster: run by ``make kind-e2e`` (hack/kind-e2e.sh).

It needs Docker and kind, which CI machines here do not have, so it lives outside ``tests/``
and ``make test``. The script has built the image, loaded it into kind, started the fake
Coordinator and fake Pivot in the cluster from the same image, created the credential
Secrets and installed the chart; this suite then drives the operator as a user would and
reads Druid's side through a ``kubectl port-forward`` to the fakes.
Environment: KIND_OPERATOR_NAMESPACE, KIND_APP_NAMESPACE, KIND_ADMIN_PASSWORD.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest

from druid_access.clients import AuthenticatorName, AuthorizerName, CoordinatorClient, Permission

ROOT = Path(__file__).resolve().parents[1]
OPERATOR_NS = os.environ.get("KIND_OPERATOR_NAMESPACE", "druid-access")
APP_NS = os.environ.get("KIND_APP_NAMESPACE", "analytics")
ADMIN_PW = os.environ.get("KIND_ADMIN_PASSWORD", "")
AUTHN = AuthenticatorName("basic")
AUTHZ = AuthorizerName("basic")
T = TypeVar("T")


def kubectl(*args: str) -> str:
    result = subprocess.run(["kubectl", *args], capture_output=True, text=True, timeout=240, check=False)
    assert result.returncode == 0, f"kubectl {' '.join(args)}: {result.stderr}"
    return result.stdout


def wait_for(predicate: Callable[[], T | None], timeout: float, what: str) -> T:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(1)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture(scope="module")
def coordinator_url() -> Iterator[str]:
    """The in-cluster fake Coordinator, forwarded to a local port for the assertions."""
    port = _free_port()
    forward = subprocess.Popen(
        ["kubectl", "-n", OPERATOR_NS, "port-forward", "svc/fake-coordinator", f"{port}:8081"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:

        def listening() -> bool:
            with socket.socket() as sock:
                return sock.connect_ex(("127.0.0.1", port)) == 0

        wait_for(listening, 60, "the port-forward")
        yield f"http://127.0.0.1:{port}"
    finally:
        forward.terminate()
        forward.wait(timeout=10)


def druid(url: str, call: Callable[[CoordinatorClient], Any]) -> Any:
    async def run() -> Any:
        async with CoordinatorClient(url, username="admin", password=ADMIN_PW) as client:
            return await call(client)

    return asyncio.run(run())


def test_samples_become_ready() -> None:
    kubectl("apply", "-n", APP_NS, "-f", str(ROOT / "deploy" / "samples"))
    for kind in ("druidrole", "druiduser", "druidgroupmapping", "druidconnection"):
        kubectl("wait", "-n", APP_NS, kind, "--all", "--for=condition=Ready", "--timeout=180s")
    statuses = json.loads(kubectl("get", "druid", "-n", APP_NS, "-o", "json"))["items"]
    assert statuses
    assert all(item["status"]["observedGeneration"] == item["metadata"]["generation"] for item in statuses)


def test_druid_holds_what_the_samples_say(coordinator_url: str) -> None:
    users = druid(coordinator_url, lambda c: c.list_authorizer_users(AUTHZ))
    assert {"alice@corp.example", "bob", "pivot-service"} <= set(users)
    bob = druid(coordinator_url, lambda c: c.get_authorizer_user(AUTHZ, "bob"))
    assert bob.roles == frozenset({"analyst", "team-ingest"})
    assert druid(coordinator_url, lambda c: c.check_login("bob", "change-me-bob-1"))


def test_drift_is_corrected(coordinator_url: str) -> None:
    only_state = [Permission(resource_type="STATE", resource_name="STATE", action="READ")]
    druid(coordinator_url, lambda c: c.set_permissions(AUTHZ, "analyst", only_state))

    def restored() -> bool:
        role = druid(coordinator_url, lambda c: c.get_role(AUTHZ, "analyst"))
        return len(role.permissions) == 2

    wait_for(restored, 90, "the operator to restore role analyst")
    role = json.loads(kubectl("get", "druidrole", "analyst", "-n", APP_NS, "-o", "json"))
    assert role["status"]["driftCount"] >= 1


def test_password_rotation_reaches_druid(coordinator_url: str) -> None:
    new = "rotated-" + os.urandom(6).hex()
    kubectl(
        "patch",
        "secret",
        "bob-druid-password",
        "-n",
        APP_NS,
        "--type=merge",
        "-p",
        json.dumps({"stringData": {"password": new}}),
    )
    wait_for(lambda: druid(coordinator_url, lambda c: c.check_login("bob", new)), 60, "bob's new password")
    assert not druid(coordinator_url, lambda c: c.check_login("bob", "change-me-bob-1"))


def test_operator_logs_hold_no_secret() -> None:
    logs = kubectl("logs", "-n", OPERATOR_NS, "deploy/druid-access-operator", "--all-containers")
    assert "created role" in logs
    assert ADMIN_PW and ADMIN_PW not in logs
    assert "change-me-bob-1" not in logs


def test_deletion_removes_remote_objects(coordinator_url: str) -> None:
    kubectl("delete", "-n", APP_NS, "-f", str(ROOT / "deploy" / "samples"), "--timeout=180s")
    users = druid(coordinator_url, lambda c: c.list_authorizer_users(AUTHZ))
    assert not {"alice@corp.example", "bob", "pivot-service"} & set(users)
    assert "analyst" not in druid(coordinator_url, lambda c: c.list_roles(AUTHZ))
    assert "bob" not in druid(coordinator_url, lambda c: c.list_authenticator_users(AUTHN))
