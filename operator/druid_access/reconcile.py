"""The engine: one pass over one object, the same for every kind, and the one deletion path.

``Loops`` (loops.py) decides when an object gets a pass and ``passes`` runs it; this is what
the pass does:

    spec -> guards (target, tenancy, protection, privilege, adoption, suspension, ownership)
         -> desired (spec + opted-in Secret values) -> observed (reads) -> plan (pure)
         -> apply (writes, serialised per store of a target) -> Outcome -> status

Guards run before any remote call, so a refused object costs the target nothing. Every
failure ends as an ``Outcome`` with a specific reason; nothing here raises to its caller
except ``DeletionBlocked`` from ``finalize``, which the deletion pass turns into a status and
a retry. This module knows no kopf: events leave
through ``Emit`` and claims arrive through ``ClaimLookup``.
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pydantic import SecretStr, ValidationError

from druid_access import metrics
from druid_access.claims import Claims
from druid_access.clients import errors as api
from druid_access.clients.error_types import NotSent
from druid_access.config import ClusterConfig, PivotConfig
from druid_access.kube import KubeApi, KubeError, SecretMissing, SecretNotAllowed
from druid_access.models import AdoptionPolicy, DeletionPolicy, DriftPolicy, validation_message
from druid_access.observation import lane as lane_of
from druid_access.refs import Refs
from druid_access.resources.base import AnyKind, Claim, Create, InvalidSpecError, SecretNeed, granted_roles
from druid_access.resources.role import security_administering
from druid_access.secret_store import SecretStore
from druid_access.status import Outcome, Reason, StatusBuilder, ready_condition, status_patch
from druid_access.targets import Targets, label

log = logging.getLogger("druid_access.reconcile")

Emit = Callable[[str, str, str], None]
"""(type Normal|Warning, reason, message) -> posts a Kubernetes Event for the object."""


RETRYABLE = frozenset(reason for reason in Reason if reason.retryable)


@dataclass(frozen=True, order=True)
class Claimant:
    """A resource claiming a remote name; the oldest one owns it."""

    created: str
    namespace: str
    name: str
    uid: str = field(compare=False)


ClaimLookup = Callable[[Claim], Sequence[Claimant]]

RolesComing = Callable[[str, frozenset[str]], frozenset[str]]
"""(cluster, roles) -> those of the roles a DruidRole is about to create there."""
# Puts the operator's finalizer on the object, with these annotations in the same write; False
# when the object changed or went meanwhile.
Hold = Callable[[Mapping[str, str]], Awaitable[bool]]


@dataclass(frozen=True)
class Subject:
    """An object as a pass sees it: its spec parsed once, and the names the spec gives."""

    kind: AnyKind
    meta: Mapping[str, Any]
    spec: Any
    name: str  # on the target
    target: str

    @classmethod
    def of(cls, kind: AnyKind, body: Mapping[str, Any]) -> Subject:
        """Raises ``pydantic.ValidationError`` for a spec the model refuses."""
        spec = kind.spec_model(body.get("spec") or {})
        meta = body["metadata"]
        return cls(kind, meta, spec, kind.remote_name(spec, meta["name"]), kind.target_name(spec))

    @property
    def claim(self) -> Claim:
        return Claim(self.kind.family, self.target, self.name)

    def owner_elsewhere(self, claims: ClaimLookup) -> Claimant | None:
        """The older resource that owns this object's remote name, if it is not this one."""
        owner = _owner(claims(self.claim))
        return owner if owner is not None and owner.uid != self.meta["uid"] else None


@dataclass(frozen=True)
class Result:
    outcome: Outcome
    refs: Refs
    # The number of the target's snapshot that alone showed this object in sync, with nothing
    # to write: until that entry changes in a later snapshot, a resync has nothing to do here.
    confirmed: int = 0
    # Nothing was read or written: roles it needs are about to be created; pass again then.
    postponed: bool = False


@dataclass(frozen=True)
class _Rejection:
    """A write Druid or Pivot refused as invalid (400), and the inputs it was refused for."""

    generation: int | None
    secret_version: str | None
    message: str


@dataclass
class Engine:
    """Shared state of the passes: targets, Secrets and the Kubernetes client.

    ``_rejected`` is in memory on purpose: a request refused as invalid is not sent again
    until the spec or a referenced Secret changes, or the operator restarts (as it does
    when its configuration changes).
    """

    targets: Targets
    kube: KubeApi
    secrets: SecretStore
    claims: Claims
    _rejected: dict[str, _Rejection] = field(default_factory=dict)
    # Objects a pass tried to create without reading, and had to undo: they read first from
    # then on, so an object that keeps failing there does not make and remove it again and again.
    _read_first: set[str] = field(default_factory=set)

    def owned(self, body: Mapping[str, Any]) -> bool:
        """Did this resource create or adopt its remote object? Its status says so, or, until
        the status is written, the claim recorded before its writes (or, for a new object
        created without reading, right after the creates that proved its name free) does.

        A status saying ``owned: false`` (the name was found taken, or the target refused the
        first create of a pass that claimed it, so nothing was made) outweighs any claim on the
        object: only the operator writes the status, while a tenant could put back a claim it
        saw before it was withdrawn."""
        owned = (body.get("status") or {}).get("owned")
        return owned if isinstance(owned, bool) else self.claims.holds(body["metadata"])

    def target_config(self, kind: AnyKind, name: str) -> ClusterConfig | PivotConfig | None:
        return self.targets.config_of(kind.target_type, name)

    async def _resolve(
        self, needs: Sequence[SecretNeed], body: Mapping[str, Any], consumer: Mapping[str, str]
    ) -> tuple[dict[tuple[str, str], SecretStr], str | None]:
        """The values of the Secrets a spec names, and their versions. A Secret to generate is
        created with ``consumer``'s keys beside the password (what applications mount)."""
        namespace = body["metadata"]["namespace"]
        values: dict[tuple[str, str], SecretStr] = {}
        versions = []
        for need in needs:
            ref = need.ref
            secret = await self.secrets.get(namespace, ref.name)
            if secret is None and need.generate:
                secret = await self.kube.create_generated_secret(namespace, ref.name, ref.key, body, consumer)
                if secret is None:  # created by someone else meanwhile: read it like any other
                    secret = await self.secrets.get(namespace, ref.name)
                else:
                    log.info("%s: generated a password into Secret %s/%s", _ident(body), namespace, ref.name)
            if secret is None:
                raise SecretMissing(namespace, ref.name)
            values[(ref.name, ref.key)] = secret.value(ref.key)
            versions.append(f"{ref.name}@{secret.resource_version}")
        return values, ",".join(sorted(set(versions))) or None

    async def reconcile(
        self,
        kind: AnyKind,
        body: Mapping[str, Any],
        claims: ClaimLookup,
        emit: Emit,
        *,
        bulk: bool = False,
        roles_coming: RolesComing | None = None,
        hold: Hold,
    ) -> Result:
        """One pass. ``bulk``: observe through the target's snapshot (a timer pass), else live.

        ``roles_coming``: postpone the pass (no read, no write, no status) while a role it
        needs is about to be created, so that it writes everything in one go once the role
        is there, instead of a ``RoleNotFound`` status and Event first.

        ``hold``: called before the object owns anything remote (before its first write, its
        adoption, or a pass on what it owns; for a new object created without reading, right
        after its creates), so that its deletion waits for the operator; the pass is postponed
        when it fails (and what it created is removed again)."""
        with metrics.RECONCILE_SECONDS.labels(kind.info.kind).time():
            result = await self._reconcile(
                kind, body, claims, emit, bulk=bulk, roles_coming=roles_coming, hold=hold
            )
        metrics.RECONCILES.labels(kind.info.kind, result.outcome.reason.value).inc()
        return result

    async def _reconcile(
        self,
        kind: AnyKind,
        body: Mapping[str, Any],
        claims: ClaimLookup,
        emit: Emit,
        *,
        bulk: bool,
        roles_coming: RolesComing | None,
        hold: Hold,
        read_first: bool = False,
    ) -> Result:
        meta = body["metadata"]
        status = body.get("status") or {}
        try:
            subject = Subject.of(kind, body)
        except ValidationError as error:
            return Result(Outcome(Reason.INVALID_SPEC, validation_message(error)), Refs())
        spec, name, target_name = subject.spec, subject.name, subject.target
        refs = Refs(
            target=target_name,
            target_type=kind.target_type,
            secrets=frozenset(n.ref.name for n in kind.secret_needs(spec)),
            roles=kind.role_refs(spec),
            entry=(kind.family, name),
        )

        secret = kind.consumer_secret(spec)

        def done(reason: Reason, message: str, **extra: Any) -> Result:
            return Result(Outcome(reason, message, remote_name=name, secret=secret, **extra), refs)

        owned = self.owned(body)
        target = self.target_config(kind, target_name)
        refused = admission(kind, spec, meta, target, owned=owned)
        if refused is not None:
            return done(*refused)
        if spec.suspend:
            return done(Reason.SUSPENDED, "suspended: no remote calls until spec.suspend is false")
        owner = subject.owner_elsewhere(claims)
        if owner is not None:
            return done(
                Reason.CONFLICT,
                f"{kind.family} {name!r} on {target_name!r} is claimed by the older "
                f"{kind.info.kind} {owner.namespace}/{owner.name}",
            )
        coming = roles_coming(target_name, refs.roles) if roles_coming is not None and refs.roles else None
        if coming:
            waiting = f"waiting for role(s) being created: {', '.join(sorted(coming))}"
            return dataclasses.replace(done(Reason.ROLE_NOT_FOUND, waiting), postponed=True)
        # A new object under Refuse may be created without reading it first: see ``unclaimed``.
        unread = (
            not read_first
            and not owned
            and not status
            and spec.adoption_policy is AdoptionPolicy.REFUSE
            and meta["uid"] not in self._read_first
        )
        secret_version: str | None = None
        claimed = False
        # The creates this pass sent before it claimed the name: while they are in flight, and
        # until the claim is written, anything going wrong removes them again.
        unclaimed = False
        applied: list[str] = []
        ops: Sequence[Any] = ()
        remote: Any = None
        try:
            consumer = {
                "username": name,
                **(target.consumer_urls() if isinstance(target, ClusterConfig) else {}),
            }
            values, secret_version = await self._resolve(kind.secret_needs(spec), body, consumer)
            desired = kind.desired(spec, name, values)
            rejected = self._rejected.get(meta["uid"])
            if rejected is not None and (rejected.generation, rejected.secret_version) == (
                meta.get("generation"),
                secret_version,
            ):
                return done(Reason.REJECTED, rejected.message, owned=owned or None)
            assert target is not None  # admission refused a missing target
            health = self.targets.health(kind.target_type, target_name)
            if health.down:  # at once, not after the pass in the lane
                return done(Reason.UNREACHABLE, health.message(), owned=owned or None)
            lane = await health.admit()  # one pass at a time while the target is in doubt
            # Only on a target that answered just now: a dead or untrusted one costs the object
            # nothing, as a read comes first. And only where the creates prove the name free.
            # Nor on a cluster of several Coordinators (``leaderHosts``): a leader that fails
            # while a create is in flight may carry it out unanswered, and what it made could
            # not be told from someone else's (read first, the claim precedes the create).
            several = isinstance(target, ClusterConfig) and bool(target.leader_hosts)
            unread = unread and not lane and kind.creates_prove_free and not several
            try:
                if health.down:
                    return done(Reason.UNREACHABLE, health.message(), owned=owned or None)
                remote = await self.targets.remote(
                    kind.target_type, target_name, max_age=target.resync_seconds if bulk else None
                )
                observed = await self._observe(kind, target_name, remote, name, desired, unread=unread)
                confirmed = 0
                if not unread and remote.view is not None and remote.view.used and not remote.view.missed:
                    confirmed = remote.view.snapshot.number
                if (
                    not unread
                    and remote.view is not None
                    and remote.view.used
                    and not _confirms_sync(kind, desired, observed, owned)
                ):
                    confirmed = 0
                    # The snapshot only ever confirms an object in sync: anything to do (or to
                    # refuse) is decided from a live read of the object, so no write is planned
                    # from data that may be a resync period old. (Reads of entries this operator
                    # wrote since the snapshot were live already.)
                    remote = dataclasses.replace(remote, view=None)
                    observed = await self._observe(kind, target_name, remote, name, desired)
            finally:
                # Released before a failure is counted (no await in between): the next pass
                # in the lane sees it.
                if lane:
                    health.leave()
            exists = kind.exists(observed)
            adopting = exists and not owned

            def adopted() -> None:
                emit("Normal", "Adopted", f"took over the existing {kind.family} {name!r}")
                log.info("%s: adopted existing %s %r", _ident(body), kind.family, name)

            if adopting and spec.adoption_policy is AdoptionPolicy.REFUSE:
                return done(
                    Reason.ALREADY_EXISTS,
                    f"{kind.family} {name!r} already exists on {target_name!r} and was not created "
                    "by this resource; set spec.adoptionPolicy: Adopt to take it over",
                    owned=False,
                )
            plan = kind.plan(desired, observed)
            not_permitted = await self._privileged_grants_now(meta, target_name, target, remote, plan.ops)
            if not_permitted is not None:
                # Refused: nothing is taken over. An adoption goes on record only with the
                # finalizer, or deleting the object would leave what its status says it owns.
                return done(Reason.NOT_PERMITTED, not_permitted, owned=owned or None)
            owned = owned or adopting
            # A referenced Secret that changed since the last sync is a change of the desired
            # state (a rotation), not drift on the remote side: apply it under either policy.
            drift = bool(plan.ops) and _was_synced(body) and status.get("secretVersion") == secret_version
            # Reported drift that persists is counted once, when it is first seen.
            newly_drifted = drift and not _has_drifted_condition(body)
            if newly_drifted:
                metrics.DRIFT.labels(kind.info.kind).inc()
            if drift and spec.drift_policy is DriftPolicy.REPORT:
                if adopting:
                    adopted()
                return done(
                    Reason.DRIFTED,
                    "the remote object differs from the spec; driftPolicy is Report",
                    owned=True,
                    drift=plan.drift,
                    drift_detected=newly_drifted,
                    secret_version=secret_version,
                )
            why = "drift on the remote side" if drift else _why(body, secret_version)
            ops = plan.ops
            event: str | None = None
            if unread and ops:
                # Planned without reading: the creates go first, before any claim. Each is
                # refused if its name is taken (``creates_prove_free``), so once they are done the
                # object is provably this pass's own, and only then claimed.
                creates = tuple(op for op in ops if isinstance(op, Create))
                event, ops = ops[0].reason, creates + tuple(op for op in ops if not isinstance(op, Create))
                unclaimed = True
                await self._apply(kind, body, remote, target_name, name, creates, why, None, applied)
            # Claim before any other write: if the operator dies between the remote create and
            # the final status write, the next pass knows the object is its own. The claim goes
            # on the object with the finalizer, in one write, before the first remote write
            # that is not the create of a name proven free just now.
            claiming = bool(ops) and not owned
            if (owned or claiming) and not await self._hold_and_claim(kind, hold, body, claiming=claiming):
                changed = "the object changed while the operator's finalizer was being put on it"
                if unclaimed:  # the patch was refused: nothing claims what the creates made
                    changed += (
                        await self._undo_unclaimed(kind, body, remote, target_name, name, ops, applied)
                    )[0]
                return dataclasses.replace(done(Reason.KUBERNETES_ERROR, changed), postponed=True)
            unclaimed = False
            if claiming:
                owned = claimed = True
            if adopting:  # said once the finalizer is on: a pass postponed before says nothing
                adopted()
            rest = ops[len(applied) :]
            changes = await self._apply(
                kind, body, remote, target_name, name, rest, why, emit, applied, reason=event
            )
        except SecretMissing as error:
            return done(Reason.SECRET_NOT_FOUND, str(error), owned=owned or None)
        except SecretNotAllowed as error:
            return done(Reason.SECRET_NOT_ALLOWED, str(error), owned=owned or None)
        except InvalidSpecError as error:
            return done(Reason.INVALID_SPEC, str(error), owned=owned or None)
        except KubeError as error:
            message = str(error)
            if unclaimed:
                # The patch failed; it may have been written all the same (no answer). If the
                # claim is on the object, what the creates made is its own, and stays.
                landed = await self._claim_landed(kind, body)
                if landed is False:
                    message += (
                        await self._undo_unclaimed(kind, body, remote, target_name, name, ops, applied)
                    )[0]
                elif landed is None:  # unknown: left unclaimed (reported AlreadyExists, never taken over)
                    self._read_first.add(meta["uid"])
            return done(Reason.KUBERNETES_ERROR, message, owned=owned or None)
        except api.ApiError as error:
            undone = ""
            if unclaimed:
                # A create sent before the claim failed: nothing of the pass may stay. Should the
                # name be taken, the pass goes on as one that reads first (Refuse, or the
                # claim of a name freed meanwhile); any other failure leaves nothing claimed.
                undone, removed = await self._undo_unclaimed(
                    kind, body, remote, target_name, name, ops, applied
                )
                if isinstance(error, api.AlreadyExists) and removed:
                    log.info(
                        "%s: %s %r is taken on %r: reading it", _ident(body), kind.family, name, target_name
                    )
                    return await self._reconcile(
                        kind, body, claims, emit, bulk=bulk, roles_coming=None, hold=hold, read_first=True
                    )
                # The target stopped answering (a Coordinator's leader killed mid-pass, say)
                # before what the pass made could be removed. Each create that succeeded found
                # its name free, so what stays is this object's own: claimed, the next pass
                # finishes it instead of finding it as someone else's. (A name found taken is
                # someone else's: never claimed.)
                if (
                    not removed
                    and not isinstance(error, api.AlreadyExists)
                    and await self._claim_what_stays(kind, hold, body)
                ):
                    owned = claimed = True
                    undone += ", and is claimed as this resource's own"
            reason, message = self._api_failure(kind, target_name, meta["uid"], error)
            message += undone
            if reason is Reason.REJECTED:
                message += "; not retried until the spec or a referenced Secret changes"
                self._rejected[meta["uid"]] = _Rejection(meta.get("generation"), secret_version, message)
            # Owned by a claim alone (no status says so yet), a create that finds the name taken
            # shows the name is someone else's, whichever pass wrote the claim.
            claim_only = claimed or (owned and status.get("owned") is not True)
            if (claimed and not applied and isinstance(error, REFUSALS)) or (
                claim_only and isinstance(error, api.AlreadyExists)
            ):
                # The pass that claimed the name made nothing: the target refused its first
                # write, or another writer took the name since it was read (what this pass
                # made of the object before that is removed again). It is not ours: the next
                # pass treats it as pre-existing (Refuse or Adopt), or claims it afresh. The
                # refusal goes on record first: from then on no claim on the object counts (one
                # put back by a tenant, or one a crash leaves before the rest is done).
                await self._record_not_owned(kind, body)
                message += (await self._undo(kind, body, remote, target_name, name, ops[: len(applied)]))[0]
                await self.claims.withdraw(meta, kind.info.plural)
                return done(reason, message, owned=False)
            return done(reason, message, owned=owned or None)
        self._rejected.pop(meta["uid"], None)
        extra: dict[str, Any] = {
            "owned": True,
            "changes": changes,
            "drift_detected": drift,
            "secret_version": secret_version,
        }
        if plan.missing_roles:
            missing = ", ".join(sorted(plan.missing_roles))
            return done(Reason.ROLE_NOT_FOUND, f"waiting for role(s) to exist: {missing}", **extra)
        message = "drift corrected" if drift else "in sync"
        synced = done(Reason.SYNCED, message, **extra)
        if changes or drift:
            return synced
        return dataclasses.replace(synced, confirmed=confirmed)

    def _api_failure(self, kind: AnyKind, target: str, uid: str, error: api.ApiError) -> tuple[Reason, str]:
        """What a pass that failed on the target says, the breaker told. A request the breaker
        kept back (``NotSent``) says what every other object on the target says."""
        if isinstance(error, NotSent):
            return Reason.UNREACHABLE, self.targets.health(kind.target_type, target).message()
        reason, message = describe_api_error(error)
        self._record_health(kind, target, uid, error, message)
        return reason, message

    def _record_health(self, kind: AnyKind, target: str, uid: str, error: api.ApiError, message: str) -> None:
        """Tell the target's breaker when this failed request got no answer (an answer, if only
        a refusal, was told to it by the client as it arrived)."""
        if (
            isinstance(error, api.Unavailable)
            and not isinstance(error, api.CertificateNotTrusted | api.RateLimited)
            and not error.counted  # one read shared by several passes is one unanswered request
        ):
            error.counted = True
            self.targets.health(kind.target_type, target).unanswered(message, uid)

    async def _observe(
        self, kind: AnyKind, target_name: str, remote: Any, name: str, desired: Any, *, unread: bool = False
    ) -> Any:
        """The kind's observation; a live one waits for its turn among the target's readers (a
        pass through a snapshot reads live only what was written since it was taken).
        ``unread``: the object is taken as absent (``Kind.absent``), only what it refers to is read."""
        observe = kind.absent if unread else kind.observe
        if remote.view is not None:
            return await observe(remote, name, desired)
        async with self.targets.reading(kind.target_type, target_name):
            return await observe(remote, name, desired)

    async def _privileged_grants_now(
        self,
        meta: Mapping[str, Any],
        target_name: str,
        target: ClusterConfig | PivotConfig | None,
        remote: Any,
        ops: Sequence[Any],
    ) -> str | None:
        """Why the roles these writes give away may not be given from this namespace, or None.

        Admission knows the protected roles by name; a role that administers security under
        another name (made by a privileged DruidRole, or by hand) is found on the cluster, read
        only when a write would give it to someone.
        """
        if not isinstance(target, ClusterConfig) or target.privileged(meta["namespace"]):
            return None
        granted = granted_roles(ops)
        if not granted:
            return None
        risky = await security_administering(remote, granted)
        if not risky:
            return None
        return (
            f"namespace {meta['namespace']!r} may not grant {', '.join(risky)} on Druid cluster "
            f"{target_name!r}: only the cluster's privilegedNamespaces may"
        )

    async def _apply(
        self,
        kind: AnyKind,
        body: Mapping[str, Any],
        remote: Any,
        target: str,
        name: str,
        ops: Sequence[Any],
        why: str,
        emit: Emit | None,
        done: list[str],
        *,
        reason: str | None = None,
    ) -> tuple[str, ...]:
        """Apply the ops in order, appending each one's description to ``done`` once applied.

        One Event says what the pass wrote (all of ``done``), named after its first write or
        ``reason`` (also when a later write failed: what was done is on record); none without
        ``emit``. The log has a line per write. Each write marks the object touched, so that
        passes read it live until a newer snapshot.

        Consecutive ops of one lane go to it as one batch: the lane is the target's serialised
        write chain, and letting another pass's writes in between would put more turns of the
        event loop into that chain; the log lines are written by the pass, once its batch is
        done."""

        async def send(group: Sequence[Any]) -> None:
            for op in group:
                self.targets.touched(kind.target_type, target, kind.family, name)
                await op.apply(remote)
                self.targets.written(kind.target_type, target, kind.family, name)
                done.append(op.describe())
                metrics.REMOTE_WRITES.labels(kind.info.kind, op.reason).inc()

        try:
            for lane, group in itertools.groupby(ops, key=lane_of):
                applied, batch = len(done), tuple(group)
                try:
                    await self.targets.write(kind.target_type, target, lane, functools.partial(send, batch))
                finally:
                    for text in done[applied:]:
                        log.info("%s: %s (%s)", _ident(body), text, why)
        finally:
            first = reason or (ops[0].reason if ops else None)
            if done and emit is not None and first is not None:
                emit("Normal", first, f"{'; '.join(done)} ({why})")
        return tuple(done)

    async def _record_not_owned(self, kind: AnyKind, body: Mapping[str, Any]) -> None:
        """Say ``owned: false`` in the status now; if the API server fails, the claim still
        stops counting in this process (``Claims.withdraw``), and the pass is retried."""
        meta = body["metadata"]
        try:
            await self.kube.patch_status(kind.info.plural, meta["namespace"], meta["name"], {"owned": False})
        except KubeError as error:
            log.warning("%s: could not record that it owns nothing: %s", _ident(body), error)

    async def _undo_unclaimed(
        self,
        kind: AnyKind,
        body: Mapping[str, Any],
        remote: Any,
        target: str,
        name: str,
        ops: Sequence[Any],
        applied: Sequence[str],
    ) -> tuple[str, bool]:
        """``_undo`` for a pass that created without reading and could not claim: the object
        reads first from then on."""
        self._read_first.add(body["metadata"]["uid"])
        return await self._undo(kind, body, remote, target, name, ops[: len(applied)])

    async def _claim_what_stays(self, kind: AnyKind, hold: Hold, body: Mapping[str, Any]) -> bool:
        """Claim what this pass created and could not remove; False when the claim could not
        be written (then it stays unclaimed, reported ``AlreadyExists`` and never taken over)."""
        try:
            return await self._hold_and_claim(kind, hold, body, claiming=True)
        except KubeError as error:
            log.warning("%s: could not claim what this pass created: %s", _ident(body), error)
            return False

    async def _claim_landed(self, kind: AnyKind, body: Mapping[str, Any]) -> bool | None:
        """Is this pass's claim on the object, after a patch that failed? None: unknown."""
        meta = body["metadata"]
        try:
            current = await self.kube.read_metadata(kind.info.plural, meta["namespace"], meta["name"])
        except KubeError:
            return None
        if current is None or current.get("uid") != meta["uid"]:
            return False
        if not self.claims.holds(current):
            return False
        self.claims.made(meta["uid"])
        return True

    async def _undo(
        self, kind: AnyKind, body: Mapping[str, Any], remote: Any, target: str, name: str, made: Sequence[Any]
    ) -> tuple[str, bool]:
        """Remove what this pass created of the object, newest first. Returns what to add to
        the status message, and whether nothing the pass created is left."""
        creates = [op for op in reversed(made) if isinstance(op, Create)]
        if not creates:
            return "", True

        async def undo(op: Any) -> None:
            self.targets.touched(kind.target_type, target, kind.family, name)
            await op.undo(remote)

        try:
            for op in creates:
                await self.targets.write(kind.target_type, target, lane_of(op), functools.partial(undo, op))
        except api.ApiError as error:
            log.warning(
                "%s: could not remove what this pass created of %s %r: %s",
                _ident(body),
                kind.family,
                name,
                describe_api_error(error)[1],
            )
            return "; what this pass had created of it could not be removed", False
        log.info("%s: removed what this pass created of %s %r", _ident(body), kind.family, name)
        return "; what this pass had created of it was removed again", True

    async def write_status(
        self,
        kind: AnyKind,
        body: Mapping[str, Any],
        outcome: Outcome,
        *,
        emit: Emit | None = None,
        deletion_blocked: str | None = None,
    ) -> dict[str, Any]:
        """Write the status the outcome implies, only when it differs; returns that status.

        A change of the Ready reason to a failure is also logged and posted as a Warning Event,
        once per change (a resync that finds the same failure says nothing new).
        """
        meta = body["metadata"]
        current = body.get("status") or {}
        previous = ready_condition(body.get("status"))
        if emit is not None and not outcome.ready and (previous or {}).get("reason") != outcome.reason.value:
            quiet = outcome.reason.quiet
            (log.info if quiet else log.warning)(
                "%s: %s: %s", _ident(body), outcome.reason.value, outcome.message
            )
            emit("Normal" if quiet else "Warning", outcome.reason.value, outcome.message)
        new = StatusBuilder(current, meta.get("generation")).build(outcome, deletion_blocked=deletion_blocked)
        patch = status_patch(current, new)
        if patch is not None:
            await self.kube.patch_status(kind.info.plural, meta["namespace"], meta["name"], patch)
        if new.get("owned") is True:
            self.claims.forget(meta["uid"])  # the status holds the claim now
        self._read_first.discard(meta["uid"])  # with a status, its passes read first anyway
        return new

    async def _hold_and_claim(
        self, kind: AnyKind, hold: Hold, body: Mapping[str, Any], *, claiming: bool
    ) -> bool:
        """The finalizer, and the claim when this pass is about to create: one write."""
        meta = body["metadata"]
        uid = meta["uid"]
        if claiming and (body.get("status") or {}).get("owned") is False:
            # The name was taken once and is free now: the refusal on record would outweigh the
            # claim, so it goes first (a status write, only in this case).
            await self.kube.patch_status(kind.info.plural, meta["namespace"], meta["name"], {"owned": None})
        if not await hold(await self.claims.annotation(uid) if claiming else {}):
            return False
        if claiming:
            self.claims.made(uid)
        return True

    async def finalize(self, kind: AnyKind, body: Mapping[str, Any], claims: ClaimLookup, emit: Emit) -> str:
        """Delete the remote object if this resource owns it. Returns what was done.

        Raises ``DeletionBlocked`` when the remote delete cannot be done now (the target
        unreachable or failing, credentials missing, the API server failing), so the finalizer
        stays. Where no delete is due (Retain, not owned, refused by admission, another owner,
        the target no longer configured) it releases: a finalizer that can never be released
        is worse than a remote object left behind (and reported).
        """
        meta = body["metadata"]
        self._rejected.pop(meta["uid"], None)
        self._read_first.discard(meta["uid"])
        try:
            subject = Subject.of(kind, body)
        except ValidationError:
            return "released: the spec was never valid, nothing was created"
        spec, name, target_name = subject.spec, subject.name, subject.target
        if spec.deletion_policy is DeletionPolicy.RETAIN:
            return f"released: deletionPolicy Retain leaves {kind.family} {name!r} in place"
        if spec.suspend:  # no remote call while suspended, its deletion's included
            return f"released: spec.suspend leaves {kind.family} {name!r} in place"
        if not self.owned(body):
            return f"released: {kind.family} {name!r} was never created or adopted by this resource"
        target = self.target_config(kind, target_name)
        refused = admission(kind, spec, meta, target, owned=True, deleting=True)
        if refused is not None and refused[0] is Reason.TARGET_NOT_FOUND:
            message = (
                f"target {target_name!r} is no longer configured: released without deleting "
                f"{kind.family} {name!r}"
            )
            emit("Warning", "TargetRemoved", message)
            return message
        if refused is not None:
            return f"released: {kind.family} {name!r} is protected or outside this namespace's targets"
        owner = subject.owner_elsewhere(claims)
        if owner is not None:
            return f"released: {kind.family} {name!r} belongs to {owner.namespace}/{owner.name}"
        health = self.targets.health(kind.target_type, target_name)
        if health.down:
            raise DeletionBlocked(Reason.UNREACHABLE, health.message())
        lane = await health.admit()
        try:
            if health.down:
                raise DeletionBlocked(Reason.UNREACHABLE, health.message())
            remote = await self.targets.remote(kind.target_type, target_name)

            async def delete() -> bool:
                self.targets.touched(kind.target_type, target_name, kind.family, name, deleted=True)
                return await kind.delete(remote, name)

            removed = await self.targets.write(kind.target_type, target_name, None, delete)
        except SecretMissing as error:
            raise DeletionBlocked(Reason.SECRET_NOT_FOUND, str(error)) from None
        except KubeError as error:
            raise DeletionBlocked(Reason.KUBERNETES_ERROR, str(error)) from None
        except api.ApiError as error:
            raise DeletionBlocked(*self._api_failure(kind, target_name, meta["uid"], error)) from None
        finally:
            if lane:
                health.leave()
        text = f"deleted {kind.family} {name!r}" if removed else f"{kind.family} {name!r} was already gone"
        log.info("%s: %s (resource deleted)", _ident(body), text)
        if removed:
            metrics.REMOTE_WRITES.labels(kind.info.kind, "Deleted").inc()
            emit("Normal", "Deleted", text)
        return text


class DeletionBlocked(Exception):
    def __init__(self, reason: Reason, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


def admission(
    kind: AnyKind,
    spec: Any,
    meta: Mapping[str, Any],
    target: ClusterConfig | PivotConfig | None,
    *,
    owned: bool,
    deleting: bool = False,
) -> tuple[Reason, str] | None:
    """Why this namespace may not have this spec applied to its target, or None.

    Decided from the spec, the configuration and ``owned`` alone, before any remote call, by
    every pass, by the claims index (a refused resource cannot claim a remote name) and by
    ``diff``. ``deleting``: only the guards that also hold for removing what the object owns
    (the target, the namespace's access to it, protection), not those about what it grants.
    """
    namespace = meta["namespace"]
    name = kind.remote_name(spec, meta["name"])
    target_name = kind.target_name(spec)
    what = label(kind.target_type, target_name)
    if target is None:
        return Reason.TARGET_NOT_FOUND, f"{what} is not in the operator configuration"
    if not target.allows(namespace):
        return Reason.NAMESPACE_NOT_ALLOWED, f"namespace {namespace!r} may not manage {what}"
    if kind.protected(name, target.protected):
        return Reason.PROTECTED, f"{name!r} is a protected principal of {target_name!r}"
    if deleting:
        return None
    grants = kind.privileged_grants(spec, target.protected)
    if grants and not (isinstance(target, ClusterConfig) and target.privileged(namespace)):
        return (
            Reason.NOT_PERMITTED,
            f"namespace {namespace!r} may not grant {', '.join(grants)} on {what}: "
            "only the cluster's privilegedNamespaces may",
        )
    unsupported = kind.unsupported(spec, target)
    if unsupported is not None:
        return Reason.INVALID_SPEC, unsupported
    if spec.adoption_policy is AdoptionPolicy.ADOPT and not owned and not target.allows_adoption(namespace):
        return (
            Reason.ADOPTION_NOT_ALLOWED,
            f"namespace {namespace!r} may not adopt existing objects on {what} (it is not in the "
            "target's adoptionNamespaces): use adoptionPolicy Refuse",
        )
    return None


# The reason each client error becomes, first match wins (subclasses before their bases), and
# its message: {target} is Druid or Pivot; {status} and {message} are the error's, already
# trimmed and scrubbed of credentials.
API_ERRORS: tuple[tuple[type[api.ApiError] | tuple[type[api.ApiError], ...], Reason, str], ...] = (
    # The configuration names an authenticator or authorizer the cluster does not have.
    (
        (api.UnknownAuthenticator, api.UnknownAuthorizer),
        Reason.TARGET_NOT_FOUND,
        "{target} does not have the security store the operator configuration names: {message}",
    ),
    (api.Unauthorized, Reason.UNAUTHORIZED, "{target} refused the operator's credentials (401)"),
    (api.Forbidden, Reason.FORBIDDEN, "{target} denied the operator's account (403): {message}"),
    (api.CertificateNotTrusted, Reason.CERTIFICATE_NOT_TRUSTED, "{target}: {message}"),
    (api.RedirectRefused, Reason.REDIRECT_REFUSED, "{target} {message}"),
    (api.Unavailable, Reason.UNREACHABLE, "{target} is unreachable: {message}"),
    (api.ServerError, Reason.SERVER_ERROR, "{target} failed ({status}): {message}"),
    (api.Invalid, Reason.REJECTED, "{target} rejected a request ({status}): {message}"),
    # The remote side changed between our read and write (another writer): read again.
    (
        (api.NotFound, api.AlreadyExists, api.Conflict),
        Reason.CONCURRENT_CHANGE,
        "{target} refused a request ({status}): {message}",
    ),
)


def describe_api_error(error: api.ApiError) -> tuple[Reason, str]:
    """A reason and a one-line message for a client error (``API_ERRORS``)."""
    target = "Druid" if error.target == "coordinator" else "Pivot"
    for cls, reason, template in API_ERRORS:
        if isinstance(error, cls):
            return reason, template.format(target=target, status=error.status, message=error.message)
    return Reason.SERVER_ERROR, f"{target} answered unexpectedly ({error.status}): {error.message}"


# Answers that say the target made nothing: a claim taken for the write is withdrawn. (No
# answer at all, or a server error, leaves it in doubt, so the claim stays.)
REFUSALS = (
    api.AlreadyExists,
    api.Conflict,
    api.Invalid,
    api.NotFound,
    api.Unauthorized,
    api.Forbidden,
    api.RedirectRefused,
)


def _confirms_sync(kind: AnyKind, desired: Any, observed: Any, owned: bool) -> bool:
    plan = kind.plan(desired, observed)
    return owned and kind.exists(observed) and not plan.ops and not plan.missing_roles


def _owner(claimants: Sequence[Claimant]) -> Claimant | None:
    return min(claimants) if claimants else None


def _was_synced(body: Mapping[str, Any]) -> bool:
    """Was this very generation already in sync? Then any planned write is drift."""
    ready = ready_condition(body.get("status"))
    generation = body["metadata"].get("generation")
    return (
        ready is not None
        and ready.get("reason") in (Reason.SYNCED.value, Reason.DRIFTED.value)
        and ready.get("observedGeneration") == generation
    )


def _has_drifted_condition(body: Mapping[str, Any]) -> bool:
    ready = ready_condition(body.get("status"))
    return ready is not None and ready.get("reason") == Reason.DRIFTED.value


def _why(body: Mapping[str, Any], secret_version: str | None) -> str:
    status = body.get("status") or {}
    if status.get("observedGeneration") is None:
        return "new resource"
    if status.get("observedGeneration") != body["metadata"].get("generation"):
        return f"spec changed (generation {body['metadata'].get('generation')})"
    previous = status.get("secretVersion")
    if previous is not None and secret_version != previous:
        return "referenced Secret changed"
    # Never synced with a Secret yet (earlier passes failed): nothing is known to have changed.
    return "converging"


def _ident(body: Mapping[str, Any]) -> str:
    meta = body["metadata"]
    return f"{body.get('kind', '?')} {meta.get('namespace')}/{meta.get('name')}"
