"""Pydantic models of the four custom resources: the one source of their CRD schemas.

``crdgen`` renders these models into ``crds/*.yaml``; the operator parses CR bodies with
the same models, so what the API server accepts and what the operator understands cannot
drift apart. Every field carries a description because ``kubectl explain`` shows it.

Rules the OpenAPI schema cannot express (immutability, cross-field constraints) are CEL
rules attached with ``x-kubernetes-validations``; each names the offending field in its
message, because that message is all a user sees when ``kubectl apply`` is refused.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, JsonValue, ValidationError
from pydantic.alias_generators import to_camel

from druid_access import group_pattern

GROUP = "druidaccess.io"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"
# The label a Secret carries to be read for a resource (the opt-in of the security model).
ALLOW_LABEL = f"{GROUP}/allow"

# Druid stores any string, but names travel as one URL path segment: `/` cannot pass
# Jetty, a leading `.` makes `.`/`..` path tricks, and `:` splits the Basic-auth header (a
# user with `:` in its name can never log in). Control and format characters (Unicode Cc,
# Cf: tabs, newlines, zero-width spaces, bidi overrides), line/paragraph separators and
# leading or trailing whitespace are refused too: they make a name look like another one
# (`ad\u200bmin`, `admin `) in every console, log and review. The syntax is shared by Go's
# RE2 (the API server) and Rust's regex (pydantic), and both were checked to agree.
_INVISIBLE = r"\p{Cc}\p{Cf}\p{Zl}\p{Zp}"
_EDGE = r"\s\p{Z}" + _INVISIBLE


def _name_pattern(extra: str = "") -> str:
    return rf"^[^./{extra}{_EDGE}](?:[^/{extra}{_INVISIBLE}]*[^/{extra}{_EDGE}])?$"


_NO_SLASH_NO_DOT_START = _name_pattern()
_USER_NAME = _name_pattern(":")
_NAME_MAX = 256
# Kubernetes object names (Secrets) are DNS subdomains.
_K8S_NAME = r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$"
_SECRET_KEY = r"^[-._a-zA-Z0-9]+$"
_TARGET = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"


def _cel(rule: str, message: str, field_path: str | None = None) -> dict[str, JsonValue]:
    validation: dict[str, JsonValue] = {"rule": rule, "message": message}
    if field_path:
        validation["fieldPath"] = field_path
    return validation


class Model(BaseModel):
    """Shared base: camelCase on the wire, unknown fields refused, values immutable."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="forbid",
        frozen=True,
        use_enum_values=False,
    )


class DeletionPolicy(StrEnum):
    # What deleting the resource does to the remote object it owns.
    DELETE = "Delete"
    RETAIN = "Retain"


class AdoptionPolicy(StrEnum):
    # What happens when the remote name already exists and this resource did not create it.
    REFUSE = "Refuse"
    ADOPT = "Adopt"


class DriftPolicy(StrEnum):
    # What happens when the remote object no longer matches a spec it was synced to.
    CORRECT = "Correct"
    REPORT = "Report"


class ResourceType(StrEnum):
    # The Druid resource types a permission can name.
    DATASOURCE = "DATASOURCE"
    VIEW = "VIEW"
    CONFIG = "CONFIG"
    STATE = "STATE"
    SYSTEM_TABLE = "SYSTEM_TABLE"
    QUERY_CONTEXT = "QUERY_CONTEXT"
    EXTERNAL = "EXTERNAL"


class Action(StrEnum):
    # What a permission allows on its resources (WRITE does not imply READ).
    READ = "READ"
    WRITE = "WRITE"


class ConnectionTypeSpec(StrEnum):
    # How Pivot queries Druid through a connection: native queries or SQL.
    DRUID = "druid"
    DRUIDSQL = "druidsql"


class ConnectionProtocolSpec(StrEnum):
    # How Pivot reaches Druid: plain HTTP, TLS, or TLS without verification.
    PLAIN = "plain"
    TLS = "tls"
    TLS_LOOSE = "tls-loose"


class DbAuthTokenType(StrEnum):
    # The kind of credentials Pivot sends to Druid.
    BASIC_AUTH = "basic-auth"


UserName = Annotated[
    str,
    Field(
        min_length=1,
        max_length=_NAME_MAX,
        pattern=_USER_NAME,
        description=(
            "A Druid user name: no '/', no ':', no control or invisible format characters, no "
            "whitespace at either end, not starting with '.'."
        ),
    ),
]
RoleName = Annotated[
    str,
    Field(
        min_length=1,
        max_length=_NAME_MAX,
        pattern=_NO_SLASH_NO_DOT_START,
        description=(
            "A Druid role name: no '/', no control or invisible format characters, no whitespace "
            "at either end, not starting with '.'."
        ),
    ),
]


class SecretKeyRef(Model):
    """A key of a Secret in the CR's own namespace: the only way secret material enters a spec."""

    name: str = Field(
        min_length=1,
        max_length=253,
        pattern=_K8S_NAME,
        description="Name of a Secret in the same namespace as this object.",
    )
    key: str = Field(
        min_length=1,
        max_length=253,
        pattern=_SECRET_KEY,
        description="Key within the Secret's data whose value is used.",
    )


class CommonSpec(Model):
    """Fields every kind shares: deletion, adoption, drift handling and suspension."""

    deletion_policy: DeletionPolicy = Field(
        default=DeletionPolicy.DELETE,
        description="Delete removes the remote object when this resource is deleted; Retain leaves it.",
    )
    adoption_policy: AdoptionPolicy = Field(
        default=AdoptionPolicy.REFUSE,
        description=(
            "What to do when the remote object already exists and this resource has not claimed it: "
            "Refuse leaves it untouched and reports AlreadyExists; Adopt takes it over."
        ),
    )
    drift_policy: DriftPolicy = Field(
        default=DriftPolicy.CORRECT,
        description=(
            "Correct reverts changes made to the remote object outside this resource; Report only "
            "records them in a Drifted condition."
        ),
    )
    suspend: bool = Field(
        default=False,
        description=(
            "When true the operator makes no remote call for this object until it is false again; "
            "deleting the object meanwhile leaves its remote object in place."
        ),
    )


_NAME_IMMUTABLE = _cel(
    "has(self.name) == has(oldSelf.name) && (!has(self.name) || self.name == oldSelf.name)",
    "spec.name is immutable: create a new object to manage a different remote name",
    ".name",
)
_IMMUTABLE = "self == oldSelf"


class DruidSpec(CommonSpec):
    """Fields shared by the kinds reconciled against a Druid Coordinator."""

    cluster: str = Field(
        default="default",
        min_length=1,
        max_length=63,
        pattern=_TARGET,
        description="Name of the Druid cluster in the operator configuration. Immutable.",
        json_schema_extra={
            "x-kubernetes-validations": [
                _cel(_IMMUTABLE, "spec.cluster is immutable: create a new object for another cluster")
            ]
        },
    )


class PasswordSource(Model):
    """Where a DruidUser's password comes from."""

    secret_key_ref: SecretKeyRef = Field(description="The Secret key holding the password.")
    generate: bool = Field(
        default=False,
        description=(
            "When the Secret does not exist, create it with a random password (owned by this "
            "DruidUser). When false a missing Secret is reported as SecretNotFound."
        ),
    )


class DruidUserSpec(DruidSpec):
    """A user in the cluster's authenticator (credentials) and authorizer (role assignments)."""

    model_config = ConfigDict(json_schema_extra={"x-kubernetes-validations": [_NAME_IMMUTABLE]})

    name: UserName | None = Field(
        default=None,
        description="The Druid user name. Defaults to metadata.name. Immutable.",
    )
    roles: list[RoleName] = Field(
        default_factory=list,
        max_length=256,
        description="The complete set of roles assigned to the user; roles not listed are removed.",
        json_schema_extra={"x-kubernetes-list-type": "set"},
    )
    password: PasswordSource | None = Field(
        default=None,
        description=(
            "The user's password, by Secret reference. Omit for users that authenticate elsewhere "
            "(LDAP): they are created in the authorizer only."
        ),
    )


class ResourceSpec(Model):
    """The resource a permission applies to."""

    type: ResourceType = Field(description="The Druid resource type.")
    name: str = Field(
        min_length=1,
        max_length=1024,
        description=(
            "A Java regular expression matched against the whole resource name (`wiki` does not "
            "match `wikipedia`; use `wiki.*`)."
        ),
    )


class PermissionSpec(Model):
    """One action allowed on the resources matching a pattern."""

    resource: ResourceSpec = Field(description="The resources the action is allowed on.")
    action: Action = Field(description="READ or WRITE. WRITE does not imply READ.")


class DruidRoleSpec(DruidSpec):
    """A role in the cluster's authorizer with its complete permission list."""

    model_config = ConfigDict(json_schema_extra={"x-kubernetes-validations": [_NAME_IMMUTABLE]})

    name: RoleName | None = Field(
        default=None,
        description="The Druid role name. Defaults to metadata.name. Immutable.",
    )
    permissions: list[PermissionSpec] = Field(
        default_factory=list,
        max_length=512,
        description="The complete list of permissions; the remote list is replaced to match it.",
    )


class DruidGroupMappingSpec(DruidSpec):
    """An LDAP group mapping in the cluster's authorizer."""

    model_config = ConfigDict(json_schema_extra={"x-kubernetes-validations": [_NAME_IMMUTABLE]})

    name: RoleName | None = Field(
        default=None,
        description="The group mapping name. Defaults to metadata.name. Immutable.",
    )
    group_pattern: str = Field(
        min_length=1,
        max_length=1024,
        pattern=group_pattern.SCHEMA_PATTERN,
        description=(
            "The LDAP groups whose members get the roles, as Druid reads it: an LDAP distinguished "
            f"name (DN) such as {group_pattern.EXAMPLE} (that group), optionally with a leading "
            "'*,' (any group at or under that DN) or a trailing ',*' (any group whose DN begins with "
            "it). Not a regular expression: a pattern Druid cannot parse as a DN fails every LDAP "
            "user's requests, so the operator refuses it (InvalidSpec) before anything is sent."
        ),
    )
    roles: list[RoleName] = Field(
        default_factory=list,
        max_length=256,
        description="The complete set of roles granted to members of matching groups.",
        json_schema_extra={"x-kubernetes-list-type": "set"},
    )


class DbAuthTokenSpec(Model):
    """Credentials Pivot uses to query Druid through this connection."""

    type: DbAuthTokenType = Field(default=DbAuthTokenType.BASIC_AUTH, description="Token type.")
    username: str = Field(min_length=1, max_length=_NAME_MAX, description="Druid user name.")
    password_secret_ref: SecretKeyRef = Field(description="Secret key holding the Druid user's password.")


class TlsSettings(Model):
    """TLS material for protocol tls, each by Secret reference."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                _cel(
                    "has(self.cert) == has(self.key)",
                    "spec.tls.cert and spec.tls.key must be given together",
                ),
                _cel(
                    "!has(self.passphrase) || has(self.key)",
                    "spec.tls.passphrase is only allowed with spec.tls.key",
                    ".passphrase",
                ),
            ]
        }
    )

    ca: SecretKeyRef | None = Field(default=None, description="Trusted CA certificate (PEM).")
    cert: SecretKeyRef | None = Field(default=None, description="Client certificate (PEM).")
    key: SecretKeyRef | None = Field(default=None, description="Client private key (PEM).")
    passphrase: SecretKeyRef | None = Field(default=None, description="Passphrase of the private key.")


class SocksProxy(Model):
    """A SOCKS proxy through which Pivot reaches Druid."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                _cel(
                    "!has(self.passwordSecretRef) || has(self.username)",
                    "spec.socks.passwordSecretRef requires spec.socks.username",
                    ".passwordSecretRef",
                )
            ]
        }
    )

    host: str = Field(min_length=1, max_length=512, description="Proxy host[:port].")
    username: str | None = Field(default=None, max_length=_NAME_MAX, description="Proxy user.")
    password_secret_ref: SecretKeyRef | None = Field(
        default=None, description="Secret key holding the proxy user's password."
    )


class DruidConnectionSpec(CommonSpec):
    """A Pivot connection to a Druid cluster."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                _NAME_IMMUTABLE,
                _cel(
                    "!has(self.tls) || self.protocol == 'tls'",
                    "spec.tls is only allowed when spec.protocol is tls",
                    ".tls",
                ),
            ]
        }
    )

    name: RoleName | None = Field(
        default=None,
        description="The Pivot connection name. Defaults to metadata.name. Immutable.",
    )
    pivot: str = Field(
        default="default",
        min_length=1,
        max_length=63,
        pattern=_TARGET,
        description="Name of the Pivot instance in the operator configuration. Immutable.",
        json_schema_extra={
            "x-kubernetes-validations": [
                _cel(_IMMUTABLE, "spec.pivot is immutable: create a new object for another Pivot")
            ]
        },
    )
    type: ConnectionTypeSpec = Field(default=ConnectionTypeSpec.DRUID, description="druid or druidsql.")
    query_hosts: list[Annotated[str, Field(min_length=1, max_length=512)]] = Field(
        min_length=1,
        max_length=64,
        description="Host names (with ports or URLs) of the Druid routers/brokers to query.",
    )
    title: str | None = Field(
        default=None, max_length=256, description="Title shown as the connection name in Pivot."
    )
    timeout: int | None = Field(
        default=None, ge=1, le=3_600_000, description="Query timeout in milliseconds."
    )
    default_db_auth_token: DbAuthTokenSpec | None = Field(
        default=None, description="Default credentials Pivot uses towards Druid."
    )
    protocol: ConnectionProtocolSpec = Field(
        default=ConnectionProtocolSpec.PLAIN,
        description="plain, tls, or tls-loose (TLS without certificate checks: for testing only).",
    )
    tls: TlsSettings | None = Field(default=None, description="TLS material; only with protocol tls.")
    decorator: str | None = Field(
        default=None, max_length=1024, description="A JavaScript file that decorates Druid requests."
    )
    decorator_options: dict[str, Any] | None = Field(
        default=None, description="Options passed to the decorator."
    )
    socks: SocksProxy | None = Field(default=None, description="SOCKS proxy settings.")


class ConditionStatus(StrEnum):
    TRUE = "True"
    FALSE = "False"
    UNKNOWN = "Unknown"


class Condition(Model):
    """A Kubernetes-style condition."""

    type: str = Field(description="Condition type, e.g. Ready or Drifted.")
    status: ConditionStatus = Field(description="True, False or Unknown.")
    reason: str = Field(description="Machine-readable CamelCase reason, e.g. Synced or RoleNotFound.")
    message: str = Field(default="", description="Human-readable explanation.")
    last_transition_time: datetime | None = Field(default=None, description="When the status last changed.")
    observed_generation: int | None = Field(
        default=None, description="The metadata.generation this condition was computed for."
    )


class ResourceStatus(Model):
    """Observed state written by the operator."""

    model_config = ConfigDict(extra="ignore")

    observed_generation: int | None = Field(
        default=None, description="The metadata.generation last reconciled."
    )
    remote_name: str | None = Field(default=None, description="Name of the remote object managed.")
    conditions: list[Condition] = Field(
        default_factory=list,
        description="Current conditions: Ready, and Drifted or DeletionBlocked when they apply.",
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["type"]},
    )
    last_sync_time: datetime | None = Field(
        default=None, description="When the remote object was last confirmed in sync."
    )
    owned: bool | None = Field(
        default=None,
        description=(
            "True once this object created or adopted the remote object; false when it found the "
            "object pre-existing and refused to take it over."
        ),
    )
    secret_version: str | None = Field(
        default=None,
        description=(
            "resourceVersion of the Secret(s) last applied; never the secret value or a hash of it."
        ),
    )
    secret: str | None = Field(
        default=None,
        description=(
            "DruidUser: the Secret applications mount to log in as this user (its password; when "
            "generated, also username and the cluster's brokerUrl/routerUrl)."
        ),
    )
    drift_count: int | None = Field(
        default=None, description="How many times drift was detected on the remote object."
    )


def validation_message(error: ValidationError, limit: int = 5) -> str:
    """Where a spec fails its model, each place as ``spec.<path>: <why>``, never its values."""
    parts = [
        f"spec.{'.'.join(str(p) for p in item['loc'])}: {item['msg']}" for item in error.errors()[:limit]
    ]
    return "; ".join(parts)


class KindInfo:
    """What crdgen and the operator need to know about one kind."""

    def __init__(
        self,
        *,
        kind: str,
        plural: str,
        short_name: str,
        spec: type[Model],
        description: str,
        target_field: str,
    ) -> None:
        self.kind = kind
        self.plural = plural
        self.singular = kind.lower()
        self.short_name = short_name
        self.spec = spec
        self.description = description
        self.target_field = target_field

    @property
    def crd_name(self) -> str:
        return f"{self.plural}.{GROUP}"


DRUID_USER = KindInfo(
    kind="DruidUser",
    plural="druidusers",
    short_name="duser",
    spec=DruidUserSpec,
    target_field="cluster",
    description=(
        "A Druid basic-security user: credentials in the authenticator and role assignments in "
        "the authorizer."
    ),
)
DRUID_ROLE = KindInfo(
    kind="DruidRole",
    plural="druidroles",
    short_name="drole",
    spec=DruidRoleSpec,
    target_field="cluster",
    description="A Druid basic-security role with its complete permission list.",
)
DRUID_GROUP_MAPPING = KindInfo(
    kind="DruidGroupMapping",
    plural="druidgroupmappings",
    short_name="dgm",
    spec=DruidGroupMappingSpec,
    target_field="cluster",
    description="A Druid basic-security LDAP group mapping: an LDAP group pattern and its roles.",
)
DRUID_CONNECTION = KindInfo(
    kind="DruidConnection",
    plural="druidconnections",
    short_name="dconn",
    spec=DruidConnectionSpec,
    target_field="pivot",
    description="An Imply Pivot connection to a Druid cluster.",
)
KINDS: tuple[KindInfo, ...] = (DRUID_USER, DRUID_ROLE, DRUID_GROUP_MAPPING, DRUID_CONNECTION)
