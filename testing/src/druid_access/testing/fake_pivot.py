"""A fake Imply Pivot serving the connections API (/api/v1/connections), stateful, on 127.0.0.1.

Models Imply's published connections API (external documentation; no test runs against a real
Pivot): documented paths, status codes and bodies are reproduced verbatim. What the operator
relies on is in docs/druid-and-pivot.md. Where the documentation is silent, the fake chooses as
an Express app would:

- Auth: every ``/api/`` request needs ``x-imply-api-token``. Missing ->
  401 ``{"error": "Unauthorized: missing x-imply-api-token header"}``; wrong ->
  401 ``{"error": "Unauthorized: invalid API token"}``.
- Body: parsed only when ``Content-Type`` is JSON (otherwise treated as ``{}``, as ``express.json()``
  does); malformed JSON -> 400 ``{"error": "Invalid JSON in request body."}``.
- Validation (400 ``{"error": "Invalid connection: ..."}``): ``name`` non-empty string, ``type`` in
  druid|druidsql, ``queryHosts`` non-empty array of strings; optional ``title``/``ca``/``cert``/``key``/
  ``passphrase``/``decorator``/``sockHost``/``sockUsername``/``sockPassword`` strings, ``timeout`` positive
  integer, ``protocol`` in plain|tls|tls-loose, ``defaultDbAuthToken``/``decoratorOptions`` objects.
- Update order: validation, then body ``name`` == URL name (400 ``{"error": "The name in the request
  body must match the name in the URL."}``), then existence (400 ``this connection does not exist``).
- The stored connection is the request body exactly as sent, secrets included (``password``, ``key``,
  ``passphrase``, ``sockPassword``...): GET returns them, so a client can compare.
- Unknown route or method -> 404 ``Cannot <METHOD> <path>`` (text/html), as Express answers.
- Listing order is insertion order.
"""

from __future__ import annotations

import copy
import hmac
import json

from aiohttp import web
from aiohttp.typedefs import Middleware

from druid_access.testing.faults import AUTH_USER_KEY, FakeServer, Handler, json_body
from druid_access.testing.faults import run_foreground as _run_foreground

TOKEN_HEADER = "x-imply-api-token"
CONNECTIONS = "/api/v1/connections"
CONNECTION_TYPES = ("druid", "druidsql")
PROTOCOLS = ("plain", "tls", "tls-loose")
_STRING_FIELDS = (
    *("title", "ca", "cert", "key", "passphrase"),
    *("decorator", "sockHost", "sockUsername", "sockPassword"),
)
_OBJECT_FIELDS = ("defaultDbAuthToken", "decoratorOptions")
#: Recorded as the request's user once the token matched (the token itself is never logged).
TOKEN_PRINCIPAL = "api-token"

Connection = dict[str, object]


class PivotError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message

    def response(self) -> web.Response:
        return json_body({"error": self.message}, status=self.status)


def validate_connection(body: object) -> Connection:
    """Minimal server-side validation; returns the body as the connection to store."""
    if not isinstance(body, dict):
        raise PivotError(400, "Invalid connection: the request body must be a JSON object.")
    name = body.get("name")
    if not isinstance(name, str) or not name:
        raise PivotError(400, "Invalid connection: 'name' must be a non-empty string.")
    if body.get("type") not in CONNECTION_TYPES:
        raise PivotError(400, "Invalid connection: 'type' must be one of druid, druidsql.")
    hosts = body.get("queryHosts")
    if not isinstance(hosts, list) or not hosts or not all(isinstance(h, str) for h in hosts):
        raise PivotError(400, "Invalid connection: 'queryHosts' must be a non-empty array of strings.")
    _validate_optional(body)
    return {str(k): v for k, v in body.items()}


def _validate_optional(body: dict[str, object]) -> None:
    for field in _STRING_FIELDS:
        if field in body and not isinstance(body[field], str):
            raise PivotError(400, f"Invalid connection: '{field}' must be a string.")
    for field in _OBJECT_FIELDS:
        if field in body and not isinstance(body[field], dict):
            raise PivotError(400, f"Invalid connection: '{field}' must be an object.")
    timeout = body.get("timeout")
    if "timeout" in body and (isinstance(timeout, bool) or not isinstance(timeout, int) or timeout <= 0):
        raise PivotError(400, "Invalid connection: 'timeout' must be a positive integer (milliseconds).")
    if "protocol" in body and body["protocol"] not in PROTOCOLS:
        raise PivotError(400, "Invalid connection: 'protocol' must be one of plain, tls, tls-loose.")


async def _read_body(request: web.Request) -> object:
    """What ``express.json()`` leaves in ``req.body``: parsed JSON, or ``{}`` for other types."""
    if request.content_type != "application/json":
        return {}
    raw = await request.read()
    if not raw.strip():
        return {}
    try:
        value: object = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise PivotError(400, "Invalid JSON in request body.") from None
    return value


class FakePivot(FakeServer):
    """Stateful fake of Pivot's connections API; ``connections`` maps name -> stored connection."""

    name = "fake-pivot"

    def __init__(self, *, token: str, port: int = 0, host: str = "127.0.0.1") -> None:
        super().__init__(host=host, port=port)
        self.token = token
        self.connections: dict[str, Connection] = {}

    def _middlewares(self) -> list[Middleware]:
        return [self._express_middleware()]

    def _express_middleware(self) -> Middleware:
        @web.middleware
        async def express(request: web.Request, handler: Handler) -> web.StreamResponse:
            if request.path.startswith("/api/"):
                failure = self._check_token(request)
                if failure is not None:
                    return failure
                request[AUTH_USER_KEY] = TOKEN_PRINCIPAL
            try:
                return await handler(request)
            except PivotError as exc:
                return exc.response()
            except (web.HTTPNotFound, web.HTTPMethodNotAllowed):
                text = f"Cannot {request.method} {request.path}"
                return web.Response(status=404, text=text, content_type="text/html")

        return express

    def _check_token(self, request: web.Request) -> web.Response | None:
        sent = request.headers.get(TOKEN_HEADER)
        if sent is None:
            return json_body({"error": f"Unauthorized: missing {TOKEN_HEADER} header"}, status=401)
        if not hmac.compare_digest(sent.encode("utf-8"), self.token.encode("utf-8")):
            return json_body({"error": "Unauthorized: invalid API token"}, status=401)
        return None

    def _routes(self, app: web.Application) -> None:
        app.router.add_route("GET", CONNECTIONS, self._list)
        app.router.add_route("POST", CONNECTIONS, self._create)
        app.router.add_route("GET", f"{CONNECTIONS}/{{name}}", self._get)
        app.router.add_route("POST", f"{CONNECTIONS}/{{name}}", self._update)
        app.router.add_route("DELETE", f"{CONNECTIONS}/{{name}}", self._delete)

    async def _list(self, request: web.Request) -> web.Response:
        return json_body({"connections": [copy.deepcopy(c) for c in self.connections.values()]})

    async def _get(self, request: web.Request) -> web.Response:
        connection = self.connections.get(request.match_info["name"])
        if connection is None:
            raise PivotError(404, "This connection does not exist.")
        return json_body(copy.deepcopy(connection))

    async def _create(self, request: web.Request) -> web.Response:
        connection = validate_connection(await _read_body(request))
        name = str(connection["name"])
        if name in self.connections:
            raise PivotError(400, "this name has been used.")
        self.connections[name] = copy.deepcopy(connection)
        return json_body({"status": "ok", "message": "Created successfully", "connection": connection})

    async def _update(self, request: web.Request) -> web.Response:
        connection = validate_connection(await _read_body(request))
        name = request.match_info["name"]
        if connection["name"] != name:
            raise PivotError(400, "The name in the request body must match the name in the URL.")
        if name not in self.connections:
            raise PivotError(400, "this connection does not exist")
        # Full replacement: properties not sent are dropped.
        self.connections[name] = copy.deepcopy(connection)
        return json_body({"status": "ok", "message": "Updated successfully", "connection": connection})

    async def _delete(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        if name not in self.connections:
            raise PivotError(404, "This connection does not exist. Please check the name again.")
        del self.connections[name]
        return json_body({"status": "ok", "message": "Deleted successfully"})


def run_foreground(*, port: int, token: str, host: str = "127.0.0.1") -> int:
    """Serve on ``host:port`` until SIGINT/SIGTERM (``druid-access-testing fake-pivot``)."""
    return _run_foreground(FakePivot(token=token, port=port, host=host))
