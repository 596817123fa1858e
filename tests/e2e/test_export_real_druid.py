"""``druid-access export`` round trip against a REAL Druid Coordinator.

State is made with plain API calls as admin (users with unicode, '@' and spaces in their
names and passwords, an authorization-only user, roles, a group mapping), exported with the
command line, applied with ``kubectl apply -f`` into an adoption namespace, and taken over by the
operator: every object is Synced, the operator made not one remote write, and every password
still logs in. One user gets the Secret reference the export's comment describes (with its
current password), one is applied as exported: both adopt without a write.
"""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import SecretStr

from druid_access.clients import AuthenticatorName, AuthorizerName, CoordinatorClient, HttpOptions, Permission
from druid_access.testing.controlplane import ControlPlane
from druid_access.testing.druid import NEWEST_VERSION, DruidCoordinator
from druid_access.testing.environment import (
    OperatorProcess,
    apply,
    operator_on_real_druid,
    secret,
    wait_reason,
)

pytestmark = pytest.mark.contract

NS = "adopt-export"
ADMIN_PW = "export-Adm1n-pw #ä"
ADMIN_SECRET = "druid-admin-export"
AUTHN = AuthenticatorName("basic")
AUTHZ = AuthorizerName("basic")
OPTIONS = HttpOptions(connect_timeout=5.0, read_timeout=30.0, write_timeout=30.0, pool_timeout=5.0)
PASSWORDS = {"alice@corp.example": "pässwörd-日本-✓ one", "Zoë Smith": "zoe pw 2"}
LDAP_USER = "carol"
ROLES = {
    "readers": [("DATASOURCE", "wiki.*", "READ"), ("STATE", "STATE", "READ")],
    "team writers": [("DATASOURCE", "edits", "WRITE")],
}
ASSIGNED = {
    "alice@corp.example": {"readers", "team writers"},
    "Zoë Smith": {"readers"},
    LDAP_USER: {"readers"},
}
MAPPING = ("analysts", "cn=analysts,ou=groups,dc=example,dc=org", {"readers"})
CLI = [sys.executable, "-m", "druid_access.cli"]


async def _made_by_hand(url: str) -> None:
    async with CoordinatorClient(url, username="admin", password=SecretStr(ADMIN_PW), options=OPTIONS) as c:
        for role, permissions in ROLES.items():
            await c.create_role(AUTHZ, role)
            await c.set_permissions(
                AUTHZ,
                role,
                [Permission(resource_type=t, resource_name=n, action=a) for t, n, a in permissions],
            )
        for user, password in PASSWORDS.items():
            await c.create_authenticator_user(AUTHN, user)
            await c.set_password(AUTHN, user, SecretStr(password))
        for user, roles in ASSIGNED.items():
            await c.create_authorizer_user(AUTHZ, user)
            for role in sorted(roles):
                await c.assign_role(AUTHZ, user=user, role=role)
        name, pattern, roles = MAPPING
        await c.create_group_mapping(AUTHZ, name, group_pattern=pattern, roles=roles)


async def _remote_state(url: str) -> dict[str, Any]:
    async with CoordinatorClient(url, username="admin", password=SecretStr(ADMIN_PW), options=OPTIONS) as c:
        users = {u: (await c.get_authorizer_user(AUTHZ, u)).roles for u in ASSIGNED}
        roles = {r: await c.get_permissions(AUTHZ, r) for r in ROLES}
        mapping = await c.get_group_mapping(AUTHZ, MAPPING[0])
        logins = {u: await c.check_login(u, SecretStr(pw)) for u, pw in PASSWORDS.items()}
        credentials = {u: (await c.get_authenticator_user(AUTHN, u)).credentials for u in PASSWORDS}
        return {
            "users": users,
            "roles": roles,
            "mapping": mapping,
            "logins": logins,
            "credentials": credentials,
        }


@pytest.fixture(scope="module")
def druid(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DruidCoordinator]:
    with DruidCoordinator(
        tmp_path_factory.mktemp("export-druid"), admin_password=ADMIN_PW, version=NEWEST_VERSION
    ) as coordinator:
        asyncio.run(_made_by_hand(coordinator.url))
        yield coordinator


@pytest.fixture(scope="module")
def operator(
    controlplane: ControlPlane, druid: DruidCoordinator, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[OperatorProcess]:
    cluster = {"coordinatorUrl": druid.url, "resyncSeconds": 5, "adoptionNamespaces": [NS]}
    with operator_on_real_druid(
        controlplane,
        clusters={"default": cluster},
        namespace=NS,
        admin_secret=ADMIN_SECRET,
        admin_password=ADMIN_PW,
        workdir=tmp_path_factory.mktemp("export-operator"),
    ) as proc:
        yield proc


def _export(
    druid: DruidCoordinator, *flags: str, password: str = ADMIN_PW
) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DRUID_EXPORT_PASSWORD": password}
    command = [
        *CLI,
        "export",
        "--coordinator-url",
        druid.url,
        "--password-env",
        "DRUID_EXPORT_PASSWORD",
        *flags,
    ]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=120, check=False)


def test_wrong_credentials_are_one_line_and_exit_code_1(druid: DruidCoordinator) -> None:
    result = _export(druid, password="not-the-password")
    assert result.returncode == 1
    assert result.stdout == ""
    assert "-> 401: " in result.stderr and "(the user name or password is wrong)" in result.stderr
    assert "Traceback" not in result.stderr and "not-the-password" not in result.stderr


def test_exported_state_is_adopted_with_no_remote_write_and_every_password_still_logs_in(
    druid: DruidCoordinator, operator: OperatorProcess, controlplane: ControlPlane, tmp_path: Path
) -> None:
    before = asyncio.run(_remote_state(druid.url))
    assert all(before["logins"].values())
    out = tmp_path / "export.yaml"
    result = _export(druid, "--namespace", NS, "--cluster", "default", "--output", str(out))
    assert result.returncode == 0, result.stderr
    assert re.search(
        r"read \d+ authenticator users, \d+ authorizer users, \d+ roles, 1 group mappings", result.stderr
    )
    text = out.read_text(encoding="utf-8")
    for password in (ADMIN_PW, *PASSWORDS.values()):
        assert password not in text and password not in result.stderr
    documents = [doc for doc in yaml.safe_load_all(text) if doc]
    exported = {(d["kind"], d["spec"]["name"]) for d in documents}
    assert exported == {
        *(("DruidRole", r) for r in ROLES),
        *(("DruidUser", u) for u in ASSIGNED),
        ("DruidGroupMapping", MAPPING[0]),
    }  # admin and druid_system (users and roles) are protected: not exported

    # As the export's comment says: one user gets its current password by Secret reference.
    for doc in documents:
        if doc["spec"]["name"] == "alice@corp.example":
            doc["spec"]["password"] = {"secretKeyRef": {"name": "alice-password", "key": "password"}}
    out.write_text(yaml.safe_dump_all(documents, allow_unicode=True), encoding="utf-8")
    apply(controlplane, secret("alice-password", {"password": PASSWORDS["alice@corp.example"]}, NS))
    controlplane.kubectl("apply", "-f", str(out))

    for doc in documents:
        obj = wait_reason(controlplane, doc["kind"], NS, doc["metadata"]["name"], "Synced", timeout=90)
        assert obj["status"]["owned"] is True
    metrics = operator.metrics()
    assert re.search(
        r'^druid_access_reconciles_total\{kind="DruidUser",reason="Synced"\} [1-9]', metrics, re.M
    )
    writes = re.findall(r"^druid_access_remote_writes_total\{.*\} (\S+)$", metrics, re.M)
    assert writes == [], metrics  # not one write to Druid
    after = asyncio.run(_remote_state(druid.url))
    assert after == before  # roles, permissions, the mapping, the stored credentials: untouched
    assert all(after["logins"].values())
