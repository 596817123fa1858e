"""Shared helpers of the contract suite (imported by ``conftest.py`` and the test modules)."""

from __future__ import annotations

import html
import re
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from pydantic import SecretStr

from druid_access import javaregex
from druid_access.clients import CoordinatorClient, HttpOptions
from druid_access.testing.druid import DRUID_VERSION, DruidCoordinator

# Characters that need escaping in runtime.properties (\\ = # ! space, non-ASCII, non-BMP) prove the
# launcher's property encoding: the admin could not log in if any of them were mangled.
ADMIN_PASSWORD = "canary-Real-Adm1n pw #!=\\ ä日😀"
INTERNAL_PASSWORD = "contract-internal-pw"
ITERATIONS = 2000  # not Druid's default (10000), so cases see that credentialIterations is honoured
AUTHN = "/druid-ext/basic-security/authentication"
AUTHZ = "/druid-ext/basic-security/authorization"
JSON = "application/json"
HTML = "text/html;charset=iso-8859-1"
OPTIONS = HttpOptions(connect_timeout=5.0, read_timeout=30.0, write_timeout=30.0, pool_timeout=5.0)

_ADMIN = object()  # "authenticate as admin" (the default of Target.request)


def seg(name: str) -> str:
    """Percent-encode one path segment completely (what a careful client sends)."""
    return quote(name, safe="")


def authn(path: str = "", authenticator: str = "basic") -> str:
    return f"{AUTHN}/db/{authenticator}{path}"


def authz(path: str = "", authorizer: str = "basic") -> str:
    return f"{AUTHZ}/db/{authorizer}{path}"


def ra(name: str, type_: str, action: str) -> dict[str, Any]:
    """A ResourceAction as the permissions POST takes it."""
    return {"resource": {"name": name, "type": type_}, "action": action}


def full(name: str, type_: str, action: str) -> dict[str, Any]:
    """A stored permission as GET returns it (with ``resourceNamePattern``)."""
    return {"resourceAction": ra(name, type_, action), "resourceNamePattern": name}


SECURITY_RW = [ra("security", "CONFIG", "READ"), ra("security", "CONFIG", "WRITE")]


def assert_error(response: httpx.Response, message: str) -> None:
    """A basic-security handler error: 400 ``{"error": message}``."""
    assert response.status_code == 400, response.text
    assert response.headers.get("content-type") == JSON
    assert response.json() == {"error": message}


def assert_ok_empty(response: httpx.Response) -> None:
    """A successful mutation: 200, empty body, typed ``application/json``."""
    assert response.status_code == 200, response.text
    assert response.content == b""
    assert response.headers.get("content-type") == JSON


def assert_json(response: httpx.Response, expected: object, status: int = 200) -> None:
    assert response.status_code == status, response.text
    assert response.headers.get("content-type") == JSON
    assert response.json() == expected


def assert_empty(response: httpx.Response, status: int) -> None:
    """Jersey's own rejections (404, 405, 406, 415): no body, no content type."""
    assert response.status_code == status, response.text
    assert response.content == b""
    assert "content-type" not in response.headers


def jetty_title(response: httpx.Response, status: int) -> str:
    """The (unescaped) message of a Jetty HTML error page, after checking status and content type."""
    assert response.status_code == status, response.text
    assert response.headers.get("content-type") == HTML
    match = re.search(r"<title>Error (\d+) (.*?)</title>", response.text, re.DOTALL)
    assert match is not None, response.text
    assert match.group(1) == str(status)
    return html.unescape(match.group(2))


def sorted_names(values: Iterable[Any]) -> list[Any]:
    return sorted(values, key=lambda v: (v is not None, str(v)))


@dataclass
class Target:
    """One Coordinator under test: raw HTTP (httpx) and the project's client."""

    kind: str
    url: str
    http: httpx.AsyncClient
    version: str = DRUID_VERSION
    """The Druid version the target answers like (the real one's, or the fake's ``druid_version``)."""
    admin: tuple[str, str] = ("admin", ADMIN_PASSWORD)

    @property
    def major(self) -> int:
        return int(self.version.split(".", 1)[0])

    def unique(self, prefix: str) -> str:
        return f"{prefix}-{uuid.uuid4().hex[:10]}"

    async def request(
        self,
        method: str,
        path: str,
        *,
        auth: Any = _ADMIN,
        headers: dict[str, str] | None = None,
        content: bytes | None = None,
        json: Any = None,
    ) -> httpx.Response:
        """``auth``: admin by default, ``None`` for no Authorization header, or ``(user, password)``."""
        basic = (
            httpx.BasicAuth(*self.admin)
            if auth is _ADMIN
            else None
            if auth is None
            else httpx.BasicAuth(*auth)
        )
        return await self.http.request(method, path, auth=basic, headers=headers, content=content, json=json)

    def client(self, username: str = "admin", password: str | None = None) -> CoordinatorClient:
        secret = SecretStr(ADMIN_PASSWORD if password is None else password)
        return CoordinatorClient(self.url, username=username, password=secret, options=OPTIONS)

    async def make_role(self, name: str, permissions: list[dict[str, Any]] | None = None) -> None:
        assert_ok_empty(await self.request("POST", authz(f"/roles/{seg(name)}")))
        if permissions is not None:
            response = await self.request("POST", authz(f"/roles/{seg(name)}/permissions"), json=permissions)
            assert_ok_empty(response)

    async def make_user(self, name: str, password: str | None = None, roles: Iterable[str] = ()) -> None:
        """Create a user in both stores, optionally with a password and roles."""
        assert_ok_empty(await self.request("POST", authn(f"/users/{seg(name)}")))
        if password is not None:
            response = await self.request(
                "POST", authn(f"/users/{seg(name)}/credentials"), json={"password": password}
            )
            assert_ok_empty(response)
        assert_ok_empty(await self.request("POST", authz(f"/users/{seg(name)}")))
        for role in roles:
            assert_ok_empty(await self.request("POST", authz(f"/users/{seg(name)}/roles/{seg(role)}")))


#: ResourceType's known types in Druid 27, in the order the bootstrapped superuser roles list them.
KNOWN_TYPES = ("CONFIG", "QUERY_CONTEXT", "SYSTEM_TABLE", "EXTERNAL", "DATASOURCE", "STATE", "VIEW")


def require_real(druid: DruidCoordinator | Exception) -> DruidCoordinator:
    if isinstance(druid, Exception):
        notes = " ".join(getattr(druid, "__notes__", []))
        pytest.fail(
            f"the real Druid Coordinator ({notes}) could not start: {type(druid).__name__}: {druid}",
            pytrace=False,
        )
    return druid


def java_compiles(pattern: str) -> bool:
    """The product checker's verdict: would Java (and so Druid) compile ``pattern``?"""
    try:
        javaregex.check(pattern)
    except javaregex.JavaRegexError:
        return False
    return True
