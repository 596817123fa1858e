"""The Kubernetes client when the API server gives no answer: a KubeError with the action, never
a raw aiohttp error (which would end as an ERROR line per object per retry)."""

from __future__ import annotations

import pytest

from druid_access.kube import Kube, KubeError, SecretSelection
from druid_access.kubeconfig import Connection
from druid_access.testing.processes import free_port


@pytest.fixture
async def kube() -> Kube:
    return Kube(Connection(f"http://127.0.0.1:{free_port()}", None))  # nothing listens


async def test_no_answer_is_a_kube_error_naming_the_action(kube: Kube) -> None:
    try:
        calls = {
            "writing status of druidusers/ns/u": kube.patch_status("druidusers", "ns", "u", {"owned": True}),
            "reading Secret ns/s": kube.read_allowed_secret("ns", "s"),
            "reading metadata of Secret ns/s": kube.secret_labels("ns", "s"),
            "reading namespace ns": kube.namespace_terminating("ns"),
            "listing Secrets in ns": kube.list_secrets(SecretSelection("ns")),
        }
        for action, call in calls.items():
            with pytest.raises(KubeError) as raised:
                await call
            message = str(raised.value)
            assert message.startswith(action), message
            assert "no answer from the API server (ClientConnectorError)" in message, message
    finally:
        await kube.close()
