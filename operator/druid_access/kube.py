"""The few Kubernetes calls the operator makes itself (kopf does the watching).

Reading and creating Secrets, and writing a custom object's status subresource. All go
through kubernetes-asyncio, which shares kopf's event loop. Secret values leave this
module only as ``SecretStr``.
"""

from __future__ import annotations

import base64
import binascii
import secrets as random_source
import string
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from kubernetes_asyncio import client as k8s
from kubernetes_asyncio import config as k8s_config
from kubernetes_asyncio.client.exceptions import ApiException
from pydantic import SecretStr

from druid_access.models import GROUP, VERSION

# Letters and digits only: Basic auth splits on ':' (facts §0.10) and shells mangle the rest.
_ALPHABET = string.ascii_letters + string.digits
GENERATED_LENGTH = 32


class SecretMissing(Exception):
    """A referenced Secret, or a key in it, does not exist."""

    def __init__(self, namespace: str, name: str, key: str | None = None) -> None:
        what = f"Secret {namespace}/{name}" + (f" has no key {key!r}" if key else " does not exist")
        super().__init__(what)
        self.namespace = namespace
        self.name = name
        self.key = key


class KubeError(Exception):
    """A Kubernetes API call failed (status and reason only; bodies may quote secrets)."""


@dataclass(frozen=True)
class SecretData:
    """A Secret's values (never printed) and its resourceVersion."""

    name: str
    resource_version: str
    values: Mapping[str, SecretStr]


def generate_password(length: int = GENERATED_LENGTH) -> str:
    return "".join(random_source.choice(_ALPHABET) for _ in range(length))


def _decode(data: Mapping[str, str] | None) -> dict[str, SecretStr]:
    out = {}
    for key, value in (data or {}).items():
        try:
            out[key] = SecretStr(base64.b64decode(value).decode("utf-8"))
        except (binascii.Error, UnicodeDecodeError):
            continue  # binary values cannot be passwords; treated as a missing key
    return out


def _error(action: str, error: ApiException) -> KubeError:
    return KubeError(f"{action}: HTTP {error.status} {error.reason}")


class Kube:
    """kubernetes-asyncio clients bound to one configuration."""

    def __init__(self, api: k8s.ApiClient) -> None:
        self._api = api
        self._core = k8s.CoreV1Api(api)
        self._custom = k8s.CustomObjectsApi(api)

    @classmethod
    async def connect(cls, kubeconfig: str | None = None) -> Kube:
        """In-cluster credentials when running in a pod, else the kubeconfig (KUBECONFIG)."""
        configuration = k8s.Configuration()
        try:
            k8s_config.load_incluster_config(client_configuration=configuration)
        except k8s_config.ConfigException:
            await k8s_config.load_kube_config(config_file=kubeconfig, client_configuration=configuration)
        return cls(k8s.ApiClient(configuration))

    async def close(self) -> None:
        await self._api.close()

    async def read_secret(self, namespace: str, name: str) -> SecretData | None:
        try:
            secret = await self._core.read_namespaced_secret(name, namespace)
        except ApiException as error:
            if error.status == 404:
                return None
            raise _error(f"reading Secret {namespace}/{name}", error) from None
        return SecretData(
            name=name, resource_version=secret.metadata.resource_version, values=_decode(secret.data)
        )

    async def create_generated_secret(
        self, namespace: str, name: str, key: str, owner: Mapping[str, Any]
    ) -> SecretData:
        """Create a Secret with a random value under ``key``, owned by ``owner`` so it goes
        with it. An existing Secret (a race with a user) is read, never overwritten."""
        password = generate_password()
        meta = owner["metadata"]
        body = k8s.V1Secret(
            metadata=k8s.V1ObjectMeta(
                name=name,
                namespace=namespace,
                labels={"app.kubernetes.io/managed-by": "druid-access-operator"},
                owner_references=[
                    k8s.V1OwnerReference(
                        api_version=owner["apiVersion"],
                        kind=owner["kind"],
                        name=meta["name"],
                        uid=meta["uid"],
                        controller=True,
                        block_owner_deletion=False,
                    )
                ],
            ),
            type="Opaque",
            string_data={key: password},
        )
        try:
            created = await self._core.create_namespaced_secret(namespace, body)
        except ApiException as error:
            if error.status == 409:
                existing = await self.read_secret(namespace, name)
                if existing is not None:
                    return existing
            raise _error(f"creating Secret {namespace}/{name}", error) from None
        return SecretData(
            name=name,
            resource_version=created.metadata.resource_version,
            values={key: SecretStr(password)},
        )

    async def patch_status(self, plural: str, namespace: str, name: str, status: Mapping[str, Any]) -> None:
        try:
            await self._custom.patch_namespaced_custom_object_status(
                GROUP,
                VERSION,
                namespace,
                plural,
                name,
                {"status": dict(status)},
                _content_type="application/merge-patch+json",
            )
        except ApiException as error:
            if error.status == 404:
                return  # deleted meanwhile: nothing left to report on
            raise _error(f"writing status of {plural}/{namespace}/{name}", error) from None
