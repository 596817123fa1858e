"""LDAP against REAL Druid Coordinators (27.0.0 and 37.0.0) and a REAL OpenLDAP server (no fakes).

One slapd (``druid_access.testing.ldap.Slapd``, ``memberof`` overlay) and one ZooKeeper + Coordinator
(``DruidCoordinator`` with the LDAP pair from ``Slapd.druid_properties``) serve the module:

- authenticator chain ``basic`` (metadata, ``skipOnFailure=true``) then ``ldap`` (credentials validator
  ``ldap`` against slapd), whose logins are authorized by ``ldapauth`` (role provider ``ldap``);
- the module's own fixtures, not the contract conftest's session Coordinator (that one has no LDAP pair).

Permissions are shown with two endpoints needing different ones: ``GET /status`` needs STATE READ and
``GET /druid/coordinator/v1/config`` needs CONFIG READ. An authenticated user without the permission gets
403, a failed login 401.

Everything is driven through the basic-security HTTP API as the metadata ``admin``; the tests run in
file order but each creates and removes its own roles and mappings.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from druid_access.testing.druid import DruidCoordinator
from druid_access.testing.ldap import Slapd, ldap_coordinator, slapd_available

pytestmark = pytest.mark.contract

ADMIN_PW = "ldap-contract-Adm1n"
AUTHN = "ldap"
AUTHZ = "ldapauth"
# Druid reuses a successful LDAP login (and the groups read with it) while it is used at least every
# credentialVerifyDuration seconds (an idle timeout), but never longer than credentialMaxDuration.
VERIFY_SECONDS = 2
MAX_SECONDS = 5
CACHE_WAIT = 30.0

ALICE, ALICE_PW = "alice", "alice-ldap-pässwörd ✓"
BOB, BOB_PW = "bob", "bob-ldap-password"
CAROL, CAROL_PW = "carol", "carol-ldap-password"  # in a group outside ou=groups
DAVE, DAVE_PW = "dave", "dave-ldap-password"  # in no group at all

STATUS = "/status"  # STATE READ
CONFIG = "/druid/coordinator/v1/config"  # CONFIG READ


def _perm(type_: str, action: str = "READ") -> dict[str, Any]:
    return {"resource": {"type": type_, "name": type_}, "action": action}


# ------------------------------------------------------------------------------------ fixtures


@pytest.fixture(scope="module")
def slapd(druid_version: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Slapd]:
    """A fresh directory per Druid release (the tests change memberships)."""
    if not slapd_available():
        pytest.fail("slapd / ldap-utils are not installed: run `make ldap` (hack/install-slapd.sh)")
    server = Slapd(tmp_path_factory.mktemp("ldap-contract-slapd"))
    server.start()
    try:
        server.add_user(ALICE, ALICE_PW)
        server.add_user(BOB, BOB_PW)
        server.add_user(CAROL, CAROL_PW)
        server.add_user(DAVE, DAVE_PW)
        server.add_group("analysts", [ALICE])
        server.add_group("ops", [BOB])
        server.add_entries(f"dn: ou=teams,{server.suffix}\nobjectClass: organizationalUnit\nou: teams\n\n")
        server.add_group("outsiders", [CAROL], ou="teams")
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def druid(
    druid_version: str, slapd: Slapd, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[DruidCoordinator]:
    with ldap_coordinator(
        tmp_path_factory.mktemp(f"ldap-contract-druid-{druid_version}"),
        slapd,
        admin_password=ADMIN_PW,
        version=druid_version,
        authenticator=AUTHN,
        authorizer=AUTHZ,
        credential_verify_seconds=VERIFY_SECONDS,
        credential_max_seconds=MAX_SECONDS,
    ) as coordinator:
        yield coordinator


@pytest.fixture(scope="module")
def admin(druid: DruidCoordinator) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=druid.url, auth=("admin", ADMIN_PW), timeout=30) as client:
        yield client


# ------------------------------------------------------------------------------------- helpers


def answer(druid: DruidCoordinator, path: str, user: str, password: str) -> int:
    """The status of a GET as ``user`` (HTTP Basic, UTF-8)."""
    return httpx.get(f"{druid.url}{path}", auth=(user, password), timeout=30).status_code


def wait_until(probe: Callable[[], bool], what: str, timeout: float = CACHE_WAIT) -> float:
    """Poll ``probe`` until true (bounded); returns the seconds it took."""
    started = time.monotonic()
    while not probe():
        if time.monotonic() - started > timeout:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.25)
    return time.monotonic() - started


def authz(path: str) -> str:
    return f"/druid-ext/basic-security/authorization/db/{AUTHZ}{path}"


def ok(response: httpx.Response) -> httpx.Response:
    assert response.is_success, (response.request.method, response.request.url, response.text)
    return response


def create_role(admin: httpx.Client, role: str, permissions: list[dict[str, Any]]) -> None:
    ok(admin.post(authz(f"/roles/{role}")))
    ok(admin.post(authz(f"/roles/{role}/permissions"), json=permissions))


def create_mapping(admin: httpx.Client, name: str, pattern: str, roles: list[str]) -> None:
    # Druid stores the roles given in the body (no role check); they are also assigned one by one
    # below, the way the operator does when roles change.
    ok(admin.post(authz(f"/groupMappings/{name}"), json={"name": name, "groupPattern": pattern, "roles": []}))
    for role in roles:
        ok(admin.post(authz(f"/groupMappings/{name}/roles/{role}")))


@pytest.fixture
def roles(admin: httpx.Client) -> Iterator[tuple[str, str]]:
    """A STATE READ role and a CONFIG READ role in the LDAP authorizer, removed afterwards."""
    state, config = "ldap-state-readers", "ldap-config-readers"
    create_role(admin, state, [_perm("STATE")])
    create_role(admin, config, [_perm("CONFIG")])
    try:
        yield state, config
    finally:
        for name in ok(admin.get(authz("/groupMappings"))).json():
            if name != "adminGroupMapping":
                admin.delete(authz(f"/groupMappings/{name}"))
        for role in (state, config):
            admin.delete(authz(f"/roles/{role}"))


# -------------------------------------------------------------------------------------- tests


def test_slapd_keeps_memberof_and_starts_fast(slapd: Slapd) -> None:
    assert slapd.member_of(ALICE) == [slapd.group_dn("analysts")]
    assert slapd.member_of(BOB) == [slapd.group_dn("ops")]
    assert slapd.member_of(CAROL) == [slapd.group_dn("outsiders", ou="teams")]
    assert slapd.member_of(DAVE) == []
    assert slapd.can_bind(slapd.user_dn(ALICE), ALICE_PW)
    assert not slapd.can_bind(slapd.user_dn(ALICE), BOB_PW)
    assert slapd.startup_seconds is not None
    assert slapd.startup_seconds < 30  # well under a second when the machine is idle


def test_both_authenticators_and_authorizers_are_loaded(druid: DruidCoordinator) -> None:
    authn, authz_status = druid.load_status()
    assert authn == {"basic": True, AUTHN: True}
    assert authz_status == {"basic": True, AUTHZ: True}
    assert druid.coordinator_startup_seconds is not None


def test_ldap_users_authenticate_with_their_ldap_password(druid: DruidCoordinator) -> None:
    # Authenticated (403: no role yet) with the LDAP password, including non-ASCII.
    assert answer(druid, STATUS, ALICE, ALICE_PW) == 403
    assert answer(druid, STATUS, BOB, BOB_PW) == 403
    # Not in any group (or only in one outside the role provider's filter): still authenticated.
    assert answer(druid, STATUS, DAVE, DAVE_PW) == 403
    assert answer(druid, STATUS, CAROL, CAROL_PW) == 403
    # Wrong password, someone else's password, an unknown user: 401.
    assert answer(druid, STATUS, ALICE, ALICE_PW + "x") == 401
    assert answer(druid, STATUS, ALICE, BOB_PW) == 401
    assert answer(druid, STATUS, "nobody", "whatever") == 401


def test_metadata_admin_still_works_first_in_the_chain(druid: DruidCoordinator) -> None:
    # skipOnFailure=true on the metadata authenticator only passes failed logins on: the admin is
    # still authenticated (and authorized) by the metadata pair.
    assert answer(druid, STATUS, "admin", ADMIN_PW) == 200
    assert answer(druid, CONFIG, "admin", ADMIN_PW) == 200
    # A wrong admin password falls through to LDAP, which has no admin: still 401.
    assert answer(druid, STATUS, "admin", ADMIN_PW + "x") == 401


def test_group_mapping_grants_the_roles_permissions(
    druid: DruidCoordinator, admin: httpx.Client, roles: tuple[str, str]
) -> None:
    state, config = roles
    create_mapping(admin, "analysts", "cn=analysts,ou=groups,dc=example,dc=org", [state])
    mapping = ok(admin.get(authz("/groupMappings/analysts"))).json()
    assert mapping["groupPattern"] == "cn=analysts,ou=groups,dc=example,dc=org"
    assert set(mapping["roles"]) == {state}
    # A mapping change applies at once (roles are resolved per request from the authorizer's cache).
    assert answer(druid, STATUS, ALICE, ALICE_PW) == 200
    assert answer(druid, CONFIG, ALICE, ALICE_PW) == 403
    assert answer(druid, STATUS, BOB, BOB_PW) == 403  # ops is not mapped

    ok(admin.post(authz(f"/groupMappings/analysts/roles/{config}")))
    assert answer(druid, CONFIG, ALICE, ALICE_PW) == 200
    ok(admin.delete(authz(f"/groupMappings/analysts/roles/{state}")))
    assert answer(druid, STATUS, ALICE, ALICE_PW) == 403
    assert answer(druid, CONFIG, ALICE, ALICE_PW) == 200

    ok(admin.delete(authz("/groupMappings/analysts")))
    assert answer(druid, CONFIG, ALICE, ALICE_PW) == 403
    # The metadata admin is untouched by all of this.
    assert answer(druid, CONFIG, "admin", ADMIN_PW) == 200


def test_wildcard_pattern_and_the_role_providers_group_filter(
    druid: DruidCoordinator, admin: httpx.Client, roles: tuple[str, str]
) -> None:
    state, _ = roles
    create_mapping(admin, "all-groups", "*,ou=groups,dc=example,dc=org", [state])
    assert answer(druid, STATUS, ALICE, ALICE_PW) == 200
    assert answer(druid, STATUS, BOB, BOB_PW) == 200
    assert answer(druid, STATUS, DAVE, DAVE_PW) == 403  # no group
    # carol's group is under ou=teams: neither the pattern nor the role provider's filter covers it.
    assert answer(druid, STATUS, CAROL, CAROL_PW) == 403
    create_mapping(admin, "teams", "*,ou=teams,dc=example,dc=org", [state])
    # Mapped now, but roleProvider.groupFilters (*,ou=groups,...) drops groups outside ou=groups.
    assert answer(druid, STATUS, CAROL, CAROL_PW) == 403


def test_authorizer_user_gives_roles_to_an_ldap_user_directly(
    druid: DruidCoordinator, admin: httpx.Client, roles: tuple[str, str]
) -> None:
    _, config = roles
    ok(admin.post(authz(f"/users/{DAVE}")))  # an authorizer user named like the LDAP uid
    try:
        ok(admin.post(authz(f"/users/{DAVE}/roles/{config}")))
        assert answer(druid, CONFIG, DAVE, DAVE_PW) == 200
        assert answer(druid, STATUS, DAVE, DAVE_PW) == 403
        assert answer(druid, CONFIG, DAVE, DAVE_PW + "x") == 401  # roles do not bypass the password
    finally:
        ok(admin.delete(authz(f"/users/{DAVE}")))
    assert answer(druid, CONFIG, DAVE, DAVE_PW) == 403


def test_ldap_side_changes_wait_for_the_per_user_cache(
    druid: DruidCoordinator, slapd: Slapd, admin: httpx.Client, roles: tuple[str, str]
) -> None:
    state, _ = roles
    create_mapping(admin, "ops", "cn=ops,ou=groups,dc=example,dc=org", [state])
    assert answer(druid, STATUS, BOB, BOB_PW) == 200  # bob's login and groups are now cached
    slapd.set_members("ops", [ALICE])
    assert slapd.member_of(BOB) == []
    # Druid keeps bob's groups while his cached login lives: polled constantly (never idle for
    # credentialVerifyDuration) that is until credentialMaxDuration, then it asks slapd again.
    assert answer(druid, STATUS, BOB, BOB_PW) == 200
    took = wait_until(lambda: answer(druid, STATUS, BOB, BOB_PW) == 403, "bob's cached groups to expire")
    assert took < MAX_SECONDS + 10
    assert answer(druid, STATUS, ALICE, ALICE_PW) == 200

    # Idle for longer than credentialVerifyDuration: the next login reads the directory again.
    slapd.set_members("ops", [BOB])
    time.sleep(VERIFY_SECONDS + 1)
    assert answer(druid, STATUS, BOB, BOB_PW) == 200

    # A password changed in LDAP: the cached old one keeps working until the cache lets go of it.
    slapd.set_password(BOB, BOB_PW + "-new")
    assert answer(druid, STATUS, BOB, BOB_PW) == 200
    wait_until(lambda: answer(druid, STATUS, BOB, BOB_PW) == 401, "bob's old password to be refused")
    assert answer(druid, STATUS, BOB, BOB_PW + "-new") == 200
    slapd.set_password(BOB, BOB_PW)


def test_ldap_authenticators_own_user_store_is_not_used_for_logins(
    admin: httpx.Client, druid: DruidCoordinator
) -> None:
    """The LDAP authenticator is a basic authenticator, so it has a (normally empty) user store of its
    own, but its credentials validator never reads it: a password set there logs nobody in."""
    users = f"/druid-ext/basic-security/authentication/db/{AUTHN}/users"
    assert ok(admin.get(users)).json() == []
    ok(admin.post(f"{users}/zed"))
    try:
        ok(admin.post(f"{users}/zed/credentials", json={"password": "zed-password"}))
        assert answer(druid, STATUS, "zed", "zed-password") == 401
    finally:
        ok(admin.delete(f"{users}/zed"))
    missing = admin.delete(f"{users}/zed")
    assert missing.status_code == 400
    assert "does not exist" in missing.text
