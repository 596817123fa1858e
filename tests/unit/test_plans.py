"""The pure plan functions: what each kind writes for a given desired and observed state."""

from __future__ import annotations

import pytest
from pydantic import SecretStr

from druid_access.clients import (
    AuthenticatorUser,
    AuthorizerUser,
    DbAuthToken,
    GroupMapping,
    PivotConnection,
    Role,
)
from druid_access.clients import Permission as WirePermission
from druid_access.models import DruidConnectionSpec
from druid_access.passwords import hash_password
from druid_access.resources import connection, group_mapping, role, user


def _perm(type_: str, name: str, action: str) -> WirePermission:
    return WirePermission(resource_type=type_, resource_name=name, action=action)


# --- users -----------------------------------------------------------------------------------


def _desired_user(password: str | None = "s3cret", roles: tuple[str, ...] = ("a", "b")) -> user.DesiredUser:
    return user.DesiredUser(
        name="alice@corp", roles=frozenset(roles), password=SecretStr(password) if password else None
    )


def _observed_user(
    password: str | None = "s3cret",
    roles: tuple[str, ...] = ("a", "b"),
    existing: tuple[str, ...] = ("a", "b", "c"),
) -> user.ObservedUser:
    creds = hash_password(password, iterations=1000) if password else None
    return user.ObservedUser(
        authn=AuthenticatorUser(name="alice@corp", credentials=creds),
        authz=AuthorizerUser(name="alice@corp", roles=frozenset(roles)),
        existing_roles=frozenset(existing),
    )


def test_user_in_sync_plans_nothing() -> None:
    plan = user.plan(_desired_user(), _observed_user())
    assert plan.ops == ()
    assert plan.drift == ()
    assert plan.missing_roles == frozenset()


def test_new_user_is_created_in_both_stores_with_password_and_roles() -> None:
    observed = user.ObservedUser(authn=None, authz=None, existing_roles=frozenset({"a", "b"}))
    plan = user.plan(_desired_user(), observed)
    assert [type(op).__name__ for op in plan.ops] == [
        "CreateAuthenticatorUser",
        "SetPassword",
        "CreateAuthorizerUser",
        "AssignRole",
        "AssignRole",
    ]
    assert [op.role for op in plan.ops if isinstance(op, user.AssignRole)] == ["a", "b"]


def test_wrong_password_is_rewritten_and_right_one_is_not() -> None:
    plan = user.plan(_desired_user(password="new-pw"), _observed_user(password="old-pw"))
    assert plan.ops == (user.SetPassword("alice@corp", SecretStr("new-pw")),)
    assert plan.drift == ("password",)


def test_non_ascii_password_verifies() -> None:
    pw = "pässwörd-日本"
    assert user.plan(_desired_user(password=pw), _observed_user(password=pw)).ops == ()


def test_user_without_credentials_gets_a_password() -> None:
    observed = _observed_user(password=None)
    plan = user.plan(_desired_user(), observed)
    assert [type(op).__name__ for op in plan.ops] == ["SetPassword"]


def test_roles_are_diffed_exactly() -> None:
    plan = user.plan(_desired_user(roles=("a", "c")), _observed_user(roles=("a", "b")))
    assert plan.ops == (user.AssignRole("alice@corp", "c"), user.UnassignRole("alice@corp", "b"))
    assert plan.drift == ("roles",)


def test_missing_roles_are_left_out_and_reported() -> None:
    plan = user.plan(_desired_user(roles=("a", "ghost")), _observed_user(roles=("a",), existing=("a",)))
    assert plan.ops == ()
    assert plan.missing_roles == frozenset({"ghost"})


def test_ldap_user_is_authorization_only() -> None:
    observed = user.ObservedUser(authn=None, authz=None, existing_roles=frozenset({"a"}))
    plan = user.plan(_desired_user(password=None, roles=("a",)), observed)
    assert [type(op).__name__ for op in plan.ops] == ["CreateAuthorizerUser", "AssignRole"]


def test_op_descriptions_never_show_the_password() -> None:
    op = user.SetPassword("alice", SecretStr("canary-pw-123"))
    assert "canary-pw-123" not in op.describe()
    assert "canary-pw-123" not in repr(op)


# --- roles -----------------------------------------------------------------------------------


READ_WIKI = _perm("DATASOURCE", "wiki.*", "READ")
WRITE_WIKI = _perm("DATASOURCE", "wiki.*", "WRITE")


def test_role_created_with_permissions() -> None:
    plan = role.plan(role.DesiredRole("r", frozenset({READ_WIKI})), None)
    assert plan.ops == (role.CreateRole("r"), role.SetPermissions("r", frozenset({READ_WIKI})))


def test_empty_role_is_created_without_permission_call() -> None:
    assert role.plan(role.DesiredRole("r", frozenset()), None).ops == (role.CreateRole("r"),)


def test_role_in_sync_regardless_of_order() -> None:
    observed = Role(name="r", permissions=frozenset({WRITE_WIKI, READ_WIKI}))
    assert role.plan(role.DesiredRole("r", frozenset({READ_WIKI, WRITE_WIKI})), observed).ops == ()


def test_role_permission_drift_names_the_difference() -> None:
    observed = Role(name="r", permissions=frozenset({WRITE_WIKI}))
    plan = role.plan(role.DesiredRole("r", frozenset({READ_WIKI})), observed)
    assert plan.ops == (role.SetPermissions("r", frozenset({READ_WIKI})),)
    assert plan.drift == ("permissions (missing READ DATASOURCE/wiki.*; extra WRITE DATASOURCE/wiki.*)",)


@pytest.mark.parametrize("pattern", ["wiki[", "(?#c)x", "(?a)x", "(?P<n>x)"])
def test_invalid_regex_is_refused_before_any_call(pattern: str) -> None:
    with pytest.raises(role.InvalidSpecError, match="not a valid Java regular expression"):
        role.check_pattern(pattern)


@pytest.mark.parametrize("pattern", ["\\p{Lu}+", "\\p{javaLowerCase}.*", "\\p{IsAlphabetic}+", "\\Qa.b\\E"])
def test_java_only_regex_is_accepted(pattern: str) -> None:
    role.check_pattern(pattern)


# --- group mappings --------------------------------------------------------------------------


def _mapping(pattern: str = "cn=a", roles: tuple[str, ...] = ("x",)) -> GroupMapping:
    return GroupMapping(name="g", group_pattern=pattern, roles=frozenset(roles))


def test_mapping_created_with_existing_roles_only() -> None:
    desired = group_mapping.DesiredGroupMapping("g", "cn=a", frozenset({"x", "ghost"}))
    plan = group_mapping.plan(desired, group_mapping.ObservedGroupMapping(None, frozenset({"x"})))
    assert plan.ops == (group_mapping.CreateGroupMapping("g", "cn=a", frozenset({"x"})),)
    assert plan.missing_roles == frozenset({"ghost"})


def test_mapping_pattern_change_recreates() -> None:
    desired = group_mapping.DesiredGroupMapping("g", "cn=b", frozenset({"x"}))
    plan = group_mapping.plan(desired, group_mapping.ObservedGroupMapping(_mapping(), frozenset({"x"})))
    assert plan.ops == (
        group_mapping.DeleteGroupMapping("g"),
        group_mapping.CreateGroupMapping("g", "cn=b", frozenset({"x"})),
    )


def test_mapping_roles_diffed_and_in_sync_is_empty() -> None:
    desired = group_mapping.DesiredGroupMapping("g", "cn=a", frozenset({"y"}))
    observed = group_mapping.ObservedGroupMapping(_mapping(roles=("x",)), frozenset({"x", "y"}))
    plan = group_mapping.plan(desired, observed)
    assert plan.ops == (
        group_mapping.AssignMappingRole("g", "y"),
        group_mapping.UnassignMappingRole("g", "x"),
    )
    same = group_mapping.ObservedGroupMapping(_mapping(roles=("y",)), frozenset({"x", "y"}))
    assert group_mapping.plan(desired, same).ops == ()


# --- connections -----------------------------------------------------------------------------


def _spec(**extra: object) -> DruidConnectionSpec:
    return DruidConnectionSpec.model_validate(
        {
            "queryHosts": ["broker:8082"],
            "title": "Main",
            "defaultDbAuthToken": {"username": "pivot", "passwordSecretRef": {"name": "s", "key": "pw"}},
            **extra,
        }
    )


SECRETS = {("s", "pw"): SecretStr("db-pw")}


def test_connection_built_from_spec_and_secrets() -> None:
    conn = connection.build(_spec(timeout=30000), "main", SECRETS)
    wire = conn.to_wire()
    assert wire["name"] == "main"
    assert wire["queryHosts"] == ["broker:8082"]
    assert wire["defaultDbAuthToken"] == {"type": "basic-auth", "username": "pivot", "password": "db-pw"}
    assert wire["protocol"] == "plain"
    assert "db-pw" not in repr(conn)


def test_connection_in_sync_and_changed_field_and_secret() -> None:
    desired = connection.build(_spec(), "main", SECRETS)
    observed = PivotConnection(
        name="main",
        type="druid",
        query_hosts=("broker:8082",),
        title="Main",
        default_db_auth_token=DbAuthToken(type="basic-auth", username="pivot", password=SecretStr("db-pw")),
    )
    assert connection.plan(desired, observed).ops == ()  # absent protocol means plain
    renamed = observed.model_copy(update={"title": "Edited in the UI"})
    plan = connection.plan(desired, renamed)
    assert plan.drift == ("title",)
    assert isinstance(plan.ops[0], connection.UpdateConnection)
    other_pw = observed.model_copy(
        update={"default_db_auth_token": DbAuthToken(username="pivot", password=SecretStr("rotated"))}
    )
    assert connection.plan(desired, other_pw).drift == ("defaultDbAuthToken",)


def test_connection_extra_remote_property_is_drift() -> None:
    desired = connection.build(_spec(), "main", SECRETS)
    observed = PivotConnection.model_validate({**desired.to_wire(), "decorator": "x.js"})
    assert connection.plan(desired, observed).drift == ("decorator",)


def test_missing_connection_is_created() -> None:
    desired = connection.build(_spec(), "main", SECRETS)
    assert connection.plan(desired, None).ops == (connection.CreateConnection(desired),)
