"""DruidRole: an authorizer role and its complete permission list.

Druid replaces a role's permission list on every POST, so the plan sends the
whole desired list once when the sets differ and nothing when they are equal. Resource
names are Java regexes; they are checked here with Java's grammar before any call, because
Druid refuses the whole list for one bad pattern.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import ClassVar

from druid_access import javaregex
from druid_access.clients.druid_wire import Permission, Role
from druid_access.config import ProtectedPrincipals
from druid_access.models import DRUID_ROLE, DruidRoleSpec, ResourceType
from druid_access.observation import together
from druid_access.resources.base import (
    DruidRemote,
    InvalidSpecError,
    KindBase,
    Op,
    Plan,
    SecretValues,
    deleted,
)


@dataclass(frozen=True)
class DesiredRole:
    name: str
    permissions: frozenset[Permission]


@dataclass(frozen=True)
class CreateRole:
    name: str
    reason: ClassVar[str] = "CreatedRole"

    def describe(self) -> str:
        return f"created role {self.name!r}"

    async def apply(self, remote: DruidRemote) -> None:
        await remote.client.create_role(remote.authorizer, self.name)

    async def undo(self, remote: DruidRemote) -> None:
        # Only right after the create (its claim failed): Druid also strips the role from any
        # user another pass assigned it to meanwhile, which that object's resync puts back.
        await remote.client.delete_role(remote.authorizer, self.name)


@dataclass(frozen=True)
class SetPermissions:
    name: str
    permissions: frozenset[Permission]
    reason: ClassVar[str] = "SetPermissions"

    def describe(self) -> str:
        return f"set {len(self.permissions)} permission(s) on role {self.name!r}"

    async def apply(self, remote: DruidRemote) -> None:
        await remote.client.set_permissions(remote.authorizer, self.name, self.permissions)


def _label(p: Permission) -> str:
    return f"{p.action} {p.resource_type}/{p.resource_name}"


def permission_drift(desired: frozenset[Permission], observed: frozenset[Permission]) -> str:
    """``permissions (+READ DATASOURCE/x; -WRITE STATE/STATE)``: what a Drifted condition shows."""
    added = sorted(_label(p) for p in desired - observed)
    removed = sorted(_label(p) for p in observed - desired)
    parts = [f"missing {x}" for x in added] + [f"extra {x}" for x in removed]
    return "permissions (" + "; ".join(parts) + ")"


def plan(desired: DesiredRole, observed: Role | None) -> Plan[DruidRemote]:
    if observed is None:
        ops: list[Op[DruidRemote]] = [CreateRole(desired.name)]
        if desired.permissions:
            ops.append(SetPermissions(desired.name, desired.permissions))
        return Plan(ops=tuple(ops), drift=("role",))
    if observed.permissions == desired.permissions:
        return Plan()
    return Plan(
        ops=(SetPermissions(desired.name, desired.permissions),),
        drift=(permission_drift(desired.permissions, observed.permissions),),
    )


def check_pattern(pattern: str) -> None:
    """Refuse what Druid's Java regex engine would refuse, before any remote call: Druid
    answers 400 for the whole permission list, leaving the role without permissions."""
    try:
        javaregex.check(pattern)
    except javaregex.JavaRegexError as error:
        raise InvalidSpecError(
            f"resource name {pattern!r} is not a valid Java regular expression: {error}"
        ) from None


SECURITY_RESOURCE = "security"


def administers_security(permission: Permission) -> bool:
    """Does the permission reach Druid's security API? Its endpoints are guarded by CONFIG
    permissions on ``security``: WRITE administers users and roles, READ shows credential
    hashes. The name is a regex, so ``.*`` or ``sec.*`` count too (decided conservatively)."""
    return permission.resource_type == ResourceType.CONFIG.value and javaregex.may_fullmatch(
        permission.resource_name, SECURITY_RESOURCE
    )


async def security_administering(remote: DruidRemote, roles: Iterable[str]) -> list[str]:
    """Those of ``roles`` that hold a security-administration permission on the cluster, as
    read live in this pass (never from a snapshot), however they got it (a DruidRole of a
    privileged namespace, or made by hand), each with that permission: giving one away is as
    good as giving ``admin``."""
    names = sorted(roles)
    reads = remote.reads
    found = await together(reads.live_role(n) for n in names)
    out = []
    for name, role in zip(names, found, strict=True):
        risky = sorted(_label(p) for p in (role.permissions if role else ()) if administers_security(p))
        if risky:
            out.append(f"role {name!r} (it holds security-administration permission {risky[0]})")
    return out


def _permissions(spec: DruidRoleSpec) -> list[Permission]:
    return [
        Permission(resource_type=p.resource.type.value, resource_name=p.resource.name, action=p.action.value)
        for p in spec.permissions
    ]


class RoleKind(KindBase[DruidRoleSpec]):
    info = DRUID_ROLE
    family = "role"
    makes_roles = True
    creates_prove_free = True  # Druid refuses to create a role whose name is taken

    def privileged_grants(self, spec: DruidRoleSpec, protected: ProtectedPrincipals) -> tuple[str, ...]:
        return tuple(
            f"security-administration permission {_label(p)}"
            for p in _permissions(spec)
            if administers_security(p)
        )

    def desired(self, spec: DruidRoleSpec, name: str, secrets: SecretValues) -> DesiredRole:
        for p in spec.permissions:
            check_pattern(p.resource.name)
        return DesiredRole(name=name, permissions=frozenset(_permissions(spec)))

    async def observe(self, remote: DruidRemote, name: str, desired: DesiredRole) -> Role | None:
        return await remote.reads.role(name)

    async def absent(self, remote: DruidRemote, name: str, desired: DesiredRole) -> Role | None:
        return None

    def exists(self, observed: Role | None) -> bool:
        return observed is not None

    def plan(self, desired: DesiredRole, observed: Role | None) -> Plan[DruidRemote]:
        return plan(desired, observed)

    async def delete(self, remote: DruidRemote, name: str) -> bool:
        return await deleted(remote.client.delete_role(remote.authorizer, name), "role")
