"""Typed async client of the Druid Coordinator's basic-security API.

Who calls it: the resource modules (observe/apply of DruidUser, DruidRole,
DruidGroupMapping) and the ``export``/``diff`` commands. It has no policy: no retries, no
diffing, no protected-name rules; it turns each endpoint into one typed method and every
failure into the error tree of ``druid_access.clients.errors``.

What this client encodes (each point held to the real Coordinator by ``tests/contract``):

- Authentication (users + credentials) and authorization (users, roles, permissions, group
  mappings) are separate stores addressed by *different* names. ``AuthenticatorName`` and
  ``AuthorizerName`` are distinct ``NewType``s so mypy rejects passing one for the other
  (Druid's own Python helper mixes them up).
- Query flags are presence-only: the client sends ``?full`` / ``?full&simplifyPermissions``
  and never ``=true``/``=false`` (which Druid would also read as "present").
- Every name is percent-encoded as one path segment (``/`` as %2F, space as %20).
- Permissions are normalised on read (action upper-cased; the redundant
  ``resourceNamePattern`` dropped) so they compare equal to what was sent.
- Mutations answer 200 with an empty body, so mutating methods return None.

- Bulk reads: the JSON list endpoints give names only, so reading every user costs one
  request per user. The ``cachedSerialized*`` cache-sync endpoints give a whole store in one
  request, in Jackson Smile (binary JSON, ``clients.smile``), from the Coordinator's cache
  (current for writes made through it). ``refreshAll`` and ``listen`` are Druid-internal.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

import httpx
from pydantic import (
    SecretStr,
    TypeAdapter,
    ValidationError,
)

from druid_access.clients import druid_wire as wire
from druid_access.clients._http import (
    Gate,
    HttpOptions,
    JsonClient,
    JsonTransport,
    build_path,
    reveal,
    segment,
    summarize,
)
from druid_access.clients.errors import check_coordinator_response
from druid_access.clients.smile import SMILE_TYPE, smile_decode
from druid_access.offload import in_thread

__all__ = ["CoordinatorClient"]

AUTHENTICATION = "druid-ext/basic-security/authentication"
AUTHORIZATION = "druid-ext/basic-security/authorization"

T = TypeVar("T")

_NAMES = TypeAdapter(frozenset[str])
_LOAD_STATUS = TypeAdapter(dict[str, bool])


def _base64_credentials(data: Any) -> Any:
    """Smile carries salt and hash as raw binary; the JSON endpoints (and the models) as base64."""
    for entry in data.values() if isinstance(data, dict) else ():
        credentials = entry.get("credentials") if isinstance(entry, dict) else None
        for key in ("salt", "hash"):
            if isinstance(credentials, dict) and isinstance(credentials.get(key), bytes):
                credentials[key] = base64.b64encode(credentials[key]).decode("ascii")
    return data


# --- client -------------------------------------------------------------------------------------


class CoordinatorClient(JsonClient):
    """Async client of one Coordinator, authenticated with HTTP Basic as an admin-like user.

    The account needs READ and WRITE on ``CONFIG``/``security``. Use as
    ``async with CoordinatorClient(url, username=..., password=...) as c:`` or call
    ``aclose()``. Every method raises ``druid_access.clients.errors.ApiError`` subclasses.
    """

    def __init__(
        self,
        base_url: str,
        *,
        username: str,
        password: SecretStr | str,
        options: HttpOptions | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        on_answer: Callable[[], object] | None = None,
        gate: Gate | None = None,
    ) -> None:
        secret = reveal(password)
        self._username = username
        # The last parse of each bulk read (path -> digest of its body, parsed value): while a
        # store does not change, Druid serves its map as the same bytes (tests/contract), so a
        # resync of an unchanged store reuses the parse.
        self._parsed: dict[str, tuple[bytes, Any]] = {}
        self._http = JsonTransport(
            base_url=base_url,
            target="coordinator",
            check=check_coordinator_response,
            options=options or HttpOptions(),
            auth=httpx.BasicAuth(username, secret),
            secrets=(secret, _basic_token(username, secret)),
            transport=transport,
            on_answer=on_answer,
            gate=gate,
        )

    async def aclose(self) -> None:
        self._parsed.clear()
        await super().aclose()

    def __repr__(self) -> str:
        return f"CoordinatorClient({self.base_url!r}, username={self._username!r})"

    @property
    def leader(self) -> str | None:
        """The leader's origin when a non-leader Coordinator redirected there (see ``redirects``)."""
        return self._http.leader

    # --- liveness and login -------------------------------------------------------------

    async def health(self) -> bool:
        """``GET /status/health`` without credentials (an unsecured path): True when healthy."""
        response = await self._http.request("GET", "/status/health", auth=None)
        return self._http.json_body(response) is True

    async def check_login(self, username: str, password: SecretStr | str) -> bool:
        """Whether ``username``/``password`` authenticate, by ``GET /status`` as that user.

        200 → True; 401 → False. 403 also means True: the password was accepted and only
        STATE READ (which ``/status`` needs) is missing. No state changes on the server.
        """
        secret = reveal(password)
        response = await self._http.request(
            "GET",
            "/status",
            auth=httpx.BasicAuth(username, secret),
            secrets=(secret, _basic_token(username, secret)),
            check=False,
        )
        if response.status_code == 401:
            return False
        if response.status_code == 403:
            return True
        check_coordinator_response(response, secrets=(secret, _basic_token(username, secret)))
        return True

    # --- authentication store -----------------------------------------------------------

    async def authentication_load_status(self) -> dict[wire.AuthenticatorName, bool]:
        """Which ``basic`` authenticators have loaded their cache (wait for True before writing)."""
        response = await self._http.request("GET", build_path(AUTHENTICATION, "loadStatus"))
        status = self._http.parse_as(response, _LOAD_STATUS, "load status map")
        return {wire.AuthenticatorName(k): v for k, v in status.items()}

    async def list_authenticator_users(self, authenticator: wire.AuthenticatorName) -> frozenset[str]:
        response = await self._http.request("GET", _authn(authenticator, "users"))
        return self._http.parse_as(response, _NAMES, "list of user names")

    async def get_authenticator_user(
        self, authenticator: wire.AuthenticatorName, name: str
    ) -> wire.AuthenticatorUser:
        response = await self._http.request("GET", _authn(authenticator, "users", segment(name)))
        return self._http.parse(response, wire.AuthenticatorUser)

    async def create_authenticator_user(self, authenticator: wire.AuthenticatorName, name: str) -> None:
        """Create a user without a password (it cannot log in until ``set_password``)."""
        await self._http.request("POST", _authn(authenticator, "users", segment(name)))

    async def delete_authenticator_user(self, authenticator: wire.AuthenticatorName, name: str) -> None:
        await self._http.request("DELETE", _authn(authenticator, "users", segment(name)))

    async def set_password(
        self,
        authenticator: wire.AuthenticatorName,
        name: str,
        password: SecretStr | str,
        *,
        iterations: int | None = None,
    ) -> None:
        """Store a new password (always a new salt). ``iterations`` None → the
        authenticator's ``credentialIterations``. Empty passwords are refused by Druid
        (``Invalid``); a password containing ``:`` is stored, but logs in only from Druid 37 on
        (27 splits Basic credentials on every ``:``; docs/druid-versions.md)."""
        secret = reveal(password)
        if iterations is not None and iterations < 1:
            raise ValueError("iterations must be positive")  # Druid would fail with a 500
        body: dict[str, Any] = {"password": secret}
        if iterations is not None:
            body["iterations"] = iterations
        await self._http.request(
            "POST",
            _authn(authenticator, "users", segment(name), "credentials"),
            json=body,
            secrets=(secret,),
        )

    # --- authorization store: users -------------------------------------------------------

    async def authenticator_users(
        self, authenticator: wire.AuthenticatorName
    ) -> dict[str, wire.AuthenticatorUser]:
        """Every user of the authenticator with its credentials, in one request."""
        path = _authn(authenticator, "cachedSerializedUserMap")
        users = await self._read_smile(
            path, wire._AUTHENTICATOR_MAP, "authenticator user map", _base64_credentials
        )
        return dict(users)  # the parse may be reused: a map of its own for the caller

    async def authorizer_maps(
        self, authorizer: wire.AuthorizerName, *, group_mappings: bool = False
    ) -> wire.AuthorizerMaps:
        """Every user and role of the authorizer, in one request; its group mappings in a second."""
        path = _authz(authorizer, "cachedSerializedUserMap")
        users = await self._read_smile(path, wire._CACHED_USERS, "authorizer user map")
        mappings = None
        if group_mappings:
            path = _authz(authorizer, "cachedSerializedGroupMappingMap")
            mappings = (
                await self._read_smile(path, wire._CACHED_MAPPINGS, "group mapping map")
            ).group_mapping_map
        # Validating the model builds dicts of its own: the kept parse is not handed out.
        return wire.AuthorizerMaps(users=users.user_map, roles=users.role_map, group_mappings=mappings)

    async def _read_smile(
        self, path: str, adapter: TypeAdapter[T], what: str, reshape: Callable[[Any], Any] = lambda v: v
    ) -> T:
        response = await self._http.request("GET", path, accept=SMILE_TYPE)
        digest = hashlib.blake2b(response.content, digest_size=16).digest()
        last = self._parsed.get(path)
        if last is not None and last[0] == digest:
            value: T = last[1]
            return value

        def parse() -> T:
            try:
                return adapter.validate_python(reshape(smile_decode(response.content)))
            except ValidationError as error:  # located, never quoting the values (credentials)
                raise self._http.unexpected(response, summarize(what, error)) from None
            except ValueError as error:
                raise self._http.unexpected(response, f"body is not Smile: {error}") from None

        # Tenths of a second for 10,000 users: in a thread, so the event loop keeps answering.
        parsed = await in_thread(parse)
        self._parsed[path] = (digest, parsed)
        return parsed

    async def authorization_load_status(self) -> dict[wire.AuthorizerName, bool]:
        """Which ``basic`` authorizers have loaded their caches."""
        response = await self._http.request("GET", build_path(AUTHORIZATION, "loadStatus"))
        status = self._http.parse_as(response, _LOAD_STATUS, "load status map")
        return {wire.AuthorizerName(k): v for k, v in status.items()}

    async def list_authorizer_users(self, authorizer: wire.AuthorizerName) -> frozenset[str]:
        response = await self._http.request("GET", _authz(authorizer, "users"))
        return self._http.parse_as(response, _NAMES, "list of user names")

    async def get_authorizer_user(self, authorizer: wire.AuthorizerName, name: str) -> wire.AuthorizerUser:
        response = await self._http.request("GET", _authz(authorizer, "users", segment(name)))
        return self._http.parse(response, wire.AuthorizerUser)

    async def get_user_full(self, authorizer: wire.AuthorizerName, name: str) -> wire.UserWithRoles:
        """The user with every role's permissions in one call (``?full&simplifyPermissions``)."""
        path = _authz(authorizer, "users", segment(name), flags=("full", "simplifyPermissions"))
        response = await self._http.request("GET", path)
        return self._http.parse(response, wire.UserWithRoles)

    async def create_authorizer_user(self, authorizer: wire.AuthorizerName, name: str) -> None:
        await self._http.request("POST", _authz(authorizer, "users", segment(name)))

    async def delete_authorizer_user(self, authorizer: wire.AuthorizerName, name: str) -> None:
        await self._http.request("DELETE", _authz(authorizer, "users", segment(name)))

    async def assign_role(self, authorizer: wire.AuthorizerName, *, user: str, role: str) -> None:
        """Raises ``Conflict`` if the user already has the role (not idempotent: diff first)."""
        await self._http.request("POST", _authz(authorizer, "users", segment(user), "roles", segment(role)))

    async def unassign_role(self, authorizer: wire.AuthorizerName, *, user: str, role: str) -> None:
        """Raises ``Conflict`` if the user does not have the role."""
        await self._http.request("DELETE", _authz(authorizer, "users", segment(user), "roles", segment(role)))

    # --- authorization store: roles ---------------------------------------------------------

    async def list_roles(self, authorizer: wire.AuthorizerName) -> frozenset[str]:
        response = await self._http.request("GET", _authz(authorizer, "roles"))
        return self._http.parse_as(response, _NAMES, "list of role names")

    async def get_role(
        self,
        authorizer: wire.AuthorizerName,
        name: str,
        *,
        full: bool = False,
        simplify_permissions: bool = False,
    ) -> wire.Role:
        """A role; ``full`` adds ``users`` (and ``groups`` unless ``simplify_permissions``).
        The flags only change the response shape: ``permissions`` are normalised either way."""
        flags = tuple(f for f, on in (("full", full), ("simplifyPermissions", simplify_permissions)) if on)
        response = await self._http.request("GET", _authz(authorizer, "roles", segment(name), flags=flags))
        return self._http.parse(response, wire.Role)

    async def create_role(self, authorizer: wire.AuthorizerName, name: str) -> None:
        await self._http.request("POST", _authz(authorizer, "roles", segment(name)))

    async def delete_role(self, authorizer: wire.AuthorizerName, name: str) -> None:
        """Deletes even an assigned role: Druid strips it from every user and group mapping."""
        await self._http.request("DELETE", _authz(authorizer, "roles", segment(name)))

    async def get_permissions(self, authorizer: wire.AuthorizerName, role: str) -> frozenset[wire.Permission]:
        response = await self._http.request("GET", _authz(authorizer, "roles", segment(role), "permissions"))
        return self._http.parse_as(response, wire._PERMISSIONS, "list of permissions")

    async def set_permissions(
        self, authorizer: wire.AuthorizerName, role: str, permissions: Iterable[wire.Permission]
    ) -> None:
        """Replace the role's whole permission list (Druid does not merge). Sent in a stable
        order so identical sets produce identical requests. Raises ``Invalid`` for a regex
        Java cannot compile (nothing is changed then)."""
        body = [
            p.to_wire()
            for p in sorted(set(permissions), key=lambda p: (p.resource_type, p.resource_name, p.action))
        ]
        await self._http.request("POST", _authz(authorizer, "roles", segment(role), "permissions"), json=body)

    # --- authorization store: group mappings ---------------------------------------------------

    async def list_group_mappings(self, authorizer: wire.AuthorizerName) -> frozenset[str]:
        response = await self._http.request("GET", _authz(authorizer, "groupMappings"))
        return self._http.parse_as(response, _NAMES, "list of group mapping names")

    async def get_group_mapping(self, authorizer: wire.AuthorizerName, name: str) -> wire.GroupMapping:
        response = await self._http.request("GET", _authz(authorizer, "groupMappings", segment(name)))
        return self._http.parse(response, wire.GroupMapping)

    async def create_group_mapping(
        self,
        authorizer: wire.AuthorizerName,
        name: str,
        *,
        group_pattern: str,
        roles: Iterable[str] = (),
    ) -> None:
        """Create a mapping. There is no update: an existing name raises ``AlreadyExists``;
        change the pattern by delete + create, roles by ``(un)assign_group_mapping_role``.
        Druid does not check that ``roles`` exist."""
        body = {"name": name, "groupPattern": group_pattern, "roles": sorted(set(roles))}
        await self._http.request("POST", _authz(authorizer, "groupMappings", segment(name)), json=body)

    async def delete_group_mapping(self, authorizer: wire.AuthorizerName, name: str) -> None:
        await self._http.request("DELETE", _authz(authorizer, "groupMappings", segment(name)))

    async def assign_group_mapping_role(
        self, authorizer: wire.AuthorizerName, *, group_mapping: str, role: str
    ) -> None:
        path = _authz(authorizer, "groupMappings", segment(group_mapping), "roles", segment(role))
        await self._http.request("POST", path)

    async def unassign_group_mapping_role(
        self, authorizer: wire.AuthorizerName, *, group_mapping: str, role: str
    ) -> None:
        path = _authz(authorizer, "groupMappings", segment(group_mapping), "roles", segment(role))
        await self._http.request("DELETE", path)


def _authn(authenticator: wire.AuthenticatorName, *parts: str, flags: tuple[str, ...] = ()) -> str:
    return build_path(AUTHENTICATION, "db", segment(authenticator), *parts, flags=flags)


def _authz(authorizer: wire.AuthorizerName, *parts: str, flags: tuple[str, ...] = ()) -> str:
    return build_path(AUTHORIZATION, "db", segment(authorizer), *parts, flags=flags)


def _basic_token(username: str, password: str) -> str:
    """The Authorization header value for these credentials, so it can be scrubbed too."""
    return base64.b64encode(f"{username}:{password}".encode()).decode("ascii")
