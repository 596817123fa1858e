"""The operator end to end with LDAP: a REAL OpenLDAP directory, REAL Druid 27 and 37 Coordinators.

- slapd (``druid_access.testing.ldap.Slapd``) with the ``memberof`` overlay holds the users and groups;
- one ZooKeeper + Coordinator with two authenticator/authorizer pairs: ``basic`` (metadata store, the
  operator's ``admin``; first in the chain with ``skipOnFailure=true``) and ``ldap`` -> ``ldapauth``
  (``Slapd.druid_properties``);
- one operator process whose configuration has a cluster ``ldap`` on that Coordinator with
  ``authenticator: ldap`` and ``authorizer: ldapauth``: DruidRoles, DruidGroupMappings and password-less
  DruidUsers with ``cluster: ldap`` are reconciled in the LDAP authorizer.

What a user may do is checked with real logins of LDAP users (their LDAP passwords) against two endpoints
needing different permissions: ``GET /status`` (STATE READ) and ``GET /druid/coordinator/v1/config``
(CONFIG READ). 403 means authenticated but not allowed.

Druid caches an LDAP login together with the groups read for it (``credentialVerifyDuration`` idle,
``credentialMaxDuration`` at most); both are set to a few seconds here. Group-mapping and role changes
made by the operator apply to the next request; checks are still polled (bounded) because the operator
applies them asynchronously. The tests run in file order and share the objects they create.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from druid_access.testing.controlplane import ControlPlane, KubectlError
from druid_access.testing.druid import DruidCoordinator
from druid_access.testing.environment import (
    OperatorProcess,
    apply,
    kubectl_json,
    operator_on_real_druid,
    secret,
    wait_for,
    wait_reason,
)
from druid_access.testing.ldap import Slapd, ldap_coordinator, slapd_available

pytestmark = pytest.mark.contract

NS = "ldap-e2e"
CLUSTER = "ldap"
AUTHN = "ldap"
AUTHZ = "ldapauth"
ADMIN_PW = "ldap-e2e-Adm1n-pw"
ADMIN_SECRET = "druid-admin-ldap-e2e"
RESYNC = 3.0
VERIFY_SECONDS = 2
MAX_SECONDS = 4
WAIT = 45.0

ALICE, ALICE_PW = "alice", "alice-ldap-pw ✓"  # cn=analysts
BOB, BOB_PW = "bob", "bob-ldap-pw"  # cn=ops
DAVE, DAVE_PW = "dave", "dave-ldap-pw"  # no group

STATE_ROLE = "ldap-state-readers"
CONFIG_ROLE = "ldap-config-readers"
STATUS = "/status"  # STATE READ
CONFIG = "/druid/coordinator/v1/config"  # CONFIG READ
SUFFIX = "dc=example,dc=org"


# ------------------------------------------------------------------------------------ fixtures


@pytest.fixture(scope="module")
def slapd(druid_version: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Slapd]:
    """A fresh directory per Druid release (the tests change memberships)."""
    if not slapd_available():
        pytest.fail("slapd / ldap-utils are not installed: run `make ldap` (hack/install-slapd.sh)")
    server = Slapd(tmp_path_factory.mktemp("ldap-e2e-slapd"), suffix=SUFFIX)
    server.start()
    try:
        for uid, password in ((ALICE, ALICE_PW), (BOB, BOB_PW), (DAVE, DAVE_PW)):
            server.add_user(uid, password)
        server.add_group("analysts", [ALICE])
        server.add_group("ops", [BOB])
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def druid(
    druid_version: str, slapd: Slapd, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[DruidCoordinator]:
    with ldap_coordinator(
        tmp_path_factory.mktemp(f"ldap-e2e-druid-{druid_version}"),
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
def operator(
    controlplane: ControlPlane, druid: DruidCoordinator, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[OperatorProcess]:
    """The operator with one cluster whose authorizer is the LDAP authorizer (same Coordinator)."""
    cluster = {
        "coordinatorUrl": druid.url,
        "authenticator": AUTHN,
        "authorizer": AUTHZ,
        "credentialsValidator": "ldap",
        "allowedNamespaces": [NS],
        "resyncSeconds": RESYNC,
        "timeoutSeconds": 10,
    }
    with operator_on_real_druid(
        controlplane,
        clusters={CLUSTER: cluster},
        namespace=NS,
        admin_secret=ADMIN_SECRET,
        admin_password=ADMIN_PW,
        workdir=tmp_path_factory.mktemp("ldap-e2e-operator"),
    ) as proc:
        yield proc


@pytest.fixture(scope="module")
def admin(druid: DruidCoordinator) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=druid.url, auth=("admin", ADMIN_PW), timeout=30) as client:
        yield client


# ------------------------------------------------------------------------------------- helpers


def answer(druid: DruidCoordinator, path: str, user: str, password: str) -> int:
    return httpx.get(f"{druid.url}{path}", auth=(user, password), timeout=30).status_code


def access(druid: DruidCoordinator, user: str, password: str) -> tuple[int, int]:
    """(``/status``, ``/druid/coordinator/v1/config``) answers for ``user``."""
    return answer(druid, STATUS, user, password), answer(druid, CONFIG, user, password)


def wait_access(druid: DruidCoordinator, user: str, password: str, expected: tuple[int, int]) -> None:
    wait_for(
        lambda: access(druid, user, password) == expected,
        timeout=WAIT,
        what=f"{user}'s access to be {expected} (now {access(druid, user, password)})",
    )


def _doc(kind: str, name: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "druidaccess.io/v1alpha1",
        "kind": kind,
        "metadata": {"name": name, "namespace": NS},
        "spec": {"cluster": CLUSTER, **spec},
    }


def _perm(type_: str) -> dict[str, Any]:
    # The exact resource names Druid checks. CONFIG on ".*" would also match Druid's "security"
    # config, which the operator grants only from privileged namespaces.
    return {"resource": {"type": type_, "name": type_}, "action": "READ"}


def remote(admin: httpx.Client, path: str) -> Any:
    """GET on the LDAP authorizer's API as the metadata admin; None when it answers 400/404."""
    response = admin.get(f"/druid-ext/basic-security/authorization/db/{AUTHZ}{path}")
    if response.status_code in (400, 404):
        return None
    response.raise_for_status()
    return response.json()


def mapping(admin: httpx.Client, name: str) -> dict[str, Any] | None:
    found: dict[str, Any] | None = remote(admin, f"/groupMappings/{name}")
    return found


# -------------------------------------------------------------------------------------- tests


def test_group_mapping_grants_an_ldap_group_the_roles_permissions(
    controlplane: ControlPlane, druid: DruidCoordinator, operator: OperatorProcess, admin: httpx.Client
) -> None:
    cp = controlplane
    # Authenticated by LDAP before anything is mapped, but allowed nothing.
    assert access(druid, ALICE, ALICE_PW) == (403, 403)
    assert access(druid, ALICE, ALICE_PW + "x") == (401, 401)

    apply(
        cp,
        [
            _doc("DruidRole", STATE_ROLE, {"permissions": [_perm("STATE")]}),
            _doc("DruidRole", CONFIG_ROLE, {"permissions": [_perm("CONFIG")]}),
        ],
    )
    for role in (STATE_ROLE, CONFIG_ROLE):
        wait_reason(cp, "druidrole", NS, role, "Synced")
    apply(
        cp,
        _doc(
            "DruidGroupMapping",
            "analysts",
            {"groupPattern": f"cn=analysts,ou=groups,{SUFFIX}", "roles": [STATE_ROLE]},
        ),
    )
    obj = wait_reason(cp, "druidgroupmapping", NS, "analysts", "Synced")
    assert obj["status"]["owned"] is True
    found = mapping(admin, "analysts")
    assert found is not None
    assert (found["groupPattern"], found["roles"]) == (f"cn=analysts,ou=groups,{SUFFIX}", [STATE_ROLE])

    # alice (in cn=analysts) logs in with her LDAP password and gets STATE READ, not CONFIG READ.
    wait_access(druid, ALICE, ALICE_PW, (200, 403))
    assert access(druid, ALICE, ALICE_PW + "x") == (401, 401)
    # bob's group is not mapped.
    assert access(druid, BOB, BOB_PW) == (403, 403)
    # The metadata admin is still authenticated by the first authenticator.
    assert access(druid, "admin", ADMIN_PW) == (200, 200)


def test_changing_the_mappings_roles_changes_the_permissions(
    controlplane: ControlPlane, druid: DruidCoordinator, operator: OperatorProcess, admin: httpx.Client
) -> None:
    apply(
        controlplane,
        _doc(
            "DruidGroupMapping",
            "analysts",
            {"groupPattern": f"cn=analysts,ou=groups,{SUFFIX}", "roles": [CONFIG_ROLE]},
        ),
    )
    wait_access(druid, ALICE, ALICE_PW, (403, 200))
    obj = wait_reason(controlplane, "druidgroupmapping", NS, "analysts", "Synced")
    assert obj["metadata"]["generation"] == 2
    found = mapping(admin, "analysts")
    assert found is not None
    assert found["roles"] == [CONFIG_ROLE]


def test_deleting_the_mapping_takes_the_permissions_away(
    controlplane: ControlPlane, druid: DruidCoordinator, operator: OperatorProcess, admin: httpx.Client
) -> None:
    controlplane.kubectl("delete", "druidgroupmapping", "analysts", "-n", NS, "--timeout=60s")
    assert mapping(admin, "analysts") is None
    wait_access(druid, ALICE, ALICE_PW, (403, 403))


def test_a_wildcard_pattern_maps_every_group_under_a_dn(
    controlplane: ControlPlane, druid: DruidCoordinator, operator: OperatorProcess
) -> None:
    apply(
        controlplane,
        _doc(
            "DruidGroupMapping",
            "all-groups",
            {"groupPattern": f"*,ou=groups,{SUFFIX}", "roles": [STATE_ROLE]},
        ),
    )
    wait_reason(controlplane, "druidgroupmapping", NS, "all-groups", "Synced")
    wait_access(druid, ALICE, ALICE_PW, (200, 403))
    wait_access(druid, BOB, BOB_PW, (200, 403))
    # dave is in no group: nothing under ou=groups matches him.
    assert access(druid, DAVE, DAVE_PW) == (403, 403)


def test_an_invalid_pattern_never_reaches_druid(
    controlplane: ControlPlane, druid: DruidCoordinator, operator: OperatorProcess, admin: httpx.Client
) -> None:
    cp = controlplane
    # Not a DN at all (a regular expression): the CRD schema refuses it, nothing is stored.
    with pytest.raises(KubectlError) as refused:
        apply(cp, _doc("DruidGroupMapping", "regex", {"groupPattern": ".*analysts.*", "roles": [STATE_ROLE]}))
    assert "groupPattern" in refused.value.stderr
    assert cp.kubectl("get", "druidgroupmapping", "regex", "-n", NS, check=False).returncode != 0

    # Passes the schema's first filter but is no DN Druid can parse (an empty RDN): InvalidSpec.
    apply(cp, _doc("DruidGroupMapping", "broken", {"groupPattern": f"cn=a,,{SUFFIX}", "roles": [STATE_ROLE]}))
    obj = wait_reason(cp, "druidgroupmapping", NS, "broken", "InvalidSpec")
    message = next(c["message"] for c in obj["status"]["conditions"] if c["type"] == "Ready")
    assert "group pattern" in message.lower() or "groupPattern" in message
    # Druid never saw it, and the LDAP users' logins keep working (a stored unparsable pattern would
    # fail every request of an LDAP user in any group).
    assert mapping(admin, "broken") is None
    names = remote(admin, "/groupMappings")
    assert "broken" not in names
    assert access(druid, ALICE, ALICE_PW) == (200, 403)
    assert access(druid, BOB, BOB_PW) == (200, 403)
    cp.kubectl("delete", "druidgroupmapping", "broken", "-n", NS, "--timeout=60s")


def test_a_password_less_druid_user_gives_roles_to_an_ldap_user(
    controlplane: ControlPlane, druid: DruidCoordinator, operator: OperatorProcess, admin: httpx.Client
) -> None:
    cp = controlplane
    assert access(druid, DAVE, DAVE_PW) == (403, 403)
    # No password: the user exists in the authorizer only, named like the LDAP uid.
    apply(cp, _doc("DruidUser", "dave", {"name": DAVE, "roles": [CONFIG_ROLE]}))
    obj = wait_reason(cp, "druiduser", NS, "dave", "Synced")
    assert obj["status"]["remoteName"] == DAVE
    user = remote(admin, f"/users/{DAVE}")
    assert user is not None
    assert user["roles"] == [CONFIG_ROLE]
    # Nothing was written to the LDAP authenticator's own (unused) user store.
    authn_users = admin.get(f"/druid-ext/basic-security/authentication/db/{AUTHN}/users").json()
    assert DAVE not in authn_users
    wait_access(druid, DAVE, DAVE_PW, (403, 200))
    assert access(druid, DAVE, DAVE_PW + "x") == (401, 401)  # the LDAP password is still required

    # Deleting the DruidUser removes the authorizer user and with it the role.
    cp.kubectl("delete", "druiduser", "dave", "-n", NS, "--timeout=60s")
    assert remote(admin, f"/users/{DAVE}") is None
    wait_access(druid, DAVE, DAVE_PW, (403, 403))


def test_a_password_on_the_ldap_cluster_is_refused_before_reaching_druid(
    controlplane: ControlPlane, druid: DruidCoordinator, operator: OperatorProcess, admin: httpx.Client
) -> None:
    cp = controlplane
    apply(cp, secret("erin-pw", {"password": "erin-metadata-pw"}, NS))
    spec = {
        "name": "erin",
        "roles": [CONFIG_ROLE],
        "password": {"secretKeyRef": {"name": "erin-pw", "key": "password"}},
    }
    apply(cp, _doc("DruidUser", "erin", spec))
    obj = wait_reason(cp, "druiduser", NS, "erin", "InvalidSpec")
    ready = next(c for c in obj["status"]["conditions"] if c["type"] == "Ready")
    assert "credentialsValidator: ldap" in ready["message"]
    assert remote(admin, "/users/erin") is None
    authn_users = admin.get(f"/druid-ext/basic-security/authentication/db/{AUTHN}/users").json()
    assert "erin" not in authn_users
    cp.kubectl("delete", "druiduser", "erin", "-n", NS, "--timeout=60s")


def test_ldap_membership_changes_apply_once_the_login_cache_expires(
    druid: DruidCoordinator, slapd: Slapd, operator: OperatorProcess
) -> None:
    # all-groups maps every group under ou=groups to STATE READ; taking bob out of cn=ops in the
    # directory takes it away once Druid reads his groups again (at most credentialMaxDuration).
    assert access(druid, BOB, BOB_PW) == (200, 403)
    slapd.set_members("ops", [])
    wait_access(druid, BOB, BOB_PW, (403, 403))
    slapd.set_members("ops", [BOB])
    wait_access(druid, BOB, BOB_PW, (200, 403))


def test_no_failures_and_no_secrets_in_the_log(controlplane: ControlPlane, operator: OperatorProcess) -> None:
    events = kubectl_json(controlplane, "get", "events", "-n", NS)["items"]
    failures = [
        (e["reason"], e["involvedObject"]["name"], e.get("message"))
        for e in events
        if e.get("type") == "Warning" and e["involvedObject"]["name"] not in ("broken", "erin")
    ]
    assert failures == [], json.dumps(failures, indent=1)
    log = operator.log()
    assert "reconcile failed" not in log
    for secret_value in (ADMIN_PW, ALICE_PW, BOB_PW, DAVE_PW, "erin-metadata-pw"):
        assert secret_value not in log
