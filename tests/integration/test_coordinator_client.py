"""CoordinatorClient against the real fake Coordinator over loopback HTTP (and HTTPS).

Every method's success path, every error class, the exact query strings and encoded paths
that reach the server (from the fake's request log), and that no error ever carries a
password (canary values).
"""

from __future__ import annotations

import shutil
import socket
import ssl
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from aiohttp import web
from pydantic import SecretStr

from druid_access.clients import (
    AlreadyExists,
    ApiError,
    AuthenticatorName,
    AuthorizerName,
    CertificateNotTrusted,
    Conflict,
    CoordinatorClient,
    Forbidden,
    GroupMapping,
    HttpOptions,
    Invalid,
    NotFound,
    Permission,
    Role,
    ServerError,
    Unauthorized,
    Unavailable,
    UnexpectedResponse,
    UnknownAuthenticator,
    UnknownAuthorizer,
)
from druid_access.clients import coordinator as coordinator_module
from druid_access.passwords import verify_password
from druid_access.reconcile import describe_api_error
from druid_access.status import Reason
from druid_access.testing.fake_coordinator import FakeCoordinator
from druid_access.testing.fake_coordinator import Permission as FakePermission
from druid_access.testing.faults import Fault

ADMIN_PASSWORD = "canary-Adm1n-pw-7f3a"
ITERATIONS = 1000
AUTHN = AuthenticatorName("basic")
AUTHZ = AuthorizerName("basic")
FAST = HttpOptions(connect_timeout=2.0, read_timeout=5.0, write_timeout=5.0, pool_timeout=2.0)


@pytest.fixture
async def fake_coordinator() -> AsyncIterator[FakeCoordinator]:
    async with FakeCoordinator(admin_password=ADMIN_PASSWORD, credential_iterations=ITERATIONS) as fake:
        yield fake


@pytest.fixture
async def coordinator_client(fake_coordinator: FakeCoordinator) -> AsyncIterator[CoordinatorClient]:
    async with CoordinatorClient(
        fake_coordinator.url, username="admin", password=SecretStr(ADMIN_PASSWORD), options=FAST
    ) as client:
        yield client


def _read(name: str, type_: str = "DATASOURCE") -> Permission:
    return Permission(resource_type=type_, resource_name=name, action="READ")


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port  # nothing listens here any more: connection refused


# --- liveness, login, load status -------------------------------------------------------------


async def test_health_is_unauthenticated(fake_coordinator: FakeCoordinator) -> None:
    async with CoordinatorClient(fake_coordinator.url, username="admin", password="wrong", options=FAST) as c:
        assert await c.health() is True
    assert fake_coordinator.requests.filter("GET", "^/status/health$")[-1].user is None


async def test_check_login(coordinator_client: CoordinatorClient, fake_coordinator: FakeCoordinator) -> None:
    fake_coordinator.add_user("carol", password="carol-pw")  # no roles: /status answers 403
    fake_coordinator.add_user("nopass")
    assert await coordinator_client.check_login("admin", SecretStr(ADMIN_PASSWORD)) is True
    assert await coordinator_client.check_login("carol", "carol-pw") is True
    assert await coordinator_client.check_login("carol", "wrong") is False
    assert await coordinator_client.check_login("ghost", "x") is False
    assert await coordinator_client.check_login("nopass", "x") is False
    assert await coordinator_client.check_login("carol", "carol-pw:extra") is False  # ':' never logs in
    # The client's own credentials are untouched by a check.
    assert await coordinator_client.list_roles(AUTHZ) >= {"admin"}


async def test_load_status(coordinator_client: CoordinatorClient) -> None:
    assert await coordinator_client.authentication_load_status() == {AUTHN: True}
    assert await coordinator_client.authorization_load_status() == {AUTHZ: True}


# --- authentication store -----------------------------------------------------------------------


async def test_authenticator_user_lifecycle(coordinator_client: CoordinatorClient) -> None:
    c = coordinator_client
    await c.create_authenticator_user(AUTHN, "alice")
    assert "alice" in await c.list_authenticator_users(AUTHN)
    user = await c.get_authenticator_user(AUTHN, "alice")
    assert user.name == "alice"
    assert user.credentials is None
    assert await c.check_login("alice", "alice-pw") is False

    await c.set_password(AUTHN, "alice", SecretStr("alice-pw"))
    stored = (await c.get_authenticator_user(AUTHN, "alice")).credentials
    assert stored is not None
    assert stored.iterations == ITERATIONS
    assert verify_password("alice-pw", stored)
    assert not verify_password("other", stored)
    assert await c.check_login("alice", "alice-pw") is True

    await c.set_password(AUTHN, "alice", "alice-pw-2", iterations=1234)
    stored = (await c.get_authenticator_user(AUTHN, "alice")).credentials
    assert stored is not None
    assert stored.iterations == 1234
    assert verify_password("alice-pw-2", stored)

    with pytest.raises(AlreadyExists) as exists:
        await c.create_authenticator_user(AUTHN, "alice")
    assert exists.value.entity == "user"
    assert exists.value.entity_name == "alice"

    await c.delete_authenticator_user(AUTHN, "alice")
    assert "alice" not in await c.list_authenticator_users(AUTHN)
    with pytest.raises(NotFound):
        await c.get_authenticator_user(AUTHN, "alice")
    with pytest.raises(NotFound):
        await c.delete_authenticator_user(AUTHN, "alice")
    with pytest.raises(NotFound):
        await c.set_password(AUTHN, "alice", "x")


async def test_set_password_body_and_validation(
    coordinator_client: CoordinatorClient, fake_coordinator: FakeCoordinator
) -> None:
    await coordinator_client.create_authenticator_user(AUTHN, "bob")
    with pytest.raises(Invalid) as empty:
        await coordinator_client.set_password(AUTHN, "bob", "")
    assert "empty password" in empty.value.message
    assert "Source" not in empty.value.message  # Jackson's location is cut off
    with pytest.raises(ValueError, match="iterations"):
        await coordinator_client.set_password(AUTHN, "bob", "pw", iterations=0)
    assert fake_coordinator.credentials["bob"] is None  # nothing was stored


async def test_unicode_password_hashes_like_druid(
    coordinator_client: CoordinatorClient, fake_coordinator: FakeCoordinator
) -> None:
    await coordinator_client.create_authenticator_user(AUTHN, "uni")
    await coordinator_client.set_password(AUTHN, "uni", "pässwörd-密码")
    stored = (await coordinator_client.get_authenticator_user(AUTHN, "uni")).credentials
    assert stored is not None
    assert verify_password("pässwörd-密码", stored)
    assert await coordinator_client.check_login("uni", "pässwörd-密码") is True


# --- authorization store -------------------------------------------------------------------------


async def test_authorizer_users_roles_and_permissions(coordinator_client: CoordinatorClient) -> None:
    c = coordinator_client
    await c.create_authorizer_user(AUTHZ, "dave")
    await c.create_role(AUTHZ, "reader")
    await c.create_role(AUTHZ, "writer")
    assert {"dave", "admin", "druid_system"} <= await c.list_authorizer_users(AUTHZ)
    assert {"reader", "writer", "admin"} <= await c.list_roles(AUTHZ)

    perms = {_read("wiki.*"), Permission(resource_type="STATE", resource_name="STATE", action="READ")}
    await c.set_permissions(AUTHZ, "reader", perms)
    assert await c.get_permissions(AUTHZ, "reader") == perms
    # Replace, not merge.
    await c.set_permissions(
        AUTHZ, "writer", [Permission(resource_type="DATASOURCE", resource_name="w", action="WRITE")]
    )
    await c.set_permissions(AUTHZ, "writer", [_read("x")])
    assert await c.get_permissions(AUTHZ, "writer") == {_read("x")}

    await c.assign_role(AUTHZ, user="dave", role="reader")
    await c.assign_role(AUTHZ, user="dave", role="writer")
    user = await c.get_authorizer_user(AUTHZ, "dave")
    assert user.roles == {"reader", "writer"}

    full = await c.get_user_full(AUTHZ, "dave")
    assert full.name == "dave"
    assert full.role_names == {"reader", "writer"}
    assert full.permissions == perms | {_read("x")}
    assert {r.name: r.permissions for r in full.roles}["reader"] == perms

    with pytest.raises(Conflict) as again:
        await c.assign_role(AUTHZ, user="dave", role="reader")
    assert "already has role" in again.value.message

    await c.unassign_role(AUTHZ, user="dave", role="writer")
    assert (await c.get_authorizer_user(AUTHZ, "dave")).roles == {"reader"}
    with pytest.raises(Conflict) as lacking:
        await c.unassign_role(AUTHZ, user="dave", role="writer")
    assert "does not have role" in lacking.value.message

    with pytest.raises(NotFound) as missing_role:
        await c.assign_role(AUTHZ, user="dave", role="nope")
    assert (missing_role.value.entity, missing_role.value.entity_name) == ("role", "nope")
    with pytest.raises(NotFound) as missing_user:
        await c.assign_role(AUTHZ, user="ghost", role="reader")
    assert (missing_user.value.entity, missing_user.value.entity_name) == ("user", "ghost")

    with pytest.raises(AlreadyExists):
        await c.create_role(AUTHZ, "reader")
    with pytest.raises(AlreadyExists):
        await c.create_authorizer_user(AUTHZ, "dave")

    # Deleting an assigned role is allowed and strips it from the user.
    await c.delete_role(AUTHZ, "reader")
    assert (await c.get_authorizer_user(AUTHZ, "dave")).roles == frozenset()
    with pytest.raises(NotFound):
        await c.get_role(AUTHZ, "reader")
    with pytest.raises(NotFound):
        await c.delete_role(AUTHZ, "reader")

    await c.delete_authorizer_user(AUTHZ, "dave")
    with pytest.raises(NotFound):
        await c.get_authorizer_user(AUTHZ, "dave")
    with pytest.raises(NotFound):
        await c.get_user_full(AUTHZ, "dave")
    with pytest.raises(NotFound):
        await c.delete_authorizer_user(AUTHZ, "dave")


async def test_get_role_shapes(
    coordinator_client: CoordinatorClient, fake_coordinator: FakeCoordinator
) -> None:
    c = coordinator_client
    await c.create_role(AUTHZ, "r")
    await c.set_permissions(AUTHZ, "r", [_read("a")])
    await c.create_authorizer_user(AUTHZ, "u")
    await c.assign_role(AUTHZ, user="u", role="r")
    await c.create_group_mapping(AUTHZ, "g", group_pattern="cn=g,.*", roles=["r"])

    plain = await c.get_role(AUTHZ, "r")
    assert plain == Role(name="r", permissions=frozenset({_read("a")}))
    full = await c.get_role(AUTHZ, "r", full=True)
    assert (full.users, full.groups) == (frozenset({"u"}), frozenset({"g"}))
    simplified = await c.get_role(AUTHZ, "r", simplify_permissions=True)
    assert (simplified.users, simplified.permissions) == (None, frozenset({_read("a")}))
    both = await c.get_role(AUTHZ, "r", full=True, simplify_permissions=True)
    assert (both.users, both.groups, both.permissions) == (frozenset({"u"}), None, frozenset({_read("a")}))


async def test_action_is_normalised_on_read(
    coordinator_client: CoordinatorClient, fake_coordinator: FakeCoordinator
) -> None:
    fake_coordinator.add_role("lower", [FakePermission("DATASOURCE", "d", "read")])
    assert await coordinator_client.get_permissions(AUTHZ, "lower") == {_read("d")}
    assert Permission.model_validate(
        {"resource": {"name": "d", "type": "DATASOURCE"}, "action": "read"}
    ) == _read("d")


async def test_set_permissions_refuses_bad_regex_and_changes_nothing(
    coordinator_client: CoordinatorClient,
) -> None:
    await coordinator_client.create_role(AUTHZ, "re")
    await coordinator_client.set_permissions(AUTHZ, "re", [_read("ok.*")])
    with pytest.raises(Invalid) as bad:
        await coordinator_client.set_permissions(AUTHZ, "re", [_read("broken(")])
    assert "does not compile" in bad.value.message
    assert await coordinator_client.get_permissions(AUTHZ, "re") == {_read("ok.*")}
    # An empty list clears.
    await coordinator_client.set_permissions(AUTHZ, "re", [])
    assert await coordinator_client.get_permissions(AUTHZ, "re") == frozenset()


async def test_group_mappings(coordinator_client: CoordinatorClient) -> None:
    c = coordinator_client
    await c.create_role(AUTHZ, "ops")
    await c.create_role(AUTHZ, "dev")
    await c.create_group_mapping(AUTHZ, "ldap-ops", group_pattern="CN=ops,OU=.*", roles=["ops"])
    assert "ldap-ops" in await c.list_group_mappings(AUTHZ)
    assert await c.get_group_mapping(AUTHZ, "ldap-ops") == GroupMapping(
        name="ldap-ops", group_pattern="CN=ops,OU=.*", roles=frozenset({"ops"})
    )
    with pytest.raises(AlreadyExists) as exists:
        await c.create_group_mapping(AUTHZ, "ldap-ops", group_pattern="x")
    assert exists.value.entity == "groupMapping"

    await c.assign_group_mapping_role(AUTHZ, group_mapping="ldap-ops", role="dev")
    assert (await c.get_group_mapping(AUTHZ, "ldap-ops")).roles == {"ops", "dev"}
    with pytest.raises(Conflict):
        await c.assign_group_mapping_role(AUTHZ, group_mapping="ldap-ops", role="dev")
    await c.unassign_group_mapping_role(AUTHZ, group_mapping="ldap-ops", role="ops")
    assert (await c.get_group_mapping(AUTHZ, "ldap-ops")).roles == {"dev"}
    with pytest.raises(Conflict):
        await c.unassign_group_mapping_role(AUTHZ, group_mapping="ldap-ops", role="ops")

    await c.create_group_mapping(AUTHZ, "empty", group_pattern=".*")
    assert (await c.get_group_mapping(AUTHZ, "empty")).roles == frozenset()

    await c.delete_group_mapping(AUTHZ, "ldap-ops")
    with pytest.raises(NotFound) as gone:
        await c.get_group_mapping(AUTHZ, "ldap-ops")
    assert gone.value.entity == "groupMapping"
    with pytest.raises(NotFound):
        await c.delete_group_mapping(AUTHZ, "ldap-ops")


# --- wire details -----------------------------------------------------------------------------------


async def test_query_strings_are_presence_flags(
    coordinator_client: CoordinatorClient, fake_coordinator: FakeCoordinator
) -> None:
    c, log = coordinator_client, fake_coordinator.requests
    await c.create_role(AUTHZ, "q")
    await c.create_authorizer_user(AUTHZ, "q")
    log.clear()
    await c.get_user_full(AUTHZ, "q")
    await c.get_authorizer_user(AUTHZ, "q")
    await c.get_role(AUTHZ, "q")
    await c.get_role(AUTHZ, "q", full=True)
    await c.get_role(AUTHZ, "q", simplify_permissions=True)
    await c.get_role(AUTHZ, "q", full=True, simplify_permissions=True)
    assert [r.query_string for r in log.filter("GET")] == [
        "full&simplifyPermissions",
        "",
        "",
        "full",
        "simplifyPermissions",
        "full&simplifyPermissions",
    ]
    assert all("=" not in r.query_string for r in log)


NAMES = [
    "alice@corp.example",
    "with space",
    "dots.in.name",
    "ünïcödé-名前",
    "plus+sign",
    "pct%41",
    "semi;colon",
]


@pytest.mark.parametrize("name", NAMES)
async def test_names_round_trip(
    name: str, coordinator_client: CoordinatorClient, fake_coordinator: FakeCoordinator
) -> None:
    c = coordinator_client
    await c.create_authenticator_user(AUTHN, name)
    await c.set_password(AUTHN, name, "pw")
    await c.create_authorizer_user(AUTHZ, name)
    await c.create_role(AUTHZ, name)
    await c.assign_role(AUTHZ, user=name, role=name)
    await c.create_group_mapping(AUTHZ, name, group_pattern=".*", roles=[name])
    assert name in await c.list_authenticator_users(AUTHN)
    assert (await c.get_authenticator_user(AUTHN, name)).name == name
    assert (await c.get_authorizer_user(AUTHZ, name)).roles == {name}
    assert (await c.get_user_full(AUTHZ, name)).role_names == {name}
    assert (await c.get_role(AUTHZ, name)).name == name
    assert (await c.get_group_mapping(AUTHZ, name)).roles == {name}
    assert await c.check_login(name, "pw") is True
    # What went over the wire: one percent-encoded segment, decoded back to the name.
    record = fake_coordinator.requests.filter("GET", "/authorization/db/basic/roles/")[-1]
    assert record.path.endswith("/roles/" + name)
    raw_segment = record.raw_path.rsplit("/", 1)[1]
    assert " " not in raw_segment
    assert "@" not in raw_segment
    assert "+" not in raw_segment
    assert ";" not in raw_segment
    await c.delete_group_mapping(AUTHZ, name)
    await c.delete_role(AUTHZ, name)
    await c.delete_authorizer_user(AUTHZ, name)
    await c.delete_authenticator_user(AUTHN, name)


async def test_slash_is_encoded_and_reaches_the_name(
    coordinator_client: CoordinatorClient, fake_coordinator: FakeCoordinator
) -> None:
    # Druid 27 and 37 decode %2F into the name, as the contract suite shows; a Jetty that refuses
    # it is FakeCoordinator(reject_ambiguous_uris=True). The CRDs forbid '/'.
    await coordinator_client.create_role(AUTHZ, "team/ingest")
    assert fake_coordinator.requests.records[-1].raw_path.endswith("/roles/team%2Fingest")
    assert "team/ingest" in fake_coordinator.roles


@pytest.mark.parametrize("name", ["", ".", ".."])
async def test_dot_segments_are_refused_client_side(name: str, coordinator_client: CoordinatorClient) -> None:
    with pytest.raises(ValueError, match="cannot be used"):
        await coordinator_client.delete_role(AUTHZ, name)


# --- error classes --------------------------------------------------------------------------------


async def test_unknown_authenticator_and_authorizer(coordinator_client: CoordinatorClient) -> None:
    with pytest.raises(UnknownAuthenticator) as authn:
        await coordinator_client.list_authenticator_users(AuthenticatorName("ldap"))
    assert isinstance(authn.value, NotFound)
    assert (authn.value.entity, authn.value.entity_name) == ("authenticator", "ldap")
    with pytest.raises(UnknownAuthorizer) as authz:
        await coordinator_client.get_role(AuthorizerName("other"), "admin")
    assert (authz.value.entity, authz.value.entity_name) == ("authorizer", "other")


async def test_wrong_admin_password_is_unauthorized(fake_coordinator: FakeCoordinator) -> None:
    canary = "canary-wrong-pw-91b2"
    async with CoordinatorClient(fake_coordinator.url, username="admin", password=canary, options=FAST) as c:
        with pytest.raises(Unauthorized) as info:
            await c.list_roles(AUTHZ)
    err = info.value
    assert err.status == 401
    assert canary not in str(err) + repr(err)


async def test_user_without_config_security_is_forbidden(fake_coordinator: FakeCoordinator) -> None:
    fake_coordinator.add_role("ds-reader", [FakePermission("DATASOURCE", ".*", "READ")])
    fake_coordinator.add_user("viewer", password="viewer-pw", roles=["ds-reader"])
    async with CoordinatorClient(
        fake_coordinator.url, username="viewer", password="viewer-pw", options=FAST
    ) as c:
        with pytest.raises(Forbidden) as read:
            await c.list_roles(AUTHZ)
        with pytest.raises(Forbidden):
            await c.create_role(AUTHZ, "sneaky")
    assert read.value.status == 403
    assert "sneaky" not in fake_coordinator.roles


async def test_injected_500_is_server_error(
    coordinator_client: CoordinatorClient, fake_coordinator: FakeCoordinator
) -> None:
    fake_coordinator.faults.add(Fault(method="GET", path=r"/roles$", status=500, body="boom", times=1))
    with pytest.raises(ServerError) as info:
        await coordinator_client.list_roles(AUTHZ)
    assert info.value.status == 500
    assert "admin" in await coordinator_client.list_roles(AUTHZ)  # the fault fired once


@pytest.mark.parametrize("status", [502, 503, 504])
async def test_gateway_statuses_are_unavailable(
    status: int, coordinator_client: CoordinatorClient, fake_coordinator: FakeCoordinator
) -> None:
    fake_coordinator.faults.add(
        Fault(method="GET", path=r"/roles$", status=status, body="upstream down", times=1)
    )
    with pytest.raises(Unavailable) as info:
        await coordinator_client.list_roles(AUTHZ)
    assert info.value.status == status


async def test_malformed_success_is_unexpected_response(
    coordinator_client: CoordinatorClient, fake_coordinator: FakeCoordinator
) -> None:
    fake_coordinator.faults.add(
        Fault(method="GET", path=r"/roles$", status=200, body="<html>login page</html>", times=1)
    )
    fake_coordinator.faults.add(
        Fault(
            method="GET",
            path=r"/users/admin$",
            status=200,
            body={"name": "admin", "roles": "not-a-list"},
            times=1,
        )
    )
    with pytest.raises(UnexpectedResponse) as not_json:
        await coordinator_client.list_roles(AUTHZ)
    assert "not JSON" in not_json.value.message
    assert "login page" not in not_json.value.message  # bodies are never quoted
    with pytest.raises(UnexpectedResponse) as wrong_shape:
        await coordinator_client.get_authorizer_user(AUTHZ, "admin")
    assert "AuthorizerUser" in wrong_shape.value.message
    assert "roles" in wrong_shape.value.message
    assert "not-a-list" not in wrong_shape.value.message


async def test_cas_contention_is_conflict(
    coordinator_client: CoordinatorClient, fake_coordinator: FakeCoordinator
) -> None:
    fake_coordinator.contention_failures = 1
    with pytest.raises(Conflict) as info:
        await coordinator_client.create_role(AUTHZ, "contended")
    assert info.value.status == 500
    assert "concurrent update contention" in info.value.message
    await coordinator_client.create_role(AUTHZ, "contended")


async def test_connection_refused_is_unavailable() -> None:
    url = f"http://127.0.0.1:{_closed_port()}"
    async with CoordinatorClient(url, username="admin", password=ADMIN_PASSWORD, options=FAST) as c:
        with pytest.raises(Unavailable) as info:
            await c.list_roles(AUTHZ)
    assert info.value.status is None
    assert info.value.message.startswith("ConnectError")
    assert info.value.target == "coordinator"
    assert ADMIN_PASSWORD not in str(info.value)


async def test_reset_is_unavailable(
    coordinator_client: CoordinatorClient, fake_coordinator: FakeCoordinator
) -> None:
    fake_coordinator.faults.add(Fault(method="POST", path=r"/roles/", reset=True, times=1))
    with pytest.raises(Unavailable) as info:
        await coordinator_client.create_role(AUTHZ, "reset-me")
    assert info.value.status is None
    assert fake_coordinator.requests.filter("POST", r"/roles/reset-me$")[-1].status is None


async def test_a_reset_read_on_a_kept_alive_connection_is_not_sent_again(
    coordinator_client: CoordinatorClient, fake_coordinator: FakeCoordinator
) -> None:
    """The clients' transport (aiohttp under httpx: ``clients/_transport.py``) retries nothing,
    as httpx's own does not: a reset is an answer-less request, for the breaker to count."""
    await coordinator_client.list_roles(AUTHZ)  # a connection to keep alive
    reset = fake_coordinator.faults.add(Fault(method="GET", path=r"/roles$", reset=True, times=1))
    with pytest.raises(Unavailable):
        await coordinator_client.list_roles(AUTHZ)
    assert reset.fired == 1
    assert [r.status for r in fake_coordinator.requests.filter("GET", r"/roles$")][-1] is None
    assert "admin" in await coordinator_client.list_roles(AUTHZ)


async def test_read_timeout_is_unavailable(fake_coordinator: FakeCoordinator) -> None:
    fake_coordinator.faults.add(Fault(method="GET", path=r"/users$", latency=3.0, times=1))
    options = HttpOptions(connect_timeout=1.0, read_timeout=0.2, write_timeout=1.0, pool_timeout=1.0)
    async with CoordinatorClient(
        fake_coordinator.url, username="admin", password=ADMIN_PASSWORD, options=options
    ) as c:
        with pytest.raises(Unavailable) as info:
            await c.list_authorizer_users(AUTHZ)
    assert info.value.message.startswith("ReadTimeout")


# --- secrets never leak -----------------------------------------------------------------------------


async def test_no_error_carries_a_password(fake_coordinator: FakeCoordinator) -> None:
    new_password = "canary-New-pw-c0ffee"
    fake_coordinator.add_user("erin")
    # A misbehaving server (or proxy) that echoes the request back in its error message.
    fake_coordinator.faults.add(
        Fault(
            method="POST",
            path=r"/credentials$",
            status=400,
            body={"error": f"bad body {{'password': '{new_password}'}} from admin:{ADMIN_PASSWORD}"},
            times=1,
        )
    )
    fake_coordinator.faults.add(Fault(method="GET", path=r"/roles$", reset=True, times=1))
    errors: list[ApiError] = []
    async with CoordinatorClient(
        fake_coordinator.url, username="admin", password=SecretStr(ADMIN_PASSWORD), options=FAST
    ) as c:
        assert ADMIN_PASSWORD not in repr(c)
        for call in (
            c.set_password(AUTHN, "erin", SecretStr(new_password)),
            c.list_roles(AUTHZ),
            c.set_password(AUTHN, "erin", ""),
            c.get_role(AUTHZ, "missing"),
        ):
            with pytest.raises(ApiError) as info:
                await call
            errors.append(info.value)
    assert [type(e) for e in errors] == [Invalid, Unavailable, Invalid, NotFound]
    assert "***" in errors[0].message
    for err in errors:
        rendered = f"{err} {err!r} {err.args} {err.message}"
        assert new_password not in rendered
        assert ADMIN_PASSWORD not in rendered


# --- TLS ----------------------------------------------------------------------------------------------


def test_tls_verification_is_on_by_default() -> None:
    context = HttpOptions().ssl_context()
    assert context.verify_mode == ssl.CERT_REQUIRED
    assert context.check_hostname is True


@pytest.fixture
def self_signed(tmp_path: Path) -> tuple[Path, Path]:
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("openssl CLI not available")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        [
            openssl,
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
        timeout=30,
    )
    return cert, key


async def test_tls_with_ca_bundle(self_signed: tuple[Path, Path]) -> None:
    cert, key = self_signed
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_context.load_cert_chain(cert, key)
    fake = FakeCoordinator(admin_password=ADMIN_PASSWORD, credential_iterations=ITERATIONS)
    runner = web.AppRunner(fake.build_app(), access_log=None, shutdown_timeout=0.5)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=server_context)
    await site.start()
    try:
        port = runner.addresses[0][1]
        url = f"https://127.0.0.1:{port}"
        trusted = HttpOptions(ca_file=cert, connect_timeout=2.0, read_timeout=5.0)
        async with CoordinatorClient(url, username="admin", password=ADMIN_PASSWORD, options=trusted) as c:
            assert await c.health() is True
            assert "admin" in await c.list_roles(AUTHZ)
        # The system trust store does not know the self-signed certificate.
        async with CoordinatorClient(url, username="admin", password=ADMIN_PASSWORD, options=FAST) as c:
            with pytest.raises(CertificateNotTrusted) as info:
                await c.health()
        assert "TLS certificate is not trusted" in info.value.message
        assert "caBundle" in info.value.message
        insecure = HttpOptions(verify=False, connect_timeout=2.0, read_timeout=5.0)
        async with CoordinatorClient(url, username="admin", password=ADMIN_PASSWORD, options=insecure) as c:
            assert await c.health() is True
    finally:
        await runner.cleanup()


@pytest.mark.parametrize("content", [None, b"not a certificate"])
def test_an_unusable_ca_bundle_is_an_untrusted_certificate(tmp_path: Path, content: bytes | None) -> None:
    """A caBundle file missing or not PEM gives the pass a status (CertificateNotTrusted),
    not an exception nothing expects."""
    bundle = tmp_path / "ca.pem"
    if content is not None:
        bundle.write_bytes(content)
    options = HttpOptions(ca_file=bundle)
    with pytest.raises(CertificateNotTrusted) as info:
        CoordinatorClient("https://127.0.0.1:1", username="admin", password=ADMIN_PASSWORD, options=options)
    assert f"the CA bundle {bundle} cannot be used" in info.value.message
    assert ADMIN_PASSWORD not in str(info.value)
    assert describe_api_error(info.value)[0] is Reason.CERTIFICATE_NOT_TRUSTED


async def test_any_httpx_transport_gets_typed_errors(fake_coordinator: FakeCoordinator) -> None:
    # The clients build each request themselves; an error answer is mapped from the response's
    # request whichever transport sent it (httpx's own sets none on its responses).
    transport = httpx.AsyncHTTPTransport(retries=0)
    async with CoordinatorClient(
        fake_coordinator.url, username="admin", password=ADMIN_PASSWORD, options=FAST, transport=transport
    ) as client:
        await client.create_role(AUTHZ, "via-httpx")
        assert (await client.get_role(AUTHZ, "via-httpx")).name == "via-httpx"
        with pytest.raises(NotFound) as info:
            await client.get_role(AUTHZ, "missing")
    assert info.value.path.endswith("/roles/missing") and info.value.method == "GET"


async def test_a_base_url_with_a_path_fragment_and_no_trailing_slash(
    fake_coordinator: FakeCoordinator,
) -> None:
    # Paths join onto the base URL's own path; its fragment is never sent.
    async with CoordinatorClient(
        f"{fake_coordinator.url}/#console", username="admin", password=ADMIN_PASSWORD, options=FAST
    ) as client:
        await client.create_role(AUTHZ, "r1")
        assert client.base_url.rstrip("/") == fake_coordinator.url
    fake_coordinator.requests.clear()
    async with CoordinatorClient(
        f"{fake_coordinator.url}/proxy", username="admin", password=ADMIN_PASSWORD, options=FAST
    ) as client:
        with pytest.raises(ApiError):  # the fake serves no /proxy prefix
            await client.get_role(AUTHZ, "r1")
    assert [r.path for r in fake_coordinator.requests.records] == [
        "/proxy/druid-ext/basic-security/authorization/db/basic/roles/r1"
    ]


def test_credentials_in_url_are_refused() -> None:
    with pytest.raises(ValueError, match="must not embed credentials") as info:
        CoordinatorClient("http://admin:secret@127.0.0.1:1", username="admin", password="x")
    assert "secret" not in str(info.value)


async def test_a_bulk_read_of_an_unchanged_store_reuses_its_parse(
    coordinator_client: CoordinatorClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A resync of a store that did not change gets the same bytes: decoded once, each caller
    still getting maps of its own; a change is read and decoded again."""
    c = coordinator_client
    decoded: list[int] = []
    real_decode = coordinator_module.smile_decode

    def counting(data: bytes) -> object:
        decoded.append(len(data))
        return real_decode(data)

    monkeypatch.setattr(coordinator_module, "smile_decode", counting)
    await c.create_authenticator_user(AUTHN, "kim")
    await c.create_authorizer_user(AUTHZ, "kim")

    first, second = await c.authenticator_users(AUTHN), await c.authenticator_users(AUTHN)
    maps_1 = await c.authorizer_maps(AUTHZ, group_mappings=True)
    maps_2 = await c.authorizer_maps(AUTHZ, group_mappings=True)
    assert first == second and first is not second
    assert maps_1 == maps_2 and maps_1.users is not maps_2.users
    assert len(decoded) == 3  # the authenticator's map, the authorizer's user map, its group mappings
    first.clear()  # the caller's own: the next read is whole
    assert await c.authenticator_users(AUTHN) == second and "kim" in second

    await c.set_password(AUTHN, "kim", SecretStr("changed"))
    await c.assign_role(AUTHZ, user="kim", role="admin")
    changed = await c.authenticator_users(AUTHN)
    assert changed["kim"].credentials is not None and second["kim"].credentials is None
    assert (await c.authorizer_maps(AUTHZ)).users["kim"].roles == {"admin"}
    assert len(decoded) == 5
