"""A real local Kubernetes control plane (etcd, kube-apiserver, kube-controller-manager) for e2e tests.

The binaries are built from Go modules by ``make controlplane`` (``hack/build-controlplane.sh``) into
``$DRUID_ACCESS_CACHE/controlplane/<key>/bin``; ``find_binaries`` locates them. ``ControlPlane`` starts
etcd, kube-apiserver and kube-controller-manager on free 127.0.0.1 ports inside one directory that holds
everything: etcd data, certificates, the service-account key pair, the token file, the process logs and
two kubeconfigs:

- ``admin.kubeconfig``: user ``admin`` in ``system:masters`` (bypasses RBAC);
- ``operator.kubeconfig``: the operator's ServiceAccount identity
  (``system:serviceaccount:druid-access:druid-access-operator`` and its groups), so RBAC bound to that
  ServiceAccount applies exactly as it would to the operator's pod in a real cluster.

kube-controller-manager runs only ``CONTROLLERS``: the namespace controller (a deleted namespace is
emptied, then removed), the garbage collector (objects whose owners are gone are deleted) and the
ClusterRole aggregation (labelled ClusterRoles join view/edit/admin). There is no scheduler or kubelet:
pods never run.
"""

from __future__ import annotations

import atexit
import base64
import json
import math
import os
import secrets
import shutil
import signal
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import IO

import yaml

from druid_access.testing.processes import Launched, free_ports, spawn, stop_process, tail, write_private

CACHE_ENV = "DRUID_ACCESS_CACHE"
KUBE_APISERVER_ENV = "DRUID_ACCESS_KUBE_APISERVER"
ETCD_ENV = "DRUID_ACCESS_ETCD"
KUBECTL_ENV = "DRUID_ACCESS_KUBECTL"
KUBE_CONTROLLER_MANAGER_ENV = "DRUID_ACCESS_KUBE_CONTROLLER_MANAGER"

# What a cluster does after deletions, and the aggregation of ClusterRoles into view/edit/admin;
# nothing that needs nodes, clouds or certificates.
CONTROLLERS = ("namespace-controller", "garbage-collector-controller", "clusterrole-aggregation-controller")

ADMIN_USER = "admin"
ADMIN_GROUPS = ("system:masters",)
OPERATOR_NAMESPACE = "druid-access"
OPERATOR_SERVICE_ACCOUNT = "druid-access-operator"
OPERATOR_USER = f"system:serviceaccount:{OPERATOR_NAMESPACE}:{OPERATOR_SERVICE_ACCOUNT}"
OPERATOR_GROUPS = (
    "system:serviceaccounts",
    f"system:serviceaccounts:{OPERATOR_NAMESPACE}",
    "system:authenticated",
)
SERVICE_ACCOUNT_ISSUER = "https://kubernetes.default.svc.cluster.local"
SERVICE_CLUSTER_IP_RANGE = "10.0.0.0/24"

READY_TIMEOUT = 90.0
ETCD_READY_TIMEOUT = 30.0
STOP_TIMEOUT = 20.0
KUBECTL_TIMEOUT = 60.0


class ControlPlaneError(RuntimeError):
    """The control plane could not be found, started or used."""


class KubectlError(subprocess.CalledProcessError):
    """A kubectl call failed; unlike ``CalledProcessError`` the message includes stderr."""

    def __str__(self) -> str:
        return f"{super().__str__()}\nstderr: {self.stderr}"


@dataclass(frozen=True)
class Binaries:
    """Paths of the executables the control plane needs."""

    kube_apiserver: Path
    etcd: Path
    kubectl: Path
    kube_controller_manager: Path


def cache_dir() -> Path:
    """The root of the build cache, shared with ``hack/build-controlplane.sh``."""
    configured = os.environ.get(CACHE_ENV)
    return Path(configured) if configured else Path.home() / ".cache" / "druid-access"


def _is_executable(path: Path) -> bool:
    return path.is_file() and os.access(path, os.X_OK)


def _newest_cached_bin_dir() -> Path | None:
    """The most recently built complete ``<key>/bin``; dot-prefixed dirs are unfinished builds."""
    root = cache_dir() / "controlplane"
    if not root.is_dir():
        return None
    complete = [
        entry / "bin"
        for entry in root.iterdir()
        if not entry.name.startswith(".")
        and all(
            _is_executable(entry / "bin" / name)
            for name in ("kube-apiserver", "etcd", "kube-controller-manager")
        )
    ]
    return max(complete, key=lambda path: path.stat().st_mtime, default=None)


def find_binaries() -> Binaries:
    """Locate the binaries: env overrides, then the build cache, then PATH (kubectl)."""
    bin_dir = _newest_cached_bin_dir()
    found: dict[str, Path | None] = {}
    for name, env in (
        ("kube-apiserver", KUBE_APISERVER_ENV),
        ("etcd", ETCD_ENV),
        ("kubectl", KUBECTL_ENV),
        ("kube-controller-manager", KUBE_CONTROLLER_MANAGER_ENV),
    ):
        override = os.environ.get(env)
        if override:
            if not _is_executable(Path(override)):
                raise ControlPlaneError(f"${env}={override} is not an executable file")
            found[name] = Path(override)
        elif bin_dir is not None and _is_executable(bin_dir / name):
            found[name] = bin_dir / name
        elif name == "kubectl" and (on_path := shutil.which("kubectl")):
            found[name] = Path(on_path)
        else:
            found[name] = None
    missing = [name for name, path in found.items() if path is None]
    if missing:
        raise ControlPlaneError(
            f"control-plane binaries not found: {', '.join(missing)}; run `make controlplane` "
            f"(builds them into {cache_dir() / 'controlplane'}) or set ${KUBE_APISERVER_ENV}, "
            f"${ETCD_ENV}, ${KUBECTL_ENV} and ${KUBE_CONTROLLER_MANAGER_ENV}"
        )
    return Binaries(
        kube_apiserver=_required(found["kube-apiserver"]),
        etcd=_required(found["etcd"]),
        kubectl=_required(found["kubectl"]),
        kube_controller_manager=_required(found["kube-controller-manager"]),
    )


def _required(path: Path | None) -> Path:
    assert path is not None  # guaranteed by the `missing` check; narrows the type for mypy
    return path


# --- service-account keys ---------------------------------------------------------------------------


def write_service_account_keys(key_path: Path, pub_path: Path, *, prefer_openssl: bool = True) -> str:
    """Write an RSA-2048 private key (PEM) and its public key; return the method used.

    Uses the ``openssl`` CLI when present; otherwise a small pure-Python generator, so that neither
    case needs a Python dependency (``cryptography`` is not one of ours).
    """
    openssl = shutil.which("openssl") if prefer_openssl else None
    if openssl:
        for args in (
            ["genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", str(key_path)],
            ["pkey", "-in", str(key_path), "-pubout", "-out", str(pub_path)],
        ):
            subprocess.run([openssl, *args], check=True, capture_output=True, timeout=60)
        key_path.chmod(0o600)
        return "openssl"
    private_pem, public_pem = rsa_key_pair_pem()
    write_private(key_path, private_pem)
    pub_path.write_text(public_pem)
    return "python"


def rsa_key_pair_pem(bits: int = 2048) -> tuple[str, str]:
    """Generate an RSA key pair with the stdlib only: (PKCS#1 private key PEM, PKIX public key PEM).

    PKIX ("PUBLIC KEY") because that is the public form kube-apiserver's key loader accepts.
    """
    e = 65537
    while True:
        p, q = _random_prime(bits // 2), _random_prime(bits // 2)
        phi = (p - 1) * (q - 1)
        if p != q and (p * q).bit_length() == bits and math.gcd(e, phi) == 1:
            break
    n, d = p * q, pow(e, -1, phi)
    private = _der_integers(0, n, e, d, p, q, d % (p - 1), d % (q - 1), pow(q, -1, p))
    # SubjectPublicKeyInfo: AlgorithmIdentifier(rsaEncryption, NULL), BIT STRING(PKCS#1 RSAPublicKey).
    algorithm = _der(0x30, _der(0x06, _RSA_ENCRYPTION_OID) + _der(0x05, b""))
    public = _der(0x30, algorithm + _der(0x03, b"\x00" + _der_integers(n, e)))
    return _pem("RSA PRIVATE KEY", private), _pem("PUBLIC KEY", public)


_RSA_ENCRYPTION_OID = bytes.fromhex("2a864886f70d010101")  # 1.2.840.113549.1.1.1
_SMALL_PRIMES = [n for n in range(3, 2000, 2) if all(n % k for k in range(3, math.isqrt(n) + 1, 2))]


def _random_prime(bits: int) -> int:
    while True:
        # Top two bits set so that the product of two such primes has exactly 2*bits bits.
        candidate = secrets.randbits(bits) | (0b11 << (bits - 2)) | 1
        if all(candidate % small for small in _SMALL_PRIMES) and _probably_prime(candidate):
            return candidate


def _probably_prime(n: int, rounds: int = 40) -> bool:
    """Miller-Rabin with random bases (error probability below 4**-rounds)."""
    d, s = n - 1, 0
    while d % 2 == 0:
        d, s = d // 2, s + 1
    for _ in range(rounds):
        x = pow(secrets.randbelow(n - 3) + 2, d, n)
        if x in (1, n - 1):
            continue
        for _ in range(s - 1):
            x = pow(x, 2, n)
            if x == n - 1:
                break
        else:
            return False
    return True


def _der(tag: int, body: bytes) -> bytes:
    length = len(body)
    if length < 0x80:
        return bytes([tag, length]) + body
    encoded = length.to_bytes((length.bit_length() + 7) // 8, "big")
    return bytes([tag, 0x80 | len(encoded)]) + encoded + body


def _der_integers(*integers: int) -> bytes:
    """A DER SEQUENCE of non-negative INTEGERs."""
    # Minimal big-endian two's complement: the extra byte keeps a set high bit from reading negative.
    body = b"".join(_der(0x02, value.to_bytes(value.bit_length() // 8 + 1, "big")) for value in integers)
    return _der(0x30, body)


def _pem(label: str, der: bytes) -> str:
    b64 = base64.b64encode(der).decode()
    lines = [b64[i : i + 64] for i in range(0, len(b64), 64)]
    return "\n".join([f"-----BEGIN {label}-----", *lines, f"-----END {label}-----", ""])


# --- helpers ------------------------------------------------------------------------------------------


def _pem_certificates(text: str) -> list[str]:
    """Complete PEM certificate blocks in order; a block still being written (no END line) is dropped."""
    end = "-----END CERTIFICATE-----"
    return [block.strip() + "\n" + end + "\n" for block in text.split(end)[:-1] if "-----BEGIN" in block]


# --- the control plane ---------------------------------------------------------------------------------


class ControlPlane(Launched):
    """etcd + kube-apiserver + kube-controller-manager on 127.0.0.1, with everything in ``directory``.

    Use as a context manager or call ``start()`` / ``stop()``. ``stop()`` is idempotent and also runs at
    interpreter exit, so an aborted test run does not leave the processes behind.
    """

    def __init__(self, directory: Path, *, binaries: Binaries | None = None) -> None:
        self.directory = directory.resolve()
        self.binaries = binaries if binaries is not None else find_binaries()
        self.startup_seconds: float | None = None
        self.controller_manager_startup_seconds: float | None = None
        self.key_method: str | None = None
        self.admin_token = secrets.token_urlsafe(32)
        self.operator_token = secrets.token_urlsafe(32)
        self._etcd: subprocess.Popen[bytes] | None = None
        self._apiserver: subprocess.Popen[bytes] | None = None
        self._controller_manager: subprocess.Popen[bytes] | None = None
        self._logs: list[IO[bytes]] = []
        self._apiserver_port: int | None = None
        self._etcd_client_port: int | None = None
        self._etcd_peer_port: int | None = None
        self._controller_manager_port: int | None = None

    # paths and addresses

    @property
    def admin_kubeconfig(self) -> Path:
        return self.directory / "admin.kubeconfig"

    @property
    def operator_kubeconfig(self) -> Path:
        return self.directory / "operator.kubeconfig"

    @property
    def cert_dir(self) -> Path:
        return self.directory / "cert-dir"

    @property
    def ca_file(self) -> Path:
        """The CA that signed the apiserver's self-signed serving certificate (written on start)."""
        return self.directory / "ca.crt"

    @property
    def apiserver_log(self) -> Path:
        return self.directory / "kube-apiserver.log"

    @property
    def etcd_log(self) -> Path:
        return self.directory / "etcd.log"

    @property
    def controller_manager_log(self) -> Path:
        return self.directory / "kube-controller-manager.log"

    @property
    def url(self) -> str:
        if self._apiserver_port is None:
            raise ControlPlaneError("the control plane is not started")
        return f"https://127.0.0.1:{self._apiserver_port}"

    @property
    def etcd_url(self) -> str:
        if self._etcd_client_port is None:
            raise ControlPlaneError("the control plane is not started")
        return f"http://127.0.0.1:{self._etcd_client_port}"

    @property
    def ports(self) -> tuple[int, ...]:
        """Every port the processes listen on (empty when not started)."""
        candidates = (
            self._apiserver_port,
            self._etcd_client_port,
            self._etcd_peer_port,
            self._controller_manager_port,
        )
        return tuple(port for port in candidates if port is not None)

    @property
    def pids(self) -> tuple[int, ...]:
        processes = (self._controller_manager, self._apiserver, self._etcd)
        return tuple(proc.pid for proc in processes if proc is not None)

    # lifecycle

    def start(self) -> None:
        if self._etcd is not None or self._apiserver is not None:
            raise ControlPlaneError("the control plane is already started")
        started = time.monotonic()
        atexit.register(self.stop)
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            ports = free_ports(4)
            self._apiserver_port, self._etcd_client_port, self._etcd_peer_port = ports[:3]
            self._controller_manager_port = ports[3]
            self._start_etcd()
            self._write_credentials()
            self._start_apiserver()
            self._write_kubeconfigs()
            self._start_controller_manager()
        except BaseException:
            self.stop()
            raise
        self.startup_seconds = time.monotonic() - started

    def stop(self) -> None:
        """Terminate the controller manager, kube-apiserver, then etcd (SIGTERM, bounded wait, SIGKILL).
        Safe to call twice."""
        try:
            for process in (self._controller_manager, self._apiserver, self._etcd):
                if process is not None:
                    stop_process(process, STOP_TIMEOUT)
        finally:
            self._controller_manager = self._apiserver = self._etcd = None
            for log in self._logs:
                log.close()
            self._logs.clear()
            atexit.unregister(self.stop)

    def check_alive(self) -> None:
        """Raise with the log tail if a process has exited on its own."""
        for name, process, log in (
            ("kube-apiserver", self._apiserver, self.apiserver_log),
            ("etcd", self._etcd, self.etcd_log),
            ("kube-controller-manager", self._controller_manager, self.controller_manager_log),
        ):
            if process is not None and process.poll() is not None:
                raise ControlPlaneError(
                    f"{name} exited with code {process.returncode}; last lines of {log}:\n{tail(log)}"
                )

    def _spawn(self, command: Sequence[str], log_path: Path) -> subprocess.Popen[bytes]:
        log = log_path.open("ab")
        self._logs.append(log)
        return spawn(command, log, self.directory)

    def _start_etcd(self) -> None:
        data_dir = self.directory / "etcd"
        # The cluster is disposable: old data would carry a stale member with other peer URLs.
        shutil.rmtree(data_dir, ignore_errors=True)
        peer = f"http://127.0.0.1:{self._etcd_peer_port}"
        self._etcd = self._spawn(
            [
                str(self.binaries.etcd),
                "--name=druid-access",
                f"--data-dir={data_dir}",
                f"--listen-client-urls={self.etcd_url}",
                f"--advertise-client-urls={self.etcd_url}",
                f"--listen-peer-urls={peer}",
                f"--initial-advertise-peer-urls={peer}",
                f"--initial-cluster=druid-access={peer}",
                "--initial-cluster-state=new",
                "--log-level=warn",
                # Test data need not survive a power cut; fsync dominates write latency otherwise.
                "--unsafe-no-fsync",
            ],
            self.etcd_log,
        )
        deadline = time.monotonic() + ETCD_READY_TIMEOUT
        while True:
            self.check_alive()
            try:
                with urllib.request.urlopen(f"{self.etcd_url}/health", timeout=2) as response:  # noqa: S310
                    if json.load(response).get("health") == "true":
                        return
            except (OSError, ValueError):
                pass
            if time.monotonic() > deadline:
                raise ControlPlaneError(
                    f"etcd not healthy after {ETCD_READY_TIMEOUT:.0f} s; last lines of {self.etcd_log}:\n"
                    f"{tail(self.etcd_log)}"
                )
            time.sleep(0.1)

    def _write_credentials(self) -> None:
        self.cert_dir.mkdir(exist_ok=True)
        self.key_method = write_service_account_keys(
            self.directory / "service-account.key", self.directory / "service-account.pub"
        )
        rows = [
            (self.admin_token, ADMIN_USER, ADMIN_USER, ADMIN_GROUPS),
            (self.operator_token, OPERATOR_USER, OPERATOR_USER, OPERATOR_GROUPS),
        ]
        # Static token file format: token,user,uid,"group1,group2"
        text = "".join(f'{token},{user},{uid},"{",".join(groups)}"\n' for token, user, uid, groups in rows)
        write_private(self.directory / "tokens.csv", text)

    def _start_apiserver(self) -> None:
        self._apiserver = self._spawn(
            [
                str(self.binaries.kube_apiserver),
                "--bind-address=127.0.0.1",
                "--advertise-address=127.0.0.1",
                f"--secure-port={self._apiserver_port}",
                f"--etcd-servers={self.etcd_url}",
                f"--cert-dir={self.cert_dir}",
                f"--service-account-key-file={self.directory / 'service-account.pub'}",
                f"--service-account-signing-key-file={self.directory / 'service-account.key'}",
                f"--service-account-issuer={SERVICE_ACCOUNT_ISSUER}",
                f"--service-cluster-ip-range={SERVICE_CLUSTER_IP_RANGE}",
                "--authorization-mode=RBAC",
                f"--token-auth-file={self.directory / 'tokens.csv'}",
                "--profiling=false",
            ],
            self.apiserver_log,
        )
        self._wait_ready()

    def _wait_ready(self) -> None:
        """Poll /readyz (as admin: anonymous access to it needs RBAC bootstrap, which readyz waits for)."""
        serving_cert = self.cert_dir / "apiserver.crt"
        deadline = time.monotonic() + READY_TIMEOUT
        last_error = "no answer yet"
        while True:
            self.check_alive()
            # Rebuilt each round: the apiserver writes the file non-atomically early in its start-up.
            context = self._ssl_context(serving_cert) if serving_cert.is_file() else None
            if context is not None:
                request = urllib.request.Request(  # noqa: S310
                    f"{self.url}/readyz", headers={"Authorization": f"Bearer {self.admin_token}"}
                )
                try:
                    with urllib.request.urlopen(request, timeout=5, context=context) as response:  # noqa: S310
                        if response.status == 200:
                            return
                except urllib.error.HTTPError as error:
                    last_error = f"HTTP {error.code}: {error.read().decode(errors='replace')[-500:]}"
                except (OSError, ssl.SSLError) as error:
                    last_error = str(error)
            if time.monotonic() > deadline:
                raise ControlPlaneError(
                    f"kube-apiserver not ready after {READY_TIMEOUT:.0f} s ({last_error}); "
                    f"last lines of {self.apiserver_log}:\n{tail(self.apiserver_log)}"
                )
            time.sleep(0.2)

    def _start_controller_manager(self) -> None:
        """The deletion controllers, as the admin identity (system:masters), with health on /healthz."""
        started = time.monotonic()
        kubeconfig = str(self.admin_kubeconfig)
        self._controller_manager = self._spawn(
            [
                str(self.binaries.kube_controller_manager),
                f"--kubeconfig={kubeconfig}",
                f"--authentication-kubeconfig={kubeconfig}",
                f"--authorization-kubeconfig={kubeconfig}",
                f"--controllers={','.join(CONTROLLERS)}",
                "--leader-elect=false",
                "--bind-address=127.0.0.1",
                f"--secure-port={self._controller_manager_port}",
                f"--cert-dir={self.directory / 'controller-manager-certs'}",
                "--profiling=false",
            ],
            self.controller_manager_log,
        )
        # /healthz is served to anyone (authorization-always-allow-paths); its certificate is self-signed.
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        url = f"https://127.0.0.1:{self._controller_manager_port}/healthz"
        deadline = time.monotonic() + READY_TIMEOUT
        while True:
            self.check_alive()
            try:
                with urllib.request.urlopen(url, timeout=2, context=context) as response:
                    if response.status == 200:
                        break
            except (OSError, ssl.SSLError):
                pass
            if time.monotonic() > deadline:
                raise ControlPlaneError(
                    f"kube-controller-manager not healthy after {READY_TIMEOUT:.0f} s; last lines of "
                    f"{self.controller_manager_log}:\n{tail(self.controller_manager_log)}"
                )
            time.sleep(0.2)
        self.controller_manager_startup_seconds = time.monotonic() - started

    def _ssl_context(self, serving_cert: Path) -> ssl.SSLContext | None:
        """Trust the CA of the self-signed serving certificate: the file holds the leaf, then the CA."""
        blocks = _pem_certificates(serving_cert.read_text())
        if len(blocks) < 2:  # not completely written yet
            return None
        self.ca_file.write_text(blocks[-1])
        return ssl.create_default_context(cafile=str(self.ca_file))

    def _write_kubeconfigs(self) -> None:
        ca_data = base64.b64encode(self.ca_file.read_bytes()).decode()
        for path, user, token in (
            (self.admin_kubeconfig, "admin", self.admin_token),
            (self.operator_kubeconfig, "druid-access-operator", self.operator_token),
        ):
            config = {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [
                    {
                        "name": "druid-access-local",
                        "cluster": {"server": self.url, "certificate-authority-data": ca_data},
                    }
                ],
                "users": [{"name": user, "user": {"token": token}}],
                "contexts": [{"name": user, "context": {"cluster": "druid-access-local", "user": user}}],
                "current-context": user,
            }
            write_private(path, yaml.safe_dump(config, sort_keys=False))

    # tools

    def kubectl(
        self,
        *args: str,
        kubeconfig: Path | None = None,
        input: str | None = None,
        check: bool = True,
        timeout: float = KUBECTL_TIMEOUT,
    ) -> subprocess.CompletedProcess[str]:
        """Run kubectl against this control plane, as admin unless another kubeconfig is given."""
        command = [str(self.binaries.kubectl), f"--kubeconfig={kubeconfig or self.admin_kubeconfig}", *args]
        result = subprocess.run(
            command, input=input, capture_output=True, text=True, timeout=timeout, check=False
        )
        if check and result.returncode != 0:
            raise KubectlError(result.returncode, command, result.stdout, result.stderr)
        return result


def run_foreground(directory: Path) -> int:
    """Run the control plane until SIGINT/SIGTERM (``druid-access-testing controlplane --dir DIR``)."""
    stop_requested: list[int] = []

    def request_stop(signum: int, frame: FrameType | None) -> None:
        # Only record it: stopping from inside a signal handler could re-enter start() or stop().
        stop_requested.append(signum)

    previous = {sig: signal.signal(sig, request_stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        with ControlPlane(directory) as plane:
            print(f"control plane ready at {plane.url} in {plane.startup_seconds:.1f} s")
            print(f"admin kubeconfig:    {plane.admin_kubeconfig}")
            print(f"operator kubeconfig: {plane.operator_kubeconfig}")
            print(f"try: kubectl --kubeconfig {plane.admin_kubeconfig} get ns")
            print("stop with Ctrl-C (or SIGTERM)", flush=True)
            while not stop_requested:
                plane.check_alive()
                time.sleep(0.2)
    except ControlPlaneError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 0
