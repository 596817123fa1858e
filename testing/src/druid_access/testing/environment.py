"""A whole local environment for end-to-end tests and ``make demo``.

The fakes run in a background thread (so a synchronous caller can read and change their
state while an operator process talks to them over loopback), the operator runs as a
real ``druid-access run`` subprocess with the restricted ``operator.kubeconfig``, and the
cluster side is set up with kubectl exactly as a user would.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import yaml

from druid_access.testing.controlplane import ControlPlane
from druid_access.testing.fake_coordinator import FakeCoordinator
from druid_access.testing.fake_pivot import FakePivot
from druid_access.testing.processes import free_port

T = TypeVar("T")

OPERATOR_NAMESPACE = "druid-access"
ADMIN_SECRET = "druid-admin"
PIVOT_SECRET = "pivot-token"


def wait_for(
    predicate: Callable[[], T | None], *, timeout: float, interval: float = 0.25, what: str = "condition"
) -> T:
    """Poll ``predicate`` until it returns something truthy; bounded by ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if result:
            return result
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)


class FakesInThread:
    """FakeCoordinator + FakePivot served from their own event loop in a daemon thread."""

    def __init__(self, *, admin_password: str, pivot_token: str, credential_iterations: int = 10_000) -> None:
        self.coordinator = FakeCoordinator(
            admin_password=admin_password, credential_iterations=credential_iterations
        )
        self.pivot = FakePivot(token=pivot_token)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="fakes", daemon=True)

    def __enter__(self) -> FakesInThread:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        self._thread.start()
        self._run(self.coordinator.start())
        self._run(self.pivot.start())

    def stop(self) -> None:
        if not self._thread.is_alive():
            return
        self._run(self.coordinator.stop())
        self._run(self.pivot.stop())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()

    def _run(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout=30)

    def call(self, fn: Callable[[], T]) -> T:
        """Run ``fn`` on the fakes' loop, so state changes never interleave with a request."""
        future: Future[T] = Future()

        def run() -> None:
            try:
                future.set_result(fn())
            except BaseException as error:  # handed to the caller
                future.set_exception(error)

        self._loop.call_soon_threadsafe(run)
        return future.result(timeout=30)


@dataclass
class OperatorProcess:
    """``druid-access run`` as a subprocess, its output in ``log_path``."""

    config: Mapping[str, Any]
    kubeconfig: Path
    workdir: Path
    namespaces: Sequence[str] = ()
    extra_env: Mapping[str, str] = field(default_factory=dict)
    health_port: int = field(default_factory=free_port)
    metrics_port: int | None = None
    _process: subprocess.Popen[bytes] | None = None
    _log: Any = None

    @property
    def log_path(self) -> Path:
        return self.workdir / "operator.log"

    @property
    def config_path(self) -> Path:
        return self.workdir / "operator-config.yaml"

    def start(self, *, timeout: float = 60.0) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.config_path.write_text(yaml.safe_dump(dict(self.config)), encoding="utf-8")
        scope = [arg for ns in self.namespaces for arg in ("--namespace", ns)] or ["--all-namespaces"]
        command = [
            sys.executable,
            "-m",
            "druid_access.cli",
            "run",
            "--config",
            str(self.config_path),
            *scope,
            "--health",
            f"http://127.0.0.1:{self.health_port}/healthz",
        ]
        if self.metrics_port is not None:
            command += ["--metrics-port", str(self.metrics_port)]
        env = {**os.environ, "KUBECONFIG": str(self.kubeconfig), **self.extra_env}
        self._log = self.log_path.open("ab")
        self._process = subprocess.Popen(command, stdout=self._log, stderr=subprocess.STDOUT, env=env)
        try:
            wait_for(self._healthy, timeout=timeout, what="the operator's health endpoint")
        except BaseException:
            self.kill()
            raise

    def _healthy(self) -> bool:
        if self._process is not None and self._process.poll() is not None:
            self._log.flush()
            raise RuntimeError(f"operator exited with {self._process.returncode}:\n{self.log()[-3000:]}")
        try:
            with urllib.request.urlopen(
                f"http://127.0.0.1:{self.health_port}/healthz", timeout=2
            ) as response:
                return bool(response.status == 200)
        except (urllib.error.URLError, OSError):
            return False

    def stop(self, *, timeout: float = 30.0) -> int | None:
        """SIGTERM and wait; the operator must shut down cleanly within ``timeout``."""
        process, self._process = self._process, None
        if process is None:
            return None
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)
        if self._log is not None:
            self._log.close()
        return process.returncode

    def kill(self) -> None:
        """SIGKILL: the operator gets no chance to finish anything."""
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.kill()
            process.wait(timeout=10)
        if self._log is not None:
            self._log.close()

    def metrics(self) -> str:
        """The Prometheus exposition text (needs ``metrics_port``)."""
        url = f"http://127.0.0.1:{self.metrics_port}/metrics"
        with urllib.request.urlopen(url, timeout=5) as response:
            text: str = response.read().decode("utf-8")
            return text

    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace") if self.log_path.exists() else ""


def repo_root() -> Path:
    """The checkout this module is run from: testing/src/druid_access/testing/environment.py."""
    return Path(__file__).resolve().parents[4]


def kubectl_json(cp: ControlPlane, *args: str) -> Any:
    return json.loads(cp.kubectl(*args, "-o", "json").stdout)


_NON_SPACE = re.compile(r"\S")


def json_documents(text: str) -> list[Any]:
    """The JSON documents kubectl prints one after another (``create -o json`` of many objects,
    ``get --watch -o json``)."""
    decoder, at, docs = json.JSONDecoder(), 0, []
    while (start := _NON_SPACE.search(text, at)) is not None:
        doc, at = decoder.raw_decode(text, start.start())
        docs.append(doc)
    return docs


def apply(
    cp: ControlPlane, docs: Sequence[Mapping[str, Any]] | Mapping[str, Any], namespace: str | None = None
) -> None:
    items = [docs] if isinstance(docs, Mapping) else list(docs)
    payload = json.dumps({"apiVersion": "v1", "kind": "List", "items": list(items)})
    args = ["apply", "-f", "-"] + (["-n", namespace] if namespace else [])
    cp.kubectl(*args, input=payload)


ALLOW_LABELS = {"druidaccess.io/allow": "true"}


def secret(
    name: str, data: Mapping[str, str], namespace: str | None = None, *, allow: bool = True
) -> dict[str, Any]:
    """A Secret manifest; ``allow`` labels it so the operator may read it for resources."""
    meta: dict[str, Any] = {"name": name}
    if namespace:
        meta["namespace"] = namespace
    if allow:
        meta["labels"] = dict(ALLOW_LABELS)
    encoded = {k: base64.b64encode(v.encode("utf-8")).decode("ascii") for k, v in data.items()}
    return {"apiVersion": "v1", "kind": "Secret", "metadata": meta, "type": "Opaque", "data": encoded}


def install(cp: ControlPlane, *, admin_user: str, admin_password: str, pivot_token: str) -> None:
    """CRDs, the operator's namespace, RBAC and credential Secrets, as a cluster admin would."""
    root = repo_root()
    cp.kubectl("apply", "-f", str(root / "crds"))
    for crd in ("druidusers", "druidroles", "druidgroupmappings", "druidconnections"):
        cp.kubectl("wait", "--for=condition=Established", "--timeout=60s", f"crd/{crd}.druidaccess.io")
    cp.kubectl("apply", "-f", str(root / "deploy" / "namespace.yaml"))
    cp.kubectl("apply", "-f", str(root / "deploy" / "rbac.yaml"))
    apply(
        cp,
        [
            secret(ADMIN_SECRET, {"username": admin_user, "password": admin_password}, OPERATOR_NAMESPACE),
            secret(PIVOT_SECRET, {"token": pivot_token}, OPERATOR_NAMESPACE),
        ],
    )


PLURALS = ("druidusers", "druidroles", "druidgroupmappings", "druidconnections")


@contextlib.contextmanager
def operator_on_real_druid(
    cp: ControlPlane,
    *,
    clusters: Mapping[str, Mapping[str, Any]],
    namespace: str,
    admin_secret: str,
    admin_password: str,
    workdir: Path,
) -> Iterator[OperatorProcess]:
    """The operator (restricted identity) watching ``namespace``, managing real Coordinators.

    Every cluster signs in as ``admin`` with the password in ``admin_secret`` (a Secret of its own,
    not ``install()``'s shared one, which other modules rewrite). ``namespace`` is created unless it
    exists. On exit, every resource is deleted while the operator still runs (so no finalizer is
    left for later modules), then it must stop cleanly.
    """
    install(cp, admin_user="admin", admin_password=admin_password, pivot_token=f"unused-{namespace}")
    apply(cp, secret(admin_secret, {"username": "admin", "password": admin_password}, OPERATOR_NAMESPACE))
    if cp.kubectl("get", "namespace", namespace, check=False).returncode != 0:
        cp.kubectl("create", "namespace", namespace)
    config = {
        "namespace": OPERATOR_NAMESPACE,
        "clusters": {name: {"adminSecret": {"name": admin_secret}, **c} for name, c in clusters.items()},
        "pivots": {},
    }
    proc = OperatorProcess(
        config=config,
        kubeconfig=cp.operator_kubeconfig,
        workdir=workdir,
        namespaces=[namespace],
        metrics_port=free_port(),
    )
    proc.start()
    try:
        yield proc
    finally:
        cp.kubectl("delete", ",".join(PLURALS), "--all", "-n", namespace, "--timeout=60s", check=False)
        code = proc.stop()
        purge(cp, [namespace])  # what the operator could not finalize (e.g. its target is gone)
        # A later run (another Druid release) may reuse the namespace: its checks must not see these.
        cp.kubectl("delete", "events", "--all", "-n", namespace, check=False)
    assert code == 0, proc.log()[-3000:]


def purge(cp: ControlPlane, namespaces: Sequence[str]) -> None:
    """Delete every resource of the four kinds in ``namespaces`` and strip their finalizers, so
    that nothing of a test module is left for a later module's operator (call it once the
    module's operators have stopped)."""
    kinds = ",".join(PLURALS)
    for ns in namespaces:
        cp.kubectl("delete", kinds, "--all", "-n", ns, "--wait=false", check=False)
        for ref in cp.kubectl("get", kinds, "-n", ns, "-o", "name", check=False).stdout.split():
            patch = '{"metadata":{"finalizers":null}}'
            cp.kubectl("patch", ref, "-n", ns, "--type=merge", "-p", patch, check=False)


def operator_config(
    fakes: FakesInThread,
    *,
    resync_seconds: float = 5.0,
    allowed_namespaces: Sequence[str] = ("*",),
    privileged_namespaces: Sequence[str] = (),
    adoption_namespaces: Sequence[str] = (),
    extra_clusters: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """A configuration with cluster ``default`` and Pivot ``default`` pointing at the fakes."""
    return {
        "namespace": OPERATOR_NAMESPACE,
        "clusters": {
            "default": {
                "coordinatorUrl": fakes.coordinator.url,
                "adminSecret": {"name": ADMIN_SECRET},
                "allowedNamespaces": list(allowed_namespaces),
                "privilegedNamespaces": list(privileged_namespaces),
                "adoptionNamespaces": list(adoption_namespaces),
                "resyncSeconds": resync_seconds,
                "timeoutSeconds": 5,
            },
            **(extra_clusters or {}),
        },
        "pivots": {
            "default": {
                "url": fakes.pivot.url,
                "tokenSecret": {"name": PIVOT_SECRET},
                "allowedNamespaces": list(allowed_namespaces),
                "adoptionNamespaces": list(adoption_namespaces),
                "resyncSeconds": resync_seconds,
                "timeoutSeconds": 5,
            }
        },
    }


def ready_condition(obj: Mapping[str, Any]) -> Mapping[str, Any] | None:
    for condition in (obj.get("status") or {}).get("conditions") or []:
        if condition.get("type") == "Ready":
            return dict(condition)
    return None


def wait_reason(
    cp: ControlPlane, kind: str, namespace: str, name: str, reason: str, *, timeout: float = 60.0
) -> dict[str, Any]:
    """Wait until the object's Ready condition has ``reason`` for its current generation."""

    def check() -> dict[str, Any] | None:
        result = cp.kubectl("get", kind, name, "-n", namespace, "-o", "json", check=False)
        if result.returncode != 0:
            return None
        obj: dict[str, Any] = json.loads(result.stdout)
        ready = ready_condition(obj)
        if (
            ready
            and ready.get("reason") == reason
            and obj["status"].get("observedGeneration") == obj["metadata"]["generation"]
        ):
            return obj
        return None

    return wait_for(check, timeout=timeout, what=f"{kind} {namespace}/{name} to be {reason}")
