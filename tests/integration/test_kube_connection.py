"""The operator's own Kubernetes client against an HTTPS server on loopback: every kind of
kubeconfig credential it accepts reaches the server as kubectl would send it, a rotated
ServiceAccount token is read again, and the API server's errors (in a watch's stream too)
become the errors the callers handle, with no response body in them."""

from __future__ import annotations

import base64
import json
import os
import ssl
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
import trustme
import yaml
from aiohttp import web

from druid_access import kubeconfig
from druid_access.kube import Kube, KubeError, SecretSelection, WatchExpired
from druid_access.kubeconfig import Connection, KubeconfigError, from_kubeconfig, in_cluster
from druid_access.testing.processes import free_port

SECRET = {"metadata": {"name": "s", "namespace": "ns", "resourceVersion": "7"}, "data": {"k": "dg=="}}
LEAKED = "value-the-server-quotes-back"


class ApiServer:
    """Answers a list of Secrets in ``ns``, recording who asked; ``reply`` overrides the answer."""

    def __init__(self, ca: trustme.CA, *, client_certs: bool = False) -> None:
        self.context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ca.issue_cert("127.0.0.1").configure_cert(self.context)
        if client_certs:
            ca.configure_trust(self.context)
            self.context.verify_mode = ssl.CERT_REQUIRED
        self.seen: list[tuple[str | None, str | None]] = []  # (Authorization, client certificate's name)
        self.paths: list[str] = []  # as sent, before any decoding
        self.reply: Callable[[web.Request], Any] | None = None
        self.port = free_port()
        self.url = f"https://127.0.0.1:{self.port}"
        self._runner: web.AppRunner | None = None

    async def handle(self, request: web.Request) -> web.StreamResponse:
        peer = request.transport.get_extra_info("peercert") if request.transport else None
        names = [value for _, value in peer.get("subjectAltName", ())] if peer else []
        self.seen.append((request.headers.get("Authorization"), names[0] if names else None))
        self.paths.append(request.raw_path)
        if self.reply is not None:
            answer: web.StreamResponse = await self.reply(request)
            return answer
        return web.json_response({"metadata": {"resourceVersion": "9"}, "items": [SECRET]})

    async def __aenter__(self) -> ApiServer:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self.handle)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port, ssl_context=self.context).start()
        return self

    async def __aexit__(self, *_: object) -> None:
        assert self._runner is not None
        await self._runner.cleanup()


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
async def server(ca: trustme.CA) -> AsyncIterator[ApiServer]:
    async with ApiServer(ca) as running:
        yield running


def write_kubeconfig(path: Path, server: str, cluster: dict[str, Any], user: dict[str, Any]) -> Path:
    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "current-context": "here",
                "contexts": [{"name": "here", "context": {"cluster": "c", "user": "u"}}],
                "clusters": [{"name": "c", "cluster": {"server": server, **cluster}}],
                "users": [{"name": "u", "user": user}],
            }
        )
    )
    return path


def trusting(ca: trustme.CA) -> dict[str, Any]:
    """A kubeconfig cluster's fields that trust ``ca`` (inline, as most kubeconfigs carry it)."""
    return {"certificate-authority-data": base64.b64encode(ca.cert_pem.bytes()).decode()}


async def secrets_listed(connection: Connection) -> list[str]:
    kube = Kube(connection)
    try:
        found, version = await kube.list_secrets(SecretSelection("ns"))
        assert version == "9"
        return [s.name for s in found]
    finally:
        await kube.close()


async def test_a_token_and_an_inline_ca(server: ApiServer, ca: trustme.CA, tmp_path: Path) -> None:
    path = write_kubeconfig(tmp_path / "config", server.url, trusting(ca), {"token": "t0k"})
    assert await secrets_listed(from_kubeconfig(str(path))) == ["s"]
    assert server.seen == [("Bearer t0k", None)]
    assert "t0k" not in repr(from_kubeconfig(str(path)))


async def test_client_certificates_from_files_relative_to_the_kubeconfig(
    ca: trustme.CA, tmp_path: Path
) -> None:
    leaf = ca.issue_cert("operator@example")
    (tmp_path / "pki").mkdir()
    ca.cert_pem.write_to_path(str(tmp_path / "pki" / "ca.crt"))
    leaf.cert_chain_pems[0].write_to_path(str(tmp_path / "pki" / "tls.crt"))
    leaf.private_key_pem.write_to_path(str(tmp_path / "pki" / "tls.key"))
    async with ApiServer(ca, client_certs=True) as server:
        by_path = write_kubeconfig(
            tmp_path / "by-path",
            server.url,
            {"certificate-authority": "pki/ca.crt"},
            {"client-certificate": "pki/tls.crt", "client-key": "pki/tls.key"},
        )
        inline = write_kubeconfig(
            tmp_path / "inline",
            server.url,
            trusting(ca),
            {
                "client-certificate-data": base64.b64encode(leaf.cert_chain_pems[0].bytes()).decode(),
                "client-key-data": base64.b64encode(leaf.private_key_pem.bytes()).decode(),
            },
        )
        for path in (by_path, inline):
            assert await secrets_listed(from_kubeconfig(str(path))) == ["s"]
        # The server required a certificate and saw the operator's, with no other credential.
        assert server.seen == [(None, "operator@example")] * 2


async def test_basic_auth_and_an_unverified_server(server: ApiServer, tmp_path: Path) -> None:
    path = write_kubeconfig(
        tmp_path / "config",
        server.url,
        {"insecure-skip-tls-verify": True},
        {"username": "admin", "password": "pw"},
    )
    assert await secrets_listed(from_kubeconfig(str(path))) == ["s"]
    assert server.seen == [("Basic " + base64.b64encode(b"admin:pw").decode(), None)]


async def test_an_untrusted_server_is_no_answer(server: ApiServer, tmp_path: Path) -> None:
    path = write_kubeconfig(tmp_path / "config", server.url, {}, {"token": "t"})  # the system store
    with pytest.raises(
        KubeError,
        match=r"^listing Secrets in ns labelled .*: no answer from the API server \(ClientConnectorCertificateError\)",
    ):
        await secrets_listed(from_kubeconfig(str(path)))
    assert server.seen == []


async def test_the_first_kubeconfig_file_wins(server: ApiServer, ca: trustme.CA, tmp_path: Path) -> None:
    first = write_kubeconfig(tmp_path / "a", server.url, trusting(ca), {"token": "a"})
    second = write_kubeconfig(tmp_path / "b", "https://127.0.0.1:1", {}, {"token": "b"})
    # The second file's own context (named first there) is not the current one.
    document = yaml.safe_load(second.read_text())
    document["contexts"].insert(0, {"name": "other", "context": {"cluster": "c", "user": "u"}})
    document["current-context"] = "other"
    second.write_text(yaml.safe_dump(document))
    listed = os.pathsep.join([str(tmp_path / "absent"), str(first), str(second)])  # a missing file is skipped
    assert await secrets_listed(from_kubeconfig(environ={"KUBECONFIG": listed})) == ["s"]
    assert server.seen == [("Bearer a", None)]
    with pytest.raises(KubeconfigError, match="no kubeconfig at"):
        from_kubeconfig(environ={"KUBECONFIG": str(tmp_path / "absent")})


def test_what_cannot_be_used_is_named(tmp_path: Path) -> None:
    plugin = write_kubeconfig(tmp_path / "exec", "https://x", {}, {"exec": {"command": "aws"}})
    with pytest.raises(KubeconfigError, match="exec plugin"):
        from_kubeconfig(str(plugin))
    (tmp_path / "empty").write_text("apiVersion: v1\nkind: Config\n")
    with pytest.raises(KubeconfigError, match="no current-context"):
        from_kubeconfig(str(tmp_path / "empty"))
    broken = tmp_path / "dangling"
    broken.write_text(
        yaml.safe_dump(
            {"current-context": "x", "contexts": [{"name": "x", "context": {"cluster": "c", "user": "u"}}]}
        )
    )
    with pytest.raises(KubeconfigError, match="cluster 'c', which it does not define"):
        from_kubeconfig(str(broken))
    with pytest.raises(KubeconfigError, match="no kubeconfig at"):
        from_kubeconfig(str(tmp_path / "absent"))
    (tmp_path / "garbled").write_text("- [")
    with pytest.raises(KubeconfigError, match="cannot read kubeconfig"):
        from_kubeconfig(str(tmp_path / "garbled"))
    for scheme in ("ftp://x", ""):
        odd = write_kubeconfig(tmp_path / "odd", scheme, {}, {"token": "t"})
        with pytest.raises(KubeconfigError, match="no http"):
            from_kubeconfig(str(odd))
    bad = write_kubeconfig(tmp_path / "bad", "https://x", {"certificate-authority-data": "not base64!"}, {})
    with pytest.raises(KubeconfigError, match="certificate-authority-data in the kubeconfig is not base64"):
        from_kubeconfig(str(bad))
    not_pem = write_kubeconfig(
        tmp_path / "not-pem",
        "https://x",
        {"certificate-authority-data": base64.b64encode(b"junk").decode()},
        {},
    )
    with pytest.raises(KubeconfigError, match="certificates cannot be used"):
        from_kubeconfig(str(not_pem))
    half = write_kubeconfig(tmp_path / "half", "https://x", {}, {"client-certificate-data": "eA=="})
    with pytest.raises(KubeconfigError, match="without its key"):
        from_kubeconfig(str(half))


async def test_a_named_ca_is_the_only_one_trusted_and_names_are_checked(
    server: ApiServer, ca: trustme.CA, tmp_path: Path
) -> None:
    named = from_kubeconfig(str(write_kubeconfig(tmp_path / "a", server.url, trusting(ca), {})))
    assert named.ssl_context is not None and len(named.ssl_context.get_ca_certs()) == 1
    # An upper-case scheme is still TLS, verified; "false" as a string does not turn verification off.
    for cluster in ({}, {"insecure-skip-tls-verify": "false"}):
        upper = write_kubeconfig(
            tmp_path / "b", server.url.replace("https", "HTTPS"), cluster, {"token": "t"}
        )
        with pytest.raises(KubeError, match=r"ClientConnectorCertificateError"):
            await secrets_listed(from_kubeconfig(str(upper)))
    # The certificate names 127.0.0.1: reached as localhost it does not match, unless the
    # kubeconfig says which name to check (tls-server-name).
    by_name = server.url.replace("127.0.0.1", "localhost")
    mismatch = write_kubeconfig(tmp_path / "c", by_name, trusting(ca), {"token": "t"})
    with pytest.raises(KubeError, match=r"ClientConnectorCertificateError"):
        await secrets_listed(from_kubeconfig(str(mismatch)))
    assert server.seen == []
    server_name = write_kubeconfig(
        tmp_path / "d",
        by_name,
        {**trusting(ca), "tls-server-name": "127.0.0.1"},
        {},
    )
    assert await secrets_listed(from_kubeconfig(str(server_name))) == ["s"]


async def test_a_name_never_reaches_another_path(server: ApiServer, ca: trustme.CA, tmp_path: Path) -> None:
    path = write_kubeconfig(tmp_path / "config", server.url, trusting(ca), {"token": "t"})
    kube = Kube(from_kubeconfig(str(path)))

    async def not_found(request: web.Request) -> web.Response:
        return web.json_response({}, status=404)

    server.reply = not_found
    try:
        assert await kube.read_secret("ns", "../../kube-system/secrets/x") is None
        assert await kube.read_metadata("druidusers", "a/b", "c") is None
        for name in ("..", "."):
            with pytest.raises(KubeError, match="is not the name of a Kubernetes object"):
                await kube.read_secret("ns", name)
    finally:
        await kube.close()
    assert server.paths == [
        "/api/v1/namespaces/ns/secrets/..%2F..%2Fkube-system%2Fsecrets%2Fx",
        "/apis/druidaccess.io/v1alpha1/namespaces/a%2Fb/druidusers/c",
    ]


async def test_a_token_file_wins_over_a_token(server: ApiServer, ca: trustme.CA, tmp_path: Path) -> None:
    (tmp_path / "token").write_text("from-file\n")
    path = write_kubeconfig(
        tmp_path / "config",
        server.url,
        trusting(ca),
        {"token": "inline", "tokenFile": "token"},
    )
    await secrets_listed(from_kubeconfig(str(path)))
    assert server.seen == [("Bearer from-file", None)]


async def test_a_rotated_service_account_token_is_read_again(
    server: ApiServer, ca: trustme.CA, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "token").write_text("first\n")
    environ = {"KUBERNETES_SERVICE_HOST": "127.0.0.1", "KUBERNETES_SERVICE_PORT": str(server.port)}
    assert in_cluster(tmp_path, {}) is None  # not in a pod: no service address
    with pytest.raises(KubeconfigError, match="ServiceAccount's CA"):
        in_cluster(tmp_path, environ)  # no ca.crt yet: the system's CAs are not trusted instead
    ca.cert_pem.write_to_path(str(tmp_path / "ca.crt"))
    connection = in_cluster(tmp_path, environ)
    assert connection is not None and connection.server == server.url
    kube = Kube(connection)
    try:
        await kube.list_secrets(SecretSelection("ns"))
        (tmp_path / "token").write_text("second\n")
        await kube.list_secrets(SecretSelection("ns"))  # within the minute: the token read at start
        monkeypatch.setattr(kubeconfig, "TOKEN_REREAD_SECONDS", 0.0)
        await kube.list_secrets(SecretSelection("ns"))
        (tmp_path / "token").write_text("")  # caught mid-rotation: the last token stays
        await kube.list_secrets(SecretSelection("ns"))
    finally:
        await kube.close()
    assert [auth for auth, _ in server.seen] == [
        "Bearer first",
        "Bearer first",
        "Bearer second",
        "Bearer second",
    ]


async def test_errors_carry_the_status_and_never_the_body(
    server: ApiServer, ca: trustme.CA, tmp_path: Path
) -> None:
    async def refuse(request: web.Request) -> web.Response:
        if request.path.startswith("/api/v1/namespaces/html"):
            return web.Response(text=f"<html>{LEAKED}</html>", content_type="text/html")
        status = {"PATCH": 409 if "finalizers" in await request.text() else 403, "POST": 409}
        return web.json_response({"message": LEAKED}, status=status.get(request.method, 404))

    server.reply = refuse
    path = write_kubeconfig(tmp_path / "config", server.url, trusting(ca), {"token": "t"})
    kube = Kube(from_kubeconfig(str(path)))
    try:
        with pytest.raises(KubeError) as raised:
            await kube.patch_status("druidusers", "ns", "u", {"owned": True})
        assert str(raised.value) == "writing status of druidusers/ns/u: HTTP 403 Forbidden"
        owner = {"apiVersion": "v1", "kind": "X", "metadata": {"name": "o", "uid": "1"}}
        assert await kube.create_generated_secret("ns", "taken", "password", owner) is None
        assert await kube.set_finalizers("druidusers", "ns", "u", ["f"], "3") is False
        with pytest.raises(KubeError) as garbled:
            await kube.list_secrets(SecretSelection("html"))
        assert str(garbled.value).endswith("no answer from the API server (ClientPayloadError)")
        assert LEAKED not in str(garbled.value)
        assert await kube.read_secret("ns", "gone") is None
        assert await kube.secret_labels("ns", "gone") is None
        assert await kube.read_metadata("druidusers", "ns", "gone") is None
        assert await kube.namespace_terminating("gone") is True
    finally:
        await kube.close()


async def test_a_watch_streams_changes_and_ends_on_an_expired_version(
    server: ApiServer, ca: trustme.CA, tmp_path: Path
) -> None:
    async def stream(request: web.Request) -> web.StreamResponse:
        assert request.query["watch"] == "true" and request.query["resourceVersion"] == "5"
        assert request.query["labelSelector"] == "druidaccess.io/allow=true"
        response = web.StreamResponse()
        await response.prepare(request)
        for event in (
            {"type": "ADDED", "object": SECRET},
            {"type": "BOOKMARK", "object": {"metadata": {"resourceVersion": "8"}}},
            {"type": "DELETED", "object": SECRET},
            {"type": "ERROR", "object": {"kind": "Status", "code": 410, "reason": "Expired"}},
        ):
            await response.write(json.dumps(event).encode() + b"\n")
        return response

    server.reply = stream
    path = write_kubeconfig(tmp_path / "config", server.url, trusting(ca), {"token": "t"})
    kube = Kube(from_kubeconfig(str(path)))
    seen = []

    async def follow() -> None:
        async for event in kube.watch_secrets(SecretSelection("ns"), "5", 30):
            seen.append((event.secret.name, event.secret.resource_version, event.deleted, event.bookmark))

    try:
        with pytest.raises(WatchExpired):
            await follow()
    finally:
        await kube.close()
    assert seen == [("s", "7", False, False), ("", "8", False, True), ("s", "7", True, False)]
