"""The local control plane is a real Kubernetes API: TLS, authentication, RBAC, versions, lifecycle."""

from __future__ import annotations

import json
import os
import re
import selectors
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

from druid_access.testing import controlplane as cp
from druid_access.testing.controlplane import ControlPlane, ControlPlaneError


def _minor(version: dict[str, str]) -> int:
    # "minor" can carry a suffix such as "32+" on vendor builds.
    match = re.match(r"\d+", version["minor"])
    assert match, version
    return int(match.group())


def _port_open(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(1)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def _wait_closed(ports: tuple[int, ...], timeout: float = 10.0) -> list[int]:
    """Ports still accepting connections after ``timeout`` (a listener may linger briefly)."""
    deadline = time.monotonic() + timeout
    while (still_open := [port for port in ports if _port_open(port)]) and time.monotonic() < deadline:
        time.sleep(0.1)
    return still_open


def test_readyz_is_ok_over_verified_tls(
    controlplane: ControlPlane, record_property: Callable[[str, object], None]
) -> None:
    assert controlplane.startup_seconds is not None
    record_property("startup_seconds", round(controlplane.startup_seconds, 2))
    print(f"control plane start-up: {controlplane.startup_seconds:.1f} s")
    assert controlplane.url.startswith("https://127.0.0.1:")

    context = ssl.create_default_context(cafile=str(controlplane.ca_file))  # verifies cert and 127.0.0.1
    request = urllib.request.Request(  # noqa: S310
        f"{controlplane.url}/readyz?verbose",
        headers={"Authorization": f"Bearer {controlplane.admin_token}"},
    )
    with urllib.request.urlopen(request, timeout=10, context=context) as response:  # noqa: S310
        body = response.read().decode()
    assert response.status == 200
    assert body.rstrip().endswith("readyz check passed"), body


def test_kubectl_version_within_skew(controlplane: ControlPlane) -> None:
    versions = json.loads(controlplane.kubectl("version", "-o", "json").stdout)
    server, client = versions["serverVersion"], versions["clientVersion"]
    assert server["gitVersion"].startswith("v1.33."), server
    assert (server["major"], _minor(server)) == ("1", 33)
    assert abs(_minor(client) - _minor(server)) <= 1, (client, server)


def test_admin_can_create_a_namespace(controlplane: ControlPlane) -> None:
    name = f"e2e-{uuid.uuid4().hex[:8]}"
    controlplane.kubectl("create", "namespace", name)
    got = json.loads(controlplane.kubectl("get", "namespace", name, "-o", "json").stdout)
    assert got["metadata"]["name"] == name


def test_deleted_namespaces_go_and_orphans_are_collected(controlplane: ControlPlane) -> None:
    """kube-controller-manager's namespace controller and garbage collector, as on a real cluster."""
    assert controlplane.controller_manager_startup_seconds is not None
    print(
        f"kube-controller-manager healthy {controlplane.controller_manager_startup_seconds:.1f} s after start"
    )
    name = f"e2e-gc-{uuid.uuid4().hex[:8]}"
    kubectl = controlplane.kubectl
    kubectl("create", "namespace", name)
    kubectl("create", "configmap", "owner", "-n", name)
    owner = json.loads(kubectl("get", "configmap", "owner", "-n", name, "-o", "json").stdout)
    child = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": "child",
            "namespace": name,
            "ownerReferences": [
                {"apiVersion": "v1", "kind": "ConfigMap", "name": "owner", "uid": owner["metadata"]["uid"]}
            ],
        },
    }
    kubectl("apply", "-f", "-", input=json.dumps(child))
    kubectl("delete", "configmap", "owner", "-n", name)
    _wait(
        lambda: kubectl("get", "configmap", "child", "-n", name, check=False).returncode != 0, 60, "the child"
    )
    kubectl("create", "configmap", "left", "-n", name)
    kubectl("delete", "namespace", name, "--wait=false")
    _wait(lambda: kubectl("get", "namespace", name, check=False).returncode != 0, 60, "the namespace")


def _wait(done: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not done():
        assert time.monotonic() < deadline, f"{what} still there after {timeout:.0f} s"
        time.sleep(0.25)


def test_operator_identity_is_the_service_account(controlplane: ControlPlane) -> None:
    review = json.loads(
        controlplane.kubectl(
            "auth", "whoami", "-o", "json", kubeconfig=controlplane.operator_kubeconfig
        ).stdout
    )
    user = review["status"]["userInfo"]
    assert user["username"] == "system:serviceaccount:druid-access:druid-access-operator"
    assert {"system:serviceaccounts", "system:serviceaccounts:druid-access", "system:authenticated"} <= set(
        user["groups"]
    )


def test_operator_identity_is_restricted_by_rbac(controlplane: ControlPlane) -> None:
    def can_i(kubeconfig: Path, *args: str) -> str:
        # `auth can-i` exits 1 for "no"; the answer on stdout is what matters.
        result = controlplane.kubectl("auth", "can-i", *args, kubeconfig=kubeconfig, check=False)
        return result.stdout.strip()

    assert can_i(controlplane.admin_kubeconfig, "list", "secrets", "--all-namespaces") == "yes"
    assert can_i(controlplane.operator_kubeconfig, "list", "secrets", "--all-namespaces") == "no"
    assert can_i(controlplane.operator_kubeconfig, "create", "namespaces") == "no"

    denied = controlplane.kubectl(
        "create", "namespace", "not-allowed", kubeconfig=controlplane.operator_kubeconfig, check=False
    )
    assert denied.returncode != 0
    assert "forbidden" in denied.stderr.lower(), denied.stderr


def _read_until(process: subprocess.Popen[bytes], marker: bytes, timeout: float) -> str:
    """Read the process's stdout until ``marker`` is seen; fail after ``timeout`` or at EOF."""
    assert process.stdout is not None
    fd = process.stdout.fileno()
    output = b""
    deadline = time.monotonic() + timeout
    with selectors.DefaultSelector() as selector:
        selector.register(fd, selectors.EVENT_READ)
        while marker not in output:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not selector.select(remaining):
                pytest.fail(f"no {marker!r} within {timeout} s; stdout so far:\n{output.decode()}")
            chunk = os.read(fd, 65536)
            if not chunk:
                pytest.fail(f"stdout closed (exit {process.wait(5)}) before {marker!r}:\n{output.decode()}")
            output += chunk
    return output.decode()


def test_cli_runs_until_sigterm(tmp_path: Path) -> None:
    executable = Path(sys.executable).parent / "druid-access-testing"
    assert executable.exists(), f"{executable} missing: install the project and testing/ (make venv)"
    directory = tmp_path / "cp"
    stderr_path = tmp_path / "stderr.log"
    with (
        stderr_path.open("wb") as stderr,
        subprocess.Popen(
            [str(executable), "controlplane", "--dir", str(directory)], stdout=subprocess.PIPE, stderr=stderr
        ) as process,
    ):
        try:
            output = _read_until(process, b"stop with Ctrl-C", timeout=cp.READY_TIMEOUT + 30)
            admin = re.search(r"admin kubeconfig:\s+(\S+)", output)
            operator = re.search(r"operator kubeconfig:\s+(\S+)", output)
            url = re.search(r"ready at (https://127\.0\.0\.1:(\d+))", output)
            assert admin and operator and url, output
            assert Path(admin.group(1)) == directory.resolve() / "admin.kubeconfig"
            assert Path(operator.group(1)) == directory.resolve() / "operator.kubeconfig"
            assert f"kubectl --kubeconfig {admin.group(1)} get ns" in output

            kubectl = str(cp.find_binaries().kubectl)
            namespaces = subprocess.run(
                [kubectl, "--kubeconfig", admin.group(1), "get", "ns", "-o", "name"],
                capture_output=True,
                text=True,
                timeout=60,
                check=True,
            )
            assert "namespace/default" in namespaces.stdout.split()

            started = time.monotonic()
            process.send_signal(signal.SIGTERM)
            assert process.wait(timeout=cp.STOP_TIMEOUT * 2 + 10) == 0, stderr_path.read_text()
            print(f"CLI stopped {time.monotonic() - started:.1f} s after SIGTERM")
            assert _wait_closed((int(url.group(2)),)) == []
        finally:
            if process.poll() is None:
                process.kill()


def test_stop_leaves_no_process_behind(tmp_path: Path) -> None:
    plane = ControlPlane(tmp_path / "cp")
    with plane:
        pids, ports = plane.pids, plane.ports
        assert len(pids) == 3  # kube-controller-manager, kube-apiserver, etcd
        assert len(ports) == 4
        assert _port_open(int(plane.url.rsplit(":", 1)[1]))
    assert plane.pids == ()
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)  # reaped, not a zombie
    assert _wait_closed(ports) == []
    plane.stop()  # idempotent


def test_find_binaries_says_how_to_build_them(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(cp.CACHE_ENV, str(tmp_path / "empty-cache"))
    for name in (cp.KUBE_APISERVER_ENV, cp.ETCD_ENV, cp.KUBECTL_ENV, cp.KUBE_CONTROLLER_MANAGER_ENV):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(ControlPlaneError, match=r"run `make controlplane`"):
        cp.find_binaries()


@pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl verifies the key")
def test_pure_python_service_account_keys_are_valid(tmp_path: Path) -> None:
    key, pub = tmp_path / "sa.key", tmp_path / "sa.pub"
    assert cp.write_service_account_keys(key, pub, prefer_openssl=False) == "python"
    assert key.stat().st_mode & 0o077 == 0
    check = subprocess.run(
        ["openssl", "rsa", "-in", str(key), "-check", "-noout"], capture_output=True, timeout=30
    )
    assert check.returncode == 0, check.stderr
    derived = subprocess.run(
        ["openssl", "rsa", "-in", str(key), "-pubout"], capture_output=True, text=True, timeout=30, check=True
    )
    assert derived.stdout == pub.read_text()
