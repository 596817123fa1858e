"""The operator at scale: N DruidUsers + M DruidRoles against the fake Coordinator (issue 11).

Usage (from the repository root; needs the cached control plane binaries, ``make controlplane``)::

    .venv/bin/python bench/scale.py --users 1000 [--roles 100] [--phases all] [--out bench/results/scale.md]
    .venv/bin/python bench/scale.py --users 10000 --phases memory,steady,reaction

Everything runs on 127.0.0.1 in one temporary directory: a private control plane (etcd +
kube-apiserver + kube-controller-manager, ``ControlPlane``), the fake Coordinator and Pivot in a
thread of this process (``FakesInThread``, PBKDF2 with Druid's 10,000 iterations), ``install()`` and
the real operator as a subprocess (``druid-access run --namespace scale``, the restricted RBAC
identity, ``resyncSeconds`` 30 by default). Counts (requests, writes, bytes) are reported next to
times, since the machine is shared and noisy; every baseline is measured in the same run.

Phases (``--phases``, comma-separated; the objects are created whenever a phase needs them):

1. ``convergence``: first the raw-API floor: the same remote writes sent straight to a *fresh* fake
   Coordinator, one at a time (the operator's per-target write discipline, as ``contention.py``'s
   "direct, serialised"), each object followed by one status patch to the API server, serialised.
   Then the operator: N password Secrets (labelled ``druidaccess.io/allow``) are created, the clock
   starts, and the M roles and N users (1 role each) are created in bulk through the API, from a
   child process (``post_many.py``: in this process the creates would hold the interpreter lock
   the fake Coordinator's thread needs, a load the floor never has). A watch
   opened before the create gives each object's first Ready=True/Synced; the fake's request log
   gives the first request to reach the Coordinator, and, per Druid store (which the operator
   writes one request at a time), during the API create and after it: the time from each write's
   arrival to its answer (the fake serves reads and the other store meanwhile) and the gaps
   between an answer and the next write to the store (the time before a window's first write is
   not counted). Once the operator has stopped, the floor runs again, and the ratio is against
   the faster of its two runs: on a shared machine a floor run can only come out slow.
2. ``writes``: the kube-apiserver's ``apiserver_request_total`` (by resource, subresource and
   verb, read from ``/metrics`` with the admin identity) before the create and once all are Synced:
   Events created, status patches and metadata patches (kopf's finalizer and annotations).
3. ``steady``: in sync, over ``--periods`` resync periods: Coordinator requests by method and path
   family (fake's log), Secret GETs/LISTs and response bytes (apiserver metrics,
   ``apiserver_response_sizes_sum``), Kubernetes writes, operator CPU (``utime+stime`` of
   ``/proc/<pid>/stat``); the baseline is the idle operator's CPU (10 s sample, scaled).
   ``memory``: operator RSS (``VmRSS`` of ``/proc/<pid>/status``) idle before any object, and at
   N objects in sync (plus ``VmHWM``, the peak).
4. ``reaction``: K users' specs patched one at a time (a role added, or the only role removed),
   ``--reaction-spacing`` apart; the time from sending the patch to the matching remote write in the
   fake's log (p50/p99), next to the time until the benchmark's own watch (kubectl, read by a
   thread) sees the new generation: the API server's propagation, a reference for any controller.
5. ``restart``: the operator stopped with everything in sync and started again: time from the
   process start to its first Coordinator request, Coordinator reads, Secret GETs and Kubernetes
   writes in the first ``--restart-window`` seconds.
6. ``deletion``: 3/4 of the users (labelled at creation) deleted by one deletecollection call; time
   until the watch saw every one gone; users/s against the creation rate of phase 1; the
   operator's RSS at its peak while they go.
7. ``outage``: a separate operator (``--namespace scale-outage``) and a fresh fake Coordinator with
   ``--outage-objects`` objects in sync; every request then answered by a connection reset (a
   ``faults.Fault`` matching every path) for ``--outage-seconds``: requests per second arriving at
   the fake (peak and mean, against the in-sync rate over one resync period before), how long until
   every object's Ready reason leaves Synced, and 50 users created during the outage: how long until
   each has any status reason (against the time to a first reason of the objects created healthy).
   Then the fault is removed and the time to recover (all Synced) is measured.

Every wait is bounded, every process (watches, operators, fakes, control plane) is stopped on the
way out, and the results are written as one section per N (replacing an older one with the same
N, M and phases). ``--operator-source DIR`` runs the operator from another copy of ``operator/``
(e.g. ``git archive`` of an older commit) to compare before/after on one machine; ``--label`` says
what was measured. A failed phase is reported in the section's notes; what was measured is kept.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import datetime
import itertools
import json
import math
import os
import platform
import queue
import re
import shlex
import shutil
import ssl
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import httpx

import druid_access
from druid_access.testing.controlplane import ControlPlane
from druid_access.testing.environment import (
    FakesInThread,
    OperatorProcess,
    install,
    operator_config,
    ready_condition,
    secret,
)
from druid_access.testing.faults import Fault, RequestRecord
from proc_stats import busy_share, by_process, cpu_by_name, machine_busy, process_cpu, processes

ROOT = Path(__file__).resolve().parents[1]
NS = "scale"
FLOOR_NS = "scale-floor"
OUTAGE_NS = "scale-outage"
ADMIN_PW = "bench-scale-admin-pw"
TOKEN = "bench-scale-pivot-token"
GROUP = "druidaccess.io"
GROUP_VERSION = f"{GROUP}/v1alpha1"
ITERATIONS = 10_000  # Druid's default credentialIterations
PHASES = ("convergence", "writes", "steady", "memory", "reaction", "restart", "deletion", "outage")
NEEDS_POPULATION = frozenset(PHASES) - {"outage"}
GROUP_LABEL = "scale.bench/group"
AUTHN = "/druid-ext/basic-security/authentication/db/basic"
AUTHZ = "/druid-ext/basic-security/authorization/db/basic"
NEW_DURING_OUTAGE = 50


def log(message: str) -> None:
    stamp = datetime.datetime.now().strftime("%H:%M:%S")
    print(f"[{stamp}] {message}", flush=True)


# ----------------------------------------------------------------------------------- names/manifests


def user_name(i: int) -> str:
    return f"user-{i:05d}"


def role_name(j: int) -> str:
    return f"role-{j:04d}"


def secret_name(i: int) -> str:
    return f"pw-{i:05d}"


def password(i: int) -> str:
    return f"scale-pw-{i:05d}-ä"


def role_of(i: int, roles: int) -> str:
    return role_name(i % roles)


def permission(j: int) -> dict[str, Any]:
    return {"resource": {"type": "DATASOURCE", "name": f"ds-{j}.*"}, "action": "READ"}


def role_doc(namespace: str, j: int, prefix: str = "") -> dict[str, Any]:
    return {
        "apiVersion": GROUP_VERSION,
        "kind": "DruidRole",
        "metadata": {"name": prefix + role_name(j), "namespace": namespace},
        "spec": {"permissions": [permission(j)]},
    }


def user_doc(namespace: str, i: int, roles: Sequence[str], group: str, prefix: str = "") -> dict[str, Any]:
    return {
        "apiVersion": GROUP_VERSION,
        "kind": "DruidUser",
        "metadata": {"name": prefix + user_name(i), "namespace": namespace, "labels": {GROUP_LABEL: group}},
        "spec": {
            "roles": list(roles),
            "password": {"secretKeyRef": {"name": prefix + secret_name(i), "key": "password"}},
        },
    }


def collection(namespace: str, doc: Mapping[str, Any]) -> str:
    if doc["kind"] == "Secret":
        return f"/api/v1/namespaces/{namespace}/secrets"
    plural = {"DruidUser": "druidusers", "DruidRole": "druidroles"}[doc["kind"]]
    return f"/apis/{GROUP_VERSION}/namespaces/{namespace}/{plural}"


# ------------------------------------------------------------------------------ the API server, raw


class Api:
    """The kube-apiserver as the cluster admin (bearer token), over one keep-alive connection."""

    def __init__(self, cp: ControlPlane) -> None:
        self.cp = cp
        self.context = ssl.create_default_context(cafile=str(cp.ca_file))
        self.headers = {"Authorization": f"Bearer {cp.admin_token}"}
        self.client = httpx.Client(base_url=cp.url, verify=self.context, headers=self.headers, timeout=120)

    def close(self) -> None:
        self.client.close()

    def get(self, path: str, **params: str) -> Any:
        response = self.client.get(path, params=params)
        response.raise_for_status()
        return response.json()

    def list_version(self, path: str) -> str:
        return str(self.get(path, limit="1")["metadata"]["resourceVersion"])

    def list_items(self, path: str, **params: str) -> Iterator[dict[str, Any]]:
        """Every item of a collection, 500 at a time (bounded memory per page)."""
        token = ""
        while True:
            page = self.get(path, limit="500", **({"continue": token} if token else {}), **params)
            yield from page["items"]
            token = page["metadata"].get("continue") or ""
            if not token:
                return

    def patch(self, path: str, body: Mapping[str, Any]) -> None:
        response = self.client.patch(
            path, content=json.dumps(body), headers={"Content-Type": "application/merge-patch+json"}
        )
        response.raise_for_status()

    def delete_collection(self, path: str, label_selector: str) -> None:
        response = self.client.delete(path, params={"labelSelector": label_selector})
        response.raise_for_status()

    def metrics(self) -> collections.Counter[tuple[str, str, str]]:
        """``apiserver_request_total`` summed by (resource, subresource, verb)."""
        response = self.client.get("/metrics")
        response.raise_for_status()
        return parse_request_totals(response.text)

    def create_many(self, docs: Iterable[tuple[str, Mapping[str, Any]]], concurrency: int) -> int:
        """POST every (collection path, manifest), ``concurrency`` at a time; the count created."""
        return self.create_many_timed(docs, concurrency)[0]

    def create_many_timed(
        self, docs: Iterable[tuple[str, Mapping[str, Any]]], concurrency: int
    ) -> tuple[int, float]:
        """``create_many``, and the wall-clock time its first request went out. The creates run
        in a child process (``post_many.py``): here they would hold the interpreter lock the
        fake Coordinator's thread needs."""
        lines = "".join(json.dumps([path, doc]) + "\n" for path, doc in docs)
        env = {
            **os.environ,
            "KUBE_URL": self.cp.url,
            "KUBE_CA": str(self.cp.ca_file),
            "KUBE_TOKEN": self.headers["Authorization"].removeprefix("Bearer "),
        }
        done = subprocess.run(
            [sys.executable, str(Path(__file__).with_name("post_many.py")), f"--concurrency={concurrency}"],
            input=lines,
            capture_output=True,
            text=True,
            env=env,
            timeout=3600,
            check=False,
        )
        if done.returncode != 0:
            raise RuntimeError(done.stderr.strip() or f"post_many.py exited with {done.returncode}")
        said = dict(line.split(" ", 1) for line in done.stdout.splitlines() if " " in line)
        return int(said["created"]), float(said.get("started", "nan"))


_LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


def parse_request_totals(text: str) -> collections.Counter[tuple[str, str, str]]:
    """Requests by (resource, subresource, verb); response bytes (``apiserver_response_sizes_sum``)
    under ("bytes:" + resource, subresource, verb)."""
    out: collections.Counter[tuple[str, str, str]] = collections.Counter()
    for line in text.splitlines():
        if line.startswith("apiserver_request_total{"):
            prefix = ""
        elif line.startswith("apiserver_response_sizes_sum{"):
            prefix = "bytes:"
        else:
            continue
        labels_text, _, value = line.rpartition("} ")
        labels = dict(_LABEL.findall(labels_text))
        key = (prefix + labels.get("resource", ""), labels.get("subresource", ""), labels.get("verb", ""))
        out[key] += int(float(value))
    return out


def response_bytes(d: Mapping[tuple[str, str, str], int], resources: Sequence[str]) -> int:
    return sum(v for (r, _, _), v in d.items() if r.startswith("bytes:") and r[6:] in resources)


def delta(
    after: collections.Counter[tuple[str, str, str]], before: collections.Counter[tuple[str, str, str]]
) -> collections.Counter[tuple[str, str, str]]:
    out: collections.Counter[tuple[str, str, str]] = collections.Counter()
    for key, value in after.items():
        if value - before.get(key, 0):
            out[key] = value - before.get(key, 0)
    return out


def kube_writes(d: Mapping[tuple[str, str, str], int], plurals: Sequence[str]) -> dict[str, int]:
    """Events created, status patches and metadata patches of the operator's kinds, from a delta."""
    return {
        "events": sum(v for (r, _, verb), v in d.items() if r == "events" and verb in ("POST", "CREATE")),
        "event patches": sum(v for (r, _, verb), v in d.items() if r == "events" and verb == "PATCH"),
        "status patches": sum(
            v for (r, s, verb), v in d.items() if r in plurals and s == "status" and verb in ("PATCH", "PUT")
        ),
        "metadata patches": sum(
            v for (r, s, verb), v in d.items() if r in plurals and s == "" and verb in ("PATCH", "PUT")
        ),
        # ConfigMap writes: the ownership claims were kept in one until they went into the
        # finalizer's patch; nothing writes a ConfigMap now (the column shows it stays so).
        "claims writes": sum(
            v
            for (r, _, verb), v in d.items()
            if r == "configmaps" and verb in ("PATCH", "PUT", "POST", "CREATE")
        ),
    }


# ------------------------------------------------------------------------------------------ watches


@dataclass(frozen=True, slots=True)
class Seen:
    """One watch event, reduced as it is read (bounded memory at 10,000 objects)."""

    at: float  # time.time() when read
    type: str  # ADDED / MODIFIED / DELETED / LISTED (from a re-list after a watch ended)
    name: str
    rv: str
    generation: int | None
    observed: int | None
    reason: str | None
    ready: str | None

    @property
    def synced(self) -> bool:
        return self.reason == "Synced" and self.ready == "True" and self.observed == self.generation


def reduce(at: float, type_: str, obj: Mapping[str, Any]) -> Seen:
    ready = ready_condition(obj)
    meta = obj.get("metadata") or {}
    status = obj.get("status") or {}
    return Seen(
        at=at,
        type=type_,
        name=str(meta.get("name")),
        rv=str(meta.get("resourceVersion")),
        generation=meta.get("generation"),
        observed=status.get("observedGeneration"),
        reason=None if ready is None else str(ready.get("reason")),
        ready=None if ready is None else str(ready.get("status")),
    )


class Watch:
    """A raw watch (``kubectl get --raw``) of one collection from a known resourceVersion.

    A reader thread reduces each event to a ``Seen``; ``poll()`` hands them over. When the watch
    ends early (server timeout, 410 Gone, a 429 of a fresh apiserver) it is re-listed (items handed
    over as LISTED, vanished names as DELETED) and reopened from the list's resourceVersion.
    """

    def __init__(self, cp: ControlPlane, api: Api, path: str, resource_version: str | None = None) -> None:
        self.cp, self.api, self.path = cp, api, path
        self.events: queue.Queue[Seen] = queue.Queue()
        self.names: set[str] = set()
        self.restarts = 0
        self.last_rv = resource_version or api.list_version(path)
        self._error: str | None = None
        self._process: subprocess.Popen[str] | None = None
        self._thread: threading.Thread | None = None
        self._open()

    def _open(self) -> None:
        query = urlencode(
            {
                "watch": "1",
                "resourceVersion": self.last_rv,
                "allowWatchBookmarks": "true",
                "timeoutSeconds": "1800",
            }
        )
        command = [
            str(self.cp.binaries.kubectl),
            f"--kubeconfig={self.cp.admin_kubeconfig}",
            "get",
            "--raw",
            f"{self.path}?{query}",
        ]
        self._error = None
        self._process = subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, bufsize=1 << 16
        )
        self._thread = threading.Thread(target=self._read, args=(self._process,), daemon=True)
        self._thread.start()

    def _read(self, process: subprocess.Popen[str]) -> None:
        assert process.stdout is not None
        for line in process.stdout:
            if not line.strip():
                continue
            event = json.loads(line)
            type_ = event.get("type")
            obj = event.get("object") or {}
            if type_ == "ERROR":
                self._error = str(obj.get("message") or obj)
                continue
            self.last_rv = str((obj.get("metadata") or {}).get("resourceVersion") or self.last_rv)
            if type_ == "BOOKMARK":
                continue
            self.events.put(reduce(time.time(), str(type_), obj))

    def poll(self) -> list[Seen]:
        out: list[Seen] = []
        while True:
            try:
                seen = self.events.get_nowait()
            except queue.Empty:
                break
            out.append(seen)
            if seen.type == "DELETED":
                self.names.discard(seen.name)
            else:
                self.names.add(seen.name)
        if self._process is not None and self._process.poll() is not None:
            if self._thread is not None:
                self._thread.join(timeout=5)
            if self.events.empty():
                out += self._relist()
        return out

    def _relist(self) -> list[Seen]:
        self.restarts += 1
        now = time.time()
        page = self.api.get(self.path)  # one page: the benchmark's collections fit (a few MB)
        out = [reduce(now, "LISTED", item) for item in page["items"]]
        present = {s.name for s in out}
        out += [Seen(now, "DELETED", name, "", None, None, None, None) for name in self.names - present]
        self.names = present
        self.last_rv = str(page["metadata"]["resourceVersion"])
        self._open()
        return out

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=5)
        if self._thread is not None:
            self._thread.join(timeout=5)


@contextlib.contextmanager
def watching(cp: ControlPlane, api: Api, paths: Sequence[str]) -> Iterator[list[Watch]]:
    watches: list[Watch] = []
    try:
        for path in paths:
            watches.append(Watch(cp, api, path))
        yield watches
    finally:
        for w in watches:
            w.stop()


def wait_until(predicate: Callable[[], bool], timeout: float, interval: float = 0.2) -> bool:
    """Poll ``predicate`` until true (True) or ``timeout`` passes (False)."""
    deadline = time.monotonic() + timeout
    while True:
        if predicate():
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(interval)


# ------------------------------------------------------------------------------- the fake's log


def family(record: RequestRecord) -> str:
    """A request's path with object names replaced: ``authz users/{name}/roles/{name}``."""
    path = record.path
    for prefix, short in ((AUTHN, "authn"), (AUTHZ, "authz")):
        if path.startswith(prefix):
            path = short + " " + path[len(prefix) + 1 :]
            break
    parts = path.split("/")
    for i in range(1, len(parts)):
        if parts[i - 1].rsplit(" ", 1)[-1] in ("users", "roles", "groupMappings") and parts[i]:
            parts[i] = "{name}"
    query = f"?{record.query_string}" if record.query_string else ""
    return "/".join(parts) + query


def records(fakes: FakesInThread) -> list[RequestRecord]:
    return fakes.call(lambda: fakes.coordinator.requests.records)


def timeline(
    started: float, requests: Sequence[RequestRecord], synced: Sequence[float], step: float = 2.0
) -> str:
    """Coordinator writes and reads and objects Synced per ``step`` seconds from ``started``,
    empty steps included: where the Coordinator sat idle while objects waited."""
    buckets: dict[int, list[int]] = collections.defaultdict(lambda: [0, 0, 0])
    for r in requests:
        buckets[int((r.timestamp - started) // step)][1 if is_read(r) else 0] += 1
    for t in synced:
        buckets[int(t // step)][2] += 1
    lines = [
        f"- convergence timeline, per {step:g} s from the start of the create:\n",
        "| from | Coordinator writes | Coordinator reads | objects Synced |",
        "|---:|---:|---:|---:|",
    ]
    for b in range(max(buckets, default=-1) + 1):
        written, read, synced_now = buckets.get(b, (0, 0, 0))
        lines.append(f"| {b * step:g} s | {written:,} | {read:,} | {synced_now:,} |")
    return "\n".join(lines) + "\n"


def clear(fakes: FakesInThread) -> None:
    fakes.call(fakes.coordinator.requests.clear)


def is_read(record: RequestRecord) -> bool:
    return record.method in ("GET", "HEAD", "OPTIONS")


@dataclass(frozen=True)
class StoreUse:
    """One Druid store's writes as the Coordinator saw them in a window: how long it was busy
    answering them, and how long it waited between one answer and the next write."""

    writes: int
    busy: float
    waiting: float


def store_use(requests: Sequence[RequestRecord], prefix: str, start: float, end: float) -> StoreUse:
    """The writes under ``prefix`` arriving in [start, end). The operator sends a store's writes
    one at a time, so the store's time is its busy time plus the waits between writes."""
    writes = sorted(
        (r.timestamp, r.duration)
        for r in requests
        if not is_read(r) and r.path.startswith(prefix + "/") and start <= r.timestamp < end
    )
    waiting = sum(max(0.0, nxt[0] - (cur[0] + cur[1])) for cur, nxt in itertools.pairwise(writes))
    return StoreUse(len(writes), sum(d for _, d in writes), waiting)


# --------------------------------------------------------------------------------- the operator


def operator_pid(operator: OperatorProcess) -> int:
    process = operator._process
    if process is None:
        raise RuntimeError("the operator is not running")
    return process.pid


def size(n: float) -> str:
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if abs(n) >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n:.0f} B"


def memory_kib(pid: int) -> dict[str, int]:
    out: dict[str, int] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            out[key] = int(value.split()[0])
    return out


def mib(kib: int) -> str:
    return f"{kib / 1024:.0f} MiB"


def pct(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in [0, 1])."""
    ordered = sorted(values)
    if not ordered:
        return math.nan
    return ordered[max(0, min(len(ordered) - 1, math.ceil(q * len(ordered)) - 1))]


# -------------------------------------------------------------------------------------- results


@dataclass
class Row:
    phase: str
    figure: str
    measured: str
    baseline: str = ""
    ratio: str = ""
    goal: str = ""


def ratio(a: float | None, b: float | None, digits: int = 2) -> str:
    if a is None or b is None or b == 0 or math.isnan(a) or math.isnan(b):
        return "n/a"
    return f"{a / b:.{digits}f}x"


def secs(value: float | None) -> str:
    if value is None or math.isnan(value):
        return "n/a"
    return f"{value:.1f} s" if value >= 1 else f"{value * 1000:.0f} ms"


@dataclass
class Bench:
    args: argparse.Namespace
    cp: ControlPlane
    api: Api
    fakes: FakesInThread
    workdir: Path
    rows: list[Row] = field(default_factory=list)
    details: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    operator: OperatorProcess | None = None
    floor_seconds: float | None = None  # the fastest of the floor's runs (``floors``)
    floors: list[float] = field(default_factory=list)  # each run of the floor, in order
    floors_busy: list[float] = field(default_factory=list)  # the machine's CPU seconds during each
    # The rows whose baseline is the floor, with the time each compares with it.
    floor_rows: list[tuple[Row, float | None]] = field(default_factory=list)
    busy_row: Row | None = None  # the machine's busy share while converging, beside the floor's
    floors_cpu: list[str] = field(default_factory=list)  # CPU by process during each floor run
    cpu_row: Row | None = None  # CPU by process while converging, beside the floors'
    converge_seconds: float | None = None
    steady_reads_per_period: float | None = None
    steady_secret_gets_per_period: float | None = None
    start_to_healthy: float | None = None

    # -- helpers -------------------------------------------------------------------------------

    @property
    def users(self) -> int:
        return int(self.args.users)

    @property
    def roles(self) -> int:
        return int(self.args.roles)

    @property
    def resync(self) -> float:
        return float(self.args.resync)

    def selected(self, phase: str) -> bool:
        return phase in self.args.phases

    def add(self, *rows: Row) -> None:
        self.rows.extend(rows)
        for r in rows:
            extra = f" (baseline {r.baseline}, {r.ratio})" if r.baseline else ""
            log(f"  {r.figure}: {r.measured}{extra}")

    def config(self, fakes: FakesInThread) -> dict[str, Any]:
        cfg = operator_config(fakes, resync_seconds=self.resync)
        cfg["clusters"]["default"]["timeoutSeconds"] = self.args.timeout
        return cfg

    def start_operator(self, fakes: FakesInThread, namespace: str, tag: str) -> OperatorProcess:
        env = {"PYTHONPATH": str(self.args.operator_source)} if self.args.operator_source else {}
        operator = OperatorProcess(
            config=self.config(fakes),
            kubeconfig=self.cp.operator_kubeconfig,
            workdir=self.workdir / f"operator-{tag}",
            namespaces=[namespace],
            extra_env=env,
        )
        started = time.monotonic()
        operator.start(timeout=120)
        self.start_to_healthy = time.monotonic() - started
        return operator

    def stop_operator(self, operator: OperatorProcess) -> tuple[int | None, float]:
        started = time.monotonic()
        code = operator.stop(timeout=90)
        seconds = time.monotonic() - started
        if code not in (0, None):
            self.notes.append(
                f"the operator ({operator.workdir.name}) exited with {code} after {seconds:.0f} s"
            )
            print(operator.log()[-3000:], file=sys.stderr)
        return code, seconds

    def synced_count(self, namespace: str) -> tuple[int, collections.Counter[str]]:
        reasons: collections.Counter[str] = collections.Counter()
        synced = 0
        for plural in ("druidroles", "druidusers"):
            for item in self.api.list_items(f"/apis/{GROUP_VERSION}/namespaces/{namespace}/{plural}"):
                seen = reduce(0.0, "LISTED", item)
                reasons[seen.reason or "no status"] += 1
                synced += seen.synced
        return synced, reasons

    # -- 1. the raw-API floor --------------------------------------------------------------------

    def floor(self, when: str) -> None:
        """One run of the floor (``when``: before the operator, or after it stopped). The faster
        run is the floor: noise on the shared machine only ever adds time."""
        log(
            f"[floor] {self.roles} roles + {self.users} users, serialised, on a fresh fake Coordinator ({when})"
        )
        if not self.floors:
            self.api.create_many([("/api/v1/namespaces", {"metadata": {"name": FLOOR_NS}})], 1)
            docs = (
                (collection(FLOOR_NS, d), d)
                for d in (
                    *(role_doc(FLOOR_NS, j) for j in range(self.roles)),
                    *(user_doc(FLOOR_NS, i, [role_of(i, self.roles)], "floor") for i in range(self.users)),
                )
            )
            self.api.create_many(docs, self.args.create_concurrency)
        with FakesInThread(
            admin_password=ADMIN_PW, pivot_token=TOKEN, credential_iterations=ITERATIONS
        ) as fresh:
            busy, before = machine_busy(), processes()
            seconds, writes, patches = asyncio.run(self._floor(fresh.coordinator.url))
            busy, after = machine_busy() - busy, processes()
            state = fresh.call(
                lambda: (
                    sum(1 for u in range(self.users) if fresh.coordinator.credentials.get(user_name(u))),
                    sum(1 for u in range(self.users) if fresh.coordinator.users.get(user_name(u))),
                )
            )
        self.floors.append(seconds)
        self.floors_busy.append(busy)
        self.floors_cpu.append(by_process(cpu_by_name(before, after, self.process_names())))
        self.floor_seconds = min(self.floors)
        self.details.append(
            f"- floor ({when}): {writes} Coordinator writes ({self.roles} x 2 + {self.users} x 4) and "
            f"{patches} status patches in {seconds:.1f} s ({(writes + patches) / seconds:.0f} requests/s); "
            f"the fresh fake then held {state[0]} users with credentials and {state[1]} with a role\n"
        )
        log(f"  floor: {seconds:.1f} s")

    def floor_again(self) -> None:
        """The floor's second run, once the operator has stopped; the rows that compare with the
        floor are brought up to date. If it fails, the first run stays the baseline."""
        try:
            self.floor("after the operator's convergence, the operator stopped")
        except Exception as error:  # what was measured is kept
            self.notes.append(f"the floor's second run failed ({error!r}); the first run is the baseline")
            return
        for row, value in self.floor_rows:
            row.baseline = self.floor_label()
            row.ratio = ratio(value, self.floor_seconds)
        if self.busy_row is not None:
            self.busy_row.baseline = self.floor_busy_label()
        if self.cpu_row is not None:
            self.cpu_row.baseline = self.floor_cpu_label()
        log(f"  floor: the faster of {', '.join(secs(f) for f in self.floors)}")

    def floor_label(self) -> str:
        if not self.floor_seconds:
            return ""
        runs = " and ".join(secs(f) for f in self.floors)
        return (
            f"{secs(self.floor_seconds)} (raw-API floor, the faster of {runs})"
            if len(self.floors) > 1
            else f"{secs(self.floor_seconds)} (raw-API floor)"
        )

    def process_names(self) -> dict[int, str]:
        """The processes named by role in the CPU figures (the others go by command name)."""
        names = {os.getpid(): "benchmark process (fake Coordinator, watches; the floor's client)"}
        if self.operator is not None and self.operator._process is not None:
            names[self.operator._process.pid] = "operator"
        return names

    def floor_cpu_label(self) -> str:
        runs = self.floors_cpu
        if len(runs) < 2:
            return f"{runs[0]} (floor)" if runs else ""
        return "; ".join(f"{text} (floor run {i})" for i, text in enumerate(runs, 1))

    def floor_busy_label(self) -> str:
        """The machine's busy share during each run of the floor."""
        shares = [busy_share(b, f) for b, f in zip(self.floors_busy, self.floors, strict=True)]
        return " and ".join(shares) + (" (floor runs)" if len(shares) > 1 else " (floor)") if shares else ""

    async def _floor(self, url: str) -> tuple[float, int, int]:
        writes = patches = 0
        limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
        async with (
            httpx.AsyncClient(base_url=url, auth=("admin", ADMIN_PW), timeout=60, limits=limits) as druid,
            httpx.AsyncClient(
                base_url=self.cp.url,
                verify=self.api.context,
                headers=self.api.headers,
                timeout=60,
                limits=limits,
            ) as kube,
        ):

            async def write(path: str, body: Any = None) -> None:
                nonlocal writes
                response = await (druid.post(path, json=body) if body is not None else druid.post(path))
                if response.status_code != 200:
                    raise RuntimeError(
                        f"floor: POST {path}: HTTP {response.status_code} {response.text[:200]}"
                    )
                writes += 1

            async def status(plural: str, name: str) -> None:
                nonlocal patches
                now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
                body = {
                    "status": {
                        "observedGeneration": 1,
                        "remoteName": name,
                        "lastSyncTime": now,
                        "conditions": [
                            {
                                "type": "Ready",
                                "status": "True",
                                "reason": "Synced",
                                "message": "in sync",
                                "lastTransitionTime": now,
                            }
                        ],
                    }
                }
                response = await kube.patch(
                    f"/apis/{GROUP_VERSION}/namespaces/{FLOOR_NS}/{plural}/{name}/status",
                    content=json.dumps(body),
                    headers={"Content-Type": "application/merge-patch+json"},
                )
                response.raise_for_status()
                patches += 1

            started = time.monotonic()
            for j in range(self.roles):
                role = quote(role_name(j), safe="")
                await write(f"{AUTHZ}/roles/{role}")
                await write(f"{AUTHZ}/roles/{role}/permissions", [permission(j)])
                await status("druidroles", role_name(j))
            for i in range(self.users):
                user = quote(user_name(i), safe="")
                await write(f"{AUTHN}/users/{user}")
                await write(f"{AUTHN}/users/{user}/credentials", {"password": password(i)})
                await write(f"{AUTHZ}/users/{user}")
                await write(f"{AUTHZ}/users/{user}/roles/{quote(role_of(i, self.roles), safe='')}")
                await status("druidusers", user_name(i))
            return time.monotonic() - started, writes, patches

    # -- idle operator ----------------------------------------------------------------------------

    def idle(self) -> tuple[dict[str, int], float]:
        """RSS idle, and CPU seconds per resync period while idle (10 s sample, scaled)."""
        assert self.operator is not None
        pid = operator_pid(self.operator)
        time.sleep(5)
        cpu0, t0 = process_cpu(pid), time.monotonic()
        time.sleep(10)
        cpu_rate = (process_cpu(pid) - cpu0) / (time.monotonic() - t0)
        return memory_kib(pid), cpu_rate * self.resync

    # -- 1./2. convergence and its Kubernetes writes -------------------------------------------------

    def converge(self, idle_requests: int) -> None:
        n, m = self.users, self.roles
        keep_from = self.deletion_count()
        log(f"[convergence] creating {n} password Secrets (untimed)")
        self.api.create_many(
            (
                (f"/api/v1/namespaces/{NS}/secrets", secret(secret_name(i), {"password": password(i)}, NS))
                for i in range(n)
            ),
            self.args.create_concurrency,
        )
        time.sleep(2)
        clear(self.fakes)
        base = f"/apis/{GROUP_VERSION}/namespaces/{NS}"
        with watching(self.cp, self.api, [f"{base}/druidroles", f"{base}/druidusers"]) as watches:
            metrics_before = self.api.metrics()
            assert self.operator is not None
            pid = operator_pid(self.operator)
            cpu_before = process_cpu(pid)
            busy_before, processes_before = machine_busy(), processes()
            log(f"[convergence] creating {m} DruidRoles + {n} DruidUsers through the API")
            docs = [
                (collection(NS, d), d)
                for d in (
                    *(role_doc(NS, j) for j in range(m)),
                    *(
                        user_doc(NS, i, [role_of(i, m)], "delete" if i < keep_from else "keep")
                        for i in range(n)
                    ),
                )
            ]
            _, started = self.api.create_many_timed(docs, self.args.create_concurrency)
            created = time.time() - started
            log(f"  created in {created:.1f} s; waiting until all are Synced")
            synced_at: dict[str, float] = {}
            reasons_seen: collections.Counter[str] = collections.Counter()
            expected = n + m

            def poll() -> bool:
                for w in watches:
                    for seen in w.poll():
                        if seen.reason is not None:
                            reasons_seen[seen.reason] += 1
                        if seen.synced:
                            synced_at.setdefault(seen.name, seen.at)
                return len(synced_at) >= expected

            bound = self.args.converge_timeout or 120 + 0.4 * expected
            done = wait_until(poll, bound)
            all_synced_at = max(synced_at.values()) if done else time.time()
            busy, processes_after = machine_busy() - busy_before, processes()
            busy_seconds = time.time() - started  # the interval busy covers (a poll after the last)
            time.sleep(3)  # Events and last patches that follow the final status
            poll()
            metrics_after = self.api.metrics()
            cpu_after = process_cpu(pid)
            restarts = sum(w.restarts for w in watches)
        seconds = all_synced_at - started
        self.converge_seconds = seconds if done else None
        log_records = records(self.fakes)
        mine = [r for r in log_records if r.timestamp >= started]
        first = min((r.timestamp for r in mine), default=math.nan) - started
        first_write = min((r.timestamp for r in mine if not is_read(r)), default=math.nan) - started
        reads = sum(1 for r in mine if is_read(r))
        writes = len(mine) - reads
        floor_label = self.floor_label()
        times = sorted(t - started for t in synced_at.values())
        if self.selected("convergence"):
            measured = (
                f"**{seconds:.1f} s**" if done else f"**not reached: {len(synced_at)}/{expected} Synced**"
            )
            to_synced = Row(
                "1 convergence",
                f"{n:,} users + {m:,} roles created at once: time to all Synced",
                measured,
                floor_label,
                ratio(seconds if done else None, self.floor_seconds),
                "<= 1.3x the floor",
            )
            after_create = Row(
                "1 convergence",
                "the same, counted from the end of the create (the API create itself took "
                f"{created:.1f} s, {self.args.create_concurrency} requests at a time)",
                f"{seconds - created:.1f} s" if done else "n/a",
                floor_label,
                ratio(seconds - created if done else None, self.floor_seconds),
            )
            self.busy_row = Row(
                "1 convergence",
                "machine CPU busy (all processes) while converging",
                busy_share(busy, busy_seconds),
                self.floor_busy_label(),
            )
            self.cpu_row = Row(
                "1 convergence",
                "CPU by process while converging (the API create: the benchmark's exited children)",
                by_process(cpu_by_name(processes_before, processes_after, self.process_names())),
                self.floor_cpu_label(),
            )
            # Their baselines are brought up to date once the floor has run again (``floor_again``).
            self.floor_rows = [
                (to_synced, seconds if done else None),
                (after_create, seconds - created if done else None),
            ]
            self.add(
                to_synced,
                Row(
                    "1 convergence",
                    "objects Synced after p50 / p90 (from the start of the create)",
                    f"{pct(times, 0.5):.1f} / {pct(times, 0.9):.1f} s",
                ),
                after_create,
                Row(
                    "1 convergence",
                    "first request to reach the Coordinator / first write (from the start of the create)",
                    f"{secs(first)} / {secs(first_write)}",
                ),
                Row(
                    "1 convergence",
                    "Coordinator requests while converging: writes / reads",
                    f"{writes:,} / {reads:,}",
                    f"{2 * m + 4 * n:,} / 0 (floor)",
                    ratio(writes, 2 * m + 4 * n),
                ),
                Row(
                    "1 convergence",
                    "operator CPU while converging",
                    f"{cpu_after - cpu_before:.1f} s",
                ),
                self.busy_row,
                self.cpu_row,
            )
            for store, prefix in (("authenticator", AUTHN), ("authorizer", AUTHZ)):
                during = store_use(mine, prefix, started, started + created)
                after = store_use(mine, prefix, started + created, started + seconds)
                self.add(
                    Row(
                        "1 convergence",
                        f"the {store} store (written one request at a time): writes / the Coordinator "
                        "busy answering them / waiting between an answer and the next write, during the "
                        "API create; after it",
                        f"{during.writes:,} / {during.busy:.1f} s / {during.waiting:.1f} s; "
                        f"{after.writes:,} / {after.busy:.1f} s / {after.waiting:.1f} s",
                    )
                )
            self.details.append(
                f"- convergence: the API create of {expected:,} objects ({self.args.create_concurrency} at a "
                f"time) took {created:.1f} s; the operator's first Coordinator request came {secs(first)} "
                f"after its start ({idle_requests} requests reached the Coordinator while the operator was "
                f"idle before); Ready reasons in every status write the watch saw: "
                + ", ".join(f"{k} {v:,}" for k, v in sorted(reasons_seen.items()))
                + (f"; the watches were reopened {restarts} time(s)" if restarts else "")
                + "\n"
            )
            self.details.append(timeline(started, mine, times))
        if self.selected("writes"):
            d = delta(metrics_after, metrics_before)
            w = kube_writes(d, ("druidusers", "druidroles"))
            total = (
                w["events"]
                + w["status patches"]
                + w["metadata patches"]
                + w["event patches"]
                + w["claims writes"]
            )
            per = total / expected
            self.add(
                Row(
                    "2 writes",
                    "Kubernetes writes while converging: Events created / status patches / metadata patches "
                    "/ claims ConfigMap writes",
                    f"{w['events']:,} / {w['status patches']:,} / {w['metadata patches']:,} / {w['claims writes']:,}"
                    + (f" (+{w['event patches']:,} Event patches)" if w["event patches"] else ""),
                    f"0 / {expected:,} / 0 (floor)",
                ),
                Row(
                    "2 writes",
                    "writes per object until Ready (create + the above)",
                    f"**{1 + per:.2f}**",
                    "2 (floor: create + 1 status patch)",
                    ratio(1 + per, 2),
                    "<= 3 + at most 1 Event per pass that changed something",
                ),
                Row(
                    "2 writes",
                    "Events / status patches / metadata patches / claims ConfigMap writes, per object",
                    f"{w['events'] / expected:.2f} / {w['status patches'] / expected:.2f} / "
                    f"{w['metadata patches'] / expected:.2f} / {w['claims writes'] / expected:.2f}",
                ),
                Row(
                    "2 writes",
                    "Secret GETs / LISTs while converging (all clients; the benchmark makes none)",
                    f"{d.get(('secrets', '', 'GET'), 0):,} / {d.get(('secrets', '', 'LIST'), 0):,}",
                ),
            )
            self.details.append(
                "- API requests while converging (apiserver_request_total delta, resource/subresource verb: "
                "count; the POSTs of druidusers/druidroles are the benchmark's creates): "
                + ", ".join(
                    f"{r}{'/' + s if s else ''} {verb}: {v:,}"
                    for (r, s, verb), v in sorted(d.items())
                    if r in ("druidusers", "druidroles", "events", "secrets")
                )
                + "\n"
            )

    def deletion_count(self) -> int:
        return (3 * self.users) // 4  # >= 750 when N >= 1000

    # -- 3. steady state ----------------------------------------------------------------------------

    def steady(self, idle_mem: dict[str, int], idle_cpu: float) -> None:
        assert self.operator is not None
        pid = operator_pid(self.operator)
        periods = self.args.periods
        objects = self.users + self.roles
        log(f"[steady] letting it settle ({self.args.settle:g} s), then {periods} resync periods in sync")
        time.sleep(self.args.settle)
        clear(self.fakes)
        metrics_before = self.api.metrics()
        cpu0 = process_cpu(pid)
        started = time.monotonic()
        time.sleep(periods * self.resync)
        elapsed = time.monotonic() - started
        cpu = process_cpu(pid) - cpu0
        metrics_after = self.api.metrics()
        log_records = records(self.fakes)
        clear(self.fakes)
        mem = memory_kib(pid)
        scale = self.resync / elapsed  # per resync period
        d = delta(metrics_after, metrics_before)
        reads = sum(1 for r in log_records if is_read(r)) * scale
        writes = sum(1 for r in log_records if not is_read(r)) * scale
        secret_gets = d.get(("secrets", "", "GET"), 0) * scale
        secret_lists = d.get(("secrets", "", "LIST"), 0) * scale
        w = kube_writes(d, ("druidusers", "druidroles"))
        kwrites = (w["events"] + w["status patches"] + w["metadata patches"] + w["claims writes"]) * scale
        self.steady_reads_per_period = reads
        self.steady_secret_gets_per_period = secret_gets
        if self.selected("steady"):
            self.add(
                Row(
                    "3 steady",
                    f"Coordinator reads per resync period, in sync ({objects:,} objects)",
                    f"**{reads:,.0f}** ({reads / objects:.2f} per object)",
                    "1 target",
                    "",
                    "<= 5 per target, independent of N",
                ),
                Row("3 steady", "Coordinator writes per resync period, in sync", f"{writes:,.0f}"),
                Row(
                    "3 steady",
                    "API server response bytes per resync period: Secrets / the operator's kinds",
                    f"{size(response_bytes(d, ['secrets']) * scale)} / "
                    f"{size(response_bytes(d, ['druidusers', 'druidroles']) * scale)}",
                ),
                Row(
                    "3 steady",
                    "Secret GETs / LISTs per resync period (apiserver metrics)",
                    f"**{secret_gets:,.0f}** / {secret_lists:,.0f}",
                    "",
                    "",
                    "0 (watched/cached)",
                ),
                Row(
                    "3 steady",
                    "Kubernetes writes per resync period, in sync (Events + status + metadata patches)",
                    f"{kwrites:,.0f}",
                ),
                Row(
                    "3 steady",
                    "operator CPU per resync period, in sync",
                    f"**{cpu * scale:.2f} s** ({100 * cpu / elapsed:.0f} % of a core)",
                    f"{idle_cpu:.3f} s (idle, no objects)",
                    ratio(cpu * scale, idle_cpu, 0),
                    "<= 1 s at 10,000 users",
                ),
            )
            families: collections.Counter[tuple[str, str]] = collections.Counter(
                (r.method, family(r)) for r in log_records
            )
            lines = [
                f"Coordinator requests per resync period in sync, by method and path family ({periods} "
                f"periods of {self.resync:g} s measured, {elapsed:.0f} s, divided by {elapsed / self.resync:.2f}):\n",
                "| method | path family | per resync period | per object |",
                "|---|---|---:|---:|",
                *(
                    f"| {method} | `{fam}` | {count * scale:,.1f} | {count * scale / objects:.3f} |"
                    for (method, fam), count in families.most_common()
                ),
                "",
            ]
            self.details.append("\n".join(lines) + "\n")
        if self.selected("memory"):
            self.add(
                Row(
                    "3 memory",
                    f"operator RSS at {objects:,} objects in sync (VmRSS)",
                    f"**{mib(mem['VmRSS'])}** (peak VmHWM {mib(mem['VmHWM'])})",
                    f"{mib(idle_mem['VmRSS'])} (idle, no objects)",
                    ratio(mem["VmRSS"], idle_mem["VmRSS"]),
                    "<= 250 MiB at 10,000 objects",
                ),
                Row(
                    "3 memory",
                    "operator RSS per object above idle",
                    f"{(mem['VmRSS'] - idle_mem['VmRSS']) / objects:.1f} KiB",
                ),
            )

    # -- 4. reaction ------------------------------------------------------------------------------

    def reaction(self) -> None:
        k = min(self.args.reaction_count, self.users)
        n, m = self.users, self.roles
        step = max(1, n // k)
        picks = [(i * step) % n for i in range(k)]
        log(f"[reaction] patching {k} users one at a time, {self.args.reaction_spacing:g} s apart")
        base = f"/apis/{GROUP_VERSION}/namespaces/{NS}/druidusers"
        sent: dict[str, tuple[float, int]] = {}  # name -> (patch sent at, new generation)
        expected: dict[tuple[str, str], str] = {}  # (method, remote path) -> name
        seen_at: dict[str, float] = {}
        matched: dict[str, float] = {}

        def note(seen: Seen) -> None:
            if seen.name in sent and seen.generation == sent[seen.name][1]:
                seen_at.setdefault(seen.name, seen.at)

        clear(self.fakes)
        with watching(self.cp, self.api, [base]) as (watch,):
            for index, i in enumerate(picks):
                name = user_name(i)
                current = self.api.get(f"{base}/{name}")
                roles = list(current["spec"].get("roles") or [])
                generation = int(current["metadata"]["generation"]) + 1
                if index % 2 == 0 or not roles:
                    extra = next(
                        r for r in (role_name((i + d) % m) for d in range(1, m + 1)) if r not in roles
                    )
                    new, method, role = [*roles, extra], "POST", extra
                else:
                    new, method, role = roles[1:], "DELETE", roles[0]
                expected[(method, f"{AUTHZ}/users/{name}/roles/{role}")] = name
                at = time.time()
                self.api.patch(f"{base}/{name}", {"spec": {"roles": new}})
                sent[name] = (at, generation)
                for seen in watch.poll():
                    note(seen)
                time.sleep(self.args.reaction_spacing)

            def done() -> bool:
                for seen in watch.poll():
                    note(seen)
                for record in records(self.fakes):
                    name = expected.get((record.method, record.path), "")
                    if name and name not in matched and record.status == 200:
                        matched[name] = record.timestamp - sent[name][0]
                return len(matched) >= len(sent)

            wait_until(done, 60, interval=0.5)
        latencies = list(matched.values())
        watch_latencies = [at - sent[name][0] for name, at in seen_at.items()]
        missing = len(sent) - len(matched)
        self.add(
            Row(
                "4 reaction",
                f"spec patch -> matching remote write, {k} users ({n + m:,} objects in sync): p50 / p99 / max",
                f"{secs(pct(latencies, 0.5))} / **{secs(pct(latencies, 0.99))}** / {secs(max(latencies, default=math.nan))}"
                + (f"; {missing} never seen within 60 s" if missing else ""),
                f"{secs(pct(watch_latencies, 0.5))} / {secs(pct(watch_latencies, 0.99))} (patch -> the "
                "benchmark's own watch event, via kubectl)",
                ratio(pct(latencies, 0.99), pct(watch_latencies, 0.99), 1) + " (p99)",
                "p99 <= 200 ms at 10,000",
            )
        )
        # The patched users settle before the restart phase measures "in sync".
        wait_until(lambda: self.synced_count(NS)[0] >= n + m, 60, interval=2.0)

    # -- 5. restart ---------------------------------------------------------------------------------

    def restart(self) -> None:
        assert self.operator is not None
        window = self.args.restart_window
        objects = self.users + self.roles
        log(f"[restart] stopping the operator with {objects:,} objects in sync, starting it again")
        _, stop_seconds = self.stop_operator(self.operator)
        self.operator = None
        time.sleep(2)
        clear(self.fakes)
        metrics_before = self.api.metrics()
        started = time.time()
        self.operator = self.start_operator(self.fakes, NS, "restarted")
        healthy = time.time() - started
        pid = operator_pid(self.operator)
        cpu0 = process_cpu(pid)
        time.sleep(max(0.0, started + window - time.time()))
        metrics_after = self.api.metrics()
        cpu = process_cpu(pid) - cpu0
        window_records = [r for r in records(self.fakes) if r.timestamp < started + window]
        first = min((r.timestamp for r in window_records), default=math.nan) - started
        reads = sum(1 for r in window_records if is_read(r))
        writes = len(window_records) - reads
        d = delta(metrics_after, metrics_before)
        w = kube_writes(d, ("druidusers", "druidroles"))
        self.add(
            Row(
                "5 restart",
                "process start -> first Coordinator request",
                f"**{secs(first)}**",
                f"{secs(healthy)} (process start -> health endpoint up)",
                ratio(first, healthy),
                "<= 2 s",
            ),
            Row(
                "5 restart",
                f"Coordinator reads / writes in the first {window:g} s",
                f"**{reads:,}** / {writes:,}",
                f"{self.steady_reads_per_period or math.nan:,.0f} (reads per resync period in sync)",
                ratio(reads, self.steady_reads_per_period),
                "O(1) per target",
            ),
            Row(
                "5 restart",
                f"Secret GETs / LISTs in the first {window:g} s",
                f"**{d.get(('secrets', '', 'GET'), 0):,}** / {d.get(('secrets', '', 'LIST'), 0):,}",
                f"{self.steady_secret_gets_per_period or 0:,.0f} (GETs per resync period in sync)",
                ratio(d.get(("secrets", "", "GET"), 0), self.steady_secret_gets_per_period),
            ),
            Row(
                "5 restart",
                f"Kubernetes writes in the first {window:g} s: Events / status patches / metadata patches",
                f"{w['events']:,} / {w['status patches']:,} / {w['metadata patches']:,}",
            ),
            Row(
                "5 restart",
                f"operator CPU in the first {window:g} s (after health up) / the stop before it took",
                f"{cpu:.1f} s / {stop_seconds:.1f} s",
            ),
        )

    # -- 6. deletion ----------------------------------------------------------------------------------

    def deletion(self) -> None:
        count = self.deletion_count()
        if count == 0:
            return
        base = f"/apis/{GROUP_VERSION}/namespaces/{NS}/druidusers"
        log(f"[deletion] deleting {count:,} users at once (one deletecollection)")
        clear(self.fakes)
        names = {user_name(i) for i in range(count)}
        gone: dict[str, float] = {}
        assert self.operator is not None
        pid = operator_pid(self.operator)
        rss_before = memory_kib(pid)["VmRSS"]
        rss_peak = rss_before
        with watching(self.cp, self.api, [base]) as (watch,):
            metrics_before = self.api.metrics()
            started = time.time()
            self.api.delete_collection(base, f"{GROUP_LABEL}=delete")
            requested = time.time() - started

            def done() -> bool:
                nonlocal rss_peak
                rss_peak = max(rss_peak, memory_kib(pid)["VmRSS"])
                for seen in watch.poll():
                    if seen.type == "DELETED" and seen.name in names:
                        gone.setdefault(seen.name, seen.at)
                return len(gone) >= count

            finished = wait_until(done, self.args.delete_timeout or 120 + 0.5 * count)
            seconds = (max(gone.values()) if finished else time.time()) - started
            time.sleep(2)
            metrics_after = self.api.metrics()
        log_records = records(self.fakes)
        clear(self.fakes)
        deletes = sum(1 for r in log_records if r.method == "DELETE")
        reads = sum(1 for r in log_records if is_read(r))
        d = delta(metrics_after, metrics_before)
        w = kube_writes(d, ("druidusers", "druidroles"))
        rate = len(gone) / seconds if seconds > 0 else math.nan
        creation = (self.users + self.roles) / self.converge_seconds if self.converge_seconds else None
        self.add(
            Row(
                "6 deletion",
                f"{count:,} users deleted at once: time until all gone",
                f"**{seconds:.1f} s**" if finished else f"**not reached: {len(gone)}/{count} gone**",
                "",
                "",
            ),
            Row(
                "6 deletion",
                "deletion throughput (users gone / s)",
                f"**{rate:.1f}/s**",
                f"{creation:.1f}/s (objects Synced / s in phase 1)" if creation else "n/a",
                ratio(rate, creation),
                "deletion >= creation throughput",
            ),
            Row(
                "6 deletion",
                "Coordinator DELETEs / reads; Kubernetes Events / status / metadata patches while deleting",
                f"{deletes:,} / {reads:,}; {w['events']:,} / {w['status patches']:,} / {w['metadata patches']:,}",
                f"{2 * count:,} DELETEs (2 per user)",
            ),
            Row(
                "6 deletion",
                "operator RSS while deleting: peak (VmRSS sampled every 0.2 s) / before",
                f"**{mib(rss_peak)}** (+{(rss_peak - rss_before) / count:.1f} KiB per deleted user)",
                mib(rss_before),
                ratio(rss_peak, rss_before),
                "<= 250 MiB at 10,000 objects",
            ),
        )
        self.details.append(f"- deletion: the deletecollection call itself took {secs(requested)}\n")

    # -- 7. outage -----------------------------------------------------------------------------------

    def outage(self) -> None:
        total = self.args.outage_objects
        roles = max(1, total // 10)
        users = total - roles
        prefix = "o-"
        base = f"/apis/{GROUP_VERSION}/namespaces/{OUTAGE_NS}"
        log(f"[outage] a separate operator and fresh fake Coordinator, {users} users + {roles} roles")
        with FakesInThread(
            admin_password=ADMIN_PW, pivot_token=TOKEN, credential_iterations=ITERATIONS
        ) as fakes:
            self.api.create_many([("/api/v1/namespaces", {"metadata": {"name": OUTAGE_NS}})], 1)
            operator = self.start_operator(fakes, OUTAGE_NS, "outage")
            try:
                self._outage(fakes, operator, base, prefix, users, roles)
            finally:
                self.stop_operator(operator)

    def _outage(
        self, fakes: FakesInThread, operator: OperatorProcess, base: str, prefix: str, users: int, roles: int
    ) -> None:
        total = users + roles
        new = NEW_DURING_OUTAGE
        seconds = self.args.outage_seconds
        self.api.create_many(
            (
                (
                    f"/api/v1/namespaces/{OUTAGE_NS}/secrets",
                    secret(prefix + secret_name(i), {"password": password(i)}, OUTAGE_NS),
                )
                for i in range(users + new)
            ),
            self.args.create_concurrency,
        )
        first_reason: dict[str, float] = {}
        left_synced: dict[str, float] = {}
        synced: set[str] = set()
        reasons_end: dict[str, str | None] = {}
        with watching(self.cp, self.api, [f"{base}/druidroles", f"{base}/druidusers"]) as watches:
            created_at = time.time()
            self.api.create_many(
                (
                    (collection(OUTAGE_NS, d), d)
                    for d in (
                        *(role_doc(OUTAGE_NS, j, prefix) for j in range(roles)),
                        *(
                            user_doc(OUTAGE_NS, i, [prefix + role_of(i, roles)], "o", prefix)
                            for i in range(users)
                        ),
                    )
                ),
                self.args.create_concurrency,
            )
            outage_start: list[float] = []

            def poll(until: int = 0) -> bool:
                """Take in the watches' events; True when ``until`` objects are Synced."""
                for w in watches:
                    for seen in w.poll():
                        if seen.reason is not None:
                            first_reason.setdefault(seen.name, seen.at)
                            reasons_end[seen.name] = seen.reason
                        if seen.synced:
                            synced.add(seen.name)
                        elif seen.reason is not None:
                            synced.discard(seen.name)
                            if outage_start and seen.at >= outage_start[0]:
                                left_synced.setdefault(seen.name, seen.at)
                return len(synced) >= until

            if not wait_until(lambda: poll(total), 120 + total):
                self.notes.append(f"outage: only {len(synced)}/{total} Synced before the outage")
            healthy_first_reason = [first_reason[n] - created_at for n in first_reason]
            initial = set(synced)
            log(f"  {len(initial)} objects Synced; one resync period of normal traffic")
            time.sleep(3)
            fakes.call(fakes.coordinator.requests.clear)
            normal_started = time.time()
            time.sleep(self.resync)
            poll()
            normal = fakes.call(lambda: fakes.coordinator.requests.records)
            normal_rate = len(normal) / (time.time() - normal_started)
            metrics_before = self.api.metrics()
            fault = Fault(path="", reset=True)
            log(f"  the Coordinator answers every request with a connection reset for {seconds:g} s")
            fakes.call(fakes.coordinator.requests.clear)
            fakes.call(lambda: fakes.coordinator.faults.add(fault))
            t0 = time.time()
            outage_start.append(t0)
            new_created: float | None = None
            still_synced_at_period: int | None = None
            new_names = {prefix + user_name(users + i) for i in range(new)}
            try:
                while time.time() < t0 + seconds:
                    poll()
                    if new_created is None and time.time() >= t0 + self.args.outage_new_after:
                        _, new_created = self.api.create_many_timed(
                            (
                                (collection(OUTAGE_NS, d), d)
                                for d in (
                                    user_doc(OUTAGE_NS, users + i, [prefix + role_of(i, roles)], "o", prefix)
                                    for i in range(new)
                                )
                            ),
                            self.args.create_concurrency,
                        )
                    if still_synced_at_period is None and time.time() >= t0 + self.resync:
                        still_synced_at_period = len(initial - set(left_synced))
                    time.sleep(0.2)
                poll()
                during = fakes.call(lambda: fakes.coordinator.requests.records)
                metrics_after = self.api.metrics()
                end_reasons = collections.Counter(
                    reasons_end.get(n) or "no status" for n in initial | new_names
                )
            finally:
                fakes.call(lambda: fakes.coordinator.faults.remove(fault))
            t1 = time.time()
            log("  the Coordinator is back; waiting for recovery")
            recovered = wait_until(lambda: poll(total + new), 180)
            recovery = time.time() - t1
        in_window = [r for r in during if t0 <= r.timestamp < t0 + seconds]
        buckets = collections.Counter(int(r.timestamp - t0) for r in in_window)
        per_second = [buckets.get(s, 0) for s in range(int(seconds))]
        peak = max(per_second, default=0)
        mean = len(in_window) / seconds
        left = [left_synced[n] - t0 for n in initial if n in left_synced]
        never = len(initial) - len(left)
        assert new_created is not None
        new_first = [
            first_reason[n] - new_created
            for n in new_names
            if n in first_reason and first_reason[n] >= new_created
        ]
        new_without = new - len(new_first)
        d = delta(metrics_after, metrics_before)
        w = kube_writes(d, ("druidusers", "druidroles"))
        families = collections.Counter((r.method, family(r)) for r in in_window)
        self.add(
            Row(
                "7 outage",
                f"requests/s arriving at the Coordinator during a {seconds:g} s outage ({total} objects, 1 "
                "target): mean / peak",
                f"**{mean:.1f} / {peak}**",
                f"{normal_rate:.1f} (mean in sync, the resync period before)",
                ratio(mean, normal_rate, 1) + " (mean)",
                "<= 1 request/s per target",
            ),
            Row(
                "7 outage",
                "time until every object's Ready reason left Synced (p50 / max)",
                (
                    f"{secs(pct(left, 0.5))} / **{secs(max(left))}**"
                    if not never
                    else f"{secs(pct(left, 0.5))} / **{never} of {len(initial)} still Synced at the end**"
                ),
                f"{self.resync:g} s (resync period)",
                ratio(max(left) if left and not never else None, self.resync),
                "Unreachable within one probe interval",
            ),
            Row(
                "7 outage",
                f"objects still saying Synced {self.resync:g} s into the outage",
                f"{still_synced_at_period if still_synced_at_period is not None else 'n/a'} of {len(initial)}",
            ),
            Row(
                "7 outage",
                f"{new} users created {self.args.outage_new_after:g} s into the outage: first status reason "
                "p50 / max",
                f"{secs(pct(new_first, 0.5))} / **{secs(max(new_first, default=math.nan))}**"
                + (f"; **{new_without} had none** by the end" if new_without else ""),
                f"{secs(pct(healthy_first_reason, 0.5))} / {secs(max(healthy_first_reason, default=math.nan))} "
                f"(the {total} objects created while healthy)",
                ratio(max(new_first, default=math.nan), max(healthy_first_reason, default=math.nan), 1)
                + " (max)",
                "every new object: a reason within 10 s",
            ),
            Row(
                "7 outage",
                "Kubernetes writes during the outage: Events / status patches / metadata patches",
                f"{w['events']:,} / {w['status patches']:,} / {w['metadata patches']:,}",
            ),
            Row(
                "7 outage",
                "recovery after the outage: time until all are Synced again",
                secs(recovery) if recovered else f"not within 180 s ({len(synced)}/{total + new} Synced)",
            ),
        )
        seconds_shown = " ".join(str(c) for c in per_second)
        self.details.append(
            "- outage: Ready reasons at the end of the outage: "
            + ", ".join(f"{k} {v}" for k, v in end_reasons.most_common())
            + f"; requests arriving in each second of the outage: {seconds_shown} (objects created together "
            "resync together, within the ±10 % jitter, so requests come in waves); by method and path "
            "family: " + ", ".join(f"{m} `{f}` {c}" for (m, f), c in families.most_common(8)) + "\n"
        )

    # -- the run -------------------------------------------------------------------------------------

    def run(self) -> None:
        populate = bool(NEEDS_POPULATION & set(self.args.phases))
        if populate and self.selected("convergence"):
            self.floor("before the operator")
        self.api.create_many([("/api/v1/namespaces", {"metadata": {"name": NS}})], 1)
        if populate:
            log("[operator] starting (--namespace scale)")
            self.operator = self.start_operator(self.fakes, NS, "main")
            idle_mem, idle_cpu = self.idle()
            idle_requests = len(records(self.fakes))
            log(f"  healthy after {self.start_to_healthy:.1f} s; idle RSS {mib(idle_mem['VmRSS'])}")
            try:
                self.converge(idle_requests)
                if {"steady", "memory"} & set(self.args.phases) or self.selected("restart"):
                    self.steady(idle_mem, idle_cpu)
                if self.selected("reaction"):
                    self.reaction()
                if self.selected("restart"):
                    self.restart()
                if self.selected("deletion"):
                    self.deletion()
            finally:
                if self.operator is not None:
                    log("[operator] stopping")
                    self.stop_operator(self.operator)
                    self.operator = None
        if self.floors and self.converge_seconds is not None:
            self.floor_again()
        if self.selected("outage"):
            self.outage()


# -------------------------------------------------------------------------------------------- report


def git(*args: str) -> str:
    try:
        return subprocess.run(
            ["git", "--no-optional-locks", "-C", str(ROOT), *args],
            capture_output=True,
            text=True,
            check=True,
            timeout=30,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def machine(cp: ControlPlane) -> str:
    try:
        server = json.loads(cp.kubectl("version", "-o", "json").stdout)["serverVersion"]["gitVersion"]
    except Exception:  # a note, not a measurement
        server = "unknown"
    mem = "unknown"
    with contextlib.suppress(OSError, ValueError, IndexError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem = f"{int(line.split()[1]) // 1024 // 1024} GiB RAM"
    return (
        f"{platform.platform()}, {os.cpu_count()} CPU(s), {mem}, Python {platform.python_version()}, "
        f"kube-apiserver {server} (local, etcd on 127.0.0.1), fake Coordinator in the benchmark's process"
    )


def operator_source(args: argparse.Namespace) -> str:
    commit = git("rev-parse", "--short", "HEAD")
    changed = git("diff", "--stat", "HEAD", "--", "operator")
    tree = f"working tree at git {commit}" + (
        " (operator/ identical to HEAD)" if not changed else " (**operator/ has uncommitted changes**)"
    )
    package = Path(druid_access.__file__).resolve().parent
    fakes = (
        "" if package.is_relative_to(ROOT) else f"; the benchmark's own druid_access (fakes) from `{package}`"
    )
    operator = (
        f"operator run from `{args.operator_source}` (first on its PYTHONPATH); "
        if args.operator_source
        else ""
    )
    label = f"{args.label}; " if args.label else ""
    return f"{label}{operator}{tree}{fakes}"


def section(bench: Bench, command: str, note: str, started: float) -> str:
    a = bench.args
    date = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        heading(a) + "\n",
        f"- command: `{command}`",
        f"- date: {date}; the run took {(time.monotonic() - started) / 60:.1f} min",
        f"- machine: {note}",
        f"- code: {operator_source(a)}",
        f"- operator: `druid-access run --namespace {NS}` (restricted RBAC identity), resyncSeconds "
        f"{a.resync:g}, timeoutSeconds {a.timeout:g}; fake Coordinator with PBKDF2 {ITERATIONS:,} iterations",
        f"- phases: {', '.join(p for p in PHASES if p in a.phases)}",
        "",
        "| phase | figure | measured | baseline (same run) | ratio | goal (issue 11) |",
        "|---|---|---|---|---|---|",
        *(
            f"| {r.phase} | {r.figure} | {r.measured} | {r.baseline} | {r.ratio} | {r.goal} |"
            for r in bench.rows
        ),
        "",
    ]
    if bench.details:
        lines += ["Details:\n", *bench.details]
    if bench.notes:
        lines += ["Notes:\n", *(f"- {n}" for n in bench.notes), ""]
    return "\n".join(lines) + "\n"


HEADER = """# The operator at scale (issue 11)

Produced by `bench/scale.py` (its docstring says how each figure is obtained). One section per N;
a new run replaces the section of the same N. Counts are the robust figures (the machine has 2
shared cores); times come with a baseline measured in the same run and the ratio.

How the figures are obtained, in short: times of Ready/Synced and deletions come from raw watches
opened before the action; Coordinator requests from the fake Coordinator's request log (arrival
time, method, path); Kubernetes requests from the kube-apiserver's `apiserver_request_total`
(read before and after, by resource/subresource/verb; all clients, the benchmark's own creates
excluded where said); operator CPU from `utime+stime` in `/proc/<pid>/stat`, memory from `VmRSS`
/ `VmHWM` in `/proc/<pid>/status`. The raw-API floor sends the same Coordinator writes straight to a
fresh fake Coordinator, one at a time, each object followed by one status patch, serialised; it runs
before the operator and again once the operator has stopped, and the ratio is against the faster of
the two. A Druid store's busy time is the sum of its writes' times in the fake (arrival to answer,
while the fake also serves reads and the other store); its waiting time, the sum of the gaps
between an answer and the next write to that store, during the API create and after it.
"""


def heading(args: argparse.Namespace) -> str:
    """A section's first line: N and M, and the phases when not all were run."""
    phases = (
        ""
        if args.phases == frozenset(PHASES)
        else f" (phases: {', '.join(p for p in PHASES if p in args.phases)})"
    )
    return f"## N = {args.users:,} users, {args.roles:,} roles{phases}"


def section_users(text: str) -> int:
    match = re.match(r"## N = ([\d,]+)", text)
    return int(match.group(1).replace(",", "")) if match else 0


def write_report(out: Path, args: argparse.Namespace, text: str) -> None:
    """Put ``text`` in ``out`` in place of the section with the same heading (N, M, phases)."""
    existing = out.read_text(encoding="utf-8") if out.exists() else HEADER
    parts = re.split(r"(?m)^(?=## N = )", existing)
    head, sections = parts[0], parts[1:]
    marker = heading(args) + "\n"
    sections = [s for s in sections if not s.startswith(marker)] + [text]
    sections.sort(key=section_users)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(
        head.rstrip("\n") + "\n\n" + "\n".join(s.rstrip("\n") + "\n" for s in sections), encoding="utf-8"
    )


# ----------------------------------------------------------------------------------------------- main


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--users", type=int, default=1000, help="N DruidUsers (default 1000)")
    parser.add_argument("--roles", type=int, default=None, help="M DruidRoles (default N/10)")
    parser.add_argument(
        "--phases",
        default="all",
        help=f"comma-separated, of: {', '.join(PHASES)} (default all)",
    )
    parser.add_argument("--resync", type=float, default=30.0, help="resyncSeconds (default 30)")
    parser.add_argument("--timeout", type=float, default=5.0, help="timeoutSeconds (default 5)")
    parser.add_argument("--periods", type=int, default=2, help="resync periods measured in sync (default 2)")
    parser.add_argument(
        "--settle",
        type=float,
        default=75.0,
        help="seconds between convergence and steady: new objects are read back live until a snapshot "
        "taken after their writes confirms them (up to two resync periods)",
    )
    parser.add_argument("--reaction-count", type=int, default=50)
    parser.add_argument("--reaction-spacing", type=float, default=1.0)
    parser.add_argument("--restart-window", type=float, default=60.0)
    parser.add_argument("--outage-objects", type=int, default=200)
    parser.add_argument("--outage-seconds", type=float, default=120.0)
    parser.add_argument("--outage-new-after", type=float, default=10.0, help="create the new users then")
    parser.add_argument("--create-concurrency", type=int, default=16, help="parallel creates (API)")
    parser.add_argument("--converge-timeout", type=float, default=None, help="default 120 s + 0.4 s/object")
    parser.add_argument("--delete-timeout", type=float, default=None, help="default 120 s + 0.5 s/user")
    parser.add_argument(
        "--operator-source",
        type=Path,
        default=None,
        help="run the operator from this directory (put first on its PYTHONPATH), e.g. a copy of operator/",
    )
    parser.add_argument("--label", default="", help="what code is measured, shown in the results")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "scale.md")
    parser.add_argument("--keep", action="store_true", help="keep the work directory (logs)")
    args = parser.parse_args(argv)
    if args.users < 1:
        parser.error("--users must be positive")
    args.roles = args.roles if args.roles is not None else max(1, args.users // 10)
    if args.roles < 1:
        parser.error("--roles must be positive")
    phases = PHASES if args.phases == "all" else tuple(p.strip() for p in args.phases.split(",") if p.strip())
    unknown = [p for p in phases if p not in PHASES]
    if unknown:
        parser.error(f"unknown phase(s): {', '.join(unknown)}; choose from {', '.join(PHASES)}")
    args.phases = frozenset(phases)
    if not 0 <= args.outage_new_after < args.outage_seconds:
        parser.error("--outage-new-after must be within the outage (--outage-seconds)")
    if args.operator_source is not None:
        args.operator_source = args.operator_source.resolve()
    return args


def main(argv: Sequence[str] | None = None) -> int:
    shown = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(shown)
    command = shlex.join([".venv/bin/python", "bench/scale.py", *shown])
    started = time.monotonic()
    workdir = Path(tempfile.mkdtemp(prefix="scale-"))
    cp = ControlPlane(workdir / "controlplane")
    api: Api | None = None
    failed = ""
    try:
        cp.start()
        api = Api(cp)
        with FakesInThread(
            admin_password=ADMIN_PW, pivot_token=TOKEN, credential_iterations=ITERATIONS
        ) as fakes:
            install(cp, admin_user="admin", admin_password=ADMIN_PW, pivot_token=TOKEN)
            bench = Bench(args=args, cp=cp, api=api, fakes=fakes, workdir=workdir)
            try:
                bench.run()
            except Exception as error:  # what was measured so far is still written, with the failure
                failed = f"{type(error).__name__}: {error}"
                bench.notes.append(f"**the run failed**: {failed[:500]}")
                log(f"FAILED: {failed}")
            finally:
                if bench.operator is not None:
                    bench.stop_operator(bench.operator)
            note = machine(cp)
    finally:
        if api is not None:
            api.close()
        cp.stop()
        if args.keep:
            print(f"work directory kept: {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    text = section(bench, command, note, started)
    print()
    print(text)
    write_report(args.out, args, text)
    print(f"written to {args.out}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
