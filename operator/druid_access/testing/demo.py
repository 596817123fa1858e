"""``make demo``: the operator doing its main job on a local control plane, end to end.

Starts etcd + kube-apiserver, the fake Coordinator and fake Pivot, installs the CRDs and
RBAC, runs the operator under its restricted identity, applies ``deploy/samples/``, waits
until everything is Ready, shows what Druid and Pivot now hold, then demonstrates one
drift correction and one password rotation. Everything stops at the end unless ``--keep``.
"""

from __future__ import annotations

import argparse
import base64
import json
import signal
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx

from druid_access.passwords import verify_password
from druid_access.testing.controlplane import ControlPlane
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


def show_remote(fakes: FakesInThread) -> None:
    coord, pivot = fakes.coordinator, fakes.pivot

    def snapshot() -> tuple[
        dict[str, list[str]], dict[str, list[str]], dict[str, str], dict[str, dict[str, Any]]
    ]:
        users = {u: sorted(r) for u, r in coord.users.items()}
        roles = {r: [f"{p.action} {p.type}/{p.name}" for p in perms] for r, perms in coord.roles.items()}
        mappings = {g: f"{m.group_pattern} -> {sorted(m.roles)}" for g, m in coord.group_mappings.items()}
        return users, roles, mappings, json.loads(json.dumps(pivot.connections))

    users, roles, mappings, connections = fakes.call(snapshot)
    print("Druid Coordinator (authorizer users -> roles):")
    for user, user_roles in sorted(users.items()):
        has_password = coord.credentials.get(user) is not None
        print(f"  {user:24} {', '.join(user_roles) or '-':36} password set: {has_password}")
    print("Druid Coordinator (roles -> permissions):")
    for role, perms in sorted(roles.items()):
        shown = "; ".join(perms) if len(perms) <= 3 else f"{len(perms)} permissions (superuser)"
        print(f"  {role:24} {shown}")
    print("Druid Coordinator (group mappings):")
    for name, text in sorted(mappings.items()):
        print(f"  {name:24} {text}")
    print("Pivot connections:")
    for name, conn in sorted(connections.items()):
        token = conn.get("defaultDbAuthToken") or {}
        print(
            f"  {name:24} {conn.get('type')} {conn.get('queryHosts')} protocol={conn.get('protocol')} "
            f"db user={token.get('username')} password={'***' if token.get('password') else '-'}"
        )


def demo_drift(cp: ControlPlane, fakes: FakesInThread, admin_password: str) -> None:
    say("Drift: someone removes a permission from role 'analyst' with curl, behind the operator's back")
    url = f"{fakes.coordinator.url}/druid-ext/basic-security/authorization/db/basic/roles/analyst/permissions"
    only_state = [{"resource": {"type": "STATE", "name": "STATE"}, "action": "READ"}]
    httpx.post(url, json=only_state, auth=("admin", admin_password), timeout=10).raise_for_status()
    print(f"  Coordinator now has {len(fakes.coordinator.roles['analyst'])} permission(s) on 'analyst'")
    started = time.monotonic()
    wait_for(
        lambda: len(fakes.call(lambda: list(fakes.coordinator.roles["analyst"]))) == 2,
        timeout=60,
        what="drift correction",
    )
    print(f"  corrected after {time.monotonic() - started:.1f}s (next resync); permissions are back:")
    for p in fakes.coordinator.roles["analyst"]:
        print(f"    {p.action} {p.type}/{p.name}")
    role = kubectl_json(cp, "get", "druidrole", "analyst", "-n", NAMESPACE)
    print(f"  status.driftCount = {role['status'].get('driftCount')}")
    events = kubectl_json(
        cp, "get", "events", "-n", NAMESPACE, "--field-selector", "involvedObject.name=analyst"
    )
    for event in events["items"]:
        if "drift" in event["message"]:
            print(f"  Event {event['type']} {event['reason']}: {event['message']}")


def demo_rotation(cp: ControlPlane, fakes: FakesInThread) -> None:
    say("Password rotation: the Secret of user 'bob' gets a new value")
    new_password = "rotated-" + base64.b32encode(str(time.time()).encode()).decode()[:12].lower()
    patch = json.dumps({"stringData": {"password": new_password}})
    cp.kubectl("patch", "secret", "bob-druid-password", "-n", NAMESPACE, "--type=merge", "-p", patch)
    started = time.monotonic()

    def rotated() -> bool:
        creds = fakes.call(lambda: fakes.coordinator.credentials.get("bob"))
        return creds is not None and verify_password(new_password, creds)

    wait_for(rotated, timeout=60, what="the new password to reach Druid")
    print(
        f"  Druid accepts bob's new password {time.monotonic() - started:.1f}s after the Secret changed (watch, not resync)"
    )


def run(keep: bool, workdir: Path) -> int:
    admin_password = "demo-admin-" + base64.b32encode(str(time.time()).encode()).decode()[:8].lower()
    pivot_token = "demo-token-" + base64.b32encode(str(time.time_ns()).encode()).decode()[:8].lower()
    started = time.monotonic()
    say("Starting etcd + kube-apiserver (built from Go modules, cached)")
    with (
        ControlPlane(workdir / "controlplane") as cp,
        FakesInThread(admin_password=admin_password, pivot_token=pivot_token) as fakes,
    ):
        print(
            f"  kube-apiserver {cp.url}; fake Coordinator {fakes.coordinator.url}; fake Pivot {fakes.pivot.url}"
        )
        say("Installing CRDs, RBAC and the operator's credential Secrets")
        install(cp, admin_user="admin", admin_password=admin_password, pivot_token=pivot_token)
        say("Starting the operator (as system:serviceaccount:druid-access:druid-access-operator)")
        operator = OperatorProcess(
            config=operator_config(fakes, resync_seconds=10.0),
            kubeconfig=cp.operator_kubeconfig,
            workdir=workdir / "operator",
        )
        operator.start()
        try:
            say(f"Applying deploy/samples/ to namespace {NAMESPACE}")
            cp.kubectl("create", "namespace", NAMESPACE)
            print(
                cp.kubectl(
                    "apply", "-n", NAMESPACE, "-f", str(repo_root() / "deploy" / "samples")
                ).stdout.rstrip()
            )
            wait_for(lambda: _ready_all(cp), timeout=90, what="every sample to be Ready")
            say("kubectl get druid")
            print(cp.kubectl("get", "druid", "-n", NAMESPACE).stdout.rstrip())
            say("What the Coordinator and Pivot now hold")
            show_remote(fakes)
            demo_drift(cp, fakes, admin_password)
            demo_rotation(cp, fakes)
            say(f"Done in {time.monotonic() - started:.0f}s. Operator log: {operator.log_path}")
            if keep:
                wait_for_signal(cp)
        finally:
            operator.stop()
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
    args = parser.parse_args(argv)
    workdir = Path(args.dir).resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    return run(args.keep, workdir)


if __name__ == "__main__":
    sys.exit(main())
