"""Which replica is active, read from kopf's peering objects by kopf's own rule.

With ``--peering``, kopf pauses its watches while another live replica has a higher (or the
same) priority, and resumes when none has. The work queue and the resync timers are this
operator's, not kopf's: a replica outranked while it was active would go on reconciling next
to the new active one. So each replica reads the peering objects every ``POLL`` seconds and
pauses its own loops by the same rule: another peer, not expired (``lastseen`` + ``lifetime``
still ahead), with a priority at least its own. Before it resumes, the operator forgets what
was deleted meanwhile (``passes.App.catch_up``): kopf's watches list again then, and tell no
deletion.
"""

from __future__ import annotations

import asyncio
import datetime
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

from druid_access.kube import Kube, KubeError
from druid_access.loops import Loops

log = logging.getLogger("druid_access.peering")

POLL = 3.0


def outranked(
    status: Mapping[str, Any] | None, identity: str, priority: int, now: datetime.datetime
) -> list[str]:
    """The live peers (other than ``identity``) whose priority is at least ``priority``."""
    found = []
    for peer, info in (status or {}).items():
        if peer == identity or not isinstance(info, Mapping):
            continue
        try:
            seen = datetime.datetime.fromisoformat(str(info["lastseen"]))
            lifetime = datetime.timedelta(seconds=int(info.get("lifetime", 60)))
            their = int(info.get("priority", 0))
        except (KeyError, TypeError, ValueError):
            continue  # not a peer entry kopf would write
        if seen.tzinfo is None:
            seen = seen.replace(tzinfo=datetime.UTC)
        if seen + lifetime > now and their >= priority:
            found.append(peer)
    return sorted(found)


async def follow(
    kube: Kube,
    loops: Loops,
    *,
    name: str,
    namespaces: Sequence[str] | None,
    identity: str,
    priority: int,
    catch_up: Callable[[], Awaitable[None]] | None = None,
) -> None:
    """Pause ``loops`` while a peering object (one per namespace, or the cluster's with
    ``namespaces`` None) shows this replica outranked; resume when none does, after
    ``catch_up`` (what changed while paused). Runs until cancelled; a failed read, or a
    ``catch_up`` that fails, keeps the state as it was."""
    scopes: Sequence[str | None] = list(namespaces) if namespaces is not None else [None]
    while True:
        try:
            now = datetime.datetime.now(datetime.UTC)
            above: list[str] = []
            for namespace in scopes:
                status = await kube.read_peering(name, namespace)
                above += outranked(status, identity, priority, now)
            if above and not loops.paused:
                log.info("another replica is active (%s): workers and resyncs paused", ", ".join(above))
                loops.pause()
            # Still paused when catching up fails: tried again at the next poll.
            elif not above and loops.paused and (catch_up is None or await _caught_up(catch_up)):
                log.info("this replica is the active one: workers and resyncs resumed")
                loops.resume()
        except KubeError as error:
            log.debug("reading peering %r: %s", name, error)
        await asyncio.sleep(POLL)


async def _caught_up(catch_up: Callable[[], Awaitable[None]]) -> bool:
    try:
        await catch_up()
    except Exception as error:  # KubeError, or a bug (named, not quoted): the replica stays paused
        said = error if isinstance(error, KubeError) else type(error).__name__
        log.warning("could not catch up before resuming (still paused): %s", said)
        return False
    return True
