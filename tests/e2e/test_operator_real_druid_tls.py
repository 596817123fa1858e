"""The operator against a REAL Druid Coordinator served over HTTPS only.

The Coordinator's certificate is signed by a CA generated for the module (``make_tls_material``).
Three clusters point at it: ``tls`` with ``caBundle`` set to that CA, ``no-ca`` without one (the
system trust store does not know it) and ``wrong-ca`` with another CA. Only the first syncs; the
others say the certificate is not trusted, and nothing of theirs reaches Druid.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest
import trustme
from pydantic import SecretStr

from druid_access.clients import AuthorizerName, CoordinatorClient, HttpOptions, NotFound
from druid_access.testing.controlplane import ControlPlane
from druid_access.testing.druid import SUPPORTED_VERSIONS, DruidCoordinator, TlsMaterial, make_tls_material
from druid_access.testing.environment import (
    OPERATOR_NAMESPACE,
    OperatorProcess,
    apply,
    free_port,
    install,
    purge,
    secret,
    wait_reason,
)

pytestmark = pytest.mark.contract

ADMIN_PW = "tls-Adm1n-pw"
ADMIN_SECRET = "druid-admin-realdruid-tls"
AUTHZ = AuthorizerName("basic")


@pytest.fixture(scope="module", params=SUPPORTED_VERSIONS)
def version(request: pytest.FixtureRequest) -> str:
    value: str = request.param
    return value


@pytest.fixture(scope="module")
def ns(version: str) -> str:
    """One namespace per Druid version: the local control plane deletes no namespace."""
    return f"realdruid-tls-{version.split('.')[0]}"


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> TlsMaterial:
    return make_tls_material(tmp_path_factory.mktemp("realdruid-tls-ca"))


@pytest.fixture(scope="module")
def druid(
    version: str, tls: TlsMaterial, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[DruidCoordinator]:
    with DruidCoordinator(
        tmp_path_factory.mktemp(f"realdruid-tls-{version}"), admin_password=ADMIN_PW, tls=tls, version=version
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
    cp = controlplane
    workdir = tmp_path_factory.mktemp("realdruid-tls-operator")
    other_ca = workdir / "other-ca.pem"
    trustme.CA().cert_pem.write_to_path(str(other_ca))
    install(cp, admin_user="admin", admin_password=ADMIN_PW, pivot_token="unused-realdruid-tls")
    apply(cp, secret(ADMIN_SECRET, {"username": "admin", "password": ADMIN_PW}, OPERATOR_NAMESPACE))
    cp.kubectl("create", "namespace", ns)

    def cluster(ca_bundle: str | None) -> dict[str, Any]:
        config: dict[str, Any] = {
            "coordinatorUrl": druid.url,
            "adminSecret": {"name": ADMIN_SECRET},
            "resyncSeconds": 5,
            "timeoutSeconds": 5,
        }
        if ca_bundle:
            config["caBundle"] = ca_bundle
        return config

    config = {
        "namespace": OPERATOR_NAMESPACE,
        "clusters": {
            "tls": cluster(str(tls.ca_pem)),
            "no-ca": cluster(None),
            "wrong-ca": cluster(str(other_ca)),
        },
        "pivots": {},
    }
    proc = OperatorProcess(
        config=config,
        kubeconfig=cp.operator_kubeconfig,
        workdir=workdir,
        namespaces=[ns],
        metrics_port=free_port(),
    )
    proc.start()
    try:
        yield proc
    finally:
        cp.kubectl("delete", "druidusers,druidroles", "--all", "-n", ns, "--timeout=60s", check=False)
        proc.stop()
        purge(cp, [ns])


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


def test_the_coordinator_serves_https_only(druid: DruidCoordinator) -> None:
    assert druid.url.startswith("https://127.0.0.1:")
    props = druid.runtime_properties()
    assert props["druid.enablePlaintextPort"] == "false"
    assert props["druid.enableTlsPort"] == "true"


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
