"""The ownership claims journal on a real API server, under the operator's own RBAC
(deploy/rbac.yaml): claims made together cost one ConfigMap write, survive a restart, and are
dropped once a status holds them."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator

import pytest
import yaml

from druid_access import journal as journal_module
from druid_access.journal import NAME, ClaimJournal
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
    controlplane.kubectl("delete", "configmap", NAME, "-n", OPERATOR_NAMESPACE, "--ignore-not-found")
    yield controlplane
    controlplane.kubectl("delete", "configmap", NAME, "-n", OPERATOR_NAMESPACE, "--ignore-not-found")


@pytest.fixture
async def kube(plane: ControlPlane) -> AsyncIterator[Kube]:
    client = await Kube.connect(str(plane.operator_kubeconfig))
    try:
        yield client
    finally:
        await client.close()


async def _stored(kube: Kube) -> dict[str, str]:
    return await kube.read_config_map(OPERATOR_NAMESPACE, NAME) or {}


async def test_claims_made_together_are_written_together_and_survive_a_restart(kube: Kube) -> None:
    journal = ClaimJournal(kube, OPERATOR_NAMESPACE)
    await journal.load()
    uids = [f"uid-together-{i}" for i in range(20)]
    await asyncio.gather(*(journal.claim(uid, f"DruidUser ns/u{i}") for i, uid in enumerate(uids)))
    # The first claim's write was in flight while the other 19 came: they share the next one.
    assert journal.writes == 2
    assert all(journal.holds(uid) for uid in uids)
    stored = await _stored(kube)
    assert {uid: stored[uid] for uid in uids} == {uid: f"DruidUser ns/u{i}" for i, uid in enumerate(uids)}
    await journal.claim(uids[0], "again")  # held already: no write
    assert journal.writes == 2

    restarted = ClaimJournal(kube, OPERATOR_NAMESPACE)
    assert not restarted.holds(uids[0])
    await restarted.load()
    assert all(restarted.holds(uid) for uid in uids)


async def test_a_released_claim_is_gone_at_once_a_forgotten_one_soon(
    kube: Kube, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(journal_module, "DROP_DELAY", 0.05)
    journal = ClaimJournal(kube, OPERATOR_NAMESPACE)
    await journal.load()
    await journal.claim("uid-released", "DruidRole ns/r")
    await journal.claim("uid-forgotten", "DruidRole ns/f")
    await journal.release("uid-released")
    assert not journal.holds("uid-released")
    assert "uid-released" not in await _stored(kube)

    writes = journal.writes
    journal.forget("uid-forgotten")
    journal.forget("uid-never-claimed")  # nothing to drop: no write for it
    for _ in range(100):
        if journal.writes > writes:
            break
        await asyncio.sleep(0.05)
    assert journal.writes == writes + 1
    assert not journal.holds("uid-forgotten")
    assert "uid-forgotten" not in await _stored(kube)


async def test_a_claim_that_cannot_be_written_is_not_held(plane: ControlPlane) -> None:
    # The operator's identity may write its claims only in its own namespace.
    kube = await Kube.connect(str(plane.operator_kubeconfig))
    try:
        journal = ClaimJournal(kube, "default")
        with pytest.raises(KubeError, match=r"writing ConfigMap default/druid-access-claims: HTTP 403"):
            await journal.claim("uid-refused", "DruidUser ns/u")
        assert not journal.holds("uid-refused")
        # Nothing left waiting either: a later claim's write does not carry it in.
        assert journal._adds == {}
    finally:
        await kube.close()
