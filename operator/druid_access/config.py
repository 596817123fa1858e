"""The operator's configuration: which Druid clusters and Pivot instances it may manage.

Read once at start-up from a YAML file (the Helm chart renders it into a ConfigMap). A file
that does not validate stops start-up with ``ConfigError`` naming each bad key, because an
operator running on a half-understood configuration is worse than one that does not run.
Credentials are never in this file: it names Secrets in the operator's own namespace.
"""

from __future__ import annotations

import fnmatch
import os
import unicodedata
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlsplit

import yaml
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, field_validator
from pydantic.alias_generators import to_camel

from druid_access.clients.redirects import parse_host_rule

DEFAULT_PROTECTED_USERS = ("admin", "druid_system")
DEFAULT_PROTECTED_ROLES = ("admin", "druid_system")


def _no_credentials(url: str) -> str:
    # The clients refuse such a URL on every request; refused here, the operator does not start
    # on it. (Generated Secrets would hand a broker or router URL's credentials to tenants.)
    if "@" in urlsplit(url).netloc:
        raise ValueError("must not embed credentials (user:password@): name a Secret instead")
    return url


_Url = Annotated[str, Field(pattern=r"^https?://"), AfterValidator(_no_credentials)]

_TargetName = Annotated[str, Field(pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", max_length=63)]
# A Secret's name as Kubernetes allows it (a DNS subdomain): no '/' or '..' to reach another path.
_SecretName = Annotated[
    str, Field(pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$", max_length=253)
]


def _matches(namespace: str, globs: tuple[str, ...]) -> bool:
    return any(fnmatch.fnmatchcase(namespace, pattern) for pattern in globs)


class ConfigError(Exception):
    """The configuration file is missing, unreadable or invalid; the message names the keys."""


class _Model(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid", frozen=True)


class SecretKeys(_Model):
    """A Secret in the operator's namespace and the keys read from it."""

    name: _SecretName
    username_key: str = "username"
    password_key: str = "password"


class TokenSecret(_Model):
    """A Secret in the operator's namespace holding an API token."""

    name: _SecretName
    key: str = "token"


class ProtectedPrincipals(_Model):
    """Remote names the operator never modifies or deletes.

    Druid re-creates ``admin`` and ``druid_system`` at start-up and the operator signs in as
    one of them: managing them would fight the server or lock the operator out. Remove a name
    from these lists to let a resource manage it.
    """

    users: tuple[str, ...] = DEFAULT_PROTECTED_USERS
    roles: tuple[str, ...] = DEFAULT_PROTECTED_ROLES
    group_mappings: tuple[str, ...] = ()
    connections: tuple[str, ...] = ()

    def user(self, name: str) -> bool:
        return _in(name, self.users)

    def role(self, name: str) -> bool:
        return _in(name, self.roles)

    def group_mapping(self, name: str) -> bool:
        return _in(name, self.group_mappings)

    def connection(self, name: str) -> bool:
        return _in(name, self.connections)

    def of(self, family: str, name: str) -> bool:
        """Is ``name`` protected among the kind ``family`` (user, role, groupMapping, connection)?"""
        names = {
            "user": self.users,
            "role": self.roles,
            "groupMapping": self.group_mappings,
            "connection": self.connections,
        }[family]
        return _in(name, names)


def principal_key(name: str) -> str:
    """How protected names compare: NFKC-normalised and case-folded, so that look-alikes such
    as ``Admin`` or a full-width (U+FF41...) spelling count as the protected ``admin``."""
    return unicodedata.normalize("NFKC", name).casefold()


def _in(name: str, names: tuple[str, ...]) -> bool:
    key = principal_key(name)
    return any(principal_key(candidate) == key for candidate in names)


class _Target(_Model):
    ca_bundle: Path | None = Field(default=None, description="PEM file of CAs to trust (TLS).")
    allowed_namespaces: tuple[str, ...] = Field(
        default=("*",), description="Globs of namespaces whose resources may manage this target."
    )
    resync_seconds: float = Field(default=300.0, gt=0, description="Period of drift detection.")
    timeout_seconds: float = Field(default=10.0, gt=0, description="Per-request timeout.")
    adoption_namespaces: tuple[str, ...] = Field(
        default=(),
        description=(
            "Globs of namespaces whose resources may use adoptionPolicy Adopt (take over a remote "
            "object they did not create). Default: none."
        ),
    )
    protected: ProtectedPrincipals = ProtectedPrincipals()

    def allows(self, namespace: str) -> bool:
        return _matches(namespace, self.allowed_namespaces)

    def allows_adoption(self, namespace: str) -> bool:
        return _matches(namespace, self.adoption_namespaces)


class ClusterConfig(_Target):
    """A Druid cluster reached through its Coordinator's basic-security API."""

    coordinator_url: _Url = Field(description="Base URL of the Coordinator.")
    authenticator: str = Field(default="basic", min_length=1)
    authorizer: str = Field(default="basic", min_length=1)
    admin_secret: SecretKeys = Field(description="Secret with the operator's Druid credentials.")
    privileged_namespaces: tuple[str, ...] = Field(
        default=(),
        description=(
            "Globs of namespaces whose resources may grant protected roles and manage roles holding "
            "security-administration permissions (CONFIG on a name matching 'security'). Default: none."
        ),
    )

    credentials_validator: Literal["metadata", "ldap"] = Field(
        default="metadata",
        description=(
            "How the authenticator checks passwords (Druid's credentialsValidator.type). With 'ldap' "
            "passwords live in the directory: a DruidUser with spec.password is InvalidSpec, since "
            "Druid would store the password and never use it."
        ),
    )
    broker_url: _Url | None = Field(
        default=None,
        description=(
            "The URL applications query Druid at through a Broker. Written as brokerUrl into the "
            "Secrets the operator generates for DruidUsers, beside username and password."
        ),
    )
    router_url: _Url | None = Field(
        default=None,
        description="The URL of the cluster's Router, written as routerUrl into generated Secrets.",
    )
    leader_hosts: tuple[str, ...] = Field(
        default=(),
        description=(
            "Where the Coordinator may redirect the operator, with its credentials: when several "
            "Coordinators run behind coordinatorUrl, the others redirect to the leader's own address. "
            "Host-name globs with an optional ':port' ('*.druid-coordinator.druid.svc', "
            "'10.0.0.12:8281') or CIDR networks ('10.0.0.0/8'). coordinatorUrl's own host and port "
            "are always allowed; https to http never is. Default: none."
        ),
    )

    @field_validator("leader_hosts")
    @classmethod
    def _host_rules(cls, entries: tuple[str, ...]) -> tuple[str, ...]:
        for entry in entries:
            parse_host_rule(entry)  # a mistyped entry would never match: refuse it at start-up
        return entries

    def privileged(self, namespace: str) -> bool:
        return _matches(namespace, self.privileged_namespaces)

    def consumer_urls(self) -> dict[str, str]:
        """The URLs a generated user Secret carries for applications, by key."""
        urls = {"brokerUrl": self.broker_url, "routerUrl": self.router_url}
        return {key: url for key, url in urls.items() if url}


class PivotConfig(_Target):
    """An Imply Pivot instance reached through its connections API."""

    url: _Url = Field(description="Base URL of Pivot.")
    token_secret: TokenSecret = Field(description="Secret with the Pivot API token.")


class OperatorConfig(_Model):
    """The whole configuration file."""

    namespace: str = Field(
        default_factory=lambda: os.environ.get("POD_NAMESPACE", "druid-access"),
        description="Namespace of the operator, where the Secrets named here live.",
    )
    clusters: dict[_TargetName, ClusterConfig] = Field(default_factory=dict)
    pivots: dict[_TargetName, PivotConfig] = Field(default_factory=dict)


def _format(error: ValidationError) -> str:
    lines = []
    for item in error.errors():
        key = ".".join(str(part) for part in item["loc"]) or "(top level)"
        lines.append(f"{key}: {item['msg']}")
    return "invalid configuration:\n  " + "\n  ".join(lines)


def parse(data: object) -> OperatorConfig:
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError("invalid configuration: the top level must be a mapping")
    try:
        return OperatorConfig.model_validate(data)
    except ValidationError as error:
        raise ConfigError(_format(error)) from None


def load(path: Path) -> OperatorConfig:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise ConfigError(f"cannot read configuration {path}: {error.strerror}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise ConfigError(f"configuration {path} is not valid YAML: {error}") from None
    return parse(data)
