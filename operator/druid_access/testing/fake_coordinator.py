"""A fake Druid Coordinator serving the druid-basic-security REST API, faithful to the facts file.

Real HTTP on 127.0.0.1 (aiohttp), one ``basic`` authenticator and one ``basic`` authorizer, state in
memory. It reproduces /work/shared/druid-api-facts.md §0-§6: status codes, exact error messages,
check order, presence-based query flags, response shapes, Basic auth (401) and CONFIG/security
authorization (403). Where the facts file leaves behaviour open, the choice is written next to the
code and summarised here:

- ``%2F`` in a path, or a segment decoding to ``.``/``..``: 400 with a Jetty page "Ambiguous URI path
  separator/segment", before authentication - what Jetty 12 (Druid 35+) does.
- Malformed JSON bodies: 500 Jetty page (no Druid mapper handles ``JsonParseException``). JSON that
  parses but does not map: 400 ``{"error": <Jackson-like text>}``. A missing body where an object is
  needed (group mapping / credentials POST), a ``null`` resource or resource name: 500 (Java NPE).
- ``cachedSerialized*`` answer real Smile (``application/x-jackson-smile``) written by a small encoder
  in this module, without shared-name back-references (real Druid enables them; both are valid
  Smile). ``Accept`` that excludes Smile gets 406, as from Jersey.
- ``Content-Type`` other than JSON on a JSON endpoint: 415; ``Accept`` excluding JSON: 406.
- Invalid authenticator/authorizer *names* (IdUtils): 400 with Druid's structured error JSON
  (``{"error":"druidException","errorCode":"invalidInput",...,"errorMessage":...}``).
- ``GET /status`` needs STATE/``STATE`` READ like the real ``StatusResource`` (403 JSON otherwise);
  ``/status/health`` is unsecured.
- Concurrency: every mutation runs atomically on the event loop (no await between its check and
  write), i.e. the real read-modify-CAS always wins first time. Set ``contention_failures = N`` to
  make the next N mutations that pass validation fail like five lost CAS races: 500 with a Jetty
  page naming ``Could not <op> due to concurrent update contention.``; nothing changes.
- Resource-name regexes are compiled with Python ``re``, which approximates Java's dialect
  (``\\p{...}`` classes are rejected here but valid in Java).
- Listing endpoints return names sorted (Druid: hash-set order, unspecified).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import html
import json
import re
import secrets
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from functools import lru_cache

from aiohttp import web
from aiohttp.typedefs import Middleware

from druid_access.passwords import DEFAULT_ITERATIONS, StoredCredentials, hash_password, verify_password
from druid_access.testing.faults import AUTH_USER_KEY, FakeServer, Handler, json_body
from druid_access.testing.faults import run_foreground as _run_foreground

AUTHN = "/druid-ext/basic-security/authentication"
AUTHZ = "/druid-ext/basic-security/authorization"
JSON_TYPE = "application/json"
SMILE_TYPE = "application/x-jackson-smile"
ACTIONS = ("READ", "WRITE")
#: ResourceType's known types in recent Druid; the superuser roles get READ+WRITE on ``.*`` of each.
KNOWN_RESOURCE_TYPES = ("DATASOURCE", "VIEW", "CONFIG", "STATE", "SYSTEM_TABLE", "QUERY_CONTEXT", "EXTERNAL")
UNSECURED_PATHS = frozenset({"/status/health"})
_JACKSON_SOURCE = "\n at [Source: (org.eclipse.jetty.server.HttpInputOverHTTP); line: 1, column: 1]"
_ACTION_CLASS = "org.apache.druid.server.security.Action"
_CREDENTIAL_UPDATE_CLASS = (
    "org.apache.druid.security.basic.authentication.entity.BasicAuthenticatorCredentialUpdate"
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
        return (
            self.action == action
            and self.type == resource_type
            and _compiled(self.name).fullmatch(resource_name) is not None
        )


@lru_cache(maxsize=1024)
def _compiled(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern)


def superuser_permissions() -> list[Permission]:
    """AuthorizationUtils.makeSuperUserPermissions: READ and WRITE on ``.*`` for every known type."""
    return [Permission(t, ".*", a) for t in KNOWN_RESOURCE_TYPES for a in ACTIONS]


@dataclass(slots=True)
class GroupMapping:
    group_pattern: str | None
    roles: set[str] = field(default_factory=set)


class DruidError(Exception):
    """Carries the exact response the real server would send."""

    def __init__(self, response: web.Response) -> None:
        super().__init__(response.status)
        self.response = response


def bad_request(message: str) -> DruidError:
    """The one error shape of every basic-security handler: 400 {"error": message}."""
    return DruidError(json_body({"error": message}, status=400))


def jetty_page(status: int, reason: str, uri: str, message: str | None = None) -> web.Response:
    """Jetty's default HTML error page (not Druid JSON): 401s, unmapped exceptions, URI rejects."""
    uri_e, msg_e = html.escape(uri), html.escape(message or reason)
    text = (
        "<html>\n<head>\n"
        '<meta http-equiv="Content-Type" content="text/html;charset=utf-8"/>\n'
        f"<title>Error {status} {html.escape(reason)}</title>\n</head>\n"
        f"<body><h2>HTTP ERROR {status} {html.escape(reason)}</h2>\n<table>\n"
        f"<tr><th>URI:</th><td>{uri_e}</td></tr>\n"
        f"<tr><th>STATUS:</th><td>{status}</td></tr>\n"
        f"<tr><th>MESSAGE:</th><td>{msg_e}</td></tr>\n"
        "<tr><th>SERVLET:</th><td>-</td></tr>\n</table>\n\n</body>\n</html>\n"
    )
    return web.Response(status=status, text=text, content_type="text/html", charset="utf-8")


def server_error(request: web.Request, message: str) -> DruidError:
    return DruidError(jetty_page(500, "Server Error", request.path, message))


def _jackson(message: str) -> DruidError:
    """A JsonMappingException rendered by Druid's CustomExceptionMapper."""
    return bad_request(message + _JACKSON_SOURCE)


def _json_kind(value: object) -> str:
    """Jackson's name for the token a value starts with."""
    if isinstance(value, dict):
        return "Object value (token `JsonToken.START_OBJECT`)"
    if isinstance(value, list):
        return "Array value (token `JsonToken.START_ARRAY`)"
    if isinstance(value, bool):
        return f"Boolean value (token `JsonToken.VALUE_{str(value).upper()}`)"
    if isinstance(value, int):
        return "Integer value (token `JsonToken.VALUE_NUMBER_INT`)"
    if isinstance(value, float):
        return "Floating-point value (token `JsonToken.VALUE_NUMBER_FLOAT`)"
    return "String value (token `JsonToken.VALUE_STRING`)"


def _mismatch(java_type: str, value: object) -> DruidError:
    return _jackson(f"Cannot deserialize value of type `{java_type}` from {_json_kind(value)}")


def _java_string(value: object) -> str | None:
    """Jackson's StringDeserializer: null stays null, scalars are coerced to text, containers fail."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, bool | int | float):
        return json.dumps(value)
    raise _mismatch("java.lang.String", value)


# ------------------------------------------------------------------------------------ request bodies


async def _read_json(request: web.Request) -> object:
    """The JSON entity, or None for an empty body (Jackson gives a null entity for both)."""
    raw = await request.read()
    if not raw.strip():
        return None
    try:
        value: object = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        # No Druid mapper handles JsonParseException: it surfaces as an unmapped 500.
        raise server_error(request, f"com.fasterxml.jackson.core.JsonParseException: {exc}") from None
    return value


@dataclass(frozen=True, slots=True)
class _CredentialUpdate:
    password: str
    iterations: int | None


def _parse_credential_update(body: object) -> _CredentialUpdate | None:
    if body is None:
        return None
    if not isinstance(body, dict):
        raise _mismatch(_CREDENTIAL_UPDATE_CLASS, body)
    password = _java_string(body.get("password"))
    iterations = _java_integer(body.get("iterations"))
    problem = (
        "Cannot assign null password."
        if password is None
        else "Cannot assign empty password."
        if password == ""
        else None
    )
    if problem is not None:
        raise _jackson(f"Cannot construct instance of `{_CREDENTIAL_UPDATE_CLASS}`, problem: {problem}")
    assert password is not None
    return _CredentialUpdate(password=password, iterations=iterations)


def _java_integer(value: object) -> int | None:
    """Jackson's Integer deserializer: numbers (floats truncated) and numeric strings are accepted."""
    if value is None:
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, float):
        return int(value)
    if isinstance(value, str):
        try:
            return int(value.strip())
        except ValueError:
            pass
        raise _jackson(
            f'Cannot deserialize value of type `java.lang.Integer` from String "{value}": '
            "not a valid `java.lang.Integer` value"
        )
    raise _mismatch("java.lang.Integer", value)


@dataclass(frozen=True, slots=True)
class _RawPermission:
    """A ResourceAction as Jackson would build it: any part may be null (checked later, as an NPE)."""

    present: bool  # False for a null list element
    resource_present: bool
    name: str | None
    type: str | None
    action: str | None


def _parse_permissions(body: object) -> list[_RawPermission]:
    if body is None:
        return []  # null list -> makePermissionList gives an empty list: clears the role
    if not isinstance(body, list):
        raise _mismatch("java.util.List<org.apache.druid.server.security.ResourceAction>", body)
    return [_parse_resource_action(item) for item in body]


def _parse_resource_action(item: object) -> _RawPermission:
    if item is None:
        return _RawPermission(False, False, None, None, None)
    if not isinstance(item, dict):
        raise _mismatch("org.apache.druid.server.security.ResourceAction", item)
    action = _parse_action(item.get("action"))
    resource = item.get("resource")
    if resource is None:
        return _RawPermission(True, False, None, None, action)
    if not isinstance(resource, dict):
        raise _mismatch("org.apache.druid.server.security.Resource", resource)
    name, type_ = _java_string(resource.get("name")), _java_string(resource.get("type"))
    return _RawPermission(True, True, name, type_, action)


def _parse_action(value: object) -> str | None:
    # Action.fromString upper-cases, then Enum.valueOf.
    text = _java_string(value)
    if text is None:
        return None
    upper = text.upper()
    if upper not in ACTIONS:
        problem = f"No enum constant {_ACTION_CLASS}.{upper}"
        raise _jackson(f"Cannot construct instance of `{_ACTION_CLASS}`, problem: {problem}")
    return upper


@dataclass(frozen=True, slots=True)
class _GroupMappingBody:
    group_pattern: str | None
    roles: set[str]


def _parse_group_mapping(body: object) -> _GroupMappingBody | None:
    if body is None:
        return None
    cls = "org.apache.druid.security.basic.authorization.entity.BasicAuthorizerGroupMapping"
    if not isinstance(body, dict):
        raise _mismatch(cls, body)
    _java_string(body.get("name"))  # parsed (and type-checked) but ignored: the path name wins
    pattern = _java_string(body.get("groupPattern"))
    roles_value = body.get("roles")
    if roles_value is None:
        return _GroupMappingBody(pattern, set())
    if not isinstance(roles_value, list):
        raise _mismatch("java.util.Set<java.lang.String>", roles_value)
    roles = {_java_string(r) for r in roles_value}
    return _GroupMappingBody(pattern, {r for r in roles if r is not None})


# --------------------------------------------------------------------------------------- validation


def validate_id(field_name: str, value: str) -> None:
    """IdUtils.validateId as applied to authenticator/authorizer names (recent Druid)."""
    prefix = f"Invalid value for field [{field_name}]: Value [{value}]"
    if value.startswith("."):
        raise _invalid_input(f"{prefix} cannot start with '.'.")
    if "/" in value:
        raise _invalid_input(f"{prefix} cannot contain '/'.")
    # Java's \s is [ \t\n\x0B\f\r]; only the space is allowed.
    if any(c in "\t\n\x0b\f\r" for c in value):
        raise _invalid_input(f"{prefix} contains illegal whitespace characters.  Only space is allowed.")
    units = value.encode("utf-16-le")
    for i in range(0, len(units), 2):
        c = int.from_bytes(units[i : i + 2], "little")  # Java iterates UTF-16 code units
        if 0 < c < 31 or 127 < c < 159 or 0xD800 < c < 0xF8FF or 0xFFF0 < c < 0xFFFF:
            raise _invalid_input(f"{prefix} contains illegal UTF8 character [#{c}] at position [{i // 2}]")


def _invalid_input(message: str) -> DruidError:
    return DruidError(
        json_body(
            {
                "error": "druidException",
                "errorCode": "invalidInput",
                "persona": "USER",
                "category": "INVALID_INPUT",
                "errorMessage": message,
                "context": {},
            },
            status=400,
        )
    )


def _accepts(accept_header: str | None, media_type: str) -> bool:
    """Whether an Accept header admits ``media_type`` (q-values other than 0 are ignored)."""
    if not accept_header:
        return True
    major = media_type.split("/", 1)[0]
    for item in accept_header.split(","):
        parts = [p.strip() for p in item.split(";")]
        if any(p.replace(" ", "") in {"q=0", "q=0.0", "q=0.00", "q=0.000"} for p in parts[1:]):
            continue
        if parts[0].lower() in {"*/*", f"{major}/*", media_type}:
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


# ------------------------------------------------------------------------------------------- smile


def smile_encode(value: object) -> bytes:
    """Jackson Smile encoding of JSON-like data (+ ``bytes`` as 7-bit binary); no back-references."""
    out = bytearray(b":)\n\x00")  # header: version 0, no shared names/values, 7-bit binary
    _smile_value(out, value)
    return bytes(out)


def _smile_vint(value: int) -> bytes:
    # Big-endian 7-bit groups; the last byte holds 6 bits and has the high bit set.
    tail = 0x80 | (value & 0x3F)
    value >>= 6
    head: list[int] = []
    while value:
        head.append(value & 0x7F)
        value >>= 7
    return bytes([*reversed(head), tail])


def _smile_value(out: bytearray, value: object) -> None:
    if value is None or isinstance(value, bool):
        out.append({None: 0x21, False: 0x22, True: 0x23}[value])
    elif isinstance(value, int):
        _smile_int(out, value)
    elif isinstance(value, str):
        _smile_string(out, value)
    elif isinstance(value, bytes):
        out.append(0xE8)
        out += _smile_vint(len(value)) + _seven_bit(value)
    elif isinstance(value, list | tuple):
        out.append(0xF8)
        for item in value:
            _smile_value(out, item)
        out.append(0xF9)
    elif isinstance(value, dict):
        out.append(0xFA)
        for key, item in value.items():
            _smile_key(out, str(key))
            _smile_value(out, item)
        out.append(0xFB)
    else:
        raise TypeError(f"cannot Smile-encode {type(value).__name__}")


def _smile_int(out: bytearray, value: int) -> None:
    if -16 <= value <= 15:
        out.append(0xC0 + ((value << 1) ^ (value >> 31)))
    elif -(2**31) <= value < 2**31:
        out.append(0x24)
        out += _smile_vint((value << 1) ^ (value >> 31))
    else:
        out.append(0x25)
        out += _smile_vint((value << 1) ^ (value >> 63))


def _smile_string(out: bytearray, value: str) -> None:
    data = value.encode("utf-8")
    size, ascii_only = len(data), len(data) == len(value)
    if size == 0:
        out.append(0x20)
    elif ascii_only and size <= 64:
        out.append((0x40 + size - 1) if size <= 32 else (0x60 + size - 33))
        out += data
    elif not ascii_only and size <= 65:
        out.append((0x80 + size - 2) if size <= 33 else (0xA0 + size - 34))
        out += data
    else:
        out.append(0xE0 if ascii_only else 0xE4)
        out += data + b"\xfc"


def _smile_key(out: bytearray, key: str) -> None:
    data = key.encode("utf-8")
    size, ascii_only = len(data), len(data) == len(key)
    if size == 0:
        out.append(0x20)
    elif ascii_only and size <= 64:
        out.append(0x80 + size - 1)
        out += data
    elif not ascii_only and size <= 57:
        out.append(0xC0 + size - 2)
        out += data
    else:
        out.append(0x34)
        out += data + b"\xfc"


def _seven_bit(data: bytes) -> bytes:
    # Each chunk of k<=7 bytes -> k groups of 7 bits from the top, then the last k bits right-aligned.
    out = bytearray()
    for start in range(0, len(data), 7):
        chunk = data[start : start + 7]
        k, bits = len(chunk), int.from_bytes(chunk, "big")
        total = 8 * k
        out += bytes((bits >> (total - 7 * (j + 1))) & 0x7F for j in range(k))
        out.append(bits & ((1 << k) - 1))
    return bytes(out)


# ------------------------------------------------------------------------------------------ server


@web.middleware
async def _uri_check(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Jetty 12 rejects ambiguous URIs before any filter runs.

    aiohttp would decode ``%2F`` into the name, which the real server never does.
    """
    raw = request.raw_path.split("?", 1)[0]
    if "%2f" in raw.lower():
        return jetty_page(400, "Bad Request", raw, "Ambiguous URI path separator")
    if any(seg.lower() in {"%2e", "%2e%2e", ".%2e", "%2e."} for seg in raw.split("/")):
        return jetty_page(400, "Bad Request", raw, "Ambiguous URI path segment")
    return await handler(request)


Endpoint = Callable[[web.Request], Awaitable[web.Response]]


@dataclass(frozen=True, slots=True)
class _Guard:
    """Resource a route is filtered on (None: unsecured) and its Jersey media types."""

    resource_type: str | None = "CONFIG"
    resource_name: str = "security"
    produces: str = JSON_TYPE
    consumes: str = JSON_TYPE
    json_forbidden: bool = False  # ForbiddenException mapper (JSON) vs the security filter's text body


SECURITY = _Guard()
STATE = _Guard(resource_type="STATE", resource_name="STATE", json_forbidden=True)
UNSECURED = _Guard(resource_type=None)


class FakeCoordinator(FakeServer):
    """Stateful fake of the Coordinator's basic-security API. See the module docstring.

    Direct state (mutate freely from tests to simulate drift "behind the operator's back"):

    - ``credentials``: the authenticator's users, name -> :class:`StoredCredentials` or None
    - ``users``: the authorizer's users, name -> set of role names (may name missing roles)
    - ``roles``: name -> list of :class:`Permission`
    - ``group_mappings``: name -> :class:`GroupMapping`
    - ``contention_failures``: the next N mutations fail with a 500 contention error
    """

    name = "fake-coordinator"
    druid_version = "31.0.0"

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
    ) -> None:
        super().__init__(host=host, port=port)
        self.authenticator = authenticator
        self.authorizer = authorizer
        self.credential_iterations = credential_iterations
        self.admin_password = admin_password
        self.internal_password = internal_password or secrets.token_urlsafe(24)
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
        """What the authenticator and authorizer do at Coordinator start."""
        for user, password in (("admin", self.admin_password), ("druid_system", self.internal_password)):
            self.set_password(user, password)
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
        return [_uri_check, self._authentication_middleware()]

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
        add("POST", f"{db}/users/{{u}}/credentials", self._authn_set_credentials)
        add("GET", f"{db}/cachedSerializedUserMap", self._authn_cached_user_map, _Guard(produces=SMILE_TYPE))
        add("POST", f"{AUTHN}/listen/{{a}}", self._not_found, _Guard(consumes=SMILE_TYPE))

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
        add("POST", f"{db}/groupMappings/{{g}}", self._create_group_mapping)
        add("DELETE", f"{db}/groupMappings/{{g}}", self._delete_group_mapping)
        add("POST", f"{db}/groupMappings/{{g}}/roles/{{r}}", self._assign_group_role)
        add("DELETE", f"{db}/groupMappings/{{g}}/roles/{{r}}", self._unassign_group_role)
        add("GET", f"{db}/roles", self._list_roles)
        add("GET", f"{db}/roles/{{r}}", self._get_role)
        add("POST", f"{db}/roles/{{r}}", self._create_role)
        add("DELETE", f"{db}/roles/{{r}}", self._delete_role)
        add("POST", f"{db}/roles/{{r}}/permissions", self._set_permissions)
        add("GET", f"{db}/roles/{{r}}/permissions", self._get_permissions)
        smile = _Guard(produces=SMILE_TYPE)
        add("GET", f"{db}/cachedSerializedUserMap", self._authz_cached_user_map, smile)
        add("GET", f"{db}/cachedSerializedGroupMappingMap", self._authz_cached_group_map, smile)
        for listen in ("listen/{z}", "listen/users/{z}", "listen/groupMappings/{z}"):
            add("POST", f"{AUTHZ}/{listen}", self._not_found, _Guard(consumes=SMILE_TYPE))

    # -- middlewares -----------------------------------------------------------------------------

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
        if header is None or len(header) < 7 or not header.startswith("Basic "):
            # No authenticator claimed the request: PreResponseAuthorizationCheckFilter's 401.
            return None, self._unauthorized_json()
        decoded = _decode_basic(header[6:])
        parts = _java_split_colon(decoded) if decoded is not None else []
        if len(parts) != 2:
            return None, jetty_page(401, "Unauthorized", request.path)
        user, password = parts
        stored = self.credentials.get(user)
        if stored is None:  # unknown user, or no password set yet
            return None, jetty_page(401, "Unauthorized", request.path)
        if not await self._verify(user, password, stored):
            return None, jetty_page(
                401, "Unauthorized", request.path, f"User authentication failed username[{user}]."
            )
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
        response = json_body(
            {"error": "Unauthorized", "errorMessage": None, "errorClass": None, "host": None}, status=401
        )
        response.headers["WWW-Authenticate"] = "Basic"
        return response

    def _guarded(self, endpoint: Endpoint, guard: _Guard) -> Handler:
        """Jersey matching (415/406), then the resource filter (403), then the resource method."""

        async def handler(request: web.Request) -> web.StreamResponse:
            content_type = request.headers.get("Content-Type")
            if content_type and content_type.split(";", 1)[0].strip().lower() != guard.consumes:
                return jetty_page(415, "Unsupported Media Type", request.path)
            if not _accepts(request.headers.get("Accept"), guard.produces):
                return jetty_page(406, "Not Acceptable", request.path)
            if guard.resource_type is not None and not self._allowed(request, guard):
                return self._forbidden(guard)
            try:
                return await endpoint(request)
            except DruidError as exc:
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
    def _forbidden(guard: _Guard) -> web.Response:
        message = "Allowed:false, Message:"
        if guard.json_forbidden:
            return json_body({"Access-Check-Result": message}, status=403)
        return web.Response(status=403, text=f"Access-Check-Result: {message}", content_type="text/plain")

    # -- shared checks ---------------------------------------------------------------------------

    def _authn_name(self, request: web.Request) -> None:
        name = request.match_info["a"]
        validate_id("authenticatorName", name)
        if name != self.authenticator:
            raise bad_request(f"Basic authenticator with name [{name}] does not exist.")

    def _authz_name(self, request: web.Request) -> None:
        name = request.match_info["z"]
        validate_id("authorizerName", name)
        if name != self.authorizer:
            raise bad_request(f"Basic authorizer with name [{name}] does not exist.")

    def _contend(self, request: web.Request, operation: str) -> None:
        """Simulate five lost CAS races on the metadata store (an unmapped ISE: 500)."""
        if self.contention_failures > 0:
            self.contention_failures -= 1
            raise server_error(request, f"Could not {operation} due to concurrent update contention.")

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

    # -- generic endpoints -----------------------------------------------------------------------

    async def _health(self, request: web.Request) -> web.Response:
        return json_body(True)

    async def _status(self, request: web.Request) -> web.Response:
        memory = {"maxMemory": 536870912, "totalMemory": 268435456, "freeMemory": 134217728}
        memory |= {"usedMemory": 134217728, "directMemory": 134217728}
        return json_body({"version": self.druid_version, "modules": [], "memory": memory})

    async def _empty_ok(self, request: web.Request) -> web.Response:
        return web.Response(status=200)

    async def _not_found(self, request: web.Request) -> web.Response:
        # The Coordinator's handler answers the /listen endpoints with a bare 404.
        return web.Response(status=404)

    # -- authentication API ----------------------------------------------------------------------

    async def _authn_load_status(self, request: web.Request) -> web.Response:
        return json_body({self.authenticator: True})

    async def _authn_list_users(self, request: web.Request) -> web.Response:
        self._authn_name(request)
        return json_body(sorted(self.credentials))

    async def _authn_get_user(self, request: web.Request) -> web.Response:
        self._authn_name(request)
        user = request.match_info["u"]
        if user not in self.credentials:
            raise bad_request(f"User [{user}] does not exist.")
        stored = self.credentials[user]
        return json_body({"name": user, "credentials": stored.to_json() if stored else None})

    async def _authn_create_user(self, request: web.Request) -> web.Response:
        self._authn_name(request)
        user = request.match_info["u"]
        if user in self.credentials:
            raise bad_request(f"User [{user}] already exists.")
        self._contend(request, f"create user[{user}]")
        self.credentials[user] = None
        return web.Response(status=200)

    async def _authn_delete_user(self, request: web.Request) -> web.Response:
        self._authn_name(request)
        user = request.match_info["u"]
        if user not in self.credentials:
            raise bad_request(f"User [{user}] does not exist.")
        self._contend(request, f"delete user[{user}]")
        del self.credentials[user]
        return web.Response(status=200)

    async def _authn_set_credentials(self, request: web.Request) -> web.Response:
        update = _parse_credential_update(await _read_json(request))  # Jersey reads the entity first
        self._authn_name(request)
        if update is None:
            raise server_error(request, "java.lang.NullPointerException")
        iterations = update.iterations if update.iterations is not None else self.credential_iterations
        if iterations <= 0:
            raise server_error(request, "java.lang.IllegalArgumentException: Invalid iteration count")
        # Druid hashes before the updater looks the user up; hashing runs off the loop.
        stored = await asyncio.to_thread(hash_password, update.password, iterations=iterations)
        user = request.match_info["u"]
        if user not in self.credentials:
            raise bad_request(f"User [{user}] does not exist.")
        self._contend(request, f"update credentials for user[{user}]")
        self.credentials[user] = stored
        return web.Response(status=200)

    async def _authn_cached_user_map(self, request: web.Request) -> web.Response:
        self._authn_name(request)
        users = {
            name: {"name": name, "credentials": _smile_credentials(stored)}
            for name, stored in sorted(self.credentials.items())
        }
        return web.Response(body=smile_encode(users), content_type=SMILE_TYPE)

    # -- authorization API: users ----------------------------------------------------------------

    async def _authz_load_status(self, request: web.Request) -> web.Response:
        return json_body({self.authorizer: True})

    async def _authz_list_users(self, request: web.Request) -> web.Response:
        self._authz_name(request)
        return json_body(sorted(self.users))

    async def _authz_get_user(self, request: web.Request) -> web.Response:
        self._authz_name(request)
        user = request.match_info["u"]
        roles = self._need_authz_user(user)
        # Presence-based flags: ?full=false still means full; simplifyPermissions only with full.
        if "full" not in request.query:
            return json_body({"name": user, "roles": sorted(roles)})
        simplify = "simplifyPermissions" in request.query
        existing = [r for r in sorted(roles) if r in self.roles]  # missing roles are skipped
        shapes = [self._role_simplified(r) if simplify else self._role_plain(r) for r in existing]
        return json_body({"name": user, "roles": shapes})

    async def _authz_create_user(self, request: web.Request) -> web.Response:
        self._authz_name(request)
        user = request.match_info["u"]
        if user in self.users:
            raise bad_request(f"User [{user}] already exists.")
        self._contend(request, f"create user[{user}]")
        self.users[user] = set()
        return web.Response(status=200)

    async def _authz_delete_user(self, request: web.Request) -> web.Response:
        self._authz_name(request)
        user = request.match_info["u"]
        self._need_authz_user(user)
        self._contend(request, f"delete user[{user}]")
        del self.users[user]
        return web.Response(status=200)

    async def _assign_user_role(self, request: web.Request) -> web.Response:
        self._authz_name(request)
        user, role = request.match_info["u"], request.match_info["r"]
        self._need_role(role)  # checked before the user
        roles = self._need_authz_user(user)
        if role in roles:
            raise bad_request(f"User [{user}] already has role [{role}].")
        self._contend(request, f"assign role[{role}] to user[{user}]")
        roles.add(role)
        return web.Response(status=200)

    async def _unassign_user_role(self, request: web.Request) -> web.Response:
        self._authz_name(request)
        user, role = request.match_info["u"], request.match_info["r"]
        self._need_role(role)
        roles = self._need_authz_user(user)
        if role not in roles:
            raise bad_request(f"User [{user}] does not have role [{role}].")
        self._contend(request, f"unassign role[{role}] from user[{user}]")
        roles.discard(role)
        return web.Response(status=200)

    # -- authorization API: group mappings -------------------------------------------------------

    async def _list_group_mappings(self, request: web.Request) -> web.Response:
        self._authz_name(request)
        return json_body(sorted(self.group_mappings))

    async def _get_group_mapping(self, request: web.Request) -> web.Response:
        self._authz_name(request)
        name = request.match_info["g"]
        mapping = self._need_group_mapping(name)
        if "full" in request.query:
            roles: list[object] = [self._role_plain(r) for r in sorted(mapping.roles) if r in self.roles]
        else:
            roles = [*sorted(mapping.roles)]
        return json_body({"name": name, "groupPattern": mapping.group_pattern, "roles": roles})

    async def _create_group_mapping(self, request: web.Request) -> web.Response:
        body = _parse_group_mapping(await _read_json(request))
        self._authz_name(request)
        if body is None:
            raise server_error(request, "java.lang.NullPointerException")
        name = request.match_info["g"]
        if name in self.group_mappings:
            raise bad_request(f"Group mapping [{name}] already exists.")
        self._contend(request, f"create groupMapping[{name}]")
        # Roles are stored as given, without an existence check.
        self.group_mappings[name] = GroupMapping(body.group_pattern, set(body.roles))
        return web.Response(status=200)

    async def _delete_group_mapping(self, request: web.Request) -> web.Response:
        self._authz_name(request)
        name = request.match_info["g"]
        self._need_group_mapping(name)
        self._contend(request, f"delete groupMapping[{name}]")
        del self.group_mappings[name]
        return web.Response(status=200)

    async def _assign_group_role(self, request: web.Request) -> web.Response:
        self._authz_name(request)
        name, role = request.match_info["g"], request.match_info["r"]
        self._need_role(role)
        mapping = self._need_group_mapping(name)
        if role in mapping.roles:
            raise bad_request(f"Group mapping [{name}] already has role [{role}].")
        self._contend(request, f"assign role[{role}] to groupMapping[{name}]")
        mapping.roles.add(role)
        return web.Response(status=200)

    async def _unassign_group_role(self, request: web.Request) -> web.Response:
        self._authz_name(request)
        name, role = request.match_info["g"], request.match_info["r"]
        self._need_role(role)
        mapping = self._need_group_mapping(name)
        if role not in mapping.roles:
            raise bad_request(f"Group mapping [{name}] does not have role [{role}].")
        self._contend(request, f"unassign role[{role}] from groupMapping[{name}]")
        mapping.roles.discard(role)
        return web.Response(status=200)

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
        return json_body(sorted(self.roles))

    async def _get_role(self, request: web.Request) -> web.Response:
        self._authz_name(request)
        role = request.match_info["r"]
        permissions = self._need_role(role)
        full, simplify = "full" in request.query, "simplifyPermissions" in request.query
        users, groups = self._holders(role)
        if full and simplify:  # BasicAuthorizerRoleSimplifiedPermissions: no "groups" field
            return json_body(
                {"name": role, "users": users, "permissions": [p.resource_action() for p in permissions]}
            )
        if simplify:
            return json_body(self._role_simplified(role))
        if full:
            perms = [p.full() for p in permissions]
            return json_body({"name": role, "users": users, "groups": groups, "permissions": perms})
        return json_body(self._role_plain(role))

    async def _create_role(self, request: web.Request) -> web.Response:
        self._authz_name(request)
        role = request.match_info["r"]
        if role in self.roles:
            raise bad_request(f"Role [{role}] already exists.")
        self._contend(request, f"create role[{role}]")
        self.roles[role] = []
        return web.Response(status=200)

    async def _delete_role(self, request: web.Request) -> web.Response:
        self._authz_name(request)
        role = request.match_info["r"]
        self._need_role(role)
        self._contend(request, f"delete role[{role}]")
        # Not rejected while assigned: stripped from every user and group mapping first.
        for roles in self.users.values():
            roles.discard(role)
        for mapping in self.group_mappings.values():
            mapping.roles.discard(role)
        del self.roles[role]
        return web.Response(status=200)

    async def _set_permissions(self, request: web.Request) -> web.Response:
        raw = _parse_permissions(await _read_json(request))
        self._authz_name(request)
        role = request.match_info["r"]
        self._need_role(role)  # checked before the permissions
        permissions = [self._to_permission(request, item) for item in raw]
        self._contend(request, f"set permissions for role[{role}]")
        self.roles[role] = permissions  # replaces the whole list
        return web.Response(status=200)

    @staticmethod
    def _to_permission(request: web.Request, item: _RawPermission) -> Permission:
        """BasicAuthorizerPermission.makePermissionList: NPE on null parts, then Pattern.compile."""
        if not item.present or not item.resource_present or item.name is None:
            raise server_error(request, "java.lang.NullPointerException")
        try:
            _compiled(item.name)  # approximates java.util.regex.Pattern
        except re.error:
            raise bad_request(
                f"Invalid permission, resource name regex[{item.name}] does not compile."
            ) from None
        return Permission(item.type, item.name, item.action)

    async def _get_permissions(self, request: web.Request) -> web.Response:
        self._authz_name(request)
        permissions = self._need_role(request.match_info["r"])
        return json_body([p.full() for p in permissions])

    async def _authz_cached_user_map(self, request: web.Request) -> web.Response:
        self._authz_name(request)
        user_map = {u: {"name": u, "roles": sorted(r)} for u, r in sorted(self.users.items())}
        payload = {"userMap": user_map, "roleMap": self._role_map()}
        return web.Response(body=smile_encode(payload), content_type=SMILE_TYPE)

    async def _authz_cached_group_map(self, request: web.Request) -> web.Response:
        self._authz_name(request)
        group_map = {
            g: {"name": g, "groupPattern": m.group_pattern, "roles": sorted(m.roles)}
            for g, m in sorted(self.group_mappings.items())
        }
        payload = {"groupMappingMap": group_map, "roleMap": self._role_map()}
        return web.Response(body=smile_encode(payload), content_type=SMILE_TYPE)

    def _role_map(self) -> dict[str, object]:
        return {r: self._role_plain(r) for r in sorted(self.roles)}


def _smile_credentials(stored: StoredCredentials | None) -> dict[str, object] | None:
    if stored is None:
        return None
    # byte[] fields are native Smile binary, not base64 text.
    return {"salt": stored.salt_bytes(), "hash": stored.hash_bytes(), "iterations": stored.iterations}


def run_foreground(*, port: int, admin_password: str, authenticator: str, authorizer: str) -> int:
    """Serve on 127.0.0.1:``port`` until SIGINT/SIGTERM (``druid-access fake-coordinator``)."""
    fake = FakeCoordinator(
        admin_password=admin_password, authenticator=authenticator, authorizer=authorizer, port=port
    )
    return _run_foreground(fake)
