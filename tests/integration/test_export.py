"""``druid-access export`` against the fake Coordinator and fake Pivot over loopback HTTP.

State is made with plain API calls, exported through the command line, and every exported
object is then checked the way the operator would take it over: its spec parses with the
operator's models, and the plan made from it (with the Secret values the comments ask for)
against a live read of the target is empty: adopting it writes nothing. No credential reaches
stdout or stderr, and every failure is one line and exit code 1.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Iterator
from typing import Any

import pytest
import yaml
from pydantic import SecretStr

from druid_access import cli
from druid_access.clients import (
    AuthenticatorName,
    AuthorizerName,
    CoordinatorClient,
    DbAuthToken,
    Permission,
    PivotClient,
    PivotConnection,
)
from druid_access.export import connection_secret_name
from druid_access.resources.base import DruidRemote, PivotRemote
from druid_access.resources.connection import ConnectionKind
from druid_access.resources.group_mapping import GroupMappingKind
from druid_access.resources.role import RoleKind
from druid_access.resources.user import UserKind
from druid_access.testing.environment import FakesInThread
from druid_access.testing.faults import Fault

ADMIN_PW = "canary-Admin-pw-41"
TOKEN = "canary-Pivot-token-17"
AUTHN = AuthenticatorName("basic")
AUTHZ = AuthorizerName("basic")
PASSWORDS = {
    "alice@corp.example": "canary-alice-pässwörd",
    "Zoë Smith": "canary-zoe-pw 2",
    "日本": "canary-nihon-pw",
}
DB_PASSWORD = "canary-Db-pw-9"
KEY = "canary-Key-PEM"
CA = "-----BEGIN CERTIFICATE-----\nCA\n-----END CERTIFICATE-----"
CANARIES = (ADMIN_PW, TOKEN, DB_PASSWORD, KEY, *PASSWORDS.values())
KINDS = {k.info.kind: k for k in (UserKind(), RoleKind(), GroupMappingKind(), ConnectionKind())}


def _perm(type_: str, name: str, action: str) -> Permission:
    return Permission(resource_type=type_, resource_name=name, action=action)


async def _populate(fakes: FakesInThread) -> None:
    async with CoordinatorClient(fakes.coordinator.url, username="admin", password=ADMIN_PW) as c:
        await c.create_role(AUTHZ, "readers")
        await c.set_permissions(
            AUTHZ, "readers", [_perm("DATASOURCE", "wiki.*", "READ"), _perm("STATE", "STATE", "READ")]
        )
        await c.create_role(AUTHZ, "empty role")
        await c.create_role(AUTHZ, "sec-admins")
        await c.set_permissions(AUTHZ, "sec-admins", [_perm("CONFIG", "security", "WRITE")])
        await c.create_role(AUTHZ, "bad-type")  # a resource type the operator cannot express
        await c.set_permissions(AUTHZ, "bad-type", [_perm("SOMETHING_NEW", "x", "READ")])
        for user, password in PASSWORDS.items():
            await c.create_authenticator_user(AUTHN, user)
            await c.set_password(AUTHN, user, SecretStr(password))
            await c.create_authorizer_user(AUTHZ, user)
        await c.assign_role(AUTHZ, user="alice@corp.example", role="readers")
        await c.assign_role(AUTHZ, user="alice@corp.example", role="empty role")
        await c.create_authorizer_user(AUTHZ, "carol-ldap")
        await c.assign_role(AUTHZ, user="carol-ldap", role="readers")
        await c.create_authorizer_user(AUTHZ, "bad:name")  # ':' cannot log in; the CRD refuses it
        await c.create_group_mapping(
            AUTHZ, "analysts", group_pattern="cn=analysts,ou=groups,dc=example,dc=org", roles=["readers"]
        )
    async with PivotClient(fakes.pivot.url, token=TOKEN) as p:
        await p.create_connection(
            PivotConnection(
                name="druid 1",
                type="druidsql",
                query_hosts=("broker-1:8082", "broker-2:8082"),
                title="Druid one",
                timeout=40000,
                default_db_auth_token=DbAuthToken(username="pivot", password=SecretStr(DB_PASSWORD)),
                protocol="tls",
                ca=CA,
                key=SecretStr(KEY),
                cert=CA,
            )
        )
        await p.create_connection(PivotConnection(name="plain", type="druid", query_hosts=("broker:8082",)))


@pytest.fixture
def fakes() -> Iterator[FakesInThread]:
    with FakesInThread(admin_password=ADMIN_PW, pivot_token=TOKEN, credential_iterations=10) as running:
        asyncio.run(_populate(running))
        yield running


def _export(
    fakes: FakesInThread, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], *extra: str
) -> tuple[int, str, str]:
    monkeypatch.setenv("EXPORT_PW", ADMIN_PW)
    monkeypatch.setenv("EXPORT_TOKEN", TOKEN)
    code = cli.main(
        [
            "export",
            "--coordinator-url", fakes.coordinator.url,
            "--password-env", "EXPORT_PW",
            "--pivot-url", fakes.pivot.url,
            "--pivot-token-env", "EXPORT_TOKEN",
            "--namespace", "adopt",
            "--cluster", "default",
            *extra,
        ]
    )  # fmt: skip
    out = capsys.readouterr()
    return code, out.out, out.err


def _documents(text: str) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(text) if doc]


def _secret_values(doc: dict[str, Any]) -> dict[tuple[str, str], SecretStr]:
    """What a user puts into the Secrets the comments name: the current values."""
    spec = doc["spec"]
    if doc["kind"] == "DruidUser":
        return {("pw", "password"): SecretStr(PASSWORDS[spec["name"]])} if spec["name"] in PASSWORDS else {}
    if doc["kind"] == "DruidConnection" and spec["name"] == "druid 1":
        secret = connection_secret_name(doc["metadata"]["name"])
        values = {"db-password": DB_PASSWORD, "ca": CA, "cert": CA, "key": KEY}
        return {(secret, key): SecretStr(value) for key, value in values.items()}
    return {}


async def _plans(fakes: FakesInThread, documents: list[dict[str, Any]]) -> dict[str, tuple[str, ...]]:
    """The writes the operator would plan for each exported object, from live reads."""
    plans: dict[str, tuple[str, ...]] = {}
    async with (
        CoordinatorClient(fakes.coordinator.url, username="admin", password=ADMIN_PW) as coordinator,
        PivotClient(fakes.pivot.url, token=TOKEN) as pivot,
    ):
        for doc in documents:
            kind = KINDS[doc["kind"]]
            spec = dict(doc["spec"])
            if doc["kind"] == "DruidUser" and spec["name"] in PASSWORDS:
                spec["password"] = {"secretKeyRef": {"name": "pw", "key": "password"}}
            model = kind.spec_model(spec)
            name = kind.remote_name(model, doc["metadata"]["name"])
            desired = kind.desired(model, name, _secret_values(doc))
            remote: DruidRemote | PivotRemote = (
                PivotRemote(pivot)
                if doc["kind"] == "DruidConnection"
                else DruidRemote(coordinator, AUTHN, AUTHZ)
            )
            observed = await kind.observe(remote, name, desired)
            plans[f"{doc['kind']}/{name}"] = tuple(op.describe() for op in kind.plan(desired, observed).ops)
    return plans


def test_export_writes_every_object_so_that_adopting_it_changes_nothing(
    fakes: FakesInThread, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = _export(fakes, monkeypatch, capsys)
    assert code == 0, err
    documents = _documents(out)
    found = {(d["kind"], d["spec"]["name"]) for d in documents}
    assert found == {
        ("DruidRole", "readers"),
        ("DruidRole", "empty role"),
        ("DruidRole", "sec-admins"),
        ("DruidUser", "alice@corp.example"),
        ("DruidUser", "Zoë Smith"),
        ("DruidUser", "日本"),
        ("DruidUser", "carol-ldap"),
        ("DruidGroupMapping", "analysts"),
        ("DruidConnection", "druid 1"),
        ("DruidConnection", "plain"),
    }
    for doc in documents:
        assert doc["metadata"]["namespace"] == "adopt"
        assert doc["spec"]["adoptionPolicy"] == "Adopt"
        assert "password" not in doc["spec"]
        target = "pivot" if doc["kind"] == "DruidConnection" else "cluster"
        assert doc["spec"].get(target) == ("default" if target == "cluster" else None)
    by_name = {(d["kind"], d["spec"]["name"]): d for d in documents}
    assert by_name[("DruidUser", "alice@corp.example")]["spec"]["roles"] == ["empty role", "readers"]
    assert by_name[("DruidGroupMapping", "analysts")]["spec"]["roles"] == ["readers"]
    # Nothing to write for any of them, with the Secrets the comments ask for.
    plans = asyncio.run(_plans(fakes, documents))
    assert plans == dict.fromkeys(plans, ())
    assert len(plans) == len(documents)


def test_export_reads_only_and_never_prints_a_credential(
    fakes: FakesInThread, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    before = (len(fakes.coordinator.requests.writes()), len(fakes.pivot.requests.writes()))
    code, out, err = _export(fakes, monkeypatch, capsys)
    assert code == 0, err
    assert (len(fakes.coordinator.requests.writes()), len(fakes.pivot.requests.writes())) == before
    for canary in CANARIES:
        assert canary not in out
        assert canary not in err
    # Progress and what was left out, on stderr only.
    assert "read 5 authenticator users, 7 authorizer users, 6 roles, 1 group mappings" in err
    assert "read 2 Pivot connections" in err
    assert "skipped DruidUser 'admin': a protected user of the cluster" in err
    assert "skipped DruidRole 'druid_system': a protected role of the cluster" in err
    assert "skipped DruidUser 'bad:name': the operator could not manage it (spec.name:" in err
    assert (
        "skipped DruidRole 'bad-type': the operator could not manage it (spec.permissions.0.resource.type:"
        in err
    )
    assert "# Written by `druid-access export`" in out
    assert "Traceback" not in err


def test_the_comments_say_how_to_keep_passwords_and_which_secret_a_connection_reads(
    fakes: FakesInThread, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = _export(fakes, monkeypatch, capsys)
    assert code == 0
    blocks = {block.split("kind: ")[1].split("\n")[0] + block.split("\n  name: ")[-1].split("\n")[0]: block
              for block in out.split("---\n")[1:]}  # fmt: skip
    alice = blocks["DruidUseralice@corp.example"]
    assert "# It has a password in the authenticator" in alice
    assert "#   password: {secretKeyRef: {name: SECRET, key: password}}" in alice
    assert "# It exists in the authorizer only" in blocks["DruidUsercarol-ldap"]
    assert "security-administration permission" in blocks["DruidRolesec-admins"]
    connection = blocks["DruidConnectiondruid 1"]
    secret = connection_secret_name("druid-1-" + connection.split("name: druid-1-")[1].split("\n")[0])
    for key in ("db-password", "ca", "cert", "key"):
        assert f"#   {key}: " in connection
    assert f"Secret {secret!r}" in connection
    assert "passphrase" not in connection


def test_names_are_valid_unique_and_the_same_on_every_export(
    fakes: FakesInThread, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    first = _export(fakes, monkeypatch, capsys)[1]
    second = _export(fakes, monkeypatch, capsys)[1]
    assert first == second
    names = {d["spec"]["name"]: d["metadata"]["name"] for d in _documents(first) if d["kind"] == "DruidUser"}
    assert names["carol-ldap"] == "carol-ldap"
    assert names["alice@corp.example"].startswith("alice-at-corp.example-")
    assert names["Zoë Smith"].startswith("zoe-smith-")
    assert names["日本"].startswith("druiduser-")
    assert len(set(names.values())) == len(names)


def test_a_refused_bulk_read_falls_back_to_one_read_per_object(
    fakes: FakesInThread, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    expected = _export(fakes, monkeypatch, capsys)[1]
    fakes.call(lambda: fakes.coordinator.faults.add(Fault(method="GET", path="cachedSerialized", status=415)))
    code, out, err = _export(fakes, monkeypatch, capsys)
    assert code == 0, err
    assert "the bulk read was refused (415); reading one object at a time" in err
    assert out == expected


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@pytest.mark.parametrize(
    ("flags", "env", "message"),
    [
        (["--coordinator-url", "URL", "--password-env", "EXPORT_PW"], {"EXPORT_PW": "canary-wrong-pw-5"},
         "-> 401: "),
        (["--coordinator-url", "URL", "--password-env", "NOT_SET_ANYWHERE"], {},
         "environment variable NOT_SET_ANYWHERE (--password-env) is not set"),
        (["--coordinator-url", "URL"], {}, "--coordinator-url needs --password-env VAR"),
        (["--coordinator-url", "CLOSED", "--password-env", "EXPORT_PW"], {"EXPORT_PW": ADMIN_PW},
         "(is the URL right, and is the target running?)"),
        (["--coordinator-url", "ftp://x", "--password-env", "EXPORT_PW"], {"EXPORT_PW": ADMIN_PW},
         "give an http:// or https:// URL"),
        (["--coordinator-url", "http://admin:canary-in-url@127.0.0.1:1", "--password-env", "EXPORT_PW"],
         {"EXPORT_PW": ADMIN_PW}, "give the credentials with their own flags, not in the URL"),
        (["--pivot-url", "PIVOT", "--pivot-token-env", "EXPORT_TOKEN"], {"EXPORT_TOKEN": "canary-wrong-token-6"},
         "-> 401: "),
        ([], {}, "give --coordinator-url, --pivot-url or both"),
        (["--coordinator-url", "URL", "--password-env", "EXPORT_PW", "--ca-bundle", "NOT_PEM"],
         {"EXPORT_PW": ADMIN_PW}, "cannot be used: "),
    ],
)  # fmt: skip
def test_every_failure_is_one_line_and_exit_code_1(
    fakes: FakesInThread,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    flags: list[str],
    env: dict[str, str],
    message: str,
) -> None:
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    replace = {
        "URL": fakes.coordinator.url,
        "PIVOT": fakes.pivot.url,
        "CLOSED": f"http://127.0.0.1:{_free_port()}",
        "NOT_PEM": __file__,  # a file, but no certificate in it
    }
    code = cli.main(["export", *(replace.get(flag, flag) for flag in flags)])
    out = capsys.readouterr()
    assert code == 1
    assert out.out == ""
    assert message in out.err
    assert out.err.count("\n") == 1 and out.err.startswith("druid-access export: ")
    assert "Traceback" not in out.err
    assert "canary-" not in out.err
    if "NOT_PEM" in flags:
        assert "(check --ca-bundle)" in out.err
