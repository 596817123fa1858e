"""``MemoryKube``: an in-memory Kubernetes implementing ``druid_access.kube.KubeApi``.

Stateful the way the API server is for what the operator asks of it:

- Secrets with labels, values and a resourceVersion (one counter for every object, as etcd's);
  ``read_allowed_secret`` and the list and watch select on the opt-in label, and a Secret made
  by ``create_generated_secret`` is labelled and owned like the real one;
- custom objects (``put_object``) with uid, generation (bumped when the spec changes),
  resourceVersion, finalizers and annotations; ``set_finalizers`` honours its resourceVersion
  precondition, and every status patch is recorded (``status_patches``) and merged into the
  stored object as a JSON merge patch;
- namespaces, which may be terminating (``terminate``) or absent (counted as terminating);
- the operator's claim key Secret (``read_or_create_key``).

Every call is logged in ``calls`` as ``(method, *names)``. ``fail(method)`` makes the next calls
of that method (``times`` of them, or all) raise ``KubeError`` as the real client words it.
"""

from __future__ import annotations

import asyncio
import copy
import itertools
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pydantic import SecretStr

from druid_access.kube import (
    KubeError,
    SecretData,
    SecretEvent,
    SecretSelection,
    generate_password,
)
from druid_access.models import ALLOW_LABEL, API_VERSION

if TYPE_CHECKING:
    from druid_access.kube import KubeApi

# The calls that change something on the API server.
WRITES = frozenset(
    {"create_generated_secret", "patch_status", "set_finalizers", "remove_annotation", "create_key"}
)


@dataclass
class StoredSecret:
    namespace: str
    name: str
    data: dict[str, str | bytes]  # bytes: a value that is not UTF-8 text
    labels: dict[str, str]
    resource_version: str
    owner_references: list[dict[str, Any]] = field(default_factory=list)

    @property
    def allowed(self) -> bool:
        return self.labels.get(ALLOW_LABEL) == "true"

    def view(self) -> SecretData:
        values, binary = {}, set()
        for key, value in self.data.items():
            if isinstance(value, bytes):
                try:
                    values[key] = SecretStr(value.decode("utf-8"))
                except UnicodeDecodeError:
                    binary.add(key)
            else:
                values[key] = SecretStr(value)
        return SecretData(
            name=self.name,
            namespace=self.namespace,
            resource_version=self.resource_version,
            values=values,
            not_text=frozenset(binary),
        )


@dataclass
class _Failure:
    error: KubeError
    times: int | None  # None: until healed


def merge_patch(target: dict[str, Any], patch: Mapping[str, Any]) -> None:
    """RFC 7386: ``None`` removes a key, a mapping merges into a mapping, the rest replaces."""
    for key, value in patch.items():
        if value is None:
            target.pop(key, None)
        elif isinstance(value, Mapping) and isinstance(target.get(key), dict):
            merge_patch(target[key], value)
        else:
            target[key] = copy.deepcopy(dict(value) if isinstance(value, Mapping) else value)


class MemoryKube:
    """See the module docstring."""

    def __init__(self) -> None:
        self._versions = itertools.count(1)
        self._uids = itertools.count(1)
        self.secrets: dict[tuple[str, str], StoredSecret] = {}
        self.objects: dict[tuple[str, str, str], dict[str, Any]] = {}
        self.namespaces: dict[str, bool] = {}  # name -> terminating
        self.calls: list[tuple[str, ...]] = []
        self.status_patches: list[tuple[str, str, str, dict[str, Any]]] = []
        self._failures: dict[str, _Failure] = {}
        self._secret_log: list[tuple[int, SecretEvent, dict[str, str]]] = []
        self._watchers: set[asyncio.Event] = set()

    # -- state, set up by tests (no call is logged) -----------------------------------------------

    def _version(self) -> str:
        return str(next(self._versions))

    def put_secret(
        self,
        namespace: str,
        name: str,
        data: Mapping[str, str | bytes],
        *,
        allowed: bool = True,
        labels: Mapping[str, str] | None = None,
    ) -> SecretData:
        """Create or replace a Secret (a new resourceVersion either way)."""
        all_labels = dict(labels or {})
        if allowed:
            all_labels[ALLOW_LABEL] = "true"
        self.namespaces.setdefault(namespace, False)
        stored = StoredSecret(namespace, name, dict(data), all_labels, self._version())
        self.secrets[(namespace, name)] = stored
        self._secret_changed(stored, deleted=False)
        return stored.view()

    def delete_secret(self, namespace: str, name: str) -> None:
        stored = self.secrets.pop((namespace, name))
        stored.resource_version = self._version()
        self._secret_changed(stored, deleted=True)

    def put_object(self, plural: str, body: Mapping[str, Any]) -> dict[str, Any]:
        """Create a custom object, or update one's spec, metadata and status as given: the
        uid, resourceVersion, generation and creationTimestamp are the server's."""
        meta = body["metadata"]
        key = (plural, meta["namespace"], meta["name"])
        self.namespaces.setdefault(meta["namespace"], False)
        stored = self.objects.get(key)
        new = copy.deepcopy(dict(body))
        if stored is None:
            serial = next(self._uids)
            new["metadata"].update(
                uid=f"uid-{serial:04d}",
                generation=1,
                creationTimestamp=f"2026-01-01T00:{serial // 60:02d}:{serial % 60:02d}Z",
            )
        else:
            for fixed in ("uid", "creationTimestamp", "generation"):
                new["metadata"][fixed] = stored["metadata"][fixed]
            if new.get("spec") != stored.get("spec"):
                new["metadata"]["generation"] += 1
        new["metadata"]["resourceVersion"] = self._version()
        self.objects[key] = new
        return copy.deepcopy(new)

    def object(self, plural: str, namespace: str, name: str) -> dict[str, Any]:
        """The stored object, as a watch would bring it (a copy)."""
        return copy.deepcopy(self.objects[(plural, namespace, name)])

    def delete_object(self, plural: str, namespace: str, name: str) -> dict[str, Any]:
        """Mark it deleted (``deletionTimestamp``); it goes once no finalizer holds it."""
        stored = self.objects[(plural, namespace, name)]
        stored["metadata"]["deletionTimestamp"] = "2026-01-02T00:00:00Z"
        stored["metadata"]["resourceVersion"] = self._version()
        self._collect((plural, namespace, name))
        return copy.deepcopy(stored)

    def terminate(self, namespace: str) -> None:
        self.namespaces[namespace] = True

    def fail(self, method: str, *, times: int | None = None, status: int = 500) -> None:
        """Make the next ``times`` calls of ``method`` (None: every one until ``heal``) fail."""
        reason = {403: "Forbidden", 409: "Conflict", 500: "Internal Server Error"}.get(status, "Error")
        self._failures[method] = _Failure(KubeError(f"{method}: HTTP {status} {reason}"), times)

    def heal(self, method: str | None = None) -> None:
        if method is None:
            self._failures.clear()
        else:
            self._failures.pop(method, None)

    def count(self, method: str) -> int:
        return sum(1 for call in self.calls if call[0] == method)

    def writes(self) -> list[tuple[str, ...]]:
        return [call for call in self.calls if call[0] in WRITES]

    # -- bookkeeping ------------------------------------------------------------------------------

    def _call(self, method: str, *names: str) -> None:
        self.calls.append((method, *names))
        failure = self._failures.get(method)
        if failure is None:
            return
        if failure.times is not None:
            failure.times -= 1
            if failure.times <= 0:
                del self._failures[method]
        raise failure.error

    def _secret_changed(self, stored: StoredSecret, *, deleted: bool) -> None:
        event = SecretEvent(stored.view(), deleted=deleted)
        self._secret_log.append((int(stored.resource_version), event, dict(stored.labels)))
        for watcher in self._watchers:
            watcher.set()

    def _collect(self, key: tuple[str, str, str]) -> None:
        """A deleted object without finalizers is gone."""
        meta = self.objects[key]["metadata"]
        if meta.get("deletionTimestamp") and not meta.get("finalizers"):
            del self.objects[key]

    def _stored(self, plural: str, namespace: str, name: str) -> dict[str, Any] | None:
        return self.objects.get((plural, namespace, name))

    # -- KubeApi ----------------------------------------------------------------------------------

    async def namespace_terminating(self, namespace: str) -> bool:
        self._call("namespace_terminating", namespace)
        return self.namespaces.get(namespace, True)

    async def read_secret(self, namespace: str, name: str) -> SecretData | None:
        self._call("read_secret", namespace, name)
        stored = self.secrets.get((namespace, name))
        return stored.view() if stored is not None else None

    async def secret_labels(self, namespace: str, name: str) -> Mapping[str, str] | None:
        self._call("secret_labels", namespace, name)
        stored = self.secrets.get((namespace, name))
        return dict(stored.labels) if stored is not None else None

    async def read_allowed_secret(self, namespace: str, name: str) -> SecretData | None:
        self._call("read_allowed_secret", namespace, name)
        stored = self.secrets.get((namespace, name))
        return stored.view() if stored is not None and stored.allowed else None

    async def list_secrets(self, selection: SecretSelection) -> tuple[list[SecretData], str]:
        self._call("list_secrets", str(selection))
        found = [
            s.view()
            for s in self.secrets.values()
            if selection.covers(s.namespace, s.name) and (s.allowed or not selection.opted_in)
        ]
        return found, str(self._secret_log[-1][0] if self._secret_log else 0)

    async def watch_secrets(
        self, selection: SecretSelection, resource_version: str, timeout_seconds: int
    ) -> AsyncIterator[SecretEvent]:
        self._call("watch_secrets", str(selection), resource_version)
        since = int(resource_version or 0)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_seconds
        changed = asyncio.Event()
        self._watchers.add(changed)
        try:
            while True:
                changed.clear()
                for version, event, labels in list(self._secret_log):
                    secret = event.secret
                    if version <= since or not selection.covers(secret.namespace, secret.name):
                        continue
                    since = version
                    # A Secret that lost the label left the selection: the server says DELETED.
                    left = selection.opted_in and labels.get(ALLOW_LABEL) != "true"
                    yield SecretEvent(secret, deleted=True) if left else event
                try:
                    await asyncio.wait_for(changed.wait(), max(0.0, deadline - loop.time()))
                except TimeoutError:
                    return  # the server ends every watch after its timeout
        finally:
            self._watchers.discard(changed)

    async def create_generated_secret(
        self,
        namespace: str,
        name: str,
        key: str,
        owner: Mapping[str, Any],
        extra: Mapping[str, str] | None = None,
    ) -> SecretData | None:
        self._call("create_generated_secret", namespace, name)
        if (namespace, name) in self.secrets:
            return None  # 409: never overwritten
        meta = owner["metadata"]
        reference = {
            "apiVersion": owner.get("apiVersion", API_VERSION),
            "kind": owner["kind"],
            "name": meta["name"],
            "uid": meta["uid"],
            "controller": True,
            "blockOwnerDeletion": False,
        }
        self.put_secret(
            namespace,
            name,
            {**(extra or {}), key: generate_password()},
            labels={"app.kubernetes.io/managed-by": "druid-access-operator"},
        )
        stored = self.secrets[(namespace, name)]
        stored.owner_references.append(reference)
        return stored.view()

    async def patch_status(self, plural: str, namespace: str, name: str, status: Mapping[str, Any]) -> None:
        self._call("patch_status", plural, namespace, name)
        stored = self._stored(plural, namespace, name)
        if stored is None:
            return  # 404: deleted meanwhile
        self.status_patches.append((plural, namespace, name, copy.deepcopy(dict(status))))
        merge_patch(stored, {"status": status})
        stored["metadata"]["resourceVersion"] = self._version()

    async def set_finalizers(
        self,
        plural: str,
        namespace: str,
        name: str,
        finalizers: list[str],
        resource_version: str,
        annotations: Mapping[str, str] | None = None,
    ) -> bool:
        self._call("set_finalizers", plural, namespace, name)
        stored = self._stored(plural, namespace, name)
        if stored is None or stored["metadata"]["resourceVersion"] != resource_version:
            return False  # 404 or 409
        meta = stored["metadata"]
        if finalizers:
            meta["finalizers"] = list(finalizers)
        else:
            meta.pop("finalizers", None)
        if annotations:
            meta.setdefault("annotations", {}).update(annotations)
        meta["resourceVersion"] = self._version()
        self._collect((plural, namespace, name))
        return True

    async def remove_annotation(self, plural: str, namespace: str, name: str, annotation: str) -> None:
        self._call("remove_annotation", plural, namespace, name, annotation)
        stored = self._stored(plural, namespace, name)
        if stored is None:
            return
        (stored["metadata"].get("annotations") or {}).pop(annotation, None)
        stored["metadata"]["resourceVersion"] = self._version()

    async def read_or_create_key(self, namespace: str, name: str, key: str, value: str) -> SecretStr:
        self._call("read_or_create_key", namespace, name)
        stored = self.secrets.get((namespace, name))
        if stored is None:
            self._call("create_key", namespace, name)
            managed = {"app.kubernetes.io/managed-by": "druid-access-operator"}
            return self.put_secret(namespace, name, {key: value}, allowed=False, labels=managed).value(key)
        return stored.view().value(key)

    async def read_metadata(self, plural: str, namespace: str, name: str) -> Mapping[str, Any] | None:
        self._call("read_metadata", plural, namespace, name)
        stored = self._stored(plural, namespace, name)
        return copy.deepcopy(stored["metadata"]) if stored is not None else None

    async def list_objects(
        self, plural: str, namespace: str | None, *, metadata_only: bool = False
    ) -> AsyncIterator[Mapping[str, Any]]:
        self._call("list_objects", plural, namespace or "")
        listed = [
            copy.deepcopy({"metadata": body["metadata"]} if metadata_only else body)
            for (kind, where, _), body in sorted(self.objects.items())
            if kind == plural and namespace in (None, where)
        ]
        for body in listed:
            yield body


if TYPE_CHECKING:
    _conforms: KubeApi = MemoryKube()
