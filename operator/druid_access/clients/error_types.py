"""The classes of the clients' one error tree (drawn in ``errors``), and how their messages are
trimmed and scrubbed. Pure: the kinds catch these without importing the HTTP clients."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Literal

__all__ = [
    "MESSAGE_LIMIT",
    "AlreadyExists",
    "ApiError",
    "CertificateNotTrusted",
    "Conflict",
    "Forbidden",
    "Invalid",
    "NotFound",
    "RateLimited",
    "RedirectRefused",
    "ServerError",
    "Target",
    "Unauthorized",
    "Unavailable",
    "UnexpectedResponse",
    "UnknownAuthenticator",
    "UnknownAuthorizer",
    "scrub",
]

Target = Literal["coordinator", "pivot"]

MESSAGE_LIMIT = 300
_REDACTED = "***"


class ApiError(Exception):
    """A Coordinator or Pivot call failed; see the module docstring for the subclasses.

    ``status`` is the HTTP status, or None when no response arrived. ``path`` is the
    request's URL path (percent-encoded, no query string, no host). ``entity`` and
    ``entity_name`` are set when the server named the object it complained about
    (``entity`` is one of ``"user"``, ``"role"``, ``"groupMapping"``, ``"authenticator"``,
    ``"authorizer"``, ``"connection"``), so a caller can tell "role missing" from
    "user missing" without parsing text.
    """

    def __init__(
        self,
        message: str,
        *,
        target: Target,
        method: str,
        path: str,
        status: int | None = None,
        entity: str | None = None,
        entity_name: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        self.message = _trim(message)
        self.target: Target = target
        self.method = method
        self.path = path
        self.status = status
        self.entity = entity
        self.entity_name = entity_name
        self.retry_after = retry_after
        # Told to the target's breaker already: a failed read shared by several passes
        # (``observation.SharedReads``) is one unanswered request, not one per pass.
        self.counted = False
        super().__init__(self.message)

    def __str__(self) -> str:
        status = self.status if self.status is not None else "no response"
        return f"{self.target} {self.method} {self.path} -> {status}: {self.message}"

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(target={self.target!r}, method={self.method!r}, "
            f"path={self.path!r}, status={self.status!r}, message={self.message!r})"
        )


class RedirectRefused(ApiError):
    """The server redirected to a place the client may not send credentials to."""


class NotFound(ApiError):
    """The user, role, group mapping or connection named in the request does not exist."""


class UnknownAuthenticator(NotFound):
    """Druid has no ``basic`` authenticator by that name: a configuration error, not drift."""


class UnknownAuthorizer(NotFound):
    """Druid has no ``basic`` authorizer by that name: a configuration error, not drift."""


class AlreadyExists(ApiError):
    """A create named an object that already exists."""


class Conflict(ApiError):
    """The request contradicts current state (role already assigned / not assigned, lost CAS race)."""


class Invalid(ApiError):
    """The server refused the request content (bad regex, empty password, unmappable JSON)."""


class Unauthorized(ApiError):
    """401: the client's credentials were missing or wrong."""


class Forbidden(ApiError):
    """403: authenticated, but not permitted (Druid: no CONFIG ``security`` READ/WRITE)."""


class ServerError(ApiError):
    """5xx other than the "try again later" ones mapped to ``Unavailable``."""


class UnexpectedResponse(ApiError):
    """A success status with a body that does not match the documented shape."""


class Unavailable(ApiError):
    """No usable answer: transport failure, timeout, or a 502/503/504 from a proxy or server."""


class NotSent(Unavailable):
    """Not sent: the target's breaker opened while the request waited its turn (the statuses
    say what took the target down)."""


class RateLimited(Unavailable):
    """429: slow down; ``retry_after`` holds the server's hint in seconds when it gave one."""


class CertificateNotTrusted(Unavailable):
    """The TLS handshake failed because the server's certificate did not verify (unknown CA,
    wrong host name, expired). Nothing was sent."""


# --- message handling ---------------------------------------------------------------------


def scrub(text: str, secrets: Iterable[str]) -> str:
    """Return ``text`` with every non-empty secret replaced, longest first (so a secret
    that contains another is not left half-visible)."""
    for secret in sorted({s for s in secrets if s}, key=len, reverse=True):
        text = text.replace(secret, _REDACTED)
    return text


def _trim(text: str) -> str:
    text = " ".join(text.split())  # one line: error pages and stack traces are multi-line
    if len(text) > MESSAGE_LIMIT:
        return text[: MESSAGE_LIMIT - 1] + "…"
    return text


# Jackson appends "at [Source: (...)"<request body>"; line: 1, column: 14]"; the body may hold
# a password, so everything from the location marker on is dropped.
