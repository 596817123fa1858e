"""The few Kubernetes calls the operator makes itself (kopf watches the custom resources).

Reading, watching and creating Secrets (and the claims key Secret), writing a custom object's
status subresource, adding or removing the operator's finalizer and the claim annotation,
reading namespaces, peering objects and object metadata. The engine sees them through the
``KubeApi`` protocol.
All go through kubernetes-asyncio, which shares kopf's event loop. Secret values leave this
module only as ``SecretStr``.

Secrets of the watched namespaces are received only when they carry ``ALLOW_LABEL``: the
list and watch select on it server-side, and a Secret outside the cache is first looked at
through its metadata alone, so the value of a Secret that did not opt in never reaches the
operator.

``KubeApi`` is what the rest of the operator asks of this module, so that the reconcile engine
can be tested against an in-memory double.
"""

from __future__ import annotations

import base64
import binascii
import json
import secrets as random_source
import string
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import aiohttp
from kubernetes_asyncio import client as k8s
from kubernetes_asyncio import config as k8s_config
from kubernetes_asyncio import watch as k8s_watch
from kubernetes_asyncio.client.exceptions import ApiException
from pydantic import SecretStr

from druid_access.models import ALLOW_LABEL, GROUP, VERSION

# Letters and digits only: Basic auth splits on ':' and shells mangle the rest.
_ALPHABET = string.ascii_letters + string.digits
GENERATED_LENGTH = 32
ALLOW_SELECTOR = f"{ALLOW_LABEL}=true"
_METADATA_ONLY = "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1"


class SecretMissing(Exception):
    """A referenced Secret, or a key in it, does not exist."""

    def __init__(self, namespace: str, name: str, key: str | None = None, *, not_text: bool = False) -> None:
        what = f"Secret {namespace}/{name}" + (f" has no key {key!r}" if key else " does not exist")
        if not_text:
            what = f"the value under key {key!r} of Secret {namespace}/{name} is not UTF-8 text"
        super().__init__(what)
        self.namespace = namespace
        self.name = name
        self.key = key


class SecretNotAllowed(Exception):
    """A referenced Secret exists but has not opted in to being read by the operator."""

    def __init__(self, namespace: str, name: str) -> None:
        super().__init__(
            f"Secret {namespace}/{name} is not labelled {ALLOW_LABEL}=true; the operator reads only "
            f"Secrets that opt in: kubectl label secret -n {namespace} {name} {ALLOW_LABEL}=true"
        )
        self.namespace = namespace
        self.name = name


class KubeError(Exception):
    """A Kubernetes API call failed (status and reason only; bodies may quote secrets)."""


@dataclass(frozen=True)
class SecretData:
    """A Secret's values (never printed) and its resourceVersion."""

    name: str
    resource_version: str
    values: Mapping[str, SecretStr]
    namespace: str = ""
    not_text: frozenset[str] = frozenset()  # keys whose values are not UTF-8 text

    def value(self, key: str) -> SecretStr:
        """The value under ``key``; ``SecretMissing`` says whether it is absent or not text."""
        if key in self.not_text:
            raise SecretMissing(self.namespace, self.name, key, not_text=True)
        if key not in self.values:
            raise SecretMissing(self.namespace, self.name, key)
        return self.values[key]


@dataclass(frozen=True)
class SecretEvent:
    """One change seen by the watch of opted-in Secrets.

    ``deleted``: it left the selection (deleted, or its label removed); ``bookmark``: no
    change, only a newer resourceVersion to resume from (``secret`` carries just that).
    """

    secret: SecretData
    deleted: bool = False
    bookmark: bool = False


@dataclass(frozen=True)
class SecretSelection:
    """Which Secrets one list and watch receive, chosen by the API server's selectors.

    ``namespace`` None is every namespace; ``name`` narrows to one Secret; ``opted_in``
    selects on ``ALLOW_LABEL`` (off only for the operator's own credential Secrets).
    """

    namespace: str | None
    name: str | None = None
    opted_in: bool = True

    def selectors(self) -> dict[str, str]:
        found = {}
        if self.opted_in:
            found["label_selector"] = ALLOW_SELECTOR
        if self.name is not None:
            found["field_selector"] = f"metadata.name={self.name}"
        return found

    def covers(self, namespace: str, name: str) -> bool:
        return self.namespace in (None, namespace) and self.name in (None, name)

    def __str__(self) -> str:
        what = f"Secret {self.name}" if self.name else "Secrets"
        where = f"in {self.namespace}" if self.namespace else "in all namespaces"
        return f"{what} {where}" + (f" labelled {ALLOW_SELECTOR}" if self.opted_in else "")


class WatchExpired(Exception):
    """The watch's resourceVersion is too old (HTTP 410): list again."""


class KubeApi(Protocol):
    """What the operator's own modules ask of Kubernetes: the engine (``Engine.kube``), the
    Secret stores, the ownership claims and the finalizer helpers. ``Kube`` is the real one;
    the unit tests hold an in-memory one (``tests/unit/memory_kube.py``).

    Every call raises ``KubeError`` when the API server fails or does not answer."""

    async def namespace_terminating(self, namespace: str) -> bool:
        """Is the namespace being deleted (or gone)?"""

    async def read_secret(self, namespace: str, name: str) -> SecretData | None:
        """Any Secret (the operator's own credentials), whatever its labels; None if absent."""

    async def secret_labels(self, namespace: str, name: str) -> Mapping[str, str] | None:
        """A Secret's labels, its value never sent; None if absent."""

    async def read_allowed_secret(self, namespace: str, name: str) -> SecretData | None:
        """The Secret if it carries ``ALLOW_LABEL``; None if absent or not opted in."""

    async def list_secrets(self, selection: SecretSelection) -> tuple[list[SecretData], str]:
        """The selected Secrets and the list's resourceVersion."""

    def watch_secrets(
        self, selection: SecretSelection, resource_version: str, timeout_seconds: int
    ) -> AsyncIterator[SecretEvent]:
        """Changes of the selected Secrets after ``resource_version``; raises ``WatchExpired``."""

    async def create_generated_secret(
        self,
        namespace: str,
        name: str,
        key: str,
        owner: Mapping[str, Any],
        extra: Mapping[str, str] | None = None,
    ) -> SecretData | None:
        """A new opted-in Secret with a random value under ``key``, owned by ``owner``; None if
        the name is taken (never overwritten)."""

    async def patch_status(self, plural: str, namespace: str, name: str, status: Mapping[str, Any]) -> None:
        """A merge patch of a custom object's status (``None`` removes a field); nothing if it is gone."""

    async def set_finalizers(
        self,
        plural: str,
        namespace: str,
        name: str,
        finalizers: list[str],
        resource_version: str,
        annotations: Mapping[str, str] | None = None,
    ) -> bool:
        """Replace a custom object's finalizers (and set ``annotations``) if it is still at
        ``resource_version``; False when it changed meanwhile or is gone."""

    async def remove_annotation(self, plural: str, namespace: str, name: str, annotation: str) -> None: ...

    async def read_or_create_key(self, namespace: str, name: str, key: str, value: str) -> SecretStr:
        """The value under ``key`` of a Secret of the operator's, made with ``value`` if absent."""

    async def read_metadata(self, plural: str, namespace: str, name: str) -> Mapping[str, Any] | None:
        """A custom object's metadata read now; None when it is gone."""


def generate_password(length: int = GENERATED_LENGTH) -> str:
    return "".join(random_source.choice(_ALPHABET) for _ in range(length))


def _decode(data: Mapping[str, str] | None) -> tuple[dict[str, SecretStr], frozenset[str]]:
    """The values that are text, and the keys of those that are not (binary cannot be a password)."""
    out, binary = {}, set()
    for key, value in (data or {}).items():
        try:
            out[key] = SecretStr(base64.b64decode(value).decode("utf-8"))
        except (binascii.Error, UnicodeDecodeError):
            binary.add(key)
    return out, frozenset(binary)


def _secret_data(obj: Mapping[str, Any]) -> SecretData:
    meta = obj.get("metadata") or {}
    values, binary = _decode(obj.get("data"))
    return SecretData(
        name=meta.get("name", ""),
        namespace=meta.get("namespace", ""),
        resource_version=meta.get("resourceVersion", ""),
        values=values,
        not_text=binary,
    )


def _from_model(secret: Any) -> SecretData:
    values, binary = _decode(secret.data)
    return SecretData(
        name=secret.metadata.name,
        namespace=secret.metadata.namespace,
        resource_version=secret.metadata.resource_version,
        values=values,
        not_text=binary,
    )


def _error(action: str, error: ApiException) -> KubeError:
    return KubeError(f"{action}: HTTP {error.status} {error.reason}")


# The API server gave no answer (restarting, unreachable, too slow): a KubeError like any other.
_NO_ANSWER = (aiohttp.ClientError, TimeoutError)


def _unanswered(action: str, error: BaseException) -> KubeError:
    return KubeError(f"{action}: no answer from the API server ({type(error).__name__})")


class Kube:
    """kubernetes-asyncio clients bound to one configuration."""

    def __init__(self, api: k8s.ApiClient) -> None:
        # kubernetes-asyncio's session reads proxy variables and ~/.netrc, in a thread, for every
        # request (trust_env=True); kopf's does not, and neither do these calls to the same server.
        rest = api.rest_client
        connector = rest.pool_manager.connector
        rest.pool_manager.detach()
        rest.pool_manager = aiohttp.ClientSession(connector=connector, trust_env=False, read_bufsize=2**21)
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

    async def namespace_terminating(self, namespace: str) -> bool:
        """Is the namespace being deleted (or gone)? Nothing new, an Event included, can be made there."""
        try:
            found = await self._core.read_namespace(namespace)
        except _NO_ANSWER as error:
            raise _unanswered(f"reading namespace {namespace}", error) from None
        except ApiException as error:
            if error.status == 404:
                return True
            raise _error(f"reading namespace {namespace}", error) from None
        return found.metadata.deletion_timestamp is not None

    async def read_secret(self, namespace: str, name: str) -> SecretData | None:
        try:
            secret = await self._core.read_namespaced_secret(name, namespace)
        except _NO_ANSWER as error:
            raise _unanswered(f"reading Secret {namespace}/{name}", error) from None
        except ApiException as error:
            if error.status == 404:
                return None
            raise _error(f"reading Secret {namespace}/{name}", error) from None
        return _from_model(secret)

    async def secret_labels(self, namespace: str, name: str) -> Mapping[str, str] | None:
        """A Secret's labels read from its metadata alone (no value is sent); None if absent."""
        action = f"reading metadata of Secret {namespace}/{name}"
        try:
            response = await self._api.call_api(
                "/api/v1/namespaces/{namespace}/secrets/{name}",
                "GET",
                path_params={"namespace": namespace, "name": name},
                header_params={"Accept": _METADATA_ONLY},
                auth_settings=["BearerToken"],
                _preload_content=False,
            )
        except _NO_ANSWER as error:
            raise _unanswered(action, error) from None
        except ApiException as error:
            raise _error(action, error) from None
        try:
            if response.status == 404:
                return None
            if not 200 <= response.status < 300:
                raise KubeError(f"{action}: HTTP {response.status} {response.reason}")
            body = json.loads(await response.read())
        finally:
            response.release()
        labels: Mapping[str, str] = (body.get("metadata") or {}).get("labels") or {}
        return labels

    async def read_allowed_secret(self, namespace: str, name: str) -> SecretData | None:
        """The named Secret if it carries the opt-in label, in one request the API server
        filters (name and label selectors), so an unlabelled value is never sent; else None."""
        try:
            result = await self._core.list_namespaced_secret(
                namespace, field_selector=f"metadata.name={name}", label_selector=ALLOW_SELECTOR
            )
        except _NO_ANSWER as error:
            raise _unanswered(f"reading Secret {namespace}/{name}", error) from None
        except ApiException as error:
            raise _error(f"reading Secret {namespace}/{name}", error) from None
        return next((_from_model(item) for item in result.items), None)

    async def list_secrets(self, selection: SecretSelection) -> tuple[list[SecretData], str]:
        """The Secrets the API server selects and the list's resourceVersion."""
        selectors = selection.selectors()
        try:
            if selection.namespace is None:
                result = await self._core.list_secret_for_all_namespaces(**selectors)
            else:
                result = await self._core.list_namespaced_secret(selection.namespace, **selectors)
        except _NO_ANSWER as error:
            raise _unanswered(f"listing {selection}", error) from None
        except ApiException as error:
            raise _error(f"listing {selection}", error) from None
        return [_from_model(item) for item in result.items], result.metadata.resource_version

    async def watch_secrets(
        self, selection: SecretSelection, resource_version: str, timeout_seconds: int
    ) -> AsyncIterator[SecretEvent]:
        """Changes of the selected Secrets after ``resource_version``, until the server ends the watch."""
        func: Any = self._core.list_secret_for_all_namespaces
        args: tuple[str, ...] = ()
        if selection.namespace is not None:
            func, args = self._core.list_namespaced_secret, (selection.namespace,)
        watcher = k8s_watch.Watch()
        try:
            async for event in watcher.stream(
                func,
                *args,
                **selection.selectors(),
                resource_version=resource_version,
                timeout_seconds=timeout_seconds,
                allow_watch_bookmarks=True,
                # A connection that died silently must end the watch, not freeze the cache.
                _request_timeout=aiohttp.ClientTimeout(connect=30, sock_read=timeout_seconds + 30),
            ):
                kind = event["type"]
                yield SecretEvent(
                    _secret_data(event["raw_object"]), deleted=kind == "DELETED", bookmark=kind == "BOOKMARK"
                )
        except _NO_ANSWER as error:
            raise _unanswered(f"watching {selection}", error) from None
        except ApiException as error:
            if error.status == 410:
                raise WatchExpired() from None
            raise _error(f"watching {selection}", error) from None
        finally:
            await watcher.close()

    async def create_generated_secret(
        self,
        namespace: str,
        name: str,
        key: str,
        owner: Mapping[str, Any],
        extra: Mapping[str, str] | None = None,
    ) -> SecretData | None:
        """Create a Secret with a random value under ``key``, owned by ``owner`` so it goes
        with it, labelled to be read by the operator. ``extra`` are further keys for the
        applications that mount it (``username``, the cluster's URLs); ``key`` wins over them.
        None when it exists already (a race with a user): it is never overwritten, and read
        like any other."""
        password = generate_password()
        data = {**(extra or {}), key: password}
        meta = owner["metadata"]
        body = k8s.V1Secret(
            metadata=k8s.V1ObjectMeta(
                name=name,
                namespace=namespace,
                labels={"app.kubernetes.io/managed-by": "druid-access-operator", ALLOW_LABEL: "true"},
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
            string_data=data,
        )
        try:
            created = await self._core.create_namespaced_secret(namespace, body)
        except _NO_ANSWER as error:
            raise _unanswered(f"creating Secret {namespace}/{name}", error) from None
        except ApiException as error:
            if error.status == 409:
                return None
            raise _error(f"creating Secret {namespace}/{name}", error) from None
        return SecretData(
            name=name,
            namespace=namespace,
            resource_version=created.metadata.resource_version,
            values={k: SecretStr(v) for k, v in data.items()},
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
        except _NO_ANSWER as error:
            raise _unanswered(f"writing status of {plural}/{namespace}/{name}", error) from None
        except ApiException as error:
            if error.status == 404:
                return  # deleted meanwhile: nothing left to report on
            raise _error(f"writing status of {plural}/{namespace}/{name}", error) from None

    async def set_finalizers(
        self,
        plural: str,
        namespace: str,
        name: str,
        finalizers: list[str],
        resource_version: str,
        annotations: Mapping[str, str] | None = None,
    ) -> bool:
        """Replace a custom object's finalizers (and set ``annotations`` in the same write), if
        it is still at ``resource_version``.

        False when it changed meanwhile (the caller looks again at a newer version) or is gone.
        The version is the precondition: a merge patch replaces the whole list, and a finalizer
        another controller added meanwhile must not be lost."""
        meta: dict[str, Any] = {"finalizers": finalizers or None, "resourceVersion": resource_version}
        if annotations:
            meta["annotations"] = dict(annotations)
        return await self._patch_metadata(plural, namespace, name, meta, "writing the finalizers")

    async def remove_annotation(self, plural: str, namespace: str, name: str, annotation: str) -> None:
        meta = {"annotations": {annotation: None}}
        await self._patch_metadata(plural, namespace, name, meta, f"removing annotation {annotation}")

    async def _patch_metadata(
        self, plural: str, namespace: str, name: str, meta: Mapping[str, Any], what: str
    ) -> bool:
        """A merge patch of a custom object's metadata; False when it is gone or no longer at
        the resourceVersion the patch names."""
        action = f"{what} of {plural}/{namespace}/{name}"
        try:
            await self._custom.patch_namespaced_custom_object(
                GROUP,
                VERSION,
                namespace,
                plural,
                name,
                {"metadata": dict(meta)},
                _content_type="application/merge-patch+json",
            )
        except _NO_ANSWER as error:
            raise _unanswered(action, error) from None
        except ApiException as error:
            if error.status in (404, 409):
                return False
            raise _error(action, error) from None
        return True

    async def read_or_create_key(self, namespace: str, name: str, key: str, value: str) -> SecretStr:
        """The value under ``key`` of a Secret the operator keeps for itself, made with
        ``value`` when it does not exist (several replicas racing: the first one's wins)."""
        for _ in range(2):
            found = await self.read_secret(namespace, name)
            if found is not None:
                return found.value(key)
            body = k8s.V1Secret(
                metadata=k8s.V1ObjectMeta(
                    name=name,
                    namespace=namespace,
                    labels={"app.kubernetes.io/managed-by": "druid-access-operator"},
                ),
                type="Opaque",
                string_data={key: value},
            )
            try:
                await self._core.create_namespaced_secret(namespace, body)
                return SecretStr(value)
            except _NO_ANSWER as error:
                raise _unanswered(f"creating Secret {namespace}/{name}", error) from None
            except ApiException as error:
                if error.status != 409:
                    raise _error(f"creating Secret {namespace}/{name}", error) from None
        raise KubeError(f"Secret {namespace}/{name} was made and removed while it was being read")

    async def read_metadata(self, plural: str, namespace: str, name: str) -> Mapping[str, Any] | None:
        """A custom object's metadata, read now; None when it is gone."""
        try:
            found = await self._custom.get_namespaced_custom_object(GROUP, VERSION, namespace, plural, name)
        except _NO_ANSWER as error:
            raise _unanswered(f"reading {plural}/{namespace}/{name}", error) from None
        except ApiException as error:
            if error.status == 404:
                return None
            raise _error(f"reading {plural}/{namespace}/{name}", error) from None
        meta = found.get("metadata") if isinstance(found, Mapping) else None
        return meta if isinstance(meta, Mapping) else None

    async def read_peering(self, name: str, namespace: str | None) -> Mapping[str, Any] | None:
        """The peers kopf recorded in a KopfPeering (in ``namespace``) or ClusterKopfPeering."""
        where = f"KopfPeering {namespace}/{name}" if namespace else f"ClusterKopfPeering {name}"
        try:
            if namespace is None:
                found = await self._custom.get_cluster_custom_object(
                    "kopf.dev", "v1", "clusterkopfpeerings", name
                )
            else:
                found = await self._custom.get_namespaced_custom_object(
                    "kopf.dev", "v1", namespace, "kopfpeerings", name
                )
        except _NO_ANSWER as error:
            raise _unanswered(f"reading {where}", error) from None
        except ApiException as error:
            if error.status == 404:
                return None
            raise _error(f"reading {where}", error) from None
        status = found.get("status") if isinstance(found, Mapping) else None
        return status if isinstance(status, Mapping) else None
