"""The clients' HTTP transport: httpx's requests and responses over aiohttp's connections.

httpx's own transport (httpcore over anyio) costs about 0.86 ms of the operator's CPU per
request; with aiohttp's connection pool and C parser under httpx's interface, about 0.45 ms
(``bench/transport_cost.py``). A new user costs five or six requests, so while thousands of
objects converge this is a large share of the operator's work. aiohttp is a dependency
already (kopf's and the Kubernetes client's HTTP).

The clients keep speaking httpx: this is an ``httpx.AsyncBaseTransport``. It sends exactly
what httpx built (the URL as encoded, no header of aiohttp's own: no ``Content-Type`` on a
body-less POST, which Druid would refuse), decodes nothing (httpx does), keeps no cookies,
reads no proxy settings, retries nothing, and turns every aiohttp failure into the httpx exception httpx's own
transport raises for the same event, since the error tree (``errors.transport_error``) tells a
refused connection, a reset, a timeout and an untrusted certificate apart.
"""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator

import aiohttp
import httpx
from yarl import URL

__all__ = ["Transport"]

_CHUNK = 64 * 1024


class Transport(httpx.AsyncBaseTransport):
    """One target's connection pool, with its TLS context and connection limits."""

    def __init__(self, *, ssl_context: ssl.SSLContext, limits: httpx.Limits) -> None:
        self._context = ssl_context
        self._limits = limits
        self._session: aiohttp.ClientSession | None = None

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None:  # made on first use, inside the event loop
            connector = aiohttp.TCPConnector(
                ssl=self._context,
                limit=self._limits.max_connections or 0,
                keepalive_timeout=self._limits.keepalive_expiry or 0.0,
            )
            self._session = aiohttp.ClientSession(
                connector=connector,
                cookie_jar=aiohttp.DummyCookieJar(),
                trust_env=False,
                auto_decompress=False,
                skip_auto_headers=("Content-Type", "User-Agent", "Accept", "Accept-Encoding"),
            )
            # aiohttp sends a GET, PUT or DELETE again when its kept-alive connection was reset;
            # httpx's transport does not, and a reset must reach the error tree as Unavailable
            # (the breaker counts it). No public setting: pinned by tests/integration.
            self._session._retry_connection = False
        return self._session

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        timeout = request.extensions.get("timeout", {})
        try:
            response = await self._client().request(
                request.method,
                URL(str(request.url), encoded=True),
                headers=list(request.headers.multi_items()),
                data=await request.aread() or None,
                allow_redirects=False,
                timeout=aiohttp.ClientTimeout(
                    sock_connect=timeout.get("connect"),
                    sock_read=timeout.get("read"),
                    connect=timeout.get("pool"),
                ),
            )
        except (aiohttp.ClientError, TimeoutError) as error:
            raise _mapped(error, request) from _origin(error)
        return httpx.Response(
            status_code=response.status,
            headers=list(response.raw_headers),
            stream=_Body(response, request),
            request=request,
            extensions={"http_version": b"HTTP/1.1", "reason_phrase": (response.reason or "").encode()},
        )

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()


class _Body(httpx.AsyncByteStream):
    def __init__(self, response: aiohttp.ClientResponse, request: httpx.Request) -> None:
        self._response = response
        self._request = request

    async def __aiter__(self) -> AsyncIterator[bytes]:
        try:
            async for chunk in self._response.content.iter_chunked(_CHUNK):
                yield chunk
        except (aiohttp.ClientError, TimeoutError) as error:
            raise _mapped(error, self._request) from _origin(error)

    async def aclose(self) -> None:
        self._response.release()


def _origin(error: BaseException) -> BaseException:
    """What the error tree looks for under an httpx error: the certificate verification
    failure itself, when there is one."""
    if isinstance(error, aiohttp.ClientConnectorCertificateError):
        return error.certificate_error
    return error


def _mapped(error: BaseException, request: httpx.Request) -> httpx.TransportError:
    """The httpx exception httpx's own transport raises for the same event."""
    if isinstance(error, aiohttp.ConnectionTimeoutError):
        return httpx.ConnectTimeout(str(error) or "timed out while connecting", request=request)
    if isinstance(error, aiohttp.ServerTimeoutError | TimeoutError):
        return httpx.ReadTimeout(str(error) or "timed out while reading", request=request)
    if isinstance(error, aiohttp.ClientConnectorError):  # refused, DNS, TLS handshake
        return httpx.ConnectError(str(error.os_error), request=request)
    if isinstance(error, aiohttp.ServerDisconnectedError):
        return httpx.RemoteProtocolError("Server disconnected without sending a response.", request=request)
    if isinstance(error, aiohttp.ClientOSError | aiohttp.ClientPayloadError):  # reset, broken body
        return httpx.ReadError(str(error), request=request)
    if isinstance(error, aiohttp.InvalidURL):
        return httpx.UnsupportedProtocol(str(error), request=request)
    if isinstance(error, aiohttp.ClientResponseError):  # not HTTP, or broken HTTP
        return httpx.RemoteProtocolError(error.message or str(error), request=request)
    return httpx.NetworkError(str(error) or type(error).__name__, request=request)
