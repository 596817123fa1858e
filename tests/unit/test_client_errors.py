"""The client error tree: status/message classification, trimming and secret scrubbing.

Responses are built in memory (no server): this is the pure mapping that both clients call.
"""

from __future__ import annotations

import httpx
import pytest

from druid_access import clients
from druid_access.clients import errors
from druid_access.clients.errors import (
    MESSAGE_LIMIT,
    AlreadyExists,
    ApiError,
    Conflict,
    Forbidden,
    Invalid,
    NotFound,
    RateLimited,
    ServerError,
    Unauthorized,
    Unavailable,
    UnknownAuthenticator,
    UnknownAuthorizer,
    check_coordinator_response,
    check_pivot_response,
    scrub,
    transport_error,
)

SECRET = "canary-S3cr3t-pw"
BASE = "http://coordinator.example:8081"
AUTHZ = f"{BASE}/druid-ext/basic-security/authorization/db/basic"


def _response(
    status: int,
    *,
    json: object = None,
    text: str | None = None,
    method: str = "POST",
    url: str = f"{AUTHZ}/users/alice",
    headers: dict[str, str] | None = None,
) -> httpx.Response:
    request = httpx.Request(method, url, headers={"Authorization": "Basic c2VjcmV0"})
    if json is not None:
        return httpx.Response(status, json=json, request=request, headers=headers)
    return httpx.Response(status, text=text or "", request=request, headers=headers)


def _coordinator_error(response: httpx.Response, secrets: tuple[str, ...] = ()) -> ApiError:
    with pytest.raises(ApiError) as info:
        check_coordinator_response(response, secrets=secrets)
    return info.value


def _pivot_error(response: httpx.Response, secrets: tuple[str, ...] = ()) -> ApiError:
    with pytest.raises(ApiError) as info:
        check_pivot_response(response, secrets=secrets)
    return info.value


def test_tree_shape() -> None:
    assert issubclass(UnknownAuthenticator, NotFound)
    assert issubclass(UnknownAuthorizer, NotFound)
    assert issubclass(RateLimited, Unavailable)
    for cls in (
        NotFound,
        AlreadyExists,
        Conflict,
        Invalid,
        Unauthorized,
        Forbidden,
        ServerError,
        Unavailable,
    ):
        assert issubclass(cls, ApiError)
    # Siblings must not catch each other: "delete treats NotFound as done" relies on it.
    assert not issubclass(Conflict, NotFound)
    assert not issubclass(UnknownAuthorizer, UnknownAuthenticator)


def test_public_surface_is_stable() -> None:
    expected = {
        "Action",
        "AlreadyExists",
        "ApiError",
        "AuthenticatorName",
        "AuthenticatorUser",
        "AuthorizerMaps",
        "AuthorizerName",
        "AuthorizerUser",
        "Conflict",
        "CertificateNotTrusted",
        "ConnectionProtocol",
        "ConnectionType",
        "CoordinatorClient",
        "DbAuthToken",
        "Forbidden",
        "GroupMapping",
        "HttpOptions",
        "Invalid",
        "NotFound",
        "Permission",
        "PivotClient",
        "PivotConnection",
        "RateLimited",
        "RedirectRefused",
        "Role",
        "ServerError",
        "StoredCredentials",
        "Unauthorized",
        "Unavailable",
        "UnexpectedResponse",
        "UnknownAuthenticator",
        "UnknownAuthorizer",
        "UserWithRoles",
    }
    assert set(clients.__all__) == expected
    for name in clients.__all__:
        assert getattr(clients, name) is not None
    for name in errors.__all__:
        assert hasattr(errors, name)


@pytest.mark.parametrize(
    ("message", "cls", "entity", "entity_name"),
    [
        ("User [alice] does not exist.", NotFound, "user", "alice"),
        ("Role [reader] does not exist.", NotFound, "role", "reader"),
        ("Group mapping [ldap admins] does not exist.", NotFound, "groupMapping", "ldap admins"),
        ("User [alice] already exists.", AlreadyExists, "user", "alice"),
        ("Role [reader] already exists.", AlreadyExists, "role", "reader"),
        ("Group mapping [g] already exists.", AlreadyExists, "groupMapping", "g"),
        ("User [alice] already has role [reader].", Conflict, "user", "alice"),
        ("User [alice] does not have role [reader].", Conflict, "user", "alice"),
        ("Group mapping [g] already has role [r].", Conflict, "groupMapping", "g"),
        ("Group mapping [g] does not have role [r].", Conflict, "groupMapping", "g"),
        (
            "Basic authenticator with name [ldap] does not exist.",
            UnknownAuthenticator,
            "authenticator",
            "ldap",
        ),
        ("Basic authorizer with name [nope] does not exist.", UnknownAuthorizer, "authorizer", "nope"),
        ("Invalid permission, resource name regex[a(] does not compile.", Invalid, None, None),
        ("Cannot construct instance of `X`, problem: Cannot assign empty password.", Invalid, None, None),
    ],
)
def test_coordinator_400_messages(
    message: str, cls: type[ApiError], entity: str | None, entity_name: str | None
) -> None:
    err = _coordinator_error(_response(400, json={"error": message}))
    assert type(err) is cls
    assert err.status == 400
    assert err.target == "coordinator"
    assert err.entity == entity
    assert err.entity_name == entity_name
    assert err.message == message


def test_names_with_brackets_and_spaces_are_extracted_whole() -> None:
    err = _coordinator_error(_response(400, json={"error": "User [a [b] c] does not exist."}))
    assert isinstance(err, NotFound)
    assert err.entity_name == "a [b] c"


def test_cas_contention_is_conflict_even_as_500() -> None:
    body = {"error": "Could not assign role [r] to user [u] due to concurrent update contention."}
    err = _coordinator_error(_response(500, json=body))
    assert type(err) is Conflict
    assert err.status == 500


@pytest.mark.parametrize(
    ("status", "cls"),
    [
        (401, Unauthorized),
        (403, Forbidden),
        (500, ServerError),
        (501, ServerError),
        (502, Unavailable),
        (503, Unavailable),
        (504, Unavailable),
        (429, RateLimited),
        (404, ApiError),  # no Druid text: the endpoint is missing, not the object
        (405, ApiError),
    ],
)
def test_coordinator_status_classes(status: int, cls: type[ApiError]) -> None:
    err = _coordinator_error(_response(status, text="<html><body><h2>HTTP ERROR</h2></body></html>"))
    assert type(err) is cls
    assert err.status == status


def test_auth_statuses_are_not_reclassified_by_text() -> None:
    # A 403 body mentioning "does not exist" is still a permissions problem.
    err = _coordinator_error(_response(403, text="User [x] does not exist."))
    assert type(err) is Forbidden


def test_retry_after_is_parsed() -> None:
    err = _coordinator_error(_response(429, text="slow down", headers={"Retry-After": "7"}))
    assert isinstance(err, RateLimited)
    assert err.retry_after == 7.0
    err = _coordinator_error(
        _response(503, text="x", headers={"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"})
    )
    assert err.retry_after is None


def test_html_error_page_reduced_to_text() -> None:
    page = (
        "<html><head><title>Error 401</title></head><body><h2>HTTP ERROR 401 Unauthorized</h2></body></html>"
    )
    err = _coordinator_error(_response(401, text=page))
    assert "<" not in err.message
    assert "HTTP ERROR 401 Unauthorized" in err.message


def test_druid_structured_error_keeps_code_and_message() -> None:
    body = {"error": "Unauthorized", "errorMessage": "Authentication failed", "errorClass": None}
    err = _coordinator_error(_response(401, json=body))
    assert err.message == "Unauthorized: Authentication failed"


def test_message_is_trimmed_to_one_bounded_line() -> None:
    err = _coordinator_error(_response(500, text="line\n" * 500))
    assert len(err.message) <= MESSAGE_LIMIT
    assert "\n" not in err.message


def test_jackson_source_location_is_cut_off() -> None:
    jackson = (
        "Cannot construct instance of `BasicAuthenticatorCredentialUpdate`, problem: bad\n"
        ' at [Source: (org.eclipse.jetty.server.HttpInputOverHTTP); line: 1, column: 20] {"password":"'
        + SECRET
        + '"}'
    )
    err = _coordinator_error(_response(400, json={"error": jackson}))
    assert isinstance(err, Invalid)
    assert "Source" not in err.message
    assert SECRET not in str(err)


def test_known_secrets_are_scrubbed_everywhere() -> None:
    body = {"error": f"User [bob] failed with password {SECRET} and header Basic {SECRET}"}
    err = _coordinator_error(_response(400, json=body), secrets=(SECRET,))
    for rendering in (str(err), repr(err), err.message, str(err.args)):
        assert SECRET not in rendering
    assert "***" in err.message


def test_scrub_replaces_longest_secret_first() -> None:
    assert scrub("token abcdef", ["abc", "abcdef", ""]) == "token ***"


def test_request_headers_and_query_never_reach_the_error() -> None:
    response = _response(
        400, json={"error": "User [u] does not exist."}, method="GET", url=f"{AUTHZ}/users/u?full"
    )
    err = _coordinator_error(response)
    assert err.path == "/druid-ext/basic-security/authorization/db/basic/users/u"
    assert err.method == "GET"
    assert "c2VjcmV0" not in str(err) + repr(err)
    assert str(err) == (
        "coordinator GET /druid-ext/basic-security/authorization/db/basic/users/u -> 400: User [u] does not exist."
    )


def test_success_passes() -> None:
    check_coordinator_response(_response(200, text=""))
    check_pivot_response(_response(200, json={"status": "ok"}))


PIVOT = "http://pivot.example:9095/api/v1/connections"


@pytest.mark.parametrize(
    ("status", "body", "cls"),
    [
        (404, {"error": "This connection does not exist."}, NotFound),
        (404, {"error": "This connection does not exist. Please check the name again."}, NotFound),
        (400, {"error": "this connection does not exist"}, NotFound),
        (400, {"error": "this name has been used."}, AlreadyExists),
        (400, {"error": "queryHosts must be an array"}, Invalid),
        (401, {"error": "unauthorized"}, Unauthorized),
        (403, {"error": "forbidden"}, Forbidden),
        (500, {"error": "boom"}, ServerError),
        (503, None, Unavailable),
    ],
)
def test_pivot_classification(status: int, body: object, cls: type[ApiError]) -> None:
    err = _pivot_error(_response(status, json=body, text="unavailable", url=f"{PIVOT}/druid1"))
    assert type(err) is cls
    assert err.target == "pivot"
    assert err.path == "/api/v1/connections/druid1"
    if cls in (NotFound, AlreadyExists):
        assert err.entity == "connection"


def test_pivot_404_without_json_is_a_wrong_url_not_a_missing_connection() -> None:
    err = _pivot_error(_response(404, text="<html>Cannot GET /api/v1/connectionz</html>"))
    assert type(err) is ApiError


def test_pivot_token_is_scrubbed() -> None:
    err = _pivot_error(_response(401, json={"error": f"bad token {SECRET}"}), secrets=(SECRET,))
    assert SECRET not in str(err) + repr(err)


def test_transport_error_maps_to_unavailable_without_the_request() -> None:
    request = httpx.Request("GET", f"{BASE}/status", headers={"Authorization": f"Basic {SECRET}"})
    exc = httpx.ConnectError(f"[Errno 111] Connection refused {SECRET}", request=request)
    err = transport_error(exc, target="coordinator", method="GET", path="/status", secrets=(SECRET,))
    assert type(err) is Unavailable
    assert err.status is None
    assert err.message.startswith("ConnectError: ")
    assert SECRET not in str(err) + repr(err)
    assert "no response" in str(err)


def test_timeout_without_text_still_names_the_exception() -> None:
    err = transport_error(httpx.ReadTimeout(""), target="pivot", method="GET", path="/api/v1/connections")
    assert isinstance(err, Unavailable)
    assert err.message == "ReadTimeout"


def test_unsupported_scheme_is_not_unavailable() -> None:
    err = transport_error(httpx.UnsupportedProtocol("ftp"), target="pivot", method="GET", path="/")
    assert type(err) is ApiError


def _wrapped_verification_error(message: str) -> httpx.ConnectError:
    """What httpx raises for a failed handshake: ConnectError <- httpcore error <- ssl error."""
    import ssl

    cause = ssl.SSLCertVerificationError(1, "[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed")
    cause.verify_message = message
    cause.verify_code = 20  # X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY
    try:
        try:
            raise cause
        except ssl.SSLError as inner:
            raise OSError("httpcore.ConnectError") from inner
    except OSError as middle:
        error = httpx.ConnectError(str(cause))
        error.__cause__ = middle
        return error


def test_a_failed_certificate_check_is_its_own_error_and_reason() -> None:
    from druid_access.reconcile import describe_api_error
    from druid_access.status import Reason

    error = errors.transport_error(
        _wrapped_verification_error("unable to get local issuer certificate"),
        target="coordinator",
        method="GET",
        path="/x",
    )
    assert isinstance(error, errors.CertificateNotTrusted)
    assert isinstance(error, errors.Unavailable)  # retried like any unreachable target
    reason, message = describe_api_error(error)
    assert reason is Reason.CERTIFICATE_NOT_TRUSTED
    assert "not trusted (unable to get local issuer certificate)" in message
    assert "caBundle" in message
    # A plain connection failure stays Unreachable.
    refused = errors.transport_error(
        httpx.ConnectError("[Errno 111] refused"), target="pivot", method="GET", path="/"
    )
    assert describe_api_error(refused)[0] is Reason.UNREACHABLE


def test_a_refused_redirect_has_its_reason() -> None:
    from druid_access.reconcile import RETRYABLE, describe_api_error
    from druid_access.status import Reason

    error = errors.RedirectRefused(
        "redirected to http://10.0.0.9:8081 (the Coordinator leader?), not followed: its host is not in the "
        "leaderHosts; the request was not sent there",
        target="coordinator",
        method="POST",
        path="/druid-ext/x",
        status=307,
    )
    reason, message = describe_api_error(error)
    assert reason is Reason.REDIRECT_REFUSED
    assert message.startswith("Druid redirected to http://10.0.0.9:8081")
    assert reason in RETRYABLE
