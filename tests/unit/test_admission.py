"""Admission: what a namespace may have applied to a target, decided before any remote call.

Every route from a tenant namespace to Druid admin is refused here with a specific reason:
a protected role granted by a DruidUser or a DruidGroupMapping, a DruidRole holding a
security-administration permission (``CONFIG`` on a name regex matching ``security``),
adoption of an existing object outside ``adoptionNamespaces``, and look-alike spellings of
protected principals.
"""

from __future__ import annotations

from typing import Any

import pytest

from druid_access.config import ClusterConfig, parse, principal_key
from druid_access.reconcile import AnyKind, admission
from druid_access.resources.connection import ConnectionKind
from druid_access.resources.group_mapping import GroupMappingKind
from druid_access.resources.role import RoleKind
from druid_access.resources.user import UserKind
from druid_access.status import Reason

CONFIG = parse(
    {
        "clusters": {
            "default": {
                "coordinatorUrl": "http://coordinator:8081",
                "adminSecret": {"name": "druid-admin"},
                "allowedNamespaces": ["*"],
                "privilegedNamespaces": ["platform", "sec-*"],
                "adoptionNamespaces": ["platform", "migrate-*"],
            }
        },
        "pivots": {
            "default": {
                "url": "http://pivot:9095",
                "tokenSecret": {"name": "pivot-token"},
                "adoptionNamespaces": ["platform"],
            }
        },
    }
)
CLUSTER = CONFIG.clusters["default"]
PIVOT = CONFIG.pivots["default"]
USER, ROLE, MAPPING, CONNECTION = UserKind(), RoleKind(), GroupMappingKind(), ConnectionKind()


def _admit(
    kind: AnyKind, namespace: str, spec: dict[str, Any], *, name: str = "obj", owned: bool = False
) -> tuple[Reason, str] | None:
    target = PIVOT if kind is CONNECTION else CLUSTER
    return admission(kind, kind.spec_model(spec), {"namespace": namespace, "name": name}, target, owned=owned)


def _perm(type_: str, name: str, action: str = "WRITE") -> dict[str, Any]:
    return {"resource": {"type": type_, "name": name}, "action": action}


def test_defaults_are_empty() -> None:
    bare = ClusterConfig.model_validate(
        {"coordinatorUrl": "http://c:8081", "adminSecret": {"name": "druid-admin"}}
    )
    assert bare.privileged_namespaces == () and bare.adoption_namespaces == ()
    assert not bare.privileged("default") and not bare.allows_adoption("default")


@pytest.mark.parametrize("kind", [USER, MAPPING])
@pytest.mark.parametrize("role", ["admin", "druid_system", "Admin", "ADMIN", "\uff41dmin", "\u212admin"])
def test_protected_role_granted_only_from_privileged_namespaces(kind: AnyKind, role: str) -> None:
    spec: dict[str, Any] = {"roles": ["readers", role]}
    if kind is MAPPING:
        spec["groupPattern"] = "cn=analysts,ou=groups,dc=example,dc=org"
    refused = _admit(kind, "tenant", spec)
    if principal_key(role) not in ("admin", "druid_system"):
        assert refused is None  # the Kelvin sign folds to k, not to a letter of admin
        return
    assert refused is not None
    reason, message = refused
    assert reason is Reason.NOT_PERMITTED
    assert f"protected role {role!r}" in message and "'tenant'" in message
    assert "privilegedNamespaces" in message
    assert _admit(kind, "platform", spec) is None
    assert _admit(kind, "sec-team", spec) is None


@pytest.mark.parametrize(
    ("permission", "refused"),
    [
        (_perm("CONFIG", "security"), True),
        (_perm("CONFIG", "security", "READ"), True),  # READ shows credential hashes
        (_perm("CONFIG", ".*"), True),
        (_perm("CONFIG", ".*", "READ"), True),
        (_perm("CONFIG", "sec.*"), True),
        (_perm("CONFIG", "(?i)SECURITY"), True),
        (_perm("CONFIG", "[a-z]+"), True),
        (_perm("CONFIG", "\\Qsecurity\\E"), True),
        (_perm("CONFIG", "CONFIG"), False),
        (_perm("CONFIG", "secret"), False),
        (_perm("CONFIG", "securityx"), False),
        (_perm("DATASOURCE", ".*"), False),
        (_perm("STATE", "security"), False),
        (_perm("DATASOURCE", "security"), False),
    ],
)
def test_security_administration_permission_needs_a_privileged_namespace(
    permission: dict[str, Any], refused: bool
) -> None:
    spec = {"permissions": [_perm("DATASOURCE", "wiki.*", "READ"), permission]}
    result = _admit(ROLE, "tenant", spec)
    if not refused:
        assert result is None
        return
    assert result is not None
    reason, message = result
    assert reason is Reason.NOT_PERMITTED
    resource = permission["resource"]
    assert f"security-administration permission {permission['action']} CONFIG/{resource['name']}" in message
    assert _admit(ROLE, "platform", spec) is None


def test_connection_has_nothing_to_escalate() -> None:
    assert _admit(CONNECTION, "tenant", {"queryHosts": ["broker:8082"]}) is None


@pytest.mark.parametrize("kind", [USER, ROLE, MAPPING, CONNECTION])
def test_adoption_only_from_adoption_namespaces(kind: AnyKind) -> None:
    spec: dict[str, Any] = {"adoptionPolicy": "Adopt"}
    if kind is MAPPING:
        spec["groupPattern"] = "cn=a,dc=example"
    if kind is CONNECTION:
        spec["queryHosts"] = ["broker:8082"]
    refused = _admit(kind, "tenant", spec)
    assert refused is not None
    reason, message = refused
    assert reason is Reason.ADOPTION_NOT_ALLOWED
    assert "'tenant'" in message and "adoptionNamespaces" in message
    assert _admit(kind, "platform", spec) is None
    # Already owned: adoption is moot, nothing is taken over.
    assert _admit(kind, "tenant", spec, owned=True) is None
    if kind is not CONNECTION:
        assert _admit(kind, "migrate-a", spec) is None
    else:
        assert _admit(kind, "migrate-a", spec) is not None  # the Pivot allows only 'platform'


@pytest.mark.parametrize(
    "name", ["admin", "Admin", "ADMIN", "\uff41\uff44\uff4d\uff49\uff4e", "Druid_System"]
)
def test_look_alike_protected_names_are_protected(name: str) -> None:
    for kind in (USER, ROLE):
        refused = _admit(kind, "platform", {"name": name})
        assert refused is not None and refused[0] is Reason.PROTECTED, (kind, name)


def test_order_tenancy_before_privilege() -> None:
    narrow = parse(
        {
            "clusters": {
                "default": {
                    "coordinatorUrl": "http://c:8081",
                    "adminSecret": {"name": "druid-admin"},
                    "allowedNamespaces": ["team-*"],
                }
            }
        }
    ).clusters["default"]
    result = admission(
        USER, USER.spec_model({"roles": ["admin"]}), {"namespace": "other", "name": "x"}, narrow, owned=False
    )
    assert result is not None and result[0] is Reason.NAMESPACE_NOT_ALLOWED
    assert admission(USER, USER.spec_model({}), {"namespace": "x", "name": "x"}, None, owned=False) == (
        Reason.TARGET_NOT_FOUND,
        "Druid cluster 'default' is not in the operator configuration",
    )


def test_a_password_on_a_cluster_that_checks_passwords_against_ldap_is_invalid() -> None:
    ldap = ClusterConfig.model_validate(
        {
            "coordinatorUrl": "http://c:8081",
            "adminSecret": {"name": "druid-admin"},
            "authenticator": "ldap",
            "authorizer": "ldapauth",
            "credentialsValidator": "ldap",
        }
    )
    password = {"secretKeyRef": {"name": "pw", "key": "password"}}
    with_password = USER.spec_model({"cluster": "ldap", "roles": ["readers"], "password": password})
    refused = admission(USER, with_password, {"namespace": "team", "name": "u"}, ldap, owned=False)
    assert refused is not None
    reason, message = refused
    assert reason is Reason.INVALID_SPEC
    assert "credentialsValidator: ldap" in message and "spec.password" in message
    # Roles only (the LDAP user's authorization) are fine there, and passwords on a metadata cluster.
    roles_only = USER.spec_model({"cluster": "ldap", "roles": ["readers"]})
    assert admission(USER, roles_only, {"namespace": "team", "name": "u"}, ldap, owned=False) is None
    assert _admit(USER, "team", {"roles": ["readers"], "password": password}) is None
    with pytest.raises(ValueError, match="credentialsValidator"):
        ClusterConfig.model_validate(
            {
                "coordinatorUrl": "http://c:8081",
                "adminSecret": {"name": "a"},
                "credentialsValidator": "kerberos",
            }
        )
