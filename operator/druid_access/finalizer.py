"""The operator's finalizer: on an object before it owns anything remote, off after its deletion.

The operator keeps its finalizer itself rather than through a kopf deletion handler: kopf
holds every deletion in flight as a handler call with the object's body until it is done,
and deletions to one target are serialised, so deleting thousands of objects at once held
thousands of bodies (about 90 KiB each). Here a deletion waits as a key in the work queue
like any pass.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from druid_access.kube import KubeApi
from druid_access.models import GROUP

FINALIZER = f"{GROUP}/finalizer"
# kopf removes its own finalizer from every object no kopf handler needs one for. None of
# this operator's does, so kopf's is given a name no object carries, and it leaves ours alone.
KOPF_FINALIZER = f"{GROUP}/kopf"
_ATTEMPTS = 3  # reads of a newer version before giving up to the next pass


def held(meta: Mapping[str, Any]) -> bool:
    return FINALIZER in (meta.get("finalizers") or ())


async def hold(
    kube: KubeApi, plural: str, meta: Mapping[str, Any], annotations: Mapping[str, str] | None = None
) -> bool:
    """Put the finalizer on (and ``annotations``, in the same write): from then on, a deletion
    of the object waits for the operator.

    ``meta`` may be older than the object (the watch lags): a newer version is read when the
    write finds one. False when the object is gone or being deleted (nothing may be created
    for it then), or kept changing under us."""
    return await _change(kube, plural, meta, add=True, annotations=annotations)


async def release(kube: KubeApi, plural: str, meta: Mapping[str, Any]) -> bool:
    """Take the finalizer off, keeping any other controller's. False if the object kept
    changing under us (the caller tries again later)."""
    return await _change(kube, plural, meta, add=False)


async def _change(
    kube: KubeApi,
    plural: str,
    meta: Mapping[str, Any],
    *,
    add: bool,
    annotations: Mapping[str, str] | None = None,
) -> bool:
    namespace, name = meta["namespace"], meta["name"]
    current: Mapping[str, Any] | None = meta
    for _ in range(_ATTEMPTS):
        if current is None:
            return not add  # gone
        if add and current.get("deletionTimestamp"):
            return False  # the API server refuses new finalizers now, and its deletion comes next
        present = current.get("annotations") or {}
        if held(current) == add and all(present.get(k) == v for k, v in (annotations or {}).items()):
            return True  # done already
        others = [f for f in current.get("finalizers") or () if f != FINALIZER]
        wanted = [*others, FINALIZER] if add else others
        version = current["resourceVersion"]
        if await kube.set_finalizers(plural, namespace, name, wanted, version, annotations):
            return True
        current = await kube.read_metadata(plural, namespace, name)
    return False
