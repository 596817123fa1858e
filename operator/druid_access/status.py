"""Conditions, reasons and the status a reconcile writes back.

A status is rebuilt from an ``Outcome`` on every pass and written only when it differs
from what the object already shows: an object in sync costs no Kubernetes write, and
``lastTransitionTime`` moves only when a condition's status does.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

READY = "Ready"
DRIFTED = "Drifted"
DELETION_BLOCKED = "DeletionBlocked"


RETRY = "retry"
"""Clears up by itself (a role appears, a server recovers): the pass is retried with backoff.
Other failures wait for a change of the spec, the configuration or a Secret, or the resync."""
QUIET = "quiet"
"""A normal step (waiting for something being created, or a state asked for): a change to it
is logged at INFO and posted as a Normal Event, not as a Warning."""


class Reason(StrEnum):
    """Machine-readable reasons of the Ready condition (and its companions), each with its
    policy: ``retryable`` (RETRY) and ``quiet`` (QUIET). Adding a reason is one line here,
    plus a row in ``reconcile.API_ERRORS`` when a client error maps to it."""

    retryable: bool
    quiet: bool

    def __new__(cls, value: str, *policy: str) -> Reason:
        member = str.__new__(cls, value)
        member._value_ = value
        member.retryable = RETRY in policy
        member.quiet = QUIET in policy
        return member

    SYNCED = "Synced"
    INVALID_SPEC = "InvalidSpec"
    TARGET_NOT_FOUND = "TargetNotFound"
    NAMESPACE_NOT_ALLOWED = "NamespaceNotAllowed"
    PROTECTED = "Protected"
    NOT_PERMITTED = "NotPermitted"
    ADOPTION_NOT_ALLOWED = "AdoptionNotAllowed"
    SUSPENDED = "Suspended", QUIET
    CONFLICT = "Conflict"
    ALREADY_EXISTS = "AlreadyExists"
    SECRET_NOT_FOUND = "SecretNotFound", RETRY, QUIET  # another resource may be about to create it
    SECRET_NOT_ALLOWED = "SecretNotAllowed"
    ROLE_NOT_FOUND = "RoleNotFound", RETRY, QUIET  # likewise: a DruidRole applied with it
    DRIFTED = "Drifted", QUIET
    UNREACHABLE = "Unreachable", RETRY
    CERTIFICATE_NOT_TRUSTED = "CertificateNotTrusted", RETRY
    REDIRECT_REFUSED = "RedirectRefused", RETRY
    UNAUTHORIZED = "Unauthorized", RETRY
    FORBIDDEN = "Forbidden", RETRY
    REJECTED = "Rejected"
    CONCURRENT_CHANGE = "ConcurrentChange", RETRY
    SERVER_ERROR = "ServerError", RETRY
    KUBERNETES_ERROR = "KubernetesError", RETRY
    DELETION_BLOCKED = "DeletionBlocked"


@dataclass(frozen=True)
class Outcome:
    """What one reconcile pass concluded, before it becomes a status."""

    reason: Reason
    message: str
    remote_name: str | None = None
    owned: bool | None = None
    secret_version: str | None = None
    secret: str | None = None  # the Secret applications mount (a DruidUser's password Secret)
    changes: tuple[str, ...] = ()
    drift: tuple[str, ...] = ()
    drift_detected: bool = False

    @property
    def ready(self) -> bool:
        return self.reason is Reason.SYNCED


def ready_condition(status: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """The Ready condition of a status, if it has one."""
    for condition in (status or {}).get("conditions") or ():
        if isinstance(condition, Mapping) and condition.get("type") == READY:
            return dict(condition)
    return None


def now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _condition(
    previous: Mapping[str, Any] | None,
    *,
    type_: str,
    status: str,
    reason: str,
    message: str,
    generation: int | None,
    timestamp: str,
) -> dict[str, Any]:
    unchanged = previous is not None and previous.get("status") == status
    return {
        "type": type_,
        "status": status,
        "reason": reason,
        "message": message,
        "lastTransitionTime": previous.get("lastTransitionTime", timestamp)
        if unchanged and previous
        else timestamp,
        "observedGeneration": generation,
    }


@dataclass
class StatusBuilder:
    """Builds the next status from the current one so unchanged parts stay byte-identical."""

    current: Mapping[str, Any]
    generation: int | None
    timestamp: str = field(default_factory=now)

    def _previous(self, type_: str) -> Mapping[str, Any] | None:
        for condition in self.current.get("conditions") or []:
            if condition.get("type") == type_:
                return dict(condition)
        return None

    def build(self, outcome: Outcome, *, deletion_blocked: str | None = None) -> dict[str, Any]:
        def condition(type_: str, status: str, reason: str, message: str) -> dict[str, Any]:
            return _condition(
                self._previous(type_),
                type_=type_,
                status=status,
                reason=reason,
                message=message,
                generation=self.generation,
                timestamp=self.timestamp,
            )

        ready = "True" if outcome.ready else "False"
        conditions = [condition(READY, ready, outcome.reason.value, outcome.message)]
        if outcome.drift:
            drift = "remote differs in: " + ", ".join(outcome.drift)
            conditions.append(condition(DRIFTED, "True", Reason.DRIFTED.value, drift))
        if deletion_blocked is not None:
            conditions.append(
                condition(DELETION_BLOCKED, "True", Reason.DELETION_BLOCKED.value, deletion_blocked)
            )
        status: dict[str, Any] = {
            "observedGeneration": self.generation,
            "conditions": conditions,
        }
        if outcome.remote_name is not None:
            status["remoteName"] = outcome.remote_name
        owned = outcome.owned if outcome.owned is not None else self.current.get("owned")
        if owned is not None:
            status["owned"] = owned
        if outcome.secret_version is not None:
            status["secretVersion"] = outcome.secret_version
        if outcome.secret is not None:
            status["secret"] = outcome.secret
        drift_count = int(self.current.get("driftCount") or 0) + (1 if outcome.drift_detected else 0)
        if drift_count:
            status["driftCount"] = drift_count
        status["lastSyncTime"] = (
            self.timestamp if outcome.changes else self.current.get("lastSyncTime") or self.timestamp
        )
        return status


_COMPARED = (
    "observedGeneration",
    "remoteName",
    "owned",
    "secretVersion",
    "secret",
    "driftCount",
    "lastSyncTime",
)


def status_patch(current: Mapping[str, Any], new: Mapping[str, Any]) -> dict[str, Any] | None:
    """A merge patch turning ``current`` into ``new``, or None when nothing would change."""
    patch: dict[str, Any] = {}
    for key in _COMPARED:
        if current.get(key) != new.get(key):
            patch[key] = new.get(key)
    if _conditions_key(current.get("conditions")) != _conditions_key(new.get("conditions")):
        patch["conditions"] = new.get("conditions")
    return patch or None


def _conditions_key(conditions: Sequence[Mapping[str, Any]] | None) -> list[tuple[Any, ...]]:
    return sorted(
        (c.get("type"), c.get("status"), c.get("reason"), c.get("message"), c.get("observedGeneration"))
        for c in conditions or []
    )
