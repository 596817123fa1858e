"""Smoke test of a real Apache Druid Coordinator (``druid_access.testing.druid``) with the project's client.

It uses the contract suite's session Coordinator (``real_druid`` in ``conftest.py``), started once from
the class path that ``make druid`` builds. If it is not built, or Druid cannot start, every test here
fails (never skips) with the reason: the ``DruidError`` message says what is missing and includes the
tail of the Coordinator's log.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from contract_support import ADMIN_PASSWORD, ITERATIONS, require_real
from pydantic import SecretStr

from druid_access.clients import (
    AlreadyExists,
    AuthenticatorName,
    AuthorizerName,
    CoordinatorClient,
    HttpOptions,
    NotFound,
)
from druid_access.passwords import verify_password
from druid_access.testing.druid import DRUID_VERSION, DruidCoordinator

pytestmark = pytest.mark.contract

AUTHN = AuthenticatorName("basic")
AUTHZ = AuthorizerName("basic")
OPTIONS = HttpOptions(connect_timeout=5.0, read_timeout=30.0, write_timeout=30.0, pool_timeout=5.0)
POM = Path(__file__).resolve().parents[2] / "druid" / "pom.xml"


@pytest.fixture(scope="module")
def druid(real_druid: DruidCoordinator | Exception) -> DruidCoordinator:
    return require_real(real_druid)


@pytest.fixture
async def client(druid: DruidCoordinator) -> AsyncIterator[CoordinatorClient]:
    async with CoordinatorClient(
        druid.url, username="admin", password=SecretStr(ADMIN_PASSWORD), options=OPTIONS
    ) as coordinator_client:
        yield coordinator_client


def test_pinned_version_matches_the_pom() -> None:
    match = re.search(r"<druid\.version>([^<]+)</druid\.version>", POM.read_text())
    assert match is not None, f"no druid.version property in {POM}"
    assert match.group(1) == DRUID_VERSION


async def test_health_and_load_status(druid: DruidCoordinator, client: CoordinatorClient) -> None:
    assert await client.health()
    assert await client.authentication_load_status() == {AUTHN: True}
    assert await client.authorization_load_status() == {AUTHZ: True}
    assert druid.startup_seconds is not None
    assert all(port > 0 for port in druid.ports)


async def test_admin_lists_the_bootstrapped_users(client: CoordinatorClient) -> None:
    assert {"admin", "druid_system"} <= await client.list_authenticator_users(AUTHN)
    assert {"admin", "druid_system"} <= await client.list_authorizer_users(AUTHZ)
    admin = await client.get_authenticator_user(AUTHN, "admin")
    assert admin.credentials is not None
    assert verify_password(ADMIN_PASSWORD, admin.credentials)
    assert "admin" in (await client.get_authorizer_user(AUTHZ, "admin")).roles


@pytest.mark.parametrize(
    "password",
    [
        pytest.param("plain-ASCII-pw-1", id="ascii"),
        pytest.param("pässwörd-ÜÇ-日本-✓-😀", id="non-ascii"),
    ],
)
async def test_user_password_roundtrip(client: CoordinatorClient, password: str) -> None:
    name = f"contract-smoke-{len(password)}"
    await client.create_authenticator_user(AUTHN, name)
    try:
        with pytest.raises(AlreadyExists):
            await client.create_authenticator_user(AUTHN, name)
        fresh = await client.get_authenticator_user(AUTHN, name)
        assert fresh.name == name
        assert fresh.credentials is None  # no password yet
        assert not await client.check_login(name, password)

        await client.set_password(AUTHN, name, SecretStr(password))
        stored = (await client.get_authenticator_user(AUTHN, name)).credentials
        assert stored is not None
        assert stored.iterations == ITERATIONS
        assert len(stored.salt_bytes()) == 32
        assert len(stored.hash_bytes()) == 64
        # Java's PBKDF2 over the same UTF-8 bytes: the local check agrees with Druid's stored hash.
        assert verify_password(password, stored)
        assert not verify_password(password + "x", stored)

        # The user is authenticated (no roles, so /status is 403, which check_login counts as a login).
        assert await client.check_login(name, SecretStr(password))
        assert not await client.check_login(name, SecretStr(password + "x"))
    finally:
        await client.delete_authenticator_user(AUTHN, name)
    assert name not in await client.list_authenticator_users(AUTHN)
    with pytest.raises(NotFound):
        await client.get_authenticator_user(AUTHN, name)
    assert not await client.check_login(name, SecretStr(password))


def test_processes_bound_to_loopback_and_measurable(druid: DruidCoordinator) -> None:
    assert druid.url.startswith("http://127.0.0.1:")
    assert set(druid.pids) == {"coordinator", "zookeeper"}
    assert all(rss is not None and rss > 0 for rss in druid.memory_rss().values())
