"""The Coordinator's wire models: what its basic-security API sends and accepts, parsed.

Pure data (pydantic), apart from the client that speaks HTTP (``coordinator``), so that the
kinds' plans can use them without importing any I/O.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, NewType

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PlainSerializer,
    TypeAdapter,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic.alias_generators import to_camel

from druid_access.passwords import StoredCredentials

AuthenticatorName = NewType("AuthenticatorName", str)
AuthorizerName = NewType("AuthorizerName", str)

Action = Literal["READ", "WRITE"]


def _sorted(values: frozenset[Any]) -> list[Any]:
    return sorted(values, key=lambda v: v if isinstance(v, str) else repr(v))


# Sets compare without regard to order (what drift detection needs) but cannot hold the
# dicts a model_dump() produces, so they serialise as sorted lists: stable for export.
NameSet = Annotated[frozenset[str], PlainSerializer(_sorted, return_type=list[str])]


class WireModel(BaseModel):
    """Shared base of Coordinator responses: camelCase on the wire, immutable.

    Unknown fields are ignored rather than refused: Druid adds fields between versions
    (``groups`` on ``?full`` roles, ``resourceNamePattern``) and a read must not break on them.
    """

    model_config = ConfigDict(
        alias_generator=to_camel,
        validate_by_name=True,
        validate_by_alias=True,
        frozen=True,
        extra="ignore",
    )

    @field_validator("*", mode="before")
    @classmethod
    def _null_collections_are_empty(cls, value: Any, info: ValidationInfo) -> Any:
        # Druid serialises some empty sets as null; the models say "empty" with one value.
        if value is not None:  # nearly always: runs for every field of every user of a snapshot
            return value
        field = cls.model_fields.get(info.field_name or "")
        if field is not None and field.default_factory is frozenset:
            return frozenset()
        return value


class AuthenticatorUser(WireModel):
    """A user of the authenticator store; ``credentials`` is None until a password is set.

    ``credentials`` is ``druid_access.passwords.StoredCredentials`` (salt and hash base64), so
    ``passwords.verify_password(plain, user.credentials)`` checks a password locally.
    """

    name: str
    credentials: StoredCredentials | None = None


class AuthorizerUser(WireModel):
    """A user of the authorizer store with the names of its roles."""

    name: str
    roles: NameSet = Field(default_factory=frozenset)


class Permission(WireModel):
    """One grant: ``action`` on resources of ``resource_type`` whose name fully matches the
    Java regex ``resource_name``.

    Reads accept both of Druid's shapes (``{"resource":..,"action":..}`` and the "full"
    ``{"resourceAction":..,"resourceNamePattern":..}``); ``action`` is upper-cased because
    Druid parses it case-insensitively. ``resource_type`` is kept as given: Druid stores
    types as free strings.
    """

    resource_type: str
    resource_name: str
    action: Action

    @model_validator(mode="before")
    @classmethod
    def _from_wire(cls, data: Any) -> Any:
        if isinstance(data, dict):
            inner = data.get("resourceAction", data)
            resource = inner.get("resource") if isinstance(inner, dict) else None
            if isinstance(resource, dict):
                return {
                    "resource_type": resource.get("type"),
                    "resource_name": resource.get("name"),
                    "action": inner.get("action"),
                }
        return data

    @field_validator("action", mode="before")
    @classmethod
    def _upper_action(cls, value: Any) -> Any:
        return value.upper() if isinstance(value, str) else value

    def to_wire(self) -> dict[str, Any]:
        """The ``ResourceAction`` JSON that ``POST .../permissions`` accepts."""
        return {"resource": {"name": self.resource_name, "type": self.resource_type}, "action": self.action}


_PERMISSIONS = TypeAdapter(frozenset[Permission])
PermissionSet = Annotated[frozenset[Permission], PlainSerializer(_sorted, return_type=list[Permission])]


class Role(WireModel):
    """A role and its permissions.

    ``users`` is set only when read with ``full``; ``groups`` (group mappings holding the
    role) only with ``full`` and without ``simplify_permissions`` (Druid omits it then).
    """

    name: str
    permissions: PermissionSet = Field(default_factory=frozenset)
    users: NameSet | None = None
    groups: NameSet | None = None


RoleSet = Annotated[frozenset[Role], PlainSerializer(_sorted, return_type=list[Role])]


class UserWithRoles(WireModel):
    """``GET .../users/{u}?full&simplifyPermissions``: a user with each role's permissions.

    Roles the user references that no longer exist are absent (Druid skips them).
    """

    name: str
    roles: RoleSet = Field(default_factory=frozenset)

    @property
    def role_names(self) -> frozenset[str]:
        return frozenset(role.name for role in self.roles)

    @property
    def permissions(self) -> frozenset[Permission]:
        """Everything the user may do, through any role."""
        return frozenset(p for role in self.roles for p in role.permissions)


class GroupMapping(WireModel):
    """An LDAP group pattern (a DN, optionally with a leading ``*,`` or a trailing ``,*``; not a
    regex: see group_pattern.py) mapped to role names. Druid stores any string."""

    name: str
    # Druid stores what it is given: a mapping POSTed without a pattern reads back as null,
    # and null role names are kept. Neither may break a read.
    group_pattern: str | None = None
    roles: NameSet = Field(default_factory=frozenset)

    @field_validator("roles", mode="before")
    @classmethod
    def _drop_null_roles(cls, value: Any) -> Any:
        return [role for role in value if role is not None] if isinstance(value, list) else value


class AuthorizerMaps(WireModel):
    """An authorizer's whole store as its cache-sync endpoints give it: users with their role
    names, roles with their permissions and group mappings (read with ``group_mappings``)."""

    users: dict[str, AuthorizerUser] = Field(default_factory=dict)
    roles: dict[str, Role] = Field(default_factory=dict)
    group_mappings: dict[str, GroupMapping] | None = None


class _CachedUserMap(WireModel):
    user_map: dict[str, AuthorizerUser]
    role_map: dict[str, Role]


class _CachedGroupMappingMap(WireModel):
    group_mapping_map: dict[str, GroupMapping]


_AUTHENTICATOR_MAP = TypeAdapter(dict[str, AuthenticatorUser])
_CACHED_USERS = TypeAdapter(_CachedUserMap)
_CACHED_MAPPINGS = TypeAdapter(_CachedGroupMappingMap)
