"""Typed async HTTP clients of the Druid Coordinator basic-security API and Pivot's connections API.

The only operator package that speaks HTTP to Druid and Pivot (httpx; ``.importlinter``
holds it to that). Clients carry no policy (no retries, no diffing):
resource modules decide what to call; every failure is an ``ApiError`` subclass (the tree
is drawn in ``druid_access.clients.errors``).
"""

from druid_access.clients._http import HttpOptions
from druid_access.clients.coordinator import CoordinatorClient
from druid_access.clients.druid_wire import (
    Action,
    AuthenticatorName,
    AuthenticatorUser,
    AuthorizerMaps,
    AuthorizerName,
    AuthorizerUser,
    GroupMapping,
    Permission,
    Role,
    UserWithRoles,
)
from druid_access.clients.error_types import (
    AlreadyExists,
    ApiError,
    CertificateNotTrusted,
    Conflict,
    Forbidden,
    Invalid,
    NotFound,
    RateLimited,
    RedirectRefused,
    ServerError,
    Unauthorized,
    Unavailable,
    UnexpectedResponse,
    UnknownAuthenticator,
    UnknownAuthorizer,
)
from druid_access.clients.pivot import (
    ConnectionProtocol,
    ConnectionType,
    DbAuthToken,
    PivotClient,
    PivotConnection,
)
from druid_access.passwords import StoredCredentials

__all__ = [
    "Action",
    "AlreadyExists",
    "ApiError",
    "AuthenticatorName",
    "AuthenticatorUser",
    "AuthorizerMaps",
    "AuthorizerName",
    "AuthorizerUser",
    "CertificateNotTrusted",
    "Conflict",
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
]
