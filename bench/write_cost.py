"""How many Kubernetes API writes one object costs, from create to Ready and per resync in sync.

Usage (from the repository root; needs the cached control plane binaries, ``make controlplane``)::

    .venv/bin/python bench/write_cost.py [--periods N] [--out bench/results/write_cost.md]

Method. A private control plane (etcd + kube-apiserver via ``ControlPlane``) in a temporary
directory, the fakes in a thread, ``install()`` and the real operator (``druid-access run`` with
the restricted RBAC identity, resync 2 s). For each kind in turn:

1. read the list resourceVersion of the object's collection, of Events and of Secrets;
2. open raw watches *from those resourceVersions* (``kubectl get --raw ...?watch=1&resourceVersion=``),
   narrowed by field selector to this object, its Events and its generated Secret, so that no
   write is missed, however fast it comes;
3. ``kubectl apply`` the object and read the watch until it shows ``Ready=True`` for the current
   generation: every distinct resourceVersion seen is one write to the object (the create itself,
   kopf's finalizer, the operator's status patches); ADDED/MODIFIED Events and Secrets are counted
   the same way; the fakes' request logs give the writes to Druid/Pivot;
4. keep watching for ``--periods`` resync periods while the object is in sync and count again
   (expected: 0 writes anywhere, and reads of the remote object at every resync).

Every process (kubectl watches, operator, fakes, etcd, kube-apiserver) is stopped on the way out,
and every wait is bounded: the whole run takes about a minute.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import queue
import shlex
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from druid_access.testing.controlplane import ControlPlane
from druid_access.testing.environment import (
    FakesInThread,
    OperatorProcess,
    apply,
    install,
    operator_config,
    ready_condition,
    secret,
)

ROOT = Path(__file__).resolve().parents[1]
NS = "bench"
RESYNC = 2.0
ADMIN_PW = "bench-admin-pw"
TOKEN = "bench-pivot-token"
GROUP_VERSION = "druidaccess.io/v1alpha1"
READY_TIMEOUT = 60.0
OVERALL_TIMEOUT = 600.0


class Watch:
    """``kubectl get --raw`` on a watch URL from a known resourceVersion; events read by a thread."""

    def __init__(self, cp: ControlPlane, path: str, resource_version: str, field_selector: str) -> None:
        query = urlencode(
            {
                "watch": "1",
                "resourceVersion": resource_version,
                "fieldSelector": field_selector,
                "timeoutSeconds": str(int(OVERALL_TIMEOUT)),
            }
        )
        command = [
            str(cp.binaries.kubectl),
            f"--kubeconfig={cp.admin_kubeconfig}",
            "get",
            "--raw",
            f"{path}?{query}",
        ]
        self.events: queue.Queue[tuple[float, dict[str, Any]]] = queue.Queue()
        self._process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        assert self._process.stdout is not None
        for line in self._process.stdout:
            if line.strip():
                self.events.put((time.monotonic(), json.loads(line)))

    def drain(self) -> list[tuple[float, dict[str, Any]]]:
        out = []
        while True:
            try:
                out.append(self.events.get_nowait())
            except queue.Empty:
                return out

    def stop(self) -> None:
        if self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait(timeout=5)
        self._thread.join(timeout=5)


@dataclass
class Counter:
    """Distinct resourceVersions of ADDED/MODIFIED events seen (= writes), split by phase."""

    watch: Watch
    seen: set[str] = field(default_factory=set)
    objects: list[tuple[float, dict[str, Any]]] = field(default_factory=list)

    def poll(self) -> None:
        for at, event in self.watch.drain():
            if event.get("type") == "ERROR":
                raise RuntimeError(f"watch failed: {event}")
            if event.get("type") in ("ADDED", "MODIFIED"):
                obj = event["object"]
                self.seen.add(obj["metadata"]["resourceVersion"])
                self.objects.append((at, obj))

    def count(self) -> int:
        self.poll()
        return len(self.seen)


@dataclass
class Case:
    kind: str
    plural: str
    name: str
    spec: dict[str, Any]
    label: str
    generated_secret: str | None = None
    remote: str = "coordinator"


@dataclass
class Row:
    label: str
    object_to_ready: int
    events_to_ready: int
    secrets_to_ready: int
    remote_writes_to_ready: int
    seconds_to_ready: float
    object_in_sync: int
    events_in_sync: int
    remote_writes_in_sync: int
    remote_reads_in_sync: int
    periods: int
    sequence: list[str] = field(default_factory=list)


def describe_writes(objects: list[dict[str, Any]]) -> list[str]:
    """What each successive write changed: metadata finalizers/annotations, spec, status keys."""
    out: list[str] = []
    previous: dict[str, Any] | None = None
    for obj in objects:
        if previous is None:
            out.append("create")
        else:
            parts = []
            meta, before = obj["metadata"], previous["metadata"]
            if meta.get("finalizers") != before.get("finalizers"):
                parts.append("finalizers")
            annotations, old_annotations = meta.get("annotations") or {}, before.get("annotations") or {}
            changed = sorted(
                k for k in {*annotations, *old_annotations} if annotations.get(k) != old_annotations.get(k)
            )
            if changed:
                parts.append("annotations " + ", ".join(changed))
            if obj.get("spec") != previous.get("spec"):
                parts.append("spec")
            status, old_status = obj.get("status") or {}, previous.get("status") or {}
            keys = sorted(k for k in {*status, *old_status} if status.get(k) != old_status.get(k))
            if keys:
                ready = ready_condition(obj)
                reason = (
                    f" (Ready {ready.get('status')}/{ready.get('reason')})"
                    if ready and "conditions" in keys
                    else ""
                )
                parts.append("status " + ", ".join(keys) + reason)
            out.append("; ".join(parts) or "no visible change")
        previous = obj
    return out


def list_version(cp: ControlPlane, path: str) -> str:
    data = json.loads(cp.kubectl("get", "--raw", f"{path}?limit=1").stdout)
    return str(data["metadata"]["resourceVersion"])


def is_ready(obj: Mapping[str, Any]) -> bool:
    ready = ready_condition(obj)
    return (
        ready is not None
        and ready.get("status") == "True"
        and (obj.get("status") or {}).get("observedGeneration") == obj["metadata"].get("generation")
    )


def wait(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(0.05)


def measure(cp: ControlPlane, fakes: FakesInThread, case: Case, periods: int) -> Row:
    base = f"/apis/{GROUP_VERSION}/namespaces/{NS}/{case.plural}"
    events_path = f"/api/v1/namespaces/{NS}/events"
    secrets_path = f"/api/v1/namespaces/{NS}/secrets"
    obj_watch = Watch(cp, base, list_version(cp, base), f"metadata.name={case.name}")
    ev_watch = Watch(cp, events_path, list_version(cp, events_path), f"involvedObject.name={case.name}")
    sec_watch = (
        Watch(cp, secrets_path, list_version(cp, secrets_path), f"metadata.name={case.generated_secret}")
        if case.generated_secret
        else None
    )
    watches = [w for w in (obj_watch, ev_watch, sec_watch) if w is not None]
    try:
        objects, events = Counter(obj_watch), Counter(ev_watch)
        secrets = Counter(sec_watch) if sec_watch else None
        remote = fakes.coordinator if case.remote == "coordinator" else fakes.pivot
        fakes.call(fakes.coordinator.requests.clear)
        fakes.call(fakes.pivot.requests.clear)
        started = time.monotonic()
        doc = {
            "apiVersion": GROUP_VERSION,
            "kind": case.kind,
            "metadata": {"name": case.name, "namespace": NS},
            "spec": case.spec,
        }
        apply(cp, doc)

        def ready() -> bool:
            objects.poll()
            return any(is_ready(obj) for _, obj in objects.objects)

        wait(ready, READY_TIMEOUT, f"{case.kind} {case.name} to be Ready")
        ready_at = next(at for at, obj in objects.objects if is_ready(obj))
        # Writes up to and including the one that made it Ready.
        to_ready = len({o["metadata"]["resourceVersion"] for at, o in objects.objects if at <= ready_at})
        unique: dict[str, dict[str, Any]] = {}
        for _, obj in objects.objects:
            unique.setdefault(obj["metadata"]["resourceVersion"], obj)
        sequence = describe_writes(list(unique.values()))
        time.sleep(0.3)  # let Events posted with the last status patch arrive
        events_to_ready = events.count()
        secrets_to_ready = secrets.count() if secrets else 0
        remote_to_ready = len(
            fakes.call(lambda: [*fakes.coordinator.requests.writes(), *fakes.pivot.requests.writes()])
        )
        seconds = ready_at - started

        # In sync: N resync periods (plus the jitter) with nothing to do.
        object_before, events_before = objects.count(), events.count()
        fakes.call(fakes.coordinator.requests.clear)
        fakes.call(fakes.pivot.requests.clear)
        time.sleep(periods * RESYNC * 1.1 + 0.5)
        object_in_sync = objects.count() - object_before
        events_in_sync = events.count() - events_before
        remote_writes = len(
            fakes.call(lambda: [*fakes.coordinator.requests.writes(), *fakes.pivot.requests.writes()])
        )
        reads = fakes.call(lambda: remote.requests.count("GET", case.name.replace(".", r"\.")))
        return Row(
            label=case.label,
            object_to_ready=to_ready,
            events_to_ready=events_to_ready,
            secrets_to_ready=secrets_to_ready,
            remote_writes_to_ready=remote_to_ready,
            seconds_to_ready=seconds,
            object_in_sync=object_in_sync,
            events_in_sync=events_in_sync,
            remote_writes_in_sync=remote_writes,
            remote_reads_in_sync=reads,
            periods=periods,
            sequence=sequence,
        )
    finally:
        for w in watches:
            w.stop()


def cases() -> list[Case]:
    ref = {"secretKeyRef": {"name": "bench-user-pw", "key": "password"}}
    return [
        Case(
            "DruidRole",
            "druidroles",
            "bench-role",
            {"permissions": [{"resource": {"type": "DATASOURCE", "name": "bench.*"}, "action": "READ"}]},
            "DruidRole (1 permission)",
        ),
        Case(
            "DruidUser",
            "druidusers",
            "bench-user",
            {"roles": ["bench-role"], "password": ref},
            "DruidUser (password Secret, 1 role)",
        ),
        Case(
            "DruidUser",
            "druidusers",
            "bench-gen",
            {
                "roles": ["bench-role"],
                "password": {"secretKeyRef": {"name": "bench-gen-pw", "key": "password"}, "generate": True},
            },
            "DruidUser (generated password, 1 role)",
            generated_secret="bench-gen-pw",
        ),
        Case(
            "DruidGroupMapping",
            "druidgroupmappings",
            "bench-mapping",
            {"groupPattern": "cn=bench", "roles": ["bench-role"]},
            "DruidGroupMapping (1 role)",
        ),
        Case(
            "DruidConnection",
            "druidconnections",
            "bench-conn",
            {
                "queryHosts": ["broker:8082"],
                "defaultDbAuthToken": {
                    "username": "bench-user",
                    "passwordSecretRef": {"name": "bench-user-pw", "key": "password"},
                },
            },
            "DruidConnection (password Secret)",
            remote="pivot",
        ),
    ]


def table(rows: list[Row]) -> str:
    head = (
        "| object | writes to object until Ready | Events | Secrets created | Druid/Pivot writes "
        "| time to Ready | writes to object per resync in sync | Events per resync | Druid/Pivot writes "
        "per resync | Druid/Pivot reads per resync |\n"
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n"
    )
    lines = [
        f"| {r.label} | {r.object_to_ready} | {r.events_to_ready} | {r.secrets_to_ready} "
        f"| {r.remote_writes_to_ready} | {r.seconds_to_ready:.2f} s "
        f"| {r.object_in_sync / r.periods:g} | {r.events_in_sync / r.periods:g} "
        f"| {r.remote_writes_in_sync / r.periods:g} | {r.remote_reads_in_sync / r.periods:.1f} |"
        for r in rows
    ]
    return head + "\n".join(lines) + "\n"


def machine(cp: ControlPlane) -> str:
    try:
        server = json.loads(cp.kubectl("version", "-o", "json").stdout)["serverVersion"]["gitVersion"]
    except Exception:  # a note, not a measurement
        server = "unknown"
    try:
        commit = subprocess.run(
            ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        commit = "unknown"
    return (
        f"{platform.platform()}, {os.cpu_count()} CPU(s), Python {platform.python_version()}, "
        f"kube-apiserver {server} (local, etcd on 127.0.0.1), fakes in-process, git {commit} "
        "(plus any uncommitted changes in the working tree)"
    )


def report(rows: list[Row], command: str, note: str, periods: int) -> str:
    date = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    return (
        "# Kubernetes API writes per object\n\n"
        f"- command: `{command}`\n"
        f"- date: {date}\n"
        f"- machine: {note}\n"
        f"- operator: resync {RESYNC:g} s; in-sync window: {periods} resync periods (+10 % jitter)\n\n"
        "Writes to an object are the distinct resourceVersions a watch opened *before* the create "
        "saw (from the list resourceVersion, narrowed to the object by field selector): the create "
        "itself, kopf's finalizer patch and the operator's status patches. Events and generated "
        "Secrets are counted the same way with their own watches. Druid/Pivot columns come from "
        "the fakes' request logs (writes = anything but GET/HEAD/OPTIONS; reads = GETs naming the "
        "object, which show that resyncs did happen).\n\n"
        + table(rows)
        + "\nThe writes to each object, in order (everything the watch saw, in-sync window included):\n\n"
        + "".join(
            f"- {r.label}: " + " → ".join(f"{i + 1}. {w}" for i, w in enumerate(r.sequence)) + "\n"
            for r in rows
        )
        + "\nExpected: an object in sync costs reads only, never a write (DESIGN.md, "
        '"Idempotent"), so every "per resync" write column is 0.\n'
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--periods", type=int, default=3, help="resync periods to watch while in sync")
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "write_cost.md"))
    args = parser.parse_args()
    command = shlex.join([".venv/bin/python", "bench/write_cost.py", *sys.argv[1:]])
    deadline = time.monotonic() + OVERALL_TIMEOUT
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="write-cost-") as tmp:
        cp = ControlPlane(Path(tmp) / "controlplane")
        cp.start()
        try:
            with FakesInThread(
                admin_password=ADMIN_PW, pivot_token=TOKEN, credential_iterations=1000
            ) as fakes:
                install(cp, admin_user="admin", admin_password=ADMIN_PW, pivot_token=TOKEN)
                cp.kubectl("create", "namespace", NS)
                apply(cp, secret("bench-user-pw", {"password": "bench-user-secret"}, NS))
                operator = OperatorProcess(
                    config=operator_config(fakes, resync_seconds=RESYNC),
                    kubeconfig=cp.operator_kubeconfig,
                    workdir=Path(tmp) / "operator",
                )
                operator.start()
                try:
                    for case in cases():
                        if time.monotonic() > deadline:
                            raise TimeoutError("the benchmark ran out of time")
                        row = measure(cp, fakes, case, args.periods)
                        rows.append(row)
                        print(f"measured {row.label}", flush=True)
                finally:
                    code = operator.stop()
                    if code != 0:
                        print(operator.log()[-3000:], file=sys.stderr)
                note = machine(cp)
        finally:
            cp.stop()
    text = report(rows, command, note, args.periods)
    print()
    print(text)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text, encoding="utf-8")
    print(f"written to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
