"""``make demo``: the operator doing its main job on a local control plane, end to end.

Starts etcd + kube-apiserver + kube-controller-manager, a real Druid Coordinator (or the fake one) and the fake Pivot,
installs the CRDs and
RBAC, runs the operator under its restricted identity, applies ``deploy/samples/``, waits
until everything is Ready, shows what Druid and Pivot now hold, then demonstrates one
drift correction, one password rotation, and a tenant namespace refused on its way to admin. Everything stops at the end unless ``--keep``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import secrets
import signal
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from druid_access.clients import AuthenticatorName, AuthorizerName, CoordinatorClient, PivotClient
from druid_access.testing.controlplane import ControlPlane
from druid_access.testing.druid import NEWEST_VERSION, DruidCoordinator
from druid_access.testing.environment import (
    FakesInThread,
    OperatorProcess,
    install,
    kubectl_json,
    operator_config,
    repo_root,
    wait_for,
)

NAMESPACE = "analytics"
AUTHN = AuthenticatorName("basic")
AUTHZ = AuthorizerName("basic")
KINDS = ("druidrole", "druiduser", "druidgroupmapping", "druidconnection")


def say(text: str) -> None:
    print(f"\n==> {text}", flush=True)


def _ready_all(cp: ControlPlane) -> bool:
    items = kubectl_json(cp, "get", ",".join(KINDS), "-n", NAMESPACE)["items"]
    return bool(items) and all(
        any(
            c.get("type") == "Ready" and c.get("status") == "True"
            for c in (i.get("status") or {}).get("conditions", [])
        )
        for i in items
    )


@dataclass(frozen=True)
class Coordinator:
    """The Coordinator the demo's ``default`` cluster points at (fake or real)."""

    url: str
    admin_password: str

    def client(self) -> CoordinatorClient:
        return CoordinatorClient(self.url, username="admin", password=self.admin_password)


async def _remote_state(coordinator: Coordinator, pivot_url: str, pivot_token: str) -> dict[str, Any]:
    async with coordinator.client() as c, PivotClient(pivot_url, token=pivot_token) as p:
        users = {
            u: await c.get_authorizer_user(AUTHZ, u) for u in sorted(await c.list_authorizer_users(AUTHZ))
        }
        creds = {
            u: (await c.get_authenticator_user(AUTHN, u)).credentials
            for u in await c.list_authenticator_users(AUTHN)
        }
        roles = {r: await c.get_role(AUTHZ, r) for r in sorted(await c.list_roles(AUTHZ))}
        mappings = {
            g: await c.get_group_mapping(AUTHZ, g) for g in sorted(await c.list_group_mappings(AUTHZ))
        }
        connections = await p.list_connections()
    return {"users": users, "creds": creds, "roles": roles, "mappings": mappings, "connections": connections}


def show_remote(coordinator: Coordinator, fakes: FakesInThread, pivot_token: str) -> None:
    state = asyncio.run(_remote_state(coordinator, fakes.pivot.url, pivot_token))
    print(f"Druid Coordinator at {coordinator.url} (authorizer users -> roles):")
    for name, user in state["users"].items():
        has_password = state["creds"].get(name) is not None
        print(f"  {name:24} {', '.join(sorted(user.roles)) or '-':36} password set: {has_password}")
    print("Druid Coordinator (roles -> permissions):")
    for name, role in state["roles"].items():
        perms = sorted(f"{p.action} {p.resource_type}/{p.resource_name}" for p in role.permissions)
        shown = "; ".join(perms) if len(perms) <= 3 else f"{len(perms)} permissions (superuser)"
        print(f"  {name:24} {shown}")
    print("Druid Coordinator (group mappings):")
    for name, mapping in state["mappings"].items():
        print(f"  {name:24} {mapping.group_pattern} -> {sorted(mapping.roles)}")
    print("Pivot connections:")
    for conn in state["connections"]:
        token = conn.default_db_auth_token
        print(
            f"  {conn.name:24} {conn.type} {list(conn.query_hosts or ())} protocol={conn.protocol} "
            f"db user={token.username if token else '-'} password={'***' if token and token.password else '-'}"
        )


async def _permissions(coordinator: Coordinator, role: str) -> list[str]:
    async with coordinator.client() as c:
        found = await c.get_role(AUTHZ, role)
    return sorted(f"{p.action} {p.resource_type}/{p.resource_name}" for p in found.permissions)


def demo_drift(cp: ControlPlane, coordinator: Coordinator) -> None:
    say("Drift: someone removes a permission from role 'analyst' with curl, behind the operator's back")
    url = f"{coordinator.url}/druid-ext/basic-security/authorization/db/basic/roles/analyst/permissions"
    only_state = [{"resource": {"type": "STATE", "name": "STATE"}, "action": "READ"}]
    httpx.post(
        url, json=only_state, auth=("admin", coordinator.admin_password), timeout=10
    ).raise_for_status()
    print(f"  the Coordinator now has: {asyncio.run(_permissions(coordinator, 'analyst'))}")
    started = time.monotonic()
    wait_for(
        lambda: len(asyncio.run(_permissions(coordinator, "analyst"))) == 2,
        timeout=60,
        interval=1,
        what="drift correction",
    )
    print(
        f"  corrected after {time.monotonic() - started:.1f}s (next resync): {asyncio.run(_permissions(coordinator, 'analyst'))}"
    )
    role = kubectl_json(cp, "get", "druidrole", "analyst", "-n", NAMESPACE)
    print(f"  status.driftCount = {role['status'].get('driftCount')}")
    events = kubectl_json(
        cp, "get", "events", "-n", NAMESPACE, "--field-selector", "involvedObject.name=analyst"
    )
    for event in events["items"]:
        if "drift" in event["message"]:
            print(f"  Event {event['type']} {event['reason']}: {event['message']}")


async def _login(coordinator: Coordinator, user: str, password: str) -> bool:
    async with coordinator.client() as c:
        return await c.check_login(user, password)


def demo_rotation(cp: ControlPlane, coordinator: Coordinator) -> None:
    say("Password rotation: the Secret of user 'bob' gets a new value")
    old_password = "change-me-bob-1"  # deploy/samples/users.yaml
    new_password = "rotated-" + secrets.token_hex(6)
    patch = json.dumps({"stringData": {"password": new_password}})
    cp.kubectl("patch", "secret", "bob-druid-password", "-n", NAMESPACE, "--type=merge", "-p", patch)
    started = time.monotonic()
    wait_for(
        lambda: asyncio.run(_login(coordinator, "bob", new_password)),
        timeout=60,
        interval=0.5,
        what="the new password to work",
    )
    print(
        f"  bob logs in with the new password {time.monotonic() - started:.1f}s after the Secret changed (watch, not resync)"
    )
    print(f"  the old password is refused: {not asyncio.run(_login(coordinator, 'bob', old_password))}")


TENANT = "team-a"


def demo_delegation(cp: ControlPlane) -> None:
    say(f"Delegation: namespace {TENANT} tries to reach admin and to ship an unrelated Secret to Pivot")
    cp.kubectl("create", "namespace", TENANT)
    tries = [
        {
            "kind": "Secret",
            "apiVersion": "v1",
            "metadata": {"name": "app-db-creds"},
            "stringData": {"pw": "x"},
        },
        _resource("DruidUser", "intruder", {"roles": ["admin"]}),
        _resource("DruidRole", "sneaky", {"permissions": [_permission("CONFIG", ".*", "WRITE")]}),
        _resource(
            "DruidConnection",
            "exfiltrate",
            {
                "queryHosts": ["broker:8082"],
                "defaultDbAuthToken": {
                    "username": "x",
                    "passwordSecretRef": {"name": "app-db-creds", "key": "pw"},
                },
            },
        ),
    ]
    cp.kubectl(
        "apply",
        "-n",
        TENANT,
        "-f",
        "-",
        input=json.dumps({"apiVersion": "v1", "kind": "List", "items": tries}),
    )
    wait_for(
        lambda: (
            len(
                [
                    i
                    for i in kubectl_json(cp, "get", ",".join(KINDS), "-n", TENANT)["items"]
                    if (i.get("status") or {})
                ]
            )
            == 3
        ),
        timeout=60,
        what=f"the operator to answer the resources of {TENANT}",
    )
    print(cp.kubectl("get", "druid", "-n", TENANT).stdout.rstrip())
    for item in kubectl_json(cp, "get", ",".join(KINDS), "-n", TENANT)["items"]:
        ready = next(c for c in item["status"]["conditions"] if c["type"] == "Ready")
        print(f"  {item['kind']} {item['metadata']['name']}: {ready['message']}")


def _resource(kind: str, name: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": "druidaccess.io/v1alpha1", "kind": kind, "metadata": {"name": name}, "spec": spec}


def _permission(type_: str, name: str, action: str) -> dict[str, Any]:
    return {"resource": {"type": type_, "name": name}, "action": action}


def run(keep: bool, workdir: Path, druid: str) -> int:
    admin_password = "demo-admin-" + secrets.token_hex(4)
    pivot_token = "demo-token-" + secrets.token_hex(4)
    started = time.monotonic()
    with contextlib.ExitStack() as stack:
        say("Starting etcd + kube-apiserver + kube-controller-manager (built from Go modules, cached)")
        cp = stack.enter_context(ControlPlane(workdir / "controlplane"))
        fakes = stack.enter_context(FakesInThread(admin_password=admin_password, pivot_token=pivot_token))
        coordinator = Coordinator(fakes.coordinator.url, admin_password)
        if druid == "real":
            say(
                f"Starting a real Apache Druid {NEWEST_VERSION} Coordinator + ZooKeeper (from Maven Central, cached)"
            )
            # The newest supported release (the tests run every one; the demo shows the current one).
            real = stack.enter_context(
                DruidCoordinator(workdir / "druid", admin_password=admin_password, version=NEWEST_VERSION)
            )
            coordinator = Coordinator(real.url, admin_password)
        print(
            f"  kube-apiserver {cp.url}; Druid Coordinator {coordinator.url} ({druid}); fake Pivot {fakes.pivot.url}"
        )
        say("Installing CRDs, RBAC and the operator's credential Secrets")
        install(cp, admin_user="admin", admin_password=admin_password, pivot_token=pivot_token)
        say("Starting the operator (as system:serviceaccount:druid-access:druid-access-operator)")
        # analytics holds the platform's samples; team-a is a tenant (see demo_delegation).
        config = operator_config(fakes, resync_seconds=10.0, privileged_namespaces=[NAMESPACE])
        config["clusters"]["default"]["coordinatorUrl"] = coordinator.url
        operator = OperatorProcess(
            config=config, kubeconfig=cp.operator_kubeconfig, workdir=workdir / "operator"
        )
        operator.start()
        stack.callback(operator.stop)
        say(f"Applying deploy/samples/ to namespace {NAMESPACE}")
        cp.kubectl("create", "namespace", NAMESPACE)
        print(
            cp.kubectl(
                "apply", "-n", NAMESPACE, "-f", str(repo_root() / "deploy" / "samples")
            ).stdout.rstrip()
        )
        wait_for(lambda: _ready_all(cp), timeout=120, what="every sample to be Ready")
        say("kubectl get druid")
        print(cp.kubectl("get", "druid", "-n", NAMESPACE).stdout.rstrip())
        say("What the Coordinator and Pivot now hold")
        show_remote(coordinator, fakes, pivot_token)
        demo_drift(cp, coordinator)
        demo_rotation(cp, coordinator)
        demo_delegation(cp)
        say(f"Done in {time.monotonic() - started:.0f}s. Operator log: {operator.log_path}")
        if keep:
            wait_for_signal(cp)
    return 0


def wait_for_signal(cp: ControlPlane) -> None:
    print(
        "\nKeeping everything running. Try:\n"
        f"  kubectl --kubeconfig {cp.admin_kubeconfig} get druid -A\n"
        f"  kubectl --kubeconfig {cp.admin_kubeconfig} describe druiduser alice -n {NAMESPACE}\n"
        "Press Ctrl-C to stop.",
        flush=True,
    )
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    stop.wait()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="druid-access-demo", description=__doc__.splitlines()[0])
    parser.add_argument("--keep", action="store_true", help="keep everything running until Ctrl-C")
    parser.add_argument("--dir", default=".demo", help="working directory (kubeconfigs, logs)")
    parser.add_argument(
        "--druid",
        choices=("real", "fake"),
        default="real",
        help="run the samples against a real Druid Coordinator (default) or the fake one",
    )
    args = parser.parse_args(argv)
    workdir = Path(args.dir).resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    return run(args.keep, workdir, args.druid)


if __name__ == "__main__":
    sys.exit(main())
