"""The in-memory Kubernetes of the engine's tests behaves as the API server does for the calls
the operator makes (the real ``Kube`` is checked against a kube-apiserver in tests/e2e)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest
from memory_kube import MemoryKube

from druid_access.finalizer import FINALIZER, hold, release
from druid_access.kube import KubeError, SecretNotAllowed, SecretSelection
from druid_access.secret_store import SecretStore


async def test_the_secret_store_lists_and_watches_opted_in_secrets_only() -> None:
    kube = MemoryKube()
    kube.put_secret("team-a", "listed", {"password": "one"})
    kube.put_secret("team-a", "private", {"password": "never"}, allowed=False)
    store = SecretStore(kube, ["team-a"])
    changed: list[tuple[str, str]] = []
    running = asyncio.ensure_future(store.run(lambda ns, name: changed.append((ns, name))))

    async def until(done: Callable[[], bool]) -> None:
        for _ in range(200):
            if done():
                return
            await asyncio.sleep(0.005)
        raise AssertionError("not within a second")

    try:
        await until(lambda: kube.count("watch_secrets") == 1)  # listed, and watching
        found = await store.get("team-a", "listed")
        assert found is not None and found.value("password").get_secret_value() == "one"
        kube.put_secret("team-a", "later", {"password": "two"})
        kube.put_secret("team-a", "listed", {"password": "one"}, allowed=False)  # opts out
        await until(lambda: len(changed) == 3)
        assert changed == [("team-a", "listed"), ("team-a", "later"), ("team-a", "listed")]
        later = await store.get("team-a", "later")  # brought by the watch: read from the cache
        assert later is not None and later.value("password").get_secret_value() == "two"
        assert kube.count("list_secrets") == 1 and kube.count("read_allowed_secret") == 0
        with pytest.raises(SecretNotAllowed):  # left the selection: asked (metadata only) why
            await store.get("team-a", "listed")
    finally:
        running.cancel()
        await asyncio.gather(running, return_exceptions=True)
    listed, _ = await kube.list_secrets(SecretSelection(None, opted_in=False))
    assert {s.name for s in listed} == {"listed", "private", "later"}


async def test_finalizers_honour_the_resource_version_and_a_deleted_object_goes_when_released() -> None:
    kube = MemoryKube()
    body = kube.put_object("druidusers", {"metadata": {"name": "u", "namespace": "ns"}, "spec": {}})
    kube.put_object("druidusers", {**body, "spec": {"roles": ["r"]}})  # a newer version meanwhile
    assert (
        await kube.set_finalizers("druidusers", "ns", "u", [FINALIZER], body["metadata"]["resourceVersion"])
        is False
    )
    assert await hold(kube, "druidusers", body["metadata"], {"a": "b"})  # reads the newer version
    meta = kube.object("druidusers", "ns", "u")["metadata"]
    assert meta["finalizers"] == [FINALIZER] and meta["annotations"] == {"a": "b"} and meta["generation"] == 2
    deleting = kube.delete_object("druidusers", "ns", "u")
    assert await hold(kube, "druidusers", deleting["metadata"]) is False  # no new finalizer now
    await kube.patch_status("druidusers", "ns", "u", {"owned": True, "conditions": [{"type": "Ready"}]})
    await kube.patch_status("druidusers", "ns", "u", {"owned": None})
    assert kube.object("druidusers", "ns", "u")["status"] == {"conditions": [{"type": "Ready"}]}
    assert await release(kube, "druidusers", kube.object("druidusers", "ns", "u")["metadata"])
    assert ("druidusers", "ns", "u") not in kube.objects
    await kube.patch_status("druidusers", "ns", "u", {"owned": True})  # gone: nothing to report on
    assert len(kube.status_patches) == 2


async def test_namespaces_the_claim_key_and_injected_failures() -> None:
    kube = MemoryKube()
    kube.put_secret("team-a", "s", {"k": "v"})
    kube.terminate("team-b")
    assert [await kube.namespace_terminating(ns) for ns in ("team-a", "team-b", "gone")] == [
        False,
        True,
        True,
    ]
    first = await kube.read_or_create_key("op", "key", "field", "x" * 40)
    assert (await kube.read_or_create_key("op", "key", "field", "other")) == first
    assert kube.count("create_key") == 1 and not kube.secrets[("op", "key")].allowed
    kube.fail("read_secret", times=1)
    with pytest.raises(KubeError, match="read_secret: HTTP 500"):
        await kube.read_secret("team-a", "s")
    assert await kube.read_secret("team-a", "s") is not None  # once only
