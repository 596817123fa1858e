"""Where the operator's own Kubernetes client connects, and as whom.

The same two sources kopf's watches log in with (``runner.login``): the pod's ServiceAccount,
else a kubeconfig (``--kubeconfig``-style path, else ``KUBECONFIG``, else ``~/.kube/config``),
read as kubectl reads it: the first file naming a context, cluster or user wins, and relative
file paths are relative to the file that names them. Static credentials only (a bearer token or
token file, client certificate and key, basic auth); an exec or auth-provider plugin is refused
with a message that says so, as kopf's login cannot follow it either.

A ServiceAccount token is rotated by the kubelet, so ``Connection.authorization`` reads its file
again once a minute, as client-go does.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import os
import ssl
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

SERVICE_ACCOUNT = Path("/var/run/secrets/kubernetes.io/serviceaccount")
# How long a token read from a file is used before the file is read again.
TOKEN_REREAD_SECONDS = 60.0
# Where a merged entry came from: its relative paths are relative to that file's directory.
_DIRECTORY = "__directory__"


class KubeconfigError(Exception):
    """No usable credentials: what is missing or unsupported, never a credential's value."""


@dataclass
class Connection:
    """An API server's URL, the TLS context to reach it, and how to authenticate."""

    server: str
    ssl_context: ssl.SSLContext | None  # None: plain HTTP (a local test server)
    token: str | None = None
    token_path: Path | None = None  # read again when due; what it last held wins over ``token``
    basic: tuple[str, str] | None = None
    tls_server_name: str | None = None  # the name the server's certificate is checked against
    proxy: str | None = None
    _token_read_at: float = field(default=0.0, repr=False)

    def __repr__(self) -> str:  # no credential in any representation
        return f"Connection(server={self.server!r})"

    def authorization(self) -> str | None:
        """The Authorization header's value now (a token file is read again when due)."""
        if self.token_path is not None and time.monotonic() - self._token_read_at >= TOKEN_REREAD_SECONDS:
            self._token_read_at = time.monotonic()
            # An empty or unreadable file (being rotated) keeps the last token; the API server
            # says when that one expired.
            with contextlib.suppress(OSError, UnicodeDecodeError):
                self.token = self.token_path.read_text(encoding="utf-8").strip() or self.token
        if self.token:
            return f"Bearer {self.token}"
        if self.basic is not None:
            user, password = self.basic
            return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode("ascii")
        return None


def in_cluster(
    directory: Path = SERVICE_ACCOUNT, environ: Mapping[str, str] | None = None
) -> Connection | None:
    """The pod's ServiceAccount (token, CA and the service's address); None outside a pod."""
    env = os.environ if environ is None else environ
    host, port = env.get("KUBERNETES_SERVICE_HOST"), env.get("KUBERNETES_SERVICE_PORT")
    token = directory / "token"
    if not host or not port or not token.exists():
        return None
    if ":" in host:  # an IPv6 address
        host = f"[{host}]"
    ca = directory / "ca.crt"
    try:
        context = ssl.create_default_context(cafile=str(ca))  # this CA only, as kubectl
    except (OSError, ssl.SSLError) as error:
        raise KubeconfigError(f"cannot use the ServiceAccount's CA {ca}: {type(error).__name__}") from None
    return _checked(Connection(f"https://{host}:{port}", context, token_path=token), str(token))


def from_kubeconfig(path: str | None = None, environ: Mapping[str, str] | None = None) -> Connection:
    """The current context of the kubeconfig file(s) at ``path`` (a ``KUBECONFIG``-style list)."""
    env = os.environ if environ is None else environ
    spec = path or env.get("KUBECONFIG") or str(Path("~/.kube/config").expanduser())
    files = [Path(p).expanduser() for p in spec.split(os.pathsep) if p.strip()]
    # As kubectl: a file of the list that does not exist is skipped, but one must.
    found = [f for f in files if f.exists()]
    if not found:
        raise KubeconfigError(f"no kubeconfig at {spec}")
    merged = _merge(found)
    current = merged["current-context"]
    if not current:
        raise KubeconfigError(f"no current-context in kubeconfig {spec}")
    context = _named(merged, "contexts", current)
    cluster = _named(merged, "clusters", context.get("cluster"))
    user = _named(merged, "users", context.get("user")) if context.get("user") else {}  # anonymous
    server = str(cluster.get("server") or "")
    scheme = urlsplit(server).scheme.lower()
    if scheme not in ("http", "https"):
        raise KubeconfigError(
            f"cluster {context.get('cluster')!r} has no http(s) server in kubeconfig {spec}"
        )
    for plugin in ("exec", "auth-provider"):
        if user.get(plugin):
            raise KubeconfigError(
                f"user {context.get('user')!r} authenticates with an {plugin} plugin, which the operator "
                "does not run: use a token, a token file or a client certificate"
            )
    basic = (str(user["username"]), str(user.get("password") or "")) if user.get("username") else None
    connection = Connection(
        server.rstrip("/"),
        _tls(cluster, user) if scheme == "https" else None,
        token=user.get("token") or None,
        token_path=_path(user, "tokenFile"),
        basic=basic,
        tls_server_name=cluster.get("tls-server-name") or None,
        proxy=cluster.get("proxy-url") or None,
    )
    return _checked(connection, spec)


def _checked(connection: Connection, source: str) -> Connection:
    """The connection, once its token file has been read (a missing one fails at start)."""
    if connection.authorization() is None and connection.token_path is not None:
        raise KubeconfigError(f"cannot read a token from {connection.token_path} ({source})")
    return connection


def _merge(files: Sequence[Path]) -> dict[str, Any]:
    """kubectl's merge: the first file that names an entry wins; each entry keeps its file's directory."""
    merged: dict[str, Any] = {"current-context": None, "contexts": {}, "clusters": {}, "users": {}}
    for file in files:
        try:
            document = yaml.safe_load(file.read_text(encoding="utf-8")) or {}
        except (OSError, yaml.YAMLError) as error:
            raise KubeconfigError(f"cannot read kubeconfig {file}: {type(error).__name__}") from None
        if not isinstance(document, dict):
            raise KubeconfigError(f"kubeconfig {file} is not a mapping")
        merged["current-context"] = merged["current-context"] or document.get("current-context")
        for section, key in (("contexts", "context"), ("clusters", "cluster"), ("users", "user")):
            for item in document.get(section) or []:
                if isinstance(item, dict) and item.get("name") not in merged[section]:
                    entry = dict(item.get(key) or {})
                    entry[_DIRECTORY] = file.parent
                    merged[section][item.get("name")] = entry
    return merged


def _named(merged: Mapping[str, Any], section: str, name: Any) -> dict[str, Any]:
    found = merged[section].get(name)
    if found is None:
        raise KubeconfigError(f"kubeconfig names {section[:-1]} {name!r}, which it does not define")
    return dict(found)


def _path(entry: Mapping[str, Any], key: str) -> Path | None:
    value = entry.get(key)
    if not value:
        return None
    path = Path(str(value)).expanduser()
    return path if path.is_absolute() else Path(entry[_DIRECTORY]) / path


def _data(entry: Mapping[str, Any], key: str) -> bytes | None:
    value = entry.get(f"{key}-data")
    if value:
        try:
            return base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            raise KubeconfigError(f"{key}-data in the kubeconfig is not base64") from None
    path = _path(entry, key)
    if path is None:
        return None
    try:
        return path.read_bytes()
    except OSError as error:
        raise KubeconfigError(f"cannot read {key} {path}: {error.strerror}") from None


def _tls(cluster: Mapping[str, Any], user: Mapping[str, Any]) -> ssl.SSLContext:
    try:
        return _tls_context(cluster, user)
    except (ssl.SSLError, ValueError) as error:  # not PEM, a key that does not match...
        raise KubeconfigError(
            f"the kubeconfig's certificates cannot be used: {type(error).__name__}"
        ) from None


def _tls_context(cluster: Mapping[str, Any], user: Mapping[str, Any]) -> ssl.SSLContext:
    if cluster.get("insecure-skip-tls-verify") is True:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    else:
        # The cluster's CA alone when it names one (as kubectl), else the system's.
        ca = _data(cluster, "certificate-authority")
        context = ssl.create_default_context(cadata=ca.decode("ascii") if ca is not None else None)
    certificate, key = _data(user, "client-certificate"), _data(user, "client-key")
    if certificate is not None and key is not None:
        # The ssl module loads a key pair only from files: write them where only this user reads,
        # load, and remove at once.
        with tempfile.TemporaryDirectory(prefix="druid-access-") as directory:
            cert_file, key_file = Path(directory) / "tls.crt", Path(directory) / "tls.key"
            for file, content in ((cert_file, certificate), (key_file, key)):
                file.touch(mode=0o600)
                file.write_bytes(content)
            context.load_cert_chain(cert_file, key_file)
    elif certificate is not None or key is not None:
        raise KubeconfigError("kubeconfig has a client certificate without its key, or a key without it")
    return context
