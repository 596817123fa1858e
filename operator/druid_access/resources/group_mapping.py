"""DruidGroupMapping: an LDAP group pattern mapped to roles in the authorizer.

Druid has no update for group mappings: a changed pattern means delete and
re-create; changed roles are assigned and removed one by one. Druid would store role
names that do not exist; the plan leaves them out and reports RoleNotFound instead, so a
mapping never silently grants a role created later by someone else.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from druid_access.clients.druid_wire import GroupMapping
from druid_access.group_pattern import InvalidGroupPattern, check_group_pattern
from druid_access.models import DRUID_GROUP_MAPPING, DruidGroupMappingSpec
from druid_access.observation import both
from druid_access.resources.base import (
    DruidRemote,
    InvalidSpecError,
    KindBase,
    Op,
    Plan,
    RoleChange,
    SecretValues,
    deleted,
)


@dataclass(frozen=True)
class DesiredGroupMapping:
    name: str
    group_pattern: str
    roles: frozenset[str]


@dataclass(frozen=True)
class ObservedGroupMapping:
    mapping: GroupMapping | None
    existing_roles: frozenset[str]


@dataclass(frozen=True)
class CreateGroupMapping:
    name: str
    group_pattern: str
    roles: frozenset[str]
    reason: ClassVar[str] = "CreatedGroupMapping"

    @property
    def grants(self) -> frozenset[str]:
        return self.roles

    def describe(self) -> str:
        return f"created group mapping {self.name!r} with {len(self.roles)} role(s)"

    async def apply(self, remote: DruidRemote) -> None:
        await remote.client.create_group_mapping(
            remote.authorizer, self.name, group_pattern=self.group_pattern, roles=self.roles
        )


@dataclass(frozen=True)
class DeleteGroupMapping:
    name: str
    reason: ClassVar[str] = "DeletedGroupMapping"

    def describe(self) -> str:
        return f"deleted group mapping {self.name!r} to change its pattern"

    async def apply(self, remote: DruidRemote) -> None:
        await deleted(remote.client.delete_group_mapping(remote.authorizer, self.name), "groupMapping")


class _MappingRoleChange(RoleChange):
    holder: ClassVar[str] = "group mapping "


class AssignMappingRole(_MappingRoleChange):
    reason: ClassVar[str] = "AssignedRole"

    async def apply(self, remote: DruidRemote) -> None:
        await remote.client.assign_group_mapping_role(
            remote.authorizer, group_mapping=self.name, role=self.role
        )


class UnassignMappingRole(_MappingRoleChange):
    reason: ClassVar[str] = "UnassignedRole"

    async def apply(self, remote: DruidRemote) -> None:
        await remote.client.unassign_group_mapping_role(
            remote.authorizer, group_mapping=self.name, role=self.role
        )


def plan(desired: DesiredGroupMapping, observed: ObservedGroupMapping) -> Plan[DruidRemote]:
    missing = desired.roles - observed.existing_roles
    grantable = desired.roles - missing
    current = observed.mapping
    if current is None:
        return Plan(
            ops=(CreateGroupMapping(desired.name, desired.group_pattern, grantable),),
            drift=("groupMapping",),
            missing_roles=missing,
        )
    if current.group_pattern != desired.group_pattern:
        return Plan(
            ops=(
                DeleteGroupMapping(desired.name),
                CreateGroupMapping(desired.name, desired.group_pattern, grantable),
            ),
            drift=("groupPattern",),
            missing_roles=missing,
        )
    ops: list[Op[DruidRemote]] = [
        AssignMappingRole(desired.name, r) for r in sorted(grantable - current.roles)
    ]
    # Roles Druid stored that no longer exist cannot be removed by name (the role check
    # comes first) and grant nothing; leave them.
    extra = (current.roles - desired.roles) & observed.existing_roles
    ops += [UnassignMappingRole(desired.name, r) for r in sorted(extra)]
    return Plan(ops=tuple(ops), drift=("roles",) if ops else (), missing_roles=missing)


class GroupMappingKind(KindBase[DruidGroupMappingSpec]):
    info = DRUID_GROUP_MAPPING
    family = "groupMapping"

    def role_refs(self, spec: DruidGroupMappingSpec) -> frozenset[str]:
        return frozenset(spec.roles)

    def desired(self, spec: DruidGroupMappingSpec, name: str, secrets: SecretValues) -> DesiredGroupMapping:
        try:
            check_group_pattern(spec.group_pattern)
        except InvalidGroupPattern as error:
            raise InvalidSpecError(str(error)) from None
        return DesiredGroupMapping(name=name, group_pattern=spec.group_pattern, roles=frozenset(spec.roles))

    async def observe(
        self, remote: DruidRemote, name: str, desired: DesiredGroupMapping
    ) -> ObservedGroupMapping:
        reads = remote.reads
        mapping, roles = await both(reads.group_mapping(name), reads.role_names(desired.roles))
        return ObservedGroupMapping(mapping=mapping, existing_roles=roles)

    def exists(self, observed: ObservedGroupMapping) -> bool:
        return observed.mapping is not None

    def plan(self, desired: DesiredGroupMapping, observed: ObservedGroupMapping) -> Plan[DruidRemote]:
        return plan(desired, observed)

    async def delete(self, remote: DruidRemote, name: str) -> bool:
        return await deleted(remote.client.delete_group_mapping(remote.authorizer, name), "groupMapping")
