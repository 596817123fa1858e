"""``druid-access diff`` against the fake Coordinator and fake Pivot over loopback HTTP.

The state of ``test_export`` is exported, then changed in the files; ``diff`` must show every
change field by field (roles, permissions, group patterns, connection properties, new objects),
exit 0 when nothing would be written, 2 when something would, 1 on an error, send no write,
and never show a secret value.
"""

from __future__ import annotations

import asyncio
import base64
from pathlib import Path
from typing import Any

import pytest
import yaml
from tests.integration.test_export import ADMIN_PW, CA, CANARIES, KEY, PASSWORDS, TOKEN, _export
from tests.integration.test_export import fakes as fakes

from druid_access import cli
from druid_access.clients import PivotClient, PivotConnection
from druid_access.testing.environment import FakesInThread
from druid_access.testing.faults import Fault

NS = "adopt"


def _diff(fakes: FakesInThread, capsys: pytest.CaptureFixture[str], *files: Path) -> tuple[int, str, str]:
    flags = [
        "--coordinator-url", fakes.coordinator.url, "--password-env", "EXPORT_PW",
        "--pivot-url", fakes.pivot.url, "--pivot-token-env", "EXPORT_TOKEN",
    ]  # fmt: skip
    code = cli.main(["diff", *flags, *(arg for f in files for arg in ("-f", str(f)))])
    out = capsys.readouterr()
    return code, out.out, out.err


def _diff_druid(fakes: FakesInThread, *args: str) -> int:
    """``diff`` against the Coordinator alone."""
    return cli.main(
        ["diff", "--coordinator-url", fakes.coordinator.url, "--password-env", "EXPORT_PW", *args]
    )


def _secret(name: str, values: dict[str, str], *, allow: bool = True) -> dict[str, Any]:
    data = {k: base64.b64encode(v.encode()).decode() for k, v in values.items()}
    meta: dict[str, Any] = {"name": name, "namespace": NS}
    if allow:
        meta["labels"] = {"druidaccess.io/allow": "true"}
    return {"apiVersion": "v1", "kind": "Secret", "metadata": meta, "data": data}


def _exported(
    fakes: FakesInThread, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> list[dict[str, Any]]:
    code, out, err = _export(fakes, monkeypatch, capsys)
    assert code == 0, err
    return [doc for doc in yaml.safe_load_all(out) if doc]


def _write(path: Path, documents: list[dict[str, Any]]) -> Path:
    path.write_text(yaml.safe_dump_all(documents, allow_unicode=True), encoding="utf-8")
    return path


def _by_name(documents: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    return next(d for d in documents if d["kind"] == kind and d["spec"]["name"] == name)


def test_the_export_itself_diffs_clean_and_nothing_is_written(
    fakes: FakesInThread, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    documents = _exported(fakes, monkeypatch, capsys)
    before = (len(fakes.coordinator.requests.writes()), len(fakes.pivot.requests.writes()))
    code, out, err = _diff(fakes, capsys, _write(tmp_path / "export.yaml", documents))
    assert code == 0, out + err
    assert "10 objects, 0 writes: 0 to create, 0 to change, 10 unchanged" in out
    # The passwords and the connection's secrets are not in the files: said, and taken as equal.
    assert "? not checked: Secret druid-1-" in out
    assert (len(fakes.coordinator.requests.writes()), len(fakes.pivot.requests.writes())) == before


def test_every_change_is_shown_field_by_field_and_exit_code_2(
    fakes: FakesInThread, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    documents = _exported(fakes, monkeypatch, capsys)
    _by_name(documents, "DruidRole", "readers")["spec"]["permissions"] = [
        {"resource": {"type": "DATASOURCE", "name": "wiki.*"}, "action": "WRITE"}
    ]
    alice = _by_name(documents, "DruidUser", "alice@corp.example")
    alice["spec"]["roles"] = ["readers", "sec-admins"]
    alice["spec"]["password"] = {"secretKeyRef": {"name": "alice", "key": "password"}}
    zoe = _by_name(documents, "DruidUser", "Zoë Smith")
    zoe["spec"]["password"] = {"secretKeyRef": {"name": "zoe", "key": "password"}}
    _by_name(documents, "DruidGroupMapping", "analysts")["spec"]["groupPattern"] = (
        "cn=other,dc=example,dc=org"
    )
    conn = _by_name(documents, "DruidConnection", "druid 1")
    conn["spec"]["title"] = "Druid one, renamed"
    secret_name = conn["spec"]["defaultDbAuthToken"]["passwordSecretRef"]["name"]
    new_user = {
        "apiVersion": "druidaccess.io/v1alpha1",
        "kind": "DruidUser",
        "metadata": {"name": "dave", "namespace": NS},
        "spec": {
            "roles": ["readers", "no-such-role"],
            "password": {"secretKeyRef": {"name": "dave", "key": "pw"}},
        },
    }
    secrets = [
        _secret("alice", {"password": PASSWORDS["alice@corp.example"]}),  # the current one: no write
        _secret("zoe", {"password": "canary-a-new-password"}),  # another one: set
        _secret("dave", {"pw": "canary-dave-pw"}),
        _secret(secret_name, {"db-password": "canary-new-db-pw", "ca": CA, "cert": CA, "key": KEY}),
    ]
    files = (_write(tmp_path / "a.yaml", [*documents, new_user]), _write(tmp_path / "secrets.yaml", secrets))
    before = (len(fakes.coordinator.requests.writes()), len(fakes.pivot.requests.writes()))
    code, out, err = _diff(fakes, capsys, *files)
    assert code == 2, out + err
    expected = [
        "DruidRole adopt/readers -> role 'readers'\n"
        "  + permission WRITE DATASOURCE/wiki.*\n"
        "  - permission READ DATASOURCE/wiki.*\n"
        "  - permission READ STATE/STATE\n",
        "-> user 'alice@corp.example'\n  + role 'sec-admins'\n  - role 'empty role'\n",
        "-> user 'Zoë Smith'\n  ~ password: the stored one does not verify against the Secret's; it would be set\n",
        "DruidUser adopt/dave -> user 'dave' (new)\n"
        "  + authenticator user 'dave'\n"
        "  + password (from its Secret)\n"
        "  + authorizer user 'dave'\n"
        "  + role 'readers'\n"
        "  ! role 'no-such-role' does not exist: RoleNotFound, not granted\n",
        "  - group mapping 'analysts': groupPattern \"cn=analysts,ou=groups,dc=example,dc=org\"",
        "  + group mapping 'analysts': groupPattern \"cn=other,dc=example,dc=org\", roles 'readers'\n",
        '  ~ defaultDbAuthToken: {"password": "(secret)", "type": "basic-auth", "username": "pivot"} -> '
        '{"password": "(secret, differs)", "type": "basic-auth", "username": "pivot"}\n',
        '  ~ title: "Druid one" -> "Druid one, renamed"\n',
        "11 objects, 11 writes: 1 to create, 5 to change, 5 unchanged, 0 refused, 0 invalid",
    ]
    for part in expected:
        assert part in out, out
    assert "alice@corp.example'\n  ~ password" not in out  # the current password: nothing to set
    for canary in (*CANARIES, "canary-a-new-password", "canary-dave-pw", "canary-new-db-pw"):
        assert canary not in out and canary not in err
    assert (len(fakes.coordinator.requests.writes()), len(fakes.pivot.requests.writes())) == before


def test_invalid_objects_protected_names_and_bad_files(
    fakes: FakesInThread, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    monkeypatch.setenv("EXPORT_PW", ADMIN_PW)
    monkeypatch.setenv("EXPORT_TOKEN", TOKEN)
    protected = {
        "apiVersion": "druidaccess.io/v1alpha1",
        "kind": "DruidRole",
        "metadata": {"name": "admin"},
        "spec": {},
    }
    code, out, _ = _diff(fakes, capsys, _write(tmp_path / "p.yaml", [protected]))
    assert code == 0  # the operator refuses it and writes nothing
    assert (
        "DruidRole admin -> role 'admin' (refused)\n  ! 'admin' is protected: the operator refuses it" in out
    )
    bad_regex = {
        "apiVersion": "druidaccess.io/v1alpha1",
        "kind": "DruidRole",
        "metadata": {"name": "broken"},
        "spec": {"permissions": [{"resource": {"type": "DATASOURCE", "name": "wiki(("}, "action": "READ"}]},
    }
    unknown_field = {
        "apiVersion": "druidaccess.io/v1alpha1",
        "kind": "DruidUser",
        "metadata": {"name": "x"},
        "spec": {"rolez": []},
    }
    code, out, _ = _diff(fakes, capsys, _write(tmp_path / "bad.yaml", [bad_regex, unknown_field]))
    assert code == 1
    assert (
        "DruidRole broken -> role 'broken' (error)\n  ! invalid: resource name 'wiki((' is not a valid Java regular expression"
        in out
    )
    assert "DruidUser x (error)\n  ! invalid: spec.rolez: Extra inputs are not permitted" in out
    code = _diff_druid(fakes, "-f", str(tmp_path / "none.yaml"))
    err = capsys.readouterr().err
    assert code == 1 and err == f"druid-access diff: -f {tmp_path / 'none.yaml'}: no such file or directory\n"
    (tmp_path / "broken.yaml").write_text("a: [\n", encoding="utf-8")
    code = _diff_druid(fakes, "-f", str(tmp_path))
    err = capsys.readouterr().err
    assert code == 1 and "broken.yaml: cannot be read as YAML" in err and err.count("\n") == 1


def test_objects_of_another_cluster_are_not_compared(
    fakes: FakesInThread, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    monkeypatch.setenv("EXPORT_PW", ADMIN_PW)
    other = {
        "apiVersion": "druidaccess.io/v1alpha1",
        "kind": "DruidRole",
        "metadata": {"name": "r"},
        "spec": {"cluster": "other"},
    }
    code = _diff_druid(fakes, "--cluster", "default", "-f", str(_write(tmp_path / "o.yaml", [other])))
    out = capsys.readouterr().out
    assert code == 0
    assert "0 objects, 0 writes" in out and "1 for other targets not compared" in out


def test_objects_in_sync_cost_no_read_of_their_own_and_a_refused_bulk_read_still_works(
    fakes: FakesInThread, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """Like a resync: each target is read whole once, and only objects with something to do are
    read again on their own. Without the bulk read, every object is read live."""
    documents = _exported(fakes, monkeypatch, capsys)
    files = _write(tmp_path / "export.yaml", documents)
    before = (fakes.coordinator.requests.count("GET"), fakes.pivot.requests.count("GET"))
    code, out, _ = _diff(fakes, capsys, files)
    assert code == 0, out
    reads = (
        fakes.coordinator.requests.count("GET") - before[0],
        fakes.pivot.requests.count("GET") - before[1],
    )
    assert reads == (
        3,
        1,
    )  # the authenticator's users, the authorizer's users and roles, its mappings; Pivot's list
    fakes.call(lambda: fakes.coordinator.faults.add(Fault(method="GET", path="cachedSerialized", status=415)))
    before = (fakes.coordinator.requests.count("GET"), fakes.pivot.requests.count("GET"))
    code, again, _ = _diff(fakes, capsys, files)
    assert code == 0 and again == out
    assert (
        fakes.coordinator.requests.count("GET") - before[0] >= 1 + 8
    )  # the refused read, then each of 8 objects


def _object(kind: str, name: str, spec: dict[str, Any], namespace: str | None = NS) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name}
    if namespace:
        meta["namespace"] = namespace
    return {"apiVersion": "druidaccess.io/v1alpha1", "kind": kind, "metadata": meta, "spec": spec}


def test_what_the_operator_would_refuse_or_wait_for_is_said_as_it_would(
    fakes: FakesInThread, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    monkeypatch.setenv("EXPORT_PW", ADMIN_PW)
    monkeypatch.setenv("EXPORT_TOKEN", TOKEN)
    documents = [
        # A role created by these files, and a user and a mapping waiting for it: assigned once it is there.
        _object("DruidRole", "new-role", {}),
        _object("DruidUser", "waits", {"roles": ["new-role"]}),
        _object(
            "DruidGroupMapping",
            "waits-too",
            {"groupPattern": "cn=x,dc=example,dc=org", "roles": ["new-role"]},
        ),
        # A Secret in the files that did not opt in: the operator does not read it.
        _object("DruidUser", "unlabelled", {"password": {"secretKeyRef": {"name": "plain", "key": "pw"}}}),
        _secret("plain", {"pw": "canary-unlabelled-pw"}, allow=False),
        _object("DruidRole", "", {}),  # no name at all
    ]
    code, out, _ = _diff(fakes, capsys, _write(tmp_path / "a.yaml", documents))
    assert code == 1, out  # the nameless object
    assert "DruidRole adopt/new-role -> role 'new-role' (new)\n  + role 'new-role'\n" in out
    assert (
        "DruidUser adopt/waits -> user 'waits' (new)\n  + authorizer user 'waits'\n  + role 'new-role'\n"
        in out
    )
    assert "+ group mapping 'waits-too': groupPattern \"cn=x,dc=example,dc=org\", roles 'new-role'" in out
    assert "RoleNotFound" not in out
    assert (
        "DruidUser adopt/unlabelled -> user 'unlabelled' (refused)\n"
        '  ! Secret plain is not labelled druidaccess.io/allow: "true": SecretNotAllowed, nothing sent\n'
    ) in out
    assert "DruidRole adopt/ (error)\n  ! invalid: it has neither metadata.name nor spec.name" in out
    assert "canary-unlabelled-pw" not in out

    # With the operator's configuration, a namespace is held to what it may do.
    config = tmp_path / "config.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "clusters": {
                    "default": {
                        "coordinatorUrl": fakes.coordinator.url,
                        "adminSecret": {"name": "x"},
                        "allowedNamespaces": ["team-*"],
                    }
                }
            }
        ),
        encoding="utf-8",
    )
    tenant = [_object("DruidUser", "bold", {"roles": ["admin"]}, "team-a"), _object("DruidRole", "r2", {})]
    code = _diff_druid(fakes, "--config", str(config), "-f", str(_write(tmp_path / "t.yaml", tenant)))
    out = capsys.readouterr().out
    assert code == 0, out  # refused: the operator writes nothing
    assert "user 'bold' (refused)\n  ! 'admin' is a protected principal" not in out
    assert (
        "DruidUser team-a/bold -> user 'bold' (refused)\n"
        "  ! namespace 'team-a' may not grant protected role 'admin' on Druid cluster 'default': "
        "only the cluster's privilegedNamespaces may (NotPermitted)\n"
    ) in out
    assert (
        "DruidRole adopt/r2 -> role 'r2' (refused)\n"
        "  ! namespace 'adopt' may not manage Druid cluster 'default' (NamespaceNotAllowed)\n"
    ) in out


def test_pivot_properties_the_operator_does_not_manage_are_never_shown_by_value(
    fakes: FakesInThread, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    async def extra() -> None:
        async with PivotClient(fakes.pivot.url, token=TOKEN) as pivot:
            connection = PivotConnection.model_validate(
                {"name": "odd", "type": "druid", "queryHosts": ["b:8082"], "apiKey": "canary-extra-key"}
            )
            await pivot.create_connection(connection)

    asyncio.run(extra())
    documents = [
        _object("DruidConnection", "odd", {"queryHosts": ["b:8082"]}),
        # A CA from a Secret that is not in the files, on a connection that has none yet: sent.
        _object(
            "DruidConnection",
            "plain",
            {
                "queryHosts": ["broker:8082"],
                "protocol": "tls",
                "tls": {"ca": {"name": "ca", "key": "ca.crt"}},
            },
        ),
    ]
    monkeypatch.setenv("EXPORT_PW", ADMIN_PW)
    monkeypatch.setenv("EXPORT_TOKEN", TOKEN)
    code, out, err = _diff(fakes, capsys, _write(tmp_path / "c.yaml", documents))
    assert code == 2, out
    assert "canary-extra-key" not in out + err
    assert "  ~ apiKey: (not managed, value hidden) -> unset\n" in out
    assert "  ~ ca: unset -> (secret)\n" in out
    assert '  ~ protocol: "plain" -> "tls"\n' in out
