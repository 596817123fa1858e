"""What one request of each kind the operator makes costs the API server in CPU, one at a time.

Usage (from the repository root; needs the cached control plane binaries, ``make controlplane``)::

    .venv/bin/python bench/api_write_cost.py [--requests 300] [--out bench/results/api-write-cost.md]

Method. A private control plane (etcd + kube-apiserver, ``ControlPlane``) with the CRDs installed.
For each kind of request in turn, ``--requests`` of them are sent one after another over one
keep-alive connection as the cluster admin, and the CPU time (``utime + stime`` from
``/proc/<pid>/stat``) the kube-apiserver and etcd spent meanwhile is divided by their number.
The kinds are what a new DruidUser costs the API server: its create (the user's, not the
operator's), the operator's finalizer patch and status patch and its Event, beside a ConfigMap's
create and patch and a GET, for scale. The whole run is then made again with two watches open on
the DruidUsers (the operator's and a client's), whose events the API server encodes and sends.
Every process is stopped on the way out; the run takes about a minute.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import ssl
import subprocess
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx

from druid_access.testing.controlplane import ControlPlane
from druid_access.testing.environment import install
from proc_stats import process_cpu

ROOT = Path(__file__).resolve().parents[1]
NS = "cost"
GROUP_PATH = f"/apis/druidaccess.io/v1alpha1/namespaces/{NS}"
JSON, MERGE = "application/json", "application/merge-patch+json"
Request = tuple[str, str, Any, str]  # method, path, body, content type

# What the operator's status patch of a Synced DruidUser holds.
STATUS = {
    "status": {
        "observedGeneration": 1,
        "remoteName": "u",
        "owned": True,
        "secretVersion": "u-pw@1",
        "lastSyncTime": "2026-11-28T19:00:00Z",
        "conditions": [
            {
                "type": "Ready",
                "status": "True",
                "reason": "Synced",
                "message": "in sync",
                "lastTransitionTime": "2026-11-28T19:00:00Z",
                "observedGeneration": 1,
            }
        ],
    }
}


def user(i: int) -> dict[str, Any]:
    return {
        "apiVersion": "druidaccess.io/v1alpha1",
        "kind": "DruidUser",
        "metadata": {"name": f"u{i}", "namespace": NS},
        "spec": {"roles": ["r"], "password": {"secretKeyRef": {"name": f"u{i}-pw", "key": "password"}}},
    }


def event(i: int) -> dict[str, Any]:
    return {
        "metadata": {"generateName": f"u{i}."},
        "involvedObject": {
            "apiVersion": "druidaccess.io/v1alpha1",
            "kind": "DruidUser",
            "namespace": NS,
            "name": f"u{i}",
        },
        "reason": "CreatedAuthenticatorUser",
        "message": f"created authenticator user 'u{i}'; set the password of 'u{i}' (new resource)",
        "type": "Normal",
        "source": {"component": "druid-access-operator"},
    }


def phases(n: int) -> list[tuple[str, list[Request]]]:
    users, maps = f"{GROUP_PATH}/druidusers", f"/api/v1/namespaces/{NS}/configmaps"
    return [
        ("DruidUser create", [("POST", users, user(i), JSON) for i in range(n)]),
        (
            "DruidUser finalizer patch",
            [("PATCH", f"{users}/u{i}", {"metadata": {"finalizers": ["x.io/f"]}}, MERGE) for i in range(n)],
        ),
        ("DruidUser status patch", [("PATCH", f"{users}/u{i}/status", STATUS, MERGE) for i in range(n)]),
        ("Event create", [("POST", f"/api/v1/namespaces/{NS}/events", event(i), JSON) for i in range(n)]),
        ("DruidUser GET", [("GET", f"{users}/u{i}", None, JSON) for i in range(n)]),
        (
            "ConfigMap create",
            [("POST", maps, {"metadata": {"name": f"c{i}"}, "data": {"a": "b"}}, JSON) for i in range(n)],
        ),
        (
            "ConfigMap finalizer patch",
            [("PATCH", f"{maps}/c{i}", {"metadata": {"finalizers": ["x.io/f"]}}, MERGE) for i in range(n)],
        ),
    ]


def measure(
    client: httpx.Client, pids: Sequence[int], requests: Sequence[Request]
) -> tuple[list[float], float]:
    """CPU-seconds of each process in ``pids`` per request, and wall seconds per request."""
    before, start = [process_cpu(pid) for pid in pids], time.monotonic()
    for method, path, body, ctype in requests:
        content = None if body is None else json.dumps(body)
        response = client.request(method, path, content=content, headers={"Content-Type": ctype})
        response.raise_for_status()
    wall = time.monotonic() - start
    after = [process_cpu(pid) for pid in pids]
    return [(b - a) / len(requests) for a, b in zip(before, after, strict=True)], wall / len(requests)


def clean(client: httpx.Client, n: int) -> None:
    """Take the finalizers off and delete everything, for the next round."""
    for i in range(n):
        for path in (f"{GROUP_PATH}/druidusers/u{i}", f"/api/v1/namespaces/{NS}/configmaps/c{i}"):
            client.patch(
                path, content=json.dumps({"metadata": {"finalizers": None}}), headers={"Content-Type": MERGE}
            ).raise_for_status()
    for path in (
        f"{GROUP_PATH}/druidusers",
        f"/api/v1/namespaces/{NS}/configmaps",
        f"/api/v1/namespaces/{NS}/events",
    ):
        client.delete(path).raise_for_status()
    deadline = time.monotonic() + 60
    while client.get(f"{GROUP_PATH}/druidusers").json()["items"] and time.monotonic() < deadline:
        time.sleep(0.2)


def run(n: int) -> tuple[list[str], str]:
    rows: list[str] = []
    with tempfile.TemporaryDirectory(prefix="api-write-cost-") as tmp:
        cp = ControlPlane(Path(tmp) / "controlplane")
        cp.start()
        watches: list[subprocess.Popen[bytes]] = []
        try:
            install(cp, admin_user="admin", admin_password="unused-admin-pw", pivot_token="unused-token")
            names = {pid: Path(f"/proc/{pid}/comm").read_text().strip() for pid in cp.pids}
            apiserver = next(pid for pid, name in names.items() if "apiserver" in name)
            etcd = next(pid for pid, name in names.items() if name == "etcd")
            server = json.loads(cp.kubectl("version", "-o", "json").stdout)["serverVersion"]["gitVersion"]
            context = ssl.create_default_context(cafile=str(cp.ca_file))
            headers = {"Authorization": f"Bearer {cp.admin_token}"}
            with httpx.Client(base_url=cp.url, verify=context, headers=headers, timeout=60) as client:
                client.post("/api/v1/namespaces", json={"metadata": {"name": NS}}).raise_for_status()
                watch = [str(cp.binaries.kubectl), "--kubeconfig", str(cp.admin_kubeconfig)]
                watch += ["get", "--raw", f"{GROUP_PATH}/druidusers?watch=1"]
                for label, watching in (("no watch", 0), ("two watches on the DruidUsers", 2)):
                    if watching:
                        clean(client, n)
                        watches += [
                            subprocess.Popen(watch, stdout=subprocess.DEVNULL) for _ in range(watching)
                        ]
                        time.sleep(2)
                    for name, requests in phases(n):
                        (api_cpu, etcd_cpu), wall = measure(client, (apiserver, etcd), requests)
                        rows.append(
                            f"| {label} | {name} | {1000 * api_cpu:.2f} ms | {1000 * etcd_cpu:.2f} ms | {1000 * wall:.2f} ms |"
                        )
                        print(rows[-1], flush=True)
        finally:
            for process in watches:
                process.kill()
                process.wait(timeout=10)
            cp.stop()
    return rows, server


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "api-write-cost.md"))
    args = parser.parse_args()
    rows, server = run(args.requests)
    commit = subprocess.run(
        ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True, text=True
    ).stdout.strip()
    date = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    text = (
        "# The API server's CPU per request\n\n"
        f"- command: `.venv/bin/python bench/api_write_cost.py --requests {args.requests}`\n"
        f"- date: {date}\n"
        f"- machine: {platform.platform()}, {os.cpu_count()} CPU(s), Python {platform.python_version()}, "
        f"kube-apiserver {server} (local, etcd on 127.0.0.1), git {commit}\n\n"
        f"{args.requests} requests of each kind, one after another over one connection; CPU of each "
        "process over the requests, divided by their number; the objects grow as the rounds go "
        "(the DruidUsers gain a finalizer, a status and their managed fields).\n\n"
        "| watches | request | kube-apiserver CPU per request | etcd CPU per request | wall time per request |\n"
        "|---|---|---:|---:|---:|\n" + "\n".join(rows) + "\n"
    )
    Path(args.out).write_text(text)
    print(f"written to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
