"""The CRDs on a real kube-apiserver: installed, accepting the samples, refusing bad input.

Every refusal must name the offending field, since that message is all a user sees.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from druid_access.models import KINDS
from druid_access.testing.controlplane import ControlPlane

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
NS = "crd-tests"
SECRET_REF = {"name": "s", "key": "password"}


@pytest.fixture(scope="module")
def cluster(controlplane: ControlPlane) -> Iterator[ControlPlane]:
    controlplane.kubectl("apply", "-f", str(ROOT / "crds"))
    for info in KINDS:
        controlplane.kubectl("wait", "--for=condition=Established", "--timeout=60s", f"crd/{info.crd_name}")
    controlplane.kubectl("create", "namespace", NS)
    yield controlplane
    # The objects first, so that later operators watching all namespaces never see them while the
    # namespace controller empties the namespace.
    controlplane.kubectl("delete", "druid", "--all", "-n", NS, "--wait=false")
    controlplane.kubectl("delete", "namespace", NS, "--wait=false")


def _doc(kind: str, name: str, spec: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {"apiVersion": "druidaccess.io/v1alpha1", "kind": kind, "metadata": {"name": name}}
    if spec is not None:
        doc["spec"] = spec
    return doc


def _apply(cp: ControlPlane, doc: dict[str, Any]) -> subprocess.CompletedProcess[str]:
    return cp.kubectl("apply", "-n", NS, "-f", "-", input=json.dumps(doc), check=False)


def _user(**spec: Any) -> dict[str, Any]:
    return _doc("DruidUser", "bad-user", spec)


def _role(*permissions: Any) -> dict[str, Any]:
    return _doc("DruidRole", "bad-role", {"permissions": list(permissions)})


def _conn(**spec: Any) -> dict[str, Any]:
    return _doc("DruidConnection", "bad-conn", {"queryHosts": ["broker:8082"], **spec})


def _perm(type_: str = "DATASOURCE", name: str = "wiki.*", action: str = "READ") -> dict[str, Any]:
    return {"resource": {"type": type_, "name": name}, "action": action}


# (id, manifest, text the API server's refusal must contain: the field path)
INVALID: list[tuple[str, dict[str, Any], str]] = [
    ("user-name-slash", _user(name="team/alice"), "spec.name"),
    ("user-name-colon", _user(name="alice:1"), "spec.name"),
    ("user-name-leading-dot", _user(name=".alice"), "spec.name"),
    ("user-name-empty", _user(name=""), "spec.name"),
    ("user-name-too-long", _user(name="a" * 300), "spec.name"),
    ("user-name-control-char", _user(name="al\nice"), "spec.name"),
    ("user-role-slash", _user(roles=["ok", "bad/role"]), "spec.roles[1]"),
    ("user-roles-duplicate", _user(roles=["analyst", "analyst"]), "spec.roles[1]"),
    ("user-roles-not-list", _user(roles="analyst"), "spec.roles"),
    ("user-password-inline-string", _user(password="hunter2"), "spec.password"),
    ("user-password-inline-value", _user(password={"secretKeyRef": SECRET_REF, "value": "x"}), "spec.password.value"),
    ("user-password-no-ref", _user(password={"generate": True}), "spec.password.secretKeyRef"),
    ("user-secret-name-invalid", _user(password={"secretKeyRef": {"name": "Bad_Name", "key": "k"}}), "spec.password.secretKeyRef.name"),
    ("user-secret-key-invalid", _user(password={"secretKeyRef": {"name": "s", "key": "a b"}}), "spec.password.secretKeyRef.key"),
    ("user-deletion-policy", _user(deletionPolicy="Orphan"), "spec.deletionPolicy"),
    ("user-adoption-policy", _user(adoptionPolicy="Observe"), "spec.adoptionPolicy"),
    ("user-drift-policy", _user(driftPolicy="Ignore"), "spec.driftPolicy"),
    ("user-suspend-not-bool", _user(suspend="yes"), "spec.suspend"),
    ("user-cluster-invalid", _user(cluster="Prod_1"), "spec.cluster"),
    ("user-unknown-field", _user(passwordHash="abc"), "spec.passwordHash"),
    ("user-missing-spec", _doc("DruidUser", "bad-user", None), "spec"),
    ("role-bad-type", _role(_perm(type_="TABLE")), "spec.permissions[0].resource.type"),
    ("role-bad-action", _role(_perm(action="EXECUTE")), "spec.permissions[0].action"),
    ("role-lowercase-action", _role(_perm(), _perm(action="read")), "spec.permissions[1].action"),
    ("role-empty-resource-name", _role(_perm(name="")), "spec.permissions[0].resource.name"),
    ("role-missing-resource", _role({"action": "READ"}), "spec.permissions[0].resource"),
    ("role-name-leading-dot", _doc("DruidRole", "bad-role", {"name": "..", "permissions": []}), "spec.name"),
    ("mapping-missing-pattern", _doc("DruidGroupMapping", "bad-gm", {"roles": ["a"]}), "spec.groupPattern"),
    ("mapping-role-slash", _doc("DruidGroupMapping", "bad-gm", {"groupPattern": "x", "roles": ["a/b"]}), "spec.roles[0]"),
    ("conn-missing-hosts", _doc("DruidConnection", "bad-conn", {"title": "x"}), "spec.queryHosts"),
    ("conn-empty-hosts", _conn(queryHosts=[]), "spec.queryHosts"),
    ("conn-bad-type", _conn(type="mysql"), "spec.type"),
    ("conn-bad-protocol", _conn(protocol="ssl"), "spec.protocol"),
    ("conn-tls-without-tls-protocol", _conn(protocol="plain", tls={"ca": SECRET_REF}), "spec.tls"),
    ("conn-cert-without-key", _conn(protocol="tls", tls={"cert": SECRET_REF}), "spec.tls"),
    ("conn-passphrase-without-key", _conn(protocol="tls", tls={"passphrase": SECRET_REF}), "spec.tls.passphrase"),
    ("conn-inline-db-password", _conn(defaultDbAuthToken={"username": "u", "password": "p"}), "spec.defaultDbAuthToken.password"),
    ("conn-inline-sock-password", _conn(sockPassword="p"), "spec.sockPassword"),
    ("conn-socks-password-without-user", _conn(socks={"host": "proxy:1080", "passwordSecretRef": SECRET_REF}), "spec.socks.passwordSecretRef"),
    ("conn-timeout-zero", _conn(timeout=0), "spec.timeout"),
    ("conn-bad-token-type", _conn(defaultDbAuthToken={"type": "jwt", "username": "u", "passwordSecretRef": SECRET_REF}), "spec.defaultDbAuthToken.type"),
]  # fmt: skip


@pytest.mark.parametrize(("manifest", "field"), [c[1:] for c in INVALID], ids=[c[0] for c in INVALID])
def test_invalid_manifest_is_refused_naming_the_field(
    cluster: ControlPlane, manifest: dict[str, Any], field: str
) -> None:
    result = _apply(cluster, manifest)
    assert result.returncode != 0, f"accepted: {result.stdout}"
    assert field in result.stderr, result.stderr
    gone = cluster.kubectl("get", "-n", NS, manifest["kind"], manifest["metadata"]["name"], check=False)
    assert gone.returncode != 0, "a refused object must not exist"


# (id, manifest as created, the change, field named in the refusal)
IMMUTABLE: list[tuple[str, dict[str, Any], dict[str, Any], str]] = [
    ("user-name-changed", _doc("DruidUser", "imm-user-1", {"name": "a"}), {"name": "b"}, "spec.name"),
    ("user-name-added", _doc("DruidUser", "imm-user-2", {}), {"name": "b"}, "spec.name"),
    ("role-name-removed", _doc("DruidRole", "imm-role", {"name": "r"}), {"name": None}, "spec.name"),
    ("user-cluster-changed", _doc("DruidUser", "imm-user-3", {}), {"cluster": "other"}, "spec.cluster"),
    ("conn-pivot-changed", _conn(), {"pivot": "other"}, "spec.pivot"),
]


@pytest.mark.parametrize(
    ("manifest", "change", "field"), [c[1:] for c in IMMUTABLE], ids=[c[0] for c in IMMUTABLE]
)
def test_immutable_fields(
    cluster: ControlPlane, manifest: dict[str, Any], change: dict[str, Any], field: str
) -> None:
    created = _apply(cluster, manifest)
    assert created.returncode == 0, created.stderr
    name = manifest["metadata"]["name"]
    patch = json.dumps({"spec": change})
    result = cluster.kubectl(
        "patch", "-n", NS, manifest["kind"], name, "--type=merge", "-p", patch, check=False
    )
    assert result.returncode != 0, f"mutation accepted: {result.stdout}"
    assert field in result.stderr, result.stderr
    assert "immutable" in result.stderr
    # A change elsewhere in the spec is still allowed.
    ok = cluster.kubectl(
        "patch", "-n", NS, manifest["kind"], name, "--type=merge", "-p", '{"spec":{"suspend":true}}'
    )
    assert ok.returncode == 0
    cluster.kubectl("delete", "-n", NS, manifest["kind"], name)


def test_invalid_cases_are_numerous_and_distinct() -> None:
    ids = [c[0] for c in INVALID] + [c[0] for c in IMMUTABLE]
    assert len(ids) == len(set(ids))
    assert len(ids) >= 25


@pytest.fixture(scope="module")
def samples(cluster: ControlPlane) -> ControlPlane:
    result = cluster.kubectl("apply", "-n", NS, "-f", str(ROOT / "deploy" / "samples"))
    assert result.returncode == 0, result.stderr
    return cluster


def test_valid_samples_are_accepted_with_defaults(samples: ControlPlane) -> None:
    out = samples.kubectl("get", "-n", NS, "druiduser", "bob", "-o", "json").stdout
    spec = json.loads(out)["spec"]
    # Defaults come from the schema, so every client sees the same effective spec.
    assert spec["cluster"] == "default"
    assert spec["deletionPolicy"] == "Delete"
    assert spec["adoptionPolicy"] == "Refuse"
    assert spec["driftPolicy"] == "Correct"
    assert spec["suspend"] is False
    assert spec["password"]["generate"] is False


def test_get_druid_lists_every_kind_with_columns(samples: ControlPlane) -> None:
    out = samples.kubectl("get", "druid", "-n", NS).stdout
    headers = [line.split() for line in out.splitlines() if line.startswith("NAME")]
    assert headers, out
    assert all(h == ["NAME", "REMOTE", "READY", "REASON", "AGE"] for h in headers), out
    docs = [
        d
        for p in sorted((ROOT / "deploy" / "samples").glob("*.yaml"))
        for d in yaml.safe_load_all(p.read_text())
    ]
    for doc in docs:
        if doc["kind"].startswith("Druid"):
            assert f"{doc['kind'].lower()}.druidaccess.io/{doc['metadata']['name']}" in out, out


def test_short_names(samples: ControlPlane) -> None:
    for info in KINDS:
        result = samples.kubectl("get", info.short_name, "-n", NS, "-o", "name")
        assert f"{info.singular}.druidaccess.io/" in result.stdout


def test_explain_teaches_the_api(cluster: ControlPlane) -> None:
    out = cluster.kubectl("explain", "druidusers.spec.password.generate").stdout
    assert "random password" in out
    out = cluster.kubectl("explain", "druidroles.spec.permissions.resource.name").stdout
    assert "whole resource name" in out
