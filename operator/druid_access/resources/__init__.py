"""One module per kind: desired state, observation, pure plan and deletion."""

from __future__ import annotations

from druid_access.resources.base import AnyKind
from druid_access.resources.connection import ConnectionKind
from druid_access.resources.group_mapping import GroupMappingKind
from druid_access.resources.role import RoleKind
from druid_access.resources.user import UserKind

# The four kinds, each a stateless singleton; by kind name (``DruidUser``...) too.
KINDS: tuple[AnyKind, ...] = (UserKind(), RoleKind(), GroupMappingKind(), ConnectionKind())
BY_KIND: dict[str, AnyKind] = {kind.info.kind: kind for kind in KINDS}
