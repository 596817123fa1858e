"""``druid-access export`` round trip and ``druid-access diff`` against a REAL Druid Coordinator.

State is made with plain API calls as admin (users with unicode, '@' and spaces in their
names and passwords, an authorization-only user, roles, a group mapping), exported with the
command line, applied with ``kubectl apply -f`` into an adoption namespace, and taken over by the
operator: every object is Synced, the operator made not one remote write, and every password
still logs in. One user gets the Secret reference the export's comment describes (with its
current password), one is applied as exported: both adopt without a write.

``diff`` then holds to the operator: on the adopted files it reports nothing and exits 0 (the
operator wrote nothing); on changed files it exits 2 and counts exactly the writes the operator
then makes when they are applied; after that it reports nothing again.
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


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("export-files")


def _cli(
    druid: DruidCoordinator, command: str, *flags: str, password: str = ADMIN_PW
) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DRUID_EXPORT_PASSWORD": password}
    args = [*CLI, command, "--coordinator-url", druid.url, "--password-env", "DRUID_EXPORT_PASSWORD", *flags]
    return subprocess.run(args, env=env, capture_output=True, text=True, timeout=120, check=False)


def _export(
    druid: DruidCoordinator, *flags: str, password: str = ADMIN_PW
) -> subprocess.CompletedProcess[str]:
    return _cli(druid, "export", *flags, password=password)


def _remote_writes(operator: OperatorProcess) -> float:
    """Every write the operator sent to Druid since it started (its metric, all kinds and ops)."""
    found = re.findall(r"^druid_access_remote_writes_total\{.*\} (\S+)$", operator.metrics(), re.M)
    return sum(float(value) for value in found)


def test_wrong_credentials_are_one_line_and_exit_code_1(druid: DruidCoordinator) -> None:
    result = _export(druid, password="not-the-password")
    assert result.returncode == 1
    assert result.stdout == ""
    assert "-> 401: " in result.stderr and "(the user name or password is wrong)" in result.stderr
    assert "Traceback" not in result.stderr and "not-the-password" not in result.stderr


def test_exported_state_is_adopted_with_no_remote_write_and_every_password_still_logs_in(
    druid: DruidCoordinator, operator: OperatorProcess, controlplane: ControlPlane, files: Path
) -> None:
    before = asyncio.run(_remote_state(druid.url))
    assert all(before["logins"].values())
    out = files / "export.yaml"
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
    alice_secret = secret("alice-password", {"password": PASSWORDS["alice@corp.example"]}, NS)
    (files / "secrets.yaml").write_text(yaml.safe_dump(alice_secret), encoding="utf-8")
    apply(controlplane, alice_secret)
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


def _summary_writes(stdout: str) -> int:
    found = re.search(r"^(\d+) objects, (\d+) writes: ", stdout, re.M)
    assert found, stdout
    return int(found.group(2))


def test_diff_reports_exactly_the_writes_the_operator_then_makes(
    druid: DruidCoordinator, operator: OperatorProcess, controlplane: ControlPlane, files: Path
) -> None:
    exported, secrets = files / "export.yaml", files / "secrets.yaml"
    assert exported.exists(), "needs the adoption test before it"
    # The adopted files: the operator wrote nothing, and diff says nothing.
    clean = _cli(druid, "diff", "-f", str(exported), "-f", str(secrets))
    assert clean.returncode == 0, clean.stdout + clean.stderr
    assert "0 writes: 0 to create, 0 to change" in clean.stdout
    assert _remote_writes(operator) == 0

    documents = [doc for doc in yaml.safe_load_all(exported.read_text(encoding="utf-8")) if doc]
    for doc in documents:
        spec = doc["spec"]
        if spec["name"] == "readers":  # one permission added, one removed
            spec["permissions"] = [{"resource": {"type": "DATASOURCE", "name": "wiki.*"}, "action": "WRITE"},
                                   {"resource": {"type": "STATE", "name": "STATE"}, "action": "READ"}]  # fmt: skip
        if spec["name"] == "Zoë Smith":
            spec["roles"] = ["team writers"]
    erin = {
        "apiVersion": "druidaccess.io/v1alpha1",
        "kind": "DruidUser",
        "metadata": {"name": "erin", "namespace": NS},
        "spec": {
            "roles": ["readers"],
            "password": {"secretKeyRef": {"name": "erin-password", "key": "password"}},
        },
    }
    changed = files / "changed.yaml"
    erin_secret = secret("erin-password", {"password": "erin pw ✓"}, NS)
    changed.write_text(
        yaml.safe_dump_all([*documents, erin, erin_secret], allow_unicode=True), encoding="utf-8"
    )
    planned = _cli(druid, "diff", "-f", str(changed), "-f", str(secrets))
    assert planned.returncode == 2, planned.stdout + planned.stderr
    assert "erin pw" not in planned.stdout
    assert "DruidUser adopt-export/erin -> user 'erin' (new)" in planned.stdout
    assert "  + permission WRITE DATASOURCE/wiki.*\n  - permission READ DATASOURCE/wiki.*\n" in planned.stdout
    assert "-> user 'Zoë Smith'\n  + role 'team writers'\n  - role 'readers'\n" in planned.stdout
    writes = _summary_writes(planned.stdout)
    assert writes == 1 + 2 + 4  # permissions; Zoë's two roles; erin in both stores, her password and role

    controlplane.kubectl("apply", "-f", str(changed))
    for doc in [*documents, erin]:
        wait_reason(controlplane, doc["kind"], NS, doc["metadata"]["name"], "Synced", timeout=90)
    assert _remote_writes(operator) == writes
    again = _cli(druid, "diff", "-f", str(changed), "-f", str(secrets))
    assert again.returncode == 0, again.stdout
    assert _remote_writes(operator) == writes  # diff itself wrote nothing
    assert asyncio.run(_login(druid.url, "erin", "erin pw ✓"))


async def _login(url: str, user: str, password: str) -> bool:
    async with CoordinatorClient(url, username="admin", password=SecretStr(ADMIN_PW), options=OPTIONS) as c:
        return await c.check_login(user, SecretStr(password))
