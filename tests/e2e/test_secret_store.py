"""Secret opt-in against a real kube-apiserver: the operator receives only labelled Secrets.

``SecretStore`` runs under the operator's restricted identity. Every HTTP request its
Kubernetes client sends is recorded, and each one that concerns Secrets must be a list or
watch selecting ``druidaccess.io/allow=true`` on the server (a read by name is such a list,
with a name selector too) or a metadata-only read: no response can carry the value of a
Secret that did not opt in. The cache follows labels being added and removed and values changing,
and wakes the readers each time.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, unquote, urlparse

import pytest

from druid_access.kube import ALLOW_LABEL, Kube, SecretNotAllowed
from druid_access.secret_store import CredentialStore, SecretStore
from druid_access.testing.controlplane import ControlPlane
from druid_access.testing.environment import ADMIN_SECRET, OPERATOR_NAMESPACE, apply, install, secret

NS = "secret-optin"
OTHER = "secret-optin-other"
CANARY = "canary-unlabelled-value-7c1e"
TIMEOUT = 30.0


@dataclass
class Recorded:
    method: str
    path: str
    query: dict[str, list[str]]
    accept: str


@dataclass
class Recorder:
    """Stands in for the client's aiohttp session and records each request it forwards."""

    session: Any
    requests: list[Recorded] = field(default_factory=list)

    def request(self, **args: Any) -> Any:
        url = urlparse(args["url"])
        self.requests.append(
            Recorded(
                args["method"],
                unquote(url.path),
                parse_qs(url.query),
                (args.get("headers") or {}).get("Accept", ""),
            )
        )
        return self.session.request(**args)

    async def close(self) -> None:
        await self.session.close()


@pytest.fixture(scope="module")
def plane(controlplane: ControlPlane) -> ControlPlane:
    install(controlplane, admin_user="admin", admin_password="unused", pivot_token="unused")
    apply(
        controlplane,
        [{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": n}} for n in (NS, OTHER)],
    )
    return controlplane


@pytest.fixture
async def kube(plane: ControlPlane) -> AsyncIterator[tuple[Kube, Recorder]]:
    client = await Kube.connect(str(plane.operator_kubeconfig))
    recorder = Recorder(client._session)
    client._session = recorder
    try:
        yield client, recorder
    finally:
        await client.close()


async def _until(predicate: Callable[[], bool], what: str) -> None:
    for _ in range(int(TIMEOUT / 0.1)):
        if predicate():
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"timed out after {TIMEOUT:.0f}s waiting for {what}")


async def test_only_opted_in_secrets_are_received_and_changes_wake(
    plane: ControlPlane, kube: tuple[Kube, Recorder]
) -> None:
    client, recorder = kube
    apply(
        plane,
        [
            secret("allowed", {"password": "allowed-value-1"}, NS),
            secret("unlabelled", {"password": CANARY}, NS, allow=False),
            secret("elsewhere", {"password": "other-namespace"}, OTHER),
        ],
    )
    changes: list[tuple[str, str]] = []
    store = SecretStore(client, [NS])
    task = asyncio.create_task(store.run(lambda ns, name: changes.append((ns, name))))
    try:
        await _until(lambda: (NS, "allowed") in changes, "the labelled Secret to be listed")
        assert (NS, "unlabelled") not in changes and (OTHER, "elsewhere") not in changes

        got = await store.get(NS, "allowed")
        assert got is not None and got.values["password"].get_secret_value() == "allowed-value-1"
        with pytest.raises(SecretNotAllowed) as refused:
            await store.get(NS, "unlabelled")
        message = str(refused.value)
        assert f"kubectl label secret -n {NS} unlabelled {ALLOW_LABEL}=true" in message
        assert CANARY not in message
        assert await store.get(NS, "missing") is None

        # Opting in later: the watch sees the Secret arrive and wakes its readers.
        changes.clear()
        opt_in = len(recorder.requests)
        plane.kubectl("label", "secret", "unlabelled", "-n", NS, f"{ALLOW_LABEL}=true")
        await _until(lambda: (NS, "unlabelled") in changes, "the newly labelled Secret")
        got = await store.get(NS, "unlabelled")
        assert got is not None and got.values["password"].get_secret_value() == CANARY

        # A value change, and opting out again.
        apply(plane, secret("allowed", {"password": "allowed-value-2"}, NS))
        await _until(
            lambda: (
                (got2 := store._cache.get((NS, "allowed"))) is not None
                and got2.values["password"].get_secret_value() == "allowed-value-2"
            ),
            "the changed value",
        )
        changes.clear()
        plane.kubectl("label", "secret", "allowed", "-n", NS, f"{ALLOW_LABEL}-")
        await _until(lambda: (NS, "allowed") in changes, "the unlabelled Secret to leave the selection")
        with pytest.raises(SecretNotAllowed):
            await store.get(NS, "allowed")
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        plane.kubectl("delete", "secret", "allowed", "unlabelled", "-n", NS, check=False)
        plane.kubectl("delete", "secret", "elsewhere", "-n", OTHER, check=False)

    assert_never_sent_unselected(recorder)
    before = [r for r in recorder.requests[:opt_in] if r.path.endswith("/secrets/unlabelled")]
    assert before, "the unlabelled Secret was never looked at"


def assert_never_sent_unselected(recorder: Recorder) -> None:
    """Every request about Secrets is a list or watch the API server filters by the opt-in
    label, or a metadata-only read: no response can carry an unlabelled Secret's value."""
    secrets = [r for r in recorder.requests if "/secrets" in r.path]
    assert secrets, "no request concerned Secrets"
    for r in secrets:
        assert r.method == "GET", r
        if r.path.endswith("/secrets"):
            assert r.query.get("labelSelector") == [f"{ALLOW_LABEL}=true"], r
        else:
            assert "as=PartialObjectMetadata" in r.accept, r


async def test_namespace_globs_watch_cluster_wide_and_keep_only_matching_namespaces(
    plane: ControlPlane, kube: tuple[Kube, Recorder]
) -> None:
    client, recorder = kube
    apply(
        plane,
        [secret("glob-in", {"password": "in"}, NS), secret("glob-out", {"password": "out"}, OTHER)],
    )
    changes: list[tuple[str, str]] = []
    store = SecretStore(client, ["secret-optin", "nothing-*"])  # one exact name, one glob
    task = asyncio.create_task(store.run(lambda ns, name: changes.append((ns, name))))
    try:
        await _until(lambda: (NS, "glob-in") in changes, "the Secret of the watched namespace")
        assert (OTHER, "glob-out") not in store._cache and (NS, "glob-in") in store._cache
        watches = [r for r in recorder.requests if r.path == "/api/v1/secrets"]
        assert watches, "a glob needs the cluster-wide list and watch"
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        plane.kubectl("delete", "secret", "glob-in", "-n", NS, check=False)
        plane.kubectl("delete", "secret", "glob-out", "-n", OTHER, check=False)
    assert_never_sent_unselected(recorder)


async def test_credential_secrets_are_watched_by_name_and_read_from_the_cache(
    plane: ControlPlane, kube: tuple[Kube, Recorder]
) -> None:
    """The operator's own credential Secret is listed and watched by name (no other Secret of its
    namespace is received), then every read comes from the cache, and a rotation arrives."""
    client, recorder = kube
    admin = secret(ADMIN_SECRET, {"username": "admin", "password": "first"}, OPERATOR_NAMESPACE)
    apply(plane, [admin, secret("bystander", {"password": CANARY}, OPERATOR_NAMESPACE, allow=False)])
    store = CredentialStore(client, [OPERATOR_NAMESPACE], names=[ADMIN_SECRET])
    task = asyncio.create_task(store.run(lambda ns, name: None))
    try:
        await _until(lambda: (OPERATOR_NAMESPACE, ADMIN_SECRET) in store._cache, "the credential Secret")
        assert (OPERATOR_NAMESPACE, "bystander") not in store._cache
        sent = len(recorder.requests)
        for _ in range(100):
            got = await store.get(OPERATOR_NAMESPACE, ADMIN_SECRET)
            assert got is not None and got.values["password"].get_secret_value() == "first"
        assert len(recorder.requests) == sent, "a cached credential was read from the API server"

        apply(plane, secret(ADMIN_SECRET, {"username": "admin", "password": "second"}, OPERATOR_NAMESPACE))

        def rotated() -> bool:
            cached = store._cache.get((OPERATOR_NAMESPACE, ADMIN_SECRET))
            return cached is not None and cached.values["password"].get_secret_value() == "second"

        await _until(rotated, "the rotated credential")
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        plane.kubectl("delete", "secret", "bystander", "-n", OPERATOR_NAMESPACE, check=False)
    secrets = [r for r in recorder.requests if "/secrets" in r.path]
    assert secrets and all(r.query.get("fieldSelector") == [f"metadata.name={ADMIN_SECRET}"] for r in secrets)
