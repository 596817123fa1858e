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

from collections.abc import Callable

import httpx
from pydantic import (
    SecretStr,
)

from druid_access.clients import _http
from druid_access.clients._http import HttpOptions, JsonClient, JsonTransport, build_path, reveal, segment
from druid_access.clients.errors import check_pivot_response
from druid_access.clients.pivot_wire import (
    ConnectionProtocol,
    ConnectionType,
    DbAuthToken,
    PivotConnection,
    _ConnectionEnvelope,
    _ConnectionList,
)

__all__ = [
    "ConnectionProtocol",
    "ConnectionType",
    "DbAuthToken",
    "PivotClient",
    "PivotConnection",
]

CONNECTIONS = "api/v1/connections"
TOKEN_HEADER = "x-imply-api-token"


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
        gate: _http.Gate | None = None,
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
            gate=gate,
        )

    def __repr__(self) -> str:
        return f"PivotClient({self.base_url!r})"

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
