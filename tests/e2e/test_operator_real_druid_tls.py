"""The operator against a REAL Druid Coordinator served over HTTPS only.

The Coordinator's certificate is signed by a CA generated for the module (``make_tls_material``).
Three clusters point at it: ``tls`` with ``caBundle`` set to that CA, ``no-ca`` without one (the
system trust store does not know it) and ``wrong-ca`` with another CA. Only the first syncs; the
others say the certificate is not trusted, and nothing of theirs reaches Druid.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import trustme
from pydantic import SecretStr

from druid_access.clients import AuthorizerName, CoordinatorClient, HttpOptions, NotFound
from druid_access.testing.controlplane import ControlPlane
from druid_access.testing.druid import DruidCoordinator, TlsMaterial, make_tls_material
from druid_access.testing.environment import (
    OperatorProcess,
    apply,
    operator_on_real_druid,
    secret,
    wait_reason,
)

pytestmark = pytest.mark.contract

ADMIN_PW = "tls-Adm1n-pw"
ADMIN_SECRET = "druid-admin-realdruid-tls"
AUTHZ = AuthorizerName("basic")


@pytest.fixture(scope="module")
def ns(druid_version: str) -> str:
    """One namespace per Druid version: the local control plane deletes no namespace."""
    return f"realdruid-tls-{druid_version.split('.')[0]}"


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> TlsMaterial:
    return make_tls_material(tmp_path_factory.mktemp("realdruid-tls-ca"))


@pytest.fixture(scope="module")
def druid(
    druid_version: str, tls: TlsMaterial, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[DruidCoordinator]:
    with DruidCoordinator(
        tmp_path_factory.mktemp(f"realdruid-tls-{druid_version}"),
        admin_password=ADMIN_PW,
        tls=tls,
        version=druid_version,
    ) as coordinator:
        yield coordinator


@pytest.fixture(scope="module")
def operator(
    controlplane: ControlPlane,
    druid: DruidCoordinator,
    tls: TlsMaterial,
    tmp_path_factory: pytest.TempPathFactory,
    ns: str,
) -> Iterator[OperatorProcess]:
    workdir = tmp_path_factory.mktemp("realdruid-tls-operator")
    other_ca = workdir / "other-ca.pem"
    trustme.CA().cert_pem.write_to_path(str(other_ca))

    def cluster(ca_bundle: Path | None) -> dict[str, Any]:
        config: dict[str, Any] = {"coordinatorUrl": druid.url, "resyncSeconds": 5, "timeoutSeconds": 5}
        if ca_bundle is not None:
            config["caBundle"] = str(ca_bundle)
        return config

    rotating = workdir / "rotating-ca.pem"  # starts with the wrong CA; a test puts the right one in
    rotating.write_bytes(other_ca.read_bytes())
    clusters = {
        "tls": cluster(tls.ca_pem),
        "no-ca": cluster(None),
        "wrong-ca": cluster(other_ca),
        "rotating": cluster(rotating),
    }
    with operator_on_real_druid(
        controlplane,
        clusters=clusters,
        namespace=ns,
        admin_secret=ADMIN_SECRET,
        admin_password=ADMIN_PW,
        workdir=workdir,
    ) as proc:
        yield proc


def roles_on(druid: DruidCoordinator, tls: TlsMaterial, user: str) -> frozenset[str] | None:
    async def run() -> frozenset[str] | None:
        options = HttpOptions(ca_file=tls.ca_pem)
        async with CoordinatorClient(
            druid.url, username="admin", password=SecretStr(ADMIN_PW), options=options
        ) as c:
            try:
                return (await c.get_authorizer_user(AUTHZ, user)).roles
            except NotFound:
                return None

    return asyncio.run(run())


def doc(ns: str, kind: str, name: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "druidaccess.io/v1alpha1",
        "kind": kind,
        "metadata": {"name": name, "namespace": ns},
        "spec": spec,
    }


def test_the_coordinator_serves_https_only(druid: DruidCoordinator, tls: TlsMaterial) -> None:
    assert druid.url.startswith("https://127.0.0.1:")
    https = httpx.get(f"{druid.url}/status/health", verify=tls.client_context(), timeout=10)
    assert https.status_code == 200
    with pytest.raises(httpx.HTTPError):  # plain HTTP on the same port is no answer
        httpx.get(f"http://127.0.0.1:{druid.port}/status/health", timeout=10)


def test_with_the_ca_bundle_every_kind_syncs(
    controlplane: ControlPlane, druid: DruidCoordinator, tls: TlsMaterial, operator: OperatorProcess, ns: str
) -> None:
    cp = controlplane
    apply(cp, secret("tls-pw", {"password": "tls-user-pw"}, ns))
    objects = [
        doc(ns, "DruidRole", "tls-readers", {"cluster": "tls", "permissions": []}),
        doc(
            ns,
            "DruidUser",
            "tls-user",
            {
                "cluster": "tls",
                "roles": ["tls-readers"],
                "password": {"secretKeyRef": {"name": "tls-pw", "key": "password"}},
            },
        ),
        doc(
            ns,
            "DruidGroupMapping",
            "tls-mapping",
            {"cluster": "tls", "groupPattern": "cn=tls,ou=groups", "roles": ["tls-readers"]},
        ),
    ]
    apply(cp, objects)
    for obj in objects:
        wait_reason(cp, obj["kind"].lower(), ns, obj["metadata"]["name"], "Synced", timeout=90)
    assert roles_on(druid, tls, "tls-user") == frozenset({"tls-readers"})


@pytest.mark.parametrize("cluster", ["no-ca", "wrong-ca"])
def test_an_untrusted_certificate_is_reported_and_nothing_is_written(
    controlplane: ControlPlane,
    druid: DruidCoordinator,
    tls: TlsMaterial,
    operator: OperatorProcess,
    ns: str,
    cluster: str,
) -> None:
    cp = controlplane
    name = f"tls-user-{cluster}"
    apply(cp, doc(ns, "DruidUser", name, {"cluster": cluster, "roles": []}))
    obj = wait_reason(cp, "druiduser", ns, name, "CertificateNotTrusted", timeout=60)
    ready = next(c for c in obj["status"]["conditions"] if c["type"] == "Ready")
    assert ready["status"] == "False"
    assert "TLS certificate is not trusted" in ready["message"]
    assert "unable to get local issuer certificate" in ready["message"]
    assert "caBundle" in ready["message"]
    assert obj["status"].get("owned") is not True
    assert roles_on(druid, tls, name) is None


def test_a_ca_bundle_replaced_in_place_is_used_without_a_restart(
    controlplane: ControlPlane,
    druid: DruidCoordinator,
    tls: TlsMaterial,
    operator: OperatorProcess,
    ns: str,
) -> None:
    """As when the kubelet updates a mounted CA Secret: same path, new content."""
    cp = controlplane
    apply(cp, doc(ns, "DruidUser", "tls-rotating", {"cluster": "rotating", "roles": []}))
    wait_reason(cp, "druiduser", ns, "tls-rotating", "CertificateNotTrusted", timeout=60)
    rotating = operator.workdir / "rotating-ca.pem"
    replacement = rotating.with_suffix(".new")
    replacement.write_bytes(tls.ca_pem.read_bytes())
    replacement.replace(rotating)
    wait_reason(cp, "druiduser", ns, "tls-rotating", "Synced", timeout=90)
    assert roles_on(druid, tls, "tls-rotating") == frozenset()
