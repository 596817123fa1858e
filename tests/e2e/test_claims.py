"""Ownership claims on a real API server, under the operator's own RBAC (deploy/rbac.yaml): the
key is made once and shared by replicas, a claim is an annotation only a holder of the key can
seal, and a withdrawn claim never counts again."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any, cast

import pytest
import yaml

from druid_access.claims import ANNOTATION, KEY_SECRET, ClaimKeyMissing, Claims
from druid_access.kube import Kube, KubeError
from druid_access.reconcile import Engine
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


async def test_a_refusal_on_record_outweighs_a_claim_put_back_after_a_restart(kube: Kube) -> None:
    """A tenant that saw its object's seal before the claim was withdrawn can put it back; the
    status saying owned: false (which only the operator writes) outweighs it, in a process that
    never saw the withdrawal."""
    first = Claims(kube, OPERATOR_NAMESPACE)
    await first.load()
    sealed = await first.annotation("uid-e")
    restarted = Claims(kube, OPERATOR_NAMESPACE)
    await restarted.load()
    engine = Engine(cast(Any, None), kube, cast(Any, None), restarted)
    claimed = {"metadata": _meta("uid-e", sealed)}
    assert engine.owned(claimed)  # the crash window: no status yet, the claim holds
    assert not engine.owned({**claimed, "status": {"owned": False}})
    assert engine.owned({"metadata": _meta("uid-e"), "status": {"owned": True}})
    # Whatever a tenant writes there is judged, never an error: not ASCII, not hex, too long.
    for forged in ("é" * 64, "zz", "0" * 1000):
        assert not restarted.holds(_meta("uid-e", {ANNOTATION: forged}))


async def test_without_the_key_no_claim_is_judged(plane: ControlPlane, kube: Kube) -> None:
    claims = Claims(kube, OPERATOR_NAMESPACE)
    genuine = await claims.annotation("uid-f")  # loads the key
    # Not loaded (yet): a claim on the object cannot be judged, and is not taken for none
    # (that would orphan the remote object of an object caught between create and status).
    unloaded = Claims(kube, OPERATOR_NAMESPACE)
    with pytest.raises(ClaimKeyMissing):
        unloaded.holds(_meta("uid-f", genuine))
    assert not unloaded.holds(_meta("uid-f"))  # no claim on it: nothing to judge
    # The operator's identity may read and make its key only in its own namespace.
    elsewhere = Claims(kube, "default")
    with pytest.raises(KubeError, match=r"Secret default/druid-access-claim-key: HTTP 403"):
        await elsewhere.load()


async def test_a_key_too_short_is_refused(plane: ControlPlane, kube: Kube) -> None:
    plane.kubectl("delete", "secret", KEY_SECRET, "-n", OPERATOR_NAMESPACE, "--ignore-not-found")
    plane.kubectl(
        "create", "secret", "generic", KEY_SECRET, "-n", OPERATOR_NAMESPACE, "--from-literal=key=short"
    )
    try:
        with pytest.raises(ClaimKeyMissing, match="shorter than 32"):
            await Claims(kube, OPERATOR_NAMESPACE).load()
    finally:
        plane.kubectl("delete", "secret", KEY_SECRET, "-n", OPERATOR_NAMESPACE)
