"""CoordinatorClient behind a non-leader Coordinator, and over TLS, on loopback servers.

The "follower" below answers every request the way a non-leader Druid Coordinator does: ``307``
to the same path on the leader (the fake Coordinator). Its own log records whether a request
carried credentials; the fake's log shows what reached the leader.
"""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
import trustme
from aiohttp import web
from pydantic import SecretStr

from druid_access.clients import (
    ApiError,
    AuthenticatorName,
    AuthorizerName,
    CertificateNotTrusted,
    CoordinatorClient,
    HttpOptions,
    RedirectRefused,
    Unavailable,
)
from druid_access.testing.fake_coordinator import FakeCoordinator

ADMIN_PASSWORD = "canary-redirect-pw-51c2"
AUTHN = AuthenticatorName("basic")
AUTHZ = AuthorizerName("basic")


@dataclass
class Follower:
    """A server that redirects everything to ``leader`` (None: to itself, a loop)."""

    leader: str | None
    url: str = ""
    seen: list[tuple[str, str, bool]] = field(default_factory=list)  # method, path, had credentials
    location: str | None = None  # a fixed Location header instead

    async def handle(self, request: web.Request) -> web.StreamResponse:
        self.seen.append((request.method, request.path, "Authorization" in request.headers))
        location = self.location or f"{self.leader or self.url}{request.path_qs}"
        return web.Response(status=307, headers={"Location": location})


async def serve(follower: Follower, ssl_context: ssl.SSLContext | None = None) -> web.AppRunner:
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", follower.handle)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=ssl_context)
    await site.start()
    port = runner.addresses[0][1]
    follower.url = f"{'https' if ssl_context else 'http'}://127.0.0.1:{port}"
    return runner


def options(*hosts: str, ca: Path | None = None) -> HttpOptions:
    return HttpOptions(
        connect_timeout=2.0, read_timeout=10.0, pool_timeout=2.0, redirect_hosts=hosts, ca_file=ca
    )


@pytest.fixture
async def leader() -> AsyncIterator[FakeCoordinator]:
    async with FakeCoordinator(admin_password=ADMIN_PASSWORD, credential_iterations=1000) as fake:
        yield fake


@pytest.fixture
async def follower(leader: FakeCoordinator) -> AsyncIterator[Follower]:
    follower = Follower(leader.url)
    runner = await serve(follower)
    try:
        yield follower
    finally:
        await runner.cleanup()


async def test_writes_and_reads_reach_the_leader_through_a_follower(
    leader: FakeCoordinator, follower: Follower
) -> None:
    async with CoordinatorClient(
        follower.url, username="admin", password=ADMIN_PASSWORD, options=options("127.0.0.1")
    ) as client:
        await client.create_authenticator_user(AUTHN, "amy@example.org")  # a body-less POST
        await client.set_password(AUTHN, "amy@example.org", SecretStr("amy-pw-1"))  # a POST with a body
        await client.create_authorizer_user(AUTHZ, "amy@example.org")
        assert "amy@example.org" in await client.list_authenticator_users(AUTHN)
        assert await client.check_login("amy@example.org", SecretStr("amy-pw-1"))
        assert client.leader == leader.url
    # Only the first request went through the follower; the leader was remembered.
    assert len(follower.seen) == 1
    assert leader.requests.count("POST", r"/credentials$") == 1
    assert {r.user for r in leader.requests.filter(path=r"/db/basic/users/")} == {"admin"}


async def test_a_redirect_elsewhere_is_refused_without_sending_credentials(
    leader: FakeCoordinator, follower: Follower
) -> None:
    # The leader is 127.0.0.1 on another port: another origin, and leaderHosts is empty.
    async with CoordinatorClient(
        follower.url, username="admin", password=ADMIN_PASSWORD, options=options()
    ) as client:
        with pytest.raises(RedirectRefused) as info:
            await client.create_authenticator_user(AUTHN, "eve")
    assert info.value.status == 307
    assert leader.url.removeprefix("http://") in info.value.message
    assert "leaderHosts" in info.value.message
    assert ADMIN_PASSWORD not in str(info.value)
    assert len(leader.requests) == 0  # nothing, credentials included, reached the other host
    # Other hosts in the list do not open the door either.
    async with CoordinatorClient(
        follower.url, username="admin", password=ADMIN_PASSWORD, options=options("10.0.0.0/8", "leader.svc")
    ) as client:
        with pytest.raises(RedirectRefused):
            await client.list_roles(AUTHZ)
    assert len(leader.requests) == 0


async def test_a_gone_leader_is_forgotten_and_the_follower_asked_again(
    leader: FakeCoordinator, follower: Follower
) -> None:
    async with CoordinatorClient(
        follower.url, username="admin", password=ADMIN_PASSWORD, options=options("127.0.0.1")
    ) as client:
        await client.list_roles(AUTHZ)
        assert client.leader == leader.url
        await leader.stop()
        with pytest.raises(Unavailable):
            await client.list_roles(AUTHZ)
        assert client.leader is None
        with pytest.raises(Unavailable):  # through the follower again, to the (still gone) leader
            await client.list_roles(AUTHZ)
    assert len(follower.seen) == 2


async def test_redirect_loops_end(leader: FakeCoordinator) -> None:
    looping = Follower(None)
    runner = await serve(looping)
    try:
        async with CoordinatorClient(
            looping.url, username="admin", password=ADMIN_PASSWORD, options=options()
        ) as client:
            with pytest.raises(RedirectRefused, match="more than 2 redirects"):
                await client.list_roles(AUTHZ)
        assert len(looping.seen) == 3
    finally:
        await runner.cleanup()


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


def server_context(ca: trustme.CA) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(context)
    return context


async def test_never_from_https_to_http(leader: FakeCoordinator, ca: trustme.CA, tmp_path: Path) -> None:
    bundle = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(bundle))
    follower = Follower(leader.url)  # an http:// leader behind an https:// follower
    runner = await serve(follower, server_context(ca))
    try:
        async with CoordinatorClient(
            follower.url, username="admin", password=ADMIN_PASSWORD, options=options("*", ca=bundle)
        ) as client:
            with pytest.raises(RedirectRefused, match="https to http"):
                await client.list_roles(AUTHZ)
        assert follower.seen == [("GET", "/druid-ext/basic-security/authorization/db/basic/roles", True)]
        assert len(leader.requests) == 0
    finally:
        await runner.cleanup()


async def test_an_untrusted_certificate_names_the_fix(
    leader: FakeCoordinator, ca: trustme.CA, tmp_path: Path
) -> None:
    other = tmp_path / "other-ca.pem"
    trustme.CA().cert_pem.write_to_path(str(other))
    follower = Follower(leader.url)
    runner = await serve(follower, server_context(ca))
    try:
        for bundle in (None, other):  # the system store, then the wrong CA
            async with CoordinatorClient(
                follower.url, username="admin", password=ADMIN_PASSWORD, options=options(ca=bundle)
            ) as client:
                with pytest.raises(CertificateNotTrusted) as info:
                    await client.list_roles(AUTHZ)
            assert "not trusted" in info.value.message
            assert "unable to get local issuer certificate" in info.value.message
            assert "caBundle" in info.value.message
        assert follower.seen == []  # the handshake failed: no request, no credentials
    finally:
        await runner.cleanup()


async def test_a_malformed_location_is_refused_not_unreachable(leader: FakeCoordinator) -> None:
    broken = Follower(None, location="http://[::1")
    runner = await serve(broken)
    try:
        async with CoordinatorClient(
            broken.url, username="admin", password=ADMIN_PASSWORD, options=options("*")
        ) as client:
            with pytest.raises(RedirectRefused, match="not a valid URL") as info:
                await client.list_roles(AUTHZ)
        assert "[::1" not in info.value.message  # the header is not quoted
    finally:
        await runner.cleanup()


async def test_the_leader_is_forgotten_when_it_fails_or_time_passes(
    leader: FakeCoordinator, follower: Follower, monkeypatch: pytest.MonkeyPatch
) -> None:
    from druid_access.clients import _http
    from druid_access.testing.faults import Fault

    async with CoordinatorClient(
        follower.url, username="admin", password=ADMIN_PASSWORD, options=options("127.0.0.1")
    ) as client:
        await client.list_roles(AUTHZ)
        assert client.leader == leader.url
        # A 5xx from the remembered leader: perhaps it is not the leader any more.
        leader.faults.add(Fault(method="GET", path=r"/roles$", status=500, times=1))
        with pytest.raises(ApiError):
            await client.list_roles(AUTHZ)
        assert client.leader is None
        await client.list_roles(AUTHZ)  # through the follower again
        assert client.leader == leader.url
        assert len(follower.seen) == 2
        # Memory runs out: the next request asks the configured URL again.
        monkeypatch.setattr(_http, "LEADER_MEMORY_SECONDS", 0.0)
        await client.list_roles(AUTHZ)
        assert len(follower.seen) == 3


async def test_a_leader_redirecting_back_to_the_configured_url_is_forgotten(leader: FakeCoordinator) -> None:
    """The configured URL itself leads now (e.g. the Service reached the new leader)."""
    async with CoordinatorClient(
        leader.url, username="admin", password=ADMIN_PASSWORD, options=options("127.0.0.1")
    ) as direct:
        await direct.list_roles(AUTHZ)
    old_leader = Follower(leader.url)
    runner = await serve(old_leader)
    try:
        async with CoordinatorClient(
            leader.url, username="admin", password=ADMIN_PASSWORD, options=options("127.0.0.1")
        ) as client:
            client._http._remember(httpx.URL(old_leader.url))  # as if it had been the leader
            assert client.leader == old_leader.url
            await client.list_roles(AUTHZ)
            assert client.leader is None
            assert len(old_leader.seen) == 1
    finally:
        await runner.cleanup()


@pytest.mark.parametrize("problem", ["wrong host name", "expired"])
async def test_other_certificate_failures_are_certificate_not_trusted(
    leader: FakeCoordinator, ca: trustme.CA, tmp_path: Path, problem: str
) -> None:
    import datetime

    bundle = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(bundle))
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    if problem == "wrong host name":
        ca.issue_cert("coordinator.example").configure_cert(context)
        expected = "IP address mismatch, certificate is not valid for '127.0.0.1'"
    else:
        past = datetime.datetime(2020, 1, 1, tzinfo=datetime.UTC)
        ca.issue_cert(
            "127.0.0.1", not_before=past, not_after=past + datetime.timedelta(days=1)
        ).configure_cert(context)
        expected = "certificate has expired"
    server = Follower(leader.url)
    runner = await serve(server, context)
    try:
        async with CoordinatorClient(
            server.url, username="admin", password=ADMIN_PASSWORD, options=options(ca=bundle)
        ) as client:
            with pytest.raises(CertificateNotTrusted) as info:
                await client.list_roles(AUTHZ)
        assert expected in info.value.message
        assert "caBundle" not in info.value.message  # the CA is trusted: the hint says what is wrong
        assert server.seen == []
    finally:
        await runner.cleanup()
