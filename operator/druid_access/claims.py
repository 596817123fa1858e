"""Ownership claims not yet recorded in a resource's status: a sealed annotation on the object.

Before its first remote write (for a new object created without reading: right after the
creates that proved its name free, before anything else), a resource must be known as the
creator even if the operator dies before the status saying ``owned: true`` is written;
otherwise the next pass would take the object it made for a pre-existing one. The claim is written in the same patch that puts
the operator's finalizer on (a write the object needs anyway), as the annotation
``ANNOTATION``: an HMAC of the object's uid under a key only the operator reads (the Secret
``KEY_SECRET`` in its own namespace, made on first use). A tenant can write annotations on its
own objects but cannot compute the seal, so it cannot forge a claim to take over a remote
object that its namespace may not adopt; a seal copied from another object does not match
this one's uid. (The target and the remote name of a uid never change: the CRD schema makes
them immutable.) A withdrawn claim is outweighed by the status (``Engine.owned``).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import secrets
from collections.abc import Mapping
from typing import Any

from druid_access.kube import KubeApi, KubeError, SecretMissing
from druid_access.models import GROUP

ANNOTATION = f"{GROUP}/claim"
KEY_SECRET = "druid-access-claim-key"
KEY_FIELD = "key"
MIN_KEY_LENGTH = 32


class ClaimKeyMissing(KubeError):
    """The key could not be read: no pass may decide whether a claim holds until it is."""


class Claims:
    def __init__(self, kube: KubeApi, namespace: str) -> None:
        self._kube = kube
        self._namespace = namespace
        self._key: bytes | None = None
        self._loading = asyncio.Lock()
        # Claims written by this process, until the watch brings them (the seal is checked then).
        self._made: set[str] = set()
        # Claims withdrawn (the name turned out to be taken) while the annotation may still be
        # on the object: they never count, whatever the object says.
        self._withdrawn: set[str] = set()

    @property
    def loaded(self) -> bool:
        return self._key is not None

    async def load(self) -> None:
        """Read the key, or make it: before any pass (a claim on an object cannot be judged
        without it, and taking it for no claim would orphan the remote object)."""
        async with self._loading:
            if self._key is None:
                fresh = secrets.token_hex(32)
                try:
                    key = await self._kube.read_or_create_key(self._namespace, KEY_SECRET, KEY_FIELD, fresh)
                except SecretMissing as error:
                    raise ClaimKeyMissing(str(error)) from None
                if len(key.get_secret_value()) < MIN_KEY_LENGTH:
                    raise ClaimKeyMissing(
                        f"Secret {self._namespace}/{KEY_SECRET}: key {KEY_FIELD!r} is shorter than "
                        f"{MIN_KEY_LENGTH} characters"
                    )
                self._key = key.get_secret_value().encode()

    def _seal(self, uid: str) -> str:
        if self._key is None:
            raise RuntimeError("the claim key is not loaded")
        return hmac.new(self._key, f"{GROUP} claim {uid}".encode(), hashlib.sha256).hexdigest()

    def holds(self, meta: Mapping[str, Any]) -> bool:
        uid = meta["uid"]
        if uid in self._withdrawn:
            return False
        if uid in self._made:
            return True
        sealed = (meta.get("annotations") or {}).get(ANNOTATION)
        if not isinstance(sealed, str):
            return False
        if self._key is None:
            raise ClaimKeyMissing("the key of the ownership claims is not loaded")
        return hmac.compare_digest(sealed.encode(), self._seal(uid).encode())

    async def annotation(self, uid: str) -> dict[str, str]:
        """The annotation to write with the finalizer."""
        await self.load()
        return {ANNOTATION: self._seal(uid)}

    def made(self, uid: str) -> None:
        self._withdrawn.discard(uid)
        self._made.add(uid)

    async def withdraw(self, meta: Mapping[str, Any], plural: str) -> None:
        """The create found the name taken: the remote object is someone else's."""
        uid = meta["uid"]
        self._made.discard(uid)
        self._withdrawn.add(uid)
        await self._kube.remove_annotation(plural, meta["namespace"], meta["name"], ANNOTATION)
        # Kept in _withdrawn: the watch may still bring a version with the annotation.

    def forget(self, uid: str) -> None:
        """The status holds the claim now, or the resource is gone."""
        self._made.discard(uid)
        self._withdrawn.discard(uid)
