"""Pivot's wire models: a connection as its connections API sends and accepts it.

Pure data (pydantic), apart from the client that speaks HTTP (``pivot``), so that the kinds'
plans can use them without importing any I/O. Secret properties are ``SecretStr`` and are
revealed only when serialised with the ``reveal_secrets`` context (what the client sends).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    JsonValue,
    PlainSerializer,
    SecretStr,
    SerializationInfo,
)
from pydantic.alias_generators import to_camel

ConnectionType = Literal["druid", "druidsql"]
ConnectionProtocol = Literal["plain", "tls", "tls-loose"]

_REVEAL = "reveal_secrets"


def _dump_secret(value: SecretStr, info: SerializationInfo) -> str:
    context = info.context
    if isinstance(context, dict) and context.get(_REVEAL):
        return value.get_secret_value()
    return str(value)  # the mask, so an accidental model_dump() cannot leak


WireSecret = Annotated[SecretStr, PlainSerializer(_dump_secret, return_type=str)]


class PivotModel(BaseModel):
    """Shared base: camelCase on the wire, immutable, unknown properties kept.

    ``repr`` shows the names of unknown properties but not their values, since an unknown
    property may well be a secret this model does not know about.
    """

    model_config = ConfigDict(
        alias_generator=to_camel,
        validate_by_name=True,
        validate_by_alias=True,
        frozen=True,
        extra="allow",
    )

    def __repr_args__(self) -> Iterator[tuple[str | None, Any]]:
        extra = self.model_extra or {}
        for key, value in super().__repr_args__():
            yield (key, "<hidden>") if key in extra else (key, value)

    def secret_values(self) -> Iterator[str]:
        """Every non-empty secret in this object (for scrubbing error messages)."""
        for name in type(self).model_fields:
            value = getattr(self, name)
            if isinstance(value, SecretStr) and value.get_secret_value():
                yield value.get_secret_value()
            elif isinstance(value, PivotModel):
                yield from value.secret_values()


class DbAuthToken(PivotModel):
    """Credentials Pivot uses towards Druid, e.g. ``{"type": "basic-auth", "username", "password"}``."""

    type: str = "basic-auth"
    username: str | None = None
    password: WireSecret | None = None


class PivotConnection(PivotModel):
    """A Pivot connection to a Druid cluster; every property the API documents.

    ``timeout`` is in milliseconds. ``ca``/``cert`` are certificates (public); ``key``,
    ``passphrase`` and ``sock_password`` are secrets.
    """

    name: str
    type: ConnectionType
    query_hosts: tuple[str, ...] | None = None
    title: str | None = None
    timeout: int | None = None
    default_db_auth_token: DbAuthToken | None = None
    protocol: ConnectionProtocol | None = None
    ca: str | None = None
    cert: str | None = None
    key: WireSecret | None = None
    passphrase: WireSecret | None = None
    decorator: str | None = None
    decorator_options: dict[str, JsonValue] | None = None
    sock_host: str | None = None
    sock_username: str | None = None
    sock_password: WireSecret | None = None

    def to_wire(self) -> dict[str, Any]:
        """The JSON body Pivot expects: camelCase, secrets revealed, unset properties omitted.

        Unknown properties are sent back as received, nulls included.
        """
        body = self.model_dump(mode="json", by_alias=True, exclude_none=True, context={_REVEAL: True})
        body.update({k: v for k, v in (self.model_extra or {}).items() if v is None})
        return body


class _ConnectionList(PivotModel):
    connections: tuple[PivotConnection, ...] = ()


class _ConnectionEnvelope(PivotModel):
    connection: PivotConnection | None = None
