"""The clients' transport turns aiohttp's failures into the httpx exceptions the error tree reads."""

from __future__ import annotations

import ssl

import aiohttp
import httpx
import pytest

from druid_access.clients._transport import _mapped, _origin
from druid_access.clients.errors import transport_error

REQUEST = httpx.Request("GET", "http://127.0.0.1:1/x")


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (aiohttp.ConnectionTimeoutError("connect"), httpx.ConnectTimeout),
        (aiohttp.SocketTimeoutError("read"), httpx.ReadTimeout),
        (TimeoutError(), httpx.ReadTimeout),
        (aiohttp.ServerDisconnectedError(), httpx.RemoteProtocolError),
        (aiohttp.ClientOSError(104, "Connection reset by peer"), httpx.ReadError),
        (aiohttp.ClientPayloadError("truncated"), httpx.ReadError),
        (aiohttp.InvalidURL("ftp://x"), httpx.UnsupportedProtocol),
        (aiohttp.ClientError("anything else"), httpx.NetworkError),
    ],
)
def test_each_failure_becomes_what_httpx_raises_for_it(
    error: BaseException, expected: type[httpx.TransportError]
) -> None:
    mapped = _mapped(error, REQUEST)
    assert type(mapped) is expected
    assert mapped.request is REQUEST


def test_a_refused_connection_is_a_connect_error_that_says_why() -> None:
    key = aiohttp.client_reqrep.ConnectionKey("127.0.0.1", 1, False, True, None, None, None)
    refused = aiohttp.ClientConnectorError(key, ConnectionRefusedError(111, "Connect call failed"))
    mapped = _mapped(refused, REQUEST)
    assert type(mapped) is httpx.ConnectError and "Connect call failed" in str(mapped)
    error = transport_error(mapped, target="coordinator", method="GET", path="/x")
    assert type(error).__name__ == "Unavailable" and error.message.startswith("ConnectError")


def test_an_untrusted_certificate_is_found_under_the_connect_error() -> None:
    key = aiohttp.client_reqrep.ConnectionKey("druid", 8281, True, True, None, None, None)
    verification = ssl.SSLCertVerificationError(1, "certificate verify failed")
    verification.verify_code, verification.verify_message = 19, "self-signed certificate in chain"
    untrusted = aiohttp.ClientConnectorCertificateError(key, verification)
    mapped = _mapped(untrusted, REQUEST)
    try:
        raise mapped from _origin(untrusted)
    except httpx.ConnectError as raised:
        error = transport_error(raised, target="coordinator", method="GET", path="/x")
    assert type(error).__name__ == "CertificateNotTrusted"
    assert "self-signed certificate in chain" in error.message and "caBundle" in error.message
