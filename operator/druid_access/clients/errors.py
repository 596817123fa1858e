"""The one error tree of the Coordinator and Pivot clients, and the functions that raise it.

Every failure of a client call surfaces as an ``ApiError``; callers branch on the class,
never on status codes or message text::

    ApiError                      status, method, path, message, target, retry_after
     ├── NotFound                 the named object does not exist
     │    ├── UnknownAuthenticator   Druid: no `basic` authenticator with that name
     │    └── UnknownAuthorizer      Druid: no `basic` authorizer with that name
     ├── AlreadyExists            create of a name that is taken
     ├── Conflict                 state precondition failed: "already has role",
     │                            "does not have role", CAS "concurrent update contention"
     ├── Invalid                  any other 400: bad regex, empty password, JSON mapping error
     ├── Unauthorized             401: credentials missing or wrong
     ├── Forbidden                403: authenticated, but lacks CONFIG/security (Druid)
     ├── ServerError              5xx (except 502/503/504)
     ├── UnexpectedResponse       2xx whose body is not what the API documents
     ├── RedirectRefused          a redirect (to the Coordinator leader) that the target's
     │                            configuration does not allow; it was not followed
     └── Unavailable              no usable answer: connection refused/reset, DNS, timeouts,
          │                       502/503/504
          ├── RateLimited         429 (``retry_after`` set from Retry-After)
          └── CertificateNotTrusted  TLS: the server's certificate failed verification

A plain ``ApiError`` is raised for the rest: statuses nobody documents (a 404 from a
Coordinator without the basic-security extension, 405, 415, ...) and client-side transport
misuse (an unsupported URL scheme). It is deliberately *not* ``NotFound``: "delete treats
not-found as done" must never fire because the endpoint itself is missing.

Druid reports nearly every handler error as **400** ``{"error": "<message>"}``, so
``check_coordinator_response`` sorts by the handlers' message texts (as ``tests/contract`` records them). Pivot uses
404/400 with ``{"error": ...}``; ``check_pivot_response`` sorts by status and text.

Secrets: an error never carries a request body or header. Messages come from the response
body only, are trimmed to ``MESSAGE_LIMIT`` characters, have Jackson's ``[Source: ...]``
location (which may quote the request) cut off, and have every secret the client holds
replaced by ``***`` before the exception is built.
"""

from __future__ import annotations

import html
import json
import re
import ssl
from collections.abc import Iterable

import httpx

from druid_access.clients import error_types
from druid_access.clients.error_types import *  # noqa: F403 - the classes are this module's interface too
from druid_access.clients.error_types import _trim

__all__ = ["check_coordinator_response", "check_pivot_response", "transport_error"]
__all__ += error_types.__all__

_JACKSON_SOURCE = re.compile(r"\s*(?:at )?\[Source:.*", re.DOTALL)


def _body_message(response: httpx.Response) -> tuple[str, bool]:
    """Best-effort human message from an error response, and whether it was a JSON ``error``.

    Druid/Pivot handler errors are ``{"error": "..."}``; Druid's structured errors carry
    ``errorMessage``; Jetty error pages and proxies send HTML or text, which is reduced to
    its visible text.
    """
    try:
        body = response.json()
    except (json.JSONDecodeError, UnicodeDecodeError, ValueError):
        body = None
    if isinstance(body, dict):
        for key in ("error", "errorMessage", "message"):
            value = body.get(key)
            if isinstance(value, str) and value:
                detail = body.get("errorMessage") if key == "error" else None
                # Druid's unauthorized/structured errors put a code in "error" and prose in
                # "errorMessage"; keep both when both are there.
                if isinstance(detail, str) and detail and detail != value:
                    return f"{value}: {detail}", True
                return value, True
    # A Jetty error page says it all in its title ("Error 401 User authentication failed.");
    # otherwise reduce HTML to its visible text. Entities (&apos;) are decoded either way.
    title = re.search(r"<title>Error \d+ (.*?)</title>", response.text, re.DOTALL)
    text = html.unescape(title.group(1) if title else re.sub(r"<[^>]*>", " ", response.text))
    text = " ".join(text.split())
    return text or (response.reason_phrase or "no message"), False


def _clean(message: str, secrets: Iterable[str]) -> str:
    return _trim(scrub(_JACKSON_SOURCE.sub("", message), secrets))


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None  # an HTTP-date: rare enough to ignore; callers fall back to their backoff


# A proxy or server in front of the target saying the target itself did not answer.
UNANSWERED_STATUSES = frozenset({502, 503, 504})


def _by_status(status: int) -> type[ApiError]:
    if status == 401:
        return Unauthorized
    if status == 403:
        return Forbidden
    if status == 429:
        return RateLimited
    if status in UNANSWERED_STATUSES:
        return Unavailable
    if status >= 500:
        return ServerError
    return ApiError


def _request_parts(response: httpx.Response) -> tuple[str, str]:
    request = response.request
    return request.method, request.url.raw_path.split(b"?", 1)[0].decode("ascii")


# --- Druid Coordinator --------------------------------------------------------------------

_ENTITY = {"User": "user", "Role": "role", "Group mapping": "groupMapping"}
_NAMED = r"(?P<kind>User|Role|Group mapping) \[(?P<name>.*)\]"
_DRUID_PATTERNS: tuple[tuple[re.Pattern[str], type[ApiError]], ...] = (
    (re.compile(r"Basic authenticator with name \[(?P<name>.*)\] does not exist"), UnknownAuthenticator),
    (re.compile(r"Basic authorizer with name \[(?P<name>.*)\] does not exist"), UnknownAuthorizer),
    (re.compile(_NAMED + r" (?:already has|does not have) role \[.*\]"), Conflict),
    (re.compile(_NAMED + r" does not exist"), NotFound),
    (re.compile(_NAMED + r" already exists"), AlreadyExists),
    (re.compile(r"concurrent update contention"), Conflict),
)


def _refusal(
    cls: type[ApiError],
    response: httpx.Response,
    target: Target,
    message: str,
    entity: str | None = None,
    entity_name: str | None = None,
) -> ApiError:
    """The error ``cls`` for an answer that is not a success."""
    method, path = _request_parts(response)
    return cls(
        message,
        target=target,
        method=method,
        path=path,
        status=response.status_code,
        entity=entity,
        entity_name=entity_name,
        retry_after=_retry_after(response),
    )


def check_coordinator_response(response: httpx.Response, *, secrets: Iterable[str] = ()) -> None:
    """Return if ``response`` is a success; otherwise raise the matching ``ApiError``.

    ``secrets`` are values to blank out of the message (the client's password and
    Authorization header, a password being set).
    """
    if response.is_success:
        return
    status = response.status_code
    secrets = tuple(secrets)
    raw, _ = _body_message(response)
    # Classify on the unscrubbed text: a short secret (say "x") could otherwise mangle the
    # very words we match on. Only the scrubbed text is kept.
    text = _JACKSON_SOURCE.sub("", raw)
    cls = _by_status(status)
    entity: str | None = None
    entity_name: str | None = None
    # Druid's handler errors are 400s, but CAS contention is an unmapped ISE (likely 500):
    # match message texts for every 4xx/5xx that is not an auth/availability answer.
    if cls in (ApiError, ServerError):
        if status == 400:
            cls = Invalid
        for pattern, matched_cls in _DRUID_PATTERNS:
            match = pattern.search(text)
            if match:
                cls = matched_cls
                groups = match.groupdict()
                if "kind" in groups:
                    entity = _ENTITY[groups["kind"]]
                elif matched_cls is UnknownAuthenticator:
                    entity = "authenticator"
                elif matched_cls is UnknownAuthorizer:
                    entity = "authorizer"
                name = groups.get("name")
                entity_name = scrub(name, secrets) if name is not None else None
                break
    raise _refusal(cls, response, "coordinator", _clean(text, secrets), entity, entity_name)


# --- Pivot ----------------------------------------------------------------------------------


def check_pivot_response(response: httpx.Response, *, secrets: Iterable[str] = ()) -> None:
    """Return if ``response`` is a success; otherwise raise the matching ``ApiError``.

    Pivot answers a missing connection with 404 (get/delete) or 400 "this connection does
    not exist" (update), and a taken name with 400 "this name has been used.". A 404 without
    a JSON ``error`` body is a wrong URL, not a missing connection, and stays a plain
    ``ApiError``.
    """
    if response.is_success:
        return
    status = response.status_code
    raw, is_json_error = _body_message(response)
    lowered = raw.lower()  # classify before scrubbing, as for the Coordinator
    cls = _by_status(status)
    entity: str | None = None
    if status in (400, 404, 409) and "does not exist" in lowered:
        cls, entity = NotFound, "connection"
    elif status in (400, 409) and ("has been used" in lowered or "already exists" in lowered):
        cls, entity = AlreadyExists, "connection"
    elif status == 404 and is_json_error:
        cls, entity = NotFound, "connection"
    elif status == 409:
        cls = Conflict
    elif status in (400, 422):
        cls = Invalid
    raise _refusal(cls, response, "pivot", _clean(raw, secrets), entity)


# --- transport failures ---------------------------------------------------------------------


def transport_error(
    exc: httpx.RequestError, *, target: Target, method: str, path: str, secrets: Iterable[str] = ()
) -> ApiError:
    """Map an httpx request exception to ``Unavailable``: refused/reset connections, DNS
    failures, timeouts (pool included), protocol breakage. Client misuse (an unsupported URL
    scheme, an unencodable header) and undecodable responses become a plain ``ApiError``.

    The message is the exception class plus its own text (e.g. "ConnectError: [Errno 111]
    Connection refused"); the request object is never rendered.
    """
    detail = _clean(str(exc), secrets)
    verification = _certificate_error(exc)
    if verification is not None:
        why = verification.verify_message or verification.reason or "certificate verify failed"
        return CertificateNotTrusted(
            f"the server's TLS certificate is not trusted ({why}); {_certificate_hint(verification)}",
            target=target,
            method=method,
            path=path,
        )
    message = f"{type(exc).__name__}: {detail}" if detail else type(exc).__name__
    # Scheme or header encoding mistakes are ours to fix, not the server's to recover from.
    unavailable = isinstance(exc, httpx.TransportError) and not isinstance(
        exc, httpx.UnsupportedProtocol | httpx.LocalProtocolError
    )
    cls: type[ApiError] = Unavailable if unavailable else ApiError
    return cls(message, target=target, method=method, path=path)


def _certificate_error(exc: BaseException) -> ssl.SSLCertVerificationError | None:
    """The certificate verification failure under an httpx error (httpx -> httpcore -> ssl)."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, ssl.SSLCertVerificationError):
            return current
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return None


# OpenSSL's X509_V_ERR_* codes that mean "signed by a CA we do not trust".
_UNKNOWN_ISSUER = {2, 18, 19, 20, 21}
_EXPIRED = 10
_HOST_MISMATCH = {62, 64}  # host name, IP address


def _certificate_hint(error: ssl.SSLCertVerificationError) -> str:
    code = error.verify_code
    if code in _UNKNOWN_ISSUER:
        return "set caBundle to the CA that signed it"
    if code in _HOST_MISMATCH:
        return "the certificate must name the host of the configured URL (or the leader's address)"
    if code == _EXPIRED:
        return "the certificate has expired: renew it"
    return "check caBundle and the server's certificate"
