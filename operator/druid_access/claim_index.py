"""Who claims which remote name: per kind, (target, remote name) -> the resources claiming it.

The oldest claimant owns the name (``reconcile.Subject.owner_elsewhere``). The index is kept
from the watch events (``handlers``: each event replaces what its object claims, a deletion
takes it out) and, once, at the first watch event, from a list of every object
(``passes.App.list_claims``): the watch hands over the objects that exist one by one, and the
first pass of one must already know an older claimant that the watch has not handed over yet.
What a later list finds gone is taken out too (``passes.App.sweep``: a deletion the watch never
told of). kopf could keep it as one of its indices, but its handler machinery around each call was a
tenth of the operator's event-loop samples while 10,000 objects converged (its CPU fell by 2 to
5 % without it: ``docs/scale.md``).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from druid_access.claims import ClaimKeyMissing
from druid_access.reconcile import Claimant, ClaimLookup, Engine, Subject, admission
from druid_access.resources.base import AnyKind, Claim

log = logging.getLogger("druid_access.claim_index")

Key = tuple[str, str, str]  # (kind, target, remote name)


def claimant_of(engine: Engine, kind: AnyKind, body: Mapping[str, Any]) -> tuple[Key, Claimant] | None:
    """What the object claims, or None: a spec that does not parse, or a resource admission
    refuses on its target, claims nothing there. Never raises: what it cannot work out (a
    bug) is logged, and counts as None."""
    try:
        return _claimant(engine, kind, body)
    except ValueError:
        return None
    except Exception as error:  # a bug must not stop the watch or the list
        meta = body.get("metadata") or {}
        log.error(
            "%s %s/%s: its claim could not be worked out: %s",
            kind.info.kind,
            meta.get("namespace"),
            meta.get("name"),
            type(error).__name__,
        )
        return None


def _claimant(engine: Engine, kind: AnyKind, body: Mapping[str, Any]) -> tuple[Key, Claimant] | None:
    subject = Subject.of(kind, body)
    meta = subject.meta
    try:
        owned = engine.owned(body)
    except ClaimKeyMissing:  # claimed again with the object's next event
        owned = False
    target = engine.target_config(kind, subject.target)
    if admission(kind, subject.spec, meta, target, owned=owned) is not None:
        return None
    claimant = Claimant(
        created=meta.get("creationTimestamp") or "",
        namespace=meta["namespace"],
        name=meta["name"],
        uid=meta["uid"],
    )
    return (kind.info.kind, subject.target, subject.name), claimant


class ClaimIndex:
    """The claimants of each remote name, and what each object (by uid) claims."""

    def __init__(self) -> None:
        self._claimants: dict[Key, dict[str, Claimant]] = {}
        self._claimed: dict[str, Key] = {}
        # While lists are read: per list, the objects a watch event told of meanwhile (the
        # list's word on them may be older).
        self._told: list[set[str]] = []

    def __len__(self) -> int:
        return len(self._claimed)

    def uids(self, kind: str) -> set[str]:
        """The objects of ``kind`` that claim a name."""
        return {uid for uid, key in self._claimed.items() if key[0] == kind}

    @contextlib.contextmanager
    def watching(self) -> Iterator[set[str]]:
        """The objects a watch event tells of (``put`` or ``discard``) while in the block."""
        told: set[str] = set()
        self._told.append(told)
        try:
            yield told
        finally:
            self._told = [t for t in self._told if t is not told]  # by identity: sets compare equal

    @contextlib.contextmanager
    def listing(self) -> Iterator[Callable[[str, tuple[Key, Claimant] | None], None]]:
        """Put what a list says, except of the objects a watch event told of since it began."""
        with self.watching() as told:

            def put(uid: str, claim: tuple[Key, Claimant] | None) -> None:
                if uid not in told:
                    self._replace(uid, claim)

            yield put

    def put(self, uid: str, claim: tuple[Key, Claimant] | None) -> None:
        """What the object with ``uid`` claims now, replacing what it did. None (refused, or a
        spec that does not parse) claims nothing new and keeps what it claimed: ownership
        does not move to a younger claimant because the owner is refused for a while. Only
        its deletion (``discard``) frees the name."""
        self._tell(uid)
        self._replace(uid, claim)

    def discard(self, uid: str) -> None:
        """The object is gone: it claims nothing."""
        self._tell(uid)
        self._remove(uid)

    def _tell(self, uid: str) -> None:
        for told in self._told:
            told.add(uid)

    def _replace(self, uid: str, claim: tuple[Key, Claimant] | None) -> None:
        if claim is None:
            return
        if self._claimed.get(uid) != claim[0]:
            self._remove(uid)
        self._claimants.setdefault(claim[0], {})[uid] = claim[1]
        self._claimed[uid] = claim[0]

    def _remove(self, uid: str) -> None:
        key = self._claimed.pop(uid, None)
        if key is None:
            return
        claimants = self._claimants.get(key)
        if claimants is not None:
            claimants.pop(uid, None)
            if not claimants:
                del self._claimants[key]

    def rivals(self, uid: str) -> list[tuple[str, str, str]]:
        """The other objects (kind, namespace, name) claiming the name that ``uid`` claims."""
        key = self._claimed.get(uid)
        if key is None:
            return []
        return [(key[0], c.namespace, c.name) for u, c in self._claimants.get(key, {}).items() if u != uid]

    def lookup(self, kind: str) -> ClaimLookup:
        """The claimants of a kind's claim, oldest or not, in no particular order."""

        def claimants(claim: Claim) -> list[Claimant]:
            return list(self._claimants.get((kind, claim.target, claim.remote_name), {}).values())

        return claimants
