"""``Kube.list_objects`` on a real API server, under the operator's RBAC (deploy/rbac.yaml): the
list the operator reads once at start for the claims index (``passes.App.list_claims``) brings
every object of a kind, in one namespace or all, a page at a time; the list it reads after kopf
lists again (``passes.App.sweep``), only their metadata."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from druid_access import kube as kube_module
from druid_access.kube import Kube
from druid_access.models import API_VERSION
from druid_access.testing.controlplane import ControlPlane
from druid_access.testing.environment import apply, install

NAMESPACES = ("list-a", "list-b")


def _role(namespace: str, name: str) -> dict[str, Any]:
    return {
        "apiVersion": API_VERSION,
        "kind": "DruidRole",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"permissions": []},
    }


@pytest.fixture(scope="module")
def plane(controlplane: ControlPlane) -> ControlPlane:
    install(controlplane, admin_user="admin", admin_password="unused", pivot_token="unused")
    apply(
        controlplane, [{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": n}} for n in NAMESPACES]
    )
    apply(
        controlplane,
        [_role("list-a", f"r{i}") for i in range(5)] + [_role("list-b", "other")],
    )
    return controlplane


@pytest.fixture
async def kube(plane: ControlPlane) -> AsyncIterator[Kube]:
    client = await Kube.connect(str(plane.operator_kubeconfig))
    try:
        yield client
    finally:
        await client.close()


async def test_every_object_of_a_kind_is_listed_a_page_at_a_time(
    kube: Kube, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(kube_module, "LIST_PAGE", 2)
    pages: list[str] = []
    session = kube._session
    original = session.request

    def counted(**args: Any) -> Any:
        pages.append(args["url"])
        return original(**args)

    monkeypatch.setattr(session, "request", counted)
    listed = [body["metadata"]["name"] async for body in kube.list_objects("druidroles", "list-a")]
    assert sorted(listed) == [f"r{i}" for i in range(5)]
    assert len(pages) == 3 and all("limit=2" in url for url in pages)
    assert "continue=" in pages[1] and "continue=" in pages[2]
    everywhere = {
        (body["metadata"]["namespace"], body["metadata"]["name"])
        async for body in kube.list_objects("druidroles", None)
    }
    assert {("list-b", "other"), ("list-a", "r0")} <= everywhere
    assert [body async for body in kube.list_objects("druidusers", "list-b")] == []


async def test_a_list_of_metadata_only_brings_no_spec(kube: Kube, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(kube_module, "LIST_PAGE", 2)
    listed = [body async for body in kube.list_objects("druidroles", "list-a", metadata_only=True)]
    assert sorted(body["metadata"]["name"] for body in listed) == [f"r{i}" for i in range(5)]
    assert all(body["metadata"]["uid"] and "spec" not in body for body in listed)
