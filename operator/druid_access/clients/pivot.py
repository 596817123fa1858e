"""Typed async client of Imply Pivot's connections API (``/api/v1/connections``).

Who calls it: the DruidConnection resource module and the ``export``/``diff`` commands.
Like the Coordinator client it has no policy and raises only the error tree of
``druid_access.clients.errors``. Authentication is the ``x-imply-api-token`` header.

``PivotConnection`` models every property of Imply's published connections API (external;
what this repository relies on, and the tests that pin it, are in docs/druid-and-pivot.md).
Secret properties (the
``defaultDbAuthToken`` password, TLS ``key`` and ``passphrase``, ``sockPassword``) are
``SecretStr``: they print as ``**********`` and ``model_dump()`` masks them; only
``to_wire()`` (what the client sends) reveals them. Properties the API does not document
are kept (``extra="allow"``) so a read-modify-write round trip loses nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Annotated, Any, Literal

import httpx
from pydantic import (
    BaseModel,
    ConfigDict,
    JsonValue,
    PlainSerializer,
    SecretStr,
    SerializationInfo,
)
from pydantic.alias_generators import to_camel

from druid_access.clients._http import HttpOptions, JsonClient, JsonTransport, build_path, reveal, segment
from druid_access.clients.errors import check_pivot_response

__all__ = [
    "ConnectionProtocol",
    "ConnectionType",
    "DbAuthToken",
    "PivotClient",
    "PivotConnection",
]

ConnectionType = Literal["druid", "druidsql"]
ConnectionProtocol = Literal["plain", "tls", "tls-loose"]

CONNECTIONS = "api/v1/connections"
TOKEN_HEADER = "x-imply-api-token"
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


class PivotClient(JsonClient):
    """Async client of one Pivot server. Use as ``async with PivotClient(url, token=...) as p:``
    or call ``aclose()``. Pivot must run in native users mode without ``fixedConnections``."""

    def __init__(
        self,
        base_url: str,
        *,
        token: SecretStr | str,
        options: HttpOptions | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        on_answer: Callable[[], object] | None = None,
    ) -> None:
        secret = reveal(token)
        self._http = JsonTransport(
            base_url=base_url,
            target="pivot",
            check=check_pivot_response,
            options=options or HttpOptions(),
            headers={TOKEN_HEADER: secret},
            secrets=(secret,),
            transport=transport,
            on_answer=on_answer,
        )

    def __repr__(self) -> str:
        return f"PivotClient({str(self._http.client.base_url)!r})"

    async def list_connections(self) -> tuple[PivotConnection, ...]:
        response = await self._http.request("GET", build_path(CONNECTIONS))
        return self._http.parse(response, _ConnectionList).connections

    async def get_connection(self, name: str) -> PivotConnection:
        response = await self._http.request("GET", build_path(CONNECTIONS, segment(name)))
        return self._http.parse(response, PivotConnection)

    async def create_connection(self, connection: PivotConnection) -> PivotConnection:
        """Create; raises ``AlreadyExists`` for a taken name. Returns the stored connection
        as Pivot echoes it (or ``connection`` if the answer has none)."""
        response = await self._http.request(
            "POST", build_path(CONNECTIONS), json=connection.to_wire(), secrets=connection.secret_values()
        )
        return self._echoed(response, connection)

    async def update_connection(self, connection: PivotConnection) -> PivotConnection:
        """Replace the connection named ``connection.name`` with exactly ``connection``.

        Pivot recreates the object from the body, so it must be complete: read, modify, send.
        The name cannot change (body and URL name are the same by construction). Raises
        ``NotFound`` when there is no such connection.
        """
        response = await self._http.request(
            "POST",
            build_path(CONNECTIONS, segment(connection.name)),
            json=connection.to_wire(),
            secrets=connection.secret_values(),
        )
        return self._echoed(response, connection)

    async def delete_connection(self, name: str) -> None:
        await self._http.request("DELETE", build_path(CONNECTIONS, segment(name)))

    def _echoed(self, response: httpx.Response, sent: PivotConnection) -> PivotConnection:
        if not response.content.strip():
            return sent
        return self._http.parse(response, _ConnectionEnvelope).connection or sent
