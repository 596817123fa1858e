"""Installing the Helm chart on the local control plane and running its operator as a pod would.

Shared by the e2e modules that need the chart's own objects (``test_helm.py``,
``test_namespace_teardown.py``): the helm binary ``make helm`` builds, a release, a kubeconfig of the
chart's ServiceAccount (a TokenRequest token), and ``ChartOperator``, which runs ``druid-access`` with
the Deployment's args and the ConfigMap's config under that identity.
"""

from __future__ import annotations

import os
import re
import shlex
import signal
import subprocess
import sys
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from druid_access.testing.controlplane import ControlPlane, cache_dir
from druid_access.testing.environment import free_port, kubectl_json, repo_root, wait_for

ROOT = repo_root()
CHART = ROOT / "helm" / "druid-access-operator"
CHART_NAME = "druid-access-operator"
MAKEFILE = ROOT / "Makefile"


def make_vars() -> dict[str, str]:
    """Simple ``NAME := value`` / ``NAME ?= value`` assignments of the Makefile."""
    out = {}
    for line in MAKEFILE.read_text(encoding="utf-8").splitlines():
        match = re.match(r"^(?:export\s+)?([A-Z_]+)\s*(?::|\?)?=\s*(.*?)\s*$", line)
        if match:
            out[match.group(1)] = match.group(2)
    return out


def helm_path() -> Path:
    override = os.environ.get("HELM")
    if override:
        return Path(override)
    version = os.environ.get("HELM_VERSION") or make_vars()["HELM_VERSION"]
    return cache_dir() / f"helm-{version}" / "bin" / "helm"


@dataclass
class Helm:
    binary: Path
    home: Path

    def run(
        self, *args: str, kubeconfig: Path | None = None, check: bool = True, timeout: float = 120
    ) -> subprocess.CompletedProcess[str]:
        env = self.env()
        env.pop("KUBECONFIG", None)
        command = [str(self.binary), *args]
        if kubeconfig is not None:
            command.append(f"--kubeconfig={kubeconfig}")
        result = subprocess.run(
            command, capture_output=True, text=True, timeout=timeout, env=env, check=False
        )
        if check and result.returncode != 0:
            raise AssertionError(f"{shlex.join(command)} failed ({result.returncode}):\n{result.stderr}")
        return result

    def env(self) -> dict[str, str]:
        # Keep helm's caches and repository config out of $HOME and away from other runs.
        return {
            **os.environ,
            "HELM_CACHE_HOME": str(self.home / "cache"),
            "HELM_CONFIG_HOME": str(self.home / "config"),
            "HELM_DATA_HOME": str(self.home / "data"),
        }


def operator_container(deployment: Mapping[str, Any]) -> dict[str, Any]:
    containers = deployment["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    return dict(containers[0])


@dataclass
class Release:
    name: str
    namespace: str
    values: dict[str, Any]
    values_path: Path
    install_output: str

    @property
    def fullname(self) -> str:
        return self.name if CHART_NAME in self.name else f"{self.name}-{CHART_NAME}"


def install_release(
    helm: Helm, cp: ControlPlane, name: str, values: dict[str, Any], workdir: Path, *, namespace: str
) -> Release:
    path = workdir / f"{name}-values.yaml"
    path.write_text(yaml.safe_dump(values), encoding="utf-8")
    result = helm.run(
        "install",
        name,
        str(CHART),
        "--namespace",
        namespace,
        "-f",
        str(path),
        kubeconfig=cp.admin_kubeconfig,
    )
    return Release(name, namespace, values, path, result.stdout)


def sa_kubeconfig(cp: ControlPlane, sa: str, namespace: str, path: Path) -> Path:
    """A kubeconfig for the ServiceAccount: a TokenRequest token, the admin kubeconfig's server and CA."""
    token = cp.kubectl("create", "token", sa, "-n", namespace, "--duration=2h").stdout.strip()
    admin = yaml.safe_load(cp.admin_kubeconfig.read_text())
    user = f"system:serviceaccount:{namespace}:{sa}"
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": admin["clusters"],
        "users": [{"name": user, "user": {"token": token}}],
        "contexts": [{"name": "sa", "context": {"cluster": admin["clusters"][0]["name"], "user": user}}],
        "current-context": "sa",
    }
    path.write_text(yaml.safe_dump(config))
    path.chmod(0o600)
    return path


def console_script() -> str:
    """The image's ENTRYPOINT, ``druid-access``, as installed next to this interpreter."""
    script = Path(sys.executable).parent / "druid-access"
    assert script.is_file(), f"{script} missing: install the package (make venv)"
    return str(script)


def localize(args: Sequence[str], *, config: Path, health_port: int, metrics_port: int) -> list[str]:
    """The Deployment's args with only what differs outside a pod replaced: the config path (the
    ConfigMap's mount), the health listen address, and the metrics port (replicas share a host here)."""
    out: list[str] = []
    replaced = set()
    for arg in args:
        name, _, value = arg.partition("=")
        if name == "--config":
            out.append(f"--config={config}")
        elif name == "--health":
            path = urllib.parse.urlsplit(value).path
            out.append(f"--health=http://127.0.0.1:{health_port}{path}")
        elif name == "--metrics-port":
            out.append(f"--metrics-port={metrics_port}")
        else:
            out.append(arg)
            continue
        replaced.add(name)
    assert replaced == {"--config", "--health", "--metrics-port"}, args
    return out


@dataclass
class ChartOperator:
    """``druid-access <the Deployment's args>`` as a subprocess under the chart's ServiceAccount."""

    deployment_args: Sequence[str]
    config_text: str
    kubeconfig: Path
    workdir: Path
    pod_namespace: str
    health_port: int = field(default_factory=free_port)
    metrics_port: int = field(default_factory=free_port)
    _process: subprocess.Popen[bytes] | None = None
    _log: Any = None

    @property
    def log_path(self) -> Path:
        return self.workdir / "operator.log"

    @property
    def command(self) -> list[str]:
        args = localize(
            self.deployment_args,
            config=self.workdir / "config.yaml",
            health_port=self.health_port,
            metrics_port=self.metrics_port,
        )
        return [console_script(), *args]

    def start(self, *, timeout: float = 60.0) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        (self.workdir / "config.yaml").write_text(self.config_text, encoding="utf-8")
        # The Deployment's env (POD_NAMESPACE from the downward API) and the pod's credentials.
        env = {**os.environ, "KUBECONFIG": str(self.kubeconfig), "POD_NAMESPACE": self.pod_namespace}
        self._log = self.log_path.open("ab")
        self._process = subprocess.Popen(self.command, stdout=self._log, stderr=subprocess.STDOUT, env=env)
        try:
            wait_for(self._healthy, timeout=timeout, what="the operator's health endpoint")
        except BaseException:
            self.kill()
            raise

    def _healthy(self) -> bool:
        if self._process is not None and self._process.poll() is not None:
            raise RuntimeError(f"operator exited with {self._process.returncode}:\n{self.log()[-3000:]}")
        try:
            with urllib.request.urlopen(
                f"http://127.0.0.1:{self.health_port}/healthz", timeout=2
            ) as response:
                return bool(response.status == 200)
        except (urllib.error.URLError, OSError):
            return False

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def stop(self, *, timeout: float = 30.0) -> int | None:
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
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.kill()
            process.wait(timeout=10)
        if self._log is not None:
            self._log.close()

    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace") if self.log_path.exists() else ""

    def priority(self) -> int:
        match = wait_for(
            lambda: re.search(r"peering '[^']+' with priority (\d+)", self.log()),
            timeout=10,
            what="the priority",
        )
        return int(match.group(1))


def read_back(cp: ControlPlane, rel: Release) -> tuple[list[str], str]:
    """The Deployment's container args and the ConfigMap's config.yaml, as stored in the cluster."""
    deployment = kubectl_json(cp, "get", "deployment", rel.fullname, "-n", rel.namespace)
    cm = kubectl_json(cp, "get", "configmap", f"{rel.fullname}-config", "-n", rel.namespace)
    return list(operator_container(deployment)["args"]), str(cm["data"]["config.yaml"])
