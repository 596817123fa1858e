"""A fake Druid 27.0.0 (or 37.0.0) Coordinator serving the druid-basic-security REST API.

Real HTTP on 127.0.0.1 (aiohttp), one ``basic`` authenticator and one ``basic`` authorizer, state in
memory. It mirrors **Apache Druid 27.0.0** (Jetty 9.4.51, Jersey 1.19.4, Jackson 2.10.5) as verified by
the contract suite (``tests/contract``), which runs the same cases against this fake and real 27.0.0
and 37.0.0 Coordinators (the fake in the matching ``druid_version``): status codes, exact error messages and check order, presence-based query flags, response
shapes, content types, Basic auth (401) and CONFIG/``security`` authorization (403). Notable behaviour
(``docs/druid-versions.md`` lists how 37.0.0 differs):

- ``%2F`` in a name is decoded into the name (``a%2Fb`` addresses ``a/b``), ``%2E%2E`` is the name ``..``
  (so on 37.0.0 too, despite its Jetty 12; ``reject_ambiguous_uris=True`` models a Jetty that refuses them).
  A literal ``;`` starts a matrix parameter that Jersey drops (``x;y=z`` addresses ``x``).
- Bodies are read by the Jackson 2.10 emulation in ``druidwire.jackson`` (which says how its errors
  answer). An empty body is a null entity: an NPE 500 for credentials/group mappings (the group
  mapping's NPE even precedes the authorizer-name check), "clear" for permissions.
- An entity endpoint called without ``Content-Type`` answers 415 (after the 403 check); a wrong
  ``Content-Type`` 415 and an unacceptable ``Accept`` 406 (before it), all with an empty body, as do
  unknown paths (404) and methods (405). ``q=0`` in ``Accept`` is ignored, as by Jersey 1. Successful
  mutations are 200 with an empty body typed ``application/json``.
- Errors that escape as Jetty's HTML error pages are rendered by ``druidwire.jetty``. A wrong password's
  page says "User authentication failed." (no user name), an unknown user's "Unauthorized"; no (or a
  non-``Basic ``, case-sensitive) ``Authorization`` header gives JSON
  ``{"error":"Unauthorized request","errorMessage":null,"errorClass":null,"host":<host name>}``.
- A bad authenticator/authorizer *name* (``IdUtils``: leading ``.``, ``/``, control whitespace) is an
  unmapped ``DruidException``: 500 HTML, not 400 JSON. Handler errors of the Smile endpoints
  (``cachedSerialized*``) are Smile ``{"error": ...}``.
- ``GET .../groupMappings/{g}?full`` has no ``groupPattern``; group-mapping ``roles`` keep ``null`` items.
- Credentials: ``"iterations": -1`` means the authenticator default; 0 or other negatives are 500. The
  bootstrapped ``admin``/``druid_system`` passwords are hashed with 10,000 iterations regardless.
- ``/listen`` endpoints consume JSON (Smile ``Content-Type`` is 415) and answer an empty 404.
- Resource-name regexes are Java's (``druid_access.javaregex``); ``cachedSerialized*`` answer Smile
  (``druidwire.smile``).

**Druid 37.0.0** (``druid_version="37.0.0"``; Jetty 12.1, Jackson 2.20): the same API and path handling
(``%2F``, ``%2E%2E`` and matrix parameters still decode as above), with the differences the contract
suite found (docs/druid-versions.md): Basic credentials split on the first ``:`` only (a password may
contain colons; ``admin:`` is a wrong password, "User authentication failed."); a 403 says
``Access-Check-Result: Unauthorized``; request bodies follow Jackson 2.20 (``_read_entity_220``): 400
messages without location or reference chain and partly reworded, REDACTED sources in 500 pages,
trailing content after the JSON value rejected, an array/object ``action`` a 400.

Not reproduced: list endpoints return names sorted (Druid: Java hash order); Java stack traces in 500
pages (see ``druidwire.jetty``); ``HEAD``/``OPTIONS``.

Fake-only: every mutation runs atomically on the event loop (no await between its check and write),
i.e. the real read-modify-CAS always wins first time. Set ``contention_failures = N`` to make the next
N mutations that pass validation fail like five lost CAS races: 500 with a Jetty page naming
``Could not <op> due to concurrent update contention.`` (an ``ISE``); nothing changes.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import re
import secrets
import socket
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from functools import lru_cache
from urllib.parse import unquote

from aiohttp import web
from aiohttp.typedefs import Middleware

from druid_access.javaregex import JavaRegexError, java_regex
from druid_access.passwords import DEFAULT_ITERATIONS, StoredCredentials, hash_password, verify_password
from druid_access.testing.druid import DRUID_VERSION, SUPPORTED_VERSIONS
from druid_access.testing.druidwire.jackson import (
    _ACTION,
    _CREDENTIAL_UPDATE,
    _CREDENTIAL_UPDATE_BEAN,
    _GROUP_MAPPING,
    _GROUP_MAPPING_BEAN,
    _RESOURCE,
    _RESOURCE_ACTION,
    _SOURCE,
    ACTIONS,
    END_ARRAY,
    FIELD_NAME,
    START_ARRAY,
    START_OBJECT,
    VALUE_NULL,
    VALUE_STRING,
    CredentialUpdateBody,
    GroupMappingBody,
    JacksonError,
    ResourceActionBody,
    _Lexer,
    _read_bean,
    _read_permission_list,
    read_entity,
)
from druid_access.testing.druidwire.jackson import java_double as java_double
from druid_access.testing.druidwire.jetty import (
    JSON_TYPE,
    DruidError,
    _npe,
    _uri,
    bad_request,
    empty,
    jetty_page,
    json_response,
    ok_empty,
    server_error,
)
from druid_access.testing.druidwire.smile import SMILE_TYPE, smile_encode
from druid_access.testing.druidwire.smile import smile_decode as smile_decode
from druid_access.testing.faults import AUTH_USER_KEY, FakeServer, Handler
from druid_access.testing.faults import run_foreground as _run_foreground

AUTHN = "/druid-ext/basic-security/authentication"
AUTHZ = "/druid-ext/basic-security/authorization"
#: The Druid versions the fake can answer like (``druid_version=``); the contract suite checks each.
VERSIONS = SUPPORTED_VERSIONS
#: ResourceType's known types in Druid 27, in the order the superuser roles list them.
KNOWN_RESOURCE_TYPES = ("CONFIG", "QUERY_CONTEXT", "SYSTEM_TABLE", "EXTERNAL", "DATASOURCE", "STATE", "VIEW")
UNSECURED_PATHS = frozenset({"/status/health"})
#: What ``GET /status`` lists on the contract suite's 27.0.0 Coordinator.
STATUS_MODULES = (
    ("org.apache.druid.common.aws.AWSModule", "druid-aws-common"),
    ("org.apache.druid.security.basic.BasicSecurityDruidModule", "druid-basic-security"),
    ("org.apache.druid.common.gcp.GcpModule", "druid-gcp-common"),
)


# --------------------------------------------------------------------------------------------- state


@dataclass(frozen=True, slots=True)
class Permission:
    """One stored permission; ``type``/``action`` may be None when a client sent null."""

    type: str | None
    name: str
    action: str | None

    def resource_action(self) -> dict[str, object]:
        return {"resource": {"name": self.name, "type": self.type}, "action": self.action}

    def full(self) -> dict[str, object]:
        # resourceNamePattern is the compiled Pattern serialised as its source.
        return {"resourceAction": self.resource_action(), "resourceNamePattern": self.name}

    def grants(self, resource_type: str, resource_name: str, action: str) -> bool:
        # Java's Matcher.matches(): implicitly anchored at both ends.
        if self.action != action or self.type != resource_type:
            return False
        try:
            return java_regex(self.name).fullmatch(resource_name) is not None
        except JavaRegexError:
            return False  # stored behind the API's back; Druid could not have compiled it


def superuser_permissions() -> list[Permission]:
    """AuthorizationUtils.makeSuperUserPermissions: READ and WRITE on ``.*`` for every known type."""
    return [Permission(t, ".*", a) for t in KNOWN_RESOURCE_TYPES for a in ACTIONS]


@dataclass(slots=True)
class GroupMapping:
    """``roles`` are stored as sent: they need not exist and may even contain None (JSON null)."""

    group_pattern: str | None
    roles: set[str | None] = field(default_factory=set)


# --------------------------------------------------------------------------------------- validation


def validate_id(field_name: str, value: str) -> str | None:
    """``IdUtils.validateId`` on authenticator/authorizer names: the problem, or None if valid."""
    prefix = f"Invalid value for field [{field_name}]: Value [{value}]"
    if value.startswith("."):
        return f"{prefix} cannot start with '.'."
    if "/" in value:
        return f"{prefix} cannot contain '/'."
    # Java's \s is [ \t\n\x0B\f\r]; only the space is allowed.
    if any(c in "\t\n\x0b\f\r" for c in value):
        return f"{prefix} contains illegal whitespace characters.  Only space is allowed."
    units = value.encode("utf-16-le")
    for i in range(0, len(units), 2):
        c = int.from_bytes(units[i : i + 2], "little")  # Java iterates UTF-16 code units
        if 0 < c < 31 or 127 < c < 159 or 0xD800 < c < 0xF8FF or 0xFFF0 < c < 0xFFFF:
            return f"{prefix} contains illegal UTF8 character [#{c}] at position [{i // 2}]"
    return None


def _accepts(accept_header: str | None, media_type: str) -> bool:
    """Whether an Accept header admits ``media_type``; like Jersey 1, q-values are not consulted."""
    if not accept_header:
        return True
    major = media_type.split("/", 1)[0]
    for item in accept_header.split(","):
        if item.split(";", 1)[0].strip().lower() in {"*/*", f"{major}/*", media_type}:
            return True
    return False


def _java_split_colon(text: str) -> list[str]:
    """Java's String.split(":"): trailing empty strings are dropped (so "u:p:" is ["u", "p"])."""
    if ":" not in text:
        return [text]
    parts = text.split(":")
    while parts and parts[-1] == "":
        parts.pop()
    return parts


def _decode_basic(encoded: str) -> str | None:
    """java.util.Base64's basic decoder (padding optional, strict alphabet), then UTF-8."""
    try:
        raw = base64.b64decode(encoded + "=" * (-len(encoded) % 4), validate=True)
    except (binascii.Error, ValueError):
        return None
    return raw.decode("utf-8", errors="replace")


@lru_cache(maxsize=1)
def _host_name() -> str:
    """``InetAddress.getLocalHost().getCanonicalHostName()``, which Druid puts in its 401 JSON."""
    return socket.getfqdn()


# ------------------------------------------------------------------------------------------ server

Endpoint = Callable[[web.Request], Awaitable[web.Response]]
_JERSEY_PREFIXES = ("/druid-ext/", "/status", "/druid/")


def _path_params(request: web.Request) -> dict[str, str]:
    """The route's ``{name}`` segments as Jersey's ``@PathParam`` sees them: matrix parameters
    (``;...``) dropped, then percent-decoded as UTF-8 (``%2F`` stays inside the name)."""
    route = request.match_info.route
    canonical = route.resource.canonical if route.resource is not None else ""
    raw_segments = request.raw_path.split("?", 1)[0].split("/")
    params: dict[str, str] = {}
    for index, part in enumerate(canonical.split("/")):
        if part.startswith("{") and part.endswith("}") and index < len(raw_segments):
            raw = raw_segments[index].split(";", 1)[0]
            params[part[1:-1]] = unquote(raw, errors="replace")
    return params


@dataclass(frozen=True, slots=True)
class _Guard:
    """Resource a route is filtered on (None: unsecured), its Jersey media types and entity."""

    resource_type: str | None = "CONFIG"
    resource_name: str = "security"
    produces: str = JSON_TYPE
    consumes: str = JSON_TYPE
    json_forbidden: bool = False  # ForbiddenException mapper (JSON) vs the security filter's text body
    entity: bool = False  # reads a JSON entity: no Content-Type at all is a 415


SECURITY = _Guard()
ENTITY = _Guard(entity=True)
STATE = _Guard(resource_type="STATE", resource_name="STATE", json_forbidden=True)
UNSECURED = _Guard(resource_type=None)


class FakeCoordinator(FakeServer):
    """Stateful fake of a Druid 27.0.0 Coordinator's basic-security API. See the module docstring.

    Direct state (mutate freely from tests to simulate drift "behind the operator's back"):

    - ``credentials``: the authenticator's users, name -> :class:`StoredCredentials` or None
    - ``users``: the authorizer's users, name -> set of role names (may name missing roles)
    - ``roles``: name -> list of :class:`Permission`
    - ``group_mappings``: name -> :class:`GroupMapping`
    - ``contention_failures``: the next N mutations fail with a 500 contention error

    ``reject_ambiguous_uris=True`` answers ``%2F`` and ``.``/``..`` segments with Jetty 12's 400
    "Ambiguous URI" page (Druid 35+) instead of decoding them into names as 27.0.0 does.
    """

    name = "fake-coordinator"
    druid_version = DRUID_VERSION

    def __init__(
        self,
        *,
        admin_password: str,
        authenticator: str = "basic",
        authorizer: str = "basic",
        internal_password: str | None = None,
        credential_iterations: int = DEFAULT_ITERATIONS,
        port: int = 0,
        host: str = "127.0.0.1",
        reject_ambiguous_uris: bool = False,
        druid_version: str = DRUID_VERSION,
    ) -> None:
        if druid_version not in VERSIONS:
            raise ValueError(f"druid_version must be one of {', '.join(VERSIONS)}, not {druid_version!r}")
        super().__init__(host=host, port=port)
        self.druid_version = druid_version
        self.major = int(druid_version.split(".", 1)[0])
        self.authenticator = authenticator
        self.authorizer = authorizer
        self.credential_iterations = credential_iterations
        self.admin_password = admin_password
        self.internal_password = internal_password or secrets.token_urlsafe(24)
        self.reject_ambiguous_uris = reject_ambiguous_uris
        self.credentials: dict[str, StoredCredentials | None] = {}
        self.users: dict[str, set[str]] = {}
        self.roles: dict[str, list[Permission]] = {}
        self.group_mappings: dict[str, GroupMapping] = {}
        self.contention_failures = 0
        # Successful logins, keyed by stored record + a salted SHA-256 of the password (as recent Druid).
        self._verified: set[tuple[str, str, str, int, bytes]] = set()
        self._cache_salt = secrets.token_bytes(16)
        self._bootstrap()

    # -- direct state helpers (no HTTP) -----------------------------------------------------------

    def _bootstrap(self) -> None:
        """What the authenticator and authorizer do at Coordinator start. The initial passwords are
        hashed with Druid's default 10,000 iterations, whatever ``credentialIterations`` says."""
        for user, password in (("admin", self.admin_password), ("druid_system", self.internal_password)):
            self.set_password(user, password, iterations=DEFAULT_ITERATIONS)
            self.roles.setdefault(user, superuser_permissions())
            self.users.setdefault(user, set()).add(user)

    def set_password(self, user: str, password: str, *, iterations: int | None = None) -> None:
        """Set a password in the authenticator (creating the user there if needed)."""
        self.credentials[user] = hash_password(password, iterations=iterations or self.credential_iterations)

    def add_user(self, name: str, *, password: str | None = None, roles: Iterable[str] = ()) -> None:
        """Create a user in both stores; ``roles`` are stored as given (they need not exist)."""
        self.credentials.setdefault(name, None)
        if password is not None:
            self.set_password(name, password)
        self.users.setdefault(name, set()).update(roles)

    def add_role(self, name: str, permissions: Iterable[Permission] = ()) -> None:
        self.roles[name] = list(permissions)

    # -- app wiring ------------------------------------------------------------------------------

    def _middlewares(self) -> list[Middleware]:
        return [self._jetty_middleware(), self._authentication_middleware()]

    def _routes(self, app: web.Application) -> None:
        add = self._add_route(app)
        add("GET", "/status/health", self._health, UNSECURED)
        add("GET", "/status", self._status, STATE)
        self._authn_routes(add)
        self._authz_routes(add)

    def _add_route(self, app: web.Application) -> Callable[[str, str, Endpoint, _Guard], None]:
        def add(method: str, path: str, endpoint: Endpoint, guard: _Guard = SECURITY) -> None:
            app.router.add_route(method, path, self._guarded(endpoint, guard))

        return add

    def _authn_routes(self, add: Callable[..., None]) -> None:
        db = f"{AUTHN}/db/{{a}}"
        add("GET", f"{AUTHN}/loadStatus", self._authn_load_status)
        add("GET", f"{AUTHN}/refreshAll", self._empty_ok)
        add("GET", f"{db}/users", self._authn_list_users)
        add("GET", f"{db}/users/{{u}}", self._authn_get_user)
        add("POST", f"{db}/users/{{u}}", self._authn_create_user)
        add("DELETE", f"{db}/users/{{u}}", self._authn_delete_user)
        add("POST", f"{db}/users/{{u}}/credentials", self._authn_set_credentials, ENTITY)
        add("GET", f"{db}/cachedSerializedUserMap", self._authn_cached_user_map, _Guard(produces=SMILE_TYPE))
        add("POST", f"{AUTHN}/listen/{{a}}", self._listen)

    def _authz_routes(self, add: Callable[..., None]) -> None:
        db = f"{AUTHZ}/db/{{z}}"
        add("GET", f"{AUTHZ}/loadStatus", self._authz_load_status)
        add("GET", f"{AUTHZ}/refreshAll", self._empty_ok)
        add("GET", f"{db}/users", self._authz_list_users)
        add("GET", f"{db}/users/{{u}}", self._authz_get_user)
        add("POST", f"{db}/users/{{u}}", self._authz_create_user)
        add("DELETE", f"{db}/users/{{u}}", self._authz_delete_user)
        add("POST", f"{db}/users/{{u}}/roles/{{r}}", self._assign_user_role)
        add("DELETE", f"{db}/users/{{u}}/roles/{{r}}", self._unassign_user_role)
        add("GET", f"{db}/groupMappings", self._list_group_mappings)
        add("GET", f"{db}/groupMappings/{{g}}", self._get_group_mapping)
        add("POST", f"{db}/groupMappings/{{g}}", self._create_group_mapping, ENTITY)
        add("DELETE", f"{db}/groupMappings/{{g}}", self._delete_group_mapping)
        add("POST", f"{db}/groupMappings/{{g}}/roles/{{r}}", self._assign_group_role)
        add("DELETE", f"{db}/groupMappings/{{g}}/roles/{{r}}", self._unassign_group_role)
        add("GET", f"{db}/roles", self._list_roles)
        add("GET", f"{db}/roles/{{r}}", self._get_role)
        add("POST", f"{db}/roles/{{r}}", self._create_role)
        add("DELETE", f"{db}/roles/{{r}}", self._delete_role)
        add("POST", f"{db}/roles/{{r}}/permissions", self._set_permissions, ENTITY)
        add("GET", f"{db}/roles/{{r}}/permissions", self._get_permissions)
        smile = _Guard(produces=SMILE_TYPE)
        add("GET", f"{db}/cachedSerializedUserMap", self._authz_cached_user_map, smile)
        add("GET", f"{db}/cachedSerializedGroupMappingMap", self._authz_cached_group_map, smile)
        for listen in ("listen/{z}", "listen/users/{z}", "listen/groupMappings/{z}"):
            add("POST", f"{AUTHZ}/{listen}", self._listen)

    # -- middlewares -----------------------------------------------------------------------------

    def _jetty_middleware(self) -> Middleware:
        """Jetty/Jersey answers for what aiohttp's router rejects (empty 404/405), and Jetty 12's
        ambiguous-URI rejection when enabled."""

        @web.middleware
        async def jetty(request: web.Request, handler: Handler) -> web.StreamResponse:
            if self.reject_ambiguous_uris:
                raw = _uri(request)
                if "%2f" in raw.lower():
                    return jetty_page(400, "Ambiguous URI path separator", raw)
                if any(seg.lower() in {"%2e", "%2e%2e", ".%2e", "%2e."} for seg in raw.split("/")):
                    return jetty_page(400, "Ambiguous URI path segment", raw)
            try:
                return await handler(request)
            except web.HTTPNotFound:
                if request.path.startswith(_JERSEY_PREFIXES):
                    return empty(404)
                return jetty_page(404, "Not Found", _uri(request))
            except web.HTTPMethodNotAllowed as exc:
                allowed = ",".join(sorted(exc.allowed_methods | {"OPTIONS"}))
                return empty(405, {"Allow": allowed})

        return jetty

    def _authentication_middleware(self) -> Middleware:
        @web.middleware
        async def authenticate(request: web.Request, handler: Handler) -> web.StreamResponse:
            if request.path in UNSECURED_PATHS:
                return await handler(request)
            user, failure = await self._login(request)
            if failure is not None:
                return failure
            assert user is not None
            request[AUTH_USER_KEY] = user
            return await handler(request)

        return authenticate

    async def _login(self, request: web.Request) -> tuple[str | None, web.Response | None]:
        header = request.headers.get("Authorization")
        # BasicAuthUtils: at least 7 characters and exactly "Basic " (case-sensitive; a lower-case
        # scheme only seems to work on 27.0.0 when Jetty's per-connection header cache hands back an
        # earlier "Basic" field with the same value on a kept-alive connection).
        if header is None or len(header) < 7 or not header.startswith("Basic "):
            # No authenticator claimed the request: PreResponseAuthorizationCheckFilter's 401.
            return None, self._unauthorized_json()
        decoded = _decode_basic(header[6:])
        if decoded is None:
            parts = []
        elif self.major >= 37:  # split(":", 2): the password keeps its colons
            parts = decoded.split(":", 1) if ":" in decoded else [decoded]
        else:
            parts = _java_split_colon(decoded)
        if len(parts) != 2:
            return None, jetty_page(401, "Unauthorized", _uri(request))
        user, password = parts
        stored = self.credentials.get(user)
        if stored is None:  # unknown user, or no password set yet
            return None, jetty_page(401, "Unauthorized", _uri(request))
        if not await self._verify(user, password, stored):
            return None, jetty_page(401, "User authentication failed.", _uri(request))
        return user, None

    async def _verify(self, user: str, password: str, stored: StoredCredentials) -> bool:
        digest = hashlib.sha256(self._cache_salt + password.encode("utf-8")).digest()
        key = (user, stored.salt, stored.hash, stored.iterations, digest)
        if key in self._verified:
            return True
        ok = await asyncio.to_thread(verify_password, password, stored)
        if ok:
            if len(self._verified) > 4096:
                self._verified.clear()
            self._verified.add(key)
        return ok

    @staticmethod
    def _unauthorized_json() -> web.Response:
        body = {
            "error": "Unauthorized request",
            "errorMessage": None,
            "errorClass": None,
            "host": _host_name(),
        }
        response = json_response(body, status=401, content_type="application/json;charset=utf-8")
        response.headers["WWW-Authenticate"] = "Basic"
        return response

    def _guarded(self, endpoint: Endpoint, guard: _Guard) -> Handler:
        """Jersey matching (415/406), the resource filter (403), entity media type (415), then the method."""

        async def handler(request: web.Request) -> web.StreamResponse:
            content_type = request.headers.get("Content-Type")
            if content_type and content_type.split(";", 1)[0].strip().lower() != guard.consumes:
                return empty(415)
            if not _accepts(request.headers.get("Accept"), guard.produces):
                return empty(406)
            if guard.resource_type is not None and not self._allowed(request, guard):
                return self._forbidden(guard, self.major)
            if guard.entity and not content_type:
                return empty(415)  # no MessageBodyReader for application/octet-stream
            try:
                return await endpoint(request)
            except DruidError as exc:
                if exc.payload is not None and guard.produces == SMILE_TYPE:
                    body = smile_encode(exc.payload)
                    return web.Response(
                        status=exc.response.status, body=body, headers={"Content-Type": SMILE_TYPE}
                    )
                return exc.response

        return handler

    def _allowed(self, request: web.Request, guard: _Guard) -> bool:
        assert guard.resource_type is not None
        # BasicSecurityResourceFilter: READ for GET, WRITE for every other method.
        action = "READ" if request.method == "GET" else "WRITE"
        user = request.get(AUTH_USER_KEY)
        for role in sorted(self.users.get(user, set()) if user is not None else set()):
            for permission in self.roles.get(role, []):  # missing roles are skipped
                if permission.grants(guard.resource_type, guard.resource_name, action):
                    return True
        return False

    @staticmethod
    def _forbidden(guard: _Guard, major: int) -> web.Response:
        # 27 prints the Access object (allowed flag and an empty message); 37 a fixed "Unauthorized".
        message = "Unauthorized" if major >= 37 else "Allowed:false, Message:"
        if guard.json_forbidden:
            return json_response({"Access-Check-Result": message}, status=403)
        body = f"Access-Check-Result: {message}".encode()
        return web.Response(status=403, body=body, headers={"Content-Type": "text/plain"})

    # -- shared checks ---------------------------------------------------------------------------

    @staticmethod
    def _validate(request: web.Request, field_name: str, value: str) -> None:
        """AuthValidator: an invalid name is an unmapped DruidException (500 HTML in 27.0.0)."""
        problem = validate_id(field_name, value)
        if problem is not None:
            raise server_error(request, f"org.apache.druid.error.DruidException: {problem}")

    def _authn_name(self, request: web.Request, *, validated: bool = False) -> None:
        name = _path_params(request)["a"]
        if not validated:
            self._validate(request, "authenticatorName", name)
        if name != self.authenticator:
            raise bad_request(f"Basic authenticator with name [{name}] does not exist.")

    def _authz_name(self, request: web.Request, *, validated: bool = False) -> None:
        name = _path_params(request)["z"]
        if not validated:
            self._validate(request, "authorizerName", name)
        if name != self.authorizer:
            raise bad_request(f"Basic authorizer with name [{name}] does not exist.")

    def _contend(self, request: web.Request, operation: str) -> None:
        """Simulate five lost CAS races on the metadata store (an unmapped ISE: 500)."""
        if self.contention_failures > 0:
            self.contention_failures -= 1
            message = f"Could not {operation} due to concurrent update contention."
            raise server_error(request, f"org.apache.druid.java.util.common.ISE: {message}")

    def _need_role(self, role: str) -> list[Permission]:
        if role not in self.roles:
            raise bad_request(f"Role [{role}] does not exist.")
        return self.roles[role]

    def _need_authz_user(self, user: str) -> set[str]:
        if user not in self.users:
            raise bad_request(f"User [{user}] does not exist.")
        return self.users[user]

    def _need_group_mapping(self, name: str) -> GroupMapping:
        if name not in self.group_mappings:
            raise bad_request(f"Group mapping [{name}] does not exist.")
        return self.group_mappings[name]

    async def _entity(
        self, request: web.Request, reader: Callable[[_Lexer], object], bound_as: str
    ) -> object:
        """Read the JSON entity the way Jersey + Jackson do (before the resource method runs): Jackson
        2.10 for Druid 27, for 37 Jackson 2.20's differences on top (see ``_read_entity_220``)."""
        data = await request.read()
        try:
            if self.major < 37:
                return read_entity(data, reader)
            try:
                return _read_entity_220(data, reader, bound_as)
            except JacksonError as exc:
                raise _to_jackson_220(exc, data) from None
        except JacksonError as exc:
            if exc.kind == "mapping":
                raise bad_request(exc.text()) from None
            raise server_error(request, f"{exc.java_class()}: {exc.text()}", checked=True) from None

    # -- generic endpoints -----------------------------------------------------------------------

    async def _health(self, request: web.Request) -> web.Response:
        return json_response(True)

    async def _status(self, request: web.Request) -> web.Response:
        modules = [{"name": n, "artifact": a, "version": self.druid_version} for n, a in STATUS_MODULES]
        memory = {"maxMemory": 536870912, "totalMemory": 268435456, "freeMemory": 134217728}
        memory |= {"usedMemory": 134217728, "directMemory": 536870912}
        return json_response({"version": self.druid_version, "modules": modules, "memory": memory})

    async def _empty_ok(self, request: web.Request) -> web.Response:
        return ok_empty()

    async def _listen(self, request: web.Request) -> web.Response:
        # The Coordinator's handler answers the /listen endpoints with a bare 404 (typed JSON).
        return web.Response(status=404, headers={"Content-Type": JSON_TYPE})

    # -- authentication API ----------------------------------------------------------------------

    async def _authn_load_status(self, request: web.Request) -> web.Response:
        return json_response({self.authenticator: True})

    async def _authn_list_users(self, request: web.Request) -> web.Response:
        self._authn_name(request)
        return json_response(sorted(self.credentials))

    async def _authn_get_user(self, request: web.Request) -> web.Response:
        self._authn_name(request)
        user = _path_params(request)["u"]
        if user not in self.credentials:
            raise bad_request(f"User [{user}] does not exist.")
        stored = self.credentials[user]
        return json_response({"name": user, "credentials": stored.to_json() if stored else None})

    async def _authn_create_user(self, request: web.Request) -> web.Response:
        self._authn_name(request)
        user = _path_params(request)["u"]
        if user in self.credentials:
            raise bad_request(f"User [{user}] already exists.")
        self._contend(request, f"create user[{user}]")
        self.credentials[user] = None
        return ok_empty()

    async def _authn_delete_user(self, request: web.Request) -> web.Response:
        self._authn_name(request)
        user = _path_params(request)["u"]
        if user not in self.credentials:
            raise bad_request(f"User [{user}] does not exist.")
        self._contend(request, f"delete user[{user}]")
        del self.credentials[user]
        return ok_empty()

    async def _authn_set_credentials(self, request: web.Request) -> web.Response:
        update = await self._entity(
            request, lambda p: _read_bean(p, _CREDENTIAL_UPDATE_BEAN), _CREDENTIAL_UPDATE
        )
        self._authn_name(request)  # the handler checks the name before the updater touches the body
        if update is None:
            raise _npe(request, f'"{_CREDENTIAL_UPDATE}.getIterations()" because "update" is null')
        assert isinstance(update, CredentialUpdateBody)
        iterations = self.credential_iterations if update.iterations == -1 else update.iterations
        if iterations <= 0:
            raise server_error(request, "java.lang.IllegalArgumentException: invalid iterationCount value")
        # Druid hashes before the updater looks the user up; hashing runs off the loop.
        stored = await asyncio.to_thread(hash_password, update.password, iterations=iterations)
        user = _path_params(request)["u"]
        if user not in self.credentials:
            raise bad_request(f"User [{user}] does not exist.")
        self._contend(request, f"update credentials for user[{user}]")
        self.credentials[user] = stored
        return ok_empty()

    async def _authn_cached_user_map(self, request: web.Request) -> web.Response:
        self._authn_name(request)
        users = {
            name: {"name": name, "credentials": _smile_credentials(stored)}
            for name, stored in sorted(self.credentials.items())
        }
        return web.Response(body=smile_encode(users), headers={"Content-Type": SMILE_TYPE})

    # -- authorization API: users ----------------------------------------------------------------

    async def _authz_load_status(self, request: web.Request) -> web.Response:
        return json_response({self.authorizer: True})

    async def _authz_list_users(self, request: web.Request) -> web.Response:
        self._authz_name(request)
        return json_response(sorted(self.users))

    async def _authz_get_user(self, request: web.Request) -> web.Response:
        self._authz_name(request)
        user = _path_params(request)["u"]
        roles = self._need_authz_user(user)
        # Presence-based flags: ?full=false still means full; simplifyPermissions only with full.
        if "full" not in request.query:
            return json_response({"name": user, "roles": sorted(roles)})
        simplify = "simplifyPermissions" in request.query
        existing = [r for r in sorted(roles) if r in self.roles]  # missing roles are skipped
        shapes = [self._role_simplified(r) if simplify else self._role_plain(r) for r in existing]
        return json_response({"name": user, "roles": shapes})

    async def _authz_create_user(self, request: web.Request) -> web.Response:
        self._authz_name(request)
        user = _path_params(request)["u"]
        if user in self.users:
            raise bad_request(f"User [{user}] already exists.")
        self._contend(request, f"create user[{user}]")
        self.users[user] = set()
        return ok_empty()

    async def _authz_delete_user(self, request: web.Request) -> web.Response:
        self._authz_name(request)
        user = _path_params(request)["u"]
        self._need_authz_user(user)
        self._contend(request, f"delete user[{user}]")
        del self.users[user]
        return ok_empty()

    async def _assign_user_role(self, request: web.Request) -> web.Response:
        self._authz_name(request)
        params = _path_params(request)
        user, role = params["u"], params["r"]
        self._need_role(role)  # checked before the user
        roles = self._need_authz_user(user)
        if role in roles:
            raise bad_request(f"User [{user}] already has role [{role}].")
        self._contend(request, f"assign role[{role}] to user[{user}]")
        roles.add(role)
        return ok_empty()

    async def _unassign_user_role(self, request: web.Request) -> web.Response:
        self._authz_name(request)
        params = _path_params(request)
        user, role = params["u"], params["r"]
        self._need_role(role)
        roles = self._need_authz_user(user)
        if role not in roles:
            raise bad_request(f"User [{user}] does not have role [{role}].")
        self._contend(request, f"unassign role[{role}] from user[{user}]")
        roles.discard(role)
        return ok_empty()

    # -- authorization API: group mappings -------------------------------------------------------

    async def _list_group_mappings(self, request: web.Request) -> web.Response:
        self._authz_name(request)
        return json_response(sorted(self.group_mappings))

    async def _get_group_mapping(self, request: web.Request) -> web.Response:
        self._authz_name(request)
        name = _path_params(request)["g"]
        mapping = self._need_group_mapping(name)
        if "full" in request.query:  # BasicAuthorizerGroupMappingFull: no groupPattern field
            existing = sorted(r for r in mapping.roles if r is not None and r in self.roles)
            return json_response({"name": name, "roles": [self._role_plain(r) for r in existing]})
        return json_response({"name": name, "groupPattern": mapping.group_pattern, "roles": _roles(mapping)})

    async def _create_group_mapping(self, request: web.Request) -> web.Response:
        body = await self._entity(request, lambda p: _read_bean(p, _GROUP_MAPPING_BEAN), _GROUP_MAPPING)
        self._validate(request, "authorizerName", _path_params(request)["z"])
        if body is None:  # the resource calls groupMapping.getGroupPattern() before the handler
            raise _npe(request, f'"{_GROUP_MAPPING}.getGroupPattern()" because "groupMapping" is null')
        assert isinstance(body, GroupMappingBody)
        self._authz_name(request, validated=True)
        name = _path_params(request)["g"]
        if name in self.group_mappings:
            raise bad_request(f"Group mapping [{name}] already exists.")
        self._contend(request, f"create groupMapping[{name}]")
        # The path name wins over the body's; roles are stored as given, without an existence check.
        self.group_mappings[name] = GroupMapping(body.group_pattern, set(body.roles))
        return ok_empty()

    async def _delete_group_mapping(self, request: web.Request) -> web.Response:
        self._authz_name(request)
        name = _path_params(request)["g"]
        self._need_group_mapping(name)
        self._contend(request, f"delete groupMapping[{name}]")
        del self.group_mappings[name]
        return ok_empty()

    async def _assign_group_role(self, request: web.Request) -> web.Response:
        self._authz_name(request)
        params = _path_params(request)
        name, role = params["g"], params["r"]
        self._need_role(role)
        mapping = self._need_group_mapping(name)
        if role in mapping.roles:
            raise bad_request(f"Group mapping [{name}] already has role [{role}].")
        self._contend(request, f"assign role[{role}] to groupMapping[{name}]")
        mapping.roles.add(role)
        return ok_empty()

    async def _unassign_group_role(self, request: web.Request) -> web.Response:
        self._authz_name(request)
        params = _path_params(request)
        name, role = params["g"], params["r"]
        self._need_role(role)
        mapping = self._need_group_mapping(name)
        if role not in mapping.roles:
            raise bad_request(f"Group mapping [{name}] does not have role [{role}].")
        self._contend(request, f"unassign role[{role}] from groupMapping[{name}]")
        mapping.roles.discard(role)
        return ok_empty()

    # -- authorization API: roles and permissions ------------------------------------------------

    def _role_plain(self, role: str) -> dict[str, object]:
        return {"name": role, "permissions": [p.full() for p in self.roles[role]]}

    def _role_simplified(self, role: str) -> dict[str, object]:
        return {"name": role, "users": None, "permissions": [p.resource_action() for p in self.roles[role]]}

    def _holders(self, role: str) -> tuple[list[str], list[str]]:
        users = sorted(u for u, roles in self.users.items() if role in roles)
        groups = sorted(g for g, m in self.group_mappings.items() if role in m.roles)
        return users, groups

    async def _list_roles(self, request: web.Request) -> web.Response:
        self._authz_name(request)
        return json_response(sorted(self.roles))

    async def _get_role(self, request: web.Request) -> web.Response:
        self._authz_name(request)
        role = _path_params(request)["r"]
        permissions = self._need_role(role)
        full, simplify = "full" in request.query, "simplifyPermissions" in request.query
        users, groups = self._holders(role)
        if full and simplify:  # BasicAuthorizerRoleSimplifiedPermissions: no "groups" field
            return json_response(
                {"name": role, "users": users, "permissions": [p.resource_action() for p in permissions]}
            )
        if simplify:
            return json_response(self._role_simplified(role))
        if full:
            perms = [p.full() for p in permissions]
            return json_response({"name": role, "users": users, "groups": groups, "permissions": perms})
        return json_response(self._role_plain(role))

    async def _create_role(self, request: web.Request) -> web.Response:
        self._authz_name(request)
        role = _path_params(request)["r"]
        if role in self.roles:
            raise bad_request(f"Role [{role}] already exists.")
        self._contend(request, f"create role[{role}]")
        self.roles[role] = []
        return ok_empty()

    async def _delete_role(self, request: web.Request) -> web.Response:
        self._authz_name(request)
        role = _path_params(request)["r"]
        self._need_role(role)
        self._contend(request, f"delete role[{role}]")
        # Not rejected while assigned: stripped from every user and group mapping first.
        for roles in self.users.values():
            roles.discard(role)
        for mapping in self.group_mappings.values():
            mapping.roles.discard(role)
        del self.roles[role]
        return ok_empty()

    async def _set_permissions(self, request: web.Request) -> web.Response:
        raw = await self._entity(request, _read_permission_list, "java.util.List")
        self._authz_name(request)
        role = _path_params(request)["r"]
        self._need_role(role)  # checked before the permissions
        assert raw is None or isinstance(raw, list)
        permissions = [self._to_permission(request, item) for item in raw or []]  # null clears
        self._contend(request, f"set permissions for role[{role}]")
        self.roles[role] = permissions  # replaces the whole list
        return ok_empty()

    @staticmethod
    def _to_permission(request: web.Request, item: ResourceActionBody | None) -> Permission:
        """BasicAuthorizerPermission.makePermissionList: NPEs on null parts, then Pattern.compile."""
        if item is None:
            raise _npe(request, f'"{_RESOURCE_ACTION}.getResource()" because "resourceAction" is null')
        if not item.has_resource:
            raise _npe(
                request,
                f'"{_RESOURCE}.getName()" because the return value of "{_RESOURCE_ACTION}.getResource()" is null',
            )
        if item.name is None:
            raise _npe(request, '"String.isEmpty()" because "this.pattern" is null')
        try:
            java_regex(item.name)
        except JavaRegexError:
            raise bad_request(
                f"Invalid permission, resource name regex[{item.name}] does not compile."
            ) from None
        return Permission(item.type, item.name, item.action)

    async def _get_permissions(self, request: web.Request) -> web.Response:
        self._authz_name(request)
        permissions = self._need_role(_path_params(request)["r"])
        return json_response([p.full() for p in permissions])

    async def _authz_cached_user_map(self, request: web.Request) -> web.Response:
        self._authz_name(request)
        user_map = {u: {"name": u, "roles": sorted(r)} for u, r in sorted(self.users.items())}
        payload = {"userMap": user_map, "roleMap": self._role_map()}
        return web.Response(body=smile_encode(payload), headers={"Content-Type": SMILE_TYPE})

    async def _authz_cached_group_map(self, request: web.Request) -> web.Response:
        self._authz_name(request)
        group_map = {
            g: {"name": g, "groupPattern": m.group_pattern, "roles": _roles(m)}
            for g, m in sorted(self.group_mappings.items())
        }
        payload = {"groupMappingMap": group_map, "roleMap": self._role_map()}
        return web.Response(body=smile_encode(payload), headers={"Content-Type": SMILE_TYPE})

    def _role_map(self) -> dict[str, object]:
        return {r: self._role_plain(r) for r in sorted(self.roles)}


# ------------------------------------------------------------------------- Jackson 2.20 (Druid 37)
# Druid 37 reads entities with Jackson 2.20 (27: 2.10). The 2.10 emulation (druidwire.jackson) decides
# *where* a body fails; these helpers rewrite *what* 37 answers, as recorded by the contract suite
# (tests/contract/test_contract_http.py, BODIES_37): 400 messages lose location and reference chain,
# several texts are reworded, sources are REDACTED, "Unexpected character/close marker" columns point at
# the character itself (2.10: one past it), trailing content is read (FAIL_ON_TRAILING_TOKENS) and a
# structured ``action`` is an error instead of a null.

_SOURCE_220 = (
    "[Source: REDACTED (`StreamReadFeature.INCLUDE_SOURCE_IN_LOCATION` disabled); line: {0}, column: {1}]"
)
_SOURCE_210_PREFIX = _SOURCE.split("line:", 1)[0]
_SOURCE_220_PREFIX = _SOURCE_220.split("line:", 1)[0]
_SHAPES = {
    "START_ARRAY": "Array",
    "START_OBJECT": "Object",
    "VALUE_STRING": "String",
    "VALUE_NUMBER_INT": "Integer",
    "VALUE_NUMBER_FLOAT": "Floating-point",
    "VALUE_TRUE": "Boolean",
    "VALUE_FALSE": "Boolean",
    "VALUE_NULL": "Null",
}
_NO_STRING_CREATOR = "(although at least one Creator exists): no String-argument constructor/factory method"


class _Jackson220Error(JacksonError):
    def text(self) -> str:
        out = self.base
        if self.location is not None:
            out += "\n at " + _SOURCE_220.format(*self.location)
        if self.chain:
            out += " (through reference chain: " + "->".join(self.chain) + ")"
        return out


def _string_at(data: bytes, location: tuple[int, int] | None) -> str:
    """The JSON string token that starts at a (line, byte column) location."""
    if location is None:
        return ""
    line, column = location
    start = 0
    for _ in range(line - 1):
        start = data.index(b"\n", start) + 1
    lexer = _Lexer(data[start + column - 1 :])
    return lexer.text() if lexer.next_token() == VALUE_STRING else ""


def _reword_220(message: str, exc: JacksonError, data: bytes) -> str:
    match = re.fullmatch(r"Cannot deserialize instance of `(.+)` out of (\w+) token", message)
    if match:
        java_type, token = match.groups()
        if java_type == "java.util.HashSet<java.lang.Object>":
            if token == VALUE_STRING:
                value = _string_at(data, exc.location)
                return (
                    f"Cannot construct instance of `java.util.HashSet` {_NO_STRING_CREATOR} "
                    f"to deserialize from String value ('{value}')"
                )
            java_type = "java.util.HashSet<java.lang.String>"
        shape = _SHAPES.get(token, token)
        return (
            f"Cannot deserialize value of type `{java_type}` from {shape} value (token `JsonToken.{token}`)"
        )
    if message.startswith(f"Cannot construct instance of `java.util.ArrayList` {_NO_STRING_CREATOR}"):
        java_type = f"java.util.ArrayList<{_RESOURCE_ACTION}>"
        return f"Cannot deserialize value of type `{java_type}` from String value (token `JsonToken.VALUE_STRING`)"
    message = message.replace(": not a valid Integer value", ": not a valid `java.lang.Integer` value")
    message = message.replace(
        "out of range of Integer (-2147483648 - 2147483647)",
        "out of range of `java.lang.Integer` (-2147483648 -2147483647)",
    )
    return message.replace(_SOURCE_210_PREFIX, _SOURCE_220_PREFIX)


def _to_jackson_220(exc: JacksonError, data: bytes) -> JacksonError:
    """A 2.10 error as 2.20 words it (errors built by ``_read_entity_220`` pass through)."""
    if isinstance(exc, _Jackson220Error):
        return exc
    if exc.kind == "mapping":
        # Druid 37 answers getOriginalMessage(): no location and no reference chain (a wrapped parse
        # error carried its location inside the text), except for the "No fallback setter" problem.
        message = _reword_220(exc.base.split("\n at ", 1)[0], exc, data)
        if message.startswith("No fallback setter/field defined for creator property") and exc.chain:
            owner = exc.chain[-1].split("[", 1)[0]
            return _Jackson220Error(f"{message} (of `{owner}`)", None, "mapping", exc.chain)
        return _Jackson220Error(message, None, "mapping")
    message, location = exc.base, exc.location
    if location is not None and message.startswith(("Unexpected character", "Unexpected close marker")):
        location = (location[0], location[1] - 1)  # 2.20 points at the character, 2.10 one past it
    root_close = re.fullmatch(
        r"Unexpected close marker '(.)': expected '.' \(for root starting at .*\)", message
    )
    if root_close:
        kind = "Array" if root_close.group(1) == "]" else "Object"
        message = f"Unexpected close marker '{root_close.group(1)}': no open {kind} to close"
    message = message.replace(
        "enable JsonParser.Feature.ALLOW_NON_NUMERIC_NUMBERS",
        "enable `JsonReadFeature.ALLOW_NON_NUMERIC_NUMBERS`",
    )
    return _Jackson220Error(message.replace(_SOURCE_210_PREFIX, _SOURCE_220_PREFIX), location, exc.kind)


def _structured_action(data: bytes) -> _Jackson220Error | None:
    """A permission list whose ``action`` is an array or object: 2.20's error for the first one, with
    its location (2.10 reads such an action as null and stays inside the structure)."""
    p = _Lexer(data)
    try:
        if p.next_token() != START_ARRAY:
            return None
        while (item := p.next_token()) not in (None, END_ARRAY):
            if item != START_OBJECT:
                p.skip_children()
                continue
            while p.next_token() == FIELD_NAME:
                name = p.name
                value = p.next_token()
                if name == "action" and value in (START_ARRAY, START_OBJECT):
                    if value == START_ARRAY:
                        creator = f"[method {_ACTION}#fromString(java.lang.String)]"
                        message = (
                            f"Input mismatch reading Enum `{_ACTION}`: properties-based `@JsonCreator` "
                            f"({creator}) expects String Value, got Array value (`JsonToken.START_ARRAY`)"
                        )
                    else:
                        message = (
                            f"Cannot deserialize value of type `{_ACTION}` from Object value "
                            "(token `JsonToken.START_OBJECT`)"
                        )
                    return _Jackson220Error(message, p.location(), "mapping")
                p.skip_children()
    except JacksonError:
        return None
    return None


def _read_entity_220(data: bytes, reader: Callable[[_Lexer], object], bound_as: str) -> object:
    """``read_entity`` with 2.20's behaviour: structured actions fail, and trailing content is read
    (a further token is a 400 "Trailing token", a syntax error there a 500)."""
    action = _structured_action(data) if reader is _read_permission_list else None
    at = action.location if action is not None and action.location is not None else (0, 0)
    if action is not None:
        action.location = None  # the 400 message carries none; ``at`` orders it against other errors
    p = _Lexer(data)
    try:
        token = p.next_token()
        value = None if token is None or token == VALUE_NULL else reader(p)
    except JacksonError as exc:
        # Whichever the parser meets first; a wrapped error (no location) comes from further in.
        if action is not None and (exc.location is None or at < exc.location):
            raise action from None
        raise
    if action is not None:
        raise action
    trailing = p.next_token()
    if trailing is not None:
        raise _Jackson220Error(
            f"Trailing token (of type {trailing}) found after value (bound as `{bound_as}`): "
            "not allowed as per `DeserializationFeature.FAIL_ON_TRAILING_TOKENS`",
            None,
            "mapping",
        )
    return value


def _roles(mapping: GroupMapping) -> list[str | None]:
    """A mapping's roles, ``null`` first (Java's HashSet puts null in bucket 0)."""
    return sorted(mapping.roles, key=lambda r: (r is not None, r or ""))


def _smile_credentials(stored: StoredCredentials | None) -> dict[str, object] | None:
    if stored is None:
        return None
    # byte[] fields are native Smile binary, not base64 text.
    return {"salt": stored.salt_bytes(), "hash": stored.hash_bytes(), "iterations": stored.iterations}


def run_foreground(
    *, port: int, admin_password: str, authenticator: str, authorizer: str, host: str = "127.0.0.1"
) -> int:
    """Serve on ``host:port`` until SIGINT/SIGTERM (``druid-access-testing fake-coordinator``)."""
    fake = FakeCoordinator(
        admin_password=admin_password,
        authenticator=authenticator,
        authorizer=authorizer,
        port=port,
        host=host,
    )
    return _run_foreground(fake)
