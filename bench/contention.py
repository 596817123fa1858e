"""What 200 simultaneous users cost against a REAL Druid Coordinator: unserialised vs. the operator.

Usage (from the repository root; needs ``make druid`` and ``make controlplane`` caches)::

    .venv/bin/python bench/contention.py [--users 200] [--out bench/results/contention.md]

The Coordinator stores each basic-security map (authenticator users, authorizer users and roles) as
one blob in the metadata store, updated with compare-and-swap and given up after 5 lost races:
concurrent writers to one cluster fail each other with a 500 "concurrent update
contention". The operator serialises its writes per store of a target (``Targets.write``, a lane per store); this
benchmark measures both sides in one run, each against a FRESH Coordinator (Druid 27.0.0, embedded
Derby, started by ``druid_access.testing.druid.DruidCoordinator``):

1. ``direct, unserialised``: N user pipelines at once through one ``CoordinatorClient`` whose pool
   allows N connections: create the authenticator user, set its password, create the authorizer
   user, assign the role. A pipeline stops at its first failure (as one reconcile pass does); the
   failures are counted by step and error class, then the Coordinator's state is verified.
2. ``direct, serialised``: the same pipelines with one ``asyncio.Lock`` around each user's four
   writes, i.e. exactly the operator's discipline without Kubernetes: the floor for (3).
3. ``operator``: a private control plane (etcd + kube-apiserver), ``install()``, the real operator
   (``druid-access run``, restricted RBAC identity, metrics on) on 1 DruidRole, then N password
   Secrets + N DruidUsers created by one ``kubectl create``. A watch opened before the create sees
   every status write, so every Ready reason any user passed through is counted; the time until
   all N are Synced, the operator's metrics (reconciles by reason, remote writes by operation),
   the Events by reason and the operator log (failure lines) are collected, and the Coordinator's
   state is verified (every user: both stores, the password verifies by PBKDF2, the role).

Each phase also reports the CPU the whole machine spent (``/proc/stat``) and the Coordinator JVM's
own CPU per user write: the operator shares the machine with the Coordinator, and its reads cost
the Coordinator CPU too (``request_cost.py``).

Everything started here is stopped on the way out and every wait is bounded (the run takes about
3-4 minutes on 2 CPUs).
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import datetime
import json
import os
import platform
import queue
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple
from urllib.parse import urlencode

from pydantic import SecretStr

from druid_access.clients import (
    ApiError,
    AuthenticatorName,
    AuthorizerName,
    CoordinatorClient,
    HttpOptions,
)
from druid_access.passwords import verify_password
from druid_access.testing.controlplane import ControlPlane
from druid_access.testing.druid import DRUID_VERSION, DruidCoordinator
from druid_access.testing.environment import (
    OPERATOR_NAMESPACE,
    OperatorProcess,
    apply,
    install,
    ready_condition,
    secret,
)
from druid_access.testing.processes import free_port
from proc_stats import Reading, busy_share, by_process, cpu_by_name, machine_busy, process_cpu, processes

ROOT = Path(__file__).resolve().parents[1]
NS = "contention"
ADMIN_PW = "bench-contention-admin-pw"
ADMIN_SECRET = "druid-admin-contention"
ROLE = "bench-readers"
AUTHN = AuthenticatorName("basic")
AUTHZ = AuthorizerName("basic")
GROUP_VERSION = "druidaccess.io/v1alpha1"
STEPS = ("create authenticator user", "set password", "create authorizer user", "assign role")
FAILURE_REASONS = (
    "ServerError",
    "Rejected",
    "ConcurrentChange",
    "Unreachable",
    "Unauthorized",
    "Forbidden",
    "KubernetesError",
)
# Lines of a failed reconcile or write; kopf's own retried API calls (e.g. a 429 "storage is
# (re)initializing" from a fresh apiserver) are ERROR lines too, counted separately.
LOG_FAILURES = re.compile(
    r"concurrent update contention|ServerError|Rejected|ConcurrentChange|reconcile failed|Traceback"
)


def user_name(prefix: str, index: int) -> str:
    return f"{prefix}-{index:03d}"


def user_password(index: int) -> str:
    return f"bench-pw-{index:03d}-ä"


def _norm(message: str) -> str:
    """An error message with the user name taken out, so equal failures group together."""
    return re.sub(r"\[[^\]]*\]", "[…]", message)[:110]


# ------------------------------------------------------------------------- CPU accounting


class CpuMark(NamedTuple):
    """Where the clocks stood when a measured interval began."""

    wall: float
    busy: float
    coordinator: float
    processes: Reading

    @classmethod
    def now(cls, coordinator_pid: int | None) -> CpuMark:
        return cls(time.monotonic(), machine_busy(), process_cpu(coordinator_pid), processes())


@dataclass
class CpuUse:
    """Where the CPU went while something was measured: the whole machine, and the Coordinator."""

    seconds: float = 0.0  # wall time of the interval
    busy: float = 0.0  # machine CPU seconds, all cores
    coordinator: float = 0.0  # the Coordinator JVM's CPU seconds
    by_process: str = ""  # the largest users of CPU, by process

    @classmethod
    def since(cls, mark: CpuMark, coordinator_pid: int | None, operator_pid: int | None = None) -> CpuUse:
        names = {os.getpid(): "benchmark process (its clients, watch)"}
        if coordinator_pid is not None:
            names[coordinator_pid] = "Coordinator JVM"
        if operator_pid is not None:
            names[operator_pid] = "operator"
        return cls(
            time.monotonic() - mark.wall,
            machine_busy() - mark.busy,
            process_cpu(coordinator_pid) - mark.coordinator,
            by_process(cpu_by_name(mark.processes, processes(), names)),
        )

    def describe(self, writes: float) -> str:
        per_write = f"; {self.coordinator / writes * 1000:.1f} ms per user write" if writes else ""
        return (
            f"machine {busy_share(self.busy, self.seconds)} busy; "
            f"Coordinator JVM {self.coordinator:.1f} CPU-s{per_write}"
            + (f"; by process: {self.by_process}" if self.by_process else "")
        )


# ------------------------------------------------------------------------- direct (no operator)


@dataclass
class DirectResult:
    label: str
    users: int
    seconds: float
    ok: collections.Counter[str] = field(default_factory=collections.Counter)
    failures: collections.Counter[tuple[str, str, str, str]] = field(default_factory=collections.Counter)
    complete: int = 0
    latencies: list[float] = field(default_factory=list)
    cpu: CpuUse = field(default_factory=CpuUse)

    @property
    def failed_users(self) -> int:
        return sum(self.failures.values())

    @property
    def writes(self) -> int:
        return sum(self.ok.values()) + self.failed_users


async def verify_state(client: CoordinatorClient, names: Mapping[str, str], role: str) -> int:
    """How many of ``names`` (name -> password) are complete: both stores, password, role."""
    authn_names = await client.list_authenticator_users(AUTHN)
    authz_names = await client.list_authorizer_users(AUTHZ)
    complete = 0
    for name, password in names.items():
        if name not in authn_names or name not in authz_names:
            continue
        user = await client.get_authenticator_user(AUTHN, name)
        if user.credentials is None or not verify_password(password, user.credentials):
            continue
        if role in (await client.get_authorizer_user(AUTHZ, name)).roles:
            complete += 1
    return complete


async def direct_run(url: str, users: int, *, serialised: bool, pid: int | None = None) -> DirectResult:
    options = HttpOptions(
        connect_timeout=10.0,
        read_timeout=120.0,
        write_timeout=120.0,
        pool_timeout=300.0,
        max_connections=users,
        max_keepalive_connections=users,
    )
    label = "direct, serialised (one lock)" if serialised else "direct, unserialised"
    prefix = "ser" if serialised else "par"
    lock = asyncio.Lock()
    async with CoordinatorClient(
        url, username="admin", password=SecretStr(ADMIN_PW), options=options
    ) as client:
        await client.create_role(AUTHZ, ROLE)
        result = DirectResult(label=label, users=users, seconds=0.0)

        async def pipeline(index: int) -> None:
            name = user_name(prefix, index)
            password = SecretStr(user_password(index))
            calls: tuple[Callable[[], Any], ...] = (
                lambda: client.create_authenticator_user(AUTHN, name),
                lambda: client.set_password(AUTHN, name, password),
                lambda: client.create_authorizer_user(AUTHZ, name),
                lambda: client.assign_role(AUTHZ, user=name, role=ROLE),
            )
            for step, call in zip(STEPS, calls, strict=True):
                started = time.monotonic()
                try:
                    if serialised:
                        async with lock:
                            started = time.monotonic()
                            await call()
                    else:
                        await call()
                except ApiError as error:
                    status = str(error.status) if error.status is not None else "-"
                    result.failures[(step, type(error).__name__, status, _norm(error.message))] += 1
                    return
                result.latencies.append(time.monotonic() - started)
                result.ok[step] += 1

        mark = CpuMark.now(pid)
        await asyncio.gather(*(pipeline(i) for i in range(users)))
        result.cpu = CpuUse.since(mark, pid)
        result.seconds = result.cpu.seconds
        names = {user_name(prefix, i): user_password(i) for i in range(users)}
        result.complete = await verify_state(client, names, ROLE)
    return result


def run_direct(workdir: Path, users: int, *, serialised: bool, version: str) -> tuple[DirectResult, float]:
    with DruidCoordinator(
        workdir / ("druid-serialised" if serialised else "druid-unserialised"),
        admin_password=ADMIN_PW,
        version=version,
    ) as druid:
        result = asyncio.run(direct_run(druid.url, users, serialised=serialised, pid=druid.coordinator_pid))
        return result, druid.startup_seconds or 0.0


# ----------------------------------------------------------------------------- the operator


class Watch:
    """``kubectl get --raw`` of a watch URL from a known resourceVersion, read by a thread."""

    def __init__(self, cp: ControlPlane, path: str, resource_version: str, timeout: float) -> None:
        query = urlencode(
            {"watch": "1", "resourceVersion": resource_version, "timeoutSeconds": str(int(timeout))}
        )
        command = [str(cp.binaries.kubectl), f"--kubeconfig={cp.admin_kubeconfig}", "get", "--raw"]
        self.events: queue.Queue[tuple[float, dict[str, Any]]] = queue.Queue()
        self._process = subprocess.Popen(
            [*command, f"{path}?{query}"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        assert self._process.stdout is not None
        for line in self._process.stdout:
            if line.strip():
                self.events.put((time.monotonic(), json.loads(line)))

    def alive(self) -> bool:
        return self._process.poll() is None

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
class OperatorResult:
    label: str
    users: int
    create_seconds: float  # the one ``kubectl create`` of N Secrets + N DruidUsers
    waited_seconds: float  # from the start of that create until all were Synced or the bound passed
    all_synced: bool
    first_write_seconds: float | None
    synced_at: list[float]  # per user that got Synced, seconds from the start of the create
    reasons_seen: collections.Counter[str]  # Ready reasons in every status write of the users
    users_with_failure: int
    final_status: collections.Counter[str]  # "reason: message" of the users at the end
    reconciles: dict[tuple[str, str], float]  # (kind, reason) -> count, from the metrics
    writes: dict[tuple[str, str], float]  # (kind, operation) -> count, from the metrics
    events: collections.Counter[tuple[str, str]]  # (type, reason) of Events in the namespace
    log_failures: list[str]
    other_errors: list[str]
    open_connections: int  # established TCP connections to the Coordinator at the end
    complete: int
    role_seconds: float
    druid_startup: float
    resync: float
    timeout: float
    cpu: CpuUse = field(default_factory=CpuUse)  # from the start of the create until all Synced

    @property
    def synced(self) -> int:
        return len(self.synced_at)


def established_to(port: int) -> int:
    """Established TCP connections to 127.0.0.1:``port`` (from /proc/net/tcp; the listener excluded)."""
    count = 0
    try:
        lines = Path("/proc/net/tcp").read_text().splitlines()[1:]
    except OSError:
        return -1
    for line in lines:
        fields = line.split()
        remote, state = fields[2], fields[3]
        if state == "01" and int(remote.split(":")[1], 16) == port:
            count += 1
    return count


def _metric(text: str, name: str) -> dict[tuple[str, str], float]:
    out: dict[tuple[str, str], float] = {}
    pattern = re.compile(rf'^{name}\{{kind="([^"]+)",(?:reason|operation)="([^"]+)"\}} (\S+)$', re.M)
    for kind, label, value in pattern.findall(text):
        out[(kind, label)] = float(value)
    return out


def _doc(kind: str, name: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": GROUP_VERSION,
        "kind": kind,
        "metadata": {"name": name, "namespace": NS},
        "spec": spec,
    }


def _wait(predicate: Callable[[], bool], timeout: float, what: str, interval: float = 0.1) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)


def _synced(obj: Mapping[str, Any]) -> bool:
    ready = ready_condition(obj)
    return (
        ready is not None
        and ready.get("reason") == "Synced"
        and (obj.get("status") or {}).get("observedGeneration") == obj["metadata"].get("generation")
    )


def run_operator(
    workdir: Path,
    users: int,
    *,
    label: str,
    resync: float,
    timeout: float,
    wait_timeout: float,
    version: str,
    pythonpath: str | None = None,
) -> OperatorResult:
    tag = re.sub(r"[^a-z0-9]+", "-", label.lower()).strip("-")
    cp = ControlPlane(workdir / f"controlplane-{tag}")
    druid = DruidCoordinator(workdir / f"druid-operator-{tag}", admin_password=ADMIN_PW, version=version)
    proc: OperatorProcess | None = None
    watch: Watch | None = None
    try:
        cp.start()
        install(cp, admin_user="admin", admin_password=ADMIN_PW, pivot_token="unused")
        apply(cp, secret(ADMIN_SECRET, {"username": "admin", "password": ADMIN_PW}, OPERATOR_NAMESPACE))
        cp.kubectl("create", "namespace", NS)
        druid.start()
        config = {
            "namespace": OPERATOR_NAMESPACE,
            "clusters": {
                "default": {
                    "coordinatorUrl": druid.url,
                    "adminSecret": {"name": ADMIN_SECRET},
                    "resyncSeconds": resync,
                    "timeoutSeconds": timeout,
                }
            },
            "pivots": {},
        }
        proc = OperatorProcess(
            config=config,
            kubeconfig=cp.operator_kubeconfig,
            workdir=workdir / f"operator-{tag}",
            namespaces=[NS],
            metrics_port=free_port(),
            extra_env={"PYTHONPATH": pythonpath} if pythonpath else {},
        )
        proc.start()

        role_started = time.monotonic()
        permission = {"resource": {"type": "DATASOURCE", "name": "bench.*"}, "action": "READ"}
        apply(cp, _doc("DruidRole", ROLE, {"permissions": [permission]}))

        def role_synced() -> bool:
            result = cp.kubectl("get", "druidrole", ROLE, "-n", NS, "-o", "json", check=False)
            return result.returncode == 0 and _synced(json.loads(result.stdout))

        _wait(role_synced, 120, "the DruidRole to be Synced", interval=0.25)
        role_seconds = time.monotonic() - role_started

        base = f"/apis/{GROUP_VERSION}/namespaces/{NS}/druidusers"
        listed = json.loads(cp.kubectl("get", "--raw", f"{base}?limit=1").stdout)
        watch = Watch(cp, base, str(listed["metadata"]["resourceVersion"]), wait_timeout + 120)
        docs: list[dict[str, Any]] = []
        for i in range(users):
            docs.append(secret(f"pw-{i:03d}", {"password": user_password(i)}, NS))
        for i in range(users):
            ref = {"secretKeyRef": {"name": f"pw-{i:03d}", "key": "password"}}
            docs.append(_doc("DruidUser", user_name("op", i), {"roles": [ROLE], "password": ref}))
        payload = json.dumps({"apiVersion": "v1", "kind": "List", "items": docs})
        mark = CpuMark.now(druid.coordinator_pid)
        started = mark.wall
        cp.kubectl("create", "-f", "-", input=payload, timeout=300)
        create_seconds = time.monotonic() - started

        first_synced: dict[str, float] = {}
        reasons: collections.Counter[str] = collections.Counter()
        failed_users: set[str] = set()
        seen_versions: set[str] = set()

        def poll() -> bool:
            for at, event in watch.drain() if watch else ():
                if event.get("type") == "ERROR":
                    raise RuntimeError(f"watch failed: {event}")
                obj = event["object"]
                version = obj["metadata"]["resourceVersion"]
                if version in seen_versions:
                    continue
                seen_versions.add(version)
                ready = ready_condition(obj)
                if ready is None:
                    continue
                reasons[str(ready.get("reason"))] += 1
                name = obj["metadata"]["name"]
                if ready.get("reason") in FAILURE_REASONS:
                    failed_users.add(name)
                if _synced(obj):
                    first_synced.setdefault(name, at - started)
            if watch is not None and not watch.alive() and watch.events.empty():
                # The watch ended early (e.g. a 429 while the apiserver's watch cache was still
                # initialising): fall back to listing, so completion is still measured, with the
                # time of the list instead of the time of the status write.
                now = time.monotonic()
                listed = json.loads(cp.kubectl("get", "--raw", base).stdout)
                for obj in listed["items"]:
                    if _synced(obj):
                        first_synced.setdefault(obj["metadata"]["name"], now - started)
            return len(first_synced) >= users

        try:
            _wait(poll, wait_timeout, f"{users} DruidUsers to be Synced", interval=0.2)
            all_synced = True
        except TimeoutError:
            all_synced = False  # reported as such: how far it got and why
        # Up to ~0.2 s (one poll) after the last.
        operator_pid = proc._process.pid if proc._process is not None else None
        cpu = CpuUse.since(mark, druid.coordinator_pid, operator_pid)
        waited = max(first_synced.values()) if all_synced else time.monotonic() - started
        time.sleep(1.0)  # Events posted with the last writes
        poll()
        open_connections = established_to(int(druid.url.rsplit(":", 1)[1]))
        metrics = proc.metrics()
        events_json = json.loads(cp.kubectl("get", "events", "-n", NS, "-o", "json").stdout)
        events: collections.Counter[tuple[str, str]] = collections.Counter(
            (str(e.get("type")), str(e.get("reason"))) for e in events_json["items"]
        )
        final_status: collections.Counter[str] = collections.Counter()
        for obj in json.loads(cp.kubectl("get", "druidusers", "-n", NS, "-o", "json").stdout)["items"]:
            ready = ready_condition(obj)
            final_status[f"{ready.get('reason')}: {ready.get('message')}" if ready else "no status"] += 1
        log = proc.log()
        log_failures = [line for line in log.splitlines() if LOG_FAILURES.search(line)]
        other_errors = [line for line in log.splitlines() if " ERROR " in line and line not in log_failures]
        first_write = _first_write_seconds(log, started_wall=time.time() - (time.monotonic() - started))

        async def verify() -> int:
            async with CoordinatorClient(druid.url, username="admin", password=SecretStr(ADMIN_PW)) as client:
                names = {user_name("op", i): user_password(i) for i in range(users)}
                return await verify_state(client, names, ROLE)

        complete = asyncio.run(verify())
        return OperatorResult(
            label=label,
            users=users,
            create_seconds=create_seconds,
            waited_seconds=waited,
            all_synced=all_synced,
            first_write_seconds=first_write,
            synced_at=sorted(first_synced.values()),
            reasons_seen=reasons,
            users_with_failure=len(failed_users),
            final_status=final_status,
            reconciles=_metric(metrics, "druid_access_reconciles_total"),
            writes=_metric(metrics, "druid_access_remote_writes_total"),
            events=events,
            log_failures=log_failures,
            other_errors=other_errors,
            open_connections=open_connections,
            complete=complete,
            role_seconds=role_seconds,
            druid_startup=druid.startup_seconds or 0.0,
            resync=resync,
            timeout=timeout,
            cpu=cpu,
        )
    finally:
        if watch is not None:
            watch.stop()
        if proc is not None:
            proc.stop()
        druid.stop()
        cp.stop()


def _first_write_seconds(log: str, *, started_wall: float) -> float | None:
    """Seconds from the start of the create to the first user write the operator logged."""
    for line in log.splitlines():
        if "DruidUser" in line and "created authenticator user" in line:
            stamp = datetime.datetime.strptime(line[:23], "%Y-%m-%d %H:%M:%S,%f")
            return stamp.timestamp() - started_wall
    return None


# -------------------------------------------------------------------------------------- report


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def machine(version: str) -> str:
    try:
        commit = subprocess.run(
            ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        commit = "unknown"
    java = shutil.which("java") or "java"
    try:
        java_version = subprocess.run(
            [java, "-version"], capture_output=True, text=True, check=False
        ).stderr.splitlines()[0]
    except (OSError, IndexError):
        java_version = "unknown"
    mem = "unknown"
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem = f"{int(line.split()[1]) // 1024 // 1024} GiB RAM"
    except (OSError, ValueError):
        pass
    return (
        f"{platform.platform()}, {os.cpu_count()} CPU(s), {mem}, Python {platform.python_version()}, "
        f"{java_version}, Druid {version} Coordinator (embedded Derby, 512 MiB heap) + ZooKeeper "
        f"on 127.0.0.1, git {commit} (plus any uncommitted changes in the working tree)"
    )


def direct_table(rows: Iterable[DirectResult]) -> str:
    lines = [
        "| run | users | wall time | users failed (first failure) | users complete (verified) "
        "| successful writes | writes/s | complete users/s | write latency p50 / p95 |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        ok = sum(r.ok.values())
        lines.append(
            f"| {r.label} | {r.users} | {r.seconds:.1f} s | {r.failed_users} | {r.complete} | {ok} "
            f"| {ok / r.seconds:.1f} | {r.complete / r.seconds:.2f} "
            f"| {_pct(r.latencies, 0.5) * 1000:.0f} / {_pct(r.latencies, 0.95) * 1000:.0f} ms |"
        )
    lines.append("")
    lines += [f"- CPU, {r.label}: {r.cpu.describe(sum(r.ok.values()))}" for r in rows]
    return "\n".join(lines) + "\n"


def failure_table(r: DirectResult) -> str:
    if not r.failures:
        return f"No failures in *{r.label}*.\n"
    lines = [
        f"Failures in *{r.label}* (each user's first failure; the pipeline stops there):\n",
        "| step | error class | HTTP | message (names elided) | count |",
        "|---|---|---:|---|---:|",
    ]
    for (step, cls, status, message), count in sorted(r.failures.items(), key=lambda kv: -kv[1]):
        lines.append(f"| {step} | {cls} | {status} | `{message}` | {count} |")
    return "\n".join(lines) + "\n"


def _fmt_seconds(value: float | None) -> str:
    return f"{value:.1f} s" if value is not None else "n/a"


def operator_table(runs: list[OperatorResult]) -> str:
    def row(title: str, cell: Callable[[OperatorResult], str]) -> str:
        return f"| {title} | " + " | ".join(cell(r) for r in runs) + " |"

    def user_writes(r: OperatorResult) -> float:
        return sum(v for (kind, _), v in r.writes.items() if kind == "DruidUser")

    def failed(r: OperatorResult) -> float:
        return sum(
            v
            for (kind, reason), v in r.reconciles.items()
            if kind == "DruidUser" and reason in FAILURE_REASONS
        )

    def all_synced(r: OperatorResult) -> str:
        if r.all_synced:
            return f"**{r.waited_seconds:.1f} s**"
        return f"**not reached: {r.synced}/{r.users} Synced after {r.waited_seconds:.0f} s (bound)**"

    lines = [
        "| figure | " + " | ".join(r.label for r in runs) + " |",
        "|---|" + "---:|" * len(runs),
        row("DruidUsers (each: password Secret + the role)", lambda r: str(r.users)),
        row("DruidRole created and Synced before the users", lambda r: f"{r.role_seconds:.1f} s"),
        row("`kubectl create` of the Secrets + DruidUsers", lambda r: f"{r.create_seconds:.1f} s"),
        row(
            "first user write logged (from the start of the create)",
            lambda r: _fmt_seconds(r.first_write_seconds),
        ),
        row("**time until all users are Synced** (from the start of the create)", all_synced),
        row(
            "users Synced after p50 / p90 / max",
            lambda r: (
                " / ".join(f"{_pct(r.synced_at, q):.1f}" for q in (0.5, 0.9, 1.0)) + " s"
                if r.synced_at
                else "n/a"
            ),
        ),
        row("throughput (users Synced / s)", lambda r: f"{r.synced / r.waited_seconds:.2f}"),
        row(
            "Druid writes for the users (metric)",
            lambda r: f"{user_writes(r):g} ({user_writes(r) / r.users:g}/user)",
        ),
        row("Druid user writes / s", lambda r: f"{user_writes(r) / r.waited_seconds:.1f}"),
        row(
            "**failed reconciles of DruidUsers** (metric; ServerError/Rejected/Unreachable/…)",
            lambda r: f"**{failed(r):g}**",
        ),
        row("users whose status ever showed a failure reason (watch)", lambda r: str(r.users_with_failure)),
        row(
            "Warning or failure-reason Events",
            lambda r: str(
                sum(n for (t, why), n in r.events.items() if t == "Warning" or why in FAILURE_REASONS)
            ),
        ),
        row(
            "failure lines in the operator log (contention/ServerError/Rejected/…)",
            lambda r: str(len(r.log_failures)),
        ),
        row(
            "other ERROR lines in the operator log (kopf's retried Kubernetes calls)",
            lambda r: str(len(r.other_errors)),
        ),
        row(
            "CPU from the start of the create until all Synced",
            lambda r: r.cpu.describe(user_writes(r)),
        ),
        row("established connections operator -> Coordinator at the end", lambda r: str(r.open_connections)),
        row(
            "users complete on the Coordinator (both stores, password verifies, role)",
            lambda r: f"{r.complete}/{r.users}",
        ),
    ]
    return "\n".join(lines) + "\n"


def operator_details(r: OperatorResult) -> str:
    def joined(items: Iterable[str]) -> str:
        return ", ".join(items) or "none"

    out = [
        f"*{r.label}*:\n",
        "- reconciles of DruidUsers by resulting reason (`druid_access_reconciles_total`): "
        + joined(f"{why} {v:g}" for (kind, why), v in sorted(r.reconciles.items()) if kind == "DruidUser"),
        "- Ready reasons in every status write the watch saw: "
        + joined(f"{why} {n}" for why, n in sorted(r.reasons_seen.items())),
        "- the users' Ready condition at the end: "
        + joined(f"{n} x `{text[:140]}`" for text, n in r.final_status.most_common()),
        "- Druid writes by operation (`druid_access_remote_writes_total`): "
        + joined(f"{kind}/{op} {v:g}" for (kind, op), v in sorted(r.writes.items())),
        "- Events by (type, reason): " + joined(f"{t}/{why} {n}" for (t, why), n in sorted(r.events.items())),
    ]
    if r.log_failures:
        out.append(
            "- first failure lines of the operator log:\n\n```\n"
            + "\n".join(x[:300] for x in r.log_failures[:5])
            + "\n```"
        )
    if r.other_errors:
        out.append(
            "- other ERROR lines (first 2, cut):\n\n```\n"
            + "\n".join(x[:250] for x in r.other_errors[:2])
            + "\n```"
        )
    return "\n".join(out) + "\n"


def report(
    command: str,
    unserialised: DirectResult,
    serialised: DirectResult,
    runs: list[OperatorResult],
    druid_startups: list[float],
    version: str,
) -> str:
    date = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    users = unserialised.users
    base_rate = unserialised.complete / unserialised.seconds
    text = [
        f"# Write contention on a real Druid Coordinator: {users} users at once\n",
        f"- command: `{command}`",
        f"- date: {date}",
        f"- machine: {machine(version)}",
        "- Coordinator start-ups (ZooKeeper + Coordinator until loadStatus true): "
        + ", ".join(f"{s:.1f} s" for s in druid_startups),
        f"- operator: resync {runs[0].resync:g} s, timeoutSeconds {runs[0].timeout:g}, one cluster, "
        "restricted RBAC identity, local kube-apiserver + etcd\n",
        "Each run uses a fresh Coordinator (empty Derby). One user = 4 writes: create the "
        "authenticator user, set its password (PBKDF2, 10,000 iterations, on the server), create the "
        "authorizer user, assign the role.\n",
        "## 1. Direct, without the operator\n",
        direct_table([unserialised, serialised]),
        failure_table(unserialised),
        failure_table(serialised),
        f"## 2. The operator on {users} DruidUsers (+1 DruidRole)\n",
        operator_table(runs),
        *[operator_details(r) for r in runs],
        "## 3. Ratios (same run)\n",
        "| comparison | " + " | ".join(r.label for r in runs) + " |",
        "|---|" + "---:|" * len(runs),
        "| users with a failure: operator / direct unserialised | "
        + " | ".join(f"{r.users_with_failure} / {unserialised.failed_users}" for r in runs)
        + " |",
        "| wall time: operator (until all Synced) / direct unserialised | "
        + " | ".join(
            f"{r.waited_seconds / unserialised.seconds:.2f}" if r.all_synced else "n/a (never all Synced)"
            for r in runs
        )
        + " |",
        "| complete users/s: operator / direct unserialised | "
        + " | ".join(
            f"{(r.complete / r.waited_seconds) / base_rate:.2f}" if base_rate else "n/a" for r in runs
        )
        + " |",
        "| wall time: operator / direct serialised (the lock alone) | "
        + " | ".join(f"{r.waited_seconds / serialised.seconds:.2f}" if r.all_synced else "n/a" for r in runs)
        + " |",
        "",
        f"Direct serialised vs. unserialised: complete users/s ratio "
        f"{(serialised.complete / serialised.seconds) / base_rate:.2f}, wall time ratio "
        f"{serialised.seconds / unserialised.seconds:.2f}.\n"
        if base_rate
        else "",
        "Notes: a failed reconcile produces no Event and no log line in this operator (only the "
        "status and the `druid_access_reconciles_total` metric carry the reason), so the watch on "
        "the users' status and the metric are the evidence; Events and the log are checked anyway. "
        "The direct unserialised run counts each user's *first* failure; a controller without the "
        "lock would retry those and converge later, after more lost races.\n",
    ]
    return "\n".join(text)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--users", type=int, default=200)
    parser.add_argument(
        "--druid-version", default=DRUID_VERSION, help="Druid release to run (a `make druid` build)"
    )
    parser.add_argument("--resync", type=float, default=60.0, help="operator resyncSeconds")
    parser.add_argument("--timeout", type=float, default=10.0, help="operator timeoutSeconds")
    parser.add_argument("--wait", type=float, default=300.0, help="bound on waiting for all Synced")
    parser.add_argument(
        "--also-operator-source",
        metavar="DIR",
        help="also run the operator from DIR (a copy of operator/ with a patch applied, put first on "
        "PYTHONPATH), reported next to the working tree's",
    )
    parser.add_argument("--also-label", default="working tree + proposed patch")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "contention.md")
    parser.add_argument("--keep", action="store_true", help="keep the work directory (logs)")
    args = parser.parse_args(argv)
    shown = argv if argv is not None else sys.argv[1:]
    command = shlex.join([".venv/bin/python", "bench/contention.py", *shown])
    workdir = Path(tempfile.mkdtemp(prefix="contention-"))
    try:
        print(f"[direct, unserialised] {args.users} users at once", flush=True)
        unserialised, s1 = run_direct(workdir, args.users, serialised=False, version=args.druid_version)
        print(
            f"  {unserialised.seconds:.1f} s, {unserialised.failed_users} failed, {unserialised.complete} complete"
        )
        print(f"[direct, serialised] {args.users} users", flush=True)
        serialised, s2 = run_direct(workdir, args.users, serialised=True, version=args.druid_version)
        print(
            f"  {serialised.seconds:.1f} s, {serialised.failed_users} failed, {serialised.complete} complete"
        )
        variants: list[tuple[str, str | None]] = [("operator (working tree)", None)]
        if args.also_operator_source:
            variants.append((f"operator ({args.also_label})", str(Path(args.also_operator_source).resolve())))
        runs = []
        for label, pythonpath in variants:
            print(f"[{label}] {args.users} DruidUsers", flush=True)
            run = run_operator(
                workdir,
                args.users,
                label=label,
                resync=args.resync,
                timeout=args.timeout,
                wait_timeout=args.wait,
                version=args.druid_version,
                pythonpath=pythonpath,
            )
            runs.append(run)
            state = (
                f"all Synced after {run.waited_seconds:.1f} s"
                if run.all_synced
                else (f"NOT all Synced: {run.synced}/{run.users} after {run.waited_seconds:.0f} s")
            )
            print(
                f"  {state}, {run.users_with_failure} users saw a failure, {run.complete} complete",
                flush=True,
            )
        startups = [s1, s2, *(r.druid_startup for r in runs)]
        text = report(command, unserialised, serialised, runs, startups, args.druid_version)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text, encoding="utf-8")
        print(text)
        print(f"written to {args.out}")
    finally:
        if args.keep:
            print(f"work directory kept: {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
