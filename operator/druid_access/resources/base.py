"""What each kind tells the generic reconcile loop: desired state, observation, plan, delete.

A kind is a small object implementing ``Kind``; ``reconcile`` does everything else
(targets, tenancy, ownership, conflicts, secrets, status, events) the same way for all.
``plan`` is pure: it takes the desired and observed states and returns the operations
that make the remote side match, in order, with nothing when they already match.
"""

from __future__ import annotations

from collections.abc import Awaitable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Generic, Literal, Protocol, TypeVar, cast, runtime_checkable

from pydantic import SecretStr

from druid_access.clients.error_types import NotFound
from druid_access.config import ClusterConfig, PivotConfig, ProtectedPrincipals
from druid_access.models import KindInfo, Model, SecretKeyRef

# Where they were defined first: the kinds and their callers import them from here too.
from druid_access.observation import AUTHENTICATOR_LANE as AUTHENTICATOR_LANE
from druid_access.observation import LANES as LANES
from druid_access.observation import DruidRemote as DruidRemote
from druid_access.observation import PivotRemote as PivotRemote
from druid_access.observation import absent_as_none as absent_as_none
from druid_access.observation import lane as lane

R = TypeVar("R", contravariant=True)
S = TypeVar("S", bound=Model)
D = TypeVar("D")
O = TypeVar("O")  # noqa: E741 - the conventional D/O pair of desired and observed
T = TypeVar("T")


class Op(Protocol[R]):
    """One remote write. ``reason`` names it in Events; ``describe`` never shows secrets;
    an optional ``lane`` class attribute names its write lane (the main one without)."""

    reason: ClassVar[str]

    def describe(self) -> str: ...

    async def apply(self, remote: R) -> None: ...


@dataclass(frozen=True)
class RoleChange:
    """Gives one role to (reason ``AssignedRole``) or takes it from (``UnassignedRole``) a user
    or a group mapping; subclasses send it."""

    name: str
    role: str
    reason: ClassVar[str]
    holder: ClassVar[str] = ""  # how descriptions name what holds the role, before its name

    @property
    def grants(self) -> frozenset[str]:
        return frozenset({self.role}) if self.reason == "AssignedRole" else frozenset()

    def describe(self) -> str:
        if self.reason == "AssignedRole":
            return f"assigned role {self.role!r} to {self.holder}{self.name!r}"
        return f"removed role {self.role!r} from {self.holder}{self.name!r}"


@runtime_checkable
class Create(Protocol):
    """A write that made something new, and can take it back: when a later create of the same
    pass finds its name taken by another writer, the engine removes what the pass made."""

    async def undo(self, remote: Any) -> None: ...


@dataclass(frozen=True)
class Plan(Generic[R]):
    """The writes that bring the remote side in line, and what stands in their way.

    ``drift`` names the fields that differ (for a Drifted condition); ``missing_roles``
    are roles the spec names that do not exist remotely (RoleNotFound), which the ops
    leave out so that everything else still converges.
    """

    ops: tuple[Op[R], ...] = ()
    drift: tuple[str, ...] = ()
    missing_roles: frozenset[str] = frozenset()


@dataclass(frozen=True)
class SecretNeed:
    """A Secret key a spec references; ``generate`` creates it when missing."""

    ref: SecretKeyRef
    generate: bool = False


SecretValues = Mapping[tuple[str, str], SecretStr]
"""Resolved Secret values keyed by (secret name, key)."""


class InvalidSpecError(Exception):
    """The spec passed the schema but cannot be applied (e.g. a regex that does not compile)."""


@dataclass(frozen=True)
class Claim:
    """Who may own a remote object: the kind family, target and remote name."""

    family: str
    target: str
    remote_name: str


class Kind(Protocol[R, S, D, O]):
    """Everything kind-specific. Implementations are stateless singletons."""

    info: KindInfo
    family: str
    target_type: Literal["cluster", "pivot"]
    # Its remote object is a role that other objects may be waiting for (``Refs.roles``).
    makes_roles: bool
    # Every create in the plan of a missing object is refused when its name is taken, so a
    # new object may be created without reading it first (``absent``): see ``Engine``.
    creates_prove_free: bool

    def spec_model(self, spec: Mapping[str, Any]) -> S: ...

    def remote_name(self, spec: S, meta_name: str) -> str: ...

    def target_name(self, spec: S) -> str: ...

    def protected(self, name: str, protected: ProtectedPrincipals) -> bool: ...

    def secret_needs(self, spec: S) -> Sequence[SecretNeed]: ...

    def role_refs(self, spec: S) -> frozenset[str]: ...

    def consumer_secret(self, spec: S) -> str | None: ...

    def privileged_grants(self, spec: S, protected: ProtectedPrincipals) -> tuple[str, ...]: ...

    def unsupported(self, spec: S, target: ClusterConfig | PivotConfig) -> str | None: ...

    def desired(self, spec: S, name: str, secrets: SecretValues) -> D: ...

    async def observe(self, remote: R, name: str, desired: D) -> O: ...

    async def absent(self, remote: R, name: str, desired: D) -> O: ...

    def exists(self, observed: O) -> bool: ...

    def plan(self, desired: D, observed: O) -> Plan[R]: ...

    async def delete(self, remote: R, name: str) -> bool: ...


AnyKind = Kind[Any, Any, Any, Any]


def granted_roles(ops: Sequence[Op[Any]]) -> frozenset[str]:
    """The roles a plan's writes give to someone (ops that grant expose ``grants``)."""
    roles: frozenset[str] = frozenset()
    for op in ops:
        roles |= getattr(op, "grants", frozenset())
    return roles


def secret_value(secrets: SecretValues, ref: SecretKeyRef) -> SecretStr:
    return secrets[(ref.name, ref.key)]


async def deleted(call: Awaitable[None], entity: str) -> bool:
    """Run a delete; False when the object was already gone (delete treats that as done)."""
    try:
        await call
    except NotFound as error:
        if error.entity != entity:
            raise
        return False
    return True


class KindBase(Generic[S]):
    """Defaults shared by the four kinds; each overrides what differs.

    ``spec.name`` defaults to ``metadata.name``; the target is the field the kind's
    ``KindInfo.target_field`` names (``cluster`` or ``pivot``).
    """

    info: KindInfo
    family: str
    target_type: Literal["cluster", "pivot"]
    makes_roles = False
    creates_prove_free = False

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        assert cls.info.target_field in ("cluster", "pivot"), cls.info.target_field
        cls.target_type = "pivot" if cls.info.target_field == "pivot" else "cluster"

    def spec_model(self, spec: Mapping[str, Any]) -> S:
        model: S = self.info.spec.model_validate(spec)  # type: ignore[assignment]
        return model

    def remote_name(self, spec: S, meta_name: str) -> str:
        name: str | None = getattr(spec, "name", None)
        return name or meta_name

    def target_name(self, spec: S) -> str:
        target: str = getattr(spec, self.info.target_field)
        return target

    def protected(self, name: str, protected: ProtectedPrincipals) -> bool:
        return protected.of(self.family, name)

    def secret_needs(self, spec: S) -> Sequence[SecretNeed]:
        return ()

    def role_refs(self, spec: S) -> frozenset[str]:
        return frozenset()

    def consumer_secret(self, spec: S) -> str | None:
        """The Secret applications mount to use what this object makes (None: there is none)."""
        return None

    def unsupported(self, spec: S, target: ClusterConfig | PivotConfig) -> str | None:
        """What in the spec the target cannot honour, in a sentence (None: nothing)."""
        return None

    async def absent(self, remote: Any, name: str, desired: Any) -> Any:
        """The observation of an object the target does not have, for a kind whose creates prove
        its name free (``creates_prove_free``); any other kind reads what is there."""
        kind = cast("Kind[Any, Any, Any, Any]", self)
        return await kind.observe(remote, name, desired)

    def privileged_grants(self, spec: S, protected: ProtectedPrincipals) -> tuple[str, ...]:
        """What in the spec only a privileged namespace may grant, each said in a few words.

        By default: the protected roles among those the spec assigns.
        """
        return tuple(
            f"protected role {role!r}" for role in sorted(self.role_refs(spec)) if protected.role(role)
        )
