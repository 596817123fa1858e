"""A real Apache Druid Coordinator with druid-basic-security, run locally for the contract tests.

No Docker and no Druid tarball: ``make druid`` (``hack/build-druid.sh``) resolves the Coordinator's class
path from Maven Central with a throw-away pom (``druid/pom.xml``) into
``$DRUID_ACCESS_CACHE/druid/<version>/lib``; ``find_druid_lib`` locates it. ``DruidCoordinator`` then starts,
inside one directory:

- ZooKeeper from the same class path (``ZooKeeperServerMain``, AdminServer off) on a free 127.0.0.1 port;
- one Coordinator with an embedded Derby metadata store (its network server on another free 127.0.0.1
  port, database under the directory), the ``basic`` authenticator, authorizer and escalator under the
  names given, and ``admin`` / ``druid_system`` bootstrapped with the given passwords.

Every start is fresh: the ZooKeeper data and the Derby database left by an earlier run are removed.

Versions: 27.0.0 (the default) and 37.0.0 (``SUPPORTED_VERSIONS``), the releases of
``druid-basic-security`` that the Maven Central reachable here serves and that run on Java 17. Neither
can use Druid's own ``Main``: 27.0.0's ``druid-indexing-hadoop`` jar is not served, and ``Main`` reflects
over the Hadoop indexer command's fields, so the Coordinator is started through a trimmed copy of
``Main`` (``druid/launcher/CoordinatorMain.java``, main class ``druidaccess.CoordinatorMain``). 37.0.0's
``druid-sql`` and ``druid-multi-stage-query`` are not served either; ``druid/pom.xml`` leaves them out
and ``druid/launcher/msq-stubs`` supplies the three empty MSQ Guice modules its Coordinator
instantiates. How the two versions answer differently is in ``docs/druid-versions.md``.

Beyond one plain Coordinator: ``tls=`` (``make_tls_material``) serves HTTPS only with a certificate of
a generated CA; ``zookeeper=`` / ``metadata_uri=`` join a ``SharedState`` (ZooKeeper and a Derby network
server that outlive any one Coordinator) so that several Coordinators form one cluster with a leader;
``extra_properties=`` adds e.g. an LDAP authenticator/authorizer pair (``testing/ldap.py``).

Observed: an authenticator/authorizer name failing ``IdUtils.validateId`` (e.g. ``.x``) is answered
with a 500 HTML error page, not a 400 JSON one.
"""

from __future__ import annotations

import atexit
import base64
import json
import os
import re
import secrets
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import IO

from druid_access.testing.processes import Launched, free_ports, spawn, stop_process, tail, write_private

DRUID_VERSION = "27.0.0"
"""The default version; keep in sync with ``druid.version`` in ``druid/pom.xml`` (a contract test checks it)."""
SUPPORTED_VERSIONS = ("27.0.0", "37.0.0")
"""The versions ``make druid`` builds and the suite runs (Makefile ``DRUID_VERSIONS``): the releases
of ``druid-basic-security`` that Maven Central here serves and that run on Java 17."""
NEWEST_VERSION = SUPPORTED_VERSIONS[-1]
"""What ``make demo`` runs."""

CACHE_ENV = "DRUID_ACCESS_CACHE"
LIB_ENV = "DRUID_ACCESS_DRUID_LIB"
JAVA_ENV = "DRUID_ACCESS_JAVA"

MAIN_CLASS = "druidaccess.CoordinatorMain"
LAUNCHER_JAR = "druid-access-launcher.jar"
ZOOKEEPER_MAIN = "org.apache.zookeeper.server.ZooKeeperServerMain"
DERBY_MAIN = "org.apache.derby.drda.NetworkServerControl"

INTERNAL_USER = "druid_system"
ADMIN_USER = "admin"

READY_TIMEOUT = 180.0
ZOOKEEPER_READY_TIMEOUT = 30.0
STOP_TIMEOUT = 30.0
POLL_INTERVAL = 0.25

# What Druid's bin/run-java adds on Java 11+.
JAVA17_FLAGS = (
    "--add-exports=java.base/jdk.internal.misc=ALL-UNNAMED",
    "--add-exports=java.base/jdk.internal.ref=ALL-UNNAMED",
    "--add-opens=java.base/java.nio=ALL-UNNAMED",
    "--add-opens=java.base/sun.nio.ch=ALL-UNNAMED",
    "--add-opens=java.base/jdk.internal.ref=ALL-UNNAMED",
    "--add-opens=java.base/java.io=ALL-UNNAMED",
    "--add-opens=java.base/java.lang=ALL-UNNAMED",
    "--add-opens=jdk.management/com.sun.management.internal=ALL-UNNAMED",
)

# Property keys embed the authenticator/authorizer names, so they must not contain '.', '=', etc.
_NAME = re.compile(r"[A-Za-z0-9_-]+")

LOG4J2_XML = """\
<?xml version="1.0" encoding="UTF-8" ?>
<Configuration status="WARN">
  <Appenders>
    <Console name="Console" target="SYSTEM_OUT">
      <PatternLayout pattern="%d{ISO8601} %p [%t] %c - %m%n"/>
    </Console>
  </Appenders>
  <Loggers>
    <Root level="info"><AppenderRef ref="Console"/></Root>
    <!-- Every coordinator duty cycle logs at INFO; keep the log readable in test failures. -->
    <Logger name="org.apache.druid.server.coordinator" level="warn" additivity="false">
      <AppenderRef ref="Console"/>
    </Logger>
    <Logger name="org.apache.zookeeper" level="warn" additivity="false"><AppenderRef ref="Console"/></Logger>
    <Logger name="org.apache.curator" level="warn" additivity="false"><AppenderRef ref="Console"/></Logger>
  </Loggers>
</Configuration>
"""


class DruidError(RuntimeError):
    """The Druid class path could not be found, or the Coordinator could not be started or used."""


# --- locating the class path and java -------------------------------------------------------------


def cache_dir() -> Path:
    """The root of the build cache, shared with ``hack/build-druid.sh``."""
    configured = os.environ.get(CACHE_ENV)
    return Path(configured) if configured else Path.home() / ".cache" / "druid-access"


def _is_complete_lib(lib: Path) -> bool:
    return (lib / LAUNCHER_JAR).is_file() and any(lib.glob("druid-services-*.jar"))


def find_druid_lib(version: str = DRUID_VERSION) -> Path:
    """The directory of Coordinator jars: ``$DRUID_ACCESS_DRUID_LIB`` (for the default version only),
    else the ``make druid`` cache of ``version``."""
    override = os.environ.get(LIB_ENV) if version == DRUID_VERSION else None
    if override:
        lib = Path(override)
        if not _is_complete_lib(lib):
            raise DruidError(
                f"${LIB_ENV}={override} holds no druid-services-*.jar and {LAUNCHER_JAR}; "
                "point it at a lib dir built by hack/build-druid.sh"
            )
        return lib
    lib = cache_dir() / "druid" / version / "lib"
    if not _is_complete_lib(lib):
        raise DruidError(
            f"the Druid {version} Coordinator class path is not built ({lib} is missing or incomplete); "
            f"run `make druid DRUID_VERSION={version}` (hack/build-druid.sh resolves it from Maven Central)"
        )
    return lib


def find_java() -> Path:
    """``$DRUID_ACCESS_JAVA``, else ``$JAVA_HOME/bin/java``, else ``java`` on PATH."""
    override = os.environ.get(JAVA_ENV)
    if override:
        return Path(override)
    java_home = os.environ.get("JAVA_HOME")
    if java_home and (Path(java_home) / "bin" / "java").is_file():
        return Path(java_home) / "bin" / "java"
    on_path = shutil.which("java")
    if on_path is None:
        raise DruidError(
            "java is not on PATH; install a JDK 17 (e.g. apt-get install openjdk-17-jdk-headless)"
        )
    return Path(on_path)


# --- helpers ------------------------------------------------------------------------------------------


def escape_property(value: str) -> str:
    """Encode ``value`` for a ``java.util.Properties`` file, pure ASCII so the file's charset cannot matter.

    Non-ASCII characters become ``\\u`` escapes of four hex digits (UTF-16 code units, as
    ``Properties.load`` expects), so a
    password round-trips exactly whether Java reads the file as ISO-8859-1 or UTF-8.
    """
    out: list[str] = []
    for index, char in enumerate(value):
        code = ord(char)
        if char == "\\":
            out.append("\\\\")
        elif char in "\t\n\r\f":
            out.append({"\t": "\\t", "\n": "\\n", "\r": "\\r", "\f": "\\f"}[char])
        elif char in "=:#!" or (char == " " and index == 0):
            out.append("\\" + char)
        elif 0x20 <= code < 0x7F:
            out.append(char)
        else:
            encoded = char.encode("utf-16-be")
            out.extend(f"\\u{encoded[i : i + 2].hex().upper()}" for i in range(0, len(encoded), 2))
    return "".join(out)


def render_properties(properties: Mapping[str, str]) -> str:
    lines = ["# Written by druid_access.testing.druid; regenerated on every start."]
    lines.extend(f"{key}={escape_property(value)}" for key, value in properties.items())
    return "\n".join(lines) + "\n"


def rss_bytes(pid: int) -> int | None:
    """Resident set size of a process from ``/proc`` (None when it is gone or /proc is unavailable)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


# --- TLS -------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TlsMaterial:
    """A test CA and a server certificate for 127.0.0.1/localhost, as Jetty and Python need them."""

    ca_pem: Path  # the CA certificate, what the operator's ``caBundle`` points at
    keystore: Path  # PKCS#12: the server key and certificate chain (Jetty's key store)
    keystore_password: str
    alias: str = "druid"

    def client_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.ca_pem))


def make_tls_material(directory: Path, *, hosts: Sequence[str] = ("127.0.0.1", "localhost")) -> TlsMaterial:
    """Generate a CA (``trustme``) and a server certificate signed by it, under ``directory``."""
    import trustme  # test-only dependency, loaded only when TLS is asked for
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.serialization import pkcs12
    from cryptography.x509 import load_pem_x509_certificates

    directory.mkdir(parents=True, exist_ok=True)
    ca = trustme.CA(organization_name="druid-access test CA")
    server = ca.issue_cert(*hosts)
    ca_pem = directory / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_pem))
    key = serialization.load_pem_private_key(server.private_key_pem.bytes(), password=None)
    chain = load_pem_x509_certificates(b"".join(blob.bytes() for blob in server.cert_chain_pems))
    password = secrets.token_urlsafe(16)
    keystore = directory / "server.p12"
    keystore.write_bytes(
        pkcs12.serialize_key_and_certificates(
            b"druid",
            key,  # type: ignore[arg-type]  # an EC or RSA key, both accepted by PKCS#12
            chain[0],
            chain[1:],
            serialization.BestAvailableEncryption(password.encode()),
        )
    )
    keystore.chmod(0o600)
    return TlsMaterial(ca_pem=ca_pem, keystore=keystore, keystore_password=password)


# --- the Coordinator -------------------------------------------------------------------------------------


class DruidCoordinator(Launched):
    """ZooKeeper + one Druid Coordinator on 127.0.0.1, with everything in ``directory``.

    Use as a context manager or call ``start()`` / ``stop()``. ``stop()`` is idempotent and also runs at
    interpreter exit. After ``start()``: ``url`` is the Coordinator's base URL, ``startup_seconds`` the time
    from spawning ZooKeeper until both ``loadStatus`` endpoints report the caches loaded, and
    ``coordinator_startup_seconds`` the same from spawning the Coordinator.
    """

    def __init__(
        self,
        directory: Path,
        *,
        admin_password: str,
        internal_password: str | None = None,
        authenticator: str = "basic",
        authorizer: str = "basic",
        credential_iterations: int | None = None,
        version: str = DRUID_VERSION,
        extra_properties: Mapping[str, str] | None = None,
        tls: TlsMaterial | None = None,
        zookeeper: str | None = None,
        metadata_uri: str | None = None,
        lib: Path | None = None,
        java: Path | None = None,
        heap: str = "512m",
        ready_timeout: float = READY_TIMEOUT,
    ) -> None:
        for kind, name in (("authenticator", authenticator), ("authorizer", authorizer)):
            if not _NAME.fullmatch(name):
                raise ValueError(
                    f"{kind} name {name!r} must match {_NAME.pattern} (it is part of property keys)"
                )
        for kind, password in (("admin", admin_password), ("internal", internal_password)):
            if password is not None and (not password or ":" in password):
                # Druid refuses empty passwords; 27 cannot log in with one containing ':' (docs/druid-versions.md).
                raise ValueError(f"the {kind} password must be non-empty and must not contain ':'")
        if credential_iterations is not None and credential_iterations < 1:
            raise ValueError("credential_iterations must be positive")
        self.directory = directory.resolve()
        self.admin_password = admin_password
        self.internal_password = internal_password or secrets.token_urlsafe(24)
        self.authenticator = authenticator
        self.authorizer = authorizer
        self.credential_iterations = credential_iterations
        self.version = version
        self.extra_properties = dict(extra_properties or {})
        self.tls = tls
        # Several Coordinators share ZooKeeper and the metadata store (see SharedState); a single
        # one starts its own ZooKeeper and keeps its Derby database in its directory.
        self.external_zookeeper = zookeeper
        self.metadata_uri = metadata_uri
        self.lib = lib if lib is not None else find_druid_lib(version)
        self.java = java if java is not None else find_java()
        self.heap = heap
        self.ready_timeout = ready_timeout
        self.startup_seconds: float | None = None
        self.coordinator_startup_seconds: float | None = None
        self._zookeeper: subprocess.Popen[bytes] | None = None
        self._coordinator: subprocess.Popen[bytes] | None = None
        self._logs: list[IO[bytes]] = []
        self._port: int | None = None
        self._zookeeper_port: int | None = None
        self._derby_port: int | None = None

    def __repr__(self) -> str:
        where = self.url if self._port is not None else "not started"
        return f"DruidCoordinator({where}, directory={str(self.directory)!r})"

    # paths and addresses

    @property
    def log_path(self) -> Path:
        """The Coordinator's stdout/stderr (log4j2 writes to the console)."""
        return self.directory / "coordinator.log"

    @property
    def zookeeper_log_path(self) -> Path:
        return self.directory / "zookeeper.log"

    @property
    def conf_dir(self) -> Path:
        return self.directory / "conf"

    @property
    def coordinator_pid(self) -> int | None:
        """The Coordinator JVM's process id while it runs (benchmarks read its CPU time)."""
        return self._coordinator.pid if self._coordinator is not None else None

    @property
    def url(self) -> str:
        if self._port is None:
            raise DruidError("the Coordinator is not started")
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self._port}"

    @property
    def port(self) -> int:
        if self._port is None:
            raise DruidError("the Coordinator is not started")
        return self._port

    @property
    def zookeeper_address(self) -> str:
        if self.external_zookeeper is not None:
            return self.external_zookeeper
        if self._zookeeper_port is None:
            raise DruidError("ZooKeeper is not started")
        return f"127.0.0.1:{self._zookeeper_port}"

    @property
    def ports(self) -> tuple[int, ...]:
        """Every port the processes listen on (empty when not started)."""
        candidates = (self._port, self._zookeeper_port, self._derby_port)
        return tuple(port for port in candidates if port is not None)

    @property
    def pids(self) -> dict[str, int]:
        processes = (("coordinator", self._coordinator), ("zookeeper", self._zookeeper))
        return {name: proc.pid for name, proc in processes if proc is not None}

    def memory_rss(self) -> dict[str, int | None]:
        """Resident memory (bytes) of each running process, from /proc."""
        return {name: rss_bytes(pid) for name, pid in self.pids.items()}

    # lifecycle

    def start(self) -> None:
        if self._zookeeper is not None or self._coordinator is not None:
            raise DruidError("the Coordinator is already started")
        started = time.monotonic()
        atexit.register(self.stop)
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            if self._port is None:  # a restart keeps its addresses, as a restarted pod keeps its Service
                self._port, zookeeper_port, self._derby_port = free_ports(3)
                self._zookeeper_port = None if self.external_zookeeper else zookeeper_port
            self._prepare_directory()
            if self.external_zookeeper is None:
                self._start_zookeeper()
            coordinator_started = time.monotonic()
            self._start_coordinator()
            self._wait_ready()
            self.coordinator_startup_seconds = time.monotonic() - coordinator_started
        except BaseException:
            self.stop()
            raise
        self.startup_seconds = time.monotonic() - started

    def stop(self) -> None:
        """Terminate the Coordinator, then ZooKeeper (SIGTERM, bounded wait, SIGKILL). Safe to call twice."""
        try:
            for process in (self._coordinator, self._zookeeper):
                if process is not None:
                    stop_process(process, STOP_TIMEOUT)
        finally:
            self._coordinator = self._zookeeper = None
            for log in self._logs:
                log.close()
            self._logs.clear()
            atexit.unregister(self.stop)

    def kill(self) -> None:
        """SIGKILL the Coordinator, as a crash or a lost node would; ``start()`` may follow."""
        if self._coordinator is not None:
            self._coordinator.kill()
            self._coordinator.wait(STOP_TIMEOUT)
        self.stop()

    def check_alive(self) -> None:
        """Raise with the log tail if a process has exited on its own."""
        for name, process, log in (
            ("Druid Coordinator", self._coordinator, self.log_path),
            ("ZooKeeper", self._zookeeper, self.zookeeper_log_path),
        ):
            if process is not None and process.poll() is not None:
                raise DruidError(
                    f"{name} exited with code {process.returncode}; last lines of {log}:\n{tail(log)}"
                )

    # configuration

    def runtime_properties(self) -> dict[str, str]:
        """The Coordinator's ``runtime.properties`` (a single-node Coordinator bound to 127.0.0.1)."""
        var = self.directory / "var"
        props = {
            "druid.host": "127.0.0.1",
            # Without it Jetty listens on every interface although druid.host is 127.0.0.1 (checked).
            "druid.bindOnHost": "true",
            "druid.service": "druid/coordinator",
            **self._port_properties(),
            # basic-security is on the class path: ServiceLoader finds it, nothing to load from disk.
            "druid.extensions.loadList": "[]",
            "druid.extensions.directory": str(var / "no-extensions"),
            "druid.zk.service.host": self.zookeeper_address,
            "druid.zk.paths.base": "/druid",
            "druid.metadata.storage.type": "derby",
            "druid.metadata.storage.connector.connectURI": self.metadata_uri
            or f"jdbc:derby://127.0.0.1:{self._derby_port}/{var / 'metadata.db'};create=true",
            "druid.metadata.storage.connector.host": "127.0.0.1",
            "druid.metadata.storage.connector.port": str(self._derby_port),
            "druid.storage.type": "local",
            "druid.storage.storageDirectory": str(var / "segments"),
            "druid.indexer.logs.type": "file",
            "druid.indexer.logs.directory": str(var / "indexing-logs"),
            "druid.coordinator.startDelay": "PT10S",
            "druid.coordinator.period": "PT5S",
            "druid.coordinator.asOverlord.enabled": "false",
            "druid.emitter": "noop",
            "druid.auth.authenticatorChain": json.dumps([self.authenticator]),
            f"druid.auth.authenticator.{self.authenticator}.type": "basic",
            f"druid.auth.authenticator.{self.authenticator}.initialAdminPassword": self.admin_password,
            f"druid.auth.authenticator.{self.authenticator}.initialInternalClientPassword": (
                self.internal_password
            ),
            f"druid.auth.authenticator.{self.authenticator}.credentialsValidator.type": "metadata",
            f"druid.auth.authenticator.{self.authenticator}.skipOnFailure": "false",
            f"druid.auth.authenticator.{self.authenticator}.authorizerName": self.authorizer,
            "druid.auth.authorizers": json.dumps([self.authorizer]),
            f"druid.auth.authorizer.{self.authorizer}.type": "basic",
            "druid.escalator.type": "basic",
            "druid.escalator.internalClientUsername": INTERNAL_USER,
            "druid.escalator.internalClientPassword": self.internal_password,
            "druid.escalator.authorizerName": self.authorizer,
        }
        if self.credential_iterations is not None:
            key = f"druid.auth.authenticator.{self.authenticator}.credentialIterations"
            props[key] = str(self.credential_iterations)
        # Further authenticators/authorizers (e.g. an LDAP pair) or overrides of the above.
        props.update(self.extra_properties)
        return props

    def _port_properties(self) -> dict[str, str]:
        if self.tls is None:
            return {"druid.plaintextPort": str(self._port)}
        return {
            "druid.enablePlaintextPort": "false",
            "druid.enableTlsPort": "true",
            "druid.tlsPort": str(self._port),
            "druid.server.https.keyStorePath": str(self.tls.keystore),
            "druid.server.https.keyStoreType": "pkcs12",
            "druid.server.https.keyStorePassword": self.tls.keystore_password,
            "druid.server.https.certAlias": self.tls.alias,
        }

    def _prepare_directory(self) -> None:
        # Every start is fresh: an old Derby database would keep the old admin password (Druid never
        # resets it), and old ZooKeeper data would hold stale announcements.
        for stale in ("var", "zookeeper", "tmp"):
            shutil.rmtree(self.directory / stale, ignore_errors=True)
        for sub in ("var", "zookeeper", "tmp", "conf"):
            (self.directory / sub).mkdir(exist_ok=True)
        write_private(self.conf_dir / "runtime.properties", render_properties(self.runtime_properties()))
        (self.conf_dir / "log4j2.xml").write_text(LOG4J2_XML)
        zoo_cfg = {
            "dataDir": str(self.directory / "zookeeper"),
            "clientPort": str(self._zookeeper_port),
            "clientPortAddress": "127.0.0.1",
            "tickTime": "2000",
            "admin.enableServer": "false",
        }
        (self.conf_dir / "zoo.cfg").write_text(render_properties(zoo_cfg))

    def _java_command(
        self, main: str, args: Sequence[str], *, heap: str, extra: Sequence[str] = ()
    ) -> list[str]:
        return [
            str(self.java),
            f"-Xmx{heap}",
            "-Duser.timezone=UTC",
            "-Dfile.encoding=UTF-8",
            f"-Djava.io.tmpdir={self.directory / 'tmp'}",
            f"-Dlog4j.configurationFile={self.conf_dir / 'log4j2.xml'}",
            *extra,
            "-cp",
            f"{self.conf_dir}:{self.lib}/*",
            main,
            *args,
        ]

    def _spawn(self, command: Sequence[str], log_path: Path) -> subprocess.Popen[bytes]:
        log = log_path.open("ab")
        self._logs.append(log)
        return spawn(command, log, self.directory)

    def _start_zookeeper(self) -> None:
        command = self._java_command(
            ZOOKEEPER_MAIN,
            [str(self.conf_dir / "zoo.cfg")],
            heap="128m",
            extra=["-Dzookeeper.admin.enableServer=false"],
        )
        self._zookeeper = self._spawn(command, self.zookeeper_log_path)
        deadline = time.monotonic() + ZOOKEEPER_READY_TIMEOUT
        while True:
            self.check_alive()
            try:
                with socket.create_connection(("127.0.0.1", self._zookeeper_port or 0), timeout=1):
                    return
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise DruidError(
                    f"ZooKeeper not listening on {self.zookeeper_address} after {ZOOKEEPER_READY_TIMEOUT:.0f} s; "
                    f"last lines of {self.zookeeper_log_path}:\n{tail(self.zookeeper_log_path)}"
                )
            time.sleep(0.1)

    def _start_coordinator(self) -> None:
        command = self._java_command(
            MAIN_CLASS,
            ["server", "coordinator"],
            heap=self.heap,
            extra=[
                *JAVA17_FLAGS,
                "-Ddruid.node.type=coordinator",
                f"-Dderby.stream.error.file={self.directory / 'var' / 'derby.log'}",
            ],
        )
        self._coordinator = self._spawn(command, self.log_path)

    # readiness

    def _get(self, path: str, *, auth: tuple[str, str] | None) -> tuple[int, bytes]:
        request = urllib.request.Request(f"{self.url}{path}")  # noqa: S310 - our own loopback URL
        if auth is not None:
            token = base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode("ascii")
            request.add_header("Authorization", f"Basic {token}")
        context = self.tls.client_context() if self.tls else None
        try:
            with urllib.request.urlopen(request, timeout=5, context=context) as response:  # noqa: S310
                return response.status, response.read()
        except urllib.error.HTTPError as error:
            return error.code, error.read()

    def load_status(self) -> tuple[dict[str, bool], dict[str, bool]]:
        """(authentication, authorization) ``loadStatus`` maps, read as admin."""
        maps: list[dict[str, bool]] = []
        for store in ("authentication", "authorization"):
            status, body = self._get(
                f"/druid-ext/basic-security/{store}/loadStatus", auth=(ADMIN_USER, self.admin_password)
            )
            if status != 200:
                raise DruidError(f"{store}/loadStatus answered HTTP {status}: {body[:300]!r}")
            maps.append({str(k): bool(v) for k, v in json.loads(body).items()})
        return maps[0], maps[1]

    def _wait_ready(self) -> None:
        """Poll ``/status/health`` (unsecured), then both ``loadStatus`` endpoints as admin."""
        deadline = time.monotonic() + self.ready_timeout
        last = "no answer yet"
        while True:
            self.check_alive()
            try:
                status, body = self._get("/status/health", auth=None)
                if status == 200 and body.strip() == b"true":
                    authn, authz = self.load_status()
                    if authn.get(self.authenticator) and authz.get(self.authorizer):
                        return
                    last = f"loadStatus authentication={authn} authorization={authz}"
                else:
                    last = f"/status/health answered HTTP {status}: {body[:200]!r}"
            except (OSError, ValueError, DruidError) as error:
                last = str(error)
            if time.monotonic() > deadline:
                raise DruidError(
                    f"Druid Coordinator not ready after {self.ready_timeout:.0f} s ({last}); "
                    f"last lines of {self.log_path}:\n{tail(self.log_path)}"
                )
            time.sleep(POLL_INTERVAL)


class SharedState(Launched):
    """ZooKeeper and a Derby network server that several Coordinators share (high availability).

    Both outlive any one Coordinator, as a real cluster's ZooKeeper ensemble and metadata database
    do, so a leader can be killed and another take over with the same users and roles.
    """

    def __init__(
        self,
        directory: Path,
        *,
        version: str = DRUID_VERSION,
        lib: Path | None = None,
        java: Path | None = None,
    ) -> None:
        self.directory = directory.resolve()
        self.lib = lib if lib is not None else find_druid_lib(version)
        self.java = java if java is not None else find_java()
        self._processes: list[tuple[str, subprocess.Popen[bytes], Path]] = []
        self._logs: list[IO[bytes]] = []
        self._zookeeper_port = 0
        self._derby_port = 0

    @property
    def zookeeper(self) -> str:
        return f"127.0.0.1:{self._zookeeper_port}"

    @property
    def metadata_uri(self) -> str:
        return f"jdbc:derby://127.0.0.1:{self._derby_port}/{self.directory / 'metadata.db'};create=true"

    def start(self) -> None:
        atexit.register(self.stop)
        try:
            for stale in ("zookeeper", "metadata.db", "tmp"):
                shutil.rmtree(self.directory / stale, ignore_errors=True)
            for sub in ("zookeeper", "tmp", "conf"):
                (self.directory / sub).mkdir(parents=True, exist_ok=True)
            self._zookeeper_port, self._derby_port = free_ports(2)
            conf = self.directory / "conf"
            zoo_cfg = {
                "dataDir": str(self.directory / "zookeeper"),
                "clientPort": str(self._zookeeper_port),
                "clientPortAddress": "127.0.0.1",
                "tickTime": "500",  # sessions of killed Coordinators expire within seconds
                "minSessionTimeout": "1000",
                "admin.enableServer": "false",
            }
            (conf / "zoo.cfg").write_text(render_properties(zoo_cfg))
            (conf / "log4j2.xml").write_text(LOG4J2_XML)
            self._spawn("zookeeper", ZOOKEEPER_MAIN, [str(conf / "zoo.cfg")])
            derby_args = ["start", "-h", "127.0.0.1", "-p", str(self._derby_port), "-noSecurityManager"]
            self._spawn("derby", DERBY_MAIN, derby_args, [f"-Dderby.system.home={self.directory}"])
            for port in (self._zookeeper_port, self._derby_port):
                self._wait_listening(port)
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        try:
            for _, process, _ in reversed(self._processes):
                stop_process(process, STOP_TIMEOUT)
        finally:
            self._processes.clear()
            for log in self._logs:
                log.close()
            self._logs.clear()
            atexit.unregister(self.stop)

    def _spawn(self, name: str, main: str, args: Sequence[str], extra: Sequence[str] = ()) -> None:
        conf = self.directory / "conf"
        command = [
            str(self.java),
            "-Xmx128m",
            f"-Djava.io.tmpdir={self.directory / 'tmp'}",
            f"-Dlog4j.configurationFile={conf / 'log4j2.xml'}",
            "-Dzookeeper.admin.enableServer=false",
            *extra,
            "-cp",
            f"{conf}:{self.lib}/*",
            main,
            *args,
        ]
        log_path = self.directory / f"{name}.log"
        log = log_path.open("ab")
        self._logs.append(log)
        self._processes.append((name, spawn(command, log, self.directory), log_path))

    def _wait_listening(self, port: int) -> None:
        deadline = time.monotonic() + ZOOKEEPER_READY_TIMEOUT
        while True:
            for name, process, log_path in self._processes:
                if process.poll() is not None:
                    raise DruidError(f"{name} exited with code {process.returncode}:\n{tail(log_path)}")
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    return
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise DruidError(f"nothing listens on 127.0.0.1:{port} after {ZOOKEEPER_READY_TIMEOUT:.0f} s")
            time.sleep(0.1)


def run_foreground(directory: Path, *, admin_password: str, version: str = DRUID_VERSION) -> int:
    """Run ZooKeeper + a Coordinator until SIGINT/SIGTERM (``druid-access-testing druid --dir DIR --admin-password PW``)."""
    stop_requested: list[int] = []

    def request_stop(signum: int, frame: FrameType | None) -> None:
        # Only record it: stopping from inside a signal handler could re-enter start() or stop().
        stop_requested.append(signum)

    previous = {sig: signal.signal(sig, request_stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        with DruidCoordinator(directory, admin_password=admin_password, version=version) as druid:
            print(f"Druid {version} Coordinator ready at {druid.url} in {druid.startup_seconds:.1f} s")
            print(f"log: {druid.log_path}")
            print(
                f"try: curl -u admin:PASSWORD {druid.url}/druid-ext/basic-security/authentication/db/basic/users"
            )
            print("stop with Ctrl-C (or SIGTERM)", flush=True)
            while not stop_requested:
                druid.check_alive()
                time.sleep(0.2)
    except (DruidError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 0
