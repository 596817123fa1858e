"""The few Kubernetes calls the operator makes itself (kopf watches the custom resources).

Reading, watching and creating Secrets (and the claims key Secret), writing a custom object's
status subresource, adding or removing the operator's finalizer and the claim annotation,
reading namespaces, peering objects and object metadata. The engine sees them through the
``KubeApi`` protocol.
All go through one aiohttp session on kopf's event loop, as plain JSON: the few paths are
built here and only the fields used are read. Secret values leave this module only as
``SecretStr``; an error is its status alone, its body drained and dropped (it may quote the
object sent). Names go into paths escaped whole, so no name reaches another path.

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
import contextlib
import json
import secrets as random_source
import string
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import quote, urlencode

import aiohttp
from pydantic import SecretStr

from druid_access.kubeconfig import Connection, from_kubeconfig, in_cluster
from druid_access.kubeconfig import KubeconfigError as KubeconfigError  # raised by Kube.connect
from druid_access.models import ALLOW_LABEL, GROUP, VERSION

# Letters and digits only: Basic auth splits on ':' and shells mangle the rest.
_ALPHABET = string.ascii_letters + string.digits
GENERATED_LENGTH = 32
ALLOW_SELECTOR = f"{ALLOW_LABEL}=true"
_METADATA_ONLY = "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1"
_METADATA_LIST = "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1"
_MERGE_PATCH = "application/merge-patch+json"
LIST_PAGE = 500  # objects per page of a list: a page of bodies in memory, not thousands
_USER_AGENT = "druid-access-operator"
# A call waits for a free connection as long as it takes, but a server that accepts no connection,
# or sends nothing for two minutes, is no answer. A list of thousands of Secrets has no overall limit.
_TIMEOUT = aiohttp.ClientTimeout(total=None, sock_connect=30, sock_read=120)


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
        """The list's query parameters that make the API server do the selecting."""
        found = {}
        if self.opted_in:
            found["labelSelector"] = ALLOW_SELECTOR
        if self.name is not None:
            found["fieldSelector"] = f"metadata.name={self.name}"
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

    def list_objects(
        self, plural: str, namespace: str | None, *, metadata_only: bool = False
    ) -> AsyncIterator[Mapping[str, Any]]:
        """Every custom object of a kind now (in ``namespace``, or in all), a page at a time;
        ``metadata_only``: only their metadata."""


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


class _Refused(Exception):
    """The API server answered with an error status (handled inside this module)."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(f"HTTP {status} {reason}")
        self.status = status
        self.reason = reason


def _error(action: str, error: _Refused) -> KubeError:
    return KubeError(f"{action}: HTTP {error.status} {error.reason}")


# The API server gave no answer (restarting, unreachable, too slow): a KubeError like any other.
_NO_ANSWER = (aiohttp.ClientError, TimeoutError)


def _unanswered(action: str, error: BaseException) -> KubeError:
    return KubeError(f"{action}: no answer from the API server ({type(error).__name__})")


def _segment(value: str) -> str:
    """One path segment: a '/' or '..' in a name must not reach another path (another namespace's Secret)."""
    if value in ("", ".", ".."):  # a dot segment would be resolved away on the way
        raise KubeError(f"{value!r} is not the name of a Kubernetes object")
    return quote(value, safe="")


def _custom_path(plural: str, namespace: str, name: str, subresource: str = "") -> str:
    path = f"/apis/{GROUP}/{VERSION}/namespaces/{_segment(namespace)}/{plural}/{_segment(name)}"
    return path + (f"/{subresource}" if subresource else "")


def _secrets_path(namespace: str | None, name: str | None = None) -> str:
    path = f"/api/v1/namespaces/{_segment(namespace)}/secrets" if namespace is not None else "/api/v1/secrets"
    return path + (f"/{_segment(name)}" if name is not None else "")


def _secret_body(
    namespace: str,
    name: str,
    data: Mapping[str, str],
    *,
    opted_in: bool,
    owner: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """A Secret the operator makes, marked as its own (and readable by it when ``opted_in``)."""
    labels = {"app.kubernetes.io/managed-by": "druid-access-operator"}
    if opted_in:
        labels[ALLOW_LABEL] = "true"
    meta: dict[str, Any] = {"name": name, "namespace": namespace, "labels": labels}
    if owner is not None:
        meta["ownerReferences"] = [dict(owner)]
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": meta,
        "type": "Opaque",
        "stringData": dict(data),
    }


def _parsed(content: bytes) -> Any:
    try:
        return json.loads(content)
    except ValueError:  # a proxy's page, a cut answer: no usable answer, like a reset
        raise aiohttp.ClientPayloadError("the API server's answer is not JSON") from None


class Kube:
    """The operator's own calls to one API server, on one aiohttp session (JSON in and out).

    A few plain REST calls need no generated client: this module builds each path and reads
    the fields it needs from the JSON, and every failure becomes a ``KubeError``."""

    def __init__(self, connection: Connection, *, limit: int = 100) -> None:
        self._connection = connection
        # Not trust_env: proxy variables and ~/.netrc would be read in a thread on every request,
        # and kopf's watches of the same server ignore them too.
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=limit, ssl=connection.ssl_context or True),
            trust_env=False,
            read_bufsize=2**21,  # a watch event carries a whole Secret (up to 1 MiB, base64)
            timeout=_TIMEOUT,
        )

    @classmethod
    async def connect(cls, kubeconfig: str | None = None) -> Kube:
        """In-cluster credentials when running in a pod, else the kubeconfig (KUBECONFIG);
        ``KubeconfigError`` when neither can be used."""
        connection = in_cluster() if kubeconfig is None else None
        return cls(connection or from_kubeconfig(kubeconfig))

    async def close(self) -> None:
        await self._session.close()

    @contextlib.asynccontextmanager
    async def _call(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        body: Any = None,
        content_type: str = "application/json",
        accept: str = "application/json",
        stream_timeout: aiohttp.ClientTimeout | None = None,
    ) -> AsyncIterator[aiohttp.ClientResponse]:
        """One request; an error status raises ``_Refused`` with the status alone (the body may quote a Secret)."""
        headers = {"Accept": accept, "User-Agent": _USER_AGENT}
        authorization = self._connection.authorization()
        if authorization is not None:
            headers["Authorization"] = authorization
        data = None
        if body is not None:
            headers["Content-Type"] = content_type
            data = json.dumps(body).encode()
        url = self._connection.server + path + (f"?{urlencode(params)}" if params else "")
        extra: dict[str, Any] = {"timeout": stream_timeout} if stream_timeout is not None else {}
        if self._connection.tls_server_name:
            extra["server_hostname"] = self._connection.tls_server_name
        if self._connection.proxy:
            extra["proxy"] = self._connection.proxy
        async with self._session.request(
            method=method, url=url, headers=headers, data=data, **extra
        ) as response:
            if not 200 <= response.status < 300:
                await response.read()  # read to the end (the connection is kept), never kept or shown
                raise _Refused(response.status, response.reason or "")
            yield response

    async def _request(
        self, action: str, method: str, path: str, *, missing: tuple[int, ...] = (), **kwargs: Any
    ) -> Any:
        """The answer's JSON, or None when its status is one of ``missing``; every other
        failure a ``KubeError`` naming ``action``. A body is sent as a merge patch for PATCH."""
        if "body" in kwargs and method == "PATCH":
            kwargs["content_type"] = _MERGE_PATCH
        try:
            async with self._call(method, path, **kwargs) as response:
                return _parsed(await response.read())
        except _NO_ANSWER as error:
            raise _unanswered(action, error) from None
        except _Refused as error:
            if error.status in missing:
                return None
            raise _error(action, error) from None

    async def namespace_terminating(self, namespace: str) -> bool:
        """Is the namespace being deleted (or gone)? Nothing new, an Event included, can be made there."""
        path = f"/api/v1/namespaces/{_segment(namespace)}"
        found = await self._request(f"reading namespace {namespace}", "GET", path, missing=(404,))
        return found is None or (found.get("metadata") or {}).get("deletionTimestamp") is not None

    async def read_secret(self, namespace: str, name: str) -> SecretData | None:
        action = f"reading Secret {namespace}/{name}"
        secret = await self._request(action, "GET", _secrets_path(namespace, name), missing=(404,))
        return None if secret is None else _secret_data(secret)

    async def secret_labels(self, namespace: str, name: str) -> Mapping[str, str] | None:
        """A Secret's labels read from its metadata alone (no value is sent); None if absent."""
        action = f"reading metadata of Secret {namespace}/{name}"
        path = _secrets_path(namespace, name)
        body = await self._request(action, "GET", path, missing=(404,), accept=_METADATA_ONLY)
        if body is None:
            return None
        labels: Mapping[str, str] = (body.get("metadata") or {}).get("labels") or {}
        return labels

    async def read_allowed_secret(self, namespace: str, name: str) -> SecretData | None:
        """The named Secret if it carries the opt-in label, in one request the API server
        filters (name and label selectors), so an unlabelled value is never sent; else None."""
        selection = SecretSelection(namespace, name)
        action = f"reading Secret {namespace}/{name}"
        result = await self._request(action, "GET", _secrets_path(namespace), params=selection.selectors())
        return next((_secret_data(item) for item in result.get("items") or []), None)

    async def list_secrets(self, selection: SecretSelection) -> tuple[list[SecretData], str]:
        """The Secrets the API server selects and the list's resourceVersion."""
        path = _secrets_path(selection.namespace)
        result = await self._request(f"listing {selection}", "GET", path, params=selection.selectors())
        version = (result.get("metadata") or {}).get("resourceVersion", "")
        return [_secret_data(item) for item in result.get("items") or []], version

    async def watch_secrets(
        self, selection: SecretSelection, resource_version: str, timeout_seconds: int
    ) -> AsyncIterator[SecretEvent]:
        """Changes of the selected Secrets after ``resource_version``, until the server ends the watch."""
        params = {
            **selection.selectors(),
            "watch": "true",
            "resourceVersion": resource_version,
            "timeoutSeconds": str(timeout_seconds),
            "allowWatchBookmarks": "true",
        }
        # A connection that died silently must end the watch, not freeze the cache.
        timeout = aiohttp.ClientTimeout(connect=30, sock_read=timeout_seconds + 30)
        try:
            async with self._call(
                "GET", _secrets_path(selection.namespace), params=params, stream_timeout=timeout
            ) as response:
                async for line in response.content:
                    if not line.strip():
                        continue
                    event = _parsed(line)
                    kind, obj = event.get("type"), event.get("object") or {}
                    if kind == "ERROR":  # a Status in the stream: 410 when the version is too old
                        if obj.get("code") == 410:
                            raise WatchExpired()
                        raise KubeError(
                            f"watching {selection}: HTTP {obj.get('code')} {obj.get('reason', '')}".rstrip()
                        )
                    yield SecretEvent(
                        _secret_data(obj), deleted=kind == "DELETED", bookmark=kind == "BOOKMARK"
                    )
        except _NO_ANSWER as error:
            raise _unanswered(f"watching {selection}", error) from None
        except _Refused as error:
            if error.status == 410:
                raise WatchExpired() from None
            raise _error(f"watching {selection}", error) from None

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
        reference = {
            "apiVersion": owner["apiVersion"],
            "kind": owner["kind"],
            "name": meta["name"],
            "uid": meta["uid"],
            "controller": True,
            "blockOwnerDeletion": False,
        }
        body = _secret_body(namespace, name, data, opted_in=True, owner=reference)
        action = f"creating Secret {namespace}/{name}"
        created = await self._request(action, "POST", _secrets_path(namespace), missing=(409,), body=body)
        if created is None:
            return None
        return SecretData(
            name=name,
            namespace=namespace,
            resource_version=(created.get("metadata") or {}).get("resourceVersion", ""),
            values={k: SecretStr(v) for k, v in data.items()},
        )

    async def patch_status(self, plural: str, namespace: str, name: str, status: Mapping[str, Any]) -> None:
        # Gone meanwhile (404): nothing left to report on.
        action = f"writing status of {plural}/{namespace}/{name}"
        path = _custom_path(plural, namespace, name, "status")
        await self._request(action, "PATCH", path, missing=(404,), body={"status": dict(status)})

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
        path = _custom_path(plural, namespace, name)
        done = await self._request(action, "PATCH", path, missing=(404, 409), body={"metadata": dict(meta)})
        return done is not None

    async def read_or_create_key(self, namespace: str, name: str, key: str, value: str) -> SecretStr:
        """The value under ``key`` of a Secret the operator keeps for itself, made with
        ``value`` when it does not exist (several replicas racing: the first one's wins)."""
        for _ in range(2):
            found = await self.read_secret(namespace, name)
            if found is not None:
                return found.value(key)
            body = _secret_body(namespace, name, {key: value}, opted_in=False)
            action = f"creating Secret {namespace}/{name}"
            made = await self._request(action, "POST", _secrets_path(namespace), missing=(409,), body=body)
            if made is not None:  # else made by another replica meanwhile: read it
                return SecretStr(value)
        raise KubeError(f"Secret {namespace}/{name} was made and removed while it was being read")

    async def read_metadata(self, plural: str, namespace: str, name: str) -> Mapping[str, Any] | None:
        """A custom object's metadata, read now; None when it is gone."""
        found = await self._read_object(_custom_path(plural, namespace, name), f"{plural}/{namespace}/{name}")
        meta = found.get("metadata") if isinstance(found, Mapping) else None
        return meta if isinstance(meta, Mapping) else None

    async def list_objects(
        self, plural: str, namespace: str | None, *, metadata_only: bool = False
    ) -> AsyncIterator[Mapping[str, Any]]:
        """Every custom object of a kind, read now, in pages of ``LIST_PAGE`` (only a page's
        bodies are held at once); ``metadata_only``: the API server sends only their metadata."""
        where = f"/namespaces/{_segment(namespace)}" if namespace is not None else ""
        path = f"/apis/{GROUP}/{VERSION}{where}/{plural}"
        params = {"limit": str(LIST_PAGE)}
        accept = _METADATA_LIST if metadata_only else "application/json"
        while True:
            page = await self._request(f"listing {plural}", "GET", path, params=params, accept=accept)
            for item in page.get("items") or ():
                yield item
            token = (page.get("metadata") or {}).get("continue")
            if not token:
                return
            params = {"limit": str(LIST_PAGE), "continue": token}

    async def read_peering(self, name: str, namespace: str | None) -> Mapping[str, Any] | None:
        """The peers kopf recorded in a KopfPeering (in ``namespace``) or ClusterKopfPeering."""
        if namespace is None:
            where, path = (
                f"ClusterKopfPeering {name}",
                f"/apis/kopf.dev/v1/clusterkopfpeerings/{_segment(name)}",
            )
        else:
            where = f"KopfPeering {namespace}/{name}"
            path = f"/apis/kopf.dev/v1/namespaces/{_segment(namespace)}/kopfpeerings/{_segment(name)}"
        found = await self._read_object(path, where)
        status = found.get("status") if isinstance(found, Mapping) else None
        return status if isinstance(status, Mapping) else None

    async def _read_object(self, path: str, what: str) -> Any:
        """An object read now; None when it is gone."""
        return await self._request(f"reading {what}", "GET", path, missing=(404,))
