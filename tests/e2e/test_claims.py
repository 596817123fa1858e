"""Ownership claims on a real API server, under the operator's own RBAC (deploy/rbac.yaml): the
key is made once and shared by replicas, a claim is an annotation only a holder of the key can
seal, and a withdrawn claim never counts again."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest
import yaml

from druid_access.claims import ANNOTATION, KEY_SECRET, Claims
from druid_access.kube import Kube, KubeError
from druid_access.testing.controlplane import ControlPlane
from druid_access.testing.environment import OPERATOR_NAMESPACE, repo_root


@pytest.fixture(scope="module")
def plane(controlplane: ControlPlane) -> Iterator[ControlPlane]:
    root = repo_root()
    controlplane.kubectl("apply", "-f", str(root / "deploy" / "namespace.yaml"))
    # The chart's claims Role and its binding alone: the rest of deploy/rbac.yaml would grant
    # this identity more than later modules expect it to have before they install it.
    claims = [
        doc
        for doc in yaml.safe_load_all((root / "deploy" / "rbac.yaml").read_text())
        if doc and doc["kind"] in ("Role", "RoleBinding") and doc["metadata"]["name"].endswith("-claims")
    ]
    assert len(claims) == 2
    controlplane.kubectl("apply", "-f", "-", input=yaml.safe_dump_all(claims))
    controlplane.kubectl("delete", "secret", KEY_SECRET, "-n", OPERATOR_NAMESPACE, "--ignore-not-found")
    yield controlplane
    controlplane.kubectl("delete", "secret", KEY_SECRET, "-n", OPERATOR_NAMESPACE, "--ignore-not-found")


@pytest.fixture
async def kube(plane: ControlPlane) -> AsyncIterator[Kube]:
    client = await Kube.connect(str(plane.operator_kubeconfig))
    try:
        yield client
    finally:
        await client.close()


def _meta(uid: str, annotations: dict[str, str] | None = None) -> dict[str, object]:
    return {"uid": uid, "namespace": "tenant", "name": "u", "annotations": annotations or {}}


async def test_replicas_share_one_key_and_only_it_seals_a_claim(plane: ControlPlane, kube: Kube) -> None:
    first, second = Claims(kube, OPERATOR_NAMESPACE), Claims(kube, OPERATOR_NAMESPACE)
    await first.load()  # makes the key
    await second.load()  # reads it: a claim made by one replica holds for the other
    sealed = await first.annotation("uid-a")
    assert second.holds(_meta("uid-a", sealed))
    assert not second.holds(_meta("uid-a"))  # no annotation: no claim
    # What a tenant can write on its own object: a made-up seal, or one copied from another of
    # its objects. Neither holds.
    assert not second.holds(_meta("uid-a", {ANNOTATION: "0" * 64}))
    assert not second.holds(_meta("uid-b", sealed))
    secret = plane.kubectl("get", "secret", KEY_SECRET, "-n", OPERATOR_NAMESPACE, "-o", "name")
    assert secret.stdout.strip() == f"secret/{KEY_SECRET}"


async def test_a_claim_made_here_holds_at_once_and_a_withdrawn_one_never(kube: Kube) -> None:
    claims = Claims(kube, OPERATOR_NAMESPACE)
    await claims.load()
    claims.made("uid-c")
    assert claims.holds(_meta("uid-c"))  # before the watch brings the annotation
    sealed = await claims.annotation("uid-c")
    # Even when the annotation cannot be removed (this identity may not patch the object here),
    # the claim no longer counts, whatever version of the object the watch brings.
    with pytest.raises(KubeError, match="HTTP 403"):
        await claims.withdraw({**_meta("uid-c"), "namespace": OPERATOR_NAMESPACE}, "druidusers")
    assert not claims.holds(_meta("uid-c", sealed))
    claims.forget("uid-c")  # the resource is gone


async def test_without_the_key_nothing_counts_as_claimed(plane: ControlPlane) -> None:
    # The operator's identity may read and make its key only in its own namespace.
    kube = await Kube.connect(str(plane.operator_kubeconfig))
    try:
        claims = Claims(kube, "default")
        with pytest.raises(KubeError, match=r"Secret default/druid-access-claim-key: HTTP 403"):
            await claims.load()
        assert not claims.holds(_meta("uid-d", {ANNOTATION: "0" * 64}))
    finally:
        await kube.close()
